"""Worker processes (`run_worker`) taking jobs from Redis: the proxy only stores and enqueues; a
separate process produces; cancel crosses processes; a killed worker's response fails within the
lease with its text so far."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
from openai.types.responses import Response

from polystream.background.service import BackgroundSettings, ResponsesService
from polystream.testing import ReplayServer
from tests.conftest_redis import redis_url  # noqa: F401
from tests.test_background_service import OWNER, TEXT, UPSTREAMS, Router, collect, strict, wait_done, wait_text

pytest.importorskip("redis")
from polystream.background.redis_store import RedisStore  # noqa: E402

LEASE = 1.5


@pytest.fixture(scope="module")
def upstream() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        for name, reply in UPSTREAMS.items():
            server.add(f"/{name}/v1/chat/completions", reply)
        yield server


def start_worker(redis: str, upstream: str, prefix: str) -> subprocess.Popen[bytes]:
    code = textwrap.dedent(f"""
        from polystream.background.service import BackgroundSettings
        from polystream.background.worker import run_worker

        class Router:
            def resolve(self, name):
                return "gpt-4o", {{"api_base": "{upstream}/" + name + "/v1", "api_key": "sk-test"}}

        run_worker("{redis}", Router(), BackgroundSettings(lease={LEASE}), prefix="{prefix}", concurrency=8, drain=0.5)
    """)
    # The child imports polystream exactly as this interpreter does (the installed package, whose
    # compiled _core the source tree does not have): no PYTHONPATH games.
    return subprocess.Popen([sys.executable, "-c", code])


def run(coro: Any, timeout: float = 30) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def proxy(url: str, server: ReplayServer, prefix: str) -> ResponsesService:
    svc = ResponsesService(RedisStore(url, prefix=prefix, ttl=60), Router(server.url),
                           BackgroundSettings(workers=True, lease=LEASE))
    await svc.start()
    return svc


def test_worker_runs_jobs_and_cancel_crosses_processes(redis_url: str, upstream: ReplayServer) -> None:  # noqa: F811
    worker = start_worker(redis_url, upstream.url, "w1")

    async def main() -> None:
        svc = await proxy(redis_url, upstream, "w1")
        try:
            q = strict(await svc.create(OWNER, {"model": "fast", "input": "hi", "background": True}))
            assert q.status == "queued"
            assert svc.running == 0  # nothing runs in the proxy
            done = strict(await wait_done(svc, q.id, timeout=20))
            assert done.status == "completed" and done.output_text == TEXT
            # background + stream in worker mode: followed through the store
            live = await collect(svc.stream(OWNER, {"model": "tools", "input": "hi", "background": True, "stream": True}))
            rid = json.loads(live[0][2])["response"]["id"]
            assert live[-1][1] == "response.completed"
            assert await collect(await svc.events(OWNER, rid, after=-1)) == live
            # cancel from the proxy stops the worker's upstream call (pub/sub to the worker)
            rid = strict(await svc.create(OWNER, {"model": "stall", "input": "hi", "background": True})).id
            await wait_text(svc, rid, 5)
            t0 = time.monotonic()
            assert strict(await svc.cancel(OWNER, rid)).status == "cancelled"
            assert await upstream.wait_for_disconnect_async(timeout=3.0, since=t0) < 1.0
            await asyncio.sleep(0.3)
            assert strict(await svc.retrieve(OWNER, rid)).status == "cancelled"
        finally:
            await svc.close()

    try:
        run(main(), timeout=40)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(10) == 0  # a clean, draining shutdown


def test_killed_worker_fails_within_the_lease_keeping_its_text(redis_url: str, upstream: ReplayServer) -> None:  # noqa: F811
    worker = start_worker(redis_url, upstream.url, "w2")

    async def main() -> None:
        svc = await proxy(redis_url, upstream, "w2")
        try:
            rid = strict(await svc.create(OWNER, {"model": "crawl", "input": "hi", "background": True})).id
            seen = await wait_text(svc, rid, 40, timeout=20)
            worker.kill()  # SIGKILL: no cleanup, the lease just stops being renewed
            killed = time.monotonic()
            worker.wait(5)
            r = Response.model_validate(await wait_done(svc, rid, timeout=LEASE + 5), strict=True)
            assert time.monotonic() - killed <= LEASE + 1.0
            assert r.status == "failed" and r.error is not None and r.error.code == "server_error"
            assert r.output_text.startswith(seen) and TEXT.startswith(r.output_text) and r.output_text != TEXT
            assert strict(await svc.retrieve(OWNER, rid)).status == "failed"  # and it stays so
        finally:
            await svc.close()

    try:
        run(main(), timeout=40)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(5)


def test_a_job_whose_worker_died_before_starting_it_is_claimed(redis_url: str, upstream: ReplayServer) -> None:  # noqa: F811
    async def main() -> None:
        svc = await proxy(redis_url, upstream, "w3")
        store = svc.store
        assert isinstance(store, RedisStore)
        try:
            await store.ensure_group()
            rid = strict(await svc.create(OWNER, {"model": "fast", "input": "hi", "background": True})).id
            # A worker reads the job and dies before taking the response: the job stays pending.
            assert [r for _, r in await store.take_jobs("ghost", 10, 0.1)] == [rid]
        finally:
            await svc.close()
        worker = start_worker(redis_url, upstream.url, "w3")  # claims jobs idle for over a lease
        try:
            svc = await proxy(redis_url, upstream, "w3")
            try:
                assert strict(await wait_done(svc, rid, timeout=LEASE + 10)).output_text == TEXT
            finally:
                await svc.close()
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(10)

    run(main(), timeout=40)


def test_an_idle_worker_waits_for_jobs_in_long_reads_and_stops_at_once(redis_url: str, upstream: ReplayServer) -> None:  # noqa: F811
    """An idle worker blocks for jobs for a whole claim period (here 20 s: few commands a
    minute reach Redis), yet a stop cancels that wait rather than sitting it out, and a job
    queued during the wait starts at once."""
    from polystream.background.worker import serve_worker

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(serve_worker(redis_url, Router(upstream.url), BackgroundSettings(lease=LEASE),
                                                prefix="w4", claim_idle=20, drain=0.5, stop=stop))
        svc = await proxy(redis_url, upstream, "w4")
        try:
            await asyncio.sleep(1.0)  # the worker is now in its long wait
            t0 = time.monotonic()
            rid = strict(await svc.create(OWNER, {"model": "fast", "input": "hi", "background": True})).id
            assert strict(await wait_done(svc, rid, timeout=10)).output_text == TEXT
            assert time.monotonic() - t0 < 5  # not held until the wait's end
            await asyncio.sleep(0.5)
            t0 = time.monotonic()
            stop.set()
            await asyncio.wait_for(task, 5)
            assert time.monotonic() - t0 < 2, "the worker sat out its blocking wait"
        finally:
            task.cancel()
            await svc.close()

    run(main(), timeout=40)
