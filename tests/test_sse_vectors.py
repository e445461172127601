"""Every SSE conformance vector through the Python API, under several byte splits."""

from __future__ import annotations

import pytest

from polystream import SSEDecoder

from .conftest import load_vectors, splits

VECTORS = load_vectors()


def decode(pieces) -> tuple[list[dict], int | None]:
    d = SSEDecoder()
    events = []
    for p in pieces:
        events += d.feed(p)
    events += d.finish()
    return [{"type": e.event, "data": e.data, "id": e.id, "retry": e.retry} for e in events], d.retry


def expected(case: dict) -> list[dict]:
    return [{"type": e["type"], "data": e["data"], "id": e["id"], "retry": e.get("retry")} for e in case["events"]]


@pytest.mark.parametrize("how", ["whole", "1-byte", "random"])
@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_vector(case: dict, how: str) -> None:
    got, final_retry = decode(splits(case["bytes"], how, seed=len(case["bytes"])))
    want = expected(case)
    # Vectors state `retry` only where it matters; elsewhere ignore it.
    for g, w in zip(got, want):
        if w["retry"] is None:
            g["retry"] = None
    assert got == want
    assert final_retry == case["final_retry"]


def test_vectors_loaded() -> None:
    own = [c for c in VECTORS if c["name"].startswith("ps-")]
    assert len(own) >= 40


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_feed_accepts_buffers(kind) -> None:
    d = SSEDecoder()
    (ev,) = d.feed(kind(b'event: x\nid: 9\nretry: 10\ndata: {"a": 1}\n\n'))
    assert (ev.event, ev.data, ev.id, ev.retry) == ("x", '{"a": 1}', "9", 10)
    assert ev.json() == {"a": 1}
    assert d.last_event_id == "9"


def test_feed_rejects_str() -> None:
    with pytest.raises(TypeError):
        SSEDecoder().feed("data: x\n\n")  # type: ignore[arg-type]
