"""FakeAnthropic's content blocks (thinking, documents, citations), the checks the real API
makes on them, and prompt caching, proven through the real anthropic SDK (max_retries=0)."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import pytest

from pipeline_nb.testing import pdf_bytes
from pipeline_nb.testing._fake_anthropic import FakeAnthropic
from tests._sdk import MODEL
from tests._sdk import call as sdk_call

THINK = {"type": "enabled", "budget_tokens": 2048}
ALMANAC = "Facts: the tide is lunar, says the almanac. Winds are solar."
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 40


pdf = pdf_bytes  # (the name the tests below use)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def text_doc(data: str = ALMANAC, **extra: Any) -> dict[str, Any]:
    return {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": data},
            "title": "Almanac", "citations": {"enabled": True}, **extra}


def pdf_doc(data: bytes, **extra: Any) -> dict[str, Any]:
    return {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": b64(data)},
            "title": "Tides.pdf", "citations": {"enabled": True}, **extra}


def ask(*blocks: dict[str, Any], question: str = "What moves the tide?") -> list[dict[str, Any]]:
    return [{"role": "user", "content": [*blocks, {"type": "text", "text": question}]}]


def call(client: anthropic.Anthropic, streamed: bool, **kw: Any) -> tuple[anthropic.types.Message, list[Any]]:
    """One request, streamed or not (``messages`` defaults to ``ask()``)."""
    return sdk_call(client, streamed, kw.pop("messages", None) or ask(), **kw)


def raw_deltas(client: anthropic.Anthropic, **kw: Any) -> list[tuple[str, Any]]:
    """The raw SSE events of a streamed request: (type, delta type or block type or None)."""
    kw.setdefault("model", MODEL)
    kw.setdefault("max_tokens", 4096)
    with client.messages.create(stream=True, **kw) as events:
        return [(e.type, e.delta.type if e.type == "content_block_delta" else
                 e.content_block.type if e.type == "content_block_start" else None) for e in events]


# -- thinking ----------------------------------------------------------------------------------

@pytest.mark.parametrize("streamed", [True, False])
def test_thinking_block_comes_first_with_its_signature(fake: FakeAnthropic, client: anthropic.Anthropic,
                                                       streamed: bool) -> None:
    fake.reply("The answer is 4.", thinking="Two plus two is four.")
    msg, events = call(client, streamed, thinking=THINK)
    thinking, text = msg.content
    assert (thinking.type, thinking.thinking) == ("thinking", "Two plus two is four.")
    assert thinking.signature and (text.type, text.text) == ("text", "The answer is 4.")
    assert (msg.usage.output_tokens, msg.usage.output_tokens_details.thinking_tokens) == (4 + 5, 5)
    if streamed:
        assert "".join(e.thinking for e in events if e.type == "thinking") == "Two plus two is four."
        assert [e.signature for e in events if e.type == "signature"] == [thinking.signature]
        stops = [e.content_block for e in events if e.type == "content_block_stop"]
        assert [b.type for b in stops] == ["thinking", "text"] and stops[0].signature == thinking.signature


def test_thinking_wire_order(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply("Four.", thinking="Two plus two.", signature="sig-scripted")
    assert raw_deltas(client, thinking=THINK, messages=ask()) == [
        ("message_start", None), ("content_block_start", "thinking"),
        *[("content_block_delta", "thinking_delta")] * 3,
        ("content_block_delta", "signature_delta"), ("content_block_stop", None),
        ("content_block_start", "text"), ("content_block_delta", "text_delta"), ("content_block_stop", None),
        ("message_delta", None), ("message_stop", None)]
    assert call(client, False, thinking=THINK)[0].content[0].signature == "sig-scripted"


def test_no_thinking_block_unless_the_request_enables_it(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply("Plain.", thinking="hidden", when="scripted")
    for kw in ({}, {"thinking": {"type": "disabled"}}):
        msg = call(client, True, messages=ask(question="scripted"), **kw)[0]
        assert [b.type for b in msg.content] == ["text"] and msg.usage.output_tokens == 1
    unscripted = call(client, False, thinking={"type": "adaptive"}, messages=ask(question="hi"))[0]
    assert [(b.type, getattr(b, "thinking", None)) for b in unscripted.content] == [
        ("thinking", "Fake thinking about: hi"), ("text", None)]


@pytest.mark.parametrize("streamed", [True, False])
def test_adaptive_omitted_display_sends_only_a_signature(fake: FakeAnthropic, client: anthropic.Anthropic,
                                                         streamed: bool) -> None:
    fake.reply("Done.", thinking="secret reasoning here")
    msg, events = call(client, streamed, thinking={"type": "adaptive", "display": "omitted"})
    assert msg.content[0].thinking == "" and msg.content[0].signature
    assert msg.usage.output_tokens == 1 + 3  # the omitted thinking is still billed
    assert not [e for e in events if e.type == "thinking"]


def test_stream_faults_count_thinking_deltas(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply("Four.", thinking="one two three")
    fake.fault("overloaded", after=2)
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as ei:
        with client.messages.stream(model=MODEL, max_tokens=4096, thinking=THINK, messages=ask()) as stream:
            for event in stream:
                if event.type == "thinking":
                    seen.append(event.thinking)
    assert ei.value.type == "overloaded_error" and seen == ["one ", "two "]


# -- what the real API refuses -----------------------------------------------------------------

@pytest.mark.parametrize("streamed", [True, False])
@pytest.mark.parametrize("thinking,max_tokens,needle", [
    ({"type": "enabled", "budget_tokens": 1023}, 4096, "greater than or equal to 1024"),
    ({"type": "enabled", "budget_tokens": 2048}, 2048, "`max_tokens` must be greater than `thinking.budget_tokens`"),
    ({"type": "enabled"}, 4096, "thinking.enabled.budget_tokens: Field required"),
    ({"type": "sometimes"}, 4096, "thinking: Input tag 'sometimes'"),
])
def test_bad_thinking_config_is_a_400(fake: FakeAnthropic, client: anthropic.Anthropic, streamed: bool,
                                      thinking: dict[str, Any], max_tokens: int, needle: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as ei:
        call(client, streamed, thinking=thinking, max_tokens=max_tokens)
    assert ei.value.type == "invalid_request_error" and needle in ei.value.api_message


def test_effort_values(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    for effort in ("low", "medium", "high", "xhigh", "max"):
        assert call(client, False, output_config={"effort": effort})[0].stop_reason == "end_turn"
    with pytest.raises(anthropic.BadRequestError) as ei:
        call(client, True, output_config={"effort": "extreme"})
    assert "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'" == ei.value.api_message


@pytest.mark.parametrize("display", ["summarized", "omitted"])
def test_thinking_sent_back_must_keep_its_signature(fake: FakeAnthropic, client: anthropic.Anthropic,
                                                    display: str) -> None:
    fake.reply("Four.", thinking="Two plus two.")
    thinking = {"type": "adaptive", "display": display}
    first = call(client, True, thinking=thinking)[0]
    block = first.content[0].model_dump()

    def follow_up(sent: dict[str, Any]) -> anthropic.types.Message:
        history = [*ask(), {"role": "assistant", "content": [sent, {"type": "text", "text": "Four."}]},
                   {"role": "user", "content": "And 3+3?"}]
        return call(client, False, thinking=thinking, messages=history)[0]

    assert follow_up(block).content[-1].text == "Four."
    for forged in ({**block, "thinking": block["thinking"] + " edited"}, {**block, "signature": "forged"}):
        with pytest.raises(anthropic.BadRequestError) as ei:
            follow_up(forged)
        assert ei.value.api_message == "messages.1.content.0: Invalid `signature` in `thinking` block"
    with pytest.raises(anthropic.BadRequestError, match="thinking.signature: Field required"):
        follow_up({"type": "thinking", "thinking": block["thinking"]})
    fake.clear()  # forgets the signatures it issued
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
        follow_up(block)


@pytest.mark.parametrize("block,needle", [
    (pdf_doc(b"not a pdf"), "document.source.base64.data: The PDF specified was not valid."),
    ({**pdf_doc(pdf("x")), "source": {"type": "base64", "media_type": "text/plain", "data": b64(pdf("x"))}},
     "document.source.base64.media_type: Input should be 'application/pdf'"),
    ({"type": "document", "source": {"type": "text", "media_type": "text/html", "data": "x"}},
     "document.source.text.media_type: Input should be 'text/plain'"),
    ({"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": b64(PNG)}},
     "messages.0.content.0.image.source.base64.data: Image does not match the provided media type image/jpeg"),
    ({"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": b64(PNG)}},
     "'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"),
    ({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "%%%"}},
     "image.source.base64.data: Input should be valid base64 data"),
])
def test_bad_documents_and_images_are_a_400(fake: FakeAnthropic, client: anthropic.Anthropic,
                                            block: dict[str, Any], needle: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as ei:
        call(client, False, messages=ask(block))
    assert needle in ei.value.api_message


# -- documents, images, citations --------------------------------------------------------------

def test_documents_and_images_are_recorded(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    pages = pdf("one", "two")
    gif = b"GIF89a" + b"\0" * 10
    content = [text_doc(cache_control={"type": "ephemeral"}), pdf_doc(pages),
               {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(PNG)}},
               {"type": "text", "text": "Compare"},
               {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": b64(gif)}},
               {"type": "text", "text": "them."}]
    call(client, False, messages=[{"role": "user", "content": content}])
    req = fake.requests[0]
    assert req.prompt == "Compare\nthem."
    assert [(d.media_type, d.size, d.title, d.citations, d.cache_control) for d in req.documents] == [
        ("text/plain", len(ALMANAC), "Almanac", True, {"type": "ephemeral"}),
        ("application/pdf", len(pages), "Tides.pdf", True, None)]
    assert [(i.media_type, i.size, i.block_index) for i in req.images] == [("image/png", len(PNG), 2),
                                                                          ("image/gif", len(gif), 4)]


@pytest.mark.parametrize("streamed", [True, False])
def test_cited_sentence_is_its_own_block_with_a_char_location(fake: FakeAnthropic, client: anthropic.Anthropic,
                                                              streamed: bool) -> None:
    fake.reply("Waves move. The tide is lunar. Fish swim.", cite="tide is lunar")
    msg, events = call(client, streamed, messages=ask(text_doc()))
    assert [(b.text, b.citations is not None) for b in msg.content] == [
        ("Waves move. ", False), ("The tide is lunar.", True), (" Fish swim.", False)]
    (cite,) = msg.content[1].citations
    start = ALMANAC.index("tide is lunar")
    assert (cite.type, cite.cited_text, cite.document_index, cite.document_title) == (
        "char_location", "tide is lunar", 0, "Almanac")
    assert (cite.start_char_index, cite.end_char_index) == (start, start + len("tide is lunar"))
    if streamed:
        assert [e.citation for e in events if e.type == "citation"] == [cite]


def test_citations_wire_format(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply("Winds are solar.", cite=[("Winds are solar.", "Winds are solar.")])
    assert raw_deltas(client, messages=ask(text_doc())) == [
        ("message_start", None), ("content_block_start", "text"), ("content_block_delta", "citations_delta"),
        ("content_block_delta", "text_delta"), ("content_block_delta", "text_delta"),
        ("content_block_delta", "text_delta"), ("content_block_stop", None),
        ("message_delta", None), ("message_stop", None)]


@pytest.mark.parametrize("streamed", [True, False])
def test_pdf_citations_are_page_locations(fake: FakeAnthropic, client: anthropic.Anthropic, streamed: bool) -> None:
    fake.reply("It is lunar. Ships float. Nothing else.",
               cite=[("It is lunar.", "tide is lunar"), ("Ships float.", "not in the pdf")])
    plain = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "tide is lunar"}}
    msg = call(client, streamed, messages=ask(plain, pdf_doc(pdf("Cover page", "The tide is lunar"))))[0]
    assert [b.text for b in msg.content] == ["It is lunar.", " ", "Ships float.", " Nothing else."]
    found, fallback = msg.content[0].citations[0], msg.content[2].citations[0]
    assert (found.type, found.document_index, found.document_title) == ("page_location", 1, "Tides.pdf")
    assert (found.start_page_number, found.end_page_number, found.cited_text) == (2, 3, "tide is lunar")
    assert (fallback.start_page_number, fallback.end_page_number) == (1, 2)  # quote not found: page 1


def test_cite_needs_its_span_in_the_reply(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    with pytest.raises(ValueError, match="not in the reply text"):
        fake.reply("Something else.", cite="tide is lunar")
    fake.reply("Tides rise. No documents here.", cite="Tides rise")
    assert [b.text for b in call(client, False)[0].content] == ["Tides rise. No documents here."]


# -- prompt caching ----------------------------------------------------------------------------

def cached_system(text: str, ttl: str = "5m") -> list[dict[str, Any]]:
    return [{"type": "text", "text": text, "cache_control": {"type": "ephemeral", "ttl": ttl}}]


def cache_counts(msg: anthropic.types.Message) -> tuple[int, int, int, int, int]:
    u = msg.usage
    return (u.input_tokens, u.cache_creation_input_tokens, u.cache_read_input_tokens,
            u.cache_creation.ephemeral_5m_input_tokens, u.cache_creation.ephemeral_1h_input_tokens)


def test_cached_prefix_is_written_then_read(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    system = cached_system("word " * 300)
    question = ask(question="What moves the tide today?")  # 5 words
    assert cache_counts(call(client, False, system=system, messages=question)[0]) == (5, 300, 0, 300, 0)
    assert cache_counts(call(client, True, system=system, messages=question)[0]) == (5, 0, 300, 0, 0)
    assert cache_counts(call(client, True, system=system, messages=ask(question="Other?"))[0]) == (1, 0, 300, 0, 0)
    assert cache_counts(call(client, False, system=system, model="claude-haiku-5-5")[0])[1] == 300  # per model
    fake.clear_cache()
    assert cache_counts(call(client, False, system=system, messages=question)[0]) == (5, 300, 0, 300, 0)
    plain = call(client, False)[0]
    assert cache_counts(plain) == (len("What moves the tide?") // 4 + 1, 0, 0, 0, 0)


def test_breakpoints_split_by_ttl_and_top_level_cache_control(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    system = cached_system("one two three", ttl="1h")
    doc = text_doc("alpha beta", cache_control={"type": "ephemeral"})
    first = call(client, True, system=system, messages=ask(doc, question="q"))[0]
    assert cache_counts(first) == (1, 3 + 2, 0, 2, 3)
    other_doc = text_doc("gamma", cache_control={"type": "ephemeral"})
    assert cache_counts(call(client, False, system=system, messages=ask(other_doc, question="q"))[0]) == (
        1, 1, 3, 1, 0)  # the system prefix is read, the new document written
    whole = {"cache_control": {"type": "ephemeral"}, "messages": ask(question="a b c")}
    assert cache_counts(call(client, False, **whole)[0]) == (0, 3, 0, 3, 0)
    assert cache_counts(call(client, True, **whole)[0]) == (0, 0, 3, 0, 0)
    too_many = [{"type": "text", "text": f"s{i}", "cache_control": {"type": "ephemeral"}} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError, match="A maximum of 4 blocks with cache_control"):
        call(client, False, system=too_many)


@pytest.mark.parametrize("streamed", [True, False])
def test_diagnostics_name_the_first_change(fake: FakeAnthropic, client: anthropic.Anthropic, streamed: bool) -> None:
    system = cached_system("You answer about tides.")
    turn1 = call(client, streamed, system=system, diagnostics={"previous_message_id": None})[0]
    assert turn1.diagnostics is None and "diagnostics" in turn1.model_fields_set

    def after(previous: str, **kw: Any) -> Any:
        kw.setdefault("system", system)
        return call(client, streamed, diagnostics={"previous_message_id": previous}, **kw)[0].diagnostics

    longer = [*ask(), {"role": "assistant", "content": "Moon."}, {"role": "user", "content": "Why?"}]
    assert after(turn1.id, messages=longer) is None  # appending turns is no divergence
    changed = after(turn1.id, system=cached_system("You answer about winds."))
    assert (changed.cache_miss_reason.type, changed.cache_miss_reason.cache_missed_input_tokens) == (
        "system_changed", 4 + 4)
    assert after(turn1.id, model="claude-opus-5-5").cache_miss_reason.type == "model_changed"
    assert after(turn1.id, messages=ask(question="Other")).cache_miss_reason.type == "messages_changed"
    assert after(turn1.id, thinking=THINK).cache_miss_reason.type == "unavailable"
    assert after("msg_unknown").cache_miss_reason.type == "previous_message_not_found"
    assert "diagnostics" not in call(client, streamed)[0].model_fields_set
