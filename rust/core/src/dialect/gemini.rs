//! Google Gemini `streamGenerateContent` (Generative Language API and Vertex AI): every frame is a
//! whole `GenerateContentResponse`, sent as SSE with `alt=sse` (CRLF) or, without it, as the
//! elements of one streamed JSON array; [`Framing::SseOrJson`] accepts both.
//!
//! - Parts: `text` → `content`; `thought: true` → `reasoning_content`; `thoughtSignature` →
//!   `reasoning_signature`; `functionCall` (always whole) → one tool call with its `args` object as
//!   the arguments string and, as Gemini has no call ids, the id `call_<n>` (n = its index) unless
//!   the part carries one. `executableCode` / `codeExecutionResult` are skipped, as python-genai's
//!   `response.text` skips them: the server ran the code, and the answer's text follows.
//! - `finishReason` is mapped (`STOP` becomes `tool_calls` once the candidate called a function)
//!   and marks the stream done; later frames are still read (code execution sends several).
//! - `logprobsResult` (asked for with `responseLogprobs`): each `chosenCandidates` token, with the
//!   `topCandidates` of the same decoding step as its alternatives, → `logprobs.content`, in order.
//!   Gemini sends no bytes, so each token's own UTF-8 bytes stand in. `avgLogprobs` (a
//!   whole-candidate score) has no place in OpenAI's shape and is dropped.
//! - `usageMetadata` holds running totals: the latest is attached to finish chunks.
//! - `promptFeedback.blockReason` (prompt refused, no candidates) → a `content_filter` finish.
//! - `{"error": …}` as a frame, or bare inside the SSE stream → [`Error::Provider`] (kind = status).
//! - There is no terminator: without a `finishReason` the stream is [`Error::Incomplete`].

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    arguments_text, content_logprobs, finish_choice, logprob_entry, parse_json, provider_error,
    top_logprob, usage, with_cached, with_reasoning, Dialect, Frame, Framing, Meta,
};
use crate::chunk::{ChatChunk, ChunkChoice, Delta, FunctionDelta, Logprobs, ToolCallDelta, Usage};
use crate::error::Result;

const NAME: &str = "gemini";

/// Gemini `finishReason` (or `promptFeedback.blockReason`) → OpenAI `finish_reason`.
pub fn map_finish_reason(native: &str) -> &'static str {
    match native {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => "content_filter",
        // STOP, LANGUAGE, OTHER, MALFORMED_FUNCTION_CALL, … keep their name in native_finish_reason.
        _ => "stop",
    }
}

#[derive(Debug, Default)]
pub struct Gemini {
    meta: Meta,
    /// Per candidate index: function calls emitted so far.
    candidates: Vec<(u32, u32)>,
    usage: Option<Usage>,
    done: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse<'a> {
    #[serde(borrow, default)]
    candidates: Option<Vec<WireCandidate<'a>>>,
    #[serde(default)]
    usage_metadata: Option<WireUsage>,
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    response_id: Option<String>,
    #[serde(default)]
    prompt_feedback: Option<WirePromptFeedback>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCandidate<'a> {
    #[serde(borrow, default)]
    content: Option<WireContent<'a>>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    logprobs_result: Option<WireLogprobs>,
}

/// One entry per decoding step in both lists (the chosen token may be missing from the top ones).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireLogprobs {
    #[serde(default)]
    chosen_candidates: Vec<WireToken>,
    #[serde(default)]
    top_candidates: Vec<WireTopTokens>,
}

// Google's JSON leaves out fields at their default value, so `logProbability: 0` is sent as nothing.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireToken {
    #[serde(default)]
    token: String,
    #[serde(default)]
    log_probability: f64,
}

#[derive(Deserialize)]
struct WireTopTokens {
    #[serde(default)]
    candidates: Vec<WireToken>,
}

#[derive(Deserialize)]
struct WireContent<'a> {
    #[serde(borrow, default)]
    parts: Option<Vec<WirePart<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePart<'a> {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(default)]
    thought_signature: Option<String>,
    #[serde(borrow, default)]
    function_call: Option<WireFunctionCall<'a>>,
}

#[derive(Deserialize)]
struct WireFunctionCall<'a> {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(borrow, default)]
    args: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
    #[serde(default)]
    tool_use_prompt_token_count: u64,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
    #[serde(default)]
    total_token_count: Option<u64>,
}

/// Thoughts are billed as output; tool-use prompt tokens (search results, code output) as input,
/// so prompt + completion = `totalTokenCount`.
fn convert_usage(u: WireUsage) -> Usage {
    let prompt = u.prompt_token_count + u.tool_use_prompt_token_count;
    let completion = u.candidates_token_count + u.thoughts_token_count.unwrap_or(0);
    let base = usage(prompt, completion, u.total_token_count);
    with_reasoning(
        with_cached(base, u.cached_content_token_count, None),
        u.thoughts_token_count,
    )
}

