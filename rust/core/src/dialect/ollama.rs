//! Ollama's native `/api/chat` stream: NDJSON, one object per line, ending with `"done": true`.
//!
//! - `message.content` → `content` (`response`, from `/api/generate`, too); `message.thinking` →
//!   `reasoning_content`.
//! - `message.tool_calls`: each call arrives whole, its `arguments` a JSON object; it becomes a
//!   tool call whose arguments are that object's text (compact, key order kept), indexed in order
//!   of arrival, with id `call_<n>` when Ollama sent none.
//! - `logprobs` (asked for with `logprobs: true`, alternatives with `top_logprobs`): already in
//!   OpenAI's entry shape, one per token of the line → `logprobs.content`, in order (`bytes`
//!   filled from the token when absent). Ollama also sends them on lines whose text its parsers
//!   still hold back (a tool call being read): such a line is a chunk with an empty delta.
//! - `done: true` → the mapped `done_reason` (`stop` becomes `tool_calls` after tool calls: Ollama
//!   has no such reason) and usage from `prompt_eval_count` / `eval_count`.
//! - `{"error": …}` → [`Error::Provider`].
//!
//! Ollama sends no id; `created` comes from the first line's `created_at`.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{arguments_text, parse_json, provider_error, usage, Dialect, Frame, Framing, Meta};
use super::{content_logprobs, logprob_entry, non_empty, top_logprob};
use crate::chunk::{ChatChunk, ChunkChoice, Delta, FunctionDelta, Logprobs, ToolCallDelta};
use crate::error::Result;

const NAME: &str = "ollama";

/// Ollama `done_reason` → OpenAI `finish_reason`.
pub fn map_finish_reason(native: &str) -> &'static str {
    match native {
        "length" => "length",
        // stop, and load / unload replies.
        _ => "stop",
    }
}

#[derive(Debug, Default)]
pub struct Ollama {
    meta: Meta,
    started: bool,
    tools: u32,
    done: bool,
}

#[derive(Deserialize)]
struct WireLine<'a> {
    #[serde(default)]
    model: Option<String>,
    #[serde(borrow, default)]
    created_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<WireMessage<'a>>,
    #[serde(default)]
    response: Option<String>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    #[serde(default)]
    logprobs: Option<Vec<WireLogprob>>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// A token (`api.Logprob`), or one of its alternatives (`api.TokenLogprob`: no `top_logprobs`).
#[derive(Deserialize)]
struct WireLogprob {
    #[serde(default)]
    token: String,
    #[serde(default)]
    logprob: f64,
    #[serde(default)]
    bytes: Option<Vec<u8>>,
    #[serde(default)]
    top_logprobs: Vec<WireLogprob>,
}

#[derive(Deserialize)]
struct WireMessage<'a> {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<WireToolCall<'a>>>,
}

#[derive(Deserialize)]
struct WireToolCall<'a> {
    #[serde(default)]
    id: Option<String>,
    #[serde(borrow, default)]
    function: Option<WireFunction<'a>>,
}

#[derive(Deserialize)]
struct WireFunction<'a> {
    #[serde(default)]
    name: Option<String>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

fn convert_logprobs(tokens: Vec<WireLogprob>) -> Option<Logprobs> {
    let entries = tokens
        .into_iter()
        .map(|t| {
            let alternatives = t
                .top_logprobs
                .into_iter()
                .map(|a| top_logprob(a.token, a.logprob, a.bytes))
                .collect();
            logprob_entry(t.token, t.logprob, t.bytes, alternatives)
        })
        .collect();
    content_logprobs(entries)
}

/// Seconds since the epoch of an RFC 3339 time (`2026-07-28T06:38:03.222822Z`, or with an offset).
fn unix_seconds(ts: &str) -> Option<i64> {
    let b = ts.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = b.get(from..from + len)?;
        s.iter()
            .all(u8::is_ascii_digit)
            .then(|| s.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let secs = num(11, 2)? * 3600 + num(14, 2)? * 60 + num(17, 2)?;
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' => 0,
        &sign @ (b'+' | b'-') => {
            let o = num(i + 1, 2)? * 3600 + num(i + 4, 2)? * 60;
            if sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(days * 86_400 + secs - offset)
}

impl Dialect for Ollama {
    fn name(&self) -> &'static str {
        NAME
    }

    fn framing(&self) -> Framing {
        Framing::Ndjson
    }

    fn on_frame(&mut self, frame: Frame<'_>, out: &mut Vec<ChatChunk>) -> Result<()> {
        if self.done {
            return Ok(());
        }
        let line: WireLine<'_> = parse_json(NAME, frame.data)?;
        if line.error.is_some_and(|e| e.get() != "null") {
            return Err(provider_error(frame.data));
        }
        let mut delta = Delta::default();
        if !self.started {
            self.started = true;
            self.meta.model = line.model.unwrap_or_default().into();
            self.meta.created = line
                .created_at
                .as_deref()
                .and_then(unix_seconds)
                .unwrap_or(0);
            delta.role = Some("assistant".to_owned());
        }
        delta.content = non_empty(line.response);
        if let Some(m) = line.message {
            delta.content = non_empty(m.content).or(delta.content);
            delta.reasoning_content = non_empty(m.thinking);
            let calls: Vec<ToolCallDelta> = m
                .tool_calls
                .unwrap_or_default()
                .into_iter()
                .map(|c| {
                    let n = self.tools;
                    self.tools += 1;
                    let f = c.function.unwrap_or(WireFunction {
                        name: None,
                        arguments: None,
                    });
                    ToolCallDelta {
                        index: n,
                        id: Some(non_empty(c.id).unwrap_or_else(|| format!("call_{n}"))),
                        kind: Some("function".to_owned()),
                        function: Some(FunctionDelta {
                            name: Some(f.name.unwrap_or_default()),
                            arguments: Some(arguments_text(f.arguments)),
                        }),
                    }
                })
                .collect();
            if !calls.is_empty() {
                delta.tool_calls = Some(calls);
            }
        }
        let logprobs = line.logprobs.and_then(convert_logprobs);
        if !line.done {
            if delta != Delta::default() || logprobs.is_some() {
                out.push(self.meta.chunk(vec![ChunkChoice {
                    index: 0,
                    delta,
                    logprobs,
                    ..Default::default()
                }]));
            }
            return Ok(());
        }
        self.done = true;
        let reason = match line.done_reason.as_deref().map(map_finish_reason) {
            Some("stop") | None if self.tools > 0 => "tool_calls",
            Some(r) => r,
            None => "stop",
        };
        let choice = ChunkChoice {
            index: 0,
            delta,
            logprobs,
            finish_reason: Some(reason.to_owned()),
            native_finish_reason: line.done_reason,
        };
        let mut chunk = self.meta.chunk(vec![choice]);
        chunk.usage = Some(Box::new(usage(
            line.prompt_eval_count.unwrap_or(0),
            line.eval_count.unwrap_or(0),
            None,
        )));
        out.push(chunk);
        Ok(())
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::unix_seconds;

    #[test]
    fn rfc3339_times() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            unix_seconds("2026-07-28T06:38:03.222822Z"),
            Some(1_785_220_683)
        );
        assert_eq!(
            unix_seconds("2024-02-29T12:00:00.5-07:00"),
            Some(1_709_233_200)
        );
        assert_eq!(unix_seconds("yesterday"), None);
    }
}
