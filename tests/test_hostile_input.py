"""Hostile input: typed errors, bounded memory, nothing completed is lost, no panic reaches Python."""

from __future__ import annotations

import resource

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polystream import DEFAULT_MAX_EVENT_SIZE, ChunkDecoder, SSEDecoder, errors

MB = 1024 * 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("make", [SSEDecoder, lambda: ChunkDecoder("openai_chat")], ids=["sse", "chunks"])
def test_100mb_without_newline_is_a_typed_error_with_bounded_memory(make) -> None:
    decoder = make()
    piece = b"x" * (64 * 1024)
    before = peak_rss_mb()
    fed = 0
    with pytest.raises(errors.EventTooLargeError) as info:
        while fed < 100 * MB:
            decoder.feed(piece)
            fed += len(piece)
    assert info.value.limit == DEFAULT_MAX_EVENT_SIZE
    # The error comes once the limit is passed, not after buffering the whole 100 MB...
    assert fed <= DEFAULT_MAX_EVENT_SIZE + len(piece)
    # ...and the process never held much more than one limit's worth.
    assert peak_rss_mb() - before < 3 * DEFAULT_MAX_EVENT_SIZE / MB
    # A failed decoder refuses more input instead of guessing where the next event starts.
    with pytest.raises(errors.DecoderPoisonedError):
        decoder.feed(b"data: x\n\n")


def test_event_over_the_limit_keeps_the_events_before_it() -> None:
    d = SSEDecoder(max_event_size=1000)
    stream = b"data: one\n\ndata: two\n\ndata: " + b"y" * 2000 + b"\n\n"
    with pytest.raises(errors.EventTooLargeError) as info:
        d.feed(stream)
    assert [e.data for e in info.value.items] == ["one", "two"]
    assert isinstance(info.value, errors.StreamDecodeError)


def test_many_data_lines_count_toward_the_limit() -> None:
    d = SSEDecoder(max_event_size=100)
    with pytest.raises(errors.EventTooLargeError):
        for _ in range(100):
            d.feed(b"data: 0123456789\n")


def test_invalid_json_is_typed_and_keeps_earlier_chunks() -> None:
    d = ChunkDecoder("openai_chat")
    good = b'data: {"id":"a","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    with pytest.raises(errors.InvalidChunkError) as info:
        d.feed(good + b"data: {not json\n\n")
    assert [c.choices[0].delta.content for c in info.value.items] == ["hi"]
    assert "not json" in info.value.payload


def test_in_band_error_is_a_provider_error() -> None:
    d = ChunkDecoder("openai_chat", accumulate=True)
    body = (
        b'data: {"id":"a","choices":[{"index":0,"delta":{"content":"partial"}}]}\n\n'
        b'data: {"error":{"message":"Overloaded","type":"server_error","code":"overloaded"}}\n\n'
    )
    with pytest.raises(errors.ProviderStreamError) as info:
        d.feed(body)
    e = info.value
    assert (e.error_message, e.type, e.code) == ("Overloaded", "server_error", "overloaded")
    assert [c.choices[0].delta.content for c in e.items] == ["partial"]
    assert d.snapshot().choices[0].message.content == "partial"  # the partial answer survives


def test_event_error_frame_is_a_provider_error() -> None:
    with pytest.raises(errors.ProviderStreamError) as info:
        ChunkDecoder("openai_chat").feed(b'event: error\ndata: {"error":{"message":"boom","code":"tool_use_failed"}}\n\n')
    assert info.value.code == "tool_use_failed"


def test_truncated_stream_is_incomplete() -> None:
    d = ChunkDecoder("openai_chat", accumulate=True)
    d.feed(b'data: {"id":"a","choices":[{"index":0,"delta":{"content":"half an ans"}}]}\n\ndata: {"id":"a","cho')
    with pytest.raises(errors.IncompleteStreamError):
        d.finish()
    assert d.snapshot().choices[0].message.content == "half an ans"


def test_unknown_dialect() -> None:
    with pytest.raises(errors.UnknownDialectError):
        ChunkDecoder("no_such_wire")
    with pytest.raises(ValueError):
        ChunkDecoder("no_such_wire")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_arbitrary_bytes_only_ever_raise_polystream_errors(data: bytes, step: int) -> None:
    prefix = b'data: {"choices":[{"index":0,"delta":{"content":"'
    for body in (data, prefix + data):
        d = ChunkDecoder("openai_chat")
        try:
            for i in range(0, len(body), step):
                d.feed(body[i : i + step])
            d.finish()
        except errors.PolystreamError:
            pass  # anything else (including a PanicException) fails the test


def test_a_rust_panic_is_an_exception_not_an_abort() -> None:
    from polystream import _core

    with pytest.raises(BaseException) as info:
        _core.debug_panic()
    assert "deliberate" in str(info.value)
