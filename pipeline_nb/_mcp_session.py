"""One MCP server's connection: the mcp SDK's ClientSession, served on an event loop of its own.

The SDK is asyncio (anyio). A task on a private loop thread enters the transport (the program
over stdio, or HTTP) and the session, lists the tools, and waits to be stopped; each tool call
crosses threads with ``run_coroutine_threadsafe`` and is bounded by a timeout. A start and a
call wait on this side polling every POLL seconds (a start the caller's cancel check, a call the
session's stop, which an interrupt sets), so an interrupt never hangs here; ``stop`` waits at most
STOP_WAIT. Stopping cancels the task's scope: the SDK's own shutdown runs (stdin closed, then
the process group terminated, then killed), and the loop thread ends with it. A program's stderr
goes to a file, never to the console: its last lines explain a failure, with the server's secrets
hidden. Nothing is opened (the loop, the file, the thread) until ``start``, and a session told to
stop before it starts never opens them.

This is the only module of the package that imports ``mcp`` (:func:`sdk_installed` checks for it;
``testing.mcp_server`` is a server of its own); it works with mcp 1.9 and later, and mcp 2.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import IO, Any

from ._mcp_spec import Launch, McpServer
from ._redact import redact

POLL = 0.05
"""Seconds between looks at the cancel check while a server starts, or at the session's stop while
a tool call runs."""
STOP_WAIT = 10.0
"""Seconds a server has to stop: the SDK gives a program 2 s after its stdin closes, then 2 s after
SIGTERM before SIGKILL."""
MAX_PAGES = 100
"""Pages of a tool listing read at most (a server whose cursor never ends is cut off there)."""
STDERR_LINES, STDERR_CHARS = 12, 1500
"""How much of a program's stderr a failure quotes: its last lines, at most so many characters."""


class McpFailure(Exception):
    """A server that could not start, list its tools or answer a call: the message says why,
    with no env or header value in it."""


class McpInterrupted(Exception):
    """The run was interrupted while a server started."""


def sdk_installed() -> bool:
    """Whether the mcp package can be imported (``pipeline_nb[mcp]``)."""
    try:
        importlib.import_module("mcp")
    except ImportError:
        return False
    return True


