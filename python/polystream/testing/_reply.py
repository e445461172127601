"""`Reply`: what the replay server sends for one request, cut into pieces ahead of time.

Everything that costs per piece (splitting, chunk framing) is done once per `Reply` and cached,
so the server's hot loop is a write (and, when the client lags, a wait for the socket to drain).
"""

from __future__ import annotations

import json
import random
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Union

Split = Union[str, int, None]

# One SSE line terminator: CRLF as a unit, else a lone LF or CR (a CR followed by LF is never
# counted as two terminators, which would invent blank lines inside CRLF streams).
_EOL = rb"(?:\r\n|\n|\r(?!\n))"
_SSE_EVENT_END = re.compile(_EOL + _EOL)

_CONTENT_TYPES = {
    ".sse": "text/event-stream",
    ".ndjson": "application/x-ndjson",
    ".jsonl": "application/x-ndjson",
    ".json": "application/json",
    ".eventstream": "application/vnd.amazon.eventstream",
}

LARGE_WRITE = 65536  # the "auto" piece size for length-framed bodies


def content_type_for(path: str | Path) -> str:
    """The content type a recorded body is served with, from its file extension."""
    return _CONTENT_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")


def split_events(body: bytes, content_type: str) -> list[bytes]:
    """Cut at the natural message boundaries of the body's framing.

    SSE: after each blank line (LF, CRLF or CR line endings). NDJSON: after each LF.
    AWS eventstream: per length-prefixed frame. Anything else is one piece.
    """
    mime = content_type.split(";", 1)[0].strip().lower()
    cuts: list[int] = []
    if mime == "text/event-stream":
        cuts = [m.end() for m in _SSE_EVENT_END.finditer(body)]
    elif mime in ("application/x-ndjson", "application/jsonl", "application/ndjson"):
        cuts = [m.end() for m in re.finditer(rb"\n", body)]
    elif mime == "application/vnd.amazon.eventstream":
        pos = 0
        while pos + 4 <= len(body):
            pos += max(struct.unpack_from(">I", body, pos)[0], 4)
            cuts.append(min(pos, len(body)))
    return _cut(body, cuts)


def _cut(body: bytes, cuts: list[int]) -> list[bytes]:
    pieces, start = [], 0
    for end in cuts:
        if end > start:
            pieces.append(body[start:end])
            start = end
    if start < len(body):
        pieces.append(body[start:])
    return pieces


def split_body(body: bytes, split: Split, content_type: str, seed: int = 0, random_max: int = 16) -> list[bytes]:
    """The pieces `body` is written in (see `Reply.split`)."""
    if split is None or not body:
        return [body] if body else []
    if split == "event":
        return split_events(body, content_type)
    if split == "random":
        rng = random.Random(seed)
        cuts, pos = [], 0
        while pos < len(body):
            pos += rng.randint(1, random_max)
            cuts.append(pos)
        return _cut(body, cuts)
    if isinstance(split, int) and not isinstance(split, bool) and split > 0:
        return [body[i : i + split] for i in range(0, len(body), split)]
    raise ValueError(f"split must be 'event', 'random', a positive int or None, not {split!r}")


@dataclass(frozen=True, eq=False)
class Reply:
    """One response. Treat as immutable (pieces are cached); derive variants with `dataclasses.replace`.

    split: "event" (SSE events / NDJSON lines / eventstream frames), an int (fixed byte sizes),
      "random" (sizes 1..random_max from `seed`), None (one piece), or "auto" (the default:
      "event" when chunked, LARGE_WRITE-byte writes when `length_framed`).
    Each piece is one HTTP chunk (chunked transfer encoding) and one socket write, so a client
    sees separate reads. Timing: headers go out after `header_delay`; piece 0 after a further
    `first_delay`; later pieces `delay` apart.
    drop_after: close the socket after that many pieces (no terminating chunk; with a
      Content-Length the body is short). FIN by default, RST if `drop_reset`.
    stall_after: after that many pieces send nothing more but keep the connection open until
      the client goes away (for idle/read-timeout tests). Whichever of the two comes first wins.
    length_framed: send Content-Length and raw pieces instead of chunked transfer encoding.
    """

    body: bytes = b""
    status: int = 200
    headers: Mapping[str, str] | None = None
    content_type: str = "text/event-stream"
    split: Split = "auto"
    seed: int = 0
    random_max: int = 16
    delay: float = 0.0
    first_delay: float = 0.0
    header_delay: float = 0.0
    drop_after: int | None = None
    drop_reset: bool = False
    stall_after: int | None = None
    length_framed: bool = False
    _cache: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.body, str):
            object.__setattr__(self, "body", self.body.encode())
        elif not isinstance(self.body, bytes):
            object.__setattr__(self, "body", bytes(self.body))
        if self.random_max < 1:
            raise ValueError("random_max must be >= 1")
        self.pieces  # validate `split` now, not on the server thread at request time

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def json(cls, body: Any, status: int = 200, headers: Mapping[str, str] | None = None, **opts: Any) -> Reply:
        """A JSON body (dict/list are serialised; bytes/str sent as is), Content-Length framed."""
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        opts.setdefault("length_framed", True)
        return cls(body, status=status, headers=headers, content_type="application/json", **opts)

    @classmethod
    def error(cls, status: int, json_body: Any = None, headers: Mapping[str, str] | None = None, **opts: Any) -> Reply:
        """An HTTP error, e.g. `Reply.error(429, {...}, headers={"retry-after": "1"})`.

        Without a body, an OpenAI-style `{"error": {"message", "type", "code"}}` is made up.
        """
        if json_body is None:
            phrase = _phrase(status)
            json_body = {"error": {"message": phrase, "type": phrase.lower().replace(" ", "_"), "code": status}}
        return cls.json(json_body, status=status, headers=headers, **opts)

    @classmethod
    def from_file(cls, path: str | Path, **opts: Any) -> Reply:
        """A recorded body, served with the content type its extension implies."""
        opts.setdefault("content_type", content_type_for(path))
        return cls(Path(path).read_bytes(), **opts)

    # -- precomputed wire form ----------------------------------------------------------------
    @property
    def effective_split(self) -> Split:
        if self.split == "auto":
            return LARGE_WRITE if self.length_framed else "event"
        return self.split

    @property
    def pieces(self) -> list[bytes]:
        """The body cut as it will be written (without chunk framing)."""
        got = self._cache.get("pieces")
        if got is None:
            got = split_body(self.body, self.effective_split, self.content_type, self.seed, self.random_max)
            self._cache["pieces"] = got
        return got

    def wire_pieces(self) -> list[bytes]:
        """Each piece ready for `transport.write`: chunk-framed unless `length_framed`."""
        got = self._cache.get("wire")
        if got is None:
            if self.length_framed:
                got = self.pieces
            else:
                got = [b"%x\r\n%b\r\n" % (len(p), p) for p in self.pieces]
            self._cache["wire"] = got
        return got

    def head(self, close: bool) -> bytes:
        """Status line and headers (with the blank line)."""
        key = ("head", close)
        got = self._cache.get(key)
        if got is None:
            extra = dict(self.headers or {})
            names = {k.lower() for k in extra}
            lines = [f"HTTP/1.1 {self.status} {_phrase(self.status)}"]
            if "content-type" not in names:
                lines.append(f"content-type: {self.content_type}")
            if self.length_framed:
                lines.append(f"content-length: {len(self.body)}")
            else:
                lines.append("transfer-encoding: chunked")
            if close:
                lines.append("connection: close")
            lines += [f"{k}: {v}" for k, v in extra.items()]
            got = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
            self._cache[key] = got
        return got


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
