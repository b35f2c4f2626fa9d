"""What the HTTP providers share: the sockets their clients opened, shut down to interrupt a
blocked read at once (the wait a server asks for is ``_rate_limit.retry_after``)."""

from __future__ import annotations

import socket
import threading
import weakref
from typing import Any

import httpx2


class Sockets:
    """The sockets a provider's clients opened, recorded through httpcore's ``trace`` extension."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: weakref.WeakSet[socket.socket] = weakref.WeakSet()

    def trace_request(self, request: httpx2.Request) -> None:
        """An httpx event hook: ask the transport to report the connections it makes for ``request``."""
        request.extensions["trace"] = self._trace

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        if event.endswith(("connect_tcp.complete", "start_tls.complete")):
            sock = info["return_value"].get_extra_info("socket")
            if sock is not None:
                with self._lock:
                    self._open.add(sock)

    def shutdown(self) -> None:
        """Shut every recorded socket down, so a blocked read returns at once (any thread)."""
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed, or detached by TLS
                pass
