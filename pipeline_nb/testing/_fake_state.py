"""The state one :class:`~pipeline_nb.testing._fake_anthropic.FakeAnthropic` shares between
its public methods, its HTTP handler and its batch book.

Private. Everything here is guarded by :attr:`FakeState.lock`, an ``RLock`` so that a
``when=`` callable (run under it) may read the fake's public properties.
"""

from __future__ import annotations

import itertools
import threading
from typing import Optional, Union

from ._fake_cache import PromptCache
from ._fake_rate import RateGate
from ._fake_checks import count_tokens_problem, request_problem
from ._fake_reply import NO_DIAGNOSTICS, Plan, input_tokens, plan_reply
from ._fake_scripts import Fault, RecordedRequest, Reply, pick
from ._fake_tools import script_mismatch

#: Fault kinds after which no reply is sent, so none is planned.
_NO_REPLY = frozenset({"http", "expired", "canceled"})


class FakeState:
    """Scripts, faults, recorded requests, issued thinking signatures, the prompt cache,
    id counters and the count of requests in flight."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.replies: list[Reply] = []
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.signatures: set[tuple[str, str]] = set()
        self.cache = PromptCache()
        self.active = 0
        self.max_active = 0
        self.rate: Optional[RateGate] = None
        """The rate limits ``rate_limit()`` set; None: unlimited."""
        self._ids = {"req_fake_": itertools.count(1), "msg_fake_": itertools.count(1)}

    def clear(self) -> None:
        """Forget scripts, faults, requests, signatures and the cache; ids keep counting."""
        with self.lock:
            self.replies.clear()
            self.faults.clear()
            self.requests.clear()
            self.signatures.clear()
            self.cache.forget_all()
            self.max_active = self.active

    def new_id(self, prefix: str) -> str:
        with self.lock:
            return f"{prefix}{next(self._ids[prefix])}"

    def record(self, req: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(req)

    def enter(self) -> None:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def leave(self) -> None:
        with self.lock:
            self.active -= 1

    def problem(self, req: RecordedRequest) -> Optional[str]:
        """Why the real API would answer ``req`` with a 400, or None."""
        return request_problem(req.body, self._issued)

    def count_tokens(self, req: RecordedRequest) -> Union[str, Fault, int]:
        """The answer to a ``/v1/messages/count_tokens`` request: why the real API would refuse
        it (a 400's message), the fault picked for it, or its input tokens. Reads no cache and
        uses up no reply. May raise what a ``when=`` callable raises."""
        problem = count_tokens_problem(req.body, self._issued)
        if problem is not None:
            return problem
        with self.lock:
            fault = pick(self.faults, req, consume=True)
        return fault if fault is not None else input_tokens(req)

    def _issued(self, thinking: str, signature: str) -> bool:
        with self.lock:
            return (thinking, signature) in self.signatures

    def choose(self, req: RecordedRequest) -> tuple[Optional[Fault], Optional[Plan]]:
        """The fault and the reply for a valid ``req`` (None for a fault that sends none).

        A reply whose scripted tool use ``req`` cannot get (``_fake_tools.script_mismatch``)
        is answered with a 400 fault naming the mistake, and neither it nor a fault is used
        up. Otherwise picking a reply uses it up unless a fault was picked; planning one
        gives it an id, reads and writes the prompt cache and registers its thinking
        signatures. May raise what a ``when=`` callable raises.
        """
        with self.lock:
            reply = pick(self.replies, req, consume=False)
            mismatch = (script_mismatch(reply.tool_calls, reply.server_tools, req.body, reply.when)
                        if reply is not None else None)
            if mismatch:
                return Fault("http", status=400, message=mismatch), None
            fault = pick(self.faults, req, consume=True)
            if reply is not None and fault is None:
                reply.used += 1
            if fault is not None and fault.kind in _NO_REPLY:
                return fault, None
            msg_id = self.new_id("msg_fake_")
            usage = self.cache.account(req.body)
            found = self.cache.diagnose(req.body, msg_id)  # every message can be compared with later
            diagnostics = found if isinstance(req.body.get("diagnostics"), dict) else NO_DIAGNOSTICS
        plan = plan_reply(reply, req, msg_id, usage, diagnostics)
        with self.lock:  # before the reply leaves, so a client can never send back an unknown one
            self.signatures.update(plan.issued())
        return fault, plan
