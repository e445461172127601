"""Bedrock's Converse request: URL, credentials (SigV4 checked against botocore's signer, Bedrock
API keys), the body built from OpenAI-style arguments, and error mapping."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest

import polystream
from polystream import errors
from polystream.providers import ChatRequest, provider_class, split_model
from polystream.providers._sigv4 import Credentials, sign

from .test_provider_requests import CLOCK, DATA_URL, HTTP_IMAGE, PNG, TOOL_TURNS, WEATHER

KEY_ID, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
           "AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK", "BEDROCK_RUNTIME_ENDPOINT", "AWS_BEDROCK_RUNTIME_ENDPOINT")


@pytest.fixture(autouse=True)
def clean_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for env in AWS_ENV:
        monkeypatch.delenv(env, raising=False)
    # No developer's ~/.aws may leak into a test.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    return monkeypatch


def build(messages: list[dict[str, Any]] | None = None, *, stream: bool = True, api_key: str | None = None,
          api_base: str | None = None, model: str = MODEL, **params: Any):
    params.setdefault("aws_access_key_id", KEY_ID)
    params.setdefault("aws_secret_access_key", SECRET)
    params.setdefault("aws_region_name", "us-west-2")
    p = provider_class("bedrock")(api_key=api_key, api_base=api_base)
    req = ChatRequest(model, messages or [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                      params)
    return p.build_request(req, stream=stream)


def body(r) -> dict[str, Any]:
    assert r.json is None and r.content is not None  # signed bytes, sent as they are
    return json.loads(r.content)


def botocore_signature(r, region: str, token: str | None = None) -> str:
    """What botocore's own signer gives for the same request at the same instant."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    when = datetime.strptime(r.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    unsigned = {k: v for k, v in r.headers.items() if k not in ("authorization", "x-amz-date", "x-amz-security-token")}
    aws = AWSRequest(method=r.method, url=r.url, data=r.content, headers=unsigned)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        SigV4Auth(BotoCredentials(KEY_ID, SECRET, token), "bedrock", region).add_auth(aws)
    return aws.headers["Authorization"]


