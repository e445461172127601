//! Normalised chat chunks (from any provider) → OpenAI Responses-API stream events, plus the
//! current `Response` snapshot at any moment.
//!
//! Sans-I/O like the rest of the core: no clock, no RNG. The caller supplies the response id and
//! timestamps; item ids are derived from the response id (see [`ResponsesBuilder::with_item_id_base`]).
//!
//! Mapping, per chunk of choice 0 (a Response has one output list, so choices `n > 1` cannot be
//! represented; other choices are ignored):
//! - `reasoning_content` → a `reasoning` item with one `summary_text` part;
//! - `content` → an `output_text` part of a `message` item; `refusal` → a `refusal` part of it;
//! - `logprobs.content` → the token logprobs of that text, when the request's `include` lists
//!   `message.output_text.logprobs` (as OpenAI: `top_logprobs` alone returns none);
//! - `annotations` → the text part's `annotations` (a chat `url_citation`'s fields flattened, as
//!   the Responses API has them), each with a `response.output_text.annotation.added` event;
//! - each `tool_calls[i]` → a `function_call` item (announced once its name is known).
//!
//! A reasoning or message item is closed (its `.done` events sent) as soon as another item starts.
//! Function-call items stay open until the response ends, so a provider that interleaves the
//! arguments of parallel calls loses nothing; every item still open is closed right before the
//! terminal event. So every `output_item.added` has its `output_item.done`.
//!
//! Terminal states are write-once: after the first of [`complete`](ResponsesBuilder::complete),
//! [`incomplete`](ResponsesBuilder::incomplete), [`fail`](ResponsesBuilder::fail),
//! [`cancel`](ResponsesBuilder::cancel) or [`finish`](ResponsesBuilder::finish), every call
//! (chunks included) is a no-op that emits nothing.
//!
//! Per chunk the work is O(size of the delta): text is appended in place and each event carries
//! only its delta; the `.done` events and snapshots copy an item's full text once.

mod close;
mod deltas;
mod logprobs;
mod request;
mod types;

use std::ops::Range;
use std::sync::Arc;

pub use logprobs::{Candidate, EventLogprobs, TokenLogprob};
pub use request::RequestEcho;
pub use types::{
    event_name, normalize_error_code, Assistant, ContentPart, EventKind, IncompleteDetails,
    IncompleteReason, InputTokensDetails, ItemStatus, OutputItem, OutputTokensDetails, Response,
    ResponseError, ResponseEvent, ResponseUsage, Status, SummaryPart, ERROR_CODES,
};

use serde_json::Value;

use crate::chunk::{ChatChunk, ChunkChoice, ToolCallDelta, Usage};

/// How far the lifecycle events have gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    New,
    Created,
    Running,
}

#[derive(Debug, Clone)]
struct Item {
    id: String,
    status: ItemStatus,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    Message {
        parts: Vec<Part>,
        part_open: bool,
    },
    /// `part_added`: OpenAI adds the item with `summary: []`, then its one summary part.
    Reasoning {
        summary: String,
        part_added: bool,
    },
    Call {
        call_id: String,
        name: String,
        arguments: String,
    },
}

#[derive(Debug, Clone)]
enum Part {
    /// Ranges of `ResponsesBuilder::text` and `::logprobs`: stored once for the whole response.
    Text {
        text: Range<usize>,
        logprobs: Range<usize>,
        /// Responses-shaped citations (few: kept with the part).
        annotations: Vec<Value>,
    },
    Refusal(String),
}

/// One chat tool-call index; its item is created once the function name is known.
#[derive(Debug, Clone)]
struct CallSlot {
    tool_index: u32,
    item: Option<usize>,
    call_id: Option<String>,
    name: Option<String>,
    pending_args: String,
}

#[derive(Debug, Clone)]
pub struct ResponsesBuilder {
    id: String,
    model: String,
    created_at: i64,
    now: Option<i64>,
    echo: Arc<RequestEcho>,
    id_base: String,
    initial: Status,
    status: Status,
    phase: Phase,
    seq: u64,
    items: Vec<Item>,
    /// Every `output_text` delta, in order.
    text: String,
    /// The request's `include` lists `message.output_text.logprobs`.
    include_logprobs: bool,
    /// The logprobs of every token of `text`, in order (empty unless `include_logprobs`).
    logprobs: Vec<TokenLogprob>,
    /// Tokens that came without text, waiting for the text they belong to (see `on_chunk`).
    untexted: Vec<TokenLogprob>,
    open_message: Option<usize>,
    open_reasoning: Option<usize>,
    calls: Vec<CallSlot>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    error: Option<ResponseError>,
    incomplete: Option<IncompleteReason>,
    completed_at: Option<i64>,
}

