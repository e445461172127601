//! Bytes in, normalised chunks out: the framing layer and a dialect, composed.

use crate::chunk::ChatChunk;
use crate::dialect::{self, Dialect, Frame, Framing};
use crate::error::Result;
use crate::ndjson::NdjsonDecoder;
use crate::sse::{SseDecoder, DEFAULT_MAX_EVENT_SIZE};

enum Framer {
    Sse(SseDecoder),
    Ndjson(NdjsonDecoder),
}

pub struct ChunkDecoder {
    framer: Framer,
    dialect: Box<dyn Dialect>,
}

impl ChunkDecoder {
    pub fn new(dialect: &str) -> Result<Self> {
        Self::with_max_event_size(dialect, DEFAULT_MAX_EVENT_SIZE)
    }

    pub fn with_max_event_size(dialect: &str, max_event_size: usize) -> Result<Self> {
        let dialect = dialect::by_name(dialect)?;
        let framer = match dialect.framing() {
            Framing::Sse => Framer::Sse(SseDecoder::with_max_event_size(max_event_size)),
            Framing::Ndjson => Framer::Ndjson(NdjsonDecoder::with_max_line_size(max_event_size)),
        };
        Ok(ChunkDecoder { framer, dialect })
    }

    pub fn dialect_name(&self) -> &'static str {
        self.dialect.name()
    }

    /// Decode `input`, appending every chunk it completes to `out`. On error, chunks completed
    /// before it are already in `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<ChatChunk>) -> Result<()> {
        let dialect = &mut self.dialect;
        match &mut self.framer {
            Framer::Sse(d) => d.feed(input, |ev| dialect.on_frame(Frame { event: ev.event, data: ev.data }, out)),
            Framer::Ndjson(d) => d.feed(input, |line| dialect.on_frame(Frame { event: b"", data: line }, out)),
        }
    }

    /// End of stream. Errors with [`crate::Error::Incomplete`] if the provider's terminator never came.
    pub fn finish(&mut self, out: &mut Vec<ChatChunk>) -> Result<()> {
        let dialect = &mut self.dialect;
        match &mut self.framer {
            Framer::Sse(d) => d.finish()?,
            Framer::Ndjson(d) => d.finish(|line| dialect.on_frame(Frame { event: b"", data: line }, out))?,
        }
        self.dialect.finish(out)
    }

    pub fn is_done(&self) -> bool {
        self.dialect.is_done()
    }
}
