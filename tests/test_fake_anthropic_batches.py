"""FakeAnthropic's Message Batches, proven through the real anthropic SDK (max_retries=0)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import anthropic
import httpx2
import pytest

from pipeline_nb.testing._fake_anthropic import FakeAnthropic

MODEL = "claude-sonnet-5-5"
KEY = "test-key-SECRET-123"  # the same as the conftest client sends



def item(custom_id: str, prompt: str, **params: Any) -> dict[str, Any]:
    return {"custom_id": custom_id,
            "params": {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": prompt}], **params}}


def create(client: anthropic.Anthropic, *prompts: str) -> Any:
    """A batch of one item per prompt, with custom_ids "c0", "c1", ..."""
    return client.messages.batches.create(requests=[item(f"c{i}", p) for i, p in enumerate(prompts)])


def results(client: anthropic.Anthropic, batch_id: str) -> dict[str, Any]:
    return {r.custom_id: r.result for r in client.messages.batches.results(batch_id)}


def counts(batch: Any) -> tuple[int, int, int, int, int]:
    c = batch.request_counts
    return c.processing, c.succeeded, c.errored, c.canceled, c.expired


def items_sent(fake: FakeAnthropic) -> list[Any]:
    return [r for r in fake.requests if r.batch_id is not None]


# -- create, retrieve, poll --------------------------------------------------------------------

def test_create_returns_the_real_message_batch_json(fake: FakeAnthropic) -> None:
    r = httpx2.post(fake.base_url + "/v1/messages/batches", headers={"x-api-key": "k"},
                    content=json.dumps({"requests": [item("a", "x"), item("b", "y")]}))
    assert r.status_code == 200 and r.headers["request-id"].startswith("req_")
    body = r.json()
    created, expires = body.pop("created_at"), body.pop("expires_at")
    assert body == {
        "id": "msgbatch_1", "type": "message_batch", "processing_status": "in_progress",
        "request_counts": {"processing": 2, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
        "ended_at": None, "cancel_initiated_at": None, "archived_at": None, "results_url": None,
    }
    assert created.endswith("Z") and expires.endswith("Z")


def test_sdk_create_and_items_recorded_as_message_requests(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    batch = client.messages.batches.create(requests=[item("first", "Hello", system="sys"), item("second", "Bye")])
    assert (batch.id, batch.type, batch.processing_status, counts(batch)) == (
        "msgbatch_1", "message_batch", "in_progress", (2, 0, 0, 0, 0))
    assert batch.expires_at - batch.created_at == timedelta(hours=24)
    assert batch.ended_at is None and batch.results_url is None
    create_req, first, second = fake.requests
    assert (create_req.path, create_req.batch_id, create_req.custom_id) == ("/v1/messages/batches", None, None)
    assert (first.method, first.path, first.stream, first.prompt) == ("POST", "/v1/messages", False, "Hello")
    assert (first.batch_id, first.custom_id, second.custom_id) == ("msgbatch_1", "first", "second")
    assert first.body == item("first", "Hello", system="sys")["params"]
    assert first.headers == create_req.headers and KEY not in repr(fake.requests)
    assert fake.batches == [("msgbatch_1", 2)]
    client.messages.batches.create(requests=[item("only", "z")])
    assert fake.batches == [("msgbatch_1", 2), ("msgbatch_2", 1)]


def test_stays_in_progress_for_polls_with_linear_counts(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.batch_polls(3)
    batch = create(client, *"abcdefgh")
    seen = [client.messages.batches.retrieve(batch.id) for _ in range(5)]
    assert [b.processing_status for b in seen] == ["in_progress"] * 3 + ["ended"] * 2
    assert [counts(b) for b in seen] == [(6, 2, 0, 0, 0), (4, 4, 0, 0, 0), (2, 6, 0, 0, 0)] + [(0, 8, 0, 0, 0)] * 2
    assert [b.results_url for b in seen[:3]] == [None] * 3 and seen[2].ended_at is None
    ended = seen[3]
    assert ended.results_url == f"{fake.base_url}/v1/messages/batches/{batch.id}/results"
    assert ended.ended_at is not None and seen[4].ended_at == ended.ended_at


def test_default_one_poll_and_zero_polls(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    batch = create(client, "a", "b")
    with pytest.raises(anthropic.AnthropicError, match="results_url"):  # results() retrieves: still in_progress
        client.messages.batches.results(batch.id)
    assert client.messages.batches.retrieve(batch.id).processing_status == "ended"
    fake.batch_polls(0)
    assert results(client, create(client, "c").id)["c0"].message.content[0].text == "Fake reply to: c"
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="batch_polls"):
            fake.batch_polls(bad)  # type: ignore[arg-type]


# -- results -----------------------------------------------------------------------------------

def test_results_are_shuffled_and_matched_by_custom_id(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.batch_polls(0)
    prompts = [f"question {i}" for i in range(6)]
    for i in range(6):
        fake.reply(f"answer {i}", when=f"question {i}", usage=(10, i))
    batch = create(client, *prompts)
    lines = list(client.messages.batches.results(batch.id))
    order = [r.custom_id for r in lines]
    assert sorted(order) == [f"c{i}" for i in range(6)] and order != [f"c{i}" for i in range(6)]
    assert order == [r.custom_id for r in client.messages.batches.results(batch.id)]  # deterministic
    for r in lines:
        i = int(r.custom_id[1:])
        msg = r.result.message
        assert r.result.type == "succeeded" and msg.content[0].text == f"answer {i}"
        assert (msg.type, msg.role, msg.model, msg.stop_reason) == ("message", "assistant", MODEL, "end_turn")
        assert msg.id.startswith("msg_fake_") and (msg.usage.input_tokens, msg.usage.output_tokens) == (10, i)


def test_two_items_never_come_back_in_input_order(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.batch_polls(0)
    for _ in range(5):
        batch = create(client, "a", "b")
        assert [r.custom_id for r in client.messages.batches.results(batch.id)] == ["c1", "c0"]


def test_results_wire_format_and_404_before_ended(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    batch = create(client, "a", "b")
    url = f"{fake.base_url}/v1/messages/batches/{batch.id}/results"
    early = httpx2.get(url, headers={"x-api-key": "k"})
    assert early.status_code == 404 and early.json()["error"]["type"] == "not_found_error"
    assert "in_progress" in early.json()["error"]["message"]
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    assert httpx2.get(url, headers={"x-api-key": "k"}).status_code == 404
    assert client.messages.batches.retrieve(batch.id).processing_status == "ended"
    r = httpx2.get(url, headers={"x-api-key": "k"})
    lines = r.text.splitlines()
    assert r.status_code == 200 and len(lines) == 2 and r.text.endswith("\n")
    assert {json.loads(line)["custom_id"] for line in lines} == {"c0", "c1"}


# -- per-item outcomes -------------------------------------------------------------------------

def test_errored_expired_and_canceled_items(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.batch_polls(0)
    fake.fault("http", status=529, when="busy", message="Overloaded right now")
    fake.fault("rate_limit", when="limited")
    fake.fault("expired", when="slow")
    fake.fault("canceled", when="dropped")
    fake.reply("fine", when="busy", times=1)
    batch = create(client, "busy", "limited", "slow", "dropped", "busy again")
    got = results(client, batch.id)
    assert got["c0"].type == "errored" and got["c0"].error.type == "error"
    assert (got["c0"].error.error.type, got["c0"].error.error.message) == ("overloaded_error", "Overloaded right now")
    assert got["c1"].type == "errored" and got["c1"].error.error.type == "rate_limit_error"
    assert (got["c2"].type, got["c3"].type) == ("expired", "canceled")
    assert got["c4"].message.content[0].text == "fine"  # the faulted item did not use up the reply
    assert counts(client.messages.batches.retrieve(batch.id)) == (0, 1, 2, 1, 1)


def test_batch_only_faults_skip_normal_requests(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.batch_polls(0)
    fake.fault("expired")
    msg = client.messages.create(model=MODEL, max_tokens=9, messages=[{"role": "user", "content": "x"}])
    assert msg.content[0].text == "Fake reply to: x"
    assert results(client, create(client, "x").id)["c0"].type == "expired"


def test_replies_are_chosen_when_an_item_is_processed(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    batch = create(client, "a", "b")
    fake.reply("scripted after creation", times=1)
    client.messages.batches.retrieve(batch.id)  # processes c0
    got = results(client, batch.id)  # retrieves again: processes c1 and ends
    assert got["c0"].message.content[0].text == "scripted after creation"
    assert got["c1"].message.content[0].text == "Fake reply to: b"


# -- cancel ------------------------------------------------------------------------------------

def test_cancel_mid_way_cancels_the_rest(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    batch = create(client, "a", "b", "c", "d")
    assert counts(client.messages.batches.retrieve(batch.id)) == (2, 2, 0, 0, 0)
    canceling = client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    assert canceling.ended_at is None and canceling.results_url is None and counts(canceling) == (2, 2, 0, 0, 0)
    assert client.messages.batches.cancel(batch.id).cancel_initiated_at == canceling.cancel_initiated_at
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and counts(ended) == (0, 2, 0, 2, 0)
    assert ended.results_url is not None and ended.cancel_initiated_at == canceling.cancel_initiated_at
    got = results(client, batch.id)
    assert [got[c].type for c in ("c0", "c1", "c2", "c3")] == ["succeeded", "succeeded", "canceled", "canceled"]
    again = client.messages.batches.cancel(batch.id)  # an ended batch is returned unchanged
    assert again.processing_status == "ended" and counts(again) == (0, 2, 0, 2, 0)


def test_cancel_before_processing_uses_no_replies(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.reply("kept", times=1)
    batch = create(client, "a", "b")
    client.messages.batches.cancel(batch.id)
    assert counts(client.messages.batches.retrieve(batch.id)) == (0, 0, 0, 2, 0)
    assert {r.type for r in results(client, batch.id).values()} == {"canceled"}
    msg = client.messages.create(model=MODEL, max_tokens=9, messages=[{"role": "user", "content": "x"}])
    assert msg.content[0].text == "kept"


# -- validation, 404, faults on creation, clear ------------------------------------------------

@pytest.mark.parametrize("requests,needle", [
    ([], "at least 1"),
    ([item("same", "a"), item("same", "b")], "requests.1.custom_id"),
    ([item("has space", "a")], "requests.0.custom_id"),
    ([item("x" * 65, "a")], "requests.0.custom_id"),
    ([{"custom_id": "a", "params": {"model": MODEL, "messages": []}}], "requests.0.params.max_tokens"),
    ([{"custom_id": "a"}], "requests.0.params"),
])
def test_create_rejects_bad_batches(fake: FakeAnthropic, client: anthropic.Anthropic, requests: list,
                                    needle: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as ei:
        client.messages.batches.create(requests=requests)
    assert ei.value.type == "invalid_request_error" and needle in ei.value.api_message
    assert fake.batches == [] and items_sent(fake) == []


def test_create_rejects_more_than_100k_requests(fake: FakeAnthropic) -> None:
    one = item("x", "x")["params"]
    body = json.dumps({"requests": [{"custom_id": f"c{i}", "params": one} for i in range(100_001)]})
    r = httpx2.post(fake.base_url + "/v1/messages/batches", content=body, headers={"x-api-key": "k"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert "100000" in r.json()["error"]["message"] and fake.batches == []


def test_unknown_batch_is_404(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    for call in (client.messages.batches.retrieve, client.messages.batches.cancel, client.messages.batches.results):
        with pytest.raises(anthropic.NotFoundError) as ei:
            call("msgbatch_404")
        assert ei.value.type == "not_found_error" and "msgbatch_404" in ei.value.api_message
    r = httpx2.get(fake.base_url + "/v1/messages/batches/msgbatch_404/results", headers={"x-api-key": "k"})
    assert r.status_code == 404 and r.headers["request-id"].startswith("req_")


def test_http_fault_with_callable_fails_creation(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.fault("rate_limit", when=lambda r: r.path.endswith("/batches"), retry_after=3)
    with pytest.raises(anthropic.RateLimitError) as ei:
        create(client, "a")
    assert ei.value.response.headers["retry-after"] == "3"
    assert fake.batches == [] and items_sent(fake) == []
    fake.fault("server_error")  # when=None: for the items, never the creation
    fake.batch_polls(0)
    batch = create(client, "a", "b")
    got = results(client, batch.id)
    assert sorted(r.type for r in got.values()) == ["errored", "succeeded"]
    assert got["c0"].error.error.type == "api_error"


def test_clear_forgets_batches_and_polls(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.batch_polls(5)
    batch = create(client, "a")
    fake.clear()
    assert fake.batches == [] and fake.requests == []
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)
    batch = create(client, "a")
    assert batch.id == "msgbatch_2"
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    assert client.messages.batches.retrieve(batch.id).processing_status == "ended"


def test_async_client_and_beta_resource(fake: FakeAnthropic) -> None:
    import asyncio

    fake.batch_polls(0)
    fake.reply("async ok")

    async def go() -> list[Any]:
        async with anthropic.AsyncAnthropic(base_url=fake.base_url, api_key=KEY, max_retries=0) as c:
            batch = await c.messages.batches.create(requests=[item("a", "x")])
            return [r async for r in await c.messages.batches.results(batch.id)]

    with ThreadPoolExecutor(1) as pool:  # a loop of its own, whatever else runs in this process
        (line,) = pool.submit(asyncio.run, go()).result()
    assert line.custom_id == "a" and line.result.message.content[0].text == "async ok"
    with anthropic.Anthropic(base_url=fake.base_url, api_key=KEY, max_retries=0) as client:
        beta = client.beta.messages.batches.create(requests=[item("b", "y")])
        (bline,) = client.beta.messages.batches.results(beta.id)
    assert bline.custom_id == "b" and bline.result.type == "succeeded"


def test_items_carry_thinking_citations_and_cache_usage(fake: FakeAnthropic, client: anthropic.Anthropic) -> None:
    fake.batch_polls(0)
    fake.reply("Waves move. The tide is lunar.", thinking="Look it up.", cite="tide is lunar")
    doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "the tide is lunar"},
           "citations": {"enabled": True}, "cache_control": {"type": "ephemeral"}}
    params = {"model": MODEL, "max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": 2048},
              "messages": [{"role": "user", "content": [doc, {"type": "text", "text": "Why?"}]}]}
    direct = client.messages.create(**params)
    bad = {**params, "thinking": {"type": "enabled", "budget_tokens": 512}}
    batch = client.messages.batches.create(requests=[{"custom_id": "ok", "params": params},
                                                     {"custom_id": "bad", "params": bad}])
    got = results(client, batch.id)
    msg = got["ok"].message
    assert [b.model_dump() for b in msg.content] == [b.model_dump() for b in direct.content]
    assert [b.type for b in msg.content] == ["thinking", "text", "text"] and msg.content[2].citations
    assert msg.usage.cache_read_input_tokens == direct.usage.cache_creation_input_tokens == 4
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (direct.usage.input_tokens, direct.usage.output_tokens)
    assert got["bad"].type == "errored" and got["bad"].error.error.type == "invalid_request_error"
    assert "budget_tokens: Input should be greater than or equal to 1024" in got["bad"].error.error.message
    follow = {**params, "messages": [*params["messages"], {"role": "assistant", "content": msg.content},
                                     {"role": "user", "content": "More?"}]}
    assert client.messages.create(**follow).stop_reason == "end_turn"  # the item's signature was issued
