"""Azure OpenAI: URLs (v1 and dated deployments API), the api-key header or an Entra ID token,
environment variables, Azure's error bodies, and parity with the openai SDK's own AzureOpenAI
client on the same bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

import polystream
from polystream import errors
from polystream.providers import ChatRequest, provider_class, split_model
from polystream.testing import ReplayServer, Reply

from . import sdk_parity_support as S

BASE = "https://contoso-eastus.openai.azure.com"
FIXTURES = Path(__file__).parent / "fixtures" / "providers" / "openai"
AZURE_ENV = ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT", "AZURE_API_VERSION",
             "OPENAI_API_VERSION", "AZURE_AD_TOKEN")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for env in AZURE_ENV:
        monkeypatch.delenv(env, raising=False)
    return monkeypatch


def build(model: str = "gpt-41-prod", *, api_key: str | None = "az-key", api_base: str | None = BASE,
          stream: bool = True, **params: Any):
    p = provider_class("azure")(api_key=api_key, api_base=api_base)
    return p.build_request(ChatRequest(model, [{"role": "user", "content": "Hi"}], params), stream=stream)


def test_model_spelling() -> None:
    assert split_model("azure/gpt-41-prod") == ("azure", "gpt-41-prod")


@pytest.mark.parametrize("base", [BASE, BASE + "/", BASE + "/openai", BASE + "/openai/v1/"])
def test_v1_api_without_a_version(base: str) -> None:
    r = build(api_base=base)
    assert r.url == f"{BASE}/openai/v1/chat/completions"
    assert r.headers["api-key"] == "az-key" and "authorization" not in r.headers
    assert r.json["model"] == "gpt-41-prod" and r.json["stream_options"] == {"include_usage": True}


def test_dated_api_version_uses_the_deployments_path() -> None:
    r = build(api_version="2024-10-21", temperature=0.1)
    assert r.url == f"{BASE}/openai/deployments/gpt-41-prod/chat/completions?api-version=2024-10-21"
    assert "api_version" not in r.json and r.json["temperature"] == 0.1  # a URL setting, not a model parameter
    assert build(api_version="v1").url == f"{BASE}/openai/v1/chat/completions"


def test_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AZURE_OPENAI_API_KEY", "env-key")
    clean_env.setenv("AZURE_OPENAI_ENDPOINT", BASE)
    clean_env.setenv("OPENAI_API_VERSION", "2025-04-01-preview")
    r = build(api_key=None, api_base=None)
    assert r.url == f"{BASE}/openai/deployments/gpt-41-prod/chat/completions?api-version=2025-04-01-preview"
    assert r.headers["api-key"] == "env-key" and "env-key" not in repr(r)


def test_entra_id_token_is_a_bearer(clean_env: pytest.MonkeyPatch) -> None:
    r = build(api_key=None, azure_ad_token="eyJ0eXAi.token")
    assert r.headers["authorization"] == "Bearer eyJ0eXAi.token" and "api-key" not in r.headers
    assert "azure_ad_token" not in r.json and "eyJ0eXAi" not in repr(r)
    clean_env.setenv("AZURE_AD_TOKEN", "eyJenv")
    assert build(api_key=None).headers["authorization"] == "Bearer eyJenv"


def test_reasoning_deployments_get_max_completion_tokens() -> None:
    assert build("o4-mini", max_tokens=50).json["max_completion_tokens"] == 50
    assert build("gpt-41-prod", max_tokens=50).json["max_tokens"] == 50


def test_missing_endpoint_or_key_fail_before_any_network() -> None:
    with pytest.raises(errors.BadRequestError, match="api_base is required"):
        build(api_base=None)

    class NoNetwork(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:  # pragma: no cover
            raise AssertionError("network used")

    with httpx.Client(transport=NoNetwork()) as client:
        with pytest.raises(errors.AuthenticationError, match="no API key"):
            polystream.completion("azure/gpt-41-prod", [{"role": "user", "content": "x"}], stream=True,
                                  api_base=BASE, client=client)


def test_content_filter_refusal_of_the_prompt_is_typed() -> None:
    body = {"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                                 "management policy. Please modify your prompt and retry.",
                      "type": None, "param": "prompt", "code": "content_filter", "status": 400,
                      "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
                          "violence": {"filtered": True, "severity": "high"}}}}}
    p = provider_class("azure")(api_key="k", api_base=BASE)
    exc = p.map_error("gpt-41-prod", 400, {"apim-request-id": "r-1"}, json.dumps(body).encode())
    assert isinstance(exc, errors.ContentPolicyViolationError) and exc.code == "content_filter"
    nf = p.map_error("gpt-41-prod", 404, {}, b'{"error":{"code":"DeploymentNotFound","message":"The API deployment '
                                                 b'for this resource does not exist."}}')
    assert isinstance(nf, errors.NotFoundError) and nf.code == "DeploymentNotFound"


def test_cost_of_a_deployment_named_after_its_model() -> None:
    from polystream import pricing

    assert pricing.price("azure/gpt-4o-2024-08-06") == pricing.price("openai/gpt-4o-2024-08-06") is not None
    assert pricing.price("azure/my-deployment") is None  # a name that says nothing: no guess


@pytest.fixture(scope="module")
def server():
    with ReplayServer() as s:
        yield s


def _openai_sdk_outcome(server_url: str, deployment: str, api_version: str) -> S.Outcome:
    """openai-python's AzureOpenAI client at the replay server, accumulated by the SDK's own
    ChatCompletionStreamState (as S.run_openai does for OpenAI)."""
    import openai
    from openai.lib.streaming.chat import ChatCompletionStreamState

    out = S.Outcome()
    state = ChatCompletionStreamState()
    client = openai.AzureOpenAI(azure_endpoint=server_url, api_key="k", api_version=api_version, max_retries=0)
    with client:
        for chunk in client.chat.completions.create(model=deployment, messages=S.MESSAGES, stream=True,
                                                    stream_options={"include_usage": True}):
            state.handle_chunk(chunk)
            if chunk.usage is not None:
                u = chunk.usage
                out.usage = S._usage(u.prompt_tokens, u.completion_tokens, u.total_tokens,
                                     S._detail(u, "prompt_tokens_details", "cached_tokens"))
    for ch in state.current_completion_snapshot.choices:
        c = out.choice(ch.index)
        c.text = ch.message.content or ""
        c.tool_calls = [(tc.function.name, S.parse_args(tc.function.arguments)) for tc in ch.message.tool_calls or []]
        c.tool_call_ids = [tc.id for tc in ch.message.tool_calls or []]
        c.finish_reason = ch.finish_reason
    return out


@pytest.mark.parametrize("fixture", sorted(p.stem for p in FIXTURES.glob("azure_*.sse")))
def test_parity_with_the_openai_sdks_azure_client(server: ReplayServer, fixture: str) -> None:
    body = (FIXTURES / f"{fixture}.sse").read_bytes()
    server.reset()
    server.serve_fixture("azure", Reply(body))
    sdk = _openai_sdk_outcome(server.url, "gpt-41-prod", "2024-10-21")
    (sdk_req,) = server.requests
    server.reset()
    server.serve_fixture("azure", Reply(body))
    stream = polystream.completion("azure/gpt-41-prod", S.MESSAGES, stream=True, api_base=server.url, api_key="k",
                                   api_version="2024-10-21")
    chunks = list(stream)
    (ours_req,) = server.requests
    assert ours_req.target == sdk_req.target  # the same URL as Azure's own client builds
    assert ours_req.headers["api-key"] == sdk_req.headers["api-key"] == "k"
    mine = S.polystream_outcome(stream.completion)
    got, want = mine.choices[0], sdk.choices[0]
    assert (got.text, got.tool_calls, got.tool_call_ids, got.finish_reason) == (
        want.text, want.tool_calls, want.tool_call_ids, want.finish_reason)
    if sdk.usage is None:  # the held-back recording's shape asks for none
        assert mine.usage is None
    else:
        assert {k: mine.usage.get(k) for k in sdk.usage} == sdk.usage
        assert chunks[-1].usage is not None
