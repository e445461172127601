"""The replay server (polystream.testing) that tests, demos and benchmarks share."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from polystream.testing import PROVIDER_ROUTES, STREAM_PATHS, ReplayServer, Reply, split_body, split_events

from .conftest import SHARED_FIXTURES

httpx = pytest.importorskip("httpx")

PROVIDERS_DIR = SHARED_FIXTURES / "providers"
EVENTS = [b"data: one\n\n", b"event: x\r\ndata: two\r\n\r\n", b"data: three\r\r", b": comment\n\n", b"data: [DONE]\n\n"]
BODY = b"".join(EVENTS)


@pytest.fixture(scope="module")
def client():
    # One pooled client for the module: building an httpx.Client (its SSL context) costs ~0.1 s.
    with httpx.Client(timeout=5.0) as c:
        yield c


@pytest.fixture
def server():
    with ReplayServer() as s:
        yield s


def raw_pieces(client: httpx.Client, url: str, method: str = "POST", **kw) -> tuple[httpx.Response, list[bytes]]:
    with client.stream(method, url, **kw) as r:
        return r, list(r.iter_raw())


# -- splitting (pure) -------------------------------------------------------------------------
def test_split_events_handles_every_line_ending_and_keeps_crlf_whole():
    assert split_events(BODY, "text/event-stream") == EVENTS
    # a CRLF stream has no blank line inside "\r\n"; a trailing partial event is its own piece
    assert split_events(b"data: a\r\ndata: b\r\n\r\ndata: c", "text/event-stream; charset=utf-8") == [
        b"data: a\r\ndata: b\r\n\r\n",
        b"data: c",
    ]
    assert split_events(b'{"a":1}\n{"b":2}\n', "application/x-ndjson") == [b'{"a":1}\n', b'{"b":2}\n']
    assert split_events(b'{"a": 1}\n\n', "application/json") == [b'{"a": 1}\n\n']


def test_fixed_and_random_splits():
    assert [len(p) for p in split_body(b"x" * 12, 5, "text/event-stream")] == [5, 5, 2]
    pieces = split_body(BODY, "random", "text/event-stream", seed=3, random_max=4)
    assert b"".join(pieces) == BODY and all(1 <= len(p) <= 4 for p in pieces)
    assert pieces == split_body(BODY, "random", "text/event-stream", seed=3, random_max=4)
    assert pieces != split_body(BODY, "random", "text/event-stream", seed=4, random_max=4)
    with pytest.raises(ValueError):
        Reply(BODY, split="lines")


# -- over HTTP --------------------------------------------------------------------------------
def test_keep_alive_serves_sequential_requests_on_one_connection(server, client):
    server.add("/s", Reply(BODY))
    assert client.post(server.url + "/s").content == BODY
    assert client.post(server.url + "/s").content == BODY
    first, second = server.requests
    assert first.connection_id == second.connection_id
    assert first.completed and second.completed


def test_split_event_gives_one_read_per_event(server, client):
    server.add("/s", Reply(BODY, split="event"))
    r, pieces = raw_pieces(client, server.url + "/s")
    assert r.headers["transfer-encoding"] == "chunked"
    assert pieces == EVENTS
    assert server.requests[0].pieces_sent == len(EVENTS)


def test_fixed_size_split_over_http(server, client):
    server.add("/s", Reply(BODY, split=7))
    _, pieces = raw_pieces(client, server.url + "/s")
    assert b"".join(pieces) == BODY
    assert all(len(p) == 7 for p in pieces[:-1]) and len(pieces) == -(-len(BODY) // 7)


def test_delays_between_pieces(server, client):
    server.add("/s", Reply(BODY, first_delay=0.1, delay=0.03))
    with client.stream("GET", server.url + "/s") as r:
        t_head = time.monotonic()
        pieces = list(r.iter_raw())
    after_head = time.monotonic() - t_head
    assert pieces == EVENTS
    # headers come at once: first_delay and every delay are still to go once they have arrived
    assert after_head >= 0.1 + 0.03 * (len(EVENTS) - 1) - 0.01


@pytest.mark.parametrize("length_framed", [False, True])
def test_drop_after_ends_the_body_early(server, client, length_framed):
    server.add("/s", Reply(BODY, split="event", drop_after=2, length_framed=length_framed))
    got = []
    with pytest.raises(httpx.RemoteProtocolError):
        with client.stream("GET", server.url + "/s") as r:
            for piece in r.iter_raw():
                got.append(piece)
    assert b"".join(got) == b"".join(EVENTS[:2])
    req = server.requests[0]
    assert req.pieces_sent == 2 and not req.completed and not req.client_closed


def test_drop_after_every_piece_omits_only_the_terminator(server, client):
    server.add("/s", Reply(BODY, drop_after=len(EVENTS)))
    got = []
    with pytest.raises(httpx.RemoteProtocolError):
        with client.stream("GET", server.url + "/s") as r:
            got.extend(r.iter_raw())
    assert got == EVENTS


def test_drop_reset_is_a_transport_error(server, client):
    server.add("/s", Reply(BODY, drop_after=1, drop_reset=True, first_delay=0.05))
    with pytest.raises(httpx.TransportError):
        with client.stream("GET", server.url + "/s") as r:
            list(r.iter_raw())


def test_stall_after_hits_the_client_read_timeout(server, client):
    server.add("/s", Reply(BODY, stall_after=1))
    got = []
    with pytest.raises(httpx.ReadTimeout):
        with client.stream("GET", server.url + "/s", timeout=httpx.Timeout(5.0, read=0.2)) as r:
            got.extend(r.iter_raw())
    assert got == EVENTS[:1]
    server.wait_for_disconnect(timeout=2)  # the stalled response notices the client leave
    assert server.requests[0].client_closed and not server.requests[0].completed


def test_header_delay_holds_back_the_status_line(server, client):
    server.add("/s", Reply(BODY, header_delay=0.5))
    with pytest.raises(httpx.ReadTimeout):
        client.get(server.url + "/s", timeout=httpx.Timeout(5.0, read=0.1))
    assert server.wait_for_disconnect(timeout=2) < 1.0
    assert server.requests[0].pieces_sent == 0


def test_error_status_with_json_body_and_retry_after(server, client):
    server.add("/v1/chat/completions", Reply.error(429, {"error": {"message": "slow down"}}, headers={"retry-after": "1"}))
    r = client.post(server.url + "/v1/chat/completions", json={})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"error": {"message": "slow down"}}
    assert client.get(server.url + "/elsewhere").status_code == 404


def test_list_of_replies_is_served_in_order_then_the_last_repeats(server, client):
    server.add("/s", [Reply.error(429, headers={"retry-after": "0"}), Reply.error(503), Reply(BODY)])
    statuses = [client.post(server.url + "/s").status_code for _ in range(4)]
    assert client.post(server.url + "/s").content == BODY
    assert statuses == [429, 503, 200, 200]


def test_callable_handler_and_its_failure(server, client):
    server.add("/echo", lambda req: Reply.json({"model": req.json()["model"], "q": req.params}))
    server.add("/boom", lambda req: 1 / 0)
    r = client.post(server.url + "/echo?beta=true", json={"model": "m"})
    assert r.json() == {"model": "m", "q": {"beta": "true"}}
    r = client.post(server.url + "/boom")
    assert r.status_code == 500 and "ZeroDivisionError" in r.json()["error"]["message"]


def test_requests_are_recorded(server, client):
    server.add("/v1/messages", Reply(BODY), method="POST")
    httpx.post(
        server.url + "/v1/messages?beta=true",
        json={"model": "claude", "stream": True},
        headers={"X-Api-Key": "k", "Anthropic-Version": "2023-06-01"},
    )
    assert client.get(server.url + "/v1/messages").status_code == 404  # method-restricted route
    req = server.requests[0]
    assert (req.method, req.path, req.query, req.target) == ("POST", "/v1/messages", "beta=true", "/v1/messages?beta=true")
    assert req.json() == {"model": "claude", "stream": True}
    assert req.headers["x-api-key"] == "k" and req.headers["anthropic-version"] == "2023-06-01"
    assert req.status == 200 and req.completed


def test_client_disconnect_is_seen_within_a_second(server, client):
    server.add("/slow", Reply(BODY * 20, delay=0.5))
    with client.stream("GET", server.url + "/slow") as r:
        next(r.iter_raw())
        t0 = time.monotonic()  # leaving the block closes the half-read response's connection
    elapsed = server.wait_for_disconnect(timeout=2, since=t0)
    assert elapsed < 1.0
    (req,) = server.connections_closed_early
    assert req.client_closed and not req.completed and req.pieces_sent < len(EVENTS) * 20
    with pytest.raises(TimeoutError):
        server.wait_for_disconnect(timeout=0.05)  # each early close is reported once


def test_length_framed_sends_content_length(server, client):
    server.add("/s", Reply(BODY, length_framed=True))
    r = client.get(server.url + "/s")
    assert r.headers["content-length"] == str(len(BODY))
    assert "transfer-encoding" not in r.headers
    assert r.content == BODY


def test_glob_and_regex_routes(server, client):
    import re

    server.add("/v1beta/models/*:streamGenerateContent", Reply(b"a"))
    server.add(re.compile(r"/x/\d+"), Reply(b"b"))
    server.add("/q?alt=sse", Reply(b"c"))
    assert client.post(server.url + "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse").content == b"a"
    assert client.post(server.url + "/v1beta/models/a/b:streamGenerateContent").status_code == 404
    assert client.get(server.url + "/x/42").content == b"b"
    assert client.get(server.url + "/q?alt=sse").content == b"c"
    assert client.get(server.url + "/q").status_code == 404


# -- plain sockets: keep-alive, Connection: close, chunked request bodies, bad input -----------
def _recv_all(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_raw_socket_keep_alive_close_and_chunked_request_body(server, client):
    server.add("/s", Reply(b"data: hi\n\n", length_framed=True))
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(b"POST /s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        sock.sendall(b"GET /s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = _recv_all(sock)  # ends because the server honours Connection: close
    assert data.count(b"HTTP/1.1 200 OK") == 2 and data.count(b"data: hi\n\n") == 2
    assert b"connection: close" in data.split(b"HTTP/1.1 200 OK")[2]
    assert server.requests[0].body == b"abcde"
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        assert _recv_all(sock).startswith(b"HTTP/1.1 400 ")


# -- recorded fixtures on each provider's endpoints ---------------------------------------------
FIXTURE_CASES = [
    ("openai", "openai/openai_chat_text.sse", "text/event-stream"),
    ("openai_compatible", "openai_compatible/openrouter_error_chunk.sse", "text/event-stream"),
    ("openrouter", "openai_compatible/openrouter_error_chunk.sse", "text/event-stream"),
    ("deepseek", "openai_compatible/deepseek_reasoner_emoji.sse", "text/event-stream"),
    ("together", "openai/openai_chat_tool_calls_parallel.sse", "text/event-stream"),
    ("groq", "groq/groq_text_x_groq_usage.sse", "text/event-stream"),
    ("mistral", "mistral/mistral_magistral_thinking.sse", "text/event-stream"),
    ("openai_responses", "openai_responses/openai_responses_text.sse", "text/event-stream"),
    ("anthropic", "anthropic/anthropic_thinking.sse", "text/event-stream"),
    ("gemini", "gemini/gemini_text.sse", "text/event-stream"),
    ("gemini", "gemini/gemini_stream_json_array.json", "application/json"),
    ("cohere", "cohere/cohere_v2_tools.sse", "text/event-stream"),
    ("ollama", "ollama/ollama_chat_text.ndjson", "application/x-ndjson"),
    ("bedrock", "bedrock/bedrock_converse_stream_text.eventstream", "application/vnd.amazon.eventstream"),
]


@pytest.mark.parametrize(("provider", "name", "content_type"), FIXTURE_CASES, ids=lambda v: str(v).split("/")[-1])
def test_serve_fixture_replays_the_file_byte_for_byte(server, client, provider, name, content_type):
    path = PROVIDERS_DIR / name
    if not path.exists():
        pytest.skip(f"{path} not present (shared fixtures absent)")
    base = server.serve_fixture(provider, path)
    assert base == server.url + PROVIDER_ROUTES[provider].base
    r, pieces = raw_pieces(client, base + STREAM_PATHS[provider], json={"stream": True})
    assert r.status_code == 200 and r.headers["content-type"] == content_type
    assert b"".join(pieces) == path.read_bytes()
    if content_type != "application/json":  # split at events/lines/frames: more than one read
        assert len(pieces) > 1


@pytest.mark.skipif(not PROVIDERS_DIR.exists(), reason="shared fixtures absent")
def test_openai_compatible_clients_hit_whichever_prefix_they_use(server, client):
    base = server.serve_fixture("groq", PROVIDERS_DIR / "groq" / "groq_text_x_groq_usage.sse")
    for path in PROVIDER_ROUTES["groq"].paths:
        assert client.post(server.url + path).status_code == 200
    assert client.post(base + "/chat/completions").status_code == 200


# -- async form and CLI -----------------------------------------------------------------------
def test_async_server_in_a_running_loop():
    async def main() -> None:
        async with ReplayServer() as server:
            server.add("/s", Reply(BODY))
            server.add("/slow", Reply(BODY, delay=0.5))
            async with httpx.AsyncClient() as c:
                async with c.stream("POST", server.url + "/s") as r:
                    assert [p async for p in r.aiter_raw()] == EVENTS
                async with c.stream("GET", server.url + "/slow") as r:
                    await r.aiter_raw().__anext__()
                    t0 = time.monotonic()
            assert await server.wait_for_disconnect_async(timeout=2, since=t0) < 1.0
            with pytest.raises(RuntimeError):
                server.wait_for_disconnect(0.1)  # would block the loop the server runs on

    asyncio.run(main())


def test_cli_serves_a_fixture(tmp_path: Path, client):
    fixture = tmp_path / "body.sse"
    fixture.write_bytes(BODY)
    cmd = [sys.executable, "-m", "polystream.testing.replay", "--port", "0", "--provider", "anthropic",
           "--fixture", str(fixture), "--split", "event", "--delay", "0.001"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        _, pieces = raw_pieces(client, url + "/v1/messages")
        assert pieces == EVENTS
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_ends_cleanly_on_a_signal_even_started_with_sigint_ignored(tmp_path: Path, sig: int) -> None:
    """A shell starting `python -m polystream.testing.replay ... &` ignores SIGINT for it; Ctrl-C
    (or `kill -INT`) must still end it, with status 0, as must `kill`."""
    fixture = tmp_path / "body.sse"
    fixture.write_bytes(BODY)
    cmd = [sys.executable, "-m", "polystream.testing.replay", "--port", "0", "--provider", "anthropic",
           "--fixture", str(fixture)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        assert proc.stdout is not None and proc.stdout.readline().startswith("http://")
        proc.send_signal(sig)
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
