"""The store contract (both stores), the log's records and their rebuild, and request conversion."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from openai.types.responses import Response

from polystream import ChatCompletionChunk, ResponsesBuilder
from polystream.background.convert import to_chat
from polystream.background.log import START, Pending, View, _chunk, dumps, fail_record, loads, text_run_to_split
from polystream.background.memory_store import MemoryStore
from polystream.background.service import BackgroundSettings, ResponsesService
from polystream.background.store import ALIVE, GONE, OK, TAKEN, Store
from polystream.fake import mock_body
from tests.conftest_redis import redis_url  # noqa: F401

pytest.importorskip("redis")
from polystream.background.redis_store import RedisStore  # noqa: E402


def run(coro: Any, timeout: float = 20) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return lambda: MemoryStore(ttl=60)
    url = request.getfixturevalue("redis_url")
    return lambda: RedisStore(url, prefix="st", ttl=60)


@asynccontextmanager
async def opened(make: Any) -> AsyncIterator[Store]:
    store = make()
    await store.start()
    try:
        yield store
    finally:
        await store.close()


def init(rid: str, queued: bool = True) -> dict[str, Any]:
    return {"id": rid, "model": "gpt-4o", "created_at": 1767225600, "base": "00ff", "queued": queued,
            "request": {"model": "gpt-4o", "background": queued}}


def rid_() -> str:
    from polystream.background.service import new_id

    return new_id()


def rebuild(entries: list[tuple[int, bytes]]) -> View:
    return View.from_entries(entries)[0]


# ---------------------------------------------------------------- store contract


def test_terminal_states_are_write_once(make_store: Any) -> None:
    async def main() -> None:
        async with opened(make_store) as store:
            rid = rid_()
            await store.create(rid, "o", 1, dumps([{"i": init(rid)}, START]), "tok", 5)
            assert await store.append(rid, 3, dumps(["Hello"]))
            assert await store.append(rid, 3, dumps(["Hello"]))  # a retried write is not duplicated
            done = dumps([" world", {"f": "stop"}, {"e": "finish", "now": 2}])
            assert await store.finish(rid, "tok", "completed", done) == OK
            cancel = dumps([{"e": "cancel", "now": 3}])
            assert await store.cancel(rid, cancel) == "completed"
            assert await store.lapse(rid, dumps([fail_record("server_error", "x", 3)])) == "completed"
            assert await store.finish(rid, "tok", "failed", dumps([{"e": "fail", "now": 4}])) == "completed"
            assert await store.append(rid, 4, dumps(["late"])) is False  # the log is closed
            assert await store.renew(rid, "tok", 5) == "completed"
            snap = await store.read(rid)
            assert snap is not None and snap.status == "completed" and not snap.lease_alive
            view = rebuild(snap.entries)
            assert view.status == "completed" and view.builder.output_text == "Hello world"
            Response.model_validate_json(view.snapshot_json(), strict=True)

    run(main())


def test_cancel_wins_over_a_later_finish(make_store: Any) -> None:
    async def main() -> None:
        async with opened(make_store) as store:
            rid = rid_()
            await store.create(rid, "o", 1, dumps([{"i": init(rid)}, START]), "tok", 5)
            assert await store.append(rid, 3, dumps(["partial"]))
            assert await store.cancel(rid, dumps([{"e": "cancel", "now": 3}])) == OK
            assert await store.cancel(rid, dumps([{"e": "cancel", "now": 4}])) == "cancelled"
            assert await store.append(rid, 4, dumps([" more"])) is False
            assert await store.finish(rid, "tok", "completed", dumps([{"e": "finish", "now": 5}])) == "cancelled"
            snap = await store.read(rid)
            assert snap is not None
            view = rebuild(snap.entries)
            assert snap.status == view.status == "cancelled" and view.builder.output_text == "partial"

    run(main())


def test_begin_is_a_compare_and_set(make_store: Any) -> None:
    async def main() -> None:
        async with opened(make_store) as store:
            rid = rid_()
            await store.create(rid, "o", 1, dumps([{"i": init(rid)}]), None, 5)  # queued, for a worker
            snap = await store.read(rid)
            assert snap is not None and snap.status == "queued" and not snap.leased and not snap.lapsed
            # Taking it hands the worker what it runs: the owner and the request (entry 1).
            taken = (OK, "o", dumps([{"i": init(rid)}]))
            assert await store.begin(rid, "w1", 5, dumps([START])) == taken
            assert await store.begin(rid, "w1", 5, dumps([START])) == taken  # a retry by the same worker
            assert await store.begin(rid, "w2", 5, dumps([START])) == (TAKEN, "", b"")
            assert await store.begin("resp_" + "q" * 26, "w2", 5, dumps([START])) == (GONE, "", b"")
            snap = await store.read(rid)
            assert snap is not None and snap.status == "in_progress" and [e[0] for e in snap.entries] == [1, 2]
            gone = rid_()
            await store.create(gone, "o", 1, dumps([{"i": init(gone)}]), None, 5)
            assert await store.cancel(gone, dumps([{"e": "cancel", "now": 1}])) == OK
            assert (await store.begin(gone, "w1", 5, dumps([START])))[0] == "cancelled"  # cancelled while queued

    run(main())


def test_a_lapsed_lease_reads_as_failed_with_the_text_so_far(make_store: Any) -> None:
    async def main() -> None:
        async with opened(make_store) as store:
            rid = rid_()
            await store.create(rid, "owner", 1, dumps([{"i": init(rid)}, START]), "tok", 0.4)
            assert await store.append(rid, 3, dumps(["The partial ", "answer"]))
            assert await store.lapse(rid, dumps([fail_record("server_error", "x", 1)])) == ALIVE
            # The producer dies: nobody renews. A reader notices and turns it into failed.
            svc = ResponsesService(store, None, BackgroundSettings(lease=0.4))
            await asyncio.sleep(0.6)
            r = Response.model_validate_json(await svc.retrieve("owner", rid), strict=True)
            assert r.status == "failed" and r.error is not None and r.error.code == "server_error"
            assert r.output_text == "The partial answer"
            assert await store.renew(rid, "tok", 5) == "failed"  # a producer that comes back must stop
            p = await svc.poll("owner", rid, 0)
            assert p["done"] and p["text"] == "The partial answer"

    run(main())


def test_missing_and_deleted(make_store: Any) -> None:
    async def main() -> None:
        async with opened(make_store) as store:
            rid = rid_()
            assert await store.read(rid) is None
            assert await store.delete(rid) is False
            await store.create(rid, "o", 1, dumps([{"i": init(rid)}, START]), "tok", 5)
            assert await store.delete(rid) is True
            assert await store.read(rid) is None
            assert await store.append(rid, 3, dumps(["x"])) is False  # a producer that missed it
            assert await store.renew(rid, "tok", 5) == GONE

    run(main())


def test_tail_waits_for_new_entries(make_store: Any) -> None:
    async def main() -> None:
        async with opened(make_store) as store:
            rid = rid_()
            await store.create(rid, "o", 1, dumps([{"i": init(rid)}, START]), "tok", 5)
            t0 = time.monotonic()
            assert await store.tail(rid, 1, 0.2) == []
            assert time.monotonic() - t0 >= 0.15
            waiter = asyncio.ensure_future(store.tail(rid, 1, 5))
            await asyncio.sleep(0.05)
            assert await store.append(rid, 3, dumps(["x"]))
            got = await waiter
            assert [p for p, _ in got] == [3] and loads(got[0][1]) == ["x"]

    run(main())


def test_redis_keys_are_short_and_their_tags_collision_free(redis_url: str) -> None:  # noqa: F811
    """Two ids that share the key tag (the first characters of the id) cannot both be live: the
    second create is refused (the service then picks a fresh id), and an id that only shares the
    tag reads as missing rather than as the other response."""

    async def main() -> None:
        store = RedisStore(redis_url, prefix="kt", ttl=60)
        try:
            rid = rid_()
            twin = rid[:11] + ("a" if rid[11] != "a" else "b") + rid[12:]  # same tag, another id
            meta, log, lease = store.keys(rid)
            assert log == "kt:{" + rid[5:11] + "}l" and lease == "kt:{" + rid[5:11] + "}k"
            assert store.keys(twin)[1:] == (log, lease) and store.keys(twin)[0] != meta
            assert await store.create(rid, "o", 1, dumps([{"i": init(rid)}, START]), "tok", 5) == OK
            assert await store.create(rid, "o", 1, dumps([{"i": init(rid)}, START]), "tok", 5) == OK  # a retry
            assert await store.create(twin, "o", 1, dumps([{"i": init(twin)}]), None, 5) == TAKEN
            assert await store.read(twin) is None and (await store.begin(twin, "w", 5, dumps([START])))[0] == GONE
            assert await store.cancel(twin, dumps([{"e": "cancel", "now": 1}])) == GONE
            snap = await store.read(rid)
            assert snap is not None and snap.status == "in_progress" and snap.lease_alive
            assert await store.delete(rid) is True
            # The deleted response's sealed log keeps the tag for a while: still refused.
            assert await store.create(twin, "o", 1, dumps([{"i": init(twin)}]), None, 5) == TAKEN
            for weird in ("resp_nope", "resp_{x}y", "{", ""):
                assert await store.read(weird) is None
        finally:
            await store.close()

    run(main())


def test_the_service_retries_a_refused_id(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from polystream.background import service as service_mod

    async def main() -> None:
        store = RedisStore(redis_url, prefix="kr", ttl=60)
        taken = rid_()
        await store.create(taken, "o", 1, dumps([{"i": init(taken)}]), None, 5)
        twin = taken[:11] + ("a" if taken[11] != "a" else "b") + taken[12:]
        ids = iter([twin, twin, rid_()])
        monkeypatch.setattr(service_mod, "new_id", lambda: next(ids))
        class Models:
            def resolve(self, name: str) -> tuple[str, dict[str, Any]]:
                return name, {}

        svc = ResponsesService(store, Models(), BackgroundSettings(workers=True))  # queued: no upstream needed
        await svc.start()
        try:
            created = json.loads(await svc.create("o", {"model": "m", "input": "hi", "background": True}))
            assert created["id"] not in (taken, twin) and created["status"] == "queued"
            snap = await store.read(created["id"])
            assert snap is not None and snap.owner == "o" and loads(snap.entries[0][1])[0]["i"]["id"] == created["id"]
        finally:
            await svc.close()

    run(main())


# ---------------------------------------------------------------- records and rebuild


def chunks_of(body: bytes) -> list[ChatCompletionChunk]:
    out = []
    for line in body.split(b"\n"):
        if line.startswith(b"data: {"):
            out.append(ChatCompletionChunk.from_json(line[6:]))
    return out


BODY = mock_body({"reasoning_content": "Let me think about it.", "content": "Sure: 東京 🚀, done.",
                  "tool_calls": [{"function": {"name": "f", "arguments": {"a": "x" * 50}}},
                                 {"function": {"name": "g", "arguments": "{}"}}]}, "gpt-4o")


def direct(chunks: list[ChatCompletionChunk]) -> tuple[list[Any], bytes]:
    b = ResponsesBuilder("resp_x", "gpt-4o", 1767225600, request={"model": "gpt-4o", "background": True},
                         queued=True, item_id_base="00ff")
    ev = b.start() + b.mark_in_progress() + b.on_chunks(chunks)
    b.set_now(1767225601)
    ev += b.finish()
    return ev, b.snapshot_json()


def test_one_record_per_chunk_rebuilds_the_exact_event_stream() -> None:
    chunks = chunks_of(BODY)
    events, snapshot = direct(chunks)
    pending, records = Pending(), [START]
    for c in chunks:
        pending.add(c)
        records += pending.seal()
    records.append({"e": "finish", "now": 1767225601})
    view, got = View.from_entries([(1, dumps([{"i": init("resp_x")}])), (2, dumps(records))])
    assert got == events
    assert view.snapshot_json() == snapshot


def test_merged_records_give_the_same_response_with_fewer_events() -> None:
    chunks = chunks_of(BODY)
    events, snapshot = direct(chunks)
    pending = Pending()
    for c in chunks:
        pending.add(c)
    records = [START] + pending.seal() + [{"e": "finish", "now": 1767225601}]
    assert len(records) == 6  # reasoning, text, tool calls, finish + usage: merged by kind
    payload = dumps(records)
    assert len(payload) < 2 * len("Let me think about it.Sure: 東京 🚀, done.".encode()) + 300
    view, got = View.from_entries([(1, dumps([{"i": init("resp_x")}])), (2, payload)])
    assert view.snapshot_json() == snapshot
    assert len(got) < len(events)
    assert [e[0] for e in got] == list(range(len(got)))


@pytest.mark.parametrize("usage", [
    # OpenAI's shape: every detail present, most of them zero
    {"prompt_tokens": 1200, "completion_tokens": 310, "total_tokens": 1510,
     "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
     "completion_tokens_details": {"reasoning_tokens": 192, "audio_tokens": 0, "accepted_prediction_tokens": 0,
                                   "rejected_prediction_tokens": 0}},
    # Anthropic's cache writes; a total that is not the sum; all zero
    {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 50,
     "prompt_tokens_details": {"cached_tokens": 0, "cache_creation_tokens": 33}},
    {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
])
def test_the_log_keeps_usage_as_short_as_the_response_needs(usage: dict[str, Any]) -> None:
    chunks = chunks_of(BODY) + [ChatCompletionChunk.from_json(json.dumps({"choices": [], "usage": usage}))]
    events, snapshot = direct(chunks)
    pending = Pending()
    for c in chunks:
        pending.add(c)
    records = [START] + pending.seal() + [{"e": "finish", "now": 1767225601}]
    stored = next(r["u"] for r in records if isinstance(r, dict) and "u" in r)
    # Only the counts a Response has, and only nonzero ones: OpenAI's ~290 bytes become ~145.
    kept = {"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details.cached_tokens",
            "prompt_tokens_details.cache_creation_tokens", "completion_tokens_details.reasoning_tokens"}
    leaves = {f"{k}.{j}" if isinstance(v, dict) else k: (w if isinstance(v, dict) else v)
              for k, v in stored.items() for j, w in (v.items() if isinstance(v, dict) else [(None, v)])}
    assert set(leaves) <= kept and all(leaves.values())
    assert ("total_tokens" in stored) == (usage["total_tokens"] != usage["prompt_tokens"] + usage["completion_tokens"])
    view, got = View.from_entries([(1, dumps([{"i": init("resp_x")}])), (2, dumps(records))])
    assert view.snapshot_json() == snapshot
    assert json.loads(snapshot)["usage"]["input_tokens_details"]["cached_tokens"] == \
        usage.get("prompt_tokens_details", {}).get("cached_tokens", 0)


def test_a_terminal_entry_splits_off_its_text_only_when_that_saves_bytes() -> None:
    many = [f" tok{i}" for i in range(40)]
    assert text_run_to_split(many + [{"f": "stop"}, {"e": "finish", "now": 1}]) == 40
    assert text_run_to_split(many[:5] + [{"e": "finish", "now": 1}]) == 0  # a write costs more
    assert text_run_to_split([{"r": "think"}] + many) == 0  # only a leading run of content
    assert text_run_to_split(many + ["a\x1eb"] + many) == 40  # a record with the separator ends the run
    assert text_run_to_split(['"q"\n' * 30]) == 1  # escapes count: one long record may pay too
    k = text_run_to_split(many + [{"e": "finish", "now": 1}])
    assert loads(dumps(many[:k])) == many[:k]


def test_the_log_keeps_the_tokens_the_builder_keeps() -> None:
    """With logprobs asked for, tokens of thinking or tool-call lines (Ollama sends them) are not
    stored: the builder drops them. Tokens without text before text are, and the log rebuilds the
    builder's own response."""
    def chunk(delta: dict[str, Any], token: str) -> ChatCompletionChunk:
        lp = {"content": [{"token": token, "logprob": -0.5, "bytes": list(token.encode()), "top_logprobs": []}]}
        return ChatCompletionChunk.from_json(json.dumps({"choices": [{"index": 0, "delta": delta, "logprobs": lp}]}))

    chunks = [chunk({"reasoning_content": "hm"}, "hm"), chunk({}, "\\xe2"), chunk({"content": "€ ok"}, "€ ok"),
              chunk({}, "{"), chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}]}, "}"),
              ChatCompletionChunk.from_json('{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}')]
    pending = Pending(logprobs=True)
    for c in chunks:
        pending.add(c)
    records = pending.seal()
    stored = [t["token"] for r in records if isinstance(r, dict) and "l" in r for t in r["l"]]
    assert stored == ["\\xe2", "€ ok", "{"]  # the last is dropped by the builder when the call comes

    request = {"model": "gpt-4o", "background": True, "include": ["message.output_text.logprobs"]}
    b = ResponsesBuilder("resp_x", "gpt-4o", 1767225600, request=request, queued=True, item_id_base="00ff")
    b.start(), b.mark_in_progress(), b.on_chunks(chunks)
    b.set_now(1767225601)
    b.finish()
    out = json.loads(b.snapshot_json())["output"]
    assert [i["type"] for i in out] == ["reasoning", "message", "function_call"]
    assert [t["token"] for t in out[1]["content"][0]["logprobs"]] == ["\\xe2", "€ ok"]


