#!/usr/bin/env python3
"""SSE decoding throughput: polystream vs httpx-sse, openai-python and sseclient-py.

One command, one run, one in-memory OpenAI-style stream shared by every decoder:

    python benches/sse_bench.py                  # ~100 MB, best of 3
    python benches/sse_bench.py --mb 10 --runs 2 # quick look

The stream (``chat.completion.chunk`` events with varied content deltas, raw UTF-8 as OpenAI
sends it, ending ``data: [DONE]``) is fed to each decoder twice: cut into 64 KiB pieces, and one
event per piece (each piece exactly one ``data: …\\n\\n``). Every decoder is driven the way its
library drives it (see the ``*_decoders`` factories below). Before any timing, each decoder/feed-mode
pair is run once collecting every event's data and checked against the generated stream, so a
fast-but-wrong decoder cannot win. Timed runs (best of ``--runs``, taken round-robin across the
decoders so a burst of machine load cannot sink every sample of one row) also check the count.

Prints a table and writes JSON (``benches/results/sse.json``) and a chart of events/s at 64 KiB
feeds (``benches/results/sse.png``, needs matplotlib). Peers come from PyPI:
``pip install httpx httpx-sse openai sseclient-py matplotlib``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

HERE = Path(__file__).resolve().parent
PIECE = 64 * 1024

# --------------------------------------------------------------------------------------------
# The stream
# --------------------------------------------------------------------------------------------

_WORDS = (
    "the of and to in is that it for as with was on be by this are or from at an which but not "
    "have has can will if more when all there so about one would each into out up time than "
    "stream decoder token model response function value request server event chunk latency "
    "throughput buffer parser python rust benchmark example however therefore because result"
).split()
_PUNCT = [".", ",", ";", ":", "!", "?", ")", "(", "'s", "-"]
_EXOTIC = [
    "\n", "\n\n", '"', "\\", "\t", "é", "ü", "—", "…", "’", "“", "”", "中文", "日本語", "한국어",
    "🙂", "🚀", "∑", "→", "```", "**", "`x`", "1", "42", "3.14", "2024",
]


def _content_deltas(rng: random.Random) -> Iterator[str]:
    """Token-like deltas: mostly ' word', sometimes punctuation, newlines, escapes, non-ASCII."""
    words, punct, exotic = _WORDS, _PUNCT, _EXOTIC
    while True:
        r = rng.random()
        if r < 0.72:
            w = rng.choice(words)
            yield (" " + w) if rng.random() < 0.85 else w
        elif r < 0.84:
            yield rng.choice(punct)
        elif r < 0.97:
            yield rng.choice(exotic)
        else:  # a longer multi-word delta, as some models/providers batch tokens
            yield " " + " ".join(rng.choice(words) for _ in range(rng.randint(2, 8)))


def make_stream(mb: float, seed: int = 20240801) -> tuple[list[bytes], list[str]]:
    """Return (events, data): each event's exact bytes, and each event's decoded data string."""
    rng = random.Random(seed)
    cid = "chatcmpl-" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
                                for _ in range(29))
    head = (
        '{"id":"%s","object":"chat.completion.chunk","created":1730419200,'
        '"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_f3927aa00d","choices":[{"index":0,'
        % cid
    )
    first = head + '"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]}'
    last = head + '"delta":{},"logprobs":null,"finish_reason":"stop"}]}'
    mid_pre = head + '"delta":{"content":'
    mid_post = '},"logprobs":null,"finish_reason":null}]}'

    target = int(mb * 1_000_000)
    data: list[str] = [first]
    size = len(first.encode()) + 8
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    for delta in _content_deltas(rng):
        if size >= target:
            break
        d = mid_pre + dumps(delta) + mid_post
        data.append(d)
        size += len(d.encode()) + 8  # "data: " + "\n\n"
    data.append(last)
    data.append("[DONE]")
    events = [b"data: " + d.encode() + b"\n\n" for d in data]
    return events, data


def expected_content(data: list[str]) -> str:
    out = []
    for d in data[:-1]:
        delta = json.loads(d)["choices"][0]["delta"]
        out.append(delta.get("content") or "")
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Decoders. Each has `count(pieces) -> int` (timed) and `collect(pieces) -> list[str]` (checked).
# --------------------------------------------------------------------------------------------


@dataclass
class Decoder:
    name: str
    count: Callable[[list[bytes]], int]
    collect: Callable[[list[bytes]], list[str]]
    unit: str = "events"  # "events" or "chunks"
    note: str = ""
    context: bool = False  # a context row, not a peer SSE decoder


def polystream_decoders() -> list[Decoder]:
    import polystream

    def count(pieces: list[bytes]) -> int:
        d = polystream.SSEDecoder()
        feed = d.feed
        n = 0
        for p in pieces:
            n += len(feed(p))
        return n + len(d.finish())

    def count_touch(pieces: list[bytes]) -> int:
        d = polystream.SSEDecoder()
        feed = d.feed
        n = 0
        for p in pieces:
            for ev in feed(p):
                ev.data
                n += 1
        return n + len(d.finish())

    def collect(pieces: list[bytes]) -> list[str]:
        d = polystream.SSEDecoder()
        out = []
        for p in pieces:
            for ev in d.feed(p):
                assert ev.event == "message", ev.event
                out.append(ev.data)
        d.finish()
        return out

    def count_chunks(pieces: list[bytes]) -> int:
        d = polystream.ChunkDecoder("openai_chat")
        feed = d.feed
        n = 0
        for p in pieces:
            n += len(feed(p))
        return n + len(d.finish())

    def collect_chunks(pieces: list[bytes]) -> list[str]:
        # Checked differently (content, ids, count): see verify().
        d = polystream.ChunkDecoder("openai_chat")
        out = []
        for p in pieces:
            out.extend(d.feed(p))
        out.extend(d.finish())
        return out  # type: ignore[return-value]

    return [
        Decoder("polystream", count, collect,
                note="SSEDecoder.feed -> list[ServerSentEvent]; data already decoded to str"),
        Decoder("polystream + .data", count_touch, collect,
                note="same, iterating the list and reading every event's .data", context=True),
        Decoder("polystream ChunkDecoder", count_chunks, collect_chunks, unit="chunks",
                note='ChunkDecoder("openai_chat"): SSE + full JSON decode to ChatCompletionChunk objects',
                context=True),
    ]


class _FakeResponse:
    """Stands in for httpx.Response in EventSource: `headers` and an `iter_text()` that is
    httpx.Response.iter_text() (httpx's own TextDecoder + TextChunker) minus the network."""

    headers = {"content-type": "text/event-stream"}

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self._pieces = pieces

    def iter_text(self) -> Iterator[str]:
        from httpx._decoders import TextChunker, TextDecoder

        decoder = TextDecoder(encoding="utf-8")
        chunker = TextChunker(chunk_size=None)
        for byte_content in self._pieces:
            text_content = decoder.decode(byte_content)
            for chunk in chunker.decode(text_content):
                yield chunk
        text_content = decoder.flush()
        for chunk in chunker.decode(text_content):
            yield chunk
        for chunk in chunker.flush():
            yield chunk


def httpx_sse_decoders() -> list[Decoder]:
    import httpx
    from httpx_sse import EventSource

    def count(pieces: list[bytes]) -> int:
        n = 0
        for _ in EventSource(_FakeResponse(pieces)).iter_sse():  # type: ignore[arg-type]
            n += 1
        return n

    def collect(pieces: list[bytes]) -> list[str]:
        return [s.data for s in EventSource(_FakeResponse(pieces)).iter_sse()]  # type: ignore[arg-type]

    def _response(pieces: list[bytes]) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=iter(pieces))

    def count_full(pieces: list[bytes]) -> int:
        n = 0
        for _ in EventSource(_response(pieces)).iter_sse():
            n += 1
        return n

    def collect_full(pieces: list[bytes]) -> list[str]:
        return [s.data for s in EventSource(_response(pieces)).iter_sse()]

    return [
        Decoder("httpx-sse", count, collect,
                note="EventSource.iter_sse(): httpx TextDecoder -> SSELineDecoder -> SSEDecoder.decode per line"),
        Decoder("httpx-sse (via httpx.Response)", count_full, collect_full,
                note="same over a real httpx.Response(content=iterator): adds httpx's byte plumbing",
                context=True),
    ]


