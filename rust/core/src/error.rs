//! The one error type of the core. Every binding maps each variant to exactly one exception class.

use std::fmt;

/// Everything that can go wrong while decoding a stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// One SSE event (its data plus the line being read), NDJSON line or eventstream message grew
    /// past the limit. Raised instead of buffering without bound.
    EventTooLarge { limit: usize },
    /// A frame's payload is not the JSON the dialect expects.
    InvalidJson {
        dialect: &'static str,
        message: String,
        payload: String,
    },
    /// The binary framing is corrupt (a CRC mismatch, an impossible length, a malformed header):
    /// the bytes are not the stream they claim to be, and no later frame boundary can be trusted.
    InvalidFrame {
        framing: &'static str,
        message: String,
    },
    /// The provider reported an error inside the stream (an `error` event or an `{"error": …}` payload).
    Provider {
        message: String,
        kind: Option<String>,
        code: Option<String>,
        param: Option<String>,
        /// The raw error payload as sent, for callers that need provider-specific detail.
        body: String,
    },
    /// The stream ended before the dialect's terminator (`[DONE]`, `message_stop`, …).
    Incomplete { dialect: &'static str },
    /// No dialect of that name.
    UnknownDialect(String),
    /// Bytes were fed after a fatal error; the decoder refuses to guess at a resynchronisation.
    Poisoned,
}

impl Error {
    /// A short stable name of the variant, used by bindings and in logs.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Error::EventTooLarge { .. } => "event_too_large",
            Error::InvalidJson { .. } => "invalid_json",
            Error::InvalidFrame { .. } => "invalid_frame",
            Error::Provider { .. } => "provider_error",
            Error::Incomplete { .. } => "incomplete",
            Error::UnknownDialect(_) => "unknown_dialect",
            Error::Poisoned => "poisoned",
        }
    }
}

/// Keep at most this much of an offending payload in an error message.
pub(crate) const PAYLOAD_EXCERPT: usize = 512;

pub(crate) fn excerpt(bytes: &[u8]) -> String {
    let cut = bytes.len().min(PAYLOAD_EXCERPT);
    let mut s = String::from_utf8_lossy(&bytes[..cut]).into_owned();
    if cut < bytes.len() {
        s.push('…');
    }
    s
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::EventTooLarge { limit } => {
                write!(f, "stream event exceeds the limit of {limit} bytes")
            }
            Error::InvalidJson {
                dialect,
                message,
                payload,
            } => {
                write!(
                    f,
                    "{dialect}: invalid JSON in stream ({message}): {payload}"
                )
            }
            Error::InvalidFrame { framing, message } => {
                write!(f, "{framing}: invalid frame ({message})")
            }
            Error::Provider {
                message,
                kind,
                code,
                ..
            } => {
                write!(f, "provider error")?;
                if let Some(k) = kind {
                    write!(f, " [{k}]")?;
                }
                if let Some(c) = code {
                    write!(f, " ({c})")?;
                }
                write!(f, ": {message}")
            }
            Error::Incomplete { dialect } => {
                write!(
                    f,
                    "{dialect}: stream ended before its terminator (truncated response)"
                )
            }
            Error::UnknownDialect(name) => write!(f, "unknown dialect {name:?}"),
            Error::Poisoned => write!(f, "decoder already failed; create a new one"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
