//! polystream-core: a sans-I/O streaming core for LLM provider streams.
//!
//! Bytes go in, events and chunks come out; no sockets, no async, no bindings. One state machine
//! serves the Python package, the proxy and the C ABI alike.
//!
//! - [`sse::SseDecoder`]: WHATWG-exact Server-Sent Events framing.
//! - [`ndjson::NdjsonDecoder`]: newline-delimited JSON framing.
//! - [`eventstream::EventStreamDecoder`]: AWS eventstream binary framing (Bedrock).
//! - [`json_array::JsonArrayDecoder`]: a streamed JSON array, element by element (Gemini without SSE).
//! - [`dialect`]: each provider's wire format → normalised [`chunk::ChatChunk`].
//! - [`decoder::ChunkDecoder`]: framing + dialect.
//! - [`accumulator::Accumulator`]: chunks → final [`chunk::ChatCompletion`].
//! - [`sse_writer::SseWriter`]: chunks → SSE events, as an OpenAI-compatible server sends them.
#![forbid(unsafe_code)]

pub mod accumulator;
pub mod chunk;
pub mod chunk_parser;
pub mod decoder;
pub mod dialect;
pub mod error;
pub mod eventstream;
pub mod json_array;
pub mod ndjson;
pub mod responses;
pub mod shared_str;
pub mod sse;
pub mod sse_writer;

pub use accumulator::Accumulator;
pub use chunk::{ChatChunk, ChatCompletion, SharedStr};
pub use decoder::ChunkDecoder;
pub use error::{Error, Result};
pub use responses::{ResponseEvent, ResponsesBuilder};
pub use sse::{Event, OwnedEvent, SseDecoder, DEFAULT_MAX_EVENT_SIZE};
