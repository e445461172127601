"""Proxy configuration: LiteLLM's config file as is, plus polystream's own section.

LiteLLM's format (a LiteLLM user's file works unchanged)::

    model_list:
      - model_name: claude-sonnet-4-5-20250929      # what clients send as "model"
        litellm_params:                             # what we call the provider with
          model: anthropic/claude-sonnet-4-5-20250929
          api_key: os.environ/ANTHROPIC_API_KEY     # "os.environ/NAME" works anywhere in the file
          api_base: https://…                       # optional; other keys (temperature, timeout,
                                                    # num_retries, mock_response, …) are passed on
      - model_name: "openai/*"                      # a trailing "*" matches by prefix; a "*" in
        litellm_params: {model: "openai/*"}         # litellm_params.model takes the matched part
      - model_name: offline
        litellm_params: {model: offline, mock_response: "Hi!", mock_delay: 0.03}
                                                    # streams that text word by word, no network
                                                    # (mock_delay: seconds between words; ours)
    general_settings:
      master_key: os.environ/PROXY_MASTER_KEY
    litellm_settings:
      cache: true
      cache_params: {type: redis, host: 127.0.0.1, port: 6379, password: …, ttl: 3600}
      responses:                                    # also accepted at the top level
        background_mode: {polling_via_cache: "all", ttl: 3600}

Several entries with one `model_name` are deployments of one model: requests rotate over them and
fall back to the others on retryable failures. `polling_via_cache` is accepted but every model gets
background mode (LiteLLM's per-provider list existed to route the rest to provider-native
background mode, which a chat provider lacks). The Redis store is used when `cache_params.type` is
redis (host/port/password/db/ssl, or `url`; REDIS_URL / REDIS_HOST / REDIS_PORT / REDIS_PASSWORD
from the environment fill gaps, as in LiteLLM) unless `cache: false`.

polystream's own section (wins where both say something)::

    polystream:
      store: {type: redis, redis_url: "redis://:pw@host:6379/0", prefix: "ps"}   # or {type: memory}
      keys:                                   # virtual keys, besides general_settings.master_key
        - sk-team-a
        - {key: os.environ/TEAM_B_KEY, name: team-b, models: [claude-sonnet-4-5-20250929]}
      owner_secret: os.environ/OWNER_SECRET   # HMAC secret for owner ids (see auth.py)
      background: {ttl: 3600, lease: 10, snapshot_interval: 0.05, workers: false}
      server: {max_body_bytes: 10485760, cors_origins: ["*"]}

`background` keys are polystream.background's BackgroundSettings (ttl, lease, snapshot_interval,
flush_bytes, max_flush_delay, workers, peer_url, …; unknown keys are ignored). `background.workers: true`
hands producers to `polystream worker` processes (Redis only) instead of running them inside the
proxy. `server.max_body_bytes` bounds request bodies (413 beyond; default 10 MiB).
`server.cors_origins` lists the web origins browsers may call the proxy from (default `["*"]`,
as LiteLLM's proxy; `[]` turns CORS off). Credentials (cookies) are never allowed: callers
authenticate with a bearer key, which a page must add itself.

With no file at all the proxy runs on `embedded_default()`: one mock model ("polystream-mock",
a multi-sentence answer at 30 ms a word) and the in-memory store: no key, no Redis, no network.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import threading
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

__all__ = [
    "ConfigError",
    "Deployment",
    "ModelRouter",
    "ProxyConfig",
    "StoreConfig",
    "VirtualKey",
    "embedded_default",
    "load_config",
    "parse_config",
    "MOCK_MODEL",
]

DEFAULT_TTL = 3600
DEFAULT_MAX_BODY = 10 * 1024 * 1024
MOCK_MODEL = "polystream-mock"
_ENV = "os.environ/"

# LiteLLM router hints that are not call parameters: never sent to a provider.
_ROUTING_ONLY = frozenset({
    "rpm", "tpm", "weight", "order", "max_parallel_requests", "model_info", "tags", "region_name",
    "use_in_pass_through", "use_litellm_proxy", "input_cost_per_token", "output_cost_per_token",
    "custom_llm_provider", "mock_delay", "litellm_credential_name", "cache_control_injection_points",
})


class ConfigError(ValueError):
    """The configuration cannot be used (the message says where)."""


# ---------------------------------------------------------------- models


@dataclass(frozen=True)
class Deployment:
    model_name: str  # public name; may end in "*"
    model: str  # "provider/model" given to acompletion; may contain "*"
    params: Mapping[str, Any]  # other acompletion keywords (api_key, api_base, temperature, …)
    mock_response: Any = None
    mock_delay: float = 0.0

    def target(self, name: str) -> tuple[str, dict[str, Any]]:
        model = self.model
        if self.model_name.endswith("*") and "*" in model:
            model = model.replace("*", name[len(self.model_name) - 1 :], 1)
        if self.mock_response is not None:
            return _mock_target(model, self.mock_response, self.mock_delay)
        return model, dict(self.params)


class ModelRouter:
    """Public model names → what to call. `resolve(name) -> (model, kwargs)` for acompletion;
    unknown names raise KeyError."""

    def __init__(self, deployments: list[Deployment]) -> None:
        self.deployments = list(deployments)
        self._exact: dict[str, list[Deployment]] = {}
        self._prefix: list[tuple[str, list[Deployment]]] = []
        for d in self.deployments:
            if d.model_name.endswith("*"):
                group = next((g for p, g in self._prefix if p == d.model_name[:-1]), None)
                if group is None:
                    self._prefix.append((d.model_name[:-1], group := []))
                group.append(d)
            else:
                self._exact.setdefault(d.model_name, []).append(d)
        self._prefix.sort(key=lambda pg: -len(pg[0]))  # longest prefix wins
        self._turn = itertools.count()  # round-robin over deployments (thread-safe enough: GIL)

    @classmethod
    def from_model_list(cls, model_list: Any, defaults: Mapping[str, Any] | None = None) -> ModelRouter:
        """Deployments from LiteLLM's `model_list`; `defaults` are params each gets unless it sets them."""
        if model_list is None:
            return cls([])
        if not isinstance(model_list, list):
            raise ConfigError("model_list must be a list")
        return cls([_deployment(i, entry, defaults or {}) for i, entry in enumerate(model_list)])

    def _group(self, name: str) -> list[Deployment]:
        group = self._exact.get(name)
        if group is None:
            group = next((g for p, g in self._prefix if name.startswith(p)), None)
        if not group:
            raise KeyError(name)
        return group

    def deployments_for(self, name: str) -> list[Deployment]:
        """The deployments serving `name` (KeyError if none)."""
        return list(self._group(name))

    def resolve(self, name: str) -> tuple[str, dict[str, Any]]:
        if not isinstance(name, str) or not name:
            raise KeyError(name)
        group = self._group(name)
        first = next(self._turn) % len(group)
        ordered = group[first:] + group[:first]
        model, kwargs = ordered[0].target(name)
        fallbacks = [d.target(name) for d in ordered[1:] if d.mock_response is None]
        if fallbacks and ordered[0].mock_response is None:
            kwargs["fallbacks"] = [{"model": m, **kw} for m, kw in fallbacks]
        return model, kwargs

    def __contains__(self, name: object) -> bool:
        try:
            self._group(name)  # type: ignore[arg-type]
        except (KeyError, TypeError):
            return False
        return True

    def names(self) -> list[str]:
        """Names for GET /v1/models: every exact name, and each wildcard as written."""
        return list(dict.fromkeys(d.model_name for d in self.deployments))

    def secrets(self) -> list[str]:
        """Upstream credentials, for log redaction."""
        return [str(d.params[k]) for d in self.deployments for k in _SECRET_PARAMS if d.params.get(k)]


