"""A loopback fake of the Anthropic Messages API, for tests.

It speaks the real wire format (JSON messages, SSE streams, error bodies), so the
official ``anthropic`` SDK talks to it unchanged::

    import anthropic
    from pipeline_nb.testing.fake_anthropic import FakeAnthropic

    with FakeAnthropic() as fake:
        fake.reply("High tide at noon.", when="tides")
        fake.fault("rate_limit", when="retry me", retry_after=1)
        client = anthropic.Anthropic(base_url=fake.base_url, api_key="test-key", max_retries=0)
        with client.messages.stream(
            model="claude-sonnet-5-5", max_tokens=64,
            messages=[{"role": "user", "content": "When are the tides?"}],
        ) as stream:
            assert "".join(stream.text_stream) == "High tide at noon."
        assert fake.requests[0].prompt == "When are the tides?"

Unscripted requests get ``"Fake reply to: " + prompt``. Only text replies exist (no
tool use or thinking blocks); ``max_tokens`` is required but never truncates.

What each fault kind raises in the SDK (anthropic 2.13, ``max_retries=0``):

- ``"http"`` (and ``"rate_limit"`` 429, ``"overloaded_http"`` 529, ``"server_error"``
  500): the matching ``APIStatusError`` subclass, e.g. ``RateLimitError``,
  ``AuthenticationError``, ``OverloadedError``; raised when the request is sent
  (``messages.create`` or entering ``messages.stream``). With retries on, the SDK
  retries 429/5xx and honours ``retry-after``.
- ``"overloaded"``: ``APIStatusError`` with ``status_code == 200`` and
  ``.type == "overloaded_error"``, after ``after`` text deltas.
- ``"cut"``: ``httpx2.RemoteProtocolError`` (not an ``APIConnectionError``).
- ``"close"``: nothing; the stream just ends and ``get_final_message().stop_reason is None``.
- ``"stall"``: ``httpx2.ReadTimeout`` (not ``APITimeoutError``) once the client's read
  timeout passes; stops after ``stall_seconds`` or ``stop()``.
- ``"malformed"``: ``json.JSONDecodeError`` (a ``ValueError``) from the SDK's SSE parser.

None of the mid-stream faults are retried by the SDK. Stream-only faults skip
non-streamed requests; a faulted request does not use up a reply script, and its
partial deltas come from the reply that would have been sent.

Message Batches (``client.messages.batches.create/retrieve/results/cancel``): each item
is recorded in ``requests`` at creation (``batch_id`` and ``custom_id`` set, path
``/v1/messages``) and, when a retrieve processes it, gets its reply or fault as a
non-streamed request would: ``"http"`` makes it ``errored``, the batch-only kinds
``"expired"`` and ``"canceled"`` give those results. A batch stays ``in_progress`` for
``batch_polls(n)`` retrieves (``results()`` does one itself), then ends; its results come
shuffled, and are a 404 before it ends. Creation is a 400 for 0 or more than 100,000
requests, a repeated ``custom_id`` or one not matching ``^[a-zA-Z0-9_-]{1,64}$``, or params
missing ``model``/``max_tokens``/``messages``; of the faults, only ``"http"`` ones with a
callable ``when`` are checked against it, e.g. ``when=lambda r: r.path.endswith("/batches")``.
"""

from __future__ import annotations

import itertools
import json
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import TracebackType
from typing import Any, Optional, Union

from ._fake_batches import BatchBook, BatchMethods
from ._fake_scripts import (BATCHES_PATH, Fault, Matcher, Plan, RecordedRequest, Reply, error_body,
                            last_user_text, make_fault, message_obj, pick, plan_reply, redact)

__all__ = ["FakeAnthropic", "RecordedRequest"]

_MODELS = ("claude-sonnet-5-5", "claude-haiku-5-5", "claude-opus-5-5")
_DELTA_HEAD = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":'
)
_DELTA_TAIL = b"}}\n\n"
_GARBAGE = b"event: content_block_delta\ndata: {not json\n\n"
_END_CHUNKS = b"0\r\n\r\n"


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: %b\ndata: %b\n\n" % (event.encode(), json.dumps(data, separators=(",", ":")).encode())


