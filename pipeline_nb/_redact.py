"""Keys out of messages: every error text built from a response passes through :func:`redact`.

A server (or a proxy) may echo the request's ``Authorization`` header in an error body, and
that body becomes a step error, a saved notebook's output and a FileHandler's log line.
"""

from __future__ import annotations

import os
import re

KEY_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
REDACTED = "<redacted>"

_ANTHROPIC_TOKEN = re.compile(r"sk-ant-[A-Za-z0-9_\-]+")
_CREDENTIAL = re.compile(r"(?i)\b(bearer|x-api-key|api[_-]key|authorization)([\s\"':=]+)(?!<redacted>)[^\s\"',;}]{8,}")


def redact(text: str) -> str:
    """``text`` with the API keys in the environment, ``sk-ant-`` tokens and credentials after
    ``Bearer``/``x-api-key``/``api_key`` replaced by ``<redacted>``."""
    for name in KEY_VARIABLES:
        key = os.environ.get(name)
        if key and len(key) >= 8 and key in text:
            text = text.replace(key, REDACTED)
    text = _ANTHROPIC_TOKEN.sub(REDACTED, text)
    return _CREDENTIAL.sub(rf"\1\2{REDACTED}", text)
