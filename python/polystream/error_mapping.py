"""Provider error responses → the typed exception tree. One place for every provider's shapes.

Error bodies seen in the wild:
  OpenAI, Groq, DeepSeek, Together  {"error": {"message", "type", "code", "param"}}
  Anthropic                         {"type": "error", "error": {"type", "message"}}
  Gemini                            {"error": {"code": 400, "message", "status"}}  (or a 1-list of it)
  Cohere v2, Mistral                {"message": "..."} / {"object": "error", "message", "type"}
  Ollama                            {"error": "text"}
  Bedrock                           {"message": "..."}, the kind in the x-amzn-errortype header;
                                    in a stream, exception frames named `throttlingException`, …
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from . import errors as e

_CONTEXT = re.compile(
    r"context[ _-]?(length|window)|maximum context|too many tokens|prompt is too long|input is too long"
    r"|exceeds? the (model'?s? )?(context|maximum)|reduce the length|input length|too many input tokens"
    r"|inputs.? tokens \+ .?max_new_tokens.? must be",  # TGI (Together, Hugging Face)
    re.I,
)
_POLICY = re.compile(r"content[ _-]?(policy|filter|management)|safety system|responsible ?ai|flagged", re.I)

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id", "x-amzn-requestid", "cf-ray")

_BY_STATUS: dict[int, type[e.APIStatusError]] = {
    400: e.BadRequestError,
    401: e.AuthenticationError,
    403: e.PermissionDeniedError,
    404: e.NotFoundError,
    409: e.BadRequestError,
    413: e.BadRequestError,
    422: e.BadRequestError,
    424: e.InternalServerError,  # Bedrock: the model failed (ModelErrorException)
    429: e.RateLimitError,
    500: e.InternalServerError,
    502: e.ServiceUnavailableError,
    503: e.ServiceUnavailableError,
    504: e.ServiceUnavailableError,
    529: e.ServiceUnavailableError,
}

# In-band (mid-stream) error types/codes → class.
_BY_KIND: dict[str, type[e.APIError]] = {
    "overloaded_error": e.ServiceUnavailableError,
    "overloaded": e.ServiceUnavailableError,
    "service_unavailable": e.ServiceUnavailableError,
    "unavailable": e.ServiceUnavailableError,
    "rate_limit_error": e.RateLimitError,
    "rate_limit_exceeded": e.RateLimitError,
    "resource_exhausted": e.RateLimitError,
    "too_many_requests": e.RateLimitError,
    "insufficient_quota": e.RateLimitError,  # OpenAI answers it with a 429
    "invalid_request_error": e.BadRequestError,
    "invalid_argument": e.BadRequestError,
    "tool_use_failed": e.BadRequestError,
    "context_length_exceeded": e.ContextWindowExceededError,
    "content_filter": e.ContentPolicyViolationError,
    "content_policy_violation": e.ContentPolicyViolationError,
    "authentication_error": e.AuthenticationError,
    "permission_error": e.PermissionDeniedError,
    "not_found_error": e.NotFoundError,
    "api_error": e.InternalServerError,
    "server_error": e.InternalServerError,
    "internal": e.InternalServerError,
    "internal_server_error": e.InternalServerError,
    "timeout_error": e.Timeout,
    # Bedrock's exception frames and error types (matched lower-cased)
    "throttlingexception": e.RateLimitError,
    "servicequotaexceededexception": e.RateLimitError,
    "modelnotreadyexception": e.ServiceUnavailableError,
    "serviceunavailableexception": e.ServiceUnavailableError,
    "internalserverexception": e.InternalServerError,
    "modelstreamerrorexception": e.InternalServerError,
    "modelerrorexception": e.InternalServerError,
    "modeltimeoutexception": e.Timeout,
    "validationexception": e.BadRequestError,
    "accessdeniedexception": e.PermissionDeniedError,
    "resourcenotfoundexception": e.NotFoundError,
}


def _text(v: Any) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, str) else str(v)


def parse_error_body(body: bytes | str | Any) -> tuple[str, str | None, str | None, Any]:
    """(message, type, code, parsed body) from any provider's error body."""
    parsed: Any = body
    if isinstance(body, (bytes, bytearray)):
        body = bytes(body).decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            parsed = json.loads(body)
        except ValueError:
            return (body.strip() or "(empty error body)"), None, None, body
    if isinstance(parsed, list) and len(parsed) == 1:
        parsed = parsed[0]
    if not isinstance(parsed, dict):
        return str(parsed), None, None, parsed
    err = parsed.get("error", parsed)
    if isinstance(err, str):
        return err, _text(parsed.get("type")), _text(parsed.get("code")), parsed
    if not isinstance(err, dict):
        err = parsed
    message = err.get("message") or parsed.get("message") or parsed.get("detail") or json.dumps(parsed)
    kind = _text(err.get("type") or err.get("status") or parsed.get("type"))
    code = _text(err.get("code") or parsed.get("code"))
    return str(message), kind, code, parsed


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The provider's back-off hint: `retry-after-ms`, or `retry-after` in seconds or as a date."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(float(ms) / 1000, 0.0)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return max(float(ra), 0.0)
    except ValueError:
        when = email.utils.parsedate_to_datetime(ra) if ra else None
        return max(when.timestamp() - time.time(), 0.0) if when else None


