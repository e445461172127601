//! Closing items (their `.done` events) and the `OutputItem` views snapshots and events carry.

use super::*;

impl ResponsesBuilder {
    pub(super) fn close_part(&mut self, i: usize, out: &mut Vec<ResponseEvent>) {
        let Body::Message { parts, part_open } = &mut self.items[i].body else {
            return;
        };
        if !*part_open {
            return;
        }
        *part_open = false;
        let content_index = parts.len() as u32 - 1;
        let part = parts.last().expect("an open part exists").clone();
        let item_id = self.items[i].id.clone();
        let output_index = i as u32;
        // The part's own `.done` event, then `content_part.done` carrying the finished part.
        let (done, part) = match part {
            Part::Text {
                text,
                logprobs,
                annotations,
            } => {
                let (text, logprobs) = self.part_text(text, logprobs);
                let done = EventKind::OutputTextDone {
                    item_id: item_id.clone(),
                    output_index,
                    content_index,
                    text: text.clone(),
                    logprobs: EventLogprobs(logprobs.clone()),
                };
                (done, text_part(text, logprobs, annotations))
            }
            Part::Refusal(refusal) => {
                let done = EventKind::RefusalDone {
                    item_id: item_id.clone(),
                    output_index,
                    content_index,
                    refusal: refusal.clone(),
                };
                (done, ContentPart::Refusal { refusal })
            }
        };
        self.emit(out, done);
        self.emit(
            out,
            EventKind::ContentPartDone {
                item_id,
                output_index,
                content_index,
                part,
            },
        );
    }

    pub(super) fn close_message(&mut self, status: ItemStatus, out: &mut Vec<ResponseEvent>) {
        // Tokens still without text when the message ends (a character cut off) stay with its
        // text, on an empty delta.
        if !self.untexted.is_empty() && self.open_text_part() {
            let tokens = std::mem::take(&mut self.untexted);
            self.text_delta("", tokens, out);
        }
        if let Some(i) = self.open_message.take() {
            self.close_part(i, out);
            self.close_item(i, status, out);
        }
    }

    fn open_text_part(&self) -> bool {
        self.open_message.is_some_and(|i| {
            matches!(&self.items[i].body, Body::Message { parts, .. } if matches!(parts.last(), Some(Part::Text { .. })))
        })
    }

    pub(super) fn close_reasoning(&mut self, status: ItemStatus, out: &mut Vec<ResponseEvent>) {
        let Some(i) = self.open_reasoning.take() else {
            return;
        };
        let Body::Reasoning { summary, .. } = &self.items[i].body else {
            return;
        };
        let text = summary.clone();
        let (item_id, output_index) = (self.items[i].id.clone(), i as u32);
        self.emit(
            out,
            EventKind::ReasoningSummaryTextDone {
                item_id: item_id.clone(),
                output_index,
                summary_index: 0,
                text: text.clone(),
            },
        );
        let part_status = (status != ItemStatus::Completed).then_some("incomplete");
        self.emit(
            out,
            EventKind::ReasoningSummaryPartDone {
                item_id,
                output_index,
                summary_index: 0,
                part: SummaryPart::SummaryText { text },
                status: part_status,
            },
        );
        self.close_item(i, status, out);
    }

    pub(super) fn close_call(
        &mut self,
        i: usize,
        status: ItemStatus,
        out: &mut Vec<ResponseEvent>,
    ) {
        if self.items[i].status != ItemStatus::InProgress {
            return;
        }
        let Body::Call { arguments, .. } = &self.items[i].body else {
            return;
        };
        let arguments = arguments.clone();
        let item_id = self.items[i].id.clone();
        self.emit(
            out,
            EventKind::FunctionCallArgumentsDone {
                item_id,
                output_index: i as u32,
                arguments,
            },
        );
        self.close_item(i, status, out);
    }

    pub(super) fn close_item(
        &mut self,
        i: usize,
        status: ItemStatus,
        out: &mut Vec<ResponseEvent>,
    ) {
        self.items[i].status = status;
        let item = self.item_view(i);
        self.emit(
            out,
            EventKind::OutputItemDone {
                output_index: i as u32,
                item,
            },
        );
    }

    /// Close every open item in output order; calls whose name never came are announced first
    /// (with an empty name) so no argument text is lost.
    pub(super) fn close_all(&mut self, status: ItemStatus, out: &mut Vec<ResponseEvent>) {
        for s in 0..self.calls.len() {
            if self.calls[s].item.is_none() {
                self.announce_call(s, status, out);
            }
        }
        let mut open: Vec<usize> = self.calls.iter().filter_map(|c| c.item).collect();
        open.extend(self.open_message);
        open.extend(self.open_reasoning);
        open.sort_unstable();
        for i in open {
            match self.items[i].body {
                Body::Message { .. } => self.close_message(status, out),
                Body::Reasoning { .. } => self.close_reasoning(status, out),
                Body::Call { .. } => self.close_call(i, status, out),
            }
        }
    }

    // ---- views ----------------------------------------------------------------------------

    /// A text part's text and logprobs, copied out of the response-wide buffers.
    fn part_text(&self, text: Range<usize>, logprobs: Range<usize>) -> (String, Vec<TokenLogprob>) {
        (self.text[text].to_owned(), self.logprobs[logprobs].to_vec())
    }

    pub(super) fn item_view(&self, i: usize) -> OutputItem {
        let item = &self.items[i];
        let id = item.id.clone();
        match &item.body {
            Body::Message { parts, .. } => OutputItem::Message {
                id,
                status: item.status,
                role: Assistant,
                content: parts
                    .iter()
                    .map(|p| match p {
                        Part::Text {
                            text,
                            logprobs,
                            annotations,
                        } => {
                            let (text, logprobs) = self.part_text(text.clone(), logprobs.clone());
                            text_part(text, logprobs, annotations.clone())
                        }
                        Part::Refusal(r) => ContentPart::Refusal { refusal: r.clone() },
                    })
                    .collect(),
            },
            Body::Reasoning {
                summary,
                part_added,
            } => OutputItem::Reasoning {
                id,
                summary: if *part_added {
                    vec![SummaryPart::SummaryText {
                        text: summary.clone(),
                    }]
                } else {
                    Vec::new()
                },
            },
            Body::Call {
                call_id,
                name,
                arguments,
            } => OutputItem::FunctionCall {
                id,
                call_id: call_id.clone(),
                name: name.clone(),
                arguments: arguments.clone(),
                status: item.status,
            },
        }
    }
}

pub(super) fn text_part(
    text: String,
    logprobs: Vec<TokenLogprob>,
    annotations: Vec<Value>,
) -> ContentPart {
    ContentPart::OutputText {
        annotations,
        logprobs,
        text,
    }
}
