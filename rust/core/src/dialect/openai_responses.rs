//! OpenAI Responses API streams (`POST /v1/responses` with `stream: true`): named SSE events whose
//! name equals the JSON `type` (an unnamed event is dispatched on its `type`). No terminator on
//! api.openai.com: the stream is whole after `response.completed`, `response.incomplete` or
//! `response.failed`; OpenRouter appends `data: [DONE]`, which also ends it. Frames after the end
//! are ignored.
//!
//! - `response.created` → the stream's id, model and `created` (`response.id`, `response.model`,
//!   `response.created_at` in seconds). `response.in_progress` / `response.queued` give them only
//!   when `response.created` was missing. The role (`assistant`) rides on the first chunk that
//!   carries something, not on a chunk of its own: OpenAI's failures (quota, rate limits, overload)
//!   come as an `error` event right after `response.created`, and with nothing yielded before
//!   it they stay errors before the first chunk, which the client raises from the call and retries.
//! - `response.output_text.delta` → `content`; its `logprobs` (`[{token, logprob,
//!   top_logprobs, bytes?}]`) → `logprobs.content` on the same chunk, `bytes` from the token's
//!   UTF-8 when absent. `response.output_text.done` → its `text` (and `logprobs`) only when no
//!   delta came for that (`item_id`, `content_index`): some servers send the done event alone.
//! - `response.output_text.annotation.added` → `annotations` with the annotation in chat's shape
//!   (a `url_citation`'s `url`, `title`, `start_index`, `end_index` under `url_citation`).
//! - `response.refusal.delta` → `refusal`; `response.refusal.done` → its `refusal` under the same
//!   no-delta rule.
//! - `response.reasoning_summary_text.delta` and `response.reasoning_text.delta` →
//!   `reasoning_content`. The first delta of each later part (summary part or reasoning-text
//!   part, of the same reasoning item or the next) starts with `"\n\n"`, so the parts stay apart.
//! - `response.output_item.added` of a `function_call` item → a tool call (`call_id`, `name`,
//!   the item's `arguments` so far), indexed from 0 in order of the calls' arrival and found again
//!   by the item's `id` or its `output_index`. `response.function_call_arguments.delta` → that
//!   call's argument fragment. `response.function_call_arguments.done` or the call's
//!   `response.output_item.done` send the whole `arguments` (`{}` when empty) when no fragment
//!   came, so a call never ends without arguments; a `function_call` item seen only when done
//!   becomes a call then.
//! - `response.completed` → finish `tool_calls` once a function call was seen, else `stop`
//!   (native: `response.status`). `response.incomplete` → the mapped
//!   `response.incomplete_details.reason` (`max_output_tokens` → `length`, `content_filter` →
//!   `content_filter`, others → `length`; native: that reason, or `incomplete` without one).
//!   Both carry usage: `input_tokens` / `output_tokens` / `total_tokens`, with
//!   `input_tokens_details.cached_tokens` (and `cache_write_tokens` → `cache_creation_tokens`)
//!   and `output_tokens_details.reasoning_tokens`.
//! - `response.failed` → [`Error::Provider`] from `response.error` (`{code, message}`, kind from
//!   its `type` when present; "response failed" when it is null), body the whole event.
//! - `error` → [`Error::Provider`], in either shape: the real one nests the error
//!   (`{"type": "error", "error": {type, code, message, param}}`, kind from its `type`);
//!   openai-python's `ResponseErrorEvent` has `code`, `message`, `param` at the top level, where
//!   `type` is the event's own (`error`) and so no kind.
//! - Everything else is ignored: `output_item.*` of other items (messages, reasoning, hosted
//!   tools' calls) once their `type` is read, and unparsed `response.content_part.*`, the
//!   `*.done` of reasoning text, hosted tools' progress (`web_search_call.*`,
//!   `file_search_call.*`, `code_interpreter_call.*`, …) and events added later.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::{content_logprobs, event_kind, logprob_entry, non_empty, sse_payload, top_logprob};
use super::{
    finish_choice, parse_json, provider_error_from_value, tool_delta, usage, with_cached,
    with_reasoning, Dialect, Frame, Framing, Meta,
};
use crate::chunk::{ChatChunk, ChunkChoice, Delta, Logprobs, Usage};
use crate::error::{Error, Result};

