"""RedisStore: responses in Redis (redis-py asyncio), shared by any number of proxies and workers.

Keys per response, hash-tagged so one response lives in one Cluster slot (scripts and pipelines
touch one slot only), each with the TTL refreshed on every state change and lease renewal. The
tag is the first 6 characters (30 bits) of the id's random part, `resp_<tag><rest>`:

    {prefix}:{<tag>}:<rest>  hash: o owner, s status, p the producing proxy's address (peers.py).
                             Its name holds the whole id, so an id that only shares the tag
                             finds nothing (→ 404)
    {prefix}:{<tag>}l        stream: the log; entry ids 1, 2, … (= N-0) chosen by the producer, field d
    {prefix}:{<tag>}k        string: the lease holder's token, PX = lease

Tags are collision-free, not just unlikely to collide: `create` claims the tag atomically (it
refuses while the tag's log or lease key exists, and the service retries with a fresh id), so
two live responses never share one; with a million live responses one create in a thousand
retries. Short keys matter because the log key is on every flush (`ps:{abcdef}l`: 12 bytes).

The hot path (a producer's flush) is one plain XADD with an explicit id: cheap on the wire (no
script hash, one short key, a 1–3 digit id: ~50 bytes besides the text) and idempotent — a retry
after a lost reply fails with "id too small" and is recognised. Every state change is a Lua
compare-and-set. A terminal entry gets the largest possible stream id, so once a response is
terminal the stream refuses every later XADD: write-once holds even against a producer that has
not noticed yet. Cancels are also PUBLISHed on `{prefix}:ctl` ("c:<id>") so the process running
the producer stops it at once; readers in other processes publish "w:<id>" there (at most every
couple of seconds) to ask for eager writes.

Jobs for `polystream worker` processes: stream `{prefix}:jobs`, consumer group `{prefix}:workers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import StoreUnavailable
from .store import OK, TERMINAL_POS, Snapshot, Store

__all__ = ["RedisStore"]

log = logging.getLogger("polystream.background")

MAXID = "18446744073709551615-18446744073709551615"
_MAXID_B = MAXID.encode()
_DOWN = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)

# KEYS: meta, log, lease. Every script starts by reading the status: missing → gone.
_HEAD = """
local T = {completed=1, failed=1, incomplete=1, cancelled=1}
local s = redis.call('HGET', KEYS[1], 's')
"""

# ARGV: owner, init, token ('' = none: queued for a worker; else begun), lease_ms, ttl, peer ('' = none).
# The meta key names the whole id: if it exists, this is a retry of this very create. Otherwise
# a log or lease key under the tag means another response holds the tag (or held it: a deleted
# response's sealed log stays a minute): 'taken'.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'ok' end
if redis.call('EXISTS', KEYS[2], KEYS[3]) > 0 then return 'taken' end
local begun = ARGV[3] ~= ''
redis.call('HSET', KEYS[1], 'o', ARGV[1], 's', begun and 'in_progress' or 'queued')
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'p', ARGV[6]) end
redis.call('XADD', KEYS[2], '1', 'd', ARGV[2])
if begun then redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4]) end
redis.call('EXPIRE', KEYS[1], ARGV[5]); redis.call('EXPIRE', KEYS[2], ARGV[5])
return 'ok'
"""

# ARGV: token, lease_ms, ttl, start payload, peer ('' = none)
_BEGIN = _HEAD + """
if not s then return 'gone' end
if T[s] then return s end
local cur = redis.call('GET', KEYS[3])
local function taken()  -- what the worker needs to run it: the owner and the request (entry 1)
  local first = redis.call('XRANGE', KEYS[2], '1', '1')
  return {'ok', redis.call('HGET', KEYS[1], 'o'), first[1] and first[1][2][2] or ''}
end
if s == 'in_progress' and cur == ARGV[1] then return taken() end
if s ~= 'queued' or (cur and cur ~= ARGV[1]) then return 'taken' end
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[1], 's', 'in_progress')
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'p', ARGV[5]) end
redis.pcall('XADD', KEYS[2], '2', 'd', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[3]); redis.call('EXPIRE', KEYS[2], ARGV[3])
return taken()
"""

