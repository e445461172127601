"""Cohere v2 chat (`POST {base}/v2/chat`, Bearer key, named SSE events; dialect "cohere").

Cohere v2 is close to OpenAI's shape; the mapping:
- system/developer messages → one `system` message first (Cohere requires it to lead).
- user content: text and `image_url` parts as they are (Cohere v2 takes `image_url` parts).
- assistant `tool_calls` pass through (arguments stay a JSON string); the assistant's text beside
  tool calls becomes `tool_plan`, as Cohere expects. `role: "tool"` messages keep `tool_call_id`.
- tools: OpenAI function tools as they are. tool_choice: required → "REQUIRED", none → "NONE",
  auto → omitted; a specific function → "REQUIRED" with the tools narrowed to that function
  (Cohere cannot name one).
- top_p → p, top_k → k, stop → stop_sequences; max_tokens, seed, penalties as they are.
  logprobs is not asked for: Cohere gives token ids without each token's text, which OpenAI's
  logprobs cannot carry, so the dialect drops them.
- response_format json_object → {"type": "json_object"}, json_schema → {"type": "json_object",
  "schema": …}.
- reasoning_effort → `thinking: {type: enabled, token_budget}` (none → disabled); an explicit
  `thinking` passes through (`budget_tokens` renamed `token_budget`).
- Cohere-native fields documents, citation_options, safety_mode, strict_tools pass through; n,
  stream_options and the rest are dropped.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from . import _convert as cv
from .base import ChatRequest, HTTPRequest, Provider

_NAME = "cohere"
_NATIVE = ("documents", "citation_options", "safety_mode", "strict_tools", "priority")


def _content(content: Any) -> Any:
    if content is None or isinstance(content, str):
        return content
    out: list[dict[str, Any]] = []
    for part in cv.parts(content):
        url = cv.image_url(part)
        if url is not None:
            detail = part["image_url"].get("detail") if isinstance(part.get("image_url"), dict) else None
            out.append({"type": "image_url", "image_url": cv.drop_none({"url": url, "detail": detail})})
        elif part.get("type") in ("text", "input_text"):
            out.append({"type": "text", "text": part.get("text") or ""})
        else:
            out.append(part)  # a Cohere-native part (document, …)
    if len(out) == 1 and out[0].get("type") == "text":
        return out[0]["text"]
    return out


def _assistant(msg: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant"}
    calls = msg.get("tool_calls")
    text = cv.text_of(msg.get("content"))
    if calls:
        out["tool_calls"] = [
            {
                "id": tc.get("id"),
                "type": "function",
                "function": {
                    "name": (tc.get("function") or {}).get("name"),
                    "arguments": _arguments_text(tc),
                },
            }
            for tc in calls
        ]
        out["tool_plan"] = msg.get("tool_plan") or text or None
        return cv.drop_none(out)
    out["content"] = text
    return out


def _arguments_text(tc: dict[str, Any]) -> str:
    raw = (tc.get("function") or {}).get("arguments")
    if isinstance(raw, str) and raw:
        return raw
    return json.dumps(raw if raw not in (None, "") else {}, ensure_ascii=False)


def convert_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    system_msgs, rest = cv.split_system(messages)
    out: list[dict[str, Any]] = []
    system = "\n\n".join(t for t in (cv.text_of(m.get("content"), "\n") for m in system_msgs) if t)
    if system:
        out.append({"role": "system", "content": system})
    for msg in rest:
        role = msg.get("role")
        if role == "assistant":
            out.append(_assistant(msg))
        elif role in ("tool", "function"):
            out.append({"role": "tool", "tool_call_id": msg.get("tool_call_id"), "content": _content(msg.get("content")) or ""})
        else:
            out.append({"role": "user", "content": _content(msg.get("content")) or ""})
    return out


def _tools(params: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, str | None]:
    tools = [tool for _, tool in cv.function_tools(params.get("tools"))]
    choice = cv.tool_choice(params.get("tool_choice"))
    mode = None
    if choice:
        kind, name = choice
        if kind == "none":
            mode = "NONE"
        elif kind in ("required", "function"):
            mode = "REQUIRED"
        if name:
            tools = [t for t in tools if (t.get("function") or {}).get("name") == name]
    return tools or None, mode


def _thinking(params: dict[str, Any]) -> dict[str, Any] | None:
    thinking = params.get("thinking")
    if isinstance(thinking, dict):
        out = {k: v for k, v in thinking.items() if k != "budget_tokens"}
        if "budget_tokens" in thinking:
            out["token_budget"] = thinking["budget_tokens"]
        return out
    budget = cv.thinking_budget(params)
    if budget is None:
        return None
    return {"type": "enabled", "token_budget": budget} if budget else {"type": "disabled"}


class CohereProvider(Provider):
    name: ClassVar[str] = _NAME
    dialect: ClassVar[str] = "cohere"
    default_api_base: ClassVar[str] = "https://api.cohere.com"
    env_api_key: ClassVar[tuple[str, ...]] = ("COHERE_API_KEY", "CO_API_KEY")
    env_api_base: ClassVar[tuple[str, ...]] = ("COHERE_API_BASE", "CO_API_URL")

    def url(self) -> str:
        base = self.api_base
        for suffix in ("/v2/chat", "/v2", "/v1"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
                break
        return f"{base}/v2/chat"

    def build_request(self, req: ChatRequest, *, stream: bool) -> HTTPRequest:
        p = req.params
        body: dict[str, Any] = {"model": req.model, "messages": convert_messages(req.messages), "stream": stream}
        body.update(
            cv.drop_none(
                {
                    "temperature": p.get("temperature"),
                    "p": p.get("top_p"),
                    "k": p.get("top_k"),
                    "max_tokens": cv.max_tokens(p),
                    "stop_sequences": cv.stop_list(p.get("stop")),
                    "seed": p.get("seed"),
                    "frequency_penalty": p.get("frequency_penalty"),
                    "presence_penalty": p.get("presence_penalty"),
                    "thinking": _thinking(p),
                }
            )
        )
        tools, mode = _tools(p)
        if tools:
            body["tools"] = tools
        if mode:
            body["tool_choice"] = mode
        fmt = cv.response_format(p)
        if fmt:
            body["response_format"] = cv.drop_none({"type": "json_object", "schema": fmt[1]})
        body.update({k: p[k] for k in _NATIVE if p.get(k) is not None})
        cv.extra_body(body, p)
        headers = {"accept": "text/event-stream" if stream else "application/json"}
        return HTTPRequest("POST", self.url(), self.headers(headers, bearer=True), body)


PROVIDER = CohereProvider