const NAME: &str = "openai_responses";

/// Responses status, or `incomplete_details.reason` → OpenAI chat `finish_reason`.
/// (`completed` becomes `tool_calls` once the response called a function.)
pub fn map_finish_reason(native: &str) -> &'static str {
    match native {
        "completed" => "stop",
        "content_filter" => "content_filter",
        // max_output_tokens, max_messages, steered, a reason left out (`incomplete`), the unknown:
        // the answer was cut short.
        _ => "length",
    }
}

#[derive(Debug, Default)]
pub struct OpenAiResponses {
    meta: Meta,
    /// The id, model and time have been taken (from `response.created` or a stand-in).
    has_meta: bool,
    /// Per function call, by OpenAI index: whether any of its arguments have been sent.
    calls: Vec<bool>,
    /// Function calls by their item id, and by their output index.
    call_by_item: HashMap<String, u32>,
    call_by_output: HashMap<u32, u32>,
    /// Content parts that streamed a delta: item id → its content indexes.
    streamed: HashMap<String, Vec<u32>>,
    /// The reasoning part that sent the last reasoning text: (summary?, item id, part index).
    reasoning_part: Option<(bool, String, u32)>,
    /// A chunk has carried the role.
    role_sent: bool,
    done: bool,
}

/// The lifecycle events (`response.created`, `.in_progress`, `.completed`, …): the response
/// object, of which only these fields are read.
#[derive(Deserialize)]
struct WireLifecycle {
    #[serde(default)]
    response: Option<WireResponse>,
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    /// Integer seconds on the wire; openai-python types it as a float.
    #[serde(default)]
    created_at: Option<f64>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    incomplete_details: Option<WireIncomplete>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct WireIncomplete {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default)]
    input_tokens_details: Option<WireInputDetails>,
    #[serde(default)]
    output_tokens_details: Option<WireOutputDetails>,
}

#[derive(Deserialize)]
struct WireInputDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    /// Tokens written to the prompt cache (newer responses): chat's `cache_creation_tokens`.
    #[serde(default)]
    cache_write_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WireOutputDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

/// `response.output_text.delta`, `response.refusal.delta`, and the reasoning deltas.
#[derive(Deserialize)]
struct WireDelta<'a> {
    #[serde(borrow, default)]
    item_id: Option<Cow<'a, str>>,
    #[serde(default)]
    content_index: u32,
    #[serde(default)]
    summary_index: u32,
    #[serde(default)]
    delta: String,
    #[serde(default)]
    logprobs: Option<Vec<WireLogprob>>,
}

/// `response.output_text.done` and `response.refusal.done`.
#[derive(Deserialize)]
struct WireDone<'a> {
    #[serde(borrow, default)]
    item_id: Option<Cow<'a, str>>,
    #[serde(default)]
    content_index: u32,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    logprobs: Option<Vec<WireLogprob>>,
}

/// A token, or one of its alternatives (no `top_logprobs`). openai-python lets an alternative's
/// `token` and `logprob` be null.
#[derive(Deserialize)]
struct WireLogprob {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    logprob: Option<f64>,
    #[serde(default)]
    bytes: Option<Vec<u8>>,
    #[serde(default)]
    top_logprobs: Option<Vec<WireLogprob>>,
}

/// `response.output_text.annotation.added`.
#[derive(Deserialize)]
struct WireAnnotation {
    #[serde(default)]
    annotation: Option<Value>,
}

/// A Responses annotation in chat's shape: a `url_citation`'s fields go under `url_citation`, as
/// Chat Completions sends them; other kinds (file citations) stay as they are.
fn chat_annotation(a: Value) -> Value {
    if a.get("type").and_then(Value::as_str) != Some("url_citation") {
        return a;
    }
    let mut fields = match a {
        Value::Object(m) => m,
        other => return other,
    };
    fields.remove("type");
    serde_json::json!({"type": "url_citation", "url_citation": fields})
}

/// `response.output_item.added` / `.done`.
#[derive(Deserialize)]
struct WireItemEvent<'a> {
    #[serde(default)]
    output_index: Option<u32>,
    #[serde(borrow, default)]
    item: Option<WireItem<'a>>,
}

