"""POST /v1/chat/completions: OpenAI's chat API in front of every provider.

`stream: true` answers with SSE: each chunk is written the moment the core decodes it (the core
serialises the chunks of one upstream read into one SSE buffer, `SseFrames`), `data: [DONE]`
ends a complete stream, and a failure after the first chunk is an OpenAI error event
(`data: {"error": …}`, which the openai SDK raises) with no [DONE] after it. Failures before the
first chunk get an HTTP error status (see errors.py). The client disconnecting closes the
upstream request.

The usage chunk (`choices: []`) is relayed only when the client asked for it with
`stream_options.include_usage`, as OpenAI does; the provider call always requests usage.

Served as plain ASGI in front of Starlette (see `ProxyApp` in app.py): no routing table, middleware
stack or Request object per call, and no `send` wrappers per chunk.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from starlette.datastructures import Headers

from .._core import SseFrames
from ..client import acompletion
from .auth import Principal
from .common import (
    ClientGone,
    DisconnectWatch,
    ServerState,
    aclose_quietly,
    error_reply,
    internal_error,
    json_response,
    read_json_body,
    relay,
)
from .config import ProxyConfig
from .errors import ProxyError, bad_request, from_exception, unknown_model

ROUTE = "/v1/chat/completions"
PATHS = (ROUTE, "/chat/completions")
_DONE = b"data: [DONE]\n\n"  # sent with the end of the body
T = TypeVar("T")

# Call settings that only the config may set: a client choosing api_base could send the proxy's
# provider key anywhere; the rest are polystream internals, not OpenAI parameters.
_RESERVED = frozenset({
    "api_key", "api_base", "base_url", "extra_headers", "client", "mock_response", "fake_stream",
    "connect_timeout", "idle_timeout", "timeout", "max_duration", "include_cost", "num_retries",
    "fallbacks", "retry_backoff", "max_backoff", "custom_llm_provider",
})
_NUMBERS = ("temperature", "top_p", "frequency_penalty", "presence_penalty")
_INTS = ("max_tokens", "max_completion_tokens", "n", "seed", "top_logprobs")


def check_model(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad_request("`model` is required and must be a non-empty string.", "model",
                          "missing_required_parameter" if value is None else "invalid_type")
    return value


def _check_messages(value: Any) -> list[dict[str, Any]]:
    if value is None:
        raise bad_request("`messages` is required.", "messages", "missing_required_parameter")
    if not isinstance(value, list) or not value:
        raise bad_request("`messages` must be a non-empty array.", "messages", "invalid_type")
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise bad_request(f"`messages[{i}]` must be an object with a string `role`.", f"messages[{i}]",
                              "invalid_type")
    return value


def check_params(body: dict[str, Any], skip: tuple[str, ...]) -> dict[str, Any]:
    """The body's OpenAI parameters to pass on, type-checked where a wrong type is common."""
    params = {k: v for k, v in body.items() if k not in skip and v is not None}
    for name in params.keys() & _RESERVED:
        raise bad_request(f"`{name}` cannot be set by a client of this proxy.", name, "unsupported_parameter")
    for name in _NUMBERS:
        v = params.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise bad_request(f"`{name}` must be a number.", name, "invalid_type")
    for name in _INTS:
        v = params.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise bad_request(f"`{name}` must be an integer.", name, "invalid_type")
    stop = params.get("stop")
    if stop is not None and not isinstance(stop, (str, list)):
        raise bad_request("`stop` must be a string or an array of strings.", "stop", "invalid_type")
    top = params.get("top_logprobs")
    if top is not None and not 0 <= top <= 20:
        raise bad_request("`top_logprobs` must be between 0 and 20.", "top_logprobs", "integer_out_of_range")
    return params


def check_bool(body: dict[str, Any], name: str = "stream") -> bool:
    """`body[name]` as a bool (absent: False); 400 if it is there but not a boolean."""
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise bad_request(f"`{name}` must be a boolean.", name, "invalid_type")
    return bool(value)


def resolve(config: ProxyConfig, name: str) -> tuple[str, dict[str, Any]]:
    try:
        return config.models.resolve(name)
    except KeyError:
        raise unknown_model(name) from None


async def chat_completions(st: ServerState, scope: dict[str, Any], receive: Any, send: Any) -> int:
    """The endpoint, as an ASGI app that also gets the server state. Returns the status it sent
    (499: the client left before the answer, which then went nowhere); whoever calls it counts
    the request and writes the access line."""
    started = time.monotonic()
    upstream = None
    try:
        headers = Headers(scope=scope)
        principal = st.auth.authenticate(headers)
        body = await read_json_body(receive, headers, st.config.max_body_bytes)
        stream, include_usage, call = _prepare(st, principal, body)
        if not stream:
            with DisconnectWatch(receive):
                done = await _upstream(_complete(call))
            st.metrics.first_token(ROUTE, time.monotonic() - started)
            await json_response(done)(scope, receive, send)
            return 200
        # One watch from the wait for the first chunk to the end of the relay: the client
        # leaving at any point cancels whatever is awaited, and the upstream is closed below.
        with DisconnectWatch(receive):
            upstream = await _upstream(call)
            # The chunks of each upstream read go out as one write, their SSE events built by the core.
            frames = SseFrames(drop_choiceless=not include_usage)
            end = await relay(send, upstream.batches(), frames, ROUTE, st.metrics, started, _DONE)
        await send({"type": "http.response.body", "body": end, "more_body": False})
        return 200
    except ClientGone:
        return 200 if upstream is not None else 499
    except Exception as exc:
        if upstream is not None:
            raise  # the headers are out (relay reports the source's failures in-band): the server's to handle
        err = exc if isinstance(exc, ProxyError) else internal_error(exc, scope["method"], scope["path"])
        await error_reply(err, st.metrics)(scope, receive, send)
        return err.status
    finally:
        if upstream is not None:
            await aclose_quietly(upstream)


def _prepare(st: ServerState, principal: Principal, body: dict[str, Any]) -> tuple[bool, bool, Any]:
    """Checks the body; (stream, include_usage, the provider call not yet awaited)."""
    name = check_model(body.get("model"))
    messages = _check_messages(body.get("messages"))
    stream = check_bool(body)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request("`stream_options` must be an object.", "stream_options", "invalid_type")
    include_usage = bool((options or {}).get("include_usage"))
    params = check_params(body, ("model", "messages", "stream", "stream_options"))
    logprobs = check_bool(body, "logprobs")
    if params.get("top_logprobs") is not None and not logprobs:
        # As OpenAI: alternatives come only with the tokens, and silence would look like support.
        raise bad_request("`top_logprobs` requires `logprobs: true`.", "top_logprobs", "invalid_value")
    principal.check_model(name)
    model, kwargs = resolve(st.config, name)
    # Always a streaming call: the first chunk is read before acompletion returns, so failures
    # before any output still get a proper status code.
    return stream, include_usage, acompletion(model, messages, stream=True, **{**kwargs, **params})


async def _upstream(work: Awaitable[T]) -> T:
    """`work`, its failures as the errors the client gets (a status, before any output)."""
    try:
        return await work
    except Exception as exc:
        raise from_exception(exc) from exc


async def _complete(call: Any) -> Any:
    upstream = await call
    try:
        async for _ in upstream:
            pass
    finally:
        await upstream.aclose()
    return upstream.completion

