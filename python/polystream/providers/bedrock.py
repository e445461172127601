"""AWS Bedrock's Converse API (`POST {base}/model/{modelId}/converse-stream`, AWS eventstream
frames; dialect "bedrock_converse"). One request shape for every Bedrock model (Claude, Nova,
Llama, Mistral, …).

Credentials, in order: `api_key=` or `AWS_BEARER_TOKEN_BEDROCK` (a Bedrock API key, sent as a
Bearer token); else SigV4 with `aws_access_key_id` / `aws_secret_access_key` /
`aws_session_token` (arguments, as LiteLLM's config names them), the `AWS_ACCESS_KEY_ID` /
`AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` variables, or a profile of
`~/.aws/credentials` (`aws_profile_name=` or `AWS_PROFILE`, else `default`). Region:
`aws_region_name=`, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's region in `~/.aws/config`.
Instance roles, SSO and `credential_process` are not read: give keys or a Bedrock API key.

Mapping from the OpenAI-style request:
- system/developer messages → `system` text blocks; user/assistant turns → `messages` with
  `text`, `image` / `document` (base64 data: URLs only: Converse takes no image URLs), `toolUse`
  (arguments parsed) and `toolResult` blocks (tool messages join the following user turn);
  assistant `reasoning_content` + `reasoning_signature` or `thinking_blocks` → `reasoningContent`
  blocks, which Claude requires back when a thinking turn continues with tool results; a part's
  `cache_control` → a `cachePoint` block after it.
- tools → `toolConfig.tools[].toolSpec`; tool_choice auto/required/function → `{auto}`/`{any}`/
  `{tool}`; "none" sends no tools (Converse has no "none"). Converse rejects a history with tool
  blocks unless tools are declared, so the tools such a history names are declared when the
  request gives none.
- max_tokens, temperature, top_p, stop → `inferenceConfig`; top_k and Claude's thinking
  (`thinking`, or reasoning_effort as for Anthropic) → `additionalModelRequestFields`.
- response_format json → an instruction in the system prompt, as for Anthropic.
- n, seed, penalties, user, logprobs: Converse has no equivalent; dropped.

`fake_stream=True` makes one `/converse` call and replays its answer as the stream's frames
(for models that cannot stream a request, e.g. tool use on some Llama models).
"""

from __future__ import annotations

import configparser
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from .. import errors
from ..error_mapping import status_error
from . import _convert as cv
from ._eventstream import from_converse
from ._sigv4 import Credentials, sign
from .base import ChatRequest, HTTPRequest, Provider

