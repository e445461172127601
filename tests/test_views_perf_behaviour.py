"""Behaviour the fast paths of the chunk views and SSE events must keep.

Chunk views (choices, deltas, tool calls) are built once per chunk with their attributes as plain
Python objects, and event/view strings of ASCII text are made by a copy instead of the UTF-8
decoder. These tests pin what users see: every attribute equals the chunk's wire JSON, attributes
are read-only, objects outlive the chunk or decoder they came from, strings equal
`bytes.decode("utf-8", "replace")` whatever their length and content, and no reference is leaked
or released twice (checked through refcounts of the shared objects: None, cached strings).
"""

from __future__ import annotations

import copy
import gc
import json
import pickle
import sys

import pytest

import polystream
from polystream import ChatCompletionChunk, ChunkDecoder, ServerSentEvent, SSEDecoder


def sse(*chunks: dict) -> bytes:
    return b"".join(b"data: " + json.dumps(c, ensure_ascii=False).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


HEAD = {"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "m"}
STREAM = sse(
    {**HEAD, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None}, "finish_reason": None}]},
    {**HEAD, "choices": [{"index": 0, "delta": {"reasoning": "think é"}}]},
    {**HEAD, "choices": [{"index": 0, "delta": {"content": "x"}}, {"index": 1, "delta": {"content": "naïve 🙂 text"}}]},
    {**HEAD, "choices": [{"index": 0, "delta": {"content": " a longer ASCII delta of more than thirty-two bytes"}}]},
    {**HEAD, "choices": [{"index": 0, "delta": {"refusal": "no"}, "logprobs": {"content": [{"token": "a", "logprob": -1.0}]}}]},
    {**HEAD, "choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "call_a", "type": "function", "function": {"name": "f", "arguments": ""}},
        {"index": 1, "id": "call_b", "type": "function"},
    ]}}]},
    {**HEAD, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"a": 1}'}}]}}]},
    {**HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "end_turn"}]},
    {**HEAD, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}},
)

VIEW_TYPES = (polystream.ChunkChoice, polystream.ChoiceDelta, polystream.ChoiceDeltaToolCall,
              polystream.ChoiceDeltaToolCallFunction)
CHOICE_ATTRS = ("index", "finish_reason", "native_finish_reason")
DELTA_ATTRS = ("role", "content", "reasoning_content", "refusal")


def chunks() -> list[ChatCompletionChunk]:
    d = ChunkDecoder("openai_chat")
    return d.feed(STREAM) + d.finish()


def test_view_attributes_equal_the_wire_json() -> None:
    seen_tool_calls = 0
    for chunk in chunks():
        wire = json.loads(chunk.to_json())
        assert len(chunk.choices) == len(wire["choices"])
        for choice, w in zip(chunk.choices, wire["choices"]):
            for name in CHOICE_ATTRS:
                assert getattr(choice, name) == w.get(name), name
            assert (choice.logprobs is None) == (w.get("logprobs") is None)
            for name in DELTA_ATTRS:
                assert getattr(choice.delta, name) == w["delta"].get(name), name
            calls = choice.delta.tool_calls
            if "tool_calls" not in w["delta"]:
                assert calls is None
                continue
            assert isinstance(calls, list) and len(calls) == len(w["delta"]["tool_calls"])
            for tc, wt in zip(calls, w["delta"]["tool_calls"]):
                seen_tool_calls += 1
                assert (tc.index, tc.id, tc.type) == (wt["index"], wt.get("id"), wt.get("type"))
                assert tc.to_dict() == wt
                if "function" not in wt:
                    assert tc.function is None
                else:
                    f = tc.function
                    assert (f.name, f.arguments) == (wt["function"].get("name"), wt["function"].get("arguments"))
                    assert f.to_dict() == wt["function"]
            assert choice.delta.to_dict() == w["delta"]
            assert choice.to_dict() == w
    assert seen_tool_calls == 3


