"""A Responses request body → a chat-completions call (messages + parameters).

    input (string, or message / function_call / function_call_output items) + instructions
                                          → messages
    tools (function tools)                → tools;  tool_choice → tool_choice
    max_output_tokens → max_tokens;  reasoning.effort → reasoning_effort;  text.format → response_format
    temperature, top_p, parallel_tool_calls, user → as they are
    include ∋ "message.output_text.logprobs" → logprobs (and top_logprobs with it: alone, OpenAI
    returns no logprobs, so nothing is asked of the provider)

What a chat provider cannot do (built-in tools, previous_response_id, item references) raises
ValueError, which the HTTP layer answers with a 400 before anything is stored.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["to_chat"]

_PASS = ("temperature", "top_p", "parallel_tool_calls", "user", "presence_penalty", "frequency_penalty")
_LOGPROBS = "message.output_text.logprobs"


def to_chat(body: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(messages, acompletion keyword arguments) for a `POST /v1/responses` body."""
    if body.get("previous_response_id"):
        raise ValueError("`previous_response_id` is not supported; send the conversation in `input`.")
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions:
        if not isinstance(instructions, str):
            raise ValueError("`instructions` must be a string.")
        messages.append({"role": "system", "content": instructions})
    messages += _messages(body.get("input"))
    params: dict[str, Any] = {k: body[k] for k in _PASS if body.get(k) is not None}
    include = body.get("include")
    if isinstance(include, list) and _LOGPROBS in include:
        params["logprobs"] = True
        if body.get("top_logprobs"):
            params["top_logprobs"] = body["top_logprobs"]
    if body.get("max_output_tokens") is not None:
        params["max_tokens"] = body["max_output_tokens"]
    effort = (body.get("reasoning") or {}).get("effort") if isinstance(body.get("reasoning"), dict) else None
    if effort:
        params["reasoning_effort"] = effort
    if body.get("tools"):
        params["tools"] = [_tool(t) for t in body["tools"]]
    if body.get("tool_choice") is not None:
        params["tool_choice"] = _tool_choice(body["tool_choice"])
    fmt = _response_format((body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None)
    if fmt is not None:
        params["response_format"] = fmt
    return messages, params


def _messages(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise ValueError("`input` must be a string or a list of input items.")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ValueError(f"input[{i}] must be an object.")
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            out.append(_message(item, i))
        elif kind == "function_call":
            call = {
                "id": _str(item, "call_id", i),
                "type": "function",
                "function": {"name": _str(item, "name", i), "arguments": item.get("arguments") or ""},
            }
            last = out[-1] if out else None
            # Calls of one turn (and the text before them) make one assistant message.
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            content = output if isinstance(output, str) else _text_of(output, i)
            out.append({"role": "tool", "tool_call_id": _str(item, "call_id", i), "content": content})
        elif kind == "reasoning":
            continue  # a chat provider cannot take reasoning items back
        else:
            raise ValueError(f"input[{i}]: items of type {kind!r} are not supported.")
    return out


def _message(item: dict[str, Any], i: int) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise ValueError(f"input[{i}].role must be user, assistant, system or developer.")
    role = "system" if role == "developer" else role
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise ValueError(f"input[{i}].content must be a string or a list of content parts.")
    parts = [_part(p, i) for p in content]
    if role != "user" or all(p["type"] == "text" for p in parts):
        return {"role": role, "content": "".join(p.get("text", "") for p in parts)}
    return {"role": role, "content": parts}


def _part(p: Any, i: int) -> dict[str, Any]:
    if not isinstance(p, dict):
        raise ValueError(f"input[{i}].content parts must be objects.")
    kind = p.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": str(p.get("text") or "")}
    if kind == "refusal":
        return {"type": "text", "text": str(p.get("refusal") or "")}
    if kind == "input_image":
        url = p.get("image_url")
        if not url:
            raise ValueError(f"input[{i}]: input_image needs image_url (file ids are not supported).")
        image: dict[str, Any] = {"url": url}
        if p.get("detail"):
            image["detail"] = p["detail"]
        return {"type": "image_url", "image_url": image}
    raise ValueError(f"input[{i}]: content parts of type {kind!r} are not supported.")


def _text_of(value: Any, i: int) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "".join(_part(p, i).get("text", "") for p in value)
    return json.dumps(value)


def _str(item: dict[str, Any], key: str, i: int) -> str:
    v = item.get(key)
    if not isinstance(v, str) or not v:
        raise ValueError(f"input[{i}].{key} must be a non-empty string.")
    return v


def _tool(t: Any) -> dict[str, Any]:
    if not isinstance(t, dict) or t.get("type") != "function":
        kind = t.get("type") if isinstance(t, dict) else t
        raise ValueError(f"Only function tools are supported, not {kind!r}.")
    if not isinstance(t.get("name"), str):
        raise ValueError("A function tool needs a name.")
    fn: dict[str, Any] = {"name": t["name"]}
    for key in ("description", "parameters", "strict"):
        if t.get(key) is not None:
            fn[key] = t[key]
    return {"type": "function", "function": fn}


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise ValueError("`tool_choice` must be auto, none, required or a function.")


def _response_format(fmt: Any) -> dict[str, Any] | None:
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    if fmt["type"] == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
        return {"type": "json_schema", "json_schema": schema}
    raise ValueError(f"text.format type {fmt['type']!r} is not supported.")
