"""The provider interface: one LLM call in, text (streamed or not) out, and the provider registry."""

from __future__ import annotations

import importlib
import threading
from contextvars import ContextVar
from dataclasses import dataclass, field
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Protocol, Union, runtime_checkable

from ._redact import redact
from .content import Reply


@dataclass(frozen=True)
class LLMRequest:
    """One call, fully rendered. :meth:`api_params` is what is sent, and the cassette key is
    made from it, so nothing sent can be missing from the key."""

    provider: str
    model: str
    messages: tuple[dict[str, Any], ...]
    max_tokens: int
    system: str | tuple[dict[str, Any], ...] | None = None
    """Text, or text blocks (to mark one for caching)."""
    stop_sequences: tuple[str, ...] = ()
    output_schema: dict[str, Any] | None = None
    stream: bool = False
    base_url: str | None = field(default=None, compare=False)
    options: dict[str, Any] = field(default_factory=dict, compare=False)
    """Provider-specific settings that are not sent (e.g. mock_response)."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """Every other Messages API parameter: thinking, output_config (effort), cache_control, metadata, ..."""
    extra_body: Mapping[str, Any] | None = None
    """Fields the SDK does not know yet, sent in the request body as they are."""

    def api_params(self) -> dict[str, Any]:
        """The Messages API's parameters for this call, exactly as the SDK sends them."""
        params: dict[str, Any] = {"model": self.model, "max_tokens": self.max_tokens, "messages": list(self.messages)}
        if self.system:
            params["system"] = self.system if isinstance(self.system, str) else list(self.system)
        if self.stop_sequences:
            params["stop_sequences"] = list(self.stop_sequences)
        params.update(self.params)
        if self.output_schema is not None:
            config = dict(params.get("output_config") or {})
            config["format"] = {"type": "json_schema", "schema": self.output_schema}
            params["output_config"] = config
        return params

    @property
    def prompt(self) -> str:
        """The text of the last user message."""
        content = self.messages[-1]["content"]
        return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


