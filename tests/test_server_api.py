"""The proxy driven by the official openai SDK (strict response validation) with the replay
server as upstream: chat streaming, Responses (plain, stream, background, resume, cancel, delete),
ownership. Runs on the in-memory store and, when redis-server exists, on Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from polystream.server import ServerThread, create_app, parse_config
from polystream.testing import ReplayServer, Reply

from .test_server_support import (
    LONG_TEXT,
    MASTER_KEY,
    UPSTREAM_KEY,
    USER_A,
    USER_B,
    redis_server,  # noqa: F401 - fixture
    upstream_body,
)

try:
    from polystream.background import redis_store as _redis_store  # noqa: F401

    HAVE_REDIS_STORE = True
except ImportError:
    HAVE_REDIS_STORE = False

STORES = ["memory", pytest.param("redis", marks=pytest.mark.skipif(not HAVE_REDIS_STORE, reason="redis package missing"))]


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


@pytest.fixture
def upstream(replay: ReplayServer) -> ReplayServer:
    replay.reset()
    replay.serve_fixture("openai", Reply(upstream_body(), split="event", delay=0.003))
    return replay


def proxy_config(replay: ReplayServer, store: str, redis_url: str | None = None) -> Any:
    raw: dict[str, Any] = {
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/gpt-test", "api_base": replay.base_url("openai"), "api_key": UPSTREAM_KEY}}],
        "general_settings": {"master_key": MASTER_KEY},
        "polystream": {"keys": [USER_A, {"key": USER_B, "name": "b"}],
                       "background": {"ttl": 600}},
    }
    if store == "redis":
        raw["polystream"]["store"] = {"type": "redis", "redis_url": redis_url}
    return parse_config(raw)


@pytest.fixture(params=STORES)
def proxy(request: pytest.FixtureRequest, upstream: ReplayServer) -> Iterator[ServerThread]:
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    cfg = proxy_config(upstream, request.param, url)
    with ServerThread(create_app(cfg)) as server:  # the service the config describes
        yield server


def sdk(server: ServerThread, key: str = USER_A) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, _strict_response_validation=True)


def wait_status(client: openai.OpenAI, rid: str, statuses: set[str], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        r = client.responses.retrieve(rid)
        if r.status in statuses or time.monotonic() > deadline:
            return r
        time.sleep(0.02)


# ---------------------------------------------------------------- chat


def test_chat_stream_text_equals_upstream(proxy: ServerThread, upstream: ReplayServer) -> None:
    client = sdk(proxy)
    stream = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == LONG_TEXT
    sent = upstream.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"  # the config's key, not the client's
    assert sent.json()["model"] == "gpt-test"


def test_chat_stream_headers_and_framing(proxy: ServerThread) -> None:
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "stream_options": {"include_usage": True}}
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=body,
                      headers={"authorization": f"Bearer {USER_A}"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        assert r.headers["x-accel-buffering"] == "no"
        raw = r.read().decode()
    events = [e for e in raw.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: "):]) for e in events[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0  # asked for usage


def test_chat_usage_chunk_only_when_asked(proxy: ServerThread) -> None:
    client = sdk(proxy)
    chunks = list(client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}],
                                                 stream=True))
    assert all(c.choices for c in chunks)


def test_chat_non_streaming(proxy: ServerThread) -> None:
    done = sdk(proxy).chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert done.choices[0].message.content == LONG_TEXT
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None and done.usage.completion_tokens > 0


def test_chat_disconnect_closes_upstream(proxy: ServerThread, upstream: ReplayServer) -> None:
    upstream.reset()
    upstream.serve_fixture("openai", Reply(upstream_body(), split="event", delay=0.05))
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=body,
                      headers={"authorization": f"Bearer {USER_A}"}) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                break
        closed_at = time.monotonic()
    assert upstream.wait_for_disconnect(timeout=2.0, since=closed_at) < 1.0


def test_chat_midstream_error_is_an_error_event(proxy: ServerThread, upstream: ReplayServer) -> None:
    upstream.reset()
    upstream.serve_fixture("openai", Reply(upstream_body(), split="event", drop_after=5))
    client = sdk(proxy)
    stream = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True)
    got = []
    with pytest.raises(openai.APIError) as info:
        for c in stream:
            got.append(c)
    assert len(got) >= 3
    assert "error" in str(info.value.body) or info.value.message


def test_models(proxy: ServerThread) -> None:
    page = sdk(proxy).models.list()
    assert [m.id for m in page.data] == ["gpt-test"]


# ---------------------------------------------------------------- responses


def test_responses_plain(proxy: ServerThread) -> None:
    r = sdk(proxy).responses.create(model="gpt-test", input="hi")
    assert r.status == "completed"
    assert r.output_text == LONG_TEXT


def test_responses_stream(proxy: ServerThread) -> None:
    events = list(sdk(proxy).responses.create(model="gpt-test", input="hi", stream=True))
    assert events[0].type == "response.created"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == LONG_TEXT


def test_background_poll_until_completed(proxy: ServerThread) -> None:
    client = sdk(proxy)
    r = client.responses.create(model="gpt-test", input="hi", background=True)
    assert r.status == "queued" and r.background is True
    seen: list[str] = []
    deadline = time.monotonic() + 10
    while r.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.02)
        r = client.responses.retrieve(r.id)
        seen.append(r.output_text)
    assert r.status == "completed"
    assert r.output_text == LONG_TEXT
    partial = [t for t in seen if t and t != LONG_TEXT]
    assert partial, "polling never saw the text part-way"
    assert all(LONG_TEXT.startswith(t) for t in seen)


def test_background_stream_then_resume(proxy: ServerThread) -> None:
    client = sdk(proxy)
    stream = client.responses.create(model="gpt-test", input="hi", background=True, stream=True)
    first = []
    for event in stream:
        first.append(event)
        if event.sequence_number == 6:
            break
    stream.close()
    rid = first[0].response.id
    resumed = list(client.responses.retrieve(rid, stream=True, starting_after=6))
    assert resumed[0].sequence_number == 7
    assert [e.sequence_number for e in resumed] == list(range(7, 7 + len(resumed)))
    assert resumed[-1].type == "response.completed"
    assert resumed[-1].response.output_text == LONG_TEXT


def test_responses_stream_helper_by_id(proxy: ServerThread) -> None:
    client = sdk(proxy)
    r = client.responses.create(model="gpt-test", input="hi", background=True)
    with client.responses.stream(response_id=r.id) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == LONG_TEXT
    assert final.output_text == LONG_TEXT and final.status == "completed"


def test_cancel_closes_upstream(proxy: ServerThread, upstream: ReplayServer) -> None:
    upstream.reset()
    upstream.serve_fixture("openai", Reply(upstream_body(), split="event", delay=0.05))
    client = sdk(proxy)
    r = client.responses.create(model="gpt-test", input="hi", background=True)
    r = wait_status(client, r.id, {"in_progress"})
    deadline = time.monotonic() + 5
    while not client.responses.retrieve(r.id).output_text and time.monotonic() < deadline:
        time.sleep(0.02)
    at = time.monotonic()
    cancelled = client.responses.cancel(r.id)
    assert cancelled.status == "cancelled"
    assert upstream.wait_for_disconnect(timeout=2.0, since=at) < 1.0
    time.sleep(0.3)
    again = client.responses.retrieve(r.id)
    assert again.status == "cancelled"
    assert client.responses.cancel(r.id).status == "cancelled"  # idempotent


def test_delete(proxy: ServerThread) -> None:
    client = sdk(proxy)
    r = client.responses.create(model="gpt-test", input="hi", background=True)
    wait_status(client, r.id, {"completed"})
    raw = httpx.delete(f"{proxy.url}/v1/responses/{r.id}", headers={"authorization": f"Bearer {USER_A}"})
    assert raw.status_code == 200
    assert raw.json() == {"id": r.id, "object": "response.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    r2 = client.responses.create(model="gpt-test", input="hi", background=True)
    assert client.responses.delete(r2.id) is None  # the SDK's own call
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(r2.id)


def test_other_key_gets_404(proxy: ServerThread) -> None:
    a, b = sdk(proxy, USER_A), sdk(proxy, USER_B)
    r = a.responses.create(model="gpt-test", input="hi", background=True)
    with pytest.raises(openai.NotFoundError):
        b.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        b.responses.cancel(r.id)
    with pytest.raises(openai.NotFoundError):
        b.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        list(b.responses.retrieve(r.id, stream=True))
    got = httpx.get(f"{proxy.url}/v1/responses/{r.id}/poll", headers={"authorization": f"Bearer {USER_B}"})
    assert got.status_code == 404
    assert wait_status(a, r.id, {"completed"}).output_text == LONG_TEXT  # untouched by b's attempts


def test_poll_endpoint_is_incremental(proxy: ServerThread) -> None:
    client = sdk(proxy)
    r = client.responses.create(model="gpt-test", input="hi", background=True)
    headers = {"authorization": f"Bearer {USER_A}"}
    cursor, text, polls = None, "", 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        params = {} if cursor is None else {"cursor": cursor}
        got = httpx.get(f"{proxy.url}/v1/responses/{r.id}/poll", params=params, headers=headers)
        assert got.status_code == 200
        body = got.json()
        assert body["id"] == r.id
        text += body["text"]
        cursor, polls = body["cursor"], polls + 1
        if body["done"]:
            break
        time.sleep(0.02)
    assert body["status"] == "completed"
    assert text == LONG_TEXT
    assert polls > 2


def test_master_key_works_and_unknown_key_401(proxy: ServerThread) -> None:
    assert sdk(proxy, MASTER_KEY).models.list().data
    with pytest.raises(openai.AuthenticationError):
        sdk(proxy, "sk-not-a-key").models.list()
    with pytest.raises(openai.AuthenticationError):
        sdk(proxy, "sk-not-a-key").responses.create(model="gpt-test", input="hi")


@pytest.mark.parametrize("kind", ["chat-first-chunk", "chat-json", "responses-foreground", "responses-stream"])
def test_client_leaving_closes_upstream(proxy: ServerThread, upstream: ReplayServer, kind: str) -> None:
    """A client that gives up, before the first chunk or on a non-streaming call, stops the
    upstream request too (a background response would keep going; see test_cancel_*)."""
    upstream.reset()
    upstream.serve_fixture("openai", Reply(upstream_body(), split="event", first_delay=0.6, delay=0.05))
    path, body = {
        "chat-first-chunk": ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "stream": True}),
        "chat-json": ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
        "responses-foreground": ("/v1/responses", {"input": "hi"}),
        "responses-stream": ("/v1/responses", {"input": "hi", "stream": True}),
    }[kind]
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(proxy.url + path, json={"model": "gpt-test", **body}, timeout=httpx.Timeout(5, read=0.3),
                   headers={"authorization": f"Bearer {USER_A}"})
    left = time.monotonic()
    assert upstream.wait_for_disconnect(timeout=3.0, since=left) < 1.0


def test_background_survives_client_leaving(proxy: ServerThread, upstream: ReplayServer) -> None:
    client = sdk(proxy)
    stream = client.responses.create(model="gpt-test", input="hi", background=True, stream=True)
    rid = next(iter(stream)).response.id
    stream.close()  # the creating client goes away
    done = wait_status(client, rid, {"completed", "failed", "cancelled"})
    assert done.status == "completed" and done.output_text == LONG_TEXT
    assert not upstream.connections_closed_early


def test_200_concurrent_background_responses(proxy: ServerThread) -> None:
    import asyncio

    async def run() -> list[dict[str, Any]]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=proxy.url, headers={"authorization": f"Bearer {USER_A}"},
                                     limits=limits, timeout=30) as http:
            async def one() -> dict[str, Any]:
                r = await http.post("/v1/responses", json={"model": "gpt-test", "input": "hi", "background": True})
                assert r.status_code == 200, r.text
                body = r.json()
                deadline = time.monotonic() + 60
                while body["status"] in ("queued", "in_progress") and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                    body = (await http.get(f"/v1/responses/{body['id']}")).json()
                return body

            return await asyncio.gather(*(one() for _ in range(200)))

    results = asyncio.run(run())
    assert [r["status"] for r in results] == ["completed"] * 200
    texts = {"".join(c["text"] for item in r["output"] for c in item.get("content", [])) for r in results}
    assert texts == {LONG_TEXT}
    assert len({r["id"] for r in results}) == 200