def test_annotations_survive_the_log() -> None:
    """Citations (delta.annotations) are stored with their text run and come back on the rebuilt
    response's output_text part, as the live builder has them."""
    cite = {"type": "url_citation", "url_citation": {"url": "https://a.example", "title": "A", "start_index": 0,
                                                     "end_index": 4}}
    chunks = [ChatCompletionChunk.from_json(json.dumps({"choices": [{"index": 0, "delta": d, "finish_reason": f}]}))
              for d, f in [({"content": "Rust"}, None), ({"content": " rocks", "annotations": [cite]}, None),
                           ({"reasoning_content": "hm"}, None), ({"content": "!"}, "stop")]]
    pending = Pending()
    for c in chunks:
        pending.add(c)
    records = pending.seal()
    assert {"c": "Rust rocks", "a": [cite]} in records

    def annotations_of(feed: list[ChatCompletionChunk]) -> list[Any]:
        b = ResponsesBuilder("resp_x", "gpt-4o", 1767225600, request={"model": "gpt-4o"}, item_id_base="00ff")
        b.start(), b.mark_in_progress(), b.on_chunks(feed)
        b.set_now(1767225601)
        b.finish()
        out = json.loads(b.snapshot_json())["output"]
        return [a for item in out if item["type"] == "message" for p in item["content"] for a in p["annotations"]]

    flat = {"type": "url_citation", "url": "https://a.example", "title": "A", "start_index": 0, "end_index": 4}
    assert annotations_of(chunks) == annotations_of([_chunk(r) for r in records]) == [flat]


