//! Every dialect over recorded and written streams, under many byte splits.
//!
//! - The project's own fixtures (tests/fixtures/providers/<provider>/), each with an
//!   `.expected.json` sidecar written from the provider's documented format (bedrock's binary
//!   bodies are generated from their `.frames.json` by `encode.py`, checked here too).
//! - Every recording in ../shared/fixtures/providers/ (when present) for the providers these
//!   dialects cover: each must decode, the deliberate error recordings to their typed error.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{decode_every_way, repo_root, shared_providers, Outcome};
use polystream_core::Error;
use serde_json::{json, Value};

fn dialect_of(dir: &str) -> Option<&'static str> {
    Some(match dir {
        "anthropic" => "anthropic",
        "gemini" => "gemini",
        "cohere" => "cohere",
        "ollama" => "ollama",
        "openai_responses" => "openai_responses",
        "openai" | "groq" | "mistral" | "openai_compatible" => "openai_chat",
        "bedrock" => "bedrock_converse",
        _ => return None,
    })
}

/// The stream bodies in `dir`: not the sidecars, nor bedrock's `.frames.json` sources and their
/// encoder.
fn bodies(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            [".sse", ".ndjson", ".json", ".eventstream"]
                .iter()
                .any(|x| name.ends_with(x))
                && !name.ends_with(".expected.json")
                && !name.ends_with(".frames.json")
        })
        .collect();
    files.sort();
    files
}

/// The outcome in the sidecar's terms: choice 0's message, finish, usage, and the error.
fn summary(o: &Outcome) -> Value {
    let c = &o.completion;
    let choice = c.choices.iter().find(|ch| ch.index == 0);
    let m = choice.map(|ch| &ch.message);
    let tool_calls: Vec<Value> = m
        .and_then(|m| m.tool_calls.as_ref())
        .map(|calls| {
            calls
                .iter()
                .map(|t| json!({"id": t.id, "name": t.function.name, "arguments": t.function.arguments}))
                .collect()
        })
        .unwrap_or_default();
    let error = o.error.as_ref().map(|e| match e {
        Error::Provider {
            message,
            kind,
            code,
            ..
        } => {
            json!({"variant": e.kind_name(), "message": message, "kind": kind, "code": code})
        }
        Error::Incomplete { dialect } => json!({"variant": e.kind_name(), "dialect": dialect}),
        other => json!({"variant": other.kind_name(), "message": other.to_string()}),
    });
    json!({
        "id": c.id,
        "model": c.model,
        "created": c.created,
        "choices": c.choices.len(),
        "role": m.map(|m| m.role.clone()),
        "content": m.and_then(|m| m.content.clone()),
        "reasoning_content": m.and_then(|m| m.reasoning_content.clone()),
        "reasoning_signature": m.and_then(|m| m.reasoning_signature.clone()),
        "thinking_blocks": m.and_then(|m| m.thinking_blocks.clone()),
        "refusal": m.and_then(|m| m.refusal.clone()),
        "tool_calls": tool_calls,
        "logprobs": choice.and_then(|ch| ch.logprobs.clone()),
        "finish_reason": choice.and_then(|ch| ch.finish_reason.clone()),
        "native_finish_reason": choice.and_then(|ch| ch.native_finish_reason.clone()),
        "usage": c.usage,
        "done": o.done,
        "error": error,
    })
}

/// Compare the keys the sidecar states (the rest is not asserted).
fn assert_matches(label: &str, got: &Value, want: &Value) {
    let want = want.as_object().expect("sidecar is an object");
    for (k, v) in want {
        if k.starts_with('_') || k == "dialect" {
            continue;
        }
        assert_eq!(
            got.get(k).unwrap_or(&Value::Null),
            v,
            "{label}: `{k}` differs\n got: {got:#}"
        );
    }
}

