"""The HTTP side of :mod:`pipeline_nb.testing._fake_gemini`: routing, JSON and SSE answers, and
the faults as the wire shows them. The server plumbing (threads, connections, stop) is
FakeAnthropic's (``_fake_http``); only the requests and answers differ.

Private.
"""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any, Optional, Union
from urllib.parse import parse_qs, urlsplit

from ._fake_gemini_wire import (ROUTE, GeminiFault, GeminiReply, Planned, error_json, last_user_text, pick, plan,
                                problem, prompt_tokens)
from ._fake_http import Handler
from ._fake_scripts import RecordedRequest, redact

_END_CHUNKS = b"0\r\n\r\n"


class GeminiState:
    """Scripts, faults and recorded requests, guarded by ``lock`` (an RLock, so a ``when=``
    callable may read the fake's public properties)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.replies: list[GeminiReply] = []
        self.faults: list[GeminiFault] = []
        self.requests: list[RecordedRequest] = []
        self._ids = itertools.count(1)

    def new_id(self) -> str:
        with self.lock:
            return f"fake-response-{next(self._ids)}"

    def clear(self) -> None:
        with self.lock:
            self.replies.clear()
            self.faults.clear()
            self.requests.clear()


class GeminiHandler(Handler):
    """Serves ``POST /{version}/models/{model}:generateContent``, ``:streamGenerateContent``
    (``?alt=sse``) and ``:countTokens``; anything else is Google's 404."""

    def do_GET(self) -> None:
        self._record("GET", None)
        self._error(404, f"Method not found: {self.path}")

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        req = self._record("POST", body)
        state: GeminiState = self.server.state  # type: ignore[assignment]
        url = urlsplit(self.path)
        key = (self.headers.get("x-goog-api-key") or "").strip() or parse_qs(url.query).get("key", [""])[0]
        if not key:
            return self._error(403)
        route = ROUTE.match(url.path)
        if route is None:
            return self._error(404, f"Method not found: {url.path}")
        version, model, method = route.groups()
        if not model.startswith("gemini-"):
            return self._error(404, f"models/{model} is not found for API version {version}, or is not "
                                    f"supported for {method}. Call ListModels to see the list of available models "
                                    "and their supported methods.")
        refused = problem(body, method)
        if refused is not None:
            return self._error(400, refused)
        try:
            with state.lock:
                fault = pick(state.faults, req)
                # a faulted request does not use up its reply: the partial chunks come from it
                reply = None if method == "countTokens" else pick(state.replies, req, consume=fault is None)
        except Exception as exc:  # a `when=` callable raised: say so, as FakeAnthropic does
            return self._error(500, f"fake_gemini: {type(exc).__name__}: {exc}")
        if fault is not None and fault.kind == "http":
            return self._error(fault.status or 500, fault.message, fault.retry_after)
        if method == "countTokens":
            tokens = prompt_tokens(body)
            return self._json(200, {"totalTokens": tokens,
                                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}]})
        planned = plan(reply, req, model, state.new_id())
        stopping = self.server.connections.stopping
        try:
            if method == "streamGenerateContent":
                self._stream(planned, fault, stopping)
            elif not (planned.delay and stopping.wait(planned.delay * len(planned.pieces))):
                self._json(200, planned.whole())
            else:
                self.close_connection = True
        except OSError:  # the client went away, or stop() closed the socket
            self.close_connection = True

    def _record(self, method: str, body: Any) -> RecordedRequest:
        as_dict = body if isinstance(body, dict) else {}
        req = RecordedRequest(method, self.path, as_dict, redact(dict(self.headers.items())),
                              last_user_text(as_dict), ":streamGenerateContent" in self.path)
        state: GeminiState = self.server.state  # type: ignore[assignment]
        with state.lock:
            state.requests.append(req)
        return req

    # -- answers -----------------------------------------------------------------
    def _json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: Optional[str] = None, retry_after: Union[int, float, None] = None) -> None:
        self._json(status, error_json(status, message, retry_after))

    def _stream(self, planned: Planned, fault: Optional[GeminiFault], stopping: threading.Event) -> None:
        """SSE as the real API sends it: a ``data: {json}`` line and a blank line per chunk, in a
        chunked body. A fault strikes after its ``after`` chunks."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(obj: Any) -> None:
            event = b"data: " + json.dumps(obj).encode() + b"\r\n\r\n"
            self.wfile.write(b"%x\r\n%b\r\n" % (len(event), event))

        budget = None if fault is None else max(fault.after, 0)
        for sent, chunk in enumerate(planned.chunks()):
            if budget is not None and sent >= budget:
                break
            if planned.delay and stopping.wait(planned.delay):
                self.close_connection = True
                return
            send(chunk)
        if fault is None:
            self.wfile.write(_END_CHUNKS)
        elif fault.kind == "stream_error":
            send(error_json(fault.status or 503, fault.message, fault.retry_after))
            self.wfile.write(_END_CHUNKS)
        else:  # cut / stall: end the connection without finishing the body
            if fault.kind == "stall":
                stopping.wait(fault.stall_seconds)
            self.close_connection = True
