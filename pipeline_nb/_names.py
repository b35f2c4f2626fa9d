"""What ``call:`` and ``stream_handler:`` name: a kernel name, or an import path."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any


def resolve_name(name: str, namespace: Mapping[str, Any]) -> Any:
    """A name from ``namespace``, or an import path ``pkg.mod.attr`` / ``pkg.mod:attr``."""
    if name in namespace:
        return namespace[name]
    if ":" in name:
        module, _, attr = name.partition(":")
    elif "." in name:
        module, _, attr = name.rpartition(".")
    else:
        raise LookupError(f"{name!r} is not defined in the kernel and is not an import path")
    try:
        obj = importlib.import_module(module)
    except ImportError as exc:
        raise LookupError(f"cannot import {module!r}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise LookupError(f"module {module!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def parameters(fn: Callable[..., Any]) -> Mapping[str, Any]:
    """The parameters of ``fn`` by name; none for a callable without a signature."""
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
