"""Recorded OpenAI streams: the `.expected.json` sidecars (the openai SDK's own test snapshots)
must be reproduced exactly by ChunkDecoder + stream_chunk_builder, under any byte split."""

from __future__ import annotations

import json

import pytest

from polystream import ChunkDecoder, stream_chunk_builder

from .conftest import shared, splits

OPENAI = shared("providers", "openai")
RECORDINGS = sorted(OPENAI.glob("*.sse")) if OPENAI.exists() else []
WITH_SIDECAR = [p for p in RECORDINGS if p.with_suffix(".expected.json").exists()]
WITHOUT_SIDECAR = [p for p in RECORDINGS if p not in WITH_SIDECAR]

pytestmark = pytest.mark.skipif(not OPENAI.exists(), reason="shared fixtures absent")


def decode(pieces) -> tuple[list, ChunkDecoder]:
    d = ChunkDecoder("openai_chat", accumulate=True)
    chunks = []
    for p in pieces:
        chunks += d.feed(p)
    chunks += d.finish()
    return chunks, d


def test_there_are_sidecars() -> None:
    assert len(WITH_SIDECAR) >= 9


@pytest.mark.parametrize("how", ["whole", "1-byte", "random"])
@pytest.mark.parametrize("path", WITH_SIDECAR, ids=lambda p: p.stem)
def test_sidecar_exact(path, how: str) -> None:
    want = json.loads(path.with_suffix(".expected.json").read_text())
    chunks, decoder = decode(splits(path.read_bytes(), how, seed=7))
    assert decoder.done
    for final in (stream_chunk_builder(chunks), decoder.snapshot()):
        assert len(final.choices) == len(want["choices"])
        for got, exp in zip(final.choices, want["choices"]):
            assert got.index == exp["index"]
            assert got.finish_reason == exp["finish_reason"]
            for field in ("role", "content", "refusal"):
                assert got.message[field] == exp["message"][field], field
            assert got.message.to_dict()["tool_calls"] == exp["message"]["tool_calls"]
            assert (got.logprobs.to_dict() if got.logprobs else None) == exp["logprobs"]


@pytest.mark.parametrize("path", WITHOUT_SIDECAR, ids=lambda p: p.stem)
def test_other_recordings_decode_under_random_splits(path) -> None:
    data = path.read_bytes()
    whole_chunks, whole = decode([data])
    assert whole.done and whole_chunks
    reference = whole.snapshot()
    assert reference.choices and all(c.finish_reason for c in reference.choices)
    for seed in range(5):
        _, d = decode(splits(data, "random", seed=seed))
        assert d.snapshot() == reference


def test_usage_and_details_from_include_usage() -> None:
    chunks, d = decode([(OPENAI / "openai_chat_text_include_usage_gpt5.sse").read_bytes()])
    usage = d.snapshot().usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0
    assert usage.completion_tokens_details.reasoning_tokens is not None
    with_usage = [c for c in chunks if c.usage is not None]
    assert len(with_usage) == 1  # `usage: null` on the others reads as None
    assert with_usage[0].usage.total_tokens == usage.total_tokens
    assert with_usage[0].choices == []


def test_n2_choices_accumulate_separately() -> None:
    _, d = decode([(OPENAI / "openai_chat_n2_length_usage.rig.sse").read_bytes()])
    final = d.snapshot()
    assert [c.index for c in final.choices] == [0, 1]
    assert all(c.finish_reason == "length" for c in final.choices)
    assert all(c.message.content for c in final.choices)


def test_chunk_to_dict_is_the_wire_json() -> None:
    """Decoding then serialising gives back each recorded payload (modulo `null` delta fields)."""
    raw = (OPENAI / "openai_chat_tool_calls_parallel.sse").read_bytes()
    payloads = [json.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: {")]
    chunks, _ = decode([raw])
    assert len(chunks) == len(payloads)

    def drop_nulls(x):
        if isinstance(x, dict):
            return {k: drop_nulls(v) for k, v in x.items() if v is not None or k in ("finish_reason", "logprobs")}
        if isinstance(x, list):
            return [drop_nulls(v) for v in x]
        return x

    for chunk, payload in zip(chunks, payloads):
        assert chunk.to_dict() == drop_nulls(payload)
        assert json.loads(chunk.to_json()) == chunk.to_dict()