#[derive(Deserialize)]
struct WireItem<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    call_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// `response.function_call_arguments.delta` / `.done`.
#[derive(Deserialize)]
struct WireArguments<'a> {
    #[serde(borrow, default)]
    item_id: Option<Cow<'a, str>>,
    #[serde(default)]
    output_index: Option<u32>,
    #[serde(default)]
    delta: String,
    #[serde(default)]
    arguments: Option<String>,
}

fn convert_usage(u: WireUsage) -> Usage {
    let base = usage(u.input_tokens, u.output_tokens, u.total_tokens);
    let (cached, written) = u
        .input_tokens_details
        .map_or((None, None), |d| (d.cached_tokens, d.cache_write_tokens));
    with_reasoning(
        with_cached(base, cached, written),
        u.output_tokens_details.and_then(|d| d.reasoning_tokens),
    )
}

fn convert_logprobs(tokens: Option<Vec<WireLogprob>>) -> Option<Logprobs> {
    let entries = tokens
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let alternatives = t
                .top_logprobs
                .unwrap_or_default()
                .into_iter()
                .map(|a| {
                    top_logprob(
                        a.token.unwrap_or_default(),
                        a.logprob.unwrap_or(0.0),
                        a.bytes,
                    )
                })
                .collect();
            logprob_entry(
                t.token.unwrap_or_default(),
                t.logprob.unwrap_or(0.0),
                t.bytes,
                alternatives,
            )
        })
        .collect();
    content_logprobs(entries)
}

/// The `error` event: nested (`{"error": {type, code, message, param}}`, as api.openai.com sends
/// it) or flat (`{code, message, param}`, openai-python's `ResponseErrorEvent`, whose `type` is
/// the event's and no error kind, so it is dropped before the shared reading).
fn error_event(data: &[u8]) -> Error {
    let body = String::from_utf8_lossy(data).into_owned();
    let mut v: Value = serde_json::from_slice(data).unwrap_or(Value::Null);
    if v.get("error").is_none_or(Value::is_null) {
        if let Value::Object(m) = &mut v {
            m.remove("type");
            m.remove("error");
        }
    }
    provider_error_from_value(&v, body)
}

impl OpenAiResponses {
    fn emit(&mut self, delta: Delta, out: &mut Vec<ChatChunk>) {
        let chunk = self.meta.delta(0, delta);
        self.push(chunk, out);
    }

    /// Every chunk goes out here: the first one takes the role.
    fn push(&mut self, mut chunk: ChatChunk, out: &mut Vec<ChatChunk>) {
        if !self.role_sent {
            if let Some(choice) = chunk.choices.first_mut() {
                choice.delta.role = Some("assistant".to_owned());
                self.role_sent = true;
            }
        }
        out.push(chunk);
    }

    /// A chunk of text (or refusal) with its token logprobs; none when both are empty.
    fn text_chunk(
        &mut self,
        refusal: bool,
        text: Option<String>,
        logprobs: Option<Logprobs>,
        out: &mut Vec<ChatChunk>,
    ) {
        let mut delta = Delta::default();
        if refusal {
            delta.refusal = non_empty(text);
        } else {
            delta.content = non_empty(text);
        }
        if delta != Delta::default() || logprobs.is_some() {
            let chunk = self.meta.chunk(vec![ChunkChoice {
                index: 0,
                delta,
                logprobs,
                ..Default::default()
            }]);
            self.push(chunk, out);
        }
    }

    fn take_meta(&mut self, r: &WireResponse) {
        self.has_meta = true;
        self.meta.id = r.id.clone().unwrap_or_default().into();
        self.meta.model = r.model.clone().unwrap_or_default().into();
        self.meta.created = r.created_at.map_or(0, |t| t as i64);
    }

    /// Note that the part (`item_id`, `content_index`) streamed a delta.
    fn mark_streamed(&mut self, item: &str, part: u32) {
        match self.streamed.get_mut(item) {
            Some(parts) => {
                if !parts.contains(&part) {
                    parts.push(part);
                }
            }
            None => {
                self.streamed.insert(item.to_owned(), vec![part]);
            }
        }
    }

    fn was_streamed(&self, item: &str, part: u32) -> bool {
        self.streamed.get(item).is_some_and(|p| p.contains(&part))
    }

    /// The OpenAI index of a known function call: by item id, else by output index.
    fn call_index(&self, item: Option<&str>, output: Option<u32>) -> Option<u32> {
        item.and_then(|i| self.call_by_item.get(i))
            .or_else(|| output.and_then(|o| self.call_by_output.get(&o)))
            .copied()
    }

