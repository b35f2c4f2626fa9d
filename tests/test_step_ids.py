"""A derived step id is a value: its text, the id it derives from and the run's step it belongs to."""

from __future__ import annotations

import pickle

import pipeline_nb
from pipeline_nb._step_ids import StepId, call_id, derives_from, item_id, nested_id, owner_of
from pipeline_nb.streaming import BufferHandler


def test_a_derived_id_is_its_text_and_knows_where_it_comes_from() -> None:
    item = item_id("fan", 2)
    deep = nested_id(item, "summary")
    assert (item, deep, call_id(deep, 1)) == ("fan[2]", "fan[2]/summary", "fan[2]/summary.invoke1")
    assert {item: 1}["fan[2]"] == 1 and isinstance(item, str)  # a dict key and JSON as before
    assert (owner_of(deep), owner_of("plain"), owner_of(None)) == ("fan", "plain", None)
    assert derives_from(call_id(deep, 1), "fan") and derives_from(deep, item) and not derives_from(item, "fa")
    assert pickle.loads(pickle.dumps(item)) == "fan[2]"


def test_the_events_of_items_calls_and_nested_steps_carry_their_owner() -> None:
    def ask(ctx):
        return ctx.invoke("inner question", mock_delay=0).text

    events = BufferHandler()
    run = pipeline_nb.run("""
steps:
  - {id: fan, for_each: [1, 2], prompt: "item {{ item }}", stream: true, mock_delay: 0}
  - {id: py, call: ask}
  - id: nest
    pipeline:
      steps:
        - {id: inner, for_each: [a], prompt: "x {{ item }}", stream: true, mock_delay: 0}
""", namespace={"ask": ask}, on_event=events)
    assert run.ok
    ids = {e.data.step_id for e in events.events if e.kind in ("delta", "done")}
    derived = [i for i in ids if isinstance(i, StepId)]
    assert sorted(derived) == ["fan[0]", "fan[1]", "nest/inner[0]", "py.invoke1"]
    assert {i: i.owner for i in derived} == {"fan[0]": "fan", "fan[1]": "fan", "nest/inner[0]": "nest",
                                             "py.invoke1": "py"}
    assert [r.id.owner for r in run.steps["fan"].items] == ["fan", "fan"]


def test_the_live_view_is_told_each_derived_ids_row_instead_of_parsing_it(capsys) -> None:
    from pipeline_nb.display._live import LiveView, WidgetHandler

    sent: list[dict] = []

    class Recording(LiveView):
        def send(self, content, buffers=None):  # noqa: ANN001 (the widget's own signature)
            sent.append(content)
            super().send(content, buffers)

    class Handler(WidgetHandler):
        view_class = Recording

    pipeline_nb.run({"steps": [{"id": "fan", "for_each": [1, 2], "prompt": "item {{ item }}", "stream": True,
                                "mock_delay": 0}]}, on_event=Handler(interval=0))
    owners: dict[str, str] = {}
    for message in sent:
        owners.update(message.get("owners", {}))
    streamed = {entry[0] for message in sent for entry in message.get("text", ())}
    assert streamed == {"fan[0]", "fan[1]"} and owners == {"fan[0]": "fan", "fan[1]": "fan"}