def openai_decoders() -> list[Decoder]:
    from openai._streaming import SSEDecoder

    def count(pieces: list[bytes]) -> int:
        n = 0
        for _ in SSEDecoder().iter_bytes(iter(pieces)):
            n += 1
        return n

    def collect(pieces: list[bytes]) -> list[str]:
        return [s.data for s in SSEDecoder().iter_bytes(iter(pieces))]

    def count_json(pieces: list[bytes]) -> int:
        n = 0
        for sse in SSEDecoder().iter_bytes(iter(pieces)):
            if sse.data.startswith("[DONE]"):
                break
            sse.json()
            n += 1
        return n

    def collect_json(pieces: list[bytes]) -> list[str]:
        out = []
        for sse in SSEDecoder().iter_bytes(iter(pieces)):
            if sse.data.startswith("[DONE]"):
                break
            out.append(sse.json())
        return out  # type: ignore[return-value]

    return [
        Decoder("openai-python", count, collect,
                note="openai._streaming.SSEDecoder().iter_bytes(chunks), as Stream._iter_events does"),
        Decoder("openai-python + json.loads", count_json, collect_json, unit="chunks",
                note="same plus sse.json() per event to dicts, as Stream.__stream__ does (no pydantic)",
                context=True),
    ]


def sseclient_decoders() -> list[Decoder]:
    import sseclient

    def count(pieces: list[bytes]) -> int:
        n = 0
        for _ in sseclient.SSEClient(iter(pieces)).events():
            n += 1
        return n

    def collect(pieces: list[bytes]) -> list[str]:
        return [e.data for e in sseclient.SSEClient(iter(pieces)).events()]

    return [Decoder("sseclient-py", count, collect,
                    note="SSEClient(generator of chunks).events()")]


