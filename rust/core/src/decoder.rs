//! Bytes in, normalised chunks out: the framing layer and a dialect, composed.

use memchr::memchr;

use crate::chunk::ChatChunk;
use crate::dialect::{self, Dialect, Frame, Framing};
use crate::error::{Error, Result};
use crate::eventstream::{self, EventStreamDecoder};
use crate::json_array::{JsonArrayDecoder, ValueScanner};
use crate::ndjson::NdjsonDecoder;
use crate::sse::{SseDecoder, DEFAULT_MAX_EVENT_SIZE};

enum Framer {
    Sse(SseDecoder),
    Ndjson(NdjsonDecoder),
    JsonArray(JsonArrayDecoder),
    /// [`Framing::SseOrJson`] before the first non-blank byte; the blanks seen so far are held.
    Sniff(Vec<u8>),
    SseRaw(SseRawJson),
    EventStream(EventStreamDecoder),
}

pub struct ChunkDecoder {
    framer: Framer,
    dialect: Box<dyn Dialect>,
    max_event_size: usize,
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
            Framing::JsonArray => {
                Framer::JsonArray(JsonArrayDecoder::with_max_size(max_event_size))
            }
            Framing::SseOrJson => Framer::Sniff(Vec::new()),
            Framing::EventStream => {
                Framer::EventStream(EventStreamDecoder::with_max_message_size(max_event_size))
            }
        };
        Ok(ChunkDecoder {
            framer,
            dialect,
            max_event_size,
        })
    }

    pub fn dialect_name(&self) -> &'static str {
        self.dialect.name()
    }

    /// Decode `input`, appending every chunk it completes to `out`. On error, chunks completed
    /// before it are already in `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<ChatChunk>) -> Result<()> {
        if let Framer::Sniff(held) = &mut self.framer {
            let Some(p) = input.iter().position(|b| !b.is_ascii_whitespace()) else {
                if held.len() + input.len() > self.max_event_size {
                    return Err(Error::EventTooLarge {
                        limit: self.max_event_size,
                    });
                }
                held.extend_from_slice(input);
                return Ok(());
            };
            let held = std::mem::take(held);
            let max = self.max_event_size;
            // A JSON body (no `alt=sse`) opens with `[`, or `{` when it is one object (an error).
            self.framer = if matches!(input[p], b'[' | b'{') {
                Framer::JsonArray(JsonArrayDecoder::with_max_size(max))
            } else {
                Framer::SseRaw(SseRawJson::new(max))
            };
            if !held.is_empty() {
                self.feed(&held, out)?;
            }
        }
        let dialect = &mut self.dialect;
        let mut on_frame = |f: Frame<'_>| dialect.on_frame(f, out);
        match &mut self.framer {
            Framer::Sse(d) => d.feed(input, |ev| {
                on_frame(Frame {
                    event: ev.event,
                    data: ev.data,
                })
            }),
            Framer::Ndjson(d) => d.feed(input, |line| {
                on_frame(Frame {
                    event: b"",
                    data: line,
                })
            }),
            Framer::JsonArray(d) => d.feed(input, |el| {
                on_frame(Frame {
                    event: b"",
                    data: el,
                })
            }),
            Framer::SseRaw(d) => d.feed(input, &mut on_frame),
            Framer::EventStream(d) => d.feed(input, |m| match eventstream::event_frame(&m)? {
                Some(f) => on_frame(f),
                None => Ok(()),
            }),
            Framer::Sniff(_) => unreachable!("decided above"),
        }
    }

    /// End of stream. Errors with [`crate::Error::Incomplete`] if the provider's terminator never came.
    pub fn finish(&mut self, out: &mut Vec<ChatChunk>) -> Result<()> {
        let dialect = &mut self.dialect;
        match &mut self.framer {
            Framer::Sse(d) => d.finish()?,
            Framer::Ndjson(d) => d.finish(|line| {
                dialect.on_frame(
                    Frame {
                        event: b"",
                        data: line,
                    },
                    out,
                )
            })?,
            Framer::JsonArray(d) => d.finish()?,
            Framer::SseRaw(d) => d.finish(&mut |f: Frame<'_>| dialect.on_frame(f, out))?,
            Framer::EventStream(d) => {
                // Part of a message came and the rest never will: the stream was cut, even when
                // the dialect saw its terminator (Bedrock's usage comes after it). The dialect
                // still pushes what it holds; the cut is the error reported.
                if d.finish()? {
                    let _ = dialect.finish(out);
                    return Err(Error::Incomplete {
                        dialect: dialect.name(),
                    });
                }
            }
            Framer::Sniff(_) => {}
        }
        self.dialect.finish(out)
    }

    pub fn is_done(&self) -> bool {
        self.dialect.is_done()
    }
}

