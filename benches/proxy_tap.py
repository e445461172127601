#!/usr/bin/env python3
"""A transparent TCP forwarder for `proxy_bench.py`, run in its own process.

    python benches/proxy_tap.py --upstream 127.0.0.1:6379            # count bytes only
    python benches/proxy_tap.py --upstream 127.0.0.1:4011 --sse      # also time SSE events

Prints the port it listens on (first line of stdout), then forwards every connection to
`--upstream` byte for byte, at once, with TCP_NODELAY on both sides.

- `--sse`: watches the upstream → client direction of each connection for SSE events (every
  `\\n\\n`). When a stream's `data: [DONE]` passes, prints one JSON line
  `{"tag": …, "times": [t0, t1, …]}`: the time.monotonic() at which each event of that response
  reached the tap (CLOCK_MONOTONIC is one clock for every process on the machine, so these
  compare with the benchmark's own readings). `tag` is the first `bench-…` word seen in the
  request the client sent on that connection (the benchmark puts a nonce in each input).
- SIGUSR1 prints `{"client_bytes": N, "upstream_bytes": M}`: totals sent by the clients and by the
  upstream so far (how `proxy_bench.py` counts what one proxy sends to Redis).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import socket
import sys
import time

TOTALS = {"client_bytes": 0, "upstream_bytes": 0}
_TAG = re.compile(rb"bench-[0-9a-z]+")


def emit(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Pipe:
    """One proxied connection."""

    def __init__(self, sse: bool) -> None:
        self.sse = sse
        self.tag: str | None = None
        self.req_tail = b""
        self.carry = b""
        self.times: list[float] = []

    def from_client(self, data: bytes) -> None:
        TOTALS["client_bytes"] += len(data)
        if self.sse:
            buf = self.req_tail + data
            m = _TAG.search(buf)
            if m is not None:
                self.tag = m.group().decode()
            self.req_tail = buf[-40:]

    def from_upstream(self, data: bytes, now: float) -> None:
        TOTALS["upstream_bytes"] += len(data)
        if not self.sse:
            return
        buf = self.carry + data
        i = 0
        while True:
            j = buf.find(b"\n\n", i)
            if j < 0:
                break
            segment = buf[i:j]
            if b"HTTP/1.1 " in segment:
                self.times = []
            self.times.append(now)
            if b"[DONE]" in segment:
                emit({"tag": self.tag, "times": self.times})
                self.times = []
            i = j + 2
        self.carry = buf[i:][-65536:]


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: tuple[str, int], sse: bool) -> None:
    try:
        up_reader, up_writer = await asyncio.open_connection(*upstream)
    except OSError:
        writer.close()
        return
    for w in (writer, up_writer):
        sock = w.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pipe = Pipe(sse)

    async def c2u() -> None:
        while data := await reader.read(65536):
            pipe.from_client(data)
            up_writer.write(data)
            await up_writer.drain()
        up_writer.write_eof()

    async def u2c() -> None:
        while data := await up_reader.read(65536):
            pipe.from_upstream(data, time.monotonic())
            writer.write(data)
            await writer.drain()
        writer.write_eof()

    tasks = [asyncio.ensure_future(c2u()), asyncio.ensure_future(u2c())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:  # the tap is stopping
        pass
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in (writer, up_writer):
            w.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", required=True, help="host:port to forward to")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--sse", action="store_true", help="time SSE events per response")
    args = ap.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    server = await asyncio.start_server(lambda r, w: handle(r, w, (host, int(port)), args.sse),
                                        "127.0.0.1", args.port, backlog=1024)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: emit(dict(TOTALS)))
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    emit(server.sockets[0].getsockname()[1])
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
