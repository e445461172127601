"""Fixtures and client adapters for `client_bench.py` (kept apart so each file stays short).

Each factory returns (sync_stream, async_stream): callables taking the api_base and a `mark()`
to call at the first chunk, returning the accumulated text (the floor: the byte count).
sync_stream is None where a client has no sync API. Every client does the same work: iterate all
chunks and read `choices[0].delta.content`.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any, Callable

MESSAGES = [{"role": "user", "content": "Write a long story."}]

# --------------------------------------------------------------------------------------------
# Fixtures: realistic OpenAI chat.completion.chunk streams
# --------------------------------------------------------------------------------------------

_WORDS = ("the of and to in is that it for as with was on be by this are or from at an which but not have "
          "has can will if more when all there so about one would stream decoder token model response "
          "function value request server event chunk latency buffer parser python rust result").split()
_EXOTIC = ["\n", "\n\n", '"', "\\", "é", "ü", "—", "…", "’", "“", "”", "中文", "日本語", "🙂", "🚀", "→", "```", "**"]


def make_fixture(n: int, seed: int = 7) -> tuple[bytes, str]:
    """An SSE body of exactly `n` chat.completion.chunk events (role chunk, n-3 content deltas, a
    finish chunk, a usage chunk with empty choices) then `data: [DONE]`; and the expected text."""
    rng = random.Random(seed)
    head = {"id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion.chunk",
            "created": 1741569952, "model": "gpt-4o-2024-08-06", "service_tier": "default",
            "system_fingerprint": "fp_f9f4fb6dbf"}
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    events: list[bytes] = []

    def event(choices: list[Any], usage: Any = None, **extra: Any) -> None:
        events.append(b"data: " + dumps({**head, "choices": choices, "usage": usage, **extra}).encode() + b"\n\n")

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[Any]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    event(choice({"role": "assistant", "content": "", "refusal": None}), obfuscation="yQ2Nk")
    text = []
    for _ in range(n - 3):
        r = rng.random()
        piece = (" " + rng.choice(_WORDS)) if r < 0.8 else rng.choice(".,;:!?") if r < 0.9 else rng.choice(_EXOTIC)
        text.append(piece)
        event(choice({"content": piece}), obfuscation="".join(rng.choice("abcdefXYZ0123") for _ in range(rng.randint(2, 9))))
    event(choice({}, "stop"), obfuscation="Kd")
    event([], {"prompt_tokens": 14, "completion_tokens": n - 3, "total_tokens": n + 11,
               "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                             "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
          obfuscation="o2")
    events.append(b"data: [DONE]\n\n")
    return b"".join(events), "".join(text)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Clients (run inside the worker subprocess). Each factory returns (sync_stream, async_stream):
# callables taking the api_base and returning the accumulated text (floor: the byte count),
# calling `mark()` at the first chunk. sync_stream is None where a client has no sync API.
# --------------------------------------------------------------------------------------------

def _polystream() -> tuple[Callable[..., Any] | None, Callable[..., Any]]:
    import polystream

    def sync(base: str, mark: Callable[[], None]) -> str:
        out: list[str] = []
        first = True
        for chunk in polystream.completion(model="gpt-4o", messages=MESSAGES, stream=True, api_base=base, api_key="x"):
            if first:
                mark()
                first = False
            choices = chunk.choices
            if choices:
                c = choices[0].delta.content
                if c:
                    out.append(c)
        return "".join(out)

    async def asyn(base: str, mark: Callable[[], None]) -> str:
        out: list[str] = []
        first = True
        stream = await polystream.acompletion(model="gpt-4o", messages=MESSAGES, stream=True, api_base=base, api_key="x")
        async for chunk in stream:
            if first:
                mark()
                first = False
            choices = chunk.choices
            if choices:
                c = choices[0].delta.content
                if c:
                    out.append(c)
        return "".join(out)

    return sync, asyn


def _openai() -> tuple[Callable[..., Any] | None, Callable[..., Any]]:
    import openai

    clients: dict[Any, Any] = {}

    def sync(base: str, mark: Callable[[], None]) -> str:
        client = clients.get(("sync", base)) or clients.setdefault(("sync", base), openai.OpenAI(base_url=base, api_key="x", max_retries=0))
        out: list[str] = []
        first = True
        for chunk in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            if first:
                mark()
                first = False
            choices = chunk.choices
            if choices:
                c = choices[0].delta.content
                if c:
                    out.append(c)
        return "".join(out)

    async def asyn(base: str, mark: Callable[[], None]) -> str:
        client = clients.get(("async", base)) or clients.setdefault(("async", base), openai.AsyncOpenAI(base_url=base, api_key="x", max_retries=0))
        out: list[str] = []
        first = True
        async for chunk in await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            if first:
                mark()
                first = False
            choices = chunk.choices
            if choices:
                c = choices[0].delta.content
                if c:
                    out.append(c)
        return "".join(out)

    return sync, asyn


def _litellm() -> tuple[Callable[..., Any] | None, Callable[..., Any]]:
    import litellm

    def sync(base: str, mark: Callable[[], None], keep: list[Any] | None = None) -> str:
        out: list[str] = []
        first = True
        for chunk in litellm.completion(model="openai/gpt-4o", messages=MESSAGES, api_base=base, api_key="x", stream=True):
            if first:
                mark()
                first = False
            if keep is not None:
                keep.append(chunk)
            choices = chunk.choices
            if choices:
                c = choices[0].delta.content
                if c:
                    out.append(c)
        return "".join(out)

    async def asyn(base: str, mark: Callable[[], None]) -> str:
        out: list[str] = []
        first = True
        stream = await litellm.acompletion(model="openai/gpt-4o", messages=MESSAGES, api_base=base, api_key="x", stream=True)
        async for chunk in stream:
            if first:
                mark()
                first = False
            choices = chunk.choices
            if choices:
                c = choices[0].delta.content
                if c:
                    out.append(c)
        return "".join(out)

    return sync, asyn


def _liter_llm() -> tuple[Callable[..., Any] | None, Callable[..., Any]]:
    import liter_llm
    from liter_llm._internal_bindings import ChatCompletionRequest, Message

    clients: dict[str, Any] = {}

    async def asyn(base: str, mark: Callable[[], None]) -> str:
        client = clients.get(base) or clients.setdefault(base, liter_llm.create_client(api_key="x", base_url=base))
        req = ChatCompletionRequest(model="openai/gpt-4o", messages=[Message(m) for m in MESSAGES], stream=True)
        out: list[str] = []
        first = True
        async for chunk in client.chat_stream(req):
            if first:
                mark()
                first = False
            choices = chunk.choices
            if choices:
                c = choices[0].delta.content
                if c:
                    out.append(c)
        return "".join(out)

    return None, asyn


def _raw_httpx(sse: bool) -> tuple[Callable[..., Any] | None, Callable[..., Any]]:
    import httpx

    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    headers = {"authorization": "Bearer x"}
    clients: dict[str, Any] = {}

    def sync_client() -> httpx.Client:
        return clients.get("sync") or clients.setdefault("sync", httpx.Client(timeout=None))

    def async_client() -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        return clients.get("async") or clients.setdefault("async", httpx.AsyncClient(timeout=None, limits=limits))

    if not sse:
        def floor(base: str, mark: Callable[[], None]) -> int:
            n = 0
            with sync_client().stream("POST", base + "/chat/completions", json=body, headers=headers) as r:
                for b in r.iter_bytes():
                    if not n:
                        mark()
                    n += len(b)
            return n

        async def afloor(base: str, mark: Callable[[], None]) -> int:
            n = 0
            async with async_client().stream("POST", base + "/chat/completions", json=body, headers=headers) as r:
                async for b in r.aiter_bytes():
                    if not n:
                        mark()
                    n += len(b)
            return n

        return floor, afloor

    import orjson
    from httpx_sse import aconnect_sse, connect_sse

    def sync(base: str, mark: Callable[[], None]) -> str:
        out: list[str] = []
        first = True
        with connect_sse(sync_client(), "POST", base + "/chat/completions", json=body, headers=headers) as es:
            for ev in es.iter_sse():
                if ev.data == "[DONE]":
                    break
                if first:
                    mark()
                    first = False
                choices = orjson.loads(ev.data)["choices"]
                if choices:
                    c = choices[0]["delta"].get("content")
                    if c:
                        out.append(c)
        return "".join(out)

    async def asyn(base: str, mark: Callable[[], None]) -> str:
        out: list[str] = []
        first = True
        async with aconnect_sse(async_client(), "POST", base + "/chat/completions", json=body, headers=headers) as es:
            async for ev in es.aiter_sse():
                if ev.data == "[DONE]":
                    break
                if first:
                    mark()
                    first = False
                choices = orjson.loads(ev.data)["choices"]
                if choices:
                    c = choices[0]["delta"].get("content")
                    if c:
                        out.append(c)
        return "".join(out)

    return sync, asyn


FACTORIES: dict[str, Callable[[], tuple[Callable[..., Any] | None, Callable[..., Any]]]] = {
    "polystream": _polystream, "openai": _openai, "litellm": _litellm, "liter-llm": _liter_llm,
    "httpx-sse": lambda: _raw_httpx(True), "floor": lambda: _raw_httpx(False),
}

