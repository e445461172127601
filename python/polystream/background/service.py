"""ResponsesService: the contract the HTTP layer uses (see the package docstring).

Reads of a response whose producer runs in this process are served from the producer's view
(no store round trip, no flush delay). A plain poll or retrieve of a response another proxy
produces goes to that proxy (peers.py) when `peers` is set. Other reads rebuild from the store:
one round trip per plain poll/retrieve (metadata + lease + new log entries, pipelined), applied
to a per-process cache of views so an incremental poll costs O(new). A response whose lease
lapsed is turned into `failed` (compare-and-set) by whichever reader notices first.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

from . import StoreUnavailable
from .convert import to_chat
from .log import START, Event, View, dumps, fail_record, loads
from .peers import PeerFailed, PeerLink
from .producer import Producer
from .store import OK, TAKEN, TERMINAL, TERMINAL_POS, Snapshot, Store

__all__ = ["BackgroundSettings", "ResponsesService"]

log = logging.getLogger("polystream.background")

_CACHE_KEEP = 256  # events a cached view keeps for polls that lag a little
_STORE = object()  # a routed read's answer: "read the store instead"
# Where reads of a response still queued go (_peer_for, _routed): the store this time, without a
# watch signal (nothing produces it yet), and a fresh look next time. Never a "node@url".
_QUEUED = "(queued)"


@dataclass
class BackgroundSettings:
    """ttl: seconds every key lives after its last write (None: the store's own setting).
    lease: seconds a producer's lease lasts unrenewed (renewed every lease/3); a response whose
      producer died reads as failed within about this long.
    snapshot_interval: while a reader in another process follows the response, the longest any
      output waits unwritten (that reader's lag is at most this plus its poll interval; output
      is written sooner when no more is expected within it). Otherwise the minimum gap between
      two store writes of one response.
    flush_bytes / max_flush_delay: otherwise a write happens once this much output is waiting,
      or once the oldest unwritten output is this old (what a reader elsewhere may lag before its
      first look; readers in the producer's process see every chunk at once, always).
    watch_ttl: how long one watch signal from a remote reader keeps writes eager.
    workers: create() enqueues jobs for `polystream worker` processes instead of running them here.
    peer_url: where other proxies reach this one to read the responses it produces (peers.py);
      None: the address a create arrived on; "": never route reads here.
    """

    ttl: float | None = None
    lease: float = 10.0
    snapshot_interval: float = 0.03
    flush_bytes: int = 4096
    max_flush_delay: float = 1.0
    watch_ttl: float = 5.0
    workers: bool = False
    peer_url: str | None = None
    cache_size: int = 1024
    tail_block: float = 1.0
    shutdown_grace: float = 2.0

    @property
    def worker_mode(self) -> bool:
        return self.workers


@dataclass
class _Prepared:
    owner: str
    init: dict[str, Any]
    call: tuple[str, list[dict[str, Any]], dict[str, Any]] | None
    background: bool
    store: bool


class _NullStore(Store):
    """For `store: false` foreground responses: every write succeeds, nothing is kept."""

    ttl = 0.0

    async def create(self, *a: Any) -> str: return OK
    async def begin(self, *a: Any) -> tuple[str, str, bytes]: return OK, "", b""
    async def append(self, *a: Any) -> bool: return True
    async def renew(self, *a: Any) -> str: return OK
    async def finish(self, *a: Any) -> str: return OK
    async def cancel(self, *a: Any) -> str: return OK
    async def lapse(self, *a: Any) -> str: return OK
    async def read(self, *a: Any, **k: Any) -> Snapshot | None: return None
    async def tail(self, *a: Any) -> list[tuple[int, bytes]]: return []
    async def delete(self, *a: Any) -> bool: return False


def new_id() -> str:
    """`resp_` + 128 random bits in lowercase base32 (26 characters: the keys, written on every
    flush, stay short)."""
    return "resp_" + base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


def _lapse_record() -> bytes:
    return dumps([fail_record("server_error", "the response's producer stopped (lease expired)", int(time.time()))])


class ResponsesService:
    def __init__(self, store: Store, models: Any, settings: BackgroundSettings | None = None) -> None:
        self.store, self.models = store, models
        self.settings = settings or BackgroundSettings()
        if self.settings.ttl is not None:
            store.ttl = float(self.settings.ttl)
        self._local: dict[str, Producer] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._cache: OrderedDict[str, View] = OrderedDict()
        self._watched: dict[str, float] = {}  # when to send the next watch signal, per response
        # Set by a proxy sharing the store with others: reads routed to the producing proxy.
        self.peers: PeerLink | None = None
        self._peer_of: dict[str, str] = {}  # response → the peer to ask ("": the store)
        self._started = False

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        if not self._started:
            self._started = True
            self.store.on_signal(self._signal)
            await self.store.start()

    async def close(self, drain: float = 0.0) -> None:
        """Stop: wait up to `drain` s for running producers to finish, fail the rest (so clients
        learn at once instead of after the lease), then close the store."""
        if drain > 0 and self._local:
            done = [p.done.wait() for p in self._local.values()]
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*done), drain)
        stopping = [p.shutdown("the server shut down before the response finished") for p in list(self._local.values())]
        if stopping:
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*stopping, return_exceptions=True), self.settings.shutdown_grace)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()
        self._started = False

    async def ping(self) -> bool:
        return await self.store.ping()

    @property
    def running(self) -> int:
        """Responses this process is producing right now."""
        return len(self._local)

    def job_counts(self) -> dict[str, int]:
        """For the metrics gauge: responses this process is producing right now."""
        return {"in_progress": len(self._local)}

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)
        return task

    def _signal(self, kind: str, rid: str) -> None:
        p = self._local.get(rid)
        if p is None:
            return
        if kind == "cancel":
            p.stop_external()
        elif kind == "watch":
            p.watch()

    def _should_watch(self, rid: str) -> bool:
        """Send the watch signal for `rid` now? (at most every watch_ttl/2 per response)"""
        now = time.monotonic()
        if self._watched.get(rid, 0.0) > now:
            return False
        if len(self._watched) > 4 * self.settings.cache_size:
            self._watched = {k: t for k, t in self._watched.items() if t > now}
        self._watched[rid] = now + self.settings.watch_ttl / 2
        return True

    # -- creating -----------------------------------------------------------------------------
    def _prepare(self, owner: str, body: dict[str, Any]) -> _Prepared:
        if not isinstance(body, dict):
            raise ValueError("The request body must be a JSON object.")
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise ValueError("`model` is required.")
        background = bool(body.get("background"))
        stored = body.get("store") is not False or background
        model, kwargs = self.models.resolve(name)  # KeyError: unknown model
        messages, params = to_chat(body)  # ValueError: what a chat provider cannot take
        # With workers, a worker resolves and converts again when it runs the job.
        call = None if background and self.settings.workers else (model, messages, {**kwargs, **params})
        # A worker needs the input to run it; an in-process response only echoes the rest.
        request = body if call is None else {k: v for k, v in body.items() if k != "input"}
        init = {
            "id": new_id(),
            "model": name,
            "created_at": int(time.time()),
            "base": secrets.token_hex(12),  # item ids that do not reveal the response id
            "queued": background,
            "request": request,
        }
        return _Prepared(owner, init, call, background, stored)

    def _producer(self, prep: _Prepared, token: str, store: Store | None = None, begun: bool = False) -> Producer:
        assert prep.call is not None
        view = View(prep.init)
        if begun:
            view.apply([START])
        return Producer(store or self.store, self.settings, view, prep.owner, token, prep.call)

    async def _store_new(self, prep: _Prepared, token: str | None) -> None:
        """Store a new response: queued for a worker (no token), or already begun under `token`.
        Should the store refuse the id (its key tag is in use: ~1 in 10³ with a million live
        responses on Redis), the response gets a fresh one before anyone has seen it."""
        init = prep.init
        for _ in range(8):
            records: list[Any] = [{"i": init}] if token is None else [{"i": init}, START]
            peer = self.peers.me if self.peers is not None and token is not None else None
            got = await self.store.create(init["id"], prep.owner, init["created_at"], dumps(records), token,
                                          self.settings.lease, peer)
            if got != TAKEN:
                return
            init["id"] = new_id()
        raise StoreUnavailable("the store refused eight fresh response ids")

    def _launch(self, p: Producer) -> None:
        """Run a producer that has begun (its response is in_progress under its lease)."""
        if not isinstance(p.store, _NullStore):  # `store: false`: not retrievable
            self._local[p.rid] = p
        self._spawn(self._drive(p))

    async def _drive(self, p: Producer) -> None:
        try:
            await p.run()
        except Exception:  # noqa: BLE001 - a bug must not kill the loop; the lease will lapse
            log.exception("response %s: producer crashed", p.rid)
        finally:
            p.done.set()
            if self._local.get(p.rid) is p:
                del self._local[p.rid]
                if p.result == OK and p.live and p.view.terminal:
                    # Reads here after the end: the final view, and only a metadata check (still
                    # there? whose?) from the store, not the log again.
                    p.view.keep, p.view.pos = _CACHE_KEEP, TERMINAL_POS
                    p.view.trim()
                    self._remember(p.rid, p.view)

    async def _start(self, prep: _Prepared) -> Producer | None:
        """Store the new response and start producing it (here, or via a worker job)."""
        if prep.background and self.settings.workers:
            await self._store_new(prep, None)
            await self.store.enqueue(prep.init["id"])  # type: ignore[attr-defined]
            return None
        token = secrets.token_hex(8)
        if prep.store:
            await self._store_new(prep, token)
        p = self._producer(prep, token, None if prep.store else _NullStore(), begun=True)
        self._launch(p)
        return p

    async def create(self, owner: str, body: dict[str, Any]) -> bytes:
        prep = self._prepare(owner, body)
        p = await self._start(prep)
        if prep.background or p is None:
            return View(prep.init).snapshot_json()  # queued
        try:
            await asyncio.shield(p.done.wait())
        except asyncio.CancelledError:  # the client went away: a synchronous response is cancelled
            self._spawn(p.cancel())
            raise
        if p.live or not prep.store:
            return p.view.snapshot_json()
        view = await self._view(owner, p.rid)  # ended by another process (cancel): its word counts
        return p.view.snapshot_json() if view is None else view.snapshot_json()

    async def stream(self, owner: str, body: dict[str, Any]) -> AsyncIterator[Event]:
        prep = self._prepare(owner, body)
        p = await self._start(prep)
        rid = prep.init["id"]
        if prep.background or p is None:
            async for ev in self._follow(owner, rid, -1, forward=True):
                yield ev  # leaving does not stop a background response
            return
        try:
            async for ev in self._follow(owner, rid, -1, p):
                yield ev
        finally:
            if not p.done.is_set():  # closing a synchronous stream cancels it, as OpenAI does
                self._spawn(p.cancel())

    async def run_job(self, rid: str) -> bool:
        """Worker side: take a queued response and start producing it. False if it is not
        queued (cancelled, taken, gone). StoreUnavailable propagates (retry the job later)."""
        token = secrets.token_hex(8)
        peer = self.peers.me if self.peers is not None else None
        res, owner, first = await self.store.begin(rid, token, self.settings.lease, dumps([START]), peer)
        if res != OK or not first:  # (no request to run: its lease lapses, and it reads as failed)
            return False
        init = loads(first)[0]["i"]
        prep = _Prepared(owner, init, None, True, True)
        try:
            model, kwargs = self.models.resolve(init["model"])
            messages, params = to_chat(init["request"])
            prep.call = (model, messages, {**kwargs, **params})
            p = self._producer(prep, token, begun=True)
        except (KeyError, ValueError) as exc:
            prep.call = ("", [], {})
            p = self._producer(prep, token, begun=True)
            msg = f"model {init['model']!r} is not configured on this worker" if isinstance(exc, KeyError) else str(exc)
            p.final = fail_record("server_error", msg, int(time.time()))
        self._launch(p)
        return True

    # -- reading ------------------------------------------------------------------------------
    def _local_for(self, owner: str, rid: str) -> tuple[bool, Producer | None]:
        """(someone else's, this process's live producer of it)."""
        p = self._local.get(rid)
        if p is None:
            return False, None
        if p.owner != owner:
            return True, None
        return False, p if p.live else None

    async def _snapshot(
        self, owner: str, rid: str, after: int | None, log: bool = True, watch: bool = False
    ) -> Snapshot | None:
        snap = await self.store.read(rid, after, log, watch and self._should_watch(rid))
        if snap is not None and snap.status == "queued":
            self._watched.pop(rid, None)  # no producer yet heard the signal: send it again next time
        if snap is not None and snap.lapsed:
            await self.store.lapse(rid, _lapse_record())
            snap = await self.store.read(rid, after, log)
        if snap is None or snap.owner != owner:
            return None
        return snap

    async def _view(
        self, owner: str, rid: str, cursor: int | None = None, watch: bool = True, queued: bool = False
    ) -> View | None:
        """The response rebuilt from the store, via the cache (one store round trip). With
        `cursor`, the events from it on are retained until `trim()`. `queued`: the owner's
        metadata, just read, says it still waits for a worker, so its log is the one entry a
        cached view already holds: no second round trip."""
        cached = self._cache.get(rid)
        if cached is not None and cursor is not None and cached.since(cursor) is None:
            cached = None  # the poller is further behind than the cache remembers
        if queued and cached is not None and not cached.terminal:
            return cached
        after = cached.pos if cached is not None else None
        live = cached is None or not cached.terminal
        # Ask for eager writes unless reads of it go to the proxy producing it.
        watch = watch and live and not self._peer_of.get(rid)
        snap = await self._snapshot(owner, rid, after, log=live, watch=watch)
        if snap is None:
            self._cache.pop(rid, None)
            return None
        if cached is not None:
            cached.apply_entries(snap.entries)
            view = cached
        else:
            if not snap.entries:
                return None
            view, _ = View.from_entries(snap.entries, keep=None if cursor is not None else _CACHE_KEEP)
            view.keep = _CACHE_KEEP
        self._remember(rid, view)
        return view

    def _remember(self, rid: str, view: View) -> None:
        self._cache[rid] = view
        self._cache.move_to_end(rid)
        while len(self._cache) > self.settings.cache_size:
            self._cache.popitem(last=False)

    async def _peer_for(self, owner: str, rid: str) -> str | None:
        """Where reads of `rid` go: the proxy producing it ("node@url"), "" for the store, None
        if the owner has no such response, _QUEUED while it waits for a worker. Learnt on the
        first look after it started (metadata only), then kept."""
        if self.peers is None:
            return ""
        peer = self._peer_of.get(rid)
        if peer is None:
            snap = await self._snapshot(owner, rid, None, log=False)
            if snap is None:
                return None
            peer = self._note_peer(rid, snap)
        return peer

    def _note_peer(self, rid: str, snap: Snapshot) -> str:
        """Remember from `rid`'s metadata where its reads go (as `_peer_for` answers)."""
        assert self.peers is not None
        peer = snap.peer or ""
        if snap.status == "queued":
            return _QUEUED  # read the store for now, and look again: the worker taking it may serve reads
        if peer == self.peers.me or snap.status in TERMINAL:
            peer = ""  # ours after all, or ended: the store holds all of it
        if len(self._peer_of) >= 4 * self.settings.cache_size:
            self._peer_of.pop(next(iter(self._peer_of)))
        self._peer_of[rid] = peer
        return peer

    def _peer_failed(self, rid: str, why: object) -> None:
        log.info("response %s: its producer's proxy did not answer (%s); reading the store", rid, why)
        self._peer_of[rid] = ""  # from now on, with eager writes asked for

    async def _routed(self, owner: str, rid: str, target: str) -> Any:
        """A read of `rid` answered by the proxy producing it: its body (None: not found), or
        _STORE when it has none or cannot answer (then the store is read, now and from then on),
        or _QUEUED when nothing produces it yet (the store, this once, without a watch signal)."""
        peer = await self._peer_for(owner, rid)
        if peer is _QUEUED:
            # If a worker takes it this instant, a watch signal sent now would make it write
            # eagerly for watch_ttl although the next read goes to it.
            return _QUEUED
        if not peer:
            return _STORE if peer == "" else None
        assert self.peers is not None
        got = await self.peers.get(peer, owner, target)
        if got is not None and got[0] in (200, 404):
            return got[1] if got[0] == 200 else None
        self._peer_failed(rid, "unreachable" if got is None else got[0])
        return _STORE

    async def _elsewhere(
        self, owner: str, rid: str, target: str, forward: bool, cursor: int | None = None
    ) -> View | bytes | None:
        """A plain read of a response this process does not produce: the producing process's
        answer to `target` (bytes; None: not found) when it is routed there (`forward`), else the
        view rebuilt from the store (None: not found)."""
        routed: Any = await self._routed(owner, rid, target) if forward else _STORE
        if routed is not _STORE and routed is not _QUEUED:
            return routed  # type: ignore[no-any-return]
        return await self._view(owner, rid, cursor, watch=routed is _STORE, queued=routed is _QUEUED)

    async def retrieve(self, owner: str, rid: str, forward: bool = True) -> bytes | None:
        """The Response JSON. `forward`: may route to the producing proxy (not for a read that
        was itself routed here)."""
        foreign, p = self._local_for(owner, rid)
        if foreign:
            return None
        if p is not None:
            p.seal()
            return p.view.snapshot_json()
        got = await self._elsewhere(owner, rid, f"/v1/responses/{rid}", forward)
        return got.snapshot_json() if isinstance(got, View) else got

    async def poll(self, owner: str, rid: str, cursor: int = 0, forward: bool = True) -> dict[str, Any] | bytes | None:
        """{"id", "status", "cursor", "text", "events", "done"}: the events with
        sequence_number >= cursor (start at 0, then pass back the returned cursor), the
        output_text they add, the status now, and whether it is terminal. Never blocks.
        As JSON bytes when the producing proxy answered it (`forward`: see retrieve)."""
        cursor = max(0, int(cursor))
        foreign, p = self._local_for(owner, rid)
        if foreign:
            return None
        if p is not None:
            p.seal()
            view = p.view
        else:
            got = await self._elsewhere(owner, rid, f"/v1/responses/{rid}/poll?cursor={cursor}", forward, cursor)
            if not isinstance(got, View):
                return got
            view = got
        events = view.since(cursor) or []
        if p is None:
            view.trim()
        out = [json.loads(e[2]) for e in events]
        text = "".join(e["delta"] for e in out if e["type"] == "response.output_text.delta")
        return {"id": rid, "status": view.status, "cursor": view.next_seq, "text": text, "events": out,
                "done": view.terminal}

    async def events(self, owner: str, rid: str, after: int = -1, forward: bool = True) -> AsyncIterator[Event] | None:
        """`await service.events(...)`: None if not found (or not the owner's), else an async
        iterator of the events with sequence_number > after, replayed then followed live to the
        end. `forward`: as in retrieve."""
        foreign, p = self._local_for(owner, rid)
        if foreign:
            return None
        if p is None:
            snap = await self._snapshot(owner, rid, None, log=False)
            if snap is None:
                return None
            if forward and self.peers is not None and rid not in self._peer_of:
                self._note_peer(rid, snap)  # so _follow needs no second look
        return self._follow(owner, rid, after, p, forward)

    async def _follow(
        self, owner: str, rid: str, after: int, p: Producer | None = None, forward: bool = False
    ) -> AsyncIterator[Event]:
        nxt = after + 1
        if p is None:
            p = self._local_for(owner, rid)[1]
        if p is not None:
            async for ev in p.follow(nxt - 1):
                yield ev
                nxt = ev[0] + 1
            if p.view.terminal and not p.detached:
                return
        # Relayed from the process producing it, as that process streams it. While it is queued,
        # from the store, and again relayed once a worker has it; should a relay break off, the
        # store takes over from the last event relayed.
        relay = forward and p is None and self.peers is not None
        while True:
            if relay:
                peer = await self._peer_for(owner, rid)
                relay = peer is _QUEUED  # look again when it starts
                if peer and not relay:
                    assert self.peers is not None
                    idle = max(10.0, 3 * self.settings.lease)
                    target = f"/v1/responses/{rid}?stream=true&starting_after={nxt - 1}"
                    try:
                        async with contextlib.aclosing(self.peers.events(peer, owner, target, idle)) as relayed:
                            async for ev in relayed:
                                yield ev
                                nxt = ev[0] + 1
                        return
                    except PeerFailed as exc:
                        self._peer_failed(rid, exc)
            # From the store: replay, then tail the log until the terminal entry.
            snap = await self._snapshot(owner, rid, None)
            if snap is None or not snap.entries:
                return
            view, evs = View.from_entries(snap.entries, keep=0)
            while True:
                for ev in evs:
                    if ev[0] >= nxt:
                        yield ev
                        nxt = ev[0] + 1
                if view.terminal:
                    return
                if view.status != "queued":
                    if relay:
                        break  # a worker took it: where are its reads served?
                    if self._should_watch(rid):  # (no watch while queued: nobody would hear it)
                        await self.store.watch(rid)
                assert view.pos is not None
                entries = await self.store.tail(rid, view.pos, self.settings.tail_block)
                if not entries:  # quiet: is the producer still alive? is the response still there?
                    snap = await self._snapshot(owner, rid, view.pos)
                    if snap is None:
                        return
                    entries = snap.entries
                evs = view.apply_entries(entries)

    # -- cancel / delete ----------------------------------------------------------------------
    async def cancel(self, owner: str, rid: str) -> bytes | None:
        foreign, p = self._local_for(owner, rid)
        if foreign:
            return None
        if p is not None:
            await p.cancel()
            if p.live and p.view.terminal:
                return p.view.snapshot_json()
        snap = await self._snapshot(owner, rid, None, log=False)
        if snap is None:
            return None
        if snap.status not in TERMINAL:
            await self.store.cancel(rid, dumps([{"e": "cancel", "now": int(time.time())}]))
        view = await self._view(owner, rid)
        return None if view is None else view.snapshot_json()

    async def delete(self, owner: str, rid: str) -> bool:
        foreign, p = self._local_for(owner, rid)
        if foreign or await self._snapshot(owner, rid, None, log=False) is None:
            return False
        if p is not None:
            await p.cancel()
        self._cache.pop(rid, None)
        return await self.store.delete(rid)
