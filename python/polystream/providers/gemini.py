"""Google Gemini (Generative Language API): `POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse`
with the key in the `x-goog-api-key` header (never in the URL, which ends up in logs). Dialect "gemini".

Mapping from the OpenAI-style request:
- system/developer messages → `systemInstruction`; user/assistant → `contents` with roles
  user/model (consecutive same-role turns merged).
- assistant `tool_calls` → `functionCall` parts (args parsed); `role: "tool"` messages →
  `functionResponse` parts in a user turn, named by looking the call id up in the earlier
  assistant tool calls (Gemini matches responses by name); the response is the tool output parsed
  as a JSON object, else `{"content": <output>}`. `reasoning_signature` (or a tool call's
  `extra_content.google.thought_signature`) → `thoughtSignature`, which Gemini 3 requires back.
- `image_url` parts → `inlineData` (data: URLs) or `fileData` (other URLs, mime type guessed).
- tools → one `functionDeclarations` tool; native tools ({"googleSearch": {}}, …) pass through.
  tool_choice auto/none/required/function → functionCallingConfig AUTO/NONE/ANY/ANY+allowedFunctionNames.
- Schemas (tool parameters, response_format json_schema) are JSON Schema; Gemini takes an OpenAPI
  subset, so they are rewritten: `$ref`s inlined, ["T", "null"] → nullable, const → enum,
  unsupported keys (additionalProperties, $schema, …) dropped.
- temperature/top_p/top_k/max_tokens/stop/n/seed/penalties → generationConfig; logprobs →
  responseLogprobs, top_logprobs (with logprobs, > 0) → logprobs; response_format →
  responseMimeType (+ responseSchema); reasoning_effort → thinkingConfig {thinkingBudget,
  includeThoughts: true} (none → budget 0); `thinking` ({type, budget_tokens}) is converted, a
  Gemini-shaped one (thinkingBudget/thinkingLevel/includeThoughts) passes through.
- safety_settings → safetySettings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

from .. import errors
from . import _convert as cv
from .base import ChatRequest, HTTPRequest, Provider

_NAME = "gemini"
_SCHEMA_KEYS = frozenset(
    {
        "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
        "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
        "propertyOrdering", "default", "items", "minimum", "maximum",
    }
)


def gemini_schema(schema: Any, defs: Mapping[str, Any] | None = None, depth: int = 0) -> Any:
    """A JSON Schema rewritten into the OpenAPI subset Gemini's `Schema` accepts."""
    if not isinstance(schema, dict):
        return schema
    if depth > 32:
        raise cv.bad_request(_NAME, "schema nests too deeply (a recursive $ref?)")
    defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1])
        if target is None:
            raise cv.bad_request(_NAME, f"schema $ref {ref!r} not found")
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {k: gemini_schema(v, defs, depth + 1) for k, v in value.items()}
        elif key == "items":
            out[key] = gemini_schema(value, defs, depth + 1)
        elif key in ("anyOf", "oneOf"):
            variants = [v for v in value if v != {"type": "null"}]
            if len(variants) < len(value):
                out["nullable"] = True
            converted = [gemini_schema(v, defs, depth + 1) for v in variants]
            if len(converted) == 1:
                out.update(converted[0])
            else:
                out["anyOf"] = converted
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if len(types) < len(value):
                out["nullable"] = True
            if len(types) == 1:
                out["type"] = types[0]
            else:
                out["anyOf"] = [{"type": t} for t in types]
        elif key == "const":
            out["enum"] = [value]
        elif key in _SCHEMA_KEYS:
            out[key] = value
    return out


def _part(part: dict[str, Any]) -> dict[str, Any] | None:
    kind = part.get("type")
    if kind is None:
        return part  # already a Gemini part (inlineData, fileData, …)
    if kind in ("text", "input_text"):
        return {"text": part["text"]} if part.get("text") else None
    url = cv.image_url(part)
    if url is None and kind == "file":
        url = (part.get("file") or {}).get("file_data") or (part.get("file") or {}).get("file_id")
    if url is None:
        return None
    inline = cv.data_url(url)
    if inline:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    iu = part.get("image_url")
    fmt = iu.get("format") if isinstance(iu, dict) else None
    return {"fileData": {"mimeType": fmt or cv.guess_media_type(url), "fileUri": url}}


def _parts(content: Any) -> list[dict[str, Any]]:
    return [p for p in map(_part, cv.parts(content)) if p is not None]


def _model_parts(msg: dict[str, Any]) -> list[dict[str, Any]]:
    parts = _parts(msg.get("content"))
    calls = []
    for tc in msg.get("tool_calls") or ():
        fn = tc.get("function") or {}
        call: dict[str, Any] = {"functionCall": {"name": fn.get("name"), "args": cv.arguments(_NAME, tc)}}
        sig = ((tc.get("extra_content") or {}).get("google") or {}).get("thought_signature")
        if sig:
            call["thoughtSignature"] = sig
        calls.append(call)
    sig = msg.get("reasoning_signature")
    if sig and not any("thoughtSignature" in c for c in calls):
        target = calls[0] if calls else (parts[-1] if parts else None)
        if target is not None:
            target["thoughtSignature"] = sig
    return parts + calls


