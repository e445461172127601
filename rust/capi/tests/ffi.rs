//! The C ABI exercised as a C caller would: raw pointers, out-parameters, owned strings, the
//! thread-local last error.

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use polystream::*;
use serde_json::{json, Value};

/// Take ownership of an out-string: copy it, free it, parse it.
fn take_json(s: *mut c_char) -> Value {
    assert!(!s.is_null(), "expected an out-string");
    let text = unsafe { CStr::from_ptr(s) }
        .to_str()
        .expect("UTF-8")
        .to_owned();
    unsafe { polystream_string_free(s) };
    serde_json::from_str(&text).expect("JSON")
}

fn last_kind() -> Option<String> {
    let p = polystream_last_error_kind();
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned())
}

fn last_message() -> String {
    let p = polystream_last_error_message();
    assert!(!p.is_null());
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
}

fn last_detail() -> Value {
    let p = polystream_last_error_detail();
    assert!(!p.is_null());
    serde_json::from_str(unsafe { CStr::from_ptr(p) }.to_str().unwrap()).unwrap()
}

fn sse_feed(d: *mut PolystreamSseDecoder, bytes: &[u8]) -> (i32, Value) {
    let mut out = ptr::null_mut();
    let rc = unsafe { polystream_sse_decoder_feed(d, bytes.as_ptr(), bytes.len(), &mut out) };
    (rc, take_json(out))
}

fn chunk_feed(d: *mut PolystreamChunkDecoder, bytes: &[u8]) -> (i32, Value) {
    let mut out = ptr::null_mut();
    let rc = unsafe { polystream_chunk_decoder_feed(d, bytes.as_ptr(), bytes.len(), &mut out) };
    (rc, take_json(out))
}

fn chunk_snapshot(d: *mut PolystreamChunkDecoder) -> Value {
    let mut out = ptr::null_mut();
    assert_eq!(
        unsafe { polystream_chunk_decoder_snapshot(d, &mut out) },
        POLYSTREAM_OK
    );
    take_json(out)
}

fn openai_chunk(content: &str) -> String {
    json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",
           "choices":[{"index":0,"delta":{"content":content},"finish_reason":null}]})
    .to_string()
}

fn openai_stream(pieces: &[&str], done: bool) -> String {
    let mut s: String = pieces
        .iter()
        .map(|p| format!("data: {}\n\n", openai_chunk(p)))
        .collect();
    if done {
        s.push_str("data: [DONE]\n\n");
    }
    s
}

#[test]
fn abi_version_matches_the_header_constant() {
    assert_eq!(polystream_abi_version(), POLYSTREAM_ABI_VERSION);
}

#[test]
fn sse_events_come_back_as_one_json_array_across_splits() {
    let d = polystream_sse_decoder_new(0);
    assert!(!d.is_null());
    let (rc, ev) = sse_feed(d, b"retry: 1500\nid: 7\nevent: upd");
    assert_eq!((rc, ev), (POLYSTREAM_OK, json!([])));
    let (rc, ev) = sse_feed(
        d,
        b"ate\ndata: a\ndata: \xff\n\ndata: second\n\n: comment\n",
    );
    assert_eq!(rc, POLYSTREAM_OK);
    assert_eq!(
        ev,
        json!([
            {"event":"update","data":"a\n\u{FFFD}","id":"7","retry":1500},
            {"event":"message","data":"second","id":"7","retry":null}
        ])
    );
    assert_eq!(last_kind(), None, "a successful call leaves no last error");

    let mut id = ptr::null_mut();
    assert_eq!(
        unsafe { polystream_sse_decoder_last_event_id(d, &mut id) },
        POLYSTREAM_OK
    );
    assert_eq!(unsafe { CStr::from_ptr(id) }.to_str().unwrap(), "7");
    unsafe { polystream_string_free(id) };
    let mut ms = 0u64;
    assert_eq!(
        unsafe { polystream_sse_decoder_reconnection_time(d, &mut ms) },
        1
    );
    assert_eq!(ms, 1500);

    // finish discards the unterminated block; the decoder goes on as for a reconnect.
    let (_, ev) = sse_feed(d, b"data: never dispatched\n");
    assert_eq!(ev, json!([]));
    assert_eq!(unsafe { polystream_sse_decoder_finish(d) }, POLYSTREAM_OK);
    let (_, ev) = sse_feed(d, b"data: after\n\n");
    assert_eq!(ev[0]["data"], "after");
    unsafe { polystream_sse_decoder_free(d) };
}

