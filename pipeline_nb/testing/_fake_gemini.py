"""A loopback fake of the Gemini API (``generativelanguage``), for tests.

It speaks the real wire format (the REST API's JSON, SSE streams, Google's error bodies), so
the official ``google-genai`` SDK talks to it unchanged::

    from google import genai
    from pipeline_nb.testing import FakeGemini

    with FakeGemini() as fake:
        fake.reply("High tide at noon.", when="tides")
        fake.fault("rate_limit", when="retry me", retry_after=1)
        client = genai.Client(api_key="test-key",
                              http_options=genai.types.HttpOptions(base_url=fake.base_url))
        chunks = client.models.generate_content_stream(model="gemini-2.5-flash",
                                                       contents="When are the tides?")
        assert "".join(c.text for c in chunks) == "High tide at noon."
        assert fake.requests[0].prompt == "When are the tides?"

Served: ``POST /{v1|v1beta}/models/{model}:generateContent``, ``:streamGenerateContent?alt=sse``
(a ``data: {GenerateContentResponse}`` event per text piece; the last one carries
``finishReason`` and the full ``usageMetadata``) and ``:countTokens`` (``{"totalTokens": N}``).
A model not named ``gemini-...`` is a 404; a request without ``x-goog-api-key`` (or ``?key=``)
a 403; a body the real API would refuse (unknown field, no contents, a bad role, a response
schema without ``responseMimeType: application/json``) a 400 ``INVALID_ARGUMENT``. Errors are
Google's: ``{"error": {"code", "message", "status"}}``.

Unscripted requests get ``"Fake reply to: " + prompt``. The reply stops at the first of the
request's ``stopSequences`` (finish ``STOP``) or after ``maxOutputTokens`` pieces (finish
``MAX_TOKENS``). Usage: ``promptTokenCount`` is a token per 4 characters of every text of the
request (system instruction included) plus one, the same number ``countTokens`` answers for
the same text; ``candidatesTokenCount`` is the number of pieces.

What each fault kind raises in the SDK (google-genai 3.x, its retries off, the default):

- ``"http"`` (needs ``status``) and its aliases ``"rate_limit"`` (429 ``RESOURCE_EXHAUSTED``),
  ``"unavailable"`` (503 ``UNAVAILABLE``), ``"server_error"`` (500 ``INTERNAL``):
  ``errors.ClientError`` (4xx) or ``errors.ServerError`` (5xx), when the request is sent;
  ``retry_after`` puts a ``google.rpc.RetryInfo`` detail (``retryDelay``) in the body.
- stream-only, after ``after`` chunks: ``"stream_error"`` (a ``data: {"error": ...}`` event, 503 by
  default: the SDK raises its APIError mid-stream), ``"cut"`` (the chunked body ends unfinished:
  ``httpx2.RemoteProtocolError``), ``"stall"`` (no more bytes for ``stall_seconds`` or until
  ``stop()``: a read timeout).

A faulted request does not use up a reply; its partial chunks come from the reply it would have got.
"""

from __future__ import annotations

from typing import Optional, Union

from ._fake_gemini_http import GeminiHandler, GeminiState
from ._fake_gemini_wire import GeminiReply, make_fault
from ._fake_http import LoopbackFake
from ._fake_scripts import Matcher, RecordedRequest

__all__ = ["FakeGemini"]


class FakeGemini(LoopbackFake):
    """A fake Gemini API on ``127.0.0.1`` (a free port unless ``port`` is given).

    Use as a context manager, or call :meth:`start` and :meth:`stop`. Thread-safe.
    """

    handler = GeminiHandler

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(GeminiState(), host=host, port=port)

    @property
    def base_url(self) -> str:
        """``"http://127.0.0.1:PORT"``; only while started. Give it to the SDK as
        ``HttpOptions(base_url=...)``, or to pipeline_nb as ``GEMINI_BASE_URL``."""
        return super().base_url

    # -- scripting -------------------------------------------------------------
    def reply(self, text: str = "", *, when: Matcher = None, times: Optional[int] = None, delay: float = 0.0,
              chunks: Optional[list[str]] = None, usage: Optional[tuple[int, ...]] = None,
              finish_reason: str = "STOP", model: Optional[str] = None) -> None:
        """Script a reply for requests matching ``when``.

        ``when``: None (any request), a substring of the last user turn's text, or
        ``callable(RecordedRequest) -> bool``. ``times=None`` means forever. Replies are tried
        in the order added. ``delay`` seconds are slept before each chunk. ``chunks`` gives the
        text pieces, one per streamed chunk (default: one per word, with its trailing space).
        ``usage`` is ``(promptTokenCount, candidatesTokenCount)`` or with a third,
        ``thoughtsTokenCount``. ``finish_reason`` is Gemini's (``STOP``, ``MAX_TOKENS``,
        ``SAFETY``, ...). ``model`` overrides the echoed ``modelVersion``.
        """
        script = GeminiReply(text, when, times, delay, list(chunks) if chunks is not None else None,
                             tuple(usage) if usage is not None else None, finish_reason, model)
        with self._state.lock:
            self._state.replies.append(script)

    def fault(self, kind: str, *, when: Matcher = None, times: Optional[int] = 1, after: int = 2,
              status: Optional[int] = None, message: Optional[str] = None,
              retry_after: Union[int, float, None] = None, stall_seconds: float = 30.0) -> None:
        """Make the next ``times`` matching requests fail (``times=None``: all of them).

        Faults are checked before replies. Kinds (see the module's docstring for what each
        raises): ``"http"`` (needs ``status``), ``"rate_limit"`` (429), ``"unavailable"`` (503),
        ``"server_error"`` (500); stream-only (ignored for requests not streamed), each after
        ``after`` chunks: ``"stream_error"`` (``status``, 503 by default), ``"cut"``, ``"stall"``.
        ``message`` replaces Google's usual words; ``retry_after`` (seconds) adds a RetryInfo
        detail. A ``countTokens`` request only meets an ``"http"`` fault with a callable ``when``.
        A request the real API would refuse gets its 400 before any fault is picked.
        """
        script = make_fault(kind, when=when, times=times, after=after, status=status, message=message,
                            retry_after=retry_after, stall_seconds=stall_seconds)
        with self._state.lock:
            self._state.faults.append(script)

    def clear(self) -> None:
        """Forget scripts, faults and recorded requests."""
        self._state.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received so far, in arrival order: ``path`` (the model and
        method are in it), ``body`` (the REST JSON), ``headers`` (lower-case, ``x-goog-api-key``
        redacted), ``prompt`` (the last user turn's text) and ``stream``."""
        with self._state.lock:
            return list(self._state.requests)
