"""LLM providers: ``claude`` (the anthropic SDK) and ``mock`` (offline, deterministic)."""
