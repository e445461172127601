"""Prometheus metrics, hand-written: a few dict increments per request, nothing per chunk.

Exposed at GET /metrics in the text exposition format (version 0.0.4):

    polystream_requests_total{route,method,status}       counter
    polystream_time_to_first_token_seconds{route}        histogram (request start → first byte of output)
    polystream_chunks_relayed_total{route}               counter (added when a stream ends)
    polystream_errors_total{type}                        counter (error type as sent to the client)
    polystream_background_jobs_total{status}             counter (queued on create, cancelled, deleted)
    polystream_background_jobs{status}                   gauge: responses this process is producing

Also the access log: one line per request at INFO on the "polystream.access" logger, in uvicorn's
format, written once the response is complete. uvicorn's own access log is off: it wrote its line
when the response started, in front of the first chunk. No headers are logged; the query string
is, masked by the redaction filter like every other line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

__all__ = ["ACCESS_LOGGER", "Metrics", "MetricsMiddleware", "log_access"]

ACCESS_LOGGER = "polystream.access"
_access = logging.getLogger(ACCESS_LOGGER)

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _labels(names: tuple[str, ...], values: tuple[Any, ...]) -> str:
    def esc(v: Any) -> str:
        return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{n}="{esc(v)}"' for n, v in zip(names, values)) + "}"


class _Histogram:
    __slots__ = ("counts", "total", "n")

    def __init__(self) -> None:
        self.counts = [0] * len(_BUCKETS)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.total += value
        self.n += 1
        for i, bound in enumerate(_BUCKETS):
            if value <= bound:
                self.counts[i] += 1
                break


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.ttft: dict[str, _Histogram] = {}
        self.chunks: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.jobs: dict[str, int] = {}

    def request(self, route: str, method: str, status: int) -> None:
        key = (route, method, status)
        self.requests[key] = self.requests.get(key, 0) + 1

    def first_token(self, route: str, seconds: float) -> None:
        h = self.ttft.get(route)
        if h is None:
            h = self.ttft[route] = _Histogram()
        h.observe(seconds)

    def relayed(self, route: str, n: int) -> None:
        if n:
            self.chunks[route] = self.chunks.get(route, 0) + n

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def job(self, status: str) -> None:
        self.jobs[status] = self.jobs.get(status, 0) + 1

    def render(self, job_gauge: Mapping[str, int] | None = None) -> bytes:
        out: list[str] = []

        def head(name: str, kind: str, doc: str) -> None:
            out.append(f"# HELP {name} {doc}")
            out.append(f"# TYPE {name} {kind}")

        head("polystream_requests_total", "counter", "HTTP requests by route template, method and status.")
        for (route, method, status), n in sorted(self.requests.items()):
            out.append(f"polystream_requests_total{_labels(('route', 'method', 'status'), (route, method, status))} {n}")
        name = "polystream_time_to_first_token_seconds"
        head(name, "histogram", "Seconds from request start to the first output byte sent.")
        for route, h in sorted(self.ttft.items()):
            cum = 0
            for bound, c in zip(_BUCKETS, h.counts):
                cum += c
                out.append(f"{name}_bucket{_labels(('route', 'le'), (route, repr(bound)))} {cum}")
            out.append(f"{name}_bucket{_labels(('route', 'le'), (route, '+Inf'))} {h.n}")
            out.append(f"{name}_sum{_labels(('route',), (route,))} {h.total}")
            out.append(f"{name}_count{_labels(('route',), (route,))} {h.n}")
        head("polystream_chunks_relayed_total", "counter", "Stream chunks/events written to clients.")
        for route, n in sorted(self.chunks.items()):
            out.append(f"polystream_chunks_relayed_total{_labels(('route',), (route,))} {n}")
        head("polystream_errors_total", "counter", "Errors sent to clients, by OpenAI error type.")
        for kind, n in sorted(self.errors.items()):
            out.append(f"polystream_errors_total{_labels(('type',), (kind,))} {n}")
        head("polystream_background_jobs_total", "counter", "Background responses by event: queued, cancelled, deleted.")
        for job_status, n in sorted(self.jobs.items()):
            out.append(f"polystream_background_jobs_total{_labels(('status',), (job_status,))} {n}")
        if job_gauge:
            head("polystream_background_jobs", "gauge", "Background responses this process is producing, by status.")
            for job_status, n in sorted(job_gauge.items()):
                out.append(f"polystream_background_jobs{_labels(('status',), (job_status,))} {n}")
        return ("\n".join(out) + "\n").encode()


def log_access(scope: Mapping[str, Any], status: int) -> None:
    """`127.0.0.1:50672 - "POST /v1/chat/completions HTTP/1.1" 200`, as uvicorn writes it."""
    if not _access.isEnabledFor(logging.INFO):
        return
    client = scope.get("client")
    path = quote(scope["path"])  # quoted: a decoded %0A must not start a line of its own
    query = scope.get("query_string")
    if query:
        path += "?" + query.decode("ascii", "replace")
    _access.info('%s - "%s %s HTTP/%s" %d', "%s:%d" % tuple(client) if client else "", scope["method"], path,
                 scope.get("http_version", "1.1"), status)


Send = Callable[[Mapping[str, Any]], Awaitable[None]]


class MetricsMiddleware:
    """Counts requests by route template and status, and writes the access line, for the routes
    Starlette serves. Plain ASGI (Starlette's BaseHTTPMiddleware costs a task and a queue hop per
    message; LiteLLM found it eating half its CPU). The chat route does not come through here:
    `ProxyApp` counts it with the status the handler returns, with no `send` wrapper."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        scope["polystream.started"] = time.monotonic()

        async def send_wrapper(message: Mapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            self.metrics.request(getattr(route, "path", "unmatched"), scope["method"], status)
            log_access(scope, status)