def test_pending_counts_logprob_tokens_toward_the_flush_size() -> None:
    """Logprob tokens are most of what a logprobs run stores: the size that triggers a flush must
    count them, or a run that asked for 20 alternatives would be flushed by time alone."""
    def chunk(top: int) -> ChatCompletionChunk:
        alts = [{"token": f"t{i}", "logprob": -1.0, "bytes": [116]} for i in range(top)]
        lp = {"content": [{"token": "a", "logprob": -0.1, "bytes": [97], "top_logprobs": alts}]}
        return ChatCompletionChunk.from_json(json.dumps({"choices": [{"index": 0, "delta": {"content": "a"},
                                                                      "logprobs": lp}]}))

    plain, few, many = Pending(), Pending(logprobs=True), Pending(logprobs=True)
    for _ in range(10):
        plain.add(chunk(20)), few.add(chunk(0)), many.add(chunk(20))
    assert plain.nbytes == 10  # not asked for logprobs: the text alone
    estimate = many.nbytes
    stored = len(dumps(many.seal()))
    assert few.nbytes > 10 and estimate > 10 * few.nbytes
    assert stored / 2 <= estimate <= stored * 2  # within 2x of what the log stores


@pytest.mark.parametrize("records", [
    ["Hello"], ["Hello", " world", "!"], ["[link](x)", " y"], ["a\nb\"c\\d", "東京 🚀"],
    ["has \x1e inside", "x"], ["", "x"], [], ["text", {"f": "stop"}], [{"i": {"id": "resp_x"}}, START],
    ["[", "]"], ["\x1f", "\x00"],
])
def test_entries_round_trip(records: list[Any]) -> None:
    payload = dumps(records)
    assert loads(payload) == records
    if records and all(isinstance(r, str) and r and "\x1e" not in r for r in records):
        # a text entry: the bare text plus one byte per record boundary (and one if it starts with "[")
        text = "".join(records).encode()
        assert len(payload) == len(text) + len(records) - 1 + (records[0].startswith("["))


