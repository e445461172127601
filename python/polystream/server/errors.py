"""OpenAI-shaped errors: `{"error": {"message", "type", "param", "code"}}`, as JSON or as an SSE event.

Upstream (provider) failures keep their status where the client can act on it, so SDK retry logic
works through the proxy as it would against the provider:

    upstream                              → proxy
    400/409/413/422 (context, policy, …)  → the same status (a bad request stays the client's)
    404                                   → 404
    429                                   → 429, with Retry-After passed on
    401 / 403                             → 502 upstream_auth_error: the *proxy's* provider
                                            credentials are wrong; a 401 would tell the client
                                            its own (valid) proxy key was refused
    500 and other 5xx                     → 502 (a gateway reporting a bad upstream)
    502/503/504/529 (overloaded)          → 503
    connection failure                    → 502;  timeout → 504
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from starlette.responses import Response

from .. import errors as e
from ..background import StoreUnavailable

log = logging.getLogger("polystream.server")

__all__ = ["ProxyError", "error_json", "error_response", "error_event", "from_exception"]


class ProxyError(Exception):
    """An error the proxy answers with; `status` and the OpenAI error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def error_json(err: ProxyError) -> bytes:
    return json.dumps(err.body(), ensure_ascii=False).encode()


def error_response(err: ProxyError) -> Response:
    return Response(error_json(err), err.status, headers=err.headers, media_type="application/json")


def error_event(err: ProxyError) -> bytes:
    """A mid-stream error as OpenAI sends it: a data line whose object has a top-level "error"
    (the openai SDK raises APIError on it)."""
    return b"data: " + error_json(err) + b"\n\n"


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ProxyError:
    return ProxyError(400, message, "invalid_request_error", param, code)


def not_found(message: str, param: str | None = None, code: str | None = None) -> ProxyError:
    return ProxyError(404, message, "invalid_request_error", param, code)


def unknown_model(name: Any) -> ProxyError:
    return ProxyError(404, f"The model `{name}` does not exist or you do not have access to it.",
                      "invalid_request_error", "model", "model_not_found")


def store_unavailable(exc: BaseException | None = None) -> ProxyError:
    # The cause (which may name the Redis URL) goes to the log, not to the client.
    if exc is not None:
        log.warning("store unavailable: %s", exc)
    return ProxyError(503, "The response store is unavailable; retry shortly.",
                      "service_unavailable", None, "store_unavailable", {"retry-after": "1"})


def _upstream_status(exc: e.APIError) -> tuple[int, str, str | None]:
    if isinstance(exc, e.Timeout):
        return 504, "timeout", "upstream_timeout"
    if isinstance(exc, e.APIConnectionError):
        return 502, "api_connection_error", "upstream_connection_error"
    if isinstance(exc, (e.AuthenticationError, e.PermissionDeniedError)):
        return 502, "upstream_error", "upstream_auth_error"
    if isinstance(exc, e.RateLimitError):
        return 429, "rate_limit_error", "rate_limit_exceeded"
    if isinstance(exc, e.ServiceUnavailableError):
        return 503, "service_unavailable", "upstream_unavailable"
    if isinstance(exc, e.InternalServerError):
        return 502, "upstream_error", "upstream_server_error"
    if isinstance(exc, e.ContextWindowExceededError):
        return 400, "invalid_request_error", "context_length_exceeded"
    if isinstance(exc, e.ContentPolicyViolationError):
        return 400, "invalid_request_error", "content_policy_violation"
    if isinstance(exc, e.NotFoundError):
        return 404, "invalid_request_error", exc.code if isinstance(exc.code, str) else "not_found"
    if isinstance(exc, e.BadRequestError):
        status = exc.status_code if exc.status_code in (400, 409, 413, 422) else 400
        return status, "invalid_request_error", exc.code if isinstance(exc.code, str) else None
    return 502, "upstream_error", exc.code if isinstance(exc.code, str) else None


def from_exception(exc: BaseException) -> ProxyError:
    """Any failure (provider call, store, service) as the error the client gets."""
    if isinstance(exc, ProxyError):
        return exc
    if isinstance(exc, StoreUnavailable):
        return store_unavailable(exc)
    if isinstance(exc, e.APIError):
        status, kind, code = _upstream_status(exc)
        headers = {}
        retry_after = getattr(exc, "retry_after", None)
        if status == 429 and retry_after is not None:
            headers["retry-after"] = str(max(0, math.ceil(float(retry_after))))
        return ProxyError(status, exc.message or type(exc).__name__, kind, None, code, headers)
    if isinstance(exc, e.PolystreamError):  # decode errors etc. that escaped the client's mapping
        return ProxyError(502, f"upstream stream error: {exc}", "upstream_error", None, "upstream_stream_error")
    return ProxyError(500, "internal error in the proxy", "server_error", None, "internal_error")
