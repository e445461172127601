//! Per-chunk work: open items and parts as deltas arrive and emit one event per delta.

use super::close::text_part;
use super::*;

impl ResponsesBuilder {
    pub(super) fn emit(&mut self, out: &mut Vec<ResponseEvent>, kind: EventKind) {
        out.push(ResponseEvent {
            kind,
            sequence_number: self.seq,
        });
        self.seq += 1;
    }

    pub(super) fn new_item_id(&self, prefix: &str, index: usize) -> String {
        format!("{prefix}_{}{index:04x}", self.id_base)
    }

    pub(super) fn push_item(
        &mut self,
        prefix: &str,
        body: Body,
        out: &mut Vec<ResponseEvent>,
    ) -> usize {
        let index = self.items.len();
        let id = self.new_item_id(prefix, index);
        self.items.push(Item {
            id,
            status: ItemStatus::InProgress,
            body,
        });
        let item = self.item_view(index);
        self.emit(
            out,
            EventKind::OutputItemAdded {
                output_index: index as u32,
                item,
            },
        );
        index
    }

    pub(super) fn reasoning_delta(&mut self, delta: &str, out: &mut Vec<ResponseEvent>) {
        let i = match self.open_reasoning {
            Some(i) => i,
            None => {
                self.close_message(ItemStatus::Completed, out);
                let i = self.push_item(
                    "rs",
                    Body::Reasoning {
                        summary: String::new(),
                        part_added: false,
                    },
                    out,
                );
                self.open_reasoning = Some(i);
                // Added with `summary: []` above; from now on the item shows its summary part.
                if let Body::Reasoning { part_added, .. } = &mut self.items[i].body {
                    *part_added = true;
                }
                let part = SummaryPart::SummaryText {
                    text: String::new(),
                };
                let (item_id, output_index) = (self.items[i].id.clone(), i as u32);
                self.emit(
                    out,
                    EventKind::ReasoningSummaryPartAdded {
                        item_id,
                        output_index,
                        summary_index: 0,
                        part,
                    },
                );
                i
            }
        };
        if let Body::Reasoning { summary, .. } = &mut self.items[i].body {
            summary.push_str(delta);
        }
        let (item_id, output_index) = (self.items[i].id.clone(), i as u32);
        self.emit(
            out,
            EventKind::ReasoningSummaryTextDelta {
                item_id,
                output_index,
                summary_index: 0,
                delta: delta.to_owned(),
            },
        );
    }

    /// The open message item and its open part of the wanted kind, opening either as needed.
    /// Returns (item index, content index).
    pub(super) fn message_part(
        &mut self,
        text: bool,
        out: &mut Vec<ResponseEvent>,
    ) -> (usize, u32) {
        self.close_reasoning(ItemStatus::Completed, out);
        let i = match self.open_message {
            Some(i) => i,
            None => {
                let i = self.push_item(
                    "msg",
                    Body::Message {
                        parts: Vec::new(),
                        part_open: false,
                    },
                    out,
                );
                self.open_message = Some(i);
                i
            }
        };
        let Body::Message { parts, part_open } = &self.items[i].body else {
            unreachable!("open_message is a message")
        };
        let open = *part_open;
        if open && matches!(parts.last(), Some(Part::Text { .. })) == text {
            return (i, parts.len() as u32 - 1);
        }
        if open {
            self.close_part(i, out);
        }
        let (at, lp_at) = (self.text.len(), self.logprobs.len());
        let (part, view) = if text {
            let part = Part::Text {
                text: at..at,
                logprobs: lp_at..lp_at,
                annotations: Vec::new(),
            };
            (part, text_part(String::new(), Vec::new(), Vec::new()))
        } else {
            (
                Part::Refusal(String::new()),
                ContentPart::Refusal {
                    refusal: String::new(),
                },
            )
        };
        let Body::Message { parts, part_open } = &mut self.items[i].body else {
            unreachable!()
        };
        parts.push(part);
        *part_open = true;
        let content_index = parts.len() as u32 - 1;
        let (item_id, output_index) = (self.items[i].id.clone(), i as u32);
        self.emit(
            out,
            EventKind::ContentPartAdded {
                item_id,
                output_index,
                content_index,
                part: view,
            },
        );
        (i, content_index)
    }

    /// Choice 0's `logprobs.content` if the request asked for logprobs (else nothing is parsed).
    /// `logprobs.refusal` is dropped: a Responses `refusal` part has no logprobs field.
    pub(super) fn chunk_logprobs(&self, choice: &ChunkChoice) -> Vec<TokenLogprob> {
        match choice.logprobs.as_ref().and_then(|l| l.content.as_deref()) {
            Some(entries) if self.include_logprobs => logprobs::from_chat(entries),
            _ => Vec::new(),
        }
    }

    /// `logprobs`: the tokens of `delta`, appended to the part's (no copy of what came before).
    pub(super) fn text_delta(
        &mut self,
        delta: &str,
        logprobs: Vec<TokenLogprob>,
        out: &mut Vec<ResponseEvent>,
    ) {
        let (i, content_index) = self.message_part(true, out);
        self.text.push_str(delta);
        self.logprobs.extend_from_slice(&logprobs);
        let (text_end, logprobs_end) = (self.text.len(), self.logprobs.len());
        if let Body::Message { parts, .. } = &mut self.items[i].body {
            if let Some(Part::Text { text, logprobs, .. }) = parts.last_mut() {
                text.end = text_end;
                logprobs.end = logprobs_end;
            }
        }
        let (item_id, output_index) = (self.items[i].id.clone(), i as u32);
        self.emit(
            out,
            EventKind::OutputTextDelta {
                item_id,
                output_index,
                content_index,
                delta: delta.to_owned(),
                logprobs: EventLogprobs(logprobs),
            },
        );
    }

