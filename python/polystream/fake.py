"""Streams made without a streaming provider call: `mock_response=` (offline, for tests and demos)
and fake streaming (one non-streaming call, replayed as chunks). Both produce the SSE body a
streaming call would have (OpenAI chat, or the Responses API's events for `openai_responses`) and
it goes through the same decoder as a real stream, so callers see real chunk objects."""

from __future__ import annotations

import json
import re
import time
from typing import Any

_WORD = re.compile(r"\S+\s*|\s+")


def _sse(events: list[dict[str, Any]]) -> bytes:
    out = [b"data: " + json.dumps(e, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n" for e in events]
    return b"".join(out) + b"data: [DONE]\n\n"


def mock_body(mock: Any, model: str) -> bytes:
    """A realistic stream for `mock_response`: a string (streamed word by word) or a dict in the
    shape of an OpenAI message (`content`, `tool_calls`, `reasoning_content`)."""
    message = {"content": mock} if isinstance(mock, str) else dict(mock)
    base = {"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    events = [chunk({"role": "assistant", "content": ""})]
    for piece in _WORD.findall(message.get("reasoning_content") or ""):
        events.append(chunk({"reasoning_content": piece}))
    text = message.get("content") or ""
    for piece in _WORD.findall(text):
        events.append(chunk({"content": piece}))
    tool_calls = message.get("tool_calls") or []
    for i, tc in enumerate(tool_calls):
        fn = tc.get("function", {})
        args = fn.get("arguments", "")
        if not isinstance(args, str):
            args = json.dumps(args)
        events.append(chunk({"tool_calls": [{"index": i, "id": tc.get("id") or f"call_mock_{i}", "type": "function",
                                             "function": {"name": fn.get("name", ""), "arguments": ""}}]}))
        for j in range(0, len(args), 16):
            events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": args[j : j + 16]}}]}))
    events.append(chunk({}, "tool_calls" if tool_calls else "stop"))
    completion_tokens = max(1, len(_WORD.findall(text)))
    events.append({**base, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": completion_tokens,
                                                    "total_tokens": 10 + completion_tokens}})
    return _sse(events)


def chunks_from_completion_body(body: bytes) -> bytes:
    """An OpenAI `chat.completion` JSON body as the SSE stream that would have carried it."""
    done = json.loads(body)
    base = {k: done.get(k) for k in ("id", "created", "model", "system_fingerprint") if done.get(k) is not None}
    base["object"] = "chat.completion.chunk"
    events = []
    for choice in done.get("choices", []):
        msg = dict(choice.get("message") or {})
        delta: dict[str, Any] = {"role": msg.get("role", "assistant")}
        for key in ("content", "reasoning_content", "refusal"):
            if msg.get(key) is not None:
                delta[key] = msg[key]
        if msg.get("tool_calls"):
            delta["tool_calls"] = [{"index": i, **tc} for i, tc in enumerate(msg["tool_calls"])]
        events.append({**base, "choices": [{"index": choice.get("index", 0), "delta": delta, "logprobs": choice.get("logprobs"),
                                            "finish_reason": choice.get("finish_reason")}]})
    if done.get("usage"):
        events.append({**base, "choices": [], "usage": done["usage"]})
    return _sse(events)


def events_from_response_body(body: bytes) -> bytes:
    """An OpenAI Responses `response` JSON body as the event stream that would have carried it:
    `response.created`, one delta per text, refusal, summary and reasoning-text part (and the text's
    annotations), each function call whole, then the terminal event (`response.completed` / `.incomplete` / `.failed`) with the
    response itself, usage included."""
    r = json.loads(body)
    events: list[dict[str, Any]] = [{"type": "response.created",
                                     "response": {**r, "status": "in_progress", "output": [], "usage": None}}]
    for i, item in enumerate(r.get("output") or []):
        at = {"item_id": item.get("id"), "output_index": i}
        kind = item.get("type")
        if kind == "message":
            for j, part in enumerate(item.get("content") or []):
                if part.get("type") == "output_text":
                    events.append({"type": "response.output_text.delta", **at, "content_index": j,
                                   "delta": part.get("text") or "", "logprobs": part.get("logprobs") or []})
                    events += [{"type": "response.output_text.annotation.added", **at, "content_index": j,
                                "annotation_index": k, "annotation": a}
                               for k, a in enumerate(part.get("annotations") or [])]
                elif part.get("type") == "refusal":
                    events.append({"type": "response.refusal.delta", **at, "content_index": j,
                                   "delta": part.get("refusal") or ""})
        elif kind == "reasoning":
            for j, part in enumerate(item.get("summary") or []):
                events.append({"type": "response.reasoning_summary_text.delta", **at, "summary_index": j,
                               "delta": part.get("text") or ""})
            for j, part in enumerate(item.get("content") or []):
                events.append({"type": "response.reasoning_text.delta", **at, "content_index": j,
                               "delta": part.get("text") or ""})
        elif kind == "function_call":
            events.append({"type": "response.output_item.added", "output_index": i, "item": item})
    end = {"incomplete": "response.incomplete", "failed": "response.failed"}.get(r.get("status"), "response.completed")
    events.append({"type": end, "response": r})
    out = [f"event: {e['type']}\ndata: ".encode() + json.dumps({**e, "sequence_number": n}, ensure_ascii=False,
                                                                separators=(",", ":")).encode() + b"\n\n"
           for n, e in enumerate(events)]
    return b"".join(out)
