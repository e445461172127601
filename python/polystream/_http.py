"""Pooled httpx clients (one sync client per process, one async client per event loop) and the
translation of httpx failures into the exception tree."""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

import httpx

from . import errors

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
        client = _async[loop] = httpx.AsyncClient(limits=_LIMITS, timeout=None)
    return client


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
