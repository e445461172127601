//! AWS Bedrock Converse streams (`/model/{modelId}/converse-stream`): eventstream messages whose
//! `:event-type` names the event and whose payload is its JSON (with a `p` padding field, ignored).
//!
//! - `messageStart` → a role chunk. Bedrock sends no id, model or creation time: they stay empty.
//! - `contentBlockStart` with `start.toolUse` → one OpenAI tool call per block, indexed from 0 in
//!   order of appearance (not by block index), arguments `""`.
//! - `contentBlockDelta`: `text` → `content`; `toolUse.input` fragments → that block's call's
//!   `arguments` (a call that streamed none gets `{}` at its stop); `reasoningContent.text` →
//!   `reasoning_content`, `.signature` → `reasoning_signature`, and at the block's stop the whole
//!   block (text and signature) in `thinking_blocks`; `reasoningContent.redactedContent` (base64)
//!   → a `redacted_thinking` block at its stop. These go back on the next turn as Anthropic's
//!   blocks do (Bedrock's Claude models verify them). Citations and delta kinds added later are
//!   skipped.
//! - `messageStop` → a chunk with the mapped `stopReason`; it is the terminator.
//! - `metadata` (after `messageStop`) → a usage chunk without choices, as OpenAI's last chunk.
//!
//! Bedrock's `exception` messages are the eventstream layer's business ([`crate::eventstream`]):
//! they never reach the dialect.

use serde::Deserialize;

use super::{finish_choice, non_empty, parse_json, tool_delta, usage_beside_cache};
use super::{Dialect, Frame, Framing, Meta};
use crate::chunk::{ChatChunk, Delta, ThinkingBlock};
use crate::error::Result;

const NAME: &str = "bedrock_converse";

/// Converse `stopReason` → OpenAI `finish_reason`.
pub fn map_finish_reason(native: &str) -> &'static str {
    match native {
        "tool_use" => "tool_calls",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        // end_turn, stop_sequence and the unknown.
        _ => "stop",
    }
}

/// The open reasoning block: its text, signature and redacted content so far.
#[derive(Debug, Default)]
struct Reasoning {
    index: u32,
    text: String,
    signature: Option<String>,
    redacted: Option<String>,
}

#[derive(Debug, Default)]
pub struct Bedrock {
    meta: Meta,
    /// (content block index, tool call index, whether any input has streamed); looked up from
    /// the end, where the live block is.
    tools: Vec<(u32, u32, bool)>,
    reasoning: Option<Reasoning>,
    done: bool,
}

