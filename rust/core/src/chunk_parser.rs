//! A hand-written parser for the common shape of `chat.completion.chunk` JSON.
//!
//! serde_json's derived parser spends ~7,500 instructions on a typical 330-byte OpenAI chunk
//! (matching every key through the generated visitors, re-checking every string byte). This one
//! reads the keys it knows straight into [`ChatChunk`] and is about three times cheaper.
//!
//! It is deliberately partial: it answers `None` for anything outside the hot path (usage
//! objects, logprobs, error objects, content as a list of parts, surrogate escapes, escaped
//! keys, duplicate keys, any syntax error), and the caller then
//! parses with serde, which stays the single definition of what a chunk may look like and of
//! every error message. When it answers `Some`, the value equals serde's for the same text; the
//! differential tests (`tests/chunk_parser.rs`) hold it to that.
//!
//! [`ChunkMemo`] skips what repeats the previous chunk's bytes: the members before `choices`, and
//! the `choices` array around the one string that changed.

use std::borrow::Cow;

use crate::chunk::{
    ChatChunk, ChunkChoice, Delta, FunctionDelta, SharedStr, ToolCallDelta, XGroq, MISSING_INDEX,
};

/// Parse `text` (already validated UTF-8) if it is in the fast path's subset.
pub fn parse(text: &str) -> Option<ChatChunk> {
    parse_with(text, &mut ChunkMemo::default())
}

/// [`parse`], reusing what `memo` remembers where `text` repeats its bytes, and leaving in it
/// what this chunk parsed to.
pub fn parse_with(text: &str, memo: &mut ChunkMemo) -> Option<ChatChunk> {
    let mut p = Parser {
        s: text,
        b: text.as_bytes(),
        i: 0,
        hole: None,
    };
    let chunk = p.chunk(memo)?;
    p.ws();
    (p.i == p.b.len()).then_some(chunk)
}

/// What the previous chunks' bytes parsed to, for the next chunk to start from.
///
/// The parser is a function of the bytes it has read, so bytes that repeat parse to what they
/// parsed to before. OpenAI-style servers repeat most of every chunk of a stream byte for byte:
/// - the members before `choices` (id, object, created, model, service tier, fingerprint): a
///   chunk that starts with the same bytes reaches `choices` in the same state, and shares the
///   remembered strings instead of allocating its own;
/// - the `choices` array around the one string that grows the answer
///   (`[{"index":0,"delta":{"content":` … `},"logprobs":null,"finish_reason":null}]`): a chunk
///   whose array has the same bytes before and after one string is the remembered choice with
///   that string in its place.
///
/// Either comparison replaces parsing what it covers.
#[derive(Debug, Default)]
pub struct ChunkMemo {
    /// The text up to (not including) the separator before `"choices"`; empty when nothing is remembered.
    prefix: Vec<u8>,
    chunk: ChatChunk,
    seen: u32,
    choices: ChoicesMemo,
}

impl ChunkMemo {
    /// How many `choices` arrays were read from the memo rather than parsed (for tests and tuning).
    pub fn choices_reused(&self) -> u64 {
        self.choices.reused
    }
}

/// The last `choices` array that held one choice with a string in its delta, cut around the last
/// such string (the hole).
#[derive(Debug, Default)]
struct ChoicesMemo {
    /// The array's bytes before the hole's opening quote; empty when nothing is remembered.
    before: Vec<u8>,
    /// The array's bytes after the hole's closing quote, through its `]`.
    after: Vec<u8>,
    /// The choice those bytes parsed to, its hole empty.
    choice: ChunkChoice,
    /// `choice` is its index and nothing else (the usual case): made fresh rather than cloned.
    bare: bool,
    hole: Slot,
    reused: u64,
}

/// A string field of a delta: where a [`ChoicesMemo`] hole can be.
#[derive(Debug, Default, Clone, Copy)]
enum Slot {
    Role,
    #[default]
    Content,
    ReasoningContent,
    Refusal,
    Reasoning,
    ReasoningSignature,
    /// The arguments of the delta's only tool call (the pieces of a streamed call).
    Arguments,
}

