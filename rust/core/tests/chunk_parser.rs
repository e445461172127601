//! The hand-written chunk parser against serde, the definition of a chunk.
//!
//! Property: whenever `chunk_parser::parse` answers `Some(c)`, serde parses the same text to
//! `Ok(c)`. Checked on every `data:` payload of the OpenAI-format recordings (ours and, when
//! present, ../shared's), on hand-written edge cases, and on thousands of random mutations of
//! those payloads. A second check makes sure the fast path is actually taken on ordinary chunks.
//! A third holds the memo to the same answers: a chunk parsed after another (whose header and
//! `choices` bytes it may reuse) parses exactly as it does alone.

mod common;

use std::path::Path;

use common::{repo_root, shared_providers, Lcg};
use polystream_core::chunk_parser::{parse, parse_with, ChunkMemo};
use polystream_core::{ChatChunk, SseDecoder};

fn serde_parse(text: &str) -> Option<ChatChunk> {
    serde_json::from_str(text).ok()
}

/// Assert the property for one text; return whether the fast path took it.
fn check(text: &str, label: &str) -> bool {
    match parse(text) {
        None => false,
        Some(fast) => {
            let slow = serde_parse(text).unwrap_or_else(|| {
                panic!("{label}: fast path accepted what serde rejects: {text:?}")
            });
            assert_eq!(fast, slow, "{label}: fast and serde differ on {text:?}");
            true
        }
    }
}

/// Every `data:` payload that is a JSON object, from the `.sse` files of OpenAI-format providers.
fn payloads() -> Vec<(String, String)> {
    let mut dirs = vec![repo_root().join("tests/fixtures/providers")];
    dirs.extend(shared_providers());
    let openai_like = [
        "openai",
        "openai_compatible",
        "groq",
        "mistral",
        "deepseek",
        "openrouter",
        "together",
    ];
    let mut out = Vec::new();
    for root in dirs {
        for provider in openai_like {
            let Ok(entries) = std::fs::read_dir(root.join(provider)) else {
                continue;
            };
            let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for path in files
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "sse"))
            {
                collect(path, &mut out);
            }
        }
    }
    out
}

fn collect(path: &Path, out: &mut Vec<(String, String)>) {
    let body = std::fs::read(path).expect("readable fixture");
    let mut sse = SseDecoder::new();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let _ = sse.feed(&body, |ev| {
        if let Ok(text) = std::str::from_utf8(ev.data) {
            if text.trim_start().starts_with('{') {
                out.push((name.clone(), text.to_owned()));
            }
        }
        Ok(())
    });
}

#[test]
fn recordings_parse_identically_and_mostly_fast() {
    let all = payloads();
    assert!(
        all.len() > 200,
        "expected the recorded payloads, found {}",
        all.len()
    );
    let mut fast = 0;
    let mut ordinary = 0;
    for (name, text) in &all {
        let took = check(text, name);
        fast += usize::from(took);
        // An ordinary content delta: the fast path must take it.
        if text.contains("\"delta\":{\"content\":\"")
            && !text.contains("\"logprobs\":{")
            && !text.contains("\"usage\":{")
        {
            ordinary += 1;
            assert!(
                took,
                "{name}: the fast path skipped an ordinary chunk: {text}"
            );
        }
    }
    assert!(ordinary > 100, "too few ordinary chunks seen: {ordinary}");
    assert!(
        fast * 2 > all.len(),
        "fast path took only {fast} of {} payloads",
        all.len()
    );
}

