//! Wire dialects: each turns one provider's frames (SSE events or NDJSON lines) into normalised
//! [`ChatChunk`]s. A new wire format is one module here plus its fixtures.

use crate::chunk::ChatChunk;
use crate::error::{Error, Result};

pub mod openai_chat;

/// How a dialect's bytes are framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Sse,
    Ndjson,
}

/// One frame: an SSE event (`event` empty for the default type) or an NDJSON line (`event` empty).
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
    /// stopped before the provider's terminator.
    fn finish(&mut self, out: &mut Vec<ChatChunk>) -> Result<()>;
    /// The provider's terminator has been seen.
    fn is_done(&self) -> bool;
}

/// Every dialect name [`by_name`] accepts.
pub const NAMES: &[&str] = &["openai_chat"];

pub fn by_name(name: &str) -> Result<Box<dyn Dialect>> {
    match name {
        "openai_chat" | "openai" => Ok(Box::new(openai_chat::OpenAiChat::default())),
        _ => Err(Error::UnknownDialect(name.to_owned())),
    }
}

/// Parse a JSON payload, mapping failure to the dialect's typed error.
pub(crate) fn parse_json<'a, T: serde::Deserialize<'a>>(dialect: &'static str, data: &'a [u8]) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| Error::InvalidJson {
        dialect,
        message: e.to_string(),
        payload: crate::error::excerpt(data),
    })
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
    Error::Provider { message, kind: text("type"), code: text("code"), param: text("param"), body }
}
