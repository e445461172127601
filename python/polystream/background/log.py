"""The log's record format, and rebuilding events and snapshots from it.

A log entry is a list of records, each standing for one normalised chat chunk (or a lifecycle
step). Records are compact so that the store is written ~1 byte per output byte. An entry of
content records only (what nearly every flush is) is stored as its bare UTF-8 text, the records
separated by U+001E; any other entry is a JSON array (see `dumps` / `loads`):

    "some text"                           a content delta (the common case: just the text)
    {"c": "...", "l": [token, …]}         a content delta with its token logprobs, as the chat
                                          chunks sent them (`logprobs.content` entries)
    {"r": "..."} / {"x": "..."}           a reasoning / refusal delta
    {"t": [[index, id, name, args], …]}   tool-call deltas
    {"f": "stop", "u": {usage}}           finish reason and/or usage (no events of their own); the
                                          usage holds only its nonzero counts that a Response uses
    {"i": {id, model, created_at, base, queued, request}}   the first record: what to rebuild with
    {"s": 1}                              the producer started (→ response.in_progress)
    {"e": "finish"|"fail"|"cancel"|"incomplete", "now": t, "code", "msg", "reason"}  terminal

Consecutive deltas of one kind are merged into one record until the record is *sealed*: when the
producer flushes, when a local reader looks, or after every chunk while someone is streaming live.
Rebuilding runs a `ResponsesBuilder` over the records (one synthetic chunk each): the builder is
deterministic given the same id, created_at, item id base, clock values and inputs, so every
reader, in any process, derives the same events with the same sequence numbers and the same
snapshot. The full event JSON and the repeated text of `.done` events and the final Response
are never stored.
"""

from __future__ import annotations

import json
from typing import Any

from .._core import ChatCompletionChunk, ResponsesBuilder

__all__ = ["Event", "Pending", "View", "dumps", "loads", "finish_status", "fail_record", "text_run_to_split",
           "usage_record", "START"]

Event = tuple[int, str, bytes]  # (sequence_number, event name, event JSON)

START = {"s": 1}


_SEP = "\x1e"  # between the content records of a text entry


def dumps(records: list[Any]) -> bytes:
    """One log entry. Content records only (the hot path's common case): the texts joined by
    U+001E (a *text entry*: 1 byte per record boundary, no quoting or escaping); anything else,
    or a text that contains U+001E: a JSON array. A text entry whose text starts with `[` gets
    one leading U+001E so that it cannot read as JSON."""
    if records and all(type(r) is str and r and _SEP not in r for r in records):
        text = _SEP.join(records)
        return (_SEP + text if text[0] == "[" else text).encode()
    return json.dumps(records, ensure_ascii=False, separators=(",", ":")).encode()


# What one more log write costs besides its payload: command, key, id, field and their framing.
_WRITE_FRAMING = 60


def text_run_to_split(records: list[Any]) -> int:
    """How many leading content records of a terminal entry to write as a text entry of their
    own first (0: none). In the JSON entry each costs 3 bytes of quoting and its escapes, in a
    text entry 1: worth a write when a reader in the producer's process sealed many small
    records since the last flush (one per look)."""
    k = 0
    while k < len(records) and type(records[k]) is str and records[k] and _SEP not in records[k]:
        k += 1
    if k == 0:
        return 0
    as_json = len(json.dumps(records[:k], ensure_ascii=False, separators=(",", ":")).encode())
    return k if as_json - len(dumps(records[:k])) > _WRITE_FRAMING else 0


def loads(payload: bytes) -> list[Any]:
    """The records of one log entry (either form of `dumps`)."""
    if payload[:1] == b"[":
        records: list[Any] = json.loads(payload)
        return records
    text = payload.decode()
    return (text[1:] if text[:1] == _SEP else text).split(_SEP)


def finish_status(finish_reason: str | None) -> str:
    """The status `ResponsesBuilder.finish()` ends in for this finish reason (kept in step with it)."""
    if finish_reason in ("length", "content_filter"):
        return "incomplete"
    if finish_reason is None or finish_reason == "error":
        return "failed"
    return "completed"


def fail_record(code: str, message: str, now: int) -> dict[str, Any]:
    return {"e": "fail", "code": code, "msg": message, "now": now}


def usage_record(usage: dict[str, Any]) -> dict[str, Any]:
    """A chat usage as the log keeps it: only what a Response's usage is made of, zeros left out
    (the builder reads absent counts as 0, and a missing total as the sum). A provider's whole
    usage is ~290 bytes of mostly zero details, the largest record of a short response."""
    prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    out = {k: v for k, v in (("prompt_tokens", prompt), ("completion_tokens", completion)) if v}
    if (total := usage.get("total_tokens") or 0) and total != prompt + completion:
        out["total_tokens"] = total
    for name, keys in (("prompt_tokens_details", ("cached_tokens", "cache_creation_tokens")),
                       ("completion_tokens_details", ("reasoning_tokens",))):
        given = usage.get(name) or {}
        if details := {k: given[k] for k in keys if given.get(k)}:
            out[name] = details
    return out


