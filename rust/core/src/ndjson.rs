//! Incremental newline-delimited JSON framing (Ollama streams NDJSON).
//!
//! Lines end at LF; a CR before it is dropped. Blank lines are skipped. A last line without its
//! LF is still a complete JSON text and is delivered by `finish`.

use memchr::memchr;

use crate::error::{Error, Result};
use crate::sse::DEFAULT_MAX_EVENT_SIZE;

#[derive(Debug, Clone)]
pub struct NdjsonDecoder {
    line: Vec<u8>,
    max_line_size: usize,
    failed: bool,
}

impl Default for NdjsonDecoder {
    fn default() -> Self {
        Self::new()
    }
}

fn trim(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(|b| b.is_ascii_whitespace()) {
        &line[..0]
    } else {
        line
    }
}

impl NdjsonDecoder {
    pub fn new() -> Self {
        Self::with_max_line_size(DEFAULT_MAX_EVENT_SIZE)
    }

    pub fn with_max_line_size(max_line_size: usize) -> Self {
        NdjsonDecoder {
            line: Vec::new(),
            max_line_size,
            failed: false,
        }
    }

    /// Decode `input`, calling `on_line` with each complete non-blank line.
    pub fn feed<F: FnMut(&[u8]) -> Result<()>>(
        &mut self,
        input: &[u8],
        mut on_line: F,
    ) -> Result<()> {
        if self.failed {
            return Err(Error::Poisoned);
        }
        let r = self.feed_inner(input, &mut on_line);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn feed_inner<F: FnMut(&[u8]) -> Result<()>>(
        &mut self,
        input: &[u8],
        on_line: &mut F,
    ) -> Result<()> {
        let mut pos = 0;
        if !self.line.is_empty() {
            match memchr(b'\n', input) {
                None => return self.carry(input),
                Some(t) => {
                    self.check(self.line.len() + t)?;
                    self.line.extend_from_slice(&input[..t]);
                    let line = std::mem::take(&mut self.line);
                    let r = Self::emit(&line, on_line);
                    self.line = line;
                    self.line.clear();
                    r?;
                    pos = t + 1;
                }
            }
        }
        while pos < input.len() {
            match memchr(b'\n', &input[pos..]) {
                None => return self.carry(&input[pos..]),
                Some(i) => {
                    self.check(i)?;
                    Self::emit(&input[pos..pos + i], on_line)?;
                    pos += i + 1;
                }
            }
        }
        Ok(())
    }

    /// End of stream: deliver an unterminated last line.
    pub fn finish<F: FnMut(&[u8]) -> Result<()>>(&mut self, mut on_line: F) -> Result<()> {
        if self.failed {
            return Err(Error::Poisoned);
        }
        let line = std::mem::take(&mut self.line);
        Self::emit(&line, &mut on_line)
    }

    #[inline]
    fn emit<F: FnMut(&[u8]) -> Result<()>>(line: &[u8], on_line: &mut F) -> Result<()> {
        let line = trim(line);
        if line.is_empty() {
            Ok(())
        } else {
            on_line(line)
        }
    }

    fn check(&self, len: usize) -> Result<()> {
        if len > self.max_line_size {
            Err(Error::EventTooLarge {
                limit: self.max_line_size,
            })
        } else {
            Ok(())
        }
    }

    fn carry(&mut self, rest: &[u8]) -> Result<()> {
        self.check(self.line.len() + rest.len())?;
        self.line.extend_from_slice(rest);
        Ok(())
    }
}
