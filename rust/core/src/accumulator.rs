//! Merges a stream of normalised chunks into the final `chat.completion`.
//!
//! O(size of the delta) per chunk: text is appended in place, choices and tool calls are found by
//! index with a scan that starts at the most recent entry (the one a stream almost always continues).

use serde_json::Value;

use crate::chunk::{
    ChatChunk, ChatCompletion, Choice, ChunkChoice, Logprobs, Message, SharedStr, ThinkingBlock,
    ToolCall, Usage,
};

#[derive(Debug, Clone, Default)]
pub struct Accumulator {
    id: SharedStr,
    created: i64,
    model: SharedStr,
    system_fingerprint: Option<SharedStr>,
    service_tier: Option<SharedStr>,
    choices: Vec<ChoiceState>,
    usage: Option<Usage>,
    chunks: usize,
}

#[derive(Debug, Clone, Default)]
struct ChoiceState {
    index: u32,
    role: Option<String>,
    content: Option<String>,
    reasoning: Option<String>,
    reasoning_signature: Option<String>,
    thinking_blocks: Option<Vec<ThinkingBlock>>,
    annotations: Option<Vec<Value>>,
    refusal: Option<String>,
    tool_calls: Vec<ToolCall>,
    logprobs: Option<Logprobs>,
    finish_reason: Option<String>,
    native_finish_reason: Option<String>,
}

fn append(dst: &mut Option<String>, piece: &Option<String>) {
    if let Some(p) = piece {
        match dst {
            Some(d) => d.push_str(p),
            None => *dst = Some(p.clone()),
        }
    }
}

fn append_list<T: Clone>(dst: &mut Option<Vec<T>>, piece: &Option<Vec<T>>) {
    if let Some(p) = piece {
        dst.get_or_insert_with(Vec::new).extend_from_slice(p);
    }
}

fn set_if_some<T: Clone + PartialEq>(dst: &mut Option<T>, v: &Option<T>) {
    // Equal is the usual case (a stream repeats its fingerprint on every chunk): for a SharedStr
    // the comparison is a pointer check, where cloning would be two atomic count updates.
    if v.is_some() && dst != v {
        dst.clone_from(v);
    }
}

impl Accumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many chunks have been added.
    pub fn chunk_count(&self) -> usize {
        self.chunks
    }

    pub fn add(&mut self, chunk: &ChatChunk) {
        self.chunks += 1;
        // Azure's first chunk (prompt filter results) has an empty id and model: keep the first real one.
        if self.id.is_empty() && !chunk.id.is_empty() {
            self.id.clone_from(&chunk.id);
        }
        if self.model.is_empty() && !chunk.model.is_empty() {
            self.model.clone_from(&chunk.model);
        }
        if self.created == 0 {
            self.created = chunk.created;
        }
        set_if_some(&mut self.system_fingerprint, &chunk.system_fingerprint);
        set_if_some(&mut self.service_tier, &chunk.service_tier);
        if let Some(u) = &chunk.usage {
            self.usage = Some(Usage::clone(u));
        }
        for c in &chunk.choices {
            let st = self.choice_mut(c.index);
            st.merge(c);
        }
    }

    fn choice_mut(&mut self, index: u32) -> &mut ChoiceState {
        match self.choices.iter().rposition(|c| c.index == index) {
            Some(i) => &mut self.choices[i],
            None => {
                self.choices.push(ChoiceState {
                    index,
                    ..Default::default()
                });
                self.choices.last_mut().expect("just pushed")
            }
        }
    }

    /// The completion so far (callable at any point: a partial answer is never lost).
    pub fn snapshot(&self) -> ChatCompletion {
        let mut choices: Vec<Choice> = self.choices.iter().map(ChoiceState::to_choice).collect();
        choices.sort_by_key(|c| c.index);
        ChatCompletion {
            id: self.id.to_string(),
            object: Default::default(),
            created: self.created,
            model: self.model.to_string(),
            system_fingerprint: self.system_fingerprint.as_deref().map(str::to_owned),
            service_tier: self.service_tier.as_deref().map(str::to_owned),
            choices,
            usage: self.usage.clone(),
        }
    }

    /// Text of choice 0 so far (content only).
    pub fn text(&self) -> &str {
        self.choices
            .iter()
            .find(|c| c.index == 0)
            .and_then(|c| c.content.as_deref())
            .unwrap_or("")
    }
}

impl ChoiceState {
    fn merge(&mut self, c: &ChunkChoice) {
        let d = &c.delta;
        set_if_some(&mut self.role, &d.role);
        append(&mut self.content, &d.content);
        append(&mut self.reasoning, &d.reasoning_content);
        // A signature is whole, never a fragment: keep the latest.
        set_if_some(&mut self.reasoning_signature, &d.reasoning_signature);
        append_list(&mut self.thinking_blocks, &d.thinking_blocks);
        if let Some(a) = &d.annotations {
            self.annotations
                .get_or_insert_with(Vec::new)
                .extend_from_slice(a);
        }
        append(&mut self.refusal, &d.refusal);
        if let Some(calls) = &d.tool_calls {
            for tc in calls {
                let slot = match self.tool_calls.iter().rposition(|t| t.index == tc.index) {
                    Some(i) => &mut self.tool_calls[i],
                    None => {
                        self.tool_calls.push(ToolCall {
                            index: tc.index,
                            kind: "function".to_owned(),
                            ..Default::default()
                        });
                        self.tool_calls.last_mut().expect("just pushed")
                    }
                };
                if let Some(id) = &tc.id {
                    if slot.id.is_empty() {
                        slot.id.clone_from(id);
                    }
                }
                if let Some(k) = &tc.kind {
                    slot.kind.clone_from(k);
                }
                if let Some(f) = &tc.function {
                    if let Some(n) = &f.name {
                        if slot.function.name.is_empty() {
                            slot.function.name.clone_from(n);
                        }
                    }
                    if let Some(a) = &f.arguments {
                        slot.function.arguments.push_str(a);
                    }
                }
            }
        }
        if let Some(lp) = &c.logprobs {
            let dst = self.logprobs.get_or_insert_with(Logprobs::default);
            append_list(&mut dst.content, &lp.content);
            append_list(&mut dst.refusal, &lp.refusal);
        }
        set_if_some(&mut self.finish_reason, &c.finish_reason);
        set_if_some(&mut self.native_finish_reason, &c.native_finish_reason);
    }

    fn to_choice(&self) -> Choice {
        let mut tool_calls = self.tool_calls.clone();
        tool_calls.sort_by_key(|t| t.index);
        Choice {
            index: self.index,
            message: Message {
                role: self.role.clone().unwrap_or_else(|| "assistant".to_owned()),
                content: self.content.clone(),
                refusal: self.refusal.clone(),
                tool_calls: if tool_calls.is_empty() {
                    None
                } else {
                    Some(tool_calls)
                },
                reasoning_content: self.reasoning.clone(),
                reasoning_signature: self.reasoning_signature.clone(),
                thinking_blocks: self.thinking_blocks.clone(),
                annotations: self.annotations.clone(),
            },
            logprobs: self.logprobs.clone(),
            finish_reason: self.finish_reason.clone(),
            native_finish_reason: self.native_finish_reason.clone(),
        }
    }
}
