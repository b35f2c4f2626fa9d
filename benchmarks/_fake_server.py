"""``python -m benchmarks._fake_server SPEC_JSON``: a FakeAnthropic in its own process.

SPEC_JSON is a list of replies, ``{"when": prompt substring, "deltas": N | "bytes": B,
"delta_size": S, "delay": seconds}``. Prints the base URL, then serves until stdin closes.

Writes are buffered, and flushed whenever the fake is about to wait (a paced delta, a
stall) or the response ends: an unpaced reply then leaves in a few large writes, so the
fake costs the machine little and the client's parsing is what gets measured. Paced
replies still go out one delta at a time.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from pipeline_nb.testing import FakeAnthropic
from pipeline_nb.testing import _fake_anthropic as fake_anthropic

from ._text import deltas, sized

_current = threading.local()


class _FlushingEvent(threading.Event):
    """The fake's stop event: waiting on it first flushes this thread's buffered response."""

    def wait(self, timeout: float | None = None) -> bool:
        wfile = getattr(_current, "wfile", None)
        if wfile is not None:
            try:
                wfile.flush()
            except OSError:
                pass
        return super().wait(timeout)


class _BufferedHandler(fake_anthropic._Handler):
    wbufsize = 1 << 16

    def setup(self) -> None:
        super().setup()
        _current.wfile = self.wfile


def serve(spec: list[dict[str, Any]]) -> None:
    fake = FakeAnthropic()
    fake._stopping = _FlushingEvent()
    original = fake_anthropic._Handler
    fake_anthropic._Handler = _BufferedHandler  # start() builds its server with this class
    try:
        fake.start()
    finally:
        fake_anthropic._Handler = original
    try:
        for reply in spec:
            if "bytes" in reply:
                chunks = sized(reply["bytes"], reply.get("delta_size", 25))
            else:
                chunks = deltas(reply["deltas"])
            fake.reply("".join(chunks), chunks=chunks, when=reply["when"], delay=reply.get("delay", 0.0))
        print(fake.base_url, flush=True)
        sys.stdin.read()
    finally:
        fake.stop()


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
