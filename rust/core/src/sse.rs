//! Incremental Server-Sent Events decoder, exactly per WHATWG HTML §9.2.5–9.2.6.
//!
//! Lines and fields are split on raw bytes (CR, LF, `:` and space are ASCII and never occur inside a
//! multi-byte UTF-8 sequence), so only field values are ever decoded, lossily, by the caller that
//! needs text. A line wholly inside one `feed` is never copied: a single-line `data` value is handed
//! out as a slice of the caller's buffer. Work is O(bytes): each byte is scanned once by memchr and
//! carried state is appended to, never rescanned.

use std::borrow::Cow;

use memchr::{memchr, memchr2};

use crate::error::{Error, Result};

/// Default bound on one event (its data plus the line being read): generous for multi-MB base64
/// image payloads, small enough that a hostile stream cannot exhaust memory.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 16 * 1024 * 1024;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];
const BOM_DONE: u8 = u8::MAX;

/// One dispatched event, borrowing from the decoder or the fed bytes. Values are raw bytes;
/// use the `*_str` helpers for text (invalid UTF-8 becomes U+FFFD, as the spec's decoder does).
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// Raw event type; empty means the default type `message`.
    pub event: &'a [u8],
    pub data: &'a [u8],
    /// The persistent last-event-id at dispatch.
    pub id: &'a [u8],
    /// The last valid `retry` of this event's block, if any.
    pub retry: Option<u64>,
    /// Changes whenever `id` changes, so bindings can cache its decoded form.
    pub id_generation: u64,
}

impl<'a> Event<'a> {
    pub fn event_str(&self) -> Cow<'a, str> {
        if self.event.is_empty() {
            Cow::Borrowed("message")
        } else {
            String::from_utf8_lossy(self.event)
        }
    }
    pub fn data_str(&self) -> Cow<'a, str> {
        String::from_utf8_lossy(self.data)
    }
    pub fn id_str(&self) -> Cow<'a, str> {
        String::from_utf8_lossy(self.id)
    }
    pub fn to_owned(&self) -> OwnedEvent {
        OwnedEvent {
            event: self.event_str().into_owned(),
            data: self.data_str().into_owned(),
            id: self.id_str().into_owned(),
            retry: self.retry,
        }
    }
}

/// An event with decoded, owned text (for tests and non-hot callers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedEvent {
    pub event: String,
    pub data: String,
    pub id: String,
    pub retry: Option<u64>,
}

