//! OpenAI Chat Completions streams and every OpenAI-compatible server (Azure, Groq, Mistral,
//! DeepSeek, OpenRouter, Together, vLLM, Ollama's /v1, …).
//!
//! Unnamed events carrying `chat.completion.chunk` JSON, ending with `data: [DONE]`. Variants folded
//! in here: Groq's usage under `x_groq`, `reasoning` (OpenRouter/vLLM) for `reasoning_content`, whole
//! tool calls without `index` (Mistral), `content` as a list of typed parts (Mistral Magistral,
//! handled by [`crate::chunk::Delta`]'s parser), in-band `{"error": …}` chunks (OpenRouter) and
//! `event: error` frames, keep-alive comments (handled by the SSE layer). Chunks without choices
//! (Azure's `prompt_filter_results`, gpt-5 `moderation`) pass through. Finish reasons outside
//! OpenAI's set are mapped, the raw value kept in `native_finish_reason`.

use super::{ended, sse_payload};
use super::{json_text, parse_json_text, provider_error_from_value, Dialect, Frame, Framing};
use crate::chunk::{ChatChunk, MISSING_INDEX};
use crate::chunk_parser::{parse_with, ChunkMemo};
use crate::error::Result;

const NAME: &str = "openai_chat";

/// A compatible server's `finish_reason` → OpenAI's; `None` when it already is one of OpenAI's.
pub fn map_finish_reason(native: &str) -> Option<&'static str> {
    Some(match native {
        "stop" | "length" | "tool_calls" | "content_filter" | "function_call" => return None,
        "max_tokens" | "model_length" | "max_output_tokens" => "length",
        "tool_use" => "tool_calls",
        "safety" | "content_filtered" | "refusal" => "content_filter",
        // eos (TGI, vLLM), end_turn, stop_sequence, error (OpenRouter), and the unknown.
        _ => "stop",
    })
}

#[derive(Debug, Default)]
pub struct OpenAiChat {
    done: bool,
    saw_finish: bool,
    /// Per choice index: tool calls seen so far, for assigning indexes the server left out.
    tool_counts: Vec<(u32, u32)>,
    memo: ChunkMemo,
}

impl OpenAiChat {
    fn fill_tool_indexes(&mut self, chunk: &mut ChatChunk) {
        for choice in &mut chunk.choices {
            let Some(calls) = choice.delta.tool_calls.as_mut() else {
                continue;
            };
            let pos = match self
                .tool_counts
                .iter()
                .position(|(c, _)| *c == choice.index)
            {
                Some(p) => p,
                None => {
                    self.tool_counts.push((choice.index, 0));
                    self.tool_counts.len() - 1
                }
            };
            let count = &mut self.tool_counts[pos].1;
            for tc in calls.iter_mut() {
                if tc.index == MISSING_INDEX {
                    // A call with an id starts a new call; one without continues the latest.
                    let new_call = tc.id.as_deref().is_some_and(|s| !s.is_empty()) || *count == 0;
                    if new_call {
                        tc.index = *count;
                        *count += 1;
                    } else {
                        tc.index = *count - 1;
                    }
                } else if tc.index >= *count {
                    *count = tc.index + 1;
                }
            }
        }
    }
}

impl Dialect for OpenAiChat {
    fn name(&self) -> &'static str {
        NAME
    }

    fn framing(&self) -> Framing {
        Framing::Sse
    }

    fn on_frame(&mut self, frame: Frame<'_>, out: &mut Vec<ChatChunk>) -> Result<()> {
        let Some(data) = sse_payload(&frame, &mut self.done)? else {
            return Ok(());
        };
        let text = json_text(NAME, data)?;
        // The common shape through the hand-written parser; anything else (and every error) through serde.
        let mut chunk: ChatChunk = match parse_with(text, &mut self.memo) {
            Some(c) => c,
            None => parse_json_text(NAME, text)?,
        };
        if let Some(err) = chunk.error.take() {
            return Err(provider_error_from_value(
                &err,
                String::from_utf8_lossy(data).into_owned(),
            ));
        }
        if let Some(xg) = chunk.x_groq.take() {
            if chunk.usage.is_none() {
                chunk.usage = xg.usage.map(Box::new);
            }
        }
        let mut has_tools = false;
        for choice in &mut chunk.choices {
            let d = &mut choice.delta;
            if let Some(r) = d.reasoning.take() {
                if d.reasoning_content.is_none() {
                    d.reasoning_content = Some(r);
                }
            }
            has_tools |= d.tool_calls.is_some();
            if let Some(native) = choice.finish_reason.take() {
                if !native.is_empty() {
                    self.saw_finish = true;
                    match map_finish_reason(&native) {
                        None => choice.finish_reason = Some(native),
                        Some(mapped) => {
                            choice.finish_reason = Some(mapped.to_owned());
                            choice.native_finish_reason.get_or_insert(native);
                        }
                    }
                }
            }
        }
        if has_tools {
            self.fill_tool_indexes(&mut chunk);
        }
        out.push(chunk);
        Ok(())
    }

    fn finish(&mut self, _out: &mut Vec<ChatChunk>) -> Result<()> {
        // Some compatible servers omit `[DONE]`; a finish reason still proves the answer is whole.
        ended(self.done || self.saw_finish, NAME)
    }

    fn is_done(&self) -> bool {
        self.done
    }
}
