"""LeanTransport / SyncLeanTransport: the httpx transports of polystream's pooled clients.

Keep-alive HTTP/1.1 connections, responses parsed by httptools (llhttp, in C). httpx's default
transport (httpcore + h11 + anyio) costs about 1 ms of CPU per streaming request on a small VM,
and a few µs per body piece: cancel scopes, h11's pure-Python state machine, one iteration per
HTTP chunk. Here one socket read feeds the parser, and the reader takes everything that arrived
as one `bytes`: a stream of small events costs one wakeup per read, not one per event. The
async transport runs on asyncio protocols, the sync one on blocking sockets. It is still httpx:
the clients, requests, responses, timeouts and exceptions are httpx's.

What they do not do, they hand to httpx's own transport: HEAD (llhttp cannot be told a response
has no body), CONNECT and upgrades, schemes other than http/https. HTTP/2 is not offered (ALPN
says http/1.1), as with httpx's default. Proxies are not spoken: with a proxy in the environment
the pooled clients are plain httpx ones (see _http.py). Timeouts come from the request: connect,
write, and read for every wait for bytes, so a stalled upstream fails with httpx.ReadTimeout as
it would under httpcore.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
import struct
import sys
import threading
import time
import weakref
from typing import Any

import httpx
import httptools

__all__ = ["LeanTransport", "SyncLeanTransport"]

# Reads are at most _READ bytes, and a reader takes about that much at a time. The decoder turns
# each take into chunk objects at once (~100 chunks at 32 KiB), and a stream drops them, and the
# read's bytes, before it waits for its next read (streaming.py): so only the streams being
# decoded hold chunks, and an async process may run hundreds of streams (100 at once: 53-54 MB
# peak RSS at 32 KiB, 58 MB at 64 KiB, 50 MB at 16 KiB). Each read costs the event loop a fixed
# ~10 µs, hence not smaller: 32 KiB takes ~5 % fewer instructions per chunk than 16 KiB at 100
# streams (benches/client_instructions.py --async). A sync stream has a thread to itself and
# reads as much. An async connection stops reading once _HIGH_WATER bytes are waiting for its
# reader: the rest waits in the kernel's socket buffer, not in our memory.
_READ = 1 << 15
_SYNC_READ = 1 << 15
_HIGH_WATER = _READ
# Plain sync sockets stay blocking and the kernel enforces their timeouts (see _SyncConnection).
_KERNEL_TIMEOUTS = sys.platform == "linux"

# The asyncio connections of one event loop share one receive buffer: a transport calls
# get_buffer(), recv_into() and buffer_updated() in one go, and buffer_updated() parses the bytes
# out of it at once, so no two reads ever use it together.
_LOOP_BUFFERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, memoryview] = weakref.WeakKeyDictionary()


def _loop_buffer(loop: asyncio.AbstractEventLoop) -> memoryview:
    buf = _LOOP_BUFFERS.get(loop)
    if buf is None:
        buf = _LOOP_BUFFERS[loop] = memoryview(bytearray(_READ))
    return buf

Origin = tuple[str, str, int]


class _Exchange:
    """One connection's HTTP/1.1 parsing state: what has arrived of the current response.
    Bytes go in through `feed` / `eof`; a reader takes the head, then the body with `take`."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.reset()

    def reset(self) -> None:
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.until_eof = False  # the body is delimited by the connection closing
        self.keep_alive = False
        self.error: Exception | None = None
        self.body: list[bytes] = []
        self.buffered = 0
        self.received = False  # any byte of this response arrived

    def feed(self, data: bytes | memoryview) -> None:
        if self.complete:  # bytes nobody asked for (no request is pipelined): not reusable
            self.fail(httpx.RemoteProtocolError("unexpected bytes after a complete response"))
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.fail(httpx.RemoteProtocolError("the server switched protocols unasked"))
        except httptools.HttpParserError as exc:
            self.fail(httpx.RemoteProtocolError(f"malformed HTTP response: {exc}"))

    def eof(self, exc: Exception | None = None) -> None:
        self.closed = True
        if self.complete or self.error is not None:
            return
        if self.headers_done and self.until_eof and exc is None:
            self.complete = True  # a body without length or chunking ends with the connection
        elif exc is not None:
            self.error = httpx.ReadError(f"connection lost: {exc!r}")
        else:
            self.error = httpx.RemoteProtocolError(
                "the server closed the connection before the response was complete"
                if self.received else "the server closed the connection without a response")

    def take(self, limit: int) -> bytes:
        """The body bytes that arrived since the last take, as one bytes: all of them, or whole
        pieces up to about `limit` bytes."""
        body = self.body
        if self.buffered <= limit:
            data = body[0] if len(body) == 1 else b"".join(body)
            body.clear()
        else:
            k, size = 0, 0
            while size < limit:
                size += len(body[k])
                k += 1
            data = b"".join(body[:k])
            del body[:k]
        self.buffered -= len(data)
        return data

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and self.error is None

    def fail(self, error: Exception) -> None:
        self.error = error
        self.close()

    def close(self) -> None:
        raise NotImplementedError

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

    def response(self, stream: Any) -> httpx.Response:
        return httpx.Response(self.status, headers=self.headers, stream=stream,
                              extensions={"http_version": b"HTTP/1.1", "reason_phrase": self.reason})


