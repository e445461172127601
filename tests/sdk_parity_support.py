"""Helpers for tests/test_sdk_parity.py: the shared recordings, a provider-neutral view of one
accumulated answer, polystream's side, and one runner per official SDK.

Every runner points its SDK at the replay server (the SDK's own base-URL option), makes the SDK's
streaming call, accumulates what the SDK yields and returns an `Outcome`. Each SDK reports finish
reasons and usage in its provider's own terms; the per-SDK tables below map them to OpenAI's
values and field names, the same normalisation polystream promises, and say why where a mapping
is not one-to-one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .conftest import shared

PROVIDERS_DIR = shared("providers")

# Every folder of the shared recordings.
FOLDERS = ("openai", "groq", "mistral", "openai_compatible", "anthropic", "gemini", "cohere", "ollama",
           "openai_responses", "bedrock")

MODELS = {
    "openai": "gpt-4o-2024-08-06",
    "groq": "llama-3.3-70b-versatile",
    "mistral": "mistral-small-latest",
    "deepseek": "deepseek-reasoner",
    "openrouter": "minimax/minimax-m2:free",
    "openai_compatible": "Qwen/Qwen3-8B",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
    "cohere": "command-a-03-2025",
    "ollama": "qwen3:4b",
    "openai_responses": "gpt-5",
    "bedrock": "us.amazon.nova-micro-v1:0",  # the recording's model
}

MESSAGES = [{"role": "user", "content": "Hi"}]


@dataclass(frozen=True)
class Recording:
    folder: str
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def provider(self) -> str:
        """The polystream provider that speaks this recording's wire format."""
        if self.folder == "openai_compatible":
            for prefix in ("deepseek", "openrouter"):
                if self.name.startswith(prefix + "_"):
                    return prefix
        return self.folder

    @property
    def id(self) -> str:
        return f"{self.folder}/{self.name}"


def recordings() -> list[Recording]:
    out = []
    for folder in FOLDERS:
        d = PROVIDERS_DIR / folder
        if not d.is_dir():  # a folder may be absent: its cases simply do not exist
            continue
        for p in sorted(d.iterdir()):
            if p.is_file() and not p.name.endswith(".expected.json"):
                out.append(Recording(folder, p))
    return out


# ---------------------------------------------------------------------------------------------
# The provider-neutral view of one answer


@dataclass
class Choice:
    text: str = ""
    reasoning: str | None = None  # None = this side does not expose reasoning text
    tool_calls: list[tuple[str, Any]] = field(default_factory=list)  # (name, parsed arguments)
    tool_call_ids: list[str] | None = None  # None = the SDK does not expose call ids
    finish_reason: str | None = None  # mapped to OpenAI's values
    raw_finish: str | None = None  # the provider's own reason (None = not exposed / not compared)
    # Whole reasoning blocks as dicts, in order (None = the SDK does not keep them).
    thinking_blocks: list[dict[str, Any]] | None = None


@dataclass
class Outcome:
    choices: dict[int, Choice] = field(default_factory=dict)
    # prompt_tokens / completion_tokens / total_tokens, plus cached_tokens / reasoning_tokens
    # where the SDK reports them (None when no usage at all was reported).
    usage: dict[str, int] | None = None
    error: BaseException | None = None  # raised while streaming (after or before any output)

    def choice(self, index: int = 0) -> Choice:
        return self.choices.setdefault(index, Choice())


def parse_args(arguments: Any) -> Any:
    """Tool-call arguments as data: JSON text parsed; an empty string is "no arguments" = {}."""
    if isinstance(arguments, (dict, list)) or arguments is None:
        return arguments
    if arguments == "":
        return {}
    try:
        return json.loads(arguments)
    except ValueError:
        return ("<invalid JSON>", arguments)


def _detail(obj: Any, *names: str) -> Any:
    for name in names:
        if obj is None:
            return None
        obj = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return obj