def _function_response(msg: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    content = msg.get("content")
    text = content if isinstance(content, str) else cv.text_of(content)
    value = cv.json_or_text(text)
    response = value if isinstance(value, dict) else {"content": value}
    return {"functionResponse": {"name": cv.tool_name(_NAME, msg, names), "response": response}}


def convert_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI messages (without system ones) → Gemini `contents`."""
    names = cv.tool_call_names(messages)

    def parts_of(msg: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        role = msg.get("role")
        if role == "assistant":
            return "model", _model_parts(msg)
        if role in ("tool", "function"):
            return "user", [_function_response(msg, names)]
        return "user", _parts(msg.get("content"))

    return cv.alternating_turns(messages, parts_of, key="parts")


def _tools(params: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, dict[str, Any] | None]:
    decls, tools = [], []
    for fn, tool in cv.function_tools(params.get("tools")):
        if fn is None:
            tools.append(tool)
            continue
        decl = {"name": fn.get("name")}
        if fn.get("description"):
            decl["description"] = fn["description"]
        schema = fn.get("parameters")
        if isinstance(schema, dict) and schema.get("properties"):  # Gemini rejects empty OBJECT schemas
            decl["parameters"] = gemini_schema(schema)
        decls.append(decl)
    if decls:
        tools.insert(0, {"functionDeclarations": decls})
    choice = cv.tool_choice(params.get("tool_choice"))
    config = None
    if choice:
        kind, name = choice
        fcc: dict[str, Any] = {"mode": {"auto": "AUTO", "none": "NONE"}.get(kind, "ANY")}
        if name:
            fcc["allowedFunctionNames"] = [name]
        config = {"functionCallingConfig": fcc}
    return tools or None, config


def _thinking(params: dict[str, Any]) -> dict[str, Any] | None:
    thinking = params.get("thinking")
    if isinstance(thinking, dict) and {"thinkingBudget", "thinkingLevel", "includeThoughts"} & set(thinking):
        return thinking
    budget = cv.thinking_budget(params)
    if budget is None:
        return None
    return {"thinkingBudget": budget, "includeThoughts": True} if budget else {"thinkingBudget": 0}


def _generation_config(p: dict[str, Any]) -> dict[str, Any]:
    want_logprobs, top_logprobs = cv.logprobs(p)
    config = cv.drop_none(
        {
            "temperature": p.get("temperature"),
            "topP": p.get("top_p"),
            "topK": p.get("top_k"),
            "maxOutputTokens": cv.max_tokens(p),
            "stopSequences": cv.stop_list(p.get("stop")),
            "candidateCount": p.get("n"),
            "seed": p.get("seed"),
            "presencePenalty": p.get("presence_penalty"),
            "frequencyPenalty": p.get("frequency_penalty"),
            "responseLogprobs": want_logprobs or None,
            "logprobs": top_logprobs,
            "thinkingConfig": _thinking(p),
        }
    )
    fmt = cv.response_format(p)
    if fmt:
        config["responseMimeType"] = "application/json"
        if fmt[1]:
            config["responseSchema"] = gemini_schema(fmt[1])
    return config


_RETRY_DELAY = re.compile(r"^(\d+(?:\.\d+)?)s$")


class GeminiProvider(Provider):
    name: ClassVar[str] = _NAME
    dialect: ClassVar[str] = "gemini"
    default_api_base: ClassVar[str] = "https://generativelanguage.googleapis.com"
    env_api_key: ClassVar[tuple[str, ...]] = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    env_api_base: ClassVar[tuple[str, ...]] = ("GEMINI_API_BASE",)

    def url(self, model: str, stream: bool) -> str:
        base = self.api_base
        if not re.search(r"/v1(alpha|beta)?\d*$", base):
            base += "/v1beta"
        model = quote(model.removeprefix("models/"), safe="-._~")
        return f"{base}/models/{model}:" + ("streamGenerateContent?alt=sse" if stream else "generateContent")

    def build_request(self, req: ChatRequest, *, stream: bool) -> HTTPRequest:
        p = req.params
        system_msgs, rest = cv.split_system(req.messages)
        body: dict[str, Any] = {"contents": convert_messages(rest)}
        system_parts = [part for m in system_msgs for part in _parts(m.get("content"))]
        if system_parts:
            body["systemInstruction"] = {"parts": system_parts}
        tools, tool_config = _tools(p)
        if tools:
            body["tools"] = tools
        if tool_config and tools:
            body["toolConfig"] = tool_config
        config = _generation_config(p)
        if config:
            body["generationConfig"] = config
        safety = p.get("safety_settings", p.get("safetySettings"))
        if safety:
            body["safetySettings"] = safety
        cv.extra_body(body, p)
        headers = {"accept": "text/event-stream" if stream else "application/json"}
        if self.api_key:
            headers["x-goog-api-key"] = self.api_key
        return HTTPRequest("POST", self.url(req.model, stream), self.headers(headers), body)

    def map_error(self, model: str, status: int, headers: Mapping[str, str], body: bytes) -> errors.APIStatusError:
        exc = super().map_error(model, status, headers, body)
        details = _details(exc.body)
        reasons = {d.get("reason") for d in details}
        if status == 400 and reasons & {"API_KEY_INVALID", "API_KEY_EXPIRED"}:
            # Google answers a bad key with 400 INVALID_ARGUMENT; it is an authentication failure.
            return errors.AuthenticationError(exc.message, **{k: v for k, v in vars(exc).items() if k != "message"})
        if isinstance(exc, errors.RateLimitError) and exc.retry_after is None:
            for d in details:  # google.rpc.RetryInfo {"retryDelay": "36s"}
                m = _RETRY_DELAY.match(str(d.get("retryDelay", "")))
                if m:
                    exc.retry_after = float(m.group(1))
        return exc


def _details(parsed: Any) -> list[dict[str, Any]]:
    err = parsed.get("error") if isinstance(parsed, dict) else None
    details = err.get("details") if isinstance(err, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


PROVIDER = GeminiProvider
