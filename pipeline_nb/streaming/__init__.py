"""Streaming events and handlers: ``("delta", chunk)``, ``("done", response)``, and the
built-in handlers. Put your own handlers beside these and name them in ``stream_handler:``."""

from .events import Chunk, CitationChunk, Event, Response, RetryInfo
from .handlers import BufferHandler, CallbackHandler, ConsoleHandler, FileHandler, Handler, StreamHandler


def __getattr__(name: str) -> object:
    if name == "WidgetHandler":  # lives with the display: importing it loads ipywidgets
        from ..display.live import WidgetHandler

        return WidgetHandler
    raise AttributeError(f"module 'pipeline_nb.streaming' has no attribute {name!r}")


__all__ = [
    "BufferHandler",
    "CallbackHandler",
    "Chunk",
    "CitationChunk",
    "ConsoleHandler",
    "Event",
    "FileHandler",
    "Handler",
    "Response",
    "RetryInfo",
    "StreamHandler",
    "WidgetHandler",
]