def polystream_outcome(completion: Any) -> Outcome:
    out = Outcome()
    for ch in completion.choices or []:
        msg = ch.message or {}
        c = out.choice(ch.index)
        c.text = msg.get("content") or ""
        c.reasoning = msg.get("reasoning_content") or ""
        c.tool_calls = [(tc["function"]["name"], parse_args(tc["function"]["arguments"])) for tc in msg.get("tool_calls") or []]
        c.tool_call_ids = [tc.get("id") for tc in msg.get("tool_calls") or []]
        c.thinking_blocks = [b.to_dict() for b in msg.get("thinking_blocks") or []]
        c.finish_reason = ch.finish_reason
        c.raw_finish = ch.get("native_finish_reason")
    u = completion.usage
    if u is not None:
        out.usage = {
            "prompt_tokens": u.get("prompt_tokens"),
            "completion_tokens": u.get("completion_tokens"),
            "total_tokens": u.get("total_tokens"),
            "cached_tokens": _detail(u, "prompt_tokens_details", "cached_tokens"),
            "reasoning_tokens": _detail(u, "completion_tokens_details", "reasoning_tokens"),
        }
    return out


def _usage(prompt: Any, completion: Any, total: Any, cached: Any = None, reasoning: Any = None) -> dict[str, int]:
    u = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}
    if cached is not None:
        u["cached_tokens"] = cached
    if reasoning is not None:
        u["reasoning_tokens"] = reasoning
    return u


# ---------------------------------------------------------------------------------------------
# openai (also for OpenAI-compatible servers: DeepSeek, OpenRouter, vLLM, …)


def run_openai(base_url: str, model: str) -> Outcome:
    """openai-python: `chat.completions.create(stream=True)` fed chunk by chunk into the SDK's own
    accumulator (`ChatCompletionStreamState`, what `.stream()` uses). Its snapshot is already in
    OpenAI terms, so nothing is mapped. Usage is the last non-null `chunk.usage` the SDK yielded,
    not the snapshot's: the accumulator copies every chunk's `usage`, so a chunk after the usage
    chunk (gpt-5's trailing `moderation` chunk, `usage: null`) erases it — see
    test_openai_sdk_accumulator_keeps_usage."""
    import openai
    from openai.lib.streaming.chat import ChatCompletionStreamState

    out = Outcome()
    state = ChatCompletionStreamState()
    client = openai.OpenAI(base_url=base_url, api_key="test", max_retries=0)
    reasoning: dict[int, list[str]] = {}
    try:
        with client:
            stream = client.chat.completions.create(
                model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            for chunk in stream:
                state.handle_chunk(chunk)
                if chunk.usage is not None:
                    u = chunk.usage
                    out.usage = _usage(
                        u.prompt_tokens, u.completion_tokens, u.total_tokens,
                        _detail(u, "prompt_tokens_details", "cached_tokens"),
                        _detail(u, "completion_tokens_details", "reasoning_tokens"),
                    )
                for ch in chunk.choices:
                    # Not in OpenAI's schema; the SDK keeps unknown fields as extras on the delta.
                    extra = ch.delta.model_extra or {}
                    piece = extra.get("reasoning_content") or extra.get("reasoning")
                    if isinstance(piece, str):
                        reasoning.setdefault(ch.index, []).append(piece)
    except openai.APIError as exc:
        out.error = exc
    try:
        snap = state.current_completion_snapshot
    except AssertionError:  # no chunk at all
        return out
    for ch in snap.choices:
        c = out.choice(ch.index)
        c.text = ch.message.content or ""
        c.reasoning = "".join(reasoning.get(ch.index, []))
        c.tool_calls = [(tc.function.name, parse_args(tc.function.arguments)) for tc in ch.message.tool_calls or []]
        c.tool_call_ids = [tc.id for tc in ch.message.tool_calls or []]
        c.finish_reason = ch.finish_reason
    return out


def openai_snapshot(base_url: str, model: str) -> Any:
    """The openai SDK's own accumulated ChatCompletion snapshot (for the sidecar check)."""
    import openai
    from openai.lib.streaming.chat import ChatCompletionStreamState

    state = ChatCompletionStreamState()
    with openai.OpenAI(base_url=base_url, api_key="test", max_retries=0) as client:
        for chunk in client.chat.completions.create(model=model, messages=MESSAGES, stream=True):
            state.handle_chunk(chunk)
    return state.current_completion_snapshot


# ---------------------------------------------------------------------------------------------
# openai_responses

RESPONSES_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}


