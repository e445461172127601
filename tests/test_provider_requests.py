"""Each provider's HTTP request (URL, headers, JSON body) built from OpenAI-style arguments."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

import polystream
from polystream import errors
from polystream.providers import ChatRequest, provider_class, split_model

SECRET = "sk-SECRET-do-not-leak-4242"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAcCBlCwAAAABJRU5ErkJggg=="
DATA_URL = f"data:image/png;base64,{PNG}"
HTTP_IMAGE = "https://example.com/cat.jpg"

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": ["string", "null"], "enum": ["c", "f"]}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
CLOCK: dict[str, Any] = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}

TOOL_TURNS: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather and time in Paris?"},
    {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
    {"role": "tool", "tool_call_id": "call_2", "content": "14:05"},
    {"role": "user", "content": "Thanks!"},
]

IMAGE_TURN = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is"},
            {"type": "text", "text": "in these?"},
            {"type": "image_url", "image_url": {"url": DATA_URL}},
            {"type": "image_url", "image_url": {"url": HTTP_IMAGE, "detail": "low"}},
        ],
    }
]


def build(provider: str, messages=None, *, stream: bool = True, api_key: str | None = "k", api_base=None, **params):
    p = provider_class(provider)(api_key=api_key, api_base=api_base)
    req = ChatRequest("m-1", messages or [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], params)
    return p.build_request(req, stream=stream)


# ------------------------------------------------------------------------------------ anthropic


class TestAnthropic:
    def test_url_headers_system(self) -> None:
        r = build("anthropic", api_key=SECRET)
        assert (r.method, r.url) == ("POST", "https://api.anthropic.com/v1/messages")
        assert r.headers["x-api-key"] == SECRET and "authorization" not in r.headers
        assert r.headers["anthropic-version"] == "2023-06-01"
        assert r.json == {
            "model": "m-1",
            "system": "Be brief.",
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 4096,
            "stream": True,
        }

    @pytest.mark.parametrize(
        "base,url",
        [
            ("http://h:1", "http://h:1/v1/messages"),
            ("http://h:1/", "http://h:1/v1/messages"),
            ("http://h:1/v1", "http://h:1/v1/messages"),
            ("http://h:1/v1/messages", "http://h:1/v1/messages"),
        ],
    )
    def test_api_base_forms(self, base: str, url: str) -> None:
        assert build("anthropic", api_base=base).url == url

    def test_tool_calls_and_results(self) -> None:
        body = build("anthropic", TOOL_TURNS).json
        assert body["system"] == "Be brief."
        assert body["messages"] == [
            {"role": "user", "content": "Weather and time in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},
                ],
            },
            {
                "role": "user",  # both results and the next user text in one turn, results first
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": '{"temp": 21}'},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "14:05"},
                    {"type": "text", "text": "Thanks!"},
                ],
            },
        ]

    def test_thinking_block_is_sent_back(self) -> None:
        turns = [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": None, "reasoning_content": "hmm", "reasoning_signature": "sig==",
             "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "ok"},
        ]
        msgs = build("anthropic", turns).json["messages"]
        assert msgs[1]["content"][0] == {"type": "thinking", "thinking": "hmm", "signature": "sig=="}
        assert msgs[1]["content"][1]["type"] == "tool_use"

    def test_every_thinking_block_of_a_streamed_turn_is_sent_back(self) -> None:
        # A turn with a redacted block and two signed thinking blocks, accumulated from its stream:
        # continued with the tool's result, every block goes back whole and in order (one joined
        # text under the last signature would fail Anthropic's signature check).
        body = (Path(__file__).parent / "fixtures/providers/anthropic/anthropic_interleaved_thinking.sse").read_bytes()
        dec = polystream.ChunkDecoder("anthropic", accumulate=True)
        dec.feed(body)
        dec.finish()
        message = dec.snapshot().choices[0].message.to_dict()
        turns = [{"role": "user", "content": "Weather in Zürich?"}, message,
                 {"role": "tool", "tool_call_id": "toolu_01Weather", "content": "12 °C"}]
        content = build("anthropic", turns).json["messages"][1]["content"]
        assert [b["type"] for b in content] == ["redacted_thinking", "thinking", "thinking", "text", "tool_use"]
        assert content[:3] == message["thinking_blocks"]
        assert [b.get("signature") for b in content[1:3]] == ["EqMBCkgIBxABGAIqQFirst==", "EqMBCkgIBxABGAIqQSecond=="]
        assert content[4] == {"type": "tool_use", "id": "toolu_01Weather", "name": "get_weather",
                              "input": {"city": "Zürich", "unit": "celsius"}}

    def test_images(self) -> None:
        content = build("anthropic", IMAGE_TURN).json["messages"][0]["content"]
        assert content == [
            {"type": "text", "text": "What is"},
            {"type": "text", "text": "in these?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "image", "source": {"type": "url", "url": HTTP_IMAGE}},
        ]

    @pytest.mark.parametrize(
        "choice,want",
        [
            ("auto", {"type": "auto"}),
            ("none", {"type": "none"}),
            ("required", {"type": "any"}),
            ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
        ],
    )
    def test_tools_and_choice(self, choice, want) -> None:
        body = build("anthropic", tools=[WEATHER, CLOCK], tool_choice=choice).json
        assert body["tools"] == [
            {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER["function"]["parameters"]},
            {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
        ]
        assert body["tool_choice"] == want

    def test_parallel_tool_calls_false(self) -> None:
        body = build("anthropic", tools=[WEATHER], parallel_tool_calls=False).json
        assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}

    def test_sampling_params(self) -> None:
        body = build("anthropic", temperature=0.2, top_p=0.9, max_tokens=77, stop="END", user="u-1", seed=3, n=1).json
        assert (body["temperature"], body["top_p"], body["max_tokens"], body["stop_sequences"]) == (0.2, 0.9, 77, ["END"])
        assert body["metadata"] == {"user_id": "u-1"}
        assert "seed" not in body and "n" not in body and "stream_options" not in body
        assert build("anthropic", max_completion_tokens=55).json["max_tokens"] == 55

    def test_response_format_becomes_a_system_instruction(self) -> None:
        schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
        body = build(
            "anthropic", response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
        ).json
        assert body["system"].startswith("Be brief.\n\n")
        assert "JSON" in body["system"] and json.dumps(schema) in body["system"]
        assert "JSON" in build("anthropic", [{"role": "user", "content": "x"}], response_format={"type": "json_object"}).json["system"]

    @pytest.mark.parametrize("effort,budget", [("low", 1024), ("medium", 2048), ("high", 4096)])
    def test_reasoning_effort(self, effort: str, budget: int) -> None:
        body = build("anthropic", reasoning_effort=effort).json
        assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
        assert body["max_tokens"] > budget  # Anthropic requires it
        capped = build("anthropic", reasoning_effort=effort, max_tokens=1500).json
        assert capped["max_tokens"] == 1500 and capped["thinking"]["budget_tokens"] == min(budget, 1499)

    def test_explicit_thinking_passes_through(self) -> None:
        thinking = {"type": "enabled", "budget_tokens": 3000}
        body = build("anthropic", thinking=thinking, reasoning_effort="low").json
        assert body["thinking"] == thinking and body["max_tokens"] == 4096 + 3000

    def test_extra_body_and_stream_options(self) -> None:
        body = build("anthropic", stream_options={"include_usage": True}, extra_body={"top_k": 5}).json
        assert body["top_k"] == 5 and "stream_options" not in body


# ------------------------------------------------------------------------------------ gemini


class TestGemini:
    def test_url_headers_system(self) -> None:
        r = build("gemini", api_key=SECRET)
        assert r.url == "https://generativelanguage.googleapis.com/v1beta/models/m-1:streamGenerateContent?alt=sse"
        assert SECRET not in r.url  # the key travels in a header, never in the URL
        assert r.headers["x-goog-api-key"] == SECRET
        assert r.json == {
            "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
        }
        assert build("gemini", stream=False).url.endswith("/models/m-1:generateContent")

    @pytest.mark.parametrize("base", ["http://h:1", "http://h:1/v1beta"])
    def test_api_base_forms(self, base: str) -> None:
        assert build("gemini", api_base=base).url == "http://h:1/v1beta/models/m-1:streamGenerateContent?alt=sse"

    def test_models_prefix_is_stripped(self) -> None:
        p = provider_class("gemini")(api_key="k")
        r = p.build_request(ChatRequest("models/gemini-2.5-pro", [{"role": "user", "content": "x"}]), stream=True)
        assert "/models/gemini-2.5-pro:streamGenerateContent" in r.url

    def test_tool_calls_and_function_responses(self) -> None:
        body = build("gemini", TOOL_TURNS).json
        assert body["contents"] == [
            {"role": "user", "parts": [{"text": "Weather and time in Paris?"}]},
            {
                "role": "model",
                "parts": [
                    {"text": "Checking."},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                    {"functionCall": {"name": "get_time", "args": {}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},  # name from the call id
                    {"functionResponse": {"name": "get_time", "response": {"content": "14:05"}}},
                    {"text": "Thanks!"},
                ],
            },
        ]

    def test_tool_result_without_a_call_is_a_bad_request(self) -> None:
        with pytest.raises(errors.BadRequestError, match="no earlier assistant tool call"):
            build("gemini", [{"role": "tool", "tool_call_id": "nope", "content": "x"}])

    def test_thought_signature_goes_back_on_the_first_call(self) -> None:
        turns = [
            {"role": "user", "content": "q"},
            {"role": "assistant", "reasoning_signature": "c2ln", "tool_calls": TOOL_TURNS[2]["tool_calls"]},
        ]
        parts = build("gemini", turns).json["contents"][1]["parts"]
        assert parts[0]["thoughtSignature"] == "c2ln" and "thoughtSignature" not in parts[1]

    def test_images(self) -> None:
        parts = build("gemini", IMAGE_TURN).json["contents"][0]["parts"]
        assert parts == [
            {"text": "What is"},
            {"text": "in these?"},
            {"inlineData": {"mimeType": "image/png", "data": PNG}},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": HTTP_IMAGE}},
        ]

    @pytest.mark.parametrize(
        "choice,want",
        [
            ("auto", {"mode": "AUTO"}),
            ("none", {"mode": "NONE"}),
            ("required", {"mode": "ANY"}),
            ({"type": "function", "function": {"name": "get_time"}}, {"mode": "ANY", "allowedFunctionNames": ["get_time"]}),
        ],
    )
    def test_tools_and_choice(self, choice, want) -> None:
        body = build("gemini", tools=[WEATHER, CLOCK, {"googleSearch": {}}], tool_choice=choice).json
        assert body["tools"] == [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather for a city",
                        # OpenAPI subset: no additionalProperties, ["string","null"] → nullable
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "nullable": True, "enum": ["c", "f"]}},
                            "required": ["city"],
                        },
                    },
                    {"name": "get_time"},  # Gemini rejects an OBJECT schema without properties
                ]
            },
            {"googleSearch": {}},
        ]
        assert body["toolConfig"] == {"functionCallingConfig": want}

    def test_generation_config(self) -> None:
        body = build("gemini", temperature=0.3, top_p=0.8, max_tokens=99, stop=["a", "b"], n=2, seed=5).json
        assert body["generationConfig"] == {
            "temperature": 0.3, "topP": 0.8, "maxOutputTokens": 99, "stopSequences": ["a", "b"], "candidateCount": 2, "seed": 5,
        }

    @pytest.mark.parametrize(
        "params,want",
        [
            ({"logprobs": True}, {"responseLogprobs": True}),
            ({"logprobs": True, "top_logprobs": 3}, {"responseLogprobs": True, "logprobs": 3}),
            ({"logprobs": True, "top_logprobs": 0}, {"responseLogprobs": True}),
            ({"logprobs": False, "top_logprobs": 3}, None),
            ({"top_logprobs": 3}, None),
        ],
    )
    def test_logprobs(self, params: dict[str, Any], want: dict[str, Any] | None) -> None:
        # responseLogprobs asks for the chosen tokens' logprobs; logprobs (1-20) for alternatives, and only with it.
        assert build("gemini", **params).json.get("generationConfig") == want

    def test_response_format(self) -> None:
        assert build("gemini", response_format={"type": "json_object"}).json["generationConfig"] == {
            "responseMimeType": "application/json"
        }
        schema = {
            "type": "object",
            "$defs": {"Item": {"type": "object", "properties": {"n": {"const": 1}}}},
            "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
                           "note": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
            "required": ["items"],
            "additionalProperties": False,
        }
        cfg = build("gemini", response_format={"type": "json_schema", "json_schema": {"name": "s", "strict": True, "schema": schema}}).json["generationConfig"]
        assert cfg["responseMimeType"] == "application/json"
        assert cfg["responseSchema"] == {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"type": "object", "properties": {"n": {"enum": [1]}}}},
                "note": {"type": "string", "nullable": True},
            },
            "required": ["items"],
        }

    @pytest.mark.parametrize("effort,budget", [("low", 1024), ("medium", 2048), ("high", 4096)])
    def test_reasoning_effort(self, effort: str, budget: int) -> None:
        cfg = build("gemini", reasoning_effort=effort).json["generationConfig"]
        assert cfg["thinkingConfig"] == {"thinkingBudget": budget, "includeThoughts": True}

    def test_thinking_param(self) -> None:
        cfg = build("gemini", thinking={"type": "enabled", "budget_tokens": 500}).json["generationConfig"]
        assert cfg["thinkingConfig"] == {"thinkingBudget": 500, "includeThoughts": True}
        native = {"thinkingLevel": "high", "includeThoughts": True}
        assert build("gemini", thinking=native).json["generationConfig"]["thinkingConfig"] == native
        assert build("gemini", reasoning_effort="none").json["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}

    def test_bad_key_400_is_an_authentication_error(self) -> None:
        body = json.dumps({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
                                     "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}).encode()
        exc = provider_class("gemini")(api_key="k").map_error("m", 400, {}, body)
        assert isinstance(exc, errors.AuthenticationError) and exc.status_code == 400 and exc.provider == "gemini"

    def test_retry_delay_from_error_details(self) -> None:
        body = json.dumps({"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED",
                                     "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "36s"}]}}).encode()
        exc = provider_class("gemini")(api_key="k").map_error("m", 429, {}, body)
        assert isinstance(exc, errors.RateLimitError) and exc.retry_after == 36.0


# ------------------------------------------------------------------------------------ cohere


class TestCohere:
    def test_url_headers_system(self) -> None:
        r = build("cohere", api_key=SECRET)
        assert r.url == "https://api.cohere.com/v2/chat"
        assert r.headers["authorization"] == f"Bearer {SECRET}"
        assert r.json == {
            "model": "m-1",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            "stream": True,
        }

    def test_system_moves_first(self) -> None:
        msgs = build("cohere", [{"role": "user", "content": "a"}, {"role": "developer", "content": "rules"}]).json["messages"]
        assert msgs == [{"role": "system", "content": "rules"}, {"role": "user", "content": "a"}]

    def test_tool_calls_and_results(self) -> None:
        msgs = build("cohere", TOOL_TURNS).json["messages"]
        assert msgs[2] == {
            "role": "assistant",
            "tool_plan": "Checking.",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ],
        }
        assert msgs[3:] == [
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
            {"role": "tool", "tool_call_id": "call_2", "content": "14:05"},
            {"role": "user", "content": "Thanks!"},
        ]

    def test_images(self) -> None:
        content = build("cohere", IMAGE_TURN).json["messages"][0]["content"]
        assert content == [
            {"type": "text", "text": "What is"},
            {"type": "text", "text": "in these?"},
            {"type": "image_url", "image_url": {"url": DATA_URL}},
            {"type": "image_url", "image_url": {"url": HTTP_IMAGE, "detail": "low"}},
        ]

    @pytest.mark.parametrize(
        "choice,want,names",
        [
            ("auto", None, ["get_weather", "get_time"]),
            ("none", "NONE", ["get_weather", "get_time"]),
            ("required", "REQUIRED", ["get_weather", "get_time"]),
            ({"type": "function", "function": {"name": "get_time"}}, "REQUIRED", ["get_time"]),
        ],
    )
    def test_tools_and_choice(self, choice, want, names) -> None:
        body = build("cohere", tools=[WEATHER, CLOCK], tool_choice=choice).json
        assert body.get("tool_choice") == want
        assert [t["function"]["name"] for t in body["tools"]] == names
        assert body["tools"][-1] == (CLOCK if names[-1] == "get_time" else WEATHER)

    def test_sampling_params(self) -> None:
        body = build("cohere", temperature=0.1, top_p=0.5, max_tokens=10, stop="x", seed=1, stream_options={"include_usage": True}).json
        assert {k: body[k] for k in ("temperature", "p", "max_tokens", "stop_sequences", "seed")} == {
            "temperature": 0.1, "p": 0.5, "max_tokens": 10, "stop_sequences": ["x"], "seed": 1,
        }
        assert "stream_options" not in body and "top_p" not in body

    def test_response_format(self) -> None:
        assert build("cohere", response_format={"type": "json_object"}).json["response_format"] == {"type": "json_object"}
        schema = {"type": "object", "properties": {"a": {"type": "string"}}}
        rf = build("cohere", response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}).json["response_format"]
        assert rf == {"type": "json_object", "schema": schema}

    def test_reasoning(self) -> None:
        assert build("cohere", reasoning_effort="high").json["thinking"] == {"type": "enabled", "token_budget": 4096}
        assert build("cohere", reasoning_effort="none").json["thinking"] == {"type": "disabled"}
        assert build("cohere", thinking={"type": "enabled", "budget_tokens": 99}).json["thinking"] == {"type": "enabled", "token_budget": 99}

    @pytest.mark.parametrize("base", ["http://h:1", "http://h:1/v2", "http://h:1/v1"])
    def test_api_base_forms(self, base: str) -> None:
        assert build("cohere", api_base=base).url == "http://h:1/v2/chat"

    def test_logprobs_are_not_asked_for(self) -> None:
        # Cohere's logprobs are token ids without their text: the dialect cannot use them.
        body = build("cohere", logprobs=True, top_logprobs=3).json
        assert "logprobs" not in body and "top_logprobs" not in body


# ------------------------------------------------------------------------------ openai_responses


class TestOpenAIResponses:
    def test_url_headers_input_store(self) -> None:
        r = build("openai_responses", api_key=SECRET)
        assert r.url == "https://api.openai.com/v1/responses"
        assert r.headers["authorization"] == f"Bearer {SECRET}"
        assert r.headers["accept"] == "text/event-stream"
        assert r.json == {
            "model": "m-1",
            "input": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            "stream": True,
            "store": False,  # as chat completions: nothing stored unless asked
        }
        assert build("openai_responses", store=True).json["store"] is True

    @pytest.mark.parametrize("model", ["openai_responses/o3-pro", "openai/responses/o3-pro"])
    def test_model_spellings(self, model: str) -> None:
        assert split_model(model) == ("openai_responses", "o3-pro")
        assert split_model("openai/gpt-4o") == ("openai", "gpt-4o")

    def test_tool_calls_and_results_become_items(self) -> None:
        items = build("openai_responses", TOOL_TURNS).json["input"]
        assert items == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather and time in Paris?"},
            {"role": "assistant", "content": "Checking."},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
            {"type": "function_call", "call_id": "call_2", "name": "get_time", "arguments": ""},
            {"type": "function_call_output", "call_id": "call_1", "output": '{"temp": 21}'},
            {"type": "function_call_output", "call_id": "call_2", "output": "14:05"},
            {"role": "user", "content": "Thanks!"},
        ]

    def test_assistant_with_only_tool_calls_has_no_empty_message(self) -> None:
        turns = [{"role": "user", "content": "x"},
                 {"role": "assistant", "content": None, "tool_calls": TOOL_TURNS[2]["tool_calls"][:1]}]
        items = build("openai_responses", turns).json["input"]
        assert [i.get("type", i.get("role")) for i in items] == ["user", "function_call"]

    def test_images_and_files(self) -> None:
        turn = [{"role": "user", "content": [*IMAGE_TURN[0]["content"],
                                             {"type": "file", "file": {"file_data": "data:application/pdf;base64,AA==",
                                                                       "filename": "a.pdf"}}]}]
        content = build("openai_responses", turn).json["input"][0]["content"]
        assert content == [
            {"type": "input_text", "text": "What is"},
            {"type": "input_text", "text": "in these?"},
            {"type": "input_image", "image_url": DATA_URL, "detail": "auto"},
            {"type": "input_image", "image_url": HTTP_IMAGE, "detail": "low"},
            {"type": "input_file", "file_data": "data:application/pdf;base64,AA==", "filename": "a.pdf"},
        ]

    @pytest.mark.parametrize("choice,want", [
        ("auto", "auto"), ("none", "none"), ("required", "required"),
        ({"type": "function", "function": {"name": "get_time"}}, {"type": "function", "name": "get_time"}),
    ])
    def test_tools_and_choice(self, choice: Any, want: Any) -> None:
        body = build("openai_responses", tools=[WEATHER, CLOCK, {"type": "web_search"}], tool_choice=choice).json
        assert body["tool_choice"] == want
        assert body["tools"] == [
            {"type": "function", "name": "get_weather", "description": "Weather for a city",
             "parameters": WEATHER["function"]["parameters"]},
            {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}},
            {"type": "web_search"},  # a built-in tool of the Responses API, as given
        ]

    def test_params(self) -> None:
        body = build("openai_responses", temperature=0.1, top_p=0.5, max_tokens=10, stop="x", seed=1, n=2,
                     parallel_tool_calls=False, user="u1", stream_options={"include_usage": True}).json
        assert {k: body[k] for k in ("temperature", "top_p", "max_output_tokens", "parallel_tool_calls", "user")} == {
            "temperature": 0.1, "top_p": 0.5, "max_output_tokens": 10, "parallel_tool_calls": False, "user": "u1"}
        for dropped in ("stop", "seed", "n", "stream_options", "max_tokens"):
            assert dropped not in body
        assert build("openai_responses", max_completion_tokens=7).json["max_output_tokens"] == 7

    def test_reasoning(self) -> None:
        assert build("openai_responses", reasoning_effort="high").json["reasoning"] == {"effort": "high"}
        body = build("openai_responses", reasoning={"effort": "low", "summary": "auto"}, reasoning_effort="high").json
        assert body["reasoning"] == {"effort": "low", "summary": "auto"}  # the explicit object wins

    def test_response_format(self) -> None:
        assert build("openai_responses", response_format={"type": "json_object"}).json["text"] == {
            "format": {"type": "json_object"}}
        schema = {"type": "object", "properties": {"a": {"type": "string"}}}
        rf = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema, "strict": True}}
        assert build("openai_responses", response_format=rf).json["text"] == {
            "format": {"type": "json_schema", "name": "s", "schema": schema, "strict": True}}
        assert "text" not in build("openai_responses", response_format={"type": "text"}).json

    def test_logprobs(self) -> None:
        body = build("openai_responses", logprobs=True, top_logprobs=3).json
        assert body["include"] == ["message.output_text.logprobs"] and body["top_logprobs"] == 3
        body = build("openai_responses", top_logprobs=3).json  # alternatives only come with logprobs
        assert "include" not in body and "top_logprobs" not in body
        body = build("openai_responses", logprobs=True, include=["reasoning.encrypted_content"]).json
        assert body["include"] == ["reasoning.encrypted_content", "message.output_text.logprobs"]

    def test_unknown_role_is_a_bad_request(self) -> None:
        with pytest.raises(errors.BadRequestError):
            build("openai_responses", [{"role": "function", "name": "f", "content": "x"}])

    def test_api_base(self) -> None:
        assert build("openai_responses", api_base="http://h:1/v1/").url == "http://h:1/v1/responses"


# ------------------------------------------------------------------------------------ ollama


class TestOllama:
    def test_url_no_key_needed(self) -> None:
        r = build("ollama", api_key=None)
        assert r.url == "http://localhost:11434/api/chat"
        assert "authorization" not in r.headers
        assert r.json == {
            "model": "m-1",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            "stream": True,
        }

    def test_key_when_given_and_host_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("OLLAMA_API_BASE", raising=False)
        monkeypatch.setenv("OLLAMA_HOST", "gpu-box:11434")
        r = build("ollama", api_key=SECRET)
        assert r.url == "http://gpu-box:11434/api/chat"
        assert r.headers["authorization"] == f"Bearer {SECRET}"

    def test_tool_calls_and_results(self) -> None:
        msgs = build("ollama", TOOL_TURNS).json["messages"]
        assert msgs[2] == {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"function": {"name": "get_time", "arguments": {}}},
            ],
        }
        assert msgs[3] == {"role": "tool", "content": '{"temp": 21}', "tool_name": "get_weather", "tool_call_id": "call_1"}
        assert msgs[4]["tool_name"] == "get_time"

    def test_images(self) -> None:
        msg = build("ollama", [{"role": "user", "content": IMAGE_TURN[0]["content"][:3]}]).json["messages"][0]
        assert msg == {"role": "user", "content": "What is\nin these?", "images": [PNG]}
        with pytest.raises(errors.BadRequestError, match="data: URL"):
            build("ollama", IMAGE_TURN)

    def test_tools_options_format_think(self) -> None:
        body = build(
            "ollama", tools=[WEATHER], temperature=0.4, top_p=0.9, max_tokens=20, stop=["x"], seed=2,
            response_format={"type": "json_object"}, reasoning_effort="low", options={"num_ctx": 8192},
        ).json
        assert body["tools"] == [WEATHER]
        assert body["options"] == {"temperature": 0.4, "top_p": 0.9, "num_predict": 20, "stop": ["x"], "seed": 2, "num_ctx": 8192}
        assert body["format"] == "json" and body["think"] is True
        schema = {"type": "object", "properties": {"a": {"type": "string"}}}
        assert build("ollama", response_format={"type": "json_schema", "json_schema": {"schema": schema}}).json["format"] == schema
        assert "tools" not in build("ollama", tools=[WEATHER], tool_choice="none").json
        assert build("ollama", reasoning_effort="none").json["think"] is False
        p = provider_class("ollama")()
        gpt_oss = p.build_request(ChatRequest("gpt-oss:20b", [{"role": "user", "content": "x"}], {"reasoning_effort": "high"}), stream=True)
        assert gpt_oss.json["think"] == "high"

    @pytest.mark.parametrize(
        "params,want",
        [
            ({"logprobs": True}, {"logprobs": True}),
            ({"logprobs": True, "top_logprobs": 3}, {"logprobs": True, "top_logprobs": 3}),
            ({"logprobs": True, "top_logprobs": 0}, {"logprobs": True}),
            ({"top_logprobs": 3}, {}),
        ],
    )
    def test_logprobs(self, params: dict[str, Any], want: dict[str, Any]) -> None:
        # Top-level fields of /api/chat (not options), as in Ollama's ChatRequest.
        body = build("ollama", **params).json
        assert {k: body[k] for k in ("logprobs", "top_logprobs") if k in body} == want
        assert "options" not in body


# ------------------------------------------------------------------------------------ OpenAI-compatible


@pytest.mark.parametrize(
    "provider,url,stream_options",
    [
        ("openai", "https://api.openai.com/v1/chat/completions", True),
        ("groq", "https://api.groq.com/openai/v1/chat/completions", True),
        ("mistral", "https://api.mistral.ai/v1/chat/completions", False),
        ("deepseek", "https://api.deepseek.com/v1/chat/completions", True),
        ("openrouter", "https://openrouter.ai/api/v1/chat/completions", True),
        ("together", "https://api.together.xyz/v1/chat/completions", True),
    ],
)
def test_openai_compatible_url_and_stream_options(provider: str, url: str, stream_options: bool) -> None:
    r = build(provider, api_key=SECRET, temperature=0.5, stream_options={"include_usage": True}, extra_body={"top_k": 3})
    assert r.url == url
    assert r.headers["authorization"] == f"Bearer {SECRET}"
    assert r.json["stream"] is True and r.json["temperature"] == 0.5 and r.json["top_k"] == 3
    assert "extra_body" not in r.json
    if stream_options:
        assert r.json["stream_options"] == {"include_usage": True}
        assert build(provider).json["stream_options"] == {"include_usage": True}  # asked for by default
    else:
        assert "stream_options" not in r.json  # Mistral sends usage unasked (and rejects the field)
    assert "stream_options" not in build(provider, stream=False).json


@pytest.mark.parametrize("model", ["o1", "o3-mini", "o4-mini-2025-04-16", "gpt-5", "gpt-5-nano", "codex-mini-latest"])
def test_openai_reasoning_models_get_max_tokens_as_max_completion_tokens(model: str) -> None:
    """OpenAI refuses `max_tokens` for its reasoning models ("use max_completion_tokens")."""
    def body(provider: str, m: str, **params: Any) -> dict[str, Any]:
        return provider_class(provider)(api_key="k").build_request(ChatRequest(m, [], params), stream=True).json

    got = body("openai", model, max_tokens=64)
    assert got["max_completion_tokens"] == 64 and "max_tokens" not in got
    both = body("openai", model, max_tokens=64, max_completion_tokens=32)
    assert both["max_completion_tokens"] == 32 and "max_tokens" not in both  # the explicit one wins
    assert body("openai", "gpt-4o", max_tokens=64)["max_tokens"] == 64  # other models as given
    assert body("groq", model, max_tokens=64)["max_tokens"] == 64  # other servers as given


def test_generic_openai_compatible_server() -> None:
    assert split_model("openai_compatible/my-model") == ("openai_compatible", "my-model")
    r = build("openai_compatible", api_key=None, api_base="http://vllm:8000/v1/")
    assert r.url == "http://vllm:8000/v1/chat/completions" and "authorization" not in r.headers
    with pytest.raises(errors.BadRequestError, match="api_base is required"):
        provider_class("openai_compatible")()


# ------------------------------------------------------------------------------------ keys


KEY_ENVS = [
    ("openai", "OPENAI_API_KEY"),
    ("anthropic", "ANTHROPIC_API_KEY"),
    ("gemini", "GEMINI_API_KEY"),
    ("gemini", "GOOGLE_API_KEY"),
    ("cohere", "COHERE_API_KEY"),
    ("cohere", "CO_API_KEY"),
    ("openai_responses", "OPENAI_API_KEY"),
    ("groq", "GROQ_API_KEY"),
    ("mistral", "MISTRAL_API_KEY"),
    ("deepseek", "DEEPSEEK_API_KEY"),
    ("openrouter", "OPENROUTER_API_KEY"),
    ("together", "TOGETHER_API_KEY"),
]
ALL_KEY_ENVS = sorted({env for _, env in KEY_ENVS} | {"TOGETHERAI_API_KEY"})


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for env in ALL_KEY_ENVS:
        monkeypatch.delenv(env, raising=False)
    return monkeypatch


@pytest.mark.parametrize("provider,env", KEY_ENVS)
def test_key_from_env(provider: str, env: str, no_keys: pytest.MonkeyPatch) -> None:
    no_keys.setenv(env, "env-key-1")
    r = build(provider, api_key=None)
    assert "env-key-1" in " ".join(r.headers.values())
    assert "env-key-1" not in repr(r) and "env-key-1" not in repr(provider_class(provider)())
    r = build(provider, api_key="arg-key")  # an argument wins over the environment
    assert "arg-key" in " ".join(r.headers.values()) and "env-key-1" not in " ".join(r.headers.values())


@pytest.mark.parametrize("env,base,url", [
    ("ANTHROPIC_BASE_URL", "http://proxy:1", "http://proxy:1/v1/messages"),
    ("GEMINI_API_BASE", "http://proxy:2", "http://proxy:2/v1beta/models/m-1:streamGenerateContent?alt=sse"),
    ("CO_API_URL", "http://proxy:3", "http://proxy:3/v2/chat"),
    ("OLLAMA_API_BASE", "http://proxy:4", "http://proxy:4/api/chat"),
])
def test_base_from_env(env: str, base: str, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env, base)
    provider = {"A": "anthropic", "G": "gemini", "C": "cohere", "O": "ollama"}[env[0]]
    assert build(provider).url == url
    assert build(provider, api_base="http://arg:9").url.startswith("http://arg:9/")


class _NoNetwork(httpx.BaseTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:  # pragma: no cover - must not run
        raise AssertionError(f"network used: {request.url}")


class _NoNetworkAsync(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:  # pragma: no cover
        raise AssertionError(f"network used: {request.url}")


@pytest.mark.parametrize("provider", sorted({p for p, _ in KEY_ENVS}))
def test_missing_key_fails_before_any_network(provider: str, no_keys: pytest.MonkeyPatch) -> None:
    msgs = [{"role": "user", "content": "hi"}]
    with httpx.Client(transport=_NoNetwork()) as client:
        with pytest.raises(errors.AuthenticationError, match="no API key") as info:
            polystream.completion(f"{provider}/m", msgs, stream=True, client=client)
    assert info.value.provider == provider

    import asyncio

    async def go() -> None:
        async with httpx.AsyncClient(transport=_NoNetworkAsync()) as client:
            with pytest.raises(errors.AuthenticationError):
                await polystream.acompletion(f"{provider}/m", msgs, stream=True, client=client)

    asyncio.run(go())


def test_ollama_needs_no_key(no_keys: pytest.MonkeyPatch) -> None:
    no_keys.delenv("OLLAMA_API_KEY", raising=False)
    provider_class("ollama")().check_key("m")  # no exception


def test_request_repr_redacts_credentials(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for provider in ("openai", "anthropic", "gemini", "cohere", "ollama", "groq"):
        p = provider_class(provider)(api_key=SECRET)
        r = p.build_request(ChatRequest("m", [{"role": "user", "content": "x"}]), stream=True)
        assert SECRET in " ".join(r.headers.values())  # it is sent…
        assert SECRET not in repr(r) and SECRET not in str(r) and SECRET not in repr(p)  # …never shown
        assert SECRET not in r.url
        logging.getLogger("test").debug("request %r via %r", r, p)
    assert SECRET not in caplog.text


class _Capture(httpx.BaseTransport):
    """Records the request body and answers with an empty stream (the body is all we need)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.read()))
        return httpx.Response(200, stream=httpx.ByteStream(b"data: [DONE]\n\n"),
                              headers={"content-type": "text/event-stream"})


