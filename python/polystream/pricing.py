"""Cost in USD from token usage and the price table in `data/prices.json` (data, not code)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from ._core import ChatCompletionChunk

__all__ = ["price", "cost", "with_cost"]


@cache
def _table() -> dict[str, dict[str, dict[str, float]]]:
    data = json.loads(resources.files(__package__).joinpath("data/prices.json").read_text())
    data.pop("_about", None)
    return data  # type: ignore[no-any-return]


# Providers that bill at another's prices (the same models behind another endpoint).
# Azure's deployments are priced by the model they run: found when named after it.
_SAME_PRICES = {"openai_responses": "openai", "azure": "openai"}


# Bedrock's cross-region inference profiles prefix the model id with where they route.
_BEDROCK_GEOS = frozenset({"us", "eu", "apac", "global", "jp", "au", "ca", "us-gov"})


def price(model: str) -> dict[str, float] | None:
    """Prices for `"provider/model"`: the longest table key that prefixes the model name."""
    provider, _, name = model.partition("/")
    if provider == "bedrock":
        geo, dot, rest = name.partition(".")
        name = rest if dot and geo in _BEDROCK_GEOS else name
    table = _table().get(_SAME_PRICES.get(provider, provider))
    if not table:
        return None
    best = max((k for k in table if name.startswith(k)), key=len, default=None)
    return None if best is None else table[best]


def cost(usage: Any, model: str) -> float | None:
    """USD for one call's usage (a mapping with OpenAI usage fields), or None for unknown models."""
    p = price(model)
    if p is None or usage is None:
        return None
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") or 0
    written = details.get("cache_creation_tokens") or 0
    fresh = max((usage.get("prompt_tokens") or 0) - cached - written, 0)
    total = (
        fresh * p["input"]
        + cached * p.get("input_cached", p["input"])
        + written * p.get("input_cache_write", p["input"])
        + (usage.get("completion_tokens") or 0) * p["output"]
    )
    return round(total / 1_000_000, 10)


def with_cost(chunk: ChatCompletionChunk, model: str) -> ChatCompletionChunk:
    """The chunk with `usage.cost` filled in (unchanged when the model has no known price)."""
    data = chunk.to_dict()
    usd = cost(data.get("usage"), model)
    if usd is None:
        return chunk
    data["usage"]["cost"] = usd
    return ChatCompletionChunk.from_json(json.dumps(data))
