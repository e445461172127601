"""A worker's read port: the reads proxies route to the process producing a response
(background/peers.py), served by `polystream worker` for the responses it produces.

A worker serves no clients. Without this port, a proxy polled for a worker's response reads
Redis and asks the worker for eager writes: about 8 Redis bytes per output byte at 50 tokens/s,
where a proxy-produced response costs about 2. With it, the worker records `node@url` when it
takes a job, as a proxy does when it creates one, and answers signed reads from memory:
`GET /v1/responses/{id}` (plain or streamed) and `GET /v1/responses/{id}/poll`. Unsigned
requests get 401; the port is for proxies, not clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

from ..background.peers import PeerLink
from . import routes_responses
from .app import EXCEPTION_HANDLERS
from .auth import Authenticator, Principal
from .common import ServerState
from .config import ProxyConfig
from .errors import ProxyError
from .metrics import Metrics

__all__ = ["serve_reads"]

log = logging.getLogger("polystream.worker")


class _SignedOnly:
    """Stands in for the Authenticator: routed reads carry a peer signature, checked before
    this is asked; anything else is refused."""

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        raise ProxyError(401, "This port serves only reads routed from polystream proxies.", "authentication_error",
                         None, "peer_signature_required")


def peer_app(service: Any, config: ProxyConfig) -> Starlette:
    """The read routes of /v1/responses over `service` (whose `peers` is set), signed reads only."""
    routes = [
        Route(routes_responses.ROUTE_ID, routes_responses.retrieve, methods=["GET"]),
        Route(routes_responses.ROUTE_ID + "/poll", routes_responses.poll, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS)
    app.state.polystream = ServerState(config, _SignedOnly(), Metrics(), service)  # type: ignore[arg-type]
    return app


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Say IPPROTO_TCP: asyncio turns Nagle off (TCP_NODELAY) only on sockets that do, and
    # socket.create_server's do not. With Nagle on, each answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except BaseException:
        sock.close()
        raise
    return sock


def advertised_url(host: str, port: int) -> str:
    """Where other processes reach a socket bound to (host, port). A wildcard bind advertises
    this host's address as its name resolves."""
    try:
        wildcard = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        wildcard = False  # a name: others resolve it as we do
    if wildcard:
        host = socket.gethostbyname(socket.gethostname())
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@contextlib.asynccontextmanager
async def serve_reads(
    service: Any,
    config: ProxyConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    url: str | None = None,
    log_level: str = "warning",
) -> AsyncIterator[str]:
    """Serve routed reads of `service`'s responses on (host, port) (port 0: any free one) while
    the block runs; yields the advertised url (`url`, else the bound address). Sets
    `service.peers`, so the jobs it takes from then on record that address."""
    sock = _bind(host, port)
    advertised = url.rstrip("/") if url else advertised_url(host, sock.getsockname()[1])
    service.peers = PeerLink(Authenticator.from_config(config).peer_secret(), advertised)
    server = _Server(uvicorn.Config(peer_app(service, config), lifespan="off", log_level=log_level,
                                    access_log=False, server_header=False, timeout_keep_alive=75,
                                    timeout_graceful_shutdown=5))
    task = asyncio.create_task(server.serve(sockets=[sock]), name="peer reads")
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if task.done():
        sock.close()
        task.result()  # its error, if it failed to start
        raise RuntimeError("the read port stopped as it started")
    log.info("serving routed reads on %s", advertised)
    try:
        yield advertised
    finally:
        server.should_exit = True
        await task


class _Server(uvicorn.Server):
    """uvicorn's Server without its signal handlers: the worker's own stop it (by leaving the
    `serve_reads` block), and uvicorn's would replace them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
