"""OpenAI's Responses API (`POST {base}/responses`, Bearer key, named SSE events; dialect
"openai_responses"), spoken from chat-completions arguments.

For the models OpenAI serves only there (o1-pro, o3-pro, gpt-5-pro, the codex models) and for
servers that speak only Responses. `model="openai_responses/o3-pro"`, or LiteLLM's spelling
`"openai/responses/o3-pro"`; key and base URL as for `openai/` (OPENAI_API_KEY, OPENAI_BASE_URL).
The chunks are the usual chat chunks: text, reasoning summaries as `reasoning_content`, function
calls as `tool_calls`, usage and the finish reason in the last one.

The request, from the chat shape:
- messages → `input` items in order: system/developer/user/assistant text as messages (user
  parts: text → input_text, image_url → input_image, file → input_file); an assistant's
  `tool_calls` → `function_call` items; `role: "tool"` → `function_call_output`.
- tools: function tools flattened to `{type: function, name, description, parameters, strict}`;
  any other tool (OpenAI's built-in `web_search`, `file_search`, …) passes as it is.
  tool_choice: auto / none / required as they are, a named function → `{type: function, name}`.
- max_tokens / max_completion_tokens → max_output_tokens; reasoning_effort → reasoning.effort
  (a `reasoning` object passes through); response_format → text.format; logprobs → include
  `message.output_text.logprobs` (+ top_logprobs).
- store is false unless given (chat completions store nothing by default either).
- Responses fields pass through (temperature, top_p, parallel_tool_calls, user, metadata,
  service_tier, truncation, include, previous_response_id, prompt_cache_key, safety_identifier,
  max_tool_calls, text, instructions); chat-only ones the API has no field for (stop, n, seed,
  penalties, logit_bias, stream_options) are dropped, as native providers drop what they cannot send.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from ..fake import events_from_response_body
from . import _convert as cv
from .base import ChatRequest, HTTPRequest, Provider

_NAME = "openai_responses"
_LOGPROBS = "message.output_text.logprobs"
_PASS = ("temperature", "top_p", "parallel_tool_calls", "user", "metadata", "service_tier", "truncation",
         "previous_response_id", "prompt_cache_key", "safety_identifier", "max_tool_calls", "instructions",
         "store", "background")


def _user_part(part: dict[str, Any]) -> dict[str, Any]:
    kind = part.get("type")
    if kind in ("text", "input_text"):
        return {"type": "input_text", "text": part.get("text") or ""}
    url = cv.image_url(part)
    if url is not None:
        detail = part["image_url"].get("detail") if isinstance(part.get("image_url"), dict) else part.get("detail")
        return {"type": "input_image", "image_url": url, "detail": detail or "auto"}
    if kind == "file" and isinstance(part.get("file"), dict):
        f = part["file"]
        return cv.drop_none({"type": "input_file", "file_id": f.get("file_id"), "file_data": f.get("file_data"),
                             "filename": f.get("filename")})
    return part  # a Responses-native part (input_file, input_audio, …) as it is


def _message(role: str, content: Any) -> dict[str, Any]:
    if role != "user" or isinstance(content, str) or content is None:
        return {"role": role, "content": cv.text_of(content)}
    parts = [_user_part(p) for p in cv.parts(content)]
    return {"role": role, "content": parts}


def _input(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role in ("system", "developer", "user"):
            items.append(_message(str(role), m.get("content")))
        elif role == "assistant":
            text = cv.text_of(m.get("content"))
            if text or not m.get("tool_calls"):
                items.append({"role": "assistant", "content": text})
            for tc in m.get("tool_calls") or ():
                fn = tc.get("function") or {}
                args = fn.get("arguments")
                items.append({"type": "function_call", "call_id": tc.get("id"), "name": fn.get("name"),
                              "arguments": args if isinstance(args, str) else json.dumps(args or {})})
        elif role == "tool":
            content = m.get("content")
            output = content if isinstance(content, str) else cv.text_of(content)
            items.append({"type": "function_call_output", "call_id": m.get("tool_call_id"), "output": output})
        else:
            raise cv.bad_request(_NAME, f"messages with role {role!r} are not supported")
    return items


def _tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = []
    for fn, tool in cv.function_tools(tools):
        if fn is None:
            out.append(tool)  # built-in tools are the Responses API's own
        else:
            out.append(cv.drop_none({"type": "function", "name": fn.get("name"), "description": fn.get("description"),
                                     "parameters": fn.get("parameters"), "strict": fn.get("strict")}))
    return out


def _tool_choice(choice: Any) -> Any:
    tc = cv.tool_choice(choice)
    if tc is None:
        return None
    kind, name = tc
    return {"type": "function", "name": name} if kind == "function" else kind


def _text_format(params: dict[str, Any]) -> dict[str, Any] | None:
    rf = params.get("response_format")
    if not isinstance(rf, dict) or rf.get("type") in (None, "text"):
        return None
    if rf["type"] == "json_schema":
        js: dict[str, Any] = rf["json_schema"] if isinstance(rf.get("json_schema"), dict) else {}
        return cv.drop_none({"type": "json_schema", "name": js.get("name") or "response", "schema": js.get("schema"),
                             "strict": js.get("strict"), "description": js.get("description")})
    return {"type": rf["type"]}


class OpenAIResponses(Provider):
    name: ClassVar[str] = _NAME
    dialect: ClassVar[str] = _NAME
    can_fake_stream: ClassVar[bool] = True  # for models that cannot stream
    default_api_base: ClassVar[str] = "https://api.openai.com/v1"
    env_api_key: ClassVar[tuple[str, ...]] = ("OPENAI_API_KEY",)
    env_api_base: ClassVar[tuple[str, ...]] = ("OPENAI_BASE_URL", "OPENAI_API_BASE")

    def build_request(self, req: ChatRequest, *, stream: bool) -> HTTPRequest:
        p = req.params
        body: dict[str, Any] = {"model": req.model, "input": _input(req.messages), "stream": stream, "store": False}
        body.update({k: p[k] for k in _PASS if p.get(k) is not None})
        if p.get("tools"):
            body["tools"] = _tools(p["tools"])
        choice = _tool_choice(p.get("tool_choice"))
        if choice is not None:
            body["tool_choice"] = choice
        limit = cv.max_tokens(p)
        if limit is not None:
            body["max_output_tokens"] = limit
        reasoning = dict(p["reasoning"]) if isinstance(p.get("reasoning"), dict) else {}
        if p.get("reasoning_effort") is not None:
            reasoning.setdefault("effort", p["reasoning_effort"])
        if reasoning:
            body["reasoning"] = reasoning
        fmt = _text_format(p)
        if fmt is not None:
            body["text"] = {**(p.get("text") or {}), "format": fmt}
        elif isinstance(p.get("text"), dict):
            body["text"] = p["text"]
        want_logprobs, top = cv.logprobs(p)
        include = [str(v) for v in p.get("include") or ()]
        if want_logprobs:
            if _LOGPROBS not in include:
                include.append(_LOGPROBS)
            if top:
                body["top_logprobs"] = top
        if include:
            body["include"] = include
        body = cv.extra_body(body, p)
        headers = {"accept": "text/event-stream" if stream else "application/json"}
        return HTTPRequest("POST", f"{self.api_base}/responses", self.headers(headers, bearer=True), body)

    def replay_as_stream(self, body: bytes) -> tuple[bytes, str]:
        return events_from_response_body(body), _NAME


PROVIDER = OpenAIResponses
