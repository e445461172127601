"""The store interface: what a producer writes and a reader reads, per response.

Per response a store keeps
- an append-only **log** of entries, each a JSON array of compact *records* (see `log.py`): the
  first entry holds the request, later ones the output as normalised deltas, the last one the
  terminal record. Events and snapshots are rebuilt from it on read, deterministically;
- **metadata**: owner, status, created time, whether a producer ever held a lease, and the
  producing proxy's address when other proxies may route reads there (peers.py);
- a **lease**: which producer is running it, expiring unless renewed;
- a cancel signal: the status itself, plus a notification to the process running the producer;
- a watch signal: a reader in another process tells the producer's process that someone is
  reading remotely, so the producer writes at the eager cadence (see producer.py).

Entry positions are ints, increasing; the producer numbers its own entries (1 = the request,
2 = the start marker, then one per flush) so that a write retried after a lost reply can be
recognised instead of duplicated. A terminal entry is written at `TERMINAL_POS` in the same
atomic step that sets a terminal status (compare-and-set: only the first terminal wins), after
which the log accepts nothing more.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field

from . import StoreUnavailable

__all__ = ["Store", "Snapshot", "TERMINAL", "TERMINAL_POS", "StoreUnavailable", "OK", "GONE", "TAKEN", "ALIVE"]

TERMINAL = frozenset({"completed", "failed", "incomplete", "cancelled"})
TERMINAL_POS = 2**63  # the terminal entry's position; nothing can follow it

# Results of the compare-and-set operations (otherwise they return the status that was there).
OK = "ok"
GONE = "gone"  # no such response (expired or deleted)
TAKEN = "taken"  # another producer holds (or held) the response
ALIVE = "alive"  # lapse(): the lease is still held


@dataclass
class Snapshot:
    """One read: metadata, whether the lease is held, and log entries after the given position."""

    owner: str
    status: str
    leased: bool  # a producer took the lease (true whenever the status is in_progress)
    lease_alive: bool
    entries: list[tuple[int, bytes]] = field(default_factory=list)
    peer: str | None = None  # the proxy producing it, for reads routed there (peers.py)

    @property
    def lapsed(self) -> bool:
        """The producer stopped renewing its lease before writing a terminal status."""
        return self.status not in TERMINAL and self.leased and not self.lease_alive


class Store(abc.ABC):
    """Async store. Every method raises StoreUnavailable when the backend cannot be reached."""

    ttl: float  # seconds every key lives after its last write
    shared = True  # other processes (proxies, workers) read and write it too

    async def start(self) -> None:
        """Connect / start background tasks (idempotent)."""

    async def close(self) -> None:
        """Release connections and tasks."""

    async def ping(self) -> bool:
        return True

    def on_signal(self, callback: Callable[[str, str], None]) -> None:
        """Call `callback(kind, response_id)` for signals from any process: "cancel" when a running
        response is cancelled or deleted (its producer's process stops it at once), "watch" when
        a reader elsewhere is following it."""

    @abc.abstractmethod
    async def create(self, rid: str, owner: str, created_at: int, init: bytes, token: str | None, lease: float,
                     peer: str | None = None) -> str:
        """New response, log = [init at position 1]. `peer`: where the producing proxy takes
        routed reads (kept by stores that other processes read). Without `token`: status queued,
        for a worker to `begin`. With `token` (in-process producers): already begun under that lease — status
        in_progress, `init` carrying the start record too — saving a round trip; a process dying
        right after still leaves a response that reads as failed, not queued forever.
        OK (also for a retry of the same create), or TAKEN: the store cannot take this id (its
        short key tag is in use by another response); create it again under a fresh id."""

    @abc.abstractmethod
    async def begin(self, rid: str, token: str, lease: float, start: bytes,
                    peer: str | None = None) -> tuple[str, str, bytes]:
        """queued → in_progress under lease `token`, appending `start` at position 2; `peer` as in
        `create` (the worker taking it, when it serves routed reads). (OK, owner, the entry at
        position 1: the request), so taking a job is one round trip; or (TAKEN: another producer
        has it, GONE, or the terminal status it already has; "", b"")."""

    @abc.abstractmethod
    async def append(self, rid: str, pos: int, payload: bytes) -> bool:
        """Append an entry at `pos` (hot path: one cheap command). True once it is in the log
        (also if an earlier attempt with the same `pos` already landed); False if the log is
        closed (terminal, deleted)."""

    @abc.abstractmethod
    async def renew(self, rid: str, token: str, lease: float, touch: bool = False) -> str:
        """Extend the lease (with `touch`, every key's TTL too). OK, TAKEN, GONE or the terminal
        status. The common case (lease still held) is one cheap command."""

    @abc.abstractmethod
    async def finish(self, rid: str, token: str, status: str, payload: bytes) -> str:
        """Compare-and-set the terminal `status`, appending `payload` (the records not yet written
        plus the terminal record) as the terminal entry. OK, or what prevented it."""

    @abc.abstractmethod
    async def cancel(self, rid: str, payload: bytes) -> str:
        """Compare-and-set `cancelled` from any process (payload: the cancel record) and signal the
        producer's process. OK or the status it already had (GONE if none)."""

    @abc.abstractmethod
    async def lapse(self, rid: str, payload: bytes) -> str:
        """Compare-and-set `failed` (payload: the failure record) if and only if the response was
        leased and its lease has expired. OK, ALIVE, GONE or the status it has."""

    @abc.abstractmethod
    async def read(self, rid: str, after: int | None = None, log: bool = True, watch: bool = False) -> Snapshot | None:
        """Metadata + lease state + the entries after position `after` (all if None; none if
        not `log`), in one round trip (with `watch`, the watch signal rides along). None if there
        is no such response."""

    async def watch(self, rid: str) -> None:
        """Send the watch signal alone (a reader following the log)."""

    @abc.abstractmethod
    async def tail(self, rid: str, after: int, timeout: float) -> list[tuple[int, bytes]]:
        """Entries after `after`, waiting up to `timeout` seconds for the first one."""

    @abc.abstractmethod
    async def delete(self, rid: str) -> bool:
        """Remove the response (signalling a running producer first). False if there was none."""