    fn on_event(&mut self, kind: &str, data: &[u8], out: &mut Vec<ChatChunk>) -> Result<()> {
        match kind {
            "response.output_text.delta" | "response.refusal.delta" => {
                let d: WireDelta<'_> = parse_json(NAME, data)?;
                let logprobs = convert_logprobs(d.logprobs);
                if d.delta.is_empty() && logprobs.is_none() {
                    return Ok(());
                }
                self.mark_streamed(d.item_id.as_deref().unwrap_or(""), d.content_index);
                let refusal = kind == "response.refusal.delta";
                self.text_chunk(refusal, Some(d.delta), logprobs, out);
            }
            "response.output_text.done" | "response.refusal.done" => {
                let d: WireDone<'_> = parse_json(NAME, data)?;
                if self.was_streamed(d.item_id.as_deref().unwrap_or(""), d.content_index) {
                    return Ok(());
                }
                let refusal = kind == "response.refusal.done";
                let text = if refusal { d.refusal } else { d.text };
                self.text_chunk(refusal, text, convert_logprobs(d.logprobs), out);
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                let d: WireDelta<'_> = parse_json(NAME, data)?;
                if d.delta.is_empty() {
                    return Ok(());
                }
                let summary = kind == "response.reasoning_summary_text.delta";
                let index = if summary {
                    d.summary_index
                } else {
                    d.content_index
                };
                let item = d.item_id.as_deref().unwrap_or("");
                let same = matches!(&self.reasoning_part,
                    Some((s, i, n)) if *s == summary && i == item && *n == index);
                let text = if same || self.reasoning_part.is_none() {
                    d.delta
                } else {
                    format!("\n\n{}", d.delta) // a new part: keep the parts apart
                };
                if !same {
                    self.reasoning_part = Some((summary, item.to_owned(), index));
                }
                self.emit(
                    Delta {
                        reasoning_content: Some(text),
                        ..Default::default()
                    },
                    out,
                );
            }
            "response.output_text.annotation.added" => {
                let a: WireAnnotation = parse_json(NAME, data)?;
                if let Some(annotation) = a.annotation {
                    self.emit(
                        Delta {
                            annotations: Some(Box::new([chat_annotation(annotation)])),
                            ..Default::default()
                        },
                        out,
                    );
                }
            }
            "response.output_item.added" | "response.output_item.done" => {
                let ev: WireItemEvent<'_> = parse_json(NAME, data)?;
                match ev.item {
                    Some(item) if item.kind.as_deref() == Some("function_call") => {
                        if kind == "response.output_item.added" {
                            self.on_call_added(ev.output_index, item, out);
                        } else {
                            self.on_call_done(ev.output_index, item, out);
                        }
                    }
                    _ => {} // messages, reasoning, hosted tools' calls
                }
            }
            "response.function_call_arguments.delta" => {
                let a: WireArguments<'_> = parse_json(NAME, data)?;
                if a.delta.is_empty() {
                    return Ok(());
                }
                if let Some(n) = self.call_index(a.item_id.as_deref(), a.output_index) {
                    self.calls[n as usize] = true;
                    self.emit(tool_delta(n, None, None, a.delta), out);
                }
            }
            "response.function_call_arguments.done" => {
                let a: WireArguments<'_> = parse_json(NAME, data)?;
                if let Some(n) = self.call_index(a.item_id.as_deref(), a.output_index) {
                    self.send_whole_arguments(n, a.arguments, out);
                }
            }
            "response.created" | "response.in_progress" | "response.queued" => {
                let ev: WireLifecycle = parse_json(NAME, data)?;
                let created = kind == "response.created";
                if let Some(r) = ev.response.filter(|_| created || !self.has_meta) {
                    self.take_meta(&r);
                }
            }
            "response.completed" | "response.incomplete" => {
                let ev: WireLifecycle = parse_json(NAME, data)?;
                self.on_end(kind, ev.response, out);
            }
            "response.failed" => {
                self.done = true;
                let ev: WireLifecycle = parse_json(NAME, data)?;
                let body = String::from_utf8_lossy(data).into_owned();
                return Err(match ev.response.and_then(|r| r.error) {
                    Some(e) if !e.is_null() => provider_error_from_value(&e, body),
                    _ => Error::Provider {
                        message: "response failed".to_owned(),
                        kind: None,
                        code: None,
                        param: None,
                        body,
                    },
                });
            }
            "error" => {
                self.done = true;
                return Err(error_event(data));
            }
            _ => {} // content parts, hosted tools' progress, later additions
        }
        Ok(())
    }