class _Connection(_Exchange, asyncio.BufferedProtocol):
    """An asyncio connection: each socket read (into our own _READ-byte buffer) is parsed at
    once; a reader waiting for the body wakes once per read, not once per piece."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[None] | None = None
        # The read timeout: one timer per connection, moved on lazily (see _wait).
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.paused = False
        self.buffer = _loop_buffer(loop)
        super().__init__()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.feed(self.buffer[:nbytes])
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof(exc)
        self._wake()

    def close(self) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.close()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _wait(self, timeout: float | None) -> None:
        """Until more arrives (or the connection ends); httpx.ReadTimeout after `timeout`.

        A stream waits once per read: a timer made and cancelled each time (~3 µs) would cost
        more than the rest of the wait. The connection keeps one timer instead; each wait moves
        the deadline, and the timer, when it fires early, re-arms itself for the deadline."""
        fut = self.waiter = self.loop.create_future()
        if timeout is not None:
            self.deadline = self.loop.time() + timeout
            if self.timer is None or self.timer.when() > self.deadline:
                if self.timer is not None:
                    self.timer.cancel()
                self.timer = self.loop.call_at(self.deadline, self._on_timer)
        try:
            await fut
        finally:
            self.waiter = None

    def _on_timer(self) -> None:
        self.timer = None
        waiter = self.waiter
        if waiter is None or waiter.done():
            return  # nobody waits now: the next wait arms a new timer
        if self.loop.time() + 0.001 >= self.deadline:  # call_at may fire a clock tick early
            waiter.set_exception(httpx.ReadTimeout("no bytes from the server within the read timeout"))
        else:
            self.timer = self.loop.call_at(self.deadline, self._on_timer)

    async def head(self, timeout: float | None) -> None:
        while not self.headers_done:
            if self.error is not None:
                raise self.error
            await self._wait(timeout)

    async def read(self, timeout: float | None) -> bytes:
        """The body bytes that arrived since the last read (b"" at the end)."""
        while not self.body:
            if self.error is not None:
                raise self.error
            if self.complete:
                return b""
            await self._wait(timeout)
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return self.take(_READ)


class _SyncConnection(_Exchange):
    """A blocking socket: one recv of up to _SYNC_READ bytes per read, whatever it holds.

    A read is one system call. A Python socket timeout would cost two more per read (the ioctl
    of `settimeout`, a poll before the recv), and a system call costs microseconds on the VMs
    this runs on. So a timeout is set only when its value changes, and on Linux a plain socket
    stays blocking while the kernel enforces the timeouts (SO_RCVTIMEO / SO_SNDTIMEO: the call
    fails with EAGAIN). TLS sockets keep Python's timeout: CPython's blocking TLS read retries
    on EAGAIN, so a kernel timeout would never end it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.kernel_timeouts = _KERNEL_TIMEOUTS and not isinstance(sock, ssl.SSLSocket)
        # The timeout in force, per SO_RCVTIMEO / SO_SNDTIMEO (kernel) or 0 (the one Python timeout).
        self.timeouts: dict[int, float | None] = {}
        if self.kernel_timeouts:
            sock.settimeout(None)
        super().__init__()

    def _timeout(self, kind: int, value: float | None) -> None:
        if not self.kernel_timeouts:
            kind = 0
        if kind in self.timeouts and self.timeouts[kind] == value:
            return
        if not self.kernel_timeouts:
            self.sock.settimeout(value)
        else:  # a struct timeval; 0 means none, so a zero timeout is the shortest there is
            sec = int(value) if value is not None else 0
            usec = int((value - sec) * 1e6) if value is not None else 0
            if value is not None and not sec and not usec:
                usec = 1
            self.sock.setsockopt(socket.SOL_SOCKET, kind, struct.pack("@ll", sec, usec))
        self.timeouts[kind] = value

    def send(self, data: bytes, timeout: float | None) -> None:
        try:
            self._timeout(socket.SO_SNDTIMEO, timeout)
            self.sock.sendall(data)
        except (socket.timeout, BlockingIOError):
            raise httpx.WriteTimeout("sending the request timed out") from None
        except OSError as exc:
            raise httpx.WriteError(f"sending the request failed: {exc}") from exc

    def _fill(self, timeout: float | None) -> None:
        try:
            self._timeout(socket.SO_RCVTIMEO, timeout)
            data = self.sock.recv(_SYNC_READ)
        except (socket.timeout, BlockingIOError):
            raise httpx.ReadTimeout("no bytes from the server within the read timeout") from None
        except OSError as exc:
            self.eof(exc)
            return
        if data:
            self.feed(data)
        else:
            self.eof()

    def head(self, timeout: float | None) -> None:
        while not self.headers_done:
            if self.error is not None:
                raise self.error
            self._fill(timeout)

    def read(self, timeout: float | None) -> bytes:
        while not self.body:
            if self.error is not None:
                raise self.error
            if self.complete:
                return b""
            self._fill(timeout)
        return self.take(_SYNC_READ)

    def stale(self) -> bool:
        """Did the server close this idle connection (or send something unasked)? A readable idle
        socket means one or the other; with TLS it may also be a record with no data (a session
        ticket), which is fine."""
        if self.closed or not select.select([self.sock], [], [], 0)[0]:
            return self.closed
        try:
            self.sock.setblocking(False)
            self.sock.recv(1)  # b"" (closed) or a byte nobody asked for: either way, done
            return True
        except (ssl.SSLWantReadError, BlockingIOError):
            self.sock.settimeout(None)  # blocking again; the next read sets its timeout anew
            self.timeouts.clear()
            return False
        except OSError:
            return True

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()


