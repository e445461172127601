"""Providers load lazily by name: `model="anthropic/claude-…"` imports `providers.anthropic` only
when first used. OpenAI-compatible providers are configuration in `openai_compatible.CONFIGS`."""

from __future__ import annotations

import importlib
from functools import cache

from .. import errors
from .base import ChatRequest, HTTPRequest, Provider

__all__ = ["ChatRequest", "HTTPRequest", "Provider", "provider_class", "split_model", "NATIVE"]

#: Providers with a module of their own (a wire format, or URLs and auth of their own): module
#: name under polystream.providers.
NATIVE = {"anthropic": "anthropic", "gemini": "gemini", "cohere": "cohere", "ollama": "ollama",
          "openai_responses": "openai_responses", "bedrock": "bedrock", "azure": "azure"}


@cache
def provider_class(name: str) -> type[Provider]:
    if name in NATIVE:
        module = importlib.import_module(f"{__name__}.{NATIVE[name]}")
        return module.PROVIDER  # type: ignore[no-any-return]
    from . import openai_compatible

    if name in openai_compatible.CONFIGS:
        return openai_compatible.make(name)
    raise errors.UnknownProviderError(f"unknown provider {name!r}", provider=name)


def known(name: str) -> bool:
    from . import openai_compatible

    return name in NATIVE or name in openai_compatible.CONFIGS


def split_model(model: str) -> tuple[str, str]:
    """`"anthropic/claude-x"` → ("anthropic", "claude-x"). A model without a known provider prefix
    is OpenAI's (at `api_base` when one is given: any OpenAI-compatible server).
    `"openai/responses/o3-pro"` (LiteLLM's spelling) is OpenAI's Responses API, as
    `"openai_responses/o3-pro"`. `"bedrock/converse/<id>"` and `"bedrock/invoke/<id>"` (LiteLLM's
    route prefixes) are `"bedrock/<id>"`: Converse serves every model InvokeModel does, from the
    same chat arguments."""
    prefix, sep, rest = model.partition("/")
    if sep and known(prefix):
        if prefix == "openai" and rest.startswith("responses/"):
            return "openai_responses", rest[len("responses/"):]
        if prefix == "bedrock" and rest.startswith(("converse/", "invoke/")):
            return "bedrock", rest.partition("/")[2]
        return prefix, rest
    return "openai", model
