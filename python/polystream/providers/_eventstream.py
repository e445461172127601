"""AWS eventstream frames, written: fake streaming replays a non-streaming Converse answer as
the frames a streaming call would have carried, so it takes the one decoding path (the core's
`bedrock_converse` dialect). Layout: total length, headers length, prelude CRC32, headers,
payload, message CRC32, all big-endian."""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any


def _header(name: str, value: str) -> bytes:
    raw = value.encode()
    return bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(raw)) + raw


def message(headers: list[tuple[str, str]], payload: bytes) -> bytes:
    """One message with string headers (the only kind Bedrock sends), in the order given."""
    h = b"".join(_header(name, value) for name, value in headers)
    prelude = struct.pack(">II", 16 + len(h) + len(payload), len(h))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + h + payload
    return head + struct.pack(">I", zlib.crc32(head))


def frame(event_type: str, payload: dict[str, Any]) -> bytes:
    """An event message as AWS writes them: its type, then the content and message types."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return message([(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")],
                   body)


def from_converse(answer: dict[str, Any]) -> bytes:
    """A Converse answer (`{"output": {"message"}, "stopReason", "usage"}`) as its stream's frames."""
    out = [frame("messageStart", {"role": "assistant"})]
    content = ((answer.get("output") or {}).get("message") or {}).get("content") or []
    for i, block in enumerate(content):
        at = {"contentBlockIndex": i}
        deltas: list[dict[str, Any]] = []
        if "text" in block:
            deltas.append({"text": block["text"]})
        elif "toolUse" in block:
            use = block["toolUse"]
            out.append(frame("contentBlockStart", {**at, "start": {"toolUse": {
                "toolUseId": use.get("toolUseId"), "name": use.get("name")}}}))
            deltas.append({"toolUse": {"input": json.dumps(use.get("input") or {}, ensure_ascii=False)}})
        elif "reasoningContent" in block:
            rc = block["reasoningContent"]
            if "redactedContent" in rc:
                deltas.append({"reasoningContent": {"redactedContent": rc["redactedContent"]}})
            text = rc.get("reasoningText") or {}
            if text.get("text"):
                deltas.append({"reasoningContent": {"text": text["text"]}})
            if text.get("signature"):
                deltas.append({"reasoningContent": {"signature": text["signature"]}})
        else:
            continue  # images, guard content, …: nothing a chat chunk carries
        out += [frame("contentBlockDelta", {**at, "delta": d}) for d in deltas]
        out.append(frame("contentBlockStop", at))
    out.append(frame("messageStop", {"stopReason": answer.get("stopReason") or "end_turn"}))
    if answer.get("usage"):
        out.append(frame("metadata", {"usage": answer["usage"], "metrics": answer.get("metrics") or {}}))
    return b"".join(out)
