"""The cassette as a store: replies survive a file that cannot be written, two processes
recording one cassette keep every entry, recording costs one append per reply, and every
entry is checked on load."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pipeline_nb
from pipeline_nb._cassette import Cassette, CassetteError, CassetteProvider
from pipeline_nb._llm import CancelToken, LLMRequest
from pipeline_nb.providers._mock import MockProvider, mock_reply

LIMITED = textwrap.dedent("""
    import json, resource, sys
    import pipeline_nb
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ: writes get EFBIG
    run = pipeline_nb.run(open(sys.argv[2]).read(), cassette=sys.argv[3], cassette_mode="record",
                          raise_on_error=False)
    print(json.dumps({"steps": {k: [s.status, s.text, str(s.error or "")] for k, s in run.steps.items()},
                      "warnings": run.warnings}))
""")
"""Runs a pipeline that records to a cassette, in a process that may write at most argv[1] bytes to a file."""

SPEC = "steps:\n" + "".join(f"  - {{id: {w}, prompt: 'say {w}', stream: true, mock_delay: 0}}\n"
                            for w in ("one", "two", "six"))  # three replies of one size


def run_limited(tmp_path: Path, limit: int, spec: str = SPEC) -> tuple[dict, Path]:
    spec_file, cassette = tmp_path / "p.yaml", tmp_path / "c.jsonl"
    spec_file.write_text(spec)
    env = {**os.environ, "PIPELINE_NB_JOURNAL": str(tmp_path / "journal.sqlite")}
    done = subprocess.run([sys.executable, "-c", LIMITED, str(limit), str(spec_file), str(cassette)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), cassette


def full_journal(tmp_path: Path) -> str:
    """The one warning of a run journal on a disk that is full: the run goes on, unrecorded."""
    return (f"the run journal {tmp_path / 'journal.sqlite'} could not be written (OperationalError: disk I/O "
            "error); this run is not fully recorded in it")


def request(prompt: str, model: str = "m") -> LLMRequest:
    return LLMRequest("mock", model, ({"role": "user", "content": prompt},), 1024, stream=True,
                      options={"mock_delay": 0})


# -- 1. a reply received while the cassette cannot be written is kept --

def test_no_reply_is_lost_when_no_byte_of_the_cassette_can_be_written(tmp_path):
    result, cassette = run_limited(tmp_path, limit=0)
    for step_id, (status, text, error) in result["steps"].items():
        assert status == "ok", error  # and the later steps are not poisoned by the first failure
        assert text == mock_reply(request(f"say {step_id}", model="claude-sonnet-5-5"))
    assert result["warnings"] == [f"could not write the cassette {cassette}: File too large; "
                                  "3 replies were kept in memory but not recorded", full_journal(tmp_path)]
    assert cassette.read_bytes() == b""


def test_a_cassette_filling_up_mid_run_keeps_whole_lines_and_every_reply(tmp_path):
    (tmp_path / "free").mkdir()
    _, full = run_limited(tmp_path / "free", limit=1 << 20)
    line = len(full.read_bytes().splitlines(keepends=True)[0])  # the three entries are the same size
    result, cassette = run_limited(tmp_path, limit=line + line // 2)  # room for one line and a half
    assert [s[0] for s in result["steps"].values()] == ["ok", "ok", "ok"]
    assert result["warnings"] == [f"could not write the cassette {cassette}: File too large; "
                                  "2 replies were kept in memory but not recorded", full_journal(tmp_path)]
    kept = cassette.read_bytes()
    assert kept.endswith(b"\n") and kept.count(b"\n") == 1  # the half-written second line was taken back
    assert Cassette(cassette).entries  # and what is there loads


def test_complete_returns_the_reply_and_flush_reports_instead_of_raising(tmp_path):
    """In process: the cassette's path becomes a folder after loading, which the OS refuses to write."""
    cassette = Cassette(tmp_path / "c.jsonl")
    (tmp_path / "c.jsonl").mkdir()
    provider = CassetteProvider(MockProvider(), cassette, "auto")
    streamed: list[str] = []
    first = provider.complete(request("hello"), lambda piece, *_: streamed.append(piece), CancelToken())
    assert first.text == "".join(streamed) == mock_reply(request("hello"))
    again = provider.complete(request("hello"), lambda *_: None, CancelToken())  # replayed from memory
    assert again.text == first.text
    cassette.flush()
    assert cassette.warnings == [f"could not write the cassette {cassette.path}: Is a directory; "
                                 "1 reply was kept in memory but not recorded"]


