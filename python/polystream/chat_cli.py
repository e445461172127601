"""`polystream chat MODEL "prompt"`: stream an answer to the terminal as it arrives."""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
from typing import Any, TextIO

from . import errors
from .client import completion

_DIM, _RESET = "\033[2m", "\033[0m"
_MOCK_ANSWER = {
    "reasoning_content": "The user wants a short greeting; keep it friendly and brief.",
    "content": "Hello! I'm a mock model streaming offline through polystream — no key, no network. 👋",
}


class Spinner:
    """A spinner on stderr until the first token (only on a terminal)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.stream.isatty():
            return
        def spin() -> None:
            for c in itertools.cycle("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"):
                if self._stop.wait(0.08):
                    break
                self.stream.write(f"\r{c} waiting for the first token…")
                self.stream.flush()
            self.stream.write("\r\033[K")
            self.stream.flush()
        self._thread = threading.Thread(target=spin, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    color = out.isatty()
    kwargs: dict[str, Any] = {"include_cost": True}
    if args.mock:
        kwargs["mock_response"] = _MOCK_ANSWER
    for name in ("api_base", "api_key", "max_tokens", "temperature", "reasoning_effort"):
        value = getattr(args, name, None)
        if value is not None:
            kwargs[name] = value
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
        {"role": "user", "content": args.prompt}
    ]
    spinner = Spinner(err)
    spinner.start()
    try:
        stream = completion(args.model, messages, stream=True, **kwargs)
    except errors.APIError as exc:
        spinner.stop()
        err.write(f"error: {exc}\n")
        return 1
    section: str | None = None
    try:
        for chunk in stream:
            spinner.stop()
            for choice in chunk.choices:
                delta = choice.delta
                if delta.reasoning_content:
                    if section != "reasoning":
                        out.write("[reasoning]\n")
                        section = "reasoning"
                    out.write(f"{_DIM}{delta.reasoning_content}{_RESET}" if color else delta.reasoning_content)
                if delta.content:
                    if section == "reasoning":
                        out.write("\n\n[answer]\n")
                    section = "answer"
                    out.write(delta.content)
                for tc in delta.tool_calls or []:
                    if tc.function and tc.function.name:
                        out.write(f"\n[tool call] {tc.function.name}(")
                    if tc.function and tc.function.arguments:
                        out.write(tc.function.arguments)
            out.flush()
    except errors.MidStreamError as exc:
        spinner.stop()
        err.write(f"\nerror mid-stream: {exc}\n")
        return 1
    finally:
        spinner.stop()
    final = stream.completion
    usage = final.usage
    out.write("\n")
    out.flush()
    if usage is not None:
        cost = usage.get("cost")
        line = f"usage: {usage.prompt_tokens} in, {usage.completion_tokens} out, {usage.total_tokens} total"
        line += f" · cost ${cost:.6f}" if cost is not None else " · cost unknown for this model"
        err.write(f"{line} · finish: {final.choices[0].finish_reason if final.choices else None}\n")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("chat", help="stream an answer from any provider to the terminal")
    p.add_argument("model", help='e.g. "anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash", "gpt-4o"')
    p.add_argument("prompt")
    p.add_argument("--system", help="a system message")
    p.add_argument("--mock", action="store_true", help="offline: a mock model streams a canned answer")
    p.add_argument("--api-base", dest="api_base")
    p.add_argument("--api-key", dest="api_key", help="(prefer the provider's environment variable)")
    p.add_argument("--max-tokens", dest="max_tokens", type=int)
    p.add_argument("--temperature", type=float)
    p.add_argument("--reasoning-effort", dest="reasoning_effort", choices=["low", "medium", "high"])
    p.set_defaults(func=run)
