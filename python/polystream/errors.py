"""The polystream exception tree.

Every exception polystream raises derives from :class:`PolystreamError`::

    PolystreamError
    ├── StreamDecodeError            the bytes are not a valid stream of the expected format
    │   ├── EventTooLargeError       one event/line grew past ``max_event_size`` (``.limit``)
    │   ├── InvalidChunkError        a payload is not the JSON the dialect expects (``.payload``)
    │   ├── IncompleteStreamError    the stream ended before the provider's terminator
    │   └── DecoderPoisonedError     bytes fed after a fatal error
    ├── ProviderStreamError          the provider reported an error inside the stream
    │                                (``.type``, ``.code``, ``.param``, ``.body``)
    └── UnknownDialectError          no wire dialect of that name (also a ValueError)

Nothing decoded is thrown away: when ``feed`` fails, the events or chunks it completed before
the error are on the exception's ``items``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "PolystreamError",
    "StreamDecodeError",
    "EventTooLargeError",
    "InvalidChunkError",
    "IncompleteStreamError",
    "DecoderPoisonedError",
    "ProviderStreamError",
    "UnknownDialectError",
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
