"""Reads routed to the proxy that produces the response.

A background response produced by proxy A and polled through proxy B could be read from Redis,
but B's reader would then need A to write every few tens of ms. Each write costs ~50 bytes of
framing, about 8 Redis bytes per output byte at 50 tokens/s. So A records where it can be reached
with the response (`peer`: "<node>@<url>"), and B forwards polls and retrieves to A, which
answers from memory. A streamed retrieve is relayed from A's stream; should that break off, B
goes on from the store after the last event it relayed. Redis then sees only A's lazy writes,
and B's reader lags no more than a local one.

B does not pass on the caller's key; an address read from the store must not collect
credentials. B authenticates the caller and signs what A needs: A's node id, the owner id, the
method and target, and the time. The MAC is HMAC-SHA256 under a key every proxy derives from the
owner secret, which they must share anyway to agree on owners.

A checks that the node is itself. If not, the address now belongs to another process, and it
answers 421. A answers a peer request as it would the owner, names itself in the answer (NODE,
so that B never takes a stranger's reply for A's), and never forwards it again. When A cannot be
reached, misdirects or fails, B reads the store from then on and asks for eager writes (the
watch signal). A node that could not be reached, or whose address someone else answers, is
remembered as down for `down_for` seconds: reads of its other responses go straight to the store
instead of each paying a refused connection, or a whole timeout if the port is filtered.

`polystream worker` serves the same reads of the responses it produces on a port of its own
(server/peer_reads.py) and records that address when it takes a job.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import AsyncGenerator
from typing import Any

from .log import Event

__all__ = ["HEADER", "NODE", "Misdirected", "PeerFailed", "PeerLink"]

HEADER = "x-polystream-peer"
NODE = "x-polystream-node"  # on the answer to a routed read: the node that answered
MAX_SKEW = 60  # seconds a signed request stays valid (the proxies' clocks must agree this well)
_MAX_DOWN = 1024  # peers remembered as down (oldest forgotten first)
_SEQ = re.compile(rb'"sequence_number":(\d+)\}$')

log = logging.getLogger("polystream.background")


def _seq(data: bytes) -> int | None:
    """An event's sequence_number: its last member (the order OpenAI uses and the core keeps), so
    a "sequence_number" in user metadata earlier in the event cannot be taken for it."""
    m = _SEQ.search(data, max(0, len(data) - 40))
    return int(m.group(1)) if m else None


class Misdirected(Exception):
    """A peer request meant for another process (the address changed hands): 421."""


class PeerFailed(Exception):
    """A streamed read from a peer could not be had, or broke off."""


class PeerLink:
    """This process's node id and address, and the signing both ends of a forwarded read use.

    `url`: where other proxies reach this one (`http://host:port`). None means not known yet:
    `learn()` takes it from the socket a create arrived on. "" means never advertise."""

    def __init__(self, secret: bytes, url: str | None = None, timeout: float = 2.0, down_for: float = 30.0) -> None:
        self.node = secrets.token_hex(8)
        self._key = hmac.new(secret, b"polystream-peer-v1", hashlib.sha256).digest()
        self.url = url.rstrip("/") if url else url
        self.timeout = timeout
        self.down_for = down_for
        self._down: dict[str, float] = {}  # peer -> time.monotonic() until which it counts as down

    def is_down(self, peer: str) -> bool:
        until = self._down.get(peer)
        if until is None:
            return False
        if time.monotonic() < until:
            return True
        del self._down[peer]
        return False

    def _mark_down(self, peer: str) -> None:
        if len(self._down) >= _MAX_DOWN:
            self._down.pop(next(iter(self._down)))
        self._down[peer] = time.monotonic() + self.down_for

    def _from(self, peer: str, node: str, answered_by: str | None) -> bool:
        """Whether an answer came from the node asked. If another process answers at its
        address, that node is gone: down."""
        if answered_by == node:
            return True
        self._mark_down(peer)
        return False

    def _failed(self, peer: str, exc: BaseException) -> None:
        """A request to `peer` failed with `exc`. Nobody there (a refused connection or a connect
        timeout) counts as down; a slow answer does not: the node is there."""
        import httpx

        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            self._mark_down(peer)

    @property
    def me(self) -> str | None:
        """What the store records for responses produced here (None: not reachable)."""
        return f"{self.node}@{self.url}" if self.url else None

    def learn(self, server: Any) -> None:
        """Take the address from ASGI's `scope["server"]` (host, port): the local end of a
        connection a client reached us on, the concrete address even under a wildcard bind."""
        if self.url is None and isinstance(server, (tuple, list)) and len(server) == 2 and server[1]:
            host = str(server[0])
            self.url = f"http://[{host}]:{server[1]}" if ":" in host else f"http://{host}:{server[1]}"

    def _mac(self, node: str, owner: str, ts: str, method: str, target: str) -> str:
        msg = "\n".join((node, owner, ts, method, target)).encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def sign(self, node: str, owner: str, method: str, target: str, now: float | None = None) -> str:
        ts = str(int(time.time() if now is None else now))
        return f"{node}.{owner}.{ts}.{self._mac(node, owner, ts, method, target)}"

    def verify(self, value: str, method: str, target: str) -> str | None:
        """The owner a signed peer request reads as, or None if the signature does not hold.
        Raises Misdirected for a valid request meant for another node."""
        parts = value.split(".")
        if len(parts) != 4:
            return None
        node, owner, ts, mac = parts
        if not ts.isdigit() or abs(time.time() - int(ts)) > MAX_SKEW:
            return None
        if not hmac.compare_digest(mac, self._mac(node, owner, ts, method, target)):
            return None
        if node != self.node:
            raise Misdirected(node)
        return owner

    def _signed_get(self, peer: str, owner: str, target: str) -> tuple[str, str, dict[str, str]]:
        """The node to answer, the URL and the headers of a GET of `target` (path and query) from
        `peer` for `owner`."""
        node, _, url = peer.partition("@")
        return node, url + target, {HEADER: self.sign(node, owner, "GET", target)}

    async def get(self, peer: str, owner: str, target: str) -> tuple[int, bytes] | None:
        """GET `target` from `peer` for `owner`: (status, body) as the peer answered it, or None
        if it could not be reached in time or someone else answered."""
        from .._http import async_client  # the pooled keep-alive client (lazy: httpx is heavy)

        if self.is_down(peer):
            return None
        node, url, headers = self._signed_get(peer, owner, target)
        try:
            r = await async_client().get(url, headers=headers, timeout=self.timeout)
        except Exception as exc:  # noqa: BLE001 - any failure: read the store instead
            log.info("peer %s unreachable (%s): reading the store", url, type(exc).__name__)
            self._failed(peer, exc)
            return None
        if not self._from(peer, node, r.headers.get(NODE)):
            log.info("peer %s: answered by someone else (status %d): reading the store", url, r.status_code)
            return None
        return r.status_code, r.content

    async def events(self, peer: str, owner: str, target: str, idle: float) -> AsyncGenerator[Event, None]:
        """The events of a streamed read (`?stream=true…`) from `peer`, as (sequence number,
        type, data). Raises PeerFailed if it cannot be had, goes quiet for `idle` seconds, or
        ends in an error; a clean end means the peer streamed the response to its end."""
        import httpx

        from .._core import SSEDecoder
        from .._http import async_client

        if self.is_down(peer):
            raise PeerFailed("down")
        node, url, headers = self._signed_get(peer, owner, target)
        timeout = httpx.Timeout(self.timeout, read=idle)
        decoder = SSEDecoder()
        try:
            async with async_client().stream("GET", url, headers=headers, timeout=timeout) as r:
                if not self._from(peer, node, r.headers.get(NODE)) or r.status_code != 200:
                    raise PeerFailed(f"status {r.status_code} from {r.headers.get(NODE)!r}")
                async for piece in r.aiter_raw():
                    for ev in decoder.feed(piece):
                        data = ev.data.encode()
                        seq = _seq(data)
                        if ev.event == "message" or seq is None:  # an error event (or not ours)
                            raise PeerFailed(ev.data[:200])
                        yield seq, ev.event, data
        except httpx.HTTPError as exc:
            self._failed(peer, exc)
            raise PeerFailed(type(exc).__name__) from exc