/// `logprobsResult` → `logprobs.content`: step i's chosen token with step i's top candidates.
fn convert_logprobs(r: WireLogprobs) -> Option<Logprobs> {
    let mut tops = r.top_candidates.into_iter();
    let entries = r
        .chosen_candidates
        .into_iter()
        .map(|t| {
            let alternatives = tops.next().map_or_else(Vec::new, |step| {
                step.candidates
                    .into_iter()
                    .map(|a| top_logprob(a.token, a.log_probability, None))
                    .collect()
            });
            logprob_entry(t.token, t.log_probability, None, alternatives)
        })
        .collect();
    content_logprobs(entries)
}

fn push_text(dst: &mut Option<String>, text: &str) {
    dst.get_or_insert_with(String::new).push_str(text);
}

impl Gemini {
    /// (function calls so far, first time this candidate is seen).
    fn candidate(&mut self, index: u32) -> (&mut u32, bool) {
        match self.candidates.iter().position(|(i, _)| *i == index) {
            Some(p) => (&mut self.candidates[p].1, false),
            None => {
                self.candidates.push((index, 0));
                (
                    &mut self.candidates.last_mut().expect("just pushed").1,
                    true,
                )
            }
        }
    }

    fn on_candidate(&mut self, cand: WireCandidate<'_>) -> Option<ChunkChoice> {
        let index = cand.index.unwrap_or(0);
        let (tools, first) = self.candidate(index);
        let mut delta = Delta::default();
        if first {
            delta.role = Some("assistant".to_owned());
        }
        let mut calls = Vec::new();
        for part in cand.content.and_then(|c| c.parts).unwrap_or_default() {
            if let Some(sig) = part.thought_signature {
                delta.reasoning_signature = Some(sig);
            }
            if let Some(fc) = part.function_call {
                let n = *tools;
                *tools += 1;
                calls.push(ToolCallDelta {
                    index: n,
                    id: Some(fc.id.unwrap_or_else(|| format!("call_{n}"))),
                    kind: Some("function".to_owned()),
                    function: Some(FunctionDelta {
                        name: Some(fc.name.unwrap_or_default()),
                        arguments: Some(arguments_text(fc.args)),
                    }),
                });
            } else if let Some(text) = part.text.filter(|t| !t.is_empty()) {
                if part.thought == Some(true) {
                    push_text(&mut delta.reasoning_content, &text);
                } else if delta.content.is_none() {
                    delta.content = Some(text);
                } else {
                    push_text(&mut delta.content, &text);
                }
            }
        }
        let called = *tools > 0;
        if !calls.is_empty() {
            delta.tool_calls = Some(calls);
        }
        let logprobs = cand.logprobs_result.and_then(convert_logprobs);
        let mut choice = match cand.finish_reason {
            Some(native) => {
                self.done = true;
                let reason = match map_finish_reason(&native) {
                    "stop" if called && native == "STOP" => "tool_calls",
                    r => r,
                };
                finish_choice(index, delta, reason, native)
            }
            None if delta == Delta::default() && logprobs.is_none() => return None,
            None => ChunkChoice {
                index,
                delta,
                ..Default::default()
            },
        };
        choice.logprobs = logprobs;
        Some(choice)
    }
}

impl Dialect for Gemini {
    fn name(&self) -> &'static str {
        NAME
    }

    fn framing(&self) -> Framing {
        Framing::SseOrJson
    }

    fn on_frame(&mut self, frame: Frame<'_>, out: &mut Vec<ChatChunk>) -> Result<()> {
        let data = frame.data.trim_ascii();
        if frame.event == b"error" {
            return Err(provider_error(data));
        }
        if data.is_empty() {
            return Ok(());
        }
        let r: WireResponse<'_> = parse_json(NAME, data)?;
        if r.error.is_some() {
            return Err(provider_error(data));
        }
        if self.meta.id.is_empty() {
            self.meta.id = r.response_id.unwrap_or_default().into();
        }
        if self.meta.model.is_empty() {
            self.meta.model = r.model_version.unwrap_or_default().into();
        }
        let was_done = self.done;
        let has_usage = r.usage_metadata.is_some();
        if let Some(u) = r.usage_metadata {
            self.usage = Some(convert_usage(u));
        }
        let mut choices: Vec<ChunkChoice> = r
            .candidates
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| self.on_candidate(c))
            .collect();
        if let Some(block) = r.prompt_feedback.and_then(|p| p.block_reason) {
            // The prompt itself was refused: no candidates follow.
            self.done = true;
            choices.push(finish_choice(0, Delta::default(), "content_filter", block));
        }
        let finished = choices.iter().any(|c| c.finish_reason.is_some());
        // Usage rides on finish chunks, and on any later frame that updates it.
        let usage = if finished || (was_done && has_usage) {
            self.usage.clone()
        } else {
            None
        };
        if !choices.is_empty() || usage.is_some() {
            let mut chunk = self.meta.chunk(choices);
            chunk.usage = usage.map(Box::new);
            out.push(chunk);
        }
        Ok(())
    }

    fn is_done(&self) -> bool {
        self.done
    }
}
