"""Ollama's native chat API (`POST {base}/api/chat`, NDJSON; dialect "ollama"). No key needed
for a local server; one given (api_key= or OLLAMA_API_KEY, e.g. for a proxy or Ollama's cloud) is
sent as a Bearer token. Base: api_base, OLLAMA_API_BASE or OLLAMA_HOST (scheme optional), else
http://localhost:11434.

Mapping from the OpenAI-style request:
- messages keep their roles (system, user, assistant, tool); content parts become one string
  (text parts joined by newlines) plus `images` (base64 from data: URLs; Ollama cannot fetch
  URLs, so an http(s) image is a BadRequestError).
- assistant `tool_calls` → `tool_calls: [{"function": {"name", "arguments": <object>}}]`;
  `reasoning_content` → `thinking`. Tool results carry `tool_name` (looked up by call id).
- tools pass through (OpenAI shape); tool_choice "none" drops them, other choices are not
  supported by Ollama and are ignored.
- temperature, top_p, top_k, max_tokens (num_predict), stop, seed, penalties → `options`
  (a caller's `options` dict is merged on top).
- logprobs, top_logprobs (with logprobs, > 0) → top-level `logprobs` / `top_logprobs`.
- response_format json_object → `format: "json"`, json_schema → `format: <schema>`.
- reasoning_effort → `think` (true, or the level itself for gpt-oss models; none → false);
  `thinking` {type: enabled|disabled} → true/false; a native `think` / `keep_alive` pass through.
"""

from __future__ import annotations

from typing import Any, ClassVar

from . import _convert as cv
from .base import ChatRequest, HTTPRequest, Provider

_NAME = "ollama"


def _user(msg: dict[str, Any], role: str) -> dict[str, Any]:
    content = msg.get("content")
    texts, images = [], []
    for part in cv.parts(content):
        url = cv.image_url(part)
        if url is None:
            if part.get("type") in ("text", "input_text"):
                texts.append(part.get("text") or "")
            continue
        inline = cv.data_url(url)
        if inline is None:
            raise cv.bad_request(_NAME, "Ollama takes images inline only: pass a data: URL (base64), not a link")
        images.append(inline[1])
    out: dict[str, Any] = {"role": role, "content": content if isinstance(content, str) else "\n".join(texts)}
    images += list(msg.get("images") or ())
    if images:
        out["images"] = images
    return out


def _assistant(msg: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": cv.text_of(msg.get("content"), "\n")}
    if msg.get("reasoning_content"):
        out["thinking"] = msg["reasoning_content"]
    calls = msg.get("tool_calls")
    if calls:
        out["tool_calls"] = [
            {"function": {"name": (tc.get("function") or {}).get("name"), "arguments": cv.arguments(_NAME, tc)}}
            for tc in calls
        ]
    return out


def convert_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = cv.tool_call_names(messages)
    out = []
    for msg in messages:
        role = msg.get("role")
        if role == "assistant":
            out.append(_assistant(msg))
        elif role in ("tool", "function"):
            tool = {"role": "tool", "content": cv.text_of(msg.get("content"), "\n")}
            name = names.get(msg.get("tool_call_id") or "") or msg.get("name")
            tool.update(cv.drop_none({"tool_name": name, "tool_call_id": msg.get("tool_call_id")}))
            out.append(tool)
        else:
            out.append(_user(msg, "system" if role in cv.SYSTEM_ROLES else "user"))
    return out


def _think(model: str, params: dict[str, Any]) -> Any:
    if "think" in params:
        return params["think"]
    thinking = params.get("thinking")
    if isinstance(thinking, dict) and "type" in thinking:
        return thinking["type"] != "disabled"
    if isinstance(thinking, bool):
        return thinking
    effort = params.get("reasoning_effort")
    if effort is None:
        return None
    effort = str(effort).lower()
    if effort in cv.EFFORT_OFF:
        return False
    if "gpt-oss" in model and effort in ("low", "medium", "high"):
        return effort  # gpt-oss takes a level, other thinking models a boolean
    return True


class OllamaProvider(Provider):
    name: ClassVar[str] = _NAME
    dialect: ClassVar[str] = "ollama"
    default_api_base: ClassVar[str] = "http://localhost:11434"
    env_api_key: ClassVar[tuple[str, ...]] = ("OLLAMA_API_KEY",)
    env_api_base: ClassVar[tuple[str, ...]] = ("OLLAMA_API_BASE", "OLLAMA_HOST")
    requires_key: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "://" not in self.api_base:  # OLLAMA_HOST is often "host:port"
            self.api_base = "http://" + self.api_base

    def url(self) -> str:
        base = self.api_base
        if base.endswith("/api/chat"):
            return base
        return base + ("/chat" if base.endswith("/api") else "/api/chat")

    def build_request(self, req: ChatRequest, *, stream: bool) -> HTTPRequest:
        p = req.params
        body: dict[str, Any] = {"model": req.model, "messages": convert_messages(req.messages), "stream": stream}
        choice = cv.tool_choice(p.get("tool_choice"))
        if p.get("tools") and not (choice and choice[0] == "none"):
            body["tools"] = p["tools"]
        options = cv.drop_none(
            {
                "temperature": p.get("temperature"),
                "top_p": p.get("top_p"),
                "top_k": p.get("top_k"),
                "num_predict": cv.max_tokens(p),
                "stop": cv.stop_list(p.get("stop")),
                "seed": p.get("seed"),
                "presence_penalty": p.get("presence_penalty"),
                "frequency_penalty": p.get("frequency_penalty"),
            }
        )
        options.update(p.get("options") or {})
        if options:
            body["options"] = options
        fmt = cv.response_format(p)
        if fmt:
            body["format"] = fmt[1] or "json"
        want_logprobs, top_logprobs = cv.logprobs(p)
        if want_logprobs:
            body.update(cv.drop_none({"logprobs": True, "top_logprobs": top_logprobs}))
        think = _think(req.model, p)
        if think is not None:
            body["think"] = think
        if p.get("keep_alive") is not None:
            body["keep_alive"] = p["keep_alive"]
        cv.extra_body(body, p)
        headers = {"accept": "application/x-ndjson" if stream else "application/json"}
        return HTTPRequest("POST", self.url(), self.headers(headers, bearer=True), body)


PROVIDER = OllamaProvider
