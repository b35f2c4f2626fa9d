"""Interrupts during a run: the first one stops the run, any more wait for it to stop.

A second Ctrl-C (or kernel interrupt) while a run is stopping would otherwise land in the
middle of the stop path: the live view never retires, the run is never bound, and a raw
KeyboardInterrupt reaches the user. Under :func:`first_interrupt_only`, the first SIGINT
raises KeyboardInterrupt as usual and the rest are counted, not raised, until the block ends.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class InterruptGuard:
    """The SIGINT handler while a guarded block runs."""

    def __init__(self, previous: Callable[[int, FrameType | None], Any]) -> None:
        self.previous = previous
        self.fired = False
        self.absorbed = 0
        """Interrupts that arrived after the first and were not raised."""

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.fired:
            self.absorbed += 1
            return
        self.fired = True
        self.previous(signum, frame)  # Python's own handler: raises KeyboardInterrupt


@contextmanager
def first_interrupt_only() -> Iterator[InterruptGuard | None]:
    """Within the block, only the first SIGINT raises; re-entrant (an inner block joins the outer).

    Does nothing off the main thread (signals only reach the main thread) or where SIGINT
    is ignored or not handled by Python.
    """
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    current = signal.getsignal(signal.SIGINT)
    if isinstance(current, InterruptGuard):
        yield current
        return
    if not callable(current):  # SIG_IGN, SIG_DFL or None: Python raises nothing here
        yield None
        return
    guard = InterruptGuard(current)
    signal.signal(signal.SIGINT, guard)
    try:
        yield guard
    finally:
        signal.signal(signal.SIGINT, current)
