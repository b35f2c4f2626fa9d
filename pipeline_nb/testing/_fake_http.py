"""The HTTP side of :mod:`pipeline_nb.testing._fake_anthropic`: routing, JSON and SSE
responses, and the faults as the wire shows them.

Private. :class:`Server` is given what it serves explicitly: the shared
:class:`~._fake_state.FakeState`, the :class:`~._fake_batches.BatchBook`, the stop event
and the live :class:`Connections`.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from socketserver import TCPServer
from typing import Any, Optional, Union

from ._fake_batches import BatchBook
from ._fake_content import last_user_text
from ._fake_blocks import sse
from ._fake_reply import Plan, input_tokens
from ._fake_scripts import BATCHES_PATH, COUNT_TOKENS_PATH, Fault, RecordedRequest, error_body, redact
from ._fake_state import FakeState

MODELS = ("claude-sonnet-5-5", "claude-haiku-5-5", "claude-opus-5-5")
_GARBAGE = b"event: content_block_delta\ndata: {not json\n\n"
_END_CHUNKS = b"0\r\n\r\n"


def hard_close(sock: socket.socket) -> None:
    """Shut ``sock`` down both ways, so a thread blocked on it wakes up."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Connections:
    """The open client connections and the threads serving them."""

    def __init__(self, lock: threading.RLock, stopping: threading.Event) -> None:
        self._lock = lock
        self.stopping = stopping
        self._conns: dict[socket.socket, threading.Thread] = {}

    def register(self, sock: socket.socket) -> None:
        with self._lock:
            if not self.stopping.is_set():
                self._conns[sock] = threading.current_thread()
                return
        hard_close(sock)

    def unregister(self, sock: socket.socket) -> None:
        with self._lock:
            self._conns.pop(sock, None)

    def close_all(self) -> list[threading.Thread]:
        """Shut every connection down; the threads that served them, to join."""
        with self._lock:
            conns = list(self._conns.items())
        for sock, _ in conns:
            hard_close(sock)
        return [thread for _, thread in conns]


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() joins handler threads itself, with a deadline
    request_queue_size = 1024  # hundreds of clients connect at once (the default 5 drops SYNs: 1 s retries)
    state: FakeState
    batches: BatchBook
    connections: Connections

    def server_bind(self) -> None:  # skip HTTPServer's getfqdn() lookup
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        gone = isinstance(sys.exc_info()[1], ConnectionError)  # the client hung up (e.g. it was cancelled)
        if not gone and not self.connections.stopping.is_set():
            traceback.print_exc()


