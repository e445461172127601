#!/usr/bin/env python3
"""Client streaming cost: polystream vs the openai SDK, litellm, liter-llm, httpx + httpx-sse and
the raw-httpx floor, all against the same local replay server, side by side in one run.

    python benches/client_bench.py            # everything, best of 3 (≈ 10 min on 2 cores)
    python benches/client_bench.py --quick    # one run each, for a smoke check
    python benches/client_bench.py --clients polystream,floor --scenarios 1k

Scenarios: one stream of 1,000 chunks, one of 20,000, and 100 concurrent async streams of 1,000
chunks each; each served two ways by `polystream.testing.replay` running in its own process:
"event" (one HTTP chunk per SSE event, as providers send) and "large" (a Content-Length body
written in 64 KiB pieces, so the client reads large blocks). Every client does the same work:
iterate all chunks and read `choices[0].delta.content` into a list (the floor only reads bytes).

Each (client, scenario, framing) runs in a fresh subprocess: one warm-up round (imports, client
set-up, connection pool: as many streams at once as the scenario has), then `--runs` measured
repetitions. Per run: process CPU time (all threads, user + sys; other threads' CPU in a 20 ms
settle after the stream counts too, so deferred work done for the stream is included, but not the
main thread's own sleep) per chunk, wall chunks/s, time to first chunk (from the call, pooled
connection; at 100 concurrent the median over streams, which mostly shows how the event loop
takes turns), and at the end the subprocess's peak RSS (VmHWM). Reported: CPU and chunks/s best
of the runs (median CPU beside it), TTFC the median over runs.
"Chunks" are the stream's chat.completion.chunk events (the same count for every client).

Correctness gate: every decoding client's accumulated text must equal the fixture's, for every
stream; the floor must read every body byte. A mismatch marks the row FAIL and the exit status 1.

Also `stream_chunk_builder` over 20,000 chunks: polystream's (on its own chunks) vs litellm's
(`litellm.stream_chunk_builder` on litellm's own chunk objects), µs per chunk, CPU time, best of
`--runs` (polystream's, ~2 ms a run, best of at least 10).

Writes benches/results/client.json and benches/results/client.png (matplotlib). The fixtures and
the client adapters live in client_peers.py.
Peers: pip install openai litellm liter-llm httpx httpx-sse orjson matplotlib
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from client_peers import FACTORIES, MESSAGES, _litellm, digest, make_fixture  # noqa: E402

CLIENTS = ["polystream", "openai", "litellm", "liter-llm", "httpx-sse", "floor"]
LABELS = {
    "polystream": "polystream",
    "openai": "openai SDK",
    "litellm": "litellm",
    "liter-llm": "liter-llm",
    "httpx-sse": "httpx + httpx-sse + orjson",
    "floor": "raw httpx floor (bytes only)",
}
PACKAGES = {"polystream": "polystream", "openai": "openai", "litellm": "litellm", "liter-llm": "liter-llm",
            "httpx-sse": "httpx-sse", "floor": "httpx"}
# name -> (chunks per stream, concurrent streams)
SCENARIOS = {"1k": (1000, 1), "20k": (20000, 1), "100x1k": (1000, 100)}
FRAMINGS = ("event", "large")
SETTLE = 0.02  # s of idle after a run for other threads' deferred work for the stream to count

# --------------------------------------------------------------------------------------------
# Worker: one (client, scenario, framing) in a fresh process
# --------------------------------------------------------------------------------------------


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child spawned by a larger
    # parent would report the parent's size. VmHWM is the high-water mark of this process's own mm.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncio
    import gc

    t0w, t0c = time.perf_counter(), time.process_time()
    sync, asyn = FACTORIES[spec["client"]]()
    out: dict[str, Any] = {"import_s": time.perf_counter() - t0w, "import_cpu_s": time.process_time() - t0c}
    streams, per_stream, runs = spec["streams"], spec["chunks"], spec["runs"]
    total = streams * per_stream
    mode = "sync" if (streams == 1 and sync is not None) else "async"
    out["mode"] = mode
    results: list[Any] = []
    timings: list[dict[str, float]] = []

    def record(w0: float, c0: float, w1: float, firsts: list[float]) -> None:
        # Work other threads still do for the stream (litellm's logging threads, liter-llm's
        # runtime) counts; the main thread's own cost of sleeping and waking does not (on this VM
        # ~50-75 µs, 0.05-0.075 µs per chunk at 1k, charged alike to every client before).
        t_end = time.thread_time()
        time.sleep(SETTLE)
        c1 = time.process_time() - (time.thread_time() - t_end)
        ttfc = sorted(f - w0 for f in firsts)
        timings.append({
            "cpu_us_per_chunk": (c1 - c0) / total * 1e6,
            "chunks_per_s": total / (w1 - w0),
            "ttfc_ms": statistics.median(ttfc) * 1e3 if ttfc else float("nan"),
            "ttfc_max_ms": ttfc[-1] * 1e3 if ttfc else float("nan"),
        })

    if mode == "sync":
        assert sync is not None
        sync(spec["warm_url"], lambda: None)
        out["rss_after_warmup_mb"] = _rss_now_mb()
        for _ in range(runs):
            gc.collect()
            firsts: list[float] = []
            mark = lambda: firsts.append(time.perf_counter())  # noqa: E731
            w0, c0 = time.perf_counter(), time.process_time()
            results.append([sync(spec["url"], mark)])
            record(w0, c0, time.perf_counter(), firsts)
    else:
        async def main() -> None:
            # As many warm-up streams at once as the runs have, so every client's pool holds its
            # connections before the first measured run (else that run alone pays 99 connects).
            await asyncio.gather(*(asyn(spec["warm_url"], lambda: None) for _ in range(streams)))
            out["rss_after_warmup_mb"] = _rss_now_mb()
            for _ in range(runs):
                gc.collect()
                firsts: list[float] = []
                mark = lambda: firsts.append(time.perf_counter())  # noqa: E731
                w0, c0 = time.perf_counter(), time.process_time()
                got = await asyncio.gather(*(asyn(spec["url"], mark) for _ in range(streams)))
                w1 = time.perf_counter()
                results.append(got)
                await asyncio.sleep(0)  # let transports settle before the CPU reading
                record(w0, c0, w1, firsts)

        asyncio.run(main())

    out["peak_rss_mb"] = _peak_rss_mb()
    out["runs"] = timings
    flat = [r for run in results for r in run]
    out["checks"] = sorted({(str(r) if isinstance(r, int) else digest(r)) for r in flat})
    return out


def builder_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Collect one 20k-chunk stream with the client, then time its stream_chunk_builder."""
    import gc

    runs, n = spec["runs"], spec["chunks"]
    if spec["client"] == "polystream":
        runs = max(10, 5 * runs)  # a run is ~2 ms: take more of them so one descheduling can't decide
    chunks: list[Any] = []
    build: Callable[[], Any]
    if spec["client"] == "polystream":
        import polystream

        chunks = list(polystream.completion(model="gpt-4o", messages=MESSAGES, stream=True, api_base=spec["url"], api_key="x"))
        build = lambda: polystream.stream_chunk_builder(chunks)  # noqa: E731
    else:
        import litellm

        sync, _ = _litellm()
        assert sync is not None
        sync(spec["url"], lambda: None, chunks)  # litellm's sync adapter keeps the chunks when given a list
        build = lambda: litellm.stream_chunk_builder(chunks, messages=MESSAGES)  # noqa: E731
    times: list[float] = []
    result: Any = None
    for _ in range(runs):
        gc.collect()
        c0 = time.process_time()
        result = build()
        times.append((time.process_time() - c0) / n * 1e6)
    content = str(result.choices[0].message.content)
    return {"us_per_chunk": min(times), "median_us_per_chunk": statistics.median(times), "runs_us": times,
            "chunks_collected": len(chunks), "checks": [digest(content)], "peak_rss_mb": _peak_rss_mb()}


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


