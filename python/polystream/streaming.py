"""`Stream` / `AsyncStream`: chunks of one provider response, decoded by the core.

One `feed` per network read returns every chunk that read completed; the Python work per chunk
is a list iteration. The first chunk is read before the call returns (see `client.py`), so every
failure before output is raised by the call itself and may be retried; later failures are
mid-stream errors carrying the partial answer.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from itertools import chain
from typing import Any, NoReturn

import httpx

from . import errors, pricing
from ._core import ChatCompletionChunk, ChunkAsyncIter, ChunkDecoder, chunk_aiter
from ._http import transport_error
from ._transport import async_body_reads
from .error_mapping import stream_error
from .types import ChatCompletion

class _StreamState:
    """What both twins share: decoder, bookkeeping and error translation."""

    def __init__(
        self,
        decoder: ChunkDecoder,
        provider: str,
        model: str,
        max_duration: float | None,
        cost_model: str | None = None,
    ) -> None:
        self.decoder = decoder
        self.provider = provider
        self.model = model
        self.started = time.monotonic()
        self.deadline = self.started + max_duration if max_duration else None
        self.max_duration = max_duration
        #: "provider/model" to price usage with (include_cost=True), else None.
        self.cost_model = cost_model
        self.yielded = 0
        self.first_chunk_at: float | None = None

    def partial(self) -> ChatCompletion:
        done = ChatCompletion(self.decoder.snapshot())
        if self.cost_model and done.usage is not None:
            done.usage["cost"] = pricing.cost(done.usage, self.cost_model)
        return done

    def fail(self, exc: BaseException) -> BaseException:
        """The exception to raise for `exc`: the plain (maybe retryable) class before any output,
        a mid-stream class carrying the partial answer after."""
        started = self.yielded > 0
        extra: dict[str, Any] = {"partial": self.partial(), "chunks_received": self.yielded} if started else {}
        ctx = {"provider": self.provider, "model": self.model}
        err: BaseException
        if isinstance(exc, errors.APIError):
            if not started or isinstance(exc, errors.MidStreamError):
                return exc
            attrs = {k: v for k, v in vars(exc).items() if k != "message"}  # message goes positionally
            err = errors.mid_stream(type(exc))(exc.message, **{**attrs, **extra})
        elif isinstance(exc, httpx.HTTPError):
            err = transport_error(exc, self.provider, self.model, "while streaming", **extra)
        elif isinstance(exc, errors.ProviderStreamError):
            err = stream_error(self.provider, self.model, exc, extra.get("partial"), self.yielded)
        elif isinstance(exc, errors.IncompleteStreamError):
            cls = errors.mid_stream(errors.APIConnectionError) if started else errors.APIConnectionError
            err = cls(f"{self.provider}: the stream ended before its terminator (truncated response)", **ctx, **extra)
        elif isinstance(exc, errors.StreamDecodeError):
            cls2 = errors.mid_stream(errors.APIError) if started else errors.APIError
            err = cls2(f"{self.provider}: undecodable stream: {exc}", **ctx, **extra)
        else:
            return exc
        err.__cause__ = exc
        return err

    def raise_for(self, exc: BaseException) -> NoReturn:
        """Raise what `fail` makes of `exc` (chained to it), or `exc` itself."""
        err = self.fail(exc)
        if err is exc:
            raise exc
        raise err from exc

    def failed_read(self, exc: BaseException) -> list[ChatCompletionChunk]:
        """A read failed while reading to the first chunk. The chunks it completed before failing
        (emitted), to hand out before the error; with none, the error is raised now."""
        items = getattr(exc, "items", None) if isinstance(exc, errors.PolystreamError) else None
        if not items:
            self.raise_for(exc)
        return self.emit(items)

    def check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise errors.Timeout(
                f"{self.provider}: stream exceeded max_duration={self.max_duration}s",
                provider=self.provider, model=self.model,
            )

    def emit(self, chunks: list[ChatCompletionChunk]) -> list[ChatCompletionChunk]:
        if self.cost_model is not None:
            chunks = [pricing.with_cost(c, self.cost_model) if c.usage is not None else c for c in chunks]
        if chunks and self.first_chunk_at is None:
            self.first_chunk_at = time.monotonic()
        self.yielded += len(chunks)
        return chunks


def _raw_reads(response: httpx.Response) -> Any:
    """The body's reads: `iter_raw()` when the body is not content-encoded (skipping httpx's
    identity decoder and re-chunker, a generator layer per read), else `iter_bytes()`."""
    if response.headers.get("content-encoding", "identity") == "identity":
        return response.iter_raw()
    return response.iter_bytes()


def _araw_reads(response: httpx.Response) -> Any:
    if response.headers.get("content-encoding", "identity") == "identity":
        # On polystream's own transport, its reads straight: httpx's aiter_raw would add an
        # async generator step and a re-chunker pass per read. Closing the response (which the
        # stream always does) releases the connection as before.
        own = async_body_reads(response)
        return own if own is not None else response.aiter_raw()
    return response.aiter_bytes()


class Stream:
    """A sync iterator of `ChatCompletionChunk`. Close it (or use `with`) to release the connection
    early; it closes itself when exhausted or when it fails."""

    def __init__(self, response: httpx.Response, state: _StreamState) -> None:
        self.response = response
        self._state = state
        self._reads: Iterator[bytes] = _raw_reads(response)
        self._pending: list[ChatCompletionChunk] = []
        self._ended = False  # prefetch() met the end of the body (and called finish())
        self._gen = self._batches()
        # One chunk at a time from the lists, in C: a generator step per chunk costs ~100
        # instructions more.
        self._each: Iterator[ChatCompletionChunk] = chain.from_iterable(self._gen)

    def _batches(self) -> Generator[list[ChatCompletionChunk], None, None]:
        st = self._state
        feed = st.decoder.feed
        costed = st.cost_model is not None
        try:
            yield []  # primed by prefetch(): closing an unread stream still runs `finally`
            if self._pending:
                first, self._pending = self._pending, []
                yield first
                del first  # else this frame keeps the first read's chunks alive to the end
            if self._ended:
                return
            for read in self._reads:
                try:
                    chunks = feed(read)
                except errors.PolystreamError as exc:
                    # Chunks the read completed before the error still reach the caller.
                    yield st.emit(exc.items)
                    raise
                read = b""
                if chunks:
                    if costed:
                        chunks = st.emit(chunks)
                    else:
                        st.yielded += len(chunks)
                    yield chunks
                    chunks = []  # as in AsyncStream: nothing held while waiting for the next read
                if st.deadline is not None:
                    st.check_deadline()
            yield st.emit(st.decoder.finish())
        except Exception as exc:
            st.raise_for(exc)
        finally:
            self.response.close()

    def prefetch(self) -> None:
        """Read until the first chunk (or the end). Errors here are raised before any output.
        The chunks read are handed out first by the iterator, which is then the one generator."""
        st = self._state
        try:
            for read in self._reads:
                chunks = st.decoder.feed(read)
                if chunks:
                    self._pending = st.emit(chunks)
                    next(self._gen)
                    return
                if st.deadline is not None:
                    st.check_deadline()
            self._ended = True
            self._pending = st.emit(st.decoder.finish())
        except BaseException as exc:
            self.response.close()
            self._pending = st.failed_read(exc)  # or raises
            self._gen = self._failing(exc)
            self._each = chain.from_iterable(self._gen)
            return
        next(self._gen)

    def _failing(self, exc: BaseException) -> Generator[list[ChatCompletionChunk], None, None]:
        first, self._pending = self._pending, []
        yield first
        self._state.raise_for(exc)

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self._each

    def __next__(self) -> ChatCompletionChunk:
        return next(self._each)

    def close(self) -> None:
        self._gen.close()
        self.response.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def completion(self) -> ChatCompletion:
        """The answer accumulated so far (complete once the iterator is exhausted)."""
        return self._state.partial()


class AsyncStream:
    """The async twin of `Stream`: `async for chunk in stream`. `batches()` gives the same chunks
    as one list per upstream read, for a relay that writes what arrived together at once."""

    def __init__(self, response: httpx.Response, state: _StreamState) -> None:
        self.response = response
        self._state = state
        self._reads: AsyncIterator[bytes] = _araw_reads(response)
        self._pending: list[ChatCompletionChunk] = []
        self._ended = False  # prefetch() met the end of the body (and called finish())
        self._gen = self._batches()
        # One chunk at a time from the lists: in C (see rust/py/src/aiter.rs), an async
        # generator step per chunk costs ~1,000 instructions.
        self._each: ChunkAsyncIter | None = None

    async def _batches(self) -> AsyncGenerator[list[ChatCompletionChunk], None]:
        st = self._state
        feed = st.decoder.feed
        costed = st.cost_model is not None
        try:
            yield []  # primed by prefetch(), as in Stream
            if self._pending:
                first, self._pending = self._pending, []
                yield first
                del first  # else this frame keeps the first read's chunks alive to the end
            if self._ended:
                return
            async for read in self._reads:
                try:
                    chunks = feed(read)
                except errors.PolystreamError as exc:
                    done = st.emit(exc.items)
                    if done:
                        yield done
                    raise
                read = b""
                if chunks:
                    if costed:
                        chunks = st.emit(chunks)
                    else:
                        st.yielded += len(chunks)
                    yield chunks
                    # Handed out: while this stream waits for its next read, it holds neither
                    # the last read's bytes nor its chunks (with many streams at once, that is
                    # most of a process's memory).
                    chunks = []
                if st.deadline is not None:
                    st.check_deadline()
            last = st.emit(st.decoder.finish())
            if last:
                yield last
        except Exception as exc:
            st.raise_for(exc)
        finally:
            await self.response.aclose()

    async def prefetch(self) -> None:
        st = self._state
        try:
            async for read in self._reads:
                chunks = st.decoder.feed(read)
                if chunks:
                    self._pending = st.emit(chunks)
                    await self._gen.__anext__()
                    return
                if st.deadline is not None:
                    st.check_deadline()
            self._ended = True
            self._pending = st.emit(st.decoder.finish())
        except BaseException as exc:
            await self.response.aclose()
            self._pending = st.failed_read(exc)  # or raises
            self._gen = self._failing(exc)
            return
        await self._gen.__anext__()

    async def _failing(self, exc: BaseException) -> AsyncGenerator[list[ChatCompletionChunk], None]:
        if self._pending:
            first, self._pending = self._pending, []
            yield first
        self._state.raise_for(exc)

    def batches(self) -> AsyncIterator[list[ChatCompletionChunk]]:
        """The chunks as lists, one per upstream read (none empty). Use this or the chunk
        iterator, not both."""
        return self._gen

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        if self._each is None:
            self._each = chunk_aiter(self._gen)
        return self._each

    async def __anext__(self) -> ChatCompletionChunk:
        return await self.__aiter__().__anext__()

    async def aclose(self) -> None:
        if self._each is not None:
            self._each.close()
        await self._gen.aclose()
        await self.response.aclose()

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def completion(self) -> ChatCompletion:
        return self._state.partial()