def run_openai_responses(base_url: str, model: str) -> Outcome:
    """openai-python's Responses API: `responses.stream()`, the SDK's own accumulator
    (`ResponseStreamState`). The final Response is `get_final_response()` after
    `response.completed`, or the `response.incomplete` event's (the SDK fills its output from
    what it accumulated). An `error` event is raised by the SDK; `response.failed` is not, so it
    counts as the error here. The chat view of the Response: the output_text parts are the text,
    the reasoning items' summary and reasoning-text parts (two newlines apart) the reasoning, the
    function_call items the tool calls; finish `tool_calls` when there is one, else `stop`, or
    the incomplete reason mapped (raw: `completed` or that reason)."""
    import openai

    out = Outcome()
    final: Any = None
    raw_finish: str | None = None
    client = openai.OpenAI(base_url=base_url, api_key="test", max_retries=0)
    try:
        with client, client.responses.stream(model=model, input=MESSAGES) as stream:
            for event in stream:
                if event.type == "response.incomplete":
                    final = event.response
                    reason = _detail(final, "incomplete_details", "reason")
                    raw_finish = reason or "incomplete"
                elif event.type == "response.failed":
                    out.error = RuntimeError(f"response.failed: {_detail(event.response, 'error', 'message')}")
                elif event.type == "error":
                    out.error = RuntimeError(f"error event: {getattr(event, 'message', None)}")
                elif event.type == "response.completed":
                    final, raw_finish = stream.get_final_response(), "completed"
    except openai.APIError as exc:
        out.error = exc
    if final is None:
        return out
    c = out.choice(0)
    reasoning: list[str] = []
    for item in final.output or []:
        if item.type == "message":
            c.text += "".join(part.text for part in item.content if part.type == "output_text")
        elif item.type == "reasoning":
            reasoning += [s.text for s in item.summary or []] + [r.text for r in getattr(item, "content", None) or []]
        elif item.type == "function_call":
            c.tool_calls.append((item.name, parse_args(item.arguments)))
    c.tool_call_ids = [item.call_id for item in final.output or [] if item.type == "function_call"]
    c.reasoning = "\n\n".join(reasoning)
    c.raw_finish = raw_finish
    c.finish_reason = (RESPONSES_FINISH.get(raw_finish or "", "length") if raw_finish != "completed"
                       else "tool_calls" if c.tool_calls else "stop")
    u = final.usage
    if u is not None:
        out.usage = _usage(u.input_tokens, u.output_tokens, u.total_tokens,
                           _detail(u, "input_tokens_details", "cached_tokens"),
                           _detail(u, "output_tokens_details", "reasoning_tokens"))
    return out


# ---------------------------------------------------------------------------------------------
# groq


def run_groq(server_url: str, model: str) -> Outcome:
    """groq-python: `chat.completions.create(stream=True)`, accumulated here (the SDK has no
    accumulator). Groq's wire format is OpenAI's, so finish reasons need no mapping. Usage: the
    SDK exposes both the top-level `usage` and `x_groq.usage`; the last one seen wins (Groq repeats
    it on an extra usage chunk with include_usage, it is never summed)."""
    import groq

    out = Outcome()
    client = groq.Groq(base_url=server_url, api_key="test", max_retries=0)  # SDK appends /openai/v1/…
    tools: dict[tuple[int, int], list[Any]] = {}
    try:
        with client:
            for chunk in client.chat.completions.create(model=model, messages=MESSAGES, stream=True):
                u = chunk.usage or (chunk.x_groq.usage if chunk.x_groq is not None else None)
                if u is not None:
                    out.usage = _usage(
                        u.prompt_tokens, u.completion_tokens, u.total_tokens,
                        _detail(u, "prompt_tokens_details", "cached_tokens"),
                        _detail(u, "completion_tokens_details", "reasoning_tokens"),
                    )
                for ch in chunk.choices:
                    c = out.choice(ch.index)
                    d = ch.delta
                    if d.content:
                        c.text += d.content
                    if d.reasoning:
                        c.reasoning = (c.reasoning or "") + d.reasoning
                    for tc in d.tool_calls or []:
                        slot = tools.setdefault((ch.index, tc.index), [None, "", None])
                        slot[2] = slot[2] or tc.id
                        if tc.function is not None:
                            slot[0] = slot[0] or tc.function.name
                            slot[1] += tc.function.arguments or ""
                    if ch.finish_reason:
                        c.finish_reason = ch.finish_reason
    except groq.APIError as exc:
        out.error = exc
    for c in out.choices.values():
        c.reasoning = c.reasoning or ""
        c.tool_call_ids = []
    for (ci, _), (name, args, call_id) in sorted(tools.items()):
        out.choice(ci).tool_calls.append((name, parse_args(args)))
        out.choice(ci).tool_call_ids.append(call_id)
    return out


