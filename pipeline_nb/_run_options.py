"""How to run a spec: the caller's overrides and defaults, where names come from, and the run's
cassette, journal, resume and budget settings."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._results import PipelineRun
from .streaming._events import Event
from .streaming._handlers import Handler

DEFAULT_PROVIDER = "mock"
DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_MAX_TOKENS = 1024


@dataclass
class RunOptions:
    """How to run a spec: overrides (strongest), defaults (weakest), where names come from."""

    vars: Mapping[str, Any] = field(default_factory=dict)
    namespace: Mapping[str, Any] = field(default_factory=dict)
    provider: str | None = None
    model: str | None = None
    stream: bool | None = None
    default_provider: str = DEFAULT_PROVIDER
    default_model: str = DEFAULT_MODEL
    default_max_tokens: int = DEFAULT_MAX_TOKENS
    handlers: Sequence[Handler | Callable[[Event], Any]] = ()
    cassette: str | None = None
    cassette_mode: str | None = None
    cassette_pace: bool = False
    journal: str | None = None
    """The run journal's path, or ``off`` (else the YAML's, the environment's, the per-user one)."""
    origin: str | None = None
    """Where the run came from (a notebook, a file), as the journal records it."""
    resume: PipelineRun | str | bool | None = None
    """A run (or its id, or True: the journal's last of this name) whose replies to reuse."""
    rerun: tuple[str, ...] = ()
    """Steps to call for real even when resuming, with the steps that read them."""
    max_cost: float | None = None
    """A budget in USD, over the YAML's ``defaults.max_cost``."""
