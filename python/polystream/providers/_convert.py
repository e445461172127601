"""Helpers the native providers share to read OpenAI-style chat requests.

Every function reads the OpenAI shape (messages, content parts, tools, tool_choice, …) and returns
plain values; each provider module then writes its own wire format from them.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable, Iterator
from typing import Any

from .. import errors

#: reasoning_effort → thinking budget in tokens (Anthropic's minimum budget is 1024).
EFFORT_BUDGET = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096}
#: reasoning_effort values that turn thinking off.
EFFORT_OFF = frozenset({"none", "disable", "disabled", "off"})

SYSTEM_ROLES = frozenset({"system", "developer"})


def bad_request(provider: str, message: str) -> errors.BadRequestError:
    return errors.BadRequestError(f"{provider}: {message}", provider=provider)


def parts(content: Any) -> list[dict[str, Any]]:
    """A message's content as a list of OpenAI content parts (a string is one text part)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, dict):
        return [content]
    return [p if isinstance(p, dict) else {"type": "text", "text": str(p)} for p in content]


def text_of(content: Any, sep: str = "") -> str:
    """The text of a message's content (text parts joined by `sep`; other parts ignored)."""
    if isinstance(content, str):
        return content
    return sep.join(p.get("text") or "" for p in parts(content) if p.get("type") in ("text", "input_text"))


def image_url(part: dict[str, Any]) -> str | None:
    """The URL of an `image_url` part (`{"image_url": {"url": …}}` or `{"image_url": "…"}`)."""
    if part.get("type") not in ("image_url", "input_image"):
        return None
    v = part.get("image_url")
    if isinstance(v, dict):
        v = v.get("url")
    return v if isinstance(v, str) else None


def media_url(part: dict[str, Any]) -> str | None:
    """The URL of an image part, or the data URL of a `file` part (`{"file": {"file_data"}}`)."""
    url = image_url(part)
    if url is None and part.get("type") == "file":
        url = (part.get("file") or {}).get("file_data")
    return url


def data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a `data:<type>;base64,<data>` URL, else None."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    return head[: -len(";base64")] or "application/octet-stream", data


def guess_media_type(url: str, default: str = "image/jpeg") -> str:
    return mimetypes.guess_type(url.split("?", 1)[0])[0] or default


def split_system(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system/developer messages, the others), each in order."""
    system = [m for m in messages if m.get("role") in SYSTEM_ROLES]
    rest = [m for m in messages if m.get("role") not in SYSTEM_ROLES]
    return system, rest


def alternating_turns(
    messages: list[dict[str, Any]], blocks_of: Callable[[dict[str, Any]], tuple[str, list[dict[str, Any]]]],
    key: str = "content",
) -> list[dict[str, Any]]:
    """Messages (without system ones) as `{"role", key: [blocks]}` turns, for APIs whose turns
    alternate strictly (Anthropic, Bedrock, Gemini): `blocks_of` gives a message's (role, blocks);
    consecutive turns of one role are merged (tool results join the user turn), empty ones dropped."""
    turns: list[dict[str, Any]] = []
    for msg in messages:
        role, blocks = blocks_of(msg)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1][key] += blocks
        else:
            turns.append({"role": role, key: blocks})
    return turns


def tool_call_names(messages: list[dict[str, Any]]) -> dict[str, str]:
    """tool_call_id → function name, from the assistant messages' `tool_calls`."""
    names: dict[str, str] = {}
    for m in messages:
        for tc in m.get("tool_calls") or ():
            fn = tc.get("function") or {}
            if tc.get("id") and fn.get("name"):
                names[tc["id"]] = fn["name"]
    return names


def tool_name(provider: str, msg: dict[str, Any], names: dict[str, str]) -> str:
    """The function name a `role: "tool"` message answers (from its call id, or its `name`)."""
    name = names.get(msg.get("tool_call_id") or "") or msg.get("name")
    if not name:
        raise bad_request(provider, f"tool message {msg.get('tool_call_id')!r} answers no earlier assistant tool call")
    return str(name)


def arguments(provider: str, tool_call: dict[str, Any]) -> Any:
    """A tool call's `arguments` JSON string, parsed (empty → {})."""
    raw = (tool_call.get("function") or {}).get("arguments")
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        name = (tool_call.get("function") or {}).get("name")
        raise bad_request(provider, f"tool call {name!r} has arguments that are not JSON: {raw[:80]!r}") from None


