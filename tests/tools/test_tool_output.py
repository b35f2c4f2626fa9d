"""What a tool returns becomes tool_result content: text as it is, JSON for data, an image block
for a PIL image or a matplotlib figure, a short note for bytes; long text is cut with a note."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import io
import json
import subprocess
import sys

import matplotlib
from PIL import Image as PILImage
from pydantic import BaseModel

from pipeline_nb.content import Image, Text, ToolResult, block_from_api
from pipeline_nb.tools import MAX_TOOL_OUTPUT, tool_output

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend


@dataclasses.dataclass
class Row:
    name: str
    when: datetime.date


class Summary(BaseModel):
    rows: int
    mean: float


def png_size(block: Image) -> tuple[int, int]:
    return PILImage.open(io.BytesIO(base64.b64decode(block.data))).size


def test_text_is_sent_as_it_is_and_none_as_nothing():
    assert tool_output("42 rows") == ("42 rows", None)
    assert tool_output(None) == ("", None)


def test_data_is_sent_as_json_with_unicode_kept_and_dates_as_iso():
    content, note = tool_output({"city": "Zürich", "rows": [Row("a", datetime.date(2024, 5, 1))], "tags": {"x"}})
    assert note is None
    assert content == '{"city": "Zürich", "rows": [{"name": "a", "when": "2024-05-01"}], "tags": ["x"]}'
    assert tool_output([1, 2.5, None]) == ("[1, 2.5, null]", None)


def test_dataclasses_and_pydantic_models_are_sent_as_their_fields():
    assert json.loads(tool_output(Row("b", datetime.date(2020, 1, 2)))[0]) == {"name": "b", "when": "2020-01-02"}
    assert json.loads(tool_output(Summary(rows=3, mean=1.5))[0]) == {"rows": 3, "mean": 1.5}


def test_other_objects_are_sent_as_their_repr():
    assert tool_output(3.25) == ("3.25", None)
    assert tool_output(range(3)) == ("range(0, 3)", None)
    cycle: dict = {}
    cycle["self"] = cycle
    assert tool_output(cycle) == ("{'self': {...}}", None)


def test_bytes_are_not_sent_but_described_unless_they_are_an_image():
    assert tool_output(b"\x00\x01\x02")[0] == ("[3 bytes of binary data (bytes starting 00 01 02), not shown; "
                                               "return text, JSON or an image instead]")
    buffer = io.BytesIO()
    PILImage.new("RGB", (3, 2)).save(buffer, format="PNG")
    (image,), note = tool_output(buffer.getvalue())
    assert isinstance(image, Image) and image.media_type == "image/png" and png_size(image) == (3, 2)


def test_text_over_the_limit_is_cut_with_a_visible_note():
    content, note = tool_output("x" * 250_000)
    assert note == "[truncated: 250,000 characters, the first 100,000 shown]"
    assert content == "x" * MAX_TOOL_OUTPUT + "\n" + note
    assert tool_output(list(range(10)), limit=10) == ("[0, 1, 2, \n[truncated: 30 characters, the first 10 shown]",
                                                      "[truncated: 30 characters, the first 10 shown]")


def test_a_pil_image_is_a_png_block():
    (block,), note = tool_output(PILImage.new("RGBA", (40, 30), (255, 0, 0, 128)))
    assert note is None and block.media_type == "image/png" and png_size(block) == (40, 30)


def test_a_large_pil_image_is_scaled_to_what_the_model_sees_and_says_so():
    content, note = tool_output(PILImage.new("RGB", (4000, 3000), "white"))
    assert note == "[image scaled from 4000x3000 to 1568x1176 pixels]"
    assert isinstance(content[0], Image) and png_size(content[0]) == (1568, 1176)
    assert content[1] == Text(note)


def test_an_image_mode_png_cannot_hold_is_converted():
    (block,), _ = tool_output(PILImage.new("CMYK", (5, 5)))
    assert block.media_type == "image/png" and png_size(block) == (5, 5)


def test_a_matplotlib_figure_or_its_axes_is_a_png_block():
    figure, axes = plt.subplots(figsize=(4, 3), dpi=100)
    axes.plot([1, 3, 2])
    try:
        (from_figure,), note = tool_output(figure)
        (from_axes,), _ = tool_output(axes)
    finally:
        plt.close(figure)
    assert note is None and from_figure.media_type == "image/png" and png_size(from_figure) == (400, 300)
    assert png_size(from_axes) == (400, 300)


def test_a_big_figure_is_rendered_no_larger_than_the_model_sees():
    figure = plt.figure(figsize=(20, 10), dpi=200)
    try:
        (block,), _ = tool_output(figure)
    finally:
        plt.close(figure)
    assert max(png_size(block)) <= 1568


def test_blocks_a_tool_returns_pass_through_and_their_text_is_bounded():
    picture = Image("image/png", "AAAA")
    assert tool_output([Text("caption"), picture]) == ((Text("caption"), picture), None)
    content, note = tool_output((Text("y" * 30), picture), limit=10)
    assert content == (Text("y" * 10), picture, Text(note))


def test_a_tool_result_with_blocks_goes_to_the_api_as_a_list_and_reads_back():
    (image,), _ = tool_output(PILImage.new("RGB", (2, 2)))
    result = ToolResult("toolu_1", (Text("the chart"), image))
    sent = result.to_api()
    assert sent == {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": False,
                    "content": [{"type": "text", "text": "the chart"}, image.to_api()]}
    assert block_from_api(sent) == result
    assert ToolResult("toolu_2", "plain").to_api() == {"type": "tool_result", "tool_use_id": "toolu_2",
                                                       "content": "plain", "is_error": False}


def test_recognising_a_value_imports_neither_pil_nor_matplotlib():
    code = ("import sys, pipeline_nb.tools as t; t.tool_output({'a': 1}); t.tool_output(object()); "
            "print(sorted(m for m in ('PIL', 'matplotlib', 'pydantic') if m in sys.modules))")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert shown.stdout.strip() == "[]"
