"""A terminal's two streams sharing one screen, for the console tests."""

from __future__ import annotations

import io


class Stream:
    """One of stdout and stderr: keeps what it received, and writes it on the shared screen."""

    def __init__(self, screen: io.StringIO, tty: bool = False) -> None:
        self.screen, self.received, self.tty = screen, io.StringIO(), tty

    def write(self, text: str) -> int:
        self.received.write(text)
        return self.screen.write(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return self.tty
