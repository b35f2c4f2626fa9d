"""for_each through the real SDK against FakeAnthropic: order, bounded concurrency, items,
failures and progress events."""

from __future__ import annotations

from textwrap import dedent

import pytest

import pipeline_nb

from pipeline_nb._results import Usage
from pipeline_nb.streaming import BufferHandler, Event
from pipeline_nb.testing import FakeAnthropic

from _wf import prompts, run, spec_error


def test_output_is_in_input_order_when_later_items_finish_first(fake_anthropic: FakeAnthropic) -> None:
    for i in range(4):  # item 0 is the slowest, item 3 the fastest
        fake_anthropic.reply(f"answer {i}", when=f"item {i}", delay=0.08 * (3 - i), chunks=["answer ", f"{i}"])
    events: list[Event] = []
    result = run("""
        steps:
          - id: fan
            for_each: [0, 1, 2, 3]
            prompt: "item {{ item }}"
            stream: true
    """, on_event=events.append)
    fan = result.steps["fan"]
    assert fan.status == "ok"
    finished = [e.data.step_id for e in events if e.kind == "done"]
    assert finished[0] == "fan[3]" and finished[-1] == "fan[0]"
    assert fan.output == ["answer 0", "answer 1", "answer 2", "answer 3"]
    assert [item.id for item in fan.items] == ["fan[0]", "fan[1]", "fan[2]", "fan[3]"]
    assert fan.text == "answer 0\n\nanswer 1\n\nanswer 2\n\nanswer 3"


