"""The chat route's lean path (routes_chat.chat_completions, taken by ProxyApp before Starlette):
what it must keep from the Starlette route it replaced that test_server_api/_errors/_ops do not
already pin down. Counting (status per request, exactly once), the client leaving at each stage,
the end of a failed stream, unexpected errors, and the cases Starlette still answers (405, the
trailing-slash redirect, a root_path)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from polystream._core import ChatCompletionChunk, SseFrames
from polystream.server import ServerThread, create_app, parse_config
from polystream.server import routes_chat
from polystream.testing import ReplayServer, Reply

from .test_server_support import MASTER_KEY, UPSTREAM_KEY, USER_A, service_for, upstream_body

AUTH = {"authorization": f"Bearer {USER_A}"}
CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}


def _config(replay_url: str) -> Any:
    return parse_config({
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/gpt-test", "api_base": replay_url, "api_key": UPSTREAM_KEY}}],
        "general_settings": {"master_key": MASTER_KEY},
        "polystream": {"keys": [USER_A]},
    })


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


@pytest.fixture
def proxy(replay: ReplayServer) -> Iterator[ServerThread]:
    replay.reset()
    replay.serve_fixture("openai", Reply(upstream_body("One. Two. Three. Four."), split="event"))
    cfg = _config(replay.base_url("openai"))
    with ServerThread(create_app(cfg, service_for(cfg))) as server:
        yield server


def _requests(server: ServerThread, route: str, status: int) -> float:
    text = httpx.get(server.url + "/metrics").text
    for line in text.splitlines():
        if line.startswith("polystream_requests_total{") and f'route="{route}"' in line and f'status="{status}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _wait_count(server: ServerThread, route: str, status: int, want: float, timeout: float = 3.0) -> float:
    deadline = time.monotonic() + timeout
    while (got := _requests(server, route, status)) < want and time.monotonic() < deadline:
        time.sleep(0.02)
    return got


def test_each_request_counted_once_with_its_status(proxy: ServerThread) -> None:
    stream = httpx.post(proxy.url + "/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH)
    assert stream.status_code == 200 and stream.text.endswith("data: [DONE]\n\n")
    assert httpx.post(proxy.url + "/chat/completions", json=CHAT, headers=AUTH).status_code == 200
    assert httpx.post(proxy.url + "/v1/chat/completions", json=CHAT).status_code == 401
    assert httpx.post(proxy.url + "/v1/chat/completions", json={**CHAT, "model": "nope"}, headers=AUTH).status_code == 404
    assert _requests(proxy, "/v1/chat/completions", 200) == 1
    assert _requests(proxy, "/chat/completions", 200) == 1  # the route as requested, as Starlette labelled it
    assert _requests(proxy, "/v1/chat/completions", 401) == 1
    assert _requests(proxy, "/v1/chat/completions", 404) == 1


def test_other_methods_and_trailing_slash_still_starlettes(proxy: ServerThread) -> None:
    r = httpx.get(proxy.url + "/v1/chat/completions", headers=AUTH)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    assert r.headers["allow"] == "POST"
    r = httpx.post(proxy.url + "/v1/chat/completions/", json=CHAT, headers=AUTH)
    assert r.status_code == 307 and r.headers["location"].endswith("/v1/chat/completions")
    assert _requests(proxy, "/v1/chat/completions", 405) == 1


def test_midstream_failure_ends_with_an_error_event_and_no_done(proxy: ServerThread, replay: ReplayServer) -> None:
    replay.reset()
    replay.serve_fixture("openai", Reply(upstream_body("One. Two. Three. Four."), split="event", drop_after=3))
    r = httpx.post(proxy.url + "/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH)
    assert r.status_code == 200
    events = [e for e in r.text.split("\n\n") if e]
    assert len(events) >= 2 and "data: [DONE]" not in events
    assert all(json.loads(e[len("data: "):])["object"] == "chat.completion.chunk" for e in events[:-1])
    err = json.loads(events[-1][len("data: "):])["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["type"] != "server_error"
    metrics = httpx.get(proxy.url + "/metrics").text
    assert 'polystream_errors_total{type="' in metrics


def test_client_leaving_while_upstream_stalls_midstream_closes_upstream(proxy: ServerThread, replay: ReplayServer) -> None:
    """The watch covers the whole relay: a client leaving while the proxy waits for the next
    chunk closes the upstream at once, not at the next chunk (which here never comes)."""
    replay.reset()
    replay.serve_fixture("openai", Reply(upstream_body("One. Two. Three. Four."), split="event", stall_after=2))
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                break
        left = time.monotonic()
    assert replay.wait_for_disconnect(timeout=3.0, since=left) < 1.0
    assert _wait_count(proxy, "/v1/chat/completions", 200, 1) == 1  # the head was out: a 200


def test_client_leaving_before_the_first_chunk_is_a_499(proxy: ServerThread, replay: ReplayServer) -> None:
    replay.reset()
    replay.serve_fixture("openai", Reply(upstream_body(), split="event", first_delay=0.6))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(proxy.url + "/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH,
                   timeout=httpx.Timeout(5, read=0.2))
    left = time.monotonic()
    assert replay.wait_for_disconnect(timeout=3.0, since=left) < 1.0
    assert _wait_count(proxy, "/v1/chat/completions", 499, 1) == 1


def test_client_leaving_while_sending_the_body_is_a_499(proxy: ServerThread, replay: ReplayServer) -> None:
    body = json.dumps({**CHAT, "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", proxy.port)) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                  b"authorization: Bearer " + USER_A.encode() + b"\r\ncontent-length: " + str(len(body)).encode()
                  + b"\r\n\r\n" + body[:10])
        time.sleep(0.1)
    assert _wait_count(proxy, "/v1/chat/completions", 499, 1) == 1
    assert not replay.requests  # never got as far as the upstream


def test_unexpected_error_is_a_logged_500(proxy: ServerThread, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError(f"a bug that quotes {UPSTREAM_KEY}")

    monkeypatch.setattr(routes_chat, "_prepare", broken)
    with caplog.at_level(logging.ERROR, logger="polystream.server"):
        r = httpx.post(proxy.url + "/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH)
    assert r.status_code == 500
    assert r.json()["error"] == {"message": "Internal error in the proxy.", "type": "server_error", "param": None,
                                 "code": "internal_error"}
    logged = [rec for rec in caplog.records if rec.getMessage() == "unhandled error on POST /v1/chat/completions"]
    assert len(logged) == 1 and logged[0].exc_info is not None
    assert _requests(proxy, "/v1/chat/completions", 500) == 1


# ---------------------------------------------------------------- plain ASGI, no server


class _Stream:
    """An upstream whose chunks arrive in `reads` (lists of their JSON), as AsyncStream.batches()."""

    def __init__(self, reads: list[list[str]]) -> None:
        self.reads, self.closed = reads, False

    def batches(self) -> Any:
        return self._gen()

    async def _gen(self) -> Any:
        for read in self.reads:
            await asyncio.sleep(0)
            yield [ChatCompletionChunk.from_json(p) for p in read]

    async def aclose(self) -> None:
        self.closed = True


def _call_app(app: Any, scope_extra: dict[str, Any]) -> list[dict[str, Any]]:
    body = json.dumps({**CHAT, "stream": True}).encode()
    sent: list[dict[str, Any]] = []

    async def run() -> None:
        done = asyncio.Event()
        given = False

        async def receive() -> dict[str, Any]:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()  # as uvicorn: http.disconnect once the response is complete
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done.set()

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "server": ("127.0.0.1", 4000), "client": ("127.0.0.1", 5000), "root_path": "",
                 "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"",
                 "headers": [(b"authorization", f"Bearer {USER_A}".encode()),
                             (b"content-length", str(len(body)).encode())], **scope_extra}
        await app(scope, receive, send)

    asyncio.run(run())
    return sent


def _event(chunk_json: str) -> bytes:
    return b"data: " + ChatCompletionChunk.from_json(chunk_json).to_json().encode() + b"\n\n"


def test_sse_frames() -> None:
    """The relay's framing in the core: each chunk's to_json() as an SSE event, in order, in one
    bytes per call, also across calls and header changes (the writer keeps the last header's
    JSON); with drop_choiceless, chunks without choices are left out and not counted."""
    texts = ['{"id":"a","model":"m","choices":[{"index":0,"delta":{"content":"h\u00e9 \\"q\\" \\n 🙂"}}]}',
             '{"id":"a","model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}',
             '{"id":"a","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
             '{"id":"b","model":"m","system_fingerprint":"fp","choices":[{"index":0,"delta":{"content":"x"}}]}']
    chunks = [ChatCompletionChunk.from_json(t) for t in texts]
    assert SseFrames()(chunks) == (b"".join(_event(t) for t in texts), 4)
    frames = SseFrames(drop_choiceless=True)
    assert frames(chunks[:3]) == (_event(texts[0]) + _event(texts[2]), 2)
    assert frames(chunks[3:]) == (_event(texts[3]), 1)
    assert frames([]) == (b"", 0)
    frame = SseFrames()(chunks[:1])[0]
    assert json.loads(frame[len(b"data: "):-2])["choices"][0]["delta"]["content"] == 'hé "q" \n 🙂'
    with pytest.raises(TypeError):
        frames([chunks[0], {"choices": []}])
    with pytest.raises(TypeError):
        frames(tuple(chunks))  # type: ignore[arg-type]


def test_chunks_that_arrive_together_are_written_together(monkeypatch: pytest.MonkeyPatch) -> None:
    """One client write per upstream read: under load a read brings many chunks, and one write
    each would cost a system call (and a client wakeup) per chunk. The usage chunk the client
    did not ask for is dropped from inside its batch."""
    one, two, three = (f'{{"choices":[{{"index":0,"delta":{{"content":"{n}"}}}}]}}' for n in "123")
    reads = [[one], [two, three, '{"choices":[]}']]

    async def fake_acompletion(model: str, messages: Any, stream: bool = False, **kwargs: Any) -> _Stream:
        return _Stream(reads)

    monkeypatch.setattr(routes_chat, "acompletion", fake_acompletion)
    app = create_app(_config("http://127.0.0.1:9/v1"), background=False)
    bodies = [m["body"] for m in _call_app(app, {})[1:]]
    assert bodies == [_event(one), _event(two) + _event(three), b"data: [DONE]\n\n"]
    assert app.state.polystream.metrics.chunks == {"/v1/chat/completions": 3}


@pytest.mark.parametrize("scope_extra,route", [
    ({}, "/v1/chat/completions"),
    # behind a root_path the door passes: Starlette routes it to the same handler
    ({"root_path": "/api", "path": "/api/v1/chat/completions"}, "/v1/chat/completions"),
])
def test_asgi_counted_once_either_way(monkeypatch: pytest.MonkeyPatch, scope_extra: dict[str, Any], route: str) -> None:
    streams: list[_Stream] = []

    async def fake_acompletion(model: str, messages: Any, stream: bool = False, **kwargs: Any) -> _Stream:
        assert stream and kwargs["api_key"] == UPSTREAM_KEY
        streams.append(_Stream([['{"choices":[{"index":0}]}'], ['{"choices":[]}']]))
        return streams[-1]

    monkeypatch.setattr(routes_chat, "acompletion", fake_acompletion)
    app = create_app(_config("http://127.0.0.1:9/v1"), background=False)
    sent = _call_app(app, scope_extra)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in sent[0]["headers"]
    bodies = [m["body"] for m in sent[1:]]
    assert bodies == [_event('{"choices":[{"index":0}]}'), b"data: [DONE]\n\n"]  # usage chunk not asked for
    assert sent[-1]["more_body"] is False
    assert streams[0].closed
    st = app.state.polystream
    assert st.metrics.requests == {(route, "POST", 200): 1}
    assert st.metrics.chunks == {"/v1/chat/completions": 1}
    assert st.metrics.ttft["/v1/chat/completions"].n == 1
