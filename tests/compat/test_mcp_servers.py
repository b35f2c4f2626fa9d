"""pipeline_ex's MCP servers through the real SDK against FakeAnthropic: the workflow's ``mcp_servers:``
and a step's ``claude_options.mcp_servers`` translated to the pipeline's (each optional, its type as the
transport), the claude steps given the servers' tools (as allowed_tools and disallowed_tools name them),
a real server answering the model's call, and the servers that do not start reported as warnings while
the steps go on."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb._yaml import load_yaml
from pipeline_nb.compat import translate
from pipeline_nb.testing import FakeAnthropic

CORPUS = Path(__file__).parent / "corpus"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPELINE_NB_RATE_LIMITER", "off")
    monkeypatch.setenv("PNB_TEST_PYTHON", sys.executable)
    monkeypatch.setenv("PNB_TEST_HARBOUR_TOKEN", "harbour-token-1234")
    monkeypatch.delenv("PNB_TEST_WEATHER_TOKEN", raising=False)
    return tmp_path


def translated(text: str | None = None) -> dict:
    path = CORPUS / "mcp_servers.yaml"
    data, smap = load_yaml(text or path.read_text(), source=str(path))
    return translate(data, smap, CORPUS, notes=[])[0]


def test_the_servers_become_the_pipelines_each_optional_and_the_claude_steps_get_their_tools() -> None:
    spec = translated()
    assert spec["mcp_servers"] == {
        "harbour": {"command": "${PNB_TEST_PYTHON}", "args": ["-m", "pipeline_nb.testing.mcp_server"],
                    "env": {"HARBOUR_TOKEN": "${PNB_TEST_HARBOUR_TOKEN}"}, "optional": True},
        "charts": {"command": "no-such-chart-server", "args": ["--port", 8123], "optional": True},
        "weather": {"transport": "sse", "url": "https://weather.example.invalid/mcp/sse",
                    "headers": {"Authorization": "Bearer ${PNB_TEST_WEATHER_TOKEN}"}, "optional": True},
        "almanac": {"command": "${PNB_TEST_PYTHON}", "args": ["-m", "pipeline_nb.testing.mcp_server"],
                    "optional": True}}
    tools = {step["id"]: step.get("tools") for step in spec["steps"]}
    assert tools == {"count_boats": ["mcp:harbour", "mcp:charts", "mcp:weather"],
                     "tide_only": ["read_file", {"mcp": "harbour", "tools": ["lookup"]}],
                     "report": ["read_file", "list_files", "search_files", "mcp:harbour", "mcp:weather"],
                     "almanac": ["mcp:almanac"]}
    assert spec["steps"][0]["max_tool_rounds"] == 2  # Claude Code's max_turns of a claude step, less the answer


def test_a_real_server_answers_the_model_and_the_others_are_warnings(fake_anthropic: FakeAnthropic) -> None:
    # the steps run in order, so each reply is used once, in order
    fake_anthropic.reply("", times=1, tool_calls=[{"name": "harbour__add", "input": {"a": 3, "b": 4}}])
    fake_anthropic.reply("Seven boats.", times=1)
    fake_anthropic.reply("", times=1, tool_calls=[{"name": "harbour__lookup", "input": {"key": "tide"}}])
    fake_anthropic.reply("A spring tide.", times=1)
    fake_anthropic.reply("All calm.")
    run = pipeline_nb.run(CORPUS / "mcp_servers.yaml", journal="off")

    assert [run.steps[s].text for s in ("count_boats", "tide_only", "report", "almanac")] == [
        "Seven boats.", "A spring tide.", "All calm.", "All calm."]
    first, second, tide, _, report, almanac = fake_anthropic.requests
    assert [t["name"] for t in first.body["tools"]][:2] == ["harbour__add", "harbour__lookup"]
    assert second.tool_results[0]["content"] == "7"
    assert [t["name"] for t in tide.body["tools"]] == ["read_file", "harbour__lookup"]
    assert "harbour__add" in [t["name"] for t in report.body["tools"]]
    assert "almanac__add" not in [t["name"] for t in report.body["tools"]]
    assert {t["name"].partition("__")[0] for t in almanac.body["tools"]} == {"almanac"}
    warnings = "\n".join(run.warnings)
    assert "MCP server 'charts' (command no-such-chart-server --port 8123) did not start: the program " \
           "'no-such-chart-server' was not found" in warnings
    assert "MCP server 'weather' (url https://weather.example.invalid/mcp/sse) did not start: environment variable " \
           "PNB_TEST_WEATHER_TOKEN is not set" in warnings
    assert "pipeline_ex's mcp_servers key 'timeout_ms' is ignored" in warnings
    assert "harbour-token-1234" not in warnings


def workflow(servers: str, options: str = "") -> str:
    return ("workflow:\n  name: t\n  mcp_servers:\n" + textwrap.indent(textwrap.dedent(servers), "    ")
            + "  steps:\n    - name: a\n      type: claude\n      prompt: [{type: static, content: hi}]\n"
            + (f"      claude_options: {options}\n" if options else ""))


def test_two_declarations_of_one_name_must_agree() -> None:
    text = workflow("files: {command: x}\n", "{mcp_servers: {files: {command: y}}}")
    with pytest.raises(PipelineSpecError, match="<pipeline>:9:45: step 'a': MCP server 'files' is declared twice, "
                                                "differently"):
        pipeline_nb.run(text, journal="off")


@pytest.mark.parametrize(("servers", "options", "where", "message"), [
    ("files: {type: websocket, command: x}\n", "", "4:19", "MCP server 'files': type 'websocket' is not stdio, sse "
     "or http"),
    ("files: {type: sse, command: x}\n", "", "4:12", "MCP server 'files': a server of type sse needs url:"),
    ("files: {type: stdio, command: x, url: 'http://h'}\n", "", "4:38", "MCP server 'files': give either command:"),
    ("files: {command: x}\n", "{allowed_tools: [mcp__docs__read]}", "9:39",
     "claude_options.allowed_tools: mcp__docs__read names none of the step's MCP servers (files)"),
    ("files: {command: x}\n", "{disallowed_tools: [mcp__files__delete]}", "9:42",
     "claude_options.disallowed_tools: mcp__files__delete cannot be taken away alone"),
])
def test_what_does_not_translate_is_refused_at_its_line(servers: str, options: str, where: str, message: str) -> None:
    with pytest.raises(PipelineSpecError) as raised:
        pipeline_nb.run(workflow(servers, options), journal="off")
    assert f"<pipeline>:{where}: " in str(raised.value) and message in str(raised.value)


def test_loop_bodies_and_inline_pipelines_get_the_servers_and_their_own() -> None:
    text = textwrap.dedent("""\
        workflow:
          name: nested
          mcp_servers:
            harbour: {command: python, args: [-m, pipeline_nb.testing.mcp_server]}
          steps:
            - name: laps
              type: while_loop
              condition: "{{state.n < 1}}"
              max_iterations: 2
              steps:
                - name: ask
                  type: claude
                  claude_options:
                    mcp_servers: {almanac: {command: python, args: [-m, pipeline_nb.testing.mcp_server]}}
                  prompt: hi
            - name: each
              type: for_loop
              iterator: port
              data_source: ports
              steps:
                - {name: note, type: set_variable, variables: {seen: "{{loop.port}}"}}
                - {name: tell, type: claude, prompt: "{{loop.port}}"}
            - name: inner
              type: pipeline
              pipeline:
                name: inner
                steps:
                  - {name: deep, type: claude, prompt: deep}
        """)
    data, smap = load_yaml(text, source="nested.yaml")
    spec = translate(data, smap, notes=[])[0]
    assert set(spec["mcp_servers"]) == {"harbour", "almanac"}  # a body step's own server is declared
    laps, each, inner = spec["steps"]
    assert laps["pipeline"]["steps"][0]["tools"] == ["mcp:harbour", "mcp:almanac"]
    assert each["pipeline"]["steps"][1]["tools"] == ["mcp:harbour"]
    assert inner["pipeline"]["steps"][0]["tools"] == ["mcp:harbour"]
