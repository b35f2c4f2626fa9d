"""Message Batches for :mod:`pipeline_nb.testing._fake_anthropic`.

Private: use the batch methods of ``FakeAnthropic``, which hands a :class:`BatchBook` its
shared :class:`~._fake_state.FakeState`. Time plays no part; a batch moves only when it
is retrieved::

    POST /v1/messages/batches            "in_progress", every item "processing"
    GET  .../{id}   (retrieve 1..polls)  "in_progress", items processed in input order,
                                         polls+1 equal steps from none to all
    GET  .../{id}   (retrieve polls+1)   "ended": the rest processed, ended_at, results_url
    POST .../{id}/cancel                 "canceling" (an ended batch is returned unchanged)
    GET  .../{id}   (after a cancel)     "ended": every unprocessed item "canceled"
    GET  .../{id}/results                JSONL, shuffled; 404 until "ended"

Processing an item checks it, then picks its fault and reply, exactly as a non-streamed
``/v1/messages`` request would at that moment: an item the real API would refuse with a
400 is ``errored`` with that ``invalid_request_error``; a succeeded item's message has the
same blocks (thinking, citations) and usage (prompt cache) as a direct reply.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Optional, Union

from ._fake_content import last_user_text
from ._fake_scripts import BATCHES_PATH, Fault, RecordedRequest, error_obj, pick
from ._fake_state import FakeState

#: What the handler sends: an error (as a Fault of kind "http"), or a 200 body and its content type.
Answer = Union[Fault, tuple[Union[dict[str, Any], bytes], str]]

MAX_REQUESTS = 100_000
_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_PARAMS_REQUIRED = ("model", "max_tokens", "messages")
_ROUTE = re.compile(re.escape(BATCHES_PATH) + r"(?:/([^/]+)(/results|/cancel)?)?")
_ACTIONS = (("GET", None), ("GET", "/results"), ("POST", "/cancel"))
_OUTCOMES = ("succeeded", "errored", "canceled", "expired")


def _refuse(status: int, message: str) -> Fault:
    return Fault("http", status=status, message=message)


def _stamp(when: Optional[datetime]) -> Optional[str]:
    return None if when is None else when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _check(body: dict[str, Any]) -> Optional[str]:
    """Why the real API would refuse to create this batch, or None."""
    requests = body.get("requests")
    if not isinstance(requests, list):
        return "requests: Field required" if requests is None else "requests: Input should be a valid list"
    if not requests or len(requests) > MAX_REQUESTS:
        return (f"requests: List should have at least 1 item and at most {MAX_REQUESTS} items, "
                f"not {len(requests)}")
    seen: set[str] = set()
    for i, item in enumerate(requests):
        cid = item.get("custom_id") if isinstance(item, dict) else None
        params = item.get("params") if isinstance(item, dict) else None
        if not isinstance(cid, str) or not _CUSTOM_ID.fullmatch(cid):
            return f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$', got {cid!r}"
        if cid in seen:
            return f"requests.{i}.custom_id: {cid!r} is used by another request; custom_id must be unique in a batch"
        seen.add(cid)
        if not isinstance(params, dict):
            return f"requests.{i}.params: Field required"
        for name in _PARAMS_REQUIRED:
            if name not in params:
                return f"requests.{i}.params.{name}: Field required"
    return None


@dataclass
class Batch:
    """One Message Batch and how far it has got."""

    id: str
    items: list[RecordedRequest]
    polls: int
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    outcomes: list[dict[str, Any]] = field(default_factory=list)  # results of items[:len(outcomes)]
    retrieves: int = 0
    cancel_initiated_at: Optional[datetime] = None
    ended_at: Optional[datetime] = None

    @property
    def status(self) -> str:
        if self.ended_at is not None:
            return "ended"
        return "in_progress" if self.cancel_initiated_at is None else "canceling"

    def advance(self, state: FakeState) -> None:
        """One retrieve: process the items now due, and end the batch when none are left."""
        if self.ended_at is not None:
            return
        self.retrieves += 1
        n, done = len(self.items), len(self.outcomes)
        if self.cancel_initiated_at is not None:
            self.outcomes += [{"type": "canceled"} for _ in range(n - done)]
        else:
            due = n if self.retrieves > self.polls else n * self.retrieves // (self.polls + 1)
            for item in self.items[done:due]:
                self.outcomes.append(_outcome(state, item))
        if len(self.outcomes) == n:
            self.ended_at = datetime.now(timezone.utc)

    def to_json(self, base_url: str) -> dict[str, Any]:
        counts = dict.fromkeys(_OUTCOMES, 0)
        for o in self.outcomes:
            counts[o["type"]] += 1
        ended = self.ended_at is not None
        return {
            "id": self.id, "type": "message_batch", "processing_status": self.status,
            "request_counts": {"processing": len(self.items) - len(self.outcomes), **counts},
            "created_at": _stamp(self.created_at), "expires_at": _stamp(self.created_at + timedelta(hours=24)),
            "ended_at": _stamp(self.ended_at), "cancel_initiated_at": _stamp(self.cancel_initiated_at),
            "archived_at": None, "results_url": f"{base_url}{BATCHES_PATH}/{self.id}/results" if ended else None,
        }

    def results_jsonl(self) -> bytes:
        """One line per item, never in input order (for two or more items)."""
        order = list(range(len(self.items)))
        random.Random(self.id).shuffle(order)
        if order == sorted(order):
            order.reverse()
        return b"".join(json.dumps({"custom_id": self.items[i].custom_id, "result": self.outcomes[i]},
                                   separators=(",", ":")).encode() + b"\n" for i in order)


def _outcome(state: FakeState, item: RecordedRequest) -> dict[str, Any]:
    problem = state.problem(item)
    if problem is not None:
        return {"type": "errored", "error": error_obj(400, None, problem)}
    fault, plan = state.choose(item)
    if plan is not None:  # stream-only faults never reach a batch item
        return {"type": "succeeded", "message": plan.message()}
    assert fault is not None
    if fault.kind == "http":
        assert fault.status is not None
        return {"type": "errored", "error": error_obj(fault.status, fault.error_type, fault.message)}
    return {"type": fault.kind}  # "expired" / "canceled"


class BatchBook:
    """The batches of one FakeAnthropic. Call :meth:`serve` for any path under ``BATCHES_PATH``."""

    def __init__(self, state: FakeState) -> None:
        self._state = state
        self._batches: dict[str, Batch] = {}
        self._ids = itertools.count(1)
        self._polls = 1

    def clear(self) -> None:
        with self._state.lock:
            self._batches.clear()
            self._polls = 1

    def set_polls(self, n: int) -> None:
        """Batches created from now on stay ``in_progress`` for ``n`` retrieves."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            msg = f"batch_polls(n) needs an int >= 0, got {n!r}"
            raise ValueError(msg)
        with self._state.lock:
            self._polls = n

    def summary(self) -> list[tuple[str, int]]:
        """``(batch_id, number_of_requests)`` for each batch, in creation order."""
        with self._state.lock:
            return [(b.id, len(b.items)) for b in self._batches.values()]

    def serve(self, req: RecordedRequest, base_url: str) -> Answer:
        """Answer ``req`` (already recorded). May raise what a ``when=`` callable raises."""
        m = _ROUTE.fullmatch(req.path.split("?", 1)[0])
        bid, action = (m.group(1), m.group(2)) if m else (None, None)
        with self._state.lock:
            if m and req.method == "POST" and bid is None:
                return self._create(req, base_url)
            batch = self._batches.get(bid or "")
            if batch is None:
                return _refuse(404, f"message_batch {bid!r} not found" if bid else f"Not found: {req.path}")
            if (req.method, action) not in _ACTIONS:
                return _refuse(404, f"Not found: {req.method} {req.path}")
            if action == "/results":
                if batch.ended_at is None:
                    return _refuse(404, f"message_batch {bid!r} has no results yet: it is {batch.status}")
                return batch.results_jsonl(), "application/binary"
            if action == "/cancel":
                if batch.ended_at is None and batch.cancel_initiated_at is None:
                    batch.cancel_initiated_at = datetime.now(timezone.utc)
            else:
                batch.advance(self._state)
            return batch.to_json(base_url), "application/json"

    def _create(self, req: RecordedRequest, base_url: str) -> Answer:
        problem = _check(req.body)
        if problem is not None:
            return _refuse(400, problem)
        fault = pick(self._state.faults, req, consume=True)
        if fault is not None:
            return fault
        bid = f"msgbatch_{next(self._ids)}"
        items = [RecordedRequest("POST", "/v1/messages", it["params"], dict(req.headers),
                                 last_user_text(it["params"]), False, bid, it["custom_id"])
                 for it in req.body["requests"]]
        for item in items:
            self._state.record(item)
        batch = self._batches[bid] = Batch(bid, items, self._polls)
        return batch.to_json(base_url), "application/json"
