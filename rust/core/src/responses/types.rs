//! Responses-API objects and stream events as typed values that serialise to exactly the JSON
//! OpenAI sends (checked against the openai SDK's models in strict mode; see
//! `tests/support/validate_responses.py`).

use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::logprobs::{EventLogprobs, TokenLogprob};
use super::request::RequestEcho;
use serde_json::Value;

use crate::chunk::Usage;

/// `Response.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    InProgress,
    Completed,
    Failed,
    Cancelled,
    Incomplete,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Incomplete => "incomplete",
        }
    }

    /// Completed, failed, cancelled and incomplete are final: nothing moves a response out of them.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Status::Queued | Status::InProgress)
    }
}

/// Status of one output item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    InProgress,
    Completed,
    Incomplete,
}

/// `incomplete_details.reason` (the values the SDK accepts that a chat stream can produce).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncompleteReason {
    MaxOutputTokens,
    ContentFilter,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncompleteDetails {
    pub reason: IncompleteReason,
}

/// `Response.error`. `code` is always one of [`ERROR_CODES`] (the SDK rejects any other value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResponseError {
    pub code: &'static str,
    pub message: String,
}

/// `ResponseError.code` as enumerated by openai-python 3.52 (`types/responses/response_error.py`).
pub const ERROR_CODES: &[&str] = &[
    "server_error",
    "rate_limit_exceeded",
    "invalid_prompt",
    "data_residency_mismatch",
    "bio_policy",
    "misalignment_policy_violation",
    "vector_store_timeout",
    "invalid_image",
    "invalid_image_format",
    "invalid_base64_image",
    "invalid_image_url",
    "image_too_large",
    "image_too_small",
    "image_parse_error",
    "image_content_policy_violation",
    "invalid_image_mode",
    "image_file_too_large",
    "unsupported_image_media_type",
    "empty_image_file",
    "failed_to_download_image",
    "image_file_not_found",
];

/// Map any error code to one the SDK accepts: enum members pass through, quota and rate-limit
/// codes (OpenAI itself sends `insufficient_quota` in `response.failed`, outside its own enum)
/// become `rate_limit_exceeded`, everything else `server_error`.
pub fn normalize_error_code(code: &str) -> &'static str {
    if let Some(c) = ERROR_CODES.iter().find(|c| **c == code) {
        return c;
    }
    match code {
        "insufficient_quota" | "rate_limit" | "rate_limit_error" | "429" => "rate_limit_exceeded",
        _ => "server_error",
    }
}

/// `Response.usage`; every field the SDK requires is always present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResponseUsage {
    pub input_tokens: u64,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: u64,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InputTokensDetails {
    pub cached_tokens: u64,
    /// Required since openai-python 2.45.
    pub cache_write_tokens: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutputTokensDetails {
    pub reasoning_tokens: u64,
}

impl From<&Usage> for ResponseUsage {
    fn from(u: &Usage) -> Self {
        let p = u.prompt_tokens_details.as_ref();
        let c = u.completion_tokens_details.as_ref();
        let total = if u.total_tokens > 0 {
            u.total_tokens
        } else {
            u.prompt_tokens + u.completion_tokens
        };
        ResponseUsage {
            input_tokens: u.prompt_tokens,
            input_tokens_details: InputTokensDetails {
                cached_tokens: p.and_then(|d| d.cached_tokens).unwrap_or(0),
                cache_write_tokens: p.and_then(|d| d.cache_creation_tokens).unwrap_or(0),
            },
            output_tokens: u.completion_tokens,
            output_tokens_details: OutputTokensDetails {
                reasoning_tokens: c.and_then(|d| d.reasoning_tokens).unwrap_or(0),
            },
            total_tokens: total,
        }
    }
}

/// Marker for the constant `role: "assistant"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Assistant;

impl Serialize for Assistant {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("assistant")
    }
}

/// One element of `Response.output`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum OutputItem {
    #[serde(rename = "message")]
    Message {
        id: String,
        status: ItemStatus,
        role: Assistant,
        content: Vec<ContentPart>,
    },
    /// OpenAI sends no `status` on reasoning items; the SDK does not require one.
    #[serde(rename = "reasoning")]
    Reasoning {
        id: String,
        summary: Vec<SummaryPart>,
    },
    #[serde(rename = "function_call")]
    FunctionCall {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        status: ItemStatus,
    },
}

impl OutputItem {
    pub fn id(&self) -> &str {
        match self {
            OutputItem::Message { id, .. }
            | OutputItem::Reasoning { id, .. }
            | OutputItem::FunctionCall { id, .. } => id,
        }
    }
}

