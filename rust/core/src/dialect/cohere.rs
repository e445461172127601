//! Cohere v2 chat streams: named SSE events (name = JSON `type`), then `data: [DONE]`.
//!
//! - `message-start` → a role chunk with the message id.
//! - `content-start` / `content-delta`: `text` → `content`, `thinking` (reasoning models) →
//!   `reasoning_content`. Their `logprobs` are left out: Cohere gives the delta's text, its
//!   `token_ids` and one logprob per id, but not the text of each token, and OpenAI's entries
//!   need one (the ids cannot be turned back into text without Cohere's tokenizer).
//! - `tool-plan-delta` → `reasoning_content`: the plan is the model's reasoning before it calls
//!   tools, not part of the answer.
//! - `tool-call-start/delta/end` → tool calls, indexed from 0 in order of their start (a call that
//!   streamed no arguments gets `{}`).
//! - `citation-start/end`, `debug` and unknown events are ignored.
//! - `message-end` → the mapped finish reason and usage. `finish_reason: ERROR` is raised as
//!   [`Error::Provider`] (code `ERROR`, message from `delta.error`) rather than passed off as a
//!   normal stop: the generation failed, and the chunks before it stay delivered.
//! - Usage: `tokens` (what the model processed; `cached_tokens` counts against it), falling back
//!   to `billed_units`.
//!
//! The stream is whole after `message-end`; `[DONE]` is not required.

use serde::Deserialize;

use super::{event_kind, non_empty, sse_payload, tool_delta};
use super::{
    finish_choice, parse_json, provider_error, usage, with_cached, with_reasoning, Dialect, Frame,
    Framing, Meta,
};
use crate::chunk::{ChatChunk, Delta, Usage};
use crate::error::{Error, Result};

const NAME: &str = "cohere";

/// Cohere `finish_reason` → OpenAI `finish_reason` (`ERROR` never gets here: it is raised).
pub fn map_finish_reason(native: &str) -> &'static str {
    match native {
        "MAX_TOKENS" => "length",
        "TOOL_CALL" => "tool_calls",
        "ERROR_TOXIC" => "content_filter",
        // COMPLETE, STOP_SEQUENCE, TIMEOUT and the unknown.
        _ => "stop",
    }
}

#[derive(Debug, Default)]
pub struct Cohere {
    meta: Meta,
    /// (Cohere tool-call index, OpenAI index, arguments streamed), newest last.
    tools: Vec<(u32, u32, bool)>,
    done: bool,
}

#[derive(Deserialize)]
struct WireStart {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
struct WireEvent {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    delta: Option<WireDelta>,
}

#[derive(Deserialize)]
struct WireDelta {
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<WireContent>,
    #[serde(default)]
    tool_plan: Option<String>,
    #[serde(default)]
    tool_calls: Option<WireToolCall>,
}

#[derive(Deserialize)]
struct WireContent {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunction>,
}

#[derive(Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    billed_units: Option<WireTokens>,
    #[serde(default)]
    tokens: Option<WireTokens>,
    #[serde(default)]
    cached_tokens: Option<f64>,
}

// The SDK types these as floats.
#[derive(Deserialize)]
struct WireTokens {
    #[serde(default)]
    input_tokens: Option<f64>,
    #[serde(default)]
    output_tokens: Option<f64>,
    #[serde(default)]
    reasoning_tokens: Option<f64>,
}

fn count(v: Option<f64>) -> Option<u64> {
    v.map(|n| n.max(0.0) as u64)
}

fn convert_usage(u: WireUsage) -> Usage {
    let t = u.tokens.or(u.billed_units);
    let get = |f: fn(&WireTokens) -> Option<f64>| count(t.as_ref().and_then(f));
    let base = usage(
        get(|t| t.input_tokens).unwrap_or(0),
        get(|t| t.output_tokens).unwrap_or(0),
        None,
    );
    with_reasoning(
        with_cached(base, count(u.cached_tokens), None),
        get(|t| t.reasoning_tokens),
    )
}

impl Cohere {
    fn emit(&self, delta: Delta, out: &mut Vec<ChatChunk>) {
        out.push(self.meta.delta(0, delta));
    }

    fn tool_mut(&mut self, index: u32) -> Option<&mut (u32, u32, bool)> {
        self.tools.iter_mut().rev().find(|t| t.0 == index)
    }