class LoopbackFake:
    """A fake API served on ``127.0.0.1`` (a free port unless ``port`` is given), from a daemon thread:
    start and stop, the context manager, and ``base_url``. Subclasses give their request handler,
    their state (with a ``lock``), and what else their server holds (``serve``)."""

    handler: type[BaseHTTPRequestHandler]
    name = "fake API"

    def __init__(self, state: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._address = (host, port)
        self._state = state
        self._stopping = threading.Event()
        self._server: Optional[Server] = None
        self._thread: Optional[threading.Thread] = None
        self._connections: Optional[Connections] = None

    def serve(self, server: Server) -> None:
        """Give a new server what the handler reads (``state``, and more in a subclass)."""
        server.state = self._state

    def start(self) -> Any:
        """Start serving in a daemon thread; returns ``self``."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = Server(self._address, self.handler)
        self.serve(server)
        server.connections = self._connections = Connections(self._state.lock, self._stopping)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: wakes stalled and slow streams, closes every connection, frees the port."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        threads = self._connections.close_all() if self._connections is not None else []
        server.server_close()
        deadline = time.monotonic() + 2.0
        for thread in [*threads, *([self._thread] if self._thread is not None else [])]:
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``"http://127.0.0.1:PORT"``; only while started."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._server.base_url


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Server

    def setup(self) -> None:
        super().setup()
        self.server.connections.register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.connections.unregister(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # quiet; never logs headers
        pass

    # -- routing ---------------------------------------------------------------
    def do_GET(self) -> None:
        state = self.server.state
        rid = state.new_id("req_fake_")
        req = RecordedRequest("GET", self.path, {}, redact(dict(self.headers.items())))
        state.record(req)
        if self.path.startswith(BATCHES_PATH):
            return self._batches(rid, req)
        if self.path.split("?", 1)[0] != "/v1/models":
            return self._error(404, rid, None, f"Not found: {self.path}")
        data = [{"type": "model", "id": m, "display_name": m, "created_at": "2026-01-01T00:00:00Z",
                 "lifecycle": "active"} for m in MODELS]
        self._json(200, rid, {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]})

    def do_POST(self) -> None:
        state = self.server.state
        rid = state.new_id("req_fake_")
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        as_dict = body if isinstance(body, dict) else {}
        req = RecordedRequest("POST", self.path, as_dict, redact(dict(self.headers.items())),
                              last_user_text(as_dict), as_dict.get("stream") is True)
        state.record(req)
        key = (self.headers.get("x-api-key") or "").strip()
        bearer = (self.headers.get("authorization") or "").strip()
        if not key and not (bearer[:7].lower() == "bearer " and bearer[7:].strip()):
            return self._error(401, rid, None, "x-api-key header is required")
        if self.path.startswith(BATCHES_PATH):
            return self._batches(rid, req)
        if self.path.split("?", 1)[0] == COUNT_TOKENS_PATH:
            return self._count_tokens(rid, req, body)
        if self.path.split("?", 1)[0] != "/v1/messages":
            return self._error(404, rid, None, f"Not found: {self.path}")
        if not isinstance(body, dict):
            return self._error(400, rid, None, "Request body must be a JSON object")
        problem = state.problem(req)
        if problem is not None:
            return self._error(400, rid, None, problem)
        limits: Optional[dict[str, str]] = None
        if state.rate is not None:
            status, limits = state.rate.admit(input_tokens(req))
            if status == 429:
                return self._json(429, rid, json.loads(error_body(429, "rate_limit_error", "Number of requests has "
                                                                  "exceeded your rate limit", rid)), limits)
        state.enter()
        self._counted = True
        try:
            try:
                fault, plan = state.choose(req)
            except Exception as exc:  # a `when=` callable raised
                return self._script_failed(rid, exc)
            stopping = self.server.connections.stopping
            if plan is None:
                assert fault is not None and fault.status is not None
                self._error(fault.status, rid, fault.error_type, fault.message, fault.retry_after)
            elif req.stream:
                self._stream(plan, fault, rid, stopping, limits)
            else:
                self._message(plan, rid, stopping, limits)
        except OSError:  # client went away, or stop() closed the socket
            self.close_connection = True
        finally:
            self._uncount()

    def _batches(self, rid: str, req: RecordedRequest) -> None:
        try:
            answer = self.server.batches.serve(req, self.server.base_url)
        except Exception as exc:  # a `when=` callable raised
            return self._script_failed(rid, exc)
        if isinstance(answer, Fault):
            return self._error(answer.status or 500, rid, answer.error_type, answer.message, answer.retry_after)
        self._json(200, rid, answer[0], ctype=answer[1])

    def _count_tokens(self, rid: str, req: RecordedRequest, body: Any) -> None:
        if not isinstance(body, dict):
            return self._error(400, rid, None, "Request body must be a JSON object")
        try:
            answer = self.server.state.count_tokens(req)
        except Exception as exc:  # a `when=` callable raised
            return self._script_failed(rid, exc)
        if isinstance(answer, str):
            return self._error(400, rid, None, answer)
        if isinstance(answer, Fault):
            return self._error(answer.status or 500, rid, answer.error_type, answer.message, answer.retry_after)
        self._json(200, rid, {"input_tokens": answer})

    def _script_failed(self, rid: str, exc: Exception) -> None:
        traceback.print_exc()
        self._error(500, rid, None, f"fake_anthropic: {type(exc).__name__}: {exc}")

    def _uncount(self) -> None:
        # Called before a response's last bytes too, so a client that has its answer
        # never sees this request still counted as active.
        if getattr(self, "_counted", False):
            self._counted = False
            self.server.state.leave()

    # -- responses -------------------------------------------------------------
    def _json(self, status: int, rid: str, obj: Any, extra: Optional[dict[str, str]] = None,
              ctype: str = "application/json") -> None:
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", rid)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self._uncount()
        self.wfile.write(data)

    def _error(self, status: int, rid: str, etype: Optional[str], message: Optional[str],
               retry_after: Union[int, float, str, None] = None) -> None:
        extra = {"retry-after": str(retry_after)} if retry_after is not None else None
        self._json(status, rid, error_body(status, etype, message, rid), extra)

    def _message(self, plan: Plan, rid: str, stopping: threading.Event,
                 limits: Optional[dict[str, str]] = None) -> None:
        if plan.delay and stopping.wait(plan.delay * plan.deltas):
            self.close_connection = True
            return
        self._json(200, rid, plan.message(), limits)

    def _stream(self, plan: Plan, fault: Optional[Fault], rid: str, stopping: threading.Event,
                limits: Optional[dict[str, str]] = None) -> None:
        chunked = fault is None or fault.kind != "close"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("request-id", rid)
        for name, value in (limits or {}).items():
            self.send_header(name, value)
        self.send_header("Transfer-Encoding" if chunked else "Connection", "chunked" if chunked else "close")
        self.end_headers()
        write = self.wfile.write

        def emit(event: bytes) -> None:
            write(b"%x\r\n%b\r\n" % (len(event), event) if chunked else event)

        emit(sse("message_start", {"type": "message_start", "message": plan.message(done=False)}))
        # A fault strikes just before the delta after its first `after` ones (thinking
        # and text deltas both count), or before message_delta when there are no more.
        budget = None if fault is None else max(fault.after, 0)
        delay, sent = plan.delay, 0
        for event, is_delta in plan.events():
            if is_delta:
                if budget is not None and sent >= budget:
                    break
                if delay and stopping.wait(delay):
                    self.close_connection = True
                    return
                sent += 1
            emit(event)
        self._uncount()
        if fault is None:
            emit(plan.closing())
            write(_END_CHUNKS)
        elif fault.kind in ("overloaded", "malformed"):
            if fault.kind == "malformed":
                emit(_GARBAGE)
            else:
                emit(sse("error", {"type": "error", "error": {
                    "type": fault.error_type or "overloaded_error", "message": fault.message or "Overloaded"}}))
            write(_END_CHUNKS)
        else:  # cut / close / stall: end the connection without finishing the body
            if fault.kind == "stall":
                stopping.wait(fault.stall_seconds)
            self.close_connection = True