class Server:
    """`python -m polystream.testing.replay` in its own process (never sharing the client's GIL)."""

    def __init__(self, fixture: Path, framing: str) -> None:
        args = [sys.executable, "-m", "polystream.testing.replay", "--port", "0", "--provider", "openai",
                "--fixture", str(fixture)]
        args += ["--length-framed"] if framing == "large" else ["--split", "event"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http"):
            self.proc.kill()
            raise RuntimeError(f"replay server did not start ({fixture}, {framing}): {line!r}")
        self.base = line + "/v1"
        self.info = self.proc.stdout.readline().strip()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def summarise(got: dict[str, Any]) -> None:
    """Best of the runs for CPU (min) and throughput (max); TTFC as the median over runs (each
    run's own figure is already the median over its streams), its worst stream beside it."""
    runs = got["runs"]
    cpu = [r["cpu_us_per_chunk"] for r in runs]
    got["cpu_us_per_chunk"] = min(cpu)
    got["median_cpu_us_per_chunk"] = statistics.median(cpu)
    got["spread_pct"] = (max(cpu) - min(cpu)) / min(cpu) * 100
    got["chunks_per_s"] = max(r["chunks_per_s"] for r in runs)
    got["ttfc_ms"] = statistics.median(r["ttfc_ms"] for r in runs)
    got["ttfc_max_ms"] = max(r["ttfc_max_ms"] for r in runs)


def run_worker(kind: str, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    cmd = [sys.executable, str(Path(__file__).resolve()), f"--{kind}", json.dumps(spec)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail) or f"exit {p.returncode}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def available(client: str) -> str | None:
    """None if importable, else why not."""
    mod = {"polystream": "polystream", "openai": "openai", "litellm": "litellm", "liter-llm": "liter_llm",
           "httpx-sse": "httpx_sse", "floor": "httpx"}[client]
    import importlib.util

    if importlib.util.find_spec(mod) is None:
        return f"{PACKAGES[client]} not installed"
    if client == "httpx-sse" and importlib.util.find_spec("orjson") is None:
        return "orjson not installed"
    return None


def version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "-"


def _extension_info() -> dict[str, Any]:
    """Which build of polystream._core was measured (it is rebuilt often during development)."""
    import importlib.util

    spec = importlib.util.find_spec("polystream._core")
    if spec is None or not spec.origin:
        return {}
    path = Path(spec.origin)
    data = path.read_bytes()
    return {"file": path.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()[:16],
            "mtime": _dt.datetime.fromtimestamp(path.stat().st_mtime).isoformat(timespec="seconds")}


def fmt(x: Any, nd: int = 1) -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "-"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    return str(x)


def table(rows: list[dict[str, Any]], builder: list[dict[str, Any]]) -> str:
    hdr = ["scenario", "framing", "client", "mode", "CPU µs/chunk", "median", "above floor", "chunks/s",
           "TTFC ms", "peak RSS MB", "import s", "check"]
    lines = [hdr]
    for r in rows:
        if "error" in r:
            lines.append([r["scenario"], r["framing"], LABELS[r["client"]], "-", "n/a", "", "", "", "", "", "", r["error"][:70]])
            continue
        lines.append([r["scenario"], r["framing"], LABELS[r["client"]], r["mode"], fmt(r["cpu_us_per_chunk"], 2),
                      fmt(r["median_cpu_us_per_chunk"], 2), fmt(r.get("above_floor_us"), 2), fmt(r["chunks_per_s"], 0),
                      fmt(r["ttfc_ms"], 2), fmt(r["peak_rss_mb"], 1), fmt(r["import_s"], 2), r["check"]])
    for b in builder:
        if "error" in b:
            lines.append(["builder 20k", "-", LABELS[b["client"]], "-", "n/a", "", "", "", "", "", "", b["error"][:70]])
        else:
            lines.append(["builder 20k", "-", LABELS[b["client"]] + " stream_chunk_builder", "-", fmt(b["us_per_chunk"], 3),
                          fmt(b["median_us_per_chunk"], 3), "", "", "", fmt(b["peak_rss_mb"], 1), "", b["check"]])
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(hdr))]
    out = []
    for k, line in enumerate(lines):
        out.append("| " + " | ".join(str(c).ljust(w) for c, w in zip(line, widths)) + " |")
        if k == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def targets(rows: list[dict[str, Any]], builder: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        if r["client"] != "polystream" or "error" in r:
            continue
        where = f"{r['scenario']}/{r['framing']}"
        if r["framing"] == "event" and r.get("above_floor_us") is not None:
            out.append({"target": f"≤ 2 µs/chunk above the floor ({where})", "value": r["above_floor_us"],
                        "met": r["above_floor_us"] <= 2.0})
        if r["framing"] == "large":
            out.append({"target": f"≤ 1 µs/chunk in all ({where})", "value": r["cpu_us_per_chunk"],
                        "met": r["cpu_us_per_chunk"] <= 1.0})
        out.append({"target": f"peak RSS < 60 MB ({where})", "value": r["peak_rss_mb"], "met": r["peak_rss_mb"] < 60})
    for b in builder:
        if b["client"] == "polystream" and "error" not in b:
            out.append({"target": "stream_chunk_builder ≤ 0.2 µs/chunk", "value": b["us_per_chunk"], "met": b["us_per_chunk"] <= 0.2})
    return out


def chart(rows: list[dict[str, Any]], builder: list[dict[str, Any]], path: Path, meta: dict[str, Any]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart", file=sys.stderr)
        return False
    groups = [(s, f) for s in SCENARIOS for f in FRAMINGS if any(r["scenario"] == s and r["framing"] == f for r in rows)]
    clients = [c for c in CLIENTS if any(r["client"] == c for r in rows)]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(15, 7), gridspec_kw={"width_ratios": [5, 1]})
    width = 0.8 / max(1, len(clients))
    colors = plt.get_cmap("tab10")
    for i, c in enumerate(clients):
        xs, ys = [], []
        for g, (s, f) in enumerate(groups):
            r = next((r for r in rows if r["client"] == c and r["scenario"] == s and r["framing"] == f), None)
            if r and "error" not in r:
                xs.append(g + (i - (len(clients) - 1) / 2) * width)
                ys.append(r["cpu_us_per_chunk"])
        bars = ax.bar(xs, ys, width, label=LABELS[c], color=colors(i))
        for b_, y in zip(bars, ys):
            ax.annotate(f"{y:.3g}", (b_.get_x() + b_.get_width() / 2, y), ha="center", va="bottom", fontsize=6, rotation=90)
    # polystream's targets: floor + 2 µs with one HTTP chunk per event, 1 µs in all with large reads
    for g, (s, f) in enumerate(groups):
        floor = next((r["cpu_us_per_chunk"] for r in rows if r["client"] == "floor" and r["scenario"] == s
                      and r["framing"] == f and "error" not in r), None)
        level = 1.0 if f == "large" else (floor + 2.0 if floor is not None else None)
        if level is not None:
            ax.hlines(level, g - 0.45, g + 0.45, colors="black", linestyles="dashed", linewidth=1,
                      label="polystream target" if g == 0 else None)
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{s}\n{'1 HTTP chunk/event' if f == 'event' else 'large reads'}" for s, f in groups], fontsize=8)
    ax.set_ylabel("client CPU µs per chunk (log scale, lower is better)")
    ax.set_title("Streaming client cost per chunk (best of %d, fresh process each)" % meta["runs"])
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4, frameon=False)
    ax.grid(axis="y", which="both", alpha=0.3)
    bs = [b for b in builder if "error" not in b]
    bars = bx.bar([LABELS[b["client"]] for b in bs], [b["us_per_chunk"] for b in bs],
                  color=[colors(CLIENTS.index(b["client"])) for b in bs])
    for b_, b in zip(bars, bs):
        bx.annotate(f"{b['us_per_chunk']:.3g}", (b_.get_x() + b_.get_width() / 2, b["us_per_chunk"]), ha="center", va="bottom", fontsize=8)
    bx.axhline(0.2, color="black", linestyle="dashed", linewidth=1)
    bx.annotate("target 0.2", (0, 0.2), xytext=(0, 3), textcoords="offset points", fontsize=7)
    bx.set_yscale("log")
    bx.set_title("stream_chunk_builder, 20k chunks", fontsize=9)
    bx.set_ylabel("CPU µs per chunk (log)")
    bx.tick_params(axis="x", labelsize=8)
    fig.text(0.01, 0.01, f"{meta['machine']} · Python {meta['python']} · {meta['date']}", fontsize=7, alpha=0.7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one measured run per row (default: best of 3)")
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated subset of " + ",".join(CLIENTS))
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset of " + ",".join(SCENARIOS))
    ap.add_argument("--framings", default=",".join(FRAMINGS))
    ap.add_argument("--no-builder", action="store_true")
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds per worker process")
    ap.add_argument("--json", type=Path, default=HERE / "results" / "client.json")
    ap.add_argument("--png", type=Path, default=HERE / "results" / "client.png")
    ap.add_argument("--from-json", type=Path, help="re-print the table and redraw the chart from a results file")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--builder-worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.builder_worker:
        print(json.dumps(builder_worker(json.loads(args.builder_worker))))
        return 0

    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        print(table(saved["results"], saved["builder"]))
        for t in saved["targets"]:
            print(f"{'MET ' if t['met'] else 'MISS'}  {t['target']}: {t['value']:.3f}")
        if chart(saved["results"], saved["builder"], args.png, saved["meta"]):
            print(f"wrote {args.png}")
        return 0

    runs = args.runs or (1 if args.quick else 3)
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    framings = [f.strip() for f in args.framings.split(",") if f.strip()]
    meta: dict[str, Any] = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"), "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "platform": platform.platform(), "runs": runs,
        "versions": {PACKAGES[c]: version(PACKAGES[c]) for c in CLIENTS} | {"orjson": version("orjson"), "httpx": version("httpx")},
        "method": "fresh subprocess per row; warm-up stream then best-of-runs process CPU time (all threads) per chunk",
    }
    meta["polystream_extension"] = _extension_info()
    meta["loadavg_start"] = os.getloadavg()
    missing = {c: why for c in clients if (why := available(c))}
    for c, why in missing.items():
        print(f"skipping {c}: {why}", file=sys.stderr)

    sizes = sorted({SCENARIOS[s][0] for s in scenarios} | {1000} | ({20000} if not args.no_builder else set()))
    rows: list[dict[str, Any]] = []
    builder: list[dict[str, Any]] = []
    servers: dict[tuple[int, str], Server] = {}
    with tempfile.TemporaryDirectory(prefix="polystream-bench-") as tmp:
        expected: dict[int, tuple[int, str]] = {}
        for n in sizes:
            body, text = make_fixture(n)
            (Path(tmp) / f"openai_{n}.sse").write_bytes(body)
            expected[n] = (len(body), digest(text))
        try:
            for n in sizes:
                for f in set(framings) | ({"large"} if not args.no_builder else set()):
                    servers[(n, f)] = Server(Path(tmp) / f"openai_{n}.sse", f)
            for s in scenarios:
                per_stream, streams = SCENARIOS[s]
                for f in framings:
                    for c in clients:
                        row: dict[str, Any] = {"scenario": s, "framing": f, "client": c, "chunks_per_stream": per_stream,
                                               "streams": streams}
                        if c in missing:
                            rows.append({**row, "error": missing[c]})
                            continue
                        spec = {"client": c, "url": servers[(per_stream, f)].base, "warm_url": servers[(1000, f)].base,
                                "chunks": per_stream, "streams": streams, "runs": runs}
                        print(f"… {s:7} {f:5} {c}", file=sys.stderr, flush=True)
                        got = run_worker("worker", spec, args.timeout)
                        if "error" not in got:
                            size, dig = expected[per_stream]
                            ok = got["checks"] == ([str(size)] if c == "floor" else [dig])
                            summarise(got)
                            got["check"] = "ok" if ok else "FAIL"
                        rows.append({**row, **got})
            if not args.no_builder:
                for c in ("polystream", "litellm"):
                    if c not in clients or c in missing:
                        continue
                    print(f"… builder {c}", file=sys.stderr, flush=True)
                    got = run_worker("builder-worker", {"client": c, "url": servers[(20000, "large")].base,
                                                        "chunks": 20000, "runs": runs}, args.timeout)
                    if "error" not in got:
                        got["check"] = "ok" if got["checks"] == [expected[20000][1]] else "FAIL"
                    builder.append({"client": c, **got})
        finally:
            for srv in servers.values():
                srv.stop()

    floors = {(r["scenario"], r["framing"]): r["cpu_us_per_chunk"] for r in rows if r["client"] == "floor" and "error" not in r}
    for r in rows:
        if "error" not in r and r["client"] != "floor" and (r["scenario"], r["framing"]) in floors:
            r["above_floor_us"] = r["cpu_us_per_chunk"] - floors[(r["scenario"], r["framing"])]
    meta["loadavg_end"] = os.getloadavg()
    tg = targets(rows, builder)
    print()
    print(table(rows, builder))
    print(f"\nload average {meta['loadavg_start'][0]:.2f} at start, {meta['loadavg_end'][0]:.2f} at end "
          f"({meta['machine']}); CPU time per chunk, best of {runs}")
    print()
    for t in tg:
        print(f"{'MET ' if t['met'] else 'MISS'}  {t['target']}: {t['value']:.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "results": rows, "builder": builder, "targets": tg}, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    if chart(rows, builder, args.png, meta):
        print(f"wrote {args.png}")
    failed = [r for r in rows + builder if r.get("check") == "FAIL"]
    for r in failed:
        print(f"CORRECTNESS FAIL: {r['client']} {r.get('scenario', 'builder')} {r.get('framing', '')}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