/// One element of a message's `content`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum ContentPart {
    #[serde(rename = "output_text")]
    OutputText {
        /// The citations the chat stream sent (`delta.annotations`), in the Responses shape.
        annotations: Vec<Value>,
        /// Empty unless the request's `include` asked for them.
        logprobs: Vec<TokenLogprob>,
        text: String,
    },
    #[serde(rename = "refusal")]
    Refusal { refusal: String },
}

/// One element of a reasoning item's `summary`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum SummaryPart {
    #[serde(rename = "summary_text")]
    SummaryText { text: String },
}

/// The `Response` object (a snapshot at one moment). Serialises with OpenAI's key order: `id`,
/// `object`, `created_at`, `status`, then the rest alphabetically with `metadata` last.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub id: String,
    pub created_at: i64,
    pub status: Status,
    /// Set only when `status` is `completed`, as OpenAI does.
    pub completed_at: Option<i64>,
    pub error: Option<ResponseError>,
    pub incomplete_details: Option<IncompleteDetails>,
    pub model: String,
    pub output: Vec<OutputItem>,
    pub usage: Option<ResponseUsage>,
    /// The request fields the Response echoes (instructions, tools, temperature, …), shared
    /// between snapshots rather than copied.
    pub echo: Arc<RequestEcho>,
}

impl Response {
    /// Concatenated text of every `output_text` part (the SDK's `Response.output_text`).
    pub fn output_text(&self) -> String {
        let mut s = String::new();
        for item in &self.output {
            if let OutputItem::Message { content, .. } = item {
                for part in content {
                    if let ContentPart::OutputText { text, .. } = part {
                        s.push_str(text);
                    }
                }
            }
        }
        s
    }
}