def _sent(model: str, **kw: Any) -> dict[str, Any]:
    capture = _Capture()
    with httpx.Client(transport=capture) as client:
        list(polystream.completion(model, [{"role": "user", "content": "x"}], stream=True, client=client,
                                   api_key="k", **kw))
    (body,) = capture.bodies
    return body


def test_drop_params_leaves_out_what_reasoning_models_reject() -> None:
    asked = dict(temperature=0.2, top_p=0.9, presence_penalty=0.5, logprobs=True, top_logprobs=2, seed=7, max_tokens=9)
    body = _sent("openai/o3-mini", drop_params=True, **asked)
    assert not {"temperature", "top_p", "presence_penalty", "logprobs", "top_logprobs", "drop_params"} & set(body)
    assert (body["seed"], body["max_completion_tokens"]) == (7, 9)
    assert _sent("openai/gpt-5", drop_params=True, temperature=1)["temperature"] == 1  # the default is accepted
    # Other models keep everything; without drop_params nothing is dropped, and the switch is never sent.
    assert {"temperature", "presence_penalty", "logprobs"} <= set(_sent("openai/gpt-4.1", drop_params=True, **asked))
    body = _sent("openai/o3-mini", **asked)
    assert body["temperature"] == 0.2 and "drop_params" not in body


def test_additional_drop_params_names_what_to_leave_out() -> None:
    body = _sent("groq/llama-3.3-70b-versatile", additional_drop_params=["seed", "user"], seed=3, user="u", top_p=0.5)
    assert "seed" not in body and "user" not in body and body["top_p"] == 0.5
    assert "additional_drop_params" not in body
