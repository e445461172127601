"""Which paths each provider streams from, and the base URL a client is pointed at.

`base` is what goes into a client's `api_base` (appended to the server URL); each provider's
client then adds its own suffix, as the real SDKs do (OpenAI-style: "/chat/completions" onto a
base ending in "/v1"; Anthropic: "/v1/messages" onto the bare host). The route list also carries
the other prefixes OpenAI-compatible clients are seen using, so a client configured either way hits.
"""

from __future__ import annotations

from typing import NamedTuple


class ProviderRoutes(NamedTuple):
    base: str  # suffix of the server URL that a client's api_base should be
    paths: tuple[str, ...]  # glob patterns (see ReplayServer.add) the fixture is served on


_CHAT = ("/v1/chat/completions", "/chat/completions", "/openai/v1/chat/completions", "/api/v1/chat/completions")

PROVIDER_ROUTES: dict[str, ProviderRoutes] = {
    "openai": ProviderRoutes("/v1", _CHAT),
    "openai_compatible": ProviderRoutes("/v1", _CHAT),
    "groq": ProviderRoutes("/openai/v1", _CHAT),  # https://api.groq.com/openai/v1
    "mistral": ProviderRoutes("/v1", _CHAT),
    "deepseek": ProviderRoutes("", _CHAT),  # https://api.deepseek.com (also serves /v1)
    "openrouter": ProviderRoutes("/api/v1", _CHAT),  # https://openrouter.ai/api/v1
    "together": ProviderRoutes("/v1", _CHAT),
    "vllm": ProviderRoutes("/v1", _CHAT),
    "openai_responses": ProviderRoutes("/v1", ("/v1/responses", "/responses")),
    "anthropic": ProviderRoutes("", ("/v1/messages",)),
    # AI Studio ("/v1beta/models/M:streamGenerateContent?alt=sse") and Vertex ("/v1/projects/…").
    "gemini": ProviderRoutes("", ("/v1beta/models/*:streamGenerateContent", "/v1/**/models/*:streamGenerateContent")),
    "cohere": ProviderRoutes("", ("/v2/chat",)),
    "ollama": ProviderRoutes("", ("/api/chat",)),
    "bedrock": ProviderRoutes("", ("/model/*/converse-stream", "/model/*/invoke-with-response-stream")),
    # Azure OpenAI: the v1 API and the dated deployments API.
    "azure": ProviderRoutes("", ("/openai/v1/chat/completions", "/openai/deployments/*/chat/completions")),
}

# The path (after base_url) a client posts to for one streaming call; for tests and demos.
STREAM_PATHS: dict[str, str] = {
    "openai": "/chat/completions",
    "openai_compatible": "/chat/completions",
    "groq": "/chat/completions",
    "mistral": "/chat/completions",
    "deepseek": "/chat/completions",
    "openrouter": "/chat/completions",
    "together": "/chat/completions",
    "vllm": "/chat/completions",
    "openai_responses": "/responses",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
    "cohere": "/v2/chat",
    "ollama": "/api/chat",
    "bedrock": "/model/us.amazon.nova-micro-v1:0/converse-stream",
    "azure": "/openai/v1/chat/completions",
}


def routes_for(provider: str) -> ProviderRoutes:
    try:
        return PROVIDER_ROUTES[provider]
    except KeyError:
        known = ", ".join(sorted(PROVIDER_ROUTES))
        raise KeyError(f"unknown provider {provider!r}; known: {known}") from None