def floor_decoder(events: list[bytes]) -> Decoder:
    """Not a decoder: CPython's own cost of making one str per event from bytes already cut out,
    in lists of ~250 (as many as one 64 KiB feed holds). No SSE decoder that hands out decoded
    `str` data can beat it, so it bounds what "events/s into Python" can mean on this machine."""
    datas = [e[6:-2] for e in events]  # strip "data: " and "\n\n"
    batch = 256

    def count(pieces: list[bytes]) -> int:
        decode = bytes.decode
        n = 0
        for i in range(0, len(datas), batch):
            n += len(list(map(decode, datas[i:i + batch])))
        return n

    def collect(pieces: list[bytes]) -> list[str]:
        return [d.decode() for d in datas]

    return Decoder("floor: bytes.decode() per event", count, collect, context=True,
                   note="reference, not a decoder: one str per event from pre-cut bytes, ignores the feed")


def all_decoders(events: list[bytes]) -> list[Decoder]:
    out = polystream_decoders()
    for load in (httpx_sse_decoders, openai_decoders, sseclient_decoders):
        try:
            out.extend(load())
        except ImportError as e:
            print(f"skipping {load.__name__}: {e} (pip install httpx httpx-sse openai sseclient-py)",
                  file=sys.stderr)
    out.append(floor_decoder(events))
    return out


# --------------------------------------------------------------------------------------------
# Checking and timing
# --------------------------------------------------------------------------------------------


def verify(dec: Decoder, pieces: list[bytes], data: list[str], content: str) -> str | None:
    """None if `dec` decodes `pieces` to exactly the generated stream, else what went wrong."""
    got = dec.collect(pieces)
    if dec.name == "polystream ChunkDecoder":
        chunks: list[Any] = got
        if len(chunks) != len(data) - 1:
            return f"{len(chunks)} chunks, expected {len(data) - 1}"
        text = "".join((c.choices[0].delta.content or "") for c in chunks)
        if text != content:
            return "content differs"
        ids = {c.id for c in chunks}
        if len(ids) != 1 or chunks[-1].choices[0].finish_reason != "stop":
            return f"ids {ids!r} / finish_reason {chunks[-1].choices[0].finish_reason!r}"
        return None
    if dec.name == "openai-python + json.loads":
        dicts: list[Any] = got
        if len(dicts) != len(data) - 1:
            return f"{len(dicts)} chunks, expected {len(data) - 1}"
        text = "".join((d["choices"][0]["delta"].get("content") or "") for d in dicts)
        return None if text == content else "content differs"
    if len(got) != len(data):
        return f"{len(got)} events, expected {len(data)}"
    if got != data:
        i = next(i for i, (a, b) in enumerate(zip(got, data)) if a != b)
        return f"event {i} data differs: {got[i][:80]!r} != {data[i][:80]!r}"
    return None