#[test]
fn project_fixtures_match_their_sidecars() {
    let root = repo_root().join("tests/fixtures/providers");
    let mut n = 0;
    for dir in fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
    {
        let dir_name = dir.file_name().unwrap().to_string_lossy().into_owned();
        for body in bodies(&dir) {
            let label = body.strip_prefix(&root).unwrap().display().to_string();
            let sidecar = body.with_extension("expected.json");
            let want: Value = serde_json::from_slice(
                &fs::read(&sidecar)
                    .unwrap_or_else(|e| panic!("{label}: no sidecar {}: {e}", sidecar.display())),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", sidecar.display()));
            let dialect = match want.get("dialect").and_then(Value::as_str) {
                Some(d) => d.to_owned(),
                None => dialect_of(&dir_name)
                    .unwrap_or_else(|| panic!("{label}: no dialect"))
                    .to_owned(),
            };
            let input = fs::read(&body).unwrap();
            let o = decode_every_way(&dialect, &input, &label);
            assert_matches(&label, &summary(&o), &want);
            n += 1;
        }
    }
    assert!(
        n >= 30,
        "expected the project's provider fixtures, found {n}"
    );
}

/// The committed `.eventstream` bodies are what `encode.py` makes of their `.frames.json`.
#[test]
fn bedrock_bodies_match_their_sources() {
    let script = repo_root().join("tests/fixtures/providers/bedrock/encode.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg("--check")
        .output()
        .unwrap_or_else(|e| panic!("python3 {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} --check failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The deliberate error recordings: (file, kind, code). Chunks before the error are kept.
const SHARED_ERRORS: &[(&str, Option<&str>, Option<&str>)] = &[
    (
        "anthropic_error_overloaded.sse",
        Some("overloaded_error"),
        None,
    ),
    (
        "gemini_error_mid_stream.mock.sse",
        Some("CANCELLED"),
        Some("499"),
    ),
    (
        "groq_error_tool_use_failed.sse",
        Some("invalid_request_error"),
        Some("tool_use_failed"),
    ),
    ("openrouter_error_chunk.sse", None, Some("400")),
    (
        "openai_responses_error_insufficient_quota.reframed.sse",
        Some("insufficient_quota"),
        Some("insufficient_quota"),
    ),
];

/// Decode every shared recording of the covered providers; returns (file name, outcome).
fn shared_outcomes() -> Vec<(String, Outcome)> {
    let Some(root) = shared_providers() else {
        eprintln!("note: ../shared/fixtures/providers not present; shared recordings skipped");
        return Vec::new();
    };
    let mut all = Vec::new();
    for dir in fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
    {
        let Some(dialect) = dialect_of(&dir.file_name().unwrap().to_string_lossy()) else {
            continue;
        };
        for body in bodies(&dir) {
            let name = body.file_name().unwrap().to_string_lossy().into_owned();
            let o = decode_every_way(dialect, &fs::read(&body).unwrap(), &name);
            all.push((name, o));
        }
    }
    all
}

#[test]
fn shared_recordings_decode_under_every_split() {
    let all = shared_outcomes();
    if all.is_empty() {
        return;
    }
    assert!(
        all.len() >= 50,
        "expected the shared recordings, found {}",
        all.len()
    );
    for (name, o) in &all {
        match SHARED_ERRORS.iter().find(|(f, ..)| f == name) {
            Some((_, kind, code)) => match &o.error {
                Some(Error::Provider {
                    kind: k, code: c, ..
                }) => {
                    assert_eq!(
                        (k.as_deref(), c.as_deref()),
                        (*kind, *code),
                        "{name}: error kind/code"
                    );
                }
                other => panic!("{name}: expected a provider error, got {other:?}"),
            },
            None => {
                assert!(o.error.is_none(), "{name}: {:?}", o.error);
                let c0 = o.completion.choices.iter().find(|c| c.index == 0);
                assert!(
                    c0.and_then(|c| c.finish_reason.as_ref()).is_some(),
                    "{name}: no finish reason"
                );
            }
        }
    }
    let summaries: Vec<(String, Value)> =
        all.iter().map(|(n, o)| (n.clone(), summary(o))).collect();
    for (file, want) in shared_expectations() {
        let (_, got) = summaries
            .iter()
            .find(|(n, _)| n == file)
            .unwrap_or_else(|| panic!("{file} missing"));
        assert_matches(file, got, &want);
    }
}

/// Concrete facts read off the recordings (not off the decoder's output).
fn shared_expectations() -> Vec<(&'static str, Value)> {
    vec![
        (
            "anthropic_text.sse",
            json!({"id": "msg_017A4s3HAsrqf5d2WvBmrpLr", "model": "claude-sonnet-4-5-20250929",
                   "content": "- Captain\n- Scoop", "finish_reason": "stop", "native_finish_reason": "end_turn",
                   "usage": {"prompt_tokens": 17, "completion_tokens": 10, "total_tokens": 27,
                             "prompt_tokens_details": {"cached_tokens": 0, "cache_creation_tokens": 0}},
                   "done": true}),
        ),
        (
            "anthropic_error_overloaded.sse",
            json!({"choices": 0, "error": {"variant": "provider_error",
            "message": "Overloaded", "kind": "overloaded_error", "code": null}}),
        ),
        (
            "anthropic_max_tokens_text.rig.sse",
            json!({"content": "# The Ocean: Earth's Vast",
            "finish_reason": "length", "native_finish_reason": "max_tokens"}),
        ),
        (
            "anthropic_tool_use_no_args.sse",
            json!({"content": null, "finish_reason": "tool_calls",
            "tool_calls": [{"id": "toolu_01UmKD1vMphVCN9vw8PEMk1q", "name": "fixed_version", "arguments": "{}"}]}),
        ),
        (
            "anthropic_tool_use_parallel.sse",
            json!({"finish_reason": "tool_calls", "tool_calls": [
            {"id": "toolu_01LtHJmixrs9NcWQkK8hu8hj", "name": "pelican_name_generator", "arguments": "{}"},
            {"id": "toolu_01N8a4jWyf116qKTMqKKmjyt", "name": "pelican_name_generator", "arguments": "{}"}]}),
        ),
        (
            "anthropic_tool_use_with_text.sse",
            json!({"content": "I'll check the current weather in Paris for you.",
            "tool_calls": [{"id": "toolu_01NRLabsLyVHZPKxbKvkfSMn", "name": "get_weather",
                            "arguments": "{\"location\": \"Paris\"}"}],
            "usage": {"prompt_tokens": 377, "completion_tokens": 65, "total_tokens": 442,
                      "prompt_tokens_details": {"cached_tokens": 0, "cache_creation_tokens": 0}}}),
        ),
        // The compaction pass is billed too: its usage is in `iterations`, not in the top level.
        (
            "anthropic_text_emoji_cache_usage.sse",
            json!({"content": "Hello! 👋", "usage": {
            "prompt_tokens": 55377, "completion_tokens": 91, "total_tokens": 55468,
            "prompt_tokens_details": {"cached_tokens": 55096, "cache_creation_tokens": 0}}}),
        ),
        // Bedrock sends no id or model; its usage comes in `metadata`, after `messageStop`.
        (
            "bedrock_converse_stream_text.eventstream",
            json!({"id": "", "model": "", "created": 0, "role": "assistant",
            "finish_reason": "stop", "native_finish_reason": "end_turn", "tool_calls": [],
            "usage": {"prompt_tokens": 13, "completion_tokens": 82, "total_tokens": 95},
            "done": true, "error": null}),
        ),
        (
            "gemini_text.sse",
            json!({"id": "w1peaMz6INOvnvgPgYfPiQY", "model": "gemini-2.0-flash-exp",
            "content": "The capital of France is Paris.\n", "finish_reason": "stop", "native_finish_reason": "STOP",
            "usage": {"prompt_tokens": 13, "completion_tokens": 8, "total_tokens": 21}, "done": true}),
        ),
        (
            "gemini_function_call.sse",
            json!({"finish_reason": "tool_calls", "native_finish_reason": "STOP",
            "tool_calls": [{"id": "call_0", "name": "get_capital", "arguments": "{\"country\":\"France\"}"}]}),
        ),
        (
            "gemini_text_after_tool.sse",
            json!({"content": "The temperature in Paris is 30°C.\n"}),
        ),
        (
            "gemini_max_tokens.rig.sse",
            json!({"finish_reason": "length", "native_finish_reason": "MAX_TOKENS",
            "usage": {"prompt_tokens": 15, "completion_tokens": 24, "total_tokens": 39}}),
        ),
        (
            "gemini_prompt_blocked_safety.sse",
            json!({"content": null, "finish_reason": "content_filter",
            "native_finish_reason": "SAFETY", "done": true}),
        ),
        (
            "gemini_finish_reason_safety_vertex.sse",
            json!({"finish_reason": "content_filter",
            "native_finish_reason": "SAFETY"}),
        ),
        (
            "gemini_error_mid_stream.mock.sse",
            json!({"content": "First Second "}),
        ),
        (
            "gemini_code_execution_unicode.rig.sse",
            json!({"content": "résultats ✅ 42 et 142.",
            "finish_reason": "stop", "usage": {"prompt_tokens": 460, "completion_tokens": 206, "total_tokens": 666,
            "completion_tokens_details": {"reasoning_tokens": 175}}}),
        ),
        (
            "gemini_stream_json_array.json",
            json!({"content": "Scoop", "finish_reason": "stop",
            "usage": {"prompt_tokens": 11, "completion_tokens": 293, "total_tokens": 304,
                      "completion_tokens_details": {"reasoning_tokens": 291}}}),
        ),
        (
            "gemini3_function_call_thought_signature.sse",
            json!({"finish_reason": "tool_calls",
            "tool_calls": [{"id": "call_0", "name": "get_country", "arguments": "{}"}],
            "usage": {"prompt_tokens": 29, "completion_tokens": 212, "total_tokens": 241,
                      "completion_tokens_details": {"reasoning_tokens": 202}}}),
        ),
        (
            "cohere_v2_text.sse",
            json!({"id": "3ec845ed-ebb1-4223-9648-4e5632d5c6b5", "finish_reason": "stop",
            "native_finish_reason": "COMPLETE", "usage": {"prompt_tokens": 70, "completion_tokens": 69,
            "total_tokens": 139}, "done": true}),
        ),
        (
            "cohere_v2_tools.sse",
            json!({"content": null, "finish_reason": "tool_calls", "native_finish_reason": "TOOL_CALL",
            "tool_calls": [{"id": "Person_2fnrphbsnr66", "name": "Person",
                            "arguments": "{\n    \"name\": \"Erick\",\n    \"age\": 27\n}"}]}),
        ),
        (
            "cohere_v2_empty_tool_call.reframed.sse",
            json!({"tool_calls": [
            {"id": "currentTime_y46ar19t5gvw", "name": "currentTime", "arguments": "{}"}],
            "usage": {"prompt_tokens": 1445, "completion_tokens": 43, "total_tokens": 1488,
                      "prompt_tokens_details": {"cached_tokens": 704}}}),
        ),
        (
            "cohere_v2_max_tokens.rig.sse",
            json!({"finish_reason": "length", "native_finish_reason": "MAX_TOKENS"}),
        ),
        (
            "cohere_v2_thinking_then_tool_call.rig.sse",
            json!({"content": null, "tool_calls": [
            {"id": "call_REDACTED_1", "name": "subtract", "arguments": "{\"x\": 2, \"y\": 5}"}],
            "usage": {"prompt_tokens": 1501, "completion_tokens": 346, "total_tokens": 1847,
                      "prompt_tokens_details": {"cached_tokens": 1008},
                      "completion_tokens_details": {"reasoning_tokens": 304}}}),
        ),
        (
            "ollama_chat_length.ndjson",
            json!({"model": "qwen3:4b", "finish_reason": "length", "native_finish_reason": "length",
            "usage": {"prompt_tokens": 18, "completion_tokens": 64, "total_tokens": 82}}),
        ),
        (
            "ollama_chat_text.ndjson",
            json!({"finish_reason": "stop", "created": 1785220683,
            "usage": {"prompt_tokens": 39, "completion_tokens": 289, "total_tokens": 328}}),
        ),
        (
            "ollama_chat_thinking_tool_call.ndjson",
            json!({"content": null, "finish_reason": "tool_calls",
            "native_finish_reason": "stop",
            "tool_calls": [{"id": "call_REDACTED_1", "name": "lookup_harbor_label", "arguments": "{}"}]}),
        ),
        (
            "groq_error_tool_use_failed.sse",
            json!({"content": "", "finish_reason": null}),
        ),
        (
            "groq_text_x_groq_usage.sse",
            json!({"finish_reason": "stop", "usage": {"prompt_tokens": 339,
            "completion_tokens": 58, "total_tokens": 397, "completion_tokens_details": {"reasoning_tokens": 38}}}),
        ),
        (
            "groq_parallel_tool_calls.rig.sse",
            json!({"finish_reason": "tool_calls", "tool_calls": [
            {"id": "call_REDACTED_1", "name": "lookup_harbor_label", "arguments": "null"},
            {"id": "call_REDACTED_2", "name": "lookup_orchard_label", "arguments": "null"}]}),
        ),
        (
            "mistral_tool_call.reframed.sse",
            json!({"finish_reason": "tool_calls", "tool_calls": [
            {"id": "gSIMJiOkT", "name": "weather", "arguments": "{\"location\": \"San Francisco\"}"}],
            "usage": {"prompt_tokens": 124, "completion_tokens": 22, "total_tokens": 146}}),
        ),
        (
            "mistral_tool_args_unicode.rig.sse",
            json!({"tool_calls": [{"id": "call_REDACTED_1", "name": "record_payload",
            "arguments": "{\"label\": \"café 東京\", \"values\": [3, 5, 8], \"meta\": {\"active\": true}}"}]}),
        ),
        (
            "mistral_text.reframed.sse",
            json!({"content": "Hello, world! This is a test response.",
            "finish_reason": "stop"}),
        ),
        (
            "mistral_n2_length.rig.sse",
            json!({"choices": 2, "content": "c", "finish_reason": "length"}),
        ),
        (
            "openai_responses_text.sse",
            json!({"id": "resp_67e554a21aa88191b65876ac5e5bbe0406c52f0e511c76ed",
            "model": "gpt-4o-2024-08-06", "created": 1743082658, "role": "assistant",
            "content": "The capital of France is Paris.", "tool_calls": [],
            "finish_reason": "stop", "native_finish_reason": "completed",
            "usage": {"prompt_tokens": 278, "completion_tokens": 9, "total_tokens": 287,
                      "prompt_tokens_details": {"cached_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0}},
            "done": true, "error": null}),
        ),
        (
            "openai_responses_basic_gpt55.sse",
            json!({"model": "gpt-5.5-2026-04-23", "created": 1778037177, "content": "pong",
            "finish_reason": "stop", "usage": {"prompt_tokens": 11, "completion_tokens": 5,
            "total_tokens": 16, "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0}}}),
        ),
        (
            "openai_responses_tool_use.sse",
            json!({"content": null, "finish_reason": "tool_calls", "native_finish_reason": "completed",
            "tool_calls": [{"id": "call_sVidsfFJ6zlzRpelrPkTPlpd", "name": "multiply",
                            "arguments": "{\"a\":1231,\"b\":2331}"}],
            "usage": {"prompt_tokens": 58, "completion_tokens": 23, "total_tokens": 81,
                      "prompt_tokens_details": {"cached_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0}}}),
        ),
        // A reasoning item (encrypted, no summary) before the call: the call is still index 0.
        (
            "openai_responses_streaming_usage.sse",
            json!({"content": null, "reasoning_content": null, "finish_reason": "tool_calls",
            "tool_calls": [{"id": "call_CWXgs68YprAjp6t0371hiPOI", "name": "final_result",
                            "arguments": "{\"result\":6666}"}],
            "usage": {"prompt_tokens": 53, "completion_tokens": 469, "total_tokens": 522,
                      "prompt_tokens_details": {"cached_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 448}}}),
        ),
        (
            "openai_responses_reasoning_summary.sse",
            json!({"model": "o3-mini-2025-01-31", "finish_reason": "stop",
            "usage": {"prompt_tokens": 13, "completion_tokens": 1680, "total_tokens": 1693,
                      "prompt_tokens_details": {"cached_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 1408}}}),
        ),
        (
            "openai_responses_error_insufficient_quota.reframed.sse",
            // No chunk before the error: nothing carried anything, so no role chunk either.
            json!({"choices": 0, "content": null,
            "finish_reason": null, "done": true, "error": {"variant": "provider_error",
            "message": "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
            "kind": "insufficient_quota", "code": "insufficient_quota"}}),
        ),
        (
            "openrouter_error_chunk.sse",
            json!({"reasoning_content": "We need to respond to a greeting. The user",
            "finish_reason": "length", "error": {"variant": "provider_error", "message": "Token limit reached",
            "kind": null, "code": "400"}}),
        ),
    ]
}

/// Facts that need more than string equality.
#[test]
fn shared_recordings_in_detail() {
    let all = shared_outcomes();
    if all.is_empty() {
        return;
    }
    let get = |f: &str| {
        &all.iter()
            .find(|(n, _)| n == f)
            .unwrap_or_else(|| panic!("{f} missing"))
            .1
    };
    let msg = |f: &str| get(f).completion.choices[0].message.clone();

    // Thinking, then its signature, then the answer.
    let m = msg("anthropic_thinking.sse");
    assert!(m
        .reasoning_content
        .as_deref()
        .unwrap()
        .starts_with("This is a straightforward question about pedestrian safety."));
    assert!(m
        .reasoning_signature
        .as_deref()
        .unwrap()
        .starts_with("EvMCCkYICxgCKkCHP2cSuEdcJK/0rFwqES"));
    assert!(m.content.as_deref().unwrap().len() > 200);
    let m = msg("anthropic_thinking_nonascii.sse");
    assert!(m
        .reasoning_content
        .as_deref()
        .unwrap()
        .contains("Pelé (play on pelican"));
    // Redacted thinking yields no text; the answer is kept.
    let m = msg("anthropic_thinking_redacted.sse");
    assert_eq!(m.reasoning_content, None);
    assert!(m
        .content
        .as_deref()
        .unwrap()
        .starts_with("I notice that you've sent what appears to be some"));
    // The server-side search is not a client tool call.
    let m = msg("anthropic_web_search_server_tool.sse");
    assert_eq!(m.tool_calls, None);
    assert!(!m
        .content
        .as_deref()
        .unwrap()
        .contains("San Francisco weather today\"}"));
    assert_eq!(
        get("anthropic_web_search_server_tool.sse")
            .completion
            .usage
            .as_ref()
            .unwrap()
            .prompt_tokens,
        10423
    );
    assert!(msg("anthropic_text_emoji.sse")
        .content
        .unwrap()
        .ends_with("being useful! 😄"));

    // Bedrock: 29 text deltas, escaped quotes among them.
    let c = msg("bedrock_converse_stream_text.eventstream")
        .content
        .unwrap();
    assert!(c.starts_with("The capital of France is Paris. Paris is not only the capital city"));
    assert!(c.ends_with("often referred to as \"The City of Light\" or \"The City of Love.\""));

    // Gemini thoughts and their signatures.
    let m = msg("gemini_thinking.sse");
    assert!(m
        .reasoning_content
        .as_deref()
        .unwrap()
        .starts_with("**Clarifying User Goals**"));
    assert!(!m
        .content
        .as_deref()
        .unwrap()
        .contains("**Clarifying User Goals**"));
    let m = msg("gemini_thinking_function_call_signature.sse");
    assert!(m
        .reasoning_content
        .as_deref()
        .unwrap()
        .starts_with("**Calculating the Days**"));
    assert!(m
        .reasoning_signature
        .as_deref()
        .unwrap()
        .starts_with("CiIBVKhc7vB+vaaq6rA/KC79Ts7iXagIOA4E"));
    assert_eq!(m.tool_calls.as_ref().unwrap()[0].function.name, "now");
    let m = msg("gemini_stream_json_array.json");
    assert!(m
        .reasoning_content
        .as_deref()
        .unwrap()
        .starts_with("**Considering the Constraint**"));

    // Cohere reasoning: thinking blocks and the tool plan are reasoning, not content.
    let m = msg("cohere_v2_reasoning.reframed.sse");
    assert!(m.reasoning_content.as_deref().unwrap().len() > 20);
    assert!(m.content.as_deref().unwrap().len() > 10);
    let m = msg("cohere_v2_tools.sse");
    assert!(m
        .reasoning_content
        .as_deref()
        .unwrap()
        .starts_with("I will"));

    // Responses reasoning summary: four parts, kept apart by a blank line, then the answer.
    let m = msg("openai_responses_reasoning_summary.sse");
    let r = m.reasoning_content.as_deref().unwrap();
    assert!(r.starts_with("**Providing street crossing instructions**\n\nThe user is asking"));
    assert!(r.contains("\n\n**Explaining street crossing safety**\n\n"));
    assert!(r.contains("\n\n**Sharing street crossing safety tips**\n\n"));
    assert!(r.contains("\n\n**Providing safe crossing advice**\n\n"));
    let c = m.content.as_deref().unwrap();
    assert!(c.starts_with("I'm not a road safety professional, but here are"));
    assert!(c.ends_with("rules specific to your area. Stay safe!"));

    // Ollama thinking, then a call; text with a multi-byte arrow.
    let m = msg("ollama_chat_thinking_tool_call.ndjson");
    assert!(m
        .reasoning_content
        .as_deref()
        .unwrap()
        .starts_with("Okay, the"));
    assert!(msg("ollama_chat_text.ndjson")
        .content
        .unwrap()
        .contains('→'));

    // OpenAI-compatible variants.
    let m = msg("mistral_magistral_thinking.sse");
    assert!(m
        .reasoning_content
        .as_deref()
        .unwrap()
        .starts_with("Okay, the user"));
    assert!(m.content.as_deref().unwrap().starts_with("To"));
    let m = msg("deepseek_reasoner_emoji.sse");
    assert!(m.reasoning_content.as_deref().unwrap().starts_with("Hmm,"));
    assert!(m.content.as_deref().unwrap().contains('😊'));
    let u = get("deepseek_reasoner_emoji.sse")
        .completion
        .usage
        .clone()
        .unwrap();
    assert_eq!((u.prompt_tokens, u.completion_tokens), (6, 212));
    let m = msg("groq_error_tool_use_failed.sse");
    assert!(m
        .reasoning_content
        .as_deref()
        .unwrap()
        .starts_with("We need to call"));
}

/// openai/*.expected.json: the accumulated results openai-python's own tests assert.
#[test]
fn shared_openai_expected_results() {
    let Some(root) = shared_providers() else {
        return;
    };
    let mut n = 0;
    for body in bodies(&root.join("openai")) {
        let sidecar = body.with_extension("expected.json");
        if !sidecar.exists() {
            continue;
        }
        let want: Value = serde_json::from_slice(&fs::read(&sidecar).unwrap()).unwrap();
        let o = common::decode("openai_chat", &[&fs::read(&body).unwrap()]);
        assert!(o.error.is_none(), "{}: {:?}", body.display(), o.error);
        let got = serde_json::to_value(&o.completion).unwrap();
        let name = body.display();
        for (i, wc) in want["choices"].as_array().unwrap().iter().enumerate() {
            let gc = &got["choices"][i];
            assert_eq!(gc["finish_reason"], wc["finish_reason"], "{name}");
            for k in ["content", "refusal", "tool_calls"] {
                assert_eq!(gc["message"][k], wc["message"][k], "{name}: {k}");
            }
            if !wc["logprobs"].is_null() {
                assert_eq!(gc["logprobs"], wc["logprobs"], "{name}: logprobs");
            }
        }
        if let Some(u) = want.get("usage").filter(|u| !u.is_null()) {
            for k in ["prompt_tokens", "completion_tokens", "total_tokens"] {
                assert_eq!(got["usage"][k], u[k], "{name}: usage.{k}");
            }
        }
        n += 1;
    }
    assert!(n >= 5, "expected openai sidecars, found {n}");
}

/// The tokens of one chunk's `logprobs.content`, joined.
fn logprob_tokens(choice: &polystream_core::chunk::ChunkChoice) -> Option<String> {
    let entries = choice.logprobs.as_ref()?.content.as_ref()?;
    Some(
        entries
            .iter()
            .map(|e| e["token"].as_str().unwrap())
            .collect(),
    )
}

/// Logprobs ride the chunk of their own tokens: a text chunk's tokens spell its text; Ollama's
/// tokens held back while it reads a tool call come on chunks without text.
#[test]
fn logprobs_ride_the_chunk_of_their_tokens() {
    let dir = repo_root().join("tests/fixtures/providers");
    let decoded = |dialect: &str, file: &str| {
        common::decode(dialect, &[&fs::read(dir.join(file)).unwrap()]).chunks
    };
    for (dialect, file) in [
        ("gemini", "gemini/gemini_logprobs.sse"),
        ("gemini", "gemini/gemini_json_array_logprobs.json"),
        ("ollama", "ollama/ollama_logprobs.ndjson"),
    ] {
        let mut with_logprobs = 0;
        for choice in decoded(dialect, file).iter().flat_map(|c| &c.choices) {
            if let Some(tokens) = logprob_tokens(choice) {
                assert_eq!(Some(tokens), choice.delta.content, "{file}");
                with_logprobs += 1;
            }
        }
        assert!(
            with_logprobs >= 2,
            "{file}: {with_logprobs} chunks with logprobs"
        );
    }
    let tool = decoded("ollama", "ollama/ollama_logprobs_tool.ndjson");
    let carrying: Vec<_> = tool
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|ch| Some((logprob_tokens(ch)?, ch)))
        .collect();
    let tokens: Vec<&str> = carrying.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(tokens, ["<tool_call>", "{\"", "name", "</tool_call>"]);
    assert!(carrying.iter().all(|(_, ch)| ch.delta.content.is_none()));
    assert!(carrying[3].1.delta.tool_calls.is_some());
}

/// A provider's logprobs reach the Responses API the way OpenAI's do.
#[test]
fn gemini_logprobs_reach_the_responses_api() {
    use polystream_core::ResponsesBuilder;
    let body = fs::read(repo_root().join("tests/fixtures/providers/gemini/gemini_logprobs.sse"));
    let chunks = common::decode("gemini", &[&body.unwrap()]).chunks;
    let mut b = ResponsesBuilder::new("resp_1", "gemini-2.5-flash", 1_700_000_000)
        .with_request(&json!({"include": ["message.output_text.logprobs"], "top_logprobs": 2}));
    let mut events = Vec::new();
    for c in &chunks {
        b.on_chunk(c, &mut events);
    }
    b.finish(&mut events);
    let part = &serde_json::to_value(b.snapshot()).unwrap()["output"][0]["content"][0];
    assert_eq!(part["text"], "Hola, ¿qué tal?");
    let tokens: Vec<&str> = part["logprobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["token"].as_str().unwrap())
        .collect();
    assert_eq!(tokens, ["Hola", ", ", "¿", "qué", " tal", "?"]);
    assert_eq!(part["logprobs"][3]["top_logprobs"][0]["token"], "como");
    assert_eq!(part["logprobs"][2]["bytes"], json!([194, 191]));
}
