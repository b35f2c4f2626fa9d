"""Streaming events and handlers: ``("delta", chunk)``, ``("done", response)``, and the
built-in handlers. Put your own handlers beside these and name them in ``stream_handler:``."""

from .._check_results import CheckResult
from .._results import ToolCall
from ._events import Chunk, CitationChunk, Event, Response, RetryInfo, ToolCallChunk
from ._handlers import BufferHandler, CallbackHandler, ConsoleHandler, FileHandler, Handler, StreamHandler

# The live view's WidgetHandler lives with the display (pipeline_nb.display), which streaming never imports.


__all__ = [
    "BufferHandler",
    "CallbackHandler",
    "CheckResult",
    "Chunk",
    "CitationChunk",
    "ConsoleHandler",
    "Event",
    "FileHandler",
    "Handler",
    "Response",
    "RetryInfo",
    "StreamHandler",
    "ToolCall",
    "ToolCallChunk",
]