#: litellm_params that hold credentials.
_SECRET_PARAMS = ("api_key", "aws_secret_access_key", "aws_session_token", "aws_access_key_id", "azure_ad_token")


def _deployment(i: int, entry: Any, defaults: Mapping[str, Any]) -> Deployment:
    where = f"model_list[{i}]"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a mapping")
    name = entry.get("model_name")
    params = {**defaults, **(entry.get("litellm_params") or {})}
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.model_name must be a non-empty string")
    model = params.pop("model", None) or name
    if not isinstance(model, str):
        raise ConfigError(f"{where}.litellm_params.model must be a string")
    provider = params.get("custom_llm_provider")
    if provider and not model.startswith(f"{provider}/"):
        model = f"{provider}/{model}"
    if "max_retries" in params and "num_retries" not in params:
        params["num_retries"] = params.pop("max_retries")
    mock, delay = params.pop("mock_response", None), float(params.get("mock_delay") or 0.0)
    clean = {k: v for k, v in params.items() if k not in _ROUTING_ONLY and v is not None}
    return Deployment(name, model, clean, mock, delay)


# ---------------------------------------------------------------- the mock model


MOCK_ANSWER = (
    "Background mode lets a client start a long generation and walk away. "
    "The proxy keeps streaming from the provider on its own, appending every event to a log and "
    "refreshing a compact snapshot a few dozen times a second. "
    "A client polls the response, or resumes its event stream from any sequence number, and sees "
    "the text grow until the status turns completed. "
    "Cancelling really stops the producer and closes the upstream request, and each response "
    "belongs to the key that created it."
)


