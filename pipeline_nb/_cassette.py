"""Cassettes: record LLM replies to a JSON Lines file and replay them, streamed, offline.

An entry is keyed by a hash of the request's API parameters (``LLMRequest.api_params``, the
very dict the SDK sends, so attachments count by their content), its extra body and the
options that change a reply, never the key, headers or base_url. It holds the reply's content
blocks and, for a streamed reply, the block events (text, thinking, citations) in order, so a
replay streams exactly what the recording did. Entries carry the format version, ``"v": 2``. While recording, each reply is appended to the file as it arrives
(``cassette_file``: under a lock shared by every step and process); ``Cassette.flush``
then sorts the file by key once, at the end of a run, so two recordings give the same bytes.

A reply whose entry cannot be written (a full disk, a read-only folder) is still returned:
it is kept in memory, tried again by ``flush``, and reported in ``Cassette.warnings``.

Pace is opt-in: recorded with ``paced``, a streamed entry also keeps the wait before each
delta (``pace_ms``), and a paced replay waits the same. Timings differ on every recording,
so by default none are kept.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ._cassette_file import Appender, CassetteError, Entry, compact, entry_line, read_entries
from ._llm import (
    BatchOutcome,
    BatchProvider,
    BatchStatus,
    Cancelled,
    CancelToken,
    Emit,
    CITATION,
    SERVER_RESULT,
    TEXT,
    TOOL_USE,
    LLMRequest,
    Provider,
    ProviderError,
    no_emit,
)
from .content import Citation, Reply, Usage, block_from_api

MODES = ("record", "replay", "auto", "off")
COUNT_KEY = "count:"
"""The prefix of a count_tokens entry's key."""
ENV_PATH, ENV_MODE = "PIPELINE_NB_CASSETTE", "PIPELINE_NB_CASSETTE_MODE"
_NOT_IN_KEY = {"read_timeout", "mock_delay"}
"""Options that change how a reply arrives, not what it says."""

FORMAT = 2
"""The entry format this version writes: content blocks and block events."""
Recording = tuple[LLMRequest, Reply, list[list[Any]] | None, list[int] | None]
"""(request, reply, streamed block events ``[kind, index, piece]``, pace in ms) of one reply to record."""


