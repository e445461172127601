"""A built-in OpenAI-format stream for the offline demo: realistic framing, multi-byte text,
usage in the last chunk. Generated here rather than recorded, so it carries no one's data."""

from __future__ import annotations

import json

_TEXT = (
    "Streaming, decoded in Rust: every byte split, CR/LF/CRLF, comments and ids handled per the "
    "WHATWG spec. Multi-byte text survives any split — 東京, naïve café, 🚀 — and the usage "
    "arrives in the final chunk."
)


def openai_sample(model: str = "gpt-4o-mini") -> bytes:
    """The sample answer as an OpenAI Chat Completions SSE body, one event per word."""
    base = {"id": "chatcmpl-demo", "object": "chat.completion.chunk", "created": 1767225600, "model": model}
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    words = _TEXT.split(" ")
    for i, w in enumerate(words):
        piece = w if i == 0 else " " + w
        events.append({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    usage = {"prompt_tokens": 12, "completion_tokens": len(words), "total_tokens": 12 + len(words)}
    events.append({**base, "choices": [], "usage": usage})
    body = b": keep-alive\n\n" + b"".join(
        b"data: " + json.dumps(e, ensure_ascii=False).encode() + b"\n\n" for e in events
    )
    return body + b"data: [DONE]\n\n"
