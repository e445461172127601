"""Helpers for the proxy tests (tests/test_server_*.py): upstream bodies, a redis-server fixture,
a `polystream worker` process, and a store whose outage can be switched on. No tests here."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from polystream.background import StoreUnavailable
from polystream.background.memory_store import MemoryStore
from polystream.background.service import BackgroundSettings, ResponsesService
from polystream.fake import mock_body

ROOT = Path(__file__).resolve().parent
FIXTURES = ROOT / "fixtures" / "providers"

UPSTREAM_KEY = "sk-upstream-provider-secret-0001"
MASTER_KEY = "sk-master-proxy-key-0001"
USER_A = "sk-user-a-virtual-key-0001"
USER_B = "sk-user-b-virtual-key-0002"

LONG_TEXT = " ".join(
    f"Sentence {i} of the upstream answer says something about streaming, polling and cancel."
    for i in range(1, 13)
)


def upstream_body(text: str = LONG_TEXT, model: str = "gpt-upstream") -> bytes:
    """An OpenAI chat SSE body streaming `text` word by word (with a usage chunk and [DONE])."""
    return mock_body(text, model)


@contextlib.contextmanager
def upstream_server(delay: float) -> Iterator[Any]:
    """A replay server streaming `upstream_body()` as OpenAI chat, one SSE event per write, `delay`
    seconds apart (the modules' upstream, each with the pace its tests need)."""
    from polystream.testing import ReplayServer, Reply

    with ReplayServer() as server:
        server.serve_fixture("openai", Reply(upstream_body(), split="event", delay=delay))
        yield server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- redis


@dataclass
class RedisProc:
    port: int
    proc: subprocess.Popen[bytes] | None = None
    dir: str | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server not installed")
        self.dir = self.dir or tempfile.mkdtemp(prefix="ps-server-test-redis-")
        logfile = Path(self.dir) / "redis.log"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1",
             "--dir", self.dir, "--logfile", str(logfile)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = logfile.read_text(errors="replace") if logfile.exists() else ""
                raise RuntimeError(f"redis-server exited ({self.proc.returncode}): {out[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProc]:
    r = RedisProc(free_port())
    r.start()
    yield r
    r.stop()


# ---------------------------------------------------------------- a store that can fail


def raw_config(replay: Any, redis_url: str, **background: Any) -> dict[str, Any]:
    """A proxy config (as the YAML would hold it) on `redis_url`: model gpt-test upstream at the
    replay server's OpenAI route, the master key, keys A and B, background settings over lease 2."""
    return {
        "model_list": [{"model_name": "gpt-test", "litellm_params": {
            "model": "openai/gpt-test", "api_base": replay.base_url("openai"), "api_key": UPSTREAM_KEY}}],
        "general_settings": {"master_key": MASTER_KEY},
        "polystream": {"keys": [USER_A, USER_B], "store": {"redis_url": redis_url},
                       "background": {"lease": 2, **background}},
    }


@dataclass
class WorkerRun:
    proc: subprocess.Popen[bytes]
    output: str = ""  # stdout and stderr, once stopped
    returncode: int | None = None


@contextlib.contextmanager
def worker_command(config_path: Path) -> Iterator[WorkerRun]:
    """`polystream worker --config …` for the block, then stopped with SIGTERM (a draining stop)."""
    proc = subprocess.Popen([sys.executable, "-m", "polystream.cli", "worker", "--config", str(config_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    run = WorkerRun(proc)
    try:
        yield run
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        run.output, run.returncode = out.decode(errors="replace"), proc.returncode


class DownableStore(MemoryStore):
    """The in-memory store, except that every call raises StoreUnavailable while `down` is set
    (a Redis outage, for tests of the HTTP layer's 503s)."""

    down = False

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if name in _STORE_CALLS and super().__getattribute__("down"):
            async def unavailable(*args: Any, **kwargs: Any) -> Any:
                raise StoreUnavailable("redis: connection refused")

            return unavailable
        return attr


_STORE_CALLS = frozenset({"create", "begin", "append", "renew", "finish", "cancel", "lapse", "read", "tail",
                          "delete", "ping"})


def service_for(config: Any, store: Any = None) -> Any:
    """The real ResponsesService over `store` (default: a DownableStore)."""
    return ResponsesService(store if store is not None else DownableStore(ttl=600), config.models,
                            BackgroundSettings(lease=5))