def _mock_target(model: str, text: Any, delay: float) -> tuple[str, dict[str, Any]]:
    """A mock deployment goes through a real provider call whose HTTP transport is in memory, so it
    streams word by word with `delay` between words (mock_response alone would arrive at once)."""
    name = model.split("/", 1)[-1] or MOCK_MODEL
    return f"openai/{name}", {
        "api_key": "mock",
        "api_base": "http://mock.polystream.invalid/v1",
        "client": _mock_client(text if text is not True else MOCK_ANSWER, delay),
    }


_mock_clients: dict[tuple[str, float], Any] = {}
_mock_lock = threading.Lock()


def _mock_client(text: Any, delay: float) -> Any:
    import httpx

    from ..fake import mock_body

    # A MockTransport holds no sockets, so one client per (text, delay) serves every event loop.
    key = (repr(text), delay)
    with _mock_lock:
        client = _mock_clients.get(key)
        if client is None:

            async def handler(request: httpx.Request) -> httpx.Response:
                body = mock_body(text, json.loads(request.content).get("model", MOCK_MODEL))
                return httpx.Response(200, content=_paced(body, delay), headers={"content-type": "text/event-stream"})

            client = _mock_clients[key] = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        return client


async def _paced(body: bytes, delay: float) -> AsyncIterator[bytes]:
    for i, event in enumerate(body.split(b"\n\n")):
        if event:
            if i and delay:
                await asyncio.sleep(delay)
            yield event + b"\n\n"


# ---------------------------------------------------------------- keys, store, whole config


@dataclass(frozen=True)
class VirtualKey:
    key: str
    name: str | None = None
    models: frozenset[str] | None = None  # None: every model


@dataclass(frozen=True)
class StoreConfig:
    type: str = "memory"  # "memory" | "redis"
    redis_url: str | None = None
    prefix: str | None = None


@dataclass
class ProxyConfig:
    models: ModelRouter
    master_key: str | None = None
    keys: list[VirtualKey] = field(default_factory=list)
    owner_secret: str | None = None
    store: StoreConfig = field(default_factory=StoreConfig)
    #: ttl, lease, snapshot_interval, workers, … → the background service's settings.
    background: dict[str, Any] = field(default_factory=dict)
    max_body_bytes: int = DEFAULT_MAX_BODY
    source: str = "embedded default"
    cors_origins: list[str] = field(default_factory=lambda: ["*"])

    @property
    def ttl(self) -> int:
        return int(self.background.get("ttl", DEFAULT_TTL))

    def secrets(self) -> list[str]:
        """Every secret the config holds, for log redaction."""
        out = [k.key for k in self.keys] + self.models.secrets()
        password = urlsplit(self.store.redis_url).password if self.store.redis_url else None
        if password:
            out += [password, unquote(password)]
        return [s for s in (*out, self.master_key, self.owner_secret) if s]


def embedded_default() -> ProxyConfig:
    """No config file: one mock model streaming a multi-sentence answer, in-memory store, open."""
    router = ModelRouter([Deployment(MOCK_MODEL, MOCK_MODEL, {}, MOCK_ANSWER, 0.03)])
    return ProxyConfig(models=router, background={"ttl": DEFAULT_TTL})


def load_config(path: str | Path | None) -> ProxyConfig:
    if path is None:
        return embedded_default()
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    cfg = parse_config(raw or {})
    cfg.source = str(path)
    return cfg


