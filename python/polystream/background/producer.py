"""The producer: runs one response's upstream call, detached from any HTTP request, and writes it
to the store.

Three tasks per response:
- the pump reads chunks from `acompletion` into `Pending` (O(delta) per chunk, no I/O);
- the flusher seals pending chunks into records and appends them to the log, one command per
  write. When to write is the bytes-versus-lag trade: every command costs ~50 bytes of framing
  (command, key, id, field) however little text it carries, so writing every 4-byte token would
  cost ~14 bytes per output byte. Writes are *lazy* by default — once `flush_bytes` are waiting or
  the oldest unwritten output is `max_flush_delay` old, plus the first output at once — which is
  ~1.2 bytes per output byte at any token rate; readers in this process are unaffected (they read
  the view). When a reader in another process follows the response it sends a watch signal, and
  for `watch_ttl` seconds writes are *eager*: a write once the oldest unwritten output is
  `snapshot_interval` old. That deadline, not a fixed cadence, bounds the remote reader's lag
  (it is `snapshot_interval` plus its own poll interval at worst) with as few writes as that
  allows: one per `snapshot_interval` + the gap to the next token, each carrying every token that
  came in meanwhile. The terminal record goes in the same compare-and-set that sets the status;
- the renewer extends the lease every lease/3 (one PEXPIRE) and learns of cancels it missed.

The producer also keeps a `View` of what it sealed: readers in this process (polls, retrieves,
streams) are served from it, with no store round trip and no flush delay. Sealing is what fixes
record boundaries, so the local view and any later rebuild from the store agree event for event.

Stopping: a local cancel seals, stops the pump (closing the upstream connection) and writes the
cancel itself; a cancel from another process (pub/sub, or a failed renew/append) stops the pump
and leaves the store as that process wrote it (`detached`: local readers go back to the store).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from .. import errors
from ..client import acompletion
from . import StoreUnavailable
from .log import START, Event, Pending, View, dumps, fail_record, finish_status, text_run_to_split
from .store import OK, Store

__all__ = ["Producer", "error_record"]

log = logging.getLogger("polystream.background")

_CODES: list[tuple[type[BaseException], str]] = [
    (errors.RateLimitError, "rate_limit_exceeded"),
    (errors.ContextWindowExceededError, "invalid_prompt"),
    (errors.BadRequestError, "invalid_prompt"),
]


def error_record(exc: BaseException, now: int, secrets: tuple[str, ...] = ()) -> dict[str, Any]:
    """The terminal record for an upstream failure: an OpenAI-enum code and a short message (the
    provider's words, with the call's key masked should a provider echo it)."""
    code = next((c for cls, c in _CODES if isinstance(exc, cls)), "server_error")
    if isinstance(exc, errors.PolystreamError):
        message = exc.message or type(exc).__name__
    else:
        message = f"internal error ({type(exc).__name__})"
    for secret in secrets:
        if secret and len(secret) >= 8:
            message = message.replace(secret, "***")
    return fail_record(code, message[:500], now)


class Producer:
    """One running response. `begin()` takes it (queued → in_progress), then `run()` to the end."""

    def __init__(
        self,
        store: Store,
        settings: Any,
        view: View,
        owner: str,
        token: str,
        call: tuple[str, list[dict[str, Any]], dict[str, Any]],
    ) -> None:
        self.store, self.settings, self.view = store, settings, view
        self.rid: str = view.init["id"]
        self.owner, self.token, self.call = owner, token, call
        self.pending = Pending(logprobs=bool(call[2].get("logprobs")))  # asked of the provider
        self.unflushed: list[Any] = []
        self.unflushed_bytes = 0
        self.inflight: tuple[int, bytes] | None = None  # a batch whose write may or may not have landed
        self.next_pos = 3  # 1 = the request, 2 = the start marker
        self.final: dict[str, Any] | None = None  # the terminal record, once decided
        self.result: str | None = None  # what the terminal write returned
        self.detached = False  # the store holds a terminal we did not write; the view is stale
        self.listeners = 0
        self.since = 0.0  # when the oldest unwritten delta arrived (0: none)
        self.last_chunk = 0.0  # when the last upstream chunk arrived
        self.gap = 0.0  # the usual time between upstream chunks (moving average)
        self.last_write = 0.0
        self.wrote_output = False
        self.watched_until = 0.0  # eager writes until then (a reader elsewhere follows us)
        self.last_ok = time.monotonic()  # last successful store contact
        self._changed = asyncio.Event()
        self._kick = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._pump_stopped = False
        self.done = asyncio.Event()

    # -- lifecycle ----------------------------------------------------------------------------
    async def run(self) -> None:
        self.last_write = time.monotonic() - self.settings.snapshot_interval
        if self.final is None and not self.detached:  # not ended before it started
            self._pump = asyncio.create_task(self._pump_chunks(), name=f"pump {self.rid}")
        renewer = asyncio.create_task(self._renew(), name=f"lease {self.rid}")
        try:
            await self._flusher()
        finally:
            renewer.cancel()
            self._stop_pump()
            tasks = [renewer] + ([self._pump] if self._pump is not None else [])
            with contextlib.suppress(BaseException):
                await asyncio.gather(*tasks, return_exceptions=True)
            self.done.set()
            self._notify()

    async def cancel(self, timeout: float = 5.0) -> bool:
        """Cancel from this process: stop the upstream call (at once) and write `cancelled` (with
        everything sealed so far). True if this made the response cancelled. StoreUnavailable
        if the store cannot record it within `timeout` (the producer keeps trying until its lease
        would have lapsed)."""
        self._decide({"e": "cancel", "now": int(time.time())})
        self._stop_pump()
        try:
            await asyncio.wait_for(asyncio.shield(self.done.wait()), timeout)
        except asyncio.TimeoutError:
            raise StoreUnavailable("the store did not record the cancel in time") from None
        return self.result == OK and (self.final or {}).get("e") == "cancel"

    async def shutdown(self, message: str) -> None:
        """The process is stopping: fail the response now rather than after the lease."""
        self._decide(fail_record("server_error", message, int(time.time())))
        self._stop_pump()
        await self.done.wait()

    def watch(self) -> None:
        """A reader in another process follows this response: write eagerly for a while."""
        self.watched_until = time.monotonic() + self.settings.watch_ttl
        self._kick.set()

    def stop_external(self) -> None:
        """Another process closed the response (cancel, delete, lease takeover): stop, write nothing."""
        if self.done.is_set() or self.detached or self.result == OK:
            return
        self.detached = True
        self._stop_pump()
        self._kick.set()
        self._notify()

    def _stop_pump(self) -> None:
        """Cancel the pump once: cancelling again would interrupt its closing of the upstream."""
        if self._pump is not None and not self._pump_stopped:
            self._pump_stopped = True
            self._pump.cancel()

    # -- the pump -----------------------------------------------------------------------------
    async def _pump_chunks(self) -> None:
        model, messages, kwargs = self.call
        stream = None
        try:
            stream = await acompletion(model, messages, stream=True, **kwargs)
            pending, kick = self.pending, self._kick
            limit, deadline = self.settings.flush_bytes, self.settings.snapshot_interval
            async for chunk in stream:
                now = time.monotonic()
                if self.last_chunk:
                    self.gap += (now - self.last_chunk - self.gap) * 0.25
                self.last_chunk = now
                pending.add(chunk)
                if self.listeners:  # someone watches live: one record per chunk
                    self.seal()
                if not self.since:
                    if pending or self.unflushed:  # the oldest unwritten output: the flush deadline
                        self.since = now
                        kick.set()
                elif pending.nbytes + self.unflushed_bytes >= limit:
                    kick.set()
                elif now < self.watched_until and now + self.gap > self.since + 1.1 * deadline:
                    kick.set()  # the next chunk should come after this write is due: write now
            final = {"e": "finish", "now": int(time.time())}
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure ends the response as failed
            log.info("response %s: upstream failed: %s", self.rid, type(exc).__name__)
            keys = tuple(str(kwargs[k]) for k in ("api_key",) if kwargs.get(k))
            final = error_record(exc, int(time.time()), keys)
        finally:
            if stream is not None:  # close the upstream connection; a second cancel must not cut this short
                with contextlib.suppress(Exception):
                    await asyncio.shield(_aclose(stream))
        self._decide(final)

    def _decide(self, record: dict[str, Any]) -> None:
        if self.final is None:
            self.final = record
        self._kick.set()

    # -- sealing and the local view -----------------------------------------------------------
    def seal(self) -> None:
        """Turn pending chunks into records, apply them to the view, wake local readers."""
        if self.detached or not self.pending:
            return
        self.unflushed_bytes += self.pending.nbytes
        records = self.pending.seal()
        self.unflushed += records
        self._apply(records)

    def _apply(self, records: list[Any]) -> None:
        if self.view.apply(records):
            self._notify()

    def _notify(self) -> None:
        ev, self._changed = self._changed, asyncio.Event()
        ev.set()

    @property
    def live(self) -> bool:
        """Local readers may use the view (it is authoritative)."""
        return not self.detached

    async def follow(self, after: int) -> AsyncIterator[Event]:
        """Events with sequence_number > after, live, until terminal. Ends early (without the
        terminal) if the producer is detached: the caller continues from the store."""
        self.listeners += 1
        self.seal()
        nxt = after + 1
        try:
            while True:
                changed = self._changed
                events = self.view.since(nxt) or []
                if events:
                    for ev in events:
                        yield ev
                        nxt = ev[0] + 1
                    continue  # more may have come while the consumer held an event
                if self.view.terminal or self.detached or self.done.is_set():
                    return
                await changed.wait()
        finally:
            self.listeners -= 1

    # -- writing ------------------------------------------------------------------------------
    async def _flusher(self) -> None:
        s = self.settings
        while not self.detached:
            if self.final is None:
                await self._due()
                if self.detached:
                    return
            try:
                if self.final is not None:
                    await self._write_final()
                    return
                await self._flush()
                self.last_ok = time.monotonic()
            except StoreUnavailable:
                if time.monotonic() - self.last_ok > s.lease:
                    log.warning("response %s: store unreachable longer than the lease; stopping", self.rid)
                    self.stop_external()
                    return
                await asyncio.sleep(min(0.5, s.lease / 4))

    async def _due(self) -> None:
        """Wait until a write is due (or the response ends)."""
        s = self.settings
        while self.final is None and not self.detached:
            timeout = None
            if self.pending or self.unflushed or self.inflight:
                now = time.monotonic()
                if (
                    not self.wrote_output  # the first output: readers elsewhere see a start at once
                    or self.inflight is not None  # a retry
                    or self.pending.nbytes + self.unflushed_bytes >= s.flush_bytes
                ):
                    due = self.last_write + s.snapshot_interval
                elif now < self.watched_until:  # followed from elsewhere: no output waits longer
                    due = (self.since or now) + s.snapshot_interval
                    # Waiting would gather nothing more: the next chunk should come after `due`
                    # (by a margin: one expected about then may still make it).
                    if self.last_chunk + self.gap > due + 0.1 * s.snapshot_interval:
                        due = now
                else:
                    due = max(self.last_write + s.snapshot_interval, (self.since or now) + s.max_flush_delay)
                if now >= due:
                    return
                timeout = due - now
            self._kick.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._kick.wait(), timeout)

    async def _flush(self) -> None:
        if self.inflight is None:
            self.seal()
            if not self.unflushed:
                return
            self.inflight = (self.next_pos, dumps(self.unflushed))
            self.unflushed, self.unflushed_bytes = [], 0
            self.since = 0.0
        pos, payload = self.inflight
        self.last_write = time.monotonic()
        ok = await self.store.append(self.rid, pos, payload)
        self.inflight = None
        self.next_pos += 1
        self.wrote_output = True
        if not ok:  # the log is closed: someone else ended the response
            self.stop_external()

    async def _write_final(self) -> None:
        final = self.final
        assert final is not None
        if self.inflight is not None:  # settle the ambiguous batch first, never write it twice
            await self._flush()
            if self.detached:
                return
        self.seal()
        if k := text_run_to_split(self.unflushed):  # written compactly first (see text_run_to_split)
            # As an in-flight batch, so that a retry after a store error settles it, then goes on.
            self.inflight = (self.next_pos, dumps(self.unflushed[:k]))
            del self.unflushed[:k]
            await self._flush()
            if self.detached:
                return
        records = self.unflushed + [final]
        status = _status_of(final, self.view)
        self.result = await self.store.finish(self.rid, self.token, status, dumps(records))
        self.unflushed, self.unflushed_bytes = [], 0
        if self.result == OK:
            self._apply([final])
        else:
            self.stop_external()

    async def _renew(self) -> None:
        s = self.settings
        touch_every = max(s.lease, self.store.ttl / 3)  # key TTLs slide with the lease, rarely
        next_touch = time.monotonic() + touch_every
        while True:
            await asyncio.sleep(s.lease / 3)
            touch = time.monotonic() >= next_touch
            try:
                res = await self.store.renew(self.rid, self.token, s.lease, touch)
            except StoreUnavailable:
                if time.monotonic() - self.last_ok > s.lease:
                    self.stop_external()
                    return
                continue
            self.last_ok = time.monotonic()
            if touch:
                next_touch = self.last_ok + touch_every
            if res != OK and self.final is None:
                self.stop_external()
                return


async def _aclose(stream: Any) -> None:
    with contextlib.suppress(Exception):
        await stream.aclose()


def _status_of(final: dict[str, Any], view: View) -> str:
    kind = final["e"]
    if kind == "finish":
        return finish_status(view.builder.finish_reason)
    return {"cancel": "cancelled", "incomplete": "incomplete"}.get(kind, "failed")
