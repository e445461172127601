#!/usr/bin/env python3
"""polystream's proxy side by side with LiteLLM's, on one replay upstream and one Redis.

    python benches/proxy_bench.py                  # everything (≈ 5 min on 2 cores)
    python benches/proxy_bench.py --quick          # fewer and shorter runs (≈ 2.5 min)
    python benches/proxy_bench.py --setup-litellm  # once: LiteLLM's proxy into benches/.venv-peers
    python benches/proxy_bench.py --from-json benches/results/proxy.json   # reprint + redraw

Starts, each in its own process: redis-server (no persistence), `python -m polystream.testing.replay`
upstreams (OpenAI chat SSE, one HTTP chunk per event), `polystream serve` and `litellm` (uvicorn,
one worker each, their default log settings), and two TCP taps (proxy_tap.py). The client is this
process. See benches/README.md, "Proxy benchmark", for what each figure means.
Prints tables, writes benches/results/proxy.json and benches/results/proxy.png. Everything it
started is stopped at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from client_peers import make_fixture  # noqa: E402
from proxy_procs import (  # noqa: E402
    MASTER_KEY, Fleet, cpu_delta, cpu_seconds, find_litellm, litellm_version, rss_mb, setup_litellm, write_config,
)
from proxy_report import chart, print_report  # noqa: E402

RESULTS = HERE / "results"
PARAMS: dict[str, dict[str, Any]] = {
    # seq: sequential short streams per target (TTFC, 1 stream). paced: chunks per stream and the
    # upstream's gap between chunks for the steady-state runs (1 and `slots` streams in flight,
    # measured over `window` s after `ramp` s). burst: unpaced max-throughput runs.
    "full": {"seq": 200, "short": 20, "paced_chunks": 100, "paced_delay": 0.04, "slots": 100, "ramp": 4.0,
             "window": 12.0, "window1": 8.0, "long": 1000, "long_streams": 3, "burst_chunks": 200,
             "burst": 100, "bg_chunks": 400, "bg_delay": 0.02, "bg_reps": 2, "poll_interval": 0.01},
    "quick": {"seq": 60, "short": 20, "paced_chunks": 100, "paced_delay": 0.04, "slots": 100, "ramp": 4.0,
              "window": 6.0, "window1": 4.0, "long": 1000, "long_streams": 1, "burst_chunks": 200,
              "burst": 100, "bg_chunks": 150, "bg_delay": 0.02, "bg_reps": 1, "poll_interval": 0.01},
}


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, int(round(q * len(s) + 0.5)) - 1))]


def fixture_cumulative(body: bytes) -> list[int]:
    """Text length (chars) after each SSE event of a chat fixture, [DONE] included."""
    out, total = [], 0
    for event in body.split(b"\n\n"):
        if not event.strip():
            continue
        data = event.strip()[6:]
        if data != b"[DONE]":
            for ch in json.loads(data).get("choices") or []:
                total += len((ch.get("delta") or {}).get("content") or "")
        out.append(total)
    return out


class Target:
    def __init__(self, name: str, port: int, pid: int | None, direct: bool = False) -> None:
        self.name, self.port, self.pid, self.direct = name, port, pid, direct
        self.base = f"http://127.0.0.1:{port}"

    def chat_url(self) -> str:
        return f"{self.base}/v1/chat/completions"

    def model(self, name: str) -> str:
        return "gpt-4o" if self.direct else name

    def cpu(self) -> tuple[float, float]:
        return cpu_seconds(self.pid) if self.pid else (0.0, 0.0)


Targets = dict[str, dict[str, Target]]  # model → target name → Target (direct: that model's upstream)


# ---------------------------------------------------------------------- chat phases


async def settle(seconds: float = 0.3) -> None:
    await asyncio.sleep(seconds)


async def gate(targets: Targets, texts: dict[str, str]) -> dict[str, Any]:
    """Correctness first: every target relays every fixture's text exactly, ending with [DONE]."""
    from proxy_load import new_client, sse_text, stream_once

    out: dict[str, Any] = {}
    async with new_client() as client:
        for model, text in texts.items():
            for name, t in targets[model].items():
                r = await stream_once(client, t.chat_url(), t.model(model), keep=True)
                assert r.body is not None
                got = sse_text(r.body)
                if got != text or not r.done:
                    raise RuntimeError(f"{name} relayed the wrong text for {model} ({len(got)} vs {len(text)} chars, "
                                       f"done={r.done}): {r.body[:300]!r}")
                out[f"{name}/{model}"] = {"events": r.events, "bytes": r.nbytes}
    return out


