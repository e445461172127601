"""/v1/responses: OpenAI's Responses API over any chat provider, with background mode.

    POST   /v1/responses                  plain (final Response JSON), `stream`, `background`
                                          (queued Response at once), or `background` + `stream`
    GET    /v1/responses/{id}             the snapshot; `?stream=true&starting_after=N` replays the
                                          events after N from the log, then follows live to the end
    GET    /v1/responses/{id}/poll?cursor=N   only what is new after the cursor, one short request:
                                          {"id", "status", "cursor", "text", "events", "done"}
    POST   /v1/responses/{id}/cancel      idempotent; stops the producer and the upstream request
    DELETE /v1/responses/{id}             {"id", "object": "response.deleted", "deleted": true}

Everything below the HTTP layer is `polystream.background.ResponsesService`. Responses belong to
the key that created them: the service gets an opaque owner id and answers None for a response
that is missing or someone else's (→ 404, indistinguishable). A store outage is a 503 (inside a
stream already under way: an error event, which the openai SDK raises). Another proxy on the same
store may route a retrieve (plain or streamed) or poll here, signed for the owner
(background/peers.py).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..background.peers import HEADER as PEER_HEADER
from ..background.peers import NODE, Misdirected
from .auth import Principal
from .common import ClientGone, SSEResponse, authenticate, json_response, read_json, state, unless_disconnected
from .errors import ProxyError, bad_request, from_exception, not_found
from .metrics import Metrics
from .routes_chat import check_model, check_params, check_bool, resolve

ROUTE = "/v1/responses"
ROUTE_ID = "/v1/responses/{response_id}"

# Responses-API fields with their own checks (or none): skipped by the generic parameter check.
_OWN_FIELDS = ("model", "input", "stream", "background", "store", "instructions", "metadata", "tools",
               "tool_choice", "text", "reasoning", "include", "max_output_tokens", "previous_response_id")


def _service(request: Request) -> Any:
    svc = state(request).service
    if svc is None:
        raise ProxyError(503, "Background mode is not available on this server.", "service_unavailable",
                         None, "responses_unavailable")
    return svc


# OpenAI's ResponseIncludable. Only the logprobs one changes what a chat provider is asked; the
# others name outputs of built-in tools (refused elsewhere) or of OpenAI's own storage, and are
# accepted as OpenAI accepts them without those tools: clients such as Codex send
# `reasoning.encrypted_content` on every request. A value outside the list is a typo: 400, as OpenAI.
_INCLUDABLE = ("file_search_call.results", "web_search_call.results", "web_search_call.action.sources",
               "message.input_image.image_url", "computer_call_output.output.image_url",
               "code_interpreter_call.outputs", "reasoning.encrypted_content", "message.output_text.logprobs")


def _check_include(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        raise bad_request("`include` must be an array of strings.", "include", "invalid_type")
    for i, item in enumerate(value):
        if item not in _INCLUDABLE:
            supported = ", ".join(f"'{v}'" for v in _INCLUDABLE)
            raise bad_request(f"Invalid value: {item!r}. Supported values are: {supported}.", f"include[{i}]",
                              "invalid_value")


def _check_body(request: Request, body: dict[str, Any]) -> tuple[bool, bool]:
    name = check_model(body.get("model"))
    value = body.get("input")
    if value is None:
        raise bad_request("`input` is required.", "input", "missing_required_parameter")
    if not isinstance(value, (str, list)) or (isinstance(value, list) and not value):
        raise bad_request("`input` must be a string or a non-empty array of input items.", "input", "invalid_type")
    stream, background = check_bool(body), check_bool(body, "background")
    check_bool(body, "store")
    if background and body.get("store") is False:
        raise bad_request("Background mode requires `store: true`.", "store", "invalid_value")
    mot = body.get("max_output_tokens")
    if mot is not None and (isinstance(mot, bool) or not isinstance(mot, int) or mot < 1):
        raise bad_request("`max_output_tokens` must be a positive integer.", "max_output_tokens", "invalid_type")
    if body.get("metadata") is not None and not isinstance(body["metadata"], dict):
        raise bad_request("`metadata` must be an object.", "metadata", "invalid_type")
    _check_include(body.get("include"))
    check_params(body, _OWN_FIELDS)
    resolve(state(request).config, name)  # unknown model → 404 now, not a failed response later
    return stream, background


async def create(request: Request) -> Response:
    st = state(request)
    started = request.scope.get("polystream.started") or time.monotonic()
    principal = authenticate(request)
    body = await read_json(request, st.config.max_body_bytes)
    stream, background = _check_body(request, body)
    principal.check_model(body["model"])
    svc = _service(request)
    if getattr(svc, "peers", None) is not None:
        svc.peers.learn(request.scope.get("server"))  # where other proxies reach what it produces
    if stream:
        response = await _sse(svc.stream(principal.owner, body), ROUTE, request, started)
        if background:
            st.metrics.job("queued")
        return response
    try:
        # A background create returns at once; a foreground one is cancelled if the client
        # leaves (OpenAI: "to cancel a synchronous response, terminate the connection").
        data = await unless_disconnected(request, svc.create(principal.owner, body))
    except ClientGone:
        raise
    except Exception as exc:
        raise _failure(exc) from exc
    if background:
        st.metrics.job("queued")
    return json_response(data)


async def retrieve(request: Request) -> Response:
    principal, forward = _reader(request)
    if _query_bool(request, "stream"):
        after = _query_int(request, "starting_after", default=-1, minimum=-1)
        _, events = await _owned(request, principal, "events", after=after, forward=forward)
        return _answered(request, forward, await _sse(events, ROUTE_ID, request, None))
    _, data = await _owned(request, principal, "retrieve", forward=forward)
    return _answered(request, forward, json_response(data))


async def poll(request: Request) -> Response:
    principal, forward = _reader(request)
    cursor = _query_int(request, "cursor", default=0, minimum=0)
    _, data = await _owned(request, principal, "poll", cursor, forward=forward)
    return _answered(request, forward, json_response(data))


def _answered(request: Request, forward: bool, response: Response) -> Response:
    """A read routed here (not `forward`) says which node answered it (peers.NODE)."""
    if not forward:
        response.raw_headers.append((NODE.encode(), state(request).service.peers.node.encode()))
    return response


def _reader(request: Request) -> tuple[Principal, bool]:
    """Who reads, and whether the read may be routed on: the caller's key (yes), or, for a read
    another proxy routed here, the owner it signed for (no: it ends here)."""
    value = request.headers.get(PEER_HEADER)
    peers = getattr(state(request).service, "peers", None)
    if value is None or peers is None:
        return authenticate(request), True
    query = request.scope.get("query_string", b"").decode("latin-1")
    target = request.scope["path"] + ("?" + query if query else "")
    try:
        owner = peers.verify(value, request.method, target)
    except Misdirected:
        raise ProxyError(421, "This read was meant for another proxy process.", "invalid_request_error", None,
                         "misdirected_request") from None
    if owner is None:
        raise ProxyError(401, "Invalid peer signature.", "authentication_error", None, "invalid_peer_signature")
    return Principal(owner, "peer"), False


async def cancel(request: Request) -> Response:
    _, data = await _owned(request, authenticate(request), "cancel")
    state(request).metrics.job("cancelled")
    return json_response(data)


async def delete(request: Request) -> Response:
    rid, _ = await _owned(request, authenticate(request), "delete")
    state(request).metrics.job("deleted")
    return json_response({"id": rid, "object": "response.deleted", "deleted": True})


async def _owned(request: Request, principal: Any, operation: str, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """`service.<operation>(owner, id, …)` for the response in the path. A response that is
    missing or another key's (None / False) is a 404; a store failure maps to its error."""
    rid = request.path_params["response_id"]
    try:
        result = getattr(_service(request), operation)(principal.owner, rid, *args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        raise _failure(exc) from exc
    if result is None or result is False:
        err = _missing(rid)
        if kwargs.get("forward") is False:  # a read routed here: "not found" is this node's answer
            err.headers[NODE] = state(request).service.peers.node
        raise err
    return rid, result


# ---------------------------------------------------------------- helpers


async def _sse(events: Any, route: str, request: Request, started: float | None) -> Response:
    """Wait for the first event before answering, so a store outage or a refused request is still
    an HTTP status rather than an error inside a 200 stream."""
    iterator = None
    try:
        if inspect.isawaitable(events):
            events = await events
        iterator = events.__aiter__()
        first = await iterator.__anext__()
    except StopAsyncIteration:
        first = None
    except Exception as exc:
        if iterator is not None:
            await _aclose(iterator)
        raise _failure(exc) from exc
    metrics = state(request).metrics
    return SSEResponse(_frames(first, iterator, route, metrics, started), route, metrics, None)


async def _frames(first: Any, rest: Any, route: str, metrics: Metrics, started: float | None) -> AsyncIterator[bytes]:
    """SSE frames; time to first token is taken at the first output delta (response.created and
    friends come at once and say nothing about the model's latency)."""
    try:
        if first is None:
            return
        waiting = started is not None
        yield _frame(first)
        async for event in rest:
            if waiting and event[1].endswith(".delta"):
                metrics.first_token(route, time.monotonic() - started)  # type: ignore[operator]
                waiting = False
            yield _frame(event)
    finally:
        await _aclose(rest)


def _frame(event: tuple[int, str, bytes]) -> bytes:
    _, name, data = event
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


async def _aclose(iterator: Any) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


def _failure(exc: BaseException) -> ProxyError:
    if isinstance(exc, KeyError):  # the service resolving a model that vanished from the config
        return not_found(f"Unknown model: {exc.args[0] if exc.args else ''}", "model", "model_not_found")
    if isinstance(exc, ValueError) and not isinstance(exc, ProxyError):
        return bad_request(str(exc))
    return from_exception(exc)


def _missing(rid: str) -> ProxyError:
    return not_found(f"No response found with id '{rid}'.", "response_id", "response_not_found")


def _query_bool(request: Request, name: str) -> bool:
    value = request.query_params.get(name)
    if value is None or value.lower() in ("", "false", "0"):
        return False
    if value.lower() in ("true", "1"):
        return True
    raise bad_request(f"`{name}` must be true or false.", name, "invalid_type")


def _query_int(request: Request, name: str, default: int, minimum: int) -> int:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except ValueError:
        raise bad_request(f"`{name}` must be an integer.", name, "invalid_type") from None
    if n < minimum:
        raise bad_request(f"`{name}` must be >= {minimum}.", name, "invalid_value")
    return n
