"""The tool loop through the real SDK against FakeAnthropic: rounds, parallel calls, errors,
limits, interrupts, thinking, server tools, workspace tools, and cassettes."""

from __future__ import annotations

import _thread
import json
import threading
import time
from pathlib import Path
from textwrap import dedent
from typing import Annotated, Literal

import pytest

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb.testing import FakeAnthropic


def weather(city: str, unit: Literal["C", "F"] = "C") -> dict:
    """The weather in a city now.

    Args:
        city: the city's name
        unit: degrees Celsius or Fahrenheit
    """
    return {"city": city, "temperature": 21 if unit == "C" else 70, "unit": unit}


def population(city: Annotated[str, "the city's name"]) -> int:
    """How many people live in a city."""
    return {"Paris": 2_100_000, "Lyon": 520_000}[city]


def pipeline(tools: str = "[weather]", stream: str = "true", extra: str = "") -> str:
    return dedent(f"""
        defaults: {{provider: claude, retries: 0}}
        steps:
          - id: ask
            prompt: "What is the weather in Paris?"
            stream: {stream}
            tools: {tools}
        """) + "".join(f"    {line}\n" for line in extra.splitlines())


@pytest.mark.parametrize("stream", ["true", "false"])
def test_one_round_runs_the_kernel_function_and_sends_its_result_back(fake_anthropic: FakeAnthropic,
                                                                       stream: str) -> None:
    fake_anthropic.reply("Let me look.", tool_calls=[{"name": "weather", "input": {"city": "Paris"}}], times=1)
    fake_anthropic.reply("It is 21 C in Paris.", when="temperature")
    events: list = []
    run = pipeline_nb.run(pipeline(stream=stream), namespace={"weather": weather}, on_event=events.append)
    step = run.steps["ask"]
    assert run.ok and step.text == "It is 21 C in Paris."
    (call,) = step.tool_calls
    assert (call.round, call.name, call.input, call.output, call.is_error) == (
        1, "weather", {"city": "Paris"}, {"city": "Paris", "temperature": 21, "unit": "C"}, False)
    assert call.duration is not None and run.tool_calls == [call]
    first, second = fake_anthropic.requests
    sent_tool = first.body["tools"][0]
    assert sent_tool["name"] == "weather" and sent_tool["input_schema"]["required"] == ["city"]
    assert sent_tool["input_schema"]["properties"]["unit"]["enum"] == ["C", "F"]
    (answer,) = second.tool_results
    assert json.loads(answer["content"]) == call.output and not answer.get("is_error")
    assert [m["role"] for m in step.messages] == ["user", "assistant", "user"]
    paid = [e.data.usage for e in events if e.kind == "done"]
    assert len(paid) == 2 and step.usage == paid[0] + paid[1]  # both calls are paid for
    chunks = [e.data for e in events if e.kind == "tool_call"]
    assert chunks[-1].input == {"city": "Paris"} and chunks[-1].name == "weather"
    if stream == "true":  # the input grows as it streams
        assert chunks[0].input == {} and len(chunks) > 2
    assert [e.data for e in events if e.kind == "tool_result"] == [call]


def test_several_rounds_and_parallel_calls_in_one_turn(fake_anthropic: FakeAnthropic) -> None:
    both_running = threading.Barrier(2, timeout=20)

    def slow_population(city: str) -> int:
        """How many people live in a city."""
        both_running.wait()  # passes only if the two calls of the turn run at the same time
        return population(city)

    fake_anthropic.reply("", tool_calls=[("weather", {"city": "Paris"})], times=1)
    fake_anthropic.reply("", tool_calls=[("slow_population", {"city": "Paris"}), ("slow_population", {"city": "Lyon"})],
                         when="temperature", times=1)
    fake_anthropic.reply("Paris is bigger.", when="520000")
    run = pipeline_nb.run(pipeline("[weather, slow_population]"),
                          namespace={"weather": weather, "slow_population": slow_population})
    step = run.steps["ask"]
    assert run.ok and step.text == "Paris is bigger."
    assert [(c.round, c.name, c.output) for c in step.tool_calls] == [
        (1, "weather", {"city": "Paris", "temperature": 21, "unit": "C"}),
        (2, "slow_population", 2_100_000), (2, "slow_population", 520_000)]
    last = fake_anthropic.requests[-1]
    assert [r["content"] for r in last.tool_results] == ["2100000", "520000"]  # in the calls' order


