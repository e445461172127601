//! Framing and lifecycle edges of the dialects that fixtures do not show well.

mod common;

use common::{decode, decode_every_way};
use polystream_core::{ChunkDecoder, Error};

#[test]
fn gemini_tells_a_json_body_from_sse_after_leading_blanks() {
    let array =
        b"\r\n  [{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hi\"}]}, \"finishReason\": \"STOP\"}]}]\n";
    let o = decode_every_way("gemini", array, "array after blanks");
    assert_eq!(o.error, None);
    assert_eq!(
        o.completion.choices[0].message.content.as_deref(),
        Some("Hi")
    );

    // An error body that is one object, not an array.
    let body = b"\n{\n  \"error\": {\"code\": 400, \"message\": \"API key not valid.\", \"status\": \"INVALID_ARGUMENT\"}\n}\n";
    let o = decode_every_way("gemini", body, "bare error body");
    match o.error {
        Some(Error::Provider {
            kind,
            code,
            message,
            ..
        }) => {
            assert_eq!(
                (kind.as_deref(), code.as_deref()),
                (Some("INVALID_ARGUMENT"), Some("400"))
            );
            assert_eq!(message, "API key not valid.");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn gemini_sse_keeps_lf_and_cr_line_endings() {
    let ev = "{\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"ok\"}]}, \"finishReason\": \"STOP\"}]}";
    for sep in ["\n", "\r", "\r\n"] {
        let body = format!("data: {ev}{sep}{sep}");
        let o = decode_every_way("gemini", body.as_bytes(), &format!("separator {sep:?}"));
        assert_eq!(o.error, None, "{sep:?}");
        assert_eq!(
            o.completion.choices[0].message.content.as_deref(),
            Some("ok")
        );
        // And without the final blank line.
        let body = format!("data: {ev}{sep}");
        let o = decode_every_way(
            "gemini",
            body.as_bytes(),
            &format!("separator {sep:?}, no blank line"),
        );
        assert_eq!(o.error, None, "{sep:?} without blank line");
    }
    // A last line cut short is not delivered: the answer is incomplete.
    let o = decode(
        "gemini",
        &[format!("data: {}", &ev[..ev.len() - 3]).as_bytes()],
    );
    assert_eq!(o.error, Some(Error::Incomplete { dialect: "gemini" }));
}

#[test]
fn frames_beyond_the_size_limit_are_refused() {
    let big = format!(
        "[{{\"candidates\": [{{\"content\": {{\"parts\": [{{\"text\": \"{}\"}}]}}}}]}}]",
        "x".repeat(200)
    );
    for pieces in [vec![big.as_bytes()], big.as_bytes().chunks(7).collect()] {
        let mut d = ChunkDecoder::with_max_event_size("gemini", 100).unwrap();
        let mut out = Vec::new();
        let err = pieces.iter().find_map(|p| d.feed(p, &mut out).err());
        assert_eq!(err, Some(Error::EventTooLarge { limit: 100 }));
        assert_eq!(d.feed(b"]", &mut out), Err(Error::Poisoned));
    }
    let raw = format!("data: {{}}\n\n{{\"error\": \"{}\"}}\n", "y".repeat(200));
    let mut d = ChunkDecoder::with_max_event_size("gemini", 100).unwrap();
    assert_eq!(
        d.feed(raw.as_bytes(), &mut Vec::new()).err(),
        Some(Error::EventTooLarge { limit: 100 })
    );
}

#[test]
fn a_decoder_is_poisoned_after_a_provider_error() {
    let mut d = ChunkDecoder::new("anthropic").unwrap();
    let mut out = Vec::new();
    let e = d.feed(
        b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"x\"}}\n\n",
        &mut out,
    );
    assert!(matches!(e, Err(Error::Provider { kind: Some(ref k), .. }) if k == "api_error"));
    assert_eq!(
        d.feed(b"event: ping\ndata: {}\n\n", &mut out),
        Err(Error::Poisoned)
    );

    let mut d = ChunkDecoder::new("gemini").unwrap();
    let e = d.feed(
        b"data: {\"candidates\": []}\n\n{\"error\": {\"code\": 500}}\n",
        &mut out,
    );
    assert!(matches!(e, Err(Error::Provider { .. })));
    assert_eq!(d.feed(b"data: {}\n\n", &mut out), Err(Error::Poisoned));
}

#[test]
fn is_done_follows_each_terminator() {
    let cases: &[(&str, &[u8], &[u8])] = &[
        ("anthropic", b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n",
         b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        ("cohere", b"event: content-end\ndata: {\"type\":\"content-end\",\"index\":0}\n\n",
         b"event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"COMPLETE\"}}\n\ndata: [DONE]\n\n"),
        ("ollama", b"{\"message\":{\"content\":\"a\"},\"done\":false}\n", b"{\"done\":true,\"done_reason\":\"stop\"}\n"),
        ("gemini", b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"a\"}]}}]}\n\n",
         b"data: {\"candidates\": [{\"finishReason\": \"STOP\"}]}\n\n"),
        ("openai_chat", b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n", b"data: [DONE]\n\n"),
    ];
    for (dialect, before, terminator) in cases {
        let mut d = ChunkDecoder::new(dialect).unwrap();
        let mut out = Vec::new();
        d.feed(before, &mut out).unwrap();
        assert!(!d.is_done(), "{dialect}");
        d.feed(terminator, &mut out).unwrap();
        assert!(d.is_done(), "{dialect}");
        d.finish(&mut out).unwrap();
    }
}

#[test]
fn unnamed_events_dispatch_on_the_json_type() {
    // A relay that drops `event:` lines: the JSON `type` still says what each event is.
    let anthropic = b"data: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"model\":\"c\",\"usage\":{\"input_tokens\":3}}}\n\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"yo\"}}\n\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"stop_sequence\"},\"usage\":{\"output_tokens\":2}}\n\n\
data: {\"type\":\"message_stop\"}\n\n";
    let o = decode_every_way("anthropic", anthropic, "anthropic unnamed");
    let c = &o.completion.choices[0];
    assert_eq!(
        (c.message.content.as_deref(), c.finish_reason.as_deref()),
        (Some("yo"), Some("stop"))
    );
    assert_eq!(o.completion.usage.as_ref().map(|u| u.total_tokens), Some(5));

    let cohere = b"data: {\"type\":\"message-start\",\"id\":\"x\"}\n\n\
data: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"hey\"}}}}\n\n\
data: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"STOP_SEQUENCE\"}}\n\n";
    let o = decode_every_way("cohere", cohere, "cohere unnamed");
    let c = &o.completion.choices[0];
    assert_eq!(
        (c.message.content.as_deref(), c.finish_reason.as_deref()),
        (Some("hey"), Some("stop"))
    );
    assert_eq!(c.native_finish_reason.as_deref(), Some("STOP_SEQUENCE"));
}

#[test]
fn invalid_json_is_a_typed_error() {
    for (dialect, body) in [
        (
            "anthropic",
            &b"event: content_block_delta\ndata: {\"type\":\n\n"[..],
        ),
        ("gemini", b"data: {not json}\n\n"),
        ("cohere", b"event: content-delta\ndata: [1,\n\n"),
        ("ollama", b"{\"done\":\n"),
    ] {
        let o = decode(dialect, &[body]);
        assert!(
            matches!(o.error, Some(Error::InvalidJson { dialect: d, .. }) if d == dialect),
            "{dialect}: {:?}",
            o.error
        );
    }
}

#[test]
fn invalid_utf8_is_a_typed_error_that_says_where() {
    // Long enough that the vectorised check, not only its scalar tail, meets the bad byte; and
    // once in the tail. The chunk before the bad one is kept.
    let good = b"data: {\"id\":\"a\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\n";
    for pad in [0usize, 200] {
        let mut bad = format!(
            "data: {{\"pad\":\"{}\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"",
            "x".repeat(pad)
        )
        .into_bytes();
        let at = bad.len() - "data: ".len();
        bad.extend_from_slice(b"\xff\"}}]}\n\n");
        let o = decode("openai_chat", &[good, &bad]);
        assert_eq!(o.chunks.len(), 1, "pad {pad}");
        match &o.error {
            Some(Error::InvalidJson {
                dialect: "openai_chat",
                message,
                ..
            }) => {
                assert!(
                    message.contains(&format!("index {at}")),
                    "pad {pad}: {message}"
                )
            }
            other => panic!("pad {pad}: {other:?}"),
        }
    }
}
#[test]
fn every_dialect_name_builds_a_decoder() {
    for name in polystream_core::dialect::NAMES {
        assert_eq!(ChunkDecoder::new(name).unwrap().dialect_name(), *name);
    }
}

#[test]
fn lenient_shapes_from_relays() {
    // `"delta": null` on a finish chunk.
    let body = b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n\
data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":null,\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    let o = decode("openai_chat", &[body]);
    assert_eq!(o.error, None);
    assert_eq!(
        o.completion.choices[0].finish_reason.as_deref(),
        Some("stop")
    );

    // A tool_use block whose whole input came up front (no input deltas).
    let body = b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"f\",\"input\":{\"a\": 1}}}\n\n\
event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":5}}\n\n";
    let o = decode("anthropic", &[body]);
    assert_eq!(
        o.error, None,
        "a stop reason proves the answer whole without message_stop"
    );
    let calls = o.completion.choices[0].message.tool_calls.clone().unwrap();
    assert_eq!(
        (calls[0].id.as_str(), calls[0].function.arguments.as_str()),
        ("t1", "{\"a\":1}")
    );
}
