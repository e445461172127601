"""Two proxies on one Redis: reads of a response through the proxy that does not produce it are
routed to the one that does (background/peers.py), signed for the owner, and fall back to the
store when that proxy cannot answer."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from polystream.background.peers import HEADER, NODE, PeerFailed, PeerLink
from polystream.server import ServerThread, create_app, load_config, parse_config
from polystream.testing import ReplayServer

from .test_server_support import (
    LONG_TEXT, USER_A, USER_B, RedisProc, free_port, raw_config, upstream_server, worker_command,
)
from .test_server_support import redis_server  # noqa: F401 - the shared redis-server fixture

redis = pytest.importorskip("redis")
pytest.importorskip("polystream.background.redis_store")

AUTH_A = {"authorization": f"Bearer {USER_A}"}
AUTH_B = {"authorization": f"Bearer {USER_B}"}


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with upstream_server(0.01) as server:  # ≈ 0.6 s of output: long enough to poll it while it grows
        yield server


def lazy_config(replay: ReplayServer, redis_url: str, **background: Any) -> dict[str, Any]:
    # Lazy writes that never come on their own within a test: only the first output and the end
    # reach Redis unless a remote reader asks for eager writes.
    return raw_config(replay, redis_url, max_flush_delay=60, flush_bytes=1 << 20, **background)


def config(replay: ReplayServer, redis_url: str, **background: Any) -> Any:
    return parse_config(lazy_config(replay, redis_url, **background))


def service(server: ServerThread) -> Any:
    return server.server.config.app.state.polystream.service


def create(url: str) -> str:
    r = httpx.post(url + "/v1/responses", headers=AUTH_A, timeout=10,
                   json={"model": "gpt-test", "input": "hi", "background": True})
    assert r.status_code == 200, r.text
    return r.json()["id"]  # type: ignore[no-any-return]


def poll_to_end(url: str, rid: str, headers: dict[str, str] = AUTH_A) -> tuple[str, int]:
    """The text a poller through `url` assembles, and how many polls showed new text."""
    cursor, text, growing = 0, "", 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        r = httpx.get(f"{url}/v1/responses/{rid}/poll", params={"cursor": cursor}, headers=headers, timeout=10)
        assert r.status_code == 200, r.text
        got = r.json()
        growing += bool(got["text"])
        text += got["text"]
        cursor = got["cursor"]
        if got["done"]:
            assert got["status"] == "completed"
            return text, growing
        time.sleep(0.02)
    raise AssertionError("the response did not finish")


def log_len(redis_url: str, store: Any, rid: str) -> int:
    """Entries the producer wrote while the response ran: the log's entries but its terminal one
    (which may land just after a poll said "not done") and the text entry the terminal write may
    bring just before it (`log.text_run_to_split`: text that local reads sealed). An eager write
    in that place would go uncounted, which the eager-write checks (dozens of entries) never notice."""
    r = redis.Redis.from_url(redis_url)
    try:
        key = store.keys(rid)[1]
        top = r.xrevrange(key, count=2)
        if not top or not top[0][0].startswith(b"18446744073709551615-"):
            return int(r.xlen(key))
        split_off = len(top) == 2 and not top[1][1][b"d"].startswith(b"[")
        return int(r.xlen(key)) - 1 - split_off
    finally:
        r.close()


def test_a_poll_through_another_proxy_is_answered_by_the_producing_one(replay: ReplayServer, redis_server: RedisProc) -> None:
    cfg = config(replay, redis_server.url)
    with ServerThread(create_app(cfg)) as a, ServerThread(create_app(cfg)) as b:
        rid = create(a.url)
        producer = service(a)._local[rid]
        text, growing = poll_to_end(b.url, rid)
        assert text == LONG_TEXT
        assert growing >= 5  # the text grew poll by poll though Redis held only its first piece
        assert producer.watched_until == 0.0  # nobody asked the producer for eager writes
        assert service(b)._peer_of[rid] == service(a).peers.me
        # retrieve through B: the same routing, the whole Response
        r = httpx.get(f"{b.url}/v1/responses/{rid}", headers=AUTH_A, timeout=10)
        assert r.status_code == 200 and r.json()["output"][0]["content"][0]["text"] == LONG_TEXT
        # another key gets the same 404 through either proxy
        for url in (a.url, b.url):
            assert httpx.get(f"{url}/v1/responses/{rid}/poll", headers=AUTH_B, timeout=10).status_code == 404


def test_the_log_stays_lazy_with_a_routed_reader(replay: ReplayServer, redis_server: RedisProc) -> None:
    """What Redis holds while a remote poller reads: the create, the start and the first output,
    nothing more until the end. (The same poller reading the store would make the producer write
    every `snapshot_interval`.)"""
    cfg = config(replay, redis_server.url)
    with ServerThread(create_app(cfg)) as a, ServerThread(create_app(cfg)) as b:
        rid = create(a.url)
        most = 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            got = httpx.get(f"{b.url}/v1/responses/{rid}/poll", headers=AUTH_A, timeout=10).json()
            if got["done"]:
                break
            most = max(most, log_len(redis_server.url, service(a).store, rid))
            time.sleep(0.02)
        assert got["done"] and got["text"] == LONG_TEXT
        assert 0 < most <= 3, most


def stream_events(url: str, rid: str, after: int = -1) -> list[dict[str, Any]]:
    """Every event of `GET /v1/responses/{id}?stream=true&starting_after=…` through `url`."""
    out = []
    params = {"stream": "true", "starting_after": str(after)}
    with httpx.stream("GET", f"{url}/v1/responses/{rid}", params=params, headers=AUTH_A, timeout=15) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data: "):
                out.append(json.loads(line[6:]))
    return out


def create_streamed(url: str) -> list[dict[str, Any]]:
    """Every event of `POST /v1/responses` with background and stream through `url`."""
    body = {"model": "gpt-test", "input": "hi", "background": True, "stream": True}
    with httpx.stream("POST", url + "/v1/responses", json=body, headers=AUTH_A, timeout=15) as r:
        assert r.status_code == 200, r.read()
        return [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]


def check_stream(events: list[dict[str, Any]]) -> None:
    """A whole stream: sequence numbers 0, 1, … with no gap or repeat, the deltas add up to the
    upstream's text, and it ends completed."""
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == LONG_TEXT
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == LONG_TEXT


