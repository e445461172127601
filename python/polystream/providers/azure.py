"""Azure OpenAI (and Azure AI Foundry's OpenAI endpoints): OpenAI's chat wire format behind
Azure's URLs and key header (dialect "openai_chat", which also reads Azure's first chunk of
`prompt_filter_results` with no choices).

`model="azure/<deployment>"`, `api_base` the resource endpoint (`https://NAME.openai.azure.com`,
or `AZURE_API_BASE` / `AZURE_OPENAI_ENDPOINT`). Without an `api_version` the request goes to
Azure's v1 API (`{base}/openai/v1/chat/completions`, the deployment as `model`), which needs no
dated version; with one (`api_version=`, `AZURE_API_VERSION` or `OPENAI_API_VERSION`), to
`{base}/openai/deployments/<deployment>/chat/completions?api-version=…`, as older resources and
LiteLLM configs expect. The key goes in `api-key` (`api_key=`, `AZURE_API_KEY` or
`AZURE_OPENAI_API_KEY`); a Microsoft Entra ID token (`azure_ad_token=` or `AZURE_AD_TOKEN`) as a
Bearer token instead. Deployments named after OpenAI's reasoning models (o1…, o3…, gpt-5…) get
`max_tokens` as `max_completion_tokens`, as OpenAI's own API needs.
"""

from __future__ import annotations

import os
from typing import ClassVar
from urllib.parse import quote

from .. import errors
from .base import ChatRequest, HTTPRequest
from .openai_compatible import CONFIGS, Compat, OpenAICompatible

#: Values of api_version that mean the versionless v1 API.
_V1 = frozenset({"v1", "latest", "preview"})


class AzureProvider(OpenAICompatible):
    name: ClassVar[str] = "azure"
    config: ClassVar[Compat] = Compat("", ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"),
                                      ("AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"),
                                      completion_tokens_models=CONFIGS["openai"].completion_tokens_models)
    env_api_key: ClassVar[tuple[str, ...]] = config.env_api_key
    env_api_base: ClassVar[tuple[str, ...]] = config.env_api_base

    def check_key(self, model: str) -> None:
        """An Entra ID token may stand in for the key: `build_request` checks for either."""

    def build_request(self, req: ChatRequest, *, stream: bool) -> HTTPRequest:
        params = dict(req.params)
        version = params.pop("api_version", None) or os.environ.get("AZURE_API_VERSION") or os.environ.get(
            "OPENAI_API_VERSION")
        token = params.pop("azure_ad_token", None) or os.environ.get("AZURE_AD_TOKEN")
        if not (self.api_key or token):
            raise errors.AuthenticationError(
                "azure: no API key; pass api_key= (or azure_ad_token=) or set AZURE_API_KEY", provider=self.name,
                model=req.model)
        base = self.api_base
        for suffix in ("/openai/v1", "/openai"):  # the endpoint given with Azure's own path
            base = base.removesuffix(suffix)
        if not version or version in _V1:
            url = f"{base}/openai/v1/chat/completions"
        else:
            url = f"{base}/openai/deployments/{quote(req.model, safe='')}/chat/completions?api-version={quote(version)}"
        headers = {"accept": "text/event-stream" if stream else "application/json"}
        if token and not self.api_key:
            headers["authorization"] = f"Bearer {token}"
        else:
            headers["api-key"] = str(self.api_key)
        body = self.body(ChatRequest(req.model, req.messages, params), stream=stream)
        return HTTPRequest("POST", url, self.headers(headers), body)


PROVIDER = AzureProvider
