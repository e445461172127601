//! Incremental framing of a streamed JSON array (`[{…}\n,\r\n{…}]`): Gemini's
//! `streamGenerateContent` body without `alt=sse`. Each top-level element is handed out as soon as
//! its last byte arrives, whatever the byte split.
//!
//! Only structure is tracked (strings, escapes, nesting depth); each element is validated by the
//! dialect's JSON parser. Every byte is examined once. An element that lies wholly inside one feed
//! is handed out as a slice of it; otherwise it is carried in one buffer bounded by the max size.
//! A bare top-level object (`{…}`, e.g. an error body) is accepted as a one-element stream.

use memchr::memchr2;

use crate::error::{excerpt, Error, Result};
use crate::sse::DEFAULT_MAX_EVENT_SIZE;

const NAME: &str = "json_array";

/// Finds where one JSON value ends, fed in pieces. The first byte scanned must open the value.
#[derive(Debug, Clone, Default)]
pub(crate) struct ValueScanner {
    started: bool,
    depth: u32,
    in_string: bool,
    /// The previous piece ended on a backslash inside a string.
    escaped: bool,
    /// A number or literal: it ends at the first delimiter, which is not part of it.
    scalar: bool,
}

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

impl ValueScanner {
    /// Scan the next piece of the value; `Some(n)` when it ends after `n` bytes of `bytes`.
    pub(crate) fn scan(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut i = 0;
        if !self.started {
            let &first = bytes.first()?;
            self.started = true;
            i = 1;
            match first {
                b'{' | b'[' => self.depth = 1,
                b'"' => self.in_string = true,
                _ => self.scalar = true,
            }
        }
        if self.scalar {
            return bytes[i..]
                .iter()
                .position(|&b| is_ws(b) || matches!(b, b',' | b']' | b'}'))
                .map(|p| i + p);
        }
        if self.escaped && i < bytes.len() {
            self.escaped = false;
            i += 1;
        }
        while i < bytes.len() {
            if self.in_string {
                let j = i + memchr2(b'"', b'\\', &bytes[i..])?;
                if bytes[j] == b'\\' {
                    if j + 1 == bytes.len() {
                        self.escaped = true;
                        return None;
                    }
                    i = j + 2;
                } else {
                    self.in_string = false;
                    i = j + 1;
                    if self.depth == 0 {
                        return Some(i);
                    }
                }
            } else {
                let b = bytes[i];
                i += 1;
                match b {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => {
                        self.depth = self.depth.saturating_sub(1);
                        if self.depth == 0 {
                            return Some(i);
                        }
                    }
                    _ => {}
                }
            }
        }
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before `[` (or a bare top-level object).
    Start,
    BeforeElement,
    InElement,
    AfterElement,
    /// After the closing `]`: only whitespace may follow.
    End,
}

#[derive(Debug, Clone)]
pub struct JsonArrayDecoder {
    state: State,
    scanner: ValueScanner,
    /// The bytes of an element that began in an earlier feed.
    buf: Vec<u8>,
    /// The stream is one bare object, not an array.
    single: bool,
    max_size: usize,
    failed: bool,
}

impl Default for JsonArrayDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonArrayDecoder {
    pub fn new() -> Self {
        Self::with_max_size(DEFAULT_MAX_EVENT_SIZE)
    }

    /// `max_size` bounds one element.
    pub fn with_max_size(max_size: usize) -> Self {
        JsonArrayDecoder {
            state: State::Start,
            scanner: ValueScanner::default(),
            buf: Vec::new(),
            single: false,
            max_size,
            failed: false,
        }
    }

    /// Decode `input`, calling `on_element` with the bytes of each element it completes.
    /// On error the decoder is poisoned; elements completed before it were already delivered.
    pub fn feed<F: FnMut(&[u8]) -> Result<()>>(
        &mut self,
        input: &[u8],
        mut on_element: F,
    ) -> Result<()> {
        if self.failed {
            return Err(Error::Poisoned);
        }
        let r = self.feed_inner(input, &mut on_element);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// End of stream. An unfinished element or a missing `]` is not an error here: whether the
    /// answer is whole is for the dialect to say (as with an unterminated SSE event).
    pub fn finish(&mut self) -> Result<()> {
        if self.failed {
            return Err(Error::Poisoned);
        }
        self.buf.clear();
        Ok(())
    }

    /// The closing `]` (or the end of a bare object) has been read.
    pub fn is_closed(&self) -> bool {
        self.state == State::End
    }

    fn feed_inner<F: FnMut(&[u8]) -> Result<()>>(
        &mut self,
        input: &[u8],
        on_element: &mut F,
    ) -> Result<()> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::InElement {
                match self.scanner.scan(&input[i..]) {
                    None => {
                        self.check(self.buf.len() + input.len() - i)?;
                        self.buf.extend_from_slice(&input[i..]);
                        return Ok(());
                    }
                    Some(n) => {
                        let end = i + n;
                        self.state = if self.single {
                            State::End
                        } else {
                            State::AfterElement
                        };
                        self.check(self.buf.len() + n)?;
                        if self.buf.is_empty() {
                            on_element(&input[i..end])?;
                        } else {
                            self.buf.extend_from_slice(&input[i..end]);
                            let buf = std::mem::take(&mut self.buf);
                            let r = on_element(&buf);
                            self.buf = buf;
                            self.buf.clear();
                            r?;
                        }
                        i = end;
                        continue;
                    }
                }
            }
            let b = input[i];
            if is_ws(b) {
                i += 1;
                continue;
            }
            match (self.state, b) {
                (State::Start, b'[') => self.state = State::BeforeElement,
                (State::Start, b'{') => {
                    self.single = true;
                    self.start_element();
                    continue;
                }
                // `]` right after `[` or (leniently) after a trailing comma.
                (State::BeforeElement, b']') | (State::AfterElement, b']') => {
                    self.state = State::End
                }
                (State::BeforeElement, b',') => return Err(self.unexpected(input, i)),
                (State::BeforeElement, _) => {
                    self.start_element();
                    continue;
                }
                (State::AfterElement, b',') => self.state = State::BeforeElement,
                _ => return Err(self.unexpected(input, i)),
            }
            i += 1;
        }
        Ok(())
    }