_TOKEN_JSON = 56
_ANNOTATION_JSON = 128  # a url_citation with its url and title, roughly


class Pending:
    """Chunks not yet sealed into records. `add` is the producer's per-chunk work: O(delta).
    `logprobs`: the provider was asked for token logprobs (else no chunk is looked at for them)."""

    __slots__ = ("records", "kind", "parts", "logprobs", "tokens", "annotations", "calls", "extra", "nbytes")

    def __init__(self, logprobs: bool = False) -> None:
        self.records: list[Any] = []
        self.logprobs = logprobs
        self.kind: str | None = None  # "c", "r", "x" or "t": the open run of deltas
        self.parts: list[str] = []
        self.tokens: list[Any] = []  # the logprobs of the open run of content deltas
        self.annotations: list[Any] = []  # citations of the open text run
        self.calls: dict[int, list[Any]] = {}
        self.extra: dict[str, Any] = {}
        self.nbytes = 0  # bytes waiting (text as characters, tokens estimated)

    def __bool__(self) -> bool:
        return bool(self.records or self.kind or self.extra)

    def add(self, chunk: ChatCompletionChunk) -> None:
        usage = chunk.usage
        if usage is not None:
            self.extra["u"] = usage_record(usage.to_dict())
        for choice in chunk.choices:
            if choice.index != 0:  # a Response has one output list: choice 0 only, as the builder
                continue
            d = choice.delta
            reasoning, text, calls = d.reasoning_content, d.content, d.tool_calls
            if reasoning:
                self._text("r", reasoning)
            if text:
                self._text("c", text)
            # Tokens of a chunk with reasoning or tool calls and no text are theirs: the builder
            # drops them (no Responses field), so the log need not keep them.
            if self.logprobs and (lp := choice.logprobs) is not None and (text or not (reasoning or calls)):
                self._logprobs(lp)
            if a := d.annotations:  # citations belong to the text, as in the builder
                self._open_text()
                self.annotations += a
                self.nbytes += _ANNOTATION_JSON * len(a)
            if s := d.refusal:
                self._text("x", s)
            if calls:
                for tc in calls:
                    self._tool(tc)
            if f := choice.finish_reason:
                self.extra["f"] = f
            break

    def _text(self, kind: str, s: str) -> None:
        if self.kind != kind:
            self._close()
            self.kind = kind
        self.parts.append(s)
        self.nbytes += len(s)

    def _open_text(self) -> None:
        """A content run is open (an empty one if need be) for what belongs to text."""
        if self.kind != "c":
            self._text("c", "")

    def _logprobs(self, lp: Any) -> None:
        """The tokens of the content just added (`refusal` logprobs have no Responses field)."""
        if tokens := lp.get("content"):
            self._open_text()  # tokens may come without text of their own (part of a character)
            self.tokens += tokens
            # What they will take in the log, roughly (a token or an alternative stores as ~56
            # bytes of JSON), so a size-triggered flush sees them and not only the text.
            self.nbytes += sum(_TOKEN_JSON * (1 + len(t.get("top_logprobs") or ())) for t in tokens)

    def _tool(self, tc: Any) -> None:
        if self.kind != "t":
            self._close()
            self.kind = "t"
        fn = tc.function
        slot = self.calls.get(tc.index)
        if slot is None:
            slot = self.calls[tc.index] = [tc.index, tc.id or None, (fn.name if fn else None) or None, []]
        else:  # the builder keeps the first id and name it sees; so does the merged record
            slot[1] = slot[1] or tc.id or None
            slot[2] = slot[2] or (fn.name if fn else None) or None
        args = fn.arguments if fn else None
        if args:
            slot[3].append(args)
            self.nbytes += len(args)

    def _close(self) -> None:
        kind, self.kind = self.kind, None
        if kind is None:
            return
        if kind == "t":
            self.records.append({"t": [[i, cid, name, "".join(a)] for i, cid, name, a in self.calls.values()]})
            self.calls = {}
            return
        text = "".join(self.parts)
        self.parts = []
        if self.tokens or self.annotations:
            rec: dict[str, Any] = {"c": text}
            if self.tokens:
                rec["l"], self.tokens = self.tokens, []
            if self.annotations:
                rec["a"], self.annotations = self.annotations, []
            self.records.append(rec)
            return
        self.records.append(text if kind == "c" else {kind: text})

    def seal(self) -> list[Any]:
        """Everything pending as records (empty if nothing)."""
        self._close()
        if self.extra:
            self.records.append(self.extra)
            self.extra = {}
        out, self.records, self.nbytes = self.records, [], 0
        return out