def test_view_retention() -> None:
    view = View(init("resp_x"), keep=4)
    view.apply([START] + ["a", "b"])
    n = view.next_seq
    for i in range(20):
        view.apply([str(i)])
    assert view.since(view.next_seq - 3) is not None and view.since(n) is None
    assert [e[0] for e in view.since(view.next_seq - 2) or []] == [view.next_seq - 2, view.next_seq - 1]


# ---------------------------------------------------------------- request conversion


def test_responses_request_to_chat() -> None:
    messages, params = to_chat({
        "model": "m",
        "instructions": "Be brief.",
        "input": [
            {"role": "developer", "content": "Use tools."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather "},
                                                            {"type": "input_text", "text": "in Paris?"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call", "call_id": "c2", "name": "time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "18C"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "noon"}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"role": "user", "content": [{"type": "input_text", "text": "And this?"},
                                         {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"}]},
        ],
        "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}, "strict": True}],
        "tool_choice": {"type": "function", "name": "weather"},
        "max_output_tokens": 100, "reasoning": {"effort": "low"}, "temperature": 0.2, "top_p": 0.9,
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": True}},
        "metadata": {"k": "v"}, "store": True, "background": True,
    })
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "c2", "type": "function", "function": {"name": "time", "arguments": "{}"}},
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "18C"},
        {"role": "tool", "tool_call_id": "c2", "content": "noon"},
        {"role": "user", "content": [{"type": "text", "text": "And this?"},
                                     {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]},
    ]
    assert params == {
        "temperature": 0.2, "top_p": 0.9, "max_tokens": 100, "reasoning_effort": "low",
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}, "strict": True}}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": True}},
    }
    assert to_chat({"model": "m", "input": "hi"}) == ([{"role": "user", "content": "hi"}], {})


@pytest.mark.parametrize("body", [
    {"input": 3},
    {"input": [{"type": "item_reference", "id": "x"}]},
    {"input": "hi", "previous_response_id": "resp_1"},
    {"input": "hi", "tools": [{"type": "file_search"}]},
    {"input": [{"role": "robot", "content": "x"}]},
    {"input": [{"type": "function_call", "name": "f"}]},
])
def test_unsupported_requests_are_value_errors(body: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        to_chat({"model": "m", **body})
