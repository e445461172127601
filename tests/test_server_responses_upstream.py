"""The proxy in front of an upstream that speaks OpenAI's Responses API, configured with LiteLLM's
spelling (`model: openai/responses/…`): chat streaming and background Responses both carry the
upstream's text, read through the openai SDK with strict validation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from polystream.background import MemoryStore
from polystream.server import ServerThread, create_app, parse_config
from polystream.testing import ReplayServer, Reply

from .test_server_support import MASTER_KEY, UPSTREAM_KEY, service_for

FIXTURE = Path(__file__).parent / "fixtures" / "providers" / "openai_responses" / "openai_responses_text_multibyte.sse"
TEXT = "Grüße, 世界 🌍"


@pytest.fixture(scope="module")
def proxy() -> Iterator[tuple[ServerThread, ReplayServer]]:
    with ReplayServer() as replay:
        replay.serve_fixture("openai_responses", Reply(FIXTURE.read_bytes(), split="event"))
        cfg = parse_config({
            "model_list": [{"model_name": "gpt-r", "litellm_params": {
                "model": "openai/responses/gpt-5-mini", "api_base": replay.base_url("openai_responses"),
                "api_key": UPSTREAM_KEY}}],
            "general_settings": {"master_key": MASTER_KEY},
        })
        with ServerThread(create_app(cfg, service_for(cfg, MemoryStore(ttl=600)))) as server:
            yield server, replay


def client(server: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=MASTER_KEY, max_retries=0,
                         _strict_response_validation=True)


def test_chat_stream_through_a_responses_upstream(proxy: tuple[ServerThread, ReplayServer]) -> None:
    server, replay = proxy
    with client(server) as c:
        chunks = list(c.chat.completions.create(model="gpt-r", messages=[{"role": "user", "content": "hi"}],
                                                stream=True, stream_options={"include_usage": True}))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == TEXT
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 1200
    req = replay.requests[-1]
    assert req.path == "/v1/responses" and req.json()["model"] == "gpt-5-mini"
    assert req.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_background_response_through_a_responses_upstream(proxy: tuple[ServerThread, ReplayServer]) -> None:
    server, _ = proxy
    with client(server) as c:
        r = c.responses.create(model="gpt-r", input="hi", background=True)
        deadline = time.monotonic() + 10
        while r.status in ("queued", "in_progress") and time.monotonic() < deadline:
            time.sleep(0.05)
            r = c.responses.retrieve(r.id)
    assert r.status == "completed"
    assert r.output_text == TEXT
