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
    ResponsesBuilder,
    ServerSentEvent,
    SSEDecoder,
    __version__,
)
from .builder import stream_chunk_builder
from .client import acompletion, completion
from .errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    InternalServerError,
    MidStreamError,
    NotFoundError,
    PermissionDeniedError,
    PolystreamError,
    RateLimitError,
    ServiceUnavailableError,
    Timeout,
)
from .streaming import AsyncStream, Stream
from .types import ChatCompletion, Record

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "ContentPolicyViolationError",
    "ContextWindowExceededError",
    "InternalServerError",
    "MidStreamError",
    "NotFoundError",
    "PermissionDeniedError",
    "PolystreamError",
    "RateLimitError",
    "ServiceUnavailableError",
    "Stream",
    "Timeout",
    "acompletion",
    "completion",
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
    "ResponsesBuilder",
    "SSEDecoder",
    "ServerSentEvent",
    "__version__",
    "errors",
    "stream_chunk_builder",
]