fn sse_feed_packed(d: *mut PolystreamSseDecoder, bytes: &[u8]) -> (i32, Vec<u8>) {
    let mut out = ptr::null_mut();
    let mut len = usize::MAX;
    let rc = unsafe {
        polystream_sse_decoder_feed_packed(d, bytes.as_ptr(), bytes.len(), &mut out, &mut len)
    };
    if out.is_null() {
        assert_eq!(len, 0);
        return (rc, Vec::new());
    }
    let v = unsafe { std::slice::from_raw_parts(out, len) }.to_vec();
    unsafe { polystream_bytes_free(out, len) };
    (rc, v)
}

#[test]
fn packed_events_are_cr_separated_fields_matching_the_json_form() {
    let input: &[u8] = b"retry: 9\nid: a\nevent: e\ndata: x\ndata: \0\xff\n\ndata: y\n\n";
    let d = polystream_sse_decoder_new(0);
    let (rc, packed) = sse_feed_packed(d, input);
    assert_eq!(rc, POLYSTREAM_OK);
    assert_eq!(
        packed,
        "e\rx\n\0\u{FFFD}\ra\r9\rmessage\ry\ra\r\r".as_bytes()
    );
    let (rc, packed) = sse_feed_packed(d, b"data: incomplete");
    assert_eq!((rc, packed), (POLYSTREAM_OK, Vec::new()));
    unsafe { polystream_sse_decoder_free(d) };

    let d = polystream_sse_decoder_new(8);
    let (rc, packed) = sse_feed_packed(d, b"data: 1\n\ndata: far too long\n\n");
    assert_eq!(rc, POLYSTREAM_ERR_EVENT_TOO_LARGE);
    assert_eq!(packed, b"message\r1\r\r\r");
    let mut out = ptr::null_mut();
    assert_eq!(
        unsafe { polystream_sse_decoder_feed_packed(d, ptr::null(), 0, &mut out, ptr::null_mut()) },
        POLYSTREAM_ERR_NULL_POINTER
    );
    unsafe { polystream_sse_decoder_free(d) };
    unsafe { polystream_bytes_free(ptr::null_mut(), 0) };
}

#[test]
fn reconnection_time_is_zero_when_never_set() {
    let d = polystream_sse_decoder_new(0);
    let mut ms = 42u64;
    assert_eq!(
        unsafe { polystream_sse_decoder_reconnection_time(d, &mut ms) },
        0
    );
    assert_eq!(ms, 42);
    assert_eq!(
        unsafe { polystream_sse_decoder_reconnection_time(d, ptr::null_mut()) },
        POLYSTREAM_ERR_NULL_POINTER
    );
    unsafe { polystream_sse_decoder_free(d) };
}

#[test]
fn sse_events_before_an_error_are_returned_with_it_and_the_decoder_is_poisoned() {
    let d = polystream_sse_decoder_new(16);
    let (rc, ev) = sse_feed(d, b"data: ok\n\ndata: this line is far too long\n\n");
    assert_eq!(rc, POLYSTREAM_ERR_EVENT_TOO_LARGE);
    assert_eq!(
        ev,
        json!([{"event":"message","data":"ok","id":"","retry":null}])
    );
    assert_eq!(last_kind().as_deref(), Some("event_too_large"));
    assert_eq!(last_detail(), json!({"limit": 16}));
    assert!(last_message().contains("16 bytes"));
    let (rc, ev) = sse_feed(d, b"data: x\n\n");
    assert_eq!((rc, ev), (POLYSTREAM_ERR_POISONED, json!([])));
    assert_eq!(last_kind().as_deref(), Some("poisoned"));
    unsafe { polystream_sse_decoder_free(d) };
}

