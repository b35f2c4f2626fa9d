"""LLM providers: ``claude`` (the anthropic SDK), ``gemini`` (the google-genai SDK, an extra) and
``mock`` (offline, deterministic), and what a provider of your own implements. Others come from
installed packages through the ``pipeline_nb.providers`` entry point group (see docs/providers.md)."""

from .._llm import (BatchProvider, CancelToken, LLMRequest, Provider, ProviderError, provider_names,
                    register_provider)

__all__ = ["BatchProvider", "CancelToken", "LLMRequest", "Provider", "ProviderError", "provider_names",
           "register_provider"]
