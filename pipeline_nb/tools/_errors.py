"""The two ways a tool goes wrong: it cannot be defined, or the model called it with bad input.

    ToolDefinitionError(ValueError)   a function, mapping or server tool that cannot become a tool;
                                      found before any call (the loop turns it into a PipelineSpecError)
    ToolInputError(ValueError)        input that does not fit the tool (wrong type, missing field, a
                                      path outside the workspace); sent back to the model as an
                                      ``is_error`` result so it can correct itself
"""

from __future__ import annotations


class ToolDefinitionError(ValueError):
    """A tool that cannot be defined. ``str()`` names the tool, what is wrong and how to fix it.

    ``tool`` is the tool's name (None when it has none yet); ``param`` is the function
    parameter or the mapping key at fault (None for the tool as a whole); ``message`` is the
    explanation without the tool's name."""

    def __init__(self, tool: str | None, param: str | None, message: str) -> None:
        self.tool, self.param, self.message = tool, param, message
        super().__init__(f"tool {tool!r}: {message}" if tool else message)


class ToolInputError(ValueError):
    """Input the tool cannot take; ``str()`` says which field and why, in words the model can act on."""

    def __init__(self, message: str, *, tool: str | None = None) -> None:
        self.tool = tool
        super().__init__(message)