class _Body(httpx.AsyncByteStream):
    def __init__(self, pool: LeanTransport, origin: Origin, conn: _Connection, timeout: float | None) -> None:
        self.pool, self.origin, self.conn, self.timeout = pool, origin, conn, timeout

    def __aiter__(self) -> Any:
        return _reads_of(self, None)  # httpx's aiter_raw attaches the request to failures

    async def aclose(self) -> None:
        self.pool._pool.release(self.origin, self.conn)


def async_body_reads(response: httpx.Response) -> Any:
    """The body reads of a response that LeanTransport made and nobody has read yet, else None.
    Their failures carry `.request`, as httpx's own reads would set it."""
    stream = response.stream
    if not isinstance(stream, _Body) or response.is_stream_consumed:
        return None
    response.is_stream_consumed = True
    return _reads_of(stream, response.request)


async def _reads_of(body: _Body, request: httpx.Request | None) -> Any:
    conn, timeout = body.conn, body.timeout
    while True:
        try:
            data = await conn.read(timeout)
        except httpx.RequestError as exc:
            if request is not None:
                exc.request = request
            raise
        if not data:
            return
        yield data
        data = b""  # a stream waiting for its next read holds none of the last one


class _SyncBody(httpx.SyncByteStream):
    def __init__(self, pool: SyncLeanTransport, origin: Origin, conn: _SyncConnection, timeout: float | None) -> None:
        self.pool, self.origin, self.conn, self.timeout = pool, origin, conn, timeout

    def __iter__(self) -> Any:
        conn, timeout = self.conn, self.timeout
        while True:
            data = conn.read(timeout)
            if not data:
                return
            yield data

    def close(self) -> None:
        self.pool._pool.release(self.origin, self.conn)


