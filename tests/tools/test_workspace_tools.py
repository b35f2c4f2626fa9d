"""The workspace tools read, write, edit, list and search the files of one folder on a real disk,
and refuse every path that leaves it (``..``, an absolute path, a symlink pointing out) without
writing anything outside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline_nb.tools import WORKSPACE_TOOLS, ToolDefinitionError, ToolInputError, workspace_tools
from pipeline_nb.tools import _workspace


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("the secret\n")
    return folder


@pytest.fixture
def work(tmp_path: Path, outside: Path) -> Path:
    folder = tmp_path / "work"
    (folder / "notes").mkdir(parents=True)
    (folder / "notes" / "a.md").write_text("# Title\nalpha line\nbeta line\n")
    (folder / "data.csv").write_text("x,y\n1,2\n")
    (folder / "link_out.txt").symlink_to(outside / "secret.txt")
    (folder / "dir_out").symlink_to(outside)
    return folder


@pytest.fixture
def tools(work: Path):
    return workspace_tools(work)


def call(tools, name: str, **input):
    return tools[name].call(input)


def refused(tools, name: str, **input) -> str:
    with pytest.raises(ToolInputError) as caught:
        call(tools, name, **input)
    return str(caught.value)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_five_tools_are_described_by_their_docstrings(tools):
    assert set(tools) == WORKSPACE_TOOLS == {"read_file", "write_file", "edit_file", "list_files", "search_files"}
    read = tools["read_file"].to_api()
    assert read["description"].startswith("Read a text file in the working directory.")
    assert read["input_schema"]["properties"]["path"]["description"].startswith("The file, relative to the working")
    assert read["input_schema"]["required"] == ["path"]


def test_read_file_returns_the_text_as_written_and_a_window_says_how_to_read_on(tools):
    assert call(tools, "read_file", path="notes/a.md") == "# Title\nalpha line\nbeta line\n"
    assert call(tools, "read_file", path="notes/a.md", offset=2, limit=1) == \
        "alpha line\n[line 2 of notes/a.md; more follow: read on with offset=3]"
    assert call(tools, "read_file", path="notes/a.md", offset=2) == \
        "alpha line\nbeta line\n[lines 2-3 of notes/a.md, the end of the file]"
    assert call(tools, "read_file", path="notes/a.md", offset=9) == "[notes/a.md has fewer than 9 lines]"


def test_read_file_stops_at_a_bounded_size(tools, work, monkeypatch):
    monkeypatch.setattr(_workspace, "MAX_READ_CHARS", 25)
    (work / "long.txt").write_text("".join(f"line {i:04}\n" for i in range(100)))
    assert call(tools, "read_file", path="long.txt") == \
        "line 0000\nline 0001\n[lines 1-2 of long.txt; more follow: read on with offset=3]"


def test_read_file_refuses_missing_binary_and_folder_paths(tools, work):
    (work / "blob.bin").write_bytes(b"\x89PNG\x00\x00\x01")
    assert "there is no file 'nope.md' in the working directory" in refused(tools, "read_file", path="nope.md")
    assert "blob.bin is a binary file (7 bytes)" in refused(tools, "read_file", path="blob.bin")
    assert "read_file path 'notes' is a directory, not a file" in refused(tools, "read_file", path="notes")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_read_file_does_not_block_on_a_fifo(tools, work):
    os.mkfifo(work / "pipe")
    assert "pipe is not a regular file" in refused(tools, "read_file", path="pipe")


def test_write_file_creates_folders_replaces_whole_and_leaves_no_temp_file(tools, work):
    assert call(tools, "write_file", path="out/report.md", content="v1\n") == "created out/report.md (3 characters)"
    assert call(tools, "write_file", path="out/report.md", content="v2\n") == "replaced out/report.md (3 characters)"
    assert (work / "out" / "report.md").read_text() == "v2\n"
    assert os.listdir(work / "out") == ["report.md"]


def test_edit_file_replaces_the_one_match_and_keeps_line_endings(tools, work):
    (work / "crlf.txt").write_bytes(b"one\r\ntwo\r\n")
    assert call(tools, "edit_file", path="crlf.txt", old="two", new="2") == \
        "edited crlf.txt: replaced 3 characters with 1"
    assert (work / "crlf.txt").read_bytes() == b"one\r\n2\r\n"


def test_edit_file_with_no_match_or_several_says_how_many_and_changes_nothing(tools, work):
    before = snapshot(work)
    assert refused(tools, "edit_file", path="notes/a.md", old="gamma", new="x") == \
        "old was not found in notes/a.md; read_file it and copy the text exactly, with its spaces and line breaks"
    assert refused(tools, "edit_file", path="notes/a.md", old=" line", new="x").startswith(
        "old matches 2 places in notes/a.md, so the edit is ambiguous; include more of the surrounding text")
    assert "old must not be empty" in refused(tools, "edit_file", path="notes/a.md", old="", new="x")
    assert snapshot(work) == before


def test_list_files_lists_a_folder_or_matches_a_pattern_at_any_depth(tools, work):
    (work / "notes" / "b.csv").write_text("")
    (work / "__pycache__").mkdir()
    (work / "__pycache__" / "c.csv").write_text("")
    assert call(tools, "list_files") == "__pycache__/\ndata.csv\nnotes/"  # the symlinks out are not shown
    assert call(tools, "list_files", path="notes") == "notes/a.md\nnotes/b.csv"
    assert call(tools, "list_files", pattern="*.csv") == "data.csv\nnotes/b.csv"
    assert call(tools, "list_files", pattern="notes/*") == "notes/a.md\nnotes/b.csv"
    assert call(tools, "list_files", pattern="**/a.md") == "notes/a.md"
    assert call(tools, "list_files", pattern="*.json") == "[no entries match '*.json' in .]"


def test_list_files_is_bounded(tools, work, monkeypatch):
    monkeypatch.setattr(_workspace, "MAX_ENTRIES", 2)
    assert call(tools, "list_files", pattern="*") == \
        "data.csv\nnotes/\n[the first 2 entries shown; more exist: narrow path or pattern]"


def test_search_files_returns_file_line_text_and_is_bounded(tools, work, monkeypatch):
    assert call(tools, "search_files", pattern=r"^\w+ line") == "notes/a.md:2: alpha line\nnotes/a.md:3: beta line"
    assert call(tools, "search_files", pattern="1,2", glob="*.csv") == "data.csv:2: 1,2"
    assert call(tools, "search_files", pattern="secret") == "[no line matches 'secret' in .]"  # links out skipped
    monkeypatch.setattr(_workspace, "MAX_MATCHES", 1)
    assert call(tools, "search_files", pattern="line") == \
        "notes/a.md:2: alpha line\n[the first 1 matches shown; more exist: narrow pattern, path or glob]"


def test_a_bad_regular_expression_is_an_input_error(tools):
    assert refused(tools, "search_files", pattern="(unclosed").startswith(
        "pattern '(unclosed' is not a valid regular expression: missing ), unterminated subpattern")


ESCAPES = [
    ("read_file", {"path": "../outside/secret.txt"}),
    ("read_file", {"path": "link_out.txt"}),
    ("write_file", {"path": "../outside/new.txt", "content": "x"}),
    ("write_file", {"path": "dir_out/new.txt", "content": "x"}),
    ("write_file", {"path": "link_out.txt", "content": "overwritten"}),
    ("edit_file", {"path": "link_out.txt", "old": "secret", "new": "x"}),
    ("list_files", {"path": ".."}),
    ("list_files", {"path": "dir_out"}),
    ("search_files", {"pattern": "secret", "path": "../outside"}),
]


@pytest.mark.parametrize("name, input", ESCAPES, ids=[f"{n}-{i['path']}" for n, i in ESCAPES])
def test_a_path_that_leaves_the_workspace_is_refused_in_output_to_files_words(tools, work, outside, name, input):
    before = snapshot(outside)
    message = refused(tools, name, **input)
    assert message == (f"{name} path {input['path']!r} is outside the working directory {work}; "
                       "use a relative path without '..'")
    assert snapshot(outside) == before


def test_an_absolute_path_elsewhere_is_refused_and_one_inside_is_taken(tools, work, outside):
    target = str(outside / "secret.txt")
    assert refused(tools, "read_file", path=target).startswith(f"read_file path {target!r} is outside the working")
    assert refused(tools, "write_file", path=str(outside / "x"), content="x").startswith("write_file path")
    assert not (outside / "x").exists()
    assert call(tools, "read_file", path=str(work / "data.csv")) == "x,y\n1,2\n"


def test_a_pattern_cannot_climb_out_of_the_folder(tools):
    assert "must be relative to the folder, without '..'" in refused(tools, "list_files", pattern="../*")


def test_the_workdir_must_be_an_existing_folder(tmp_path):
    with pytest.raises(ToolDefinitionError, match="is not an existing folder"):
        workspace_tools(tmp_path / "missing")