def refine(cls: type[e.APIError], message: str, kind: str | None, code: str | None) -> type[e.APIError]:
    """A 400 that is really a context-window or content-policy failure gets the precise class.
    Only explicit context wording counts: a bare "token limit" is as often the output cap
    (OpenRouter's "Token limit reached" after `max_completion_tokens`)."""
    if not issubclass(cls, e.BadRequestError) or cls is not e.BadRequestError:
        return cls
    hint = f"{kind or ''} {code or ''}"
    if "context_length" in hint or _CONTEXT.search(message):
        return e.ContextWindowExceededError
    if "content_filter" in hint or "content_policy" in hint or _POLICY.search(message):
        return e.ContentPolicyViolationError
    return cls


def status_error(
    provider: str, model: str | None, status: int, headers: Mapping[str, str], body: bytes,
    cls: type[e.APIStatusError] | None = None,
) -> e.APIStatusError:
    """The exception for an error HTTP response (of class `cls` when the provider knows better
    than its status code)."""
    message, kind, code, parsed = parse_error_body(body)
    cls = cls or _BY_STATUS.get(status)
    if cls is None:
        cls = e.InternalServerError if status >= 500 else e.APIStatusError
    if kind in ("overloaded_error",):
        cls = e.ServiceUnavailableError
    cls = refine(cls, message, kind, code)  # type: ignore[assignment]
    exc = cls(
        f"{provider} {status}: {message}",
        provider=provider,
        model=model,
        status_code=status,
        body=parsed,
        request_id=next((headers[h] for h in _REQUEST_ID_HEADERS if h in headers), None),
        type=kind,
        code=code,
        error_message=message,
    )
    if isinstance(exc, e.RateLimitError):
        exc.retry_after = retry_after_seconds(headers)
    return exc


def stream_error(
    provider: str, model: str | None, err: e.ProviderStreamError, partial: Any = None, received: int = 0
) -> e.APIError:
    """An error the provider sent inside the stream, as a typed exception: a mid-stream one when
    output already reached the caller (`received` > 0), else the plain (maybe retryable) class."""
    message = getattr(err, "error_message", None) or err.message
    kind, code = getattr(err, "type", None), getattr(err, "code", None)
    cls: type[e.APIError] = e.APIError
    for key in (kind, code):
        if key and key.lower() in _BY_KIND:
            cls = _BY_KIND[key.lower()]
            break
    else:
        if code and code.isdigit() and int(code) in _BY_STATUS:
            cls = _BY_STATUS[int(code)]
    cls = refine(cls, message, kind, code)
    extra = {"partial": partial, "chunks_received": received} if received else {}
    return (e.mid_stream(cls) if received else cls)(
        f"{provider} error in stream: {message}",
        provider=provider,
        model=model,
        body=getattr(err, "body", None),
        type=kind,
        code=code,
        error_message=message,
        **extra,
    )