# -- 2. processes recording one cassette --

def test_two_cli_processes_recording_one_cassette_keep_all_60_entries(tmp_path):
    cassette = tmp_path / "same.jsonl"
    specs = []
    for name in ("a", "b"):
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(f"defaults: {{provider: mock, mock_delay: 0}}\nsteps:\n  - id: fan\n"
                        f"    for_each: 'range(30)'\n    max_parallel: 4\n    prompt: '{name} {{{{ item }}}}'\n")
        specs.append(spec)
    for trial in range(3):
        cassette.unlink(missing_ok=True)
        runs = [subprocess.Popen([sys.executable, "-m", "pipeline_nb", "run", str(spec), "--cassette", str(cassette),
                                  "--cassette-mode", "record"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True) for spec in specs]
        for run in runs:
            _, err = run.communicate(timeout=120)
            assert run.returncode == 0, err
        lines = cassette.read_text().splitlines()
        keys = [json.loads(line)["key"] for line in lines]
        assert len(Cassette(cassette).entries) == 60, f"trial {trial}"
        assert keys == sorted(set(keys)) and len(keys) == 60, f"trial {trial}: compacted, sorted, one per key"


def _record_after(barrier: multiprocessing.synchronize.Barrier, path: str, name: str) -> None:
    cassette = Cassette(path)
    provider = CassetteProvider(MockProvider(), cassette, "record")
    barrier.wait()
    for n in range(30):
        provider.complete(request(f"{name} {n}"), lambda *_: None, CancelToken())
        if n == 15:
            cassette.flush()  # a compaction while the other process appends: it must find the new file
    cassette.flush()
    assert not cassette.warnings


def test_processes_appending_and_compacting_at_once_lose_nothing(tmp_path):
    context = multiprocessing.get_context("spawn")
    for trial in range(3):
        path = tmp_path / f"c{trial}.jsonl"
        barrier = context.Barrier(3)
        workers = [context.Process(target=_record_after, args=(barrier, str(path), name)) for name in "abc"]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
            assert worker.exitcode == 0
        assert len(Cassette(path).entries) == 90, f"trial {trial}"
        assert len(path.read_text().splitlines()) == 90


COUNT_WRITES = textwrap.dedent("""
    import sys
    from pipeline_nb._cassette import Cassette, CassetteProvider
    from pipeline_nb._llm import CancelToken, LLMRequest
    from pipeline_nb.providers._mock import MockProvider

    def written():
        return int(dict(line.split(": ") for line in open("/proc/self/io").read().splitlines())["wchar"])

    cassette = Cassette(sys.argv[1])
    provider = CassetteProvider(MockProvider(), cassette, "record")
    before = written()
    for n in range(400):
        request = LLMRequest("mock", "m", ({"role": "user", "content": f"item {n}"},), 1024, stream=True,
                             options={"mock_delay": 0})
        provider.complete(request, lambda *_: None, CancelToken())
    cassette.flush()
    print(written() - before)
""")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux's /proc/self/io to count bytes written")
def test_recording_writes_each_entry_about_twice_not_the_whole_file_each_time(tmp_path):
    cassette = tmp_path / "c.jsonl"
    done = subprocess.run([sys.executable, "-c", COUNT_WRITES, str(cassette)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    size = cassette.stat().st_size
    assert len(cassette.read_text().splitlines()) == 400
    assert int(done.stdout) <= 2.5 * size  # one append per entry, one compaction; rewriting each time is ~200x


# -- 3. every entry is checked on load --

GOOD = {"v": 2, "key": "k1", "model": "m", "prompt": "p",
        "reply": {"content": [{"type": "text", "text": "hi"}], "usage": {"input_tokens": 1, "output_tokens": 2},
                  "stop_reason": "end_turn", "model": "m"}}


def with_reply(**fields: object) -> dict:
    return {**GOOD, "key": "k2", "reply": {**GOOD["reply"], **fields}}


@pytest.mark.parametrize(("line", "problem"), [
    (json.dumps(with_reply(content=[{"text": "no type"}])).encode(), "reply.content must be a list of content blocks"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "reply"}).encode(), "reply is missing"),
    (json.dumps(with_reply(usage=[1, 2])).encode(), "reply.usage must be an object of token counts"),
    (json.dumps(with_reply(usage={"input_tokens": "1"})).encode(), 'got {"input_tokens": "1"}'),
    (json.dumps(with_reply(stop_reason=3)).encode(), "reply.stop_reason must be a string or null, got 3"),
    (json.dumps({**GOOD, "key": 7}).encode(), "key must be a non-empty string, got 7"),
    (json.dumps({**GOOD, "events": [["text", 0, None]]}).encode(), "events must be a list of [kind, block index, piece]"),
    (json.dumps({**GOOD, "v": 3}).encode(), "v must be 2, the format this version reads"),
    (json.dumps({"key": "k2", "model": "m", "prompt": "p", "deltas": ["hi"],
                 "response": {"text": "hi", "usage": [1, 2], "stop_reason": "end_turn", "model": "m"}}).encode(),
     "recorded by an earlier pipeline_nb (cassette format 1, text only); delete the cassette and record it again"),
    (json.dumps(["not", "an", "entry"]).encode(), "an entry must be a JSON object"),
    (b'{"key": "k2", "prompt": "caf\xe9"}', "it is not UTF-8 text (byte 0xe9 at column 29)"),
    (b'{"key": "k2", "respo', "it is not JSON"),
])
def test_a_bad_entry_names_its_file_line_and_problem(tmp_path, line, problem):
    cassette = tmp_path / "bad.jsonl"
    cassette.write_bytes(json.dumps(GOOD).encode() + b"\n" + line + b"\n")
    with pytest.raises(CassetteError) as caught:
        Cassette(cassette)
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith(f"{cassette}:2: not a cassette entry; re-record the cassette, "
                                        "or delete line 2: ")
    assert problem in str(caught.value)
    with pytest.raises(pipeline_nb.PipelineSpecError, match=r"bad.jsonl:2: not a cassette entry"):
        pipeline_nb.run("steps:\n  - {id: a, prompt: one}\n", cassette=cassette)


def test_a_torn_last_line_is_dropped_with_a_warning_and_cut_by_the_next_append(tmp_path):
    cassette = tmp_path / "torn.jsonl"
    spec = "steps:\n  - {id: a, prompt: one, mock_delay: 0}\n  - {id: b, prompt: two, mock_delay: 0}\n"
    pipeline_nb.run(spec, cassette=cassette)
    whole = cassette.read_bytes()
    cassette.write_bytes(whole + whole.splitlines(keepends=True)[0][:40])  # a process killed mid-append
    loaded = Cassette(cassette)
    assert len(loaded.entries) == 2
    assert loaded.warnings == [f"the cassette {cassette} ended in a torn line 3 (a recording cut short); "
                               "it was ignored; the next recording removes it"]
    loaded.put(request("three"), MockProvider().complete(request("three"), lambda *_: None, CancelToken()), None)
    lines = cassette.read_bytes().splitlines()
    assert len(lines) == 3 and all(json.loads(line) for line in lines)  # appended after the cut, not onto it
    run = pipeline_nb.run(spec, cassette=cassette, cassette_mode="replay")
    assert run.ok and run.warnings == []
