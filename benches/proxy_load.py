"""The client side of `proxy_bench.py`: streaming chat requests (time to first chunk, events
counted) and background-mode pollers. Runs in the benchmark's own process, never in a proxy's.

Every request carries a fresh `bench-…` nonce in its input, so no cache can answer it and the
SSE tap can tell which upstream stream belongs to which background response.
"""

from __future__ import annotations

import asyncio
import json
import queue
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from proxy_procs import MASTER_KEY, Proc

HEADERS = {"Authorization": f"Bearer {MASTER_KEY}"}
TERMINAL = frozenset({"completed", "failed", "incomplete", "cancelled"})


def nonce() -> str:
    return "bench-" + uuid.uuid4().hex[:20]


def new_client(n: int = 1) -> httpx.AsyncClient:
    # keepalive_expiry below both servers' idle timeouts (uvicorn's default is 5 s), so a pooled
    # connection is never reused just as the server closes it.
    limits = httpx.Limits(max_connections=n + 8, max_keepalive_connections=n + 8, keepalive_expiry=4.0)
    return httpx.AsyncClient(timeout=httpx.Timeout(600.0), limits=limits)


# ---------------------------------------------------------------------- streaming chat


@dataclass
class StreamResult:
    ttfc: float  # seconds from sending the request to the first body bytes
    events: int  # SSE data events received, [DONE] excluded
    nbytes: int
    done: bool  # ended with data: [DONE]
    body: bytes | None = None


async def stream_once(client: httpx.AsyncClient, url: str, model: str, keep: bool = False,
                      counter: list[int] | None = None, rec: dict[str, float] | None = None) -> StreamResult:
    """One streaming chat request, read to the end. `counter[0]` (if given) grows by the events
    as they arrive; `rec` (if given) gets "t0" (sent) and "t1" (first bytes), time.monotonic()."""
    body = {"model": model, "messages": [{"role": "user", "content": nonce()}], "stream": True}
    ttfc = -1.0
    events = nbytes = 0
    tail = last = b""
    parts: list[bytes] = []
    t0 = time.perf_counter()
    if rec is not None:
        rec["t0"] = time.monotonic()
    async with client.stream("POST", url, json=body, headers=HEADERS) as r:
        if r.status_code != 200:
            raise RuntimeError(f"POST {url} ({model}): HTTP {r.status_code}: {(await r.aread())[:300]!r}")
        async for piece in r.aiter_raw():
            if ttfc < 0:
                ttfc = time.perf_counter() - t0
                if rec is not None:
                    rec["t1"] = time.monotonic()
            buf = tail + piece
            n = buf.count(b"data: ")  # "data: " is 6 bytes: never counted twice from a 5-byte tail
            events += n
            if counter is not None:
                counter[0] += n
            tail = buf[-5:]
            nbytes += len(piece)
            if keep:
                parts.append(piece)
            last = buf[-32:]
    done = b"data: [DONE]" in last
    if done and counter is not None:
        counter[0] -= 1
    return StreamResult(ttfc, events - done, nbytes, done, b"".join(parts) if keep else None)


def sse_text(body: bytes) -> str:
    """Concatenated `choices[0].delta.content` of a chat SSE body."""
    out = []
    for event in body.split(b"\n\n"):
        event = event.strip()
        if not event.startswith(b"data: ") or event == b"data: [DONE]":
            continue
        obj = json.loads(event[6:])
        if "error" in obj:
            raise RuntimeError(f"error event: {obj['error']}")
        for ch in obj.get("choices") or []:
            out.append((ch.get("delta") or {}).get("content") or "")
    return "".join(out)


async def burst(client: httpx.AsyncClient, url: str, model: str, n: int) -> list[StreamResult]:
    return list(await asyncio.gather(*(stream_once(client, url, model) for _ in range(n))))


async def closed_loop(client: httpx.AsyncClient, url: str, model: str, slots: int, ramp: float, window: float,
                      on_window: Any = None) -> dict[str, Any]:
    """`slots` streams in flight: each slot starts one stream after another; slot i first starts at
    i·ramp/slots, so starts spread evenly. Measures over [ramp, ramp + window]: the events received
    in it, and the TTFC of every stream started in it (a stream still waiting for its first chunk
    at the end counts with its wait so far, as a lower bound: "censored"). Streams still running
    at the end are cancelled (the client disconnects). `on_window(edge)` is called at both edges
    (for CPU readings)."""
    counter = [0]
    recs: list[dict[str, float]] = []
    errors: list[str] = []
    start = time.monotonic()
    w0, w1 = start + ramp, start + ramp + window

    async def slot(i: int) -> None:
        await asyncio.sleep(i * ramp / slots)
        while time.monotonic() < w1:
            rec: dict[str, float] = {}
            recs.append(rec)
            try:
                await stream_once(client, url, model, counter=counter, rec=rec)
            except (httpx.HTTPError, RuntimeError) as exc:
                errors.append(repr(exc)[:200])
                await asyncio.sleep(0.05)

    tasks = [asyncio.ensure_future(slot(i)) for i in range(slots)]
    try:
        await asyncio.sleep(max(0.0, w0 - time.monotonic()))
        e0 = counter[0]
        if on_window:
            on_window(0)
        await asyncio.sleep(max(0.0, w1 - time.monotonic()))
        e1 = counter[0]
        if on_window:
            on_window(1)
        end = time.monotonic()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    ttfc, censored = [], 0
    for rec in recs:
        t0 = rec.get("t0")
        if t0 is None or not (w0 <= t0 < w1):
            continue
        if "t1" in rec and rec["t1"] <= end:
            ttfc.append((rec["t1"] - t0) * 1e3)
        else:
            ttfc.append((end - t0) * 1e3)
            censored += 1
    return {"events": e1 - e0, "window_s": end - w0, "ttfc_ms": ttfc,
            "censored": censored, "started": len(ttfc), "errors": errors[:5], "n_errors": len(errors)}