#[test]
fn edge_cases() {
    // (text, whether the fast path takes it); either way `check` asserts agreement with serde.
    let cases: [(&str, bool); _] = [
        // escapes, decoded and left to serde
        (r#"{"id":"a","choices":[{"index":0,"delta":{"content":"line\nnext \"q\" \\ \/ \t \b \f \r \u00e9\u4e2d"}}]}"#, true),
        (r#"{"id":"a","choices":[{"delta":{"content":"\ud83d\ude00 surrogate pair"}}]}"#, false),
        (r#"{"id":"a","choices":[{"delta":{"content":"\ud83d lone"}}]}"#, false),
        (r#"{"id":"a","choices":[{"delta":{"content":"bad \x escape"}}]}"#, false),
        (r#"{"id":"a","choices":[{"delta":{"content":"raw	tab"}}]}"#, false),
        (r#"{"id":"a\"b","model":"m\u0041"}"#, true),
        (r#"{"i\u0064":"escaped key"}"#, false),
        // annotations (url citations): left to serde, and kept
        (r#"{"id":"a","choices":[{"index":0,"delta":{"content":"x","annotations":[{"type":"url_citation","url_citation":{"url":"https://a","title":"A","start_index":0,"end_index":1}}]}}]}"#, false),
        // whitespace everywhere
        (" {\n \"id\" : \"x\" ,\r\n\t\"created\" :\t12 , \"choices\" : [ { \"index\" : 1 , \"delta\" : { } } ] } \n", true),
        // duplicates: serde rejects known ones, ignores unknown ones
        (r#"{"id":"a","id":"b"}"#, false),
        (r#"{"object":"x","object":"y"}"#, false),
        (r#"{"foo":1,"foo":2,"id":"a"}"#, true),
        (r#"{"choices":[{"index":0,"index":1}]}"#, false),
        (r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#, false),
        // numbers
        (r#"{"created":-5}"#, true),
        (r#"{"created":-0}"#, false),
        (r#"{"created":012}"#, false),
        (r#"{"created":1.5}"#, false),
        (r#"{"created":1e3}"#, false),
        (r#"{"created":99999999999999999999}"#, false),
        (r#"{"created":"1"}"#, false),
        (r#"{"choices":[{"index":-1}]}"#, false),
        (r#"{"choices":[{"index":4294967296}]}"#, false),
        (r#"{"choices":[{"index":4294967295}]}"#, true),
        (r#"{"x":-0.5e+3,"y":0,"z":-1E-2,"id":"n"}"#, true),
        (r#"{"x":-,"id":"n"}"#, false),
        (r#"{"x":1.,"id":"n"}"#, false),
        (r#"{"x":.5}"#, false),
        (r#"{"x":01}"#, false),
        // nulls and types
        (r#"{"id":null}"#, false),
        (r#"{"model":null}"#, false),
        (r#"{"system_fingerprint":null,"service_tier":null,"usage":null,"error":null,"x_groq":null,"choices":null}"#, true),
        (r#"{"choices":[{"delta":null,"logprobs":null,"finish_reason":null}]}"#, true),
        (r#"{"choices":[{"delta":{"role":null,"content":null,"refusal":null,"tool_calls":null}}]}"#, true),
        (r#"{"choices":[{"delta":{"content":[{"type":"text","text":"parts"}]}}]}"#, false),
        (r#"{"choices":[{"delta":{"content":1}}]}"#, false),
        (r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}}]}"#, true),
        (r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{\"a\":1}"}}]}}]}"#, true),
        (r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":null},{"index":1,"extra":true}]}}]}"#, true),
        (r#"{"choices":[{"delta":{"tool_calls":[]}}],"usage":{"prompt_tokens":1}}"#, false),
        (r#"{"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#, false),
        (r#"{"error":{"message":"boom"}}"#, false),
        (r#"{"x_groq":{"id":"req"}}"#, true),
        (r#"{"choices":[{"logprobs":{"content":[]}}]}"#, false),
        (r#"{"prompt_filter_results":[{"prompt_index":0}],"choices":[]}"#, true),
        (r#"{"unknown":true,"other":false,"n":null,"s":"v\"","id":"u"}"#, true),
        // syntax errors
        (r#"{"id":"a",}"#, false),
        (r#"{"id":"a""model":"b"}"#, false),
        (r#"{"id":"a"} trailing"#, false),
        (r#"{"id":"a"}}"#, false),
        (r#"{"id":"a""#, false),
        (r#"{"id":"a"#, false),
        (r#"{"choices":[{"index":0},]}"#, false),
        (r#"{"choices":[{"index":0}"#, false),
        (r#"{"choices":[{"index":0} {"index":1}]}"#, false),
        (r#"[]"#, false),
        (r#""#, false),
        (r#"{"id":tru}"#, false),
        (r#"{"x":nul}"#, false),
        (r#"{"x":truex}"#, false),
    ];
    for (i, (text, fast)) in cases.iter().enumerate() {
        assert_eq!(
            check(text, &format!("case {i}")),
            *fast,
            "case {i}: fast path taken? {text:?}"
        );
    }
}

/// Each recording's payloads in order through one memo, as the dialect parses them: every answer
/// equals the memo-less one, consecutive chunks of a stream share their id's allocation, and most
/// `choices` arrays come from the memo.
#[test]
fn memo_changes_nothing_but_sharing() {
    let all = payloads();
    let mut memo = ChunkMemo::default();
    let mut prev: Option<(String, ChatChunk)> = None;
    let mut shared = 0;
    for (name, text) in &all {
        let with = parse_with(text, &mut memo);
        assert_eq!(
            with,
            parse(text),
            "{name}: the memo changed the answer for {text:?}"
        );
        let Some(chunk) = with else { continue };
        if let Some((prev_name, p)) = &prev {
            if prev_name == name && !p.id.is_empty() && p.id == chunk.id {
                shared += usize::from(std::ptr::eq(p.id.as_str(), chunk.id.as_str()));
            }
        }
        prev = Some((name.clone(), chunk));
    }
    assert!(
        shared > 100,
        "consecutive chunks shared their id only {shared} times"
    );
    assert!(
        memo.choices_reused() > 100,
        "only {} choices arrays came from the memo",
        memo.choices_reused()
    );
}

/// A memo primed with one payload, then a mutant of it: the memo resumes exactly when the edit
/// lies after the remembered header (and reuses `choices` when the edit lies in its hole), and
/// either way the answer is the memo-less one.
#[test]
fn memo_on_mutants() {
    let all = payloads();
    let mut rng = Lcg::new(0x3e30);
    let mut resumed_like = 0usize;
    for (name, text) in all.iter().take(1_000) {
        let Some(at) = text.find(",\"choices\"") else {
            continue;
        };
        for _ in 0..10 {
            let mut m = text.as_bytes().to_vec();
            let pos = rng.below(m.len());
            m[pos] = b"\"{}[],:0a "[rng.below(10)];
            let Ok(t) = std::str::from_utf8(&m) else {
                continue;
            };
            let mut memo = ChunkMemo::default();
            let _ = parse_with(text, &mut memo);
            let with = parse_with(t, &mut memo);
            assert_eq!(
                with,
                parse(t),
                "{name}: primed memo changed the answer for {t:?}"
            );
            if let Some(c) = &with {
                assert_eq!(Some(c), serde_parse(t).as_ref(), "{name}: {t:?}");
            }
            resumed_like += usize::from(pos > at);
        }
    }
    assert!(
        resumed_like > 1_000,
        "too few edits after the header: {resumed_like}"
    );
}

/// The `choices` memo's hole: a payload, then the same payload with its last delta string (or
/// tool call arguments) replaced (escapes, multi-byte text, quotes, an empty string, a surrogate pair serde must read,
/// null, a list of parts, a number) or with bytes edited on either side of it. Every answer is
/// the memo-less one, and the memo is used exactly when only the string changed.
#[test]
fn choices_memo_hole() {
    let replacements = [
        r#""""#,
        r#""plain text""#,
        r#""caf\u00e9 \"quoted\" back\\slash\n""#,
        "\"日本語 — ✓\"",
        r#""\ud83d\ude00""#,
        r#""\u0000""#,
        "null",
        r#"[{"type":"text","text":"x"}]"#,
        "7",
        r#""unterminated"#,
    ];
    let mut reused_cases = 0;
    let mut reused_arguments = 0;
    let mut checked = 0;
    for (name, text) in payloads().iter().take(3_000) {
        // The last delta string (or arguments) of a one-choice chunk: where the memo cuts its hole.
        let Some(chunk) = parse(text) else { continue };
        if chunk.choices.len() != 1 {
            continue;
        }
        let Some(key_at) = [
            "\"content\":\"",
            "\"reasoning_content\":\"",
            "\"reasoning\":\"",
            "\"arguments\":\"",
        ]
        .iter()
        .filter_map(|k| text.rfind(k).map(|at| at + k.len() - 1))
        .max() else {
            continue;
        };
        let Some(close) = string_end(text.as_bytes(), key_at) else {
            continue;
        };
        for new in replacements {
            let t = format!("{}{}{}", &text[..key_at], new, &text[close..]);
            let mut memo = ChunkMemo::default();
            let _ = parse_with(text, &mut memo);
            let before = memo.choices_reused();
            let with = parse_with(&t, &mut memo);
            assert_eq!(with, parse(&t), "{name}: memo changed the answer for {t:?}");
            if let Some(c) = &with {
                assert_eq!(Some(c), serde_parse(&t).as_ref(), "{name}: {t:?}");
            }
            if memo.choices_reused() > before {
                reused_cases += 1;
                reused_arguments += usize::from(text[..key_at].ends_with("\"arguments\":"));
                assert!(new.starts_with('"'), "{name}: reused around {new}");
            }
            checked += 1;
        }
        // Whitespace on either side of the string, or any edit after it: never reused, same answer.
        for (at, byte) in [
            (key_at - 1, b' '),
            (key_at, b' '),
            (close, b' '),
            (close + 1, b'x'),
        ] {
            let mut m = text.as_bytes().to_vec();
            m.insert(at.min(m.len()), byte);
            let t = String::from_utf8(m).expect("ASCII edit");
            let mut memo = ChunkMemo::default();
            let _ = parse_with(text, &mut memo);
            let before = memo.choices_reused();
            assert_eq!(parse_with(&t, &mut memo), parse(&t), "{name}: {t:?}");
            assert_eq!(
                memo.choices_reused(),
                before,
                "{name}: reused despite {t:?}"
            );
        }
    }
    assert!(checked > 1_000, "too few payloads with a hole: {checked}");
    assert!(
        reused_cases > 500,
        "the memo was reused only {reused_cases} times"
    );
    assert!(
        reused_arguments > 50,
        "tool call arguments were reused only {reused_arguments} times"
    );
}

/// The index after the JSON string whose opening quote is at `open`.
fn string_end(b: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Random single edits of real payloads: inserted, deleted, doubled or swapped bytes biased
/// towards JSON's structural characters.
#[test]
fn random_mutations_never_disagree() {
    const ALPHABET: &[u8] = b"\"\\{}[],: \n0123456789-+.eEnultrfa\x01\x1fu/";
    let all = payloads();
    let mut rng = Lcg::new(0x5eed);
    let mut accepted = 0usize;
    let mut total = 0usize;
    for (name, text) in all.iter().take(2_000) {
        let bytes = text.as_bytes();
        for _ in 0..25 {
            let mut m = bytes.to_vec();
            for _ in 0..=rng.below(2) {
                let at = rng.below(m.len() + 1);
                match rng.below(5) {
                    0 if at < m.len() => {
                        m.remove(at);
                    }
                    1 => m.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
                    2 if at < m.len() => m[at] = ALPHABET[rng.below(ALPHABET.len())],
                    3 => {
                        let end = (at + rng.below(24)).min(m.len());
                        let piece = m[at..end].to_vec();
                        m.splice(at..at, piece);
                    }
                    _ => {
                        let mid = rng.below(m.len() + 1);
                        let (a, b) = (at.min(mid), at.max(mid));
                        if b < m.len() {
                            m.swap(a, b);
                        }
                    }
                }
            }
            let Ok(t) = std::str::from_utf8(&m) else {
                continue;
            };
            total += 1;
            accepted += usize::from(check(t, name));
        }
    }
    assert!(total > 10_000, "too few mutants: {total}");
    // Many single edits land inside string values and stay valid: the fast path must see those.
    assert!(
        accepted > total / 10,
        "fast path accepted only {accepted} of {total} mutants"
    );
}

#[test]
fn annotations_are_kept_and_accumulated() {
    use polystream_core::Accumulator;
    let cite = |url: &str| {
        format!(
            r#"{{"type":"url_citation","url_citation":{{"url":"{url}","title":"T","start_index":0,"end_index":2}}}}"#
        )
    };
    let texts = [
        r#"{"id":"a","choices":[{"index":0,"delta":{"role":"assistant","content":"hi"}}]}"#
            .to_owned(),
        format!(
            r#"{{"id":"a","choices":[{{"index":0,"delta":{{"content":" there","annotations":[{}]}}}}]}}"#,
            cite("https://a")
        ),
        format!(
            r#"{{"id":"a","choices":[{{"index":0,"delta":{{"content":"!","annotations":[{}]}},"finish_reason":"stop"}}]}}"#,
            cite("https://b")
        ),
    ];
    let mut acc = Accumulator::default();
    let mut memo = ChunkMemo::default();
    for t in &texts {
        let chunk = parse_with(t, &mut memo)
            .or_else(|| serde_parse(t))
            .expect("parses");
        assert_eq!(chunk, serde_parse(t).unwrap());
        acc.add(&chunk);
    }
    let msg = &acc.snapshot().choices[0].message;
    let urls: Vec<&str> = msg
        .annotations
        .as_ref()
        .expect("annotations kept")
        .iter()
        .map(|a| a["url_citation"]["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls, ["https://a", "https://b"]);
    assert_eq!(msg.content.as_deref(), Some("hi there!"));
    let json = serde_json::to_value(msg).unwrap();
    assert_eq!(json["annotations"][1]["url_citation"]["url"], "https://b");
}
