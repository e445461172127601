"""The proxy: a Starlette app under uvicorn (`polystream serve`).

    create_app(config=None, service=None) -> ProxyApp      a Starlette; config None: the embedded default
    serve(config_path, host, port)                         blocking, like `polystream serve`
    ServerThread(app).start() / .url / .stop()             in-process server on a free port
                                                           (tests, the showcase, benchmarks)

Routes: see routes_chat.py and routes_responses.py, plus GET /v1/models, /health (probes the
models, see health.py), /health/liveliness, /health/readiness (checks the store) and /metrics.
Every path is also served without its /v1 prefix, as LiteLLM does.

`POST /v1/chat/completions` (the hot path) is taken before Starlette's middleware and routing,
by `ProxyApp.__call__`; everything else goes through Starlette.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..background import StoreUnavailable
from . import routes_chat, routes_responses
from .auth import Authenticator, install_redaction
from .common import ClientGone, ServerState, authenticate, error_reply, internal_error, json_response, state
from .config import ProxyConfig, embedded_default, load_config
from .errors import ProxyError, store_unavailable
from .health import model_health
from .metrics import ACCESS_LOGGER, Metrics, MetricsMiddleware, log_access

__all__ = ["create_app", "build_service", "serve", "ServerThread", "ProxyApp"]

log = logging.getLogger("polystream.server")


# ---------------------------------------------------------------- background service


def build_store(config: ProxyConfig) -> Any:
    if config.store.type == "redis":
        from ..background.redis_store import RedisStore

        return _construct(RedisStore, url=config.store.redis_url, redis_url=config.store.redis_url,
                          prefix=config.store.prefix, ttl=config.ttl)
    from ..background.memory_store import MemoryStore

    return _construct(MemoryStore, ttl=config.ttl)


def build_service(config: ProxyConfig) -> Any:
    """The background ResponsesService for `config` (not started)."""
    from ..background import service as svc_mod

    settings_cls = getattr(svc_mod, "BackgroundSettings", None)
    settings = _construct(settings_cls, **config.background) if settings_cls else None
    return svc_mod.ResponsesService(build_store(config), config.models, settings)


def _link_peers(service: Any, auth: Authenticator) -> None:
    """On a store other proxies share, route reads of another proxy's responses to it
    (background/peers.py), unless `background.peer_url` is ""."""
    store = getattr(service, "store", None)
    if getattr(service, "peers", False) is not None or not getattr(store, "shared", False):
        return
    url = getattr(getattr(service, "settings", None), "peer_url", None)
    if url != "":
        from ..background.peers import PeerLink

        service.peers = PeerLink(auth.peer_secret(), url)


def _construct(cls: Any, **options: Any) -> Any:
    """`cls(**options)` keeping only the options it accepts (config keys it does not know are
    ignored rather than fatal, so the config format and the store classes can grow apart)."""
    if dataclasses.is_dataclass(cls):
        names = {f.name for f in dataclasses.fields(cls)}
    else:
        params = inspect.signature(cls).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return cls(**{k: v for k, v in options.items() if v is not None})
        names = set(params)
    return cls(**{k: v for k, v in options.items() if k in names and v is not None})


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def store_ok(service: Any) -> bool:
    """Readiness: can the store answer right now? (bounded: a dead Redis must not hang probes)"""
    if service is None:
        return True
    for target in (service, getattr(service, "store", None)):
        ping = getattr(target, "ping", None)
        if ping is not None:
            try:
                return bool(await asyncio.wait_for(_maybe_await(ping()), 2.0) is not False)
            except (StoreUnavailable, asyncio.TimeoutError, OSError, ConnectionError):
                return False
            except Exception:  # noqa: BLE001 - any failure to ping means not ready
                log.warning("store ping failed", exc_info=True)
                return False
    return True


# ---------------------------------------------------------------- small endpoints


async def models(request: Request) -> Response:
    principal = authenticate(request)
    names = [n for n in state(request).config.models.names() if principal.may_use(n)]
    data = [{"id": n, "object": "model", "created": 0, "owned_by": "polystream"} for n in names]
    return json_response({"object": "list", "data": data})


async def liveliness(request: Request) -> Response:
    return json_response({"status": "healthy"})


async def readiness(request: Request) -> Response:
    st = state(request)
    ok = await store_ok(st.service)
    body = {"status": "healthy" if ok else "unhealthy", "store": st.config.store.type,
            "store_connected": ok, "models": len(st.config.models.names())}
    return json_response(body, 200 if ok else 503)


async def metrics(request: Request) -> Response:
    st = state(request)
    gauge = None
    counts = getattr(st.service, "job_counts", None)
    if counts is not None:
        with contextlib.suppress(Exception):
            gauge = await asyncio.wait_for(_maybe_await(counts()), 1.0)
    return Response(st.metrics.render(gauge), media_type="text/plain; version=0.0.4; charset=utf-8")


# ---------------------------------------------------------------- errors


async def _proxy_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProxyError)
    return error_reply(exc, state(request).metrics)


async def _store_down(request: Request, exc: Exception) -> Response:
    return await _proxy_error(request, store_unavailable(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    err = ProxyError(exc.status_code, str(exc.detail), "invalid_request_error", None, code, dict(exc.headers or {}))
    return await _proxy_error(request, err)


async def _client_gone(request: Request, exc: Exception) -> Response:
    # Nobody is listening; the status (nginx's "client closed request") is for the metrics.
    return Response(b"", 499)


async def _internal(request: Request, exc: Exception) -> Response:
    return error_reply(internal_error(exc, request.method, request.url.path), state(request).metrics)


# Every app here (the proxy, a worker's read port) answers failures in OpenAI's error shape.
EXCEPTION_HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    ProxyError: _proxy_error,
    StoreUnavailable: _store_down,
    HTTPException: _http_error,
    ClientGone: _client_gone,
    Exception: _internal,
}


# ---------------------------------------------------------------- the app

# Served as plain ASGI by ProxyApp: path → handler(state, scope, receive, send) -> status sent.
Lean = Callable[[ServerState, dict[str, Any], Any, Any], Awaitable[int]]
_LEAN: dict[str, Lean] = {path: routes_chat.chat_completions for path in routes_chat.PATHS}


class ProxyApp(Starlette):
    """The Starlette app, with a front door for the lean routes: a POST to one of their paths goes
    straight to its handler, which reads `receive` and writes `send` itself, and is counted here
    (metrics, access line) with the status it returns. No Request object, routing table,
    middleware stack or per-message `send` wrapper on the way.

    Starlette's table lists the lean paths too, so other methods get their 405, a trailing slash
    its redirect, and a scope this door passes over (a root_path, or a browser's request with an
    Origin while CORS is on: CORSMiddleware adds its headers) is still served, and counted by
    MetricsMiddleware."""

    def __init__(self, st: ServerState, lean: Mapping[str, Lean], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.polystream, self._lean = st, lean
        self._cors = bool(st.config.cors_origins)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path")
                and not (self._cors and _has_origin(scope))):  # a browser's: CORS headers, via Starlette
            handler = self._lean.get(scope["path"])
            if handler is not None:
                status = 500
                try:
                    status = await handler(self.polystream, scope, receive, send)
                finally:
                    self.polystream.metrics.request(scope["path"], "POST", status)
                    log_access(scope, status)
                return
        await super().__call__(scope, receive, send)


def _has_origin(scope: Any) -> bool:
    return any(name == b"origin" for name, _ in scope["headers"])


class _LeanRoute:
    """A lean handler as a Starlette route's ASGI app (for the cases ProxyApp passes over)."""

    def __init__(self, handler: Lean) -> None:
        self.handler = handler

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.handler(scope["app"].polystream, scope, receive, send)