impl ResponsesBuilder {
    /// `id` is the caller's response id (`resp_…`), `created_at` Unix seconds. Every echoed request
    /// field starts at OpenAI's default; see [`with_request`](Self::with_request).
    pub fn new(id: impl Into<String>, model: impl Into<String>, created_at: i64) -> Self {
        let id = id.into();
        let id_base = match id.split_once('_') {
            Some((_, rest)) if !rest.is_empty() => rest.to_owned(),
            _ => id.clone(),
        };
        ResponsesBuilder {
            id,
            model: model.into(),
            created_at,
            now: None,
            echo: Arc::new(RequestEcho::default_fields()),
            id_base,
            initial: Status::InProgress,
            status: Status::InProgress,
            phase: Phase::New,
            seq: 0,
            items: Vec::new(),
            text: String::new(),
            include_logprobs: false,
            logprobs: Vec::new(),
            untexted: Vec::new(),
            open_message: None,
            open_reasoning: None,
            calls: Vec::new(),
            finish_reason: None,
            usage: None,
            error: None,
            incomplete: None,
            completed_at: None,
        }
    }

    /// Echo the fields of this `POST /v1/responses` body. A request with `background: true` starts
    /// `queued` (override with [`with_initial_status`](Self::with_initial_status)).
    pub fn with_request(mut self, request: &serde_json::Value) -> Self {
        let echo = RequestEcho::from_request(Some(request));
        self.set_initial(if echo.background() {
            Status::Queued
        } else {
            Status::InProgress
        });
        self.echo = Arc::new(echo);
        self.include_logprobs = request::includes_logprobs(request);
        self
    }

    /// `Queued` or `InProgress` (any other status is taken as `InProgress`): the status
    /// `response.created` carries. `Queued` also emits `response.queued` after it.
    pub fn with_initial_status(mut self, status: Status) -> Self {
        self.set_initial(status);
        self
    }

    fn set_initial(&mut self, status: Status) {
        self.initial = if status == Status::Queued {
            Status::Queued
        } else {
            Status::InProgress
        };
        self.status = self.initial;
    }

    /// Item ids are `msg_`/`rs_`/`fc_` + base + the output index as 4+ hex digits (and generated
    /// call ids `call_` + base + index), unique and stable within the response. The base defaults
    /// to the response id after its prefix (`resp_abc` → `msg_abc0000`), like OpenAI's ids, which
    /// share their tail with the response id; pass random hex here for ids that do not reveal it.
    pub fn with_item_id_base(mut self, base: impl Into<String>) -> Self {
        self.id_base = base.into();
        self
    }

    /// The current time in Unix seconds, used for `completed_at` (the core reads no clock).
    /// Without it, `completed_at` is `created_at`.
    pub fn set_now(&mut self, unix_seconds: i64) {
        self.now = Some(unix_seconds);
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }

    /// The `sequence_number` the next event will carry (= number of events emitted so far).
    pub fn next_sequence_number(&self) -> u64 {
        self.seq
    }

    /// Concatenated `output_text` so far (the SDK's `Response.output_text`).
    pub fn output_text(&self) -> &str {
        &self.text
    }

    /// Choice 0's finish reason, once seen.
    pub fn finish_reason(&self) -> Option<&str> {
        self.finish_reason.as_deref()
    }

    pub fn usage(&self) -> Option<ResponseUsage> {
        self.usage.as_ref().map(ResponseUsage::from)
    }

    /// Emit `response.created` (and `response.queued` when starting queued) if not done yet.
    /// Every other method does this first, so calling it is only needed to publish the
    /// response before any chunk arrives.
    pub fn start(&mut self, out: &mut Vec<ResponseEvent>) {
        if self.phase != Phase::New {
            return;
        }
        self.phase = Phase::Created;
        let response = Box::new(self.snapshot());
        self.emit(out, EventKind::Created { response });
        if self.initial == Status::Queued {
            let response = Box::new(self.snapshot());
            self.emit(out, EventKind::Queued { response });
        }
    }

    /// Move to `in_progress` (emitting `response.in_progress`) if not there yet; the first chunk
    /// does this by itself.
    pub fn mark_in_progress(&mut self, out: &mut Vec<ResponseEvent>) {
        self.start(out);
        if self.phase == Phase::Running || self.is_terminal() {
            return;
        }
        self.phase = Phase::Running;
        self.status = Status::InProgress;
        let response = Box::new(self.snapshot());
        self.emit(out, EventKind::InProgress { response });
    }

    /// Turn one chunk into events. Ignored once the response is terminal.
    pub fn on_chunk(&mut self, chunk: &ChatChunk, out: &mut Vec<ResponseEvent>) {
        if self.is_terminal() {
            return;
        }
        self.mark_in_progress(out);
        if self.model.is_empty() && !chunk.model.is_empty() {
            self.model = chunk.model.to_string();
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(Usage::clone(u));
        }
        let Some(choice) = chunk.choices.iter().find(|c| c.index == 0) else {
            return;
        };
        let d = &choice.delta;
        // Tokens without text of their own are part of a UTF-8 character whose text comes next
        // (OpenAI), or of reasoning or a tool call being produced (Ollama sends them so). They
        // wait for the next text; reasoning or a tool call takes them instead (neither has
        // logprobs in the Responses API), so no message is opened for them alone.
        let reasoning = d.reasoning_content.as_deref().filter(|s| !s.is_empty());
        let not_text = reasoning.is_some() || d.tool_calls.is_some();
        if not_text {
            self.untexted.clear();
        }
        // Reasoning before content: a chunk carrying both must lose neither (LiteLLM #36327).
        if let Some(r) = reasoning {
            self.reasoning_delta(r, out);
        }
        let text = d.content.as_deref().unwrap_or("");
        let mut logprobs = self.chunk_logprobs(choice);
        if !text.is_empty() {
            if !self.untexted.is_empty() {
                logprobs.splice(0..0, std::mem::take(&mut self.untexted));
            }
            self.text_delta(text, logprobs, out);
        } else if !not_text {
            self.untexted.append(&mut logprobs);
        }
        if let Some(a) = d.annotations.as_deref().filter(|a| !a.is_empty()) {
            self.annotations_added(a, out);
        }
        if let Some(r) = d.refusal.as_deref().filter(|s| !s.is_empty()) {
            self.refusal_delta(r, out);
        }
        for tc in d.tool_calls.iter().flatten() {
            self.tool_delta(tc, out);
        }
        if let Some(f) = &choice.finish_reason {
            self.finish_reason = Some(f.clone());
        }
    }