def test_max_parallel_bounds_the_concurrent_requests(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("slow reply", delay=0.08, chunks=["slow ", "reply"])
    result = run("""
        steps:
          - id: fan
            for_each: "{{ range(9) | list }}"
            max_parallel: 3
            prompt: "item {{ item }}"
            stream: true
    """)
    assert result.steps["fan"].status == "ok" and len(fake_anthropic.requests) == 9
    assert fake_anthropic.max_concurrent == 3


def test_max_parallel_defaults_to_four(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply("slow reply", delay=0.08, chunks=["slow ", "reply"])
    result = run("""
        steps:
          - id: fan
            for_each: [a, b, c, d, e, f]
            prompt: "item {{ item }}"
    """)
    assert result.ok and fake_anthropic.max_concurrent == 4


def test_as_names_the_item_and_loop_gives_index_and_length(fake_anthropic: FakeAnthropic) -> None:
    result = run("""
        vars: {topics: [tides, moons, comets]}
        steps:
          - id: fan
            for_each: topics
            as: topic
            prompt: "{{ loop.index }}/{{ loop.length }}: {{ topic }}"
    """)
    assert result.ok
    assert sorted(prompts(fake_anthropic)) == ["0/3: tides", "1/3: moons", "2/3: comets"]
    assert result.steps["fan"].output == [f"Fake reply to: {p}" for p in ("0/3: tides", "1/3: moons", "2/3: comets")]


def test_items_are_step_results_with_their_own_text_and_usage(fake_anthropic: FakeAnthropic) -> None:
    for i, word in enumerate(["one", "two", "three"]):
        fake_anthropic.reply(f"reply {word}", when=word, usage=(10 + i, 2 + i))
    result = run("""
        steps:
          - id: fan
            for_each: [one, two, three]
            prompt: "say {{ item }}"
          - id: after
            prompt: "count {{ steps.fan.output | length }}; second {{ steps.fan.items[1].text }}"
    """)
    fan = result.steps["fan"]
    assert [(i.status, i.text, i.usage) for i in fan.items] == [
        ("ok", "reply one", Usage(10, 2)), ("ok", "reply two", Usage(11, 3)), ("ok", "reply three", Usage(12, 4))]
    assert all(i.attempts == 1 and i.duration is not None for i in fan.items)
    assert fan.usage == Usage(33, 9) and fan.note == "3 items"
    assert prompts(fake_anthropic)[-1] == "count 3; second reply two"


def test_a_failing_item_fails_the_step_by_name_and_keeps_the_others(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fault("http", status=400, when="item b", times=None, message="bad item")
    result = run("""
        steps:
          - id: fan
            for_each: [a, b, c]
            prompt: "item {{ item }}"
          - id: after
            prompt: "never"
    """)
    fan = result.steps["fan"]
    assert fan.status == "error" and fan.error.type == "item_failed"
    assert "1 of 3 items failed; first: fan[1]" in fan.error.message and "bad item" in fan.error.message
    assert fan.note == "3 items, 1 failed"
    assert [i.status for i in fan.items] == ["ok", "error", "ok"]
    assert fan.output == ["Fake reply to: item a", None, "Fake reply to: item c"]
    assert result.steps["after"].status == "skipped" and result.steps["after"].note == "skipped: step 'fan' failed"
    assert "never" not in prompts(fake_anthropic) and result.status == "error"


@pytest.mark.parametrize(("value", "got"), [("5", "int 5"), ("'abc'", "str 'abc'"), ("{'a': 1}", "dict"),
                                           ("none", "nothing (null)")])
def test_for_each_over_a_non_list_is_a_clear_step_error(fake_anthropic: FakeAnthropic, value: str, got: str) -> None:
    result = run(f"""
        steps:
          - id: fan
            for_each: "{{{{ {value} }}}}"
            prompt: "item {{{{ item }}}}"
    """)
    fan = result.steps["fan"]
    assert fan.status == "error" and f"for_each must give a list, got {got}" in fan.error.message
    assert fan.error.type == "invalid_for_each" and fan.error.message.endswith("(at <pipeline>:5:15)")
    assert fake_anthropic.requests == []


def test_for_each_over_an_empty_list_is_ok_with_no_calls(fake_anthropic: FakeAnthropic) -> None:
    result = run("""
        steps:
          - id: fan
            for_each: []
            prompt: "item {{ item }}"
    """)
    assert result.steps["fan"].status == "ok" and result.steps["fan"].output == []
    assert fake_anthropic.requests == []


def test_for_each_over_an_earlier_structured_output(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply('{"topics": ["tides", "moons"]}', when="plan")
    result = run("""
        steps:
          - id: plan
            prompt: "plan the topics"
            output_schema: {type: object, properties: {topics: {type: array, items: {type: string}}}}
          - id: fan
            for_each: steps.plan.output.topics
            prompt: "explain {{ item }}"
    """)
    assert result.steps["fan"].output == ["Fake reply to: explain tides", "Fake reply to: explain moons"]


def test_progress_events_count_n_of_total_with_failures(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.fault("http", status=400, when="item b", times=None)
    events: list[Event] = []
    result = run("""
        steps:
          - id: fan
            for_each: [a, b, c]
            max_parallel: 1
            prompt: "item {{ item }}"
    """, on_event=events.append)
    notes = [e.data.note for e in events if e.kind == "progress"]
    assert notes == ["0 of 3", "1 of 3", "2 of 3, 1 failed", "3 of 3, 1 failed"]  # the count shows from the start
    assert all(e.data.id == "fan" for e in events if e.kind == "progress")
    assert result.steps["fan"].note == "3 items, 1 failed"


def test_item_deltas_reach_the_run_handlers_under_item_ids(fake_anthropic: FakeAnthropic) -> None:
    buf = BufferHandler()
    result = run("""
        steps:
          - id: fan
            for_each: [x, y]
            prompt: "item {{ item }}"
            stream: true
    """, on_event=buf)
    assert result.ok
    assert buf.texts == {"fan[0]": "Fake reply to: item x", "fan[1]": "Fake reply to: item y"}


def test_a_for_each_steps_stream_handler_gets_its_items_deltas(fake_anthropic: FakeAnthropic) -> None:
    buf = BufferHandler()
    run("""
        steps:
          - id: fan
            for_each: [x]
            prompt: "item {{ item }}"
            stream: true
            stream_handler: buf
    """, namespace={"buf": buf})
    assert buf.texts == {"fan[0]": "Fake reply to: item x"}


def test_for_each_spec_errors_carry_line_and_column() -> None:
    error = spec_error("""
        steps:
          - id: a
            prompt: hi
          - id: fan
            for_each: steps.aa.output
            prompt: "{{ item }}"
    """)
    assert (error.location.line, error.location.col) == (7, 15)
    assert "for_each refers to steps.aa, which is not a step" in str(error)
    assert "did you mean steps.a?" in str(error)
    error = spec_error("""
        steps:
          - id: fan
            for_each: [1, 2]
            as: 2nd
            prompt: "{{ item }}"
    """)
    assert (error.location.line, error.location.col) == (6, 9) and "as '2nd' is not a valid name" in str(error)
    error = spec_error("""
        steps:
          - id: fan
            for_each: [1, 2]
            as: topic
            prompt: "{{ item }}"
    """)
    assert (error.location.line, error.location.col) == (7, 13)
    assert "prompt uses {{ item }}, which is not defined" in str(error)


def test_the_loop_names_exist_only_inside_the_items() -> None:
    error = spec_error("steps:\n  - {id: fan, for_each: [1, 2], when: item > 1, prompt: '{{ item }}'}\n")
    assert "when uses {{ item }}, which is not defined" in str(error)
    assert "when is evaluated once, before the items: it cannot use item" in str(error)
    error = spec_error("steps:\n  - {id: one, prompt: 'n {{ loop.index }}'}\n")
    assert "prompt uses {{ loop }}" in str(error) and "exists only in a for_each step" in str(error)


def test_items_stopped_by_an_interrupt_are_counted_as_interrupted_not_failed() -> None:
    seen: list[str] = []

    def interrupt_on_second_item(event) -> None:
        if event.kind == "done":
            seen.append(event.data.step_id)
            if len(seen) == 2:
                raise KeyboardInterrupt

    with pytest.raises(pipeline_nb.RunInterrupted) as raised:
        pipeline_nb.run(dedent("""
            defaults: {mock_delay: 0.05, stream: true}
            steps:
              - id: fan
                for_each: "{{ range(8) | list }}"
                max_parallel: 2
                prompt: "item {{ item }}"
        """), on_event=interrupt_on_second_item)
    fan = raised.value.run.steps["fan"]
    assert fan.status == "interrupted"
    assert "failed" not in fan.note
    stopped = sum(i.status != "ok" for i in fan.items)
    assert stopped >= 1 and fan.note.endswith(f"{stopped} interrupted")


def test_each_item_carries_its_loop_value_and_index_for_tables(fake_anthropic: FakeAnthropic) -> None:
    result = run("""
        steps:
          - id: fan
            for_each: [tides, moons, comets]
            as: topic
            prompt: "About {{ topic }}"
    """)
    rows = [(i.index, i.item, i.text) for i in result.steps["fan"].items]
    assert rows == [(0, "tides", "Fake reply to: About tides"), (1, "moons", "Fake reply to: About moons"),
                    (2, "comets", "Fake reply to: About comets")]
