//! Chunk builders and the client-side replay oracle shared by the Responses tests.

use std::collections::{BTreeMap, BTreeSet};

use polystream_core::responses::{ResponseEvent, ResponsesBuilder};
use polystream_core::ChatChunk;
use serde_json::{json, Value};

// ---- chunk helpers ------------------------------------------------------------------------

pub fn chunk(delta: Value, finish: Option<&str>) -> ChatChunk {
    serde_json::from_value(json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    }))
    .unwrap()
}

pub fn text(s: &str) -> ChatChunk {
    chunk(json!({"content": s}), None)
}

/// One chat logprobs entry: `token` with its bytes and two alternatives (itself and "~").
pub fn token(token: &str, logprob: f64) -> Value {
    json!({"token": token, "logprob": logprob, "bytes": token.as_bytes(),
           "top_logprobs": [{"token": token, "logprob": logprob, "bytes": token.as_bytes()},
                            {"token": "~", "logprob": logprob - 2.0, "bytes": [126]}]})
}

/// A content chunk carrying `logprobs.content` (OpenAI's chat chunk shape).
pub fn text_logprobs(s: &str, tokens: &[Value]) -> ChatChunk {
    serde_json::from_value(json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": "m",
        "choices": [{"index": 0, "delta": {"content": s}, "logprobs": {"content": tokens, "refusal": null},
                     "finish_reason": null}]
    }))
    .unwrap()
}

/// A builder whose request asked for logprobs (`include: ["message.output_text.logprobs"]`).
pub fn logprobs_builder() -> ResponsesBuilder {
    builder().with_request(&json!({"include": ["message.output_text.logprobs"], "top_logprobs": 2}))
}

/// Logprobs (or a part holding them) in the events' shape: without `bytes`.
pub fn without_bytes(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| *k != "bytes")
                .map(|(k, v)| (k.clone(), without_bytes(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_bytes).collect()),
        other => other.clone(),
    }
}

pub fn reasoning(s: &str) -> ChatChunk {
    chunk(json!({"reasoning_content": s}), None)
}

pub fn refusal(s: &str) -> ChatChunk {
    chunk(json!({"refusal": s}), None)
}

pub fn tool(index: u32, id: Option<&str>, name: Option<&str>, args: &str) -> ChatChunk {
    let mut f = json!({"arguments": args});
    if let Some(n) = name {
        f["name"] = json!(n);
    }
    let mut tc = json!({"index": index, "type": "function", "function": f});
    if let Some(i) = id {
        tc["id"] = json!(i);
    }
    chunk(json!({"tool_calls": [tc]}), None)
}

pub fn finish(reason: &str) -> ChatChunk {
    chunk(json!({}), Some(reason))
}

pub fn usage(prompt: u64, completion: u64, cached: u64, reasoning_tokens: u64) -> ChatChunk {
    serde_json::from_value(json!({
        "id": "chatcmpl-1", "created": 1700000000, "model": "m", "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                  "prompt_tokens_details": {"cached_tokens": cached},
                  "completion_tokens_details": {"reasoning_tokens": reasoning_tokens}}
    }))
    .unwrap()
}

pub fn builder() -> ResponsesBuilder {
    ResponsesBuilder::new("resp_0123abcd", "gpt-4o", 1_700_000_000)
}

/// Feed `chunks`, then `finish()`; returns every event.
pub fn run(b: &mut ResponsesBuilder, chunks: &[ChatChunk]) -> Vec<ResponseEvent> {
    let mut out = Vec::new();
    for c in chunks {
        b.on_chunk(c, &mut out);
    }
    b.finish(&mut out);
    out
}

pub fn types(events: &[ResponseEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.name()).collect()
}

