"""Processes for `proxy_bench.py`: Redis, replay upstreams, taps and the two proxies, each in its own
process, all stopped by `Fleet.stop()` (also on failure: the benchmark calls it from `finally`
and from its signal handlers).

Every process is started with `start_new_session=True` and stopped through its own process
group (SIGTERM, then SIGKILL after 10 s), so nothing else on the machine is touched.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MASTER_KEY = "sk-bench-5b0f6a0c4e8d4e0c9c1b7a2f3d6e8a91"  # both proxies refuse to start without one
PEERS_VENV = HERE / ".venv-peers"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_ticks(pid: int) -> float:
    """utime + stime of a process in seconds (all threads, live and exited; 10 ms ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(CPU time of the live threads from schedstat, in ns precision; the tick count of /proc/PID/stat).
    `cpu_delta` combines two readings."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1e9, cpu_ticks(pid)


def cpu_delta(a: tuple[float, float], b: tuple[float, float]) -> float:
    """CPU seconds between two `cpu_seconds` readings: schedstat's (exact) unless threads that
    exited in between make the tick count clearly larger."""
    fine, coarse = b[0] - a[0], b[1] - a[1]
    return coarse if coarse > fine * 1.05 + 0.03 else fine


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Proc:
    def __init__(self, name: str, popen: subprocess.Popen[str], log: Path) -> None:
        self.name, self.popen, self.log = name, popen, log
        self.lines: queue.Queue[str] = queue.Queue()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def follow_stdout(self) -> None:
        """Read stdout lines into `self.lines` on a thread (for the SSE tap's JSON lines)."""
        def run() -> None:
            assert self.popen.stdout is not None
            for line in self.popen.stdout:
                self.lines.put(line)

        threading.Thread(target=run, name=f"{self.name}-stdout", daemon=True).start()

    def first_line(self, timeout: float = 20.0) -> str:
        assert self.popen.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.popen.stdout.readline()
            if line.strip() or self.popen.poll() is not None:
                break
        if not line.strip():
            raise RuntimeError(f"{self.name} did not start: {self.tail()}")
        return line.strip()

    def tail(self, n: int = 15) -> str:
        if not self.log.exists():
            return f"(exit {self.popen.poll()})"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


class Fleet:
    """Everything the benchmark started."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[Proc] = []

    def spawn(self, name: str, args: list[str], *, pipe: bool = False, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> Proc:
        log = self.tmp / f"{name}.log"
        logf = open(log, "w")  # noqa: SIM115 - the child keeps its own copy
        popen = subprocess.Popen(args, stdout=subprocess.PIPE if pipe else logf, stderr=logf, text=True,
                                 env={**os.environ, **(env or {})}, cwd=str(cwd or self.tmp), start_new_session=True)
        logf.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.popen.poll() is None:
                try:
                    os.killpg(proc.popen.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for proc in reversed(self.procs):
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.popen.wait()
        self.procs.clear()

    # ------------------------------------------------------------------ the pieces

    def redis(self) -> tuple[Proc, int]:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not found (apt-get install redis-server)")
        port = free_port()
        proc = self.spawn("redis", [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                    "--appendonly", "no", "--dir", str(self.tmp)])
        wait_tcp(port, proc)
        return proc, port

    def replay(self, name: str, fixture: Path, delay: float = 0.0) -> tuple[Proc, int]:
        args = [sys.executable, "-m", "polystream.testing.replay", "--port", "0", "--provider", "openai",
                "--fixture", str(fixture), "--split", "event"]
        if delay:
            args += ["--delay", str(delay)]
        proc = self.spawn(name, args, pipe=True)
        url = proc.first_line()
        return proc, int(url.rsplit(":", 1)[1])

    def tap(self, name: str, upstream_port: int, sse: bool) -> tuple[Proc, int]:
        args = [sys.executable, str(HERE / "proxy_tap.py"), "--upstream", f"127.0.0.1:{upstream_port}"]
        proc = self.spawn(name, args + (["--sse"] if sse else []), pipe=True)
        port = int(json.loads(proc.first_line()))
        proc.follow_stdout()
        return proc, port

    def polystream(self, name: str, config: Path) -> tuple[Proc, int]:
        port = free_port()
        exe = Path(sys.executable).with_name("polystream")
        args = [str(exe), "serve", "--config", str(config), "--port", str(port)] if exe.exists() else \
            [sys.executable, "-m", "polystream", "serve", "--config", str(config), "--port", str(port)]
        proc = self.spawn(name, args)
        wait_http(f"http://127.0.0.1:{port}/health/liveliness", proc, 60)
        return proc, port

    def litellm(self, name: str, exe: str, config: Path) -> tuple[Proc, int]:
        port = free_port()
        env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # offline: the bundled cost map
        proc = self.spawn(name, [exe, "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                                 "--num_workers", "1"], env=env)
        wait_http(f"http://127.0.0.1:{port}/health/liveliness", proc, 180)
        return proc, port


def wait_tcp(port: int, proc: Proc, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not listen on {port}: {proc.tail()}")


def wait_http(url: str, proc: Proc, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{proc.name} did not become healthy at {url}:\n{proc.tail()}")


# ---------------------------------------------------------------------- configs


def _model(name: str, upstream_port: int, **extra: Any) -> dict[str, Any]:
    params = {"model": "openai/gpt-4o", "api_base": f"http://127.0.0.1:{upstream_port}/v1", "api_key": "sk-upstream"}
    return {"model_name": name, "litellm_params": {**params, **extra}}


def write_config(path: Path, upstreams: dict[str, int], redis_port: int | None, *, litellm: bool) -> Path:
    """One LiteLLM-format config. `upstreams`: model name → port. With `redis_port`: the issue's
    background-mode settings on that Redis (LiteLLM's `cache: true` + `cache_params`)."""
    models = []
    for name, port in upstreams.items():
        extra: dict[str, Any] = {}
        if litellm and name.startswith("bg"):
            # /v1/responses on openai/* would go to the upstream's own /v1/responses; this makes
            # LiteLLM bridge to chat completions, so both proxies read the same upstream stream.
            extra["use_chat_completions_api"] = True
        models.append(_model(name, port, **extra))
    cfg: dict[str, Any] = {"model_list": models, "general_settings": {"master_key": MASTER_KEY}}
    if redis_port is not None:
        cfg["litellm_settings"] = {
            "cache": True,
            "cache_params": {"type": "redis", "host": "127.0.0.1", "port": str(redis_port), "ttl": 3600},
            "responses": {"background_mode": {"polling_via_cache": "all", "ttl": 3600}},
        }
    path.write_text(json.dumps(cfg, indent=2))  # JSON is YAML
    return path


def find_litellm(explicit: str | None) -> tuple[str | None, str]:
    """(path to a `litellm` CLI with the proxy extras, or None; a note on where it came from)."""
    if explicit and not Path(explicit).exists():
        return None, f"{explicit} does not exist"
    candidates = [explicit, os.environ.get("LITELLM_BIN"), str(PEERS_VENV / "bin" / "litellm")]
    for c in candidates:
        if c and Path(c).exists():
            python = Path(c).with_name("python")
            if python.exists():
                ok = subprocess.run([str(python), "-c", "import fastapi, uvicorn, litellm.proxy"],
                                    capture_output=True, text=True)
                if ok.returncode != 0:
                    return None, f"{c}: the proxy extras are missing ({ok.stderr.strip().splitlines()[-1:]})"
            return c, c
    return None, (f"no LiteLLM proxy found: run `python benches/proxy_bench.py --setup-litellm` "
                  f"(creates {PEERS_VENV.relative_to(ROOT)} with pip install 'litellm[proxy]'), "
                  "or pass --litellm /path/to/bin/litellm")


def setup_litellm() -> int:
    """A separate venv for LiteLLM's proxy: its pins (openai, certifi, …) would fight the main venv's."""
    if not (PEERS_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        (PEERS_VENV / ".gitignore").write_text("*\n")
    pip = [str(PEERS_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    # 1.107.0 was a compromised release; never that one.
    return subprocess.run(pip + ["litellm[proxy]!=1.107.0"]).returncode


def litellm_version(exe: str) -> str:
    python = Path(exe).with_name("python")
    out = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"
