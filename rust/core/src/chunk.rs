//! The normalised streaming chunk: OpenAI's `chat.completion.chunk`, the shape every dialect
//! produces and every binding exposes. Serialises to exactly the JSON OpenAI sends.

use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub use crate::shared_str::SharedStr;

/// Marker for the constant `object` field: costs nothing to parse or store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkObject;

impl Serialize for ChunkObject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("chat.completion.chunk")
    }
}

impl<'de> Deserialize<'de> for ChunkObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| ChunkObject)
    }
}

/// Serialised by hand (below), as its header and then the rest: see [`ChunkHeader`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ChatChunk {
    #[serde(default)]
    pub id: SharedStr,
    #[serde(default)]
    pub object: ChunkObject,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub model: SharedStr,
    #[serde(default)]
    pub system_fingerprint: Option<SharedStr>,
    #[serde(default)]
    pub service_tier: Option<SharedStr>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub choices: Vec<ChunkChoice>,
    #[serde(default)]
    pub usage: Option<Box<Usage>>,

    // Wire-only fields some OpenAI-compatible servers add; the openai_chat dialect folds them into
    // the normalised fields above and they are never serialised.
    #[doc(hidden)]
    #[serde(default)]
    pub error: Option<Box<Value>>,
    #[doc(hidden)]
    #[serde(default)]
    pub x_groq: Option<Box<XGroq>>,
}

/// A chunk's fields up to `choices`, which every chunk of a stream repeats: serialised on their
/// own (as an object of these fields) so a writer can keep their JSON (see `sse_writer`).
pub struct ChunkHeader<'a>(pub &'a ChatChunk);

/// The rest of a chunk: `choices` and `usage` (absent when there is none).
pub struct ChunkTail<'a>(pub &'a ChatChunk);

impl ChunkHeader<'_> {
    /// Compare only the fields the header writes.
    pub fn same_as(&self, other: &ChatChunk) -> bool {
        let c = self.0;
        c.created == other.created
            && c.id == other.id
            && c.model == other.model
            && c.system_fingerprint == other.system_fingerprint
            && c.service_tier == other.service_tier
    }

    fn fields<M: SerializeStruct>(&self, m: &mut M) -> Result<(), M::Error> {
        let c = self.0;
        m.serialize_field("id", &c.id)?;
        m.serialize_field("object", &c.object)?;
        m.serialize_field("created", &c.created)?;
        m.serialize_field("model", &c.model)?;
        if let Some(f) = &c.system_fingerprint {
            m.serialize_field("system_fingerprint", f)?;
        }
        if let Some(t) = &c.service_tier {
            m.serialize_field("service_tier", t)?;
        }
        Ok(())
    }
}

impl ChunkTail<'_> {
    fn fields<M: SerializeStruct>(&self, m: &mut M) -> Result<(), M::Error> {
        m.serialize_field("choices", &self.0.choices)?;
        if let Some(u) = &self.0.usage {
            m.serialize_field("usage", u)?;
        }
        Ok(())
    }
}

impl Serialize for ChatChunk {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("ChatChunk", 8)?;
        ChunkHeader(self).fields(&mut m)?;
        ChunkTail(self).fields(&mut m)?;
        m.end()
    }
}

impl Serialize for ChunkHeader<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("ChunkHeader", 6)?;
        self.fields(&mut m)?;
        m.end()
    }
}

impl Serialize for ChunkTail<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("ChunkTail", 2)?;
        self.fields(&mut m)?;
        m.end()
    }
}

#[doc(hidden)]
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct XGroq {
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: u32,
    #[serde(default, deserialize_with = "null_as_default")]
    pub delta: Delta,
    #[serde(default)]
    pub logprobs: Option<Logprobs>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// The provider's own finish reason before mapping to OpenAI's values (e.g. `end_turn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_finish_reason: Option<String>,
}

// Deserialised through `WireDelta` so that `content` may also be a list of typed parts (Mistral's
// Magistral sends `[{"type":"thinking","thinking":[…]}]`); the serialised shape is OpenAI's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "WireDelta")]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    /// OpenRouter / vLLM name for reasoning text; the openai_chat dialect moves it to `reasoning_content`.
    #[doc(hidden)]
    #[serde(default, skip_serializing)]
    pub reasoning: Option<String>,
    /// Opaque signature of the reasoning (Anthropic `signature_delta`, Gemini `thoughtSignature`);
    /// providers require it back, unchanged, when the turn is replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_signature: Option<String>,
    /// Whole reasoning blocks as the provider must get them back (Anthropic), each sent once,
    /// when it is complete: a `thinking` block with its text and signature after its last
    /// delta, a `redacted_thinking` block (encrypted, no text) as it starts. The block's text
    /// has already streamed in `reasoning_content`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<ThinkingBlock>>,
    /// Citations for the content (OpenAI's `url_citation`s from search models and web search),
    /// as the provider sent them: `{"type": "url_citation", "url_citation": {url, title,
    /// start_index, end_index}}`. Rare, so kept as JSON values, boxed: one word in every delta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Box<[Value]>>,
}