def test_a_stream_through_another_proxy_is_relayed_from_the_producing_one(replay: ReplayServer, redis_server: RedisProc) -> None:
    cfg = config(replay, redis_server.url)
    with ServerThread(create_app(cfg)) as a, ServerThread(create_app(cfg)) as b:
        rid = create(a.url)
        producer = service(a)._local[rid]
        events = stream_events(b.url, rid)
        check_stream(events)
        assert producer.watched_until == 0.0  # relayed from A's memory, not tailed from Redis
        assert service(b)._peer_of[rid] == service(a).peers.me
        # resume through B after sequence number 5 (A may have finished by now: the same events)
        again = stream_events(b.url, rid, after=5)
        assert again == events[6:]


def test_a_relayed_stream_that_breaks_off_goes_on_from_the_store(replay: ReplayServer, redis_server: RedisProc) -> None:
    """A's stream to B stops after 8 events: B goes on from Redis from the 9th, no gap, no repeat."""
    cfg = config(replay, redis_server.url)
    with ServerThread(create_app(cfg)) as a, ServerThread(create_app(cfg)) as b:
        link = service(b).peers
        real = link.events

        async def broken(*args: Any) -> Any:
            n = 0
            async for ev in real(*args):
                yield ev
                n += 1
                if n == 8:
                    raise PeerFailed("connection reset")

        link.events = broken
        rid = create(a.url)
        events = stream_events(b.url, rid)
        check_stream(events)
        assert service(b)._peer_of[rid] == ""  # the store from then on


@pytest.mark.parametrize("where", ["unreachable", "misdirected"])
def test_reads_fall_back_to_the_store_when_the_producing_proxy_cannot_answer(
    replay: ReplayServer, redis_server: RedisProc, where: str
) -> None:
    """A's recorded address is a closed port, or B itself (an address now held by another
    process: B answers 421 to a read signed for A's node). B then reads Redis, asking A for eager
    writes, and its poller still sees the text grow to the end."""
    with ServerThread(create_app(config(replay, redis_server.url))) as b:
        peer_url = f"http://127.0.0.1:{free_port()}" if where == "unreachable" else b.url
        with ServerThread(create_app(config(replay, redis_server.url, peer_url=peer_url))) as a:
            rid = create(a.url)
            text, growing = poll_to_end(b.url, rid)
            assert text == LONG_TEXT
            assert growing >= 3
            assert service(b)._peer_of[rid] == ""  # B gave up on A's address
            assert service(a)._local.get(rid) is None or service(a)._local[rid].watched_until > 0
            # a stream through B, too, from the store
            check_stream(stream_events(b.url, create(a.url)))


def test_no_peer_address_when_turned_off(replay: ReplayServer, redis_server: RedisProc) -> None:
    with ServerThread(create_app(config(replay, redis_server.url, peer_url=""))) as a:
        assert service(a).peers is None
        rid = create(a.url)
        r = redis.Redis.from_url(redis_server.url)
        assert r.hget(service(a).store.keys(rid)[0], "p") is None
        r.close()
        text, _ = poll_to_end(a.url, rid)
        assert text == LONG_TEXT


