"""Tables, targets and the chart for `proxy_bench.py` (from its result dict, so `--from-json` can
redraw a saved run)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

TARGETS = {"added_p50_ms": 1.0, "added_p99_ms": 5.0, "cpu_ratio": 10.0, "redis_ratio": 3.0, "lag_p99_ms": 50.0}


def f(x: Any, nd: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, float) and abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{nd}f}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def tables(result: dict[str, Any]) -> str:
    meta, chat, bg = result["meta"], result["chat"], result["background"]
    p = meta["params"]
    n = p["slots"]
    out = []
    out.append(f"Streaming chat, time to first chunk (ms). 1 stream: {p['seq']} sequential {p['short']}-chunk streams per "
               f"target. {n} streams: {n} in flight, each a {p['paced_chunks']}-chunk stream paced at "
               f"{p['paced_delay'] * 1e3:.0f} ms a chunk, a new one as soon as one ends; every stream started in a "
               f"{p['window']:.0f} s window. Added = through the proxy − direct.\n")
    out.append(_row(["target", "1 stream p50", "p99", "added p50", "added p99", f"{n} streams p50", "p99",
                     "added p50", "added p99", "streams (still waiting)"]))
    out.append(_row(["---"] + ["---:"] * 9))
    for r in chat:
        out.append(_row([r["target"], f(r["ttfc1_p50_ms"]), f(r["ttfc1_p99_ms"]), f(r.get("added1_p50_ms")),
                         f(r.get("added1_p99_ms")), f(r["ttfc100_p50_ms"]), f(r["ttfc100_p99_ms"]),
                         f(r.get("added100_p50_ms")), f(r.get("added100_p99_ms")),
                         f"{r['ttfc100_streams']} ({r['ttfc100_censored']})"]))
    out.append("")
    out.append(f"Proxy process CPU (all threads, user + sys) per relayed chunk, µs. Paced: the steady-state runs above "
               f"(1 stream: {p['window1']:.0f} s of back-to-back streams; {n} streams: the {p['window']:.0f} s window). "
               f"Unpaced: {p['long_streams']} × {p['long']}-chunk streams one after another; {p['burst']} × "
               f"{p['burst_chunks']}-chunk streams sent at once, upstream as fast as it goes.\n")
    out.append(_row(["proxy", "paced, 1 stream", f"paced, {n} streams", f"% of a core at {n}", "unpaced, 1 stream",
                     f"unpaced, {p['burst']} at once", "CPU ms / request (20-chunk)", f"chunks/s at {n} paced",
                     "max chunks/s unpaced", "RSS MB"]))
    out.append(_row(["---"] + ["---:"] * 9))
    for r in chat:
        if r["target"] == "direct":
            continue
        out.append(_row([r["target"], f(r["cpu1_us_per_chunk"], 1), f(r["cpu100_us_per_chunk"], 1), f(r["cpu100_pct"], 0),
                         f(r["unpaced1_us_per_chunk"], 1), f(r["unpaced100_us_per_chunk"], 1),
                         f(r.get("cpu_ms_per_request")), f(r["chunks_per_s_100"], 0), f(r["burst_chunks_per_s"], 0),
                         f(r["rss_mb"], 0)]))
    direct = next((r for r in chat if r["target"] == "direct"), None)
    if direct:
        out.append(_row(["(direct: what the client takes)", "", "", "", "", "", "", f(direct["chunks_per_s_100"], 0),
                         f(direct["burst_chunks_per_s"], 0), ""]))
    cal = result.get("calibration")
    if cal:
        out.append(f"\nOn this machine a chunk costs processes that do almost nothing with it: the replay server (a timer "
                   f"and one write per chunk) {cal['paced']['replay_us_per_chunk']:.0f} µs of CPU paced, "
                   f"{cal['unpaced']['replay_us_per_chunk']:.1f} µs unpaced; this benchmark's client (httpx, counting bytes) "
                   f"{cal['paced']['client_us_per_chunk']:.0f} µs paced, {cal['unpaced']['client_us_per_chunk']:.1f} µs unpaced. "
                   "A paced chunk wakes each process up on its own; that cost is in every paced figure.")
    ps = next((r for r in chat if r["target"] == "polystream"), None)
    lite = next((r for r in chat if r["target"] == "litellm"), None)
    if ps and lite:
        ratios = ", ".join(f"{lite[k] / ps[k]:.1f}× ({lbl})" for k, lbl in (
            ("cpu1_us_per_chunk", "paced, 1"), ("cpu100_us_per_chunk", f"paced, {n}"),
            ("unpaced1_us_per_chunk", "unpaced, 1"), ("unpaced100_us_per_chunk", f"unpaced, {p['burst']}")))
        out.append(f"\nLiteLLM ÷ polystream, CPU per chunk: {ratios}")
    out.append("")
    out.append(f"Background mode: {p['bg_chunks']} upstream chunks at {p['bg_delay'] * 1e3:.0f} ms, pollers every "
               f"{p['poll_interval'] * 1e3:.0f} ms, {p['bg_reps']} response(s) per row. Redis bytes = INFO "
               "total_net_input_bytes while the response runs; 'writes' leaves the pollers' own Redis traffic out. "
               "Lag = a poller sees the text − the upstream chunk passed the tap.\n")
    out.append(_row(["proxy", "poller", "text B", "Redis B in / text B, raw", "writes only", "writes: how",
                     "poller's Redis B in per poll", "Redis B out / text B", "polls", "lag p50 ms", "p99", "max"]))
    out.append(_row(["---", "---", "---:", "---:", "---:", "---"] + ["---:"] * 6))
    for r in bg:
        out.append(_row([r["proxy"], r["case"], f(r["text_bytes"], 0), f(r["ratio_raw"]), f(r["ratio_writes"]),
                         r.get("writes_how", ""), f(r.get("poller_bytes_per_poll"), 0), f(r.get("ratio_out"), 1),
                         f(r["polls"], 0), f(r["lag_p50_ms"], 1), f(r["lag_p99_ms"], 1), f(r["lag_max_ms"], 1)]))
    return "\n".join(out)


def targets(result: dict[str, Any]) -> list[tuple[str, str, bool]]:
    chat, bg, p = result["chat"], result["background"], result["meta"]["params"]
    ps = next(r for r in chat if r["target"] == "polystream")
    lite = next((r for r in chat if r["target"] == "litellm"), None)
    rows = []
    for k in ("1", "100"):
        a50, a99 = ps[f"added{k}_p50_ms"], ps[f"added{k}_p99_ms"]
        label = "1 stream" if k == "1" else f"{p['slots']} streams"
        rows.append((f"added TTFC p50 < 1 ms ({label})", f"{a50:.2f} ms", a50 < TARGETS["added_p50_ms"]))
        rows.append((f"added TTFC p99 < 5 ms ({label})", f"{a99:.2f} ms", a99 < TARGETS["added_p99_ms"]))
    if lite:
        for k, label in (("unpaced1", "1 stream, unpaced"), ("unpaced100", f"{p['burst']} streams, unpaced"),
                         ("cpu1", "1 stream, paced"), ("cpu100", f"{p['slots']} streams, paced")):
            ratio = lite[f"{k}_us_per_chunk"] / ps[f"{k}_us_per_chunk"]
            rows.append((f"≥ 10× less CPU per chunk than LiteLLM ({label})",
                         f"{ratio:.1f}× ({ps[f'{k}_us_per_chunk']:.1f} vs {lite[f'{k}_us_per_chunk']:.1f} µs)",
                         ratio >= TARGETS["cpu_ratio"]))
    for r in bg:
        if r["proxy"] != "polystream":
            continue
        rows.append((f"≤ 3 Redis B per output B ({r['case']})", f"{r['ratio_writes']:.2f} writes, {r['ratio_raw']:.2f} raw",
                     r["ratio_writes"] <= TARGETS["redis_ratio"]))
        if r["lag_p99_ms"] is not None:
            rows.append((f"poll lag p99 ≤ 50 ms ({r['case']})", f"{r['lag_p99_ms']:.1f} ms",
                         r["lag_p99_ms"] <= TARGETS["lag_p99_ms"]))
    return rows


def print_report(result: dict[str, Any]) -> None:
    meta = result["meta"]
    print()
    print(f"polystream {meta.get('polystream_version')} vs LiteLLM {meta.get('litellm_version', '(not run)')}, "
          f"Python {meta['python']}, {meta['cpus']} CPUs, load avg {meta['loadavg_before'][0]:.2f} → "
          f"{meta.get('loadavg_after', [float('nan')])[0]:.2f}")
    print()
    print(tables(result))
    print()
    print("Targets (polystream):")
    for name, got, ok in targets(result):
        print(f"  {'met   ' if ok else 'MISSED'} {name}: {got}")


def chart(result: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart")
        return False
    chat, bg, p = result["chat"], result["background"], result["meta"]["params"]
    proxies = [r for r in chat if r["target"] != "direct"]
    colours = {"polystream": "#1f77b4", "litellm": "#d62728"}
    fig, axes = plt.subplots(2, 2, figsize=(15, 10), layout="constrained")

    ax = axes[0][0]
    groups = [("added1_p50_ms", "1 stream\np50"), ("added1_p99_ms", "1 stream\np99"),
              ("added100_p50_ms", f"{p['slots']} streams\np50"), ("added100_p99_ms", f"{p['slots']} streams\np99")]
    width = 0.8 / max(1, len(proxies))
    for i, r in enumerate(proxies):
        vals = [r[k] for k, _ in groups]
        xs = [g + i * width for g in range(len(groups))]
        ax.bar(xs, [max(v, 0.01) for v in vals], width, label=r["target"], color=colours.get(r["target"]))
        for x, v in zip(xs, vals):
            ax.text(x, max(v, 0.01), f"{v:.2f}" if abs(v) < 10 else f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks([g + width * (len(proxies) - 1) / 2 for g in range(len(groups))], [lbl for _, lbl in groups])
    ax.set_yscale("log")
    ax.set_ylim(min(0.3, ax.get_ylim()[0]), ax.get_ylim()[1] * 6)
    ax.axhline(1.0, ls="--", c="grey", lw=0.8)
    ax.axhline(5.0, ls=":", c="grey", lw=0.8)
    ax.set_ylabel("ms (log)")
    ax.set_title("Added time to first chunk per hop (proxy − direct); targets 1 / 5 ms")
    ax.legend(loc="upper left")

    ax = axes[0][1]
    groups = [("cpu1_us_per_chunk", "paced\n1 stream"), ("cpu100_us_per_chunk", f"paced\n{p['slots']} streams"),
              ("unpaced1_us_per_chunk", "unpaced\n1 stream"), ("unpaced100_us_per_chunk", f"unpaced\n{p['burst']} at once")]
    for i, r in enumerate(proxies):
        vals = [r[k] for k, _ in groups]
        xs = [g + i * width for g in range(len(groups))]
        ax.bar(xs, vals, width, label=r["target"], color=colours.get(r["target"]))
        for x, v in zip(xs, vals):
            ax.text(x, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks([g + width * (len(proxies) - 1) / 2 for g in range(len(groups))], [lbl for _, lbl in groups])
    ax.set_yscale("log")
    ax.set_ylim(top=ax.get_ylim()[1] * 6)
    ax.set_ylabel("µs CPU per relayed chunk (log)")
    ax.set_title("Proxy process CPU per relayed chunk")
    ax.legend(loc="upper right")

    labels = [f"{r['proxy']}: {r['case']}" for r in bg]
    ax = axes[1][0]
    ys = list(range(len(bg)))
    ax.barh([y + 0.2 for y in ys], [r["ratio_raw"] for r in bg], 0.4, label="raw (with the poller's reads)", color="#aaaaaa")
    ax.barh([y - 0.2 for y in ys], [max(r["ratio_writes"], 0.01) for r in bg], 0.4, label="writes only",
            color=[colours.get(r["proxy"]) for r in bg])
    for y, r in zip(ys, bg):
        ax.text(max(r["ratio_writes"], 0.01), y - 0.2, f" {r['ratio_writes']:.2f}", va="center", fontsize=8)
    ax.set_yticks(ys, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(3.0, ls="--", c="grey", lw=0.8)
    ax.set_xlabel("Redis bytes in per output text byte (log); target ≤ 3")
    ax.set_title(f"Background mode: Redis bytes ({p['bg_chunks']} chunks at {p['bg_delay'] * 1e3:.0f} ms)")
    ax.legend(fontsize=8)

    ax = axes[1][1]
    polled = [r for r in bg if r["lag_p50_ms"] is not None]
    ys = list(range(len(polled)))
    ax.barh([y - 0.2 for y in ys], [r["lag_p50_ms"] for r in polled], 0.4, label="p50",
            color=[colours.get(r["proxy"]) for r in polled], alpha=0.6)
    ax.barh([y + 0.2 for y in ys], [r["lag_p99_ms"] for r in polled], 0.4, label="p99",
            color=[colours.get(r["proxy"]) for r in polled])
    for y, r in zip(ys, polled):
        ax.text(r["lag_p99_ms"], y + 0.2, f" {r['lag_p99_ms']:.0f}", va="center", fontsize=8)
        ax.text(r["lag_p50_ms"], y - 0.2, f" {r['lag_p50_ms']:.0f}", va="center", fontsize=8)
    ax.set_yticks(ys, [f"{r['proxy']}: {r['case']}" for r in polled], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(50.0, ls="--", c="grey", lw=0.8)
    ax.set_xlabel(f"ms until a poller sees the chunk\n(polls every {p['poll_interval'] * 1e3:.0f} ms; target p99 ≤ 50)")
    ax.set_title("Background mode: poll lag")
    ax.legend(fontsize=8)

    meta = result["meta"]
    fig.suptitle(f"polystream proxy vs LiteLLM {meta.get('litellm_version', '')} proxy — same replay upstream, same Redis, "
                 f"1 uvicorn worker each, {meta['cpus']} CPUs ({meta['started']})", fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
