//! Chunks out as Server-Sent Events (`data: {json}\n\n`), what an OpenAI-compatible server
//! sends: the proxy's chat relay writes every chunk it relays through one of these per stream.
//!
//! A stream's chunks repeat one header (`id`, `object`, `created`, `model`, `system_fingerprint`,
//! `service_tier`: most of a content chunk's JSON). The writer keeps the JSON of the last header
//! and copies it while the next chunk's header is the same, a few pointer comparisons since the
//! decoder shares those strings between chunks, so a chunk costs the serialisation of its
//! `choices` (and `usage`) only. The bytes are exactly the chunk's own serialisation.

use crate::chunk::{ChatChunk, ChunkHeader, ChunkTail};

#[derive(Debug, Default)]
pub struct SseWriter {
    /// The last header's chunk (only its header fields are read) and its JSON, `{` and its
    /// fields and a `,`, ready for the tail's fields.
    header: Option<(ChatChunk, Vec<u8>)>,
    /// The tail's JSON, `{"choices":…}`, before its `{` is dropped.
    tail: Vec<u8>,
}

impl SseWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `chunk` as one SSE event to `out`.
    pub fn write(&mut self, chunk: &ChatChunk, out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(self.header_json(chunk));
        self.tail.clear();
        to_json(&mut self.tail, &ChunkTail(chunk));
        out.extend_from_slice(&self.tail[1..]);
        out.extend_from_slice(b"\n\n");
    }

    fn header_json(&mut self, chunk: &ChatChunk) -> &[u8] {
        let same = matches!(&self.header, Some((last, _)) if ChunkHeader(last).same_as(chunk));
        if !same {
            let mut json = Vec::with_capacity(256);
            to_json(&mut json, &ChunkHeader(chunk));
            json.pop(); // its `}`: the tail's fields follow
            json.push(b',');
            let header = ChatChunk {
                id: chunk.id.clone(),
                created: chunk.created,
                model: chunk.model.clone(),
                system_fingerprint: chunk.system_fingerprint.clone(),
                service_tier: chunk.service_tier.clone(),
                ..ChatChunk::default()
            };
            self.header = Some((header, json));
        }
        &self.header.as_ref().expect("set above").1
    }
}

fn to_json<T: serde::Serialize>(out: &mut Vec<u8>, v: &T) {
    serde_json::to_writer(out, v).expect("chunk types always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{ChunkChoice, Delta, SharedStr, Usage};

    fn chunk(id: &str, model: &str, fingerprint: Option<&str>, content: &str) -> ChatChunk {
        ChatChunk {
            id: SharedStr::from(id),
            created: 7,
            model: SharedStr::from(model),
            system_fingerprint: fingerprint.map(SharedStr::from),
            choices: vec![ChunkChoice {
                delta: Delta {
                    content: Some(content.into()),
                    ..Delta::default()
                },
                ..ChunkChoice::default()
            }],
            ..ChatChunk::default()
        }
    }

    fn event(c: &ChatChunk) -> Vec<u8> {
        [b"data: ", &serde_json::to_vec(c).unwrap()[..], b"\n\n"].concat()
    }

    #[test]
    fn each_event_is_the_chunks_own_json_whatever_the_header_does() {
        let mut usage = chunk("a", "m", Some("fp"), "");
        usage.choices.clear();
        usage.usage = Some(Box::new(Usage {
            prompt_tokens: 1,
            completion_tokens: 2,
            total_tokens: 3,
            ..Usage::default()
        }));
        let mut later = chunk("a", "m", Some("fp"), "x");
        later.created = 8;
        let mut tier = chunk("a", "m", Some("fp"), "y");
        tier.service_tier = Some(SharedStr::from("default"));
        let stream = [
            chunk("a", "m", None, "he"),
            chunk("a", "m", None, "llo \"q\"\n"),
            chunk("a", "m", Some("fp"), "!"),  // a field appears
            chunk("a", "m2", Some("fp"), "!"), // the model changes
            chunk("b", "m2", Some("fp"), "é"), // the id changes
            chunk("a", "m", Some("fp"), ""),
            later,
            tier,
            usage,
        ];
        let mut w = SseWriter::new();
        let mut out = Vec::new();
        let mut want = Vec::new();
        for c in &stream {
            w.write(c, &mut out);
            want.extend(event(c));
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }
}