    fn start_element(&mut self) {
        self.state = State::InElement;
        self.scanner = ValueScanner::default();
    }

    fn unexpected(&self, input: &[u8], at: usize) -> Error {
        let expected = match self.state {
            State::Start => "'['",
            State::BeforeElement => "an element",
            State::AfterElement => "',' or ']'",
            State::InElement | State::End => "nothing after the closing ']'",
        };
        Error::InvalidJson {
            dialect: NAME,
            message: format!("expected {expected} in a streamed JSON array"),
            payload: excerpt(&input[at..]),
        }
    }

    fn check(&self, len: usize) -> Result<()> {
        if len > self.max_size {
            Err(Error::EventTooLarge {
                limit: self.max_size,
            })
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements(pieces: &[&[u8]]) -> Result<Vec<String>> {
        let mut d = JsonArrayDecoder::new();
        let mut out = Vec::new();
        for p in pieces {
            d.feed(p, |e| {
                out.push(String::from_utf8(e.to_vec()).unwrap());
                Ok(())
            })?;
        }
        d.finish()?;
        Ok(out)
    }

    fn every_split(input: &str, want: &[&str]) {
        let b = input.as_bytes();
        assert_eq!(elements(&[b]).unwrap(), want, "whole");
        let bytes: Vec<&[u8]> = b.chunks(1).collect();
        assert_eq!(elements(&bytes).unwrap(), want, "1-byte");
        for cut in 0..=b.len() {
            assert_eq!(
                elements(&[&b[..cut], &b[cut..]]).unwrap(),
                want,
                "split at {cut}"
            );
        }
    }

    #[test]
    fn elements_with_tricky_strings() {
        every_split(
            "[{\"a\": \"}]\\\"{[\"},\r\n{\"b\": [1, {\"c\": \"\\\\\"}]}\n]\n",
            &["{\"a\": \"}]\\\"{[\"}", "{\"b\": [1, {\"c\": \"\\\\\"}]}"],
        );
    }

    #[test]
    fn scalars_empty_array_and_bare_object() {
        every_split(
            "[1, \"x,]\" ,true,null , -2.5e3]",
            &["1", "\"x,]\"", "true", "null", "-2.5e3"],
        );
        every_split("  [ ]  ", &[]);
        every_split(
            "\n{\"error\": {\"code\": 499}}\n",
            &["{\"error\": {\"code\": 499}}"],
        );
    }

    #[test]
    fn unfinished_stream_keeps_completed_elements() {
        assert_eq!(elements(&[b"[{\"a\":1},{\"b\""]).unwrap(), ["{\"a\":1}"]);
    }

    #[test]
    fn garbage_is_invalid_json_and_poisons() {
        let mut d = JsonArrayDecoder::new();
        let r = d.feed(b"data: {}", |_| Ok(()));
        assert!(matches!(
            r,
            Err(Error::InvalidJson {
                dialect: "json_array",
                ..
            })
        ));
        assert_eq!(d.feed(b"[", |_| Ok(())), Err(Error::Poisoned));
        assert!(matches!(
            elements(&[b"[{} {}]"]),
            Err(Error::InvalidJson { .. })
        ));
        assert!(matches!(
            elements(&[b"[{}] x"]),
            Err(Error::InvalidJson { .. })
        ));
    }

    #[test]
    fn element_size_is_bounded() {
        let mut d = JsonArrayDecoder::with_max_size(8);
        assert!(d.feed(b"[{\"a\":1}", |_| Ok(())).is_ok());
        let mut d = JsonArrayDecoder::with_max_size(8);
        let r = d
            .feed(b"[{\"a\":\"", |_| Ok(()))
            .and_then(|_| d.feed(b"xxxxxxxx", |_| Ok(())));
        assert_eq!(r, Err(Error::EventTooLarge { limit: 8 }));
    }
}
