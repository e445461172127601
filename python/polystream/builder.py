"""``stream_chunk_builder``: chunks → the final ``ChatCompletion``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._core import Accumulator
from .types import ChatCompletion

__all__ = ["stream_chunk_builder"]


def stream_chunk_builder(chunks: Iterable[Any], messages: Any = None) -> ChatCompletion:
    """Merge streamed chunks into one ``ChatCompletion``: text, reasoning, refusal, tool calls
    (merged by index), logprobs, every choice, the last usage seen.

    ``chunks`` may be polystream chunks (fast path, no conversion) or any OpenAI-shaped chunk
    (dicts, openai SDK models). ``messages`` is accepted for litellm compatibility and unused.
    """
    acc = Accumulator()
    acc.add_many(chunks)
    return ChatCompletion(acc.snapshot())
