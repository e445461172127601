"""What every route shares: the server state, request bodies with a size limit, errors as the client
gets them, watching for the client leaving, and the SSE relay that writes each piece as soon as it
exists and stops its source when the client goes away.

Plain ASGI where it counts: the chat route (routes_chat.py) runs in front of Starlette and uses
these directly; the Starlette routes use them through `read_json`, `unless_disconnected` and
`SSEResponse`."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from .auth import Authenticator, Principal, redact
from .config import ProxyConfig
from .errors import ProxyError, error_event, error_response, from_exception
from .metrics import Metrics

log = logging.getLogger("polystream.server")
T = TypeVar("T")

# What Starlette made of {"cache-control": "no-cache", "x-accel-buffering": "no", "connection":
# "keep-alive"} with media type text/event-stream, built once.
SSE_HEADERS = [
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: do not buffer this response
    (b"connection", b"keep-alive"),
    (b"content-type", b"text/event-stream; charset=utf-8"),
]


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
    return await read_json_body(request.receive, request.headers, limit)


async def read_json_body(receive: Any, headers: Mapping[str, str], limit: int) -> dict[str, Any]:
    """The body as a JSON object; 413 past `limit` bytes (checked while reading, so a huge body is
    never held whole), 400 if it is not a JSON object, ClientGone if the client leaves first.
    `headers`: lower-case names (Starlette's Headers)."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parts, size, more = [], 0, True
    while more:
        message = await receive()
        kind = message["type"]
        if kind == "http.disconnect":
            raise ClientGone
        if kind != "http.request":
            continue
        piece = message.get("body", b"")
        more = message.get("more_body", False)
        if piece:
            size += len(piece)
            if size > limit:
                raise _too_large(limit)
            parts.append(piece)
    raw = parts[0] if len(parts) == 1 else b"".join(parts)
    if not raw.strip():
        raise ProxyError(400, "The request body is empty; expected a JSON object.", code="invalid_json")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProxyError(400, f"The request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ProxyError(400, "The request body must be a JSON object.", code="invalid_json")
    return body


def _too_large(limit: int) -> ProxyError:
    return ProxyError(413, f"Request body too large (limit {limit} bytes).", "invalid_request_error", None,
                      "request_too_large")


def json_response(data: bytes | str | Any, status: int = 200) -> Response:
    if not isinstance(data, (bytes, str)):
        data = json.dumps(data, ensure_ascii=False)
    return Response(data, status, media_type="application/json")


# ---------------------------------------------------------------- errors as the client gets them


def error_reply(err: ProxyError, metrics: Metrics) -> Response:
    """The JSON response for `err`, counted, with secrets masked (upstream messages may quote URLs
    or headers)."""
    metrics.error(err.type)
    err.message = redact(err.message)
    return error_response(err)


def internal_error(exc: BaseException, method: str, path: str) -> ProxyError:
    """A bug of ours: logged with its traceback; the client gets a plain 500."""
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return ProxyError(500, "Internal error in the proxy.", "server_error", None, "internal_error")


# ---------------------------------------------------------------- the client leaving


class ClientGone(Exception):
    """The client disconnected while its request was being worked on."""


class DisconnectWatch:
    """Inside `with DisconnectWatch(receive):`, the client disconnecting cancels the current task
    at whatever it awaits (the upstream call, the wait for the next chunk, a send), and the block
    ends with ClientGone. Costs one task per request, nothing per chunk.

    Use it only after the body has been read (from then on the one message `receive` can bring
    is http.disconnect), and end the block before the last body message goes out: once the
    response is complete, uvicorn's receive() answers http.disconnect.
    """

    __slots__ = ("_task", "_watcher", "gone")

    def __init__(self, receive: Any) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        assert task is not None
        self._task, self.gone = task, False
        self._watcher = loop.create_task(self._watch(receive))

    async def _watch(self, receive: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self._task.cancel()

    def __enter__(self) -> DisconnectWatch:
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        # Cancelled before it runs again, the watcher can no longer cancel us: after this line a
        # disconnect is nobody's business but the caller's next send (which uvicorn then drops).
        self._watcher.cancel()
        if not self.gone:
            return
        uncancel = getattr(self._task, "uncancel", None)  # 3.11+: the cancellation was ours, not the server's
        if uncancel is not None:
            uncancel()
        raise ClientGone from None


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it if the client disconnects first (then raise ClientGone).

    Starlette does not watch for disconnects outside streaming responses; without this a client
    giving up on a slow non-streaming call (or on the wait for a stream's first chunk) would
    leave the upstream request running to the end. Call only after the body has been read.
    """
    with DisconnectWatch(request.receive):
        return await work


# ---------------------------------------------------------------- SSE


async def relay(send: Any, source: AsyncIterator[Any], frame: Callable[[Any], tuple[bytes, int]] | None,
                route: str, metrics: Metrics, started: float | None, end: bytes = b"",
                headers: list[tuple[bytes, bytes]] = SSE_HEADERS) -> bytes:
    """Sends the SSE head, then each item of `source` the moment it arrives, in one write: the
    item itself (bytes, one event) without `frame`, else `frame(item)` = (its events' bytes, how
    many; 0 skips the item), so a batch of chunks that arrived together goes out together.
    Returns the body of the message that ends the response, for the caller to send once its
    DisconnectWatch is over: `end` when the source ran out, or, if it failed (the headers are
    out), an OpenAI error event."""
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    n = 0
    try:
        async for item in source:
            if frame is None:
                piece, k = item, 1
            else:
                piece, k = frame(item)
                if not k:
                    continue
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            if n == 0 and started is not None:
                metrics.first_token(route, time.monotonic() - started)
            n += k
    except Exception as exc:  # noqa: BLE001 - the headers are out; report in-band
        err = from_exception(exc)
        err.message = redact(err.message)  # upstream text may quote URLs or headers
        metrics.error(err.type)
        if err.type == "server_error":  # a bug of ours, not an upstream failure: keep the traceback
            log.error("stream failed on %s", route, exc_info=exc)
        else:
            log.info("stream ended early on %s: %s", route, err.message)
        return error_event(err)
    finally:
        metrics.relayed(route, n)
    return end


async def aclose_quietly(source: Any) -> None:
    close = getattr(source, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # closing a failed upstream; nothing more to tell the client
            log.debug("closing stream source failed", exc_info=True)


class SSEResponse(Response):
    """Streams `source` (bytes, each a complete SSE event) unbuffered.

    The client leaving cancels the relay at once, even while the source is waiting on upstream,
    and closes the source (for a stream: the upstream request or the store's event feed). A
    failure of the source after the headers went out is written as an OpenAI error event.
    """

    media_type = "text/event-stream"

    def __init__(self, source: AsyncIterator[bytes], route: str, metrics: Metrics, started: float | None) -> None:
        self.source, self.route, self.metrics, self.started = source, route, metrics, started
        self.status_code = 200
        self.background = None
        self.raw_headers = list(SSE_HEADERS)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            with DisconnectWatch(receive):
                end = await relay(send, self.source, None, self.route, self.metrics, self.started,
                                  headers=self.raw_headers)
            await send({"type": "http.response.body", "body": end, "more_body": False})
        except ClientGone:
            pass  # nobody is listening any more
        finally:
            await aclose_quietly(self.source)