class McpSession:
    """One server: ``start`` (its tool listing), ``call``, ``stop``. Thread-safe."""

    def __init__(self, server: McpServer, launch: Launch) -> None:
        self.server, self.launch = server, launch
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stderr: IO[bytes] | None = None
        """The program's stderr (stdio only), from ``start`` until ``stop``."""
        self._ready: concurrent.futures.Future[list[dict[str, Any]]] = concurrent.futures.Future()
        self._session: Any = None
        self._scope: Any = None
        self._stopping = False

    # -- the caller's side (any thread) --

    def start(self, cancelled: Callable[[], bool]) -> list[dict[str, Any]]:
        """Start the server and return its tools (as the protocol writes them: name, description,
        inputSchema...). McpFailure if it cannot, within its timeout; McpInterrupted on cancel, or
        if the session was told to stop before it started (then nothing was opened)."""
        with self._lock:  # stop_soon takes it too: a session stopped now never opens its loop or file
            if self._stopping:
                raise McpInterrupted(f"the run ended before MCP server {self.server.name!r} started")
            self._open()
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        deadline = time.monotonic() + self.server.timeout
        while not concurrent.futures.wait([self._ready], timeout=POLL).done:
            if cancelled():
                self.stop_soon()
                raise McpInterrupted(f"interrupted while MCP server {self.server.name!r} started")
            if time.monotonic() > deadline:
                message = self._failed(f"it did not start and list its tools within {self.server.timeout:g} s "
                                       "(give it longer with timeout: in its declaration)")
                self.stop_soon()
                raise McpFailure(message)
        problem = self._ready.exception()
        if problem is not None:  # the SDK's errors come in exception groups: _reason finds the first
            message = self._failed(problem.args[0] if isinstance(problem, McpFailure) else _reason(problem))
            self.stop_soon()
            raise McpFailure(message)
        return self._ready.result()

    def call(self, name: str, arguments: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Call tool ``name`` (the server's own name), for at most ``timeout`` seconds; its result as
        the protocol writes it (content, structuredContent, isError). McpFailure if the server cannot
        answer in time, or is stopped meanwhile (the wait polls for that: it ends within POLL)."""
        stopped = f"MCP server {self.server.name!r} was stopped (its run ended, or was interrupted)"
        if self._session is None or self._stopping or self._loop is None:
            raise McpFailure(stopped)
        try:
            future = asyncio.run_coroutine_threadsafe(self._call(name, arguments, timeout), self._loop)
            deadline = time.monotonic() + timeout + STOP_WAIT  # the call's own timeout ends it first
            while not concurrent.futures.wait([future], timeout=POLL).done:
                if self._stopping or time.monotonic() > deadline:
                    future.cancel()  # on the loop too: the request is abandoned
                    raise TimeoutError  # said below: stopped, or no answer in time
            result = future.result()
        except Exception as exc:  # each becomes the tool's error, which the model reads
            if self._stopping:
                raise McpFailure(stopped) from None
            if isinstance(exc, TimeoutError):
                raise McpFailure(f"MCP server {self.server.name!r} did not answer within {timeout:g} s") from None
            raise McpFailure(self._quiet(f"MCP server {self.server.name!r} failed: {_reason(exc)}")) from None
        return result.model_dump(mode="json", by_alias=True, exclude_none=True)

    def stop_soon(self) -> None:
        """Tell the server to stop, without waiting (safe from any thread, at any time, more than once)."""
        with self._lock:
            self._stopping = True
            loop = self._loop
        if loop is None:  # never started, and now it never will
            return
        try:
            loop.call_soon_threadsafe(self._cancel)
        except RuntimeError:  # the loop is closed: stopped already
            pass

    def stop(self, wait: float = STOP_WAIT) -> bool:
        """Stop the server and wait up to ``wait`` seconds for it (its program) to be gone; whether it
        was. Its stderr file is closed once its loop has ended (at once if it never started)."""
        self.stop_soon()
        if self._thread is not None:
            self._thread.join(wait)
            if self._thread.is_alive():
                return False
        if self._stderr is not None:
            self._stderr.close()
        return True

    def _open(self) -> None:
        """The loop, its thread and the stderr file (under the lock); nothing left open if one fails."""
        self._loop = asyncio.new_event_loop()
        try:
            self._stderr = tempfile.TemporaryFile() if self.server.transport == "stdio" else None
            self._thread = threading.Thread(target=self._run_loop, name=f"pipeline_nb:mcp:{self.server.name}",
                                            daemon=True)
            self._thread.start()
        except BaseException:
            self._thread = None
            self._loop.close()
            if self._stderr is not None:
                self._stderr.close()
            raise

    # -- the loop's side --

    def _run_loop(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:  # calls still in flight: the session is gone
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _cancel(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    async def _serve(self) -> None:
        import anyio
        from mcp import ClientSession

        try:
            with anyio.CancelScope() as self._scope:
                if self._stopping:
                    self._scope.cancel()
                async with AsyncExitStack() as stack:
                    streams = await self._transport(stack)
                    session = await stack.enter_async_context(ClientSession(streams[0], streams[1]))
                    await session.initialize()
                    listing = await _listing(session)
                    self._session = session
                    self._ready.set_result(listing)
                    await anyio.sleep_forever()
        except BaseException as exc:  # noqa: BLE001 - any failure is the caller's to explain
            if not self._ready.done():
                self._ready.set_exception(exc)
        finally:
            self._session = None
            if not self._ready.done():
                self._ready.set_exception(McpFailure("it was stopped before it started"))
            loop = asyncio.get_running_loop()
            loop.call_soon(loop.stop)

    async def _transport(self, stack: AsyncExitStack) -> tuple[Any, Any]:
        launch = self.launch
        if self.server.transport == "stdio":
            from mcp import StdioServerParameters, stdio_client

            assert launch.command is not None
            params = StdioServerParameters(command=launch.command, args=list(launch.args), env=dict(launch.env),
                                           cwd=launch.cwd)
            streams = await stack.enter_async_context(stdio_client(params, errlog=self._stderr))
        elif self.server.transport == "sse":
            from mcp.client.sse import sse_client

            streams = await stack.enter_async_context(sse_client(launch.url, headers=dict(launch.headers)))
        else:
            try:  # mcp 2: headers go on the HTTP client
                from mcp.client.streamable_http import streamable_http_client
                from mcp.shared._httpx_utils import create_mcp_http_client
            except ImportError:  # mcp 1
                from mcp.client.streamable_http import streamablehttp_client

                transport = streamablehttp_client(launch.url, headers=dict(launch.headers))
                streams = await stack.enter_async_context(transport)
            else:
                client = await stack.enter_async_context(create_mcp_http_client(headers=dict(launch.headers)))
                streams = await stack.enter_async_context(streamable_http_client(launch.url, http_client=client))
        return streams[0], streams[1]

    async def _call(self, name: str, arguments: dict[str, Any], timeout: float) -> Any:
        import anyio

        with anyio.fail_after(timeout):
            return await self._session.call_tool(name, arguments)

    # -- messages --

    def _failed(self, why: str) -> str:
        """Why the server did not start: what it is, why, and a program's last stderr lines."""
        message = f"MCP server {self.server.name!r} ({self.server.describe()}) did not start: {why}"
        if self._stderr is not None:
            tail = self._stderr_tail()
            message += f"; its stderr ended with:\n{tail}" if tail else "; it wrote nothing to stderr"
        return self._quiet(message)

    def _quiet(self, text: str) -> str:
        return redact(self.launch.hide(text, errors=True))

    def _stderr_tail(self) -> str:
        if self._stderr is None or self._stderr.closed:
            return ""
        try:
            size = self._stderr.seek(0, 2)
            self._stderr.seek(max(0, size - STDERR_CHARS * 4))
            text = self._stderr.read().decode("utf-8", errors="replace")
        except (OSError, ValueError):
            return ""
        lines = [line.rstrip() for line in text[-STDERR_CHARS:].strip().splitlines()][-STDERR_LINES:]
        return "\n".join(f"    {line}" for line in lines)


async def _listing(session: Any) -> list[dict[str, Any]]:
    """Every tool the server lists, following its pages."""
    tools: list[dict[str, Any]] = []
    cursor = None
    for _ in range(MAX_PAGES):
        page = await (session.list_tools() if cursor is None else _page(session, cursor))
        dumped = page.model_dump(mode="json", by_alias=True, exclude_none=True)
        tools += dumped.get("tools", [])
        cursor = dumped.get("nextCursor")
        if not cursor:
            break
    return tools


async def _page(session: Any, cursor: str) -> Any:
    try:
        from mcp.types import PaginatedRequestParams

        return await session.list_tools(params=PaginatedRequestParams(cursor=cursor))
    except (ImportError, TypeError):  # mcp 1.9: a cursor argument
        return await session.list_tools(cursor=cursor)


def _reason(exc: BaseException) -> str:
    """An exception in words: the first leaf of an exception group, a missing program by name."""
    while isinstance(getattr(exc, "exceptions", None), tuple) and exc.exceptions:  # an exception group
        exc = exc.exceptions[0]
    if isinstance(exc, FileNotFoundError):
        return f"the program {exc.filename!r} was not found" if exc.filename else f"a file was not found: {exc}"
    if isinstance(exc, PermissionError):
        return f"the program {exc.filename!r} may not be run (permission denied)"
    text = str(exc) or type(exc).__name__
    if text == "Connection closed":
        return "it closed the connection (the program exited, or is not an MCP server)"
    return text if type(exc).__module__.startswith("mcp") else f"{type(exc).__name__}: {text}"