def json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def function_tools(tools: list[dict[str, Any]] | None) -> Iterator[tuple[dict[str, Any] | None, dict[str, Any]]]:
    """(function definition, tool) for each tool: OpenAI function tools give their `function`;
    anything else (a provider-native tool) gives None and passes through as it is."""
    for t in tools or ():
        if t.get("type") == "function" and isinstance(t.get("function"), dict):
            yield t["function"], t
        else:
            yield None, t


def tool_choice(choice: Any) -> tuple[str, str | None] | None:
    """("auto"|"none"|"required"|"function", function name) from an OpenAI `tool_choice`."""
    if choice is None:
        return None
    if isinstance(choice, str):
        kind = {"any": "required"}.get(choice, choice)
        return (kind, None) if kind in ("auto", "none", "required") else None
    if isinstance(choice, dict):
        fn = choice.get("function") or {}
        name = fn.get("name") if isinstance(fn, dict) else None
        name = name or choice.get("name")
        if name:
            return "function", str(name)
        if choice.get("type") in ("auto", "none", "required", "any"):
            return tool_choice(choice["type"])
    return None


def stop_list(stop: Any) -> list[str] | None:
    if stop is None:
        return None
    return [stop] if isinstance(stop, str) else [str(s) for s in stop]


def max_tokens(params: dict[str, Any]) -> int | None:
    v = params.get("max_completion_tokens", params.get("max_tokens"))
    return int(v) if v is not None else None


def logprobs(params: dict[str, Any]) -> tuple[bool, int | None]:
    """(token logprobs wanted, alternatives per token) from `logprobs` / `top_logprobs`: as with
    OpenAI, `top_logprobs` counts only with `logprobs`; 0 or absent asks for no alternatives."""
    if not params.get("logprobs"):
        return False, None
    top = params.get("top_logprobs")
    return True, int(top) if top else None


def response_format(params: dict[str, Any]) -> tuple[str, dict[str, Any] | None] | None:
    """("json_object", None) or ("json_schema", schema) from `response_format`; None for text."""
    rf = params.get("response_format")
    if not isinstance(rf, dict):
        return None
    kind = rf.get("type")
    if kind == "json_object":
        return "json_object", rf.get("schema") or rf.get("json_schema")
    if kind == "json_schema":
        js = rf.get("json_schema") or {}
        return "json_schema", js.get("schema") if isinstance(js, dict) else None
    return None


def json_instruction(fmt: tuple[str, dict[str, Any] | None]) -> str:
    """The system-prompt instruction standing in for JSON mode where an API has none."""
    text = "Respond with a single valid JSON value only: no prose, no Markdown code fences."
    if fmt[1]:
        text += " It must conform to this JSON schema:\n" + json.dumps(fmt[1], ensure_ascii=False)
    return text


def claude_thinking(params: dict[str, Any], limit: int | None) -> Any:
    """Claude's `thinking` field (Anthropic's API and Bedrock's): as given, else from the budget
    asked for (`thinking_budget`), kept under a given max_tokens, which like OpenAI's bounds
    thinking and answer together. None = no thinking field."""
    thinking = params.get("thinking")
    if thinking is not None:
        return thinking
    budget = thinking_budget(params)
    if budget and limit is not None and limit > 1024:
        budget = min(budget, limit - 1)
    return {"type": "enabled", "budget_tokens": budget} if budget else None


def thinking_tokens(thinking: Any) -> int:
    """The budget of a `thinking` field (0 when none): max_tokens must leave room above it."""
    return int(thinking.get("budget_tokens") or 0) if isinstance(thinking, dict) else 0


def thinking_budget(params: dict[str, Any]) -> int | None:
    """The thinking budget the caller asked for: from `thinking` ({"type": "enabled",
    "budget_tokens": N}), else `reasoning_effort` (EFFORT_BUDGET). 0 = thinking off; None = unset."""
    thinking = params.get("thinking")
    if isinstance(thinking, dict):
        if thinking.get("type") == "disabled":
            return 0
        budget = thinking.get("budget_tokens", thinking.get("token_budget"))
        if budget is not None:
            return int(budget)
        if thinking.get("type") == "enabled":
            return EFFORT_BUDGET["medium"]
    effort = params.get("reasoning_effort")
    if effort is None:
        return None
    effort = str(effort).lower()
    if effort in EFFORT_OFF:
        return 0
    return EFFORT_BUDGET.get(effort, EFFORT_BUDGET["medium"])


def extra_body(body: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Merge the caller's `extra_body` (provider-native fields) into `body`."""
    extra = params.get("extra_body")
    if isinstance(extra, dict):
        body.update(extra)
    return body


def drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}
