"""The Python surface: chunk objects read like the openai SDK's, Records, the builder."""

from __future__ import annotations

import json

import polystream
from polystream import ChatCompletionChunk, ChunkDecoder, Record, stream_chunk_builder

TOOL_STREAM = b"".join(
    b"data: " + json.dumps(c).encode() + b"\n\n"
    for c in [
        {"id": "c1", "created": 5, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
            {"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}}]},
        {"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
    ]
) + b"data: [DONE]\n\n"


def test_chunk_reads_like_the_sdk() -> None:
    chunks = ChunkDecoder("openai_chat").feed(TOOL_STREAM)
    first = chunks[0]
    assert isinstance(first, ChatCompletionChunk)
    assert (first.id, first.object, first.created, first.model) == ("c1", "chat.completion.chunk", 5, "m")
    assert first.choices is first.choices  # built once, then cached
    tc = first.choices[0].delta.tool_calls[0]
    assert (tc.index, tc.id, tc.type, tc.function.name, tc.function.arguments) == (0, "call_a", "function", "get_weather", "")
    assert first.choices[0].delta.content is None and first.choices[0].finish_reason is None
    assert chunks[-1].usage.total_tokens == 7 and chunks[-1].usage.prompt_tokens_details is None
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1].model_dump() == chunks[-1].to_dict()


def test_builder_merges_parallel_tool_calls_by_index() -> None:
    final = stream_chunk_builder(ChunkDecoder("openai_chat").feed(TOOL_STREAM))
    assert isinstance(final, polystream.ChatCompletion) and isinstance(final, dict)
    msg = final.choices[0].message
    assert [(t.id, t.function.name, t.function.arguments) for t in msg.tool_calls] == [
        ("call_a", "get_weather", '{"city": "Paris"}'),
        ("call_b", "get_time", "{}"),
    ]
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage.total_tokens == 7
    assert final["object"] == "chat.completion" and final.id == "c1"
    assert json.loads(json.dumps(final)) == final.to_dict()


def test_builder_accepts_dict_chunks_and_mixed() -> None:
    chunks = ChunkDecoder("openai_chat").feed(TOOL_STREAM)
    as_dicts = [c.to_dict() for c in chunks]
    assert stream_chunk_builder(as_dicts) == stream_chunk_builder(chunks)
    assert stream_chunk_builder(as_dicts[:2] + chunks[2:]) == stream_chunk_builder(chunks)


def test_builder_accepts_openai_sdk_objects() -> None:
    import pytest

    types = pytest.importorskip("openai.types.chat")
    chunks = ChunkDecoder("openai_chat").feed(TOOL_STREAM)
    sdk = [
        types.ChatCompletionChunk.model_validate({**c.to_dict(), "object": "chat.completion.chunk"}) for c in chunks
    ]
    assert stream_chunk_builder(sdk).choices[0].message.tool_calls == stream_chunk_builder(chunks).choices[0].message.tool_calls


def test_chunk_from_json_round_trip() -> None:
    raw = '{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"é"},"logprobs":null,"finish_reason":null}]}'
    c = ChatCompletionChunk.from_json(raw)
    assert c.choices[0].delta.content == "é"
    assert json.loads(c.to_json()) == json.loads(raw)
    assert c == ChatCompletionChunk.from_json(raw.encode())


def test_record() -> None:
    r = Record.wrap({"a": {"b": [{"c": 1}]}})
    assert r.a.b[0].c == 1 and r.missing is None and r["a"]["b"][0]["c"] == 1
    assert type(r.to_dict()["a"]) is dict


def test_reasoning_and_refusal_accumulate() -> None:
    body = (
        b'data: {"id":"r","choices":[{"index":0,"delta":{"reasoning_content":"think "}}]}\n\n'
        b'data: {"id":"r","choices":[{"index":0,"delta":{"reasoning":"more"}}]}\n\n'
        b'data: {"id":"r","choices":[{"index":0,"delta":{"refusal":"no"}}]}\n\n'
        b'data: {"id":"r","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    )
    msg = stream_chunk_builder(ChunkDecoder("openai_chat").feed(body)).choices[0].message
    assert (msg.reasoning_content, msg.refusal, msg.content) == ("think more", "no", None)


def test_annotations_reach_the_chunk_and_the_message() -> None:
    """OpenAI's url_citations (search models, web search) ride on the delta and stay on the
    accumulated message, in order: nothing the provider sent is dropped."""
    cite = {"type": "url_citation", "url_citation": {"url": "https://example.com/a", "title": "A", "start_index": 0,
                                                     "end_index": 5}}
    later = {"type": "url_citation", "url_citation": {"url": "https://example.com/b", "title": "B", "start_index": 6,
                                                      "end_index": 11}}
    body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in [
        {"id": "s", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"}}]},
        {"id": "s", "choices": [{"index": 0, "delta": {"content": " world", "annotations": [cite]}}]},
        {"id": "s", "choices": [{"index": 0, "delta": {"annotations": [later]}, "finish_reason": "stop"}]},
    ]) + b"data: [DONE]\n\n"
    decoder = ChunkDecoder("openai_chat", accumulate=True)
    chunks = decoder.feed(body)
    assert [c.choices[0].delta.annotations for c in chunks] == [None, [cite], [later]]
    assert chunks[1].to_dict()["choices"][0]["delta"]["annotations"] == [cite]
    for msg in (decoder.snapshot()["choices"][0]["message"], stream_chunk_builder(chunks).choices[0].message):
        assert msg["annotations"] == [cite, later] and msg["content"] == "Hello world"
    plain = stream_chunk_builder(ChunkDecoder("openai_chat").feed(TOOL_STREAM)).choices[0].message
    assert "annotations" not in plain  # none sent, none shown


def test_demo_runs(capsys) -> None:
    from polystream.cli import main

    assert main(["demo", "--delay", "0", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "東京, naïve café, 🚀" in out and "finish_reason=stop" in out


def test_python_m_polystream_is_the_command() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "polystream", "demo", "--delay", "0", "--seed", "1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "finish_reason=stop" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "polystream", "no-such-command"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
