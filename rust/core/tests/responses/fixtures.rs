//! Recorded chat fixtures through the builder (checked against the Accumulator), and the JSON
//! dump for `tests/support/validate_responses.py`.

use std::path::{Path, PathBuf};

use polystream_core::responses::{ResponseEvent, ResponsesBuilder};
use polystream_core::{Accumulator, ChatChunk, ChunkDecoder, Error};
use serde_json::{json, Value};

use crate::support::*;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/providers")
}

/// Recorded provider streams with the dialect that decodes them (none when the shared fixtures
/// are absent; dialects this build lacks are skipped).
fn chat_fixtures() -> Vec<(PathBuf, &'static str)> {
    const DIRS: &[(&str, &str)] = &[
        ("openai", "openai_chat"),
        ("openai_compatible", "openai_chat"),
        ("groq", "openai_chat"),
        ("mistral", "openai_chat"),
        ("anthropic", "anthropic"),
        ("gemini", "gemini"),
        ("cohere", "cohere"),
        ("ollama", "ollama"),
        ("openai_responses", "openai_responses"),
        ("bedrock", "bedrock_converse"),
    ];
    let mut files = Vec::new();
    for (dir, dialect) in DIRS {
        if ChunkDecoder::new(dialect).is_err() {
            continue;
        }
        let Ok(rd) = std::fs::read_dir(fixtures_dir().join(dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("sse" | "ndjson" | "eventstream")
            ) {
                files.push((p, *dialect));
            }
        }
    }
    files.sort();
    files
}

/// Decode a fixture and drive a builder and an Accumulator with the same chunks, ending the way
/// a producer would: decoder error → `fail`, otherwise `finish`.
fn drive_fixture(
    path: &Path,
    dialect: &str,
    b: &mut ResponsesBuilder,
) -> (Vec<ResponseEvent>, Accumulator, bool) {
    let bytes = std::fs::read(path).unwrap();
    let mut dec = ChunkDecoder::new(dialect).unwrap();
    let mut chunks = Vec::new();
    let res = dec
        .feed(&bytes, &mut chunks)
        .and_then(|_| dec.finish(&mut chunks));
    let mut acc = Accumulator::new();
    let mut out = Vec::new();
    for c in &chunks {
        acc.add(c);
        b.on_chunk(c, &mut out);
    }
    let errored = res.is_err();
    match res {
        Ok(()) => {
            b.finish(&mut out);
        }
        Err(Error::Provider { message, code, .. }) => {
            b.fail(
                code.as_deref().unwrap_or("server_error"),
                &message,
                &mut out,
            );
        }
        Err(e) => {
            b.fail("server_error", &e.to_string(), &mut out);
        }
    }
    (out, acc, errored)
}

