//! Token logprobs: chat `logprobs.content` → the `.delta` events (the chunk's tokens), the
//! `.done` event and the `output_text` part (all of them), only when the request's `include`
//! asks for them, as OpenAI does.

use serde_json::{json, Value};

use crate::support::*;

fn events_of_type<'a>(j: &'a [Value], ty: &str) -> Vec<&'a Value> {
    j.iter().filter(|e| e["type"] == ty).collect()
}

#[test]
fn logprobs_reach_deltas_done_event_and_part_when_included() {
    let mut b = logprobs_builder();
    let ev = run(
        &mut b,
        &[
            text_logprobs("Hello", &[token("Hel", -0.5), token("lo", -0.25)]),
            text_logprobs("!", &[token("!", -1.0)]),
            finish("stop"),
        ],
    );
    let snap = check(&b, &ev);
    let j = to_json(&ev);
    let deltas = events_of_type(&j, "response.output_text.delta");
    // Each delta: its own tokens, without bytes (`ResponseTextDeltaEvent.Logprob`).
    assert_eq!(
        deltas[0]["logprobs"],
        json!([
            {"token": "Hel", "logprob": -0.5,
             "top_logprobs": [{"token": "Hel", "logprob": -0.5}, {"token": "~", "logprob": -2.5}]},
            {"token": "lo", "logprob": -0.25,
             "top_logprobs": [{"token": "lo", "logprob": -0.25}, {"token": "~", "logprob": -2.25}]},
        ])
    );
    assert_eq!(
        deltas[1]["logprobs"],
        without_bytes(&json!([token("!", -1.0)]))
    );
    // The part: every token, with bytes (`ResponseOutputText.Logprob`); the done event: the
    // same tokens in the events' shape (`ResponseTextDoneEvent.Logprob`, no bytes).
    let all = json!([
        {"token": "Hel", "bytes": [72, 101, 108], "logprob": -0.5,
         "top_logprobs": [{"token": "Hel", "bytes": [72, 101, 108], "logprob": -0.5},
                          {"token": "~", "bytes": [126], "logprob": -2.5}]},
        {"token": "lo", "bytes": [108, 111], "logprob": -0.25,
         "top_logprobs": [{"token": "lo", "bytes": [108, 111], "logprob": -0.25},
                          {"token": "~", "bytes": [126], "logprob": -2.25}]},
        {"token": "!", "bytes": [33], "logprob": -1.0,
         "top_logprobs": [{"token": "!", "bytes": [33], "logprob": -1.0},
                          {"token": "~", "bytes": [126], "logprob": -3.0}]},
    ]);
    assert_eq!(
        events_of_type(&j, "response.output_text.done")[0]["logprobs"],
        without_bytes(&all)
    );
    assert_eq!(
        events_of_type(&j, "response.content_part.done")[0]["part"]["logprobs"],
        all
    );
    assert_eq!(snap["output"][0]["content"][0]["logprobs"], all);
    // The part is announced empty, as the text is.
    let added = events_of_type(&j, "response.content_part.added")[0];
    assert_eq!(added["part"]["logprobs"], json!([]));
}

#[test]
fn without_include_the_output_is_byte_for_byte_what_it_was() {
    let plain = [text("Hello"), text("!"), finish("stop")];
    let with_logprobs = [
        text_logprobs("Hello", &[token("Hello", -0.5)]),
        text_logprobs("!", &[token("!", -1.0)]),
        finish("stop"),
    ];
    // No request, or `top_logprobs` without the `include`: logprobs a provider sends are
    // dropped (OpenAI returns none then).
    let top_only = json!({"top_logprobs": 2, "include": ["reasoning.encrypted_content"]});
    for base in [builder(), builder().with_request(&top_only)] {
        let (mut a, mut b) = (base.clone(), base);
        let (ev_a, ev_b) = (run(&mut a, &plain), run(&mut b, &with_logprobs));
        check(&b, &ev_b);
        assert_eq!(
            serde_json::to_string(&ev_b).unwrap(),
            serde_json::to_string(&ev_a).unwrap()
        );
        assert_eq!(
            serde_json::to_string(&b.snapshot()).unwrap(),
            serde_json::to_string(&a.snapshot()).unwrap()
        );
    }
    // Asked for, but the provider sent none: `[]` everywhere, as before.
    let mut b = logprobs_builder();
    let ev = run(&mut b, &plain);
    check(&b, &ev);
    let got = serde_json::to_string(&ev).unwrap();
    assert!(!got.contains("\"token\"") && got.contains("\"logprobs\":[]"));
}

