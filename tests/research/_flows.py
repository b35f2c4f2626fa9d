"""Pipelines the journal's CLI and magic tests share."""

CHAIN = """\
name: chain
defaults: {provider: claude, max_tokens: 64}
steps:
  - {id: a, prompt: "first"}
  - {id: b, prompt: "second after {{ steps.a.text }}"}
  - {id: c, prompt: "third"}
"""