class ProviderError(Exception):
    """A failed call, classified: ``retryable`` says whether another attempt may succeed."""

    def __init__(
        self,
        type: str,
        message: str,
        *,
        retryable: bool,
        request_id: str | None = None,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        message = redact(message)  # error bodies may echo the request's credentials
        super().__init__(f"{type}: {message}")
        self.type = type
        self.message = message
        self.retryable = retryable
        self.request_id = request_id
        self.retry_after = retry_after
        self.status = status


class Cancelled(Exception):
    """The call stopped because the run was cancelled (interrupt or timeout)."""


class CancelToken:
    """A cancel flag that also runs closers (e.g. closing an HTTP stream) when set."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._closers: list[Callable[[], Any]] = []

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        with self._lock:
            self._event.set()
            closers, self._closers = self._closers, []
        for close in closers:
            try:
                close()
            except Exception:  # closing a half-dead stream may fail; cancelling must not
                pass

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if cancelled meanwhile."""
        return self._event.wait(seconds)

    def on_cancel(self, close: Callable[[], Any]) -> Callable[[], None]:
        """Run ``close`` on cancel (at once if already cancelled); returns an unregister function."""
        with self._lock:
            if not self._event.is_set():
                self._closers.append(close)
                return lambda: self._discard(close)
        close()
        return lambda: None

    def _discard(self, close: Callable[[], Any]) -> None:
        with self._lock:
            if close in self._closers:
                self._closers.remove(close)


Emit = Callable[..., None]
"""``emit(piece, kind="text", index=0)``: a streamed piece of block ``index`` of the reply. Kinds:
``text`` and ``thinking`` (str), ``citation`` (a content.Citation of the text block ``index``),
``tool_use`` (a content.ToolUse or ServerToolUse whose block starts, input still empty),
``tool_input`` (str: the next piece of that block's input JSON) and ``server_result`` (a
content.ServerToolResult, which arrives whole). A provider that only streams text calls ``emit(text)``."""

CALLING_STEP: ContextVar[str | None] = ContextVar("pipeline_nb_calling_step", default=None)
"""The id of the step (item, ``ctx.invoke`` call) whose call a provider is making on this thread,
for wrappers that record calls (the run journal)."""

TEXT, THINKING, CITATION = "text", "thinking", "citation"
TOOL_USE, TOOL_INPUT, SERVER_RESULT = "tool_use", "tool_input", "server_result"


def no_emit(piece: object, kind: str = TEXT, index: int = 0) -> None:
    """The ``emit`` for a call that does not stream (a batch's requests)."""


class Provider(Protocol):
    """An LLM backend. ``complete`` runs on a worker thread; it calls ``emit`` for each
    streamed piece when ``request.stream`` is true (see :data:`Emit`), returns the Reply,
    and must return promptly (raising Cancelled) once ``cancel`` is set."""

    name: str

    def check(self, request: LLMRequest) -> None:
        """Raise ProviderError for a call that cannot work (e.g. no key), before any call."""

    def complete(self, request: LLMRequest, emit: Emit, cancel: CancelToken) -> Reply: ...


@dataclass(frozen=True)
class BatchStatus:
    """How far a batch of requests is, summed over the Message Batches it was split into."""

    processing: int
    succeeded: int = 0
    errored: int = 0
    canceled: int = 0
    expired: int = 0
    batch_ids: tuple[str, ...] = ()

    def describe(self) -> str:
        counts = [f"{n} {label}" for n, label in ((self.processing, "processing"), (self.succeeded, "succeeded"),
                                                  (self.errored, "errored"), (self.canceled, "canceled"),
                                                  (self.expired, "expired")) if n or label == "processing"]
        return "batch: " + " · ".join(counts)


BatchOutcome = Union[Reply, ProviderError]
"""One request's result in a batch: its reply, or why it has none."""


@runtime_checkable
class BatchProvider(Protocol):
    """A provider that can also send many requests as one asynchronous batch."""

    def batch(self, requests: Sequence[LLMRequest], on_status: Callable[[BatchStatus], None],
              cancel: CancelToken, poll_interval: float) -> list[BatchOutcome]:
        """One outcome per request, in request order. Calls ``on_status`` as the batch
        progresses; raises Cancelled (after cancelling the batch) once ``cancel`` is set,
        and ProviderError when the batch as a whole fails."""
        ...


ENTRY_POINT_GROUP = "pipeline_nb.providers"
"""The entry point group through which an installed package adds providers: each entry point's
name is a ``provider:`` name, its value the ``"module:attr"`` of a factory (docs/providers.md)."""

_PROVIDERS: dict[str, str | Callable[[], Provider]] = {
    "claude": "pipeline_nb.providers._claude:ClaudeProvider",
    "anthropic": "pipeline_nb.providers._claude:ClaudeProvider",
    "mock": "pipeline_nb.providers._mock:MockProvider",
    "gemini": "pipeline_nb.providers._gemini:GeminiProvider",
}
"""The providers this package ships (also declared as entry points) and those registered at run
time; a name not here is looked up among the entry points when it is first used."""


def register_provider(name: str, factory: str | Callable[[], Provider]) -> None:
    """Make ``provider: name`` use ``factory`` (a callable or a ``"module:attr"`` string)."""
    _PROVIDERS[name] = factory


def provider_names() -> list[str]:
    """Every provider name a step may use: built in, registered, or from an installed entry point."""
    return sorted(set(_PROVIDERS) | {entry.name for entry in _entry_points()})


def create_provider(name: str) -> Provider:
    """A new provider instance for ``name``; KeyError if unknown. A name not registered is looked
    up among the ``pipeline_nb.providers`` entry points (only then, so ``import pipeline_nb``
    reads no package metadata); one that fails to load gives a provider whose ``check`` says why."""
    factory = _PROVIDERS.get(name)
    if factory is None:
        entry = next((e for e in _entry_points() if e.name == name), None)
        if entry is None:
            raise KeyError(name)
        try:
            factory = entry.load()
        except Exception as exc:  # a broken plugin fails its steps with the reason, not the run with a traceback
            return _BrokenProvider(name, f"{entry.value} ({type(exc).__name__}: {exc})")
        _PROVIDERS[name] = factory
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory()


def _entry_points() -> tuple[Any, ...]:
    from importlib.metadata import entry_points

    try:
        return tuple(entry_points(group=ENTRY_POINT_GROUP))
    except Exception:  # broken metadata of some installed package must not break the built-in providers
        return ()


class _BrokenProvider:
    """Stands for an entry-point provider that could not be loaded: every check fails, naming why."""

    def __init__(self, name: str, reason: str) -> None:
        self.name, self._reason = name, reason

    def check(self, request: LLMRequest) -> None:
        raise ProviderError("provider_unavailable", f"provider {self.name!r} could not be loaded from its "
                            f"entry point {self._reason}; reinstall the package that provides it", retryable=False)

    def complete(self, request: LLMRequest, emit: Emit, cancel: CancelToken) -> Reply:
        self.check(request)
        raise AssertionError("unreachable: check raises")


@runtime_checkable
class TokenCounter(Protocol):
    """A provider that can count a request's input tokens without calling the model (for estimates).
    ``counts_exactly`` is False when the count is the provider's own guess (the mock's), not the API's."""

    counts_exactly: bool

    def count_tokens(self, request: LLMRequest) -> int:
        """The input tokens ``request`` would be billed for; raises ProviderError like ``complete``."""
        ...
