"""What a provider is: pure data plus two functions (build the HTTP request, map an error)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .. import errors
from ..error_mapping import status_error


@dataclass(frozen=True, slots=True)
class HTTPRequest:
    method: str
    url: str
    headers: dict[str, str]
    json: Any = None
    #: The body as bytes, for requests whose signature covers the exact bytes (AWS SigV4).
    content: bytes | None = None

    def __repr__(self) -> str:  # never show credentials
        shown = {k: ("<redacted>" if k.lower() in SECRET_HEADERS else v) for k, v in self.headers.items()}
        return f"HTTPRequest(method={self.method!r}, url={self.url!r}, headers={shown!r}, json=...)"


#: Headers that carry credentials (lower case); reprs redact them.
SECRET_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api-key", "proxy-authorization",
                            "x-amz-security-token"})


@dataclass(slots=True)
class ChatRequest:
    """An OpenAI-style chat request, as the caller gave it (model without the provider prefix)."""

    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)


# OpenAI-style parameters every provider understands in some form; the rest pass through to
# OpenAI-compatible servers untouched (and are dropped, with no error, by native providers).
COMMON_PARAMS = frozenset(
    {
        "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "tools", "tool_choice",
        "response_format", "reasoning_effort", "thinking", "stream_options", "n", "seed", "user",
        "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "parallel_tool_calls",
        "metadata", "logit_bias", "service_tier",
    }
)


class Provider:
    """Base class. Subclasses set the class attributes and implement `build_request`."""

    name: ClassVar[str]
    #: The core dialect that decodes this provider's streaming body.
    dialect: ClassVar[str]
    default_api_base: ClassVar[str] = ""
    env_api_key: ClassVar[tuple[str, ...]] = ()
    env_api_base: ClassVar[tuple[str, ...]] = ()
    requires_key: ClassVar[bool] = True
    #: Its non-streaming answer can be replayed as its stream (`fake_stream=True`; see `replay_as_stream`).
    can_fake_stream: ClassVar[bool] = False

    def __init__(
        self,
        api_key: str | None = None,
        api_base: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.api_key = api_key or _first_env(self.env_api_key)
        self.api_base = (api_base or _first_env(self.env_api_base) or self.default_api_base).rstrip("/")
        self.extra_headers = dict(extra_headers or {})
        if not self.api_base:
            raise errors.BadRequestError(f"{self.name}: api_base is required", provider=self.name)

    def check_key(self, model: str) -> None:
        # A server at a custom api_base (a proxy, vLLM, a test server) may not need a key.
        custom_base = bool(self.default_api_base) and self.api_base != self.default_api_base.rstrip("/")
        if self.requires_key and not self.api_key and not custom_base:
            names = " or ".join(self.env_api_key) or "api_key="
            raise errors.AuthenticationError(
                f"{self.name}: no API key; pass api_key= or set {names}", provider=self.name, model=model
            )

    def build_request(self, req: ChatRequest, *, stream: bool) -> HTTPRequest:
        raise NotImplementedError

    def drop_unsupported(self, model: str, params: dict[str, Any]) -> dict[str, Any]:
        """`params` without those `model` is known to reject (`drop_params=True`). Native
        providers already leave out what their API has no field for; this is for the rest."""
        return params

    def replay_as_stream(self, body: bytes) -> tuple[bytes, str]:
        """Fake streaming: a non-streaming answer's body as (the streaming body that would have
        carried it, the dialect that reads that body)."""
        raise NotImplementedError

    def map_error(self, model: str, status: int, headers: Mapping[str, str], body: bytes) -> errors.APIStatusError:
        return status_error(self.name, model, status, headers, body)

    def headers(self, base: Mapping[str, str], *, bearer: bool = False) -> dict[str, str]:
        """JSON content type, `base`, the key as a Bearer token when `bearer` and a key is set,
        then the caller's extra headers (which win)."""
        h = {"content-type": "application/json", **base}
        if bearer and self.api_key:
            h["authorization"] = f"Bearer {self.api_key}"
        h.update(self.extra_headers)
        return h

    def __repr__(self) -> str:  # never show the key
        return f"<{type(self).__name__} {self.name} {self.api_base}>"


def _first_env(names: tuple[str, ...]) -> str | None:
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return None
