"""Pooled httpx clients (one sync client per process, one async client per event loop) and the
translation of httpx failures into the exception tree.

The async client is a LeanAsyncClient on LeanTransport (_transport.py), unless a proxy is
configured in the environment: httpx only applies HTTP(S)_PROXY / ALL_PROXY with its own
transport, so then it is a plain httpx.AsyncClient."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import urllib.request
import weakref
from typing import Any

import httpx

from . import errors
from ._transport import LeanTransport

_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=30.0)
_lock = threading.Lock()
_sync: httpx.Client | None = None
_async: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = weakref.WeakKeyDictionary()


def sync_client() -> httpx.Client:
    global _sync
    if _sync is None:
        with _lock:
            if _sync is None:
                _sync = httpx.Client(limits=_LIMITS, timeout=None)
    return _sync


def async_client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _async.get(loop)
    if client is None:
        if urllib.request.getproxies():
            client = httpx.AsyncClient(limits=_LIMITS, timeout=None)
        else:
            client = LeanAsyncClient(timeout=None, transport=LeanTransport(keepalive_expiry=_LIMITS.keepalive_expiry or 30.0))
        _async[loop] = client
    return client


_httpx_log = logging.getLogger("httpx")


class LeanAsyncClient(httpx.AsyncClient):
    """The pooled async client. A request polystream makes (method, URL, headers, JSON body,
    timeout) is built and sent without the client's per-request machinery it never uses: URL
    merging against a base, cookies (a proxy must not carry one user's upstream cookies into
    another's requests anyway), auth flows, redirects, event hooks. About a third of the CPU
    of opening a stream, measured. Anything else goes the usual httpx way."""

    def __init__(self, *, transport: LeanTransport, timeout: Any = None) -> None:
        super().__init__(timeout=timeout, transport=transport)
        self._lean = transport
        self._urls: dict[str, httpx.URL] = {}

    def build_request(self, method: str, url: Any, *, headers: Any = None, json: Any = None,
                      timeout: Any = httpx.USE_CLIENT_DEFAULT, **rest: Any) -> httpx.Request:
        if rest or not isinstance(url, str) or not isinstance(timeout, httpx.Timeout) or not isinstance(headers, dict):
            return super().build_request(method, url, headers=headers, json=json, timeout=timeout, **rest)
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= 256:  # a handful of upstreams in practice; bound it anyway
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(url)
        merged = self.headers.copy()
        merged.update(headers)
        content = None
        if json is not None:
            content = _dumps(json)
            if "content-type" not in merged:
                merged["Content-Type"] = "application/json"
        return httpx.Request(method, parsed, headers=merged, content=content, extensions={"timeout": timeout.as_dict()})

    async def send(self, request: httpx.Request, *, stream: bool = False, **rest: Any) -> httpx.Response:
        if rest or request.url.scheme not in ("http", "https"):
            return await super().send(request, stream=stream, **rest)
        response = await self._lean.handle_async_request(request)
        response.request = request
        if _httpx_log.isEnabledFor(logging.INFO):  # httpx's own line, for those who turn it on
            _httpx_log.info('HTTP Request: %s %s "%s %d %s"', request.method, request.url,
                            response.http_version, response.status_code, response.reason_phrase)
        if not stream:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response


def _dumps(body: Any) -> bytes:
    # As httpx encodes `json=`: compact, UTF-8, NaN refused.
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def timeouts(connect: float | None, idle: float | None) -> httpx.Timeout:
    """`idle` bounds every wait for bytes (between chunks, too): httpx's read timeout."""
    return httpx.Timeout(connect=connect, read=idle, write=connect, pool=connect)


def transport_error(exc: Exception, provider: str, model: str, phase: str, **extra: Any) -> errors.APIError:
    """An httpx failure as the matching exception (`phase` says where it happened, for the message)."""
    if isinstance(exc, httpx.ConnectTimeout):
        cls: type[errors.APIError] = errors.Timeout
        what = "connect timeout"
    elif isinstance(exc, httpx.ReadTimeout):
        cls, what = errors.Timeout, "idle timeout: no bytes from the provider"
    elif isinstance(exc, httpx.TimeoutException):
        cls, what = errors.Timeout, "timeout"
    else:
        cls, what = errors.APIConnectionError, "connection error"
    if extra.get("partial") is not None:
        cls = errors.mid_stream(cls)
    err = cls(f"{provider}: {what} {phase} ({type(exc).__name__}: {exc})", provider=provider, model=model, **extra)
    err.__cause__ = exc
    return err
