//! Incremental AWS eventstream framing (`application/vnd.amazon.eventstream`, Bedrock's streams).
//!
//! A message is
//! `[total_len u32][headers_len u32][prelude_crc u32][headers][payload][message_crc u32]`,
//! big-endian; `prelude_crc` is the CRC32 (IEEE) of the first 8 bytes, `message_crc` that of
//! everything before it. A header is `[name_len u8][name][type u8][value]`.
//!
//! Both CRCs and the lengths are checked: corrupt framing is [`Error::InvalidFrame`], never a
//! guess at where the next message starts. A message longer than the limit is refused as soon as
//! its prelude is read, before its body is buffered. Each byte is copied at most once (only the
//! bytes of a message split across feeds are), so any split of the input gives the same messages.
//!
//! [`event_frame`] applies the AWS RPC layer: `:message-type` `event` is a frame for the dialect,
//! `exception` and `error` are the provider's error.

use crate::dialect::Frame;
use crate::error::{Error, Result};
use crate::sse::DEFAULT_MAX_EVENT_SIZE;

const NAME: &str = "eventstream";
/// `total_len`, `headers_len`, `prelude_crc`.
const PRELUDE: usize = 12;
/// The prelude and the trailing `message_crc`: the smallest message.
const MIN_MESSAGE: usize = PRELUDE + 4;

/// One message, borrowing from the input or the decoder's buffer. The headers the AWS RPC layer
/// reads are picked out (empty when absent or not strings); others are skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Message<'a> {
    /// `:message-type`: `event`, `exception` or `error`.
    pub message_type: &'a [u8],
    /// `:event-type` of an event (`messageStart`, `contentBlockDelta`, …).
    pub event_type: &'a [u8],
    /// `:exception-type` of an exception (`throttlingException`, …).
    pub exception_type: &'a [u8],
    /// `:error-code` and `:error-message` of an error.
    pub error_code: &'a [u8],
    pub error_message: &'a [u8],
    pub payload: &'a [u8],
}

#[derive(Debug, Clone)]
pub struct EventStreamDecoder {
    /// The bytes of a message split across feeds.
    buf: Vec<u8>,
    /// `buf`'s message length once its prelude is checked, else 0.
    need: usize,
    max_message_size: usize,
    failed: bool,
}

impl Default for EventStreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

