"""One tool round by hand, through the real anthropic SDK against FakeAnthropic: the tools' API
dicts are accepted, the scripted calls run through ``Tool.call``, and what ``tool_output`` makes
of text, JSON and a matplotlib figure is a tool_result the API takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import anthropic
import matplotlib

from pipeline_nb.content import ToolResult
from pipeline_nb.testing._fake_anthropic import FakeAnthropic
from pipeline_nb.tools import server_tool, tool_from_function, tool_output, workspace_tools

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend

MODEL = "claude-sonnet-5-5"
SALES = {"sales": [120, 80, 95], "stock": [8, 9]}


def count_rows(table: Literal["sales", "stock"], year: int = 2024) -> dict[str, Any]:
    """Count the rows of one table.

    Args:
        table: Which table.
        year: The year to count.
    """
    return {"table": table, "year": year, "rows": len(SALES[table])}


def plot_table(table: Literal["sales", "stock"]) -> Any:
    """Plot a table's values as a line chart."""
    figure, axes = plt.subplots(figsize=(3, 2), dpi=50)
    axes.plot(SALES[table])
    return figure


def test_a_round_of_tool_calls_and_results_is_accepted_by_the_api(fake: FakeAnthropic, client: anthropic.Anthropic,
                                                                   tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("sales fell in March\n")
    tools = {t.name: t for t in (tool_from_function(count_rows), tool_from_function(plot_table),
                                 *workspace_tools(tmp_path).values(), server_tool("web_search", {"max_uses": 2}))}
    fake.reply("Checking.", times=1, tool_calls=[("count_rows", {"table": "sales"}), ("plot_table", {"table": "sales"}),
                                                 ("read_file", {"path": "notes.md"})])
    fake.reply("Sales has 3 rows and fell in March.")
    messages: list[dict[str, Any]] = [{"role": "user", "content": "How are sales?"}]
    sent = [t.to_api() for t in tools.values()]
    first = client.messages.create(model=MODEL, max_tokens=1024, messages=messages, tools=sent)
    assert first.stop_reason == "tool_use"

    results = []
    for use in (b for b in first.content if b.type == "tool_use"):
        content, _ = tool_output(tools[use.name].call(use.input))
        results.append(ToolResult(use.id, content).to_api())
    plt.close("all")
    messages += [{"role": "assistant", "content": [b.model_dump(exclude_none=True, exclude={"parsed_output"})
                                                   for b in first.content]},
                 {"role": "user", "content": results}]
    second = client.messages.create(model=MODEL, max_tokens=1024, messages=messages, tools=sent)

    assert second.content[0].text == "Sales has 3 rows and fell in March."
    request = fake.requests[-1]
    assert request.tools == sent
    counted, plotted, read = (r["content"] for r in request.tool_results)
    assert (counted, read) == ('{"table": "sales", "year": 2024, "rows": 3}', "sales fell in March\n")
    assert [block["type"] for block in plotted] == ["image"]
    assert [(i.media_type, i.size > 0) for i in request.images] == [("image/png", True)]
