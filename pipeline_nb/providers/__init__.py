"""LLM providers: ``claude`` (the anthropic SDK) and ``mock`` (offline, deterministic), and what a
provider of your own implements (see docs/python-api.md)."""

from .._llm import (BatchProvider, CancelToken, LLMRequest, Provider, ProviderError, provider_names,
                    register_provider)

__all__ = ["BatchProvider", "CancelToken", "LLMRequest", "Provider", "ProviderError", "provider_names",
           "register_provider"]