# ---------------------------------------------------------------------------------------------
# mistralai


def run_mistral(server_url: str, model: str) -> Outcome:
    """mistralai: `chat.stream()`, accumulated here. Finish reasons are OpenAI's already. Content
    may be a list of chunks (Magistral): `thinking` chunks are reasoning, `text` chunks text. Tool
    calls arrive whole; `arguments` may be a string or an object."""
    from mistralai.client import Mistral, errors as merrors

    out = Outcome()
    tools: dict[tuple[int, int], list[Any]] = {}
    try:
        with Mistral(api_key="test", server_url=server_url) as client:
            for event in client.chat.stream(model=model, messages=MESSAGES):
                chunk = event.data
                if chunk.usage is not None:
                    u = chunk.usage
                    out.usage = _usage(
                        u.prompt_tokens, u.completion_tokens, u.total_tokens,
                        _detail(u, "prompt_tokens_details", "cached_tokens"),
                    )
                for ch in chunk.choices:
                    c = out.choice(ch.index)
                    c.reasoning = c.reasoning or ""
                    content = ch.delta.content
                    if isinstance(content, str):
                        c.text += content
                    elif isinstance(content, list):
                        for part in content:
                            kind = getattr(part, "type", None)
                            if kind == "text":
                                c.text += part.text
                            elif kind == "thinking":
                                for t in part.thinking:
                                    c.reasoning += getattr(t, "text", "") or ""
                    for pos, tc in enumerate(ch.delta.tool_calls or []):
                        # Mistral may omit `index` (whole calls); their position then identifies them.
                        idx = tc.index if isinstance(tc.index, int) else len(tools) + pos
                        slot = tools.setdefault((ch.index, idx), [None, "", None])
                        slot[2] = slot[2] or tc.id
                        slot[0] = slot[0] or tc.function.name
                        args = tc.function.arguments
                        slot[1] = args if isinstance(args, dict) else slot[1] + (args or "")
                    if ch.finish_reason:
                        c.finish_reason = str(ch.finish_reason)
    except merrors.MistralError as exc:
        out.error = exc
    for c in out.choices.values():
        c.tool_call_ids = []
    for (ci, _), (name, args, call_id) in sorted(tools.items()):
        out.choice(ci).tool_calls.append((name, parse_args(args)))
        out.choice(ci).tool_call_ids.append(call_id)
    return out


# ---------------------------------------------------------------------------------------------
# anthropic

