"""A small MCP server for tests: ``python -m pipeline_nb.testing.mcp_server`` (needs ``pipeline_nb[mcp]``).

It speaks MCP over stdio (or streamable HTTP with ``--http PORT``, at ``/mcp``) and has a few
tools with known answers, so a test can script a model's calls and check what came back::

    mcp_servers:
      demo: {command: python, args: [-m, pipeline_nb.testing.mcp_server]}
    steps:
      - id: sum
        prompt: What is 2 + 3?
        tools: ["mcp:demo"]          # demo__add, demo__lookup, demo__fail, ...

Tools: ``add(a, b)`` (its sum, also as structured content), ``lookup(key)`` (a word from
:data:`WORDS`; an unknown key is an ``isError`` result), ``fail(reason)`` (always an ``isError``
result), ``env(name)`` (an environment variable of the server, for tests of ``env:``),
``header(name)`` (a request header, over HTTP), ``dot()`` (a 1x1 PNG image),
``sleep(seconds)`` (answers after that long) and ``banner()`` (a PNG whose header says it is
9000 pixels wide, more than the API takes).

Options: ``--pid-file PATH`` writes the server's process id there (to check it is gone after a
run); ``--fail TEXT`` prints TEXT (``$VAR`` expanded) to stderr and exits with status 1 instead
of serving, as a server that cannot start does; ``--wait-for PATH`` waits (up to a minute) for
PATH to exist before it serves, as a slow server does; ``--bad-schema TOOL`` lists TOOL with an
input schema that is not a valid JSON Schema.
"""

# no "from __future__ import annotations": the SDK reads the tools' annotations, which name local imports
import argparse
import base64
import os
import sys
import time
from typing import Any

__all__ = ["DOT_PNG", "WORDS", "build", "main"]

WORDS = {"harbour": "Leith", "tide": "spring", "boat": "skiff"}
"""What ``lookup`` knows."""
DOT_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")
"""The image ``dot`` returns: one pixel, PNG."""
BANNER_PNG = DOT_PNG[:16] + (9000).to_bytes(4, "big") + DOT_PNG[20:]
"""The image ``banner`` returns: DOT_PNG with a header that says 9000x1 pixels."""
WAIT_LIMIT = 60.0
"""Seconds ``--wait-for`` waits at most."""


def build() -> Any:
    """The server with its tools (mcp 2's MCPServer, or mcp 1's FastMCP)."""
    try:
        from mcp.server.mcpserver import Context, Image, MCPServer as Server
        from mcp.server.mcpserver.exceptions import ToolError
    except ImportError:  # mcp 1.x
        from mcp.server.fastmcp import Context, FastMCP as Server, Image  # type: ignore[no-redef]
        from mcp.server.fastmcp.exceptions import ToolError  # type: ignore[no-redef]

    server = Server("pipeline_nb-test")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two whole numbers."""
        return a + b

    @server.tool()
    def lookup(key: str) -> str:
        """Look up a word by its key (harbour, tide or boat)."""
        if key not in WORDS:
            raise ToolError(f"no word for key {key!r}; the keys are: {', '.join(WORDS)}")
        return WORDS[key]

    @server.tool()
    def fail(reason: str) -> str:
        """Always fail, with the reason given."""
        raise ToolError(reason)  # an isError result that says why

    @server.tool()
    def env(name: str) -> str:
        """The value of one of the server's environment variables ('' when it is not set)."""
        return os.environ.get(name, "")

    @server.tool()
    def header(name: str, ctx: Context) -> str:
        """The value of one header of this request (over HTTP; '' on stdio)."""
        headers = getattr(ctx, "headers", None)
        if headers is None:  # mcp 1.x
            headers = getattr(getattr(ctx.request_context, "request", None), "headers", None)
        return (headers or {}).get(name.lower(), "")

    @server.tool()
    def dot() -> Image:
        """A one-pixel PNG image."""
        return Image(data=DOT_PNG, format="png")

    @server.tool()
    def sleep(seconds: float) -> str:
        """Wait this many seconds, then say so."""
        time.sleep(seconds)
        return f"slept {seconds} s"

    @server.tool()
    def banner() -> Image:
        """A PNG image 9000 pixels wide."""
        return Image(data=BANNER_PNG, format="png")

    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline_nb.testing.mcp_server",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on 127.0.0.1:PORT/mcp")
    parser.add_argument("--pid-file", metavar="PATH", help="write this process's id to PATH")
    parser.add_argument("--fail", metavar="TEXT", help="print TEXT ($VAR expanded) to stderr and exit with status 1")
    parser.add_argument("--wait-for", metavar="PATH", help=f"wait for PATH to exist (at most {WAIT_LIMIT:g} s)")
    parser.add_argument("--bad-schema", metavar="TOOL", help="list TOOL with an input schema that is not valid")
    args = parser.parse_args(argv)
    if args.pid_file:
        with open(args.pid_file, "w", encoding="utf-8") as file:
            file.write(str(os.getpid()))
    if args.fail is not None:
        print(os.path.expandvars(args.fail), file=sys.stderr, flush=True)
        sys.exit(1)
    deadline = time.monotonic() + WAIT_LIMIT
    while args.wait_for and not os.path.exists(args.wait_for) and time.monotonic() < deadline:
        time.sleep(0.05)
    server = build()
    if args.bad_schema:  # what the server lists; its own checks of a call's input are unchanged
        server._tool_manager.get_tool(args.bad_schema).parameters = {
            "type": "object", "properties": {"a": {"type": "integer", "minimum": "zero"}}}
    if args.http is None:
        server.run("stdio")
        return
    try:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    except TypeError:  # mcp 1.x: host and port are settings
        server.settings.host, server.settings.port = "127.0.0.1", args.http
        server.run("streamable-http")


if __name__ == "__main__":
    main()
