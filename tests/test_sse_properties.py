"""Property tests: for random SSE streams and random splits, the events equal those of the whole
stream, and equal a direct transcription of the WHATWG algorithm (decode first, then parse)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from polystream import SSEDecoder

# Tokens chosen to hit every rule: terminators in every combination, fields, colons, spaces,
# BOMs, NUL, invalid and multi-byte UTF-8, digits for retry.
TOKENS = [
    b"\n", b"\r", b"\r\n", b"\n\r", b":", b": ", b" ", b"data", b"data:", b"data: ", b"event:",
    b"event: ", b"id:", b"id: ", b"retry:", b"retry: ", b"0", b"12", b"x", b"\x00", b"\xef\xbb\xbf",
    b"\xff", b"\xe2\x82", b"\xe6\x9d\xb1", b"\xf0\x9f\x9a\x80", b"[DONE]", b'{"a":1}', b"\t",
]

streams = st.lists(st.sampled_from(TOKENS), max_size=60).map(b"".join)


def reference(data: bytes) -> tuple[list[tuple], int | None]:
    """WHATWG HTML §9.2.5-9.2.6, transcribed literally."""
    text = data.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\r":
            lines.append("".join(cur)); cur = []
            i += 2 if text[i + 1 : i + 2] == "\n" else 1
        elif ch == "\n":
            lines.append("".join(cur)); cur = []; i += 1
        else:
            cur.append(ch); i += 1
    events, data_buf, event_type, last_id, retry, block_retry = [], "", "", "", None, None
    for line in lines:  # the unterminated tail in `cur` is never processed
        if line == "":
            if data_buf == "":
                event_type, block_retry = "", None
                continue
            if data_buf.endswith("\n"):
                data_buf = data_buf[:-1]
            events.append((event_type or "message", data_buf, last_id, block_retry))
            data_buf, event_type, block_retry = "", "", None
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            field, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            field, value = line, ""
        if field == "event":
            event_type = value
        elif field == "data":
            data_buf += value + "\n"
        elif field == "id":
            if "\x00" not in value:
                last_id = value
        elif field == "retry":
            if value and all(c in "0123456789" for c in value):
                retry = block_retry = int(value)
    return events, retry


def run(pieces) -> tuple[list[tuple], int | None]:
    d = SSEDecoder()
    out = []
    for p in pieces:
        out += d.feed(p)
    d.finish()
    return [(e.event, e.data, e.id, e.retry) for e in out], d.retry


@settings(max_examples=400, deadline=None)
@given(streams, st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_split_invariance_and_reference(data: bytes, cuts: list[int]) -> None:
    cuts = sorted(min(c, len(data)) for c in cuts)
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    whole = run([data])
    assert run(pieces) == whole
    assert whole == reference(data)


@settings(max_examples=200, deadline=None)
@given(streams)
def test_one_byte_feeds(data: bytes) -> None:
    assert run([data[i : i + 1] for i in range(len(data))]) == run([data])
