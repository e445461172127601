//! Every SSE conformance vector (../shared/fixtures/sse/vectors.json when present, plus the
//! project's own tests/fixtures/sse/vectors.json) fed whole, one byte at a time, at every 2-way
//! split, at random splits and at the vector's own split: the events and final retry must match.

use std::path::{Path, PathBuf};

use base64::Engine;
use polystream_core::{OwnedEvent, SseDecoder};
use serde_json::Value;

struct Case {
    name: String,
    input: Vec<u8>,
    chunks: Option<Vec<Vec<u8>>>,
    events: Vec<OwnedEvent>,
    final_retry: Option<u64>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("valid base64")
}

fn load(path: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cases: Vec<Value> = serde_json::from_str(&text).expect("vectors are JSON");
    cases
        .into_iter()
        .map(|c| {
            let input = match (c.get("input"), c.get("input_b64")) {
                (Some(Value::String(s)), _) => s.as_bytes().to_vec(),
                (_, Some(Value::String(s))) => b64(s),
                _ => panic!("case without input"),
            };
            let chunks = match (c.get("chunks"), c.get("chunks_b64")) {
                (Some(Value::Array(a)), _) => Some(
                    a.iter()
                        .map(|s| s.as_str().unwrap().as_bytes().to_vec())
                        .collect(),
                ),
                (_, Some(Value::Array(a))) => {
                    Some(a.iter().map(|s| b64(s.as_str().unwrap())).collect())
                }
                _ => None,
            };
            let events = c["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| OwnedEvent {
                    event: e["type"].as_str().unwrap().to_owned(),
                    data: e["data"].as_str().unwrap().to_owned(),
                    id: e["id"].as_str().unwrap().to_owned(),
                    retry: e.get("retry").and_then(Value::as_u64),
                })
                .collect();
            Case {
                name: c["name"].as_str().unwrap().to_owned(),
                input,
                chunks,
                events,
                final_retry: c["final_retry"].as_u64(),
            }
        })
        .collect()
}

fn cases() -> Vec<Case> {
    let mut all = load(&repo_root().join("tests/fixtures/sse/vectors.json"));
    let shared = repo_root().join("../shared/fixtures/sse/vectors.json");
    if shared.exists() {
        let n = all.len();
        all.extend(load(&shared));
        assert!(
            all.len() - n >= 100,
            "shared vectors present but fewer than expected"
        );
    } else {
        eprintln!(
            "note: {} not present; running the project's own vectors only",
            shared.display()
        );
    }
    all
}

fn run(pieces: &[&[u8]]) -> (Vec<OwnedEvent>, Option<u64>) {
    let mut d = SseDecoder::new();
    let mut out = Vec::new();
    for p in pieces {
        d.feed_owned(p, &mut out)
            .expect("no error on conformance input");
    }
    d.finish().unwrap();
    (out, d.reconnection_time())
}

fn check(case: &Case, pieces: &[&[u8]], how: &str) {
    let (events, retry) = run(pieces);
    // The vectors only state `retry` where it matters; compare it only there.
    let got: Vec<OwnedEvent> = events
        .into_iter()
        .zip(
            case.events
                .iter()
                .map(|e| e.retry.is_some())
                .chain(std::iter::repeat(false)),
        )
        .map(|(mut e, keep)| {
            if !keep {
                e.retry = None;
            }
            e
        })
        .collect();
    assert_eq!(got, case.events, "case {} ({how})", case.name);
    assert_eq!(
        retry, case.final_retry,
        "case {} final_retry ({how})",
        case.name
    );
}

/// A small deterministic PRNG: the splits are reproducible without a dependency.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

#[test]
fn vectors_whole() {
    for c in cases() {
        check(&c, &[&c.input], "whole");
    }
}

#[test]
fn vectors_given_chunks() {
    for c in cases() {
        if let Some(chunks) = &c.chunks {
            assert_eq!(
                chunks.concat(),
                c.input,
                "case {}: chunks concatenate to input",
                c.name
            );
            let pieces: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            check(&c, &pieces, "given chunks");
        }
    }
}

#[test]
fn vectors_one_byte_at_a_time() {
    for c in cases() {
        let pieces: Vec<&[u8]> = c.input.chunks(1).collect();
        check(&c, &pieces, "1-byte");
    }
}

#[test]
fn vectors_every_two_way_split() {
    for c in cases() {
        // Long inputs: every split near the ends, then a stride, so the test stays linear-ish.
        let n = c.input.len();
        let splits = (0..=n).filter(|&i| n <= 4096 || i < 512 || n - i < 512 || i % 997 == 0);
        for i in splits {
            let (a, b) = c.input.split_at(i);
            check(&c, &[a, b], &format!("split at {i}"));
        }
    }
}

#[test]
fn vectors_random_splits_with_empty_feeds() {
    let mut rng = Lcg(0x5eed);
    for c in cases() {
        for round in 0..50 {
            let mut pieces: Vec<&[u8]> = Vec::new();
            let mut rest = c.input.as_slice();
            while !rest.is_empty() {
                let n = rng.next(8).min(rest.len()); // 0 gives an empty feed
                let (a, b) = rest.split_at(n);
                pieces.push(a);
                rest = b;
            }
            check(&c, &pieces, &format!("random round {round}"));
        }
    }
}