#[test]
fn recorded_chat_streams_match_the_accumulator() {
    let files = chat_fixtures();
    for (path, dialect) in &files {
        let name = path.file_name().unwrap().to_string_lossy();
        let mut b = builder();
        let (ev, acc, errored) = drive_fixture(path, dialect, &mut b);
        let snap = check(&b, &ev);
        let done = acc.snapshot();
        let Some(choice) = done.choices.iter().find(|c| c.index == 0) else {
            continue;
        };
        let m = &choice.message;
        assert_eq!(
            b.output_text(),
            m.content.as_deref().unwrap_or(""),
            "{name}: text"
        );
        let items = snap["output"].as_array().unwrap();
        let calls: Vec<(&str, &str)> = items
            .iter()
            .filter(|i| i["type"] == "function_call")
            .map(|i| {
                (
                    i["name"].as_str().unwrap(),
                    i["arguments"].as_str().unwrap(),
                )
            })
            .collect();
        let expect: Vec<(&str, &str)> = m
            .tool_calls
            .iter()
            .flatten()
            .map(|t| (t.function.name.as_str(), t.function.arguments.as_str()))
            .collect();
        assert_eq!(calls, expect, "{name}: tool calls");
        let reasoning: String = items
            .iter()
            .filter(|i| i["type"] == "reasoning")
            .map(|i| i["summary"][0]["text"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            reasoning,
            m.reasoning_content.clone().unwrap_or_default(),
            "{name}: reasoning"
        );
        let refusal: String = items
            .iter()
            .filter_map(|i| i["content"].as_array())
            .flatten()
            .filter_map(|p| p["refusal"].as_str())
            .collect();
        assert_eq!(
            refusal,
            m.refusal.clone().unwrap_or_default(),
            "{name}: refusal"
        );
        let expected_status = match choice.finish_reason.as_deref() {
            _ if errored => "failed",
            Some("length") | Some("content_filter") => "incomplete",
            Some("error") | None => "failed",
            Some(_) => "completed",
        };
        assert_eq!(
            snap["status"], expected_status,
            "{name}: finish {:?}",
            choice.finish_reason
        );
        if let Some(u) = &done.usage {
            assert_eq!(
                snap["usage"]["input_tokens"],
                json!(u.prompt_tokens),
                "{name}"
            );
            assert_eq!(
                snap["usage"]["output_tokens"],
                json!(u.completion_tokens),
                "{name}"
            );
        }
    }
}

// ---- JSON for the SDK validator ---------------------------------------------------------------

fn dump_dir() -> PathBuf {
    std::env::var_os("POLYSTREAM_RESPONSES_DUMP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("polystream-responses-dump"))
}

/// One file per stream: `{"name", "events": [...], "snapshots": [...], "output_text"}`, with a
/// snapshot after every chunk-driven step so partial bodies get validated too.
fn dump(
    dir: &Path,
    name: &str,
    b: &ResponsesBuilder,
    events: &[ResponseEvent],
    snapshots: Vec<Value>,
) {
    let mut snaps = snapshots;
    snaps.push(serde_json::to_value(b.snapshot()).unwrap());
    let doc = json!({"name": name, "events": to_json(events), "snapshots": snaps, "output_text": b.output_text()});
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_vec_pretty(&doc).unwrap(),
    )
    .unwrap();
}

fn scripted(name: &str, b: &mut ResponsesBuilder, chunks: &[ChatChunk], end: &str, dir: &Path) {
    let mut out = Vec::new();
    let mut snaps = Vec::new();
    b.start(&mut out);
    snaps.push(serde_json::to_value(b.snapshot()).unwrap());
    for c in chunks {
        b.on_chunk(c, &mut out);
        snaps.push(serde_json::to_value(b.snapshot()).unwrap());
    }
    match end {
        "finish" => {
            b.finish(&mut out);
        }
        "fail" => {
            b.fail(
                "server_error",
                "upstream provider closed the stream",
                &mut out,
            );
        }
        "cancel" => {
            b.cancel(&mut out);
        }
        _ => {}
    }
    check(b, &out);
    dump(dir, name, b, &out, snaps);
}

#[test]
fn dump_streams_for_sdk_validation() {
    let dir = dump_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let req = json!({"model": "gpt-4o", "input": "hi", "background": true, "instructions": "Be brief.",
                     "metadata": {"user": "42"}, "tools": [{"type": "function", "name": "get_weather",
                     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]});
    scripted(
        "text",
        &mut builder(),
        &[
            text("Hello"),
            text(" there!"),
            finish("stop"),
            usage(9, 4, 0, 0),
        ],
        "finish",
        &dir,
    );
    scripted(
        "queued_background",
        &mut builder().with_request(&req),
        &[text("Hi"), finish("stop")],
        "finish",
        &dir,
    );
    scripted(
        "reasoning_text",
        &mut builder(),
        &[
            reasoning("Let me"),
            chunk(
                json!({"reasoning_content": " think.", "content": "Answer"}),
                None,
            ),
            finish("stop"),
            usage(5, 7, 2, 3),
        ],
        "finish",
        &dir,
    );
    scripted(
        "tools",
        &mut builder().with_request(&req),
        &[
            text("Checking."),
            tool(0, Some("call_a"), Some("get_weather"), "{\"city\":"),
            tool(0, None, None, "\"Paris\"}"),
            tool(1, Some("call_b"), Some("get_weather"), "{}"),
            finish("tool_calls"),
        ],
        "finish",
        &dir,
    );
    scripted(
        "logprobs",
        &mut logprobs_builder(),
        &[
            text_logprobs("Hello", &[token("Hel", -0.5), token("lo", -0.25)]),
            text_logprobs("", &[token("\\xe2", -0.1)]),
            text_logprobs("€!", &[token("\\x82\\xac", -0.2), token("!", -1.0)]),
            finish("stop"),
        ],
        "finish",
        &dir,
    );
    scripted(
        "annotations",
        &mut builder(),
        &[
            text("Rust 1.90 is out"),
            chunk(
                json!({"content": ".", "annotations": [{"type": "url_citation", "url_citation":
                    {"url": "https://blog.rust-lang.org/", "title": "Rust Blog", "start_index": 0, "end_index": 16}}]}),
                None,
            ),
            chunk(
                json!({"annotations": [{"type": "url_citation", "url_citation":
                    {"url": "https://example.com/r", "title": "Ex", "start_index": 5, "end_index": 9}}]}),
                Some("stop"),
            ),
        ],
        "finish",
        &dir,
    );
    scripted(
        "refusal",
        &mut builder(),
        &[refusal("I can't"), refusal(" help."), finish("stop")],
        "finish",
        &dir,
    );
    scripted(
        "length",
        &mut builder(),
        &[text("Once upon"), finish("length")],
        "finish",
        &dir,
    );
    scripted(
        "content_filter",
        &mut builder(),
        &[text("x"), finish("content_filter")],
        "finish",
        &dir,
    );
    scripted(
        "failed",
        &mut builder(),
        &[reasoning("hmm"), text("par")],
        "fail",
        &dir,
    );
    scripted(
        "cancelled",
        &mut builder().with_request(&req),
        &[text("par")],
        "cancel",
        &dir,
    );
    scripted(
        "no_finish_reason",
        &mut builder(),
        &[text("cut")],
        "finish",
        &dir,
    );
    for (path, dialect) in chat_fixtures() {
        let mut b = builder();
        let (ev, _, _) = drive_fixture(&path, dialect, &mut b);
        let stem = path
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .replace('.', "_");
        dump(&dir, &format!("fixture_{stem}"), &b, &ev, Vec::new());
    }
    eprintln!("Responses streams written to {}", dir.display());
}