def test_specific_values() -> None:
    cs = chunks()
    assert cs[0].choices[0].delta.role == "assistant" and cs[0].choices[0].delta.content == ""
    assert cs[1].choices[0].delta.reasoning_content == "think é" and cs[1].choices[0].delta.content is None
    assert [c.delta.content for c in cs[2].choices] == ["x", "naïve 🙂 text"]
    assert [c.index for c in cs[2].choices] == [0, 1]
    assert cs[4].choices[0].delta.refusal == "no" and cs[4].choices[0].logprobs.content[0].token == "a"
    assert cs[7].choices[0].finish_reason == "stop" and cs[7].choices[0].native_finish_reason == "end_turn"
    assert cs[8].choices == [] and cs[8].usage.total_tokens == 3


def test_views_are_built_once_and_read_only() -> None:
    chunk = chunks()[5]
    choice = chunk.choices[0]
    assert chunk.choices is chunk.choices and chunk.choices[0] is choice
    assert choice.delta is choice.delta
    targets = [
        (choice, ("delta",) + CHOICE_ATTRS),
        (choice.delta, DELTA_ATTRS + ("tool_calls",)),
        (choice.delta.tool_calls[0], ("index", "id", "type", "function")),
        (choice.delta.tool_calls[0].function, ("name", "arguments")),
    ]
    for obj, names in targets:
        for name in names:
            with pytest.raises(AttributeError):
                setattr(obj, name, "x")
            with pytest.raises(AttributeError):
                delattr(obj, name)
    assert choice.delta.tool_calls[0].id == "call_a"


def test_views_are_made_only_from_chunks() -> None:
    """View types cannot be instantiated, subclassed or changed from Python: a view is always
    made over a decoded chunk."""
    for t in VIEW_TYPES:
        assert t.__module__ == "polystream._core"
        _assert_sealed(t, chunks()[0])


def _assert_sealed(t: type, foreign: object) -> None:
    """`t` cannot be instantiated, subclassed or changed from Python, and its `to_dict` refuses
    `foreign`, an object of another type."""
    with pytest.raises(TypeError):
        t()
    with pytest.raises(TypeError):
        type("Sub", (t,), {})
    with pytest.raises(TypeError):
        t.to_dict = lambda self: {}  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        t.to_dict(foreign)  # type: ignore[attr-defined]


def test_reused_views_start_fresh() -> None:
    """Views freed to their type's free list and made again carry only their new chunk's values."""
    for _ in range(3):
        got = [(c.choices[0].delta.content, c.choices[0].delta.tool_calls, c.choices[0].finish_reason)
               for c in chunks()[:8]]
        assert got[0] == ("", None, None)
        assert got[3][0].startswith(" a longer ASCII")
        assert got[4] == (None, None, None)
        assert [tc.id for tc in got[5][1]] == ["call_a", "call_b"]
        assert got[6][1][0].id is None and got[6][1][0].function.arguments == '{"a": 1}'
        assert got[7] == (None, None, "stop")


def test_views_outlive_their_chunk_and_decoder() -> None:
    d = ChunkDecoder("openai_chat")
    got = d.feed(STREAM)
    delta = got[2].choices[1].delta
    call = got[5].choices[0].delta.tool_calls[0]
    del d, got
    gc.collect()
    assert delta.content == "naïve 🙂 text" and delta.to_dict() == {"content": "naïve 🙂 text"}
    assert call.function.name == "f" and call.to_dict()["id"] == "call_a"


