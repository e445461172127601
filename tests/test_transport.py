"""LeanTransport and LeanAsyncClient (the pooled async client) against a scripted HTTP server:
framing (chunked, Content-Length, until EOF, 1xx), keep-alive and when a connection must not be
reused, failures as httpx's exceptions, flow control, and parity with httpx's request building."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from polystream import _http, _transport
from polystream._http import LeanAsyncClient, LeanClient
from polystream._transport import LeanTransport, SyncLeanTransport

Handler = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


class Server:
    """Reads each request (head + Content-Length body) and lets `handler` answer it; the handler
    returns False to close the connection. Records every request and counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[bytes] = []
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                if not await self.handler(request, reader, writer):
                    return
        finally:
            writer.close()


def ok(body: bytes = b"hello", extra: bytes = b"") -> Handler:
    async def handler(request: bytes, reader: Any, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body))
        await writer.drain()
        return True
    return handler


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


@dataclass
class Got:
    response: httpx.Response | None
    pieces: list[bytes]
    error: Exception | None

    @property
    def body(self) -> bytes:
        if self.error is not None:
            raise self.error
        return b"".join(self.pieces)


class Client:
    """One of the four ways the lean transports are used, behind one async interface (the sync
    ones run in a thread, so the scripted server keeps running on the loop)."""

    def __init__(self, kind: str, **kw: Any) -> None:
        self.sync = kind.startswith("sync")
        if kind == "async-transport":
            self.c: Any = httpx.AsyncClient(transport=LeanTransport(**kw))
        elif kind == "async-client":
            self.c = LeanAsyncClient(LeanTransport(**kw))
        elif kind == "sync-transport":
            self.c = httpx.Client(transport=SyncLeanTransport(**kw))
        else:
            self.c = LeanClient(SyncLeanTransport(**kw))

    async def get(self, url: str, method: str = "POST", stop_after: int | None = None, slow: bool = False,
                  **kw: Any) -> Got:
        """Stream a response: every raw piece until the end, an error, or `stop_after` pieces."""
        got = Got(None, [], None)
        if self.sync:
            def read() -> None:
                try:
                    with self.c.stream(method, url, **kw) as r:
                        got.response = r
                        for piece in r.iter_raw():
                            got.pieces.append(piece)
                            if slow:
                                time.sleep(0.0001)
                            if len(got.pieces) == stop_after:
                                break
                except Exception as exc:  # noqa: BLE001 - examined by the test
                    got.error = exc
            await asyncio.to_thread(read)
            return got
        try:
            async with self.c.stream(method, url, **kw) as r:
                got.response = r
                async for piece in r.aiter_raw():
                    got.pieces.append(piece)
                    if slow:
                        await asyncio.sleep(0)
                    if len(got.pieces) == stop_after:
                        break
        except Exception as exc:  # noqa: BLE001 - examined by the test
            got.error = exc
        return got

    async def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        if self.sync:
            return await asyncio.to_thread(self.c.request, method, url, **kw)
        return await self.c.request(method, url, **kw)  # type: ignore[no-any-return]


@pytest.fixture(params=["async-transport", "async-client", "sync-transport", "sync-client"])
def make_client(request: pytest.FixtureRequest) -> Callable[..., Client]:
    """Each lean transport under httpx's own client, and under polystream's lean clients (their
    own request building and send path)."""
    return lambda **kw: Client(request.param, **kw)


def test_keep_alive_reuses_one_connection(make_client: Any) -> None:
    async def main() -> None:
        async with Server(ok()) as srv:
            client = make_client()
            for i in range(5):
                got = await client.get(srv.url + f"/x?i={i}", json={"n": i})
                assert got.body == b"hello"
                assert got.response is not None and (got.response.status_code, got.response.http_version) == (200, "HTTP/1.1")
            assert srv.connections == 1
            assert [req.split(b"\r\n")[0] for req in srv.requests] == [b"POST /x?i=%d HTTP/1.1" % i for i in range(5)]
            assert all(req.endswith(b'{"n":%d}' % i) for i, req in enumerate(srv.requests))
    run(main())


