"""The live view's code (its JS with its CSS inside, about 22 KB) crosses once per kernel: the
first view carries it, every later view a stub of under 1 KB that uses the code the page has,
or asks the kernel for it with a custom message (a reloaded page, another tab). The views of a
kernel share one Layout, which they never close. In-process checks, then a real kernel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("anywidget")

from pipeline_nb.display import _widget as widget  # noqa: E402
from tests.reliability._support import Kernel, kernel_manager  # noqa: E402


@pytest.fixture
def fresh_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if no view of this process had been made yet."""
    monkeypatch.setattr(widget.LiveView, "code_sent", False)


def test_the_first_view_carries_the_code_and_later_views_a_stub(fresh_kernel: None) -> None:
    first, second, third = (widget.LiveView(title=str(n)) for n in range(3))
    states = [view.get_state() for view in (first, second, third)]
    assert states[0]["_esm"] == widget.CODE and "function render(" in widget.CODE
    assert states[1]["_esm"] == states[2]["_esm"] == widget.STUB and len(widget.STUB) < 1024
    assert all("_css" not in state for state in states)  # the code adds its CSS to the page itself
    assert widget.compact((Path(widget.__file__).parent / "live.css").read_text()) in json.loads(
        widget.CODE.split("\n", 1)[0].split(",CSS=", 1)[1].rstrip(";"))
    assert first.layout is second.layout is third.layout  # one Layout comm, not one per view
    for view in (first, second, third):
        view.close()


def test_a_stub_that_asks_is_sent_the_code(fresh_kernel: None) -> None:
    widget.LiveView()  # the first: it carried the code
    view = widget.LiveView()
    sent: list[Any] = []
    view.send = sent.append  # type: ignore[method-assign]
    ask = {"content": {"data": {"method": "custom", "content": {"code": widget.VERSION}}}, "buffers": []}
    view._handle_msg(ask)
    assert sent == [{"code": widget.VERSION, "source": widget.CODE}]
    view._handle_msg({"content": {"data": {"method": "custom", "content": {"code": "another"}}}, "buffers": []})
    assert len(sent) == 1  # a stub of another version is not this code's


def pipeline_cell(word: str) -> str:
    return f'%%pipeline\nsteps:\n  - {{id: a, prompt: "{word}", mock_delay: 0, stream: true}}\n'


def opened(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["content"]["data"]["state"] for m in messages if m["msg_type"] == "comm_open"]


def test_in_a_kernel_the_second_cell_sends_no_code_and_the_kernel_answers_a_stub(tmp_path: Path) -> None:
    km = kernel_manager(tmp_path)
    km.start_kernel(cwd=str(tmp_path))
    kernel = Kernel(km)
    try:
        kernel.check("%load_ext pipeline_nb")
        first = kernel.execute(pipeline_cell("one"), timeout=60)
        second = kernel.execute(pipeline_cell("two"), timeout=60)
        assert [s.get("_esm") == widget.CODE for s in opened(first)].count(True) == 1
        # the second cell: its view only (no Layout of its own), with the stub
        assert [s.get("_model_name") for s in opened(second)] == ["AnyModel"]
        assert opened(second)[0]["_esm"] == widget.STUB
        assert sum(len(json.dumps(m["content"])) for m in second if m["msg_type"] == "comm_open") < 2048
        assert not [m for m in first + second if m["msg_type"] == "error"]

        # a page without the code: its stub asks, the kernel (idle) answers with the source
        comm_id = kernel.check("from pipeline_nb.display import LiveView\n_view = LiveView()\n"
                               "print(_view.comm.comm_id, end='')")
        msg = kernel.client.session.msg("comm_msg", {"comm_id": comm_id, "data": {
            "method": "custom", "content": {"code": widget.VERSION}}})
        kernel.client.shell_channel.send(msg)
        answers = kernel.collect(msg["header"]["msg_id"], 30)
        sources = [m["content"]["data"]["content"].get("source") for m in answers
                   if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id]
        assert sources == [widget.CODE]
    finally:
        kernel.client.stop_channels()
        km.shutdown_kernel(now=True)