def _chunk(rec: Any) -> ChatCompletionChunk:
    choice: dict[str, Any] = {"index": 0}
    if isinstance(rec, str):
        choice["delta"] = {"content": rec}
    elif "c" in rec:
        choice["delta"] = {"content": rec["c"]}
        if "l" in rec:
            choice["logprobs"] = {"content": rec["l"]}
        if "a" in rec:
            choice["delta"]["annotations"] = rec["a"]
    elif "r" in rec:
        choice["delta"] = {"reasoning_content": rec["r"]}
    elif "x" in rec:
        choice["delta"] = {"refusal": rec["x"]}
    elif "t" in rec:
        choice["delta"] = {"tool_calls": [
            {"index": i, "id": cid, "type": "function", "function": {"name": name, "arguments": args}}
            for i, cid, name, args in rec["t"]
        ]}
    else:
        f = rec.get("f")
        body: dict[str, Any] = {"choices": [{"index": 0, "delta": {}, "finish_reason": f}] if f else []}
        if rec.get("u") is not None:
            body["usage"] = rec["u"]
        return ChatCompletionChunk.from_json(json.dumps(body))
    return ChatCompletionChunk.from_json(json.dumps({"choices": [choice]}))


class View:
    """A response rebuilt from its records: the builder, plus the events it emitted.

    keep: how many recent events to retain for `since()` (None: all; 0: none).
    `pos` is the store position of the last entry applied (None before any).
    """

    __slots__ = ("init", "builder", "events", "first", "keep", "pos", "initial")

    def __init__(self, init: dict[str, Any], keep: int | None = None) -> None:
        self.init = init
        request = {k: v for k, v in init["request"].items() if k != "input"}
        self.builder = ResponsesBuilder(
            init["id"], init["model"], init["created_at"],
            request=request, queued=init["queued"], item_id_base=init["base"],
        )
        self.events: list[Event] = []
        self.first = 0  # sequence number of events[0]
        self.keep = keep
        self.pos: int | None = None
        self.initial = self.builder.start()  # response.created (+ response.queued)
        self._retain(self.initial)

    @classmethod
    def from_entries(cls, entries: list[tuple[int, bytes]], keep: int | None = None) -> tuple[View, list[Event]]:
        """A view from a log read from its start: (view, every event it emitted)."""
        pos, payload = entries[0]
        records = loads(payload)
        view = cls(records[0]["i"], keep)
        out = list(view.initial)
        out += view.apply(records[1:])
        view.pos = pos
        for pos, payload in entries[1:]:
            out += view.apply(loads(payload))
            view.pos = pos
        return view, out

    def apply_entries(self, entries: list[tuple[int, bytes]]) -> list[Event]:
        """Apply the entries after `pos` (skipping any already applied)."""
        out: list[Event] = []
        for pos, payload in entries:
            if self.pos is not None and pos <= self.pos:
                continue
            out += self.apply(loads(payload))
            self.pos = pos
        return out

    def apply(self, records: list[Any]) -> list[Event]:
        b = self.builder
        out: list[Event] = []
        batch: list[ChatCompletionChunk] = []
        for rec in records:
            if isinstance(rec, str) or not ("e" in rec or "s" in rec or "i" in rec):
                batch.append(_chunk(rec))
                continue
            if batch:
                out += b.on_chunks(batch)
                batch = []
            if "s" in rec:
                out += b.mark_in_progress()
            elif "e" in rec:
                out += self._terminal(rec)
        if batch:
            out += b.on_chunks(batch)
        self._retain(out)
        return out

    def _terminal(self, rec: dict[str, Any]) -> list[Event]:
        b = self.builder
        if rec.get("now"):
            b.set_now(int(rec["now"]))
        kind = rec["e"]
        if kind == "finish":
            return b.finish()
        if kind == "cancel":
            return b.cancel()
        if kind == "incomplete":
            return b.incomplete(rec.get("reason") or "max_output_tokens")
        return b.fail(rec.get("code") or "server_error", rec.get("msg") or "the response failed")

    def _retain(self, events: list[Event]) -> None:
        if self.keep == 0:
            self.first += len(events)
            return
        self.events += events
        if self.keep is not None and len(self.events) > 2 * self.keep:
            self.trim()

    def trim(self) -> None:
        """Drop all but the last `keep` retained events."""
        if self.keep is not None and len(self.events) > self.keep:
            drop = len(self.events) - self.keep
            del self.events[:drop]
            self.first += drop

    def since(self, seq: int) -> list[Event] | None:
        """Retained events with sequence_number >= seq; None if some of them were not retained."""
        if seq < self.first:
            return None
        return self.events[seq - self.first :]

    @property
    def next_seq(self) -> int:
        return self.builder.next_sequence_number

    @property
    def status(self) -> str:
        return self.builder.status

    @property
    def terminal(self) -> bool:
        return self.builder.is_terminal

    def snapshot_json(self) -> bytes:
        return self.builder.snapshot_json()
