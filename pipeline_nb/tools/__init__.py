"""Tools an llm step lets Claude call: kernel functions, explicit mappings, server tools, workspace tools.

A :class:`Tool` holds what the model is told (``name``, ``description``, ``input_schema``) and
what runs when it calls (``function``). Build one from

- a function, its schema derived from its signature, type hints and docstring:
  :func:`tool_from_function`;
- a mapping ``{name, description, input_schema, call}``: :func:`tool_from_mapping`;
- a server tool the API runs itself (:data:`SERVER_TOOLS`): :func:`server_tool`;
- the built-in workspace tools confined to one folder (:data:`WORKSPACE_TOOLS`):
  :func:`workspace_tools`;
- a folder of agent skills (``SKILL.md`` files), as the one ``skill`` tool: :func:`skill_tool`.

``tool.call(input)`` checks the model's input against the schema (a mismatch raises
:class:`ToolInputError`, to be sent back to the model) and runs the function;
:func:`tool_output` turns what it returned into the ``tool_result`` content: text, JSON, or an
image. A tool that cannot be defined raises :class:`ToolDefinitionError`, naming the function
and the parameter.

>>> from typing import Annotated, Literal
>>> def count_rows(table: Literal["sales", "stock"], year: Annotated[int, "a calendar year"] = 2024) -> int:
...     '''Count the rows of one table for one year.'''
...     return {"sales": 120, "stock": 8}[table]
>>> tool = tool_from_function(count_rows)
>>> tool.to_api()["input_schema"]["properties"]["table"]
{'type': 'string', 'enum': ['sales', 'stock']}
>>> tool.call({"table": "sales"})
120
>>> tool_output({"rows": 120})
('{"rows": 120}', None)
"""

from ._errors import ToolDefinitionError, ToolInputError
from ._functions import tool_from_function
from ._output import MAX_TOOL_OUTPUT, tool_output
from ._server import SERVER_TOOLS, server_tool
from ._skills import Skill, find_skills, skill_tool
from ._tool import Tool, tool_from_mapping
from ._workspace import WORKSPACE_TOOLS, workspace_tools

__all__ = ["MAX_TOOL_OUTPUT", "SERVER_TOOLS", "WORKSPACE_TOOLS", "Skill", "Tool", "ToolDefinitionError",
           "ToolInputError", "find_skills", "server_tool", "skill_tool", "tool_from_function", "tool_from_mapping",
           "tool_output", "workspace_tools"]