def resolve_env(value: Any, env: Mapping[str, str] | None = None, missing: list[str] | None = None) -> Any:
    """Replace every "os.environ/NAME" string (at any depth) by that variable (None when unset,
    and NAME is appended to `missing`)."""
    env = os.environ if env is None else env
    if isinstance(value, str) and value.startswith(_ENV):
        name = value[len(_ENV) :]
        if name not in env and missing is not None:
            missing.append(name)
        return env.get(name)
    if isinstance(value, Mapping):
        return {k: resolve_env(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env(v, env, missing) for v in value]
    return value


def parse_config(raw: Mapping[str, Any], env: Mapping[str, str] | None = None) -> ProxyConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError("the config must be a mapping at the top level")
    env = os.environ if env is None else env
    general = _section(raw, "general_settings")
    own = _section(raw, "polystream")
    litellm = _section(raw, "litellm_settings")

    # Secrets referring to unset variables must fail loudly: a silently missing master key
    # would leave the proxy open.
    missing: list[str] = []
    master = resolve_env(general.get("master_key"), env, missing)
    if missing:
        raise ConfigError(f"general_settings.master_key refers to unset environment variable {missing[0]}")
    raw_keys = resolve_env(own.get("keys"), env, missing)
    if missing:
        raise ConfigError(f"polystream.keys refers to unset environment variable {missing[0]}")
    keys = _keys(raw_keys)
    secret = resolve_env(own.get("owner_secret"), env, missing)
    if missing:
        raise ConfigError(f"polystream.owner_secret refers to unset environment variable {missing[0]}")

    # LiteLLM's global drop_params holds for every deployment that does not say otherwise.
    defaults = {"drop_params": True} if litellm.get("drop_params") else {}
    router = ModelRouter.from_model_list(resolve_env(raw.get("model_list"), env), defaults)
    background = _background(resolve_env(litellm, env), resolve_env(raw.get("responses"), env),
                             resolve_env(own.get("background"), env))
    store = _store(resolve_env(litellm, env), resolve_env(own.get("store"), env), env)
    server = resolve_env(own.get("server") or {}, env)
    if not isinstance(server, Mapping):
        raise ConfigError("polystream.server must be a mapping")
    max_body = int(server.get("max_body_bytes", DEFAULT_MAX_BODY))
    origins = server.get("cors_origins", ["*"])
    if isinstance(origins, str):
        origins = [origins]
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise ConfigError("polystream.server.cors_origins must be a list of origins")
    if master is not None and not isinstance(master, str):
        master = str(master)
    if background.get("workers") and store.type != "redis":
        raise ConfigError("polystream.background.workers needs the Redis store (workers take jobs from Redis)")
    return ProxyConfig(router, master or None, keys, secret or None, store, background, max_body,
                       cors_origins=origins)


def _section(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = raw.get(name) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a mapping")
    return value


def _keys(value: Any) -> list[VirtualKey]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError("polystream.keys must be a list")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str) and item:
            out.append(VirtualKey(item))
        elif isinstance(item, Mapping) and isinstance(item.get("key"), str) and item["key"]:
            models = item.get("models")
            out.append(VirtualKey(item["key"], item.get("name"), frozenset(models) if models else None))
        else:
            raise ConfigError(f"polystream.keys[{i}] must be a key string or a mapping with a 'key'")
    return out


def _background(litellm: Mapping[str, Any], top: Any, own: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"ttl": DEFAULT_TTL}
    cache_params = litellm.get("cache_params") or {}
    if isinstance(cache_params, Mapping) and cache_params.get("ttl"):
        out["ttl"] = int(cache_params["ttl"])
    for responses in (litellm.get("responses"), top):
        mode = (responses or {}).get("background_mode") if isinstance(responses, Mapping) else None
        if isinstance(mode, Mapping):
            if mode.get("ttl"):
                out["ttl"] = int(mode["ttl"])
            if "polling_via_cache" in mode:
                out["polling_via_cache"] = mode["polling_via_cache"]
    if isinstance(own, Mapping):
        out.update({k: v for k, v in own.items() if v is not None})
    return out


def _store(litellm: Mapping[str, Any], own: Any, env: Mapping[str, str]) -> StoreConfig:
    if isinstance(own, Mapping) and own:
        kind = str(own.get("type") or ("redis" if own.get("redis_url") else "memory")).lower()
        if kind == "memory":
            return StoreConfig()
        if kind != "redis":
            raise ConfigError(f"polystream.store.type must be memory or redis, not {kind!r}")
        url = own.get("redis_url") or env.get("REDIS_URL")
        if not url:
            raise ConfigError("polystream.store: type redis needs redis_url (or REDIS_URL)")
        return StoreConfig("redis", str(url), own.get("prefix"))
    params = litellm.get("cache_params") or {}
    if litellm.get("cache") is False or not isinstance(params, Mapping) or str(params.get("type", "")).lower() != "redis":
        return StoreConfig()
    return StoreConfig("redis", _redis_url(params, env), params.get("namespace"))


def _redis_url(p: Mapping[str, Any], env: Mapping[str, str]) -> str:
    url = p.get("url") or p.get("redis_url")
    if url:
        return str(url)
    host = p.get("host") or env.get("REDIS_HOST")
    if not host and env.get("REDIS_URL"):
        return env["REDIS_URL"]
    port = p.get("port") or env.get("REDIS_PORT") or 6379
    password = p.get("password") or env.get("REDIS_PASSWORD")
    user = p.get("username") or env.get("REDIS_USERNAME")
    scheme = "rediss" if p.get("ssl") in (True, "true", "True") else "redis"
    auth = ""
    if password:
        auth = f"{quote(str(user), safe='') if user else ''}:{quote(str(password), safe='')}@"
    return f"{scheme}://{auth}{host or '127.0.0.1'}:{int(port)}/{int(p.get('db') or 0)}"