def _routes() -> list[Route]:
    table: list[tuple[str, Callable[..., Any], list[str]]] = [
        ("/chat/completions", _LeanRoute(routes_chat.chat_completions), ["POST"]),
        ("/responses", routes_responses.create, ["POST"]),
        ("/responses/{response_id}", routes_responses.retrieve, ["GET"]),
        ("/responses/{response_id}", routes_responses.delete, ["DELETE"]),
        ("/responses/{response_id}/cancel", routes_responses.cancel, ["POST"]),
        ("/responses/{response_id}/poll", routes_responses.poll, ["GET"]),
        ("/models", models, ["GET"]),
    ]
    out = [Route(prefix + path, fn, methods=methods) for prefix in ("/v1", "") for path, fn, methods in table]
    out += [
        Route("/health", model_health, methods=["GET"]),
        Route("/health/liveliness", liveliness, methods=["GET"]),
        Route("/health/liveness", liveliness, methods=["GET"]),
        Route("/health/readiness", readiness, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return out


def create_app(config: ProxyConfig | None = None, service: Any = None, *, background: bool = True) -> ProxyApp:
    """The ASGI app. `service`: a ResponsesService to use instead of building one from `config`
    (the app starts and closes whichever it has); `background=False` runs without one."""
    config = config or embedded_default()
    auth = Authenticator.from_config(config)
    st = ServerState(config, auth, Metrics(), service)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        install_redaction()
        if st.service is None and background:
            st.service = build_service(config)
        _link_peers(st.service, auth)
        if st.service is not None and hasattr(st.service, "start"):
            await _maybe_await(st.service.start())
        names = config.models.names()
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        log.info("polystream proxy ready (%s): models %s; %s store; %s", config.source, shown or "none",
                 config.store.type, "no keys configured (open)" if auth.open else "API key required")
        try:
            yield
        finally:
            if st.service is not None and hasattr(st.service, "close"):
                await _maybe_await(st.service.close())

    app = ProxyApp(
        st,
        _LEAN,
        routes=_routes(),
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.polystream = st
    app.add_middleware(MetricsMiddleware, metrics=st.metrics)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=config.cors_origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["*"], max_age=600)
    install_redaction()
    install_redaction((ACCESS_LOGGER,))  # a query string may carry a key (?key=…)
    return app


# ---------------------------------------------------------------- running it


def _uvicorn_config(app: Any, host: str, port: int, log_level: str = "info") -> Any:
    import uvicorn

    # lifespan "on": a failing startup (bad Redis URL, …) must stop the server, not be ignored.
    # Keep idle connections longer than clients' pools do (httpx: 5 s, like uvicorn's default):
    # equal timeouts race, and a client reusing a connection the server is closing gets a reset.
    # uvicorn's access log is off: we write our own (metrics.log_access), at the level given here,
    # as uvicorn did for its own.
    logging.getLogger(ACCESS_LOGGER).setLevel(log_level.upper())
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                          timeout_graceful_shutdown=5, server_header=False, timeout_keep_alive=75,
                          backlog=4096, access_log=False)


def serve(config_path: str | None = None, host: str = "127.0.0.1", port: int = 4000, log_level: str = "info") -> None:
    import uvicorn

    config = load_config(config_path)
    # Our own loggers (polystream.*) print like uvicorn's; uvicorn's do not propagate to root.
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    quiet_http_logs(log_level)
    server = uvicorn.Server(_uvicorn_config(create_app(config), host, port, log_level))
    install_redaction()  # after uvicorn configured its handlers
    server.run()


def quiet_http_logs(log_level: str) -> None:
    """httpx/httpcore log every upstream request at INFO (with its URL): too chatty for a proxy."""
    if log_level.lower() != "debug":
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)


class ServerThread:
    """Runs an app under uvicorn on its own thread and loop, on a free port unless given."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        import uvicorn

        self.host = host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port = self._sock.getsockname()[1]
        self.server = uvicorn.Server(_uvicorn_config(app, host, self.port, log_level))
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> ServerThread:
        def run() -> None:
            try:
                self.server.run(sockets=[self._sock])
            except BaseException as exc:  # noqa: BLE001 - surfaced by start()
                self.error = exc

        install_redaction()
        self._thread = threading.Thread(target=run, name="polystream-proxy", daemon=True)
        self._thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout / 0.01)):
            if self.server.started or not self._thread.is_alive():
                break
            deadline.wait(0.01)
        if not self.server.started:
            self.stop()
            raise RuntimeError(f"proxy did not start: {self.error!r}")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
