"""Every provider end to end: `completion(stream=True)` / `acompletion` against the replay server.

Each fixture under tests/fixtures/providers/<dir>/ (with its `.expected.json` sidecar: the
accumulated message, finish, usage and error the bytes must give) is served on its provider's
endpoint, cut into 1-byte and random pieces, and read through the public API, sync and async. On
top of that, per provider: HTTP errors before the first chunk, a connection lost mid-stream, the
request the server received, and that the API key shows up nowhere it should not.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import polystream
from polystream import ChunkDecoder
from polystream.providers import provider_class
from polystream.testing import ReplayServer, Reply, content_type_for

FIXTURES = Path(__file__).parent / "fixtures" / "providers"

MODELS = {
    "openai": "gpt-4o",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
    "cohere": "command-a-03-2025",
    "groq": "llama-3.3-70b-versatile",
    "mistral": "mistral-small-latest",
    "ollama": "qwen3:4b",
    "deepseek": "deepseek-chat",
    "openrouter": "anthropic/claude-sonnet-4.5",
    "together": "meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "openai_compatible": "Qwen/Qwen3-8B",
    "openai_responses": "gpt-5",
    "bedrock": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "azure": "gpt-41-prod",  # a deployment name
}
PROVIDERS = sorted(MODELS)
# Fixtures kept in openai/ that another OpenAI-compatible provider sends.
_PREFIX = {"azure_": "azure", "mistral_": "mistral", "openrouter_": "openrouter", "tgi_": "openai_compatible", "vllm_": "openai_compatible"}

# What each provider's fixtures must cover (a guard against the matrix silently shrinking).
# The in-band mid-stream error is listed where the provider has one; every provider also gets a
# dropped connection mid-stream (test_connection_lost_mid_stream).
COVERAGE = {
    "openai": ["openai_text_usage_multibyte", "openai_tool_single", "openai_parallel_tools_multibyte",
               "openai_length_usage", "openai_content_filter", "openai_error_data"],
    "anthropic": ["anthropic_text_multibyte", "anthropic_inline_tool_single", "anthropic_parallel_tools", "anthropic_thinking_signature",
                  "anthropic_interleaved_thinking",
                  "anthropic_max_tokens_open_tool", "anthropic_refusal", "anthropic_error_after_content"],
    "gemini": ["gemini_text_multibyte", "gemini_json_array_tools", "gemini_parallel_calls", "gemini_thinking_signature",
               "gemini_max_tokens", "gemini_inline_safety", "gemini_prompt_blocked", "gemini_error_in_data",
               "gemini_logprobs", "gemini_json_array_logprobs"],
    "cohere": ["cohere_text_multibyte", "cohere_inline_tool_single", "cohere_parallel_tools", "cohere_thinking", "cohere_max_tokens",
               "cohere_error_finish"],
    "ollama": ["ollama_text_multibyte", "ollama_inline_tool_single", "ollama_thinking_tools", "ollama_length", "ollama_error",
               "ollama_logprobs", "ollama_logprobs_tool"],
    "groq": ["groq_text_multibyte", "groq_tool_single", "groq_parallel_tools", "groq_reasoning", "groq_length",
             "groq_error_after_content"],
    "mistral": ["mistral_text_multibyte", "mistral_tool_single", "mistral_parallel_tools", "mistral_thinking",
                "mistral_length"],
    "deepseek": ["deepseek_reasoner_multibyte", "deepseek_tool_single", "deepseek_parallel_tools", "deepseek_length"],
    "openrouter": ["openrouter_text_multibyte", "openrouter_tool_single", "openrouter_parallel_tools",
                   "openrouter_reasoning", "openrouter_length", "openrouter_error_after_content"],
    "together": ["together_text_multibyte", "together_tool_single", "together_parallel_tools", "together_length"],
    "openai_compatible": ["vllm_text_multibyte", "vllm_tool_single", "vllm_parallel_tools", "vllm_reasoning",
                          "vllm_length", "vllm_error_after_content"],
    "openai_responses": ["openai_responses_text_multibyte", "openai_responses_tool_single",
                         "openai_responses_parallel_tools", "openai_responses_reasoning_summary",
                         "openai_responses_length", "openai_responses_content_filter", "openai_responses_refusal",
                         "openai_responses_error_after_content", "openai_responses_logprobs"],
    "bedrock": ["bedrock_text_multibyte", "bedrock_tool_single", "bedrock_parallel_tools", "bedrock_reasoning",
                "bedrock_redacted_reasoning", "bedrock_max_tokens", "bedrock_guardrail",
                "bedrock_exception_after_content", "bedrock_truncated"],
    "azure": ["azure_prompt_filter", "azure_tool_single", "azure_parallel_tools", "azure_length_usage",
              "azure_content_filter"],
}
# The plain-text fixture of each provider (multi-byte UTF-8, usage, a normal stop).
TEXT = {p: names[0] for p, names in COVERAGE.items()}

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


# Scenarios the fixture directories lack, written here in each provider's wire format (the native
# providers' directories belong to the dialect fixtures): (provider, body, content type, sidecar).
def _sse(events: list[tuple[str, Any]], eol: str = "\n") -> bytes:
    out = []
    for name, data in events:
        head = f"event: {name}{eol}" if name else ""
        out.append(f"{head}data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}{eol}{eol}")
    return "".join(out).encode()


_W_ARGS = '{"city": "Zürich"}'
INLINE: dict[str, tuple[str, bytes, str, dict[str, Any]]] = {
    "anthropic_inline_tool_single": ("anthropic", _sse([
        ("message_start", {"type": "message_start", "message": {"model": "claude-sonnet-4-5", "id": "msg_01Single", "type": "message",
                           "role": "assistant", "content": [], "stop_reason": None, "stop_sequence": None,
                           "usage": {"input_tokens": 50, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "tool_use", "id": "toolu_01S", "name": "get_weather", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": _W_ARGS[:12]}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": _W_ARGS[12:]}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None}, "usage": {"output_tokens": 20}}),
        ("message_stop", {"type": "message_stop"}),
    ]), "text/event-stream", {"tool_calls": [{"id": "toolu_01S", "name": "get_weather", "arguments": _W_ARGS}],
                              "finish_reason": "tool_calls", "native_finish_reason": "tool_use", "error": None}),
    "cohere_inline_tool_single": ("cohere", _sse([
        ("message-start", {"id": "c0ffee00-1111-2222-3333-444455556666", "type": "message-start",
                           "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}),
        ("tool-plan-delta", {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will check the weather."}}}),
        ("tool-call-start", {"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {
            "id": "get_weather_abc123", "type": "function", "function": {"name": "get_weather", "arguments": ""}}}}}),
        ("tool-call-delta", {"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": _W_ARGS[:12]}}}}}),
        ("tool-call-delta", {"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": _W_ARGS[12:]}}}}}),
        ("tool-call-end", {"type": "tool-call-end", "index": 0}),
        ("message-end", {"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": {
            "billed_units": {"input_tokens": 30, "output_tokens": 12}, "tokens": {"input_tokens": 900, "output_tokens": 40}}}}),
        ("", "[DONE]"),
    ]), "text/event-stream", {"tool_calls": [{"id": "get_weather_abc123", "name": "get_weather", "arguments": _W_ARGS}],
                              "finish_reason": "tool_calls", "native_finish_reason": "TOOL_CALL", "error": None}),
    "ollama_inline_tool_single": ("ollama", (
        json.dumps({"model": "qwen3:4b", "created_at": "2026-01-10T10:00:00.000000Z", "message": {"role": "assistant", "content": "",
                    "tool_calls": [{"function": {"index": 0, "name": "get_weather", "arguments": {"city": "Zürich"}}}]}, "done": False},
                   ensure_ascii=False) + "\n"
        + json.dumps({"model": "qwen3:4b", "created_at": "2026-01-10T10:00:01.000000Z", "message": {"role": "assistant", "content": ""},
                      "done": True, "done_reason": "stop", "total_duration": 9, "load_duration": 1, "prompt_eval_count": 30,
                      "prompt_eval_duration": 1, "eval_count": 12, "eval_duration": 1}) + "\n").encode(),
        "application/x-ndjson", {"tool_calls": [{"id": "call_0", "name": "get_weather", "arguments": _W_ARGS}],
                                 "finish_reason": "tool_calls", "native_finish_reason": "stop",
                                 "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}, "error": None}),
    "gemini_inline_safety": ("gemini", _sse([
        ("", {"candidates": [{"content": {"parts": [{"text": "Here is how"}], "role": "model"}, "index": 0}],
              "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 3, "totalTokenCount": 15},
              "modelVersion": "gemini-2.5-flash", "responseId": "safe-1"}),
        ("", {"candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": [
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]}],
              "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 3, "totalTokenCount": 15},
              "modelVersion": "gemini-2.5-flash", "responseId": "safe-1"}),
    ], eol="\r\n"), "text/event-stream", {"content": "Here is how", "finish_reason": "content_filter", "native_finish_reason": "SAFETY",
                                          "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}, "error": None}),
}


def provider_of(path: Path) -> str:
    if path.parent.name == "openai":
        return next((p for pre, p in _PREFIX.items() if path.name.startswith(pre)), "openai")
    return path.parent.name


def sidecar(path: Path) -> dict[str, Any]:
    return json.loads(path.with_name(path.name.rsplit(".", 1)[0] + ".expected.json").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Case:
    name: str
    provider: str
    body: bytes
    content_type: str
    want: dict[str, Any]

    def reply(self, **opts: Any) -> Reply:
        return Reply(self.body, content_type=self.content_type, **opts)


def _file_case(path: Path) -> Case:
    return Case(path.stem, provider_of(path), path.read_bytes(), content_type_for(path), sidecar(path))


CASES = [
    _file_case(p)
    for p in sorted(FIXTURES.glob("*/*"))
    # Bodies only: not sidecars, notes, nor the sources and script the eventstream bodies are made from.
    if not p.name.endswith((".expected.json", ".md", ".frames.json", ".py")) and provider_of(p) in MODELS
] + [Case(name, prov, body, ct, want) for name, (prov, body, ct, want) in INLINE.items()]
BY_NAME = {c.name: c for c in CASES}


@pytest.fixture(scope="module")
def server():
    with ReplayServer() as s:
        yield s


def serve(server: ReplayServer, provider: str, reply: Reply | list[Reply]) -> str:
    server.reset()
    return server.serve_fixture(provider, reply)


# ---------------------------------------------------------------------------------- running a call


@dataclass
class Outcome:
    chunks: list[Any] = field(default_factory=list)
    completion: Any = None
    exc: BaseException | None = None
    raised_by_call: bool = False  # the call itself raised (before any chunk reached the caller)


def run_sync(provider: str, base: str, **kw: Any) -> Outcome:
    out = Outcome()
    kw.setdefault("api_key", "test")
    try:
        stream = polystream.completion(f"{provider}/{MODELS[provider]}", kw.pop("messages", MESSAGES), stream=True, api_base=base, **kw)
    except polystream.APIError as exc:
        out.exc, out.raised_by_call = exc, True
        return out
    with stream:
        try:
            for chunk in stream:
                out.chunks.append(chunk)
        except polystream.APIError as exc:
            out.exc = exc
    out.completion = stream.completion
    return out


async def _run_async(provider: str, base: str, **kw: Any) -> Outcome:
    out = Outcome()
    kw.setdefault("api_key", "test")
    async with httpx.AsyncClient() as client:
        try:
            stream = await polystream.acompletion(
                f"{provider}/{MODELS[provider]}", kw.pop("messages", MESSAGES), stream=True, api_base=base, client=client, **kw
            )
        except polystream.APIError as exc:
            out.exc, out.raised_by_call = exc, True
            return out
        async with stream:
            try:
                async for chunk in stream:
                    out.chunks.append(chunk)
            except polystream.APIError as exc:
                out.exc = exc
        out.completion = stream.completion
    return out


def run(mode: str, provider: str, base: str, **kw: Any) -> Outcome:
    return run_sync(provider, base, **kw) if mode == "sync" else asyncio.run(_run_async(provider, base, **kw))


def streamed_text(chunks: list[Any], attr: str = "content") -> str | None:
    parts = [getattr(c.choices[0].delta, attr) for c in chunks if c.choices and c.choices[0].index == 0]
    parts = [p for p in parts if p is not None]
    return "".join(parts) if parts else None


def args_equal(got: str, want: str) -> bool:
    try:
        return json.loads(got or "{}") == json.loads(want or "{}")
    except ValueError:  # a call cut off by max_tokens: the fragments as they came
        return got == want


# ---------------------------------------------------------------------------------- the fixtures


def test_every_provider_has_its_scenarios() -> None:
    assert set(COVERAGE) == set(MODELS) == {c.provider for c in CASES}
    for provider, names in COVERAGE.items():
        for name in names:
            assert BY_NAME[name].provider == provider, name


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("split", [1, "random"], ids=["split1", "random"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.provider}-{c.name}")
def test_fixture_through_the_client(server: ReplayServer, case: Case, split: Any, mode: str) -> None:
    provider, want = case.provider, case.want
    base = serve(server, provider, case.reply(split=split, seed=len(case.name)))
    out = run(mode, provider, base)
    error = want.get("error")
    if error is None:
        assert out.exc is None, repr(out.exc)
        check_completion(out, want)
    else:
        check_error(out, want, error)


def check_completion(out: Outcome, want: dict[str, Any]) -> None:
    final = out.completion
    assert out.chunks, "no chunks"
    if "choices" in want:
        assert len(final.choices) == want["choices"]
    for key in ("id", "model"):
        if key in want:
            assert final[key] == want[key], key
    choice = next(c for c in final.choices if c.index == 0)
    msg = choice.message
    for key in ("content", "reasoning_content", "refusal", "reasoning_signature"):
        if key in want:
            assert msg.get(key) == want[key], key
    if "thinking_blocks" in want:
        # Whole blocks, in order, as chunks delivered them and as the final message keeps them.
        assert [b.to_dict() for b in msg.thinking_blocks] == want["thinking_blocks"]
        streamed = [b.to_dict() for c in out.chunks for ch in c.choices for b in (ch.delta.thinking_blocks or [])]
        assert streamed == want["thinking_blocks"]
    # What the caller saw chunk by chunk adds up to the same text (multi-byte characters whole).
    for key in ("content", "reasoning_content"):
        if want.get(key):
            assert streamed_text(out.chunks, key) == want[key], key
    if "tool_calls" in want:
        calls = msg.get("tool_calls") or []
        assert [(t.id, t.function.name) for t in calls] == [(w["id"], w["name"]) for w in want["tool_calls"]]
        for got, exp in zip(calls, want["tool_calls"]):
            assert args_equal(got.function.arguments, exp["arguments"]), (got.function.arguments, exp["arguments"])
    for key in ("finish_reason", "native_finish_reason"):
        if key in want:
            assert choice.get(key) == want[key], key
    if want.get("logprobs") is not None:
        check_logprobs(out, want["logprobs"])
    elif "logprobs" in want:  # stated as null: none
        assert choice.get("logprobs") is None
    if want.get("usage") is not None:
        assert final.usage.to_dict() == want["usage"]
        with_usage = [c for c in out.chunks if c.usage is not None]
        assert with_usage and with_usage[-1].usage.to_dict() == want["usage"]
        assert out.chunks[-1].usage is not None, "usage must ride on the final chunk"


def check_logprobs(out: Outcome, want: dict[str, Any]) -> None:
    """Choice 0's token logprobs: on the final completion, from `stream_chunk_builder`, and chunk
    by chunk, each chunk carrying its own tokens (the ones that spell its text)."""
    final = next(c for c in out.completion.choices if c.index == 0)
    assert final.logprobs.to_dict() == want
    rebuilt = next(c for c in polystream.stream_chunk_builder(out.chunks).choices if c.index == 0)
    assert rebuilt.logprobs.to_dict() == want
    per_chunk = [c.choices[0] for c in out.chunks if c.choices and c.choices[0].logprobs is not None]
    assert [e.to_dict() for ch in per_chunk for e in ch.logprobs.content] == want["content"]
    for ch in per_chunk:
        tokens = "".join(e.token for e in ch.logprobs.content)
        assert ch.delta.content in (tokens, None), (ch.delta.content, tokens)


def check_error(out: Outcome, want: dict[str, Any], error: dict[str, Any]) -> None:
    exc = out.exc
    assert isinstance(exc, polystream.APIError), repr(exc)
    assert exc.provider and exc.model
    if out.chunks or not out.raised_by_call:
        # Output reached the caller: a mid-stream error carrying the answer so far.
        assert isinstance(exc, polystream.MidStreamError), type(exc).__mro__
        assert exc.chunks_received >= len(out.chunks) > 0
        partial = exc.partial.choices[0].message if exc.partial.choices else {}
        assert partial.get("content") == want.get("content")
        assert streamed_text(out.chunks) == want.get("content")
    else:
        assert not isinstance(exc, polystream.MidStreamError)
        assert not want.get("content")
    if error["variant"] == "provider_error":
        assert (getattr(exc, "error_message", None), exc.type, exc.code) == (error["message"], error["kind"], error["code"])
    elif error["variant"] == "incomplete":
        assert isinstance(exc, polystream.APIConnectionError)


@pytest.mark.parametrize(
    "stem,cls",
    [
        ("anthropic_error_after_content", polystream.ServiceUnavailableError),  # overloaded_error
        ("groq_error_after_content", polystream.BadRequestError),  # tool_use_failed
        ("vllm_error_after_content", polystream.ContextWindowExceededError),
        ("openrouter_error_after_content", polystream.ServiceUnavailableError),  # code 502
        ("openai_responses_error_after_content", polystream.InternalServerError),  # server_error event
        ("openai_responses_truncated", polystream.APIConnectionError),  # no terminal event
        ("anthropic_truncated", polystream.APIConnectionError),  # no message_stop: truncated
        ("bedrock_exception_after_content", polystream.InternalServerError),  # modelStreamErrorException
        ("bedrock_truncated", polystream.APIConnectionError),  # no messageStop
    ],
)
def test_mid_stream_errors_are_typed(server: ReplayServer, stem: str, cls: type) -> None:
    case = BY_NAME[stem]
    out = run("sync", case.provider, serve(server, case.provider, case.reply()))
    assert isinstance(out.exc, cls) and isinstance(out.exc, polystream.MidStreamError)
    assert out.exc.partial.choices[0].message.content == case.want["content"]


# ---------------------------------------------------------------------------------- HTTP errors

_OAI_LIKE = {
    "auth": {"error": {"message": "Incorrect API key provided: te**.", "type": "invalid_request_error", "code": "invalid_api_key"}},
    "context": {"error": {"message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.",
                          "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}},
    "rate": {"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}},
    "unavailable": {"error": {"message": "The server is overloaded or not ready yet.", "type": "server_error", "code": None}},
}
ERROR_BODIES: dict[str, dict[str, Any]] = {p: _OAI_LIKE for p in ("openai", "groq", "deepseek", "openai_responses")}
ERROR_BODIES["azure"] = {
    "auth": {"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. "
                       "Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}},
    "context": {"error": {"message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 131000 tokens. "
                          "Please reduce the length of the messages.", "type": "invalid_request_error", "param": "messages",
                          "code": "context_length_exceeded"}},
    "rate": {"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
                       "2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 7 seconds."}},
    "unavailable": {"error": {"code": "ServiceUnavailable", "message": "The service is temporarily unable to process your request. "
                              "Please try again later."}},
}
ERROR_BODIES["anthropic"] = {
    "auth": {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}},
    "context": {"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 210000 tokens > 200000 maximum"}},
    "rate": {"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your rate limit"}},
    "unavailable": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
}
ERROR_BODIES["gemini"] = {
    "auth": {"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}},
    "context": {"error": {"code": 400, "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
                          "status": "INVALID_ARGUMENT"}},
    "rate": {"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}},
    "unavailable": {"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}},
}
ERROR_BODIES["cohere"] = {
    "auth": {"id": "e1", "message": "invalid api token"},
    "context": {"id": "e2", "message": "too many tokens: total number of tokens in the prompt cannot exceed 256000 - received 260000. Try using a shorter prompt"},
    "rate": {"id": "e3", "message": "You are using a Trial key, which is limited to 10 API calls / minute."},
    "unavailable": {"id": "e4", "message": "service unavailable, please retry"},
}
ERROR_BODIES["ollama"] = {
    "auth": {"error": "unauthorized"},
    "context": {"error": "the input length exceeds the context length"},
    "rate": {"error": "too many requests"},
    "unavailable": {"error": "server busy, please try again. maximum pending requests exceeded"},
}
ERROR_BODIES["mistral"] = {
    "auth": {"message": "Unauthorized", "request_id": "r1"},
    "context": {"object": "error", "message": "Prompt contains 40000 tokens and 0 draft tokens, too large for model with 32768 maximum context length",
                "type": "invalid_request_message_error", "param": None, "code": "3051"},
    "rate": {"message": "Requests rate limit exceeded"},
    "unavailable": {"object": "error", "message": "Service unavailable", "type": "service_unavailable", "param": None, "code": "1000"},
}
ERROR_BODIES["openrouter"] = {
    "auth": {"error": {"message": "No auth credentials found", "code": 401}},
    "context": {"error": {"message": "This endpoint's maximum context length is 200000 tokens. However, you requested about 250000 tokens.", "code": 400}},
    "rate": {"error": {"message": "Rate limit exceeded: free-models-per-min.", "code": 429}},
    "unavailable": {"error": {"message": "No endpoints available at this time", "code": 503}},
}
ERROR_BODIES["together"] = {
    "auth": {"error": {"message": "Invalid API key provided. You can find your API key at https://api.together.xyz/settings/api-keys.",
                       "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}},
    # Together serves models with TGI-style validation messages.
    "context": {"error": {"message": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 8193. Given: 8000 `inputs` tokens and 500 `max_new_tokens`",
                          "type": "invalid_request_error", "param": None, "code": None}},
    "rate": {"error": {"message": "You have reached the rate limit specific to this model.", "type": "model_rate_limit", "param": None, "code": None}},
    "unavailable": {"error": {"message": "The server is overloaded", "type": "service_unavailable", "param": None, "code": None}},
}
ERROR_BODIES["openai_compatible"] = {  # vLLM
    "auth": {"error": "Unauthorized"},
    "context": {"object": "error", "message": "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens (8000 in the messages, 1000 in the completion).",
                "type": "BadRequestError", "param": None, "code": 400},
    "rate": {"object": "error", "message": "Too many requests", "type": "RateLimitError", "param": None, "code": 429},
    "unavailable": {"object": "error", "message": "The server is not ready", "type": "ServiceUnavailableError", "param": None, "code": 503},
}
ERROR_BODIES["bedrock"] = {  # the status's kind is also in an x-amzn-errortype header (not sent here)
    "auth": {"message": "The security token included in the request is invalid."},
    "context": {"message": "Input is too long for requested model."},
    "rate": {"message": "Too many requests, please wait before trying again."},
    "unavailable": {"message": "Bedrock is unable to process your request."},
}
KINDS = {
    "auth": (401, polystream.AuthenticationError),
    "context": (400, polystream.ContextWindowExceededError),
    "rate": (429, polystream.RateLimitError),
    "unavailable": (503, polystream.ServiceUnavailableError),
}


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_http_error_before_the_first_chunk(server: ReplayServer, provider: str, kind: str, mode: str) -> None:
    status, cls = KINDS[kind]
    if provider == "anthropic" and kind == "unavailable":
        status = 529  # Anthropic's "overloaded"
    if provider == "bedrock" and kind == "auth":
        status = 403  # AWS answers bad credentials with 403
    headers = {"retry-after": "7"} if kind == "rate" else None
    base = serve(server, provider, Reply.error(status, ERROR_BODIES[provider][kind], headers=headers))
    out = run(mode, provider, base)
    exc = out.exc
    assert out.raised_by_call and isinstance(exc, cls), repr(exc)
    assert not isinstance(exc, polystream.MidStreamError)
    assert (exc.status_code, exc.provider, exc.model) == (status, provider, MODELS[provider])
    if kind == "rate":
        assert isinstance(exc, polystream.RateLimitError) and exc.retry_after == 7.0
    assert len(server.requests) == 1  # no retries unless asked for


def test_gemini_bad_key_is_an_authentication_error(server: ReplayServer) -> None:
    body = {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
                      "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}
    out = run("sync", "gemini", serve(server, "gemini", Reply.error(400, body)))
    assert isinstance(out.exc, polystream.AuthenticationError) and out.exc.status_code == 400


def test_retryable_http_error_then_success(server: ReplayServer) -> None:
    case = BY_NAME[TEXT["anthropic"]]
    base = serve(server, "anthropic", [Reply.error(529, ERROR_BODIES["anthropic"]["unavailable"], headers={"retry-after": "0"}),
                                       case.reply()])
    out = run("sync", "anthropic", base, num_retries=1)
    assert out.exc is None and out.completion.choices[0].message.content == case.want["content"]
    assert len(server.requests) == 2


# ---------------------------------------------------------------------------------- mid-stream drop


def _prefix_with_content(provider: str, reply: Reply) -> tuple[int, str]:
    """(pieces to send, content the client has when the connection then drops): up to the first
    piece after which some text was decoded."""
    decoder = ChunkDecoder(provider_class(provider).dialect, accumulate=True)
    for i, piece in enumerate(reply.pieces, 1):
        decoder.feed(piece)
        snapshot = decoder.snapshot()
        if snapshot.choices and snapshot.choices[0].message.content:
            return i, snapshot.choices[0].message.content
    raise AssertionError("no content in fixture")


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("split", ["event", 1], ids=["events", "split1"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_connection_lost_mid_stream(server: ReplayServer, provider: str, split: Any, mode: str) -> None:
    case = BY_NAME[TEXT[provider]]
    n, partial_text = _prefix_with_content(provider, case.reply(split=split))
    base = serve(server, provider, case.reply(split=split, drop_after=n))
    out = run(mode, provider, base)
    exc = out.exc
    assert isinstance(exc, polystream.MidStreamError) and isinstance(exc, polystream.APIConnectionError), repr(exc)
    assert not out.raised_by_call
    assert exc.partial.choices[0].message.content == partial_text == streamed_text(out.chunks)
    assert case.want["content"].startswith(partial_text) and partial_text != case.want["content"]


# ---------------------------------------------------------------------------------- the request sent

WEATHER: dict[str, Any] = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_request_received_is_the_providers_format(server: ReplayServer, provider: str) -> None:
    base = serve(server, provider, BY_NAME[TEXT[provider]].reply())
    out = run("sync", provider, base, api_key="key-123", tools=[WEATHER], tool_choice="auto", temperature=0.2, max_tokens=64)
    assert out.exc is None
    (req,) = server.requests
    body, h = req.json(), req.headers
    model = MODELS[provider]
    assert req.method == "POST" and h["content-type"] == "application/json"
    if provider == "anthropic":
        assert req.path == "/v1/messages"
        assert (h["x-api-key"], h["anthropic-version"]) == ("key-123", "2023-06-01") and "authorization" not in h
        assert body["system"] == "Be brief." and body["messages"] == [{"role": "user", "content": "Hi"}]
        assert (body["model"], body["max_tokens"], body["stream"], body["temperature"]) == (model, 64, True, 0.2)
        assert body["tools"] == [{"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}]
        assert body["tool_choice"] == {"type": "auto"}
    elif provider == "gemini":
        assert req.path == f"/v1beta/models/{model}:streamGenerateContent" and req.params == {"alt": "sse"}
        assert h["x-goog-api-key"] == "key-123" and "key-123" not in req.target
        assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
        assert body["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]
        assert body["tools"] == [{"functionDeclarations": [{"name": "get_weather", "parameters": WEATHER["function"]["parameters"]}]}]
        assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
        assert body["generationConfig"] == {"temperature": 0.2, "maxOutputTokens": 64}
    elif provider == "cohere":
        assert req.path == "/v2/chat" and h["authorization"] == "Bearer key-123"
        assert body["messages"] == MESSAGES and body["stream"] is True and body["model"] == model
        assert (body["tools"], body["temperature"], body["max_tokens"]) == ([WEATHER], 0.2, 64)
        assert "tool_choice" not in body  # auto is Cohere's default; it has no "AUTO"
    elif provider == "ollama":
        assert req.path == "/api/chat" and h["authorization"] == "Bearer key-123"
        assert body["messages"] == MESSAGES and body["stream"] is True and body["model"] == model
        assert body["tools"] == [WEATHER] and body["options"] == {"temperature": 0.2, "num_predict": 64}
    elif provider == "bedrock":
        assert req.path == f"/model/{model.replace(':', '%3A')}/converse-stream"  # the id URL-encoded
        assert h["authorization"] == "Bearer key-123"  # a Bedrock API key
        assert body["system"] == [{"text": "Be brief."}] and body["messages"] == [{"role": "user", "content": [{"text": "Hi"}]}]
        assert body["inferenceConfig"] == {"maxTokens": 64, "temperature": 0.2}
        assert body["toolConfig"] == {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {
            "json": WEATHER["function"]["parameters"]}}}], "toolChoice": {"auto": {}}}
    elif provider == "azure":
        assert req.path == "/openai/v1/chat/completions" and h["api-key"] == "key-123" and "authorization" not in h
        assert body["messages"] == MESSAGES and body["stream"] is True and body["model"] == model
        assert (body["tools"], body["tool_choice"], body["temperature"], body["max_tokens"]) == ([WEATHER], "auto", 0.2, 64)
        assert body["stream_options"] == {"include_usage": True}
    elif provider == "openai_responses":
        assert req.path == "/v1/responses" and h["authorization"] == "Bearer key-123"
        assert body["input"] == MESSAGES and body["stream"] is True and body["model"] == model
        fn = WEATHER["function"]
        assert body["tools"] == [{"type": "function", "name": fn["name"], "parameters": fn["parameters"]}]
        assert (body["tool_choice"], body["temperature"], body["max_output_tokens"]) == ("auto", 0.2, 64)
        assert body["store"] is False and "stream_options" not in body
    else:  # OpenAI Chat Completions and the compatible servers
        assert req.path.endswith("/chat/completions") and h["authorization"] == "Bearer key-123"
        assert body["messages"] == MESSAGES and body["stream"] is True and body["model"] == model
        assert (body["tools"], body["tool_choice"], body["temperature"], body["max_tokens"]) == ([WEATHER], "auto", 0.2, 64)
        if provider == "mistral":
            assert "stream_options" not in body
        else:
            assert body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("provider,stem", [("gemini", "gemini_logprobs"), ("ollama", "ollama_logprobs"),
                                           ("openai_responses", "openai_responses_logprobs")])
def test_logprobs_are_asked_for_and_reach_every_chunk(server: ReplayServer, provider: str, stem: str) -> None:
    case = BY_NAME[stem]
    base = serve(server, provider, case.reply(split="random", seed=7))
    out = run("sync", provider, base, logprobs=True, top_logprobs=2)
    assert out.exc is None, repr(out.exc)
    (req,) = server.requests
    body = req.json()
    if provider == "gemini":
        assert body["generationConfig"] == {"responseLogprobs": True, "logprobs": 2}
    elif provider == "openai_responses":
        assert (body["include"], body["top_logprobs"]) == (["message.output_text.logprobs"], 2)
    else:
        assert (body["logprobs"], body["top_logprobs"]) == (True, 2)
    check_logprobs(out, case.want["logprobs"])
    assert out.completion.choices[0].message.content == case.want["content"]


# ---------------------------------------------------------------------------------- secrets

SECRET = "sk-live-SECRET-0123456789abcdef"


def _strings(exc: BaseException) -> str:
    parts = [str(exc), repr(exc), repr(vars(exc)), repr(exc.args)]
    cause = exc.__cause__
    while cause is not None:
        parts += [str(cause), repr(cause)]
        cause = cause.__cause__
    return "\n".join(parts)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_api_key_never_appears_in_errors_reprs_logs_or_urls(
    server: ReplayServer, provider: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    case = BY_NAME[TEXT[provider]]
    seen: list[str] = []
    # Before the first chunk (401), mid-stream (connection lost), and a successful stream.
    out = run("sync", provider, serve(server, provider, Reply.error(401, ERROR_BODIES[provider]["auth"])), api_key=SECRET)
    assert isinstance(out.exc, polystream.AuthenticationError)
    seen.append(_strings(out.exc))
    n, _ = _prefix_with_content(provider, case.reply())
    out = run("sync", provider, serve(server, provider, case.reply(drop_after=n)), api_key=SECRET)
    assert isinstance(out.exc, polystream.MidStreamError)
    seen += [_strings(out.exc), repr(out.exc.partial)]
    base = serve(server, provider, case.reply())
    stream = polystream.completion(f"{provider}/{MODELS[provider]}", MESSAGES, stream=True, api_base=base, api_key=SECRET)
    seen += [repr(stream), repr(stream.response.request), repr(stream.response)]
    chunks = list(stream)
    seen += [repr(chunks), repr(stream.completion), repr(vars(stream._state))]
    seen += [r.target for r in server.requests]
    seen.append(caplog.text)
    leaked = [s for s in seen if SECRET in s]
    assert not leaked, leaked[0][:500]
    # …while it was sent, in a header.
    assert all(SECRET in " ".join(r.headers.values()) for r in server.requests)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_error_raised_inside_the_stream_after_output_becomes_mid_stream(server: ReplayServer, mode: str) -> None:
    # The max_duration check raises a plain Timeout inside the stream; once chunks have reached
    # the caller it must come out as a mid-stream Timeout carrying the partial answer.
    case = BY_NAME[TEXT["openai"]]
    base = serve(server, "openai", case.reply(split="event", delay=0.8))
    out = run(mode, "openai", base, max_duration=0.4)
    assert isinstance(out.exc, polystream.Timeout) and isinstance(out.exc, polystream.MidStreamError), repr(out.exc)
    assert out.chunks and out.exc.partial is not None and out.exc.chunks_received == len(out.chunks)