class _Pool:
    """Idle keep-alive connections per origin: at most `max_idle` each, for at most `expiry`
    seconds. Connections in use are not counted or limited (the callers are). Thread-safe, for
    the sync client shared by threads."""

    def __init__(self, max_idle: int, expiry: float) -> None:
        self.idle: dict[Origin, list[Any]] = {}
        self.max_idle, self.expiry = max_idle, expiry
        self.lock = threading.Lock()

    def checkout(self, origin: Origin) -> Any:
        now = time.monotonic()
        while True:
            with self.lock:
                idle = self.idle.get(origin)
                if not idle:
                    return None
                conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self.expiry and not getattr(conn, "stale", bool)():
                conn.reset()
                return conn
            conn.close()

    def release(self, origin: Origin, conn: Any) -> None:
        """The response is closed: keep its connection if the whole message was read, else drop it
        (unread bytes would corrupt the next response)."""
        if conn.closed:
            return
        if conn.reusable():
            conn.idle_since = time.monotonic()
            with self.lock:
                idle = self.idle.setdefault(origin, [])
                if len(idle) < self.max_idle:
                    idle.append(conn)
                    return
        conn.close()

    def close(self) -> None:
        with self.lock:
            conns = [c for idle in self.idle.values() for c in idle]
            self.idle.clear()
        for c in conns:
            c.close()


class _Lean:
    """What both transports share: settings, the TLS context, which requests they take."""

    def __init__(self, *, verify: ssl.SSLContext | bool | str = True, max_idle_per_origin: int = 100,
                 keepalive_expiry: float = 30.0) -> None:
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self._pool = _Pool(max_idle_per_origin, keepalive_expiry)

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            v = self._verify
            if isinstance(v, ssl.SSLContext):
                self._ssl = v  # the caller's, as given
            else:
                self._ssl = httpx.create_ssl_context(verify=v)
                self._ssl.set_alpn_protocols(["http/1.1"])
        return self._ssl

    @staticmethod
    def _origin(request: httpx.Request) -> Origin | None:
        """Where to connect, or None for what httpx's own transport should do."""
        url = request.url
        if url.scheme not in ("http", "https") or request.method in ("HEAD", "CONNECT") or "upgrade" in request.headers:
            return None
        return (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))


class LeanTransport(_Lean, httpx.AsyncBaseTransport):
    """The async transport: keep-alive HTTP/1.1 over asyncio protocols (see the module doc)."""

    _fallback: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        origin = self._origin(request)
        if origin is None:
            if self._fallback is None:
                self._fallback = httpx.AsyncHTTPTransport(verify=self._verify)
            return await self._fallback.handle_async_request(request)
        timeouts = request.extensions.get("timeout") or {}
        body = await request.aread()
        conn = self._pool.checkout(origin) or await self._connect(origin, timeouts.get("connect"))
        try:
            assert conn.transport is not None  # set by connection_made, before create_connection returns
            conn.transport.write(_head(request, body) + body)
            await conn.head(timeouts.get("read"))
        except BaseException:
            conn.close()
            raise
        return conn.response(_Body(self, origin, conn, timeouts.get("read")))

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
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

    async def aclose(self) -> None:
        self._pool.close()
        if self._fallback is not None:
            await self._fallback.aclose()


class SyncLeanTransport(_Lean, httpx.BaseTransport):
    """The sync transport: keep-alive HTTP/1.1 over blocking sockets, for the sync client.
    One recv per read, so a stream of small events costs one read per batch that
    arrived, not one per event."""

    _fallback: httpx.HTTPTransport | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        origin = self._origin(request)
        if origin is None:
            if self._fallback is None:
                self._fallback = httpx.HTTPTransport(verify=self._verify)
            return self._fallback.handle_request(request)
        timeouts = request.extensions.get("timeout") or {}
        body = request.read()
        conn = self._pool.checkout(origin) or self._connect(origin, timeouts.get("connect"))
        try:
            conn.send(_head(request, body) + body, timeouts.get("write"))
            conn.head(timeouts.get("read"))
        except BaseException:
            conn.close()
            raise
        return conn.response(_SyncBody(self, origin, conn, timeouts.get("read")))

    def _connect(self, origin: Origin, timeout: float | None) -> _SyncConnection:
        scheme, host, port = origin
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                sock = self._ssl_context().wrap_socket(sock, server_hostname=host)
        except socket.timeout:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} took over {timeout} s") from None
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
        return _SyncConnection(sock)

    def close(self) -> None:
        self._pool.close()
        if self._fallback is not None:
            self._fallback.close()


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
