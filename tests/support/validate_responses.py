#!/usr/bin/env python3
"""Validate Responses-API event streams and snapshots against the openai SDK's own models.

Input: a directory of JSON files, each ``{"name", "events": [...], "snapshots": [...],
"output_text"}`` as written by the Rust test ``dump_streams_for_sdk_validation``
(rust/core/tests/responses.rs)::

    POLYSTREAM_RESPONSES_DUMP_DIR=/tmp/resp cargo test -p polystream-core --test responses
    python tests/support/validate_responses.py /tmp/resp

Needs only ``openai`` (and its pydantic). For every file it checks:

- each event with ``TypeAdapter(ResponseStreamEvent)`` in pydantic strict mode, from the Python
  object and from its JSON text, and that the model chosen is the one its ``type`` names;
- sequence numbers 0..n, ``response.created`` first;
- the stream replayed through the SDK's own ``ResponseStreamState`` (what
  ``client.responses.stream()`` runs), and for ``response.completed`` streams that the SDK's
  final ``output_text`` equals the expected text;
- each snapshot with ``Response.model_validate(..., strict=True)`` (object and JSON) and with
  the SDK's ``_strict_response_validation`` path (``openai._models.validate_type``);
- the last snapshot's ``output_text`` equals the expected text.

Exit status 1 if anything fails. ``main(dir)`` returns the list of failures, for pytest.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, List

from pydantic import TypeAdapter

from openai._models import validate_type

try:
    from openai._types import omit
except ImportError:  # openai < 1.100
    from openai._types import NOT_GIVEN as omit  # type: ignore[assignment]
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent

EVENTS = TypeAdapter(ResponseStreamEvent)


def _short(e: Exception, lines: int = 4) -> str:
    """First lines of an error (a failed union match lists every member it tried)."""
    text = str(e).splitlines()
    more = f" … (+{len(text) - lines} lines)" if len(text) > lines else ""
    return " | ".join(t.strip() for t in text[:lines]) + more


def _check_file(path: Path) -> List[str]:
    doc = json.loads(path.read_text())
    name = doc.get("name", path.stem)
    failures: List[str] = []

    def fail(msg: str) -> None:
        failures.append(f"{name}: {msg}")

    events: List[Any] = doc.get("events", [])
    parsed = []
    for n, ev in enumerate(events):
        if ev.get("sequence_number") != n:
            fail(f"event {n}: sequence_number {ev.get('sequence_number')!r}")
        try:
            obj = EVENTS.validate_python(ev, strict=True)
            EVENTS.validate_json(json.dumps(ev), strict=True)
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            fail(f"event {n} ({ev.get('type')}): {_short(e)}")
            continue
        if getattr(obj, "type", None) != ev.get("type"):
            fail(f"event {n}: parsed as {type(obj).__name__}")
        parsed.append(obj)
    if events and events[0].get("type") != "response.created":
        fail("first event is not response.created")

    if parsed and len(parsed) == len(events):
        state = ResponseStreamState(input_tools=omit, text_format=omit)
        try:
            for obj in parsed:
                state.handle_event(obj)
        except Exception as e:  # noqa: BLE001
            fail(f"SDK ResponseStreamState rejected the stream: {e!r}")
        else:
            completed = state._completed_response
            if events[-1].get("type") == "response.completed":
                if completed is None:
                    fail("SDK saw no completed response")
                elif completed.output_text != doc.get("output_text", completed.output_text):
                    fail(f"SDK output_text {completed.output_text!r} != {doc.get('output_text')!r}")

    snapshots: List[Any] = doc.get("snapshots", [])
    for n, snap in enumerate(snapshots):
        try:
            r = Response.model_validate(snap, strict=True)
            Response.model_validate_json(json.dumps(snap), strict=True)
            validate_type(type_=Response, value=snap)
        except Exception as e:  # noqa: BLE001
            fail(f"snapshot {n} (status {snap.get('status')}): {_short(e)}")
            continue
        if n == len(snapshots) - 1 and "output_text" in doc and r.output_text != doc["output_text"]:
            fail(f"snapshot output_text {r.output_text!r} != {doc['output_text']!r}")
    return failures


def main(directory: str | os.PathLike[str]) -> List[str]:
    files = sorted(Path(directory).glob("*.json"))
    if not files:
        return [f"no JSON files in {directory}"]
    failures: List[str] = []
    for f in files:
        failures.extend(_check_file(f))
    return failures


if __name__ == "__main__":
    default = os.environ.get("POLYSTREAM_RESPONSES_DUMP_DIR", "/tmp/polystream-responses-dump")
    target = sys.argv[1] if len(sys.argv) > 1 else default
    problems = main(target)
    n_files = len(list(Path(target).glob("*.json")))
    for p in problems:
        print("FAIL", p)
    print(f"{n_files} files checked, {len(problems)} failures")
    sys.exit(1 if problems else 0)
