"""The ``polystream`` command."""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence

from . import chat_cli
from ._core import ChunkDecoder
from ._samples import openai_sample


def demo(args: argparse.Namespace) -> int:
    """Stream the built-in sample through the Rust decoder in random byte splits (as a network
    would deliver it), printing text as it arrives, then the accumulated result."""
    body = openai_sample()
    rng = random.Random(args.seed)
    decoder = ChunkDecoder("openai_chat", accumulate=True)
    out = sys.stdout
    out.write(f"polystream demo: {len(body)} bytes of an OpenAI stream, fed in random 1-64 byte reads\n\n")
    pos = 0
    while pos < len(body):
        n = rng.randint(1, 64)
        for chunk in decoder.feed(body[pos : pos + n]):
            for choice in chunk.choices:
                if choice.delta.content:
                    out.write(choice.delta.content)
                    out.flush()
        pos += n
        if args.delay:
            time.sleep(args.delay)
    decoder.finish()
    final = decoder.snapshot()
    usage = final.usage
    out.write(
        f"\n\nfinish_reason={final.choices[0].finish_reason} "
        f"usage: {usage.prompt_tokens} in / {usage.completion_tokens} out / {usage.total_tokens} total\n"
    )
    return 0


def serve(args: argparse.Namespace) -> int:
    """Run the proxy (blocking) on the config file, or on the embedded default without one."""
    from .server.app import serve as run
    from .server.config import ConfigError

    try:
        run(args.config, args.host, args.port, args.log_level)
    except ConfigError as exc:
        sys.stderr.write(f"polystream serve: {exc}\n")
        return 2
    return 0


def worker(args: argparse.Namespace) -> int:
    """Run background producers taking jobs from Redis (the config must name a Redis store)."""
    from .server.config import ConfigError
    from .server.worker_cli import run

    try:
        return run(args.config, args.concurrency, args.log_level, args.peer_host, args.peer_port, args.peer_url)
    except ConfigError as exc:
        sys.stderr.write(f"polystream worker: {exc}\n")
        return 2


def showcase(args: argparse.Namespace) -> int:
    from .server.showcase import showcase as run

    return run(interval=args.interval)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="polystream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="stream a built-in sample through the decoder (offline)")
    p.add_argument("--delay", type=float, default=0.01, help="seconds between reads (default 0.01)")
    p.add_argument("--seed", type=int, default=None, help="seed for the read sizes")
    p.set_defaults(func=demo)
    chat_cli.add_parser(sub)
    p = sub.add_parser("serve", help="run the OpenAI-compatible proxy (LiteLLM config format)")
    p.add_argument("--config", default=None, help="config YAML (default: embedded mock model, in-memory store)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=4000, help="port (default 4000)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=serve)
    p = sub.add_parser("worker", help="run background-mode producers taking jobs from Redis")
    p.add_argument("--config", required=True, help="config YAML naming the Redis store")
    p.add_argument("--concurrency", type=int, default=None, help="jobs run at once (default: the worker's)")
    p.add_argument("--peer-host", default="127.0.0.1",
                   help="address to serve the reads proxies route here (default 127.0.0.1)")
    p.add_argument("--peer-port", type=int, default=0, help="port for those reads (default: any free one)")
    p.add_argument("--peer-url", default=None,
                   help="where proxies reach that port (default: the bound address; for a wildcard host, "
                        "this host's address)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=worker)
    p = sub.add_parser("showcase", help="start the proxy offline and show a background response growing")
    p.add_argument("--interval", type=float, default=0.25, help="seconds between polls (default 0.25)")
    p.set_defaults(func=showcase)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
