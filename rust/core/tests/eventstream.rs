//! AWS eventstream framing (Bedrock) at its edges: CRCs, lengths, header types, size limits,
//! exception and error messages, streams cut mid-message.

mod common;

use common::{decode, decode_every_way};
use polystream_core::eventstream::EventStreamDecoder;
use polystream_core::{ChunkDecoder, Error};
use serde_json::json;

const DIALECT: &str = "bedrock_converse";

/// A header value of each type, as AWS encodes it.
enum Value<'a> {
    Bool(bool),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Bytes(&'a [u8]),
    Str(&'a str),
    Timestamp(i64),
    Uuid([u8; 16]),
}

fn header(out: &mut Vec<u8>, name: &str, value: &Value<'_>) {
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
    match value {
        Value::Bool(true) => out.push(0),
        Value::Bool(false) => out.push(1),
        Value::Byte(v) => {
            out.push(2);
            out.extend_from_slice(&v.to_be_bytes());
        }
        Value::Short(v) => {
            out.push(3);
            out.extend_from_slice(&v.to_be_bytes());
        }
        Value::Int(v) => {
            out.push(4);
            out.extend_from_slice(&v.to_be_bytes());
        }
        Value::Long(v) => {
            out.push(5);
            out.extend_from_slice(&v.to_be_bytes());
        }
        Value::Bytes(b) => {
            out.push(6);
            out.extend_from_slice(&(b.len() as u16).to_be_bytes());
            out.extend_from_slice(b);
        }
        Value::Str(s) => {
            out.push(7);
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Timestamp(v) => {
            out.push(8);
            out.extend_from_slice(&v.to_be_bytes());
        }
        Value::Uuid(u) => {
            out.push(9);
            out.extend_from_slice(u);
        }
    }
}

/// A message from raw header bytes and a payload, with both CRCs right.
fn message_raw(headers: &[u8], payload: &[u8]) -> Vec<u8> {
    let total = (16 + headers.len() + payload.len()) as u32;
    let mut m = total.to_be_bytes().to_vec();
    m.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    m.extend_from_slice(&crc32fast::hash(&m).to_be_bytes());
    m.extend_from_slice(headers);
    m.extend_from_slice(payload);
    m.extend_from_slice(&crc32fast::hash(&m).to_be_bytes());
    m
}

fn message(headers: &[(&str, Value<'_>)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        header(&mut h, name, value);
    }
    message_raw(&h, payload)
}

/// An event message as Bedrock sends it.
fn event(kind: &str, payload: serde_json::Value) -> Vec<u8> {
    message(
        &[
            (":event-type", Value::Str(kind)),
            (":content-type", Value::Str("application/json")),
            (":message-type", Value::Str("event")),
        ],
        payload.to_string().as_bytes(),
    )
}

fn text(t: &str) -> Vec<u8> {
    event(
        "contentBlockDelta",
        json!({"contentBlockIndex": 0, "delta": {"text": t}, "p": "abc"}),
    )
}

fn start() -> Vec<u8> {
    event("messageStart", json!({"role": "assistant", "p": "abcdef"}))
}

/// A whole answer: "Hi there", end_turn, usage 5/2.
fn answer() -> Vec<u8> {
    [
        start(),
        text("Hi"),
        text(" there"),
        event("contentBlockStop", json!({"contentBlockIndex": 0})),
        event("messageStop", json!({"stopReason": "end_turn"})),
        event(
            "metadata",
            json!({"usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}}),
        ),
    ]
    .concat()
}

fn content(o: &common::Outcome) -> Option<&str> {
    o.completion.choices.first()?.message.content.as_deref()
}

fn is_invalid_frame(e: &Option<Error>) -> bool {
    matches!(
        e,
        Some(Error::InvalidFrame {
            framing: "eventstream",
            ..
        })
    )
}

#[test]
fn a_whole_answer_decodes_under_every_split() {
    let o = decode_every_way(DIALECT, &answer(), "answer");
    assert_eq!(o.error, None);
    assert!(o.done);
    assert_eq!(content(&o), Some("Hi there"));
    let u = o.completion.usage.unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (5, 2, 7)
    );
    // The alias decodes the same.
    assert_eq!(
        decode("bedrock", &[&answer()]),
        decode(DIALECT, &[&answer()])
    );
}

#[test]
fn a_corrupt_prelude_crc_is_an_invalid_frame_after_the_chunks_before_it() {
    let mut bad = text(" lost");
    bad[9] ^= 0x01;
    let body = [start(), text("kept"), bad].concat();
    let o = decode_every_way(DIALECT, &body, "prelude crc");
    assert!(is_invalid_frame(&o.error), "{:?}", o.error);
    assert!(o
        .error
        .as_ref()
        .unwrap()
        .to_string()
        .contains("prelude CRC"));
    assert_eq!(content(&o), Some("kept"));
}

#[test]
fn a_corrupt_message_crc_or_payload_is_an_invalid_frame() {
    let good = [start(), text("kept")].concat();
    let bad = text(" lost");
    let n = bad.len();
    // The CRC itself, then a payload byte the CRC covers.
    for at in [n - 1, n - 8] {
        let mut b = bad.clone();
        b[at] ^= 0x20;
        let body = [good.clone(), b].concat();
        let o = decode_every_way(DIALECT, &body, &format!("message crc, byte {at}"));
        assert!(is_invalid_frame(&o.error), "byte {at}: {:?}", o.error);
        assert!(o
            .error
            .as_ref()
            .unwrap()
            .to_string()
            .contains("message CRC"));
        assert_eq!(content(&o), Some("kept"), "byte {at}");
    }
}

/// A prelude with a right CRC over the given lengths, followed by `rest`.
fn prelude(total: u32, headers: u32, rest: &[u8]) -> Vec<u8> {
    let mut m = total.to_be_bytes().to_vec();
    m.extend_from_slice(&headers.to_be_bytes());
    m.extend_from_slice(&crc32fast::hash(&m).to_be_bytes());
    m.extend_from_slice(rest);
    m
}

#[test]
fn impossible_lengths_are_invalid_frames() {
    // total_len below the 16 bytes of prelude and message CRC; 0 too.
    for total in [0, 12, 15] {
        let o = decode(DIALECT, &[&start(), &prelude(total, 0, &[0; 8])]);
        assert!(is_invalid_frame(&o.error), "total {total}: {:?}", o.error);
        assert_eq!(o.chunks.len(), 1, "the role chunk is kept");
    }
    // headers_len larger than what total_len leaves for them.
    let o = decode(DIALECT, &[&prelude(20, 5, &[0; 8])]);
    assert!(is_invalid_frame(&o.error), "{:?}", o.error);
    assert!(o.error.unwrap().to_string().contains("headers length 5"));
    // headers_len = total_len - 16 (no payload) fits; a header running past headers_len is cut.
    let mut h = Vec::new();
    header(&mut h, "a", &Value::Short(1));
    assert_eq!(h.len(), 5);
    let m = message_raw(&h[..4], b"");
    assert!(
        is_invalid_frame(&decode(DIALECT, &[&m]).error),
        "cut header"
    );
    // Whole, it is a valid message (skipped: it has no `:message-type`).
    let m = message_raw(&h, b"");
    assert_eq!(
        decode(DIALECT, &[&m]).error,
        Some(Error::Incomplete { dialect: DIALECT })
    );
}

#[test]
fn a_message_over_the_limit_is_refused_from_its_prelude() {
    let limit = 256;
    let big = text(&"x".repeat(300));
    assert!(big.len() > limit);
    // Only the prelude arrives, a byte at a time: refused before any payload is buffered.
    let mut d = ChunkDecoder::with_max_event_size(DIALECT, limit).unwrap();
    let mut out = Vec::new();
    for b in &big[..11] {
        d.feed(std::slice::from_ref(b), &mut out).unwrap();
    }
    assert_eq!(
        d.feed(&big[11..12], &mut out),
        Err(Error::EventTooLarge { limit })
    );
    assert_eq!(d.feed(&big[12..], &mut out), Err(Error::Poisoned));
    assert_eq!(d.finish(&mut out), Err(Error::Poisoned));

    // A message of exactly the limit is fine.
    let pad = limit - text("").len();
    let exact = text(&"y".repeat(pad));
    assert_eq!(exact.len(), limit);
    let mut d = ChunkDecoder::with_max_event_size(DIALECT, limit).unwrap();
    d.feed(&exact, &mut out).unwrap();
}

#[test]
fn every_header_type_is_parsed_and_skipped() {
    let uuid = [0x5a; 16];
    let headers = [
        ("flag-true", Value::Bool(true)),
        ("flag-false", Value::Bool(false)),
        ("byte", Value::Byte(-7)),
        (":event-type", Value::Str("contentBlockDelta")),
        ("short", Value::Short(-300)),
        ("int", Value::Int(70_000)),
        ("long", Value::Long(-5_000_000_000)),
        // A string header's name inside a bytes value must not be taken for a header.
        (
            "bytes",
            Value::Bytes(b"\x0d:message-type\x07\x00\x09exception"),
        ),
        (":content-type", Value::Str("application/json")),
        ("ts", Value::Timestamp(1_700_000_000_000)),
        ("id", Value::Uuid(uuid)),
        (":message-type", Value::Str("event")),
        ("empty", Value::Str("")),
    ];
    let delta = message(
        &headers,
        br#"{"contentBlockIndex":0,"delta":{"text":"typed"}}"#,
    );
    // The decoder sees every field of the message.
    let mut d = EventStreamDecoder::new();
    let mut seen = Vec::new();
    d.feed(&delta, |m| {
        seen.push((m.message_type.to_vec(), m.event_type.to_vec()));
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, [(b"event".to_vec(), b"contentBlockDelta".to_vec())]);

    let body = [start(), delta, answer()].concat();
    let o = decode_every_way(DIALECT, &body, "every header type");
    assert_eq!(o.error, None);
    assert_eq!(content(&o), Some("typedHi there"));
}

#[test]
fn an_unknown_header_type_or_a_cut_header_is_an_invalid_frame() {
    let mut h = Vec::new();
    header(&mut h, ":event-type", &Value::Str("messageStart"));
    for bad in [
        [&h[..], b"\x01x\x0a"].concat(),            // type 10 does not exist
        [&h[..], b"\x01x\x07\x00\x05abc"].concat(), // a string longer than its header
        [&h[..], b"\x01x\x09\x00\x01"].concat(),    // a uuid cut short
        [&h[..], b"\x01x\x06\x00"].concat(),        // a bytes length cut short
        [&h[..], b"\x05ab"].concat(),               // a name cut short
    ] {
        let m = message_raw(&bad, b"{}");
        let o = decode(DIALECT, &[&text("kept"), &m]);
        assert!(is_invalid_frame(&o.error), "{bad:?}: {:?}", o.error);
        assert_eq!(o.chunks.len(), 1, "{bad:?}");
    }
}

#[test]
fn an_exception_message_is_the_providers_error() {
    let exception = |kind: &str, payload: &[u8]| {
        message(
            &[
                (":exception-type", Value::Str(kind)),
                (":content-type", Value::Str("application/json")),
                (":message-type", Value::Str("exception")),
            ],
            payload,
        )
    };
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "throttlingException",
            br#"{"message":"Too many requests, please wait before trying again."}"#,
            "Too many requests, please wait before trying again.",
        ),
        (
            "validationException",
            br#"{"Message":"Malformed input request"}"#,
            "Malformed input request",
        ),
        ("internalServerException", b"not json", "not json"),
        ("serviceUnavailableException", b"{}", "{}"),
    ];
    for (kind, payload, want) in cases {
        let body = [start(), text("so far"), exception(kind, payload)].concat();
        let o = decode_every_way(DIALECT, &body, kind);
        match &o.error {
            Some(Error::Provider {
                kind: k,
                message,
                body,
                code: None,
                ..
            }) => {
                assert_eq!(k.as_deref(), Some(*kind));
                assert_eq!(message, want);
                assert_eq!(body.as_bytes(), *payload);
            }
            other => panic!("{kind}: {other:?}"),
        }
        assert_eq!(content(&o), Some("so far"), "{kind}");
        assert!(!o.done);
    }
    // The decoder is poisoned after it.
    let mut d = ChunkDecoder::new(DIALECT).unwrap();
    let mut out = Vec::new();
    let e = d.feed(&exception("throttlingException", b"{}"), &mut out);
    assert!(matches!(e, Err(Error::Provider { .. })));
    assert_eq!(d.feed(&text("more"), &mut out), Err(Error::Poisoned));
}

#[test]
fn an_error_message_is_the_providers_error() {
    let error = message(
        &[
            (":error-code", Value::Str("InternalFailure")),
            (
                ":error-message",
                Value::Str("The service failed, try again."),
            ),
            (":message-type", Value::Str("error")),
        ],
        b"",
    );
    let o = decode_every_way(DIALECT, &[start(), error].concat(), "error message");
    match o.error {
        Some(Error::Provider { kind, message, .. }) => {
            assert_eq!(kind.as_deref(), Some("InternalFailure"));
            assert_eq!(message, "The service failed, try again.");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn messages_the_dialect_does_not_know_are_skipped() {
    let unknown_type = message(
        &[
            (":event-type", Value::Str("contentBlockDelta")),
            (":message-type", Value::Str("something-new")),
        ],
        br#"{"contentBlockIndex":0,"delta":{"text":"never"}}"#,
    );
    let no_type = message(&[], b"{not json");
    let body = [
        start(),
        unknown_type,
        no_type,
        event("somethingNew", json!({"anything": [1, 2]})),
        // An event whose payload is not JSON, of a type the dialect does not know.
        message(
            &[
                (":event-type", Value::Str("binaryThing")),
                (":message-type", Value::Str("event")),
            ],
            b"\x00\x01\x02",
        ),
        // An event carrying only a message is not an error: only exception messages are.
        event("contentBlockDelta", json!({"message": "not an error"})),
        // Delta kinds the client has no use for.
        event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"citation": {"title": "t"}}}),
        ),
        answer(),
    ]
    .concat();
    let o = decode_every_way(DIALECT, &body, "unknown messages");
    assert_eq!(o.error, None);
    assert_eq!(content(&o), Some("Hi there"));
}

#[test]
fn a_stream_cut_mid_message_is_incomplete() {
    let whole = answer();
    let metadata = event(
        "metadata",
        json!({"usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}}),
    );
    // Cut inside the prelude, inside the headers and inside the payload of the last message
    // (which comes after messageStop): still incomplete, the dialect's terminator notwithstanding.
    let last = whole.len() - metadata.len();
    for cut in [last + 5, last + 20, whole.len() - 10, whole.len() - 1] {
        let o = decode_every_way(DIALECT, &whole[..cut], &format!("cut at {cut}"));
        assert_eq!(
            o.error,
            Some(Error::Incomplete { dialect: DIALECT }),
            "cut at {cut}"
        );
        assert!(o.done, "messageStop came before the cut");
        assert_eq!(content(&o), Some("Hi there"));
        assert_eq!(o.completion.usage, None);
    }
    // Cut at a message boundary before messageStop: incomplete as well.
    let o = decode(DIALECT, &[&[start(), text("Hi")].concat()]);
    assert_eq!(o.error, Some(Error::Incomplete { dialect: DIALECT }));
    assert!(!o.done);
}

#[test]
fn a_call_without_input_gets_empty_arguments() {
    let body = [
        start(),
        event(
            "contentBlockStart",
            json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "t1", "name": "now"}}}),
        ),
        event("contentBlockStop", json!({"contentBlockIndex": 0})),
        event("messageStop", json!({"stopReason": "tool_use"})),
    ]
    .concat();
    let o = decode_every_way(DIALECT, &body, "no input");
    assert_eq!(o.error, None);
    let c = &o.completion.choices[0];
    let calls = c.message.tool_calls.as_ref().unwrap();
    assert_eq!(
        (calls[0].id.as_str(), calls[0].function.name.as_str()),
        ("t1", "now")
    );
    assert_eq!(calls[0].function.arguments, "{}");
    assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"));
}
