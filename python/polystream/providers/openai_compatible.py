"""OpenAI and every OpenAI-compatible server: a few lines of configuration each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..fake import chunks_from_completion_body
from .base import ChatRequest, HTTPRequest, Provider


@dataclass(frozen=True)
class Compat:
    api_base: str
    env_api_key: tuple[str, ...]
    env_api_base: tuple[str, ...] = ()
    requires_key: bool = True
    #: Accepts `stream_options: {"include_usage": true}` (others send usage unasked, or reject it).
    stream_options: bool = True
    #: Model prefixes that refuse `max_tokens` and take `max_completion_tokens` (OpenAI's reasoning
    #: models): a caller's `max_tokens` is sent under that name, as it means the same there.
    completion_tokens_models: tuple[str, ...] = ()


CONFIGS: dict[str, Compat] = {
    "openai": Compat("https://api.openai.com/v1", ("OPENAI_API_KEY",), ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
                     completion_tokens_models=("o1", "o3", "o4", "gpt-5", "codex-")),
    "groq": Compat("https://api.groq.com/openai/v1", ("GROQ_API_KEY",), ("GROQ_API_BASE",)),
    "mistral": Compat("https://api.mistral.ai/v1", ("MISTRAL_API_KEY",), ("MISTRAL_API_BASE",), stream_options=False),
    "deepseek": Compat("https://api.deepseek.com/v1", ("DEEPSEEK_API_KEY",), ("DEEPSEEK_API_BASE",)),
    "openrouter": Compat("https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",), ("OPENROUTER_API_BASE",)),
    "together": Compat("https://api.together.xyz/v1", ("TOGETHER_API_KEY", "TOGETHERAI_API_KEY"), ("TOGETHER_API_BASE",)),
    "fireworks_ai": Compat("https://api.fireworks.ai/inference/v1", ("FIREWORKS_API_KEY",)),
    "xai": Compat("https://api.x.ai/v1", ("XAI_API_KEY",)),
    "perplexity": Compat("https://api.perplexity.ai", ("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY")),
    "cerebras": Compat("https://api.cerebras.ai/v1", ("CEREBRAS_API_KEY",)),
    # Any server speaking the protocol (vLLM, llama.cpp, LM Studio, Ollama's /v1, LiteLLM, …).
    "openai_compatible": Compat("", ("OPENAI_COMPATIBLE_API_KEY",), ("OPENAI_COMPATIBLE_API_BASE",), requires_key=False),
    "hosted_vllm": Compat("", ("HOSTED_VLLM_API_KEY",), ("HOSTED_VLLM_API_BASE",), requires_key=False),
}


#: What OpenAI's reasoning models answer with a 400 ("Unsupported parameter"/"Unsupported value");
#: `temperature` and `top_p` only when not their default of 1.
_REASONING_REJECTS = frozenset({"presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "logit_bias"})


class OpenAICompatible(Provider):
    dialect: ClassVar[str] = "openai_chat"
    can_fake_stream: ClassVar[bool] = True
    config: ClassVar[Compat]

    def build_request(self, req: ChatRequest, *, stream: bool) -> HTTPRequest:
        headers = {"accept": "text/event-stream" if stream else "application/json"}
        return HTTPRequest("POST", f"{self.api_base}/chat/completions", self.headers(headers, bearer=True),
                           self.body(req, stream=stream))

    def body(self, req: ChatRequest, *, stream: bool) -> dict[str, Any]:
        """The request body: the caller's parameters as they are, plus what streaming needs."""
        body: dict[str, Any] = {"model": req.model, "messages": req.messages, **req.params}
        extra = body.pop("extra_body", None)  # the openai SDK's convention: merged into the body
        if isinstance(extra, dict):
            body.update(extra)
        body["stream"] = stream
        if "max_tokens" in body and self.is_reasoning_model(req.model):
            limit = body.pop("max_tokens")
            body.setdefault("max_completion_tokens", limit)
        if stream and self.config.stream_options:
            # Ask for usage in the final chunk unless the caller said otherwise.
            opts = dict(body.get("stream_options") or {})
            opts.setdefault("include_usage", True)
            body["stream_options"] = opts
        elif not stream or not self.config.stream_options:
            body.pop("stream_options", None)
        return body

    def is_reasoning_model(self, model: str) -> bool:
        """One of OpenAI's reasoning models (by name), with their own parameter rules."""
        return model.startswith(self.config.completion_tokens_models)

    def drop_unsupported(self, model: str, params: dict[str, Any]) -> dict[str, Any]:
        if not self.is_reasoning_model(model):
            return params
        return {k: v for k, v in params.items()
                if k not in _REASONING_REJECTS and not (k in ("temperature", "top_p") and v != 1)}

    def replay_as_stream(self, body: bytes) -> tuple[bytes, str]:
        return chunks_from_completion_body(body), "openai_chat"


def make(name: str) -> type[OpenAICompatible]:
    cfg = CONFIGS[name]
    return type(
        f"{name.title().replace('_', '')}Provider",
        (OpenAICompatible,),
        {
            "name": name,
            "config": cfg,
            "default_api_base": cfg.api_base,
            "env_api_key": cfg.env_api_key,
            "env_api_base": cfg.env_api_base,
            "requires_key": cfg.requires_key,
            "__module__": __name__,
        },
    )