class TestEndpointAndCredentials:
    def test_url_quotes_the_model_id(self) -> None:
        r = build()
        assert r.method == "POST"
        assert r.url == ("https://bedrock-runtime.us-west-2.amazonaws.com/model/"
                         "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream")
        assert build(stream=False).url.endswith("%3A0/converse")
        arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc"
        assert build(model=arn).url.endswith("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3A"
                                             "application-inference-profile%2Fabc/converse-stream")

    def test_model_spellings(self) -> None:
        assert split_model(f"bedrock/{MODEL}") == ("bedrock", MODEL)
        assert split_model(f"bedrock/converse/{MODEL}") == ("bedrock", MODEL)
        assert split_model(f"bedrock/invoke/{MODEL}") == ("bedrock", MODEL)

    @pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEXAMPLETOKEN"])
    def test_sigv4_matches_botocore(self, token: str | None) -> None:
        r = build(aws_session_token=token, temperature=0.5)
        assert r.headers["authorization"] == botocore_signature(r, "us-west-2", token)
        assert r.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={KEY_ID}/")
        assert "/us-west-2/bedrock/aws4_request, SignedHeaders=" in r.headers["authorization"]
        assert r.headers.get("x-amz-security-token") == token
        # A different body must not carry the same signature.
        other = build(aws_session_token=token, temperature=0.6)
        if other.headers["x-amz-date"] == r.headers["x-amz-date"]:
            assert other.headers["authorization"] != r.headers["authorization"]

    def test_signer_on_aws_published_vector(self) -> None:
        # AWS's SigV4 test suite, "get-vanilla": GET / on example.amazonaws.com, 2015-08-30T12:36:00Z.
        out = sign(Credentials(KEY_ID, SECRET), method="GET", url="https://example.amazonaws.com/", headers={},
                   body=b"", region="us-east-1", service="service",
                   now=datetime(2015, 8, 30, 12, 36, tzinfo=timezone.utc))
        assert out["authorization"] == (
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")

    def test_credentials_and_region_from_environment(self, clean_aws: pytest.MonkeyPatch) -> None:
        clean_aws.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
        clean_aws.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        clean_aws.setenv("AWS_SESSION_TOKEN", "tok-env")
        clean_aws.setenv("AWS_REGION", "eu-central-1")
        p = provider_class("bedrock")()
        r = p.build_request(ChatRequest(MODEL, [{"role": "user", "content": "x"}], {}), stream=True)
        assert r.url.startswith("https://bedrock-runtime.eu-central-1.amazonaws.com/")
        assert r.headers["authorization"] == botocore_signature(r, "eu-central-1", "tok-env")

    def test_credentials_from_a_profile(self, clean_aws: pytest.MonkeyPatch, tmp_path: Path) -> None:
        (tmp_path / "credentials").write_text(
            f"[default]\naws_access_key_id = NOPE\naws_secret_access_key = NOPE\n\n"
            f"[work]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n")
        (tmp_path / "config").write_text("[profile work]\nregion = ap-southeast-2\n")
        p = provider_class("bedrock")()
        r = p.build_request(ChatRequest(MODEL, [{"role": "user", "content": "x"}], {"aws_profile_name": "work"}),
                            stream=True)
        assert r.url.startswith("https://bedrock-runtime.ap-southeast-2.amazonaws.com/")
        assert r.headers["authorization"] == botocore_signature(r, "ap-southeast-2")

    def test_bedrock_api_key_is_a_bearer_token(self, clean_aws: pytest.MonkeyPatch) -> None:
        r = build(api_key="ABSKbedrock-key", aws_access_key_id=None, aws_secret_access_key=None)
        assert r.headers["authorization"] == "Bearer ABSKbedrock-key" and "x-amz-date" not in r.headers
        clean_aws.setenv("AWS_BEARER_TOKEN_BEDROCK", "ABSKfrom-env")
        r = build(aws_access_key_id=None, aws_secret_access_key=None)
        assert r.headers["authorization"] == "Bearer ABSKfrom-env"

    def test_custom_endpoint_signs_for_the_given_region(self) -> None:
        r = build(api_base="http://127.0.0.1:9/", aws_region_name="eu-west-1")
        assert r.url == "http://127.0.0.1:9/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream"
        assert "/eu-west-1/bedrock/aws4_request" in r.headers["authorization"]
        vpce = build(api_base="https://bedrock-runtime.ca-central-1.amazonaws.com", aws_region_name=None)
        assert "/ca-central-1/bedrock/aws4_request" in vpce.headers["authorization"]

    def test_missing_credentials_or_region_fail_before_any_network(self) -> None:
        with pytest.raises(errors.AuthenticationError, match="no AWS credentials"):
            build(aws_access_key_id=None, aws_secret_access_key=None)
        with pytest.raises(errors.BadRequestError, match="no AWS region"):
            build(aws_region_name=None)

        class NoNetwork(httpx.BaseTransport):
            def handle_request(self, request: httpx.Request) -> httpx.Response:  # pragma: no cover
                raise AssertionError("network used")

        with httpx.Client(transport=NoNetwork()) as client:
            with pytest.raises(errors.AuthenticationError) as info:
                polystream.completion(f"bedrock/{MODEL}", [{"role": "user", "content": "x"}], stream=True,
                                      client=client, aws_region_name="us-east-1")
        assert info.value.provider == "bedrock"

    def test_secrets_never_shown(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)
        r = build(aws_session_token="SESSION-SECRET-123")
        p = provider_class("bedrock")(api_key="ABSK-SECRET-456")
        rb = p.build_request(ChatRequest(MODEL, [{"role": "user", "content": "x"}], {"aws_region_name": "us-east-1"}),
                             stream=True)
        logging.getLogger("test").debug("requests %r %r via %r", r, rb, p)
        for secret in (SECRET, "SESSION-SECRET-123", "ABSK-SECRET-456"):
            assert secret not in caplog.text
        assert SECRET not in json.dumps(body(r))  # credentials never go into the body
        assert "aws_" not in json.dumps(body(r))


class TestBody:
    def test_plain_turn(self) -> None:
        assert body(build()) == {"messages": [{"role": "user", "content": [{"text": "Hi"}]}],
                                 "system": [{"text": "Be brief."}]}

    def test_tool_calls_and_results(self) -> None:
        b = body(build(TOOL_TURNS, tools=[WEATHER, CLOCK]))
        assert b["system"] == [{"text": "Be brief."}]
        assert b["messages"] == [
            {"role": "user", "content": [{"text": "Weather and time in Paris?"}]},
            {"role": "assistant", "content": [
                {"text": "Checking."},
                {"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}},
                {"toolUse": {"toolUseId": "call_2", "name": "get_time", "input": {}}},
            ]},
            {"role": "user", "content": [  # results, then the next user text, in one turn
                {"toolResult": {"toolUseId": "call_1", "content": [{"json": {"temp": 21}}]}},
                {"toolResult": {"toolUseId": "call_2", "content": [{"text": "14:05"}]}},
                {"text": "Thanks!"},
            ]},
        ]
        assert b["toolConfig"] == {"tools": [
            {"toolSpec": {"name": "get_weather", "description": "Weather for a city",
                          "inputSchema": {"json": WEATHER["function"]["parameters"]}}},
            {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object", "properties": {}}}}},
        ]}

    def test_a_tool_history_without_tools_still_declares_them(self) -> None:
        # Converse rejects toolUse/toolResult blocks unless toolConfig is present.
        b = body(build(TOOL_TURNS))
        assert [t["toolSpec"]["name"] for t in b["toolConfig"]["tools"]] == ["get_time", "get_weather"]
        assert "toolChoice" not in b["toolConfig"]

    @pytest.mark.parametrize("choice,want", [
        ("auto", {"auto": {}}),
        ("required", {"any": {}}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"tool": {"name": "get_weather"}}),
    ])
    def test_tool_choice(self, choice: Any, want: dict[str, Any]) -> None:
        assert body(build(tools=[WEATHER], tool_choice=choice))["toolConfig"]["toolChoice"] == want

    def test_tool_choice_none_sends_no_tools(self) -> None:
        assert "toolConfig" not in body(build(tools=[WEATHER], tool_choice="none"))

    def test_inference_config_and_dropped_params(self) -> None:
        b = body(build(temperature=0.2, top_p=0.9, max_tokens=77, stop="END", top_k=5, seed=3, n=1, user="u",
                       presence_penalty=0.1))
        assert b["inferenceConfig"] == {"maxTokens": 77, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]}
        assert b["additionalModelRequestFields"] == {"top_k": 5}
        assert set(b) == {"messages", "system", "inferenceConfig", "additionalModelRequestFields"}
        assert body(build(max_completion_tokens=55))["inferenceConfig"] == {"maxTokens": 55}

    def test_images_and_documents(self) -> None:
        pdf = "data:application/pdf;base64,JVBERi0xLjQ="
        turn = [{"role": "user", "content": [
            {"type": "text", "text": "Look"},
            {"type": "image_url", "image_url": {"url": DATA_URL}},
            {"type": "file", "file": {"file_data": pdf, "filename": "Q3 report.v2.pdf"}},
        ]}]
        assert body(build(turn))["messages"][0]["content"] == [
            {"text": "Look"},
            {"image": {"format": "png", "source": {"bytes": PNG}}},
            {"document": {"format": "pdf", "name": "Q3 report-v2", "source": {"bytes": "JVBERi0xLjQ="}}},
        ]
        link = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": HTTP_IMAGE}}]}]
        with pytest.raises(errors.BadRequestError, match="inline only"):
            build(link)

    def test_cache_control_becomes_a_cache_point(self) -> None:
        turn = [{"role": "system", "content": [{"type": "text", "text": "Long rules", "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": "q"}]
        assert body(build(turn))["system"] == [{"text": "Long rules"}, {"cachePoint": {"type": "default"}}]

    def test_reasoning_effort_turns_on_claude_thinking(self) -> None:
        b = body(build(reasoning_effort="low"))
        assert b["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 1024}}
        assert b["inferenceConfig"] == {"maxTokens": 4096 + 1024}  # max tokens must exceed the budget
        b = body(build(reasoning_effort="high", max_tokens=3000))
        assert b["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 2999
        # Not a Claude model: no Anthropic-only fields.
        assert "additionalModelRequestFields" not in body(build(model="amazon.nova-pro-v1:0", reasoning_effort="low"))

    def test_thinking_blocks_go_back(self) -> None:
        turns = [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": None, "thinking_blocks": [
                {"type": "redacted_thinking", "data": "ENCRYPTED=="},
                {"type": "thinking", "thinking": "hmm", "signature": "sig=="}],
             "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "ok"},
        ]
        content = body(build(turns))["messages"][1]["content"]
        assert content == [
            {"reasoningContent": {"redactedContent": "ENCRYPTED=="}},
            {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "sig=="}}},
            {"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}},
        ]

    def test_response_format_is_an_instruction(self) -> None:
        schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
        b = body(build(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}))
        assert b["system"][0] == {"text": "Be brief."}
        assert "JSON" in b["system"][1]["text"] and json.dumps(schema) in b["system"][1]["text"]


class TestErrors:
    def test_http_errors_get_the_aws_error_type(self) -> None:
        p = provider_class("bedrock")(api_key="k")
        exc = p.map_error(MODEL, 429, {"x-amzn-errortype": "ThrottlingException:http://internal.amazon.com/coral/",
                                       "x-amzn-requestid": "req-1"}, b'{"message":"Too many requests"}')
        assert isinstance(exc, errors.RateLimitError) and exc.type == "ThrottlingException"
        assert exc.request_id == "req-1" and "Too many requests" in str(exc)
        exc = p.map_error(MODEL, 400, {"x-amzn-errortype": "ValidationException"},
                          b'{"message":"Input is too long for requested model."}')
        assert isinstance(exc, errors.ContextWindowExceededError)
        exc = p.map_error(MODEL, 424, {}, b'{"message":"The model failed"}')
        assert isinstance(exc, errors.InternalServerError) and exc.retryable
        assert isinstance(p.map_error(MODEL, 403, {}, b'{"message":"denied"}'), errors.PermissionDeniedError)


# ------------------------------------------------------------------ over HTTP (the replay server)

FIXTURES = Path(__file__).parent / "fixtures" / "providers" / "bedrock"


@pytest.fixture(scope="module")
def server():
    from polystream.testing import ReplayServer

    with ReplayServer() as s:
        yield s


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_signed_bytes_are_the_bytes_sent(server, mode: str) -> None:
    """SigV4 covers the body's hash: what reaches the server must be exactly the signed bytes,
    through the pooled clients' request path (sync and async), or AWS refuses it."""
    import asyncio

    from polystream.testing import Reply

    server.reset()
    base = server.serve_fixture("bedrock", Reply((FIXTURES / "bedrock_text_multibyte.eventstream").read_bytes(),
                                                 content_type="application/vnd.amazon.eventstream"))
    kw = dict(stream=True, api_base=base, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
              aws_session_token="tok", aws_region_name="eu-west-3", temperature=0.3,
              messages=[{"role": "user", "content": "Grüße, 世界"}])
    if mode == "sync":
        text = "".join(c.choices[0].delta.content or "" for c in polystream.completion(f"bedrock/{MODEL}", **kw)
                       if c.choices)
    else:
        async def go() -> str:
            stream = await polystream.acompletion(f"bedrock/{MODEL}", **kw)
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        text = asyncio.run(go())
    assert text == json.loads((FIXTURES / "bedrock_text_multibyte.expected.json").read_text())["content"]
    (req,) = server.requests
    assert json.loads(req.body)["messages"] == [{"role": "user", "content": [{"text": "Grüße, 世界"}]}]

    class Sent:  # the request as the server saw it, in the shape botocore_signature reads
        method, url, content = req.method, base.rstrip("/") + req.target, req.body
        headers = {k: v for k, v in req.headers.items()
                   if k in ("content-type", "accept", "x-amz-date", "x-amz-security-token", "authorization")}

    assert req.headers["authorization"] == botocore_signature(Sent, "eu-west-3", "tok")


def test_fake_streaming_replays_a_converse_answer(server) -> None:
    """fake_stream=True: one `/converse` call, its JSON answer replayed as the stream's frames,
    through the same dialect (reasoning blocks, tool calls, finish reason and usage included)."""
    from polystream.testing import Reply

    answer = {
        "output": {"message": {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "Need the weather.", "signature": "c2ln"}}},
            {"text": "Checking Zürich."},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Zürich"}}},
        ]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 20, "outputTokens": 15, "totalTokens": 40, "cacheReadInputTokens": 5},
        "metrics": {"latencyMs": 300},
    }
    server.reset()
    server.add("/model/*/converse", Reply(json.dumps(answer, ensure_ascii=False).encode(),
                                          content_type="application/json"))
    stream = polystream.completion(f"bedrock/{MODEL}", [{"role": "user", "content": "Weather?"}], stream=True,
                                   fake_stream=True, api_base=server.url, api_key="k", include_cost=True)
    chunks = list(stream)
    (req,) = server.requests
    assert req.path.endswith("/converse") and req.headers["accept"] == "application/json"
    msg = stream.completion.choices[0].message
    assert (msg.content, msg.reasoning_content) == ("Checking Zürich.", "Need the weather.")
    assert [b.to_dict() for b in msg.thinking_blocks] == [
        {"type": "thinking", "thinking": "Need the weather.", "signature": "c2ln"}]
    (call,) = msg.tool_calls
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == ("tooluse_1", "get_weather",
                                                                                  {"city": "Zürich"})
    assert stream.completion.choices[0].finish_reason == "tool_calls"
    usage = chunks[-1].usage.to_dict()
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (25, 15, 40)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 5
    # Claude Sonnet 4.5 at Anthropic's prices: 20 fresh × $3, 5 cached × $0.30, 15 out × $15 per M.
    assert usage["cost"] == pytest.approx((20 * 3 + 5 * 0.3 + 15 * 15) / 1e6)


