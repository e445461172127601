"""Two builds of polystream's `_core` in one process, timed alternately on the same work.

CPU time on a shared VM drifts by ±30 % within minutes, so two builds timed minutes apart can
show a change the wrong way round. Here both builds are loaded at once (each `_core.abi3.so` is
copied into a package of its own: the module's init symbol depends only on its last name) and
their runs alternate, so both see the same spell of the machine. The work is what a client loop
does with a large read: `ChunkDecoder.feed` on 32 KiB pieces of a 20,000-chunk stream, reading
`chunk.choices[0].delta.content` of every chunk.

    cargo build --release -p polystream-py     # then, with an older build's .so kept somewhere:
    python benches/decode_ab.py OLD.so target/release/lib_core.so [--rounds 60]
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from client_peers import make_fixture  # noqa: E402

CHUNKS = 20_000


def load(so: Path, package: str, root: Path) -> type:
    pkg = root / package
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    shutil.copy(so, pkg / "_core.abi3.so")
    return importlib.import_module(f"{package}._core").ChunkDecoder


def run(decoder: type, pieces: list[bytes]) -> str:
    d = decoder("openai_chat", accumulate=True)
    out = []
    for piece in pieces:
        for chunk in d.feed(piece):
            choices = chunk.choices
            if choices:
                s = choices[0].delta.content
                if s:
                    out.append(s)
    d.finish()
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path, help="the first build's _core .so (e.g. the older)")
    ap.add_argument("b", type=Path, help="the second build's _core .so")
    ap.add_argument("--rounds", type=int, default=60)
    a = ap.parse_args(argv)
    body, text = make_fixture(CHUNKS)
    pieces = [body[i:i + 32768] for i in range(0, len(body), 32768)]
    with tempfile.TemporaryDirectory() as d:
        sys.path.insert(0, d)
        builds = {"a": load(a.a, "build_a", Path(d)), "b": load(a.b, "build_b", Path(d))}
        for name, decoder in builds.items():
            if run(decoder, pieces) != text:
                raise SystemExit(f"build {name} decoded a different text")
        times: dict[str, list[float]] = {name: [] for name in builds}
        for _ in range(a.rounds):
            for name, decoder in builds.items():
                c = time.process_time()
                run(decoder, pieces)
                times[name].append((time.process_time() - c) / CHUNKS * 1e6)
    for name, path in (("a", a.a), ("b", a.b)):
        t = times[name]
        print(f"{name} ({path}): CPU µs per chunk min {min(t):.3f}, p25 {statistics.quantiles(t, n=4)[0]:.3f}, "
              f"median {statistics.median(t):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
