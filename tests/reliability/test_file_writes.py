"""Writing output files and cassettes: a directory is refused before anything is created,
files follow the umask, a killed writer's temp file is cleaned up, and a write the OS
refuses names the file."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pipeline_nb
from pipeline_nb._files import UnsafePath, WriteError, safe_path, write_output


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def listing(*folders: Path) -> dict[Path, list[str]]:
    return {folder: sorted(os.listdir(folder)) for folder in folders}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    work = tmp_path / "work"
    (work / "existing").mkdir(parents=True)
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize("target", [".", "existing", "existing/", "sub/"])
def test_a_directory_target_is_refused_before_anything_is_created(workdir, target):
    before = listing(workdir, workdir.parent, workdir / "existing")
    run = pipeline_nb.run(f"steps:\n  - {{id: w, prompt: hi, mock_delay: 0, output_to_file: '{target}'}}\n",
                          raise_on_error=False)
    error = run.steps["w"].error
    assert error.type == "unsafe_path"
    assert error.message.startswith(f"output_to_file {target!r} is a directory, not a file; give a file name")
    assert listing(workdir, workdir.parent, workdir / "existing") == before  # no temp file, no folder


def test_safe_path_names_what_it_confines():
    with pytest.raises(UnsafePath, match=r"^cassette '\.\./x\.jsonl' is outside the working directory"):
        safe_path("../x.jsonl", what="cassette")


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_output_files_and_cassettes_follow_the_umask(workdir, umask):
    old = os.umask(umask)
    try:
        pipeline_nb.run("steps:\n  - {id: w, prompt: hi, mock_delay: 0, output_to_file: out/w.md}\n",
                        cassette=workdir / "c.jsonl", cassette_mode="record")
    finally:
        os.umask(old)
    assert mode(workdir / "out" / "w.md") == 0o666 & ~umask
    assert mode(workdir / "c.jsonl") == 0o666 & ~umask


def test_rewriting_a_file_keeps_its_mode(workdir):
    target = workdir / "kept.md"
    target.write_text("old")
    target.chmod(0o640)
    write_output("kept.md", "new")
    assert target.read_text() == "new" and mode(target) == 0o640


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_dead_writers_temp_file_is_removed_by_the_next_write_and_a_live_ones_is_not(workdir):
    out = workdir / "out"
    out.mkdir()
    dead = out / f".a.md.{dead_pid()}.0123abcd.tmp"
    dead.write_bytes(b"x" * 1_000_000)  # what kill -9 mid-write leaves
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as sleeper:
        try:
            live = out / f".a.md.{sleeper.pid}.89abcdef.tmp"  # another process writing right now
            live.write_bytes(b"y")
            mine = out / ".a.md.notes.tmp"  # not named as ours: never touched
            mine.write_bytes(b"z")
            write_output("out/a.md", "hello")
            assert (out / "a.md").read_text() == "hello"
            assert not dead.exists()
            assert live.exists() and mine.exists()
        finally:
            sleeper.kill()


def test_a_dead_compaction_temp_file_beside_a_cassette_is_removed(tmp_path):
    leftover = tmp_path / f".c.jsonl.{dead_pid()}.fedcba98.tmp"
    leftover.write_text('{"half": ')
    pipeline_nb.run("steps:\n  - {id: w, prompt: hi, mock_delay: 0}\n", cassette=tmp_path / "c.jsonl",
                    cassette_mode="record")
    assert sorted(os.listdir(tmp_path)) == ["c.jsonl"]


LIMITED = textwrap.dedent("""
    import json, resource, sys
    import pipeline_nb
    resource.setrlimit(resource.RLIMIT_FSIZE, (10, 10))  # Python ignores SIGXFSZ: writes get EFBIG
    run = pipeline_nb.run("steps:\\n  - {id: w, prompt: hi, mock_delay: 0, output_to_file: outputs/a.md}\\n",
                          raise_on_error=False)
    print(json.dumps(run.steps["w"].error.message))
""")


def test_a_refused_output_write_names_the_file_and_the_reason(workdir):
    done = subprocess.run([sys.executable, "-c", LIMITED], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == "could not write outputs/a.md: File too large"
    assert os.listdir(workdir / "outputs") == []  # the temp file is gone too


def test_write_error_is_an_os_error_that_names_the_file(workdir):
    (workdir / "blocker").write_text("")  # a file where the folder should be
    with pytest.raises(WriteError) as caught:
        write_output("blocker/a.md", "text")
    assert isinstance(caught.value, OSError)
    assert str(caught.value) == "could not write blocker/a.md: part of its folder is a file"


def test_a_step_whose_output_cannot_be_written_fails_as_write_error_and_keeps_its_output(workdir):
    (workdir / "blocker").write_text("")
    run = pipeline_nb.run("steps:\n  - {id: a, prompt: hi, mock_delay: 0, output_to_file: blocker/a.md}\n",
                          raise_on_error=False)
    step = run.steps["a"]
    assert step.status == "error" and step.error.type == "write_error"
    assert step.error.message == "could not write blocker/a.md: part of its folder is a file"
    assert step.text.startswith("[mock")  # the reply is paid for: it stays on the step
