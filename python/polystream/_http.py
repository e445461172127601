"""Pooled httpx clients (one sync client per process, one async client per event loop) and the
translation of httpx failures into the exception tree.

Both are lean (LeanClient / LeanAsyncClient on the transports of _transport.py) unless a proxy
is configured in the environment: httpx applies HTTP(S)_PROXY / ALL_PROXY only with its own
transport, so then they are plain httpx clients."""

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
from ._transport import LeanTransport, SyncLeanTransport

_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=30.0)
_IDLE_PER_ORIGIN = 100
_lock = threading.Lock()
_sync: httpx.Client | None = None
_async: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = weakref.WeakKeyDictionary()
_httpx_log = logging.getLogger("httpx")


def sync_client() -> httpx.Client:
    global _sync
    if _sync is None:
        with _lock:
            if _sync is None:
                if urllib.request.getproxies():
                    _sync = httpx.Client(limits=_LIMITS, timeout=None)
                else:
                    _sync = LeanClient(SyncLeanTransport(max_idle_per_origin=_IDLE_PER_ORIGIN,
                                                         keepalive_expiry=_LIMITS.keepalive_expiry or 30.0))
    return _sync


def async_client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _async.get(loop)
    if client is None:
        if urllib.request.getproxies():
            client = httpx.AsyncClient(limits=_LIMITS, timeout=None)
        else:
            client = LeanAsyncClient(LeanTransport(max_idle_per_origin=_IDLE_PER_ORIGIN,
                                                   keepalive_expiry=_LIMITS.keepalive_expiry or 30.0))
        _async[loop] = client
    return client


class _LeanRequests:
    """The pooled clients' request building. A request polystream makes (method, URL string,
    header dict, JSON body, Timeout) is built directly: the URL parsed once per string, no
    merging against a base URL, no cookies (a proxy must not carry one user's upstream cookies
    into another's requests anyway). With `send`, that skips about a third of the CPU of
    opening a stream. Any other request is built the usual httpx way."""

    headers: httpx.Headers
    # Per URL string: the parsed URL, and the head httpx would start the request with (Host, then
    # the client's default headers) as (name, value, lower-case name).
    _urls: dict[str, tuple[httpx.URL, list[tuple[bytes, bytes, str]]]]

    def build_request(self, method: str, url: Any, *, headers: Any = None, json: Any = None,
                      timeout: Any = httpx.USE_CLIENT_DEFAULT, **rest: Any) -> httpx.Request:
        if (rest or json is None or not isinstance(url, str) or not isinstance(timeout, httpx.Timeout)
                or not isinstance(headers, dict)):
            return super().build_request(method, url, headers=headers, json=json, timeout=timeout, **rest)  # type: ignore[misc, no-any-return]
        known = self._urls.get(url)
        if known is None:
            if len(self._urls) >= 256:  # a handful of upstreams in practice; bound it anyway
                self._urls.clear()
            parsed = httpx.URL(url)
            head = [(b"Host", parsed.netloc, "host")] + [(k, v, k.decode("latin-1").lower()) for k, v in self.headers.raw]
            known = self._urls[url] = (parsed, head)
        parsed, head = known
        # Every header httpx would send, in its order (a caller's header replaces a default of the
        # same name), so the request is made from its parts (`stream=`): httpx's own header
        # merging and defaulting, two thirds of the cost of building a request, has nothing to do.
        given = {k.lower() for k in headers}
        raw = [(k, v) for k, v, low in head if low not in given]
        raw += [(_header_bytes(k), _header_bytes(v)) for k, v in headers.items()]
        content = _dumps(json)
        if "content-length" not in given:
            raw.append((b"Content-Length", b"%d" % len(content)))
        if "content-type" not in given:
            raw.append((b"Content-Type", b"application/json"))
        request = httpx.Request(method, parsed, headers=raw, stream=httpx.ByteStream(content),
                                extensions={"timeout": timeout.as_dict()})
        request.read()  # `content` set, as for a request built from content=
        return request


def _log(request: httpx.Request, response: httpx.Response) -> None:
    if _httpx_log.isEnabledFor(logging.INFO):  # httpx's own line, for those who turn it on
        _httpx_log.info('HTTP Request: %s %s "%s %d %s"', request.method, request.url,
                        response.http_version, response.status_code, response.reason_phrase)


class LeanClient(_LeanRequests, httpx.Client):
    """The pooled sync client: SyncLeanTransport, and `send` straight to it (no auth flow,
    redirects, cookies or event hooks, none of which polystream uses)."""

    def __init__(self, transport: SyncLeanTransport) -> None:
        super().__init__(timeout=None, transport=transport)
        self._lean, self._urls = transport, {}

    def send(self, request: httpx.Request, *, stream: bool = False, **rest: Any) -> httpx.Response:
        if rest:
            return super().send(request, stream=stream, **rest)
        response = self._lean.handle_request(request)
        response.request = request
        _log(request, response)
        if not stream:
            try:
                response.read()
            finally:
                response.close()
        return response


class LeanAsyncClient(_LeanRequests, httpx.AsyncClient):
    """The pooled async client: LeanClient's twin on LeanTransport."""

    def __init__(self, transport: LeanTransport) -> None:
        super().__init__(timeout=None, transport=transport)
        self._lean, self._urls = transport, {}

    async def send(self, request: httpx.Request, *, stream: bool = False, **rest: Any) -> httpx.Response:
        if rest:
            return await super().send(request, stream=stream, **rest)
        response = await self._lean.handle_async_request(request)
        response.request = request
        _log(request, response)
        if not stream:
            try:
                await response.aread()
            finally:
                await response.aclose()
        return response


def _header_bytes(v: str | bytes) -> bytes:
    # As httpx encodes a header name or value given as str: ASCII, or an error.
    return v if isinstance(v, bytes) else v.encode("ascii")


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