/// Every Converse event in one shape; which fields are set says what it carries.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireEvent {
    #[serde(default)]
    content_block_index: Option<u32>,
    #[serde(default)]
    start: Option<WireStart>,
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireStart {
    #[serde(default)]
    tool_use: Option<WireToolStart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireToolStart {
    #[serde(default)]
    tool_use_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDelta {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_use: Option<WireToolDelta>,
    #[serde(default)]
    reasoning_content: Option<WireReasoning>,
}

#[derive(Deserialize)]
struct WireToolDelta {
    #[serde(default)]
    input: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireReasoning {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    redacted_content: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_write_input_tokens: Option<u64>,
}

impl Bedrock {
    fn emit(&self, delta: Delta, out: &mut Vec<ChatChunk>) {
        out.push(self.meta.delta(0, delta));
    }

    fn tool_mut(&mut self, block: u32) -> Option<&mut (u32, u32, bool)> {
        self.tools.iter_mut().rev().find(|t| t.0 == block)
    }

    fn on_start(&mut self, block: u32, start: WireStart, out: &mut Vec<ChatChunk>) {
        let Some(t) = start.tool_use else {
            return; // other block kinds (tool results, images) are not the client's to call
        };
        let index = self.tools.len() as u32;
        self.tools.push((block, index, false));
        let id = Some(t.tool_use_id.unwrap_or_default());
        let name = Some(t.name.unwrap_or_default());
        self.emit(tool_delta(index, id, name, String::new()), out);
    }

    fn on_delta(&mut self, block: u32, d: WireDelta, out: &mut Vec<ChatChunk>) {
        if let Some(text) = non_empty(d.text) {
            let delta = Delta {
                content: Some(text),
                ..Default::default()
            };
            self.emit(delta, out);
        }
        if let Some(input) = d.tool_use.and_then(|t| non_empty(t.input)) {
            if let Some(tool) = self.tool_mut(block) {
                tool.2 = true;
                let index = tool.1;
                self.emit(tool_delta(index, None, None, input), out);
            }
        }
        if let Some(r) = d.reasoning_content {
            self.on_reasoning(block, r, out);
        }
    }

    fn on_reasoning(&mut self, block: u32, r: WireReasoning, out: &mut Vec<ChatChunk>) {
        // Blocks stream one at a time; one left open by a lost stop is closed by the next.
        if self.reasoning.as_ref().is_some_and(|o| o.index != block) {
            self.flush_reasoning(out);
        }
        let open = self.reasoning.get_or_insert_with(|| Reasoning {
            index: block,
            ..Default::default()
        });
        let (text, signature) = (non_empty(r.text), non_empty(r.signature));
        open.text.push_str(text.as_deref().unwrap_or(""));
        if signature.is_some() {
            open.signature.clone_from(&signature);
        }
        // Redacted content could come in pieces like any delta: it is whole at the stop.
        if let Some(data) = non_empty(r.redacted_content) {
            open.redacted
                .get_or_insert_with(String::new)
                .push_str(&data);
        }
        if text.is_some() || signature.is_some() {
            let delta = Delta {
                reasoning_content: text,
                reasoning_signature: signature,
                ..Default::default()
            };
            self.emit(delta, out);
        }
    }

    /// The whole reasoning block, as the request builder must send it back.
    fn flush_reasoning(&mut self, out: &mut Vec<ChatChunk>) {
        let Some(r) = self.reasoning.take() else {
            return;
        };
        let mut blocks = Vec::new();
        if !r.text.is_empty() || r.signature.is_some() {
            blocks.push(ThinkingBlock::thinking(r.text, r.signature));
        }
        if let Some(data) = r.redacted {
            blocks.push(ThinkingBlock::redacted(data));
        }
        if !blocks.is_empty() {
            let delta = Delta {
                thinking_blocks: Some(blocks),
                ..Default::default()
            };
            self.emit(delta, out);
        }
    }

    fn on_stop(&mut self, block: u32, out: &mut Vec<ChatChunk>) {
        if self.reasoning.as_ref().is_some_and(|r| r.index == block) {
            self.flush_reasoning(out);
        }
        if let Some(tool) = self.tool_mut(block).filter(|t| !t.2) {
            // A call without arguments: OpenAI would send `{}` (once, however many stops come).
            tool.2 = true;
            let index = tool.1;
            self.emit(tool_delta(index, None, None, "{}".to_owned()), out);
        }
    }

    fn on_usage(&self, u: WireUsage, out: &mut Vec<ChatChunk>) {
        let mut chunk = self.meta.chunk(Vec::new());
        chunk.usage = Some(Box::new(usage_beside_cache(
            u.input_tokens,
            u.output_tokens.unwrap_or(0),
            u.cache_read_input_tokens,
            u.cache_write_input_tokens,
        )));
        out.push(chunk);
    }
}

impl Dialect for Bedrock {
    fn name(&self) -> &'static str {
        NAME
    }

    fn framing(&self) -> Framing {
        Framing::EventStream
    }

    fn on_frame(&mut self, frame: Frame<'_>, out: &mut Vec<ChatChunk>) -> Result<()> {
        const KNOWN: &[&[u8]] = &[
            b"contentBlockDelta",
            b"contentBlockStart",
            b"contentBlockStop",
            b"messageStart",
            b"messageStop",
            b"metadata",
        ];
        let data = frame.data.trim_ascii();
        // Event types added later are skipped unread, whatever their payload.
        if data.is_empty() || !KNOWN.contains(&frame.event) {
            return Ok(());
        }
        // `metadata` follows `messageStop`: events after the terminator still count.
        let ev: WireEvent = parse_json(NAME, data)?;
        let block = ev.content_block_index.unwrap_or(0);
        match frame.event {
            b"contentBlockDelta" => {
                if let Some(d) = ev.delta {
                    self.on_delta(block, d, out);
                }
            }
            b"contentBlockStart" => {
                if let Some(s) = ev.start {
                    self.on_start(block, s, out);
                }
            }
            b"contentBlockStop" => self.on_stop(block, out),
            b"messageStart" => {
                let delta = Delta {
                    role: Some("assistant".to_owned()),
                    ..Default::default()
                };
                self.emit(delta, out);
            }
            b"messageStop" => {
                self.done = true;
                if let Some(native) = ev.stop_reason {
                    let reason = map_finish_reason(&native);
                    let choice = finish_choice(0, Delta::default(), reason, native);
                    out.push(self.meta.chunk(vec![choice]));
                }
            }
            b"metadata" => {
                if let Some(u) = ev.usage {
                    self.on_usage(u, out);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons() {
        for (native, want) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("tool_use", "tool_calls"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("guardrail_intervened", "content_filter"),
            ("content_filtered", "content_filter"),
            ("something_new", "stop"),
        ] {
            assert_eq!(map_finish_reason(native), want, "{native}");
        }
    }

    fn blocks(frames: &[(&str, &str)]) -> Vec<ThinkingBlock> {
        let mut d = Bedrock::default();
        let mut out = Vec::new();
        for (event, data) in frames {
            let frame = Frame {
                event: event.as_bytes(),
                data: data.as_bytes(),
            };
            d.on_frame(frame, &mut out).unwrap();
        }
        out.iter()
            .flat_map(|c| &c.choices)
            .filter_map(|ch| ch.delta.thinking_blocks.clone())
            .flatten()
            .collect()
    }

    #[test]
    fn reasoning_blocks_are_whole_and_in_order() {
        let delta = "contentBlockDelta";
        let got = blocks(&[
            // Redacted content in two pieces is one block.
            (
                delta,
                r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"redactedContent":"QUJD"}}}"#,
            ),
            (
                delta,
                r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"redactedContent":"REVG"}}}"#,
            ),
            ("contentBlockStop", r#"{"contentBlockIndex":0}"#),
            // A block whose stop was lost is closed by the next one.
            (
                delta,
                r#"{"contentBlockIndex":1,"delta":{"reasoningContent":{"text":"a"}}}"#,
            ),
            (
                delta,
                r#"{"contentBlockIndex":2,"delta":{"reasoningContent":{"text":"b"}}}"#,
            ),
            (
                delta,
                r#"{"contentBlockIndex":2,"delta":{"reasoningContent":{"signature":"c2ln"}}}"#,
            ),
            ("contentBlockStop", r#"{"contentBlockIndex":2}"#),
        ]);
        let kinds: Vec<_> = got.iter().map(|b| b.kind.as_str()).collect();
        assert_eq!(kinds, ["redacted_thinking", "thinking", "thinking"]);
        assert_eq!(got[0].data.as_deref(), Some("QUJDREVG"));
        assert_eq!(
            (got[1].thinking.as_deref(), got[1].signature.as_deref()),
            (Some("a"), None)
        );
        assert_eq!(
            (got[2].thinking.as_deref(), got[2].signature.as_deref()),
            (Some("b"), Some("c2ln"))
        );
    }
}
