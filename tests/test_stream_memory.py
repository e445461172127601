"""A stream waiting for its next read holds none of the chunks it already handed out, nor the bytes
they came from: with many streams at once, those are most of a process's memory."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import polystream
from polystream.fake import mock_body
from polystream.testing import ReplayServer, Reply

MESSAGES = [{"role": "user", "content": "hi"}]
PIECES = 4  # SSE events sent before the server stalls (the stream then waits on its next read)


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        # One write per event, 50 ms apart (one read each), then silence with the connection open:
        # the client blocks in a read.
        server.serve_fixture("openai", Reply(mock_body("one two three four five six seven", "gpt-x"),
                                             split="event", delay=0.05, stall_after=PIECES))
        yield server


def holders(obj: Any) -> list[Any]:
    """Containers (lists, tuples, dicts) that still refer to `obj`."""
    gc.collect()
    return [r for r in gc.get_referrers(obj) if isinstance(r, (list, tuple, dict))]


def test_sync_stream_waiting_holds_no_handed_out_chunks(replay: ReplayServer) -> None:
    stream = polystream.completion(model="gpt-x", messages=MESSAGES, stream=True, api_key="k",
                                   api_base=replay.base_url("openai"), idle_timeout=1.5)
    seen: list[Any] = []
    waiting = threading.Event()

    def consume() -> None:
        try:
            for chunk in stream:
                seen[:] = [chunk]  # only the latest chunk is kept, by this list
                if chunk.choices and (chunk.choices[0].delta.content or "").startswith("three"):
                    waiting.set()  # the last event sent: the next step blocks in the read
        except polystream.PolystreamError:
            pass

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    try:
        assert waiting.wait(5), "the first events never arrived"
        time.sleep(0.3)  # the consumer is now blocked in recv
        (last,) = seen
        assert [h for h in holders(last) if h is not seen] == []
    finally:
        t.join(5)  # the idle timeout ends the read in flight, and the thread
    assert not t.is_alive()


def test_async_stream_waiting_holds_no_handed_out_chunks(replay: ReplayServer) -> None:
    asyncio.run(_async_stream_waiting(replay))


async def _async_stream_waiting(replay: ReplayServer) -> None:
    stream = await polystream.acompletion(model="gpt-x", messages=MESSAGES, stream=True, api_key="k",
                                          api_base=replay.base_url("openai"), idle_timeout=5)
    chunks: list[Any] = []

    async def consume() -> None:
        async for chunk in stream:
            chunks.append(chunk)

    task = asyncio.ensure_future(consume())
    try:
        for _ in range(100):  # until the stream has handed out what was sent and waits
            await asyncio.sleep(0.02)
            if len(chunks) >= PIECES - 1:
                break
        await asyncio.sleep(0.2)
        assert chunks and not task.done()
        for c in chunks:
            assert [h for h in holders(c) if h is not chunks] == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await stream.aclose()