def _rss_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def time_once(dec: Decoder, pieces: list[bytes], expect: int) -> tuple[float, float, int | None]:
    """One timed pass: (wall s, process CPU s, rise of peak RSS in kB or None)."""
    gc.collect()
    can_peak = _reset_peak_rss()
    base = _rss_kb("VmRSS:")
    c0 = time.process_time()
    t0 = time.perf_counter()
    n = dec.count(pieces)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    if n != expect:
        raise SystemExit(f"{dec.name}: counted {n} {dec.unit}, expected {expect}")
    hwm = _rss_kb("VmHWM:")
    peak = max(0, hwm - base) if can_peak and base is not None and hwm is not None else None
    return dt, cpu, peak


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _fmt_rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    if x >= 1e3:
        return f"{x / 1e3:.0f} k"
    return f"{x:.0f}"


def print_table(rows: list[dict[str, Any]]) -> None:
    hdr = ["decoder", "feed", "events/s", "MB/s", "µs/event", "vs polystream", "cpu/wall", "peak ΔRSS MB"]
    body = []
    for r in rows:
        body.append([
            r["decoder"] + (" *" if r["context"] else ""),
            r["feed"],
            _fmt_rate(r["events_per_s"]),
            f"{r['mb_per_s']:.0f}",
            f"{r['us_per_event']:.3f}",
            f"{r['relative_to_polystream']:.3f}x",
            f"{r['cpu_over_wall']:.2f}",
            "-" if r["peak_rss_delta_mb"] is None else f"{r['peak_rss_delta_mb']:.1f}",
        ])
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(hdr)]
    right = {2, 3, 4, 5, 6, 7}

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    print(line(hdr))
    print("  ".join("-" * w for w in widths))
    last_feed = None
    for r, b in zip(rows, body):
        if last_feed is not None and r["feed"] != last_feed:
            print()
        last_feed = r["feed"]
        print(line(b))
    print("\n* context row, not a like-for-like SSE decoder comparison. 'events/s' counts chunks for "
          "the JSON rows.\nMB = 10^6 bytes of stream; vs polystream = this row's events/s ÷ "
          "polystream SSEDecoder's, same feed mode.\n"
          "cpu/wall: process CPU time over wall time of the best run (well under 1.00: the machine was busy).\n"
          "peak ΔRSS: rise of the process's peak RSS during a run (input already resident).")


