"""`completion()` / `acompletion()`: one interface to every provider.

A call resolves the provider from the model name, builds the HTTP request, opens the stream and
reads until the first chunk, retrying (exponential backoff with jitter, honouring Retry-After)
and then falling back to other models on retryable failures. Only then does it return: once a
chunk exists, nothing is retried, because the caller may already have shown output.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from . import errors
from ._core import ChunkDecoder
from ._http import async_client, sync_client, timeouts, transport_error
from .fake import mock_body
from .providers import ChatRequest, provider_class, split_model
from .providers.base import Provider
from .streaming import AsyncStream, Stream, _StreamState
from .types import ChatCompletion

__all__ = ["completion", "acompletion"]

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_IDLE_TIMEOUT = 120.0


@dataclass
class _Call:
    """One attempt's resolved settings."""

    provider: Provider
    request: ChatRequest
    connect_timeout: float | None
    idle_timeout: float | None
    max_duration: float | None
    include_cost: bool
    fake_stream: bool
    mock_response: Any

    @property
    def label(self) -> str:
        return f"{self.provider.name}/{self.request.model}"


@dataclass
class _Retry:
    num_retries: int
    backoff: float
    max_backoff: float

    def delay(self, attempt: int, err: errors.APIError) -> float:
        hint = getattr(err, "retry_after", None)
        if hint is not None:
            return min(float(hint), 60.0)
        base = min(self.max_backoff, self.backoff * (2**attempt))
        return base * random.uniform(0.5, 1.0)  # jitter: spread a thundering herd


def _resolve(model: str | Mapping[str, Any], messages: list[dict[str, Any]], kw: dict[str, Any]) -> _Call:
    settings = dict(kw)
    if isinstance(model, Mapping):  # a fallback given as {"model": ..., overrides...}
        settings.update({k: v for k, v in model.items() if k != "model"})
        model = model["model"]
    api_base = settings.pop("api_base", None) or settings.pop("base_url", None)
    provider_name, model_name = split_model(str(model))
    provider = provider_class(provider_name)(
        api_key=settings.pop("api_key", None), api_base=api_base, extra_headers=settings.pop("extra_headers", None)
    )
    idle = settings.pop("idle_timeout", None)
    timeout = settings.pop("timeout", None)
    call = _Call(
        provider=provider,
        request=ChatRequest(model_name, messages, {}),
        connect_timeout=settings.pop("connect_timeout", DEFAULT_CONNECT_TIMEOUT),
        idle_timeout=idle if idle is not None else (timeout if timeout is not None else DEFAULT_IDLE_TIMEOUT),
        max_duration=settings.pop("max_duration", None),
        include_cost=bool(settings.pop("include_cost", False)),
        fake_stream=bool(settings.pop("fake_stream", False)),
        mock_response=settings.pop("mock_response", None),
    )
    # LiteLLM's switches: never sent; they say which parameters not to send.
    drop = bool(settings.pop("drop_params", False))
    named = set(settings.pop("additional_drop_params", None) or ())
    params = {k: v for k, v in settings.items() if v is not None and k not in named}
    call.request.params = provider.drop_unsupported(model_name, params) if drop else params
    return call


def _state(call: _Call, decoder: ChunkDecoder) -> _StreamState:
    cost_model = f"{call.provider.name}/{call.request.model}" if call.include_cost else None
    return _StreamState(decoder, call.provider.name, call.request.model, call.max_duration, cost_model)


def _mock_or_fake_response(pieces: list[bytes], *, asynchronous: bool) -> httpx.Response:
    """An in-memory streaming response carrying `pieces`, so mock and fake streams take the real
    path (httpx wants an async byte iterator for the async twin)."""
    content: Any = _apieces(pieces) if asynchronous else iter(pieces)
    return httpx.Response(200, content=content)


def _sse_events(body: bytes) -> list[bytes]:
    # One piece per SSE event, as a provider sends them: a mock streams like the real thing.
    return [event + b"\n\n" for event in body.split(b"\n\n") if event]