def test_chunks_are_made_only_from_rust_and_compare_by_value() -> None:
    """A chunk comes from a decoder or `from_json` (str or bytes, keyword `data`); it cannot be
    made, subclassed, changed, hashed, pickled or copied from Python, and compares by value."""
    raw = chunks()[2].to_json()
    a, b = ChatCompletionChunk.from_json(raw), ChatCompletionChunk.from_json(data=raw.encode())
    _assert_sealed(ChatCompletionChunk, chunks()[0].choices[0])
    for name in ("id", "object", "created", "model", "system_fingerprint", "service_tier", "usage", "choices"):
        with pytest.raises(AttributeError):
            setattr(a, name, "x")
    with pytest.raises(AttributeError):
        a.extra = 1  # type: ignore[attr-defined]
    for copier in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="cannot pickle"):
            copier(a)
    with pytest.raises(TypeError, match="unhashable"):
        hash(a)
    assert ChatCompletionChunk.__hash__ is None  # type: ignore[comparison-overlap]
    assert a == b and not (a != b) and a is not b
    assert a != chunks()[3] and not (a == chunks()[3])
    assert a.__eq__(1) is False and a.__ne__(1) is True and (a == 1) is False and (1 != a) is True
    assert a.__eq__(a.choices[0]) is False
    assert a.__lt__(b) is NotImplemented
    with pytest.raises(TypeError):
        a < b  # type: ignore[operator]
    assert (a.id, a.object, a.created, a.model) == ("c1", "chat.completion.chunk", 7, "m")
    assert (a.system_fingerprint, a.service_tier, a.usage) == (None, None, None)
    assert a["id"] == "c1" and a["choices"][1]["delta"] == {"content": "naïve 🙂 text"}
    with pytest.raises(KeyError, match="usage"):
        a["usage"]
    with pytest.raises(TypeError):
        a[0]  # type: ignore[index]
    with pytest.raises(TypeError):
        list(a)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        "id" in a  # type: ignore[operator]
    assert a.model_dump() == a.to_dict() == json.loads(raw) and a.model_dump_json() == a.to_json() == raw
    assert repr(a) == f"ChatCompletionChunk({raw})"
    with pytest.raises(polystream.errors.InvalidChunkError):
        ChatCompletionChunk.from_json("{")
    with pytest.raises(TypeError):
        ChatCompletionChunk.from_json(1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ChatCompletionChunk.from_json()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ChatCompletionChunk.from_json(raw, raw)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ChatCompletionChunk.from_json(raw, data=raw)  # type: ignore[misc]


def test_reused_chunks_start_fresh() -> None:
    """A chunk freed to its type's free list and made again shows only its new chunk: its own
    values and its own `choices`, never the previous chunk's."""
    fresh = sse({**HEAD, "id": "c2", "choices": [{"index": 0, "delta": {"content": "fresh"}}]})
    for _ in range(3):
        old = chunks()
        assert all(c.choices is c.choices for c in old)  # every old chunk holds its choices
        freed = {id(c) for c in old}
        del old
        again = ChunkDecoder("openai_chat").feed(fresh)[0]
        assert id(again) in freed  # the memory of a freed chunk, reused
        assert (again.id, again.usage) == ("c2", None)
        assert [c.delta.content for c in again.choices] == ["fresh"]
        assert again.to_dict()["choices"][0]["delta"] == {"content": "fresh"}


def test_views_balance_references() -> None:
    """Building and freeing chunks and views leaves shared objects' refcounts as they were (no
    leak, no double release): their types, None (a view's absent attributes) and a str read out
    of a view."""
    for _ in range(3):  # warm every lazily created type and cache
        for c in chunks():
            [(ch.delta.tool_calls, ch.finish_reason) for ch in c.choices]
    kept = chunks()[3].choices[0].delta.content
    view_types = (ChatCompletionChunk, *VIEW_TYPES)
    gc.collect()
    none_before, kept_before = sys.getrefcount(None), sys.getrefcount(kept)
    # Each chunk and view holds a reference to its type, also when reused from the free list.
    types_before = [sys.getrefcount(t) for t in view_types]

    def churn() -> None:  # its loop variables (the last views) die with it
        for c in chunks():
            for ch in c.choices:
                ch.delta.content, ch.delta.role, ch.delta.tool_calls, ch.finish_reason, ch.index
                for tc in ch.delta.tool_calls or ():
                    tc.function, tc.id

    for _ in range(200):
        churn()
    gc.collect()
    assert sys.getrefcount(kept) == kept_before
    assert [sys.getrefcount(t) for t in view_types] == types_before
    if sys.version_info < (3, 12):  # None is immortal (refcount fixed) from 3.12
        assert abs(sys.getrefcount(None) - none_before) < 50


# Strings: ASCII text takes a copying fast path, the rest the UTF-8 decoder. Cover lengths around
# the 8-byte words and 32-byte blocks the ASCII check reads, with a non-ASCII or invalid byte at
# every position.
LENGTHS = [0, 1, 2, 3, 7, 8, 9, 15, 16, 31, 32, 33, 63, 64, 65, 100]


def variants(n: int) -> list[bytes]:
    base = bytes(33 + (i * 7) % 90 for i in range(n))  # printable ASCII, no newline
    out = [base]
    for pos in sorted({0, n // 2, n - 1} if n else set()):
        out.append(base[:pos] + "é".encode() + base[pos + 1 :])  # valid 2-byte UTF-8
        out.append(base[:pos] + b"\xff" + base[pos + 1 :])  # invalid: U+FFFD
        out.append(base[:pos] + b"\x80" + base[pos + 1 :])  # lone continuation byte
        out.append(base[:pos] + b"\x7f" + base[pos + 1 :])  # DEL: still ASCII
    return out


@pytest.mark.parametrize("n", LENGTHS)
def test_event_strings_decode_like_python(n: int) -> None:
    payloads = variants(n)
    d = SSEDecoder()
    stream = b"".join(b"event: t" + p + b"\nid: i" + p + b"\ndata: " + p + b"\n\n" for p in payloads)
    events = d.feed(stream)
    assert len(events) == len(payloads)
    for ev, p in zip(events, payloads):
        text = p.decode("utf-8", "replace")
        assert (ev.data, ev.event, ev.id) == (text, "t" + text, "i" + text)
        assert type(ev.data) is str and hash(ev.data) == hash(text) and ev.data.isascii() == text.isascii()
    assert d.last_event_id == "i" + payloads[-1].decode("utf-8", "replace")


@pytest.mark.parametrize("n", LENGTHS)
def test_chunk_strings_decode_like_python(n: int) -> None:
    texts = [p.decode("utf-8", "replace") for p in variants(n)]
    stream = sse(*({**HEAD, "choices": [{"index": 0, "delta": {"content": t}}]} for t in texts))
    got = [c.choices[0].delta.content for c in ChunkDecoder("openai_chat").feed(stream)]
    assert got == texts
    assert all(type(s) is str and s.isascii() == t.isascii() for s, t in zip(got, texts))


def test_events_read_only_and_shared_strings_balanced() -> None:
    ev = ServerSentEvent("d", "e", "1", 5)
    assert (ev.data, ev.event, ev.id, ev.retry) == ("d", "e", "1", 5)
    assert ev == ServerSentEvent("d", "e", "1", 5) and ev != ServerSentEvent("d", "e", "2", 5)
    assert repr(ev) == "ServerSentEvent(event='e', data='d', id='1', retry=5)"
    assert ServerSentEvent().event == "message" and ServerSentEvent().id == ""
    for name in ("data", "event", "id", "retry"):
        with pytest.raises(AttributeError):
            setattr(ev, name, "x")

    d = SSEDecoder()
    first = d.feed(b"id: 42\ndata: a\n\n")[0]
    message, last_id = first.event, first.id
    gc.collect()
    before = (sys.getrefcount(message), sys.getrefcount(last_id))
    for _ in range(100):
        events = d.feed(b"data: some ASCII data\n\ndata: " + "é".encode() + b"\n\n")
        assert [(e.event, e.id) for e in events] == [("message", "42")] * 2
        assert events[0].event is message and events[1].id is last_id  # cached, not remade
    del events
    gc.collect()
    assert (sys.getrefcount(message), sys.getrefcount(last_id)) == before
