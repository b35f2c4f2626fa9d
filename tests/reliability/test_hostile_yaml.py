"""Hostile pipeline files: alias bombs, bytes that are not UTF-8, files that must not be read,
and files that are not pipelines, whose content must never be echoed in an error (issue 11)."""

from __future__ import annotations

import os
import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb._pipeline_file import MAX_PIPELINE_FILE_BYTES
from pipeline_nb._yaml import MAX_EXPANDED_NODES, load_yaml
from pipeline_nb._loader import load_spec


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def alias_bomb(levels: int, width: int = 9) -> str:
    """``a: &a [x,x,...]``, then on each next line a list of ``width`` aliases of the line above."""
    names = string.ascii_lowercase[:levels]
    lines = [f"a: &a [{','.join('x' * width)}]"]
    lines += [f"{name}: &{name} [{','.join([f'*{above}'] * width)}]" for above, name in zip(names, names[1:])]
    return "\n".join(lines) + "\n"


def merge_bomb(levels: int) -> str:
    """``a: &a {k: x}``, then on each next line a mapping that merges nine aliases of the line above."""
    names = string.ascii_lowercase[:levels]
    return "a: &a {k: x}\n" + "".join(
        f"{name}: &{name} {{<<: [{','.join([f'*{above}'] * 9)}]}}\n" for above, name in zip(names, names[1:]))


def where(error: PipelineSpecError) -> tuple[str, int, int]:
    assert error.location is not None, str(error)
    return error.location.source, error.location.line, error.location.col


# -- 1. alias bombs: aliases share their value, and the expanded size is capped --

# Expanded sizes, every alias a full copy (keys count): a line of nine x is 10 values, each line below
# 1 + 9 x the one above: 91, 820, 7,381, 66,430. Counting in document order (each key 1), line 5 (e)
# ends at 74,738; line 6 (f) opens its list at 74,740 and its first *e adds 66,430: past 100,000.
@pytest.mark.timeout(20)
@pytest.mark.parametrize("levels", [9, 10])
def test_an_alias_bomb_stops_at_the_alias_that_crosses_the_limit(tmp_path, levels):
    bomb = write(tmp_path / "bomb.yaml", alias_bomb(levels))
    assert len(bomb.read_bytes()) < 400

    with pytest.raises(PipelineSpecError) as raised:
        load_spec(bomb)

    assert where(raised.value) == (str(bomb), 6, 8)
    assert f"past {MAX_EXPANDED_NODES:,} values" in raised.value.message
    assert "fewer levels of aliases" in raised.value.hint


# Four lines of twenty: 21, 421, 8,421 values. Line 4 opens at 8,869; each *c adds 8,421, and the
# eleventh (column 8 + 10 x 3) passes 100,000.
@pytest.mark.timeout(20)
def test_the_error_points_at_the_crossing_alias_within_its_line():
    with pytest.raises(PipelineSpecError) as raised:
        load_spec(alias_bomb(4, width=20))
    assert where(raised.value) == ("<pipeline>", 4, 38)


# Merges count too: {k: x} is 3 values, each line below 3 + 9 x the one above (30, 273, 2,460, 22,143);
# line 6 opens at 24,919, and its fourth *e (column 13 + 3 x 3) passes 100,000.
@pytest.mark.timeout(20)
def test_a_merge_key_bomb_is_counted_like_an_alias_bomb():
    with pytest.raises(PipelineSpecError) as raised:
        load_spec(merge_bomb(9))
    assert where(raised.value) == ("<pipeline>", 6, 22)
    assert "past 100,000 values" in raised.value.message


def test_an_alias_is_the_same_object_as_its_anchor_as_in_safe_load():
    data, smap = load_yaml("vars:\n  topics: &topics [tides, moons]\n  again: *topics\n")
    assert data["vars"]["again"] is data["vars"]["topics"] == ["tides", "moons"]
    assert smap.locate(("vars", "again", 1)) is not None  # a shared value is located through its alias


def test_anchors_aliases_and_merge_keys_load_with_the_right_values():
    spec = load_spec("""\
defaults: &defaults
  provider: mock
  max_tokens: 100
vars:
  topics: &topics [tides, moons]
  again: *topics
steps:
  - &first
    id: a
    prompt: "About {{ topics }} and {{ again }}"
    stop_sequences: &stops [END]
  - <<: *first
    id: b
    max_tokens: 50
  - <<: [{id: c, max_tokens: 7}, *first]
""")
    a, b, c = spec.steps
    assert (a.id, b.id, c.id) == ("a", "b", "c")
    assert a.prompt.source == b.prompt.source == c.prompt.source == "About {{ topics }} and {{ again }}"
    assert (a.max_tokens, b.max_tokens, c.max_tokens) == (100, 50, 7)  # own keys win, then earlier merges
    assert a.stop_sequences == b.stop_sequences == ("END",)
    assert spec.vars["again"] == ["tides", "moons"]
    assert b.where("max_tokens").line == 14 and b.where("stop_sequences").line == 11


# -- 2. bytes that are not UTF-8 --

# "steps:\n" is 7 bytes, "  - id: a\n" 10; on line 3, '    prompt: "caf' is 16 characters and 'é ' 3 bytes
BAD_UTF8 = 'steps:\n  - id: a\n    prompt: "café '.encode() + b'\xff"\n'