# Anthropic `stop_reason` → OpenAI. pause_turn (a server tool paused a long turn) is a normal end
# of this response; model_context_window_exceeded means output was cut by a limit.
ANTHROPIC_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def run_anthropic(server_url: str, model: str) -> Outcome:
    """anthropic-sdk-python: `messages.stream()` and the SDK's own accumulated message
    (`get_final_message()`, or the snapshot so far when the stream fails).

    Text = the text blocks joined; reasoning = the `thinking` blocks joined (redacted thinking has
    no text); tool calls = `tool_use` blocks with the SDK-parsed `input` (server tools such as
    web_search run on Anthropic's side and are not the caller's tool calls). Usage: Anthropic's
    `input_tokens` excludes cached input, so OpenAI's prompt_tokens = input + cache_read +
    cache_creation, and cached_tokens = cache_read. With compaction, `message_delta.usage` carries
    `iterations` (the compaction step, then the message); the top-level fields count only the last
    iteration, while every iteration is billed (Anthropic's compaction docs: sum the iterations for
    the total), and that total is what polystream reports, so the SDK's figure is summed the same
    way here. The SDK does not model `iterations`; it keeps it as an extra field on the event.
    """
    import anthropic

    out = Outcome()
    client = anthropic.Anthropic(base_url=server_url, api_key="test", max_retries=0)
    msg = None
    iterations = None
    with client:
        try:
            with client.messages.stream(model=model, max_tokens=1024, messages=MESSAGES) as stream:
                for event in stream:
                    if event.type == "message_delta":
                        iterations = (event.usage.model_extra or {}).get("iterations") or iterations
                msg = stream.get_final_message()
        except anthropic.APIError as exc:
            out.error = exc
            try:
                msg = stream.current_message_snapshot
            except (AssertionError, NameError):  # failed before message_start
                msg = None
    if msg is None:
        return out
    c = out.choice(0)
    c.reasoning = ""
    c.tool_call_ids = []
    c.thinking_blocks = []
    for block in msg.content:
        if block.type == "text":
            c.text += block.text
        elif block.type == "thinking":
            c.reasoning += block.thinking
            c.thinking_blocks.append({"type": "thinking", "thinking": block.thinking, "signature": block.signature})
        elif block.type == "redacted_thinking":
            c.thinking_blocks.append({"type": "redacted_thinking", "data": block.data})
        elif block.type == "tool_use":
            c.tool_calls.append((block.name, block.input))
            c.tool_call_ids.append(block.id)
    c.raw_finish = msg.stop_reason
    c.finish_reason = ANTHROPIC_FINISH.get(msg.stop_reason, msg.stop_reason) if msg.stop_reason else None
    u = msg.usage
    parts = iterations or [
        {
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_read_input_tokens": u.cache_read_input_tokens,
            "cache_creation_input_tokens": u.cache_creation_input_tokens,
        }
    ]
    read = sum(it.get("cache_read_input_tokens") or 0 for it in parts)
    prompt = sum((it.get("input_tokens") or 0) + (it.get("cache_creation_input_tokens") or 0) for it in parts) + read
    output = sum(it.get("output_tokens") or 0 for it in parts)
    out.usage = _usage(prompt, output, prompt + output, read)
    return out


# ---------------------------------------------------------------------------------------------
# google-genai

# Gemini FinishReason → OpenAI: every safety/recitation/policy stop is a content filter; a turn
# that produced function calls is reported as `tool_calls` (Gemini says STOP there).
GEMINI_FINISH = {
    "STOP": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
    "MALFORMED_FUNCTION_CALL": "stop",
    "UNEXPECTED_TOOL_CALL": "stop",
    "TOO_MANY_TOOL_CALLS": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "OTHER": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "IMAGE_OTHER": "content_filter",
    "NO_IMAGE": "content_filter",
}


def _enum_name(v: Any) -> str | None:
    return None if v is None else getattr(v, "value", None) or str(v)


