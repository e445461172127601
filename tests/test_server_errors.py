"""Bad input and upstream failures get OpenAI-shaped errors with sensible statuses; a store outage
is a 503, quickly."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from polystream.server import ServerThread, create_app, parse_config
from polystream.testing import ReplayServer, Reply

from .test_server_support import MASTER_KEY, UPSTREAM_KEY, USER_A, USER_B, DownableStore, service_for, upstream_body

AUTH = {"authorization": f"Bearer {USER_A}"}
LIMIT = 4096


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


@pytest.fixture(scope="module")
def proxy(replay: ReplayServer) -> Iterator[tuple[ServerThread, DownableStore]]:
    cfg = parse_config({
        "model_list": [
            {"model_name": "gpt-test", "litellm_params": {"model": "openai/gpt-test", "api_base": replay.base_url("openai"),
                                                          "api_key": UPSTREAM_KEY}},
            {"model_name": "gpt-other", "litellm_params": {"model": "openai/gpt-other", "api_base": replay.base_url("openai"),
                                                           "api_key": UPSTREAM_KEY}},
        ],
        "general_settings": {"master_key": MASTER_KEY},
        "polystream": {"keys": [USER_A, {"key": USER_B, "models": ["gpt-other"]}], "server": {"max_body_bytes": LIMIT}},
    })
    store = DownableStore(ttl=600)  # outages are switched on below
    with ServerThread(create_app(cfg, service_for(cfg, store))) as server:
        yield server, store


@pytest.fixture
def url(proxy: tuple[ServerThread, DownableStore], replay: ReplayServer) -> Iterator[str]:
    replay.reset()
    replay.serve_fixture("openai", Reply(upstream_body("Hi there."), split="event"))
    proxy[1].down = False
    yield proxy[0].url
    proxy[1].down = False


def assert_openai_error(r: httpx.Response, status: int, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    if param is not None:
        assert body["error"]["param"] == param
    return body["error"]


CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
RESP = {"model": "gpt-test", "input": "hi"}


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses"])
@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_malformed_json(url: str, path: str, raw: bytes) -> None:
    r = httpx.post(url + path, content=raw, headers={**AUTH, "content-type": "application/json"})
    assert_openai_error(r, 400, "invalid_json")


@pytest.mark.parametrize(
    "body,param",
    [
        ({"messages": CHAT["messages"]}, "model"),
        ({**CHAT, "model": 42}, "model"),
        ({**CHAT, "model": ""}, "model"),
        ({"model": "gpt-test"}, "messages"),
        ({**CHAT, "messages": "hi"}, "messages"),
        ({**CHAT, "messages": []}, "messages"),
        ({**CHAT, "messages": [{"content": "no role"}]}, "messages[0]"),
        ({**CHAT, "stream": "yes"}, "stream"),
        ({**CHAT, "temperature": "hot"}, "temperature"),
        ({**CHAT, "max_tokens": 1.5}, "max_tokens"),
        ({**CHAT, "stream_options": True}, "stream_options"),
        ({**CHAT, "api_base": "http://evil.example"}, "api_base"),
        ({**CHAT, "api_key": "sk-x"}, "api_key"),
        ({**CHAT, "mock_response": "x"}, "mock_response"),
        ({**CHAT, "logprobs": "yes"}, "logprobs"),
        ({**CHAT, "top_logprobs": 3}, "top_logprobs"),  # without logprobs: OpenAI refuses it too
        ({**CHAT, "logprobs": False, "top_logprobs": 3}, "top_logprobs"),
        ({**CHAT, "logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({**CHAT, "logprobs": True, "top_logprobs": -1}, "top_logprobs"),
    ],
)
def test_chat_bad_fields(url: str, body: dict[str, Any], param: str) -> None:
    assert_openai_error(httpx.post(url + "/v1/chat/completions", json=body, headers=AUTH), 400, param=param)


@pytest.mark.parametrize(
    "body,param",
    [
        ({"input": "hi"}, "model"),
        ({"model": "gpt-test"}, "input"),
        ({**RESP, "input": 5}, "input"),
        ({**RESP, "input": []}, "input"),
        ({**RESP, "background": "true"}, "background"),
        ({**RESP, "background": True, "store": False}, "store"),
        ({**RESP, "max_output_tokens": 0}, "max_output_tokens"),
        ({**RESP, "metadata": [1]}, "metadata"),
        ({**RESP, "api_base": "http://evil.example"}, "api_base"),
        ({**RESP, "include": "message.output_text.logprobs"}, "include"),
        ({**RESP, "include": ["message.output_text.logprobs", "message.output_text.logprob"]}, "include[1]"),
        ({**RESP, "include": [None]}, "include[0]"),
        ({**RESP, "top_logprobs": 21}, "top_logprobs"),
        ({**RESP, "top_logprobs": "3"}, "top_logprobs"),
    ],
)
def test_responses_bad_fields(url: str, body: dict[str, Any], param: str) -> None:
    assert_openai_error(httpx.post(url + "/v1/responses", json=body, headers=AUTH), 400, param=param)


def test_known_include_values_are_accepted(url: str) -> None:
    """Every value of the SDK's ResponseIncludable is accepted (Codex-style clients send
    `reasoning.encrypted_content` every time); an unknown one is named in the error."""
    from typing import get_args

    from openai.types.responses import ResponseIncludable

    r = httpx.post(url + "/v1/responses", json={**RESP, "include": list(get_args(ResponseIncludable))}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed"
    body = assert_openai_error(httpx.post(url + "/v1/responses", json={**RESP, "include": ["output.everything"]},
                                          headers=AUTH), 400, "invalid_value", "include[0]")
    assert "'output.everything'" in body["message"]


def test_top_logprobs_with_logprobs_passes(url: str) -> None:
    body = {**CHAT, "logprobs": True, "top_logprobs": 20}
    r = httpx.post(url + "/v1/chat/completions", json=body, headers=AUTH)
    assert r.status_code == 200, r.text


def test_unknown_model(url: str) -> None:
    for path, body in (("/v1/chat/completions", CHAT), ("/v1/responses", RESP)):
        r = httpx.post(url + path, json={**body, "model": "no-such-model"}, headers=AUTH)
        assert_openai_error(r, 404, "model_not_found", "model")
    client = openai.OpenAI(base_url=url + "/v1", api_key=USER_A, max_retries=0, _strict_response_validation=True)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="hi", background=True)


@pytest.mark.parametrize("path,body", [("/v1/chat/completions", CHAT), ("/v1/responses", RESP)])
def test_body_too_large(url: str, path: str, body: dict[str, Any]) -> None:
    big = {**body, "metadata": {"pad": "x" * (LIMIT + 10)}}
    assert_openai_error(httpx.post(url + path, json=big, headers=AUTH), 413, "request_too_large")

    def chunks() -> Iterator[bytes]:  # no content-length: the limit applies while reading
        yield b'{"model": "gpt-test", "pad": "'
        for _ in range(10):
            yield b"y" * 1024
        yield b'"}'

    assert_openai_error(httpx.post(url + path, content=chunks(), headers=AUTH), 413, "request_too_large")


def test_bad_query_params(url: str) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key=USER_A, max_retries=0)
    rid = client.responses.create(model="gpt-test", input="hi", background=True).id
    assert_openai_error(httpx.get(f"{url}/v1/responses/{rid}?stream=true&starting_after=abc", headers=AUTH), 400,
                        param="starting_after")
    assert_openai_error(httpx.get(f"{url}/v1/responses/{rid}?stream=maybe", headers=AUTH), 400, param="stream")
    assert_openai_error(httpx.get(f"{url}/v1/responses/{rid}/poll?cursor=-3", headers=AUTH), 400, param="cursor")
    assert_openai_error(httpx.get(f"{url}/v1/responses/resp_nope", headers=AUTH), 404, "response_not_found")


def test_unknown_route_and_method(url: str) -> None:
    assert_openai_error(httpx.get(url + "/v1/nothing", headers=AUTH), 404)
    assert_openai_error(httpx.get(url + "/v1/chat/completions", headers=AUTH), 405)


def test_auth_errors(url: str) -> None:
    assert_openai_error(httpx.post(url + "/v1/chat/completions", json=CHAT), 401, "missing_api_key")
    r = httpx.post(url + "/v1/responses", json=RESP, headers={"authorization": "Bearer sk-wrong"})
    assert_openai_error(r, 401, "invalid_api_key")
    assert httpx.get(url + "/v1/models", headers={"x-api-key": USER_A}).status_code == 200  # x-api-key works too
    # USER_B may use gpt-other only
    headers_b = {"authorization": f"Bearer {USER_B}"}
    assert_openai_error(httpx.post(url + "/v1/chat/completions", json=CHAT, headers=headers_b), 403, "model_not_allowed")
    assert [m["id"] for m in httpx.get(url + "/v1/models", headers=headers_b).json()["data"]] == ["gpt-other"]


@pytest.mark.parametrize(
    "reply,status,code",
    [
        (Reply.error(429, headers={"retry-after": "7"}), 429, "rate_limit_exceeded"),
        (Reply.error(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                     "code": "invalid_api_key"}}), 502, "upstream_auth_error"),
        (Reply.error(500), 502, "upstream_server_error"),
        (Reply.error(503), 503, "upstream_unavailable"),
        (Reply.error(400, {"error": {"message": "This model's maximum context length is 128000 tokens",
                                     "type": "invalid_request_error", "code": "context_length_exceeded"}}),
         400, "context_length_exceeded"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_errors(url: str, replay: ReplayServer, reply: Reply, status: int, code: str, stream: bool) -> None:
    replay.reset()
    replay.serve_fixture("openai", reply)
    r = httpx.post(url + "/v1/chat/completions", json={**CHAT, "stream": stream}, headers=AUTH)
    err = assert_openai_error(r, status, code)
    assert UPSTREAM_KEY not in r.text
    if status == 429:
        assert r.headers["retry-after"] == "7"
    assert err["type"]


def test_upstream_errors_through_sdk(url: str, replay: ReplayServer) -> None:
    replay.reset()
    replay.serve_fixture("openai", Reply.error(429))
    client = openai.OpenAI(base_url=url + "/v1", api_key=USER_A, max_retries=0, _strict_response_validation=True)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(**CHAT)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(**CHAT, stream=True)


def test_store_down_is_503_fast(url: str, proxy: tuple[ServerThread, DownableStore]) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key=USER_A, max_retries=0)
    rid = client.responses.create(model="gpt-test", input="hi", background=True).id
    deadline = time.monotonic() + 5  # finished, so reads go to the store (not the producer's view)
    while client.responses.retrieve(rid).status != "completed" and time.monotonic() < deadline:
        time.sleep(0.02)
    proxy[1].down = True
    calls = [
        ("POST", "/v1/responses", {**RESP, "background": True}),
        ("POST", "/v1/responses", {**RESP, "stream": True}),
        ("GET", f"/v1/responses/{rid}", None),
        ("GET", f"/v1/responses/{rid}?stream=true", None),
        ("GET", f"/v1/responses/{rid}/poll", None),
        ("POST", f"/v1/responses/{rid}/cancel", None),
        ("DELETE", f"/v1/responses/{rid}", None),
    ]
    for method, path, body in calls:
        t = time.monotonic()
        r = httpx.request(method, url + path, json=body, headers=AUTH, timeout=5)
        assert time.monotonic() - t < 2
        err = assert_openai_error(r, 503, "store_unavailable")
        assert "store" in err["message"]
    assert httpx.get(url + "/health/readiness").status_code == 503
    assert httpx.get(url + "/health/liveliness").status_code == 200
    # chat completions do not need the store
    assert httpx.post(url + "/v1/chat/completions", json=CHAT, headers=AUTH).status_code == 200
    proxy[1].down = False
    assert httpx.get(url + "/health/readiness").status_code == 200
    assert httpx.get(f"{url}/v1/responses/{rid}", headers=AUTH).status_code == 200
