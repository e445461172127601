"""`_core.chunk_aiter`: the C async iterator that `AsyncStream` hands chunks out with.

It is its own awaitable and answers from the list in hand without suspending; these tests pin the
parts of the await protocol it implements by hand: suspension and results, errors, cancellation,
`throw` / `close`, the tracer path (no `am_send`), and garbage collection of cycles through it.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref
from typing import Any

import pytest

from polystream._core import ChunkAsyncIter, chunk_aiter


async def lists(*batches: list[Any], pause: bool = True, then: BaseException | None = None) -> Any:
    for b in batches:
        if pause:
            await asyncio.sleep(0)  # a real suspension between reads
        yield b
    if then is not None:
        raise then


async def collect(it: Any) -> list[Any]:
    return [x async for x in it]


def test_hands_out_every_item_in_order_across_suspensions() -> None:
    items = asyncio.run(collect(chunk_aiter(lists([1, 2], [3], [4, 5, 6]))))
    assert items == [1, 2, 3, 4, 5, 6]


def test_empty_lists_and_no_lists() -> None:
    assert asyncio.run(collect(chunk_aiter(lists([], [1], [], pause=False)))) == [1]
    assert asyncio.run(collect(chunk_aiter(lists()))) == []


def test_an_error_arrives_after_the_items_before_it() -> None:
    got: list[Any] = []

    async def main() -> None:
        async for x in chunk_aiter(lists([1, 2], [3], then=ValueError("read failed"))):
            got.append(x)

    with pytest.raises(ValueError, match="read failed"):
        asyncio.run(main())
    assert got == [1, 2, 3]


def test_anext_and_await_without_async_for() -> None:
    async def main() -> list[Any]:
        it = chunk_aiter(lists([(1, 2)], [None]))
        first = await it.__anext__()
        second = await anext(it)
        with pytest.raises(StopAsyncIteration):
            await it.__anext__()
        return [first, second]

    # A tuple item comes back as itself (not unpacked), None as None.
    assert asyncio.run(main()) == [(1, 2), None]


def test_cancelling_the_task_reaches_the_read_in_flight() -> None:
    seen: list[str] = []

    async def slow() -> Any:
        yield [1]
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("read cancelled")
            raise
        yield [2]

    async def main() -> None:
        got: list[Any] = []

        async def consume() -> None:
            async for x in chunk_aiter(slow()):
                got.append(x)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert got == [1]

    asyncio.run(main())
    assert seen == ["read cancelled"]


def test_throw_into_a_read_that_recovers_gives_its_list() -> None:
    async def recovering() -> Any:
        try:
            await asyncio.sleep(0)
        except ValueError:
            yield ["recovered", "then"]

    it = chunk_aiter(recovering())
    aw = it.__anext__()
    assert aw.send(None) is None  # suspended in the read (asyncio.sleep(0) yields None)
    with pytest.raises(StopIteration) as stop:
        aw.throw(ValueError("into the read"))
    assert stop.value.value == "recovered"
    with pytest.raises(StopIteration) as stop:
        it.__anext__().send(None)
    assert stop.value.value == "then"


def test_throw_with_nothing_in_flight_raises_it_here() -> None:
    it = chunk_aiter(lists([1]))
    with pytest.raises(KeyError):
        it.throw(KeyError("x"))
    with pytest.raises(KeyError):
        it.throw(KeyError)
    with pytest.raises(TypeError):
        it.throw(42)


def test_close_drops_what_was_not_handed_out() -> None:
    async def main() -> list[Any]:
        it = chunk_aiter(lists([1, 2, 3], [4]))
        first = await it.__anext__()
        it.close()
        rest = [x async for x in it]  # the next read goes on from the source
        return [first, *rest]

    assert asyncio.run(main()) == [1, 4]


def test_the_path_without_am_send_gives_the_same_items() -> None:
    # With a trace function set, CPython's SEND calls tp_iternext / send() and reads the result
    # from StopIteration: the path coverage tools and debuggers take.
    def tracer(frame: Any, event: str, arg: Any) -> Any:
        return tracer

    async def main() -> list[Any]:
        return [x async for x in chunk_aiter(lists([(1,), 2], [(3, 4)]))]

    sys.settrace(tracer)
    try:
        items = asyncio.run(main())
    finally:
        sys.settrace(None)
    assert items == [(1,), 2, (3, 4)]


def test_a_source_that_yields_a_non_list_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="must yield lists"):
        asyncio.run(collect(chunk_aiter(lists((1, 2)))))  # type: ignore[arg-type]


def test_a_cycle_through_the_iterator_is_collected() -> None:
    class Source:
        it: ChunkAsyncIter

        def __aiter__(self) -> Source:
            return self

        async def __anext__(self) -> list[int]:
            raise StopAsyncIteration

    src = Source()
    src.it = chunk_aiter(src)  # src -> it -> src.__anext__ (bound to src)
    alive = weakref.ref(src)
    del src
    gc.collect()
    assert alive() is None


def test_is_not_a_pyo3_wrapper_but_still_an_async_iterator() -> None:
    it = chunk_aiter(lists([1]))
    assert type(it).__name__ == "ChunkAsyncIter"
    assert it.__aiter__() is it and it.__anext__() is it and it.__await__() is it
    asyncio.run(collect(it))


def test_is_made_only_by_chunk_aiter() -> None:
    """Like the other spec types: an iterator without its batches cannot be made from Python."""
    with pytest.raises(TypeError):
        ChunkAsyncIter()
    with pytest.raises(TypeError):
        type("Sub", (ChunkAsyncIter,), {})
