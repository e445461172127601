"""polystream: one fast, correct way to stream LLM output from every major provider.

The decoding runs in Rust (``polystream._core``); this package is a thin, typed skin over it.
"""

from __future__ import annotations

from . import errors
from ._core import (
    DEFAULT_MAX_EVENT_SIZE,
    DIALECTS,
    Accumulator,
    ChatCompletionChunk,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
    ChunkChoice,
    ChunkDecoder,
    ServerSentEvent,
    SSEDecoder,
    __version__,
)
from .builder import stream_chunk_builder
from .types import ChatCompletion, Record

__all__ = [
    "DEFAULT_MAX_EVENT_SIZE",
    "DIALECTS",
    "Accumulator",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChoiceDelta",
    "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallFunction",
    "ChunkChoice",
    "ChunkDecoder",
    "Record",
    "SSEDecoder",
    "ServerSentEvent",
    "__version__",
    "errors",
    "stream_chunk_builder",
]
