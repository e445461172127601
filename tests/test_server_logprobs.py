"""Token logprobs through /v1/responses, driven by the official openai SDK (strict response
validation): a chat upstream sending `logprobs.content` in OpenAI's chunk format, a request with
`include: ["message.output_text.logprobs"]` and `top_logprobs`, and the tokens checked on the
`.delta` events, the `.done` event and the Response (plain streaming, plain create, background
retrieve and its replay from the log). Without the `include`, or without logprobs upstream, every
`logprobs` is `[]`, as before."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from polystream.server import ServerThread, create_app
from polystream.testing import ReplayServer, Reply

from .test_server_api import STORES, proxy_config, sdk, wait_status
from .test_server_support import redis_server, upstream_body  # noqa: F401 - fixture

# (token, logprob) per chunk; "é" checks that bytes are UTF-8 bytes, not characters.
TOKENS = [("Hello", -0.31), (",", -0.02), (" café", -1.5), (" é", -0.7), ("!", -0.0001)]
TEXT = "".join(t for t, _ in TOKENS)
ASK = {"include": ["message.output_text.logprobs"], "top_logprobs": 2}


def _entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def logprobs_body() -> bytes:
    """A chat stream as OpenAI sends it for `logprobs: true, top_logprobs: 2`: one token per chunk,
    each `logprobs.content` entry with its bytes and its two most likely alternatives."""
    base = {"id": "chatcmpl-lp", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-test"}

    def chunk(delta: dict[str, Any], logprobs: Any, finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}

    events = [chunk({"role": "assistant", "content": "", "refusal": None}, {"content": [], "refusal": None})]
    for token, lp in TOKENS:
        top = [_entry(token, lp), _entry(" alt", lp - 1.0)]
        events.append(chunk({"content": token}, {"content": [{**_entry(token, lp), "top_logprobs": top}],
                                                  "refusal": None}))
    events.append(chunk({}, None, "stop"))
    events.append({**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": len(TOKENS),
                                                    "total_tokens": 5 + len(TOKENS)}})
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


def serve(replay: ReplayServer, body: bytes) -> None:
    replay.reset()
    replay.serve_fixture("openai", Reply(body, split="event", delay=0.002))


@pytest.fixture(params=STORES)
def proxy(request: pytest.FixtureRequest, replay: ReplayServer) -> Iterator[ServerThread]:
    serve(replay, logprobs_body())
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    with ServerThread(create_app(proxy_config(replay, request.param, url))) as server:
        yield server


# ---------------------------------------------------------------- what the client must see


def check_part(part: Any) -> None:
    """The output_text part: every token with its bytes and alternatives (ResponseOutputText)."""
    assert part.text == TEXT
    assert [(lp.token, lp.logprob) for lp in part.logprobs] == TOKENS
    for lp, (token, logprob) in zip(part.logprobs, TOKENS):
        assert lp.bytes == list(token.encode())
        assert [(t.token, t.bytes, t.logprob) for t in lp.top_logprobs] == [
            (token, list(token.encode()), logprob), (" alt", list(b" alt"), logprob - 1.0)]


def check_events(events: list[Any]) -> None:
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    # Each delta carries the tokens of its own text (records may merge chunks, never split them).
    for d in deltas:
        assert "".join(lp.token for lp in d.logprobs) == d.delta
        for lp in d.logprobs:
            assert [t.token for t in lp.top_logprobs or []] == [lp.token, " alt"]
            assert "bytes" not in lp.to_dict()  # the delta shape (ResponseTextDeltaEvent.Logprob)
    assert [(lp.token, lp.logprob) for d in deltas for lp in d.logprobs] == TOKENS
    (done,) = [e for e in events if e.type == "response.output_text.done"]
    assert done.text == TEXT
    assert [(lp.token, lp.logprob) for lp in done.logprobs] == TOKENS
    assert all("bytes" not in lp.to_dict() for lp in done.logprobs)  # ResponseTextDoneEvent.Logprob
    (part_done,) = [e for e in events if e.type == "response.content_part.done"]
    check_part(part_done.part)
    assert events[-1].type == "response.completed"
    check_part(events[-1].response.output[0].content[0])


def check_empty(events: list[Any]) -> None:
    texts = [e for e in events if e.type in ("response.output_text.delta", "response.output_text.done")]
    assert texts and all(e.logprobs == [] for e in texts)
    assert events[-1].type == "response.completed"
    assert events[-1].response.output[0].content[0].logprobs == []


# ---------------------------------------------------------------- tests


def test_stream_and_create_carry_logprobs(proxy: ServerThread, replay: ReplayServer) -> None:
    client = sdk(proxy)
    check_events(list(client.responses.create(model="gpt-test", input="hi", stream=True, **ASK)))
    sent = replay.requests[-1].json()
    assert sent["logprobs"] is True and sent["top_logprobs"] == 2
    r = client.responses.create(model="gpt-test", input="hi", **ASK)
    check_part(r.output[0].content[0])


def test_background_retrieve_and_replay_carry_logprobs(proxy: ServerThread) -> None:
    client = sdk(proxy)
    r = client.responses.create(model="gpt-test", input="hi", background=True, **ASK)
    r = wait_status(client, r.id, {"completed", "failed"})
    assert r.status == "completed"
    check_part(r.output[0].content[0])
    check_events(list(client.responses.retrieve(r.id, stream=True)))  # rebuilt from the log
    live = list(client.responses.create(model="gpt-test", input="hi", background=True, stream=True, **ASK))
    check_events(live)


def test_without_include_or_upstream_logprobs_all_are_empty(proxy: ServerThread, replay: ReplayServer) -> None:
    client = sdk(proxy)
    # `top_logprobs` alone: OpenAI returns none, so the provider is not asked, and what it sends
    # anyway is not shown.
    check_empty(list(client.responses.create(model="gpt-test", input="hi", stream=True, top_logprobs=2)))
    sent = replay.requests[-1].json()
    assert "logprobs" not in sent and "top_logprobs" not in sent
    # Asked for, but the provider sends none.
    serve(replay, upstream_body())
    check_empty(list(client.responses.create(model="gpt-test", input="hi", stream=True, **ASK)))
    r = client.responses.create(model="gpt-test", input="hi", background=True, **ASK)
    r = wait_status(client, r.id, {"completed", "failed"})
    assert r.status == "completed" and r.output[0].content[0].logprobs == []
