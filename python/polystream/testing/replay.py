"""Run the replay server from the command line, for demos and benchmarks.

    python -m polystream.testing.replay --port 4010 --provider openai --fixture path.sse \
        [--split event|random|none|N] [--delay 0.01] [--first-delay S] [--drop-after N] ...

Prints the server URL and the api_base to give a client, then serves until interrupted.
(Kept out of `polystream.testing.__init__` so `python -m` does not import it twice.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from ._providers import PROVIDER_ROUTES, STREAM_PATHS
from ._reply import Reply
from ._server import ReplayServer


def _split(value: str) -> str | int | None:
    if value == "none":
        return None
    if value in ("event", "random", "auto"):
        return value
    return int(value)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m polystream.testing.replay", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4010, help="0 picks a free port (default 4010)")
    p.add_argument("--provider", required=True, choices=sorted(PROVIDER_ROUTES))
    p.add_argument("--fixture", required=True, help="recorded body to serve (.sse, .ndjson, .json, .eventstream)")
    p.add_argument("--split", type=_split, default="auto", help="event | random | none | N bytes (default auto)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--random-max", type=int, default=16)
    p.add_argument("--delay", type=float, default=0.0, help="seconds between pieces")
    p.add_argument("--first-delay", type=float, default=0.0, help="seconds before the first piece")
    p.add_argument("--drop-after", type=int, default=None, help="close the connection after N pieces")
    p.add_argument("--stall-after", type=int, default=None, help="stop sending after N pieces")
    p.add_argument("--length-framed", action="store_true", help="Content-Length instead of chunked")
    p.add_argument("--status", type=int, default=200)
    return p


async def _serve(args: argparse.Namespace) -> None:
    async with ReplayServer(args.host, args.port) as server:
        reply = Reply.from_file(
            args.fixture, status=args.status, split=args.split, seed=args.seed, random_max=args.random_max,
            delay=args.delay, first_delay=args.first_delay, drop_after=args.drop_after,
            stall_after=args.stall_after, length_framed=args.length_framed,
        )
        base = server.serve_fixture(args.provider, reply)
        # Ctrl-C and `kill` end it cleanly, from before the URL is printed (scripts take that as
        # ready). SIGINT explicitly too: a shell starting a job with `&` ignores SIGINT for it,
        # and Python then leaves it ignored.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals (Windows, a thread)
                loop.add_signal_handler(sig, stop.set)
        print(server.url, flush=True)  # first line: the URL, for scripts that read it
        print(f"{args.provider}: api_base={base} (POST {base}{STREAM_PATHS[args.provider]}), "
              f"{len(reply.pieces)} pieces of {len(reply.body)} bytes", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