def test_a_routed_read_must_be_signed_for_this_node_and_this_target(replay: ReplayServer, redis_server: RedisProc) -> None:
    cfg = config(replay, redis_server.url)
    with ServerThread(create_app(cfg)) as a:
        rid = create(a.url)
        link: PeerLink = service(a).peers
        owner = service(a)._local[rid].owner
        target = f"/v1/responses/{rid}/poll?cursor=0"

        def get(path: str, value: str) -> httpx.Response:
            return httpx.get(a.url + path, headers={HEADER: value}, timeout=10)

        ok = get(target, link.sign(link.node, owner, "GET", target))
        assert ok.status_code == 200 and ok.json()["id"] == rid
        # the signature binds the target, the owner, the node and the time
        assert get(f"/v1/responses/{rid}/poll?cursor=1", link.sign(link.node, owner, "GET", target)).status_code == 401
        other_owner = link.sign(link.node, "0" * 40, "GET", target)
        assert get(target, other_owner).status_code == 404  # signed, but not the owner's: as any other key
        forged = link.sign(link.node, owner, "GET", target)[:-4] + "0000"
        assert get(target, forged).status_code == 401
        stale = link.sign(link.node, owner, "GET", target, now=time.time() - 600)
        assert get(target, stale).status_code == 401
        elsewhere = get(target, link.sign("feedfacefeedface", owner, "GET", target))
        assert elsewhere.status_code == 421
        # a key another deployment derives signs nothing here
        stranger = PeerLink(b"another-secret")
        assert get(target, stranger.sign(link.node, owner, "GET", target)).status_code == 401
        # the signature is no key for anything but reads
        signed_cancel = link.sign(link.node, owner, "POST", f"/v1/responses/{rid}/cancel")
        r = httpx.post(f"{a.url}/v1/responses/{rid}/cancel", headers={HEADER: signed_cancel}, timeout=10)
        assert r.status_code == 401


@pytest.mark.parametrize("routing", ["on", "off"])
def test_reads_of_a_workers_response_are_answered_by_the_worker(
    replay: ReplayServer, redis_server: RedisProc, tmp_path: Path, routing: str
) -> None:
    """`polystream worker` serves routed reads too: a poll through the proxy that queued the job
    is answered from the worker's memory, and Redis sees only its lazy writes. With routing off
    (`peer_url: ""`) the poller reads Redis, and its watch signal, first sent while the job was
    still queued, is sent again once the worker has it: the text still grows poll by poll. Streams
    opened while the response is queued switch to the worker once it has it (routed), or ask it
    for eager writes then (not routed)."""
    background: dict[str, Any] = {"workers": True} | ({"peer_url": ""} if routing == "off" else {})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(lazy_config(replay, redis_server.url, **background)))
    with ServerThread(create_app(load_config(path))) as b:
        store = service(b).store
        rid = create(b.url)
        # Polled while no worker runs yet: queued, read from Redis (a watch signal then would
        # reach a worker taking the job just after, and make it write eagerly for watch_ttl).
        # After the first poll each costs one metadata read; routed, the log is not read again
        # (the queued entry is cached), unrouted it is read from the cached position on.
        r = redis.Redis.from_url(redis_server.url)
        for i in range(3):
            if i == 1:
                r.config_resetstat()
            queued = httpx.get(f"{b.url}/v1/responses/{rid}/poll", headers=AUTH_A, timeout=10).json()
            assert queued["status"] == "queued" and queued["cursor"] > 0
            time.sleep(0.02)
        calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in r.info("commandstats").items()}
        r.close()
        assert calls.get("hmget") == 2 and calls.get("xrange", 0) == (0 if routing == "on" else 2), calls
        # Streams that start while their response is queued (a retrieve, and a create with
        # stream: true): from the store until the worker has it, then (routed) relayed from it.
        rid2 = create(b.url)
        streamed: list[Any] = []
        followers = [threading.Thread(target=lambda: streamed.append(stream_events(b.url, rid2))),
                     threading.Thread(target=lambda: streamed.append(create_streamed(b.url)))]
        for t in followers:
            t.start()
        time.sleep(0.2)
        with worker_command(path) as worker:
            cursor, text, growing, most = 0, "", 0, 0
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                got = httpx.get(f"{b.url}/v1/responses/{rid}/poll", params={"cursor": cursor}, headers=AUTH_A,
                                timeout=10).json()
                growing += bool(got["text"])
                text, cursor = text + got["text"], got["cursor"]
                if got["done"]:
                    break
                most = max(most, log_len(redis_server.url, store, rid))
                time.sleep(0.02)
            assert got["done"] and got["status"] == "completed" and text == LONG_TEXT
            assert growing >= 5  # it grew poll by poll
            for t in followers:
                t.join(20)
            assert len(streamed) == 2
            for events in streamed:
                check_stream(events)
            rids = [rid2, streamed[0][-1]["response"]["id"], streamed[1][-1]["response"]["id"]]
            assert rids[0] in rids[1:] and len(set(rids)) == 2
            if routing == "off":
                assert most > 3 and service(b).peers is None  # eager writes, read from Redis
                for r2 in set(rids):  # the followers asked for eager writes once the worker had it
                    assert log_len(redis_server.url, store, r2) > 3
            else:
                assert 0 < most <= 3, most  # create, start, first output: the worker was never asked to write eagerly
                peer = service(b)._peer_of[rid]
                assert peer.partition("@")[2].startswith("http://127.0.0.1:")  # the worker's read port
                for r2 in set(rids):  # the followers switched to the worker, so it wrote lazily
                    assert service(b)._peer_of[r2] == peer
                    assert log_len(redis_server.url, store, r2) <= 3
                # the port takes signed reads only
                port_url = peer.partition("@")[2]
                r = httpx.get(f"{port_url}/v1/responses/{rid}", headers=AUTH_A, timeout=10)
                assert r.status_code == 401 and r.json()["error"]["code"] == "peer_signature_required"
                assert httpx.post(f"{port_url}/v1/responses", headers=AUTH_A, json={}, timeout=10).status_code in (404, 405)
    assert worker.returncode == 0, worker.output