_NAME = "bedrock"
_IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                  "image/webp": "webp"}
_DOC_FORMATS = {"application/pdf": "pdf", "text/csv": "csv", "text/html": "html", "text/plain": "txt",
                "text/markdown": "md", "application/msword": "doc",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
                "application/vnd.ms-excel": "xls",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx"}
#: 403s that mean "who are you?" rather than "you may not".
_BAD_CREDENTIALS = frozenset({"UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException",
                              "IncompleteSignatureException", "MissingAuthenticationTokenException"})
_BAD_CREDENTIALS_TEXT = b"security token included in the request is"
_CACHE_POINT = {"cachePoint": {"type": "default"}}
DEFAULT_THINKING_MAX_TOKENS = 4096


def _bad(message: str) -> errors.BadRequestError:
    return cv.bad_request(_NAME, message)


def _media(part: dict[str, Any], url: str) -> dict[str, Any]:
    inline = cv.data_url(url)
    if inline is None:
        raise _bad("Converse takes images and documents inline only: pass a base64 data: URL, not a link")
    media, data = inline
    if media in _IMAGE_FORMATS:
        return {"image": {"format": _IMAGE_FORMATS[media], "source": {"bytes": data}}}
    if media in _DOC_FORMATS:
        name = (part.get("file") or {}).get("filename") or "document"
        # Converse allows letters, digits, spaces, hyphens, parentheses and brackets in names.
        name = "".join(c if c.isalnum() or c in " -()[]" else "-" for c in Path(name).stem) or "document"
        return {"document": {"format": _DOC_FORMATS[media], "name": name, "source": {"bytes": data}}}
    raise _bad(f"unsupported media type {media!r} for Converse")


def _blocks(content: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in cv.parts(content):
        kind = part.get("type")
        if kind in ("text", "input_text"):
            if not part.get("text"):
                continue  # Converse rejects blank text blocks
            out.append({"text": part["text"]})
        else:
            url = cv.media_url(part)
            if url is not None:
                out.append(_media(part, url))
            elif kind in (None, "image_url", "file", "input_image"):
                continue  # a part of a known kind without its data
            else:
                out.append({k: v for k, v in part.items() if k != "cache_control"})  # a native block
        if part.get("cache_control"):
            out.append(dict(_CACHE_POINT))
    return out


def _reasoning_blocks(msg: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for b in msg.get("thinking_blocks") or ():
        if b.get("type") == "redacted_thinking":
            out.append({"reasoningContent": {"redactedContent": b.get("data")}})
        elif b.get("type") == "thinking":
            out.append({"reasoningContent": {"reasoningText": cv.drop_none(
                {"text": b.get("thinking"), "signature": b.get("signature")})}})
    if not out and msg.get("reasoning_content") and msg.get("reasoning_signature"):
        out.append({"reasoningContent": {"reasoningText": {"text": msg["reasoning_content"],
                                                           "signature": msg["reasoning_signature"]}}})
    return out


def _tool_result(msg: dict[str, Any]) -> dict[str, Any]:
    content = msg.get("content")
    if isinstance(content, str) or content is None:
        value = cv.json_or_text(content or "")
        inner = [{"json": value} if isinstance(value, dict) else {"text": content or "(empty)"}]
    else:
        inner = [b for b in _blocks(content) if "cachePoint" not in b] or [{"text": "(empty)"}]
    return {"toolResult": {"toolUseId": msg.get("tool_call_id"), "content": inner}}


def _turn_blocks(msg: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    role = msg.get("role")
    if role == "assistant":
        blocks = _reasoning_blocks(msg) + _blocks(msg.get("content"))
        for tc in msg.get("tool_calls") or ():
            fn = tc.get("function") or {}
            blocks.append({"toolUse": {"toolUseId": tc.get("id"), "name": fn.get("name"),
                                       "input": cv.arguments(_NAME, tc)}})
        return "assistant", blocks
    if role in ("tool", "function"):
        return "user", [_tool_result(msg)]
    return "user", _blocks(msg.get("content"))


def convert_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI messages (without system ones) → Converse turns, same-role turns merged."""
    return cv.alternating_turns(messages, _turn_blocks)


def _tool_config(params: dict[str, Any], turns: list[dict[str, Any]]) -> dict[str, Any] | None:
    choice = cv.tool_choice(params.get("tool_choice"))
    specs: list[dict[str, Any]] = []
    if not choice or choice[0] != "none":
        for fn, tool in cv.function_tools(params.get("tools")):
            if fn is None:
                specs.append(tool)  # a native Converse tool entry (toolSpec, systemTool, …)
                continue
            spec: dict[str, Any] = {"name": fn.get("name"),
                                    "inputSchema": {"json": fn.get("parameters") or {"type": "object", "properties": {}}}}
            if fn.get("description"):
                spec["description"] = fn["description"]
            specs.append({"toolSpec": spec})
            if tool.get("cache_control"):
                specs.append(dict(_CACHE_POINT))
    if not specs:
        used = sorted({b["toolUse"]["name"] for t in turns for b in t["content"] if "toolUse" in b})
        if not used and not any("toolResult" in b for t in turns for b in t["content"]):
            return None
        # Declared only so the history is accepted; the model is not asked to call them.
        specs = [{"toolSpec": {"name": n, "inputSchema": {"json": {"type": "object", "properties": {}}}}}
                 for n in used]
        return {"tools": specs} if specs else None
    config: dict[str, Any] = {"tools": specs}
    if choice and choice[0] == "required":
        config["toolChoice"] = {"any": {}}
    elif choice and choice[0] == "function":
        config["toolChoice"] = {"tool": {"name": choice[1]}}
    elif choice:
        config["toolChoice"] = {"auto": {}}
    return config


def _is_claude(model: str) -> bool:
    return "anthropic." in model or "claude" in model


def _model_fields(model: str, params: dict[str, Any], limit: int | None) -> tuple[dict[str, Any], int | None]:
    """(additionalModelRequestFields, maxTokens): top_k, and Claude's thinking (which needs a
    max_tokens above its budget, as on Anthropic's own API)."""
    fields: dict[str, Any] = dict(params.get("additional_model_request_fields") or {})
    if params.get("top_k") is not None:
        fields["top_k"] = params["top_k"]
    thinking = cv.claude_thinking(params, limit) if _is_claude(model) else None
    if thinking is not None:
        fields["thinking"] = thinking
        if limit is None and cv.thinking_tokens(thinking):
            limit = DEFAULT_THINKING_MAX_TOKENS + cv.thinking_tokens(thinking)
    return fields, limit


def build_body(req: ChatRequest) -> dict[str, Any]:
    p = req.params
    system_msgs, rest = cv.split_system(req.messages)
    turns = convert_messages(rest)
    body: dict[str, Any] = {"messages": turns}
    system = [b for m in system_msgs for b in _blocks(m.get("content"))]
    fmt = cv.response_format(p)
    if fmt:
        system.append({"text": cv.json_instruction(fmt)})
    if system:
        body["system"] = system
    fields, limit = _model_fields(req.model, p, cv.max_tokens(p))
    inference = cv.drop_none({"maxTokens": limit, "temperature": p.get("temperature"), "topP": p.get("top_p"),
                              "stopSequences": cv.stop_list(p.get("stop"))})
    if inference:
        body["inferenceConfig"] = inference
    tools = _tool_config(p, turns)
    if tools:
        body["toolConfig"] = tools
    if fields:
        body["additionalModelRequestFields"] = fields
    for ours, theirs in (("guardrail_config", "guardrailConfig"), ("performance_config", "performanceConfig"),
                         ("request_metadata", "requestMetadata")):
        if p.get(ours) is not None:
            body[theirs] = p[ours]
    return cv.extra_body(body, p)


# ------------------------------------------------------------------ credentials


def _profile(params: Mapping[str, Any], *, config: bool) -> dict[str, str]:
    """The profile's section of `~/.aws/credentials`, or with `config` of `~/.aws/config` (where
    a profile other than the default is `[profile NAME]`); the files' locations as AWS's tools
    read them."""
    env, filename = ("AWS_CONFIG_FILE", "config") if config else ("AWS_SHARED_CREDENTIALS_FILE", "credentials")
    parser = configparser.ConfigParser()
    try:
        parser.read(os.environ.get(env) or Path.home() / ".aws" / filename)
    except (OSError, configparser.Error):
        return {}
    name = params.get("aws_profile_name") or os.environ.get("AWS_PROFILE") or "default"
    section = f"profile {name}" if config and name != "default" else name
    return dict(parser[section]) if parser.has_section(section) else {}


def credentials(params: Mapping[str, Any]) -> Credentials | None:
    """Keys from the arguments, else the environment, else the profile, each source whole (a
    session token belongs to the keys it came with)."""
    names = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
    env = {n: os.environ.get(n.upper()) for n in names}
    for source in (params, env, _profile(params, config=False)):
        key_id, secret, token = (source.get(n) for n in names)
        if key_id and secret:
            return Credentials(str(key_id), str(secret), str(token) if token else None)
    return None


def region(params: Mapping[str, Any]) -> str | None:
    return (params.get("aws_region_name") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            or _profile(params, config=True).get("region"))


class BedrockProvider(Provider):
    name: ClassVar[str] = _NAME
    dialect: ClassVar[str] = "bedrock_converse"
    env_api_key: ClassVar[tuple[str, ...]] = ("AWS_BEARER_TOKEN_BEDROCK",)
    env_api_base: ClassVar[tuple[str, ...]] = ("BEDROCK_RUNTIME_ENDPOINT", "AWS_BEDROCK_RUNTIME_ENDPOINT")
    # The endpoint depends on the region, known only with the request's arguments.
    default_api_base: ClassVar[str] = "https://bedrock-runtime.{region}.amazonaws.com"

    can_fake_stream: ClassVar[bool] = True

    def check_key(self, model: str) -> None:
        """Credentials may come with the request's arguments: `build_request` checks them."""

    def build_request(self, req: ChatRequest, *, stream: bool) -> HTTPRequest:
        params = req.params
        where = region(params)
        if "{region}" in self.api_base and not where:
            raise _bad("no AWS region: pass aws_region_name= or set AWS_REGION")
        base = self.api_base.replace("{region}", where or "")
        url = f"{base}/model/{quote(req.model, safe='')}/{'converse-stream' if stream else 'converse'}"
        body = json.dumps(build_body(req), ensure_ascii=False, separators=(",", ":")).encode()
        headers = self.headers({"accept": "application/vnd.amazon.eventstream" if stream else "application/json"})
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
            return HTTPRequest("POST", url, headers, content=body)
        creds = credentials(params)
        if creds is None:
            raise errors.AuthenticationError(
                "bedrock: no AWS credentials; pass aws_access_key_id= and aws_secret_access_key= (or api_key= "
                "with a Bedrock API key), or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_BEARER_TOKEN_BEDROCK",
                provider=_NAME, model=req.model)
        signing_region = where or _region_of(base) or "us-east-1"
        signed = sign(creds, method="POST", url=url, headers=headers, body=body, region=signing_region,
                      service="bedrock")
        return HTTPRequest("POST", url, signed, content=body)

    def replay_as_stream(self, body: bytes) -> tuple[bytes, str]:
        return from_converse(json.loads(body)), self.dialect

    def map_error(self, model: str, status: int, headers: Mapping[str, str], body: bytes) -> errors.APIStatusError:
        # AWS names the error in a header: "ThrottlingException:http://internal.amazon.com/…".
        kind = (headers.get("x-amzn-errortype") or "").split(":", 1)[0] or None
        # AWS answers bad or expired credentials with 403.
        bad_key = status == 403 and (kind in _BAD_CREDENTIALS or _BAD_CREDENTIALS_TEXT in body)
        exc = status_error(self.name, model, status, headers, body, errors.AuthenticationError if bad_key else None)
        if kind and exc.type is None:
            exc.type = kind
        return exc


def _region_of(base: str) -> str | None:
    """The region in a Bedrock endpoint's host name (`bedrock-runtime.eu-west-1.amazonaws.com`)."""
    host = base.split("://", 1)[-1].split("/", 1)[0]
    labels = host.split(".")
    return labels[1] if len(labels) > 3 and labels[0].startswith("bedrock") else None


PROVIDER = BedrockProvider
