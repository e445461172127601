"""`ReplayServer`: a real HTTP/1.1 server on localhost that replays recorded provider bodies.

Standard library asyncio only. One `asyncio.Protocol` per connection rather than streams: the
protocol learns of a client's EOF/reset the moment the loop sees it (even while the response is
sleeping between pieces), which is what "the client went away within 1 s" tests measure, and a
piece costs one `transport.write` unless the client lags (then we wait for `resume_writing`).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union
from urllib.parse import parse_qs

from ._providers import routes_for
from ._reply import Reply

Handler = Union[Reply, Sequence[Reply], Callable[["Request"], Reply]]

_MAX_HEAD = 65536
_YIELD_EVERY = 64  # with no delay, let other connections run every so many pieces


@dataclass(eq=False)
class Request:
    """One request as received, plus what became of its response (filled in as it is sent)."""

    method: str
    target: str  # as on the request line: path?query
    path: str
    query: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes = b""
    http_version: str = "HTTP/1.1"
    connection_id: int = 0  # requests sharing a connection (keep-alive) share this
    received_at: float = 0.0  # time.monotonic()
    status: int | None = None
    sent_at: list[float] = field(default_factory=list)  # time.monotonic() each piece was written
    completed: bool = False  # whole response (incl. the terminating chunk) written
    client_closed: bool = False  # client went away before the response was complete
    disconnected_at: float | None = None  # time.monotonic() the server saw it go
    finished_at: float | None = None

    @property
    def pieces_sent(self) -> int:
        return len(self.sent_at)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def params(self) -> dict[str, str]:
        """Query parameters (first value of each)."""
        return {k: v[0] for k, v in parse_qs(self.query, keep_blank_values=True).items()}


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Gone(Exception):
    """The client closed the connection."""


def _compile(pattern: str | re.Pattern[str]) -> Callable[[str, str], bool]:
    """Glob over the path: `*` = any run of non-'/' characters, `**` = anything.

    A pattern containing '?' is matched against path?query, otherwise against the path alone.
    A compiled regex is full-matched against the path, or failing that the whole target.
    """
    if isinstance(pattern, re.Pattern):
        return lambda path, target: bool(pattern.fullmatch(path) or pattern.fullmatch(target))
    parts = re.split(r"(\*\*|\*)", pattern)
    rx = re.compile("".join(".*" if p == "**" else "[^/]*" if p == "*" else re.escape(p) for p in parts))
    if "?" in pattern:
        return lambda path, target: bool(rx.fullmatch(target))
    return lambda path, target: bool(rx.fullmatch(path))


class _InOrder:
    """A list handler: one reply per request, in order; the last one repeats once exhausted."""

    def __init__(self, replies: Sequence[Reply]) -> None:
        if not replies:
            raise ValueError("empty list of replies")
        self.replies, self.next = list(replies), 0

    def __call__(self, request: Request) -> Reply:
        reply = self.replies[min(self.next, len(self.replies) - 1)]
        self.next += 1
        return reply


class ReplayServer:
    """Serves recorded bytes over HTTP/1.1 on `host` (port 0 = a free port).

    Sync: `with ReplayServer() as s:` (own event loop in a daemon thread) or start()/stop().
    Async, inside a running loop: `async with ReplayServer() as s:` or astart()/astop().
    Routes are tried newest first; unmatched requests get 404 JSON; a handler that raises gets 500.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.requests: list[Request] = []
        self._routes: list[tuple[Callable[[str, str], bool], str | None, Callable[[Request], Reply]]] = []
        self._early: list[Request] = []
        self._early_taken = 0
        self._cond = threading.Condition()
        self._conns: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._connections_made = 0

    # -- routing ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}"

    def add(self, pattern: str | re.Pattern[str], handler: Handler, *, method: str | None = None) -> ReplayServer:
        """Serve `handler` on paths matching `pattern` (see `_compile`), for any method unless given.

        handler: a Reply (every time), a list of Replies (in order, the last repeats), or
        `callable(request) -> Reply` (runs on the server's loop; keep it quick).
        """
        if isinstance(handler, Reply):
            reply = handler
            fn: Callable[[Request], Reply] = lambda request: reply
        elif isinstance(handler, Sequence):
            fn = _InOrder(handler)
        elif callable(handler):
            fn = handler
        else:
            raise TypeError(f"handler must be a Reply, a list of Replies or a callable, not {handler!r}")
        self._routes.append((_compile(pattern), method.upper() if method else None, fn))
        return self

    def serve_fixture(self, provider: str, path: str | Path | Handler, **reply_opts: Any) -> str:
        """Serve a recorded body (file path) or handler on `provider`'s streaming endpoints.

        Returns `base_url(provider)`, what a client's api_base should be set to.
        """
        routes = routes_for(provider)
        handler = Reply.from_file(path, **reply_opts) if isinstance(path, (str, Path)) else path
        for pattern in routes.paths:
            self.add(pattern, handler, method="POST")
        return self.base_url(provider)

    def base_url(self, provider: str) -> str:
        return self.url + routes_for(provider).base

    def reset(self) -> None:
        """Forget routes, recorded requests and disconnects (for a server shared across tests)."""
        with self._cond:
            self._routes.clear()
            self.requests.clear()
            self._early.clear()
            self._early_taken = 0

    def _resolve(self, request: Request) -> Reply:
        for match, method, fn in reversed(self._routes):
            if (method is None or method == request.method) and match(request.path, request.target):
                try:
                    reply = fn(request)
                    if not isinstance(reply, Reply):
                        raise TypeError(f"handler returned {type(reply).__name__}, not Reply")
                    return reply
                except Exception as exc:  # a test's handler bug should show up as a 500, not a hang
                    return Reply.error(500, {"error": {"message": f"replay handler failed: {exc!r}", "type": "replay_error"}})
        return Reply.error(404, {"error": {"message": f"no route for {request.method} {request.target}", "type": "not_found"}})

    # -- disconnects --------------------------------------------------------------------------
    @property
    def connections_closed_early(self) -> list[Request]:
        """Requests whose client went away before the response was complete, in order."""
        with self._cond:
            return list(self._early)

    def _client_closed(self, request: Request, at: float) -> None:
        with self._cond:
            if request.client_closed:
                return
            request.client_closed, request.disconnected_at = True, at
            self._early.append(request)
            self._cond.notify_all()

    def _take_early(self, since: float) -> float | None:
        if self._early_taken >= len(self._early):
            return None
        request = self._early[self._early_taken]
        self._early_taken += 1
        return max(0.0, request.disconnected_at - since)  # type: ignore[operator]

    def wait_for_disconnect(self, timeout: float = 5.0, since: float | None = None) -> float:
        """Block until a client closes a connection mid-response; return seconds since `since`.

        `since` is a time.monotonic() value (default: now, so a disconnect already seen gives 0.0).
        Each early close is returned once, in order. Raises TimeoutError.
        """
        if self._thread is None:
            raise RuntimeError("the server runs on this thread's loop: use `await wait_for_disconnect_async()`")
        start = time.monotonic()
        since = start if since is None else since
        with self._cond:
            while (got := self._take_early(since)) is None:
                left = start + timeout - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no client disconnect within {timeout} s")
                self._cond.wait(left)
        return got

    async def wait_for_disconnect_async(self, timeout: float = 5.0, since: float | None = None) -> float:
        """`wait_for_disconnect` for use inside an event loop (either mode)."""
        start = time.monotonic()
        since = start if since is None else since
        while True:
            with self._cond:
                got = self._take_early(since)
            if got is not None:
                return got
            if time.monotonic() - start >= timeout:
                raise TimeoutError(f"no client disconnect within {timeout} s")
            await asyncio.sleep(0.005)

    # -- lifecycle ----------------------------------------------------------------------------
    async def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_server(
            lambda: _Connection(self), self.host, self.port, backlog=1024, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = []
        for conn in list(self._conns):
            conn.transport.abort()
            if conn.task is not None:
                conn.task.cancel()
                tasks.append(conn.task)
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    def start(self) -> ReplayServer:
        if self._server is not None:
            return self
        ready, failure = threading.Event(), []

        def run() -> None:
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self._open())
            except BaseException as exc:  # e.g. port in use: re-raised in start()
                failure.append(exc)
                loop.close()
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._close())
                loop.close()

        self._thread = threading.Thread(target=run, name="polystream-replay", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = None

    async def astart(self) -> ReplayServer:
        if self._server is None:
            await self._open()
        return self

    async def astop(self) -> None:
        await self._close()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> ReplayServer:
        return await self.astart()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.astop()


class _Connection(asyncio.Protocol):
    """One client connection: parse requests in turn (keep-alive), write each reply's pieces."""

    transport: asyncio.Transport

    def __init__(self, server: ReplayServer) -> None:
        self.server = server
        self.buf = bytearray()
        self.task: asyncio.Task[None] | None = None
        self.gone_at: float | None = None  # when the client closed (EOF or reset)
        self.current: Request | None = None  # request whose response is in progress
        self.paused = False
        # Separate wake-ups: new data must not cut a delay short, only a disconnect may.
        self.read_waiter: asyncio.Future[None] | None = None
        self.write_waiter: asyncio.Future[None] | None = None
        self.sleep_waiter: asyncio.Future[None] | None = None

    # -- protocol callbacks (loop thread) -----------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server._conns.add(self)
        self.server._connections_made += 1
        self.id = self.server._connections_made
        self.loop = asyncio.get_running_loop()
        self.task = self.loop.create_task(self.run())

    def data_received(self, data: bytes) -> None:
        self.buf += data
        _wake(self.read_waiter)

    def eof_received(self) -> None:
        # HTTP clients do not half-close; EOF means the client is gone. Returning None closes us.
        self._gone()

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()
        self.server._conns.discard(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        _wake(self.write_waiter)

    def _gone(self) -> None:
        if self.gone_at is not None:
            return
        self.gone_at = time.monotonic()
        if self.current is not None:
            self.server._client_closed(self.current, self.gone_at)
        for waiter in (self.read_waiter, self.write_waiter, self.sleep_waiter):
            _wake(waiter)

    # -- waiting ------------------------------------------------------------------------------
    async def _wait_read(self) -> None:
        if self.gone_at is not None:
            raise _Gone
        self.read_waiter = self.loop.create_future()
        try:
            await self.read_waiter
        finally:
            self.read_waiter = None

    async def _drain(self) -> None:
        while self.paused and self.gone_at is None:
            self.write_waiter = self.loop.create_future()
            try:
                await self.write_waiter
            finally:
                self.write_waiter = None

    async def _sleep(self, seconds: float | None) -> None:
        """Sleep, waking early if the client goes away. None = until it goes away."""
        if self.gone_at is not None:
            return
        fut = self.sleep_waiter = self.loop.create_future()
        timer = self.loop.call_later(seconds, _wake, fut) if seconds is not None else None
        try:
            await fut
        finally:
            if timer is not None:
                timer.cancel()
            self.sleep_waiter = None

    # -- reading a request --------------------------------------------------------------------
    async def _read_until(self, sep: bytes, limit: int) -> bytes | None:
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[: i + len(sep)]
                return out
            if len(self.buf) > limit:
                raise _BadRequest(431, "request head too large")
            if self.gone_at is not None:
                return None
            await self._wait_read()

    async def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            await self._wait_read()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def _read_request(self) -> Request | None:
        head = await self._read_until(b"\r\n\r\n", _MAX_HEAD)
        if head is None:
            return None
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ")
        except ValueError:
            raise _BadRequest(400, f"bad request line {lines[0]!r}") from None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest(400, f"bad header line {line!r}")
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        path, _, query = target.partition("?")
        req = Request(
            method.upper(), target, path, query, headers, http_version=version, connection_id=self.id, received_at=time.monotonic()
        )
        if "chunked" in headers.get("transfer-encoding", "").lower():
            req.body = await self._read_chunked_body()
        elif "content-length" in headers:
            try:
                req.body = await self._read_exact(int(headers["content-length"]))
            except ValueError:
                raise _BadRequest(400, "bad content-length") from None
        return req

    async def _read_chunked_body(self) -> bytes:
        parts: list[bytes] = []
        while True:
            line = await self._read_until(b"\r\n", _MAX_HEAD)
            if line is None:
                raise _Gone
            try:
                size = int(line.split(b";", 1)[0], 16)
            except ValueError:
                raise _BadRequest(400, "bad chunk size") from None
            if size == 0:
                while await self._read_until(b"\r\n", _MAX_HEAD):  # trailers, up to the blank line
                    pass
                return b"".join(parts)
            parts.append((await self._read_exact(size + 2))[:size])

    # -- the connection's life ----------------------------------------------------------------
    async def run(self) -> None:
        try:
            while True:
                req = await self._read_request()
                if req is None:
                    break
                self.server.requests.append(req)
                close = req.headers.get("connection", "").lower() == "close" or req.http_version == "HTTP/1.0"
                if not await self._respond(req, self.server._resolve(req), close):
                    break
        except _BadRequest as exc:
            reply = Reply.error(exc.status, {"error": {"message": str(exc), "type": "bad_request"}})
            self.transport.write(reply.head(close=True) + reply.body)
        except _Gone:
            pass
        finally:
            if not self.transport.is_closing():
                self.transport.close()

    async def _respond(self, req: Request, reply: Reply, close: bool) -> bool:
        """Write `reply`; True if the connection can serve another request."""
        self.current = req
        req.status = reply.status
        transport = self.transport
        pieces = reply.wire_pieces()
        # drop_after/stall_after always end the response abnormally, even if >= the piece count
        # (all pieces, then no terminator); the smaller wins, a tie drops.
        limit, end = len(pieces), "complete"
        ends = [(n, kind) for n, kind in ((reply.drop_after, "drop"), (reply.stall_after, "stall")) if n is not None]
        if ends:
            n, end = min(ends)
            limit = min(n, limit)
        try:
            if reply.header_delay:
                await self._sleep(reply.header_delay)
            if self.gone_at is None:
                transport.write(reply.head(close))  # a drop/stall looks like any response up front
            delay = reply.delay
            for i in range(limit):
                if i == 0:
                    if reply.first_delay:
                        await self._sleep(reply.first_delay)
                elif delay:
                    await self._sleep(delay)
                elif i % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                if self.gone_at is not None:
                    break
                transport.write(pieces[i])
                req.sent_at.append(time.monotonic())  # live, for tests that look mid-stream and for lag
                if self.paused:
                    await self._drain()
            if self.gone_at is not None:
                self.server._client_closed(req, self.gone_at)
                return False
            if end == "complete":
                if not reply.length_framed:
                    transport.write(b"0\r\n\r\n")
                req.completed = True
                self.current = None
                if close:
                    transport.close()
                return not close
            if end == "stall":
                await self._sleep(None)  # until the client goes away (or the server stops)
                if self.gone_at is not None:
                    self.server._client_closed(req, self.gone_at)
                return False
            self.current = None  # "drop": our doing, not the client's
            if reply.drop_reset:
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.close()
            return False
        finally:
            req.finished_at = time.monotonic()
            self.current = None


def _wake(fut: asyncio.Future[None] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)