/// One reasoning block, in Anthropic's (and LiteLLM's) shape: `{"type": "thinking", "thinking",
/// "signature"}` or `{"type": "redacted_thinking", "data"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThinkingBlock {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl ThinkingBlock {
    /// A signed thinking block: its text and the signature that lets it be sent back.
    pub fn thinking(text: String, signature: Option<String>) -> Self {
        ThinkingBlock {
            kind: "thinking".to_owned(),
            thinking: Some(text),
            signature,
            data: None,
        }
    }

    /// An encrypted block with no text, returned as it came.
    pub fn redacted(data: String) -> Self {
        ThinkingBlock {
            kind: "redacted_thinking".to_owned(),
            data: Some(data),
            ..Default::default()
        }
    }
}

/// Wire form of [`Delta`]: identical but for `content`, which may be a string or a list of parts.
#[derive(Deserialize)]
struct WireDelta {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    content: Option<WireContent>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallDelta>>,
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    reasoning_signature: Option<String>,
    #[serde(default)]
    thinking_blocks: Option<Vec<ThinkingBlock>>,
    #[serde(default)]
    annotations: Option<Box<[Value]>>,
}

impl From<WireDelta> for Delta {
    fn from(w: WireDelta) -> Delta {
        let mut reasoning_content = w.reasoning_content;
        let content = match w.content {
            None => None,
            Some(WireContent::Text(s)) => Some(s),
            Some(WireContent::Parts { text, thinking }) => {
                if let Some(t) = thinking {
                    reasoning_content
                        .get_or_insert_with(String::new)
                        .push_str(&t);
                }
                text
            }
        };
        Delta {
            role: w.role,
            content,
            reasoning_content,
            refusal: w.refusal,
            tool_calls: w.tool_calls,
            reasoning: w.reasoning,
            reasoning_signature: w.reasoning_signature,
            thinking_blocks: w.thinking_blocks,
            annotations: w.annotations,
        }
    }
}

/// `content` as a string (the hot path, no buffering) or as a list of typed parts whose `text`
/// and `thinking` texts are joined; other part types (images, references) are skipped.
enum WireContent {
    Text(String),
    Parts {
        text: Option<String>,
        thinking: Option<String>,
    },
}

#[derive(Deserialize)]
struct WirePart {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<ThinkingText>,
}

/// Magistral nests thinking as `[{"type":"text","text":…}]`; accept a plain string too.
struct ThinkingText(String);

impl<'de> Deserialize<'de> for ThinkingText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ThinkingText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("thinking text or a list of text parts")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ThinkingText, E> {
                Ok(ThinkingText(s.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ThinkingText, A::Error> {
                let mut out = String::new();
                while let Some(p) = seq.next_element::<WirePart>()? {
                    if let Some(t) = p.text {
                        out.push_str(&t);
                    }
                }
                Ok(ThinkingText(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for WireContent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = WireContent;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of content parts")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<WireContent, E> {
                Ok(WireContent::Text(s.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<WireContent, E> {
                Ok(WireContent::Text(s))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<WireContent, A::Error> {
                let (mut text, mut thinking) = (None::<String>, None::<String>);
                while let Some(p) = seq.next_element::<WirePart>()? {
                    if let Some(t) = p.text {
                        text.get_or_insert_with(String::new).push_str(&t);
                    }
                    if let Some(ThinkingText(t)) = p.thinking {
                        thinking.get_or_insert_with(String::new).push_str(&t);
                    }
                }
                Ok(WireContent::Parts { text, thinking })
            }
        }
        d.deserialize_any(V)
    }
}

/// Sentinel for a tool call sent without `index` (Mistral sends whole calls); dialects replace it.
pub const MISSING_INDEX: u32 = u32::MAX;

fn missing_index() -> u32 {
    MISSING_INDEX
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    #[serde(default = "missing_index")]
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDelta>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// Token log probabilities of one choice; entries are kept as sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Logprobs {
    #[serde(default)]
    pub content: Option<Vec<Value>>,
    #[serde(default)]
    pub refusal: Option<Vec<Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionTokensDetails>,
    /// Cost in USD, when known (sent by OpenRouter; added by `include_cost=True`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    /// Tokens written to the provider's prompt cache (Anthropic `cache_creation_input_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_tokens: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionTokensDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_prediction_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_prediction_tokens: Option<u64>,
}

fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The final, accumulated completion (`chat.completion`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: CompletionObject,
    pub created: i64,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    pub choices: Vec<Choice>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompletionObject;

impl Serialize for CompletionObject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("chat.completion")
    }
}

impl<'de> Deserialize<'de> for CompletionObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| CompletionObject)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub index: u32,
    pub message: Message,
    pub logprobs: Option<Logprobs>,
    pub finish_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_finish_reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: Option<String>,
    pub refusal: Option<String>,
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// The last reasoning signature seen (see [`Delta::reasoning_signature`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_signature: Option<String>,
    /// Every reasoning block in order (see [`Delta::thinking_blocks`]): what an Anthropic turn
    /// with several thinking blocks, or a redacted one, needs to be continued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_blocks: Option<Vec<ThinkingBlock>>,
    /// Every citation of the content, in order (see [`Delta::annotations`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Vec<Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub index: u32,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub function: Function,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Function {
    pub name: String,
    pub arguments: String,
}
