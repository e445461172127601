"""Instructions per chunk for polystream's client, counted by valgrind (callgrind).

CPU time on a shared VM drifts by ±30 % within minutes; instruction counts do not, so a change
of a few per cent is visible here when `client_bench.py` cannot show it. Each count is taken in
a fresh `python` under callgrind that streams from the replay server (Content-Length body, as the
bench's "large" rows) and reads `choices[0].delta.content` of every chunk, as client_bench does.
Per chunk = the difference between two runs with different numbers of rounds, so imports and
start-up cancel out; request costs (building, sending, reading the head) stay in.

    python benches/client_instructions.py                 # sync: streams of 1,000 chunks
    python benches/client_instructions.py --async         # acompletion: 100 streams at once
    python benches/client_instructions.py --chunks 20000 --rounds 1,3

Needs valgrind (Debian's `valgrind` package). Takes 1-3 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from client_bench import Server  # noqa: E402
from client_peers import FACTORIES, make_fixture  # noqa: E402


def child(base: str, rounds: int, streams: int, expected: str) -> None:
    sync, asyn = FACTORIES["polystream"]()
    assert sync is not None
    if streams == 1:
        for _ in range(rounds + 1):  # + 1: the warm-up round (pool, first-use caches)
            assert sync(base, lambda: None) == expected
        return

    async def main() -> None:
        for _ in range(rounds + 1):
            got = await asyncio.gather(*(asyn(base, lambda: None) for _ in range(streams)))
            assert all(t == expected for t in got)

    asyncio.run(main())


def count(base: str, rounds: int, streams: int, text_file: Path) -> int:
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
           "--child", base, "--rounds", str(rounds), "--streams", str(streams), "--text", str(text_file)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    m = re.search(r"refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or m is None:
        raise SystemExit(f"valgrind run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(m.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--async", dest="is_async", action="store_true", help="acompletion, --streams at once")
    ap.add_argument("--chunks", type=int, default=1000, help="chunks per stream")
    ap.add_argument("--streams", type=int, default=None, help="concurrent streams (1 sync, 100 async)")
    ap.add_argument("--rounds", default=None, help="two round counts A,B (5,15 sync; 1,2 async)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--text", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    streams = a.streams or (100 if a.is_async else 1)
    if a.child:
        child(a.child, int(a.rounds), streams, Path(a.text).read_text())
        return 0
    lo, hi = (int(x) for x in (a.rounds or ("1,2" if a.is_async else "5,15")).split(","))
    body, text = make_fixture(a.chunks)
    with tempfile.TemporaryDirectory() as d:
        fixture, text_file = Path(d) / "f.sse", Path(d) / "text"
        fixture.write_bytes(body)
        text_file.write_text(text)
        server = Server(fixture, "large")
        try:
            a_refs = count(server.base, lo, streams, text_file)
            b_refs = count(server.base, hi, streams, text_file)
        finally:
            server.stop()
    chunks = (hi - lo) * streams * a.chunks
    mode = f"acompletion, {streams} streams at once" if streams > 1 else "completion"
    print(f"{mode}, {a.chunks} chunks a stream: {(b_refs - a_refs) / chunks:,.0f} instructions per chunk "
          f"({lo} vs {hi} rounds: {a_refs:,} and {b_refs:,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