# ARGV: token, lease_ms, ttl
_RENEW = _HEAD + """
if not s then return 'gone' end
if T[s] then return s end
local cur = redis.call('GET', KEYS[3])
if cur and cur ~= ARGV[1] then return 'taken' end
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3]); redis.call('EXPIRE', KEYS[2], ARGV[3])
return 'ok'
"""

# The terminal write shared by finish / cancel / lapse. ARGV[1] status, ARGV[2] payload, ARGV[3] ttl.
_CLOSE = """
redis.call('XADD', KEYS[2], '""" + MAXID + """', 'd', ARGV[2])
redis.call('HSET', KEYS[1], 's', ARGV[1])
redis.call('DEL', KEYS[3])
redis.call('EXPIRE', KEYS[1], ARGV[3]); redis.call('EXPIRE', KEYS[2], ARGV[3])
"""

# ARGV: status, payload, ttl, token
_FINISH = _HEAD + """
if not s then return 'gone' end
if T[s] then return s end
local cur = redis.call('GET', KEYS[3])
if cur and cur ~= ARGV[4] then return 'taken' end
""" + _CLOSE + "return 'ok'"

# ARGV: 'cancelled', payload, ttl, channel, "c:" + response id
_CANCEL = _HEAD + """
if not s then return 'gone' end
if T[s] then return s end
""" + _CLOSE + """
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 'ok'
"""

# ARGV: 'failed', payload, ttl. Only in_progress responses hold a lease (queued ones wait for a worker).
_LAPSE = _HEAD + """
if not s then return 'gone' end
if s ~= 'in_progress' then return s end
if redis.call('EXISTS', KEYS[3]) == 1 then return 'alive' end
""" + _CLOSE + "return 'ok'"

# ARGV: channel, "c:" + response id. The log stays (empty, sealed) for a minute so a producer that has
# not heard yet gets its XADDs refused instead of recreating the key.
_DELETE = _HEAD + """
if not s then return 0 end
if not T[s] then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
redis.pcall('XADD', KEYS[2], '""" + MAXID + """', 'd', '[]')
redis.call('XTRIM', KEYS[2], 'MAXLEN', 0)
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('EXPIRE', KEYS[2], 60)
return 1
"""


_KINDS = {"c": "cancel", "w": "watch"}
_TAG = 6  # characters of the id in the hash tag


def _pos(entry_id: bytes) -> int:
    return TERMINAL_POS if entry_id == _MAXID_B else int(entry_id.split(b"-", 1)[0])


