#!/usr/bin/env python3
"""Instructions the proxy spends per relayed chunk, counted by callgrind.

    python benches/proxy_instructions.py                      # 100 requests (+ 20 warm-up) of 20 and of 100 chunks
    python benches/proxy_instructions.py --requests 300 --events 3,20

CPU time on a shared VM drifts by ±30 % within minutes; instruction counts do not, so a change of
a few per cent in the relay shows here when proxy_bench.py cannot show it. `polystream serve` runs
under valgrind's callgrind (Debian's `valgrind`) in front of `python -m polystream.testing.replay`
(an OpenAI chat stream, one HTTP chunk per event); a raw-socket client sends the same streaming
request on one keep-alive connection, 5 ms apart, and reads each answer to its end. One count per
stream length; per chunk = the difference between them over the extra chunks, so start-up,
shut-down and each request's own cost cancel out. Takes 2-4 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from client_peers import make_fixture  # noqa: E402
from proxy_procs import MASTER_KEY, Fleet, free_port, wait_http, write_config  # noqa: E402

WARMUP = 20


def count(events: int, requests: int, tmp: Path) -> tuple[int, int]:
    """Instructions of one `polystream serve` process that answered `requests` streams of a
    fixture of `events` chunks, and the chunks it relayed per stream (the usage chunk is not:
    the request does not ask for it)."""
    fleet = Fleet(tmp)
    out = tmp / f"callgrind.{events}"
    try:
        fixture = tmp / f"stream{events}.sse"
        fixture.write_bytes(make_fixture(events)[0])
        _, upstream = fleet.replay(f"upstream{events}", fixture)
        config = write_config(tmp / f"config{events}.yaml", {"gpt-4o": upstream}, None, litellm=False)
        port = free_port()
        exe = Path(sys.executable).with_name("polystream")
        proxy = fleet.spawn(f"proxy{events}", ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                               sys.executable, str(exe), "serve", "--config", str(config),
                                               "--port", str(port)])
        wait_http(f"http://127.0.0.1:{port}/health/liveliness", proxy, 300)
        body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True})
        raw = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
               f"authorization: Bearer {MASTER_KEY}\r\ncontent-type: application/json\r\n"
               f"content-length: {len(body)}\r\n\r\n{body}").encode()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            for _ in range(WARMUP + requests):
                sock.sendall(raw)
                data = b""
                while not data.endswith(b"\r\n0\r\n\r\n"):
                    piece = sock.recv(65536)
                    if not piece:
                        raise SystemExit("the proxy closed the connection")
                    data += piece
                if b"data: [DONE]" not in data:
                    raise SystemExit(f"bad response: {data[:300]!r}")
                relayed = data.count(b"data: ") - 1
                time.sleep(0.005)
        time.sleep(0.5)
        os.killpg(proxy.popen.pid, signal.SIGINT)  # uvicorn exits cleanly; callgrind writes its file
        proxy.popen.wait(120)
    finally:
        fleet.stop()
    match = re.search(rb"^summary: (\d+)", out.read_bytes(), re.M)
    if match is None:
        raise SystemExit(f"no callgrind summary in {out}")
    return int(match.group(1)), relayed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--events", default="20,100", help="two stream lengths, in chunks")
    args = ap.parse_args()
    short, long = (int(x) for x in args.events.split(","))
    with tempfile.TemporaryDirectory(prefix="proxy_instr_") as tmp_dir:
        tmp = Path(tmp_dir)
        a, ka = count(short, args.requests, tmp)
        b, kb = count(long, args.requests, tmp)
    n = WARMUP + args.requests
    per_chunk = (b - a) / ((kb - ka) * n)
    print(f"proxy, {n} streamed requests ({WARMUP} warm-up) of {ka} and of {kb} relayed chunks: "
          f"{a:,} and {b:,} instructions")
    print(f"per relayed chunk: {per_chunk:,.0f} instructions")


if __name__ == "__main__":
    main()