#[test]
fn null_pointers_are_errors_not_crashes() {
    let mut out = ptr::null_mut();
    let rc = unsafe { polystream_sse_decoder_feed(ptr::null_mut(), b"x".as_ptr(), 1, &mut out) };
    assert_eq!(rc, POLYSTREAM_ERR_NULL_POINTER);
    assert_eq!(last_kind().as_deref(), Some("null_pointer"));
    assert!(out.is_null());

    let d = polystream_sse_decoder_new(0);
    assert_eq!(
        unsafe { polystream_sse_decoder_feed(d, b"x".as_ptr(), 1, ptr::null_mut()) },
        POLYSTREAM_ERR_NULL_POINTER
    );
    assert_eq!(
        unsafe { polystream_sse_decoder_feed(d, ptr::null(), 5, &mut out) },
        POLYSTREAM_ERR_NULL_POINTER
    );
    assert!(out.is_null());
    // NULL data with length 0 is an empty feed.
    assert_eq!(
        unsafe { polystream_sse_decoder_feed(d, ptr::null(), 0, &mut out) },
        POLYSTREAM_OK
    );
    assert_eq!(take_json(out), json!([]));
    unsafe { polystream_sse_decoder_free(d) };

    assert_eq!(
        unsafe { polystream_chunk_decoder_is_done(ptr::null_mut()) },
        POLYSTREAM_ERR_NULL_POINTER
    );
    assert_eq!(
        unsafe { polystream_accumulator_add(ptr::null_mut(), b"{}".as_ptr(), 2) },
        POLYSTREAM_ERR_NULL_POINTER
    );
    assert_eq!(
        unsafe { polystream_accumulator_chunk_count(ptr::null_mut()) },
        i64::from(POLYSTREAM_ERR_NULL_POINTER)
    );
    assert_eq!(
        unsafe { polystream_dialect_names(ptr::null_mut()) },
        POLYSTREAM_ERR_NULL_POINTER
    );
    assert!(unsafe { polystream_chunk_decoder_new(ptr::null()) }.is_null());
    assert_eq!(last_kind().as_deref(), Some("null_pointer"));
    // Every free is NULL-safe.
    unsafe {
        polystream_sse_decoder_free(ptr::null_mut());
        polystream_chunk_decoder_free(ptr::null_mut());
        polystream_accumulator_free(ptr::null_mut());
        polystream_string_free(ptr::null_mut());
    }
}

#[test]
fn a_handle_of_the_wrong_type_is_refused() {
    let d = polystream_sse_decoder_new(0);
    let rc = unsafe { polystream_accumulator_add(d.cast(), b"{}".as_ptr(), 2) };
    assert_eq!(rc, POLYSTREAM_ERR_INVALID_ARGUMENT);
    assert!(last_message().contains("PolystreamAccumulator"));
    // Freeing it through the wrong function leaves it alone; it still works.
    unsafe { polystream_chunk_decoder_free(d.cast()) };
    assert_eq!(last_kind().as_deref(), Some("invalid_argument"));
    assert_eq!(
        sse_feed(d, b"data: still alive\n\n").1[0]["data"],
        "still alive"
    );
    unsafe { polystream_sse_decoder_free(d) };
}

#[test]
fn unknown_and_non_utf8_dialect_names_give_null_and_a_reason() {
    let name = CString::new("no_such_dialect").unwrap();
    assert!(unsafe { polystream_chunk_decoder_new(name.as_ptr()) }.is_null());
    assert_eq!(polystream_last_error_code(), POLYSTREAM_ERR_UNKNOWN_DIALECT);
    assert_eq!(last_kind().as_deref(), Some("unknown_dialect"));
    assert_eq!(last_detail(), json!({"name": "no_such_dialect"}));

    let bad = CString::new(vec![b'o', 0xff, b'x']).unwrap();
    assert!(unsafe { polystream_chunk_decoder_new(bad.as_ptr()) }.is_null());
    assert_eq!(last_kind().as_deref(), Some("invalid_argument"));

    let ok = CString::new("openai_chat").unwrap();
    assert!(unsafe { polystream_chunk_decoder_new_with_options(ok.as_ptr(), 0, 0x80) }.is_null());
    assert_eq!(last_kind().as_deref(), Some("invalid_argument"));
}