def test_invalid_utf8_is_a_spec_error_naming_file_line_and_byte(tmp_path):
    with pytest.raises(PipelineSpecError) as raised:
        load_spec(write(tmp_path / "bad.yaml", BAD_UTF8))
    assert where(raised.value) == (str(tmp_path / "bad.yaml"), 3, 19)
    assert raised.value.message.startswith("invalid UTF-8: byte 0xff at offset 36")
    assert "save the file as UTF-8" in raised.value.hint


def test_the_cli_exits_2_on_invalid_utf8_with_the_place_and_no_traceback(tmp_path):
    write(tmp_path / "bad.yaml", BAD_UTF8)
    done = subprocess.run([sys.executable, "-m", "pipeline_nb", "run", "bad.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "bad.yaml:3:19: invalid UTF-8: byte 0xff at offset 36" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_invalid_utf8_child_file_is_a_spec_error_with_the_childs_name(tmp_path):
    write(tmp_path / "child.yaml", BAD_UTF8)
    parent = write(tmp_path / "parent.yaml", "steps:\n  - {id: p, file: child.yaml}\n")
    assert f"{tmp_path / 'child.yaml'}:3:19: invalid UTF-8: byte 0xff at offset 36" in child_error(parent)


def child_error(parent: Path) -> str:
    """The PipelineSpecError that running ``parent`` raises at plan time, as text."""
    with pytest.raises(PipelineSpecError) as raised:
        pipeline_nb.run(parent)
    return str(raised.value)


# -- 3. files that must not be read --

@pytest.mark.timeout(20)  # a FIFO with no writer blocks whoever opens it
@pytest.mark.parametrize(("make", "kind"), [
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: os.mkfifo(p), "is a named pipe (FIFO)"),
], ids=["directory", "fifo"])
def test_a_file_step_refuses_what_is_not_a_regular_file(tmp_path, make, kind):
    make(tmp_path / "child.yaml")
    parent = write(tmp_path / "parent.yaml", "steps:\n  - {id: p, file: child.yaml}\n")
    assert f"{tmp_path / 'child.yaml'} {kind}, not a regular file" in child_error(parent)


def test_dev_zero_is_refused_without_reading_it(tmp_path):
    """In a process with 2 GB of address space: reading /dev/zero would fill it, not hang the suite."""
    write(tmp_path / "parent.yaml", "steps:\n  - {id: z, file: /dev/zero}\n")
    code = ("import resource, pipeline_nb; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); "
            "\ntry: pipeline_nb.run('parent.yaml')\nexcept pipeline_nb.PipelineSpecError as exc: print(exc)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "cannot read pipeline file: /dev/zero is a character device, not a regular file" in done.stdout, done.stderr


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(MAX_PIPELINE_FILE_BYTES + 1)  # sparse: nothing is written
    with pytest.raises(PipelineSpecError) as raised:
        load_spec(big)
    assert f"{big} ({MAX_PIPELINE_FILE_BYTES + 1:,} bytes) is larger than 10,000,000 bytes" in raised.value.message


# -- 3, continued: a file that is not a pipeline; its content never reaches an error message --

SECRET = "hunter2"
NOT_PIPELINES = {
    "text": f"{SECRET}\n",
    "list": f"- {SECRET}\n",
    "mapping": f"{SECRET}: 1\n",
    "undefined alias": f"*{SECRET}\n",
    "tag": f"!{SECRET} x\n",
    "duplicate key": f"a: 1\n{SECRET}: 1\n{SECRET}: 2\n",
}


@pytest.mark.parametrize("text", NOT_PIPELINES.values(), ids=NOT_PIPELINES)
def test_a_file_step_on_a_file_that_is_not_a_pipeline_never_echoes_it(tmp_path, text):
    (tmp_path / "outside").mkdir()
    write(tmp_path / "outside" / "secret.txt", text)
    (tmp_path / "flows").mkdir()
    parent = write(tmp_path / "flows" / "parent.yaml", "steps:\n  - {id: p, file: ../outside/secret.txt}\n")
    message = child_error(parent)
    assert "secret.txt:" in message and SECRET not in message


def test_a_text_file_is_described_by_kind_and_size(tmp_path):
    with pytest.raises(PipelineSpecError) as raised:
        load_spec(write(tmp_path / "notes.txt", "the secret\n"))
    assert "got a string (10 characters)" in str(raised.value) and "the secret" not in str(raised.value)


NOT_A_PIPELINE_TEXT = st.lists(st.sampled_from([
    SECRET, f"{SECRET}: ", f"*{SECRET}", f"!{SECRET} ", f"&{SECRET} ", f"- {SECRET}", f"'{SECRET}'", "step: ",
    "name: ", "vars: ", "defaults: ", ": ", "- ", "\n", "\n  ", "\t", "{", "}", "[", "]", ",", "?", "#", "|",
    "<<: ", "*a", "&a ", "!!str ", "!!python/name:x ", "1", "~", "2024-02-30", "\\", '"', "'", "%", "@", " ",
]), max_size=30).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=NOT_A_PIPELINE_TEXT)
def test_no_error_about_a_file_without_steps_quotes_its_content(tmp_path_factory, text):
    path = tmp_path_factory.getbasetemp() / "not_a_pipeline.txt"
    write(path, text)
    with pytest.raises(PipelineSpecError) as raised:
        load_spec(path)
    assert SECRET not in str(raised.value)
