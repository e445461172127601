"""Anthropic Messages API (`POST {base}/v1/messages`, named SSE events; dialect "anthropic").

Mapping from the OpenAI-style request:
- system/developer messages → top-level `system` (a string, or text blocks when there are several
  or they carry `cache_control`); consecutive turns of one role are merged (Anthropic alternates).
- assistant `tool_calls` → `tool_use` blocks (arguments parsed); `role: "tool"` messages →
  `tool_result` blocks in a user turn; assistant `reasoning_content` + `reasoning_signature` (what
  polystream's accumulator returns) or `thinking_blocks` → `thinking` blocks, as Anthropic requires
  when a thinking turn is continued with tool results.
- `image_url` parts → `image` blocks (base64 from data: URLs, `url` source otherwise); data: PDFs →
  `document` blocks.
- tools → {name, description, input_schema}; tool_choice auto/none/required/function →
  {"type": auto|none|any|tool}; parallel_tool_calls=False → disable_parallel_tool_use.
- max_tokens is required: default 4096 (plus the thinking budget when thinking is on).
- reasoning_effort → `thinking: {type: enabled, budget_tokens}` (low 1024, medium 2048, high 4096,
  cut to fit under a given max_tokens, which like OpenAI's bounds thinking + answer); an explicit
  `thinking` passes through unchanged.
- response_format: the Messages API has no JSON mode, so json_object / json_schema become an
  instruction appended to the system prompt (with the schema); the answer stays in `content`.
- stop → stop_sequences; user → metadata.user_id; stream_options, n, seed, penalties dropped.
"""

from __future__ import annotations

from typing import Any, ClassVar

from . import _convert as cv
from .base import ChatRequest, HTTPRequest, Provider

DEFAULT_MAX_TOKENS = 4096
API_VERSION = "2023-06-01"
_NAME = "anthropic"


def _block(part: dict[str, Any]) -> dict[str, Any] | None:
    """One OpenAI content part as an Anthropic content block."""
    kind = part.get("type")
    if kind in ("text", "input_text"):
        if not part.get("text"):
            return None  # Anthropic rejects empty text blocks
        block = {"type": "text", "text": part["text"]}
        if part.get("cache_control"):
            block["cache_control"] = part["cache_control"]
        return block
    url = cv.media_url(part)
    if url is not None:
        inline = cv.data_url(url)
        if inline:
            media, data = inline
            source = {"type": "base64", "media_type": media, "data": data}
        else:
            media, source = cv.guess_media_type(url), {"type": "url", "url": url}
        block = {"type": "document" if media == "application/pdf" else "image", "source": source}
        if part.get("cache_control"):
            block["cache_control"] = part["cache_control"]
        return block
    return part  # already an Anthropic block (image, document, tool_result, …)


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [b for b in map(_block, cv.parts(content)) if b is not None]