#[test]
fn every_listed_dialect_can_be_created() {
    let mut out = ptr::null_mut();
    assert_eq!(unsafe { polystream_dialect_names(&mut out) }, POLYSTREAM_OK);
    let names = take_json(out);
    let names = names.as_array().unwrap();
    assert!(names.contains(&json!("openai_chat")));
    for n in names {
        let c = CString::new(n.as_str().unwrap()).unwrap();
        let d = unsafe { polystream_chunk_decoder_new(c.as_ptr()) };
        assert!(!d.is_null(), "dialect {n} listed but not creatable");
        unsafe { polystream_chunk_decoder_free(d) };
    }
}

#[test]
fn chunk_decoder_decodes_accumulates_and_finishes() {
    let name = CString::new("openai_chat").unwrap();
    let d = unsafe {
        polystream_chunk_decoder_new_with_options(name.as_ptr(), 0, POLYSTREAM_ACCUMULATE)
    };
    assert!(!d.is_null());
    let stream = openai_stream(&["Hel", "lo", "!"], true);
    let mut chunks = Vec::new();
    for piece in stream.as_bytes().chunks(7) {
        let (rc, got) = chunk_feed(d, piece);
        assert_eq!(rc, POLYSTREAM_OK);
        chunks.extend(got.as_array().unwrap().iter().cloned());
    }
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "lo");
    assert_eq!(unsafe { polystream_chunk_decoder_is_done(d) }, 1);
    let mut out = ptr::null_mut();
    assert_eq!(
        unsafe { polystream_chunk_decoder_finish(d, &mut out) },
        POLYSTREAM_OK
    );
    assert_eq!(take_json(out), json!([]));
    let snap = chunk_snapshot(d);
    assert_eq!(snap["object"], "chat.completion");
    assert_eq!(snap["choices"][0]["message"]["content"], "Hello!");
    unsafe { polystream_chunk_decoder_free(d) };
}

#[test]
fn chunks_before_a_provider_error_survive_in_the_output_and_the_snapshot() {
    let name = CString::new("openai").unwrap();
    let d = unsafe {
        polystream_chunk_decoder_new_with_options(name.as_ptr(), 0, POLYSTREAM_ACCUMULATE)
    };
    let mut stream = openai_stream(&["partial ", "answer"], false);
    stream.push_str("event: error\ndata: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"code\":\"529\"}}\n\n");
    let (rc, chunks) = chunk_feed(d, stream.as_bytes());
    assert_eq!(rc, POLYSTREAM_ERR_PROVIDER);
    assert_eq!(chunks.as_array().unwrap().len(), 2);
    assert_eq!(last_kind().as_deref(), Some("provider_error"));
    let detail = last_detail();
    assert_eq!(detail["message"], "overloaded");
    assert_eq!(detail["type"], "server_error");
    assert_eq!(detail["code"], "529");
    assert_eq!(
        chunk_snapshot(d)["choices"][0]["message"]["content"],
        "partial answer"
    );
    assert_eq!(chunk_feed(d, b"data: {}\n\n").0, POLYSTREAM_ERR_POISONED);
    unsafe { polystream_chunk_decoder_free(d) };
}

#[test]
fn a_truncated_stream_finishes_incomplete_with_the_partial_snapshot() {
    let name = CString::new("openai_chat").unwrap();
    let d = unsafe {
        polystream_chunk_decoder_new_with_options(name.as_ptr(), 0, POLYSTREAM_ACCUMULATE)
    };
    assert_eq!(
        chunk_feed(d, openai_stream(&["cut ", "off"], false).as_bytes()).0,
        POLYSTREAM_OK
    );
    assert_eq!(unsafe { polystream_chunk_decoder_is_done(d) }, 0);
    let mut out = ptr::null_mut();
    assert_eq!(
        unsafe { polystream_chunk_decoder_finish(d, &mut out) },
        POLYSTREAM_ERR_INCOMPLETE
    );
    assert_eq!(take_json(out), json!([]));
    assert_eq!(last_detail(), json!({"dialect": "openai_chat"}));
    assert_eq!(
        chunk_snapshot(d)["choices"][0]["message"]["content"],
        "cut off"
    );
    unsafe { polystream_chunk_decoder_free(d) };
}

