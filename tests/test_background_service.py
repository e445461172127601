"""ResponsesService end to end, on the memory store and on a real redis-server, with the replay
server as the upstream provider.

Store kinds: "memory"; "redis" (reads in the producer's process: served from its view);
"redis-remote" (a second service on the same Redis does every read, cancel and delete: another
proxy, reading through the store, cancelling through pub/sub).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from polystream.background import StoreUnavailable
from polystream.background.memory_store import MemoryStore
from polystream.background.service import BackgroundSettings, ResponsesService
from polystream.fake import mock_body
from polystream.testing import ReplayServer, Reply
from tests.conftest_redis import RedisProc, own_redis, redis_url  # noqa: F401

pytest.importorskip("redis")
from polystream.background.redis_store import RedisStore  # noqa: E402

TEXT = "".join(f"word{i} " for i in range(60)) + "café 東京 🚀 end."
ODD = "[link](u) says \"hi\" \x1e then \\n [ [x] \n\n- item ] \x1e\x1e end ["
OWNER, OTHER = "owner-a", "owner-b"
EVENT = TypeAdapter(ResponseStreamEvent)
KINDS = ["memory", "redis", "redis-remote"]

UPSTREAMS = {
    "fast": Reply(mock_body(TEXT, "gpt-4o"), delay=0.001),
    "slow": Reply(mock_body(TEXT, "gpt-4o"), delay=0.015),
    "crawl": Reply(mock_body(TEXT, "gpt-4o"), delay=0.05),
    "stall": Reply(mock_body(TEXT, "gpt-4o"), delay=0.01, stall_after=6),  # then silent
    "drop": Reply(mock_body(TEXT, "gpt-4o"), delay=0.002, drop_after=8),
    "ratelimit": Reply.error(429),
    # Text that the log's compact entries must carry exactly: a record may start with "[", and
    # hold the entry separator U+001E, quotes, backslashes, newlines.
    "odd": Reply(mock_body(ODD, "gpt-4o"), delay=0.004),
    "tools": Reply(mock_body({"reasoning_content": "Think first.", "content": "Calling.",
                              "tool_calls": [{"function": {"name": "lookup", "arguments": {"q": "x" * 40}}}]}, "gpt-4o")),
}


class Router:
    """ModelRouter stand-in: model name → the replay server path serving that behaviour."""

    def __init__(self, url: str) -> None:
        self.url = url

    def resolve(self, name: str) -> tuple[str, dict[str, Any]]:
        if name not in UPSTREAMS:
            raise KeyError(name)
        return "gpt-4o", {"api_base": f"{self.url}/{name}/v1", "api_key": "sk-test", "idle_timeout": 30}


@pytest.fixture(scope="module")
def upstream() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        for name, reply in UPSTREAMS.items():
            server.add(f"/{name}/v1/chat/completions", reply)
        yield server


def run(coro: Any, timeout: float = 30) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


@asynccontextmanager
async def services(kind: str, url: str | None, server: ReplayServer, **settings: Any) -> AsyncIterator[tuple[ResponsesService, ResponsesService]]:
    """(the service that creates, the service that reads) for a store kind."""
    settings.setdefault("lease", 3.0)
    router = Router(server.url)
    if kind == "memory":
        svc = ResponsesService(MemoryStore(ttl=60), router, BackgroundSettings(**settings))
        await svc.start()
        try:
            yield svc, svc
        finally:
            await svc.close()
        return
    assert url is not None
    a = ResponsesService(RedisStore(url, prefix="t", ttl=60), router, BackgroundSettings(**settings))
    b = a if kind == "redis" else ResponsesService(RedisStore(url, prefix="t", ttl=60), router, BackgroundSettings(**settings))
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.close()
        if b is not a:
            await b.close()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def url(kind: str, request: pytest.FixtureRequest) -> str | None:
    return None if kind == "memory" else request.getfixturevalue("redis_url")


async def create(svc: ResponsesService, model: str = "fast", **body: Any) -> dict[str, Any]:
    return json.loads(await svc.create(OWNER, {"model": model, "input": "hi", "background": True, **body}))


async def wait_done(svc: ResponsesService, rid: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = await svc.poll(OWNER, rid, 10**9)
        if p["done"]:
            return json.loads(await svc.retrieve(OWNER, rid))
        await asyncio.sleep(0.02)
    raise AssertionError(f"{rid} not done")


async def wait_text(svc: ResponsesService, rid: str, min_len: int = 1, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = json.loads(await svc.retrieve(OWNER, rid))
        text = _text(r)
        if len(text) >= min_len:
            return text
        await asyncio.sleep(0.01)
    raise AssertionError("no text")


def _text(r: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for o in r["output"] if o["type"] == "message" for c in o["content"])


def strict(body: bytes | dict[str, Any]) -> Response:
    data = body if isinstance(body, dict) else json.loads(body)
    return Response.model_validate(data, strict=True)


async def collect(it: AsyncIterator[Any] | None) -> list[tuple[int, str, bytes]]:
    assert it is not None
    return [e async for e in it]


# ---------------------------------------------------------------- the main flows


def test_create_then_poll_until_completed(kind: str, url: str | None, upstream: ReplayServer) -> None:
    async def main() -> None:
        async with services(kind, url, upstream) as (a, b):
            queued = await a.create(OWNER, {"model": "slow", "input": "hi", "background": True})
            q = strict(queued)
            assert q.status == "queued" and q.background is True and q.output == []
            assert q.id.startswith("resp_") and len(q.id) >= 5 + 26
            text, cursor, statuses = "", 0, set()
            mid = None
            while True:
                p = await b.poll(OWNER, q.id, cursor)
                statuses.add(p["status"])
                assert [e["sequence_number"] for e in p["events"]] == list(range(cursor, p["cursor"]))
                text += p["text"]
                cursor = p["cursor"]
                if mid is None and text:
                    mid = await b.retrieve(OWNER, q.id)
                if p["done"]:
                    break
                await asyncio.sleep(0.02)
            assert text == TEXT and p["status"] == "completed"
            assert "in_progress" in statuses
            m = strict(mid)  # a partial snapshot validates too
            assert m.status == "in_progress" and TEXT.startswith(m.output_text)
            final = strict(await b.retrieve(OWNER, q.id))
            assert final.status == "completed" and final.output_text == TEXT
            assert final.usage is not None and final.usage.output_tokens > 0 and final.completed_at
            assert final.output[0].id.startswith("msg_") and q.id[5:] not in final.output[0].id

    run(main())


def test_event_replay_is_the_tail_of_the_full_list(kind: str, url: str | None, upstream: ReplayServer) -> None:
    async def main() -> None:
        async with services(kind, url, upstream) as (a, b):
            # background + stream: the live stream through the creating service...
            live = await collect(a.stream(OWNER, {"model": "tools", "input": "hi", "background": True, "stream": True}))
            rid = json.loads(live[0][2])["response"]["id"]
            await wait_done(b, rid)
            full = await collect(await b.events(OWNER, rid, after=-1))
            assert [e[0] for e in full] == list(range(len(full)))
            assert full == live  # ...is event for event what any reader replays later
            names = [e[1] for e in full]
            assert names[:3] == ["response.created", "response.queued", "response.in_progress"]
            assert names[-1] == "response.completed"
            for seq, name, data in full:
                ev = EVENT.validate_json(data, strict=True)
                assert ev.type == name and ev.sequence_number == seq
            for n in (0, 3, len(full) // 2, len(full) - 2, len(full) - 1):
                assert await collect(await b.events(OWNER, rid, after=n)) == full[n + 1 :]
            r = strict(await b.retrieve(OWNER, rid))
            assert [o.type for o in r.output] == ["reasoning", "message", "function_call"]
            assert r.output[2].arguments == json.dumps({"q": "x" * 40})

    run(main())


def test_compact_entries_replay_what_live_readers_saw(kind: str, url: str | None, upstream: ReplayServer) -> None:
    async def main() -> None:
        async with services(kind, url, upstream) as (a, b):
            live, polled, cursor = [], "", 0
            async for ev in a.stream(OWNER, {"model": "odd", "input": "hi", "background": True, "stream": True}):
                live.append(ev)
                rid = json.loads(live[0][2])["response"]["id"]
                p = await b.poll(OWNER, rid, cursor)  # polls in between seal records at odd places
                polled, cursor = polled + p["text"], p["cursor"]
            await wait_done(b, rid)
            polled += (await b.poll(OWNER, rid, cursor))["text"]
            full = await collect(await b.events(OWNER, rid, after=-1))
            assert full == live and polled == ODD
            assert "".join(json.loads(d)["delta"] for _, n, d in full if n == "response.output_text.delta") == ODD
            assert strict(await b.retrieve(OWNER, rid)).output_text == ODD

    run(main())


def test_replay_then_follow_live(kind: str, url: str | None, upstream: ReplayServer) -> None:
    async def main() -> None:
        async with services(kind, url, upstream) as (a, b):
            rid = (await create(a, "slow"))["id"]
            await wait_text(b, rid, 20)
            got = await collect(await b.events(OWNER, rid, after=4))  # joined mid-stream
            assert got[0][0] == 5 and got[-1][1] == "response.completed"
            assert [e[0] for e in got] == list(range(5, 5 + len(got)))
            full = await collect(await b.events(OWNER, rid, after=-1))
            assert got == full[5:]
            assert "".join(json.loads(d)["delta"] for _, n, d in full if n == "response.output_text.delta") == TEXT

    run(main())


def test_incremental_polls_concatenate_to_the_text(kind: str, url: str | None, upstream: ReplayServer) -> None:
    async def main() -> None:
        async with services(kind, url, upstream) as (a, b):
            rid = (await create(a, "slow"))["id"]
            parts, cursor, polls = [], 0, 0
            while True:
                p = await b.poll(OWNER, rid, cursor)
                polls += 1
                assert p["cursor"] >= cursor
                parts.append(p["text"])
                cursor = p["cursor"]
                if p["done"]:
                    break
                await asyncio.sleep(0.015)
            assert "".join(parts) == TEXT
            assert sum(1 for t in parts if t) > 3  # it really grew across polls
            again = await b.poll(OWNER, rid, cursor)
            assert again["events"] == [] and again["text"] == "" and again["done"]
            assert (await b.poll(OWNER, rid, 0))["text"] == TEXT  # from the start again

    run(main())


def test_cancel_closes_the_upstream_and_stays_cancelled(kind: str, url: str | None, upstream: ReplayServer) -> None:
    async def main() -> None:
        async with services(kind, url, upstream) as (a, b):
            rid = (await create(a, "stall"))["id"]  # the upstream goes silent after a few chunks
            partial = await wait_text(b, rid, 5)
            await asyncio.sleep(0.1)
            t0 = time.monotonic()
            body = await b.cancel(OWNER, rid)
            r = strict(body)
            assert r.status == "cancelled"
            lag = await upstream.wait_for_disconnect_async(timeout=3.0, since=t0)
            assert lag < 1.0
            assert r.output_text.startswith(partial[:5])
            await asyncio.sleep(0.3)  # the producer is over; nothing may overwrite the status
            for svc in {a, b}:
                again = strict(await svc.retrieve(OWNER, rid))
                assert again.status == "cancelled" and again.output_text == r.output_text
                assert (await svc.poll(OWNER, rid, 0))["done"]
            assert strict(await b.cancel(OWNER, rid)).status == "cancelled"  # idempotent
            evs = await collect(await b.events(OWNER, rid, after=-1))
            assert evs[-1][1] != "response.completed" and all(e[1] != "response.completed" for e in evs)

    run(main())


def test_cancel_after_completion_keeps_completed(kind: str, url: str | None, upstream: ReplayServer) -> None:
    async def main() -> None:
        async with services(kind, url, upstream) as (a, b):
            rid = (await create(a))["id"]
            await wait_done(b, rid)
            assert strict(await b.cancel(OWNER, rid)).status == "completed"
            assert strict(await a.retrieve(OWNER, rid)).output_text == TEXT

    run(main())


def test_another_owner_sees_nothing(kind: str, url: str | None, upstream: ReplayServer) -> None:
    async def main() -> None:
        async with services(kind, url, upstream) as (a, b):
            rid = (await create(a, "slow"))["id"]
            for svc in {a, b}:
                assert await svc.retrieve(OTHER, rid) is None
                assert await svc.poll(OTHER, rid, 0) is None
                assert await svc.events(OTHER, rid) is None
                assert await svc.cancel(OTHER, rid) is None
                assert await svc.delete(OTHER, rid) is False
                assert await svc.retrieve(OWNER, "resp_" + "a" * 26) is None
            assert strict(await wait_done(b, rid)).output_text == TEXT  # untouched

    run(main())


def test_delete(kind: str, url: str | None, upstream: ReplayServer) -> None:
    async def main() -> None:
        async with services(kind, url, upstream) as (a, b):
            done = (await create(a))["id"]
            await wait_done(b, done)
            assert await b.delete(OWNER, done) is True
            assert await b.retrieve(OWNER, done) is None and await a.retrieve(OWNER, done) is None
            assert await b.delete(OWNER, done) is False
            running = (await create(a, "stall"))["id"]
            await wait_text(b, running, 3)
            t0 = time.monotonic()
            assert await b.delete(OWNER, running) is True  # deleting a running response stops it
            assert await upstream.wait_for_disconnect_async(timeout=3.0, since=t0) < 1.0
            await asyncio.sleep(0.2)
            assert await a.retrieve(OWNER, running) is None and await b.poll(OWNER, running, 0) is None

    run(main())


@pytest.mark.parametrize("model, code, text", [("drop", "server_error", True), ("ratelimit", "rate_limit_exceeded", False)])
def test_upstream_failure_is_failed_never_completed(kind: str, url: str | None, upstream: ReplayServer,
                                                    model: str, code: str, text: bool) -> None:
    async def main() -> None:
        async with services(kind, url, upstream) as (a, b):
            rid = (await create(a, model))["id"]
            r = strict(await wait_done(b, rid))
            assert r.status == "failed" and r.error is not None and r.error.code == code
            assert bool(r.output_text) == text and TEXT.startswith(r.output_text)
            assert r.completed_at is None
            names = [e[1] for e in await collect(await b.events(OWNER, rid, after=-1))]
            assert names[-2:] == ["error", "response.failed"]

    run(main())


def test_foreground_create_and_stream(kind: str, url: str | None, upstream: ReplayServer) -> None:
    async def main() -> None:
        async with services(kind, url, upstream) as (a, b):
            r = strict(await a.create(OWNER, {"model": "fast", "input": [{"role": "user", "content": "hi"}]}))
            assert r.status == "completed" and r.output_text == TEXT and r.background is False
            assert strict(await b.retrieve(OWNER, r.id)).output_text == TEXT  # stored (store defaults to true)
            evs = await collect(a.stream(OWNER, {"model": "fast", "input": "hi", "stream": True}))
            assert evs[0][1] == "response.created" and evs[-1][1] == "response.completed"
            assert [e[0] for e in evs] == list(range(len(evs)))
            nostore = strict(await a.create(OWNER, {"model": "fast", "input": "hi", "store": False}))
            assert nostore.output_text == TEXT and await b.retrieve(OWNER, nostore.id) is None
            # A client leaving a synchronous stream cancels it (and closes the upstream request).
            it = a.stream(OWNER, {"model": "stall", "input": "hi", "stream": True})
            async for _, name, _ in it:
                if name == "response.output_text.delta":
                    break
            t0 = time.monotonic()
            await it.aclose()
            assert await upstream.wait_for_disconnect_async(timeout=3.0, since=t0) < 1.0

    run(main())


def test_bad_requests_raise_before_storing(kind: str, url: str | None, upstream: ReplayServer) -> None:
    async def main() -> None:
        async with services(kind, url, upstream) as (a, _):
            with pytest.raises(KeyError):
                await a.create(OWNER, {"model": "nope", "input": "hi", "background": True})
            with pytest.raises(ValueError):
                await a.create(OWNER, {"model": "fast", "input": [{"type": "web_search_call"}], "background": True})
            with pytest.raises(ValueError):
                await a.create(OWNER, {"model": "fast", "input": "hi", "tools": [{"type": "web_search"}]})
            with pytest.raises(KeyError):
                await collect(a.stream(OWNER, {"model": "nope", "input": "hi", "stream": True}))

    run(main())


# Load, not cross-process semantics: the two single-service stores are enough here.
@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_many_concurrent_background_responses(kind: str, url: str | None, upstream: ReplayServer) -> None:
    n = 200

    async def main() -> None:
        async with services(kind, url, upstream) as (a, b):
            ids = [r["id"] for r in await asyncio.gather(*(create(a) for _ in range(n)))]
            assert len(set(ids)) == n
            results = await asyncio.gather(*(wait_done(b, rid, timeout=40) for rid in ids))
            assert all(r["status"] == "completed" and _text(r) == TEXT for r in results)

    run(main(), timeout=60)


# ---------------------------------------------------------------- Redis specifics


def test_redis_keys_are_hash_tagged_with_ttls(redis_url: str, upstream: ReplayServer) -> None:  # noqa: F811
    async def main() -> None:
        async with services("redis", redis_url, upstream, lease=3.0) as (a, _):
            store = a.store
            assert isinstance(store, RedisStore)
            rid = (await create(a, "slow"))["id"]
            await wait_text(a, rid, 10)
            meta, log, lease = store.keys(rid)
            tag = rid[5:11]  # short keys: the id's first 30 random bits, claimed at create
            assert all(k.split("{")[1].split("}")[0] == tag for k in (meta, log, lease))
            assert rid[5:] in meta.replace("{", "").replace("}", "").replace(":", "")  # the meta key names the whole id
            assert 0 < await store.r.ttl(meta) <= 60 and 0 < await store.r.ttl(log) <= 60
            assert 0 < await store.r.pttl(lease) <= 3000
            await wait_done(a, rid)
            assert await store.r.exists(lease) == 0
            assert 0 < await store.r.ttl(meta) <= 60 and 0 < await store.r.ttl(log) <= 60
            keys = [k async for k in store.iter_keys() if tag in k]
            assert sorted(keys) == sorted([meta, log])
            raw = b"".join(f[b"d"] for _, f in await store.r.xrange(log))
            assert b"sk-test" not in raw  # upstream keys are never stored

    run(main())


def test_text_sealed_by_local_reads_ends_as_a_text_entry(redis_url: str, upstream: ReplayServer) -> None:  # noqa: F811
    """A reader in the producer's process seals a record per look. At the end those records go
    to the log as a text entry of their own (1 byte apart), not quoted in the terminal JSON, and
    a reader elsewhere still rebuilds exactly what the local one streamed."""
    async def main() -> None:
        async with services("redis", redis_url, upstream, max_flush_delay=30.0) as (a, _):
            store = a.store
            assert isinstance(store, RedisStore)
            live = [ev async for ev in a.stream(OWNER, {"model": "slow", "input": "hi", "background": True,
                                                         "stream": True})]
            rid = json.loads(live[0][2])["response"]["id"]
            entries = [f[b"d"] for _, f in await store.r.xrange(store.keys(rid)[1])]
            *_, text, terminal = entries
            assert not text.startswith(b"[") and text.count(b"\x1e") > 20  # one record per chunk
            assert not any(isinstance(r, str) for r in json.loads(terminal))
            assert len(text) + len(terminal) < len(TEXT.encode()) + 300
        async with services("redis", redis_url, upstream) as (elsewhere, _):
            assert await collect(await elsewhere.events(OWNER, rid, after=-1)) == live
            assert _text(json.loads(await elsewhere.retrieve(OWNER, rid))) == TEXT

    run(main())


def test_remote_reader_makes_writes_eager(redis_url: str, upstream: ReplayServer) -> None:  # noqa: F811
    async def main() -> None:
        async with services("redis-remote", redis_url, upstream) as (a, b):
            rid = (await create(a, "slow"))["id"]
            await asyncio.sleep(0.1)
            assert a._local[rid].watched_until == 0.0  # nobody elsewhere: lazy writes
            await b.poll(OWNER, rid, 0)
            for _ in range(100):
                if a._local[rid].watched_until > time.monotonic():
                    break
                await asyncio.sleep(0.01)
            assert a._local[rid].watched_until > time.monotonic()
            await wait_done(b, rid)

    run(main())


def test_redis_outage_raises_store_unavailable_fast_then_recovers(own_redis: RedisProc, upstream: ReplayServer) -> None:  # noqa: F811
    async def main() -> None:
        async with services("redis", own_redis.url, upstream) as (a, _):
            rid = (await create(a))["id"]
            await wait_done(a, rid)
            while rid in a._local:  # the end is written; until its producer retires, reads here come from memory
                await asyncio.sleep(0.005)
            own_redis.stop()
            for call in (lambda: a.retrieve(OWNER, rid), lambda: a.poll(OWNER, rid, 0), lambda: create(a),
                         lambda: a.cancel(OWNER, rid), lambda: a.delete(OWNER, rid), lambda: a.ping()):
                t0 = time.monotonic()
                with pytest.raises(StoreUnavailable):
                    await call()
                assert time.monotonic() - t0 < 2.5
            own_redis.start()  # same port; the store's connection pools must recover by themselves
            rid2 = (await create(a))["id"]
            assert _text(await wait_done(a, rid2)) == TEXT
            assert await a.retrieve(OWNER, rid) is None  # a fresh server: the old response is gone

    run(main())