    fn on_call_added(&mut self, output: Option<u32>, item: WireItem<'_>, out: &mut Vec<ChatChunk>) {
        let n = self.calls.len() as u32;
        let arguments = item.arguments.unwrap_or_default();
        self.calls.push(!arguments.is_empty());
        if let Some(o) = output {
            self.call_by_output.insert(o, n);
        }
        let id = item.call_id.or_else(|| item.id.clone()).unwrap_or_default();
        if let Some(item_id) = item.id {
            self.call_by_item.insert(item_id, n);
        }
        let name = item.name.unwrap_or_default();
        self.emit(tool_delta(n, Some(id), Some(name), arguments), out);
    }

    fn on_call_done(&mut self, output: Option<u32>, item: WireItem<'_>, out: &mut Vec<ChatChunk>) {
        match self.call_index(item.id.as_deref(), output) {
            Some(n) => self.send_whole_arguments(n, item.arguments, out),
            None => {
                // Never announced: the call arrives whole.
                let arguments = non_empty(item.arguments).unwrap_or_else(|| "{}".to_owned());
                let item = WireItem {
                    arguments: Some(arguments),
                    ..item
                };
                self.on_call_added(output, item, out);
            }
        }
    }

    /// The whole arguments of call `n`, when none of them were sent yet.
    fn send_whole_arguments(
        &mut self,
        n: u32,
        arguments: Option<String>,
        out: &mut Vec<ChatChunk>,
    ) {
        if std::mem::replace(&mut self.calls[n as usize], true) {
            return;
        }
        let arguments = non_empty(arguments).unwrap_or_else(|| "{}".to_owned());
        self.emit(tool_delta(n, None, None, arguments), out);
    }

    fn on_end(&mut self, kind: &str, r: Option<WireResponse>, out: &mut Vec<ChatChunk>) {
        self.done = true;
        let r = r.unwrap_or(WireResponse {
            id: None,
            model: None,
            created_at: None,
            status: None,
            incomplete_details: None,
            usage: None,
            error: None,
        });
        if !self.has_meta {
            self.take_meta(&r);
        }
        let (reason, native) = if kind == "response.completed" {
            let native = r.status.unwrap_or_else(|| "completed".to_owned());
            let reason = if self.calls.is_empty() {
                map_finish_reason(&native)
            } else {
                "tool_calls"
            };
            (reason, native)
        } else {
            let native = r
                .incomplete_details
                .and_then(|d| d.reason)
                .unwrap_or_else(|| "incomplete".to_owned());
            (map_finish_reason(&native), native)
        };
        let mut chunk = self
            .meta
            .chunk(vec![finish_choice(0, Delta::default(), reason, native)]);
        chunk.usage = r.usage.map(|u| Box::new(convert_usage(u)));
        self.push(chunk, out);
    }
}

