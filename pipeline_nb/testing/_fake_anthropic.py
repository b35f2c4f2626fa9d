"""A loopback fake of the Anthropic Messages API, for tests.

It speaks the real wire format (JSON messages, SSE streams, error bodies), so the
official ``anthropic`` SDK talks to it unchanged::

    import anthropic
    from pipeline_nb.testing._fake_anthropic import FakeAnthropic

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

Unscripted requests get ``"Fake reply to: " + prompt``. ``max_tokens`` is required but
never truncates.

Tools (see ``reply``): a reply scripted with ``tool_calls=`` ends with a ``tool_use`` block
per call (input streamed as ``input_json_delta`` pieces) and ``stop_reason: "tool_use"``;
one scripted with ``server_tool=`` holds a ``server_tool_use`` block and its result
(web search, web fetch, code execution) and counts them in ``usage.server_tool_use``. A
script naming a tool the request does not send is a 400 that says so.
``RecordedRequest.tools``/``.tool_results`` list what a request sent, and a ``when``
substring also matches the text of the last user turn's tool results.

Content blocks (see ``reply``): with thinking enabled in the request, a reply scripted
with ``thinking=`` starts with a ``thinking`` block whose signature the fake remembers; an
assistant turn sending back a thinking block with any other signature is a 400. A reply
scripted with ``cite=`` cites the request's documents that have citations enabled, in
blocks split around the cited sentences. ``RecordedRequest.documents``/``.images`` list
what a request attached.

Requests are checked as the real API checks them, with its 400 ``invalid_request_error``:
required fields, ``thinking`` (``budget_tokens`` >= 1,024 and < ``max_tokens``),
``output_config.effort`` (low | medium | high | xhigh | max), documents and images (media
types, base64 data that is what it claims), ``cache_control`` (at most 4), thinking
signatures, ``tools`` (names, schemas, no duplicates), ``tool_choice``, and tool turns
(every ``tool_use`` answered by a ``tool_result`` first in the next user turn, no other;
with thinking on, the assistant turn being answered starts with its thinking block).

Usage: ``input_tokens`` is ``len(prompt) // 4 + 1`` (the last user message's text) plus
the attachments' estimate; once a request marks a ``cache_control`` breakpoint, every
block counts one token per word and the prompt cache applies (``_fake_cache``):
``cache_creation_input_tokens`` (split in ``cache_creation`` by TTL),
``cache_read_input_tokens``, and ``input_tokens`` for the rest. Without a breakpoint, the
last user turn's tool results add ``len(text) // 4``. ``output_tokens`` counts text
deltas, thinking words and tool input pieces. ``diagnostics.previous_message_id`` gets
``diagnostics.cache_miss_reason`` as the real API would. ``clear_cache()`` empties the cache.

Token counting (``client.messages.count_tokens``, ``POST /v1/messages/count_tokens``): the answer
is ``{"input_tokens": N}``, N being what a message's usage reports for the same request with
nothing cached (with a cache breakpoint: its ``input_tokens`` plus the cache's write and read
counts), so an estimate can be checked against a run. The request is recorded (its ``path``
says which endpoint) and checked as a message is, except that ``max_tokens`` is not needed and
a field the endpoint does not take (``max_tokens``, ``stop_sequences``, ``stream``, ...) is a 400
``"<field>: Extra inputs are not permitted"``. It uses up no reply and touches no cache; only an
``"http"`` fault with a callable ``when`` applies to it, e.g.
``when=lambda r: r.path.endswith("/count_tokens")``.

What each fault kind raises in the SDK (anthropic 2.13, ``max_retries=0``):

- ``"http"`` (and ``"rate_limit"`` 429, ``"overloaded_http"`` 529, ``"server_error"``
  500): the matching ``APIStatusError`` subclass, e.g. ``RateLimitError``,
  ``AuthenticationError``, ``OverloadedError``; raised when the request is sent
  (``messages.create`` or entering ``messages.stream``). With retries on, the SDK
  retries 429/5xx and honours ``retry-after``.
- ``"overloaded"``: ``APIStatusError`` with ``status_code == 200`` and
  ``.type == "overloaded_error"``, after ``after`` deltas (thinking, text and tool input
  deltas count).
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
non-streamed request would (a request the API refuses, or an ``"http"`` fault, makes it
``errored``; a reply has the same blocks and usage as a direct one), the batch-only kinds
``"expired"`` and ``"canceled"`` give those results. A batch stays ``in_progress`` for
``batch_polls(n)`` retrieves (``results()`` does one itself), then ends; its results come
shuffled, and are a 404 before it ends. Creation is a 400 for 0 or more than 100,000
requests, a repeated ``custom_id`` or one not matching ``^[a-zA-Z0-9_-]{1,64}$``, or params
missing ``model``/``max_tokens``/``messages``; of the faults, only ``"http"`` ones with a
callable ``when`` are checked against it, e.g. ``when=lambda r: r.path.endswith("/batches")``.
"""