def run_gemini(server_url: str, model: str) -> Outcome:
    """google-genai: `models.generate_content_stream()` (always `?alt=sse`), accumulated here.

    Text = non-thought text parts; reasoning = `thought: true` parts; tool calls = functionCall
    parts (args already objects). Finish: the last finishReason, mapped by GEMINI_FINISH, and
    `tool_calls` when the answer has function calls; a prompt blocked before any candidate
    (`promptFeedback.blockReason`) is a content filter. Usage: the last usageMetadata (running
    totals). Gemini counts apart what OpenAI folds together, and its totalTokenCount includes all
    of it: OpenAI's prompt_tokens = promptTokenCount + toolUsePromptTokenCount (the tool results
    Gemini fed itself, e.g. search or code execution, are input), completion_tokens =
    candidatesTokenCount + thoughtsTokenCount, reasoning_tokens = thoughts, cached_tokens =
    cachedContentTokenCount; so prompt + completion = Gemini's total.
    """
    from google import genai
    from google.genai import errors as gerrors, types

    out = Outcome()
    client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=server_url, api_version="v1beta"))
    blocked, resp_block_reason = False, None
    try:
        for resp in client.models.generate_content_stream(model=model, contents="Hi"):
            if resp.prompt_feedback is not None and resp.prompt_feedback.block_reason is not None:
                blocked, resp_block_reason = True, resp.prompt_feedback.block_reason
            for cand in resp.candidates or []:
                c = out.choice(cand.index or 0)
                c.reasoning = c.reasoning or ""
                for part in (cand.content.parts if cand.content else None) or []:
                    if part.function_call is not None:
                        c.tool_calls.append((part.function_call.name, part.function_call.args or {}))
                    elif part.text is not None:
                        if part.thought:
                            c.reasoning += part.text
                        else:
                            c.text += part.text
                if cand.finish_reason is not None:
                    c.finish_reason = c.raw_finish = _enum_name(cand.finish_reason)
            m = resp.usage_metadata
            if m is not None and (m.prompt_token_count is not None or m.total_token_count is not None):
                thoughts = m.thoughts_token_count
                out.usage = _usage(
                    (m.prompt_token_count or 0) + (m.tool_use_prompt_token_count or 0),
                    (m.candidates_token_count or 0) + (thoughts or 0),
                    m.total_token_count or 0,
                    m.cached_content_token_count,
                    thoughts,
                )
    except gerrors.APIError as exc:
        out.error = exc
    if blocked and not out.choices:
        out.choice(0).finish_reason = "content_filter"
        out.choice(0).raw_finish = _enum_name(resp_block_reason)
        out.choice(0).reasoning = ""
    for c in out.choices.values():
        if c.finish_reason in GEMINI_FINISH:
            c.finish_reason = GEMINI_FINISH[c.finish_reason]
        if c.tool_calls and c.finish_reason == "stop":
            c.finish_reason = "tool_calls"
    return out


# ---------------------------------------------------------------------------------------------
# cohere

# Cohere v2 ChatFinishReason → OpenAI.
COHERE_FINISH = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}


def run_cohere(server_url: str, model: str) -> Outcome:
    """cohere-python: `ClientV2.chat_stream()`, accumulated here.

    Text = `content-delta` text; reasoning = `content-delta` thinking (reasoning models); tool
    calls = tool-call-start (name) + tool-call-delta (argument pieces), by event index. The
    `tool_plan` (the model's stated plan before calling tools, `tool-plan-delta`) is not answer
    text; polystream surfaces it as reasoning, so it joins the reasoning here. Usage: Cohere reports
    `billed_units` and `tokens`; the actual token counts (`tokens`) are OpenAI's usage, and
    `cached_tokens` is the cached prompt part.
    """
    import cohere

    out = Outcome()
    client = cohere.ClientV2(api_key="test", base_url=server_url)
    c = out.choice(0)
    c.reasoning = ""
    tools: dict[int, list[Any]] = {}
    try:
        for ev in client.chat_stream(model=model, messages=MESSAGES):
            kind = ev.type
            if kind == "content-delta":
                content = ev.delta.message.content
                if getattr(content, "thinking", None):
                    c.reasoning += content.thinking
                if getattr(content, "text", None):
                    c.text += content.text
            elif kind == "tool-plan-delta":
                c.reasoning += ev.delta.message.tool_plan or ""
            elif kind == "tool-call-start":
                call = ev.delta.message.tool_calls
                tools[ev.index] = [call.function.name, call.function.arguments or "", call.id]
            elif kind == "tool-call-delta":
                tools[ev.index][1] += ev.delta.message.tool_calls.function.arguments or ""
            elif kind == "message-end":
                d = ev.delta
                c.raw_finish = d.finish_reason
                c.finish_reason = COHERE_FINISH.get(d.finish_reason, d.finish_reason)
                u = d.usage
                if u is not None and u.tokens is not None:
                    i, o = int(u.tokens.input_tokens or 0), int(u.tokens.output_tokens or 0)
                    out.usage = _usage(i, o, i + o, u.cached_tokens)
    except cohere.core.ApiError as exc:
        out.error = exc
    c.tool_calls = [(name, parse_args(args)) for _, (name, args, _id) in sorted(tools.items())]
    c.tool_call_ids = [call_id for _, (_n, _a, call_id) in sorted(tools.items())]
    return out


# ---------------------------------------------------------------------------------------------
# ollama