GAP = 0.02  # s between sequential requests


async def phase_sequential(targets: dict[str, Target], model: str, n: int) -> dict[str, Any]:
    """n sequential streams per target, round-robin over the targets (so a noisy moment hits all)."""
    from proxy_load import new_client, stream_once

    clients = {name: new_client() for name in targets}
    res: dict[str, Any] = {name: {"ttfc": [], "events": 0} for name in targets}
    try:
        for name, t in targets.items():  # warm: connections, imports, first-request paths
            for _ in range(5):
                await stream_once(clients[name], t.chat_url(), t.model(model))
        await settle()
        cpu0 = {name: t.cpu() for name, t in targets.items()}
        for _ in range(n):
            for name, t in targets.items():
                await asyncio.sleep(GAP)  # lets the previous target's after-request work finish
                r = await stream_once(clients[name], t.chat_url(), t.model(model))
                res[name]["ttfc"].append(r.ttfc * 1e3)
                res[name]["events"] += r.events
        await settle()
        for name, t in targets.items():
            if t.pid:
                res[name]["cpu_ms_per_request"] = cpu_delta(cpu0[name], t.cpu()) / n * 1e3
    finally:
        for c in clients.values():
            await c.aclose()
    return res


async def steady(t: Target, model: str, slots: int, ramp: float, window: float) -> dict[str, Any]:
    """`slots` paced streams in flight on one target (see proxy_load.closed_loop)."""
    from proxy_load import closed_loop, new_client

    cpu: dict[int, tuple[float, float]] = {}
    async with new_client(slots) as client:
        res = await closed_loop(client, t.chat_url(), t.model(model), slots, ramp, window,
                                on_window=lambda edge: cpu.__setitem__(edge, t.cpu()))
    res["chunks_per_s"] = res["events"] / res["window_s"]
    if t.pid:
        used = cpu_delta(cpu[0], cpu[1])
        res |= {"cpu_s": used, "cpu_us_per_chunk": used / max(1, res["events"]) * 1e6,
                "cpu_pct": used / res["window_s"] * 100, "rss_mb": rss_mb(t.pid)}
    return res


def _line(name: str, label: str, r: dict[str, Any]) -> str:
    cpu = f", {r['cpu_us_per_chunk']:.1f} µs CPU/chunk ({r['cpu_pct']:.0f} % of a core)" if "cpu_us_per_chunk" in r else ""
    ttfc = r.get("ttfc_ms") or []
    cens = f" ({r['censored']} still waiting at the end)" if r.get("censored") else ""
    errs = f", {r['n_errors']} errors: {r['errors'][:1]}" if r.get("n_errors") else ""
    return (f"  {name:11} {label}: {r['events']} events in {r['window_s']:.1f} s ({r['chunks_per_s']:,.0f}/s), "
            f"TTFC p50 {pct(ttfc, .5):.2f} p99 {pct(ttfc, .99):.2f} ms over {len(ttfc)} streams{cens}{cpu}{errs}")


async def phase_steady(targets: dict[str, Target], model: str, p: dict[str, Any]) -> dict[str, Any]:
    """1 stream in flight on every proxy at once (they idle otherwise: no contention worth the
    wait), then `slots` in flight on one target after the other."""
    out: dict[str, Any] = {"one": {}, "many": {}}
    proxies = {n: t for n, t in targets.items() if not t.direct}
    got = await asyncio.gather(*(steady(t, model, 1, 0.5, p["window1"]) for t in proxies.values()))
    for (name, _), r in zip(proxies.items(), got):
        out["one"][name] = r
        print(_line(name, "1 stream  ", r), flush=True)
    for name, t in targets.items():
        await settle(1.0)
        r = await steady(t, model, p["slots"], p["ramp"], p["window"])
        out["many"][name] = r
        print(_line(name, f"{p['slots']} streams", r), flush=True)
        if t.pid:
            await wait_idle(t)
    return out