impl Slot {
    /// The field in `d`; `None` when `d` has no such place (arguments without exactly one call).
    fn of(self, d: &mut Delta) -> Option<&mut Option<String>> {
        Some(match self {
            Slot::Role => &mut d.role,
            Slot::Content => &mut d.content,
            Slot::ReasoningContent => &mut d.reasoning_content,
            Slot::Refusal => &mut d.refusal,
            Slot::Reasoning => &mut d.reasoning,
            Slot::ReasoningSignature => &mut d.reasoning_signature,
            Slot::Arguments => match d.tool_calls.as_deref_mut() {
                Some([call]) => &mut call.function.as_mut()?.arguments,
                _ => return None,
            },
        })
    }
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    /// The last delta string read (or tool call arguments): its field, and where its quotes
    /// start and end.
    hole: Option<(Slot, usize, usize)>,
}

/// Walks the members of one object: `members!(p, |key| { …read the value… })`.
macro_rules! members {
    ($p:ident, |$key:ident| $body:block) => {{
        $p.expect(b'{')?;
        let mut first = true;
        while $p.more_members(first)? {
            first = false;
            let $key = $p.key()?;
            $p.colon()?;
            $body
        }
    }};
}

/// Marks field `bit` as seen; a second sighting is a duplicate key, which serde rejects.
fn once(seen: &mut u32, bit: u32) -> Option<()> {
    if *seen & bit != 0 {
        return None;
    }
    *seen |= bit;
    Some(())
}

