"""`polystream worker`: run background responses in separate processes, fed by a Redis Stream.

Proxies started with `BackgroundSettings(workers=True)` store each new background response as
`queued` and add a job (the response id) to `{prefix}:jobs`. Any number of workers read jobs
through the consumer group `{prefix}:workers` (XREADGROUP), take the response (the same
compare-and-set as in-process producers: queued → in_progress under a lease), acknowledge the job
(XACK + XDEL) and produce it. A worker that dies between reading a job and taking the response
leaves the job pending; another worker claims it `claim_idle` to twice that later (XAUTOCLAIM,
once per `claim_idle`). One that dies later leaves a lapsed lease: the response reads as failed,
with its text so far.

`reads` serves the reads proxies route to the producing process while the worker runs
(`polystream worker` passes server/peer_reads.py's), so that pollers elsewhere are answered from
memory rather than from Redis.

    from polystream.background.worker import run_worker
    run_worker("redis://127.0.0.1:6379/0", config.models, BackgroundSettings(lease=10))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any, TypeVar

from . import StoreUnavailable
from .redis_store import RedisStore
from .service import BackgroundSettings, ResponsesService

__all__ = ["run_worker", "serve_worker"]

log = logging.getLogger("polystream.worker")
T = TypeVar("T")


async def serve_worker(
    redis_url: str,
    models: Any,
    settings: BackgroundSettings | None = None,
    *,
    prefix: str | None = None,
    concurrency: int = 256,
    name: str | None = None,
    claim_idle: float | None = None,
    drain: float = 30.0,
    stop: asyncio.Event | None = None,
    reads: Callable[[ResponsesService], AbstractAsyncContextManager[Any]] | None = None,
) -> None:
    """Take and run jobs until `stop` is set (or the task is cancelled); then wait up to `drain`
    seconds for running responses to finish and fail the rest (so their clients know at once).

    redis_url, prefix: the Redis (and key prefix) the proxies use. models: a ModelRouter
    (`resolve(name) -> (model, kwargs)`), normally the proxy's config. settings: lease, ttl, flush
    settings (its `workers` flag is ignored). concurrency: responses produced at once. name: this
    consumer's name in the group (default host-pid-random). claim_idle: seconds before a job
    read by a vanished worker is claimed (default: the lease). reads: serves routed reads of
    the service's responses around the whole run, drain included (it sets `service.peers`).
    """
    settings = replace(settings or BackgroundSettings(), workers=False)
    claim_idle = settings.lease if claim_idle is None else claim_idle
    # An idle worker waits for jobs in one blocking read per claim period (not one a second):
    # Redis then sees ~25 bytes a second from it. Stopping cancels the wait.
    store = RedisStore(redis_url, prefix=prefix, ttl=settings.ttl or 3600, block=_claim_every(claim_idle))
    service = ResponsesService(store, models, settings)
    consumer = name or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    stop = stop or asyncio.Event()
    await service.start()
    async with contextlib.AsyncExitStack() as around:
        try:
            if reads is not None:
                await around.enter_async_context(reads(service))
            log.info("worker %s: taking jobs from %s", consumer, store.jobs_key)
            await _take_jobs(service, store, consumer, concurrency, claim_idle, stop)
        finally:
            await service.close(drain=drain)


def _claim_every(claim_idle: float) -> float:
    # A job pending longer than claim_idle is claimed on the next look: within 2 × claim_idle of
    # its reader's death. Reads that find nothing cost ~250 bytes, so look no more often.
    return max(0.5, claim_idle)


async def _take_jobs(service: ResponsesService, store: RedisStore, consumer: str, concurrency: int,
                     claim_idle: float, stop: asyncio.Event) -> None:
    next_claim = 0.0
    group_ready = False
    while not stop.is_set():
        free = concurrency - service.running
        if free <= 0:
            await asyncio.sleep(0.05)
            continue
        try:
            if not group_ready:
                await store.ensure_group()
                group_ready = True
            jobs: list[tuple[bytes, str]] = []
            if time.monotonic() >= next_claim:
                jobs = await store.claim_jobs(consumer, claim_idle, free)
                next_claim = time.monotonic() + _claim_every(claim_idle)
            if not jobs:
                wait = max(0.05, next_claim - time.monotonic())
                got = await _unless(stop, store.take_jobs(consumer, free, block=wait))
                if got is None:
                    return  # stopped while waiting (a job read just then stays pending: claimed later)
                jobs = got
            for job_id, rid in jobs:
                await _take(service, store, job_id, rid)
        except StoreUnavailable as exc:
            log.warning("worker %s: %s; retrying", consumer, exc)
            await asyncio.sleep(1.0)


async def _unless(stop: asyncio.Event, wait: Coroutine[Any, Any, T]) -> T | None:
    """`await wait`, or None (and `wait` cancelled) once `stop` is set."""
    task = asyncio.ensure_future(wait)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()  # redis-py drops a connection whose command was cancelled
            with contextlib.suppress(asyncio.CancelledError, StoreUnavailable):
                await task
    return None if task.cancelled() else task.result()


async def _take(service: ResponsesService, store: RedisStore, job_id: bytes, rid: str) -> None:
    try:
        started = await service.run_job(rid)
    except StoreUnavailable:
        return  # left pending: claimed again later
    await store.ack_job(job_id)
    log.debug("job %s: %s", rid, "started" if started else "skipped (not queued)")


def run_worker(
    redis_url: str,
    models: Any,
    settings: BackgroundSettings | None = None,
    **options: Any,
) -> None:
    """Blocking `serve_worker` for a CLI: runs until SIGTERM/SIGINT, then drains (see there)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        await serve_worker(redis_url, models, settings, stop=stop, **options)

    asyncio.run(main())
