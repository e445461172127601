#!/usr/bin/env python3
"""Where a client's CPU per chunk goes, layer by layer, with large reads (Content-Length body).

    python benches/client_layers.py                  # 1,000-chunk streams: one, and 100 at once
    python benches/client_layers.py --chunks 20000 --runs 10

Against one `polystream.testing.replay --length-framed` server, in this process, alternating the
layers round by round so a slow spell of the VM hits them alike:
- socket: a bare socket reads the response bytes and does nothing else (the machine's floor:
  no HTTP library, no decoding);
- socket + decode: the same bytes through `ChunkDecoder("openai_chat", accumulate=True)`, and
  `choices[0].delta.content` read from every chunk, as client_bench's clients do;
- polystream: `completion()` / `acompletion()` doing the same reads.
The two differences are decoding (core + chunk objects + reads) and polystream's own layer
(the request, its HTTP, the iterator). CPU is process time per chunk: best and median of the runs.
client_bench.py compares polystream with its peers; this shows what is left inside it.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from client_bench import Server  # noqa: E402
from client_peers import MESSAGES, make_fixture  # noqa: E402

import polystream  # noqa: E402
from polystream._core import ChunkDecoder  # noqa: E402


class Reading:
    """One response being read: its head, then its Content-Length body, decoded or not."""

    def __init__(self, decode: bool) -> None:
        self.head = b""
        self.left: int | None = None  # body bytes still to come, once the head is in
        self.decoder = ChunkDecoder("openai_chat", accumulate=True) if decode else None

    def take(self, data: bytes) -> bool:
        """Whether the response is complete with `data`."""
        if self.left is None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return False
            lengths = [line for line in self.head[:end].split(b"\r\n") if line.lower().startswith(b"content-length:")]
            if not lengths:
                raise SystemExit("the replay server must be --length-framed")
            self.left, data = int(lengths[0].split(b":")[1]), self.head[end + 4:]
        self.left -= len(data)
        if self.decoder is not None:
            consume(self.decoder.feed(data))
        return self.left <= 0


class Raw:
    """One keep-alive socket: sends the request, reads the response."""

    def __init__(self, host: str, port: int) -> None:
        body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true}'
        self.request = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}:{port}\r\n"
                        f"authorization: Bearer x\r\ncontent-type: application/json\r\n"
                        f"content-length: {len(body)}\r\n\r\n").encode() + body
        self.sock = socket.create_connection((host, port))

    def read(self, decode: bool) -> None:
        self.sock.sendall(self.request)
        reading = Reading(decode)
        while not reading.take(self.sock.recv(65536)):
            pass

    async def aread(self, decode: bool) -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(self.sock, self.request)
        reading = Reading(decode)
        while not reading.take(await loop.sock_recv(self.sock, 65536)):
            pass


def consume(chunks: list[Any]) -> None:
    for chunk in chunks:
        choices = chunk.choices
        if choices:
            choices[0].delta.content


def cpu_per_chunk(fn: Callable[[], None], chunks: int) -> float:
    c0 = time.process_time()
    fn()
    return (time.process_time() - c0) / chunks * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=1000)
    ap.add_argument("--streams", type=int, default=100, help="streams at once in the async rows")
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fixture = Path(tmp) / "stream.sse"
        fixture.write_bytes(make_fixture(args.chunks)[0])
        server = Server(fixture, "large")
        try:
            measure(server.base, args)
        finally:
            server.stop()


def measure(base: str, args: argparse.Namespace) -> None:
    host, port = base.split("//")[1].split("/")[0].split(":")
    raw = Raw(host, int(port))
    pool = [Raw(host, int(port)) for _ in range(args.streams)]

    def poly() -> None:
        for chunk in polystream.completion(model="gpt-4o", messages=MESSAGES, stream=True, api_base=base,
                                           api_key="x"):
            choices = chunk.choices
            if choices:
                choices[0].delta.content

    async def apoly_one() -> None:
        stream = await polystream.acompletion(model="gpt-4o", messages=MESSAGES, stream=True, api_base=base,
                                              api_key="x")
        async for chunk in stream:
            choices = chunk.choices
            if choices:
                choices[0].delta.content

    sync_layers: dict[str, Callable[[], None]] = {
        "socket": lambda: raw.read(False), "socket + decode": lambda: raw.read(True), "polystream": poly}
    async_layers: dict[str, Callable[[], Awaitable[object]]] = {
        "socket": lambda: asyncio.gather(*(r.aread(False) for r in pool)),
        "socket + decode": lambda: asyncio.gather(*(r.aread(True) for r in pool)),
        "polystream": lambda: asyncio.gather(*(apoly_one() for _ in pool)),
    }
    sync_times: dict[str, list[float]] = {k: [] for k in sync_layers}
    for fn in sync_layers.values():
        fn()  # warm-up: imports, pool, first-use caches
    for _ in range(args.runs):
        for name, fn in sync_layers.items():
            sync_times[name].append(cpu_per_chunk(fn, args.chunks))

    async def run_async() -> dict[str, list[float]]:
        for make in async_layers.values():
            await make()
        times: dict[str, list[float]] = {k: [] for k in async_layers}
        for _ in range(args.runs):
            for name, make in async_layers.items():
                c0 = time.process_time()
                await make()
                times[name].append((time.process_time() - c0) / (args.chunks * args.streams) * 1e6)
        return times

    async_times = asyncio.run(run_async())
    print(f"CPU µs per chunk, {args.chunks:,}-chunk streams, large reads, best / median of {args.runs} runs")
    print(f"{'layer':<18} {'1 stream (sync)':>18} {f'{args.streams} at once (async)':>22}")
    for name in sync_layers:
        s, a = sync_times[name], async_times[name]
        print(f"{name:<18} {min(s):8.3f} / {statistics.median(s):6.3f}  {min(a):10.3f} / {statistics.median(a):6.3f}")


if __name__ == "__main__":
    main()