pub fn to_json(events: &[ResponseEvent]) -> Vec<Value> {
    events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

// ---- the client-side replay oracle --------------------------------------------------------

/// Rebuild the output from the events alone, asserting the protocol on the way: sequence numbers
/// 0..n, `response.created` first, one response id, indexes that point at added items and parts,
/// deltas that add up to each `.done`, every part and item done (text before part before item),
/// nothing after a terminal event.
/// Returns the replayed output items (with the status of their `output_item.done`).
pub fn replay(events: &[ResponseEvent]) -> Vec<Value> {
    let evs = to_json(events);
    assert!(!evs.is_empty());
    assert_eq!(
        evs[0]["type"], "response.created",
        "first event must be response.created"
    );
    let rid = evs[0]["response"]["id"].clone();
    let mut items: BTreeMap<u64, Value> = BTreeMap::new();
    let mut done: BTreeMap<u64, Value> = BTreeMap::new();
    let mut terminal = false;
    // What still owes a `.done`: "<output_index>/<what><index>".
    let mut owed: BTreeSet<String> = BTreeSet::new();
    for (n, ev) in evs.iter().enumerate() {
        assert_eq!(
            ev["sequence_number"],
            json!(n),
            "sequence numbers are 0..n: {ev}"
        );
        assert_eq!(ev["type"], json!(events[n].name()));
        assert!(!terminal, "event after the terminal one: {ev}");
        let ty = ev["type"].as_str().unwrap();
        if let Some(resp) = ev.get("response") {
            assert_eq!(resp["id"], rid, "lifecycle response identity changed");
            assert_eq!(resp["object"], "response");
            if matches!(
                ty,
                "response.completed" | "response.incomplete" | "response.failed"
            ) {
                terminal = true;
                let out: Vec<Value> = done.values().cloned().collect();
                assert_eq!(
                    resp["output"],
                    json!(out),
                    "terminal output = the items done"
                );
                assert_eq!(
                    items.len(),
                    done.len(),
                    "every added item is done before {ty}"
                );
            }
            continue;
        }
        if ty == "error" {
            continue;
        }
        let oi = ev["output_index"].as_u64().unwrap();
        if ty == "response.output_item.added" {
            assert_eq!(oi, items.len() as u64, "output_index grows by one per item");
            assert_eq!(
                ev["item"]["status"].as_str().unwrap_or("in_progress"),
                "in_progress"
            );
            if ev["item"]["type"] == "function_call" {
                owe(&mut owed, format!("{oi}/args"), true, ev);
            }
            owe(&mut owed, format!("{oi}/item"), true, ev);
            items.insert(oi, ev["item"].clone());
            continue;
        }
        let item = items
            .get_mut(&oi)
            .unwrap_or_else(|| panic!("event for an unknown item: {ev}"));
        assert!(
            !done.contains_key(&oi),
            "event for an item already done: {ev}"
        );
        if let Some(id) = ev.get("item_id") {
            assert_eq!(id, &item["id"]);
        }
        let ci = ev
            .get("content_index")
            .and_then(Value::as_u64)
            .map(|c| c as usize);
        let si = ev
            .get("summary_index")
            .and_then(Value::as_u64)
            .map(|c| c as usize);
        let append = |dst: &mut Value, delta: &Value| {
            let s = format!("{}{}", dst.as_str().unwrap(), delta.as_str().unwrap());
            *dst = json!(s);
        };
        match ty {
            "response.content_part.added" | "response.reasoning_summary_part.added" => {
                let (what, i) = if ci.is_some() { ("c", ci) } else { ("s", si) };
                owe(&mut owed, format!("{oi}/{what}{}", i.unwrap()), true, ev);
                owe(&mut owed, format!("{oi}/{what}t{}", i.unwrap()), true, ev);
            }
            "response.output_text.done" | "response.refusal.done" => {
                owe(&mut owed, format!("{oi}/ct{}", ci.unwrap()), false, ev)
            }
            "response.reasoning_summary_text.done" => {
                owe(&mut owed, format!("{oi}/st{}", si.unwrap()), false, ev)
            }
            "response.content_part.done" => {
                owe(&mut owed, format!("{oi}/c{}", ci.unwrap()), false, ev)
            }
            "response.reasoning_summary_part.done" => {
                owe(&mut owed, format!("{oi}/s{}", si.unwrap()), false, ev)
            }
            "response.function_call_arguments.done" => {
                owe(&mut owed, format!("{oi}/args"), false, ev)
            }
            "response.output_item.done" => {
                owe(&mut owed, format!("{oi}/item"), false, ev);
                let prefix = format!("{oi}/");
                assert!(
                    !owed.iter().any(|k| k.starts_with(&prefix)),
                    "item done before its parts: {owed:?} {ev}"
                );
            }
            _ => {}
        }
        match ty {
            "response.content_part.added" => {
                let content = item["content"].as_array_mut().unwrap();
                assert_eq!(ci, Some(content.len()));
                content.push(ev["part"].clone());
            }
            "response.output_text.delta" => {
                let part = &mut item["content"][ci.unwrap()];
                append(&mut part["text"], &ev["delta"]);
                let tokens = ev["logprobs"].as_array().unwrap();
                part["logprobs"]
                    .as_array_mut()
                    .unwrap()
                    .extend_from_slice(tokens);
            }
            "response.output_text.done" => {
                // The deltas' logprobs add up to the done event's (both without `bytes`).
                let part = &item["content"][ci.unwrap()];
                assert_eq!(part["text"], ev["text"]);
                assert_eq!(part["logprobs"], ev["logprobs"], "{ev}");
            }
            "response.output_text.annotation.added" => {
                let list = item["content"][ci.unwrap()]["annotations"]
                    .as_array_mut()
                    .unwrap();
                assert_eq!(ev["annotation_index"].as_u64(), Some(list.len() as u64));
                list.push(ev["annotation"].clone());
            }
            "response.refusal.delta" => {
                append(&mut item["content"][ci.unwrap()]["refusal"], &ev["delta"])
            }
            "response.refusal.done" => {
                assert_eq!(item["content"][ci.unwrap()]["refusal"], ev["refusal"])
            }
            "response.content_part.done" => {
                // The finished part: what the deltas built, plus the tokens' `bytes`.
                let part = &mut item["content"][ci.unwrap()];
                assert_eq!(*part, without_bytes(&ev["part"]), "{ev}");
                *part = ev["part"].clone();
            }
            "response.reasoning_summary_part.added" => {
                let summary = item["summary"].as_array_mut().unwrap();
                assert_eq!(si, Some(summary.len()));
                summary.push(ev["part"].clone());
            }
            "response.reasoning_summary_text.delta" => {
                append(&mut item["summary"][si.unwrap()]["text"], &ev["delta"])
            }
            "response.reasoning_summary_text.done" => {
                assert_eq!(item["summary"][si.unwrap()]["text"], ev["text"])
            }
            "response.reasoning_summary_part.done" => {
                assert_eq!(item["summary"][si.unwrap()], ev["part"])
            }
            "response.function_call_arguments.delta" => {
                append(&mut item["arguments"], &ev["delta"])
            }
            "response.function_call_arguments.done" => {
                assert_eq!(item["arguments"], ev["arguments"])
            }
            "response.output_item.done" => {
                let mut replayed = item.clone();
                replayed["status"] = ev["item"]["status"].clone();
                if ev["item"].get("status").is_none() {
                    replayed.as_object_mut().unwrap().remove("status");
                }
                assert_eq!(
                    replayed, ev["item"],
                    "item.done = the item the deltas built"
                );
                done.insert(oi, ev["item"].clone());
            }
            other => panic!("unexpected event type {other}"),
        }
    }
    items.into_values().map(|i| done_or(i, &done)).collect()
}

fn owe(owed: &mut BTreeSet<String>, key: String, add: bool, ev: &Value) {
    if add {
        assert!(owed.insert(key), "added twice: {ev}");
    } else {
        assert!(
            owed.remove(&key),
            "{key} done but never added, or done twice: {ev}"
        );
    }
}

pub fn done_or(item: Value, done: &BTreeMap<u64, Value>) -> Value {
    done.values()
        .find(|d| d["id"] == item["id"])
        .cloned()
        .unwrap_or(item)
}

/// Replay + the snapshot agrees with it + output_text agrees with the parts.
pub fn check(b: &ResponsesBuilder, events: &[ResponseEvent]) -> Value {
    let replayed = replay(events);
    let snap = serde_json::to_value(b.snapshot()).unwrap();
    assert_eq!(
        snap["output"],
        json!(replayed),
        "snapshot output = replayed output"
    );
    assert_eq!(b.snapshot().output_text(), b.output_text());
    assert_eq!(b.next_sequence_number(), events.len() as u64);
    snap
}
