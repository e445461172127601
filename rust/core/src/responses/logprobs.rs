//! Token log probabilities: chat `choices[].logprobs.content` entries in, the two shapes the
//! Responses API gives them out.
//!
//! - content parts: `{token, bytes, logprob, top_logprobs: [{token, bytes, logprob}]}` (the SDK's
//!   `ResponseOutputText.Logprob`, where every field is required);
//! - `output_text.delta` and `.done` events: the same without `bytes` (the SDK's
//!   `ResponseTextDeltaEvent.Logprob` and `ResponseTextDoneEvent.Logprob`).
//!
//! A chunk's entries are parsed once, when they arrive; a chunk without any allocates nothing.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

/// One candidate token: the token chosen, or one of its alternatives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub token: String,
    /// The token's UTF-8 bytes. Chat allows `null` here; Responses requires a list, so a
    /// candidate sent without bytes gets its token's own.
    pub bytes: Vec<u8>,
    pub logprob: f64,
}

/// One output token and its most likely alternatives (as many as the request's `top_logprobs`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenLogprob {
    #[serde(flatten)]
    pub chosen: Candidate,
    pub top_logprobs: Vec<Candidate>,
}

/// The tokens of one chat chunk. Entries without a string `token` or a numeric `logprob` are
/// skipped: the SDK would reject the whole event for one of them.
pub fn from_chat(entries: &[Value]) -> Vec<TokenLogprob> {
    entries.iter().filter_map(TokenLogprob::from_chat).collect()
}

impl TokenLogprob {
    fn from_chat(entry: &Value) -> Option<Self> {
        let top = entry.get("top_logprobs").and_then(Value::as_array);
        Some(TokenLogprob {
            chosen: Candidate::from_chat(entry)?,
            top_logprobs: top.map_or_else(Vec::new, |t| {
                t.iter().filter_map(Candidate::from_chat).collect()
            }),
        })
    }
}

impl Candidate {
    fn from_chat(entry: &Value) -> Option<Self> {
        let token = entry.get("token")?.as_str()?;
        let logprob = entry.get("logprob")?.as_f64()?;
        let bytes = entry.get("bytes").and_then(byte_list);
        Some(Candidate {
            token: token.to_owned(),
            bytes: bytes.unwrap_or_else(|| token.as_bytes().to_vec()),
            logprob,
        })
    }
}

/// A JSON list of integers 0–255, or None.
fn byte_list(v: &Value) -> Option<Vec<u8>> {
    v.as_array()?
        .iter()
        .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
        .collect()
}

/// The logprobs of a `response.output_text.delta` event (the delta's own tokens) or `.done` event
/// (all of the part's), without `bytes`. Empty (`[]`, no allocation) when there are none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventLogprobs(pub Vec<TokenLogprob>);

impl Serialize for EventLogprobs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .iter()
                .map(|t| WithoutBytes(&t.chosen, Some(&t.top_logprobs))),
        )
    }
}

/// `{token, logprob}`, plus `top_logprobs` for a chosen token (its alternatives have none).
struct WithoutBytes<'a>(&'a Candidate, Option<&'a [Candidate]>);

impl Serialize for WithoutBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let WithoutBytes(c, top) = *self;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("token", &c.token)?;
        m.serialize_entry("logprob", &c.logprob)?;
        if let Some(top) = top {
            m.serialize_entry("top_logprobs", &AlternativesWithoutBytes(top))?;
        }
        m.end()
    }
}

struct AlternativesWithoutBytes<'a>(&'a [Candidate]);

impl Serialize for AlternativesWithoutBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|c| WithoutBytes(c, None)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_or_null_bytes_become_the_tokens_own() {
        let got = from_chat(&[json!({"token": "é", "logprob": -0.5, "bytes": null,
                                     "top_logprobs": [{"token": "e", "logprob": -2.0}]})]);
        assert_eq!(got[0].chosen.bytes, "é".as_bytes());
        assert_eq!(got[0].top_logprobs[0].bytes, b"e");
    }

    #[test]
    fn malformed_entries_are_skipped() {
        let got = from_chat(&[
            json!({"token": "a"}),
            json!({"logprob": -1.0}),
            json!("a"),
            json!({"token": "b", "logprob": -1.0, "bytes": [98, 300],
                   "top_logprobs": [{"token": null, "logprob": -1.0}]}),
        ]);
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].chosen.bytes, b"b",
            "bytes out of range: the token's own"
        );
        assert!(got[0].top_logprobs.is_empty());
    }

    #[test]
    fn the_two_shapes() {
        let t = from_chat(&[json!({"token": "a", "logprob": -1.0, "bytes": [97],
                                   "top_logprobs": [{"token": "b", "logprob": -2.0, "bytes": [98]}]})]);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"[{"token":"a","bytes":[97],"logprob":-1.0,"top_logprobs":[{"token":"b","bytes":[98],"logprob":-2.0}]}]"#
        );
        assert_eq!(
            serde_json::to_string(&EventLogprobs(t)).unwrap(),
            r#"[{"token":"a","logprob":-1.0,"top_logprobs":[{"token":"b","logprob":-2.0}]}]"#
        );
        assert_eq!(
            serde_json::to_string(&EventLogprobs::default()).unwrap(),
            "[]"
        );
    }
}
