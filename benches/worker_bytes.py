#!/usr/bin/env python3
"""Background mode with `polystream worker`: Redis bytes per output byte, and poll lag, when a
client polls a proxy for a response a worker produces.

    python benches/worker_bytes.py                 # starts its own redis-server
    python benches/worker_bytes.py --tokens 400 --rate 50 --responses 3

One proxy (`polystream serve`'s app, `workers: true`) and one `polystream worker` process on one
Redis, the replay server upstream sending one ~4-byte token per chunk at `--rate` tokens/s. For
each response a client creates it through the proxy and polls `/poll` every 10 ms to the end
(after one such response that is not counted: the processes' one-time set-up).
Two runs: "routed" (the worker serves the reads proxies route to it, server/peer_reads.py, the
default) and "store" (`background.peer_url: ""`: the proxy reads Redis and asks the worker for
eager writes). Bytes = Redis `INFO stats` total_net_input_bytes delta over the response (every
command anyone sent) / UTF-8 bytes of its text. Lag = when the poller first saw a piece of text
− when the replay server wrote the chunk carrying it (the server and the poller share a process
and its clock). The proxy runs in that process too; the worker has its own.
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml

from polystream.server import ServerThread, create_app, load_config
from polystream.testing import ReplayServer, Reply

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from background_bytes import Polled, answer, lags, pct, sse_body, start_redis  # noqa: E402

KEY = "sk-bench-user"


def write_config(path: Path, upstream: str, redis_url: str, routed: bool) -> None:
    background: dict[str, Any] = {"workers": True} | ({} if routed else {"peer_url": ""})
    path.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "bench", "litellm_params": {
            "model": "openai/bench", "api_base": upstream, "api_key": "sk-upstream"}}],
        "polystream": {"keys": [KEY], "store": {"redis_url": redis_url}, "background": background},
    }))


def poll_one(url: str, r: redis.Redis, pieces: list[str], upstream: ReplayServer) -> dict[str, float]:
    """Create one response, poll it to the end: Redis bytes per output byte, lag p50/p99 (ms)."""
    auth = {"authorization": f"Bearer {KEY}"}
    with httpx.Client(headers=auth, timeout=30) as client:
        before = int(r.info("stats")["total_net_input_bytes"])
        rid = client.post(url + "/v1/responses", json={"model": "bench", "input": "hi", "background": True}).json()["id"]
        polled = Polled()
        while not polled.take(client.get(f"{url}/v1/responses/{rid}/poll", params={"cursor": polled.cursor}).json()):
            time.sleep(0.01)
        text, seen = polled.text, polled.seen
        time.sleep(0.3)  # the end's writes (and the worker's last lease renewal) land
        after = int(r.info("stats")["total_net_input_bytes"])
    assert text == "".join(pieces), "the poller's text differs from the upstream's"
    sent_at = upstream.requests[-1].sent_at[1:]  # one SSE event a piece; the first is the role chunk
    # the chunk carrying the text up to length ends[i] was written at sent_at[i]
    ends = list(itertools.accumulate(len(p) for p in pieces))
    lag_ms = [x * 1e3 for x in lags(seen, list(zip(ends, sent_at)))]
    return {"bytes_per_byte": (after - before) / len(text.encode()), "lag_p50_ms": statistics.median(lag_ms),
            "lag_p99_ms": pct(lag_ms, 0.99)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=400)
    ap.add_argument("--rate", type=float, default=50.0, help="upstream tokens per second")
    ap.add_argument("--responses", type=int, default=3, help="responses per run (best and median shown)")
    ap.add_argument("--out", default=str(HERE / "results" / "worker_bytes.json"))
    args = ap.parse_args()
    pieces = answer(args.tokens)
    body = sse_body(pieces)
    redis_proc, redis_url, _ = start_redis()
    r = redis.Redis.from_url(redis_url)
    results: dict[str, Any] = {"tokens": args.tokens, "rate": args.rate, "runs": {}}
    try:
        with ReplayServer() as upstream, tempfile.TemporaryDirectory() as tmp:
            # the content chunks are events 1..n of the body; the replay server sends one per `delay`
            upstream.serve_fixture("openai", Reply(body, split="event", delay=1.0 / args.rate))
            for mode in ("routed", "store"):
                path = Path(tmp) / f"{mode}.yaml"
                write_config(path, upstream.base_url("openai"), redis_url, mode == "routed")
                worker = subprocess.Popen([sys.executable, "-m", "polystream.cli", "worker", "--config", str(path),
                                           "--log-level", "warning"])
                try:
                    with ServerThread(create_app(load_config(path))) as proxy:
                        # Not counted: the first response after the processes start also carries
                        # their one-time set-up (the consumer group, each Lua script's first load:
                        # ≈ 4 B/B more here).
                        poll_one(proxy.url, r, pieces, upstream)
                        rows = []
                        for _ in range(args.responses):
                            rows.append(poll_one(proxy.url, r, pieces, upstream))
                finally:
                    worker.send_signal(signal.SIGTERM)
                    worker.wait(30)
                results["runs"][mode] = rows
    finally:
        r.close()
        redis_proc.terminate()
        redis_proc.wait()
    print(f"{args.tokens} tokens at {args.rate:g} tokens/s, polled every 10 ms through a proxy; "
          f"the worker in its own process; {args.responses} responses each")
    print("| reads of the worker's response | Redis B per output B (best / median) | lag p50 ms | lag p99 ms |")
    print("|---|---|---|---|")
    for mode, rows in results["runs"].items():
        bpb = sorted(x["bytes_per_byte"] for x in rows)
        print(f"| {mode} | {bpb[0]:.2f} / {statistics.median(bpb):.2f} | "
              f"{statistics.median(x['lag_p50_ms'] for x in rows):.1f} | "
              f"{statistics.median(x['lag_p99_ms'] for x in rows):.1f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
