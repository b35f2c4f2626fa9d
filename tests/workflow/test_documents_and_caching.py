"""Documents with citations and prompt caching, through the real SDK against FakeAnthropic."""

from __future__ import annotations

from pathlib import Path

import pytest

import pipeline_nb
from pipeline_nb import PipelineSpecError
from pipeline_nb.testing import FakeAnthropic, pdf_bytes

PAPER = "The tide is lunar. Spring tides follow the new moon."
NOTES = "Field notes: the harbour floods twice a day."


pdf = pdf_bytes  # (the name the tests below use)


@pytest.fixture
def papers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "paper.pdf").write_bytes(pdf("Introduction.", PAPER))
    (tmp_path / "notes.md").write_text(NOTES, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


ASK = """
defaults: {{provider: claude, retries: 0}}
steps:
  - id: ask
    prompt: "What drives the tide?"
    stream: {stream}
    attachments:
      - {{file: paper.pdf, title: Tides, citations: true}}
      - {{file: notes.md, citations: true}}
"""


@pytest.mark.parametrize("stream", ["true", "false"])
def test_a_pdf_and_a_text_file_are_sent_and_cited(fake_anthropic: FakeAnthropic, papers: Path, stream: str) -> None:
    fake_anthropic.reply("It is lunar. Harbours flood twice.",
                         cite=[("It is lunar.", "tide is lunar"), ("Harbours flood twice.", "floods twice a day")])
    events: list = []
    run = pipeline_nb.run(ASK.format(stream=stream), on_event=events.append)
    step = run.steps["ask"]
    assert run.ok and step.text == "It is lunar. Harbours flood twice."
    (request,) = fake_anthropic.requests
    assert [(d.media_type, d.title, d.citations) for d in request.documents] == [
        ("application/pdf", "Tides", True), ("text/plain", "notes.md", True)]
    pdf_cite, text_cite = step.citations
    assert (pdf_cite.cited_text, pdf_cite.document_title, pdf_cite.location, pdf_cite.start) == (
        "tide is lunar", "Tides", "page_location", 2)
    assert (text_cite.location, text_cite.document_index) == ("char_location", 1)
    assert NOTES[text_cite.start:text_cite.end] == "floods twice a day"
    streamed = [e.data.citation for e in events if e.kind == "citation"]
    assert streamed == ([pdf_cite, text_cite] if stream == "true" else [])


@pytest.mark.parametrize(("item", "message"), [
    ("missing.pdf", "attachments[0]: "),
    ("paper.xyz", "attachments[0]: "),
    ("{file: paper.pdf, citation: true}", "unknown attachment key 'citation'"),
])
def test_an_attachment_known_before_the_run_is_checked_before_any_call(
        fake_anthropic: FakeAnthropic, papers: Path, item: str, message: str) -> None:
    (papers / "paper.xyz").write_bytes(b"?")
    spec = f"defaults: {{provider: claude}}\nsteps:\n  - {{id: paid, prompt: hi}}\n  - id: ask\n    prompt: q\n" \
           f"    attachments: [{item}]\n"
    with pytest.raises(PipelineSpecError) as raised:
        pipeline_nb.run(spec)
    assert message in str(raised.value) and raised.value.step_id == "ask"
    assert raised.value.location.line == 6 and fake_anthropic.requests == []


def test_a_kernel_object_is_attached_as_a_text_document(fake_anthropic: FakeAnthropic, papers: Path) -> None:
    run = pipeline_nb.run("defaults: {provider: claude}\nsteps:\n  - id: a\n    prompt: summarise\n"
                          "    attachments: ['{{ notes }}']\n", namespace={"notes": "Kernel notes on tides."})
    (request,) = fake_anthropic.requests
    assert run.ok and [(d.media_type, d.text) for d in request.documents] == [("text/plain", "Kernel notes on tides.")]


CACHED = """
defaults: {provider: claude, retries: 0, pricing: {claude-sonnet-5-5: {input: 3, output: 15}}}
steps:
  - id: ask
    for_each: ["What drives the tide?", "When are spring tides?", "Why twice a day?"]
    as: question
    max_parallel: 3
    prompt: "{{ question }}"
    attachments:
      - {file: paper.pdf, title: Tides, cache: true}
"""


def test_a_cached_document_is_written_once_and_read_by_every_later_question(
        fake_anthropic: FakeAnthropic, papers: Path) -> None:
    run = pipeline_nb.run(CACHED)
    items = run.steps["ask"].items
    assert run.ok
    first, *later = [item.usage for item in items]
    assert first.cache_write_tokens > 0 and first.cache_read_tokens == 0
    assert all(u.cache_read_tokens == first.cache_write_tokens and u.cache_write_tokens == 0 for u in later)
    requests = fake_anthropic.requests
    assert requests[0].body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert "diagnostics" not in requests[0].body  # the first item ran alone, then the rest compared with it
    first_id = {r.body.get("diagnostics", {}).get("previous_message_id") for r in requests[1:]}
    assert len(first_id) == 1 and None not in first_id
    expected = [(u.input_tokens * 3 + u.output_tokens * 15 + u.cache_write_tokens * 3.75
                 + u.cache_read_tokens * 0.3) / 1e6 for u in [first, *later]]
    assert [item.cost for item in items] == pytest.approx(expected)
    assert run.usage.cache_read_tokens == 2 * first.cache_write_tokens


def test_a_cache_miss_says_why(fake_anthropic: FakeAnthropic, papers: Path) -> None:
    spec = CACHED.replace("max_parallel: 3", "max_parallel: 3\n    system: '{{ question }}'")
    run = pipeline_nb.run(spec)
    later = run.steps["ask"].items[1:]
    assert all(item.usage.cache_read_tokens == 0 for item in later)
    assert all(item.note.startswith("cache not read: system changed") for item in later), [i.note for i in later]


def test_the_mock_thinks_and_cites_offline_the_same_every_time(papers: Path) -> None:
    spec = {"steps": [{"id": "a", "prompt": "What is in the notes?", "stream": True, "mock_delay": 0,
                       "thinking": True, "attachments": [{"file": "notes.md", "title": "Notes", "citations": True}]}]}
    events: list = []
    first, second = pipeline_nb.run(spec, on_event=events.append), pipeline_nb.run(spec)
    step = first.steps["a"]
    assert step.content == second.steps["a"].content  # deterministic, signature included
    assert step.thinking.startswith("[mock thinking]") and step.text.endswith(NOTES.split(":")[0] + ":"
                                                                              " the harbour floods twice a day.")
    (cite,) = step.citations
    assert (cite.cited_text, cite.document_title, cite.location) == (NOTES[cite.start:cite.end].strip(), "Notes",
                                                                     "char_location")
    assert [e.data.citation for e in events if e.kind == "citation"] == [cite]


def test_a_system_prompt_marked_for_caching_is_written_once_then_read(fake_anthropic: FakeAnthropic,
                                                                     papers: Path) -> None:
    long_system = "You are a careful reviewer of coastal science. " * 40
    run = pipeline_nb.run(f"""
defaults: {{provider: claude}}
steps:
  - id: ask
    for_each: [one, two, three]
    prompt: "Question {{{{ item }}}}"
    system: {{text: "{long_system}", cache: 1h}}
""")
    first, *later = [item.usage for item in run.steps["ask"].items]
    system = fake_anthropic.requests[0].body["system"]
    assert system == [{"type": "text", "text": long_system, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    assert first.cache_write_tokens > 0 and all(u.cache_read_tokens == first.cache_write_tokens for u in later)


def test_a_plain_attachment_is_read_once_per_run_not_once_per_item(papers: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline_nb import _attachments as attachments

    reads: list[str] = []
    real = attachments.read_attachment

    def counted(path, *args, **kwargs):
        reads.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(attachments, "read_attachment", counted)
    run = pipeline_nb.run({"steps": [
        {"id": "plain", "for_each": [1, 2, 3], "prompt": "q {{ item }}", "mock_delay": 0, "attachments": ["paper.pdf"]},
        {"id": "named", "for_each": ["notes", "notes"], "prompt": "q", "mock_delay": 0,
         "attachments": ["{{ item }}.md"]}]})
    assert run.ok
    # paper.pdf: checked before the run, then read once for its three items; a path made from a name, per item
    assert reads == ["paper.pdf", "paper.pdf", "notes.md", "notes.md"]