async def phase_calibrate(paced: Target, paced_pid: int, long: Target, long_pid: int, p: dict[str, Any]) -> dict[str, Any]:
    """What one chunk costs processes that do almost nothing with it, on this machine: the replay
    server (a timer wakeup and one socket write per chunk) and this client (httpx, counting
    bytes), direct, paced and unpaced. A paced chunk wakes each process up on its own."""
    from proxy_load import closed_loop, new_client, stream_once

    out: dict[str, Any] = {}
    async with new_client() as client:
        await stream_once(client, paced.chat_url(), "gpt-4o")
        marks: dict[int, tuple[tuple[float, float], float]] = {}
        r = await closed_loop(client, paced.chat_url(), "gpt-4o", 1, 0.2, p["window1"],
                              on_window=lambda e: marks.__setitem__(e, (cpu_seconds(paced_pid), time.process_time())))
        n = max(1, r["events"])
        out["paced"] = {"replay_us_per_chunk": cpu_delta(marks[0][0], marks[1][0]) / n * 1e6,
                        "client_us_per_chunk": (marks[1][1] - marks[0][1]) / n * 1e6, "events": n}
        await settle()
        a, c = cpu_seconds(long_pid), time.process_time()
        n = 0
        for _ in range(p["long_streams"]):
            n += (await stream_once(client, long.chat_url(), "gpt-4o")).events
        out["unpaced"] = {"replay_us_per_chunk": cpu_delta(a, cpu_seconds(long_pid)) / n * 1e6,
                          "client_us_per_chunk": (time.process_time() - c) / n * 1e6, "events": n}
    for k, v in out.items():
        print(f"  {k:8}: replay server {v['replay_us_per_chunk']:.1f} µs CPU/chunk, this client "
              f"{v['client_us_per_chunk']:.1f} µs CPU/chunk", flush=True)
    return out


async def wait_idle(t: Target, timeout: float = 120.0) -> None:
    """After cancelled streams: until the proxy stops burning CPU (a saturated proxy has a backlog)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        a = t.cpu()
        await asyncio.sleep(0.5)
        if cpu_delta(a, t.cpu()) < 0.02:
            return


async def phase_burst(targets: dict[str, Target], model_long: str, model_burst: str, p: dict[str, Any]) -> dict[str, Any]:
    """Unpaced: sequential `long`-chunk streams (1 stream), then `burst` concurrent streams at once."""
    from proxy_load import burst, new_client, stream_once

    out: dict[str, Any] = {"one": {}, "many": {}}
    for name, t in targets.items():
        async with new_client(p["burst"]) as client:
            await stream_once(client, t.chat_url(), t.model(model_long))
            await settle()
            c0, w0 = t.cpu(), time.perf_counter()
            events = 0
            for _ in range(p["long_streams"]):
                events += (await stream_once(client, t.chat_url(), t.model(model_long))).events
            wall = time.perf_counter() - w0
            await settle()
            one = {"events": events, "wall_s": wall, "chunks_per_s": events / wall}
            if t.pid:
                one["cpu_us_per_chunk"] = cpu_delta(c0, t.cpu()) / events * 1e6
            out["one"][name] = one
            await burst(client, t.chat_url(), t.model("short"), p["burst"])  # warm the connections
            await settle()
            c0, w0 = t.cpu(), time.perf_counter()
            got = await burst(client, t.chat_url(), t.model(model_burst), p["burst"])
            wall = time.perf_counter() - w0
            await settle()
            events = sum(r.events for r in got)
            many = {"events": events, "wall_s": wall, "chunks_per_s": events / wall}
            if t.pid:
                many["cpu_us_per_chunk"] = cpu_delta(c0, t.cpu()) / events * 1e6
            out["many"][name] = many
        cpu = lambda r: f", {r['cpu_us_per_chunk']:.1f} µs CPU/chunk" if "cpu_us_per_chunk" in r else ""  # noqa: E731
        print(f"  {name:11} unpaced: 1 stream {one['chunks_per_s']:,.0f} chunks/s{cpu(one)}; "
              f"{p['burst']} at once {many['chunks_per_s']:,.0f} chunks/s{cpu(many)}", flush=True)
    return out


# ---------------------------------------------------------------------- background phase


class RedisBytes:
    def __init__(self, port: int) -> None:
        import redis

        self.r = redis.Redis(port=port)
        a, a_out = self.both()
        b, b_out = self.both()
        self.info_cost, self.info_cost_out = b - a, b_out - a_out  # what one INFO call of ours adds

    def both(self) -> tuple[int, int]:
        """Redis's total_net_input_bytes and total_net_output_bytes."""
        st = self.r.info("stats")
        return int(st["total_net_input_bytes"]), int(st["total_net_output_bytes"])

    def read(self) -> int:
        return self.both()[0]

    def close(self) -> None:
        self.r.close()


