"""Reads routed to the proxy that produces the response.

A background response produced by proxy A and polled through proxy B could be read from Redis,
but B's reader would then need A to write every few tens of ms. Each write costs ~50 bytes of
framing, about 8 Redis bytes per output byte at 50 tokens/s. So A records where it can be reached
with the response (`peer`: "<node>@<url>"), and B forwards plain polls and retrieves to A, which
answers from memory. Redis then sees only A's lazy writes, and B's reader lags no more than a
local one.

B does not pass on the caller's key; an address read from the store must not collect
credentials. B authenticates the caller and signs what A needs: A's node id, the owner id, the
method and target, and the time. The MAC is HMAC-SHA256 under a key every proxy derives from the
owner secret, which they must share anyway to agree on owners.

A checks that the node is itself. If not, the address now belongs to another process, and it
answers 421. A answers a peer request as it would the owner and never forwards it again. When A
cannot be reached, misdirects or fails, B reads the store from then on and asks for eager
writes (the watch signal). That is the path for responses produced by `polystream worker`,
which serves no HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from typing import Any

__all__ = ["HEADER", "Misdirected", "PeerLink"]

HEADER = "x-polystream-peer"
MAX_SKEW = 60  # seconds a signed request stays valid (the proxies' clocks must agree this well)

log = logging.getLogger("polystream.background")


class Misdirected(Exception):
    """A peer request meant for another process (the address changed hands): 421."""


class PeerLink:
    """This process's node id and address, and the signing both ends of a forwarded read use.

    `url`: where other proxies reach this one (`http://host:port`). None means not known yet:
    `learn()` takes it from the socket a create arrived on. "" means never advertise."""

    def __init__(self, secret: bytes, url: str | None = None, timeout: float = 2.0) -> None:
        self.node = secrets.token_hex(8)
        self._key = hmac.new(secret, b"polystream-peer-v1", hashlib.sha256).digest()
        self.url = url.rstrip("/") if url else url
        self.timeout = timeout

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

    async def get(self, peer: str, owner: str, target: str) -> tuple[int, bytes] | None:
        """GET `target` (path and query) from `peer` for `owner`: (status, body), or None if the
        peer could not be reached in time."""
        from .._http import async_client  # the pooled keep-alive client (lazy: httpx is heavy)

        node, _, url = peer.partition("@")
        headers = {HEADER: self.sign(node, owner, "GET", target)}
        try:
            r = await async_client().get(url + target, headers=headers, timeout=self.timeout)
        except Exception as exc:  # noqa: BLE001 - any failure: read the store instead
            log.info("peer %s unreachable (%s): reading the store", url, type(exc).__name__)
            return None
        return r.status_code, r.content