#[test]
fn tokens_without_text_of_their_own_are_kept() {
    // A token that is part of a UTF-8 character may come with empty content: it rides the delta
    // of the text it is part of.
    let mut b = logprobs_builder();
    let ev = run(
        &mut b,
        &[
            text_logprobs("", &[token("\\xe2", -0.1)]),
            text_logprobs("€", &[token("\\x82\\xac", -0.2)]),
            finish("stop"),
        ],
    );
    let snap = check(&b, &ev);
    let j = to_json(&ev);
    let deltas = events_of_type(&j, "response.output_text.delta");
    assert_eq!(deltas.len(), 1);
    assert_eq!(deltas[0]["delta"], "€");
    let tokens: Vec<_> = deltas[0]["logprobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["token"])
        .collect();
    assert_eq!(tokens, ["\\xe2", "\\x82\\xac"]);
    assert_eq!(
        snap["output"][0]["content"][0]["logprobs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(b.output_text(), "€");
}

#[test]
fn a_character_cut_off_at_the_end_keeps_its_token() {
    let mut b = logprobs_builder();
    let ev = run(
        &mut b,
        &[
            text_logprobs("Hi", &[token("Hi", -0.1)]),
            text_logprobs("", &[token("\\xe2", -0.2)]),
            finish("length"),
        ],
    );
    let snap = check(&b, &ev);
    let j = to_json(&ev);
    let deltas = events_of_type(&j, "response.output_text.delta");
    assert_eq!((deltas.len(), &deltas[1]["delta"]), (2, &json!("")));
    assert_eq!(deltas[1]["logprobs"][0]["token"], "\\xe2");
    assert_eq!(
        snap["output"][0]["content"][0]["logprobs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn tokens_of_reasoning_or_a_tool_call_open_no_message() {
    // Ollama sends logprobs on lines whose text its parser holds back (a tool call being read),
    // and on thinking lines: the Responses API has no logprobs for either.
    let tool_tokens = text_logprobs("", &[token("{\"", -0.1)]);
    let mut thinking = text_logprobs("", &[token("hm", -0.1)]);
    thinking.choices[0].delta.reasoning_content = Some("hm".into());
    let mut b = logprobs_builder();
    let ev = run(
        &mut b,
        &[
            thinking,
            tool_tokens,
            tool(0, Some("c1"), Some("f"), "{}"),
            finish("tool_calls"),
        ],
    );
    let snap = check(&b, &ev);
    let kinds: Vec<_> = snap["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["type"].clone())
        .collect();
    assert_eq!(kinds, [json!("reasoning"), json!("function_call")]);
    assert!(events_of_type(&to_json(&ev), "response.output_text.delta").is_empty());

    // After text: the message keeps its own tokens only.
    let mut b = logprobs_builder();
    let ev = run(
        &mut b,
        &[
            text_logprobs("Ok", &[token("Ok", -0.1)]),
            text_logprobs("", &[token("{\"", -0.2)]),
            tool(0, Some("c1"), Some("f"), "{}"),
            finish("tool_calls"),
        ],
    );
    let snap = check(&b, &ev);
    let tokens = snap["output"][0]["content"][0]["logprobs"]
        .as_array()
        .unwrap();
    assert_eq!((tokens.len(), &tokens[0]["token"]), (1, &json!("Ok")));
    assert_eq!(snap["output"][1]["type"], "function_call");
}

#[test]
fn each_text_part_has_its_own_tokens_and_refusal_logprobs_are_ignored() {
    let refusal_with_logprobs: polystream_core::ChatChunk = serde_json::from_value(json!({
        "choices": [{"index": 0, "delta": {"refusal": "No."},
                     "logprobs": {"content": null, "refusal": [token("No", -0.3)]}}]}))
    .unwrap();
    let mut b = logprobs_builder();
    let ev = run(
        &mut b,
        &[
            text_logprobs("A", &[token("A", -0.1)]),
            refusal_with_logprobs,
            text_logprobs("B", &[token("B", -0.2)]),
            finish("stop"),
        ],
    );
    let snap = check(&b, &ev);
    let content = &snap["output"][0]["content"];
    assert_eq!(content[0]["logprobs"][0]["token"], "A");
    assert_eq!(content[0]["logprobs"].as_array().unwrap().len(), 1);
    assert_eq!(content[1], json!({"type": "refusal", "refusal": "No."}));
    assert_eq!(content[2]["logprobs"][0]["token"], "B");
    assert_eq!(content[2]["logprobs"].as_array().unwrap().len(), 1);
}

#[test]
fn snapshot_mid_stream_has_the_tokens_so_far() {
    let mut b = logprobs_builder();
    let mut out = Vec::new();
    b.on_chunk(&text_logprobs("Hi", &[token("Hi", -0.5)]), &mut out);
    let v = serde_json::to_value(b.snapshot()).unwrap();
    assert_eq!(v["output"][0]["status"], "in_progress");
    assert_eq!(
        v["output"][0]["content"][0]["logprobs"],
        json!([token("Hi", -0.5)])
    );
    // Before the done event, what a client has is the deltas' shape (no `bytes`).
    assert_eq!(
        without_bytes(&json!(replay(&out))),
        without_bytes(&v["output"])
    );
}