def tap_total(proc: Any) -> int:
    """Bytes the clients of a counting tap sent through it so far."""
    proc.popen.send_signal(signal.SIGUSR1)
    while True:
        rec = json.loads(proc.lines.get(timeout=5))
        if isinstance(rec, dict) and "client_bytes" in rec:
            return int(rec["client_bytes"])


async def bg_case(case: dict[str, Any], env: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    from proxy_load import create_background, follow, get_once, lags, new_client

    rb: RedisBytes = env["redis"]
    tap_b = env["redis_tap"] if case.get("remote") else None
    async with new_client() as client:
        await settle(0.5)
        b0, o0 = rb.both()
        t0 = tap_total(tap_b) if tap_b else 0
        rid, tag = await create_background(client, case["create"], "bg")
        if case["mode"]:
            f = await follow(client, case["poll"], rid, case["mode"], p["poll_interval"])
            times = await env["tap"].times(tag)
            await settle(0.5)
        else:  # nobody looks while it runs: wait for the upstream to finish, then for the proxy
            times = await env["tap"].times(tag)
            await settle(1.5)
        b1, o1 = rb.both()
        raw, raw_out = b1 - b0 - rb.info_cost, o1 - o0 - rb.info_cost_out
        if not case["mode"]:
            f = await follow(client, case["create"], rid, "get", 0.25, timeout=10)
            if f.polls > 1:
                raise RuntimeError(f"{case['proxy']}: not finished 1.5 s after the upstream ended")
        remote = (tap_total(tap_b) - t0) if tap_b else None
        final = await get_once(client, case["create"], rid)
    if f.status != "completed" or final.get("status") != "completed":
        raise RuntimeError(f"{case['proxy']} {case['name']}: response ended {f.status}: {f.error}")
    if f.text != env["bg_text"]:
        raise RuntimeError(f"{case['name']}: text differs from the upstream's ({len(f.text)} vs {len(env['bg_text'])} chars)")
    lag_s, missing = lags(f.seen, times, env["bg_cumulative"]) if case["mode"] else ([], 0)
    return {"text_bytes": len(f.text.encode()), "redis_bytes_raw": raw, "redis_bytes_out": raw_out,
            "remote_proxy_bytes": remote,
            "polls": f.polls if case["mode"] else 0, "lags_ms": [x * 1e3 for x in lag_s], "unseen": missing,
            "upstream_events": len(times)}


async def phase_background(env: dict[str, Any], p: dict[str, Any], have_litellm: bool) -> list[dict[str, Any]]:
    a, b, lite = env["ps"], env["ps_b"], env.get("litellm_bg")
    cases = [
        {"proxy": "polystream", "name": "nobody polling", "mode": None, "create": a, "poll": None},
        {"proxy": "polystream", "name": "GET /v1/responses/{id}, same proxy", "mode": "get", "create": a, "poll": a},
        {"proxy": "polystream", "name": "/poll?cursor=, same proxy", "mode": "poll", "create": a, "poll": a},
        {"proxy": "polystream", "name": "GET /v1/responses/{id}, 2nd proxy", "mode": "get", "create": a, "poll": b, "remote": True},
        {"proxy": "polystream", "name": "/poll?cursor=, 2nd proxy", "mode": "poll", "create": a, "poll": b, "remote": True},
    ]
    if have_litellm:
        cases += [
            {"proxy": "litellm", "name": "nobody polling", "mode": None, "create": lite, "poll": None},
            {"proxy": "litellm", "name": "GET /v1/responses/{id}, same proxy", "mode": "get", "create": lite, "poll": lite},
        ]
    from proxy_load import create_background, follow, new_client

    async with new_client() as client:  # first use loads scripts, opens pools: not measured
        for base in filter(None, (a, lite)):
            rid, _ = await create_background(client, base, "bg-warm")
            await follow(client, base, rid, "get", 0.05, timeout=60)
    rows: list[dict[str, Any]] = []
    unwatched: dict[str, float] = {}  # proxy → Redis bytes per text byte with nobody polling
    for case in cases:
        runs = []
        for rep in range(p["bg_reps"]):
            r = await bg_case(case, env, p)
            runs.append(r)
            lag = f", lag p50 {pct(r['lags_ms'], .5):.1f} p99 {pct(r['lags_ms'], .99):.1f} ms" if r["lags_ms"] else ""
            rem = f" ({r['remote_proxy_bytes']} B from the 2nd proxy)" if r["remote_proxy_bytes"] is not None else ""
            print(f"  {case['proxy']:10} {case['name']:36} rep {rep + 1}: Redis {r['redis_bytes_raw']} B{rem} for "
                  f"{r['text_bytes']} B text, {r['polls']} polls{lag}", flush=True)
        text = sum(r["text_bytes"] for r in runs)
        raw = sum(r["redis_bytes_raw"] for r in runs)
        polls = sum(r["polls"] for r in runs)
        row: dict[str, Any] = {"proxy": case["proxy"], "case": case["name"], "mode": case["mode"],
                               "remote": bool(case.get("remote")), "text_bytes": text / len(runs),
                               "ratio_raw": raw / text, "polls": polls / len(runs),
                               "ratio_out": sum(r["redis_bytes_out"] for r in runs) / text}
        if case["mode"] is None:
            unwatched[case["proxy"]] = raw / text
            row |= {"ratio_writes": raw / text, "writes_how": "measured: no reader"}
        elif case.get("remote"):
            # Exact: the 2nd proxy's own Redis traffic went through the counting tap.
            remote = sum(r["remote_proxy_bytes"] for r in runs)
            row |= {"ratio_writes": (raw - remote) / text, "poller_bytes_per_poll": remote / max(1, polls),
                    "writes_how": "measured: all but the 2nd proxy's traffic"}
        elif case["proxy"] == "polystream":
            # Polls in the producer's process are answered from its memory: no Redis reads (checked
            # with MONITOR) until the producer is done, so the raw bytes are writes. They are more
            # than with nobody polling: each poll seals the pending text into its own delta event.
            row |= {"ratio_writes": raw / text, "poller_bytes_per_poll": 0.0,
                    "writes_how": "raw: the polls read no Redis"}
        else:
            # LiteLLM: every poll is one GET of the blob; the producer rewrites the blob on its own
            # 150 ms timer whoever reads it, so its writes are the nobody-polling figure.
            w = unwatched[case["proxy"]]
            row |= {"ratio_writes": w, "poller_bytes_per_poll": (raw - w * text) / max(1, polls),
                    "writes_how": "from the nobody-polling row"}
        lags_all = [x for r in runs for x in r["lags_ms"]]
        row |= {"lag_p50_ms": pct(lags_all, 0.5) if lags_all else None,
                "lag_p99_ms": pct(lags_all, 0.99) if lags_all else None,
                "lag_max_ms": max(lags_all) if lags_all else None,
                "lag_samples": len(lags_all), "unseen": sum(r["unseen"] for r in runs),
                "runs": [{k: v for k, v in r.items() if k != "lags_ms"} for r in runs]}
        rows.append(row)
    return rows


# ---------------------------------------------------------------------- driver


def summarise_chat(seq: dict[str, Any], paced: dict[str, Any], unpaced: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    d1, dm = seq["direct"]["ttfc"], paced["many"]["direct"]["ttfc_ms"]
    for name in seq:
        s, m = seq[name]["ttfc"], paced["many"][name]["ttfc_ms"]
        row: dict[str, Any] = {"target": name, "ttfc1_p50_ms": pct(s, .5), "ttfc1_p99_ms": pct(s, .99),
                               "ttfc100_p50_ms": pct(m, .5), "ttfc100_p99_ms": pct(m, .99),
                               "ttfc100_censored": paced["many"][name]["censored"],
                               "ttfc100_streams": len(m),
                               "chunks_per_s_100": paced["many"][name]["chunks_per_s"],
                               "burst_chunks_per_s": unpaced["many"][name]["chunks_per_s"]}
        if name != "direct":
            row |= {"added1_p50_ms": pct(s, .5) - pct(d1, .5), "added1_p99_ms": pct(s, .99) - pct(d1, .99),
                    "added100_p50_ms": pct(m, .5) - pct(dm, .5), "added100_p99_ms": pct(m, .99) - pct(dm, .99),
                    "cpu_ms_per_request": seq[name].get("cpu_ms_per_request"),
                    "cpu1_us_per_chunk": paced["one"][name]["cpu_us_per_chunk"],
                    "cpu100_us_per_chunk": paced["many"][name]["cpu_us_per_chunk"],
                    "cpu100_pct": paced["many"][name]["cpu_pct"],
                    "unpaced1_us_per_chunk": unpaced["one"][name]["cpu_us_per_chunk"],
                    "unpaced100_us_per_chunk": unpaced["many"][name]["cpu_us_per_chunk"],
                    "rss_mb": paced["many"][name]["rss_mb"]}
        rows.append(row)
    return rows


async def run(args: argparse.Namespace, fleet: Fleet, tmp: Path) -> dict[str, Any]:
    p = PARAMS["quick" if args.quick else "full"]
    lite_exe, lite_note = find_litellm(args.litellm)
    meta: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "params": p, "quick": args.quick,
                            "python": platform.python_version(), "machine": platform.machine(),
                            "cpus": os.cpu_count(), "loadavg_before": os.getloadavg(), "litellm": lite_note}
    if lite_exe is None:
        print(f"LiteLLM rows skipped: {lite_note}", flush=True)
    else:
        meta["litellm_version"] = litellm_version(lite_exe)
    import polystream

    meta["polystream_version"] = getattr(polystream, "__version__", "?")
    sizes = {"short": p["short"], "long": p["long"], "paced": p["paced_chunks"], "burst": p["burst_chunks"],
             "bg": p["bg_chunks"] + 3}
    bodies = {}
    for name, n in sizes.items():
        body, text = make_fixture(n, seed=11)
        (tmp / f"{name}.sse").write_bytes(body)
        bodies[name] = (body, text)

    print("starting redis, upstreams, taps and proxies …", flush=True)
    _, redis_port = fleet.redis()
    replays = {name: fleet.replay(f"replay-{name}", tmp / f"{name}.sse") for name in ("short", "long", "burst")}
    replays["paced"] = fleet.replay("replay-paced", tmp / "paced.sse", delay=p["paced_delay"])
    up = {name: port for name, (_, port) in replays.items()}
    _, bg_up = fleet.replay("replay-bg", tmp / "bg.sse", delay=p["bg_delay"])
    tap, tap_port = fleet.tap("tap-upstream", bg_up, sse=True)
    redis_tap, redis_tap_port = fleet.tap("tap-redis", redis_port, sse=False)
    models = {**up, "bg": tap_port, "bg-warm": up["short"]}
    ps, ps_port = fleet.polystream("polystream", write_config(tmp / "polystream.yaml", models, redis_port, litellm=False))
    _, ps_b_port = fleet.polystream("polystream-b", write_config(tmp / "polystream-b.yaml", models, redis_tap_port, litellm=False))
    proxies = {"polystream": Target("polystream", ps_port, ps.pid)}
    lite_bg = None
    if lite_exe:
        # Two LiteLLM processes: chat runs on its plainest config (no Redis, so no per-request
        # rate-limit bookkeeping in Redis); background mode needs the Redis settings.
        lite, lite_port = fleet.litellm("litellm", lite_exe, write_config(tmp / "litellm.yaml", models, None, litellm=True))
        _, lite_bg_port = fleet.litellm("litellm-bg", lite_exe, write_config(tmp / "litellm-bg.yaml", models, redis_port, litellm=True))
        lite_bg = f"http://127.0.0.1:{lite_bg_port}"
        proxies["litellm"] = Target("litellm", lite_port, lite.pid)
    targets: Targets = {m: {"direct": Target("direct", port, None, direct=True), **proxies} for m, port in up.items()}
    c0 = {n: t.cpu() for n, t in proxies.items()}
    await asyncio.sleep(2.0)
    meta["idle_cpu_pct"] = {n: cpu_delta(c, proxies[n].cpu()) / 2.0 * 100 for n, c in c0.items()}

    print("correctness gate …", flush=True)
    meta["gate"] = await gate(targets, {m: bodies[m][1] for m in up})
    print("calibration: direct to the upstream …", flush=True)
    calib = await phase_calibrate(targets["paced"]["direct"], replays["paced"][0].pid, targets["long"]["direct"],
                                  replays["long"][0].pid, p)
    print(f"1 stream: {p['seq']} sequential {p['short']}-chunk streams per target …", flush=True)
    seq = await phase_sequential(targets["short"], "short", p["seq"])
    print(f"steady state, {p['paced_chunks']}-chunk streams paced at {p['paced_delay'] * 1e3:.0f} ms a chunk …", flush=True)
    paced = await phase_steady(targets["paced"], "paced", p)
    print(f"unpaced: {p['long_streams']} × {p['long']}-chunk streams one after another, {p['burst']} × "
          f"{p['burst_chunks']}-chunk streams at once …", flush=True)
    unpaced = await phase_burst(targets["long"], "long", "burst", p)
    chat_rows = summarise_chat(seq, paced, unpaced)

    print(f"background mode: {p['bg_chunks']} chunks at {p['bg_delay'] * 1e3:.0f} ms, polls every "
          f"{p['poll_interval'] * 1e3:.0f} ms …", flush=True)
    from proxy_load import TapReader

    rb = RedisBytes(redis_port)
    i0 = rb.read()
    await asyncio.sleep(2.0)
    meta["redis_idle_bytes_per_s"] = (rb.read() - i0 - rb.info_cost) / 2.0
    env = {"redis": rb, "redis_tap": redis_tap, "tap": TapReader(tap), "ps": f"http://127.0.0.1:{ps_port}",
           "ps_b": f"http://127.0.0.1:{ps_b_port}", "litellm_bg": lite_bg, "key": MASTER_KEY,
           "bg_text": bodies["bg"][1], "bg_cumulative": fixture_cumulative(bodies["bg"][0])}
    try:
        bg_rows = await phase_background(env, p, lite_exe is not None)
    finally:
        rb.close()
    meta["loadavg_after"] = os.getloadavg()
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return {"meta": meta, "chat": chat_rows, "background": bg_rows, "calibration": calib,
            "samples": {"seq_ttfc_ms": {n: v["ttfc"] for n, v in seq.items()},
                        "steady_ttfc_ms": {n: v["ttfc_ms"] for n, v in paced["many"].items()},
                        "steady": {k: {n: {x: y for x, y in v.items() if x != "ttfc_ms"} for n, v in d.items()}
                                   for k, d in paced.items()},
                        "unpaced": unpaced}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer, shorter runs")
    ap.add_argument("--litellm", help="path to a `litellm` CLI with the proxy extras (default: benches/.venv-peers)")
    ap.add_argument("--setup-litellm", action="store_true", help="pip install 'litellm[proxy]' into benches/.venv-peers")
    ap.add_argument("--json", default=str(RESULTS / "proxy.json"))
    ap.add_argument("--png", default=str(RESULTS / "proxy.png"))
    ap.add_argument("--from-json", help="reprint and redraw from a results file")
    args = ap.parse_args(argv)
    if args.setup_litellm:
        return setup_litellm()
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
    else:
        def stop(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        with tempfile.TemporaryDirectory(prefix="ps-proxy-bench-") as d:
            fleet = Fleet(Path(d))
            try:
                result = asyncio.run(run(args, fleet, Path(d)))
            except BaseException:
                for proc in fleet.procs:
                    if proc.log is not None and proc.popen.poll() is not None:
                        print(f"--- {proc.name} exited {proc.popen.returncode}:\n{proc.tail()}", file=sys.stderr)
                raise
            finally:
                fleet.stop()
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    print_report(result)
    if chart(result, Path(args.png)):
        print(f"wrote {args.png}")
    if not args.from_json:
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
