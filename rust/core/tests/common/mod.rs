//! Shared by the dialect tests: decoding a body under many byte splits.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use polystream_core::{Accumulator, ChatChunk, ChatCompletion, ChunkDecoder, Error};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `../shared/fixtures/providers` beside the checkout, when present (CI has it).
pub fn shared_providers() -> Option<PathBuf> {
    let p = repo_root().join("../shared/fixtures/providers");
    p.is_dir().then_some(p)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub chunks: Vec<ChatChunk>,
    pub completion: ChatCompletion,
    pub error: Option<Error>,
    pub done: bool,
}

pub fn decode(dialect: &str, pieces: &[&[u8]]) -> Outcome {
    let mut d = ChunkDecoder::new(dialect).expect("dialect exists");
    let mut chunks = Vec::new();
    let mut error = None;
    for p in pieces {
        if let Err(e) = d.feed(p, &mut chunks) {
            error = Some(e);
            break;
        }
    }
    if error.is_none() {
        error = d.finish(&mut chunks).err();
    }
    let mut acc = Accumulator::new();
    for c in &chunks {
        acc.add(c);
    }
    Outcome {
        completion: acc.snapshot(),
        chunks,
        error,
        done: d.is_done(),
    }
}

/// Deterministic pseudo-random numbers (64-bit LCG, Knuth's constants).
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Lcg(seed
            .wrapping_mul(2862933555777941757)
            .wrapping_add(3037000493))
    }
    pub fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

/// Cut `input` at the given offsets.
pub fn cut<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::with_capacity(cuts.len() + 1);
    let mut at = 0;
    for &c in cuts {
        pieces.push(&input[at..c]);
        at = c;
    }
    pieces.push(&input[at..]);
    pieces
}

/// Decode whole, one byte at a time, at 2-way splits (every one for small bodies) and at random
/// splits; every way must give the same chunks, completion and error. Returns the whole-body outcome.
pub fn decode_every_way(dialect: &str, input: &[u8], label: &str) -> Outcome {
    let whole = decode(dialect, &[input]);
    assert_sse_writer_writes_each_chunks_json(&whole.chunks, label);
    let check = |pieces: &[&[u8]], how: &str| {
        let got = decode(dialect, pieces);
        assert!(
            got == whole,
            "{label}: {how} differs from the whole-body decode\n got: {got:?}\nwant: {whole:?}"
        );
    };
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    check(&bytes, "1-byte split");
    let step = if input.len() <= 512 {
        1
    } else {
        input.len() / 47 + 1
    };
    for c in (0..=input.len()).step_by(step) {
        check(&cut(input, &[c]), &format!("2-way split at {c}"));
    }
    for seed in 0..4u64 {
        let mut rng = Lcg::new(seed);
        let max_piece = [2, 7, 64, 4096][seed as usize % 4];
        let mut cuts = Vec::new();
        let mut at = 0;
        loop {
            at += 1 + rng.below(max_piece);
            if at >= input.len() {
                break;
            }
            cuts.push(at);
        }
        check(&cut(input, &cuts), &format!("random split (seed {seed})"));
    }
    whole
}

/// SseWriter's events are each chunk's own JSON, header memo or not.
pub fn assert_sse_writer_writes_each_chunks_json(chunks: &[ChatChunk], label: &str) {
    let mut writer = polystream_core::sse_writer::SseWriter::new();
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for c in chunks {
        writer.write(c, &mut got);
        want.extend_from_slice(b"data: ");
        want.extend(serde_json::to_vec(c).unwrap());
        want.extend_from_slice(b"\n\n");
    }
    assert!(
        got == want,
        "{label}: SseWriter differs from the chunks' JSON"
    );
}
