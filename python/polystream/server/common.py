"""What every route shares: the server state, request bodies with a size limit, and an SSE response
that writes each piece as soon as it exists and stops its source when the client goes away."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from .auth import Authenticator, Principal, redact
from .config import ProxyConfig
from .errors import ProxyError, error_event, from_exception
from .metrics import Metrics

log = logging.getLogger("polystream.server")
T = TypeVar("T")

SSE_HEADERS = {
    "cache-control": "no-cache",
    "x-accel-buffering": "no",  # nginx: do not buffer this response
    "connection": "keep-alive",
}


@dataclass
class ServerState:
    config: ProxyConfig
    auth: Authenticator
    metrics: Metrics
    service: Any = None  # polystream.background ResponsesService (or a stand-in in tests)


def state(request: Request) -> ServerState:
    return request.app.state.polystream  # type: ignore[no-any-return]


def authenticate(request: Request) -> Principal:
    return state(request).auth.authenticate(request.headers)


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object; 413 past `limit` bytes (checked while reading, so a huge body is
    never held whole), 400 if it is not a JSON object."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProxyError(413, f"Request body too large (limit {limit} bytes).", "invalid_request_error",
                         None, "request_too_large")
    parts, size = [], 0
    try:
        async for piece in request.stream():
            size += len(piece)
            if size > limit:
                raise ProxyError(413, f"Request body too large (limit {limit} bytes).", "invalid_request_error",
                                 None, "request_too_large")
            parts.append(piece)
    except ClientDisconnect:
        raise ClientGone from None
    raw = b"".join(parts)
    if not raw.strip():
        raise ProxyError(400, "The request body is empty; expected a JSON object.", code="invalid_json")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProxyError(400, f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ProxyError(400, "The request body must be a JSON object.", code="invalid_json")
    return body


class ClientGone(Exception):
    """The client disconnected while its request was being worked on."""


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it if the client disconnects first (then raise ClientGone).

    Starlette does not watch for disconnects outside streaming responses; without this a client
    giving up on a slow non-streaming call (or on the wait for a stream's first chunk) would
    leave the upstream request running to the end. Call only after the body has been read.
    """
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_until_disconnect(request.receive))
    try:
        await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        watch.cancel()
        await asyncio.gather(task, watch, return_exceptions=True)
        raise
    watch.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise ClientGone
    return task.result()


def json_response(data: bytes | str | Any, status: int = 200) -> Response:
    if not isinstance(data, (bytes, str)):
        data = json.dumps(data, ensure_ascii=False)
    return Response(data, status, media_type="application/json")


class SSEResponse(Response):
    """Streams `source` (bytes, each a complete SSE event) unbuffered.

    The client leaving cancels the relay at once, even while the source is waiting on upstream,
    and closes the source (for a chat stream: the upstream HTTP request). A failure of the source
    after the headers went out is written as an OpenAI error event.
    """

    media_type = "text/event-stream"

    def __init__(self, source: AsyncIterator[bytes], route: str, metrics: Metrics, started: float | None) -> None:
        self.source, self.route, self.metrics, self.started = source, route, metrics, started
        self.status_code = 200
        self.background = None
        self.init_headers(SSE_HEADERS)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        relay = asyncio.ensure_future(self._relay(send))
        watch = asyncio.ensure_future(_until_disconnect(receive))
        try:
            await asyncio.wait((relay, watch), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (relay, watch):
                task.cancel()
            await asyncio.gather(relay, watch, return_exceptions=True)
            close = getattr(self.source, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # closing a failed upstream; nothing more to tell the client
                    log.debug("closing stream source failed", exc_info=True)

    async def _relay(self, send: Any) -> None:
        n = 0
        try:
            async for piece in self.source:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                if n == 0 and self.started is not None:
                    self.metrics.first_token(self.route, time.monotonic() - self.started)
                n += 1
        except Exception as exc:  # noqa: BLE001 - the headers are out; report in-band
            err = from_exception(exc)
            err.message = redact(err.message)  # upstream text may quote URLs or headers
            self.metrics.error(err.type)
            if err.type == "server_error":  # a bug of ours, not an upstream failure: keep the traceback
                log.error("stream failed on %s", self.route, exc_info=exc)
            else:
                log.info("stream ended early on %s: %s", self.route, err.message)
            await send({"type": "http.response.body", "body": error_event(err), "more_body": True})
        finally:
            self.metrics.relayed(self.route, n)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
