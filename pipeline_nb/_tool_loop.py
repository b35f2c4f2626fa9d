"""The tool loop of an llm step: call, run the tools the reply asks for, send their results back,
call again, until a reply ends for any other reason than ``tool_use``.

Runs on the step's worker thread. Each call keeps the step's retry policy (a retry repeats the
call, never a tool that already ran). Tools run on threads of their own, at most
``max_parallel_tools`` at once, so an interrupt returns within a poll (a tool cannot be killed:
one still running is left to finish on its own, its call marked interrupted). Every call is
kept on ``StepResult.tool_calls`` whatever happens after it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import jiter

from . import _llm_call as llm_call
from ._llm import SERVER_RESULT, TOOL_INPUT, TOOL_USE, CancelToken, LLMRequest
from ._llm_call import EmitEvent, Received, ResolvedStep, fail
from ._results import StepResult, ToolCall, Usage
from .content import Reply, ServerToolResult, ServerToolUse, ToolResult, ToolUse
from .streaming._events import TOOL_CALL, TOOL_RESULT, Event, ToolCallChunk
from ._toolbox import ToolBox
from .tools import ToolInputError, tool_output

POLL = 0.05
"""Seconds between looks at the cancel token while tools run."""


def converse(resolved: ResolvedStep, request: LLMRequest, box: ToolBox, result: StepResult, token: CancelToken,
             run_cancel: CancelToken, emit: EmitEvent, received: dict[str, Received]) -> Reply | None:
    """Run the loop; leave the final answer, every tool call and the summed usage on ``result``.
    Returns the last reply, or None when the step failed or stopped (what came before is kept)."""
    request = replace(request, params={**request.params, **box.api_params()})
    stream = _ToolStream(result.id, emit)
    messages, total = list(request.messages), Usage()
    for round_ in range(1, box.max_rounds + 2):
        stream.round = round_
        sent = replace(request, messages=tuple(messages))
        reply = llm_call.call(resolved, sent, result, token, run_cancel, emit, received, stream.on_piece, round_)
        if reply is None:
            _explain_miss(result, round_, messages)
            return None
        total = total + reply.usage
        result.usage = total
        result.tool_calls += stream.finish(reply, result.attempts)
        uses = [block for block in reply.content if isinstance(block, ToolUse)]
        turn = {"role": "assistant", "content": [block.to_api() for block in reply.content]}
        if reply.stop_reason == "pause_turn":  # a long server tool turn: send it back for the API to go on
            messages.append(turn)
            continue
        if reply.stop_reason != "tool_use" or not uses:
            return reply
        if round_ > box.max_rounds:
            names = ", ".join(sorted({use.name for use in uses}))
            fail(result, "tool_rounds_exceeded", f"the model still asked for tools ({names}) after "
                 f"{box.max_rounds} rounds of tool calls; raise max_tool_rounds, or make the prompt say when to stop")
            return None
        answers, calls, raised = run_tools(uses, box, result.id, round_, token, emit)
        result.tool_calls += calls
        if token.cancelled:
            llm_call.stopped(resolved.spec, result, run_cancel)
            return None
        if raised is not None and box.errors == "raise":
            fail(result, "tool_error", f"tool {raised.name!r} raised {raised.error} (round {round_}); "
                 "set tool_errors: return to send errors back to the model instead")
            return None
        messages += [turn, {"role": "user", "content": [answer.to_api() for answer in answers]}]
    return None  # not reached: the last round either returns or fails


def _explain_miss(result: StepResult, round_: int, messages: Sequence[Mapping[str, Any]]) -> None:
    """A replay miss after tools ran says which: their results are what changed the request."""
    error = result.error
    if error is None or error.type != "cassette_miss" or round_ == 1:
        return
    ran = [call for call in result.tool_calls if call.round == round_ - 1 and not call.server]
    names = ", ".join(dict.fromkeys(call.name for call in ran)) or "none"
    result.error = replace(error, message=f"{error.message}; this is call {round_} of the tool loop, after "
                           f"tools {names} ran: a tool whose result differs from the recording's changes "
                           "the request")


def run_tools(uses: Sequence[ToolUse], box: ToolBox, step_id: str, round_: int, token: CancelToken,
              emit: EmitEvent) -> tuple[list[ToolResult], list[ToolCall], ToolCall | None]:
    """Run the calls of one reply, at most ``box.max_parallel`` at once. Returns the results to
    send back (in the calls' order), every call as a ToolCall, and the first call whose tool raised."""
    done: queue.SimpleQueue[tuple[int, ToolResult, ToolCall]] = queue.SimpleQueue()
    started: dict[int, float] = {}
    answers: dict[int, ToolResult] = {}
    calls: dict[int, ToolCall] = {}
    waiting = list(range(len(uses)))
    while (waiting or len(answers) < len(started)) and not token.cancelled:
        while waiting and len(started) - len(answers) < box.max_parallel:
            index = waiting.pop(0)
            started[index] = time.monotonic()
            threading.Thread(target=lambda i=index: done.put((i, *_run_one(uses[i], box, step_id, round_))),
                             name=f"pipeline_nb:{step_id}:tool:{uses[index].name}", daemon=True).start()
        try:
            index, answer, call = done.get(timeout=POLL)
        except queue.Empty:
            continue
        answers[index], calls[index] = answer, call
        emit(Event(TOOL_RESULT, call))
    for index in started.keys() - answers.keys():  # stopped while these ran: they finish unheard
        use = uses[index]
        calls[index] = ToolCall(step_id, round_, use.id, use.name, dict(use.input), is_error=True,
                                error="interrupted while it ran", duration=time.monotonic() - started[index])
    ordered = [calls[i] for i in sorted(calls)]
    raised = next((call for call in ordered if call.is_error and call.note == _RAISED), None)
    return [answers[i] for i in sorted(answers)], ordered, raised


_RAISED = "the tool raised"


def _run_one(use: ToolUse, box: ToolBox, step_id: str, round_: int) -> tuple[ToolResult, ToolCall]:
    """Call one tool; whatever it does (returns, raises, is not a tool at all) becomes a result."""
    started = time.monotonic()
    tool = box.tools.get(use.name)
    call = ToolCall(step_id, round_, use.id, use.name, dict(use.input))
    try:
        if tool is None or tool.function is None:
            known = ", ".join(name for name, t in box.tools.items() if t.function is not None)
            raise ToolInputError(f"there is no tool named {use.name!r}; the tools are: {known}")
        value = tool.call(use.input)
    except ToolInputError as exc:  # the model's mistake: it is told, whatever tool_errors says
        call.is_error, call.error, call.note = True, str(exc), "invalid input"
        content: Any = str(exc)
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        call.is_error, call.error, call.note = True, message, _RAISED
        content = message
    else:
        call.output = value
        content, note = tool_output(value)
        call.note = note or ""
    call.duration = time.monotonic() - started
    return ToolResult(use.id, content, call.is_error), call


class _ToolStream:
    """Turns a provider's tool pieces into ``tool_call`` events (and server tools' results into
    ``tool_result`` events) as they stream; calls of a reply that did not stream are announced whole."""

    def __init__(self, step_id: str, emit: EmitEvent) -> None:
        self.step_id, self.emit, self.round = step_id, emit, 1
        self._blocks: dict[int, tuple[ToolUse | ServerToolUse, list[str]]] = {}
        self._streamed: set[str] = set()
        """Ids of the calls (and server results) that streamed."""

    def on_piece(self, piece: Any, kind: str, index: int, attempt: int, seq: int) -> None:
        if kind == TOOL_USE:
            self._blocks[index] = (piece, [])
            self._streamed.add(piece.id)
            self._chunk(piece, {}, "", index, attempt, seq)
        elif kind == TOOL_INPUT and index in self._blocks:
            use, parts = self._blocks[index]
            parts.append(piece)
            self._chunk(use, partial_input("".join(parts)), piece, index, attempt, seq)
        elif kind == SERVER_RESULT:
            self._streamed.add(piece.tool_use_id)
            use, parts = next(((u, p) for u, p in self._blocks.values() if u.id == piece.tool_use_id), (None, []))
            input = partial_input("".join(parts))
            self.emit(Event(TOOL_RESULT, _server_call(self.step_id, self.round, use, input, piece)))

    def _chunk(self, use: ToolUse | ServerToolUse, input: Mapping[str, Any], partial: str, index: int,
               attempt: int, seq: int) -> None:
        self.emit(Event(TOOL_CALL, ToolCallChunk(self.step_id, attempt, seq, self.round, use.id, use.name, input,
                                                 partial, index, isinstance(use, ServerToolUse))))

    def finish(self, reply: Reply, attempt: int) -> list[ToolCall]:
        """After a reply: announce its calls that did not stream, and return its server tools' calls."""
        uses = {b.id: b for b in reply.content if isinstance(b, ServerToolUse)}
        calls = []
        for index, block in enumerate(reply.content):
            if isinstance(block, (ToolUse, ServerToolUse)) and block.id not in self._streamed:
                self._chunk(block, dict(block.input), "", index, attempt, 0)
            elif isinstance(block, ServerToolResult):
                use = uses.get(block.tool_use_id)
                call = _server_call(self.step_id, self.round, use, dict(use.input) if use else {}, block)
                if block.tool_use_id not in self._streamed:
                    self.emit(Event(TOOL_RESULT, call))
                calls.append(call)
        self._blocks.clear()
        return calls


def _server_call(step_id: str, round_: int, use: ServerToolUse | ToolUse | None, input: Mapping[str, Any],
                 result: ServerToolResult) -> ToolCall:
    """A server tool's call: what the API ran, and what it found (its error code, if it failed)."""
    content = result.content
    error = content.get("error_code") if isinstance(content, Mapping) else None
    name = use.name if use is not None else result.kind.removesuffix("_tool_result")
    return ToolCall(step_id, round_, result.tool_use_id, name, dict(input), content, error is not None, error,
                    None, server=True)


def partial_input(text: str) -> Mapping[str, Any]:
    """A tool input's JSON as far as it arrived, parsed (an unfinished string is kept as far as it goes)."""
    if not text.strip():
        return {}
    try:
        value = jiter.from_json(text.encode(), partial_mode="trailing-strings")
    except ValueError:
        return {}
    return value if isinstance(value, Mapping) else {}
