//! Anthropic Messages streams: named SSE events whose name equals the JSON `type`, ending with
//! `message_stop`.
//!
//! - `message_start` → a role chunk (id, model); its usage (input and cache tokens) is kept.
//! - `content_block_start/delta/stop`: `text` → `content`; `thinking` → `reasoning_content` and its
//!   `signature_delta` → `reasoning_signature`, and at its stop the whole block (text and
//!   signature) in `thinking_blocks`; `redacted_thinking` → its `data` in `thinking_blocks`.
//!   Anthropic needs every one of those blocks back, in order, to continue a turn that used
//!   tools: with several thinking blocks (interleaved thinking), one concatenated text and the
//!   last signature would not verify. `tool_use` → one OpenAI tool call per block, indexed
//!   from 0 in order of appearance, `input_json_delta` fragments as `arguments` (a call that
//!   streamed no input gets `{}`). `server_tool_use`, `web_search_tool_result`, `compaction` and
//!   citations are the server's business, not the client's: they are skipped (their
//!   `input_json_delta`s too) and never become tool calls.
//! - `message_delta` → a chunk with the mapped finish reason and the usage.
//! - `ping` is ignored; `event: error` (or a payload of type `error`) → [`Error::Provider`] whose
//!   kind is the error type (`overloaded_error`, …).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{ended, non_empty, tool_delta};
use super::{
    finish_choice, parse_json, provider_error, usage_beside_cache, Dialect, Frame, Framing, Meta,
};
use crate::chunk::{ChatChunk, Delta, ThinkingBlock, Usage};
use crate::error::Result;

const NAME: &str = "anthropic";

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub fn map_finish_reason(native: &str) -> &'static str {
    match native {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn (the server paused a long tool turn) and the unknown.
        _ => "stop",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text,
    Thinking,
    /// A client tool call: its OpenAI index, and whether any input has streamed.
    Tool {
        index: u32,
        has_input: bool,
    },
    /// Server-side or opaque blocks.
    Other,
}

#[derive(Debug, Default)]
pub struct Anthropic {
    meta: Meta,
    /// (Anthropic block index, block); looked up from the end, where the live block is.
    blocks: Vec<(u32, Block)>,
    tools: u32,
    /// The open thinking block's text and signature so far (blocks stream one at a time).
    thinking: String,
    signature: Option<String>,
    /// Usage from `message_start`, updated by `message_delta`.
    input: WireUsage,
    saw_stop_reason: bool,
    done: bool,
}

#[derive(Deserialize)]
struct WireEvent<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(borrow, default)]
    content_block: Option<WireBlock<'a>>,
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireBlock<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    /// A `redacted_thinking` block's encrypted content.
    #[serde(default)]
    data: Option<String>,
}

/// Both `content_block_delta.delta` and `message_delta.delta`; which fields are set says which.
#[derive(Deserialize)]
struct WireDelta {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    /// Per sampling pass when the server compacted the context first; the top-level figures then
    /// cover the last pass only, so the passes are summed.
    #[serde(default)]
    iterations: Option<Vec<WireUsage>>,
}

impl Anthropic {
    fn block_mut(&mut self, index: u32) -> Option<&mut Block> {
        self.blocks
            .iter_mut()
            .rev()
            .find(|(i, _)| *i == index)
            .map(|(_, b)| b)
    }

    fn emit(&self, delta: Delta, out: &mut Vec<ChatChunk>) {
        out.push(self.meta.delta(0, delta));
    }

    /// A whole reasoning block, as the request builder must send it back.
    fn emit_block(&self, block: ThinkingBlock, out: &mut Vec<ChatChunk>) {
        let delta = Delta {
            thinking_blocks: Some(vec![block]),
            ..Default::default()
        };
        self.emit(delta, out);
    }

    /// Prompt tokens include the cache reads and writes, as OpenAI's `prompt_tokens` includes
    /// `cached_tokens`.
    fn usage(&self, output: u64) -> Usage {
        let u = &self.input;
        let (read, write) = (u.cache_read_input_tokens, u.cache_creation_input_tokens);
        usage_beside_cache(u.input_tokens, output, read, write)
    }

    fn on_block_start(&mut self, index: u32, block: WireBlock<'_>, out: &mut Vec<ChatChunk>) {
        let kind = match block.kind.as_ref() {
            "text" => {
                if let Some(t) = non_empty(block.text) {
                    self.emit(
                        Delta {
                            content: Some(t),
                            ..Default::default()
                        },
                        out,
                    );
                }
                Block::Text
            }
            "thinking" => {
                let (thinking, signature) = (non_empty(block.thinking), non_empty(block.signature));
                self.thinking.clear();
                self.thinking.push_str(thinking.as_deref().unwrap_or(""));
                self.signature.clone_from(&signature);
                if thinking.is_some() || signature.is_some() {
                    let delta = Delta {
                        reasoning_content: thinking,
                        reasoning_signature: signature,
                        ..Default::default()
                    };
                    self.emit(delta, out);
                }
                Block::Thinking
            }
            "tool_use" => {
                let tool = self.tools;
                self.tools += 1;
                let id = Some(block.id.unwrap_or_default());
                self.emit(
                    tool_delta(
                        tool,
                        id,
                        Some(block.name.unwrap_or_default()),
                        String::new(),
                    ),
                    out,
                );
                // Streaming sends `input: {}` then the input as deltas; a whole input given up front
                // (a relay that buffered it) is used as is.
                let given = block
                    .input
                    .map(|r| super::compact_json(r.get()))
                    .filter(|t| t != "{}");
                let has_input = given.is_some();
                if let Some(input) = given {
                    self.emit(tool_delta(tool, None, None, input), out);
                }
                Block::Tool {
                    index: tool,
                    has_input,
                }
            }
            "redacted_thinking" => {
                let block = ThinkingBlock::redacted(block.data.unwrap_or_default());
                self.emit_block(block, out);
                Block::Other
            }
            _ => Block::Other,
        };
        self.blocks.push((index, kind));
    }

