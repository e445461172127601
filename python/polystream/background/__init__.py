"""Background mode for `/v1/responses`: the request runs detached from the HTTP call that made it,
its output goes incrementally to a store (Redis, or memory for one process), and clients poll it.

The HTTP layer (`polystream.server`) talks only to :class:`ResponsesService`; everything below it
(store, producer, workers) lives in this package.

Contract of ResponsesService (implemented in `service.py`)::

    service = ResponsesService(store, models, settings)
        store:    a Store (memory_store.MemoryStore(ttl=…) or redis_store.RedisStore(url, prefix=…, ttl=…))
        models:   polystream.server.config.ModelRouter — `models.resolve(name) -> (model, kwargs)`
                  giving what to pass to polystream.acompletion; raises KeyError for unknown names
        settings: service.BackgroundSettings(ttl, lease, snapshot_interval, flush_bytes,
                  max_flush_delay, workers) — `workers=True`: create() enqueues jobs for
                  `polystream worker` processes (worker.run_worker) instead of running them here

    await service.start() / await service.close()
    await service.ping() -> True, or raises StoreUnavailable;  service.job_counts() -> {status: n}

    # POST /v1/responses
    await service.create(owner, body) -> bytes
        background=True: store + start the producer (an in-process task, or a job for
        `polystream worker` processes); return the queued Response JSON at once.
        Otherwise run in the foreground and return the final Response JSON (cancelling the
        awaiting coroutine — the client left — cancels the response).
        Raises KeyError (unknown model), ValueError (input a chat provider cannot take → 400).
    service.stream(owner, body) -> AsyncIterator[tuple[int, str, bytes]]
        `stream: true` (with or without background): (sequence_number, event name, event JSON).
        Not awaited; the errors create() raises come from the first iteration. Closing it early
        cancels a foreground response; a background one keeps running.

    # GET /v1/responses/{id}            → await service.retrieve(owner, id) -> bytes | None
    # GET /v1/responses/{id}?stream=true&starting_after=N
    #                                   → await service.events(owner, id, after=N)
    #                                     -> AsyncIterator[...] | None  (events with
    #                                     sequence_number > N replayed, then followed live until
    #                                     terminal; None: not found → 404)
    # GET /v1/responses/{id}/poll?cursor=N → await service.poll(owner, id, cursor) -> dict | None
    #     {"id", "status", "cursor": next cursor, "text": text delta since cursor,
    #      "events": [event dicts after cursor], "done": bool}; one short request, never blocks.
    #     The cursor counts events: start at 0, pass back the returned one; "events" are those
    #     with sequence_number >= cursor.
    # POST /v1/responses/{id}/cancel    → await service.cancel(owner, id) -> bytes | None
    # DELETE /v1/responses/{id}         → await service.delete(owner, id) -> bool

    `owner` is an opaque id derived from the caller's key (never the key itself); a response read
    with another owner is indistinguishable from a missing one (None → 404).
    Store outages raise polystream.background.StoreUnavailable (→ 503).

How it is stored and why it is cheap: see `log.py` (records), `store.py` (interface),
`redis_store.py` (keys, scripts) and `producer.py` (when it writes).
"""

from __future__ import annotations

from typing import Any


class StoreUnavailable(Exception):
    """The store (Redis) cannot be reached; the HTTP layer answers 503."""


__all__ = [
    "BackgroundSettings",
    "MemoryStore",
    "RedisStore",
    "ResponsesService",
    "Store",
    "StoreUnavailable",
    "run_worker",
    "serve_worker",
]

_LAZY = {
    "BackgroundSettings": "service",
    "ResponsesService": "service",
    "MemoryStore": "memory_store",
    "RedisStore": "redis_store",  # needs the redis package
    "Store": "store",
    "run_worker": "worker",
    "serve_worker": "worker",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(name)
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