def test_max_parallel_tools_one_runs_the_calls_of_a_turn_one_at_a_time(fake_anthropic: FakeAnthropic) -> None:
    running, most = [0], [0]
    lock = threading.Lock()

    def count(city: str) -> str:
        """Counts."""
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return city

    fake_anthropic.reply("", tool_calls=[("count", {"city": c}) for c in "abcd"], times=1)
    fake_anthropic.reply("done")
    run = pipeline_nb.run(pipeline("[count]", extra="max_parallel_tools: 1"), namespace={"count": count})
    assert run.ok and len(run.steps["ask"].tool_calls) == 4 and most == [1]


def broken(city: str) -> str:
    """Always fails."""
    raise ValueError(f"no data for {city}")


def test_a_tool_that_raises_goes_back_to_the_model_as_an_error_by_default(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("", tool_calls=[("broken", {"city": "Paris"})], times=1)
    fake_anthropic.reply("I could not find it.", when="no data")
    run = pipeline_nb.run(pipeline("[broken]"), namespace={"broken": broken})
    step = run.steps["ask"]
    assert run.ok and step.text == "I could not find it."
    (call,) = step.tool_calls
    assert call.is_error and call.error == "ValueError: no data for Paris"
    (answer,) = fake_anthropic.requests[-1].tool_results
    assert answer["is_error"] is True and answer["content"] == "ValueError: no data for Paris"


def test_tool_errors_raise_fails_the_step_and_keeps_the_call(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("Checking.", tool_calls=[("broken", {"city": "Paris"})], times=1)
    run = pipeline_nb.run(pipeline("[broken]", extra="tool_errors: raise"), namespace={"broken": broken},
                          raise_on_error=False)
    step = run.steps["ask"]
    assert step.status == "error" and step.error.type == "tool_error"
    assert "tool 'broken' raised ValueError: no data for Paris" in step.error.message
    assert len(step.tool_calls) == 1 and step.text == "Checking." and len(fake_anthropic.requests) == 1


def test_invalid_input_from_the_model_is_sent_back_not_run(fake_anthropic: FakeAnthropic) -> None:
    calls: list = []

    def record(city: str) -> str:
        """Records."""
        calls.append(city)
        return city

    fake_anthropic.reply("", tool_calls=[("record", {"town": "Paris"})], times=1)
    fake_anthropic.reply("Sorry.")
    run = pipeline_nb.run(pipeline("[record]", extra="tool_errors: raise"), namespace={"record": record})
    assert run.ok and calls == []  # the model's mistakes are its to fix, whatever tool_errors says
    (bad_input,) = run.steps["ask"].tool_calls
    assert bad_input.is_error and "city" in bad_input.error
    (answer,) = fake_anthropic.requests[-1].tool_results
    assert answer["is_error"] is True and "city" in answer["content"]


def test_a_call_of_a_tool_the_step_does_not_have_is_answered_with_an_error() -> None:
    from pipeline_nb._llm import CancelToken
    from pipeline_nb._tool_loop import run_tools
    from pipeline_nb._toolbox import ToolBox
    from pipeline_nb.content import ToolUse
    from pipeline_nb.tools import tool_from_function

    box = ToolBox({"weather": tool_from_function(weather)})
    (answer,), (call,), raised = run_tools([ToolUse("toolu_1", "nowhere", {})], box, "ask", 1, CancelToken(),
                                           lambda event: None)
    assert answer.is_error and call.error == answer.content and raised is None
    assert "there is no tool named 'nowhere'; the tools are: weather" in call.error


def test_max_tool_rounds_fails_with_tool_rounds_exceeded_and_keeps_every_call(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("again", tool_calls=[("weather", {"city": "Paris"})])
    events: list = []
    run = pipeline_nb.run(pipeline(extra="max_tool_rounds: 2"), namespace={"weather": weather},
                          raise_on_error=False, on_event=events.append)
    step = run.steps["ask"]
    assert step.error.type == "tool_rounds_exceeded" and "after 2 rounds" in step.error.message
    assert [c.round for c in step.tool_calls] == [1, 2] and len(fake_anthropic.requests) == 3
    assert step.usage.output_tokens == sum(e.data.usage.output_tokens for e in events if e.kind == "done")


def test_an_interrupt_while_a_tool_runs_returns_at_once_and_keeps_the_calls(fake_anthropic: FakeAnthropic) -> None:
    started, release = threading.Event(), threading.Event()

    def stuck(city: str) -> str:
        """Never returns on its own."""
        started.set()
        release.wait(60)
        return city

    threading.Thread(target=lambda: started.wait(30) and _thread.interrupt_main(), daemon=True).start()
    fake_anthropic.reply("", tool_calls=[("weather", {"city": "Paris"}), ("stuck", {"city": "Paris"})])
    began = time.monotonic()
    try:
        with pytest.raises(pipeline_nb.RunInterrupted) as raised:
            pipeline_nb.run(pipeline("[weather, stuck]"), namespace={"weather": weather, "stuck": stuck})
        elapsed = time.monotonic() - began
    finally:
        release.set()
    step = raised.value.run.steps["ask"]
    assert step.status == "interrupted" and elapsed < 30  # not waiting for the stuck tool
    done, running = sorted(step.tool_calls, key=lambda c: c.name != "weather")
    assert done.output["temperature"] == 21 and not done.is_error
    assert running.name == "stuck" and running.error == "interrupted while it ran"


def test_thinking_blocks_go_back_with_their_signature_between_rounds(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("", thinking="I need the weather.", tool_calls=[("weather", {"city": "Paris"})], times=1)
    fake_anthropic.reply("21 C.", when="temperature")
    run = pipeline_nb.run(pipeline(extra="thinking: true"), namespace={"weather": weather})
    assert run.ok and run.steps["ask"].text == "21 C."
    assistant = fake_anthropic.requests[-1].body["messages"][1]["content"]
    assert assistant[0]["type"] == "thinking" and assistant[0]["signature"]  # the fake checks it is unchanged


def test_server_tools_are_passed_through_shown_and_priced(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("Tides are lunar.", server_tool={"name": "web_search", "input": {"query": "tides"},
                                                           "results": [{"url": "https://example.org/tides",
                                                                        "title": "Tides"}]})
    events: list = []
    run = pipeline_nb.run(dedent("""
        defaults:
          provider: claude
          pricing: {claude-sonnet-5-5: {input: 3, output: 15}}
        steps:
          - id: ask
            model: claude-sonnet-5-5
            prompt: "Why are there tides?"
            stream: true
            tools: [web_search]
        """), on_event=events.append)
    step = run.steps["ask"]
    (request,) = fake_anthropic.requests
    assert request.body["tools"][0]["name"] == "web_search" and request.body["tools"][0]["type"].startswith(
        "web_search_")
    (call,) = step.tool_calls
    assert call.server and call.name == "web_search" and call.input == {"query": "tides"}
    assert call.output[0]["url"] == "https://example.org/tides"
    assert step.usage.web_search_requests == 1
    tokens = (step.usage.input_tokens * 3 + step.usage.output_tokens * 15) / 1e6
    assert step.cost == pytest.approx(tokens + 10 / 1000)  # $10 per 1,000 searches
    assert [e.data for e in events if e.kind == "tool_result"] == [call]


def test_workspace_tools_read_inside_workdir_and_refuse_escapes(fake_anthropic: FakeAnthropic,
                                                               tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("tides are lunar\n")
    (tmp_path / "secret.txt").write_text("the key\n")
    monkeypatch.chdir(tmp_path)
    fake_anthropic.reply("", tool_calls=[("read_file", {"path": "notes.txt"}), ("read_file", {"path": "../secret.txt"})],
                         times=1)
    fake_anthropic.reply("Read.")
    run = pipeline_nb.run(pipeline("[read_file]", extra="workdir: work"))
    inside, outside = run.steps["ask"].tool_calls
    assert "tides are lunar" in str(inside.output) and not inside.is_error
    assert outside.is_error and "the key" not in json.dumps(fake_anthropic.requests[-1].body)


def test_a_cassette_replays_the_loop_and_a_changed_tool_is_a_miss_naming_it(fake_anthropic: FakeAnthropic,
                                                                           tmp_path: Path) -> None:
    cassette = tmp_path / "tools.jsonl"
    fake_anthropic.reply("", tool_calls=[("weather", {"city": "Paris"})], times=1)
    fake_anthropic.reply("It is 21 C.", when="temperature")
    recorded = pipeline_nb.run(pipeline(), namespace={"weather": weather}, cassette=str(cassette),
                               cassette_mode="record")
    assert recorded.ok and len(fake_anthropic.requests) == 2
    ran: list = []

    def counted(city: str, unit: Literal["C", "F"] = "C") -> dict:
        """The weather in a city now.

        Args:
            city: the city's name
            unit: degrees Celsius or Fahrenheit
        """
        ran.append(city)
        return weather(city, unit)

    replayed = pipeline_nb.run(pipeline(), namespace={"weather": counted}, cassette=str(cassette),
                               cassette_mode="replay")
    assert replayed.ok and replayed.steps["ask"].text == "It is 21 C." and ran == ["Paris"]  # tools run again
    assert len(fake_anthropic.requests) == 2

    def warmer(city: str, unit: Literal["C", "F"] = "C") -> dict:
        """The weather in a city now.

        Args:
            city: the city's name
            unit: degrees Celsius or Fahrenheit
        """
        return {**weather(city, unit), "temperature": 25}

    missed = pipeline_nb.run(pipeline(), namespace={"weather": warmer}, cassette=str(cassette),
                             cassette_mode="replay", raise_on_error=False)
    error = missed.steps["ask"].error
    assert error.type == "cassette_miss"
    assert "call 2 of the tool loop, after tools weather ran" in error.message


def test_the_mock_provider_runs_a_tool_loop_offline() -> None:
    events: list = []
    run = pipeline_nb.run(dedent("""
        steps:
          - id: ask
            prompt: "How many people live in Paris"
            stream: true
            mock_delay: 0
            tools: [population]
        """), namespace={"population": population}, on_event=events.append)
    step = run.steps["ask"]
    assert run.ok and [(c.name, c.input, c.output) for c in step.tool_calls] == [
        ("population", {"city": "Paris"}, 2_100_000)]
    assert "2100000" in step.text
    assert [e.data.input for e in events if e.kind == "tool_call"][-1] == {"city": "Paris"}


def test_ctx_invoke_takes_tools() -> None:
    def ask(ctx) -> str:
        return ctx.invoke("Population of Paris", tools=[population]).text

    run = pipeline_nb.run("steps:\n  - {id: a, call: ask}\n", namespace={"ask": ask})
    assert run.ok and "2100000" in run.steps["a"].output


@pytest.mark.parametrize(("tools", "extra", "message", "where"), [
    ("[wether]", "", "tools[0]: no function, server tool or workspace tool is named 'wether'", "7:12"),
    ("[weather, weather]", "", "two tools are named 'weather' (tools[0] and tools[1])", "7:12"),
    ("[weather]", "tool_choice: population", "tool_choice 'population' is not auto, any, none or one of", "8:18"),
    ("[untyped]", "", "untyped", "7:12"),
])
def test_tools_that_cannot_be_resolved_are_spec_errors_with_line_col(tools: str, extra: str, message: str,
                                                                     where: str) -> None:
    def untyped(city):  # noqa: ANN001
        return city

    with pytest.raises(PipelineSpecError) as raised:
        pipeline_nb.run(pipeline(tools, extra=extra), namespace={"weather": weather, "untyped": untyped})
    assert message in str(raised.value) and f":{where}:" in str(raised.value)


def test_a_batch_step_refuses_tools_with_line_col() -> None:
    with pytest.raises(PipelineSpecError) as raised:
        pipeline_nb.run(dedent("""
            steps:
              - id: many
                for_each: [a, b]
                batch: true
                prompt: "{{ item }}"
                tools: [weather]
            """), namespace={"weather": weather})
    assert "a batch step cannot use tools" in str(raised.value) and ":7:" in str(raised.value)


def test_pipeline_nb_invoke_takes_functions_as_tools() -> None:
    reply = pipeline_nb.invoke("Population of Paris", tools=[population], stream=True)
    assert "2100000" in reply.text and reply.round == 2


def test_a_tool_that_returns_a_figure_sends_an_image_and_long_text_is_cut_with_a_note(
        fake_anthropic: FakeAnthropic) -> None:
    from PIL import Image

    def chart(city: str) -> Image.Image:
        """A chart of the city's tides."""
        return Image.new("RGB", (40, 20), "navy")

    def dump(city: str) -> str:
        """Everything known about a city."""
        return "x" * 250_000

    fake_anthropic.reply("", tool_calls=[("chart", {"city": "Paris"}), ("dump", {"city": "Paris"})], times=1)
    fake_anthropic.reply("Seen.")
    run = pipeline_nb.run(pipeline("[chart, dump]"), namespace={"chart": chart, "dump": dump})
    assert run.ok
    image, text = fake_anthropic.requests[-1].tool_results
    assert [block["type"] for block in image["content"]] == ["image"]
    assert image["content"][0]["source"]["media_type"] == "image/png"
    assert len(text["content"]) < 101_000 and "truncated" in text["content"]
    assert "truncated" in run.steps["ask"].tool_calls[1].note


def test_a_server_tool_reply_records_and_replays_from_a_cassette(fake_anthropic: FakeAnthropic,
                                                                  tmp_path: Path) -> None:
    fake_anthropic.reply("Lunar.", server_tool={"name": "web_search", "input": {"query": "tides"},
                                                "results": [{"url": "https://example.org", "title": "Tides"}]})
    source = "defaults: {provider: claude}\nsteps:\n  - {id: a, prompt: 'Tides?', stream: true, tools: [web_search]}\n"
    cassette = tmp_path / "search.jsonl"
    recorded = pipeline_nb.run(source, cassette=str(cassette), cassette_mode="record")
    replayed = pipeline_nb.run(source, cassette=str(cassette), cassette_mode="replay")
    assert replayed.steps["a"].tool_calls == recorded.steps["a"].tool_calls
    assert replayed.steps["a"].usage.web_search_requests == 1 and len(fake_anthropic.requests) == 1