    fn on_block_delta(&mut self, index: u32, d: WireDelta, out: &mut Vec<ChatChunk>) {
        let block = self.block_mut(index).copied();
        if let Some(json) = non_empty(d.partial_json) {
            if let Some(Block::Tool { index: tool, .. }) = block {
                if let Some(Block::Tool { has_input, .. }) = self.block_mut(index) {
                    *has_input = true;
                }
                self.emit(tool_delta(tool, None, None, json), out);
            }
            return;
        }
        if block == Some(Block::Other) {
            return;
        }
        let delta = Delta {
            content: non_empty(d.text),
            reasoning_content: non_empty(d.thinking),
            reasoning_signature: non_empty(d.signature),
            ..Default::default()
        };
        if block == Some(Block::Thinking) {
            self.thinking
                .push_str(delta.reasoning_content.as_deref().unwrap_or(""));
            if delta.reasoning_signature.is_some() {
                self.signature.clone_from(&delta.reasoning_signature);
            }
        }
        if delta.content.is_some()
            || delta.reasoning_content.is_some()
            || delta.reasoning_signature.is_some()
        {
            self.emit(delta, out);
        }
    }

    fn on_block_stop(&mut self, index: u32, out: &mut Vec<ChatChunk>) {
        match self.block_mut(index).copied() {
            Some(Block::Tool {
                index: tool,
                has_input: false,
            }) => {
                // A call without arguments streams only `""`: OpenAI would send `{}`.
                self.emit(tool_delta(tool, None, None, "{}".to_owned()), out);
            }
            Some(Block::Thinking) if !self.thinking.is_empty() || self.signature.is_some() => {
                let text = std::mem::take(&mut self.thinking);
                let block = ThinkingBlock::thinking(text, self.signature.take());
                self.emit_block(block, out);
            }
            _ => {}
        }
    }

    fn on_message_delta(
        &mut self,
        d: Option<WireDelta>,
        u: Option<WireUsage>,
        out: &mut Vec<ChatChunk>,
    ) {
        // `message_delta.usage` is cumulative: the fields it carries replace those of `message_start`.
        if let Some(mut u) = u {
            if let Some(passes) = u.iterations.take().filter(|p| !p.is_empty()) {
                let sum =
                    |f: fn(&WireUsage) -> Option<u64>| Some(passes.iter().filter_map(f).sum());
                u.input_tokens = sum(|p| p.input_tokens);
                u.output_tokens = sum(|p| p.output_tokens);
                u.cache_read_input_tokens = sum(|p| p.cache_read_input_tokens);
                u.cache_creation_input_tokens = sum(|p| p.cache_creation_input_tokens);
            }
            let i = &mut self.input;
            i.input_tokens = u.input_tokens.or(i.input_tokens);
            i.cache_read_input_tokens = u.cache_read_input_tokens.or(i.cache_read_input_tokens);
            i.cache_creation_input_tokens = u
                .cache_creation_input_tokens
                .or(i.cache_creation_input_tokens);
            i.output_tokens = u.output_tokens.or(i.output_tokens);
        }
        let output = self.input.output_tokens.unwrap_or(0);
        let mut chunk = match d.and_then(|d| d.stop_reason) {
            Some(native) => {
                self.saw_stop_reason = true;
                let reason = map_finish_reason(&native);
                self.meta
                    .chunk(vec![finish_choice(0, Delta::default(), reason, native)])
            }
            None => self.meta.chunk(Vec::new()),
        };
        chunk.usage = Some(Box::new(self.usage(output)));
        out.push(chunk);
    }
}

impl Dialect for Anthropic {
    fn name(&self) -> &'static str {
        NAME
    }

    fn framing(&self) -> Framing {
        Framing::Sse
    }

    fn on_frame(&mut self, frame: Frame<'_>, out: &mut Vec<ChatChunk>) -> Result<()> {
        if self.done {
            return Ok(());
        }
        let data = frame.data.trim_ascii();
        if frame.event == b"error" {
            return Err(provider_error(data));
        }
        if data.is_empty() {
            return Ok(());
        }
        let ev: WireEvent<'_> = parse_json(NAME, data)?;
        let kind = match &ev.kind {
            Some(k) => k.as_ref(),
            None => std::str::from_utf8(frame.event).unwrap_or(""),
        };
        let index = ev.index.unwrap_or(0);
        match kind {
            "content_block_delta" => {
                if let Some(d) = ev.delta {
                    self.on_block_delta(index, d, out);
                }
            }
            "content_block_start" => {
                if let Some(b) = ev.content_block {
                    self.on_block_start(index, b, out);
                }
            }
            "content_block_stop" => self.on_block_stop(index, out),
            "message_start" => {
                if let Some(m) = ev.message {
                    self.meta.id = m.id.unwrap_or_default().into();
                    self.meta.model = m.model.unwrap_or_default().into();
                    if let Some(u) = m.usage {
                        self.input = u;
                    }
                }
                self.emit(
                    Delta {
                        role: Some("assistant".to_owned()),
                        ..Default::default()
                    },
                    out,
                );
            }
            "message_delta" => self.on_message_delta(ev.delta, ev.usage, out),
            "message_stop" => self.done = true,
            "error" => return Err(provider_error(data)),
            _ => {} // ping, and event types added later
        }
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<ChatChunk>) -> Result<()> {
        // A relay may drop `message_stop`; a stop reason still proves the answer is whole.
        ended(self.done || self.saw_stop_reason, NAME)
    }

    fn is_done(&self) -> bool {
        self.done
    }
}