/// A field of [`Response`] that is not a request echo, for the key-ordered merge below.
enum Own<'a> {
    CompletedAt(Option<i64>),
    Error(&'a Option<ResponseError>),
    Incomplete(&'a Option<IncompleteDetails>),
    Model(&'a str),
    Output(&'a [OutputItem]),
    Usage(&'a Option<ResponseUsage>),
}

impl Serialize for Own<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Own::CompletedAt(v) => v.serialize(s),
            Own::Error(v) => v.serialize(s),
            Own::Incomplete(v) => v.serialize(s),
            Own::Model(v) => v.serialize(s),
            Own::Output(v) => v.serialize(s),
            Own::Usage(v) => v.serialize(s),
        }
    }
}

impl Serialize for Response {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let own = [
            ("completed_at", Own::CompletedAt(self.completed_at)),
            ("error", Own::Error(&self.error)),
            (
                "incomplete_details",
                Own::Incomplete(&self.incomplete_details),
            ),
            ("model", Own::Model(&self.model)),
            ("output", Own::Output(&self.output)),
            ("usage", Own::Usage(&self.usage)),
        ];
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("object", "response")?;
        m.serialize_entry("created_at", &self.created_at)?;
        m.serialize_entry("status", &self.status)?;
        // Both lists are sorted (the echo keeps `metadata` last): merge them by key.
        let mut own = own.iter().peekable();
        for (key, value) in self.echo.fields() {
            while let Some((k, v)) = own.next_if(|(k, _)| *key == "metadata" || k < key) {
                m.serialize_entry(k, v)?;
            }
            m.serialize_entry(key, value)?;
        }
        for (k, v) in own {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// One stream event: `{"type": …, <fields>, "sequence_number": n}` (the key order OpenAI uses).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseEvent {
    #[serde(flatten)]
    pub kind: EventKind,
    pub sequence_number: u64,
}

impl ResponseEvent {
    /// The event type, for the SSE `event:` line.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }
}

/// The SSE `event:` name of `event` (same as its JSON `type`).
pub fn event_name(event: &ResponseEvent) -> &'static str {
    event.kind.name()
}

/// `Some("incomplete")` on a summary part closed by a non-completed terminal state.
pub type PartStatus = Option<&'static str>;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum EventKind {
    #[serde(rename = "response.created")]
    Created { response: Box<Response> },
    #[serde(rename = "response.queued")]
    Queued { response: Box<Response> },
    #[serde(rename = "response.in_progress")]
    InProgress { response: Box<Response> },
    #[serde(rename = "response.completed")]
    Completed { response: Box<Response> },
    #[serde(rename = "response.incomplete")]
    Incomplete { response: Box<Response> },
    #[serde(rename = "response.failed")]
    Failed { response: Box<Response> },
    /// Flat, as the SDK models it (a nested `"error": {…}` key makes the SDK raise mid-stream).
    #[serde(rename = "error")]
    Error {
        code: Option<String>,
        message: String,
        param: Option<String>,
    },
    #[serde(rename = "response.output_item.added")]
    OutputItemAdded { output_index: u32, item: OutputItem },
    #[serde(rename = "response.output_item.done")]
    OutputItemDone { output_index: u32, item: OutputItem },
    #[serde(rename = "response.content_part.added")]
    ContentPartAdded {
        item_id: String,
        output_index: u32,
        content_index: u32,
        part: ContentPart,
    },
    #[serde(rename = "response.content_part.done")]
    ContentPartDone {
        item_id: String,
        output_index: u32,
        content_index: u32,
        part: ContentPart,
    },
    #[serde(rename = "response.output_text.delta")]
    OutputTextDelta {
        item_id: String,
        output_index: u32,
        content_index: u32,
        delta: String,
        logprobs: EventLogprobs,
    },
    #[serde(rename = "response.output_text.annotation.added")]
    OutputTextAnnotationAdded {
        item_id: String,
        output_index: u32,
        content_index: u32,
        annotation_index: u32,
        annotation: Value,
    },
    #[serde(rename = "response.output_text.done")]
    OutputTextDone {
        item_id: String,
        output_index: u32,
        content_index: u32,
        text: String,
        /// All of the part's tokens, in the events' shape (no `bytes`).
        logprobs: EventLogprobs,
    },
    #[serde(rename = "response.refusal.delta")]
    RefusalDelta {
        item_id: String,
        output_index: u32,
        content_index: u32,
        delta: String,
    },
    #[serde(rename = "response.refusal.done")]
    RefusalDone {
        item_id: String,
        output_index: u32,
        content_index: u32,
        refusal: String,
    },
    #[serde(rename = "response.reasoning_summary_part.added")]
    ReasoningSummaryPartAdded {
        item_id: String,
        output_index: u32,
        summary_index: u32,
        part: SummaryPart,
    },
    #[serde(rename = "response.reasoning_summary_text.delta")]
    ReasoningSummaryTextDelta {
        item_id: String,
        output_index: u32,
        summary_index: u32,
        delta: String,
    },
    #[serde(rename = "response.reasoning_summary_text.done")]
    ReasoningSummaryTextDone {
        item_id: String,
        output_index: u32,
        summary_index: u32,
        text: String,
    },
    #[serde(rename = "response.reasoning_summary_part.done")]
    ReasoningSummaryPartDone {
        item_id: String,
        output_index: u32,
        summary_index: u32,
        part: SummaryPart,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: PartStatus,
    },
    #[serde(rename = "response.function_call_arguments.delta")]
    FunctionCallArgumentsDelta {
        item_id: String,
        output_index: u32,
        delta: String,
    },
    #[serde(rename = "response.function_call_arguments.done")]
    FunctionCallArgumentsDone {
        item_id: String,
        output_index: u32,
        arguments: String,
    },
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Created { .. } => "response.created",
            EventKind::Queued { .. } => "response.queued",
            EventKind::InProgress { .. } => "response.in_progress",
            EventKind::Completed { .. } => "response.completed",
            EventKind::Incomplete { .. } => "response.incomplete",
            EventKind::Failed { .. } => "response.failed",
            EventKind::Error { .. } => "error",
            EventKind::OutputItemAdded { .. } => "response.output_item.added",
            EventKind::OutputItemDone { .. } => "response.output_item.done",
            EventKind::ContentPartAdded { .. } => "response.content_part.added",
            EventKind::ContentPartDone { .. } => "response.content_part.done",
            EventKind::OutputTextDelta { .. } => "response.output_text.delta",
            EventKind::OutputTextAnnotationAdded { .. } => "response.output_text.annotation.added",
            EventKind::OutputTextDone { .. } => "response.output_text.done",
            EventKind::RefusalDelta { .. } => "response.refusal.delta",
            EventKind::RefusalDone { .. } => "response.refusal.done",
            EventKind::ReasoningSummaryPartAdded { .. } => "response.reasoning_summary_part.added",
            EventKind::ReasoningSummaryTextDelta { .. } => "response.reasoning_summary_text.delta",
            EventKind::ReasoningSummaryTextDone { .. } => "response.reasoning_summary_text.done",
            EventKind::ReasoningSummaryPartDone { .. } => "response.reasoning_summary_part.done",
            EventKind::FunctionCallArgumentsDelta { .. } => {
                "response.function_call_arguments.delta"
            }
            EventKind::FunctionCallArgumentsDone { .. } => "response.function_call_arguments.done",
        }
    }

    /// The full Response a lifecycle event carries.
    pub fn response(&self) -> Option<&Response> {
        match self {
            EventKind::Created { response }
            | EventKind::Queued { response }
            | EventKind::InProgress { response }
            | EventKind::Completed { response }
            | EventKind::Incomplete { response }
            | EventKind::Failed { response } => Some(response),
            _ => None,
        }
    }
}