def test_an_answer_from_another_server_at_the_address_is_not_taken(replay: ReplayServer, redis_server: RedisProc) -> None:
    """The recorded address now answers for someone else (here: a stand-in server answering
    every GET with 404, as an unrelated API would): B does not take that for "no such
    response", and reads the store."""
    with ReplayServer() as stranger:  # serves nothing: every path is a 404
        with ServerThread(create_app(config(replay, redis_server.url, peer_url=stranger.url))) as a, \
                ServerThread(create_app(config(replay, redis_server.url))) as b:
            rid = create(a.url)
            text, _ = poll_to_end(b.url, rid)
            assert text == LONG_TEXT
            assert service(b)._peer_of[rid] == ""
            # what the producing node itself answers carries its name, found or not
            link: PeerLink = service(a).peers
            owner = service(a)._local[rid].owner if rid in service(a)._local else None
            for path in (f"/v1/responses/{rid}/poll?cursor=0", "/v1/responses/resp_missing/poll?cursor=0"):
                r = httpx.get(a.url + path, headers={HEADER: link.sign(link.node, owner or "0" * 40, "GET", path)},
                              timeout=10)
                assert r.headers.get(NODE) == link.node, (path, r.status_code)


def test_peer_link_learns_the_address_a_client_reached() -> None:
    link = PeerLink(b"s")
    assert link.me is None
    link.learn(("10.1.2.3", 4000))
    assert link.url == "http://10.1.2.3:4000" and link.me == f"{link.node}@http://10.1.2.3:4000"
    link.learn(("10.9.9.9", 4001))  # the first address stays
    assert link.url == "http://10.1.2.3:4000"
    six = PeerLink(b"s")
    six.learn(("::1", 4000))
    assert six.url == "http://[::1]:4000"
    none = PeerLink(b"s")
    none.learn(None)  # a Unix socket: no address to give
    assert none.me is None
    assert PeerLink(b"s", "").me is None


def test_a_peer_that_cannot_be_reached_is_not_asked_again_for_a_while() -> None:
    """Down means: nobody listens (refused), or someone else answers at the address. Reads of the
    node's other responses then go to the store at once, until `down_for` has passed."""
    import asyncio

    async def main() -> None:
        link = PeerLink(b"s", down_for=0.3)
        nobody = f"{'a' * 16}@http://127.0.0.1:{free_port()}"
        assert await link.get(nobody, "o", "/v1/responses/resp_x") is None
        assert link.is_down(nobody)
        with ReplayServer() as stranger:  # answers every path with a 404 that names no node
            peer = f"{'b' * 16}@{stranger.url}"
            assert await link.get(peer, "o", "/v1/responses/resp_x") is None
            assert len(stranger.requests) == 1 and link.is_down(peer)
            assert await link.get(peer, "o", "/v1/responses/resp_y") is None
            with pytest.raises(PeerFailed):
                async for _ in link.events(peer, "o", "/v1/responses/resp_y?stream=true", idle=1):
                    pass
            assert len(stranger.requests) == 1  # neither read went out
            await asyncio.sleep(0.35)
            assert not link.is_down(peer)
            assert await link.get(peer, "o", "/v1/responses/resp_z") is None
            assert len(stranger.requests) == 2  # asked again once the memory lapsed
            # A streamed read marks a node down the same two ways.
            streamed = PeerLink(b"s", down_for=30)
            for where in (nobody, peer):
                with pytest.raises(PeerFailed):
                    async for _ in streamed.events(where, "o", "/v1/responses/resp_w?stream=true", idle=1):
                        pass
                assert streamed.is_down(where)
            assert len(stranger.requests) == 3

    asyncio.run(main())
