"""LeanTransport: the async httpx transport polystream's pooled client uses.

HTTP/1.1 keep-alive connections over asyncio protocols, responses parsed by httptools (llhttp,
in C). httpx's default transport (httpcore + h11 + anyio) costs about 1 ms of CPU per streaming
request on a small VM, mostly per-event and per-read bookkeeping: cancel scopes, h11's
pure-Python state machine, one async hop per body piece. Here a read is one `data_received`
callback that feeds the parser, and a reader waiting on the body wakes once per socket read,
taking every piece that arrived as one `bytes`. That is what a proxy relaying thousands of
streams needs. It is still httpx: the client, its request building, timeouts and exceptions.

What it does not do, it hands to httpx's own transport: HEAD (llhttp cannot be told a response
has no body), CONNECT and upgrades, schemes other than http/https. HTTP/2 is not offered (ALPN
says http/1.1), as with httpx's default. Proxies are not spoken: with a proxy in the environment
the pooled client uses httpx's own transport (see _http.py). Timeouts come from the request (`connect`, and `read` for every wait for
bytes); a stalled upstream fails with httpx.ReadTimeout as it would under httpcore.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from typing import Any

import httpx
import httptools

__all__ = ["LeanTransport"]

_HIGH_WATER = 1 << 20  # unread body bytes before the socket is paused (a slow consumer)
_LOW_WATER = 1 << 18


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: parses whatever arrives; a reader takes the body pieces."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.until_eof = False  # the body is delimited by the connection closing
        self.error: Exception | None = None
        self.body: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.received = False  # any byte of this response arrived
        self.keep_alive = False

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.complete:  # bytes nobody asked for (no request is pipelined): not reusable
            self._fail(httpx.RemoteProtocolError("unexpected bytes after a complete response"))
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the server switched protocols unasked"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP response: {exc}"))
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and self.error is None:
            if self.headers_done and self.until_eof:
                self.complete = True  # a body without length or chunking ends with the connection
            else:
                self.error = httpx.RemoteProtocolError(
                    "the server closed the connection before the response was complete"
                    if self.headers_done or self.received else "the server closed the connection without a response"
                ) if exc is None else httpx.ReadError(f"connection lost: {exc!r}")
        self._wake()

    # -- httptools callbacks
    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:  # 1xx interim (103 Early Hints): the real head follows
            return
        self.headers_done = True
        framing = {k.lower() for k, _ in self.headers}
        self.until_eof = b"content-length" not in framing and b"transfer-encoding" not in framing

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        if not self.headers_done:  # the end of a 1xx
            self.status, self.reason, self.headers = 0, b"", []
            return
        self.keep_alive = self.parser.should_keep_alive()  # only valid inside this callback
        self.complete = True

    # -- for the transport
    def _fail(self, error: Exception) -> None:
        self.error = error
        if self.transport is not None:
            self.transport.close()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def wait(self, timeout: float | None) -> None:
        """Until more arrives (or the connection ends); httpx.ReadTimeout after `timeout`."""
        fut = self.waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, _expire, fut) if timeout is not None else None
        try:
            await fut
        finally:
            self.waiter = None
            if timer is not None:
                timer.cancel()

    async def head(self, timeout: float | None) -> None:
        while not self.headers_done:
            if self.error is not None:
                raise self.error
            await self.wait(timeout)

    async def read(self, timeout: float | None) -> bytes:
        """The body bytes that arrived since the last read (b"" at the end)."""
        while not self.body:
            if self.error is not None:
                raise self.error
            if self.complete:
                return b""
            await self.wait(timeout)
        body = self.body
        data = body.popleft() if len(body) == 1 else b"".join(body)
        body.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and self.error is None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_exception(httpx.ReadTimeout("no bytes from the server within the read timeout"))


class _Body(httpx.AsyncByteStream):
    def __init__(self, pool: LeanTransport, origin: tuple[str, str, int], conn: _Connection, timeout: float | None) -> None:
        self.pool, self.origin, self.conn, self.timeout = pool, origin, conn, timeout

    async def __aiter__(self) -> Any:
        conn, timeout = self.conn, self.timeout
        while True:
            data = await conn.read(timeout)
            if not data:
                return
            yield data

    async def aclose(self) -> None:
        self.pool._release(self.origin, self.conn)


class LeanTransport(httpx.AsyncBaseTransport):
    """A pool of keep-alive HTTP/1.1 connections per origin (see the module doc).

    `max_idle_per_origin` idle connections are kept per origin, each for at most
    `keepalive_expiry` seconds; connections in use are not limited (the callers are)."""

    def __init__(self, *, verify: ssl.SSLContext | bool | str = True, max_idle_per_origin: int = 100,
                 keepalive_expiry: float = 30.0) -> None:
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._max_idle = max_idle_per_origin
        self._expiry = keepalive_expiry
        self._fallback: httpx.AsyncHTTPTransport | None = None

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            v = self._verify
            if isinstance(v, ssl.SSLContext):
                self._ssl = v  # the caller's, as given
            else:
                self._ssl = httpx.create_ssl_context(verify=v)
                self._ssl.set_alpn_protocols(["http/1.1"])
        return self._ssl

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https") or request.method in ("HEAD", "CONNECT") or "upgrade" in request.headers:
            if self._fallback is None:
                self._fallback = httpx.AsyncHTTPTransport(verify=self._verify)
            return await self._fallback.handle_async_request(request)
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        timeouts = request.extensions.get("timeout") or {}
        body = await request.aread()
        conn = self._checkout(origin) or await self._connect(origin, timeouts.get("connect"))
        try:
            conn.transport.write(_head(request, body) + body)  # type: ignore[union-attr]
            await conn.head(timeouts.get("read"))
        except BaseException:
            conn.close()
            raise
        return httpx.Response(
            conn.status, headers=conn.headers, stream=_Body(self, origin, conn, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": conn.reason},
        )

    def _checkout(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self._expiry:
                conn._reset()
                return conn
            conn.close()
        return None

    async def _connect(self, origin: tuple[str, str, int], timeout: float | None) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = self._ssl_context() if scheme == "https" else None
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop), host, port, ssl=tls,
                                       server_hostname=host if tls is not None else None),
                timeout,
            )
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} took over {timeout} s") from None
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
        return conn

    def _release(self, origin: tuple[str, str, int], conn: _Connection) -> None:
        """The response is closed: keep its connection if the whole message was read, else drop it
        (unread bytes would corrupt the next response)."""
        if conn.closed:
            return
        idle = self._idle.setdefault(origin, [])
        if conn.reusable() and len(idle) < self._max_idle:
            conn.idle_since = time.monotonic()
            idle.append(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        if self._fallback is not None:
            await self._fallback.aclose()


def _head(request: httpx.Request, body: bytes) -> bytes:
    """The request line and headers. httpx's client has set Host, Content-Length, etc.; a body
    it meant to stream chunked is sent whole, with its length."""
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), request.url.raw_path)]
    headers = request.headers
    if "transfer-encoding" in headers:
        lines += [b"%s: %s" % kv for kv in headers.raw if kv[0].lower() != b"transfer-encoding"]
    else:
        lines += [b"%s: %s" % kv for kv in headers.raw]
    if body and "content-length" not in headers:
        lines.append(b"Content-Length: %d" % len(body))
    lines.append(b"\r\n")
    return b"\r\n".join(lines)
