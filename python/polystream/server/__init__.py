"""The polystream proxy: OpenAI-compatible /v1/chat/completions and /v1/responses (with background
mode) in front of every provider, configured with LiteLLM's config format.

    polystream serve [--config config.yaml] [--host 127.0.0.1] [--port 4000]

Needs starlette, uvicorn and pyyaml (redis for the Redis store). Names load lazily, so the
background package can import `polystream.server.config` without pulling in the web stack.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "ModelRouter",
    "ProxyConfig",
    "ServerThread",
    "build_service",
    "create_app",
    "embedded_default",
    "load_config",
    "parse_config",
    "serve",
]

_FROM_APP = {"ServerThread", "build_service", "create_app", "serve"}


def __getattr__(name: str) -> Any:
    if name in _FROM_APP:
        from . import app

        return getattr(app, name)
    if name in __all__:
        from . import config

        return getattr(config, name)
    raise AttributeError(name)