/// The decoder state machine. Feed it bytes split anywhere; it calls back once per event.
#[derive(Debug, Clone)]
pub struct SseDecoder {
    /// The unterminated tail of the previous feed.
    line: Vec<u8>,
    /// The previous feed ended in CR: an LF at the start of the next one completes that CRLF.
    skip_lf: bool,
    /// How many BOM bytes matched at stream start, or BOM_DONE once decided.
    bom: u8,
    /// Data of the current block, joined with LF.
    data: Vec<u8>,
    has_data: bool,
    /// The block's single data value while it still lies inside the current input: (start, end).
    pending: Option<(usize, usize)>,
    event: Vec<u8>,
    id: Vec<u8>,
    id_generation: u64,
    last_event_id: Vec<u8>,
    committed_generation: u64,
    block_retry: Option<u64>,
    reconnection_time: Option<u64>,
    max_event_size: usize,
    failed: bool,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::with_max_event_size(DEFAULT_MAX_EVENT_SIZE)
    }

    pub fn with_max_event_size(max_event_size: usize) -> Self {
        SseDecoder {
            line: Vec::new(),
            skip_lf: false,
            bom: 0,
            data: Vec::new(),
            has_data: false,
            pending: None,
            event: Vec::new(),
            id: Vec::new(),
            id_generation: 0,
            last_event_id: Vec::new(),
            committed_generation: 0,
            block_retry: None,
            reconnection_time: None,
            max_event_size,
            failed: false,
        }
    }

    /// The last event ID string (set on every blank line, spec step 1), for `Last-Event-ID`.
    pub fn last_event_id(&self) -> &[u8] {
        &self.last_event_id
    }

    /// The reconnection time set by the last valid `retry` field, in milliseconds.
    pub fn reconnection_time(&self) -> Option<u64> {
        self.reconnection_time
    }

    pub fn max_event_size(&self) -> usize {
        self.max_event_size
    }

    /// Decode `input`, calling `on_event` for every event it completes.
    ///
    /// An error returned by `on_event` stops decoding and is returned.
    /// On error the decoder is poisoned (later calls return [`Error::Poisoned`]); events completed
    /// before the error have already been delivered.
    pub fn feed<F: FnMut(Event<'_>) -> Result<()>>(
        &mut self,
        input: &[u8],
        mut on_event: F,
    ) -> Result<()> {
        if self.failed {
            return Err(Error::Poisoned);
        }
        let r = self.feed_inner(input, &mut on_event);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn feed_inner<F: FnMut(Event<'_>) -> Result<()>>(
        &mut self,
        mut input: &[u8],
        on_event: &mut F,
    ) -> Result<()> {
        if self.bom != BOM_DONE {
            input = self.strip_bom(input);
        }
        if input.is_empty() {
            return Ok(());
        }
        if self.skip_lf {
            self.skip_lf = false;
            if input[0] == b'\n' {
                input = &input[1..];
            }
        }
        let mut pos = 0;
        if !self.line.is_empty() {
            // Complete the line carried over from the previous feed.
            match memchr2(b'\n', b'\r', input) {
                None => return self.carry(input),
                Some(t) => {
                    self.check_size(self.line.len() + t)?;
                    self.line.extend_from_slice(&input[..t]);
                    let line = std::mem::take(&mut self.line);
                    let r = self.process_line(input, &line, None, on_event);
                    self.line = line;
                    self.line.clear();
                    r?;
                    pos = self.after_terminator(input, t);
                }
            }
        }
        while pos < input.len() {
            // The blank line that ends each event: handled without a SIMD search set up for
            // a terminator at offset 0.
            if matches!(input[pos], b'\n' | b'\r') {
                self.dispatch(input, on_event)?;
                pos = self.after_terminator(input, pos);
                continue;
            }
            match memchr2(b'\n', b'\r', &input[pos..]) {
                None => {
                    self.carry(&input[pos..])?;
                    break;
                }
                Some(i) => {
                    let t = pos + i;
                    self.process_line(input, &input[pos..t], Some(pos), on_event)?;
                    pos = self.after_terminator(input, t);
                }
            }
        }
        // The block goes on in the next feed: its data can no longer borrow from this input.
        if let Some((s, e)) = self.pending.take() {
            self.data.extend_from_slice(&input[s..e]);
        }
        Ok(())
    }

    /// End of stream: an unfinished line or block is discarded (spec: "pending data must be
    /// discarded"). The last event ID and reconnection time survive, as for a reconnect, and the
    /// decoder is ready for a new stream.
    pub fn finish(&mut self) -> Result<()> {
        if self.failed {
            return Err(Error::Poisoned);
        }
        self.line.clear();
        self.data.clear();
        self.has_data = false;
        self.pending = None;
        self.event.clear();
        self.block_retry = None;
        self.skip_lf = false;
        self.bom = 0;
        Ok(())
    }

    /// Feed and collect owned events (convenience for tests and cold paths).
    pub fn feed_owned(&mut self, input: &[u8], out: &mut Vec<OwnedEvent>) -> Result<()> {
        self.feed(input, |e| {
            out.push(e.to_owned());
            Ok(())
        })
    }

    fn strip_bom<'i>(&mut self, input: &'i [u8]) -> &'i [u8] {
        let mut i = 0;
        while (self.bom as usize) < BOM.len() && i < input.len() {
            if input[i] != BOM[self.bom as usize] {
                // Not a BOM after all: the bytes matched so far are content of the first line.
                self.line.extend_from_slice(&BOM[..self.bom as usize]);
                self.bom = BOM_DONE;
                return &input[i..];
            }
            self.bom += 1;
            i += 1;
        }
        if self.bom as usize == BOM.len() {
            self.bom = BOM_DONE;
        }
        &input[i..]
    }

    #[inline]
    fn after_terminator(&mut self, input: &[u8], t: usize) -> usize {
        if input[t] == b'\r' {
            match input.get(t + 1) {
                Some(b'\n') => t + 2,
                Some(_) => t + 1,
                None => {
                    // CR ends its line now; an LF opening the next feed belongs to it.
                    self.skip_lf = true;
                    t + 1
                }
            }
        } else {
            t + 1
        }
    }

    #[inline]
    fn block_len(&self) -> usize {
        match self.pending {
            Some((s, e)) => e - s,
            None => self.data.len(),
        }
    }

    #[inline]
    fn check_size(&self, line_len: usize) -> Result<()> {
        if self.block_len() + line_len > self.max_event_size {
            Err(Error::EventTooLarge {
                limit: self.max_event_size,
            })
        } else {
            Ok(())
        }
    }

    fn carry(&mut self, rest: &[u8]) -> Result<()> {
        self.check_size(self.line.len() + rest.len())?;
        self.line.extend_from_slice(rest);
        Ok(())
    }

    /// `at` is the line's offset in `input` when the line lies wholly inside it.
    #[inline]
    fn process_line<F: FnMut(Event<'_>) -> Result<()>>(
        &mut self,
        input: &[u8],
        line: &[u8],
        at: Option<usize>,
        on_event: &mut F,
    ) -> Result<()> {
        if line.is_empty() {
            return self.dispatch(input, on_event);
        }
        if line[0] == b':' {
            return Ok(()); // comment
        }
        // Nearly every line of an LLM stream is `data: …`: recognise it without a search.
        let (field, vstart) = if line.starts_with(b"data:") {
            (&line[..4], if line.get(5) == Some(&b' ') { 6 } else { 5 })
        } else {
            match memchr(b':', line) {
                Some(c) => (
                    &line[..c],
                    if line.get(c + 1) == Some(&b' ') {
                        c + 2
                    } else {
                        c + 1
                    },
                ),
                None => (line, line.len()),
            }
        };
        let value = &line[vstart..];
        match field {
            b"data" => {
                self.check_size(value.len() + self.has_data as usize)?;
                match at {
                    Some(off) if !self.has_data => {
                        self.pending = Some((off + vstart, off + line.len()));
                    }
                    _ => {
                        if let Some((s, e)) = self.pending.take() {
                            self.data.extend_from_slice(&input[s..e]);
                        }
                        if self.has_data {
                            self.data.push(b'\n');
                        }
                        self.data.extend_from_slice(value);
                    }
                }
                self.has_data = true;
            }
            b"event" => {
                self.check_size(value.len())?;
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            // An id containing NUL is ignored (the previous one stays in force).
            b"id" if memchr(0, value).is_none() && self.id != value => {
                self.check_size(value.len())?;
                self.id.clear();
                self.id.extend_from_slice(value);
                self.id_generation += 1;
            }
            // ASCII digits only; anything else is ignored. Saturates rather than overflowing.
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                let ms = value.iter().fold(0u64, |acc, d| {
                    acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
                self.reconnection_time = Some(ms);
                self.block_retry = Some(ms);
            }
            _ => {}
        }
        Ok(())
    }

    #[inline]
    fn dispatch<F: FnMut(Event<'_>) -> Result<()>>(
        &mut self,
        input: &[u8],
        on_event: &mut F,
    ) -> Result<()> {
        if self.committed_generation != self.id_generation {
            self.committed_generation = self.id_generation;
            self.last_event_id.clear();
            self.last_event_id.extend_from_slice(&self.id);
        }
        let mut result = Ok(());
        if self.has_data {
            let data: &[u8] = match self.pending.take() {
                Some((s, e)) => &input[s..e],
                None => &self.data,
            };
            result = on_event(Event {
                event: &self.event,
                data,
                id: &self.id,
                retry: self.block_retry,
                id_generation: self.id_generation,
            });
            self.data.clear();
            self.has_data = false;
        }
        self.event.clear();
        self.block_retry = None;
        result
    }
}
