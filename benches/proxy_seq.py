#!/usr/bin/env python3
"""Added time to first chunk and proxy CPU per request, measured quietly: sequential requests.

    python benches/proxy_seq.py                     # 20-event streams, 3 rounds of 500 requests
    python benches/proxy_seq.py --events 3 --n 1000

Starts `python -m polystream.testing.replay` (an OpenAI chat stream from client_peers.make_fixture,
one HTTP chunk per event) and `polystream serve` in front of it, each in its own process. A raw
socket client (no HTTP library, so its own cost is tiny and the same for both targets) sends the
same streaming chat request on one keep-alive connection, 2 ms apart, first straight to the
upstream, then through the proxy. TTFC is from the request's send to the first body byte after
the head. Proxy CPU is the sum of /proc/PID/task/*/schedstat over the round, per request.

proxy_bench.py measures the same thing in a rotation with LiteLLM and pauses of 20 ms, where
caches are cold and every process wakes from idle; this measures the proxy's own added latency.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from client_peers import make_fixture  # noqa: E402
from proxy_procs import MASTER_KEY, Fleet, cpu_delta, cpu_seconds, write_config  # noqa: E402


class Client:
    """One keep-alive connection; `request` returns (TTFC s, whole response bytes)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def request(self, raw: bytes) -> tuple[float, bytes]:
        t0 = time.perf_counter()
        self.sock.sendall(raw)
        ttfc, data = None, b""
        while True:
            piece = self.sock.recv(65536)
            if not piece:
                raise SystemExit("the server closed the connection")
            data += piece
            head_end = data.find(b"\r\n\r\n")
            if ttfc is None and head_end >= 0 and len(data) > head_end + 4:
                ttfc = time.perf_counter() - t0
            if head_end >= 0 and data.endswith(b"\r\n0\r\n\r\n"):
                return ttfc or time.perf_counter() - t0, data


def run(port: int, raw: bytes, n: int, warmup: int, rounds: int, pid: int | None,
        gap: float) -> list[tuple[float, float]]:
    """Per round: (TTFC p50 ms, CPU ms per request of process `pid`)."""
    client = Client(port)
    _, data = client.request(raw)
    if b" 200 " not in data.split(b"\r\n", 1)[0] or b"[DONE]" not in data:
        raise SystemExit(f"bad response: {data[:300]!r}")
    for _ in range(warmup):
        client.request(raw)
    out = []
    for _ in range(rounds):
        c0 = cpu_seconds(pid) if pid else None
        ttfcs = []
        for _ in range(n):
            ttfcs.append(client.request(raw)[0])
            time.sleep(gap)  # let the proxy finish its tail (access line, cleanup) first
        cpu_ms = cpu_delta(c0, cpu_seconds(pid)) * 1000 / n if pid and c0 else 0.0
        out.append((statistics.median(ttfcs) * 1000, cpu_ms))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20, help="SSE events per response")
    ap.add_argument("--n", type=int, default=500, help="requests per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--gap", type=float, default=0.002,
                    help="seconds between requests (proxy_bench's rotation leaves 20 ms)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="proxy_seq_") as tmp_dir:
        tmp, fleet = Path(tmp_dir), Fleet(Path(tmp_dir))
        try:
            measure(fleet, tmp, args)
        finally:
            fleet.stop()


def measure(fleet: Fleet, tmp: Path, args: argparse.Namespace) -> None:
    fixture = tmp / "stream.sse"
    fixture.write_bytes(make_fixture(args.events)[0])
    _, up_port = fleet.replay("upstream", fixture)
    proxy, port = fleet.polystream("polystream", write_config(tmp / "config.yaml", {"gpt-4o": up_port}, None, litellm=False))
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}).encode()

    def raw(p: int) -> bytes:
        return (f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{p}\r\nauthorization: Bearer {MASTER_KEY}\r\n"
                f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body

    direct = run(up_port, raw(up_port), args.n, args.warmup, args.rounds, None, args.gap)
    proxied = run(port, raw(port), args.n, args.warmup, args.rounds, proxy.pid, args.gap)
    print(f"{args.events}-event streams, {args.rounds} rounds of {args.n} sequential requests, "
          f"{args.gap * 1000:g} ms apart")
    print(f"{'round':>5} {'direct TTFC p50 ms':>19} {'proxied TTFC p50 ms':>20} {'added ms':>9} {'proxy CPU ms/request':>21}")
    for i, ((d, _), (p, cpu)) in enumerate(zip(direct, proxied)):
        print(f"{i:>5} {d:19.3f} {p:20.3f} {p - d:9.3f} {cpu:21.3f}")
    added = statistics.median(p - d for (d, _), (p, _) in zip(direct, proxied))
    print(f"median of rounds: added TTFC p50 {added:.3f} ms, "
          f"proxy CPU {statistics.median(c for _, c in proxied):.3f} ms per request")


if __name__ == "__main__":
    main()