impl<'a> Parser<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            // One comparison for any token byte: servers seldom put whitespace between tokens.
            if c > b' ' || !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            self.i += 1;
        }
    }

    /// Before an object's member: true if one follows (its `,` consumed unless it is the first),
    /// false once the closing `}` is consumed.
    #[inline]
    fn more_members(&mut self, first: bool) -> Option<bool> {
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(false);
        }
        if !first {
            self.expect(b',')?;
            self.ws();
        }
        Some(true)
    }

    /// `:` between a key and its value, with the whitespace around it.
    #[inline]
    fn colon(&mut self) -> Option<()> {
        if self.peek() == Some(b':') && self.b.get(self.i + 1).is_some_and(|&c| c > b' ') {
            self.i += 1; // the compact form, as servers send it
            return Some(());
        }
        self.ws();
        self.expect(b':')?;
        self.ws();
        Some(())
    }

    #[inline]
    fn expect(&mut self, c: u8) -> Option<()> {
        if self.peek()? != c {
            return None;
        }
        self.i += 1;
        Some(())
    }

    /// `null` if it is next (consumed), else false.
    #[inline]
    fn null(&mut self) -> bool {
        if self.b[self.i..].starts_with(b"null") {
            self.i += 4;
            true
        } else {
            false
        }
    }

    /// A key: a string without escapes (every key we know is plain ASCII).
    #[inline]
    fn key(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.i;
        let end = start + plain_len(&self.b[start..]);
        if self.b.get(end) != Some(&b'"') {
            return None;
        }
        self.i = end + 1;
        Some(&self.b[start..end])
    }

    fn string(&mut self) -> Option<String> {
        self.str_or_owned().map(Cow::into_owned)
    }

    /// A string shared rather than copied per chunk (id, model, fingerprint).
    fn shared(&mut self) -> Option<SharedStr> {
        Some(match self.str_or_owned()? {
            Cow::Borrowed(s) => SharedStr::from(s),
            Cow::Owned(s) => SharedStr::from(s),
        })
    }

    fn opt_shared(&mut self) -> Option<Option<SharedStr>> {
        if self.null() {
            return Some(None);
        }
        self.shared().map(Some)
    }

    /// A string value: borrowed from the text when it has no escapes.
    fn str_or_owned(&mut self) -> Option<Cow<'a, str>> {
        self.expect(b'"')?;
        let start = self.i;
        let mut end = start + plain_len(&self.b[start..]);
        match self.b.get(end) {
            Some(b'"') => {
                self.i = end + 1;
                // Both ends sit next to an ASCII quote, so they are char boundaries: no re-validation.
                Some(Cow::Borrowed(self.s.get(start..end)?))
            }
            Some(b'\\') => {
                let mut out = Vec::with_capacity(end - start + 8);
                out.extend_from_slice(&self.b[start..end]);
                loop {
                    match self.b.get(end)? {
                        b'"' => break,
                        b'\\' => {
                            end = self.escape(end + 1, &mut out)?;
                        }
                        _ => return None, // a control character
                    }
                    let run = plain_len(&self.b[end..]);
                    out.extend_from_slice(&self.b[end..end + run]);
                    end += run;
                }
                self.i = end + 1;
                String::from_utf8(out).ok().map(Cow::Owned)
            }
            _ => None,
        }
    }

    /// Decode the escape whose letter is at `at`; return the index after it. Surrogates (pairs or
    /// lone) are left to serde.
    fn escape(&self, at: usize, out: &mut Vec<u8>) -> Option<usize> {
        let c = match *self.b.get(at)? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let hex = self.b.get(at + 1..at + 5)?;
                let mut v: u32 = 0;
                for &h in hex {
                    v = v * 16 + (h as char).to_digit(16)?;
                }
                let ch = char::from_u32(v)?; // None for surrogates
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                return Some(at + 5);
            }
            _ => return None,
        };
        out.push(c);
        Some(at + 1)
    }

    fn opt_string(&mut self) -> Option<Option<String>> {
        if self.null() {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// An integer as serde_json reads one into an integer field: no fraction, no exponent, no
    /// leading zeros. Values that need more than 18 digits are left to serde.
    fn integer(&mut self) -> Option<i64> {
        let neg = self.peek()? == b'-';
        if neg {
            self.i += 1;
        }
        let start = self.i;
        let mut v: i64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            if self.i - start == 18 {
                return None; // 19 digits or more: may not fit, serde's business
            }
            v = v * 10 + i64::from(d - b'0');
            self.i += 1;
        }
        let n = self.i - start;
        // serde_json reads "-0" as a float, which integer fields refuse.
        if n == 0 || (n > 1 && self.b[start] == b'0') || (neg && v == 0) {
            return None;
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(if neg { -v } else { v })
    }

    fn u32(&mut self) -> Option<u32> {
        if self.peek()? == b'-' {
            return None;
        }
        u32::try_from(self.integer()?).ok()
    }

    /// Skip the value of a key we do not read, checking its syntax as serde would. Nesting
    /// deeper than `DEPTH` is left to serde (and its recursion limit).
    fn skip_value(&mut self, depth: u32) -> Option<()> {
        const DEPTH: u32 = 32;
        match self.peek()? {
            b'"' => self.skip_string(),
            b'-' | b'0'..=b'9' => self.number(),
            open @ (b'{' | b'[') => {
                if depth >= DEPTH {
                    return None;
                }
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                self.ws();
                if self.peek()? == close {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    if open == b'{' {
                        self.skip_string()?;
                        self.colon()?;
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        c if c == close => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            _ => {
                for lit in [&b"null"[..], b"true", b"false"] {
                    if self.b[self.i..].starts_with(lit) {
                        self.i += lit.len();
                        return Some(());
                    }
                }
                None
            }
        }
    }

    fn skip_string(&mut self) -> Option<()> {
        self.expect(b'"')?;
        let mut end = self.i;
        loop {
            end += plain_len(&self.b[end..]);
            match self.b.get(end)? {
                b'"' => break,
                b'\\' => end = self.escape(end + 1, &mut Vec::new())?,
                _ => return None,
            }
        }
        self.i = end + 1;
        Some(())
    }

    /// Any JSON number, checked against the grammar.
    fn number(&mut self) -> Option<()> {
        let digits = |p: &mut Self| {
            let s = p.i;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.i += 1;
            }
            p.i > s
        };
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        if self.peek() == Some(b'0') {
            self.i += 1;
        } else if !digits(self) {
            return None;
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !digits(self) {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digits(self) {
                return None;
            }
        }
        Some(())
    }

    fn chunk(&mut self, memo: &mut ChunkMemo) -> Option<ChatChunk> {
        let n = memo.prefix.len();
        let resumed = n != 0 && self.b.len() > n && self.b[..n] == memo.prefix[..];
        let (mut c, mut seen, mut first) = if resumed {
            self.i = n;
            (memo.chunk.clone(), memo.seen, false)
        } else {
            self.ws();
            self.expect(b'{')?;
            (ChatChunk::default(), 0u32, true)
        };
        // `members!`'s loop, written out to start mid-object and to know where each member starts.
        loop {
            let member_start = self.i;
            if !self.more_members(first)? {
                break;
            }
            let key = self.key()?;
            self.colon()?;
            match key {
                b"id" => {
                    once(&mut seen, 1)?;
                    c.id = self.shared()?;
                }
                b"object" => {
                    once(&mut seen, 2)?;
                    self.skip_value(0)?;
                }
                b"created" => {
                    once(&mut seen, 4)?;
                    c.created = self.integer()?;
                }
                b"model" => {
                    once(&mut seen, 8)?;
                    c.model = self.shared()?;
                }
                b"system_fingerprint" => {
                    once(&mut seen, 16)?;
                    c.system_fingerprint = self.opt_shared()?;
                }
                b"service_tier" => {
                    once(&mut seen, 32)?;
                    c.service_tier = self.opt_shared()?;
                }
                b"choices" => {
                    // Remember the header unless there was none or it is the one just resumed from.
                    let remembered = resumed && member_start == n;
                    if !(first || remembered) {
                        memo.prefix.clear();
                        memo.prefix.extend_from_slice(&self.b[..member_start]);
                        memo.chunk.clone_from(&c);
                        memo.seen = seen;
                    }
                    once(&mut seen, 64)?;
                    if !self.null() {
                        c.choices = self.choices(&mut memo.choices)?;
                    }
                }
                // Present but null these are the defaults; anything else goes to serde.
                b"usage" | b"error" => {
                    once(&mut seen, if key == b"usage" { 128 } else { 256 })?;
                    if !self.null() {
                        return None;
                    }
                }
                // Groq sends `x_groq: {id}` on every chunk and its usage on the last one.
                b"x_groq" => {
                    once(&mut seen, 512)?;
                    if !self.null() {
                        c.x_groq = Some(Box::new(self.x_groq()?));
                    }
                }
                _ => self.skip_value(0)?,
            }
            first = false;
        }
        Some(c)
    }

    /// The `choices` array: from `memo` when it repeats the remembered bytes around one string,
    /// else parsed (and remembered, when it has the shape the memo keeps).
    fn choices(&mut self, memo: &mut ChoicesMemo) -> Option<Vec<ChunkChoice>> {
        let start = self.i;
        if !memo.before.is_empty() && self.b[start..].starts_with(&memo.before) {
            self.i = start + memo.before.len();
            if let Some(s) = self.string() {
                if self.b[self.i..].starts_with(&memo.after) {
                    self.i += memo.after.len();
                    memo.reused += 1;
                    let mut c = if memo.bare {
                        ChunkChoice {
                            index: memo.choice.index,
                            ..ChunkChoice::default()
                        }
                    } else {
                        memo.choice.clone()
                    };
                    // The hole's place exists: the remembered choice has it.
                    *memo.hole.of(&mut c.delta)? = Some(s);
                    return Some(vec![c]);
                }
            }
            self.i = start;
        }
        self.hole = None;
        let choices = self.array(Self::choice)?;
        if let ([one], Some((slot, open, close))) = (&choices[..], self.hole) {
            let mut choice = one.clone();
            let Some(place) = slot.of(&mut choice.delta) else {
                return Some(choices);
            };
            *place = None;
            memo.before.clear();
            memo.before.extend_from_slice(&self.b[start..open]);
            memo.after.clear();
            memo.after.extend_from_slice(&self.b[close..self.i]);
            memo.choice = choice;
            memo.bare = memo.choice
                == ChunkChoice {
                    index: one.index,
                    ..ChunkChoice::default()
                };
            memo.hole = slot;
        }
        Some(choices)
    }

    fn x_groq(&mut self) -> Option<XGroq> {
        let mut seen = 0u32;
        members!(self, |key| {
            if key == b"usage" {
                once(&mut seen, 1)?;
                if !self.null() {
                    return None;
                }
            } else {
                self.skip_value(0)?;
            }
        });
        Some(XGroq::default())
    }

    /// A JSON array whose elements `item` reads, each into a default value already in place (a
    /// choice is ~270 bytes: building it where it stays saves copying it there).
    fn array<T: Default>(&mut self, item: fn(&mut Self, &mut T) -> Option<()>) -> Option<Vec<T>> {
        self.expect(b'[')?;
        let mut out = Vec::with_capacity(1);
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(out);
        }
        loop {
            self.ws();
            out.push(T::default());
            item(self, out.last_mut()?)?;
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(out);
                }
                _ => return None,
            }
        }
    }

    fn choice(&mut self, c: &mut ChunkChoice) -> Option<()> {
        let mut seen = 0u32;
        members!(self, |key| {
            match key {
                b"index" => {
                    once(&mut seen, 1)?;
                    c.index = self.u32()?;
                }
                b"delta" => {
                    once(&mut seen, 2)?;
                    if !self.null() {
                        self.delta(&mut c.delta)?;
                    }
                }
                b"logprobs" => {
                    once(&mut seen, 4)?;
                    if !self.null() {
                        return None;
                    }
                }
                b"finish_reason" => {
                    once(&mut seen, 8)?;
                    c.finish_reason = self.opt_string()?;
                }
                b"native_finish_reason" => {
                    once(&mut seen, 16)?;
                    c.native_finish_reason = self.opt_string()?;
                }
                _ => self.skip_value(0)?,
            }
        });
        Some(())
    }

    fn delta(&mut self, d: &mut Delta) -> Option<()> {
        let mut seen = 0u32;
        members!(self, |key| {
            let (bit, slot) = match key {
                b"role" => (1, Slot::Role),
                b"content" => (2, Slot::Content),
                b"reasoning_content" => (4, Slot::ReasoningContent),
                b"refusal" => (8, Slot::Refusal),
                b"reasoning" => (16, Slot::Reasoning),
                b"reasoning_signature" => (32, Slot::ReasoningSignature),
                // Whole reasoning blocks: rare, and serde's to read.
                b"thinking_blocks" | b"annotations" => return None, // rare: serde takes them
                b"tool_calls" => {
                    once(&mut seen, 64)?;
                    if !self.null() {
                        d.tool_calls = Some(self.array(Self::tool_call)?);
                    }
                    continue;
                }
                _ => {
                    self.skip_value(0)?;
                    continue;
                }
            };
            once(&mut seen, bit)?;
            // `content` may also be a list of parts: not a string, so serde takes it.
            let open = self.i;
            let value = self.opt_string()?;
            if value.is_some() {
                self.hole = Some((slot, open, self.i));
            }
            *slot.of(d)? = value;
        });
        Some(())
    }

    fn tool_call(&mut self, t: &mut ToolCallDelta) -> Option<()> {
        t.index = MISSING_INDEX;
        let mut seen = 0u32;
        members!(self, |key| {
            match key {
                b"index" => {
                    once(&mut seen, 1)?;
                    t.index = self.u32()?;
                }
                b"id" => {
                    once(&mut seen, 2)?;
                    t.id = self.opt_string()?;
                }
                b"type" => {
                    once(&mut seen, 4)?;
                    t.kind = self.opt_string()?;
                }
                b"function" => {
                    once(&mut seen, 8)?;
                    if !self.null() {
                        t.function = Some(self.function()?);
                    }
                }
                _ => self.skip_value(0)?,
            }
        });
        Some(())
    }

    fn function(&mut self) -> Option<FunctionDelta> {
        let mut f = FunctionDelta::default();
        let mut seen = 0u32;
        members!(self, |key| {
            match key {
                b"name" => {
                    once(&mut seen, 1)?;
                    f.name = self.opt_string()?;
                }
                b"arguments" => {
                    once(&mut seen, 2)?;
                    let open = self.i;
                    f.arguments = self.opt_string()?;
                    if f.arguments.is_some() {
                        self.hole = Some((Slot::Arguments, open, self.i));
                    }
                }
                _ => self.skip_value(0)?,
            }
        });
        Some(f)
    }
}

/// Length of the run of bytes that need no attention inside a JSON string: stops at `"`, `\`
/// or a control character. Eight bytes at a time.
#[inline]
fn plain_len(s: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while i + 8 <= s.len() {
        let w = u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
        // A byte is flagged if it is '"' or '\\' (xor makes it zero) or below 0x20; bytes ≥ 0x80
        // (UTF-8) are masked out by `!w`.
        let quote = w ^ (ONES * u64::from(b'"'));
        let slash = w ^ (ONES * u64::from(b'\\'));
        let flags = (quote.wrapping_sub(ONES) & !quote)
            | (slash.wrapping_sub(ONES) & !slash)
            | (w.wrapping_sub(ONES * 0x20) & !w);
        let flags = flags & HIGH;
        if flags != 0 {
            return i + (flags.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < s.len() && !matches!(s[i], b'"' | b'\\' | 0..=0x1f) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::plain_len;

    fn naive(s: &[u8]) -> usize {
        s.iter()
            .position(|&c| matches!(c, b'"' | b'\\' | 0..=0x1f))
            .unwrap_or(s.len())
    }

    #[test]
    fn plain_len_stops_where_a_byte_by_byte_scan_does() {
        // Every stop byte (and neighbours that must not stop it: 0x20, 0x7f, UTF-8 bytes) at every
        // position of runs around the 8-byte steps.
        let stops = [b'"', b'\\', 0x00, 0x0a, 0x1f];
        let fillers = [b'a', b' ', 0x7f, 0x80, 0xc3, 0xff];
        for len in 0..40 {
            for &fill in &fillers {
                let plain = vec![fill; len];
                assert_eq!(plain_len(&plain), len);
                for at in 0..len {
                    for &stop in &stops {
                        let mut s = plain.clone();
                        s[at] = stop;
                        assert_eq!(plain_len(&s), naive(&s), "{s:?}");
                    }
                }
            }
        }
    }
}
