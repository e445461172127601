"""`polystream showcase`: background mode end to end, offline.

Starts the proxy in-process on a free port with its embedded default (a mock model, the in-memory
store: no key, no Redis, no network), creates a background response over HTTP, polls it while
the text grows, and prints the completed response. The same requests work with curl against
`polystream serve`; the commands are printed at the end.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

import httpx

from .app import ServerThread, create_app
from .config import MOCK_MODEL, embedded_default

_DIM, _BOLD, _RESET = "\033[2m", "\033[1m", "\033[0m"
PROMPT = "Explain background mode in a few sentences."


def showcase(out: TextIO | None = None, app: Any = None, interval: float = 0.25, timeout: float = 60.0) -> int:
    out = out or sys.stdout
    tty = out.isatty()

    def style(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if tty else text

    server = ServerThread(app if app is not None else create_app(embedded_default()))
    server.start()
    try:
        base = server.url
        out.write(f"polystream proxy on {base}  (embedded default: model {MOCK_MODEL!r}, in-memory store)\n\n")
        with httpx.Client(base_url=base, timeout=10.0) as http:
            body = {"model": MOCK_MODEL, "input": PROMPT, "background": True}
            t0 = time.monotonic()
            r = http.post("/v1/responses", json=body)
            r.raise_for_status()
            created = r.json()
            rid = created["id"]
            out.write(style(_BOLD, "POST /v1/responses") + f"  {json.dumps(body)}\n")
            out.write(f"  → {created['status']} in {1000 * (time.monotonic() - t0):.1f} ms, id {rid}\n\n")
            out.write(style(_BOLD, f"GET /v1/responses/{rid}") + f"  every {interval:g} s\n")
            shown, polls, final = 0, 0, created
            deadline = time.monotonic() + timeout
            while final["status"] in ("queued", "in_progress") and time.monotonic() < deadline:
                time.sleep(interval)
                got = http.get(f"/v1/responses/{rid}")
                got.raise_for_status()
                final, polls = got.json(), polls + 1
                text = _text(final)
                new, shown = text[shown:], len(text)
                out.write(f"  poll {polls:2d}  {final['status']:<11} {len(text):4d} chars  "
                          + style(_DIM, "+") + (new.replace("\n", " ") if new else style(_DIM, "(nothing new)")) + "\n")
                out.flush()
        out.write(f"\n{style(_BOLD, final['status'])} after {time.monotonic() - t0:.2f} s and {polls} polls")
        usage = final.get("usage") or {}
        if usage:
            out.write(f"; usage {usage.get('input_tokens')} in / {usage.get('output_tokens')} out")
        out.write(f"\n\n{_text(final)}\n\n")
        out.write(style(_DIM, "The same with `polystream serve` running (port 4000):\n"
                              f"  curl -s localhost:4000/v1/responses -H 'content-type: application/json' "
                              f"-d '{json.dumps(body)}'\n"
                              "  curl -s localhost:4000/v1/responses/<id>\n"
                              "  curl -sN 'localhost:4000/v1/responses/<id>?stream=true&starting_after=0'\n"))
        return 0 if final["status"] == "completed" else 1
    finally:
        server.stop()


def _text(response: dict[str, Any]) -> str:
    parts = []
    for item in response.get("output") or []:
        if item.get("type") == "message":
            parts += [c.get("text", "") for c in item.get("content") or [] if c.get("type") == "output_text"]
    return "".join(parts)
