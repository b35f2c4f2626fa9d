"""MCP servers as tools: a real server (``pipeline_nb.testing.mcp_server``, over stdio and over HTTP)
started by the run, its tools offered to Claude through the real SDK against FakeAnthropic, the
model's calls answered by the server and sent back; optional and required servers that do not
start; ``tool_choice`` and name clashes, checked with the plan where the names are known and as
step errors where only the server knows them; images checked as a function's are; ``${VAR}``;
secrets kept out of everything a run prints or saves; replay; and what the plan refuses, with
line:col. The life of a run (processes, threads, descriptors, interrupts, concurrent runs) is in
tests/reliability/test_mcp_lifecycle.py."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb._loader import load_spec
from pipeline_nb._mcp_spec import McpTools
from pipeline_nb.testing import FakeAnthropic
from tests.tools._mcp_support import GUARD, PY, SECRET, SERVER, mcp_threads, pipeline


@pytest.fixture(autouse=True)
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_NB_RATE_LIMITER", "off")


def test_the_model_calls_mcp_tools_and_their_results_go_back(fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    fake_anthropic.reply("", times=1, tool_calls=[
        {"name": "demo__add", "input": {"a": 2, "b": 3}}, {"name": "demo__lookup", "input": {"key": "boat"}},
        {"name": "demo__dot", "input": {}}, {"name": "demo__lookup", "input": {"key": "kraken"}},
        {"name": "demo__fail", "input": {"reason": "the harbour is closed"}}])
    fake_anthropic.reply("Five skiffs.")
    run = pipeline_nb.run(pipeline(tmp_path, f"  demo: {SERVER}"), journal="off", raise_on_error=False)

    step = run.steps["ask"]
    assert (run.status, step.text) == ("ok", "Five skiffs.")
    first, second = fake_anthropic.requests
    tools = {t["name"]: t for t in first.body["tools"]}
    assert list(tools) == ["demo__add", "demo__lookup", "demo__fail", "demo__env", "demo__header", "demo__dot",
                           "demo__sleep", "demo__banner"]
    assert tools["demo__add"]["description"] == "Add two whole numbers."
    assert tools["demo__add"]["input_schema"]["required"] == ["a", "b"]
    added, looked_up, dot, unknown, failed = second.tool_results
    assert (added["content"], added["is_error"]) == ("5", False)
    assert (looked_up["content"], looked_up["is_error"]) == ("skiff", False)
    assert [b["type"] for b in dot["content"]] == ["image"] and dot["content"][0]["source"]["media_type"] == "image/png"
    assert unknown["is_error"] and "no word for key 'kraken'" in unknown["content"]  # isError: the model reads it
    assert failed["is_error"] and "the harbour is closed" in failed["content"]
    assert [(c.name, c.is_error) for c in step.tool_calls] == [
        ("demo__add", False), ("demo__lookup", False), ("demo__dot", False), ("demo__lookup", True),
        ("demo__fail", True)]
    assert not mcp_threads()


def test_an_entry_that_names_tools_offers_only_those(fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    fake_anthropic.reply("Fine.")
    path = pipeline(tmp_path, f"  demo: {SERVER}", "[{mcp: demo, tools: [lookup, add]}]")
    run = pipeline_nb.run(path, journal="off", raise_on_error=False)
    assert run.ok
    assert [t["name"] for t in fake_anthropic.requests[0].body["tools"]] == ["demo__lookup", "demo__add"]

    path.write_text(path.read_text().replace("[lookup, add]", "[lookup, sail]"))
    step = pipeline_nb.run(path, journal="off", raise_on_error=False).steps["ask"]
    assert step.status == "error" and "mcp_server_failed" in f"{step.error.type} {step.error.message}"
    assert "MCP server 'demo' has no tool 'sail'; its tools: add, lookup, fail, env" in step.error.message


def test_an_optional_server_that_does_not_start_is_a_warning_and_the_step_runs(fake_anthropic: FakeAnthropic,
                                                                               tmp_path: Path) -> None:
    fake_anthropic.reply("No tools, still an answer.")
    path = pipeline(tmp_path, "  gone: {command: no-such-mcp-server-here, args: [--serve], optional: true}",
                    '["mcp:gone"]')
    run = pipeline_nb.run(path, journal="off", raise_on_error=False)
    assert run.ok and run.steps["ask"].text == "No tools, still an answer."
    [warning] = run.warnings
    assert warning.startswith("MCP server 'gone' (command no-such-mcp-server-here --serve) did not start: the program "
                              "'no-such-mcp-server-here' was not found")
    assert "go on without its tools" in warning
    assert "tools" not in fake_anthropic.requests[0].body


def test_a_required_server_that_does_not_start_fails_its_step_naming_it_its_command_and_stderr(
        fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    path = pipeline(tmp_path, f"  db: {{command: {PY}, args: [-m, pipeline_nb.testing.mcp_server, --fail, "
                              "'cannot open tides.db: locked']}", '["mcp:db"]')
    run = pipeline_nb.run(path, journal="off", raise_on_error=False)
    error = run.steps["ask"].error
    assert run.status == "error" and "mcp_server_failed" in f"{error.type} {error.message}"
    assert f"MCP server 'db' (command {PY} -m pipeline_nb.testing.mcp_server --fail 'cannot open tides.db: locked') " \
           "did not start: it closed the connection" in error.message
    assert "its stderr ended with:\n    cannot open tides.db: locked" in error.message
    assert error.message.endswith(f"(at {path}:7:12)")  # the step's tools:
    assert fake_anthropic.requests == []  # nothing was sent without the tools




def test_a_tool_choice_of_a_server_taken_whole_waits_for_its_tools_and_is_checked_against_them(
        fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    # a forced tool is forced in every round: this reply ends the turn all the same
    fake_anthropic.reply("Five.", tool_calls=[{"name": "demo__add", "input": {"a": 2, "b": 3}}], stop_reason="end_turn")
    path = pipeline(tmp_path, f"  demo: {SERVER}", '["mcp:demo", read_file]', extra="    tool_choice: demo__add\n")
    run = pipeline_nb.run(path, journal="off", raise_on_error=False)
    assert run.ok, run.steps["ask"].error
    assert fake_anthropic.requests[0].body["tool_choice"] == {"type": "tool", "name": "demo__add"}

    path.write_text(path.read_text().replace("demo__add", "demo__sail"))  # not a tool the server lists
    error = pipeline_nb.run(path, journal="off", raise_on_error=False).steps["ask"].error
    assert error.type == "mcp_server_failed"
    assert error.message.startswith("tool_choice 'demo__sail' is not one of the step's tools, as its MCP servers list "
                                    "them (demo__add, demo__lookup, ")
    assert error.message.endswith(f"(at {path}:8:18)")  # the step's tool_choice:
    assert len(fake_anthropic.requests) == 1  # the first run's: nothing was sent for this one


@pytest.mark.parametrize(("tools", "choice", "message"), [
    ('["mcp:demo"]', "sail", "tool_choice 'sail' is not auto, any, none or one of the step's tools (every tool of MCP "
                             "server 'demo' (demo__...))"),
    ("[{mcp: demo, tools: [add]}]", "demo__lookup", "tool_choice 'demo__lookup' is not auto, any, none or one of the "
                                                    "step's tools (demo__add)"),
])
def test_a_tool_choice_the_plan_can_check_is_refused_before_any_call(fake_anthropic: FakeAnthropic, tmp_path: Path,
                                                                      tools: str, choice: str, message: str) -> None:
    path = pipeline(tmp_path, f"  demo: {SERVER}", tools, extra=f"    tool_choice: {choice}\n")
    with pytest.raises(PipelineSpecError) as raised:
        pipeline_nb.run(path, journal="off")
    assert str(raised.value).startswith(f"{path}:8:18: step 'ask': {message}")
    assert fake_anthropic.requests == []


def test_a_tool_only_the_server_reveals_as_unusable_fails_the_step_naming_it(fake_anthropic: FakeAnthropic,
                                                                            tmp_path: Path) -> None:
    def demo__add(a: int, b: int) -> int:
        """Add, in the kernel."""
        return a + b

    path = pipeline(tmp_path, f"  demo: {SERVER}", '["mcp:demo", demo__add]')
    error = pipeline_nb.run(path, journal="off", raise_on_error=False, namespace={"demo__add": demo__add}
                            ).steps["ask"].error
    assert error.type == "mcp_server_failed"
    assert error.message.startswith("tools[1]: two tools are named 'demo__add' (tools[0] and tools[1]); take the MCP "
                                    "server's tools by name")

    path = pipeline(tmp_path, f"  demo: {{command: {PY}, args: [-m, pipeline_nb.testing.mcp_server, --bad-schema, "
                              "add]}", '["mcp:demo"]')
    error = pipeline_nb.run(path, journal="off", raise_on_error=False).steps["ask"].error
    assert error.type == "mcp_server_failed"
    assert error.message.startswith("tools[0]: MCP server 'demo' lists its tool 'add' in a form that cannot be offered "
                                    "to the model: input_schema is not a valid JSON Schema at properties/a/minimum: ")
    assert fake_anthropic.requests == []


def test_an_image_larger_than_the_api_takes_goes_back_as_a_note(fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    fake_anthropic.reply("", times=1, tool_calls=[{"name": "demo__banner", "input": {}}])
    fake_anthropic.reply("A banner.")
    run = pipeline_nb.run(pipeline(tmp_path, f"  demo: {SERVER}"), journal="off", raise_on_error=False)
    assert run.ok, run.steps["ask"].error
    [banner] = fake_anthropic.requests[1].tool_results
    assert banner["content"].startswith("[a PNG image of 70 bytes, too large to send")


def test_env_and_args_read_their_variables_and_secrets_stay_out_of_everything(
        fake_anthropic: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PNB_TEST_SECRET", SECRET)
    monkeypatch.setenv("PNB_TEST_PID_DIR", str(tmp_path))
    servers = (f"  demo:\n    command: {PY}\n    args: [-m, pipeline_nb.testing.mcp_server, --pid-file, "
               "'${PNB_TEST_PID_DIR}/demo.pid']\n"
               "    env: {TOKEN: '${PNB_TEST_SECRET}', MODE: '${PNB_TEST_UNSET:-gentle}'}\n"
               f"  leaky:\n    command: {PY}\n"
               "    args: [-m, pipeline_nb.testing.mcp_server, --fail, 'bad token $TOKEN']\n"
               "    env: {TOKEN: '${PNB_TEST_SECRET}'}\n    optional: true")
    fake_anthropic.reply("", times=1, tool_calls=[{"name": "demo__env", "input": {"name": "TOKEN"}},
                                                  {"name": "demo__env", "input": {"name": "MODE"}}])
    fake_anthropic.reply("Checked.")
    path = pipeline(tmp_path, servers, '["mcp:demo", "mcp:leaky"]')
    journal, cassette = tmp_path / "journal.db", tmp_path / "replies.jsonl"
    shown = subprocess.run([PY, "-m", "pipeline_nb", "run", str(path), "--journal", str(journal), "--cassette",
                            str(cassette), "--cassette-mode", "record"], capture_output=True, text=True, timeout=120,
                           env=os.environ)

    assert shown.returncode == 0, shown.stderr
    assert (tmp_path / "demo.pid").exists()  # args: ${PNB_TEST_PID_DIR} was read
    token, mode = fake_anthropic.requests[1].tool_results
    assert (token["content"], mode["content"]) == ("<redacted>", "gentle")  # the secret reached the server, hidden
    assert "MCP server 'leaky'" in shown.stderr and "bad token <redacted>" in shown.stderr  # its stderr, hidden
    saved = b"".join(p.read_bytes() for p in tmp_path.glob("journal.db*")) + cassette.read_bytes()  # -wal too
    rows = sqlite3.connect(journal).execute("SELECT warnings FROM runs").fetchall()
    assert "bad token <redacted>" in str(rows)
    for text in (shown.stdout, shown.stderr, saved.decode("utf-8", "replace"), str(fake_anthropic.requests[1].body)):
        assert SECRET not in text


def test_a_credential_written_in_a_url_or_args_and_an_args_variable_never_show(
        fake_anthropic: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PNB_TEST_SECRET", SECRET)
    servers = (f"  cli: {{command: {PY}, args: [-m, pipeline_nb.testing.mcp_server, '--token=${{PNB_TEST_SECRET}}', "
               "--api-key, literal-key-4321], optional: true}\n"  # the server refuses both options, on stderr
               "  web: {url: 'http://bob:pw-literal-1234@127.0.0.1:9/mcp?access_token=tok-literal-5678&page=2', "
               "optional: true}")
    fake_anthropic.reply("Fine.")
    run = pipeline_nb.run(pipeline(tmp_path, servers, '["mcp:cli", "mcp:web"]'), journal="off", raise_on_error=False)
    assert run.ok
    cli, web = sorted(run.warnings)
    assert "'--token=${PNB_TEST_SECRET}' --api-key <redacted>) did not start" in cli  # as written, the literal hidden
    assert "unrecognized arguments: --token=<redacted> --api-key <redacted>" in cli  # its stderr, both hidden
    assert "(url http://bob:<redacted>@127.0.0.1:9/mcp?access_token=<redacted>&page=2) did not start" in web
    for secret in (SECRET, "literal-key-4321", "pw-literal-1234", "tok-literal-5678"):
        assert secret not in str(run.warnings)


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    """The test server over streamable HTTP on a free port; its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([PY, "-m", "pipeline_nb.testing.mcp_server", "--http", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + GUARD
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "the HTTP server did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(GUARD)


def test_a_remote_server_gets_its_headers_and_their_values_stay_hidden(
        fake_anthropic: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_server: str) -> None:
    monkeypatch.setenv("PNB_TEST_SECRET", SECRET)
    fake_anthropic.reply("", times=1, tool_calls=[{"name": "remote__header", "input": {"name": "authorization"}},
                                                  {"name": "remote__add", "input": {"a": 20, "b": 22}}])
    fake_anthropic.reply("42.")
    servers = f"  remote: {{url: '{http_server}', headers: {{Authorization: 'Bearer ${{PNB_TEST_SECRET}}'}}}}"
    run = pipeline_nb.run(pipeline(tmp_path, servers, '["mcp:remote"]'), journal="off", raise_on_error=False)
    assert run.ok, run.steps["ask"].error
    header, added = fake_anthropic.requests[1].tool_results
    assert (header["content"], added["content"]) == ("<redacted>", "42")  # the header was sent, and is hidden
    assert SECRET not in str(fake_anthropic.requests[1].body) + str(run.steps["ask"].tool_calls)


def test_a_replay_takes_the_replies_from_the_cassette_and_runs_the_tools_again(
        fake_anthropic: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_anthropic.reply("", times=1, tool_calls=[{"name": "demo__add", "input": {"a": 1, "b": 2}}])
    fake_anthropic.reply("Three.")
    path, cassette = pipeline(tmp_path, f"  demo: {SERVER}"), tmp_path / "replies.jsonl"
    recorded = pipeline_nb.run(path, journal="off", cassette=cassette, cassette_mode="record")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # nothing answers there
    replayed = pipeline_nb.run(path, journal="off", cassette=cassette, cassette_mode="replay")
    assert recorded.steps["ask"].text == replayed.steps["ask"].text == "Three."
    assert [c.output for c in replayed.steps["ask"].tool_calls] == ["3"]  # the server ran the call again
    assert len(fake_anthropic.requests) == 2


def test_without_the_mcp_package_a_step_using_a_server_is_refused_before_any_call(
        fake_anthropic: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)  # import mcp now raises ImportError
    path = pipeline(tmp_path, f"  demo: {SERVER}")
    with pytest.raises(PipelineSpecError) as raised:
        pipeline_nb.run(path, journal="off")
    assert str(raised.value) == (f"{path}:7:12: step 'ask': tools[0]: MCP servers need the mcp package, which is not "
                                 "installed\n  hint: pip install 'pipeline_nb[mcp]'")
    assert fake_anthropic.requests == []


@pytest.mark.parametrize(("servers", "tools", "where", "message"), [
    (f"  demo: {SERVER}", '["mcp:other"]', "7:12", "step 'ask': tools[0]: no MCP server is named 'other'"),
    ("  demo: {command: x, url: 'http://h/mcp'}", '["mcp:demo"]', "3:22",
     "MCP server 'demo': give either command: (a program to run, over stdio) or url: (a remote server)"),
    ("  demo: {command: x, headers: {A: b}}", '["mcp:demo"]', "3:22", "MCP server 'demo': headers: is for a remote "
     "server (url:)"),
    ("  demo: {url: 'http://h/mcp', transport: stdio}", '["mcp:demo"]', "3:31",
     "MCP server 'demo': transport stdio does not fit url:"),
    ("  demo: {command: x, secret: y}", '["mcp:demo"]', "3:22", "MCP server 'demo': unknown key 'secret'"),
    ("  demo: {command: x, env: {TOKEN: [hidden-value]}}", '["mcp:demo"]', "3:28",
     "MCP server 'demo': env.TOKEN must be text (a string), not list"),
    ("  demo: {url: 'http://h/mcp', headers: hidden-value}", '["mcp:demo"]', "3:31",
     "MCP server 'demo': headers: must be a mapping of names to text"),
    ("  bad name: {command: x}", '["mcp:demo"]', "3:3", "MCP server 'bad name': a server's name is 1 to 48"),
    ("  demo: {command: x}", "[{mcp: demo, tool: [add]}]", "7:12",
     "step 'ask': tools[0]: an MCP entry is \"mcp:demo\" (all its tools) or {mcp: demo, tools: [a, b]}"),
    ("  demo: {command: x}", '[{mcp: demo, tools: [add]}, "mcp:demo"]', "7:12",
     "step 'ask': tools[1] takes every tool of MCP server 'demo', and tools[0] names it again"),
])
def test_a_bad_declaration_or_entry_is_refused_with_line_col(tmp_path: Path, servers: str, tools: str, where: str,
                                                             message: str) -> None:
    path = pipeline(tmp_path, servers, tools)
    with pytest.raises(PipelineSpecError) as raised:
        pipeline_nb.run(path, journal="off")
    assert str(raised.value).startswith(f"{path}:{where}: {message}")
    assert "hidden-value" not in str(raised.value)


def test_an_inline_pipeline_uses_its_parents_servers_and_a_file_pipeline_its_own(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text("steps:\n  - {id: c, prompt: x, tools: ['mcp:demo']}\n")
    spec = load_spec(pipeline(tmp_path, "  demo: {command: x}", '["mcp:demo"]', extra=(
        "  - id: inline\n    pipeline: {steps: [{id: i, prompt: y, tools: ['mcp:demo']}]}\n"
        "  - {id: nested, file: child.yaml}\n")))
    [outer] = spec.step("ask").tools
    [inner] = spec.step("inline").inline.step("i").tools
    assert isinstance(outer, McpTools) and inner.server is outer.server and outer.server.name == "demo"
    with pytest.raises(PipelineSpecError, match=r"child.yaml:2:31: step 'c': tools\[0\]: no MCP server is named"):
        pipeline_nb.run(tmp_path / "mcp.yaml", journal="off")


def test_a_credential_is_guessed_only_from_its_option_name_and_hidden_where_it_sits() -> None:
    from pipeline_nb._mcp_spec import McpServer, launch

    server = McpServer("cli", "stdio", command="srv", args=("--sort-key", "name", "--auth-mode", "readonly", "--port",
                                                            "12345", "--api-key", "1234", "--token=abcd-ef"))
    assert server.describe() == ("command srv --sort-key name --auth-mode readonly --port 12345 --api-key <redacted> "
                                 "'--token=<redacted>'")
    started = launch(server, {})
    assert started.hide("the name field is readonly; port 12345; key 1234") == \
        "the name field is readonly; port 12345; key 1234"  # what the model reads is not guessed at
    assert started.hide("refused --api-key 1234", errors=True) == "refused --api-key <redacted>"


def test_a_tool_choice_of_an_optional_server_that_did_not_start_goes_with_its_tools(
        fake_anthropic: FakeAnthropic, tmp_path: Path) -> None:
    fake_anthropic.reply("Answered without tools.")
    path = pipeline(tmp_path, "  gone: {command: no-such-mcp-server-here, optional: true}", '["mcp:gone", echo_it]',
                    "    tool_choice: gone__anything\n")
    run = pipeline_nb.run(path, journal="off", raise_on_error=False, namespace={"echo_it": echo_it})
    assert run.ok and run.steps["ask"].text == "Answered without tools."
    body = fake_anthropic.requests[0].body
    assert [t["name"] for t in body["tools"]] == ["echo_it"] and "tool_choice" not in body


def echo_it(text: str) -> str:
    """Say ``text`` back."""
    return text


def test_the_items_of_a_step_resolve_its_tools_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline_nb._toolbox as toolbox_module

    calls = []
    real = toolbox_module.toolbox

    def counted(*args, **kwargs):
        calls.append(1)
        time.sleep(0.2)  # every item of the step asks meanwhile
        return real(*args, **kwargs)

    monkeypatch.setattr(toolbox_module, "toolbox", counted)
    run = pipeline_nb.run("steps:\n  - id: each\n    for_each: [a, b, c, d]\n    max_parallel: 4\n"
                          "    prompt: \"{{ item }}\"\n    tools: [echo_it]\n", provider="mock", journal="off",
                          namespace={"echo_it": echo_it})
    assert run.ok and len(calls) == 1
