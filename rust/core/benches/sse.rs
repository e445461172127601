//! Throughput of the core alone, no Python: `cargo bench -p polystream-core --bench sse`.
//!
//! One generated OpenAI-style `chat.completion.chunk` stream (16 MB by default; set
//! `POLYSTREAM_BENCH_MB` to change it), the same shape as `benches/sse_bench.py` uses:
//! - `sse/64KiB_feeds`, `sse/1-event_feeds`: [`SseDecoder`] in bytes/s; the callback counts events
//!   and sums their data lengths, so the work cannot be optimised away.
//! - `chunk_decoder/openai_chat_64KiB_feeds`: [`ChunkDecoder`] (SSE + full JSON decode to
//!   `ChatChunk`) in chunks/s.
//!
//! Every run checks the event / chunk count, so a broken decoder cannot post a figure.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use polystream_core::{ChatChunk, ChunkDecoder, SseDecoder};

const PIECE: usize = 64 * 1024;

/// A small deterministic PRNG (xorshift64*), so the stream is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "it",
    "for",
    "as",
    "with",
    "was",
    "on",
    "be",
    "by",
    "this",
    "are",
    "or",
    "from",
    "at",
    "an",
    "which",
    "but",
    "not",
    "have",
    "has",
    "can",
    "will",
    "if",
    "more",
    "when",
    "all",
    "there",
    "so",
    "about",
    "one",
    "would",
    "each",
    "into",
    "out",
    "up",
    "time",
    "stream",
    "decoder",
    "token",
    "model",
    "response",
    "function",
    "value",
    "request",
    "server",
    "event",
    "chunk",
    "latency",
    "throughput",
    "buffer",
    "parser",
    "python",
    "rust",
    "benchmark",
];
const PUNCT: &[&str] = &[".", ",", ";", ":", "!", "?", ")", "(", "'s", "-"];
/// Already JSON-escaped where needed (newlines, quotes, backslashes), raw UTF-8 otherwise.
const EXOTIC: &[&str] = &[
    "\\n",
    "\\n\\n",
    "\\\"",
    "\\\\",
    "\\t",
    "é",
    "ü",
    "—",
    "…",
    "’",
    "中文",
    "日本語",
    "🙂",
    "🚀",
    "→",
    "```",
    "**",
    "42",
    "3.14",
];

/// Returns (the stream, its number of events, its number of chunks).
fn make_stream(target: usize) -> (Vec<u8>, usize, usize) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let head =
        "{\"id\":\"chatcmpl-AbCdEfGhIjKlMnOpQrStUvWxYz012\",\"object\":\"chat.completion.chunk\",\
                \"created\":1730419200,\"model\":\"gpt-4o-2024-08-06\",\
                \"system_fingerprint\":\"fp_f3927aa00d\",\"choices\":[{\"index\":0,";
    let mut out = Vec::with_capacity(target + 4096);
    let mut events = 0;
    let mut push = |out: &mut Vec<u8>, json: &str| {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(json.as_bytes());
        out.extend_from_slice(b"\n\n");
        events += 1;
    };
    push(
        &mut out,
        &format!(
            "{head}\"delta\":{{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}},\
             \"logprobs\":null,\"finish_reason\":null}}]}}"
        ),
    );
    let mut content = String::new();
    while out.len() < target {
        content.clear();
        let r = rng.below(100);
        if r < 72 {
            if rng.below(100) < 85 {
                content.push(' ');
            }
            content.push_str(rng.pick(WORDS));
        } else if r < 84 {
            content.push_str(rng.pick(PUNCT));
        } else if r < 97 {
            content.push_str(rng.pick(EXOTIC));
        } else {
            for _ in 0..2 + rng.below(7) {
                content.push(' ');
                content.push_str(rng.pick(WORDS));
            }
        }
        push(
            &mut out,
            &format!(
                "{head}\"delta\":{{\"content\":\"{content}\"}},\"logprobs\":null,\"finish_reason\":null}}]}}"
            ),
        );
    }
    push(
        &mut out,
        &format!("{head}\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"stop\"}}]}}"),
    );
    push(&mut out, "[DONE]");
    (out, events, events - 1)
}

/// Split the stream after every event's blank line.
fn one_event_pieces(stream: &[u8]) -> Vec<&[u8]> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for i in memchr::memmem::find_iter(stream, b"\n\n") {
        pieces.push(&stream[start..i + 2]);
        start = i + 2;
    }
    assert_eq!(start, stream.len());
    pieces
}

fn decode_sse<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> (usize, usize) {
    let mut dec = SseDecoder::new();
    let (mut n, mut bytes) = (0usize, 0usize);
    for p in pieces {
        dec.feed(black_box(p), |ev| {
            n += 1;
            bytes += ev.data.len();
            Ok(())
        })
        .unwrap();
    }
    dec.finish().unwrap();
    (n, bytes)
}

fn decode_chunks<'a>(pieces: impl Iterator<Item = &'a [u8]>, out: &mut Vec<ChatChunk>) -> usize {
    let mut dec = ChunkDecoder::new("openai_chat").unwrap();
    let mut n = 0;
    for p in pieces {
        dec.feed(black_box(p), out).unwrap();
        n += out.len();
        black_box(&*out);
        out.clear();
    }
    dec.finish(out).unwrap();
    n + out.len()
}

fn benches(c: &mut Criterion) {
    let mb: f64 = std::env::var("POLYSTREAM_BENCH_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16.0);
    let (stream, events, chunks) = make_stream((mb * 1e6) as usize);
    let events_pieces = one_event_pieces(&stream);
    assert_eq!(events_pieces.len(), events);
    eprintln!(
        "stream: {:.1} MB, {} events, {:.0} B/event",
        stream.len() as f64 / 1e6,
        events,
        stream.len() as f64 / events as f64
    );

    let mut g = c.benchmark_group("sse");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.bench_function("64KiB_feeds", |b| {
        b.iter(|| {
            let (n, _) = decode_sse(stream.chunks(PIECE));
            assert_eq!(n, events);
        })
    });
    g.bench_function("1-event_feeds", |b| {
        b.iter(|| {
            let (n, _) = decode_sse(events_pieces.iter().copied());
            assert_eq!(n, events);
        })
    });
    g.finish();

    let mut g = c.benchmark_group("chunk_decoder");
    g.throughput(Throughput::Elements(chunks as u64));
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    let mut out = Vec::with_capacity(1024);
    g.bench_function("openai_chat_64KiB_feeds", |b| {
        b.iter(|| {
            let n = decode_chunks(stream.chunks(PIECE), &mut out);
            assert_eq!(n, chunks);
        })
    });
    g.finish();
}

criterion_group!(sse, benches);
criterion_main!(sse);