def write_chart(rows: list[dict[str, Any]], path: Path, meta: dict[str, Any]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart", file=sys.stderr)
        return False
    sel = [r for r in rows if r["feed"] == "64KiB"]
    sel.sort(key=lambda r: r["events_per_s"])
    names = [r["decoder"] + (" *" if r["context"] else "") for r in sel]
    vals = [r["events_per_s"] / 1e6 for r in sel]
    colors = ["#d9534f" if r["decoder"].startswith("polystream")
              else "#c8c8c8" if r["decoder"].startswith("floor") else "#7f8c8d" for r in sel]
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(sel) + 1.6))
    bars = ax.barh(names, vals, color=colors)
    for b, v in zip(bars, vals):
        ax.text(b.get_width(), b.get_y() + b.get_height() / 2, f" {v:.2f} M", va="center", fontsize=9)
    ax.axvline(10, color="#333", ls="--", lw=1)
    ax.text(10, -0.75, " 10 M/s target", fontsize=8, va="bottom")
    ax.set_xlabel("million events/s into Python (64 KiB feeds, higher is better)")
    ax.set_xlim(0, max(max(vals), 10) * 1.18)
    ax.set_title(f"SSE decoding, {meta['stream_mb']:.0f} MB OpenAI-style stream, "
                 f"{meta['events']:,} events — {meta['date']}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for pkg in ("polystream", "httpx", "httpx-sse", "openai", "sseclient-py"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _git_rev() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                              text=True, check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=100.0, help="stream size in MB (default 100)")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per row, best kept (default 3)")
    ap.add_argument("--json", type=Path, default=HERE / "results" / "sse.json", help="JSON output path")
    ap.add_argument("--png", type=Path, default=HERE / "results" / "sse.png", help="chart output path")
    ap.add_argument("--no-chart", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated substrings: run only matching decoders")
    ap.add_argument("--feeds", default="64KiB,1-event", help="feed modes to run (64KiB,1-event)")
    args = ap.parse_args(argv)

    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    t_gen = time.perf_counter()
    events, data = make_stream(args.mb)
    stream = b"".join(events)
    content = expected_content(data)
    feeds = {
        "64KiB": [stream[i:i + PIECE] for i in range(0, len(stream), PIECE)],
        "1-event": events,
    }
    feeds = {k: v for k, v in feeds.items() if k in args.feeds.split(",")}
    n_events = len(events)
    nbytes = len(stream)
    print(f"stream: {nbytes / 1e6:.1f} MB, {n_events:,} events, {nbytes / n_events:.0f} B/event, "
          f"{len(feeds.get('64KiB', ()))} x 64 KiB pieces (generated in {time.perf_counter() - t_gen:.1f} s)")

    decoders = all_decoders(events)
    if args.only:
        keys = [k.strip() for k in args.only.split(",") if k.strip()]
        decoders = [d for d in decoders if any(k in d.name for k in keys)]

    rows: list[dict[str, Any]] = []
    for feed_name, pieces in feeds.items():
        for dec in decoders:
            err = verify(dec, pieces, data, content)
            gc.collect()
            if err is not None:
                raise SystemExit(f"{dec.name} ({feed_name}) decoded the stream wrongly: {err}")
        print(f"  {feed_name}: all {len(decoders)} decoders verified; timing {args.runs} rounds", flush=True)
        # Round-robin: each round times every decoder once, so a burst of load on the machine
        # lands on one sample of several rows rather than on every sample of one row.
        samples: dict[str, list[tuple[float, float, int | None]]] = {d.name: [] for d in decoders}
        for _ in range(args.runs):
            for dec in decoders:
                expect = n_events if dec.unit == "events" else n_events - 1
                samples[dec.name].append(time_once(dec, pieces, expect))
        for dec in decoders:
            expect = n_events if dec.unit == "events" else n_events - 1
            ss = samples[dec.name]
            best_wall, best_cpu, _ = min(ss, key=lambda x: x[0])
            peaks = [p for _, _, p in ss if p is not None]
            row: dict[str, Any] = {
                "decoder": dec.name,
                "feed": feed_name,
                "context": dec.context,
                "unit": dec.unit,
                "items": expect,
                "bytes": nbytes,
                "best_s": best_wall,
                "times_s": [w for w, _, _ in ss],
                "cpu_times_s": [c for _, c, _ in ss],
                "cpu_over_wall": best_cpu / best_wall,
                "events_per_s": expect / best_wall,
                "mb_per_s": nbytes / best_wall / 1e6,
                "us_per_event": best_wall / expect * 1e6,
                "peak_rss_delta_mb": max(peaks) / 1024 if peaks else None,
                "note": dec.note,
                "verified": True,
            }
            rows.append(row)
            print(f"  {feed_name:>7}  {dec.name:<32} {_fmt_rate(row['events_per_s']):>9} {dec.unit}/s  "
                  f"{row['mb_per_s']:7.0f} MB/s   runs: {', '.join(f'{x:.3f}' for x in row['times_s'])} s",
                  flush=True)
    for feed_name in feeds:
        base = next((r for r in rows if r["feed"] == feed_name and r["decoder"] == "polystream"), None)
        for r in rows:
            if r["feed"] == feed_name:
                r["relative_to_polystream"] = r["events_per_s"] / base["events_per_s"] if base else float("nan")

    print()
    print_table(rows)

    meta = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "git": _git_rev(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu(),
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "versions": _versions(),
        "stream_mb": nbytes / 1e6,
        "bytes": nbytes,
        "events": n_events,
        "piece_bytes": PIECE,
        "runs": args.runs,
        "timing": "wall time (time.perf_counter) of one full pass over the pre-cut pieces; best of runs, taken round-robin across decoders",
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    if not args.no_chart and "64KiB" in feeds and write_chart(rows, args.png, meta):
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