#[test]
fn invalid_json_in_the_stream_is_typed() {
    let name = CString::new("openai_chat").unwrap();
    let d = unsafe { polystream_chunk_decoder_new(name.as_ptr()) };
    let (rc, chunks) = chunk_feed(d, b"data: {not json\n\n");
    assert_eq!((rc, chunks), (POLYSTREAM_ERR_INVALID_JSON, json!([])));
    assert_eq!(last_detail()["payload"], "{not json");
    let mut out = ptr::null_mut();
    assert_eq!(
        unsafe { polystream_chunk_decoder_snapshot(d, &mut out) },
        POLYSTREAM_ERR_INVALID_ARGUMENT
    );
    assert!(out.is_null());
    unsafe { polystream_chunk_decoder_free(d) };
}

#[test]
fn corrupt_binary_framing_is_typed_and_keeps_the_chunks_before_it() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/providers/bedrock/bedrock_text_multibyte.eventstream"
    );
    let mut body = std::fs::read(path).unwrap();
    *body.last_mut().unwrap() ^= 0x01; // the last message's CRC
    let name = CString::new("bedrock_converse").unwrap();
    let d = unsafe {
        polystream_chunk_decoder_new_with_options(name.as_ptr(), 0, POLYSTREAM_ACCUMULATE)
    };
    let (rc, chunks) = chunk_feed(d, &body);
    assert_eq!(rc, POLYSTREAM_ERR_INVALID_FRAME);
    assert_eq!(last_kind().as_deref(), Some("invalid_frame"));
    assert_eq!(last_detail()["framing"], "eventstream");
    assert!(last_message().contains("message CRC"), "{}", last_message());
    // Role, four text deltas, the finish: everything before the corrupt `metadata` message.
    assert_eq!(chunks.as_array().unwrap().len(), 6);
    assert_eq!(
        chunk_snapshot(d)["choices"][0]["message"]["content"],
        "東京は日本の首都です。 🗼 Café crème brûlée 🍮!"
    );
    unsafe { polystream_chunk_decoder_free(d) };
}

#[test]
fn accumulator_takes_one_chunk_or_an_array_all_or_nothing() {
    let a = polystream_accumulator_new();
    let one = openai_chunk("Hi");
    assert_eq!(
        unsafe { polystream_accumulator_add(a, one.as_ptr(), one.len()) },
        POLYSTREAM_OK
    );
    let many = format!("  [{}, {}]", openai_chunk(" there"), openai_chunk("!"));
    assert_eq!(
        unsafe { polystream_accumulator_add(a, many.as_ptr(), many.len()) },
        POLYSTREAM_OK
    );
    let bad = format!("[{}, {{\"choices\": 5}}]", openai_chunk(" lost"));
    assert_eq!(
        unsafe { polystream_accumulator_add(a, bad.as_ptr(), bad.len()) },
        POLYSTREAM_ERR_INVALID_JSON
    );
    assert_eq!(last_kind().as_deref(), Some("invalid_json"));
    assert_eq!(unsafe { polystream_accumulator_chunk_count(a) }, 3);
    let mut out = ptr::null_mut();
    assert_eq!(
        unsafe { polystream_accumulator_snapshot(a, &mut out) },
        POLYSTREAM_OK
    );
    let snap = take_json(out);
    assert_eq!(snap["choices"][0]["message"]["content"], "Hi there!");
    assert_eq!(snap["id"], "c1");
    unsafe { polystream_accumulator_free(a) };
}

#[test]
fn a_panic_becomes_an_error_code_and_the_library_stays_usable() {
    assert_eq!(polystream_debug_panic(), POLYSTREAM_ERR_PANIC);
    assert_eq!(last_kind().as_deref(), Some("panic"));
    assert!(last_message().contains("polystream_debug_panic called"));
    let d = polystream_sse_decoder_new(0);
    assert_eq!(sse_feed(d, b"data: fine\n\n").1[0]["data"], "fine");
    unsafe { polystream_sse_decoder_free(d) };
}

#[test]
fn the_last_error_is_per_thread() {
    assert_eq!(polystream_debug_panic(), POLYSTREAM_ERR_PANIC);
    let other = std::thread::spawn(|| (polystream_last_error_code(), last_kind()))
        .join()
        .unwrap();
    assert_eq!(other, (POLYSTREAM_OK, None));
    assert_eq!(last_kind().as_deref(), Some("panic"));
}