def run_ollama(server_url: str, model: str) -> Outcome:
    """ollama-python: `Client.chat(stream=True)`, accumulated here. `done_reason` is already
    stop/length; Ollama has no tool-call reason (it says stop after tool calls), so an answer with
    tool calls is `tool_calls`. Usage: prompt_eval_count / eval_count on the final object."""
    import ollama

    out = Outcome()
    c = out.choice(0)
    c.reasoning = ""
    try:
        for part in ollama.Client(host=server_url).chat(model=model, messages=MESSAGES, stream=True):
            m = part.message
            c.text += m.content or ""
            c.reasoning += m.thinking or ""
            for tc in m.tool_calls or []:
                c.tool_calls.append((tc.function.name, dict(tc.function.arguments or {})))
            if part.done:
                c.finish_reason = c.raw_finish = part.done_reason
                p, e = part.prompt_eval_count or 0, part.eval_count or 0
                out.usage = _usage(p, e, p + e)
    except ollama.ResponseError as exc:
        out.error = exc
    if c.tool_calls and c.finish_reason == "stop":
        c.finish_reason = "tool_calls"
    return out


def gemini_array_as_sse(body: bytes) -> bytes:
    """The elements of a Gemini JSON-array body (`streamGenerateContent` without `alt=sse`) framed
    the way the same endpoint frames them with `alt=sse` (`data: {json}` + CRLF CRLF)."""
    return b"".join(b"data: " + json.dumps(el, ensure_ascii=False).encode() + b"\r\n\r\n" for el in json.loads(body))


# ---------------------------------------------------------------------------------------------
# bedrock (boto3)

# Converse `stopReason` → OpenAI, as polystream's dialect maps it.
BEDROCK_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def run_bedrock(server_url: str, model: str) -> Outcome:
    """boto3: `bedrock-runtime` `converse_stream()` at the replay server (its `endpoint_url`,
    dummy SigV4 credentials), accumulated here: boto3 decodes the eventstream frames into event
    dicts and has no accumulator. Text and reasoning text are the deltas joined; tool calls are
    `contentBlockStart.toolUse` plus its input fragments. Usage: Converse's `inputTokens`, like
    Anthropic's, excludes cache reads and writes, so prompt_tokens = input + cacheRead +
    cacheWrite and cached_tokens = cacheRead (when reported)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, EventStreamError

    out = Outcome()
    c = out.choice(0)
    c.reasoning = ""
    tools: dict[int, list[Any]] = {}
    client = boto3.client("bedrock-runtime", endpoint_url=server_url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test",
                          config=Config(retries={"max_attempts": 1}))
    try:
        response = client.converse_stream(modelId=model, messages=[
            {"role": m["role"], "content": [{"text": m["content"]}]} for m in MESSAGES])
        for event in response["stream"]:
            if "contentBlockStart" in event:
                e = event["contentBlockStart"]
                use = e.get("start", {}).get("toolUse")
                if use:
                    tools[e["contentBlockIndex"]] = [use["name"], "", use["toolUseId"]]
            elif "contentBlockDelta" in event:
                e = event["contentBlockDelta"]
                d = e["delta"]
                if "text" in d:
                    c.text += d["text"]
                elif "toolUse" in d:
                    tools[e["contentBlockIndex"]][1] += d["toolUse"].get("input", "")
                elif "reasoningContent" in d:
                    c.reasoning += d["reasoningContent"].get("text", "")
            elif "messageStop" in event:
                c.raw_finish = event["messageStop"]["stopReason"]
                c.finish_reason = BEDROCK_FINISH.get(c.raw_finish, "stop")
            elif "metadata" in event:
                u = event["metadata"].get("usage") or {}
                cached, written = u.get("cacheReadInputTokens"), u.get("cacheWriteInputTokens")
                prompt = u.get("inputTokens", 0) + (cached or 0) + (written or 0)
                out.usage = _usage(prompt, u.get("outputTokens", 0), prompt + u.get("outputTokens", 0), cached)
    except (EventStreamError, ClientError, BotoCoreError) as exc:
        out.error = exc
    c.tool_calls = [(name, parse_args(args)) for _, (name, args, _id) in sorted(tools.items())]
    c.tool_call_ids = [call_id for _, (_n, _a, call_id) in sorted(tools.items())]
    return out