    /// End the response by choice 0's finish reason: `stop`, `tool_calls`, `function_call` and
    /// unknown reasons → completed; `length` → incomplete (`max_output_tokens`);
    /// `content_filter` → incomplete (`content_filter`); `error` or none at all → failed
    /// (`server_error`): a stream that never said it finished is never reported complete.
    /// Returns false (and emits nothing) if the response was already terminal.
    pub fn finish(&mut self, out: &mut Vec<ResponseEvent>) -> bool {
        match self.finish_reason.as_deref() {
            Some("length") => self.incomplete(IncompleteReason::MaxOutputTokens, out),
            Some("content_filter") => self.incomplete(IncompleteReason::ContentFilter, out),
            Some("error") => self.fail(
                "server_error",
                "the provider ended the response with an error",
                out,
            ),
            Some(_) => self.complete(out),
            None => self.fail(
                "server_error",
                "the stream ended without a finish reason",
                out,
            ),
        }
    }

    /// `response.completed`, after closing every open item as `completed`.
    pub fn complete(&mut self, out: &mut Vec<ResponseEvent>) -> bool {
        if self.is_terminal() {
            return false;
        }
        self.mark_in_progress(out);
        self.close_all(ItemStatus::Completed, out);
        self.status = Status::Completed;
        self.completed_at = Some(self.now.unwrap_or(self.created_at));
        let response = Box::new(self.snapshot());
        self.emit(out, EventKind::Completed { response });
        true
    }

    /// `response.incomplete` with `incomplete_details.reason`, open items closed as `incomplete`.
    pub fn incomplete(&mut self, reason: IncompleteReason, out: &mut Vec<ResponseEvent>) -> bool {
        if self.is_terminal() {
            return false;
        }
        self.mark_in_progress(out);
        self.close_all(ItemStatus::Incomplete, out);
        self.status = Status::Incomplete;
        self.incomplete = Some(reason);
        let response = Box::new(self.snapshot());
        self.emit(out, EventKind::Incomplete { response });
        true
    }

    /// A flat `error` event carrying `code` as given, then `response.failed` whose `error.code` is
    /// `code` mapped into the SDK's enum ([`normalize_error_code`]): OpenAI sends the same pair.
    /// Open items are closed as `incomplete`; output so far is kept.
    pub fn fail(&mut self, code: &str, message: &str, out: &mut Vec<ResponseEvent>) -> bool {
        if self.is_terminal() {
            return false;
        }
        self.start(out);
        self.close_all(ItemStatus::Incomplete, out);
        self.status = Status::Failed;
        self.error = Some(ResponseError {
            code: normalize_error_code(code),
            message: message.to_owned(),
        });
        let code = (!code.is_empty()).then(|| code.to_owned());
        self.emit(
            out,
            EventKind::Error {
                code,
                message: message.to_owned(),
                param: None,
            },
        );
        let response = Box::new(self.snapshot());
        self.emit(out, EventKind::Failed { response });
        true
    }

    /// Status `cancelled`. OpenAI has no `response.cancelled` event (the SDK's event union lacks
    /// one, so strict clients would reject it): open items are closed as `incomplete`, then the
    /// stream simply ends; readers learn the status from the snapshot (`GET /v1/responses/{id}`).
    pub fn cancel(&mut self, out: &mut Vec<ResponseEvent>) -> bool {
        if self.is_terminal() {
            return false;
        }
        self.start(out);
        self.close_all(ItemStatus::Incomplete, out);
        self.status = Status::Cancelled;
        true
    }

    /// The full Response object now: items with their text so far, usage once known (`null`
    /// until the provider reports it), `error` / `incomplete_details` once terminal.
    pub fn snapshot(&self) -> Response {
        Response {
            id: self.id.clone(),
            created_at: self.created_at,
            status: self.status,
            completed_at: self.completed_at,
            error: self.error.clone(),
            incomplete_details: self.incomplete.map(|reason| IncompleteDetails { reason }),
            model: self.model.clone(),
            output: (0..self.items.len()).map(|i| self.item_view(i)).collect(),
            usage: self.usage(),
            echo: Arc::clone(&self.echo),
        }
    }
}
