"""Retries, fallbacks, timeouts and mid-stream failures of completion()/acompletion(), against
the replay server (real sockets, real httpx)."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest

import polystream
from polystream import errors
from polystream.fake import mock_body
from polystream.testing import ReplayServer, Reply

TEXT = "Hello brave new world, streamed in pieces"
BODY = mock_body(TEXT, "gpt-4o")
PATH = "/v1/chat/completions"
MSGS = [{"role": "user", "content": "hi"}]


def words(n: int) -> str:
    """The text of the first n content chunks (chunk 0 is the role chunk with empty content)."""
    pieces = [json.loads(e[6:])["choices"][0]["delta"].get("content", "")
              for e in BODY.split(b"\n\n") if e.startswith(b"data: {") and b'"choices":[{' in e]
    return "".join(pieces[:n])


@pytest.fixture
def server():
    with ReplayServer() as s:
        yield s


def call(server, **kw):
    kw.setdefault("api_key", "sk-test-secret")
    return polystream.completion("gpt-4o", MSGS, stream=True, api_base=server.base_url("openai"), **kw)


def text_of(stream) -> str:
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_429_then_success_is_retried(server) -> None:
    server.add(PATH, [Reply.error(429, headers={"retry-after": "0"}), Reply(BODY)])
    assert text_of(call(server, num_retries=2)) == TEXT
    assert len(server.requests) == 2


def test_429_without_retries_raises_from_the_call_with_retry_after(server) -> None:
    server.add(PATH, Reply.error(429, headers={"retry-after": "7", "x-request-id": "req_1"}))
    with pytest.raises(polystream.RateLimitError) as info:
        call(server)
    e = info.value
    assert (e.retry_after, e.status_code, e.request_id, e.provider) == (7.0, 429, "req_1", "openai")
    assert not isinstance(e, errors.MidStreamError)


def test_retries_are_bounded_and_back_off(server) -> None:
    server.add(PATH, Reply.error(503))
    with pytest.raises(polystream.ServiceUnavailableError):
        call(server, num_retries=2, retry_backoff=0.01)
    assert len(server.requests) == 3


def test_non_retryable_error_is_not_retried(server) -> None:
    server.add(PATH, Reply.error(400, {"error": {"message": "This model's maximum context length is 8192 tokens", "code": "context_length_exceeded"}}))
    with pytest.raises(polystream.ContextWindowExceededError):
        call(server, num_retries=3)
    assert len(server.requests) == 1


def test_fallbacks_in_order(server) -> None:
    def by_model(req):
        return Reply(BODY) if req.json()["model"] == "backup" else Reply.error(500)

    server.add(PATH, by_model)
    stream = call(server, fallbacks=["also-bad", {"model": "backup"}], num_retries=1, retry_backoff=0.01)
    assert text_of(stream) == TEXT
    assert [r.json()["model"] for r in server.requests] == ["gpt-4o", "gpt-4o", "also-bad", "also-bad", "backup"]


def test_connection_refused_then_fallback(server) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    s.close()
    with pytest.raises(polystream.APIConnectionError):
        polystream.completion("gpt-4o", MSGS, stream=True, api_base=dead, api_key="k")
    server.add(PATH, Reply(BODY))
    stream = polystream.completion(
        "gpt-4o", MSGS, stream=True, api_base=dead, api_key="k",
        fallbacks=[{"model": "gpt-4o", "api_base": server.base_url("openai")}],
    )
    assert text_of(stream) == TEXT


def test_stall_longer_than_idle_timeout_mid_stream(server) -> None:
    server.add(PATH, Reply(BODY, stall_after=4))
    stream = call(server, idle_timeout=0.3)
    got = []
    with pytest.raises(polystream.Timeout) as info:
        for c in stream:
            got.append(c.choices[0].delta.content or "")
    e = info.value
    assert isinstance(e, errors.MidStreamError)
    assert e.partial.choices[0].message.content == "".join(got) == words(4)
    assert e.chunks_received == 4


def test_stall_before_the_first_chunk_is_raised_by_the_call(server) -> None:
    server.add(PATH, Reply(BODY, stall_after=0))
    with pytest.raises(polystream.Timeout) as info:
        call(server, idle_timeout=0.2, num_retries=1, retry_backoff=0.01)
    assert not isinstance(info.value, errors.MidStreamError)
    assert len(server.requests) == 2  # a timeout before output is retried


def test_dropped_connection_after_3_chunks_keeps_their_text(server) -> None:
    server.add(PATH, Reply(BODY, drop_after=3))
    stream = call(server, num_retries=3)
    with pytest.raises(polystream.APIConnectionError) as info:
        list(stream)
    e = info.value
    assert isinstance(e, errors.MidStreamError)
    assert e.partial.choices[0].message.content == words(3)
    assert len(server.requests) == 1  # never retried after output


def test_truncated_stream_without_terminator(server) -> None:
    cut = BODY[: BODY.index(b'"finish_reason":"stop"')]
    cut = cut[: cut.rindex(b"\n\n") + 2]  # whole events, but no finish reason and no [DONE]
    server.add(PATH, Reply(cut))
    stream = call(server)
    with pytest.raises(errors.MidStreamError) as info:
        list(stream)
    assert isinstance(info.value, polystream.APIConnectionError)
    assert info.value.partial.choices[0].message.content == TEXT


def test_in_band_error_mid_stream_is_typed_and_partial(server) -> None:
    events = BODY.split(b"\n\n")
    bad = b'data: {"error":{"message":"Overloaded","type":"overloaded_error"}}'
    server.add(PATH, Reply(b"\n\n".join(events[:3] + [bad]) + b"\n\n"))
    stream = call(server)
    with pytest.raises(polystream.ServiceUnavailableError) as info:
        list(stream)
    assert isinstance(info.value, errors.MidStreamError)
    assert info.value.partial.choices[0].message.content == words(3)


def test_in_band_error_before_output_is_retryable(server) -> None:
    bad = b'data: {"error":{"message":"Overloaded","type":"overloaded_error"}}\n\n'
    server.add(PATH, [Reply(bad), Reply(BODY)])
    assert text_of(call(server, num_retries=1, retry_backoff=0.01)) == TEXT


def test_max_duration(server) -> None:
    server.add(PATH, Reply(BODY, delay=0.05))
    with pytest.raises(polystream.Timeout) as info:
        list(call(server, max_duration=0.3))
    assert isinstance(info.value, errors.MidStreamError)
    assert info.value.partial.choices[0].message.content


def test_non_streaming_call_returns_the_completion_with_cost(server) -> None:
    server.add(PATH, Reply(BODY))
    done = polystream.completion("gpt-4o", MSGS, api_base=server.base_url("openai"), api_key="k", include_cost=True)
    assert isinstance(done, polystream.ChatCompletion)
    assert done.choices[0].message.content == TEXT
    u = done.usage
    assert u.cost == pytest.approx((u.prompt_tokens * 2.5 + u.completion_tokens * 10.0) / 1e6)
    assert server.requests[0].json()["stream_options"] == {"include_usage": True}


def test_cost_is_in_the_final_usage_chunk(server) -> None:
    server.add(PATH, Reply(BODY))
    chunks = list(call(server, include_cost=True))
    assert [c.usage.cost for c in chunks if c.usage] == [pytest.approx(chunks[-1].usage.cost)]
    assert chunks[-1].usage.cost > 0


@pytest.mark.parametrize("model,prices", [
    ("openai/o3-pro-2025-06-10", (20.0, 80.0)),  # not o3's (2 / 8): the longest key wins
    ("openai_responses/gpt-5-pro", (15.0, 120.0)),  # the Responses endpoint bills at OpenAI's prices
    ("openai_responses/gpt-5-mini", (0.25, 2.0)),
    ("openai/o1-mini", (1.1, 4.4)),
])
def test_price_of_the_pro_and_responses_models(model: str, prices: tuple[float, float]) -> None:
    from polystream import pricing

    p = pricing.price(model)
    assert p is not None and (p["input"], p["output"]) == prices
    usage = {"prompt_tokens": 1000, "completion_tokens": 100}
    assert pricing.cost(usage, model) == pytest.approx((1000 * prices[0] + 100 * prices[1]) / 1e6)


def test_fake_streaming_from_a_non_streaming_answer(server) -> None:
    answer = {"id": "x", "object": "chat.completion", "created": 1, "model": "o1",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole answer"}, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    server.add(PATH, Reply.json(answer))
    chunks = list(call(server, fake_stream=True))
    assert server.requests[0].json()["stream"] is False
    final = polystream.stream_chunk_builder(chunks)
    assert final.choices[0].message.content == "whole answer" and final.usage.total_tokens == 3


# A non-streaming Responses answer (o1-pro cannot stream): reasoning summary, text, a call, usage.
RESPONSE = {
    "id": "resp_fake1", "object": "response", "created_at": 1767225600, "status": "completed", "model": "o1-pro",
    "output": [
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Think."},
                                                        {"type": "summary_text", "text": "Then answer."}]},
        {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "Grüße, whole answer", "logprobs": [], "annotations": [
             {"type": "url_citation", "url": "https://example.com", "title": "Ex", "start_index": 0, "end_index": 5}]}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"city":"Zürich"}', "status": "completed"},
    ],
    "usage": {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 30,
              "output_tokens_details": {"reasoning_tokens": 20}, "total_tokens": 42},
}


@pytest.mark.parametrize("asynchronous", [False, True])
def test_fake_streaming_from_a_non_streaming_responses_answer(server, asynchronous: bool) -> None:
    server.add("/v1/responses", Reply.json(RESPONSE))
    kw = dict(api_base=server.base_url("openai"), api_key="k", fake_stream=True, stream=True)
    if asynchronous:
        async def collect() -> list:
            return [c async for c in await polystream.acompletion("openai_responses/o1-pro", MSGS, **kw)]
        chunks = asyncio.run(collect())
    else:
        chunks = list(polystream.completion("openai_responses/o1-pro", MSGS, **kw))
    assert server.requests[0].json()["stream"] is False
    final = polystream.stream_chunk_builder(chunks)
    msg = final.choices[0].message
    assert (msg.content, msg.reasoning_content) == ("Grüße, whole answer", "Think.\n\nThen answer.")
    assert [(t.id, t.function.name, t.function.arguments) for t in msg.tool_calls] == [
        ("call_1", "get_weather", '{"city":"Zürich"}')]
    assert final.choices[0].finish_reason == "tool_calls"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.total_tokens) == (12, 30, 42)
    assert msg["annotations"] == [{"type": "url_citation", "url_citation": {
        "url": "https://example.com", "title": "Ex", "start_index": 0, "end_index": 5}}]


def test_fake_streaming_of_an_incomplete_responses_answer(server) -> None:
    cut = {**RESPONSE, "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"},
           "output": RESPONSE["output"][1:2]}
    server.add("/v1/responses", Reply.json(cut))
    chunks = list(polystream.completion("openai_responses/o1-pro", MSGS, api_base=server.base_url("openai"),
                                        api_key="k", fake_stream=True, stream=True))
    final = polystream.stream_chunk_builder(chunks)
    assert final.choices[0].message.content == "Grüße, whole answer"
    assert (final.choices[0].finish_reason, final.choices[0].native_finish_reason) == ("length", "max_output_tokens")


def test_secrets_never_in_errors(server) -> None:
    server.add(PATH, Reply.error(401))
    with pytest.raises(polystream.AuthenticationError) as info:
        call(server, api_key="sk-very-secret-key")
    e = info.value
    assert "sk-very-secret-key" not in f"{e} {e!r} {vars(e)}"
    assert server.requests[0].headers["authorization"] == "Bearer sk-very-secret-key"


def test_missing_key_fails_before_the_network(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    with pytest.raises(polystream.AuthenticationError, match="OPENAI_API_KEY"):
        polystream.completion("gpt-4o", MSGS, stream=True)


def test_custom_base_needs_no_key(server, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server.add(PATH, Reply(BODY))
    assert text_of(polystream.completion("local-model", MSGS, stream=True, api_base=server.base_url("openai"))) == TEXT
    assert "authorization" not in server.requests[0].headers


def test_mock_response_is_offline() -> None:
    chunks = list(polystream.completion("anything", MSGS, stream=True, mock_response="offline text"))
    assert polystream.stream_chunk_builder(chunks).choices[0].message.content == "offline text"
    with pytest.raises(polystream.RateLimitError):
        polystream.completion("x", MSGS, stream=True, mock_response=polystream.RateLimitError("mocked"))


# ------------------------------------------------------------------ async twins


async def acall(server, **kw):
    return await polystream.acompletion("gpt-4o", MSGS, stream=True, api_base=server.base_url("openai"), api_key="k", **kw)


def test_async_retry_and_text(server) -> None:
    server.add(PATH, [Reply.error(429, headers={"retry-after": "0"}), Reply(BODY, split=1)])

    async def main() -> str:
        return "".join([c.choices[0].delta.content or "" async for c in await acall(server, num_retries=1) if c.choices])

    assert asyncio.run(main()) == TEXT
    assert len(server.requests) == 2


def test_async_drop_mid_stream_keeps_partial(server) -> None:
    server.add(PATH, Reply(BODY, drop_after=3))

    async def main():
        got = []
        with pytest.raises(polystream.APIConnectionError) as info:
            async for c in await acall(server):
                got.append(c.choices[0].delta.content or "")
        return got, info.value

    got, e = asyncio.run(main())
    assert isinstance(e, errors.MidStreamError)
    assert e.partial.choices[0].message.content == "".join(got) == words(3)


def test_async_idle_timeout(server) -> None:
    server.add(PATH, Reply(BODY, stall_after=2))

    async def main():
        with pytest.raises(polystream.Timeout) as info:
            async for _ in await acall(server, idle_timeout=0.2):
                pass
        return info.value

    err = asyncio.run(main())
    assert err.partial.choices[0].message.content == words(2)
    # The httpx error underneath names the request, as httpx's own reads would have it.
    assert isinstance(err.__cause__, httpx.ReadTimeout) and err.__cause__.request.url.path.endswith(PATH)


def test_async_mock_and_fake_stream(server) -> None:
    answer = {"id": "x", "object": "chat.completion", "created": 1, "model": "o1",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole answer"}, "finish_reason": "stop"}]}
    server.add(PATH, Reply.json(answer))

    async def main():
        mocked = [c async for c in await polystream.acompletion("m", MSGS, stream=True, mock_response="mock text")]
        faked = [c async for c in await acall(server, fake_stream=True)]
        done = await polystream.acompletion("m", MSGS, mock_response="not streamed")
        return mocked, faked, done

    mocked, faked, done = asyncio.run(main())
    assert polystream.stream_chunk_builder(mocked).choices[0].message.content == "mock text"
    assert polystream.stream_chunk_builder(faked).choices[0].message.content == "whole answer"
    assert done.choices[0].message.content == "not streamed"


@pytest.mark.parametrize("split", ["event", 7])
def test_gzip_encoded_stream_is_decoded(server, split) -> None:
    """A content-encoded body goes through httpx's decoder (plain bodies skip it)."""
    import gzip

    server.add(PATH, Reply(gzip.compress(BODY), headers={"content-encoding": "gzip"}, split=split))
    assert text_of(call(server)) == TEXT


def test_closing_an_unread_stream_returns_the_connection(server) -> None:
    """prefetch() read the first chunk; closing (or dropping) the stream before iterating must
    still close the response, so the pooled connection is not leaked."""
    server.add(PATH, Reply(BODY, split="event", delay=0.05))
    stream = call(server)
    stream.close()
    assert stream.response.is_closed
    stream2 = call(server)
    response = stream2.response
    del stream2
    import gc

    gc.collect()
    assert response.is_closed


def test_async_closing_an_unread_stream_returns_the_connection(server) -> None:
    async def main() -> None:
        server.add(PATH, Reply(BODY, split="event", delay=0.05))
        stream = await polystream.acompletion("gpt-4o", MSGS, stream=True, api_base=server.base_url("openai"), api_key="k")
        await stream.aclose()
        assert stream.response.is_closed
        server.add(PATH, Reply(BODY, split="event"))
        stream = await polystream.acompletion("gpt-4o", MSGS, stream=True, api_base=server.base_url("openai"), api_key="k")
        got = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert got == TEXT

    asyncio.run(main())
