"""MemoryStore: the embedded default, for one process (no Redis). Same semantics as RedisStore:
write-once terminal states, leases on a monotonic clock, TTL from the last write."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .store import ALIVE, GONE, OK, TAKEN, TERMINAL, TERMINAL_POS, Snapshot, Store

__all__ = ["MemoryStore"]


@dataclass
class _Resp:
    owner: str
    created_at: int
    status: str = "queued"
    leased: bool = False
    token: str | None = None
    lease_until: float = 0.0
    expires: float = 0.0
    entries: list[tuple[int, bytes]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def lease_alive(self, now: float) -> bool:
        return self.token is not None and now < self.lease_until

    def push(self, pos: int, payload: bytes) -> None:
        self.entries.append((pos, payload))
        ev, self.changed = self.changed, asyncio.Event()
        ev.set()


class MemoryStore(Store):
    shared = False  # one process's memory

    def __init__(self, ttl: float = 3600, **_ignored: object) -> None:
        self.ttl = float(ttl)
        self._data: dict[str, _Resp] = {}
        self._callbacks: list[Callable[[str, str], None]] = []
        self._next_sweep = 0.0

    def on_signal(self, callback: Callable[[str, str], None]) -> None:
        self._callbacks.append(callback)

    def _signal(self, rid: str) -> None:
        for cb in self._callbacks:
            cb("cancel", rid)

    def _get(self, rid: str) -> _Resp | None:
        r = self._data.get(rid)
        if r is not None and time.monotonic() >= r.expires:
            del self._data[rid]
            return None
        return r

    def _touch(self, r: _Resp) -> None:
        r.expires = time.monotonic() + self.ttl

    def _sweep(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + min(60.0, self.ttl)
        for rid in [k for k, r in self._data.items() if now >= r.expires]:
            del self._data[rid]

    async def create(self, rid: str, owner: str, created_at: int, init: bytes, token: str | None, lease: float,
                     peer: str | None = None) -> str:
        # `peer` is not kept: no other process reads this store.
        self._sweep()
        if self._get(rid) is not None:  # a retry (ids are random: nobody else has this one)
            return OK
        r = _Resp(owner, created_at, "queued" if token is None else "in_progress", leased=token is not None, token=token)
        r.lease_until = time.monotonic() + lease
        r.push(1, init)
        self._touch(r)
        self._data[rid] = r
        return OK

    async def begin(self, rid: str, token: str, lease: float, start: bytes,
                    peer: str | None = None) -> tuple[str, str, bytes]:
        r = self._open(rid)
        if isinstance(r, str):
            return r, "", b""
        now = time.monotonic()
        if r.status == "in_progress" and r.token == token:
            return OK, r.owner, r.entries[0][1]  # a retry (as RedisStore sees it)
        if r.status != "queued" or (r.lease_alive(now) and r.token != token):
            return TAKEN, "", b""
        r.status, r.leased, r.token, r.lease_until = "in_progress", True, token, now + lease
        r.push(2, start)
        self._touch(r)
        return OK, r.owner, r.entries[0][1]

    async def append(self, rid: str, pos: int, payload: bytes) -> bool:
        r = self._get(rid)
        if r is None or r.status in TERMINAL:
            return False
        if r.entries[-1][0] >= pos:  # a retry of a write that landed (as RedisStore sees it)
            return r.entries[-1][0] == pos
        r.push(pos, payload)
        return True

    async def renew(self, rid: str, token: str, lease: float, touch: bool = False) -> str:
        r = self._open(rid)
        if isinstance(r, str):
            return r
        now = time.monotonic()
        if r.token != token and r.lease_alive(now):
            return TAKEN
        r.token, r.lease_until = token, now + lease
        self._touch(r)
        return OK

    def _open(self, rid: str) -> _Resp | str:
        """The response if it is still open, else what a state change answers (as the Redis
        scripts do): GONE, or the terminal status it already has."""
        r = self._get(rid)
        if r is None:
            return GONE
        return r.status if r.status in TERMINAL else r

    def _close(self, r: _Resp, status: str, payload: bytes) -> None:
        r.status, r.token = status, None
        r.push(TERMINAL_POS, payload)
        self._touch(r)

    async def finish(self, rid: str, token: str, status: str, payload: bytes) -> str:
        r = self._open(rid)
        if isinstance(r, str):
            return r
        if r.token != token and r.lease_alive(time.monotonic()):
            return TAKEN
        self._close(r, status, payload)
        return OK

    async def cancel(self, rid: str, payload: bytes) -> str:
        r = self._open(rid)
        if isinstance(r, str):
            return r
        self._close(r, "cancelled", payload)
        self._signal(rid)
        return OK

    async def lapse(self, rid: str, payload: bytes) -> str:
        r = self._get(rid)
        if r is None:
            return GONE
        if r.status in TERMINAL or not r.leased:
            return r.status
        if r.lease_alive(time.monotonic()):
            return ALIVE
        self._close(r, "failed", payload)
        return OK

    async def read(self, rid: str, after: int | None = None, log: bool = True, watch: bool = False) -> Snapshot | None:
        r = self._get(rid)
        if r is None:
            return None
        entries = [e for e in r.entries if after is None or e[0] > after] if log else []
        return Snapshot(r.owner, r.status, r.leased, r.lease_alive(time.monotonic()), entries)

    async def tail(self, rid: str, after: int, timeout: float) -> list[tuple[int, bytes]]:
        r = self._get(rid)
        if r is None:
            return []
        if not (r.entries and r.entries[-1][0] > after):
            try:
                await asyncio.wait_for(r.changed.wait(), timeout)
            except asyncio.TimeoutError:
                return []
        return [e for e in r.entries if e[0] > after]

    async def delete(self, rid: str) -> bool:
        r = self._get(rid)
        if r is None:
            return False
        del self._data[rid]
        if r.status not in TERMINAL:
            r.status = "cancelled"
            self._signal(rid)
        r.push(TERMINAL_POS, b"[]")  # wake tailers; they find the response gone
        return True