def chunked(pieces: list[bytes], *, one_write: bool = False) -> Handler:
    """An SSE response with one HTTP chunk per piece: each written on its own, or all at once."""
    async def handler(request: bytes, reader: Any, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n")
        framed = [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces] + [b"0\r\n\r\n"]
        if one_write:
            writer.write(b"".join(framed))
        else:
            for f in framed:
                writer.write(f)
                await writer.drain()
        return True
    return handler


def test_chunked_body_arrives_whole_and_in_order(make_client: Any) -> None:
    pieces = [b"data: %d\n\n" % i for i in range(50)]

    async def main() -> None:
        async with Server(chunked(pieces)) as srv:
            client = make_client()
            for _ in range(2):
                got = await client.get(srv.url)
                assert got.body == b"".join(pieces) and got.response.headers["content-type"] == "text/event-stream"  # type: ignore[union-attr]
            assert srv.connections == 1
    run(main())


def test_reads_are_bounded_so_a_stream_never_decodes_a_flood_at_once(make_client: Any) -> None:
    piece = b"data: " + b"x" * 92 + b"\n\n"  # 100 bytes

    async def main() -> None:
        async with Server(chunked([piece] * 3000, one_write=True)) as srv:  # 300 KB at once
            client = make_client()
            got = await client.get(srv.url)
            assert got.body == piece * 3000
            limit = _transport._SYNC_READ if client.sync else _transport._READ
            assert len(got.pieces) > 300_000 // limit and max(map(len, got.pieces)) < limit + len(piece)
    run(main())


def test_body_until_eof_and_connection_close(make_client: Any) -> None:
    async def until_eof(request: bytes, reader: Any, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nno length, ends with the connection")
        return False

    async def main() -> None:
        async with Server(until_eof) as srv:
            client = make_client()
            for _ in range(2):
                assert (await client.get(srv.url)).body == b"no length, ends with the connection"
            assert srv.connections == 2  # never reused
        async with Server(ok(extra=b"Connection: close\r\n")) as srv:
            client = make_client()
            for _ in range(2):
                assert (await client.get(srv.url)).body == b"hello"
            assert srv.connections == 2
    run(main())


def test_interim_1xx_responses_are_skipped(make_client: Any) -> None:
    async def handler(request: bytes, reader: Any, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-A: 1\r\n\r\nok")
        return True

    async def main() -> None:
        async with Server(handler) as srv:
            got = await make_client().get(srv.url)
            r = got.response
            assert r is not None
            assert (r.status_code, got.body, r.headers.get("x-a"), "link" in r.headers) == (201, b"ok", "1", False)
    run(main())


def test_truncated_body_keeps_what_arrived_then_raises(make_client: Any) -> None:
    async def handler(request: bytes, reader: Any, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        return False  # closes mid-body

    async def main() -> None:
        async with Server(handler) as srv:
            got = await make_client().get(srv.url, method="GET")
            assert got.pieces == [b"hello"] and isinstance(got.error, httpx.RemoteProtocolError)
    run(main())


def test_server_closing_without_answer_or_with_garbage(make_client: Any) -> None:
    async def silent(request: bytes, reader: Any, writer: asyncio.StreamWriter) -> bool:
        return False

    async def garbage(request: bytes, reader: Any, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"this is not HTTP\r\n\r\n")
        return True

    async def main() -> None:
        for handler in (silent, garbage):
            async with Server(handler) as srv:
                got = await make_client().get(srv.url)
                assert got.response is None and isinstance(got.error, httpx.RemoteProtocolError)
    run(main())


def test_stall_is_a_read_timeout_and_refused_is_a_connect_error(make_client: Any) -> None:
    async def stall_body(request: bytes, reader: Any, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
        await asyncio.sleep(3)
        return False

    async def stall_head(request: bytes, reader: Any, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\n")
        await asyncio.sleep(3)
        return False

    async def main() -> None:
        t = httpx.Timeout(5.0, read=0.2)
        for handler, before in ((stall_head, []), (stall_body, [b"a"])):
            async with Server(handler) as srv:
                got = await make_client().get(srv.url, timeout=t)
                assert got.pieces == before and isinstance(got.error, httpx.ReadTimeout)
        async with Server(ok()) as srv:
            url = srv.url
        assert isinstance((await make_client().get(url)).error, httpx.ConnectError)
    run(main())


def test_read_timeout_is_per_wait_not_per_response(make_client: Any) -> None:
    """A body that keeps trickling in for longer than the read timeout, each piece well within
    it, completes; a stall after it still times out, about one timeout later."""
    async def trickle_then_stall(request: bytes, reader: Any, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(12):  # 1.2 s of data against a 0.4 s read timeout
            writer.write(b"1\r\n%d\r\n" % (i % 10))
            await writer.drain()
            await asyncio.sleep(0.1)
        if request.startswith(b"POST /stall"):
            await asyncio.sleep(3)
            return False
        writer.write(b"0\r\n\r\n")
        return True

    async def main() -> None:
        t = httpx.Timeout(5.0, read=0.4)
        async with Server(trickle_then_stall) as srv:
            client = make_client()
            got = await client.get(srv.url + "/whole", timeout=t)
            assert got.error is None and got.body == b"012345678901"
            started = time.monotonic()
            got = await client.get(srv.url + "/stall", timeout=t)
            assert b"".join(got.pieces) == b"012345678901" and isinstance(got.error, httpx.ReadTimeout)
            assert time.monotonic() - started < 1.2 + 0.4 + 1.0  # the stall is caught, not waited out
    run(main())


def test_each_request_on_a_kept_connection_gets_its_own_read_timeout(make_client: Any) -> None:
    """The sync transport sets a socket timeout only when its value changes (a read is then one
    system call): a pooled connection must still take the next request's timeout, shorter or
    none at all."""
    async def stall_on_request(request: bytes, reader: Any, writer: asyncio.StreamWriter) -> bool:
        if request.startswith(b"POST /stall"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.6)
            writer.write(b"ok")
            return True
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        return True

    async def main() -> None:
        async with Server(stall_on_request) as srv:
            client = make_client()
            assert (await client.get(srv.url + "/fast", timeout=httpx.Timeout(5.0))).body == b"ok"
            started = time.monotonic()
            got = await client.get(srv.url + "/stall", timeout=httpx.Timeout(5.0, read=0.2))
            assert isinstance(got.error, httpx.ReadTimeout) and time.monotonic() - started < 0.55
            # A timeout closes its connection; on the next one, from short to longer, then none.
            assert (await client.get(srv.url + "/fast", timeout=httpx.Timeout(5.0, read=0.2))).body == b"ok"
            for timeout in (httpx.Timeout(5.0), httpx.Timeout(None)):
                assert (await client.get(srv.url + "/stall", timeout=timeout)).body == b"ok"
            assert srv.connections == 2
    run(main())


def test_idle_connection_closed_by_server_is_not_reused(make_client: Any) -> None:
    async def once(request: bytes, reader: Any, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        return False  # keep-alive announced, but the server closes right after

    async def main() -> None:
        async with Server(once) as srv:
            client = make_client()
            for _ in range(3):
                assert (await client.get(srv.url)).body == b"ok"
                await asyncio.sleep(0.05)  # the close reaches the client
            assert srv.connections == 3
    run(main())


def test_response_closed_early_drops_its_connection(make_client: Any) -> None:
    big = b"x" * 300_000

    async def main() -> None:
        async with Server(ok(big)) as srv:
            client = make_client()
            got = await client.get(srv.url, stop_after=1)  # unread bytes: the connection cannot serve another
            assert got.error is None and len(got.pieces) == 1 and len(got.pieces[0]) < len(big)
            assert (await client.get(srv.url)).body == big
            assert srv.connections == 2
    run(main())


def test_slow_reader_gets_every_byte_of_a_large_body(make_client: Any) -> None:
    big = bytes(range(256)) * 40_000  # 10 MB: past the async transport's high-water mark

    async def main() -> None:
        async with Server(ok(big)) as srv:
            client = make_client()
            assert (await client.get(srv.url, slow=True)).body == big
            assert (await client.get(srv.url)).body == big and srv.connections == 1
    run(main())


def test_concurrent_streams_each_get_their_own_bytes(make_client: Any) -> None:
    """Many responses read at once, interleaved piece by piece: the async connections of a loop
    share one receive buffer, and no stream may see another's bytes."""
    def body(n: int) -> list[bytes]:
        return [b"data: stream %d piece %d %s\n\n" % (n, i, bytes([65 + n % 26]) * (i % 300)) for i in range(200)]

    async def handler(request: bytes, reader: Any, writer: asyncio.StreamWriter) -> bool:
        n = int(request.split(b" ")[1].rsplit(b"/", 1)[1])
        return await chunked(body(n))(request, reader, writer)

    async def main() -> None:
        async with Server(handler) as srv:
            client = make_client()
            got = await asyncio.gather(*[client.get(f"{srv.url}/s/{n}") for n in range(30)])
            for n, g in enumerate(got):
                assert g.error is None and g.body == b"".join(body(n)), n
    run(main())


def test_streamed_request_body_is_sent_with_its_length(make_client: Any) -> None:
    async def main() -> None:
        async with Server(ok()) as srv:
            client = make_client()
            if client.sync:
                parts: Any = iter([b"ab", b"cd", b"ef"])
            else:
                async def agen() -> Any:
                    for p in (b"ab", b"cd", b"ef"):
                        yield p
                parts = agen()
            assert (await client.get(srv.url, content=parts)).body == b"hello"
            head, body = srv.requests[0].split(b"\r\n\r\n", 1)
            assert body == b"abcdef" and b"content-length: 6" in head.lower() and b"transfer-encoding" not in head.lower()
    run(main())


def test_head_requests_go_through_httpx_own_transport(make_client: Any) -> None:
    async def head(request: bytes, reader: Any, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")  # no body follows a HEAD
        return True

    async def main() -> None:
        async with Server(head) as srv:
            r = await make_client().request("HEAD", srv.url)
            assert r.status_code == 200 and r.content == b""
    run(main())


@pytest.mark.parametrize("headers", [
    {"authorization": "Bearer k", "x-extra": "v"},
    # a caller's header replaces the client's default of the same name, whatever its case
    {"User-Agent": "mine/1.0", "accept": "text/event-stream", "Content-Type": "application/json; charset=utf-8"},
    {},
])
def test_lean_client_builds_the_request_httpx_would(headers: dict[str, str]) -> None:
    args = ("POST", "https://api.example.com:8443/v1/chat/completions?x=1")
    kw: dict[str, Any] = {"headers": headers, "json": {"a": [1, "ü"], "b": None}, "timeout": httpx.Timeout(3.0, read=7.0)}
    for plain, lean in ((httpx.AsyncClient(), LeanAsyncClient(LeanTransport())), (httpx.Client(), LeanClient(SyncLeanTransport()))):
        for _ in range(2):  # the second time from the URL's cached head
            a, b = plain.build_request(*args, **kw), lean.build_request(*args, **kw)
            assert (a.method, a.url, a.content, a.extensions) == (b.method, b.url, b.content, b.extensions)
            assert a.headers.multi_items() == b.headers.multi_items()  # the same headers, in the same order
        # A header value that is not ASCII fails the same way.
        bad = {**kw, "headers": {"x-name": "Zürich"}}
        with pytest.raises(UnicodeEncodeError):
            plain.build_request(*args, **bad)
        with pytest.raises(UnicodeEncodeError):
            lean.build_request(*args, **bad)


def test_pooled_async_client_is_lean_unless_a_proxy_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    async def pooled() -> httpx.AsyncClient:
        return _http.async_client()

    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_http, "_sync", None)
    assert isinstance(run(pooled()), LeanAsyncClient) and isinstance(_http.sync_client(), LeanClient)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setattr(_http, "_sync", None)
    assert type(run(pooled())) is httpx.AsyncClient and type(_http.sync_client()) is httpx.Client


def test_https_with_a_verified_certificate(tmp_path: Any, make_client: Any) -> None:
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def main() -> None:
        srv = Server(ok(b"secret"))
        srv.server = await asyncio.start_server(srv._serve, "127.0.0.1", 0, ssl=server_ctx)
        port = srv.server.sockets[0].getsockname()[1]
        try:
            trusting = make_client(verify=ssl.create_default_context(cafile=str(cert)))
            for _ in range(2):
                assert (await trusting.get(f"https://localhost:{port}/")).body == b"secret"
            assert srv.connections == 1
            # The system's trust store does not know this certificate.
            assert isinstance((await make_client().get(f"https://localhost:{port}/")).error, httpx.ConnectError)
        finally:
            srv.server.close()
    run(main())