# ---------------------------------------------------------------------- background mode


def response_text(obj: dict[str, Any]) -> str:
    out = []
    for item in obj.get("output") or []:
        if item.get("type") == "message":
            for part in item.get("content") or []:
                if part.get("type") == "output_text":
                    out.append(part.get("text") or "")
    return "".join(out)


async def create_background(client: httpx.AsyncClient, base: str, model: str) -> tuple[str, str]:
    tag = nonce()
    r = await client.post(f"{base}/v1/responses", headers=HEADERS,
                          json={"model": model, "input": tag, "background": True})
    if r.status_code != 200:
        raise RuntimeError(f"POST {base}/v1/responses: HTTP {r.status_code}: {r.text[:300]}")
    obj = r.json()
    if obj.get("status") not in ("queued", "in_progress"):
        raise RuntimeError(f"background create answered status {obj.get('status')!r}: {r.text[:300]}")
    return str(obj["id"]), tag


@dataclass
class Followed:
    seen: list[tuple[float, int]] = field(default_factory=list)  # (time.monotonic(), text length) on growth
    polls: int = 0
    status: str = ""
    text: str = ""
    error: Any = None


async def get_once(client: httpx.AsyncClient, base: str, rid: str) -> dict[str, Any]:
    r = await client.get(f"{base}/v1/responses/{rid}", headers=HEADERS)
    if r.status_code != 200:
        raise RuntimeError(f"GET {base}/v1/responses/{rid}: HTTP {r.status_code}: {r.text[:300]}")
    return r.json()  # type: ignore[no-any-return]


async def follow(client: httpx.AsyncClient, base: str, rid: str, mode: str, interval: float,
                 timeout: float = 300.0) -> Followed:
    """Poll every `interval` s (on a fixed schedule; a late poll does not shift the next ones) until
    a terminal status. mode "get": GET /v1/responses/{id} (the snapshot, OpenAI's way);
    "poll": polystream's GET /v1/responses/{id}/poll?cursor=N (only what is new)."""
    out = Followed()
    cursor = 0
    start = tick = time.monotonic()
    while time.monotonic() - start < timeout:
        if mode == "get":
            obj = await get_once(client, base, rid)
            now = time.monotonic()
            text, status = response_text(obj), str(obj.get("status"))
            out.error = obj.get("error")
        else:
            r = await client.get(f"{base}/v1/responses/{rid}/poll", params={"cursor": cursor}, headers=HEADERS)
            if r.status_code != 200:
                raise RuntimeError(f"poll {rid}: HTTP {r.status_code}: {r.text[:300]}")
            obj = r.json()
            now = time.monotonic()
            text, status, cursor = out.text + (obj.get("text") or ""), str(obj.get("status")), int(obj["cursor"])
        out.polls += 1
        if len(text) > len(out.text):
            out.seen.append((now, len(text)))
        out.text, out.status = text, status
        if status in TERMINAL:
            return out
        tick += interval
        while tick < time.monotonic():  # missed ticks are skipped, not bunched
            tick += interval
        await asyncio.sleep(tick - time.monotonic())
    raise RuntimeError(f"{rid} not finished after {timeout:.0f} s (status {out.status})")


class TapReader:
    """The SSE tap's per-response event times, by tag."""

    def __init__(self, proc: Proc) -> None:
        self.proc = proc
        self.by_tag: dict[str, list[float]] = {}

    async def times(self, tag: str, timeout: float = 120.0) -> list[float]:
        deadline = time.monotonic() + timeout
        while tag not in self.by_tag:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"the upstream tap saw no finished stream for {tag}")
            try:
                line = await asyncio.to_thread(self.proc.lines.get, True, min(left, 1.0))
            except queue.Empty:
                continue
            rec = json.loads(line)
            if isinstance(rec, dict) and "times" in rec:
                self.by_tag[str(rec.get("tag"))] = rec["times"]
        return self.by_tag.pop(tag)


def lags(seen: list[tuple[float, int]], times: list[float], cumulative: list[int]) -> tuple[list[float], int]:
    """For each upstream event that added text: when a poller first saw text at least that long,
    minus when the event reached the tap. Returns (lags in s, events never seen)."""
    out: list[float] = []
    missing = 0
    j = 0
    prev = 0
    for t_up, length in zip(times, cumulative):
        if length > prev:
            while j < len(seen) and seen[j][1] < length:
                j += 1
            if j < len(seen):
                out.append(seen[j][0] - t_up)
            else:
                missing += 1
        prev = length
    return out, missing
