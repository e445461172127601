"""Operating the proxy: /metrics, health, keys kept out of logs and out of the store, and the
`polystream serve` / `showcase` commands as a user runs them (the seed's curl flow)."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from polystream.server import ServerThread, create_app, parse_config
from polystream.server.auth import Authenticator, redact
from polystream.testing import ReplayServer, Reply

from .test_server_support import (
    MASTER_KEY,
    UPSTREAM_KEY,
    USER_A,
    USER_B,
    RedisProc,
    free_port,
    service_for,
    upstream_body,
)

try:
    from polystream.background import redis_store as _rs  # noqa: F401

    HAVE_REDIS_STORE = True
except ImportError:
    HAVE_REDIS_STORE = False

ROOT = Path(__file__).resolve().parent.parent
ALL_KEYS = (MASTER_KEY, UPSTREAM_KEY, USER_A, USER_B)


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


def _config(replay: ReplayServer) -> Any:
    return parse_config({
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/gpt-test", "api_base": replay.base_url("openai"), "api_key": UPSTREAM_KEY}}],
        "general_settings": {"master_key": MASTER_KEY},
        "polystream": {"keys": [USER_A, USER_B]},
    })


@pytest.fixture
def proxy(replay: ReplayServer) -> Iterator[tuple[ServerThread, Any]]:
    replay.reset()
    replay.serve_fixture("openai", Reply(upstream_body("One. Two. Three."), split="event"))
    cfg = _config(replay)
    service = service_for(cfg)
    with ServerThread(create_app(cfg, service)) as server:
        yield server, service


def _sdk(server: ServerThread, key: str = USER_A) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, _strict_response_validation=True)


# ---------------------------------------------------------------- metrics and health


def _sample(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
        if line.startswith(name + " ") and not want:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}{{{want}}} in:\n{text}")


def test_metrics(proxy: tuple[ServerThread, Any]) -> None:
    server, _ = proxy
    client = _sdk(server)
    list(client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True))
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    r = client.responses.create(model="gpt-test", input="hi", background=True)
    client.responses.cancel(r.id)
    r = httpx.get(server.url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    route = "/v1/chat/completions"
    assert _sample(text, "polystream_requests_total", route=route, method="POST", status="200") == 2
    assert _sample(text, "polystream_requests_total", route=route, method="POST", status="404") == 1
    assert _sample(text, "polystream_time_to_first_token_seconds_count", route=route) == 2
    assert _sample(text, "polystream_time_to_first_token_seconds_bucket", route=route, le="+Inf") == 2
    assert _sample(text, "polystream_chunks_relayed_total", route=route) >= 4
    assert _sample(text, "polystream_errors_total", type="invalid_request_error") == 1
    assert _sample(text, "polystream_background_jobs_total", status="queued") == 1
    assert _sample(text, "polystream_background_jobs_total", status="cancelled") == 1
    # every sample line is well-formed exposition text
    sample = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)*\})? [0-9.e+-]+$|^# (HELP|TYPE) ')
    assert all(sample.match(line) for line in text.splitlines()), text


def test_health(proxy: tuple[ServerThread, Any]) -> None:
    server, _ = proxy
    for path in ("/health/liveliness", "/health/liveness", "/health/readiness"):  # probes: no key, no model call
        r = httpx.get(server.url + path)
        assert r.status_code == 200, path
    assert httpx.get(server.url + "/health/readiness").json()["store_connected"] is True
    assert httpx.get(server.url + "/health").status_code == 401  # the model check needs a key, as LiteLLM's


TEAM = "sk-team-only-gpt-ok-0003"


def test_health_probes_every_deployment(replay: ReplayServer) -> None:
    """/health (LiteLLM's): one one-token call per deployment, healthy and unhealthy endpoints
    listed apart, keys never shown, `?model=` for one model, a key sees only its models."""
    replay.reset()
    replay.add("/ok/v1/chat/completions", Reply(upstream_body("pong")))
    replay.add("/bad/v1/chat/completions", Reply.error(401, {"error": {
        "message": f"Incorrect API key provided: {UPSTREAM_KEY}.", "type": "invalid_request_error", "code": "invalid_api_key"}}))
    cfg = parse_config({
        "model_list": [
            {"model_name": "gpt-ok", "litellm_params": {"model": "openai/gpt-4o", "api_base": replay.url + "/ok/v1", "api_key": UPSTREAM_KEY}},
            {"model_name": "gpt-bad", "litellm_params": {"model": "openai/gpt-4o", "api_base": replay.url + "/bad/v1", "api_key": UPSTREAM_KEY}},
            {"model_name": "ok/*", "litellm_params": {"model": "openai/*", "api_base": replay.url + "/ok/v1", "api_key": UPSTREAM_KEY}},
        ],
        "general_settings": {"master_key": MASTER_KEY},
        "polystream": {"keys": [{"key": TEAM, "models": ["gpt-ok"]}]},
    })
    with ServerThread(create_app(cfg, background=False)) as server:
        def health(key: str, query: str = "") -> httpx.Response:
            return httpx.get(f"{server.url}/health{query}", headers={"Authorization": f"Bearer {key}"}, timeout=60)

        got = health(MASTER_KEY).json()
        assert got["healthy_endpoints"] == [{"model_name": "gpt-ok", "model": "openai/gpt-4o", "api_base": replay.url + "/ok/v1"}]
        [bad] = got["unhealthy_endpoints"]
        assert (bad["model_name"], got["healthy_count"], got["unhealthy_count"]) == ("gpt-bad", 1, 1)
        assert bad["error"].startswith("AuthenticationError") and "Incorrect API key" in bad["error"]
        assert UPSTREAM_KEY not in json.dumps(got)  # neither from the config nor from the upstream's error
        probes = [r.json() for r in replay.requests]
        assert len(probes) == 2 and all(p["max_tokens"] == 1 for p in probes)

        one = health(MASTER_KEY, "?model=ok/gpt-4.1-mini").json()  # a wildcard, when named
        assert one["healthy_endpoints"] == [{"model_name": "ok/gpt-4.1-mini", "model": "openai/gpt-4.1-mini",
                                             "api_base": replay.url + "/ok/v1"}]
        assert health(MASTER_KEY, "?model=nope").status_code == 404
        assert [e["model_name"] for e in health(TEAM).json()["healthy_endpoints"]] == ["gpt-ok"]
        assert health(TEAM).json()["unhealthy_count"] == 0
        assert health(TEAM, "?model=gpt-bad").status_code == 403


# ---------------------------------------------------------------- keys


def test_keys_never_logged(replay: ReplayServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("uvicorn", "uvicorn.access", "uvicorn.error"):  # uvicorn does not propagate to root
        logging.getLogger(name).addHandler(caplog.handler)
    try:
        replay.reset()
        cfg = _config(replay)
        with ServerThread(create_app(cfg, service_for(cfg)), log_level="debug") as server:
            base = server.url
            replay.serve_fixture("openai", Reply(upstream_body("Fine."), split="event"))
            _sdk(server).chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
            httpx.get(base + "/v1/models", headers={"authorization": "Bearer sk-wrong-key-123456"})
            replay.reset()  # upstream refuses our provider key, echoing it as some providers do
            replay.serve_fixture("openai", Reply.error(401, {"error": {"message": f"Incorrect API key provided: {UPSTREAM_KEY}",
                                                                       "type": "invalid_request_error"}}))
            r = httpx.post(base + "/v1/chat/completions", headers={"authorization": f"Bearer {USER_B}"},
                           json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 502 and UPSTREAM_KEY not in r.text
            replay.reset()
            replay.serve_fixture("openai", Reply(upstream_body("Cut short here now."), split="event", drop_after=3))
            httpx.post(base + "/v1/chat/completions", headers={"authorization": f"Bearer {USER_A}"},
                       json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "stream": True})
            log = logging.getLogger("polystream.server.test")
            log.warning("a careless line: master=%s header=Bearer %s", MASTER_KEY, USER_A)
            try:
                raise RuntimeError(f"boom with {UPSTREAM_KEY} and https://x.example/v1?key=AIzaSECRET123")
            except RuntimeError:
                log.exception("an exception quoting a key")
    finally:
        for name in ("uvicorn", "uvicorn.access", "uvicorn.error"):
            logging.getLogger(name).removeHandler(caplog.handler)
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "a careless line" in text and "[REDACTED]" in text
    for key in (*ALL_KEYS, "sk-wrong-key-123456", "AIzaSECRET123"):
        assert key not in text, key


def test_redact_shapes() -> None:
    assert redact("Authorization: Bearer abc.def-ghi") == "Authorization: Bearer [REDACTED]"
    assert "sk-proj-abcdef123" not in redact("key sk-proj-abcdef123 used")
    assert redact("GET /v1beta/models/x?alt=sse&key=AIza123") == "GET /v1beta/models/x?alt=sse&key=[REDACTED]"


@pytest.mark.parametrize("text", [
    "BEARER abc", "authorization: BeArEr\tabc", "SK-PROJ-ABCDEF1", "\u017fk-abcdefgh1", "x?API-KEY=abc",
    "x&Api_Key=abc", "x?\u212aey=abc", "x?\u212aEY=abc&b=1", "nothing to hide", "sk-short", "key = v", "",
    '127.0.0.1:5 - "GET /v1/responses/resp_1?stream=true HTTP/1.1" 200',
])
def test_redact_skips_the_pattern_only_when_it_cannot_match(text: str) -> None:
    # redact() skips the regex when no case-folded anchor occurs: it must still redact exactly
    # what the pattern alone would, whatever the letters' case (Unicode folds included).
    from polystream.server.auth import _PATTERNS

    assert redact(text) == _PATTERNS.sub(lambda m: (m.group(1) or m.group(3) or "") + "[REDACTED]", text)


def test_owner_is_opaque(proxy: tuple[ServerThread, Any]) -> None:
    server, service = proxy
    r = _sdk(server).responses.create(model="gpt-test", input="hi", background=True)
    owner = service.store._data[r.id].owner
    assert USER_A not in owner and owner != USER_A
    auth = Authenticator(MASTER_KEY, [])
    assert auth.owner_of(USER_A) == owner  # stable across proxies sharing a config
    assert Authenticator(None).owner_of(USER_A) != owner  # keyed by the deployment's secret


def test_open_mode_scopes_by_key(replay: ReplayServer) -> None:
    replay.reset()
    replay.serve_fixture("openai", Reply(upstream_body("Open."), split="event"))
    cfg = parse_config({"model_list": [{"model_name": "gpt-test", "litellm_params": {
        "model": "openai/gpt-test", "api_base": replay.base_url("openai"), "api_key": UPSTREAM_KEY}}]})
    with ServerThread(create_app(cfg, service_for(cfg))) as server:
        anon = httpx.post(server.url + "/v1/responses", json={"model": "gpt-test", "input": "hi", "background": True})
        assert anon.status_code == 200
        rid = anon.json()["id"]
        assert httpx.get(f"{server.url}/v1/responses/{rid}").status_code == 200
        assert httpx.get(f"{server.url}/v1/responses/{rid}", headers={"authorization": "Bearer any"}).status_code == 404


# ---------------------------------------------------------------- the commands


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stdout.read().decode() if proc.stdout else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("server did not open its port")


@pytest.fixture
def serve_cmd() -> Iterator[callable]:  # type: ignore[valid-type]
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> str:
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "polystream.cli", "serve", "--port", str(port), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        procs.append(proc)
        _wait_port(port, proc)
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _seed_flow(base: str, model: str, headers: dict[str, str] | None = None) -> list[str]:
    """The seed's curl commands: create in background (queued at once), GET until completed."""
    t = time.monotonic()
    r = httpx.post(base + "/v1/responses", json={"model": model, "input": "Tell me about polling.", "background": True},
                   headers=headers)
    assert r.status_code == 200, r.text
    assert time.monotonic() - t < 1.0
    body = r.json()
    assert body["status"] == "queued" and body["id"].startswith("resp_")
    texts: list[str] = []
    deadline = time.monotonic() + 30
    while body["status"] in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.05)
        body = httpx.get(f"{base}/v1/responses/{body['id']}", headers=headers).json()
        texts.append("".join(c["text"] for item in body["output"] if item["type"] == "message" for c in item["content"]))
    assert body["status"] == "completed", body
    return texts