fn invalid(message: String) -> Error {
    Error::InvalidFrame {
        framing: NAME,
        message,
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl EventStreamDecoder {
    pub fn new() -> Self {
        Self::with_max_message_size(DEFAULT_MAX_EVENT_SIZE)
    }

    pub fn with_max_message_size(max_message_size: usize) -> Self {
        EventStreamDecoder {
            buf: Vec::new(),
            need: 0,
            max_message_size,
            failed: false,
        }
    }

    /// Decode `input`, calling `on_message` with each complete message.
    pub fn feed<F: FnMut(Message<'_>) -> Result<()>>(
        &mut self,
        input: &[u8],
        mut on_message: F,
    ) -> Result<()> {
        if self.failed {
            return Err(Error::Poisoned);
        }
        let r = self.feed_inner(input, &mut on_message);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn feed_inner<F: FnMut(Message<'_>) -> Result<()>>(
        &mut self,
        mut input: &[u8],
        on_message: &mut F,
    ) -> Result<()> {
        if !self.buf.is_empty() {
            if self.need == 0 {
                let take = (PRELUDE - self.buf.len()).min(input.len());
                self.buf.extend_from_slice(&input[..take]);
                input = &input[take..];
                if self.buf.len() < PRELUDE {
                    return Ok(());
                }
                self.need = self.prelude(&self.buf)?;
                self.buf.reserve_exact(self.need - self.buf.len());
            }
            let take = (self.need - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.buf.len() < self.need {
                return Ok(());
            }
            let buf = std::mem::take(&mut self.buf);
            let r = message(&buf).and_then(&mut *on_message);
            self.buf = buf;
            self.buf.clear();
            self.need = 0;
            r?;
        }
        while !input.is_empty() {
            if input.len() < PRELUDE {
                self.buf.extend_from_slice(input);
                return Ok(());
            }
            let len = self.prelude(input)?;
            if input.len() < len {
                self.need = len;
                self.buf.reserve_exact(len);
                self.buf.extend_from_slice(input);
                return Ok(());
            }
            on_message(message(&input[..len])?)?;
            input = &input[len..];
        }
        Ok(())
    }

    /// Check a prelude (the first 12 bytes of a message); returns the message's length.
    fn prelude(&self, p: &[u8]) -> Result<usize> {
        let (total, headers, crc) = (be32(p), be32(&p[4..]), be32(&p[8..]));
        let actual = crc32fast::hash(&p[..8]);
        if actual != crc {
            return Err(invalid(format!(
                "prelude CRC mismatch (sent {crc:#010x}, computed {actual:#010x})"
            )));
        }
        // u32 → usize is lossless on every target std supports (16-bit has no std).
        let (total, headers) = (total as usize, headers as usize);
        if total < MIN_MESSAGE {
            return Err(invalid(format!(
                "message length {total} is below the minimum of {MIN_MESSAGE}"
            )));
        }
        if headers > total - MIN_MESSAGE {
            return Err(invalid(format!(
                "headers length {headers} does not fit a message of {total} bytes"
            )));
        }
        if total > self.max_message_size {
            return Err(Error::EventTooLarge {
                limit: self.max_message_size,
            });
        }
        Ok(total)
    }

    /// Bytes of a message that has not arrived whole: at the end of the stream, it was cut.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    /// End of stream. A message cut short is discarded, never delivered; returns whether there
    /// was one, for the caller to report the stream incomplete.
    pub fn finish(&mut self) -> Result<bool> {
        if self.failed {
            return Err(Error::Poisoned);
        }
        let cut = self.has_partial();
        self.buf.clear();
        self.need = 0;
        Ok(cut)
    }
}

/// Parse one whole message whose prelude is checked (`frame.len()` is its `total_len`).
fn message(frame: &[u8]) -> Result<Message<'_>> {
    let (body, crc) = frame.split_at(frame.len() - 4);
    let (sent, actual) = (be32(crc), crc32fast::hash(body));
    if sent != actual {
        return Err(invalid(format!(
            "message CRC mismatch (sent {sent:#010x}, computed {actual:#010x})"
        )));
    }
    let headers_end = PRELUDE + be32(&frame[4..]) as usize;
    let mut m = Message {
        payload: &body[headers_end..],
        ..Default::default()
    };
    let mut h = &body[PRELUDE..headers_end];
    while let Some((&name_len, rest)) = h.split_first() {
        let name_len = name_len as usize;
        let Some(&kind) = rest.get(name_len) else {
            return Err(invalid("header cut short in its name".to_owned()));
        };
        let name = &rest[..name_len];
        let rest = &rest[name_len + 1..];
        let (value, rest) = header_value(kind, rest)?;
        if kind == 7 {
            match name {
                b":message-type" => m.message_type = value,
                b":event-type" => m.event_type = value,
                b":exception-type" => m.exception_type = value,
                b":error-code" => m.error_code = value,
                b":error-message" => m.error_message = value,
                _ => {}
            }
        }
        h = rest;
    }
    Ok(m)
}

/// Split a header value of type `kind` off `rest`: (the value's bytes, what follows). A bytes
/// or string value is returned without its length prefix.
fn header_value(kind: u8, rest: &[u8]) -> Result<(&[u8], &[u8])> {
    let (prefix, len) = match kind {
        0 | 1 => (0, 0), // bool true / false: the type is the value
        2 => (0, 1),     // byte
        3 => (0, 2),     // short
        4 => (0, 4),     // int
        5 | 8 => (0, 8), // long, timestamp (ms since the epoch)
        9 => (0, 16),    // uuid
        // bytes, string: a u16 length first
        6 | 7 => match rest {
            [a, b, ..] => (2, u16::from_be_bytes([*a, *b]) as usize),
            _ => return Err(invalid("header cut short in its value length".to_owned())),
        },
        other => return Err(invalid(format!("unknown header value type {other}"))),
    };
    if rest.len() < prefix + len {
        return Err(invalid(format!("header value of type {kind} cut short")));
    }
    Ok((&rest[prefix..prefix + len], &rest[prefix + len..]))
}

/// The AWS RPC layer over a message: an `event` is a frame for the dialect (event = its
/// `:event-type`); an `exception` or `error` is the provider's error; any other message type is
/// skipped (None), as unknown event types are.
pub fn event_frame<'a>(m: &Message<'a>) -> Result<Option<Frame<'a>>> {
    match m.message_type {
        b"event" => Ok(Some(Frame {
            event: m.event_type,
            data: m.payload,
        })),
        b"exception" => Err(exception(m)),
        b"error" => {
            let message = String::from_utf8_lossy(m.error_message).into_owned();
            Err(Error::Provider {
                message,
                kind: non_empty(m.error_code),
                code: None,
                param: None,
                body: String::from_utf8_lossy(m.payload).into_owned(),
            })
        }
        _ => Ok(None),
    }
}

/// An exception's payload is JSON with `message` (or `Message`, as some AWS services spell it).
fn exception(m: &Message<'_>) -> Error {
    let body = String::from_utf8_lossy(m.payload).into_owned();
    let v: serde_json::Value = serde_json::from_slice(m.payload).unwrap_or_default();
    let said = ["message", "Message"]
        .iter()
        .find_map(|k| v.get(k)?.as_str().map(str::to_owned));
    Error::Provider {
        message: said.unwrap_or_else(|| body.clone()),
        kind: non_empty(m.exception_type),
        code: None,
        param: None,
        body,
    }
}

fn non_empty(b: &[u8]) -> Option<String> {
    (!b.is_empty()).then(|| String::from_utf8_lossy(b).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message with string headers, as AWS writes them.
    fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
        let mut h = Vec::new();
        for (name, value) in headers {
            h.push(name.len() as u8);
            h.extend_from_slice(name.as_bytes());
            h.push(7);
            h.extend_from_slice(&(value.len() as u16).to_be_bytes());
            h.extend_from_slice(value.as_bytes());
        }
        let total = (MIN_MESSAGE + h.len() + payload.len()) as u32;
        let mut m = total.to_be_bytes().to_vec();
        m.extend_from_slice(&(h.len() as u32).to_be_bytes());
        m.extend_from_slice(&crc32fast::hash(&m).to_be_bytes());
        m.extend_from_slice(&h);
        m.extend_from_slice(payload);
        m.extend_from_slice(&crc32fast::hash(&m).to_be_bytes());
        m
    }

    fn collect(d: &mut EventStreamDecoder, input: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut got = Vec::new();
        d.feed(input, |m| {
            got.push((m.event_type.to_vec(), m.payload.to_vec()));
            Ok(())
        })
        .map(|()| got)
    }

    #[test]
    fn whole_and_bytewise_agree() {
        let mut body = encode(&[(":event-type", "a"), (":message-type", "event")], b"{}");
        body.extend(encode(&[(":event-type", "b")], b"[1]"));
        let whole = collect(&mut EventStreamDecoder::new(), &body).unwrap();
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[1], (b"b".to_vec(), b"[1]".to_vec()));
        let mut d = EventStreamDecoder::new();
        let mut bytewise = Vec::new();
        for b in body.chunks(1) {
            bytewise.extend(collect(&mut d, b).unwrap());
        }
        assert_eq!(bytewise, whole);
        assert_eq!(d.finish(), Ok(false));
        collect(&mut d, &body[..5]).unwrap();
        assert!(d.has_partial());
        assert_eq!(d.finish(), Ok(true));
        assert!(!d.has_partial());
    }

    #[test]
    fn an_empty_message_is_valid() {
        let m = encode(&[], b"");
        assert_eq!(m.len(), MIN_MESSAGE);
        assert_eq!(
            collect(&mut EventStreamDecoder::new(), &m).unwrap(),
            vec![(vec![], vec![])]
        );
    }

    #[test]
    fn a_header_cut_short_is_invalid() {
        // headers_len covers a name length that promises more than is there.
        let mut m = encode(&[], b"xyz");
        m[7] = 3; // headers_len 3: the payload's bytes read as a header
        let p = crc32fast::hash(&m[..8]).to_be_bytes();
        m[8..12].copy_from_slice(&p);
        let n = m.len();
        let c = crc32fast::hash(&m[..n - 4]).to_be_bytes();
        m[n - 4..].copy_from_slice(&c);
        let e = collect(&mut EventStreamDecoder::new(), &m).unwrap_err();
        assert!(matches!(e, Error::InvalidFrame { .. }), "{e:?}");
    }
}