def _assistant_blocks(msg: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = list(msg.get("thinking_blocks") or ())
    if not blocks and msg.get("reasoning_content") and msg.get("reasoning_signature"):
        blocks.append({"type": "thinking", "thinking": msg["reasoning_content"], "signature": msg["reasoning_signature"]})
    blocks += _blocks(msg.get("content"))
    for tc in msg.get("tool_calls") or ():
        fn = tc.get("function") or {}
        blocks.append({"type": "tool_use", "id": tc.get("id"), "name": fn.get("name"), "input": cv.arguments(_NAME, tc)})
    return blocks


def _tool_result(msg: dict[str, Any]) -> dict[str, Any]:
    content = msg.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": msg.get("tool_call_id")}
    block["content"] = content if isinstance(content, str) or content is None else _blocks(content)
    return block


def _turn_blocks(msg: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    role = msg.get("role")
    if role == "assistant":
        return "assistant", _assistant_blocks(msg)
    if role in ("tool", "function"):
        return "user", [_tool_result(msg)]
    return "user", _blocks(msg.get("content"))


def convert_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI messages (without system ones) → Anthropic turns, same-role turns merged."""
    turns = cv.alternating_turns(messages, _turn_blocks)
    for t in turns:  # a lone plain text block reads better (and is smaller) as a string
        c = t["content"]
        if len(c) == 1 and c[0].get("type") == "text" and set(c[0]) == {"type", "text"}:
            t["content"] = c[0]["text"]
    return turns


def _system(system_msgs: list[dict[str, Any]], params: dict[str, Any]) -> str | list[dict[str, Any]] | None:
    blocks = [b for m in system_msgs for b in _blocks(m.get("content"))]
    fmt = cv.response_format(params)
    if fmt:
        blocks.append({"type": "text", "text": cv.json_instruction(fmt)})
    if not blocks:
        return None
    if all(set(b) == {"type", "text"} for b in blocks):
        return "\n\n".join(b["text"] for b in blocks)
    return blocks


def _tools(params: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, dict[str, Any] | None]:
    tools = []
    for fn, tool in cv.function_tools(params.get("tools")):
        if fn is None:
            tools.append(tool)  # a native Anthropic tool (web_search, bash, …)
            continue
        t = {"name": fn.get("name"), "input_schema": fn.get("parameters") or {"type": "object", "properties": {}}}
        if fn.get("description"):
            t["description"] = fn["description"]
        if tool.get("cache_control"):
            t["cache_control"] = tool["cache_control"]
        tools.append(t)
    choice = cv.tool_choice(params.get("tool_choice"))
    tc: dict[str, Any] | None = None
    if choice:
        kind, name = choice
        tc = {"type": "tool", "name": name} if kind == "function" else {"type": {"required": "any"}.get(kind, kind)}
    if params.get("parallel_tool_calls") is False and tools:
        tc = tc or {"type": "auto"}
        if tc["type"] != "none":
            tc["disable_parallel_tool_use"] = True
    return tools or None, tc


class AnthropicProvider(Provider):
    name: ClassVar[str] = _NAME
    dialect: ClassVar[str] = "anthropic"
    default_api_base: ClassVar[str] = "https://api.anthropic.com"
    env_api_key: ClassVar[tuple[str, ...]] = ("ANTHROPIC_API_KEY",)
    env_api_base: ClassVar[tuple[str, ...]] = ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_BASE")

    def url(self) -> str:
        base = self.api_base
        if base.endswith("/v1/messages"):
            return base
        return base + ("/messages" if base.endswith("/v1") else "/v1/messages")

    def build_request(self, req: ChatRequest, *, stream: bool) -> HTTPRequest:
        p = req.params
        system_msgs, rest = cv.split_system(req.messages)
        body: dict[str, Any] = {"model": req.model, "messages": convert_messages(rest)}
        system = _system(system_msgs, p)
        if system is not None:
            body["system"] = system
        limit = cv.max_tokens(p)
        thinking = cv.claude_thinking(p, limit)
        if thinking is not None:
            body["thinking"] = thinking
        body["max_tokens"] = limit if limit is not None else DEFAULT_MAX_TOKENS + cv.thinking_tokens(thinking)
        body.update(cv.drop_none({"temperature": p.get("temperature"), "top_p": p.get("top_p"), "top_k": p.get("top_k")}))
        stop = cv.stop_list(p.get("stop"))
        if stop:
            body["stop_sequences"] = stop
        tools, tc = _tools(p)
        if tools:
            body["tools"] = tools
        if tc and tools:  # a tool_choice without tools is an error at Anthropic
            body["tool_choice"] = tc
        if p.get("user"):
            body["metadata"] = {"user_id": str(p["user"])}
        body["stream"] = stream
        cv.extra_body(body, p)
        headers = {"anthropic-version": API_VERSION, "accept": "text/event-stream" if stream else "application/json"}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        return HTTPRequest("POST", self.url(), self.headers(headers), body)


PROVIDER = AnthropicProvider