_OPEN_BLOCK = _sse("content_block_start", {
    "type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""},
}) + _sse("ping", {"type": "ping"})
_CLOSE_BLOCK = _sse("content_block_stop", {"type": "content_block_stop", "index": 0})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() joins handler threads itself, with a deadline
    fake: "FakeAnthropic"

    def server_bind(self) -> None:  # skip HTTPServer's getfqdn() lookup
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request: Any, client_address: Any) -> None:
        gone = isinstance(sys.exc_info()[1], ConnectionError)  # the client hung up (e.g. it was cancelled)
        if not gone and not self.fake._stopping.is_set():
            traceback.print_exc()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.fake._register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._unregister(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # quiet; never logs headers
        pass

    # -- routing ---------------------------------------------------------------
    def do_GET(self) -> None:
        fake = self.server.fake
        rid = fake._new_id("req_fake_")
        req = RecordedRequest("GET", self.path, {}, redact(dict(self.headers.items())))
        fake._record(req)
        if self.path.startswith(BATCHES_PATH):
            return self._batches(rid, req)
        if self.path.split("?", 1)[0] != "/v1/models":
            return self._error(404, rid, None, f"Not found: {self.path}")
        data = [{"type": "model", "id": m, "display_name": m, "created_at": "2026-01-01T00:00:00Z",
                 "lifecycle": "active"} for m in _MODELS]
        self._json(200, rid, {"data": data, "has_more": False, "first_id": _MODELS[0], "last_id": _MODELS[-1]})

    def do_POST(self) -> None:
        fake = self.server.fake
        rid = fake._new_id("req_fake_")
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        as_dict = body if isinstance(body, dict) else {}
        req = RecordedRequest("POST", self.path, as_dict, redact(dict(self.headers.items())),
                              last_user_text(as_dict), as_dict.get("stream") is True)
        fake._record(req)
        key = (self.headers.get("x-api-key") or "").strip()
        bearer = (self.headers.get("authorization") or "").strip()
        if not key and not (bearer[:7].lower() == "bearer " and bearer[7:].strip()):
            return self._error(401, rid, None, "x-api-key header is required")
        if self.path.startswith(BATCHES_PATH):
            return self._batches(rid, req)
        if self.path.split("?", 1)[0] != "/v1/messages":
            return self._error(404, rid, None, f"Not found: {self.path}")
        if not isinstance(body, dict):
            return self._error(400, rid, None, "Request body must be a JSON object")
        for name in ("model", "max_tokens", "messages"):
            if name not in body:
                return self._error(400, rid, None, f"{name}: Field required")
        fake._enter()
        self._counted = True
        try:
            try:
                fault, plan = fake._choose(req)
            except Exception as exc:  # a `when=` callable raised
                return self._script_failed(rid, exc)
            if fault is not None and fault.kind == "http":
                assert fault.status is not None
                self._error(fault.status, rid, fault.error_type, fault.message, fault.retry_after)
            elif req.stream:
                self._stream(plan, fault, rid, fake._stopping, fake._new_id("msg_fake_"))
            else:
                self._message(plan, rid, fake._stopping, fake._new_id("msg_fake_"))
        except OSError:  # client went away, or stop() closed the socket
            self.close_connection = True
        finally:
            self._uncount()

    def _batches(self, rid: str, req: RecordedRequest) -> None:
        fake = self.server.fake
        try:
            answer = fake._batch_book.serve(req, fake.base_url)
        except Exception as exc:  # a `when=` callable raised
            return self._script_failed(rid, exc)
        if isinstance(answer, Fault):
            return self._error(answer.status or 500, rid, answer.error_type, answer.message, answer.retry_after)
        self._json(200, rid, answer[0], ctype=answer[1])

    def _script_failed(self, rid: str, exc: Exception) -> None:
        traceback.print_exc()
        self._error(500, rid, None, f"fake_anthropic: {type(exc).__name__}: {exc}")

    def _uncount(self) -> None:
        # Called before a response's last bytes too, so a client that has its answer
        # never sees this request still counted as active.
        if getattr(self, "_counted", False):
            self._counted = False
            self.server.fake._leave()

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

    def _message(self, plan: Plan, rid: str, stopping: threading.Event, msg_id: str) -> None:
        if plan.delay and stopping.wait(plan.delay * len(plan.deltas)):
            self.close_connection = True
            return
        self._json(200, rid, message_obj(plan, msg_id, plan.text))

    def _stream(self, plan: Plan, fault: Optional[Fault], rid: str, stopping: threading.Event,
                msg_id: str) -> None:
        chunked = fault is None or fault.kind != "close"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("request-id", rid)
        self.send_header("Transfer-Encoding" if chunked else "Connection", "chunked" if chunked else "close")
        self.end_headers()
        write = self.wfile.write

        def emit(event: bytes) -> None:
            write(b"%x\r\n%b\r\n" % (len(event), event) if chunked else event)

        start = message_obj(plan, msg_id, None)
        start["usage"]["output_tokens"] = 0
        emit(_sse("message_start", {"type": "message_start", "message": start}) + _OPEN_BLOCK)
        deltas = plan.deltas if fault is None else plan.deltas[: max(fault.after, 0)]
        delay, dumps = plan.delay, json.dumps
        for d in deltas:
            if delay and stopping.wait(delay):
                self.close_connection = True
                return
            emit(_DELTA_HEAD + dumps(d).encode() + _DELTA_TAIL)
        self._uncount()
        if fault is None:
            emit(_CLOSE_BLOCK + _sse("message_delta", {
                "type": "message_delta",
                "delta": {"stop_reason": plan.stop_reason, "stop_sequence": plan.stop_sequence},
                "usage": {"output_tokens": plan.output_tokens},
            }) + _sse("message_stop", {"type": "message_stop"}))
            write(_END_CHUNKS)
        elif fault.kind in ("overloaded", "malformed"):
            if fault.kind == "malformed":
                emit(_GARBAGE)
            else:
                emit(_sse("error", {"type": "error", "error": {
                    "type": fault.error_type or "overloaded_error", "message": fault.message or "Overloaded"}}))
            write(_END_CHUNKS)
        else:  # cut / close / stall: end the connection without finishing the body
            if fault.kind == "stall":
                stopping.wait(fault.stall_seconds)
            self.close_connection = True


class FakeAnthropic(BatchMethods):
    """A fake Messages API on ``127.0.0.1`` (a free port unless ``port`` is given).

    Use as a context manager, or call :meth:`start` and :meth:`stop`. Thread-safe.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._address = (host, port)
        self._lock = threading.RLock()  # `when=` callables run under it
        self._stopping = threading.Event()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._replies: list[Reply] = []
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._active = 0
        self._max_active = 0
        self._ids = {"req_fake_": itertools.count(1), "msg_fake_": itertools.count(1)}
        self._batch_book = BatchBook(self)

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> "FakeAnthropic":
        """Start serving in a daemon thread; returns ``self``."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(self._address, _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="FakeAnthropic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: wakes stalled and slow streams, closes every connection, frees the port."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            conns = list(self._conns.items())
        for sock, _ in conns:
            _hard_close(sock)
        server.server_close()
        deadline = time.monotonic() + 2.0
        for _, thread in conns:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> "FakeAnthropic":
        return self.start()

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``"http://127.0.0.1:PORT"``; only while started."""
        if self._server is None:
            raise RuntimeError("FakeAnthropic is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- scripting -------------------------------------------------------------
    def reply(self, text: str, *, when: Matcher = None, times: Optional[int] = None, delay: float = 0.0,
              chunks: Optional[list[str]] = None, usage: Optional[tuple[int, int]] = None,
              stop_reason: str = "end_turn", model: Optional[str] = None) -> None:
        """Script a reply for requests matching ``when``.

        ``when``: None (any request), a substring of the last user message, or
        ``callable(RecordedRequest) -> bool``. ``times=None`` means forever. Replies
        are tried in the order added. ``delay`` seconds are slept before each delta.
        ``chunks`` gives the deltas (default: one per word, with its trailing space).
        ``usage`` is ``(input_tokens, output_tokens)``. ``model`` overrides the echoed model.
        """
        with self._lock:
            self._replies.append(Reply(text, when, times, delay, list(chunks) if chunks is not None else None,
                                       usage, stop_reason, model))

    def fault(self, kind: str, *, when: Matcher = None, times: Optional[int] = 1, after: int = 2,
              status: Optional[int] = None, retry_after: Union[int, float, str, None] = None,
              error_type: Optional[str] = None, message: Optional[str] = None,
              stall_seconds: float = 30.0) -> None:
        """Make the next ``times`` matching requests fail (``times=None``: all of them).

        Faults are checked before replies and do not use up a reply. Kinds:
        ``"http"`` (needs ``status``; error JSON, ``request-id``, optional ``retry-after``),
        aliases ``"rate_limit"`` (429), ``"overloaded_http"`` (529), ``"server_error"`` (500);
        stream-only (ignored for non-streamed requests), each after ``after`` text deltas:
        ``"overloaded"`` (``event: error``), ``"cut"`` (socket closed mid chunked body),
        ``"close"`` (unchunked body ends early), ``"stall"`` (no more bytes for
        ``stall_seconds``), ``"malformed"`` (an event whose data is not JSON);
        batch-only (ignored outside Message Batches): ``"expired"``, ``"canceled"`` (the
        item's result type). An ``"http"`` fault makes a batch item ``errored`` with its
        ``error_type`` and ``message``.
        """
        f = make_fault(kind, when=when, times=times, after=after, status=status, retry_after=retry_after,
                       error_type=error_type, message=message, stall_seconds=stall_seconds)
        with self._lock:
            self._faults.append(f)

    def clear(self) -> None:
        """Forget scripts, faults, recorded requests and batches (their ids then 404);
        reset ``max_concurrent`` and ``batch_polls``."""
        with self._lock:
            self._batch_book.clear()
            self._replies.clear()
            self._faults.clear()
            self._requests.clear()
            self._max_active = self._active

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def max_concurrent(self) -> int:
        """Highest number of ``/v1/messages`` requests served at once."""
        return self._max_active

    # -- used by the handler ---------------------------------------------------
    def _choose(self, req: RecordedRequest) -> tuple[Optional[Fault], Plan]:
        with self._lock:
            fault = pick(self._faults, req, consume=True)
            reply = pick(self._replies, req, consume=fault is None)
        return fault, plan_reply(reply, req)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids[prefix])}"

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(req)

    def _enter(self) -> None:
        with self._lock:
            self._active += 1
            self._max_active = max(self._max_active, self._active)

    def _leave(self) -> None:
        with self._lock:
            self._active -= 1

    def _register(self, sock: socket.socket) -> None:
        with self._lock:
            if not self._stopping.is_set():
                self._conns[sock] = threading.current_thread()
                return
        _hard_close(sock)

    def _unregister(self, sock: socket.socket) -> None:
        with self._lock:
            self._conns.pop(sock, None)


def _hard_close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass

