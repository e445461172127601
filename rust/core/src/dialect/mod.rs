//! Wire dialects: each turns one provider's frames (SSE events, NDJSON lines, JSON-array
//! elements or eventstream events) into normalised [`ChatChunk`]s. A new wire format is one module here plus its fixtures.
//!
//! Every dialect maps its provider's finish reason with one function (`map_finish_reason`) onto
//! OpenAI's values and keeps the raw value in `native_finish_reason`.

use std::borrow::Cow;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::chunk::{
    ChatChunk, ChunkChoice, CompletionTokensDetails, Delta, FunctionDelta, Logprobs,
    PromptTokensDetails, SharedStr, ToolCallDelta, Usage,
};
use crate::error::{Error, Result};

pub mod anthropic;
pub mod bedrock;
pub mod cohere;
pub mod gemini;
pub mod ollama;
pub mod openai_chat;
pub mod openai_responses;

/// How a dialect's bytes are framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Sse,
    Ndjson,
    /// One streamed JSON array whose elements are the frames ([`crate::json_array`]).
    JsonArray,
    /// Told apart by the first non-blank byte: `[` or `{` is a JSON body, anything else SSE, in
    /// which a bare JSON object at the start of a line is a frame too (Gemini sends both bodies).
    SseOrJson,
    /// AWS eventstream binary messages ([`crate::eventstream`]); an `event` message is a frame
    /// named by its `:event-type`, an `exception` or `error` message the provider's error.
    EventStream,
}

/// One frame: an SSE event (`event` empty for the default type), an NDJSON line or a JSON-array
/// element (`event` empty), or an eventstream event (`event` its `:event-type`, `data` its payload).
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub event: &'a [u8],
    pub data: &'a [u8],
}

pub trait Dialect: Send + Sync {
    fn name(&self) -> &'static str;
    fn framing(&self) -> Framing;
    /// Decode one frame, pushing zero or more chunks.
    fn on_frame(&mut self, frame: Frame<'_>, out: &mut Vec<ChatChunk>) -> Result<()>;
    /// End of stream: push anything held back, and report [`Error::Incomplete`] when the stream
    /// stopped before the provider's terminator. By default nothing is held back and only the
    /// terminator proves the answer whole; dialects that accept other proof override this.
    fn finish(&mut self, _out: &mut Vec<ChatChunk>) -> Result<()> {
        ended(self.is_done(), self.name())
    }
    /// The provider's terminator has been seen.
    fn is_done(&self) -> bool;
}

/// Every dialect name [`by_name`] accepts (aliases aside).
pub const NAMES: &[&str] = &[
    "openai_chat",
    "openai_responses",
    "anthropic",
    "gemini",
    "cohere",
    "ollama",
    "bedrock_converse",
];

pub fn by_name(name: &str) -> Result<Box<dyn Dialect>> {
    match name {
        "openai_chat" | "openai" => Ok(Box::new(openai_chat::OpenAiChat::default())),
        "openai_responses" => Ok(Box::new(openai_responses::OpenAiResponses::default())),
        "anthropic" => Ok(Box::new(anthropic::Anthropic::default())),
        "gemini" => Ok(Box::new(gemini::Gemini::default())),
        "cohere" => Ok(Box::new(cohere::Cohere::default())),
        "ollama" => Ok(Box::new(ollama::Ollama::default())),
        "bedrock_converse" | "bedrock" => Ok(Box::new(bedrock::Bedrock::default())),
        _ => Err(Error::UnknownDialect(name.to_owned())),
    }
}

/// Parse a JSON payload, mapping failure to the dialect's typed error.
pub(crate) fn parse_json<'a, T: serde::Deserialize<'a>>(
    dialect: &'static str,
    data: &'a [u8],
) -> Result<T> {
    parse_json_text(dialect, json_text(dialect, data)?)
}

/// Validate a payload's UTF-8 once for the whole payload: parsing from `&str` then skips
/// serde_json's per-string validation (one `from_utf8` call per key and value, the largest cost measured).
pub(crate) fn json_text<'a>(dialect: &'static str, data: &'a [u8]) -> Result<&'a str> {
    match simdutf8::basic::from_utf8(data) {
        Ok(text) => Ok(text),
        // The fast check says only "invalid"; std says where, for the error message.
        Err(_) => std::str::from_utf8(data).map_err(|e| invalid_json(dialect, data, e.to_string())),
    }
}

/// [`parse_json`] for a payload already through [`json_text`].
pub(crate) fn parse_json_text<'a, T: serde::Deserialize<'a>>(
    dialect: &'static str,
    text: &'a str,
) -> Result<T> {
    serde_json::from_str(text).map_err(|e| invalid_json(dialect, text.as_bytes(), e.to_string()))
}

fn invalid_json(dialect: &'static str, data: &[u8], message: String) -> Error {
    Error::InvalidJson {
        dialect,
        message,
        payload: crate::error::excerpt(data),
    }
}

/// Build a provider error from an error payload: `{"error": {...}}`, `{"error": "text"}` or the
/// error object itself. Keeps the raw body.
pub(crate) fn provider_error(payload: &[u8]) -> Error {
    let body = String::from_utf8_lossy(payload).into_owned();
    let v: serde_json::Value = serde_json::from_slice(payload).unwrap_or(serde_json::Value::Null);
    provider_error_from_value(&v, body)
}

pub(crate) fn provider_error_from_value(v: &serde_json::Value, body: String) -> Error {
    let obj = match v.get("error") {
        Some(e) => e,
        None => v,
    };
    let text = |k: &str| -> Option<String> {
        match obj.get(k)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        }
    };
    let message = match obj {
        serde_json::Value::String(s) => s.clone(),
        _ => text("message").unwrap_or_else(|| body.clone()),
    };
    // Google puts the kind in `status` (`UNAVAILABLE`, `CANCELLED`) beside a numeric `code`.
    let kind = text("type").or_else(|| text("status"));
    Error::Provider {
        message,
        kind,
        code: text("code"),
        param: text("param"),
        body,
    }
}

/// What every chunk of one stream repeats.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meta {
    pub id: SharedStr,
    pub model: SharedStr,
    pub created: i64,
}

impl Meta {
    pub(crate) fn chunk(&self, choices: Vec<ChunkChoice>) -> ChatChunk {
        ChatChunk {
            id: self.id.clone(),
            model: self.model.clone(),
            created: self.created,
            choices,
            ..Default::default()
        }
    }

    /// A chunk with one choice carrying `delta`.
    pub(crate) fn delta(&self, index: u32, delta: Delta) -> ChatChunk {
        self.chunk(vec![ChunkChoice {
            index,
            delta,
            ..Default::default()
        }])
    }
}

/// The frames every OpenAI-style SSE dialect treats alike. Returns the payload to decode, or None
/// when the frame is spent: blank, after the terminator, or `[DONE]` itself (which sets `done`).
/// An `event: error` frame is the provider's error.
pub(crate) fn sse_payload<'a>(frame: &Frame<'a>, done: &mut bool) -> Result<Option<&'a [u8]>> {
    let data = frame.data.trim_ascii();
    if *done || data.is_empty() {
        return Ok(None);
    }
    if frame.event == b"error" {
        return Err(provider_error(data));
    }
    if data == b"[DONE]" {
        *done = true;
        return Ok(None);
    }
    Ok(Some(data))
}

/// What a named-event dialect's frame is: the SSE event name, or for an unnamed event the JSON
/// `type` of its payload (Cohere and the Responses API send both forms).
pub(crate) fn event_kind<'a>(
    dialect: &'static str,
    event: &'a [u8],
    data: &'a [u8],
) -> Result<Cow<'a, str>> {
    if !event.is_empty() {
        return Ok(Cow::Borrowed(std::str::from_utf8(event).unwrap_or("")));
    }
    #[derive(serde::Deserialize)]
    struct WireType<'a> {
        #[serde(rename = "type", borrow, default)]
        kind: Option<Cow<'a, str>>,
    }
    let t: WireType<'a> = parse_json(dialect, data)?;
    Ok(t.kind.unwrap_or_default())
}

/// `finish` for every dialect: fine when the stream proved itself complete, else truncated.
pub(crate) fn ended(complete: bool, dialect: &'static str) -> Result<()> {
    if complete {
        Ok(())
    } else {
        Err(Error::Incomplete { dialect })
    }
}

pub(crate) fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// A delta carrying one tool-call fragment (`id` present only on a call's first fragment).
pub(crate) fn tool_delta(
    index: u32,
    id: Option<String>,
    name: Option<String>,
    arguments: String,
) -> Delta {
    let kind = id.as_ref().map(|_| "function".to_owned());
    Delta {
        tool_calls: Some(vec![ToolCallDelta {
            index,
            id,
            kind,
            function: Some(FunctionDelta {
                name,
                arguments: Some(arguments),
            }),
        }]),
        ..Default::default()
    }
}

/// A finish chunk's choice: the mapped reason plus the provider's own.
pub(crate) fn finish_choice(index: u32, delta: Delta, reason: &str, native: String) -> ChunkChoice {
    ChunkChoice {
        index,
        delta,
        finish_reason: Some(reason.to_owned()),
        native_finish_reason: Some(native),
        ..Default::default()
    }
}

/// Usage with `total_tokens` defaulting to prompt + completion.
pub(crate) fn usage(prompt: u64, completion: u64, total: Option<u64>) -> Usage {
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: total.unwrap_or(prompt + completion),
        ..Default::default()
    }
}

pub(crate) fn with_cached(mut u: Usage, cached: Option<u64>, cache_creation: Option<u64>) -> Usage {
    if cached.is_some() || cache_creation.is_some() {
        let d = u
            .prompt_tokens_details
            .get_or_insert_with(PromptTokensDetails::default);
        d.cached_tokens = cached;
        d.cache_creation_tokens = cache_creation;
    }
    u
}

/// Usage from an API whose input count leaves out the cache reads and writes (Anthropic's
/// `input_tokens`, Bedrock's `inputTokens`), where OpenAI's `prompt_tokens` include them.
pub(crate) fn usage_beside_cache(
    input: Option<u64>,
    output: u64,
    read: Option<u64>,
    write: Option<u64>,
) -> Usage {
    let prompt = input.unwrap_or(0) + read.unwrap_or(0) + write.unwrap_or(0);
    with_cached(usage(prompt, output, None), read, write)
}

pub(crate) fn with_reasoning(mut u: Usage, reasoning: Option<u64>) -> Usage {
    if reasoning.is_some() {
        u.completion_tokens_details = Some(CompletionTokensDetails {
            reasoning_tokens: reasoning,
            ..Default::default()
        });
    }
    u
}

/// One token of OpenAI's chat logprobs, `{token, logprob, bytes}`: `bytes` are the provider's
/// when it sends them, else the token's own UTF-8 bytes.
fn token_logprob(token: String, logprob: f64, bytes: Option<Vec<u8>>) -> Map<String, Value> {
    let bytes = bytes.unwrap_or_else(|| token.as_bytes().to_vec());
    let mut m = Map::new();
    m.insert("bytes".to_owned(), bytes.into());
    m.insert("logprob".to_owned(), logprob.into());
    m.insert("token".to_owned(), token.into());
    m
}

/// An alternative in `top_logprobs`.
pub(crate) fn top_logprob(token: String, logprob: f64, bytes: Option<Vec<u8>>) -> Value {
    Value::Object(token_logprob(token, logprob, bytes))
}

/// A `logprobs.content` entry: the chosen token and its alternatives (`[]` when none were asked).
pub(crate) fn logprob_entry(
    token: String,
    logprob: f64,
    bytes: Option<Vec<u8>>,
    top_logprobs: Vec<Value>,
) -> Value {
    let mut m = token_logprob(token, logprob, bytes);
    m.insert("top_logprobs".to_owned(), Value::Array(top_logprobs));
    Value::Object(m)
}

/// A choice's `logprobs` from its content entries; None when there are none.
pub(crate) fn content_logprobs(entries: Vec<Value>) -> Option<Logprobs> {
    (!entries.is_empty()).then_some(Logprobs {
        content: Some(entries),
        refusal: None,
    })
}

/// Tool-call arguments from a provider that sends them as a JSON value (Gemini, Ollama): the
/// value's own text with the whitespace between tokens dropped, so key order and number spelling
/// stay as sent. A JSON string is taken as the arguments text itself; absent or null is `{}`.
pub(crate) fn arguments_text(raw: Option<&RawValue>) -> String {
    let text = raw.map_or("null", RawValue::get);
    if text == "null" {
        return "{}".to_owned();
    }
    if text.starts_with('"') {
        if let Ok(s) = serde_json::from_str::<String>(text) {
            return s;
        }
    }
    compact_json(text)
}

/// Drop whitespace outside strings (O(n), one pass).
pub(crate) fn compact_json(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_keep_order_and_spelling() {
        let raw: Box<RawValue> =
            serde_json::from_str("{\n  \"z\": 1.0,\n  \"a\": \"x y\\\" \"\n}").unwrap();
        assert_eq!(arguments_text(Some(&raw)), "{\"z\":1.0,\"a\":\"x y\\\" \"}");
        let s: Box<RawValue> = serde_json::from_str("\"{\\\"a\\\": 1}\"").unwrap();
        assert_eq!(arguments_text(Some(&s)), "{\"a\": 1}");
        assert_eq!(arguments_text(None), "{}");
    }

    #[test]
    fn every_name_resolves() {
        for n in NAMES {
            assert_eq!(by_name(n).unwrap().name(), *n);
        }
        assert!(matches!(by_name("nope"), Err(Error::UnknownDialect(_))));
    }
}
