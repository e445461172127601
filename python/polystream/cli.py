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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="polystream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="stream a built-in sample through the decoder (offline)")
    p.add_argument("--delay", type=float, default=0.01, help="seconds between reads (default 0.01)")
    p.add_argument("--seed", type=int, default=None, help="seed for the read sizes")
    p.set_defaults(func=demo)
    chat_cli.add_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
