"""Bedrock's Converse stream (AWS eventstream frames): polystream against boto3, AWS's own SDK.

Two measures, CPU µs per content delta, best and median of --runs:
- decode: bytes already in memory, fed in 16 KiB pieces. polystream's ChunkDecoder
  ("bedrock_converse": CRCs checked, JSON decoded, normalised chunks) against botocore's
  EventStreamBuffer (CRCs checked, headers parsed) plus `json.loads` of each payload, a lower
  bound of what boto3 does before its shape parsing.
- client: a whole streaming call to the local replay server (one HTTP chunk per frame, as AWS
  sends them), reading every delta's text: `polystream.completion("bedrock/…", stream=True)`
  against boto3's `converse_stream()` iterated event by event.

    python benches/bedrock_bench.py [--frames 2000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from polystream.providers._eventstream import frame

MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def body(n: int) -> tuple[bytes, str]:
    """A Converse stream of `n` text deltas (with AWS's `p` padding), and its text."""
    words = ["Paris", " is", " the", " capital", " of", " France", ",", " é", "t", "é", " 東京", " 🌍"]
    out = [frame("messageStart", {"p": PAD[:18], "role": "assistant"})]
    text = []
    for i in range(n):
        w = words[i % len(words)]
        text.append(w)
        out.append(frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": w}, "p": PAD[: 10 + i % 50]}))
    out.append(frame("contentBlockStop", {"contentBlockIndex": 0, "p": PAD[:40]}))
    out.append(frame("messageStop", {"p": PAD[:15], "stopReason": "end_turn"}))
    out.append(frame("metadata", {"metrics": {"latencyMs": 500}, "p": PAD[:30],
                                  "usage": {"inputTokens": 13, "outputTokens": n, "totalTokens": 13 + n}}))
    return b"".join(out), "".join(text)


def pieces(data: bytes, size: int = 16384) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def decode_polystream(data: list[bytes]) -> str:
    from polystream import ChunkDecoder

    dec, out = ChunkDecoder("bedrock_converse"), []
    for piece in data:
        for chunk in dec.feed(piece):
            if chunk.choices:
                c = chunk.choices[0].delta.content
                if c:
                    out.append(c)
    dec.finish()
    return "".join(out)


def decode_botocore(data: list[bytes]) -> str:
    from botocore.eventstream import EventStreamBuffer

    buf, out = EventStreamBuffer(), []
    for piece in data:
        buf.add_data(piece)
        for message in buf:
            if message.headers.get(":event-type") == "contentBlockDelta":
                t = json.loads(message.payload)["delta"].get("text")
                if t:
                    out.append(t)
    return "".join(out)


def client_polystream(base: str) -> str:
    import polystream

    out = []
    for chunk in polystream.completion(f"bedrock/{MODEL}", [{"role": "user", "content": "Hi"}], stream=True,
                                       api_base=base, api_key="k"):
        if chunk.choices:
            c = chunk.choices[0].delta.content
            if c:
                out.append(c)
    return "".join(out)


_boto: dict[str, Any] = {}


def client_boto3(base: str) -> str:
    client = _boto.get(base)
    if client is None:
        import boto3
        from botocore.config import Config

        client = _boto[base] = boto3.client("bedrock-runtime", endpoint_url=base, region_name="us-east-1",
                                            aws_access_key_id="k", aws_secret_access_key="k",
                                            config=Config(retries={"max_attempts": 1}))
    out = []
    r = client.converse_stream(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    for event in r["stream"]:
        d = event.get("contentBlockDelta")
        if d and d["delta"].get("text"):
            out.append(d["delta"]["text"])
    return "".join(out)


def measure(fn: Callable[[], str], want: str, n: int, runs: int) -> tuple[float, float]:
    assert fn() == want, "wrong text"  # correctness first (and warm-up)
    times = []
    for _ in range(runs):
        c0 = time.process_time()
        got = fn()
        times.append((time.process_time() - c0) / n * 1e6)
        assert got == want
    return min(times), statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args(argv)
    data, text = body(a.frames)
    split = pieces(data)
    rows = [("decode", "polystream", measure(lambda: decode_polystream(split), text, a.frames, a.runs)),
            ("decode", "botocore buffer + json", measure(lambda: decode_botocore(split), text, a.frames, a.runs))]
    with tempfile.TemporaryDirectory() as d:
        fixture = Path(d) / "body.eventstream"
        fixture.write_bytes(data)
        # The server in its own process: its CPU is not the client's.
        proc = subprocess.Popen([sys.executable, "-m", "polystream.testing.replay", "--port", "0", "--provider",
                                 "bedrock", "--fixture", str(fixture), "--split", "event"],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            assert url.startswith("http"), url
            rows.append(("client", "polystream", measure(lambda: client_polystream(url), text, a.frames, a.runs)))
            rows.append(("client", "boto3", measure(lambda: client_boto3(url), text, a.frames, a.runs)))
        finally:
            proc.kill()
            proc.wait()
    print(f"Bedrock Converse stream, {a.frames} text deltas ({len(data):,} bytes), CPU µs per delta, {a.runs} runs")
    print(f"{'measure':8} {'reader':24} {'best':>9} {'median':>9}")
    for kind, who, (best, med) in rows:
        print(f"{kind:8} {who:24} {best:9.2f} {med:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
