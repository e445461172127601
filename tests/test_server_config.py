"""The proxy's config: LiteLLM's format unchanged (the seed's file), polystream's own section,
os.environ/ references, model routing."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

import polystream
from polystream.server.config import (
    MOCK_MODEL,
    ConfigError,
    ModelRouter,
    embedded_default,
    load_config,
    parse_config,
)

SEED = textwrap.dedent("""\
    model_list:
      - model_name: claude-sonnet-4-5-20250929
        litellm_params: {model: anthropic/claude-sonnet-4-5-20250929}
    litellm_settings:
      cache: true
      cache_params: {type: redis, ttl: 3600, host: "127.0.0.1", port: "6379"}
      responses:
        background_mode: {polling_via_cache: "all", ttl: 3600}
    """)


def test_seed_config_parses(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(SEED)
    cfg = load_config(path)
    assert cfg.store.type == "redis"
    assert cfg.store.redis_url == "redis://127.0.0.1:6379/0"
    assert cfg.ttl == 3600
    assert cfg.background["polling_via_cache"] == "all"
    assert cfg.models.names() == ["claude-sonnet-4-5-20250929"]
    assert cfg.models.resolve("claude-sonnet-4-5-20250929") == ("anthropic/claude-sonnet-4-5-20250929", {})
    assert cfg.master_key is None and cfg.keys == []
    with pytest.raises(KeyError):
        cfg.models.resolve("gpt-4o")


def test_redis_settings_variants() -> None:
    env = {"REDIS_PW": "p@ss/word"}
    cfg = parse_config({"litellm_settings": {"cache": True, "cache_params": {
        "type": "redis", "host": "redis.internal", "port": 6380, "password": "os.environ/REDIS_PW", "ssl": True}}}, env)
    assert cfg.store.redis_url == "rediss://:p%40ss%2Fword@redis.internal:6380/0"
    # LiteLLM's environment fallbacks
    cfg = parse_config({"litellm_settings": {"cache": True, "cache_params": {"type": "redis"}}},
                       {"REDIS_HOST": "h", "REDIS_PORT": "7000"})
    assert cfg.store.redis_url == "redis://h:7000/0"
    # cache: false, or a non-redis cache, means the in-memory store
    assert parse_config({"litellm_settings": {"cache": False, "cache_params": {"type": "redis"}}}, {}).store.type == "memory"
    assert parse_config({"litellm_settings": {"cache": True, "cache_params": {"type": "local"}}}, {}).store.type == "memory"
    # polystream's own section wins
    cfg = parse_config({"litellm_settings": {"cache": True, "cache_params": {"type": "redis", "host": "a"}},
                        "polystream": {"store": {"redis_url": "redis://b:1/2", "prefix": "ps"}}}, {})
    assert (cfg.store.type, cfg.store.redis_url, cfg.store.prefix) == ("redis", "redis://b:1/2", "ps")
    assert parse_config({"polystream": {"store": {"type": "memory"}}}, {}).store.type == "memory"
    with pytest.raises(ConfigError):
        parse_config({"polystream": {"store": {"type": "redis"}}}, {})


def test_background_mode_locations() -> None:
    top = parse_config({"responses": {"background_mode": {"polling_via_cache": ["anthropic"], "ttl": 120}}}, {})
    assert top.ttl == 120 and top.background["polling_via_cache"] == ["anthropic"]
    own = parse_config({"responses": {"background_mode": {"ttl": 120}},
                        "polystream": {"background": {"ttl": 60, "lease": 5, "workers": True},
                                       "store": {"redis_url": "redis://r:6379/0"}}}, {})
    assert own.ttl == 60 and own.background["lease"] == 5 and own.background["workers"] is True
    assert parse_config({"litellm_settings": {"cache_params": {"ttl": 99}}}, {}).ttl == 99
    assert parse_config({}, {}).ttl == 3600


def test_env_references_anywhere() -> None:
    env = {"MK": "sk-master", "UP": "sk-up", "BASE": "http://up/v1", "TEAM": "sk-team"}
    cfg = parse_config({
        "model_list": [{"model_name": "m", "litellm_params": {"model": "openai/x", "api_key": "os.environ/UP",
                                                             "api_base": "os.environ/BASE", "temperature": 0.2}}],
        "general_settings": {"master_key": "os.environ/MK"},
        "polystream": {"keys": ["os.environ/TEAM", {"key": "sk-literal", "name": "lit", "models": ["m"]}]},
    }, env)
    assert cfg.master_key == "sk-master"
    assert [k.key for k in cfg.keys] == ["sk-team", "sk-literal"]
    assert cfg.keys[1].models == frozenset({"m"})
    assert cfg.models.resolve("m") == ("openai/x", {"api_key": "sk-up", "api_base": "http://up/v1", "temperature": 0.2})
    assert set(cfg.secrets()) >= {"sk-master", "sk-up", "sk-team", "sk-literal"}


def test_bedrock_credentials_in_a_deployment_are_secrets() -> None:
    env = {"AK": "AKIAEXAMPLE0001", "SK": "secret/key+EXAMPLE", "ST": "session-token-EXAMPLE"}
    cfg = parse_config({"model_list": [{"model_name": "claude", "litellm_params": {
        "model": "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws_region_name": "us-west-2",
        "aws_access_key_id": "os.environ/AK", "aws_secret_access_key": "os.environ/SK",
        "aws_session_token": "os.environ/ST"}}]}, env)
    model, params = cfg.models.resolve("claude")
    assert model == "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert params["aws_secret_access_key"] == "secret/key+EXAMPLE" and params["aws_region_name"] == "us-west-2"
    assert set(cfg.secrets()) >= set(env.values())  # masked in every log line
    azure = parse_config({"model_list": [{"model_name": "a", "litellm_params": {
        "model": "azure/gpt-41-prod", "api_base": "https://x.openai.azure.com", "azure_ad_token": "eyJ-token-1"}}]}, {})
    assert "eyJ-token-1" in azure.secrets()


def test_litellm_drop_params_holds_for_every_deployment() -> None:
    raw = {"litellm_settings": {"drop_params": True}, "model_list": [
        {"model_name": "a", "litellm_params": {"model": "openai/o3"}},
        {"model_name": "b", "litellm_params": {"model": "openai/o3", "drop_params": False}}]}
    cfg = parse_config(raw, {})
    assert cfg.models.resolve("a")[1]["drop_params"] is True
    assert cfg.models.resolve("b")[1]["drop_params"] is False  # a deployment's own setting wins
    assert "drop_params" not in parse_config({"model_list": raw["model_list"][:1]}, {}).models.resolve("a")[1]


def test_unset_secret_reference_is_an_error() -> None:
    with pytest.raises(ConfigError, match="MISSING_MK"):
        parse_config({"general_settings": {"master_key": "os.environ/MISSING_MK"}}, {})
    with pytest.raises(ConfigError, match="MISSING_K"):
        parse_config({"polystream": {"keys": ["os.environ/MISSING_K"]}}, {})
    # an unset provider key is left to the provider call (LiteLLM does the same)
    cfg = parse_config({"model_list": [{"model_name": "m", "litellm_params": {"model": "openai/x",
                                                                              "api_key": "os.environ/NOPE"}}]}, {})
    assert cfg.models.resolve("m") == ("openai/x", {})


def test_routing_hints_are_not_call_parameters() -> None:
    router = ModelRouter.from_model_list([{"model_name": "m", "litellm_params": {
        "model": "gpt-4o", "custom_llm_provider": "azure", "rpm": 10, "tpm": 1000, "max_retries": 3},
        "model_info": {"id": "x"}}])
    assert router.resolve("m") == ("azure/gpt-4o", {"num_retries": 3})


def test_deployments_rotate_and_fall_back() -> None:
    router = ModelRouter.from_model_list([
        {"model_name": "m", "litellm_params": {"model": "openai/a", "api_key": "k1"}},
        {"model_name": "m", "litellm_params": {"model": "groq/b", "api_key": "k2"}},
    ])
    first, second = router.resolve("m"), router.resolve("m")
    assert {first[0], second[0]} == {"openai/a", "groq/b"}
    assert first[1]["fallbacks"] == [{"model": second[0], "api_key": second[1]["api_key"]}]


def test_wildcards() -> None:
    router = ModelRouter.from_model_list([
        {"model_name": "anthropic/*", "litellm_params": {"model": "anthropic/*", "api_key": "k"}},
        {"model_name": "*", "litellm_params": {"model": "*"}},
        {"model_name": "exact", "litellm_params": {"model": "openai/exact"}},
    ])
    assert router.resolve("anthropic/claude-x") == ("anthropic/claude-x", {"api_key": "k"})
    assert router.resolve("gemini/gemini-2.5-flash") == ("gemini/gemini-2.5-flash", {})
    assert router.resolve("exact") == ("openai/exact", {})
    assert "anything" in router and router.names() == ["anthropic/*", "*", "exact"]


@pytest.mark.parametrize("raw,match", [
    ({"model_list": {"a": 1}}, "model_list"),
    ({"model_list": [{"litellm_params": {}}]}, "model_name"),
    ({"model_list": ["x"]}, "mapping"),
    ({"polystream": {"keys": [42]}}, "keys"),
    ({"general_settings": "x"}, "general_settings"),
    ({"polystream": {"store": {"type": "etcd"}}}, "store"),
    ({"polystream": {"background": {"workers": True}}}, "workers"),
    ({"polystream": {"server": {"cors_origins": [1]}}}, "cors_origins"),
    ({"polystream": {"server": "x"}}, "polystream.server"),
])
def test_bad_configs(raw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_config(raw, {})


def test_load_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_list: [\n")
    with pytest.raises(ConfigError, match="YAML"):
        load_config(bad)


def test_embedded_default_mock_streams_with_pauses() -> None:
    cfg = embedded_default()
    assert cfg.store.type == "memory" and cfg.master_key is None
    model, kwargs = cfg.models.resolve(MOCK_MODEL)

    async def run() -> tuple[str, list[float]]:
        import time

        stream = await polystream.acompletion(model, [{"role": "user", "content": "hi"}], stream=True, **kwargs)
        stamps, text = [], ""
        async for chunk in stream:
            stamps.append(time.monotonic())
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        return text, stamps

    text, stamps = asyncio.run(run())
    assert text.count(". ") >= 3  # several sentences
    assert stamps[-1] - stamps[0] > 0.5  # arrives over time, so a poller sees it grow


def test_mock_response_in_litellm_params() -> None:
    router = ModelRouter.from_model_list([{"model_name": "fake", "litellm_params": {
        "model": "openai/fake", "mock_response": "Hi from the config.", "mock_delay": 0}}])
    model, kwargs = router.resolve("fake")

    async def run() -> str:
        done = await polystream.acompletion(model, [{"role": "user", "content": "hi"}], **kwargs)
        return str(done.choices[0].message.content)

    assert asyncio.run(run()) == "Hi from the config."