async def _apieces(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


def _mocked(call: _Call, *, asynchronous: bool = False) -> httpx.Response | None:
    """The offline response for `mock_response` (an exception instance is raised, as a provider would)."""
    if call.mock_response is None:
        return None
    if isinstance(call.mock_response, BaseException):
        raise call.mock_response
    body = mock_body(call.mock_response, call.request.model)
    return _mock_or_fake_response(_sse_events(body), asynchronous=asynchronous)


def _prepare(call: _Call, client: httpx.Client | httpx.AsyncClient) -> tuple[bool, httpx.Request]:
    """(fake streaming?, the HTTP request) for one attempt; the key is checked before any I/O."""
    call.provider.check_key(call.request.model)
    fake = call.fake_stream and call.provider.can_fake_stream
    spec = call.provider.build_request(call.request, stream=not fake)
    timeout = timeouts(call.connect_timeout, call.idle_timeout)
    if spec.content is not None:  # signed bytes: sent exactly as they are
        req = client.build_request(spec.method, spec.url, headers=spec.headers, content=spec.content, timeout=timeout)
    else:
        req = client.build_request(spec.method, spec.url, headers=spec.headers, json=spec.json, timeout=timeout)
    return fake, req


# ---------------------------------------------------------------- sync


def _open(call: _Call, client: httpx.Client) -> Stream:
    mocked = _mocked(call)
    if mocked is not None:
        return _start(mocked, call, "openai_chat")
    fake, req = _prepare(call, client)
    try:
        response = client.send(req, stream=True)
    except httpx.HTTPError as exc:
        raise transport_error(exc, call.provider.name, call.request.model, "before the response") from exc
    try:
        if response.status_code >= 400:
            raise call.provider.map_error(call.request.model, response.status_code, response.headers, response.read())
        if fake:
            body, dialect = call.provider.replay_as_stream(response.read())
            response.close()
            return _start(_mock_or_fake_response([body], asynchronous=False), call, dialect)
    except httpx.HTTPError as exc:
        response.close()
        raise transport_error(exc, call.provider.name, call.request.model, "reading the error body") from exc
    except BaseException:
        response.close()
        raise
    return _start(response, call, call.provider.dialect)


def _start(response: httpx.Response, call: _Call, dialect: str) -> Stream:
    stream = Stream(response, _state(call, ChunkDecoder(dialect, accumulate=True)))
    stream.prefetch()
    return stream


def _attempts(model: Any, fallbacks: Iterable[Any] | None) -> list[Any]:
    return [model, *(fallbacks or [])]


def completion(
    model: str,
    messages: list[dict[str, Any]],
    *,
    stream: bool = False,
    num_retries: int = 0,
    fallbacks: Iterable[str | Mapping[str, Any]] | None = None,
    retry_backoff: float = 0.5,
    max_backoff: float = 8.0,
    client: httpx.Client | None = None,
    **kwargs: Any,
) -> Any:
    """Chat completion from any provider: an iterator of chunks (`Stream`) when `stream=True`, the
    final `ChatCompletion` otherwise.

    `model` is `"provider/model"` (`"anthropic/claude-sonnet-4-5"`, `"gemini/gemini-2.5-flash"`; a
    bare name means OpenAI, or the server at `api_base`). Other keywords: OpenAI-style parameters
    (`temperature`, `max_tokens`, `tools`, `tool_choice`, `stop`, `response_format`,
    `reasoning_effort`, `stream_options`, …) and `api_key`, `api_base`, `extra_headers`,
    `connect_timeout`, `idle_timeout` (longest wait for bytes, between chunks too; `timeout` is an
    alias), `max_duration` (whole stream), `include_cost`, `fake_stream`, `mock_response`, and
    LiteLLM's `drop_params=True` (leave out what the model is known to reject, e.g. `temperature`
    on OpenAI's reasoning models) and `additional_drop_params=[names]`.
    """
    retry = _Retry(num_retries, retry_backoff, max_backoff)
    http = client or sync_client()
    last: errors.APIError | None = None
    for target in _attempts(model, fallbacks):
        call = _resolve(target, messages, kwargs)
        for attempt in range(retry.num_retries + 1):
            try:
                s = _open(call, http)
            except errors.APIError as err:
                last = err
                if not err.retryable or attempt == retry.num_retries:
                    break
                time.sleep(retry.delay(attempt, err))
                continue
            return s if stream else _drain(s)
    assert last is not None
    raise last


def _drain(s: Stream) -> ChatCompletion:
    for _ in s:
        pass
    return s.completion


# ---------------------------------------------------------------- async


async def _aopen(call: _Call, client: httpx.AsyncClient) -> AsyncStream:
    mocked = _mocked(call, asynchronous=True)
    if mocked is not None:
        return await _astart(mocked, call, "openai_chat")
    fake, req = _prepare(call, client)
    try:
        response = await client.send(req, stream=True)
    except httpx.HTTPError as exc:
        raise transport_error(exc, call.provider.name, call.request.model, "before the response") from exc
    try:
        if response.status_code >= 400:
            body = await response.aread()
            raise call.provider.map_error(call.request.model, response.status_code, response.headers, body)
        if fake:
            body, dialect = call.provider.replay_as_stream(await response.aread())
            await response.aclose()
            return await _astart(_mock_or_fake_response([body], asynchronous=True), call, dialect)
    except httpx.HTTPError as exc:
        await response.aclose()
        raise transport_error(exc, call.provider.name, call.request.model, "reading the error body") from exc
    except BaseException:
        await response.aclose()
        raise
    return await _astart(response, call, call.provider.dialect)


async def _astart(response: httpx.Response, call: _Call, dialect: str) -> AsyncStream:
    stream = AsyncStream(response, _state(call, ChunkDecoder(dialect, accumulate=True)))
    await stream.prefetch()
    return stream


async def acompletion(
    model: str,
    messages: list[dict[str, Any]],
    *,
    stream: bool = False,
    num_retries: int = 0,
    fallbacks: Iterable[str | Mapping[str, Any]] | None = None,
    retry_backoff: float = 0.5,
    max_backoff: float = 8.0,
    client: httpx.AsyncClient | None = None,
    **kwargs: Any,
) -> Any:
    """The async twin of `completion`: `async for chunk in await acompletion(..., stream=True)`."""
    retry = _Retry(num_retries, retry_backoff, max_backoff)
    http = client or async_client()
    last: errors.APIError | None = None
    for target in _attempts(model, fallbacks):
        call = _resolve(target, messages, kwargs)
        for attempt in range(retry.num_retries + 1):
            try:
                s = await _aopen(call, http)
            except errors.APIError as err:
                last = err
                if not err.retryable or attempt == retry.num_retries:
                    break
                await asyncio.sleep(retry.delay(attempt, err))
                continue
            if stream:
                return s
            async for _ in s:
                pass
            return s.completion
    assert last is not None
    raise last