def _str(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


@contextlib.contextmanager
def _guard() -> Any:
    try:
        yield
    except _DOWN as exc:
        raise StoreUnavailable(f"Redis unavailable: {type(exc).__name__}: {exc}") from exc


class RedisStore(Store):
    """url: redis://[:password@]host:port/db. prefix: key namespace. ttl: seconds.

    Connection errors and timeouts raise StoreUnavailable within `socket_timeout` (a stopped
    server fails at once: connection refused); the pool reconnects by itself when Redis returns.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        redis_url: str | None = None,
        prefix: str | None = None,
        ttl: float = 3600,
        socket_timeout: float = 1.5,
        # Not shorter: a burst that opens a hundred connections at once (200 background
        # responses created together) can hold the event loop past 1 s, and a connect that
        # times out then reads as an outage (503). A stopped server still fails at once.
        connect_timeout: float = 3.0,
        block: float = 1.0,
        max_connections: int = 128,
        max_blocking: int = 10_000,
        **_ignored: Any,
    ) -> None:
        self.url = url or redis_url or "redis://127.0.0.1:6379/0"
        self.prefix = prefix or "ps"
        self.ttl = float(ttl)
        self.block = block
        # One immediate retry, on connection errors only: it replaces a pooled connection that
        # died with a restarted server. Writes are idempotent (explicit stream ids, CAS scripts).
        opts: dict[str, Any] = dict(
            socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        # Commands share a bounded pool: past `max_connections` in flight they queue (for up to
        # twice socket_timeout: a burst, not an outage — a dead server fails connects at once)
        # rather than fail. Blocking reads (XREAD/XREADGROUP BLOCK, pub/sub) hold
        # a connection each for up to `block`: their own pool, a socket timeout longer than that.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url, max_connections=max_connections, timeout=2 * socket_timeout, socket_timeout=socket_timeout, **opts
        )
        self.r = aioredis.Redis(connection_pool=pool)
        self.rb = aioredis.Redis.from_url(
            self.url, max_connections=max_blocking, socket_timeout=block + socket_timeout, **opts
        )
        self.channel = f"{self.prefix}:ctl"
        self.jobs_key = f"{self.prefix}:jobs"
        self.jobs_group = f"{self.prefix}:workers"
        reg = self.r.register_script
        self._create, self._begin, self._renew = reg(_CREATE), reg(_BEGIN), reg(_RENEW)
        self._finish, self._cancel, self._lapse, self._delete = reg(_FINISH), reg(_CANCEL), reg(_LAPSE), reg(_DELETE)
        self._callbacks: list[Callable[[str, str], None]] = []
        self._listener: asyncio.Task[None] | None = None

    def keys(self, rid: str) -> tuple[str, str, str]:
        """(meta, log, lease) key names. Short on purpose: the log key is on every flush."""
        body = rid[5:] if rid.startswith("resp_") else rid
        if "{" in body or "}" in body:  # not an id we made (it comes from a URL): keep one slot
            body = body.replace("{", "(").replace("}", ")")
        p = f"{self.prefix}:{{{body[:_TAG]}}}"
        return f"{p}:{body[_TAG:]}", p + "l", p + "k"

    def _ttl(self) -> int:
        return max(1, int(self.ttl))

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        if self._callbacks and self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="polystream-cancel-listener")

    async def close(self) -> None:
        task, self._listener = self._listener, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        for client in (self.r, self.rb):
            with contextlib.suppress(Exception):
                await client.aclose()

    async def ping(self) -> bool:
        with _guard():
            return bool(await self.r.ping())

    def on_signal(self, callback: Callable[[str, str], None]) -> None:
        self._callbacks.append(callback)

    async def _listen(self) -> None:
        """Deliver signals to the callbacks; resubscribe after any outage (missed cancels are
        caught by the producer's next write or lease renewal)."""
        while True:
            pubsub = self.rb.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    msg = await pubsub.get_message(timeout=self.block)
                    if msg and msg.get("type") == "message":
                        kind, _, rid = _str(msg["data"]).partition(":")
                        for cb in self._callbacks:
                            cb(_KINDS.get(kind, kind), rid)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - outage: retry; the lease renewal is the backstop
                log.debug("cancel listener: %s; resubscribing", exc)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    # -- writes -------------------------------------------------------------------------------
    async def create(self, rid: str, owner: str, created_at: int, init: bytes, token: str | None, lease: float,
                     peer: str | None = None) -> str:
        with _guard():
            args: list[Any] = [owner, init, token or "", int(lease * 1000), self._ttl(), peer or ""]
            return _str(await self._create(keys=self.keys(rid), args=args))

    async def begin(self, rid: str, token: str, lease: float, start: bytes,
                    peer: str | None = None) -> tuple[str, str, bytes]:
        with _guard():
            args: list[Any] = [token, int(lease * 1000), self._ttl(), start, peer or ""]
            got: Any = await self._begin(keys=self.keys(rid), args=args)
        if isinstance(got, list):
            return OK, _str(got[1]), bytes(got[2])
        return _str(got), "", b""

    async def append(self, rid: str, pos: int, payload: bytes) -> bool:
        log_key = self.keys(rid)[1]
        with _guard():
            try:
                await self.r.xadd(log_key, {"d": payload}, id=pos)
                return True
            except ResponseError as exc:
                if "equal or smaller" not in str(exc):
                    return False  # "exhausted": the log is closed
            # An earlier attempt whose reply was lost may have landed: is ours the top entry?
            top: Any = await self.r.xrevrange(log_key, count=1)
            return bool(top) and top[0][0] == b"%d-0" % pos

    async def renew(self, rid: str, token: str, lease: float, touch: bool = False) -> str:
        with _guard():
            if not touch and await self.r.pexpire(self.keys(rid)[2], int(lease * 1000)):
                return OK  # still ours (a lease key exists only while its producer holds it)
            return _str(await self._renew(keys=self.keys(rid), args=[token, int(lease * 1000), self._ttl()]))

    async def finish(self, rid: str, token: str, status: str, payload: bytes) -> str:
        with _guard():
            return _str(await self._finish(keys=self.keys(rid), args=[status, payload, self._ttl(), token]))

    async def cancel(self, rid: str, payload: bytes) -> str:
        with _guard():
            return _str(await self._cancel(keys=self.keys(rid), args=["cancelled", payload, self._ttl(), self.channel, "c:" + rid]))

    async def lapse(self, rid: str, payload: bytes) -> str:
        with _guard():
            return _str(await self._lapse(keys=self.keys(rid), args=["failed", payload, self._ttl()]))

    async def delete(self, rid: str) -> bool:
        with _guard():
            return bool(await self._delete(keys=self.keys(rid), args=[self.channel, "c:" + rid]))

    # -- reads --------------------------------------------------------------------------------
    async def read(self, rid: str, after: int | None = None, log: bool = True, watch: bool = False) -> Snapshot | None:
        meta, log_key, lease = self.keys(rid)
        with _guard():
            pipe = self.r.pipeline(transaction=False)
            pipe.hmget(meta, "o", "s", "p")
            pipe.exists(lease)
            want = log and (after is None or after < TERMINAL_POS)
            if want:
                pipe.xrange(log_key, "-" if after is None else f"({after}", "+")
            if watch:
                pipe.publish(self.channel, "w:" + rid)
            got = await pipe.execute()
        owner, status, peer = got[0]
        if owner is None or status is None:
            return None
        entries = [(_pos(i), f[b"d"]) for i, f in got[2]] if want else []
        status = _str(status)
        return Snapshot(_str(owner), status, status == "in_progress", bool(got[1]), entries,
                        None if peer is None else _str(peer))

    async def watch(self, rid: str) -> None:
        with _guard():
            await self.r.publish(self.channel, "w:" + rid)

    async def tail(self, rid: str, after: int, timeout: float) -> list[tuple[int, bytes]]:
        if after >= TERMINAL_POS:
            await asyncio.sleep(timeout)
            return []
        with _guard():
            got: Any = await self.rb.xread({self.keys(rid)[1]: after}, block=max(1, int(timeout * 1000)))
        if not got:
            return []
        return [(_pos(i), f[b"d"]) for i, f in got[0][1]]

    # -- jobs for worker processes -----------------------------------------------------------
    async def enqueue(self, rid: str) -> None:
        with _guard():
            await self.r.xadd(self.jobs_key, {"r": rid})

    async def ensure_group(self) -> None:
        with _guard():
            try:
                await self.r.xgroup_create(self.jobs_key, self.jobs_group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def take_jobs(self, consumer: str, count: int, block: float) -> list[tuple[bytes, str]]:
        """New jobs for `consumer`: [(job id, response id)]."""
        with _guard():
            got: Any = await self.rb.xreadgroup(
                self.jobs_group, consumer, {self.jobs_key: ">"}, count=count, block=max(1, int(block * 1000))
            )
        return [(i, _str(f[b"r"])) for _, items in (got or []) for i, f in items if f]

    async def claim_jobs(self, consumer: str, min_idle: float, count: int) -> list[tuple[bytes, str]]:
        """Jobs another consumer read but did not acknowledge for `min_idle` seconds (it died)."""
        with _guard():
            got: Any = await self.r.xautoclaim(self.jobs_key, self.jobs_group, consumer, int(min_idle * 1000), "0-0", count=count)
        return [(i, _str(f[b"r"])) for i, f in got[1] if f]

    async def ack_job(self, job_id: bytes) -> None:
        with _guard():
            pipe = self.r.pipeline(transaction=False)
            pipe.xack(self.jobs_key, self.jobs_group, job_id)
            pipe.xdel(self.jobs_key, job_id)
            await pipe.execute()

    async def iter_keys(self) -> AsyncIterator[str]:
        """Every key of this store's namespace (tests, admin)."""
        with _guard():
            async for k in self.r.scan_iter(match=f"{self.prefix}:*"):
                yield _str(k)