def request_key(request: LLMRequest) -> str:
    """A stable hash of everything in ``request`` that may change the reply: what is sent, and more
    (computed once per request: a lookup and a recording share it)."""
    key = request.__dict__.get(_KEY)
    if key is None:
        normal = {
            "provider": "claude" if request.provider == "anthropic" else request.provider,
            # diagnostics asks why a cache missed: it changes no answer, and its message id changes per recording
            "params": {k: v for k, v in request.api_params().items() if k != "diagnostics"},
            "extra_body": request.extra_body,
            "options": {k: v for k, v in sorted(request.options.items()) if k not in _NOT_IN_KEY},
        }
        text = json.dumps(normal, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        key = request.__dict__[_KEY] = hashlib.sha256(text.encode()).hexdigest()[:32]  # beside the frozen fields
    return key


_KEY = "_cassette_key"


class Cassette:
    """One cassette file, loaded once and shared by every step of a run.

    ``Cassette(path)`` reads and checks every entry: CassetteError (a ValueError) names
    the file and line of a bad one. ``put``/``put_all`` never raise; ``flush`` (once, at
    the end of a run) compacts the file and never raises OSError; ``warnings`` says what
    could not be written."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._known: dict[bytes, str] = {}
        """Lines known to be in the file (read or appended), by key: compaction need not check them."""
        self.entries, torn = read_entries(self.path, self._known)
        self._unrecorded: dict[str, Entry] = {}
        """Entries whose append failed: replayed from memory, written by ``flush`` if it can."""
        self._failed: dict[str, set[str]] = {}
        """The reason of each failed append → the keys it kept out of the file."""
        self._notes: list[str] = []
        self._changed = False
        self._folder_made = False
        self._appender = Appender(self.path)
        if torn is not None:
            self._notes.append(f"the cassette {self.path} ended in a torn line {torn} (a recording cut short); "
                               "it was ignored; the next recording removes it")

    @property
    def warnings(self) -> list[str]:
        """One message per problem the cassette met: a torn line, a write that failed."""
        with self._lock:
            kept = [f"could not write the cassette {self.path}: {reason}; {_replies(len(keys))} kept in memory "
                    "but not recorded" for reason, keys in self._failed.items()]
            return self._notes + kept

    def get(self, request: LLMRequest) -> dict[str, Any] | None:
        return self.entries.get(request_key(request))

    def put(self, request: LLMRequest, reply: Reply, events: list[list[Any]] | None,
            pace_ms: list[int] | None = None) -> None:
        """Add (or replace) the entry for ``request`` and append it to the file."""
        self.put_all([(request, reply, events, pace_ms)])

    def put_all(self, recordings: list[Recording], key: str | None = None) -> None:
        """Add (or replace) many entries with one append. Never raises: if the file cannot be
        written, the entries stay in memory for this run and ``warnings`` says so. ``key``
        replaces a single recording's request key."""
        entries = [self._entry(*recording) for recording in recordings]
        if key is not None:
            entries[0]["key"] = key
        with self._lock:
            self.entries.update((entry["key"], entry) for entry in entries)
            self._changed = True
        try:  # outside the thread lock: the file lock orders the appends, of every thread and process
            if not self._folder_made:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._folder_made = True
            lines = [entry_line(entry).encode("utf-8") for entry in entries]
            self._appender.append(b"".join(lines))
        except Exception as exc:  # the reply is what matters: a failed write must not lose it
            with self._lock:
                self._unrecorded.update((entry["key"], entry) for entry in entries)
                self._failed.setdefault(_reason(exc), set()).update(entry["key"] for entry in entries)
            return
        with self._lock:
            self._known.update((line[:-1], entry["key"]) for line, entry in zip(lines, entries))

    def flush(self) -> None:
        """Rewrite the file once, if this cassette recorded anything: the entries of every process
        that recorded into it, and those that could not be appended, the last per key, sorted by
        key. Never raises OSError: a failure is added to ``warnings``."""
        with self._lock:
            if not self._changed:
                return
            self._appender.close()
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                compact(self.path, self._unrecorded, self._known)
            except (OSError, CassetteError) as exc:
                if not self._unrecorded:  # else the replies not recorded are reported already
                    self._notes.append(f"could not sort the cassette {self.path}: {_reason(exc)}; every reply is "
                                       "recorded, but the file stays unsorted until the next recording")
                return
            self._changed = False
            self._unrecorded.clear()
            self._failed.clear()

    def put_count(self, key: str, request: LLMRequest, tokens: int) -> None:
        """Record a count_tokens answer (see CassetteProvider.count_tokens)."""
        self.put_all([(request, Reply((), Usage(tokens), None, request.model), None, None)], key=key)

    @staticmethod
    def _entry(request: LLMRequest, reply: Reply, events: list[list[Any]] | None,
               pace_ms: list[int] | None) -> Entry:
        recorded = reply.to_api()
        recorded.pop("id", None)  # a new id every recording: recording twice must give the same bytes
        entry: Entry = {"v": FORMAT, "key": request_key(request), "model": request.model,
                        "prompt": request.prompt[:200], "reply": recorded}
        if events is not None:
            entry["events"] = events
        if pace_ms is not None:
            entry["pace_ms"] = pace_ms
        return entry


def _reason(exc: BaseException) -> str:
    """Why a write failed, in the OS's words (``No space left on device``)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, CassetteError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _replies(count: int) -> str:
    return "1 reply was" if count == 1 else f"{count} replies were"


class CassetteProvider:
    """Wraps a provider: replays hits, and records or refuses misses by ``mode``.

    Replays run as fast as possible. With ``paced``, recordings keep the wait before each
    delta and replays of entries that have one wait the same."""

    def __init__(self, inner: Provider, cassette: Cassette, mode: str, paced: bool = False) -> None:
        self.inner, self.cassette, self.mode, self.paced = inner, cassette, mode, paced
        self.name = inner.name

    def check(self, request: LLMRequest) -> None:
        """Only recording always calls the model: in auto and replay a request the cassette holds
        needs no key, so the check waits for a request that really goes out (:meth:`_going_out`)."""
        if self.mode == "record":
            self.inner.check(request)

    def _going_out(self, request: LLMRequest) -> None:
        """``request`` is not in the cassette and will call the model: can it?"""
        try:
            self.inner.check(request)
        except ProviderError as exc:
            raise ProviderError(exc.type, f"{exc.message}; this request is not in the cassette "
                                f"{self.cassette.path}, so it needs the model", retryable=False) from None

    def _recorded(self, request: LLMRequest) -> dict[str, Any] | None:
        """The entry to replay for ``request``: None when missing, or when recording anew."""
        return None if self.mode == "record" else self.cassette.get(request)

    def complete(self, request: LLMRequest, emit: Emit, cancel: CancelToken) -> Reply:
        entry = self._recorded(request)
        if entry is not None:
            return _replay(entry, request, emit, cancel, self.paced)
        if self.mode == "replay":
            raise self._miss()
        self._going_out(request)
        if not request.stream:
            reply = self.inner.complete(request, emit, cancel)
            self.cassette.put(request, reply, None)
            return reply
        events: list[list[Any]] = []
        times: list[float] = [time.monotonic()]

        def capture(piece: Any, kind: str = TEXT, index: int = 0) -> None:
            events.append([kind, index, piece if kind == TEXT else _piece_to_api(piece)])
            if self.paced:
                times.append(time.monotonic())
            emit(piece, kind, index)

        reply = self.inner.complete(request, capture, cancel)
        pace_ms = [round((b - a) * 1000) for a, b in zip(times, times[1:])] if self.paced else None
        self.cassette.put(request, reply, events, pace_ms)
        return reply

    @property
    def counts_exactly(self) -> bool:
        return bool(getattr(self.inner, "counts_exactly", False))

    def count_tokens(self, request: LLMRequest) -> int:
        """The inner provider's count of ``request``'s input tokens, recorded and replayed like a
        reply (an entry keyed ``count:<request key>`` whose reply's usage holds the count), so an
        estimate replays offline too."""
        key = COUNT_KEY + request_key(request)
        entry = None if self.mode == "record" else self.cassette.entries.get(key)
        if entry is not None:
            return entry["reply"]["usage"]["input_tokens"]
        if self.mode == "replay":
            raise self._miss()
        self._going_out(request)
        tokens = self.inner.count_tokens(request)  # type: ignore[attr-defined]
        self.cassette.put_count(key, request, tokens)
        return tokens

    def _miss(self) -> ProviderError:
        return ProviderError(
            "cassette_miss",
            f"no recording of this request in {self.cassette.path}; record it with --cassette-mode record (or auto)",
            retryable=False,
        )

    def batch(self, requests: Sequence[LLMRequest], on_status: Callable[[BatchStatus], None],
              cancel: CancelToken, poll_interval: float) -> list[BatchOutcome]:
        """Replays the recorded requests; sends the rest as one batch (unless replaying) and records them."""
        outcomes: list[BatchOutcome | None] = [None] * len(requests)
        missing: list[int] = []
        for index, request in enumerate(requests):
            entry = self._recorded(request)
            if entry is not None:
                outcomes[index] = _replay(entry, request, no_emit, cancel, paced=False)
            elif self.mode == "replay":
                outcomes[index] = self._miss()
            else:
                missing.append(index)
        if missing:
            self._going_out(requests[missing[0]])
            if not isinstance(self.inner, BatchProvider):
                raise ProviderError("batch_unsupported", f"provider {self.name!r} cannot send batches",
                                    retryable=False)
            sent = self.inner.batch([requests[i] for i in missing], on_status, cancel, poll_interval)
            for index, outcome in zip(missing, sent):
                outcomes[index] = outcome
            self.cassette.put_all([(requests[i], outcome, None, None) for i, outcome in zip(missing, sent)
                                   if isinstance(outcome, Reply)])
        else:
            ok = sum(isinstance(o, Reply) for o in outcomes)
            on_status(BatchStatus(processing=0, succeeded=ok, errored=len(requests) - ok, batch_ids=("cassette",)))
        return outcomes  # type: ignore[return-value]


def _replay(entry: dict[str, Any], request: LLMRequest, emit: Emit, cancel: CancelToken,
            paced: bool) -> Reply:
    reply = Reply.from_api(entry["reply"])
    if request.stream:
        events = entry.get("events") or [[TEXT, 0, reply.text]]
        waits = entry.get("pace_ms", ()) if paced else ()
        for number, (kind, index, piece) in enumerate(events):
            wait = waits[number] / 1000 if number < len(waits) else 0.0
            if cancel.wait(wait) if wait else cancel.cancelled:
                raise Cancelled()
            emit(_piece_from_api(piece, kind), kind, index)
    return reply


def _piece_to_api(piece: Any) -> Any:
    """A streamed piece as JSON: blocks and citations as the API writes them, strings as they are."""
    return piece.to_api() if hasattr(piece, "to_api") else piece


def _piece_from_api(piece: Any, kind: str) -> Any:
    if kind == CITATION:
        return Citation.from_api(piece)
    if kind in (TOOL_USE, SERVER_RESULT):
        return block_from_api(piece)
    return piece