def test_bad_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("general_settings: {master_key: os.environ/POLYSTREAM_TEST_UNSET}\n")
    proc = subprocess.run([sys.executable, "-m", "polystream.cli", "serve", "--config", str(bad)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "POLYSTREAM_TEST_UNSET" in proc.stderr


def test_serve_embedded_default_seed_flow(serve_cmd) -> None:  # type: ignore[no-untyped-def]
    base = serve_cmd()
    assert httpx.get(base + "/health/readiness").json()["store"] == "memory"
    texts = _seed_flow(base, "polystream-mock")
    grown = [t for t in texts if t]
    assert len(set(grown)) >= 3, "the answer should be seen growing"
    assert all(b.startswith(a) for a, b in zip(grown, grown[1:]))


@pytest.mark.skipif(not HAVE_REDIS_STORE, reason="redis package missing")
def test_serve_seed_config_unchanged(serve_cmd, tmp_path: Path, replay: ReplayServer) -> None:  # type: ignore[no-untyped-def]
    from .test_server_config import SEED

    if _port_free(6379):
        text, redis = SEED, RedisProc(6379)  # the seed's file exactly as written
    else:  # something else owns 6379 here: same file, another port
        port = free_port()
        text, redis = SEED.replace('"6379"', f'"{port}"'), RedisProc(port)
    redis.start()
    try:
        replay.reset()
        body = (ROOT / "tests/fixtures/providers/anthropic/anthropic_text_multibyte.sse").read_bytes()
        replay.serve_fixture("anthropic", Reply(body, split="event", delay=0.05))
        cfg = tmp_path / "config.yaml"
        cfg.write_text(text)
        base = serve_cmd("--config", str(cfg), env={"ANTHROPIC_API_BASE": replay.base_url("anthropic"),
                                                   "ANTHROPIC_API_KEY": "sk-ant-test"})
        assert httpx.get(base + "/health/readiness").json()["store"] == "redis"
        texts = _seed_flow(base, "claude-sonnet-4-5-20250929")
        assert texts[-1]
    finally:
        redis.stop()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_showcase_command() -> None:
    proc = subprocess.run([sys.executable, "-m", "polystream.cli", "showcase", "--interval", "0.2"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "queued" in out and "in_progress" in out and "completed after" in out
    assert len(re.findall(r"poll +\d+ +in_progress", out)) >= 3


def test_access_log_with_a_key_in_the_url(replay: ReplayServer, caplog: pytest.LogCaptureFixture) -> None:
    """One access line per request on polystream.access (uvicorn's own is off), for the Starlette
    routes and the lean chat route alike, written once the response is complete: client address,
    method, path, status; a key in the query string masked, headers never written."""
    caplog.set_level(logging.INFO)
    replay.reset()
    replay.serve_fixture("openai", Reply(upstream_body("Logged."), split="event"))
    cfg = _config(replay)
    with ServerThread(create_app(cfg, service_for(cfg)), log_level="info") as server:
        httpx.get(server.url + "/v1/models?key=AIzaLEAKED12345", headers={"authorization": f"Bearer {USER_A}"})
        with httpx.stream("POST", server.url + "/v1/chat/completions", headers={"authorization": f"Bearer {USER_B}"},
                          json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "stream": True}) as r:
            assert r.status_code == 200
            r.read()
        httpx.post(server.url + "/chat/completions", json={"model": "gpt-test", "messages": []},
                   headers={"x-api-key": USER_A})
        deadline = time.monotonic() + 2
        while len([r for r in caplog.records if r.name == "polystream.access"]) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    lines = [r.getMessage() for r in caplog.records if r.name == "polystream.access"]
    assert not [r for r in caplog.records if r.name == "uvicorn.access"]
    assert len(lines) == 3, lines
    models, chat, bad = lines
    assert re.fullmatch(r'127\.0\.0\.1:\d+ - "GET /v1/models\?key=\[REDACTED\] HTTP/1\.1" 200', models), models
    assert re.fullmatch(r'127\.0\.0\.1:\d+ - "POST /v1/chat/completions HTTP/1\.1" 200', chat), chat
    assert re.fullmatch(r'127\.0\.0\.1:\d+ - "POST /chat/completions HTTP/1\.1" 400', bad), bad
    for key in (*ALL_KEYS, "AIzaLEAKED12345"):
        assert key not in caplog.text, key


def test_access_log_follows_log_level(replay: ReplayServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    cfg = _config(replay)
    with ServerThread(create_app(cfg, service_for(cfg)), log_level="warning") as server:
        assert httpx.get(server.url + "/health/liveliness").status_code == 200
        assert httpx.post(server.url + "/v1/chat/completions", json={}).status_code == 401
    assert not [r for r in caplog.records if r.name in ("polystream.access", "uvicorn.access")]


@pytest.mark.parametrize("origins", [None, ["https://app.example"], []])
def test_browsers_may_call_the_proxy_from_the_configured_origins(replay: ReplayServer, origins: Any) -> None:
    """CORS: a preflight, then a streamed chat and a background create from a page. The chat
    request with an Origin goes through Starlette's stack rather than the lean front door, so it
    gets the headers and still streams. Origins default to any, as LiteLLM's proxy."""
    replay.reset()
    replay.serve_fixture("openai", Reply(upstream_body("One. Two. Three."), split="event"))
    raw: dict[str, Any] = {
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/gpt-test", "api_base": replay.base_url("openai"), "api_key": UPSTREAM_KEY}}],
        "general_settings": {"master_key": MASTER_KEY},
    }
    if origins is not None:
        raw["polystream"] = {"server": {"cors_origins": origins}}
    allowed = "*" if origins is None else (origins[0] if origins else None)
    page = "https://app.example"
    with ServerThread(create_app(parse_config(raw))) as server:
        pre = httpx.options(server.url + "/v1/chat/completions", headers={
            "origin": page, "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type"})
        if allowed is None:
            assert "access-control-allow-origin" not in pre.headers
        else:
            assert pre.status_code == 200, pre.text
            assert pre.headers["access-control-allow-origin"] == allowed
            assert "authorization" in pre.headers["access-control-allow-headers"].lower()
            assert "POST" in pre.headers["access-control-allow-methods"]
        body = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        auth = {"authorization": f"Bearer {MASTER_KEY}", "origin": page}
        with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, headers=auth, timeout=10) as r:
            text = r.read().decode()
        assert r.status_code == 200 and text.rstrip().endswith("data: [DONE]")
        assert "Three." in "".join(re.findall(r'"content":"([^"]*)"', text))
        assert r.headers.get("access-control-allow-origin") == allowed
        assert r.headers["content-type"].startswith("text/event-stream")
        # an error answer carries them too, so the page can read it
        bad = httpx.post(server.url + "/v1/chat/completions", json=body, headers={"origin": page})
        assert bad.status_code == 401 and bad.headers.get("access-control-allow-origin") == allowed
        # no Origin: no CORS headers (the lean path)
        plain = httpx.post(server.url + "/v1/chat/completions", json={**body, "stream": False},
                           headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=10)
        assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers
