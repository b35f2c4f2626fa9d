"""Cassettes: record through the real SDK against FakeAnthropic, replay offline, streamed."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from IPython import get_ipython
from IPython.testing.globalipapp import start_ipython

import pipeline_nb
from pipeline_nb.content import Reply
from pipeline_nb.streaming import BufferHandler
from pipeline_nb.testing import FakeAnthropic

SPEC = """
defaults: {provider: claude, retries: 0}
steps:
  - id: a
    prompt: "Explain {{ topic }}"
    stream: true
  - id: fan
    for_each: "['x', 'y', 'z']"
    max_parallel: 3
    prompt: "Item {{ item }}"
  - id: js
    prompt: "json please"
    output_schema: {type: object, properties: {n: {type: integer}}, required: [n]}
"""


def script(fake: FakeAnthropic) -> None:
    fake.reply("Tides rise and fall.", when="Explain", chunks=["Tides ", "rise ", "and ", "fall."])
    fake.reply('{"n": 7}', when="json")
    for item, delay in (("x", 0.05), ("y", 0.0), ("z", 0.02)):
        fake.reply(f"reply {item}", when=f"Item {item}", delay=delay)


def test_record_then_replay_is_exact_streams_and_sends_nothing(fake_anthropic, tmp_path):
    script(fake_anthropic)
    cassette = tmp_path / "c.jsonl"
    recorded = BufferHandler()
    first = pipeline_nb.run(SPEC, vars={"topic": "tides"}, cassette=cassette, cassette_mode="record",
                            on_event=recorded)
    assert len(fake_anthropic.requests) == 5
    fake_anthropic.clear()

    replayed = BufferHandler()
    second = pipeline_nb.run(SPEC, vars={"topic": "tides"}, cassette=cassette, cassette_mode="replay",
                             on_event=replayed)
    assert fake_anthropic.requests == []
    for step_id in first.steps:
        assert second.steps[step_id].text == first.steps[step_id].text
        assert second.steps[step_id].output == first.steps[step_id].output
    assert second.steps["js"].output == {"n": 7}
    assert second.steps["fan"].output == ["reply x", "reply y", "reply z"]
    deltas = [e.data.content for e in replayed.events if e.kind == "delta" and e.data.step_id == "a"]
    assert deltas == ["Tides ", "rise ", "and ", "fall."]  # a replay streams the recorded deltas
    assert "sk-ant" not in cassette.read_text()


def test_two_recordings_give_the_same_bytes_whatever_the_completion_order(fake_anthropic, tmp_path):
    script(fake_anthropic)
    files = []
    for n in range(2):
        path = tmp_path / f"c{n}.jsonl"
        pipeline_nb.run(SPEC, vars={"topic": "tides"}, cassette=path, cassette_mode="record")
        files.append(path.read_bytes())
    assert files[0] == files[1]
    entries = [json.loads(line) for line in files[0].decode().splitlines()]
    assert [e["key"] for e in entries] == sorted(e["key"] for e in entries)
    assert not any(k in entries[0] for k in ("timestamp", "time", "api_key", "base_url"))


def test_a_replay_miss_names_the_cassette_the_step_and_the_fix(fake_anthropic, tmp_path):
    cassette = tmp_path / "empty.jsonl"
    run = pipeline_nb.run(SPEC, vars={"topic": "tides"}, cassette=cassette, cassette_mode="replay",
                          raise_on_error=False)
    error = run.steps["a"].error
    assert error.type == "cassette_miss"
    assert str(cassette) in error.message and "--cassette-mode record" in error.message
    with pytest.raises(pipeline_nb.StepError, match="step 'a' failed: cassette_miss"):
        pipeline_nb.raise_for_status(run)
    assert fake_anthropic.requests == []


def test_auto_replays_hits_and_records_misses(fake_anthropic, tmp_path):
    script(fake_anthropic)
    cassette = tmp_path / "c.jsonl"
    pipeline_nb.run(SPEC, vars={"topic": "tides"}, cassette=cassette, cassette_mode="auto")
    fake_anthropic.clear()
    script(fake_anthropic)
    pipeline_nb.run(SPEC, vars={"topic": "moons"}, cassette=cassette, cassette_mode="auto")
    assert [r.prompt for r in fake_anthropic.requests] == ["Explain moons"]


def test_flags_beat_yaml_which_beats_the_environment(fake_anthropic, tmp_path, monkeypatch):
    script(fake_anthropic)
    yaml_cassette, env_cassette, flag_cassette = (tmp_path / n for n in ("yaml.jsonl", "env.jsonl", "flag.jsonl"))
    monkeypatch.setenv("PIPELINE_NB_CASSETTE", str(env_cassette))
    monkeypatch.setenv("PIPELINE_NB_CASSETTE_MODE", "record")
    spec = "defaults: {provider: claude, retries: 0}\nsteps:\n  - id: a\n    prompt: Explain tides\n"
    pipeline_nb.run(spec)
    assert env_cassette.exists()
    monkeypatch.chdir(tmp_path)  # a YAML-set cassette stays in the working directory (for a string spec)
    with_yaml = spec.replace("retries: 0", f"retries: 0, cassette: {yaml_cassette.name}")
    pipeline_nb.run(with_yaml)
    assert yaml_cassette.exists()
    pipeline_nb.run(with_yaml, cassette=flag_cassette)
    assert flag_cassette.exists()
    fake_anthropic.clear()
    monkeypatch.setenv("PIPELINE_NB_CASSETTE_MODE", "replay")
    run = pipeline_nb.run(spec.replace("tides", "nothing recorded"), raise_on_error=False)
    assert run.steps["a"].error.type == "cassette_miss" and fake_anthropic.requests == []


def test_cli_round_trip_prints_the_same_stream_and_replays_offline(fake_anthropic, tmp_path):
    script(fake_anthropic)
    spec_file = tmp_path / "p.yaml"
    spec_file.write_text(SPEC.replace("{{ topic }}", "tides"))
    cassette = tmp_path / "c.jsonl"
    env = {"ANTHROPIC_BASE_URL": fake_anthropic.base_url, "ANTHROPIC_API_KEY": "sk-ant-test", "PATH": "/usr/bin"}

    def cli(mode: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pipeline_nb", "run", str(spec_file), "--cassette", str(cassette),
             "--cassette-mode", mode], capture_output=True, text=True, env={**env, **extra}, timeout=60)

    recorded = cli("record")
    assert recorded.returncode == 0, recorded.stderr
    fake_anthropic.clear()
    replayed = cli("replay", ANTHROPIC_BASE_URL="http://127.0.0.1:9", ANTHROPIC_API_KEY="")
    assert replayed.returncode == 0, replayed.stderr
    # the streamed step is exact; unstreamed for_each items print as they finish
    assert replayed.stdout.startswith("Tides rise and fall.\n") and recorded.stdout.startswith("Tides rise and fall.\n")
    assert sorted(replayed.stdout.splitlines()) == sorted(recorded.stdout.splitlines())
    assert fake_anthropic.requests == []
    spec_file.write_text(SPEC.replace("{{ topic }}", "moons"))
    missed = cli("replay")
    assert missed.returncode == 1 and "cassette_miss" in missed.stderr and "--cassette-mode record" in missed.stderr


def test_magic_round_trip_and_nbval_markers_as_yaml_comments(fake_anthropic, tmp_path):
    script(fake_anthropic)
    ip = start_ipython() or get_ipython()  # one global shell per process
    ip.run_line_magic("load_ext", "pipeline_nb")
    ip.user_ns["topic"] = "tides"
    cassette = tmp_path / "m.jsonl"
    body = "# NBVAL_IGNORE_OUTPUT\n" + SPEC
    ip.run_cell_magic("pipeline", f"rec --cassette {cassette} --cassette-mode record", body)
    fake_anthropic.clear()
    ip.run_cell_magic("pipeline", f"rep --cassette {cassette} --cassette-mode replay", body)
    assert fake_anthropic.requests == []
    rec, rep = ip.user_ns["rec"], ip.user_ns["rep"]
    assert {k: s.text for k, s in rec.steps.items()} == {k: s.text for k, s in rep.steps.items()}


def test_paced_replay_keeps_the_recorded_gaps_and_fast_replay_does_not(tmp_path):
    spec = "steps:\n  - id: a\n    prompt: one two three four five six\n    stream: true\n    mock_delay: 0.04\n"
    cassette = tmp_path / "paced.jsonl"
    pipeline_nb.run(spec, cassette=cassette, cassette_mode="record")
    assert "pace_ms" not in json.loads(cassette.read_text())  # timings are opt-in: they differ every time
    pipeline_nb.run(spec, cassette=cassette, cassette_mode="record", cassette_pace=True)
    entry = json.loads(cassette.read_text())
    assert len(entry["pace_ms"]) == len(entry["events"]) and min(entry["pace_ms"][1:]) >= 35

    def arrival_gaps(**options: object) -> list[float]:
        times: list[float] = []
        pipeline_nb.run(spec, cassette=cassette, cassette_mode="replay",
                        on_event=lambda e: times.append(time.monotonic()) if e.kind == "delta" else None,
                        **options)
        return [b - a for a, b in zip(times, times[1:])]

    paced = arrival_gaps(cassette_pace=True)
    assert len(paced) >= 4 and min(paced) > 0.02
    assert sum(arrival_gaps()) < sum(paced) / 4


def ask_twice(ctx: pipeline_nb.StepContext) -> list[str]:
    """A python step whose model calls go through ctx.invoke."""
    return [ctx.invoke(f"Say {word}", stream=True).text for word in ("hi", "bye")]


def test_ctx_invoke_records_and_replays_through_the_cassette(fake_anthropic, tmp_path):
    fake_anthropic.reply("hello there", when="Say hi", chunks=["hel", "lo ", "there"])
    fake_anthropic.reply("so long", when="Say bye")
    spec = "defaults: {provider: claude, retries: 0}\nsteps:\n  - {id: py, call: ask_twice}\n"
    cassette = tmp_path / "invoke.jsonl"
    first = pipeline_nb.run(spec, namespace={"ask_twice": ask_twice}, cassette=cassette, cassette_mode="record")
    assert len(cassette.read_text().splitlines()) == 2
    fake_anthropic.clear()
    buffer = BufferHandler()
    second = pipeline_nb.run(spec, namespace={"ask_twice": ask_twice}, cassette=cassette, cassette_mode="replay",
                             on_event=buffer)
    assert fake_anthropic.requests == []
    assert second.steps["py"].output == first.steps["py"].output == ["hello there", "so long"]
    assert [e.data.content for e in buffer.events if e.kind == "delta" and e.data.step_id == "py.invoke1"] == [
        "hel", "lo ", "there"]


def test_a_process_killed_mid_recording_leaves_a_whole_cassette(tmp_path):
    cassette = tmp_path / "killed.jsonl"
    spec = tmp_path / "slow.yaml"
    spec.write_text("steps:\n  - id: many\n    for_each: 'range(200)'\n    max_parallel: 4\n"
                    "    prompt: 'item {{ item }} of a slow run'\n    stream: true\n    mock_delay: 0.002\n")
    recorder = subprocess.Popen([sys.executable, "-m", "pipeline_nb", "run", str(spec), "--cassette", str(cassette),
                                 "--cassette-mode", "record"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not cassette.exists() or len(cassette.read_bytes().splitlines()) < 20):
        time.sleep(0.01)
    recorder.kill()
    recorder.wait()
    lines = cassette.read_text().splitlines()
    assert 20 <= len(lines) < 200
    entries = [json.loads(line) for line in lines]  # every line whole
    assert all(Reply.from_api(e["reply"]).text == "".join(p for _, _, p in e["events"]) for e in entries)
    replay = pipeline_nb.run(spec, cassette=cassette, cassette_mode="auto")  # the rest records; nothing lost
    assert len(replay.steps["many"].items) == 200 and len(cassette.read_text().splitlines()) == 200


def test_a_damaged_cassette_is_named_with_its_line(tmp_path):
    cassette = tmp_path / "damaged.jsonl"
    pipeline_nb.run("steps:\n  - {id: a, prompt: one}\n  - {id: b, prompt: two}\n", cassette=cassette)
    cassette.write_text(cassette.read_text() + '{"key": "abc", "respo\n')
    with pytest.raises(pipeline_nb.PipelineSpecError, match=r"damaged.jsonl:3: not a cassette entry; re-record"):
        pipeline_nb.run("steps:\n  - {id: a, prompt: one}\n", cassette=cassette)