/// SSE as Google's clients read it (python-genai goes line by line):
/// - a line opening with `{` starts a bare JSON value, delivered as a frame of its own: Google
///   sends a mid-stream error that way, without `data:`. WHATWG SSE would ignore those lines as
///   unknown fields. The SSE decoder is fed whole lines around a bare value, so its state stays exact;
/// - an event whose last line is complete but lacks the blank line after it is still delivered
///   at the end of the stream (Google's test data ends so), where WHATWG would discard it.
struct SseRawJson {
    sse: SseDecoder,
    /// Inside a bare value.
    raw: Option<ValueScanner>,
    /// The bytes of a bare value that began in an earlier feed.
    buf: Vec<u8>,
    /// Skipping the rest of the line a bare value ended on.
    skip_line: bool,
    /// The last byte fed was LF (or nothing was fed yet).
    at_line_start: bool,
    /// The last byte of the stream so far.
    last: u8,
    max: usize,
    failed: bool,
}

/// The offset of the first `{` that opens a line after an LF in `input`.
fn find_bare_value(input: &[u8]) -> Option<usize> {
    let mut p = 0;
    while let Some(i) = memchr(b'\n', &input[p..]) {
        p += i + 1;
        if input.get(p) == Some(&b'{') {
            return Some(p);
        }
    }
    None
}

impl SseRawJson {
    fn new(max: usize) -> Self {
        SseRawJson {
            sse: SseDecoder::with_max_event_size(max),
            raw: None,
            buf: Vec::new(),
            skip_line: false,
            at_line_start: true,
            last: 0,
            max,
            failed: false,
        }
    }

    fn feed<F: FnMut(Frame<'_>) -> Result<()>>(
        &mut self,
        input: &[u8],
        on_frame: &mut F,
    ) -> Result<()> {
        if self.failed {
            return Err(Error::Poisoned);
        }
        if let Some(&b) = input.last() {
            self.last = b;
        }
        let r = self.feed_inner(input, on_frame);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn feed_inner<F: FnMut(Frame<'_>) -> Result<()>>(
        &mut self,
        mut input: &[u8],
        on_frame: &mut F,
    ) -> Result<()> {
        while !input.is_empty() {
            if let Some(scanner) = &mut self.raw {
                let Some(n) = scanner.scan(input) else {
                    self.check(self.buf.len() + input.len())?;
                    self.buf.extend_from_slice(input);
                    return Ok(());
                };
                self.check(self.buf.len() + n)?;
                self.raw = None;
                self.skip_line = true;
                let r = if self.buf.is_empty() {
                    on_frame(Frame {
                        event: b"",
                        data: &input[..n],
                    })
                } else {
                    self.buf.extend_from_slice(&input[..n]);
                    let buf = std::mem::take(&mut self.buf);
                    let r = on_frame(Frame {
                        event: b"",
                        data: &buf,
                    });
                    self.buf = buf;
                    self.buf.clear();
                    r
                };
                r?;
                input = &input[n..];
                continue;
            }
            if self.skip_line {
                let Some(i) = memchr(b'\n', input) else {
                    return Ok(());
                };
                self.skip_line = false;
                self.at_line_start = true;
                input = &input[i + 1..];
                continue;
            }
            let at = if self.at_line_start && input[0] == b'{' {
                Some(0)
            } else {
                find_bare_value(input)
            };
            let sse_part = &input[..at.unwrap_or(input.len())];
            if !sse_part.is_empty() {
                self.sse.feed(sse_part, |ev| {
                    on_frame(Frame {
                        event: ev.event,
                        data: ev.data,
                    })
                })?;
                self.at_line_start = sse_part.last() == Some(&b'\n');
            }
            match at {
                Some(k) => {
                    self.raw = Some(ValueScanner::default());
                    input = &input[k..];
                }
                None => return Ok(()),
            }
        }
        Ok(())
    }

    fn finish<F: FnMut(Frame<'_>) -> Result<()>>(&mut self, on_frame: &mut F) -> Result<()> {
        if self.failed {
            return Err(Error::Poisoned);
        }
        // Supply the missing blank line after a complete last line (an LF after a trailing CR
        // would only complete its CRLF). A line cut short stays discarded.
        let blank: &[u8] = match self.last {
            _ if self.raw.is_some() || self.skip_line => b"",
            b'\n' => b"\n",
            b'\r' => b"\n\n",
            _ => b"",
        };
        self.raw = None;
        self.buf.clear();
        let r = self.sse.feed(blank, |ev| {
            on_frame(Frame {
                event: ev.event,
                data: ev.data,
            })
        });
        self.sse.finish()?;
        r
    }

    fn check(&self, len: usize) -> Result<()> {
        if len > self.max {
            Err(Error::EventTooLarge { limit: self.max })
        } else {
            Ok(())
        }
    }
}
