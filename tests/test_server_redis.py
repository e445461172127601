"""The proxy on a real redis-server: outages are quick 503s and it recovers; keys never reach
Redis; `polystream worker` processes run the jobs a proxy hands over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from polystream.server import ServerThread, create_app, load_config, parse_config
from polystream.testing import ReplayServer

from .test_server_support import (
    LONG_TEXT, MASTER_KEY, UPSTREAM_KEY, USER_A, USER_B, RedisProc, free_port, raw_config, upstream_server,
    worker_command,
)

redis = pytest.importorskip("redis")
pytest.importorskip("polystream.background.redis_store")

AUTH = {"authorization": f"Bearer {USER_A}"}


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with upstream_server(0.003) as server:
        yield server


@pytest.fixture
def own_redis() -> Iterator[RedisProc]:
    r = RedisProc(free_port())
    r.start()
    yield r
    if r.proc is not None:
        with_signal(r, signal.SIGCONT)
    r.stop()


def with_signal(r: RedisProc, sig: int) -> None:
    assert r.proc is not None
    os.kill(r.proc.pid, sig)


def sdk(server: ServerThread, key: str = USER_A) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, _strict_response_validation=True)


def wait_done(client: openai.OpenAI, rid: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        r = client.responses.retrieve(rid)
        if r.status not in ("queued", "in_progress") or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


def _outage_calls(url: str, rid: str) -> None:
    calls = [
        ("POST", "/v1/responses", {"model": "gpt-test", "input": "hi", "background": True}),
        ("GET", f"/v1/responses/{rid}", None),
        ("GET", f"/v1/responses/{rid}?stream=true", None),
        ("GET", f"/v1/responses/{rid}/poll", None),
        ("POST", f"/v1/responses/{rid}/cancel", None),
        ("DELETE", f"/v1/responses/{rid}", None),
    ]
    for method, path, body in calls:
        t = time.monotonic()
        r = httpx.request(method, url + path, json=body, headers=AUTH, timeout=10)
        took = time.monotonic() - t
        assert r.status_code == 503, (method, path, r.status_code, r.text)
        assert r.json()["error"]["code"] == "store_unavailable"
        assert took < 4.0, (method, path, took)
    r = httpx.get(url + "/health/readiness", timeout=10)
    assert r.status_code == 503 and r.json()["store_connected"] is False


@pytest.mark.parametrize("how", ["stopped", "frozen"])
def test_redis_outage_is_503_then_recovers(replay: ReplayServer, own_redis: RedisProc, how: str) -> None:
    app = create_app(parse_config(raw_config(replay, own_redis.url)))
    with ServerThread(app) as server:
        client = sdk(server)
        rid = client.responses.create(model="gpt-test", input="hi", background=True).id
        assert wait_done(client, rid).output_text == LONG_TEXT
        # The end is written; until its producer retires, this proxy answers reads from memory.
        deadline = time.monotonic() + 10
        while rid in app.state.polystream.service._local:
            assert time.monotonic() < deadline, "the producer did not retire"
            time.sleep(0.005)
        if how == "stopped":
            own_redis.stop()
        else:  # alive but not answering: timeouts, not refusals
            with_signal(own_redis, signal.SIGSTOP)
        _outage_calls(server.url, rid)
        # chat completions do not touch the store
        r = httpx.post(server.url + "/v1/chat/completions", headers=AUTH, timeout=10,
                       json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200
        if how == "stopped":
            own_redis.start()  # same port; the data is gone (no persistence), the service is back
        else:
            with_signal(own_redis, signal.SIGCONT)
        deadline = time.monotonic() + 10
        while httpx.get(server.url + "/health/readiness").status_code != 200:
            assert time.monotonic() < deadline, "did not recover"
            time.sleep(0.1)
        again = client.responses.create(model="gpt-test", input="hi", background=True)
        assert wait_done(client, again.id).output_text == LONG_TEXT
        if how == "frozen":
            assert client.responses.retrieve(rid).output_text == LONG_TEXT


def test_keys_never_reach_redis(replay: ReplayServer, own_redis: RedisProc) -> None:
    cfg = parse_config(raw_config(replay, own_redis.url))
    with ServerThread(create_app(cfg)) as server:
        ids = []
        for key in (USER_A, USER_B, MASTER_KEY):
            client = sdk(server, key)
            r = client.responses.create(model="gpt-test", input="hi", background=True, metadata={"who": "test"})
            ids.append((client, r.id))
        for client, rid in ids:
            assert wait_done(client, rid).status == "completed"
    r = redis.Redis.from_url(own_redis.url)
    dump = b""
    for key in r.scan_iter(count=1000):
        dump += key
        kind = r.type(key)
        if kind == b"hash":
            dump += b"".join(k + v for k, v in r.hgetall(key).items())
        elif kind == b"stream":
            dump += b"".join(b"".join(k + v for k, v in fields.items()) for _, fields in r.xrange(key))
        elif kind == b"string":
            dump += r.get(key) or b""
        elif kind == b"list":
            dump += b"".join(r.lrange(key, 0, -1))
    r.close()
    assert b"resp_" in dump and len(dump) > 100  # we did look at the data
    for secret in (USER_A, USER_B, MASTER_KEY, UPSTREAM_KEY):
        assert secret.encode() not in dump, secret


def test_worker_command_runs_jobs(replay: ReplayServer, own_redis: RedisProc, tmp_path: Path) -> None:
    raw = raw_config(replay, own_redis.url, workers=True)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    with worker_command(path) as worker, ServerThread(create_app(load_config(path))) as server:
        client = sdk(server)
        rids = [client.responses.create(model="gpt-test", input="hi", background=True).id for _ in range(3)]
        for rid in rids:
            done = wait_done(client, rid, timeout=20)
            assert done.status == "completed", done
            assert done.output_text == LONG_TEXT
        events = list(client.responses.create(model="gpt-test", input="hi", background=True, stream=True))
        assert events[-1].type == "response.completed"
    text = worker.output
    assert worker.returncode == 0, text
    for secret in (USER_A, USER_B, MASTER_KEY, UPSTREAM_KEY):
        assert secret not in text


def test_worker_needs_redis(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("model_list: []\n")
    proc = subprocess.run([sys.executable, "-m", "polystream.cli", "worker", "--config", str(path)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "Redis" in proc.stderr