from __future__ import annotations

from typing import Optional, Union

from ._fake_batches import BatchBook
from ._fake_content import Attachment
from ._fake_http import Handler, LoopbackFake, Server
from ._fake_rate import RateGate
from ._fake_scripts import CiteArg, Matcher, RecordedRequest, Reply, make_cites, make_fault
from ._fake_state import FakeState
from ._fake_tools import ServerToolArg, ToolCallArg, make_server_calls, make_tool_calls

__all__ = ["Attachment", "FakeAnthropic", "RecordedRequest"]

#: The request handler ``start()`` serves with (a benchmark swaps in a buffered one).
_Handler = Handler


class FakeAnthropic(LoopbackFake):
    """A fake Messages API on ``127.0.0.1`` (a free port unless ``port`` is given).

    Use as a context manager, or call :meth:`start` and :meth:`stop`. Thread-safe.
    """

    handler = _Handler

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(FakeState(), host=host, port=port)
        self._batches = BatchBook(self._state)

    def serve(self, server: Server) -> None:
        server.state, server.batches = self._state, self._batches

    # -- scripting -------------------------------------------------------------
    def reply(self, text: str = "", *, when: Matcher = None, times: Optional[int] = None, delay: float = 0.0,
              chunks: Optional[list[str]] = None, usage: Optional[tuple[int, int]] = None,
              stop_reason: Optional[str] = None, model: Optional[str] = None, thinking: Optional[str] = None,
              signature: Optional[str] = None, cite: CiteArg = None, tool_calls: ToolCallArg = None,
              server_tool: ServerToolArg = None) -> None:
        """Script a reply for requests matching ``when``.

        ``when``: None (any request), a substring of the last user message (or of the text
        of a ``tool_result`` in it), or ``callable(RecordedRequest) -> bool``.
        ``times=None`` means forever. Replies
        are tried in the order added. ``delay`` seconds are slept before each delta.
        ``chunks`` gives the text deltas (default: one per word, with its trailing space).
        ``usage`` is ``(input_tokens, output_tokens)``. ``model`` overrides the echoed model.
        ``stop_reason`` defaults to ``"tool_use"`` with ``tool_calls``, else ``"end_turn"``.

        ``thinking``: the text of a ``thinking`` block sent first, only to requests that
        enable thinking (``{"type": "enabled", ...}`` or ``{"type": "adaptive"}``; with
        ``display: "omitted"`` the block has empty thinking and only the signature),
        streamed one word a ``thinking_delta``. ``signature`` (default: derived from the
        thinking text) is remembered: sent back unchanged in a later assistant turn it is
        accepted, any other is a 400.

        ``cite``: a quote, or a list of quotes and ``(span, quote)`` pairs. The sentence
        of the reply holding ``span`` (the quote itself for a bare quote) becomes a text
        block of its own citing where ``quote`` is in the request's documents that have
        citations enabled: ``char_location`` in a text document, ``page_location`` in a
        PDF (page 1 when not found in its bytes). Raises ValueError for a span that is
        not in the reply's text.

        ``tool_calls``: client tool calls, each ``{"name": ..., "input": {...}}`` (optional
        ``"id"``; by default ``toolu_`` plus a hash of the conversation and the call's
        place, the same on every run) or a ``(name, input)`` pair: a ``tool_use`` block
        each, after the text, with the input's JSON streamed 12 characters an
        ``input_json_delta``. With thinking on and no ``thinking=``, the reply thinks first.

        ``server_tool``: a server tool use (or a list of them) before the text:
        ``{"name": "web_search", "input": {"query": ...}, "results": [{"url", "title",
        "page_age"?}, ...]}``, ``{"name": "web_fetch", "input": {"url": ...}, "result":
        {"text", "title"?, "retrieved_at"?}}``, ``{"name": "code_execution", "input":
        {"code": ...}, "result": {"stdout", "stderr"?, "return_code"?}}`` (or
        ``"bash_code_execution"`` with ``{"command": ...}``); ``"error": code`` instead gives
        the tool's error result. Successful searches and fetches are counted in
        ``usage.server_tool_use``.

        The request must allow the scripted tool use, or it gets a 400 saying why: each
        called tool in its ``tools`` (a server tool enabled by a ``web_search_*``,
        ``web_fetch_*`` or ``code_execution_*`` tool), no call when ``tool_choice`` is
        ``none``, only the forced tool, at least one call when ``tool_choice`` forces use.
        ValueError for a malformed ``tool_calls`` or ``server_tool``.
        """
        cites = make_cites(cite, text if chunks is None else "".join(chunks))
        calls, servers = make_tool_calls(tool_calls), make_server_calls(server_tool)
        stop = stop_reason if stop_reason is not None else "tool_use" if calls else "end_turn"
        script = Reply(text, when, times, delay, list(chunks) if chunks is not None else None, usage,
                       stop, model, thinking, signature, cites, calls, servers)
        with self._state.lock:
            self._state.replies.append(script)

    def fault(self, kind: str, *, when: Matcher = None, times: Optional[int] = 1, after: int = 2,
              status: Optional[int] = None, retry_after: Union[int, float, str, None] = None,
              error_type: Optional[str] = None, message: Optional[str] = None,
              stall_seconds: float = 30.0) -> None:
        """Make the next ``times`` matching requests fail (``times=None``: all of them).

        Faults are checked before replies and do not use up a reply. Kinds:
        ``"http"`` (needs ``status``; error JSON, ``request-id``, optional ``retry-after``),
        aliases ``"rate_limit"`` (429), ``"overloaded_http"`` (529), ``"server_error"`` (500);
        stream-only (ignored for non-streamed requests), each after ``after`` deltas
        (thinking, text or tool input): ``"overloaded"`` (``event: error``), ``"cut"``
        (socket closed mid chunked body), ``"close"`` (unchunked body ends early),
        ``"stall"`` (no more bytes for ``stall_seconds``), ``"malformed"`` (an event whose
        data is not JSON);
        batch-only (ignored outside Message Batches): ``"expired"``, ``"canceled"`` (the
        item's result type). An ``"http"`` fault makes a batch item ``errored`` with its
        ``error_type`` and ``message``. A request the real API would refuse gets its 400
        before any fault is picked.
        """
        f = make_fault(kind, when=when, times=times, after=after, status=status, retry_after=retry_after,
                       error_type=error_type, message=message, stall_seconds=stall_seconds)
        with self._state.lock:
            self._state.faults.append(f)

    def rate_limit(self, requests_per_second: Optional[float] = 20, tokens_per_minute: Optional[float] = None) -> None:
        """Meter ``/v1/messages`` requests as the real API does (``None``: unlimited again).

        A token bucket per limit: ``requests_per_second`` (a second's worth may come at once) and,
        when given, ``tokens_per_minute`` of input tokens. Every reply carries the real
        ``anthropic-ratelimit-{requests,input-tokens}-{limit,remaining,reset}`` headers; a request
        over a limit gets a 429 ``rate_limit_error`` with ``retry-after`` (whole seconds) and is
        not answered further (no fault or reply is used up). ``rate_log`` lists what was metered.
        """
        with self._state.lock:
            self._state.rate = RateGate(requests_per_second, tokens_per_minute) if requests_per_second else None

    @property
    def rate_log(self) -> list[tuple[float, int]]:
        """``(time.monotonic(), status)`` of each metered request (200 or 429), in arrival order."""
        gate = self._state.rate
        return list(gate.log) if gate is not None else []

    def batch_polls(self, n: int) -> None:
        """Message Batches created from now on stay ``in_progress`` for ``n`` retrieves (default 1).

        Each of those retrieves processes another ``1/(n+1)`` of the items (in input order,
        with ``request_counts`` to match); the next one ends the batch. ``0``: the first ends it.
        """
        self._batches.set_polls(n)

    def clear_cache(self) -> None:
        """Empty the prompt cache: the next request writes what it marks again."""
        with self._state.lock:
            self._state.cache.clear()

    def clear(self) -> None:
        """Forget scripts, faults, recorded requests, batches (their ids then 404), issued
        thinking signatures and the prompt cache; reset ``max_concurrent`` and ``batch_polls``."""
        with self._state.lock:
            self._batches.clear()
            self._state.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received so far, in arrival order."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def batches(self) -> list[tuple[str, int]]:
        """``(batch_id, number_of_requests)`` for each Message Batch created, in creation order."""
        return self._batches.summary()

    @property
    def max_concurrent(self) -> int:
        """Highest number of ``/v1/messages`` requests served at once."""
        return self._state.max_active