    /// The chat stream's citations (`delta.annotations`) on the open text part, each announced
    /// with `response.output_text.annotation.added`. A chat `url_citation` nests its fields under
    /// `url_citation`; the Responses one has them at the top.
    pub(super) fn annotations_added(
        &mut self,
        annotations: &[Value],
        out: &mut Vec<ResponseEvent>,
    ) {
        let (i, content_index) = self.message_part(true, out);
        for a in annotations {
            let annotation = responses_annotation(a);
            let Body::Message { parts, .. } = &mut self.items[i].body else {
                return;
            };
            let Some(Part::Text { annotations, .. }) = parts.last_mut() else {
                return;
            };
            annotations.push(annotation.clone());
            let annotation_index = annotations.len() as u32 - 1;
            let (item_id, output_index) = (self.items[i].id.clone(), i as u32);
            self.emit(
                out,
                EventKind::OutputTextAnnotationAdded {
                    item_id,
                    output_index,
                    content_index,
                    annotation_index,
                    annotation,
                },
            );
        }
    }

    pub(super) fn refusal_delta(&mut self, delta: &str, out: &mut Vec<ResponseEvent>) {
        let (i, content_index) = self.message_part(false, out);
        if let Body::Message { parts, .. } = &mut self.items[i].body {
            if let Some(Part::Refusal(r)) = parts.last_mut() {
                r.push_str(delta);
            }
        }
        let (item_id, output_index) = (self.items[i].id.clone(), i as u32);
        self.emit(
            out,
            EventKind::RefusalDelta {
                item_id,
                output_index,
                content_index,
                delta: delta.to_owned(),
            },
        );
    }

    pub(super) fn tool_delta(&mut self, tc: &ToolCallDelta, out: &mut Vec<ResponseEvent>) {
        let s = match self.calls.iter().rposition(|c| c.tool_index == tc.index) {
            Some(s) => s,
            None => {
                self.calls.push(CallSlot {
                    tool_index: tc.index,
                    item: None,
                    call_id: None,
                    name: None,
                    pending_args: String::new(),
                });
                self.calls.len() - 1
            }
        };
        let slot = &mut self.calls[s];
        if slot.call_id.is_none() {
            slot.call_id = tc.id.clone().filter(|v| !v.is_empty());
        }
        let f = tc.function.as_ref();
        if slot.name.is_none() {
            slot.name = f.and_then(|f| f.name.clone()).filter(|v| !v.is_empty());
        }
        let args = f.and_then(|f| f.arguments.as_deref()).unwrap_or("");
        match slot.item {
            Some(i) => self.call_args(i, args, out),
            None => {
                slot.pending_args.push_str(args);
                if slot.name.is_some() {
                    self.announce_call(s, ItemStatus::Completed, out);
                }
            }
        }
    }

    /// Create the function_call item of slot `s` (added with empty arguments, as OpenAI does), then
    /// send the arguments that arrived before the name as one delta.
    /// `closing`: the status the open message or reasoning item it follows ends with.
    pub(super) fn announce_call(
        &mut self,
        s: usize,
        closing: ItemStatus,
        out: &mut Vec<ResponseEvent>,
    ) {
        self.close_reasoning(closing, out);
        self.close_message(closing, out);
        let index = self.items.len();
        let slot = &mut self.calls[s];
        let call_id = slot
            .call_id
            .take()
            .unwrap_or_else(|| format!("call_{}{index:04x}", self.id_base));
        let name = slot.name.clone().unwrap_or_default();
        let pending = std::mem::take(&mut slot.pending_args);
        let i = self.push_item(
            "fc",
            Body::Call {
                call_id,
                name,
                arguments: String::new(),
            },
            out,
        );
        self.calls[s].item = Some(i);
        self.call_args(i, &pending, out);
    }

    pub(super) fn call_args(&mut self, i: usize, delta: &str, out: &mut Vec<ResponseEvent>) {
        if delta.is_empty() || self.items[i].status != ItemStatus::InProgress {
            return;
        }
        if let Body::Call { arguments, .. } = &mut self.items[i].body {
            arguments.push_str(delta);
        }
        let (item_id, output_index) = (self.items[i].id.clone(), i as u32);
        self.emit(
            out,
            EventKind::FunctionCallArgumentsDelta {
                item_id,
                output_index,
                delta: delta.to_owned(),
            },
        );
    }
}

/// A chat annotation in the Responses shape: `{"type": "url_citation", "url_citation": {url,
/// title, start_index, end_index}}` → `{"type": "url_citation", url, title, start_index,
/// end_index}`; any other (already flat) annotation as it is.
fn responses_annotation(a: &Value) -> Value {
    match a.get("url_citation").and_then(Value::as_object) {
        Some(fields) if a.get("type").and_then(Value::as_str) == Some("url_citation") => {
            let mut flat = fields.clone();
            flat.insert("type".to_owned(), Value::from("url_citation"));
            Value::Object(flat)
        }
        _ => a.clone(),
    }
}
