"""Shared test helpers: fixture locations and byte-splitting strategies."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OWN_FIXTURES = ROOT / "tests" / "fixtures"
# Real recordings and conformance vectors live beside the checkout (CI has them); read by path.
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"


def shared(*parts: str) -> Path:
    return SHARED_FIXTURES.joinpath(*parts)


def needs_shared(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} not present (shared fixtures absent)")


def load_vectors() -> list[dict]:
    cases = json.loads((OWN_FIXTURES / "sse" / "vectors.json").read_text())
    path = shared("sse", "vectors.json")
    if path.exists():
        cases += json.loads(path.read_text())
    for c in cases:
        c["bytes"] = base64.b64decode(c["input_b64"]) if "input_b64" in c else c["input"].encode()
    return cases


def splits(data: bytes, how: str, seed: int = 0) -> Iterator[bytes]:
    """Cut `data` into pieces: whole, 1-byte, or random sizes (with empty pieces)."""
    if how == "whole":
        yield data
    elif how == "1-byte":
        for i in range(len(data)):
            yield data[i : i + 1]
    elif how == "random":
        rng = random.Random(seed)
        pos = 0
        while pos < len(data):
            n = rng.choice((0, 1, 2, 3, 7, 16, 61, 256, 4096))
            yield data[pos : pos + n]
            pos += n
    else:
        raise ValueError(how)