@pytest.mark.parametrize("fixture", sorted(p.stem for p in FIXTURES.glob("*.eventstream")))
def test_boto3_reads_the_projects_fixtures_as_polystream_does(server, fixture: str) -> None:
    """boto3 (AWS's own SDK) over the project's bodies: tool calls, reasoning, guardrail and
    length stops, cache tokens, exceptions and truncation come out the same on both sides."""
    from polystream.testing import Reply

    from . import sdk_parity_support as S

    body = (FIXTURES / f"{fixture}.eventstream").read_bytes()
    server.reset()
    server.serve_fixture("bedrock", Reply(body, content_type="application/vnd.amazon.eventstream"))
    sdk = S.run_bedrock(server.url, MODEL)
    server.reset()
    base = server.serve_fixture("bedrock", Reply(body, content_type="application/vnd.amazon.eventstream"))
    chunks, error = [], None
    try:
        for chunk in polystream.completion(f"bedrock/{MODEL}", [{"role": "user", "content": "Hi"}], stream=True,
                                           api_base=base, api_key="k"):
            chunks.append(chunk)
    except errors.APIError as exc:
        error = exc
    mine = S.polystream_outcome(polystream.stream_chunk_builder(chunks))
    if fixture == "bedrock_truncated":
        # boto3 does not notice a stream that ends without messageStop; polystream raises.
        assert sdk.error is None and isinstance(error, errors.APIConnectionError)
    else:
        assert (sdk.error is None) == (error is None), (sdk.error, error)
    got, want = mine.choices[0], sdk.choices[0]
    assert (got.text, got.reasoning, got.tool_calls, got.tool_call_ids) == (
        want.text, want.reasoning, want.tool_calls, want.tool_call_ids)
    assert (got.finish_reason, got.raw_finish) == (want.finish_reason, want.raw_finish)
    if sdk.usage is None:
        assert mine.usage is None
    else:
        assert {k: mine.usage.get(k) for k in sdk.usage} == sdk.usage
