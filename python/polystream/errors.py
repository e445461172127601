"""The polystream exception tree.

Every exception polystream raises derives from :class:`PolystreamError`::

    PolystreamError
    ├── StreamDecodeError            the bytes are not a valid stream of the expected format
    │   ├── EventTooLargeError       one event/line grew past ``max_event_size`` (``.limit``)
    │   ├── InvalidChunkError        a payload is not the JSON the dialect expects (``.payload``)
    │   ├── InvalidFrameError        corrupt binary framing: a CRC mismatch, an impossible length
    │   │                            (``.framing``, e.g. ``"eventstream"``)
    │   ├── IncompleteStreamError    the stream ended before the provider's terminator
    │   └── DecoderPoisonedError     bytes fed after a fatal error
    ├── ProviderStreamError          the provider reported an error inside the stream
    │                                (``.type``, ``.code``, ``.param``, ``.body``)
    ├── UnknownDialectError          no wire dialect of that name (also a ValueError)
    ├── UnknownProviderError         no provider of that name (also a ValueError)
    └── APIError                     a call to a provider failed (``.provider``, ``.model``,
        │                            ``.status_code``, ``.body``, ``.request_id``, ``.type``, ``.code``)
        ├── APIConnectionError       no HTTP response (DNS, refused, reset, dropped mid-stream)
        │   └── Timeout              connect / idle-between-chunks / total duration (a TimeoutError)
        ├── APIStatusError           the provider answered with an error status
        │   ├── BadRequestError                  400, 409, 413, 422
        │   │   ├── ContextWindowExceededError   the prompt does not fit the model
        │   │   └── ContentPolicyViolationError  refused by the provider's safety system
        │   ├── AuthenticationError              401
        │   ├── PermissionDeniedError            403
        │   ├── NotFoundError                    404
        │   ├── RateLimitError                   429 (``.retry_after`` seconds, when sent)
        │   ├── InternalServerError              500 and other 5xx
        │   └── ServiceUnavailableError          502, 503, 504, 529 (overloaded)
        └── MidStreamError           the stream broke after it started (``.partial``: the
                                     ChatCompletion so far; ``.chunks_received``). Raised as a class
                                     that is *also* the typed error (e.g. a mid-stream overload is
                                     both MidStreamError and ServiceUnavailableError).

Nothing decoded is thrown away: when ``feed`` fails, the events or chunks it completed before
the error are on the exception's ``items``; when a stream fails, ``partial`` holds the answer so far.
"""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = [
    "PolystreamError",
    "StreamDecodeError",
    "EventTooLargeError",
    "InvalidChunkError",
    "InvalidFrameError",
    "IncompleteStreamError",
    "DecoderPoisonedError",
    "ProviderStreamError",
    "UnknownDialectError",
    "UnknownProviderError",
    "APIError",
    "APIConnectionError",
    "Timeout",
    "APIStatusError",
    "BadRequestError",
    "ContextWindowExceededError",
    "ContentPolicyViolationError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "RateLimitError",
    "InternalServerError",
    "ServiceUnavailableError",
    "MidStreamError",
    "mid_stream",
]


class PolystreamError(Exception):
    """Base class of every polystream exception."""

    kind: str = "error"
    items: list[Any]

    def __init__(self, message: str = "", **attrs: Any) -> None:
        super().__init__(message)
        self.message = message
        self.items = list(attrs.pop("items", None) or [])
        for name, value in attrs.items():
            setattr(self, name, value)


class StreamDecodeError(PolystreamError):
    """The bytes are not a valid stream of the expected format."""


class EventTooLargeError(StreamDecodeError):
    """One SSE event (or NDJSON line) exceeded ``max_event_size``; memory stays bounded."""

    limit: int


class InvalidChunkError(StreamDecodeError):
    """A frame's payload is not the JSON the dialect expects."""

    dialect: str
    payload: str


class InvalidFrameError(StreamDecodeError):
    """The binary framing is corrupt (an AWS eventstream CRC mismatch, an impossible length, a
    malformed header): the bytes are not the stream they claim to be."""

    framing: str


class IncompleteStreamError(StreamDecodeError):
    """The stream ended before the provider's terminator: the response was truncated."""

    dialect: str


class DecoderPoisonedError(StreamDecodeError):
    """The decoder already failed; create a new one."""


class ProviderStreamError(PolystreamError):
    """The provider reported an error inside the stream (an ``error`` event or payload)."""

    error_message: str
    type: str | None
    code: str | None
    param: str | None
    body: str


class UnknownDialectError(PolystreamError, ValueError):
    """No wire dialect of that name."""

    dialect: str


class UnknownProviderError(PolystreamError, ValueError):
    """No provider of that name (the part of ``model`` before the first ``/``)."""

    provider: str


class APIError(PolystreamError):
    """A call to a provider failed."""

    provider: str | None = None
    model: str | None = None
    status_code: int | None = None
    body: Any = None
    request_id: str | None = None
    type: str | None = None
    code: str | None = None
    #: Worth another attempt (before any output was yielded)?
    retryable: bool = False


class APIConnectionError(APIError):
    """No (complete) HTTP response: connection refused or reset, DNS, TLS, dropped mid-body."""

    retryable = True


class Timeout(APIConnectionError, TimeoutError):
    """Connect timeout, idle timeout between chunks, or the maximum streaming duration."""


class APIStatusError(APIError):
    """The provider answered with an error status."""


class BadRequestError(APIStatusError):
    """400 (and 409, 413, 422): the request is wrong; retrying will not help."""


class ContextWindowExceededError(BadRequestError):
    """The prompt (plus max tokens) does not fit the model's context window."""


class ContentPolicyViolationError(BadRequestError):
    """The provider's safety system refused the request."""


class AuthenticationError(APIStatusError):
    """401: missing or invalid API key."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not use this model or resource."""


class NotFoundError(APIStatusError):
    """404: unknown model or endpoint."""


class RateLimitError(APIStatusError):
    """429: too many requests or tokens; ``retry_after`` holds the provider's hint in seconds."""

    retryable = True
    retry_after: float | None = None


class InternalServerError(APIStatusError):
    """500 and other 5xx: the provider failed."""

    retryable = True


class ServiceUnavailableError(APIStatusError):
    """502/503/504/529: the provider is overloaded or unavailable."""

    retryable = True


class MidStreamError(APIError):
    """The stream broke after it started. ``partial`` is the ChatCompletion accumulated so far."""

    partial: Any = None
    chunks_received: int = 0
    retryable = False  # output may already have reached the caller


_E = TypeVar("_E", bound=APIError)
_MID_STREAM: dict[type, type] = {}


def mid_stream(cls: type[_E]) -> type[_E]:
    """The class that is both ``cls`` and :class:`MidStreamError` (cached), so callers can catch
    either the kind of failure or the fact that it happened mid-stream."""
    if issubclass(cls, MidStreamError):
        return cls
    mixed = _MID_STREAM.get(cls)
    if mixed is None:
        mixed = type(f"MidStream{cls.__name__}", (MidStreamError, cls), {"__module__": __name__})
        _MID_STREAM[cls] = mixed
    return mixed
