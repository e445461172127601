//! ResponsesBuilder: chat chunks → Responses-API events. Every stream is checked by replaying its
//! events the way a client (openai-python's `ResponseStreamState`) would and comparing the result
//! with the builder's snapshot; recorded chat fixtures are checked against the Accumulator.
//!
//! `dump_streams_for_sdk_validation` writes streams and snapshots as JSON for
//! `tests/support/validate_responses.py` (openai SDK, strict) into $POLYSTREAM_RESPONSES_DUMP_DIR
//! or a temp dir.

#[path = "responses/fixtures.rs"]
mod fixtures;
#[path = "responses/logprobs.rs"]
mod logprobs;
#[path = "responses/support.rs"]
mod support;

use polystream_core::responses::{IncompleteReason, Status};
use polystream_core::ChatChunk;
use serde_json::{json, Value};

use support::*;

// ---- scenarios ----------------------------------------------------------------------------

/// One string member of every output item of a snapshot, in order.
fn each_output<'a>(snap: &'a Value, key: &str) -> Vec<&'a str> {
    snap["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i[key].as_str().unwrap())
        .collect()
}

#[test]
fn text_stream_has_openai_shape() {
    let mut b = builder();
    let ev = run(
        &mut b,
        &[
            chunk(json!({"role": "assistant", "content": ""}), None),
            text("Hel"),
            text("lo"),
            finish("stop"),
        ],
    );
    assert_eq!(
        types(&ev),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let snap = check(&b, &ev);
    assert_eq!(b.status(), Status::Completed);
    assert_eq!(b.output_text(), "Hello");
    let j = to_json(&ev);
    assert_eq!(j[0]["response"]["status"], "in_progress");
    assert_eq!(j[0]["response"]["output"], json!([]));
    assert_eq!(
        j[4],
        json!({"type": "response.output_text.delta", "item_id": "msg_0123abcd0000", "output_index": 0,
               "content_index": 0, "delta": "Hel", "logprobs": [], "sequence_number": 4})
    );
    assert_eq!(
        j[3]["part"],
        json!({"type": "output_text", "annotations": [], "logprobs": [], "text": ""})
    );
    assert_eq!(
        snap["output"],
        json!([{"type": "message", "id": "msg_0123abcd0000", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": "Hello"}]}])
    );
    assert_eq!(snap["completed_at"], json!(1_700_000_000));
    assert_eq!(snap["usage"], Value::Null);
}

#[test]
fn queued_start_then_in_progress() {
    let mut b = builder().with_request(&json!({"background": true, "model": "x", "input": "hi"}));
    assert_eq!(b.status(), Status::Queued);
    let mut out = Vec::new();
    b.start(&mut out);
    b.start(&mut out); // idempotent
    assert_eq!(types(&out), ["response.created", "response.queued"]);
    assert_eq!(to_json(&out)[0]["response"]["status"], "queued");
    assert_eq!(to_json(&out)[0]["response"]["background"], true);
    assert_eq!(
        serde_json::to_value(b.snapshot()).unwrap()["status"],
        "queued"
    );
    b.on_chunk(&text("x"), &mut out);
    assert_eq!(out[2].name(), "response.in_progress");
    assert_eq!(to_json(&out)[2]["response"]["status"], "in_progress");
    b.set_now(1_700_000_005);
    b.complete(&mut out);
    let snap = check(&b, &out);
    assert_eq!(snap["completed_at"], json!(1_700_000_005));
}

#[test]
fn reasoning_then_text_even_in_one_chunk() {
    let mut b = builder();
    let both = chunk(json!({"reasoning_content": "think", "content": "Hi"}), None);
    let ev = run(&mut b, &[reasoning("I "), both, text("!"), finish("stop")]);
    let snap = check(&b, &ev);
    assert_eq!(
        types(&ev)[2..9],
        [
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
        ]
    );
    let out = snap["output"].as_array().unwrap();
    assert_eq!(
        out[0],
        json!({"type": "reasoning", "id": "rs_0123abcd0000", "summary": [{"type": "summary_text", "text": "I think"}]})
    );
    assert_eq!(out[1]["id"], "msg_0123abcd0001");
    assert_eq!(b.output_text(), "Hi!");
    // The reasoning item is added with an empty summary, as OpenAI does.
    assert_eq!(to_json(&ev)[2]["item"]["summary"], json!([]));
}

#[test]
fn parallel_tool_calls_and_late_name() {
    let mut b = builder();
    let ev = run(
        &mut b,
        &[
            text("Let me check."),
            tool(0, Some("call_a"), Some("get_weather"), ""),
            tool(0, None, None, "{\"city\":"),
            tool(0, None, None, "\"Paris\"}"),
            // No name yet: the arguments wait until the call can be announced.
            tool(1, Some("call_b"), None, "{\"x\""),
            tool(1, None, Some("lookup"), ":1}"),
            finish("tool_calls"),
        ],
    );
    let snap = check(&b, &ev);
    let out = snap["output"].as_array().unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(out[0]["type"], "message");
    assert_eq!(
        out[1],
        json!({"type": "function_call", "id": "fc_0123abcd0001", "call_id": "call_a", "name": "get_weather",
               "arguments": "{\"city\":\"Paris\"}", "status": "completed"})
    );
    assert_eq!(out[2]["call_id"], "call_b");
    assert_eq!(out[2]["name"], "lookup");
    assert_eq!(out[2]["arguments"], "{\"x\":1}");
    let j = to_json(&ev);
    let added: Vec<&Value> = j
        .iter()
        .filter(|e| e["type"] == "response.output_item.added")
        .collect();
    assert_eq!(
        added[1]["item"]["arguments"], "",
        "function_call added with empty arguments"
    );
    assert_eq!(b.status(), Status::Completed);
}

#[test]
fn tool_call_without_id_or_name_keeps_arguments() {
    let mut b = builder();
    let ev = run(&mut b, &[tool(0, None, None, "{}"), finish("tool_calls")]);
    let snap = check(&b, &ev);
    assert_eq!(snap["output"][0]["call_id"], "call_0123abcd0000");
    assert_eq!(snap["output"][0]["name"], "");
    assert_eq!(snap["output"][0]["arguments"], "{}");
}

#[test]
fn text_after_tool_call_opens_a_new_message() {
    let mut b = builder();
    let ev = run(
        &mut b,
        &[
            text("a"),
            tool(0, Some("c"), Some("f"), "{}"),
            text("b"),
            finish("stop"),
        ],
    );
    let snap = check(&b, &ev);
    let kinds = each_output(&snap, "type");
    assert_eq!(kinds, ["message", "function_call", "message"]);
    assert_eq!(b.output_text(), "ab");
}

#[test]
fn refusal_part_and_text_part_share_a_message() {
    let mut b = builder();
    let ev = run(
        &mut b,
        &[
            text("Well. "),
            refusal("I can't "),
            refusal("help."),
            finish("stop"),
        ],
    );
    let snap = check(&b, &ev);
    assert!(types(&ev).contains(&"response.refusal.delta"));
    assert!(types(&ev).contains(&"response.refusal.done"));
    assert_eq!(
        snap["output"][0]["content"],
        json!([{"type": "output_text", "annotations": [], "logprobs": [], "text": "Well. "},
               {"type": "refusal", "refusal": "I can't help."}])
    );
    assert_eq!(b.output_text(), "Well. ");
}

#[test]
fn finish_reason_picks_the_terminal_event() {
    let cases: &[(Option<&str>, &str, Status, Value)] = &[
        (
            Some("stop"),
            "response.completed",
            Status::Completed,
            Value::Null,
        ),
        (
            Some("tool_calls"),
            "response.completed",
            Status::Completed,
            Value::Null,
        ),
        (
            Some("length"),
            "response.incomplete",
            Status::Incomplete,
            json!({"reason": "max_output_tokens"}),
        ),
        (
            Some("content_filter"),
            "response.incomplete",
            Status::Incomplete,
            json!({"reason": "content_filter"}),
        ),
        (
            Some("error"),
            "response.failed",
            Status::Failed,
            Value::Null,
        ),
        (None, "response.failed", Status::Failed, Value::Null),
    ];
    for (reason, last, status, details) in cases {
        let mut b = builder();
        let mut chunks = vec![text("x")];
        if let Some(r) = reason {
            chunks.push(finish(r));
        }
        let ev = run(&mut b, &chunks);
        let snap = check(&b, &ev);
        assert_eq!(ev.last().unwrap().name(), *last, "{reason:?}");
        assert_eq!(b.status(), *status);
        assert_eq!(snap["incomplete_details"], *details);
        let item_status = if *status == Status::Completed {
            "completed"
        } else {
            "incomplete"
        };
        assert_eq!(snap["output"][0]["status"], item_status, "{reason:?}");
        if *status != Status::Completed {
            assert_eq!(snap["completed_at"], Value::Null);
        }
    }
}

#[test]
fn fail_sends_error_then_failed_with_an_sdk_code() {
    let mut b = builder();
    let mut out = Vec::new();
    b.on_chunk(&reasoning("hmm"), &mut out);
    assert!(b.fail("insufficient_quota", "You exceeded your quota", &mut out));
    let snap = check(&b, &out);
    let j = to_json(&out);
    let n = j.len();
    assert_eq!(
        j[n - 2],
        json!({"type": "error", "code": "insufficient_quota", "message": "You exceeded your quota", "param": null, "sequence_number": n - 2})
    );
    assert_eq!(j[n - 1]["type"], "response.failed");
    assert_eq!(
        snap["error"],
        json!({"code": "rate_limit_exceeded", "message": "You exceeded your quota"})
    );
    assert_eq!(snap["status"], "failed");
    // The partial reasoning is kept, its part marked incomplete.
    assert_eq!(snap["output"][0]["summary"][0]["text"], "hmm");
    assert!(j.iter().any(
        |e| e["type"] == "response.reasoning_summary_part.done" && e["status"] == "incomplete"
    ));
    assert_eq!(
        polystream_core::responses::normalize_error_code("vector_store_timeout"),
        "vector_store_timeout"
    );
    assert_eq!(
        polystream_core::responses::normalize_error_code("background_streaming_error"),
        "server_error"
    );
}

#[test]
fn fail_before_start_still_begins_with_created() {
    let mut b = builder();
    let mut out = Vec::new();
    b.fail("server_error", "upstream unreachable", &mut out);
    assert_eq!(
        types(&out),
        ["response.created", "error", "response.failed"]
    );
    check(&b, &out);
}

#[test]
fn cancel_closes_items_without_a_lifecycle_event() {
    let mut b = builder();
    let mut out = Vec::new();
    b.on_chunk(&text("partial"), &mut out);
    assert!(b.cancel(&mut out));
    let t = types(&out);
    assert_eq!(t[t.len() - 1], "response.output_item.done");
    assert!(!t
        .iter()
        .any(|n| n.contains("completed") || n.contains("failed") || n.contains("incomplete")));
    let snap = check(&b, &out);
    assert_eq!(snap["status"], "cancelled");
    assert_eq!(snap["output"][0]["status"], "incomplete");
    assert_eq!(snap["output"][0]["content"][0]["text"], "partial");
}

#[test]
fn terminal_state_is_write_once() {
    let mut b = builder();
    let mut out = run(&mut b, &[text("done"), finish("stop")]);
    let n = out.len();
    assert!(!b.cancel(&mut out));
    assert!(!b.fail("server_error", "late", &mut out));
    assert!(!b.complete(&mut out));
    assert!(!b.incomplete(IncompleteReason::MaxOutputTokens, &mut out));
    assert!(!b.finish(&mut out));
    b.on_chunk(&text(" more"), &mut out);
    b.mark_in_progress(&mut out);
    b.start(&mut out);
    assert_eq!(out.len(), n, "no events after a terminal state");
    assert_eq!(b.status(), Status::Completed);
    assert_eq!(b.output_text(), "done");

    let mut c = builder();
    let mut out = Vec::new();
    c.cancel(&mut out);
    let n = out.len();
    c.finish(&mut out);
    c.on_chunk(&text("x"), &mut out);
    assert_eq!(out.len(), n);
    assert_eq!(c.status(), Status::Cancelled);
}

#[test]
fn usage_maps_with_every_required_field() {
    let mut b = builder();
    let ev = run(&mut b, &[text("x"), finish("stop"), usage(100, 20, 64, 5)]);
    let snap = check(&b, &ev);
    assert_eq!(
        snap["usage"],
        json!({"input_tokens": 100, "input_tokens_details": {"cached_tokens": 64, "cache_write_tokens": 0},
               "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 5}, "total_tokens": 120})
    );
    let bare: ChatChunk = serde_json::from_value(
        json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}),
    )
    .unwrap();
    let mut b = builder();
    let ev = run(&mut b, &[text("x"), bare, finish("stop")]);
    let snap = check(&b, &ev);
    assert_eq!(
        snap["usage"],
        json!({"input_tokens": 3, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
               "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 7})
    );
}

#[test]
fn snapshot_has_every_required_field_and_openai_defaults() {
    let b = builder();
    let s = serde_json::to_string(&b.snapshot()).unwrap();
    assert!(s.starts_with(r#"{"id":"resp_0123abcd","object":"response","created_at":1700000000,"status":"in_progress","background":false,"completed_at":null,"error":null,"#), "{s}");
    assert!(s.ends_with(r#""metadata":{}}"#), "{s}");
    let v: Value = serde_json::from_str(&s).unwrap();
    let expect = json!({
        "background": false, "completed_at": null, "error": null, "frequency_penalty": 0.0, "incomplete_details": null,
        "instructions": null, "max_output_tokens": null, "max_tool_calls": null, "model": "gpt-4o", "output": [],
        "parallel_tool_calls": true, "presence_penalty": 0.0, "previous_response_id": null, "prompt_cache_key": null,
        "prompt_cache_retention": null, "reasoning": {"effort": null, "summary": null}, "safety_identifier": null,
        "service_tier": "auto", "store": true, "temperature": 1.0, "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto", "tools": [], "top_logprobs": 0, "top_p": 1.0, "truncation": "disabled", "usage": null,
        "user": null, "metadata": {}, "id": "resp_0123abcd", "object": "response", "created_at": 1_700_000_000,
        "status": "in_progress"
    });
    assert_eq!(v, expect);
}

#[test]
fn request_fields_are_echoed() {
    let req = json!({
        "model": "gpt-4o", "input": "hi", "stream": true, "instructions": "Be brief.", "temperature": 0.2,
        "top_p": null, "max_output_tokens": 64, "metadata": {"k": "v"}, "parallel_tool_calls": false,
        "reasoning": {"effort": "low"}, "text": {"verbosity": "low"}, "tool_choice": "required",
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}},
                  {"type": "web_search"}],
        "conversation": "conv_1", "store": false, "user": "u1"
    });
    let b = builder().with_request(&req);
    assert_eq!(b.status(), Status::InProgress);
    let v = serde_json::to_value(b.snapshot()).unwrap();
    assert_eq!(v["instructions"], "Be brief.");
    assert_eq!(v["temperature"], 0.2);
    assert_eq!(v["top_p"], 1.0, "null takes the default");
    assert_eq!(v["max_output_tokens"], 64);
    assert_eq!(v["metadata"], json!({"k": "v"}));
    assert_eq!(v["parallel_tool_calls"], false);
    assert_eq!(v["reasoning"], json!({"effort": "low", "summary": null}));
    assert_eq!(
        v["text"],
        json!({"format": {"type": "text"}, "verbosity": "low"})
    );
    assert_eq!(v["tool_choice"], "required");
    assert_eq!(
        v["tools"][0],
        json!({"type": "function", "name": "f", "description": null, "strict": true, "parameters": {"type": "object", "properties": {}}})
    );
    assert_eq!(v["tools"][1], json!({"type": "web_search"}));
    assert_eq!(v["conversation"], json!({"id": "conv_1"}));
    assert_eq!(v["store"], false);
    assert_eq!(v["model"], "gpt-4o");
    assert!(v.get("input").is_none() && v.get("stream").is_none());
    let queued = builder()
        .with_request(&req)
        .with_initial_status(Status::Queued);
    assert_eq!(queued.status(), Status::Queued);
}

#[test]
fn item_ids_are_unique_stable_and_configurable() {
    let chunks = [
        reasoning("r"),
        text("t"),
        tool(0, Some("c0"), Some("f"), "{}"),
        tool(1, Some("c1"), Some("g"), "{}"),
        reasoning("r2"),
        finish("stop"),
    ];
    let mut b = builder();
    let ev = run(&mut b, &chunks);
    let snap = check(&b, &ev);
    let ids = each_output(&snap, "id");
    assert_eq!(
        ids,
        [
            "rs_0123abcd0000",
            "msg_0123abcd0001",
            "fc_0123abcd0002",
            "fc_0123abcd0003",
            "rs_0123abcd0004"
        ]
    );
    let mut again = builder();
    run(&mut again, &chunks);
    assert_eq!(
        serde_json::to_value(again.snapshot()).unwrap()["output"],
        snap["output"],
        "stable"
    );
    let mut c = builder().with_item_id_base("f00d");
    let ev = run(&mut c, &[text("x"), finish("stop")]);
    assert_eq!(check(&c, &ev)["output"][0]["id"], "msg_f00d0000");
}

#[test]
fn snapshot_mid_stream_shows_text_so_far() {
    let mut b = builder();
    let mut out = Vec::new();
    for c in [reasoning("plan"), text("Hello th")] {
        b.on_chunk(&c, &mut out);
    }
    let v = serde_json::to_value(b.snapshot()).unwrap();
    assert_eq!(v["status"], "in_progress");
    assert_eq!(
        v["output"][0]["status"],
        Value::Null,
        "reasoning items carry no status"
    );
    assert_eq!(v["output"][1]["status"], "in_progress");
    assert_eq!(v["output"][1]["content"][0]["text"], "Hello th");
    assert_eq!(b.output_text(), "Hello th");
    // Events so far replay to the same items.
    assert_eq!(json!(replay(&out)), v["output"]);
}

#[test]
fn other_choices_are_ignored() {
    let c: ChatChunk = serde_json::from_value(json!({"choices": [
        {"index": 1, "delta": {"content": "other"}, "finish_reason": "length"},
        {"index": 0, "delta": {"content": "mine"}, "finish_reason": "stop"}]}))
    .unwrap();
    let mut b = builder();
    let ev = run(&mut b, &[c]);
    check(&b, &ev);
    assert_eq!(b.output_text(), "mine");
    assert_eq!(b.status(), Status::Completed);
}