    fn on_event(&mut self, kind: &str, data: &[u8], out: &mut Vec<ChatChunk>) -> Result<()> {
        if kind == "error" {
            return Err(provider_error(data));
        }
        if kind == "message-start" {
            let s: WireStart = parse_json(NAME, data)?;
            self.meta.id = s.id.unwrap_or_default().into();
            self.emit(
                Delta {
                    role: Some("assistant".to_owned()),
                    ..Default::default()
                },
                out,
            );
            return Ok(());
        }
        if !matches!(
            kind,
            "content-start"
                | "content-delta"
                | "tool-plan-delta"
                | "tool-call-start"
                | "tool-call-delta"
                | "tool-call-end"
                | "message-end"
        ) {
            return Ok(()); // citation-start/end, content-end, debug, later additions
        }
        let ev: WireEvent = parse_json(NAME, data)?;
        let index = ev.index.unwrap_or(0);
        let Some(d) = ev.delta else {
            if kind == "tool-call-end" {
                self.on_tool_end(index, out);
            }
            return Ok(());
        };
        if kind == "message-end" {
            return self.on_message_end(d, data, out);
        }
        let msg = d.message;
        match kind {
            "content-start" | "content-delta" => {
                let c = msg.and_then(|m| m.content);
                let (text, thinking) =
                    c.map_or((None, None), |c| (non_empty(c.text), non_empty(c.thinking)));
                if text.is_some() || thinking.is_some() {
                    self.emit(
                        Delta {
                            content: text,
                            reasoning_content: thinking,
                            ..Default::default()
                        },
                        out,
                    );
                }
            }
            "tool-plan-delta" => {
                if let Some(plan) = non_empty(msg.and_then(|m| m.tool_plan)) {
                    self.emit(
                        Delta {
                            reasoning_content: Some(plan),
                            ..Default::default()
                        },
                        out,
                    );
                }
            }
            "tool-call-start" => {
                let call = msg.and_then(|m| m.tool_calls);
                let (id, f) = call.map_or((None, None), |c| (c.id, c.function));
                let (name, args) = f.map_or((None, None), |f| (f.name, non_empty(f.arguments)));
                let n = self.tools.last().map_or(0, |t| t.1 + 1);
                self.tools.push((index, n, args.is_some()));
                let id = Some(id.unwrap_or_default());
                self.emit(
                    tool_delta(
                        n,
                        id,
                        Some(name.unwrap_or_default()),
                        args.unwrap_or_default(),
                    ),
                    out,
                );
            }
            "tool-call-delta" => {
                let f = msg.and_then(|m| m.tool_calls).and_then(|c| c.function);
                if let Some(args) = non_empty(f.and_then(|f| f.arguments)) {
                    if let Some(t) = self.tool_mut(index) {
                        t.2 = true;
                        let n = t.1;
                        self.emit(tool_delta(n, None, None, args), out);
                    }
                }
            }
            "tool-call-end" => self.on_tool_end(index, out),
            _ => {}
        }
        Ok(())
    }

    fn on_tool_end(&mut self, index: u32, out: &mut Vec<ChatChunk>) {
        if let Some((_, n, false)) = self.tool_mut(index).copied() {
            self.emit(tool_delta(n, None, None, "{}".to_owned()), out);
        }
    }

    fn on_message_end(
        &mut self,
        d: WireDelta,
        data: &[u8],
        out: &mut Vec<ChatChunk>,
    ) -> Result<()> {
        self.done = true;
        if d.finish_reason.as_deref() == Some("ERROR") {
            return Err(Error::Provider {
                message: d
                    .error
                    .unwrap_or_else(|| "generation failed (finish_reason ERROR)".to_owned()),
                kind: None,
                code: Some("ERROR".to_owned()),
                param: None,
                body: String::from_utf8_lossy(data).into_owned(),
            });
        }
        let choices = match d.finish_reason {
            Some(native) => vec![finish_choice(
                0,
                Delta::default(),
                map_finish_reason(&native),
                native,
            )],
            None => Vec::new(),
        };
        let mut chunk = self.meta.chunk(choices);
        chunk.usage = d.usage.map(|u| Box::new(convert_usage(u)));
        out.push(chunk);
        Ok(())
    }
}

impl Dialect for Cohere {
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
        let kind = event_kind(NAME, frame.event, data)?;
        self.on_event(&kind, data, out)
    }

    fn is_done(&self) -> bool {
        self.done
    }
}