impl Dialect for OpenAiResponses {
    fn name(&self) -> &'static str {
        NAME
    }

    fn framing(&self) -> Framing {
        Framing::Sse
    }

    fn on_frame(&mut self, frame: Frame<'_>, out: &mut Vec<ChatChunk>) -> Result<()> {
        // `event: error` has this dialect's own shapes (`error_event`), so sse_payload sees it
        // without its name.
        let unnamed = Frame {
            event: b"",
            data: frame.data,
        };
        let Some(data) = sse_payload(&unnamed, &mut self.done)? else {
            return Ok(());
        };
        let kind = event_kind(NAME, frame.event, data)?;
        self.on_event(&kind, data, out)
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Accumulator, ChatCompletion};

    /// One named SSE event per JSON payload (its `type` as the name).
    fn named(events: &[&str]) -> String {
        events
            .iter()
            .map(|e| {
                let v: Value = serde_json::from_str(e).unwrap();
                format!("event: {}\ndata: {e}\n\n", v["type"].as_str().unwrap())
            })
            .collect()
    }

    /// Decode a body whole; (chunks, completion, error, done).
    fn run(body: &str) -> (Vec<ChatChunk>, ChatCompletion, Option<Error>, bool) {
        let mut d = crate::ChunkDecoder::new(NAME).unwrap();
        let mut chunks = Vec::new();
        let err = d
            .feed(body.as_bytes(), &mut chunks)
            .and_then(|()| d.finish(&mut chunks))
            .err();
        let mut acc = Accumulator::new();
        for c in &chunks {
            acc.add(c);
        }
        (chunks, acc.snapshot(), err, d.is_done())
    }

    const CREATED: &str = r#"{"type":"response.created","response":{"id":"resp_1","model":"gpt-x","created_at":1700000000,"status":"in_progress","output":[]},"sequence_number":0}"#;
    const TEXT: &str = r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"hi","logprobs":[],"sequence_number":1}"#;
    const COMPLETED: &str = r#"{"type":"response.completed","response":{"id":"resp_1","model":"gpt-x","created_at":1700000000,"status":"completed","usage":{"input_tokens":3,"output_tokens":1,"total_tokens":4}},"sequence_number":2}"#;

    #[test]
    fn error_events_of_both_shapes() {
        // openai-python's ResponseErrorEvent is flat, and its `type` is the event's own: no kind.
        // api.openai.com nests the error, whose own `type` is the kind.
        let flat = r#"{"type":"error","code":"server_error","message":"boom","param":"input","sequence_number":2}"#;
        let nested = r#"{"type":"error","sequence_number":2,"error":{"type":"insufficient_quota","code":"insufficient_quota","message":"You exceeded your current quota.","param":null}}"#;
        let cases = [
            (flat, "boom", None, Some("server_error"), Some("input")),
            (
                nested,
                "You exceeded your current quota.",
                Some("insufficient_quota"),
                Some("insufficient_quota"),
                None,
            ),
        ];
        for (event, want_message, want_kind, want_code, want_param) in cases {
            for body in [
                named(&[CREATED, event]),
                format!("data: {CREATED}\n\ndata: {event}\n\n"),
            ] {
                let (chunks, _, err, done) = run(&body);
                assert!(done, "an error ends the stream");
                // Nothing before the error (no role-only chunk): the client raises it from the call.
                assert!(chunks.is_empty());
                match err {
                    Some(Error::Provider {
                        message,
                        kind,
                        code,
                        param,
                        body,
                    }) => {
                        assert_eq!(message, want_message);
                        assert_eq!(kind.as_deref(), want_kind);
                        assert_eq!(code.as_deref(), want_code);
                        assert_eq!(param.as_deref(), want_param);
                        assert_eq!(body, event);
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
    }

    #[test]
    fn failed_response_without_an_error_object() {
        let failed = r#"{"type":"response.failed","response":{"id":"resp_1","status":"failed","error":null},"sequence_number":1}"#;
        let (_, _, err, done) = run(&named(&[CREATED, failed]));
        assert!(done);
        match err {
            Some(Error::Provider {
                message,
                kind,
                code,
                body,
                ..
            }) => {
                assert_eq!(
                    (message.as_str(), kind, code),
                    ("response failed", None, None)
                );
                assert_eq!(body, failed);
            }
            other => panic!("{other:?}"),
        }
        let typed = r#"{"type":"response.failed","response":{"error":{"type":"server_error","code":"server_error","message":"x"}}}"#;
        let (_, _, err, _) = run(&named(&[typed]));
        assert!(
            matches!(err, Some(Error::Provider { kind: Some(ref k), .. }) if k == "server_error"),
            "{err:?}"
        );
    }

    #[test]
    fn done_marker_ends_the_stream() {
        // OpenRouter: unnamed events, then [DONE] after the terminal event.
        let body =
            format!("data: {CREATED}\n\ndata: {TEXT}\n\ndata: {COMPLETED}\n\ndata: [DONE]\n\n");
        let (_, c, err, done) = run(&body);
        assert_eq!(err, None);
        assert!(done);
        assert_eq!(c.choices[0].message.content.as_deref(), Some("hi"));
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
        // [DONE] alone also ends it (no finish reason then), and nothing after it is read.
        let body = format!("data: {CREATED}\n\ndata: {TEXT}\n\ndata: [DONE]\n\ndata: {TEXT}\n\n");
        let (_, c, err, done) = run(&body);
        assert_eq!(err, None);
        assert!(done);
        assert_eq!(c.choices[0].message.content.as_deref(), Some("hi"));
        assert_eq!(c.choices[0].finish_reason, None);
    }

    #[test]
    fn frames_after_the_terminal_event_are_ignored() {
        let later_error = r#"{"type":"error","code":"server_error","message":"late"}"#;
        let (chunks, c, err, done) = run(&named(&[CREATED, TEXT, COMPLETED, TEXT, later_error]));
        assert_eq!(err, None);
        assert!(done);
        assert_eq!(chunks.len(), 2, "text (with the role), finish");
        assert_eq!(
            chunks[0].choices[0].delta.role.as_deref(),
            Some("assistant")
        );
        assert_eq!(chunks[1].choices[0].delta.role, None);
        assert_eq!(c.choices[0].message.content.as_deref(), Some("hi"));
        let u = c.usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (3, 1, 4)
        );

        let incomplete = r#"{"type":"response.incomplete","response":{"status":"incomplete","incomplete_details":null}}"#;
        let (chunks, c, err, _) = run(&named(&[CREATED, incomplete, TEXT]));
        assert_eq!(err, None);
        assert_eq!(chunks.len(), 1, "the finish alone, with the role");
        let ch = &c.choices[0];
        assert_eq!(ch.finish_reason.as_deref(), Some("length"));
        assert_eq!(ch.native_finish_reason.as_deref(), Some("incomplete"));
    }

    #[test]
    fn interleaved_argument_deltas_find_their_call() {
        let added = |out: u32, id: &str, call: &str| {
            format!(
                r#"{{"type":"response.output_item.added","output_index":{out},"item":{{"type":"function_call","id":"{id}","call_id":"{call}","name":"f{out}","arguments":""}}}}"#
            )
        };
        let delta = |item: Option<&str>, out: u32, d: &str| {
            let item = item.map_or(String::new(), |i| format!(r#""item_id":"{i}","#));
            format!(
                r#"{{"type":"response.function_call_arguments.delta",{item}"output_index":{out},"delta":"{d}"}}"#
            )
        };
        let message = r#"{"type":"response.output_item.added","output_index":0,"item":{"type":"message","id":"msg_0","content":[]}}"#;
        let events = [
            CREATED.to_owned(),
            message.to_owned(),
            added(1, "fc_a", "call_a"),
            added(2, "fc_b", "call_b"),
            delta(Some("fc_a"), 1, "{\\\"a\\\":"),
            delta(Some("fc_b"), 2, "{\\\"b\\\":"),
            // The item id wins over a (wrong) output index.
            delta(Some("fc_b"), 1, "2}"),
            // No item id: the output index finds the call.
            delta(None, 1, "1}"),
            // Neither known: dropped.
            delta(Some("fc_zzz"), 9, "x"),
            r#"{"type":"response.function_call_arguments.done","item_id":"fc_a","output_index":1,"arguments":"{\"a\":1}"}"#.to_owned(),
            r#"{"type":"response.output_item.done","output_index":2,"item":{"type":"function_call","id":"fc_b","call_id":"call_b","name":"f2","arguments":"{\"b\":2}"}}"#.to_owned(),
            COMPLETED.to_owned(),
        ];
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        let (_, c, err, done) = run(&named(&refs));
        assert_eq!(err, None);
        assert!(done);
        let ch = &c.choices[0];
        assert_eq!(ch.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(ch.native_finish_reason.as_deref(), Some("completed"));
        let calls: Vec<(u32, &str, &str, &str)> = ch
            .message
            .tool_calls
            .as_ref()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t.index,
                    t.id.as_str(),
                    t.function.name.as_str(),
                    t.function.arguments.as_str(),
                )
            })
            .collect();
        assert_eq!(
            calls,
            [
                (0, "call_a", "f1", "{\"a\":1}"),
                (1, "call_b", "f2", "{\"b\":2}")
            ]
        );
    }

    #[test]
    fn logprob_bytes_are_kept_when_sent() {
        let delta = r#"{"type":"response.output_text.delta","item_id":"m","content_index":0,"delta":"é","logprobs":[{"token":"é","logprob":-0.5,"bytes":[195,169],"top_logprobs":null}]}"#;
        let (chunks, _, err, _) = run(&named(&[CREATED, delta, COMPLETED]));
        assert_eq!(err, None);
        let lp = chunks[0].choices[0].logprobs.as_ref().unwrap();
        assert_eq!(
            lp.content.as_ref().unwrap()[0],
            serde_json::json!({"token": "é", "logprob": -0.5, "bytes": [195, 169], "top_logprobs": []})
        );
    }

    #[test]
    fn meta_from_in_progress_when_created_is_missing() {
        let in_progress = r#"{"type":"response.in_progress","response":{"id":"resp_9","model":"m9","created_at":1700000009.0}}"#;
        let (chunks, c, err, _) = run(&named(&[in_progress, TEXT, COMPLETED]));
        assert_eq!(err, None);
        assert_eq!(chunks[0].id, "resp_9");
        assert_eq!((c.model.as_str(), c.created), ("m9", 1_700_000_009));
    }

    #[test]
    fn reasoning_parts_stay_apart_across_items() {
        let part = |item: &str, kind: &str, index: &str, n: u32, text: &str| {
            format!(
                r#"{{"type":"response.{kind}.delta","item_id":"{item}","output_index":0,"{index}":{n},"delta":"{text}"}}"#
            )
        };
        let events = [
            CREATED.to_owned(),
            part("rs_1", "reasoning_summary_text", "summary_index", 0, "a"),
            part("rs_1", "reasoning_summary_text", "summary_index", 0, "b"),
            part("rs_1", "reasoning_summary_text", "summary_index", 1, "c"),
            part("rs_2", "reasoning_summary_text", "summary_index", 0, "d"), // the next item's part 0
            part("rs_3", "reasoning_text", "content_index", 0, "e"),
            part("rs_3", "reasoning_text", "content_index", 0, "f"),
            COMPLETED.to_owned(),
        ];
        let refs: Vec<&str> = events.iter().map(String::as_str).collect();
        let (_, c, err, _) = run(&named(&refs));
        assert_eq!(err, None);
        assert_eq!(
            c.choices[0].message.reasoning_content.as_deref(),
            Some("ab\n\nc\n\nd\n\nef")
        );
    }

    #[test]
    fn cache_writes_are_kept() {
        let completed = r#"{"type":"response.completed","response":{"id":"resp_1","status":"completed","usage":{"input_tokens":3000,"input_tokens_details":{"cached_tokens":1024,"cache_write_tokens":1500},"output_tokens":10,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":3010}}}"#;
        let (_, c, err, _) = run(&named(&[CREATED, TEXT, completed]));
        assert_eq!(err, None);
        let d = c.usage.unwrap().prompt_tokens_details.unwrap();
        assert_eq!(
            (d.cached_tokens, d.cache_creation_tokens),
            (Some(1024), Some(1500))
        );
    }

    #[test]
    fn annotations_take_chat_shape() {
        let added = r#"{"type":"response.output_text.annotation.added","item_id":"msg_1","output_index":0,"content_index":0,"annotation_index":0,"annotation":{"type":"url_citation","url":"https://a","title":"A","start_index":0,"end_index":2}}"#;
        let file = r#"{"type":"response.output_text.annotation.added","item_id":"msg_1","output_index":0,"content_index":0,"annotation_index":1,"annotation":{"type":"file_citation","file_id":"f","index":1,"filename":"x.pdf"}}"#;
        let (_, c, err, _) = run(&named(&[CREATED, TEXT, added, file, COMPLETED]));
        assert_eq!(err, None);
        assert_eq!(
            c.choices[0].message.annotations.as_deref(),
            Some(
                &[
                    serde_json::json!({"type": "url_citation", "url_citation": {"url": "https://a", "title": "A", "start_index": 0, "end_index": 2}}),
                    serde_json::json!({"type": "file_citation", "file_id": "f", "index": 1, "filename": "x.pdf"}),
                ][..]
            )
        );
    }

    #[test]
    fn finish_reasons() {
        assert_eq!(map_finish_reason("completed"), "stop");
        assert_eq!(map_finish_reason("max_output_tokens"), "length");
        assert_eq!(map_finish_reason("content_filter"), "content_filter");
        assert_eq!(map_finish_reason("incomplete"), "length");
        assert_eq!(map_finish_reason("something_new"), "length");
    }
}
