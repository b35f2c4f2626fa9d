"""Server tools: tools the API runs itself (web search, web fetch, code execution).

The model calls them and the API answers within the same reply; nothing runs here. Each is
sent as the API's versioned tool dict. The newest version in anthropic SDK 2.14's typed params
is the default: ``web_search_20260318`` (``WebSearchTool20260318Param``), ``web_fetch_20260318``
(``WebFetchTool20260318Param``) and ``code_execution_20260521``
(``CodeExecutionTool20260521Param``). An older one is chosen with the ``type`` option, e.g.
``{type: web_search_20250305}``, for a model that does not take the newest. The other options
are the keys of that version's TypedDict, checked here so that a typo fails before any call.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from ._errors import ToolDefinitionError
from ._tool import Tool

_COMMON = ("allowed_callers", "cache_control", "defer_loading", "strict")
_SEARCH = (*_COMMON, "allowed_domains", "blocked_domains", "max_uses", "user_location")
_FETCH = (*_COMMON, "allowed_domains", "blocked_domains", "citations", "max_content_tokens", "max_uses",
          "url_sources")
VERSIONS: dict[str, dict[str, frozenset[str]]] = {
    "web_search": {  # newest first: the first is the default
        "web_search_20260318": frozenset((*_SEARCH, "response_inclusion")),
        "web_search_20260209": frozenset(_SEARCH),
        "web_search_20250305": frozenset(_SEARCH),
    },
    "web_fetch": {
        "web_fetch_20260318": frozenset((*_FETCH, "use_cache", "response_inclusion")),
        "web_fetch_20260309": frozenset((*_FETCH, "use_cache")),
        "web_fetch_20260209": frozenset(_FETCH),
        "web_fetch_20250910": frozenset(_FETCH),
    },
    "code_execution": {
        "code_execution_20260521": frozenset(_COMMON),
        "code_execution_20260120": frozenset(_COMMON),
        "code_execution_20250825": frozenset(_COMMON),
        "code_execution_20250522": frozenset(_COMMON),
    },
}
"""Each server tool's versions (the API's ``type``) and the options each one takes."""

SERVER_TOOLS = frozenset(VERSIONS)
"""The names of the server tools."""

_DESCRIPTIONS = {
    "web_search": "Searches the web; runs on Anthropic's servers, billed per search.",
    "web_fetch": "Fetches a web page or PDF by URL; runs on Anthropic's servers.",
    "code_execution": "Runs code in a sandbox on Anthropic's servers.",
}


def server_tool(name: str, options: Mapping[str, Any] | None = None) -> Tool:
    """The server tool ``name`` (one of :data:`SERVER_TOOLS`) with ``options`` (the API's own keys,
    e.g. ``max_uses``, ``allowed_domains``; ``type`` picks a version). ToolDefinitionError for an
    unknown tool, version or option, listing what is allowed."""
    if name not in VERSIONS:
        raise ToolDefinitionError(name, None, f"{name!r} is not a server tool; they are {', '.join(sorted(VERSIONS))}")
    if options is not None and not isinstance(options, Mapping):
        raise ToolDefinitionError(name, None, f"the options of {name} must be a mapping, e.g. {{max_uses: 5}}; "
                                              f"got {type(options).__name__}")
    settings = dict(options or {})
    versions = VERSIONS[name]
    version = settings.pop("type", next(iter(versions)))
    if version not in versions:
        raise ToolDefinitionError(name, "type", f"type {version!r} is not a version of {name}; the versions are "
                                                f"{', '.join(versions)}")
    if settings.pop("name", name) != name:
        raise ToolDefinitionError(name, "name", f"the name of the server tool {name} cannot be changed")
    allowed = versions[version]
    for key in settings:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ToolDefinitionError(name, str(key), f"unknown option {key!r} for {version}; {hint}the options are "
                                                      f"{', '.join(sorted(allowed))} (and type, to pick a version)")
    return Tool(name, _DESCRIPTIONS[name], {}, server={"type": version, "name": name, **settings})
