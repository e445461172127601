//! `polystream_sse_decoder_*`: WHATWG Server-Sent Events framing, events out as one JSON array.

use std::borrow::Cow;
use std::ffi::c_char;

use polystream_core::{SseDecoder, DEFAULT_MAX_EVENT_SIZE};
use serde::Serialize;

use crate::error::FfiError;
use crate::handle::{self, bytes, init_out, json_c_string, put_out, with_state, Tagged};

/// An SSE decoder handle. Create with `polystream_sse_decoder_new`, release with
/// `polystream_sse_decoder_free`. Not thread-safe: use one handle from one thread at a time.
pub struct PolystreamSseDecoder {
    _opaque: [u8; 0],
}

pub(crate) struct SseState {
    decoder: SseDecoder,
    /// The decoded form of the current last-event-id, refreshed only when its generation changes.
    id_generation: u64,
    id_text: String,
}

impl Tagged for SseState {
    const MAGIC: u64 = 0x504f_4c59_5353_4501; // "POLYSSE" + 1
    const NAME: &'static str = "PolystreamSseDecoder";
}

#[derive(Serialize)]
struct EventJson<'a> {
    event: Cow<'a, str>,
    data: Cow<'a, str>,
    id: &'a str,
    retry: Option<u64>,
}

/// A new SSE decoder. `max_event_size` bounds one event (its data plus the line being read), in
/// bytes; 0 means the default (16 MiB). Never NULL except on allocation failure or a caught panic.
#[no_mangle]
pub extern "C" fn polystream_sse_decoder_new(max_event_size: usize) -> *mut PolystreamSseDecoder {
    crate::error::guard(
        |_| std::ptr::null_mut(),
        || {
            let max = if max_event_size == 0 {
                DEFAULT_MAX_EVENT_SIZE
            } else {
                max_event_size
            };
            Ok(handle::into_raw(SseState {
                decoder: SseDecoder::with_max_event_size(max),
                id_generation: 0,
                id_text: String::new(),
            }))
        },
    )
}

/// Release a decoder. NULL is a no-op. Leaves the last error alone.
///
/// # Safety
/// `decoder` must be NULL or a live handle from `polystream_sse_decoder_new`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn polystream_sse_decoder_free(decoder: *mut PolystreamSseDecoder) {
    // SAFETY: forwarded to the caller.
    unsafe { handle::free::<SseState, _>(decoder) }
}

/// Decode `len` bytes at `data` (split anywhere). On return `*out_events` holds an owned JSON
/// array `[{"event":…,"data":…,"id":…,"retry":…}]` of the events this call completed — also when
/// the call fails with a decode error, in which case it holds the events completed before the
/// error. `event` is `"message"` for the default type, `id` the last-event-id at dispatch, `retry`
/// the block's valid `retry` (ms) or null; text is UTF-8 with invalid bytes as U+FFFD.
/// `*out_events` is NULL only when the arguments were unusable. Free it with `polystream_string_free`.
/// After a decode error the decoder is poisoned (`POLYSTREAM_ERR_POISONED` from then on).
///
/// # Safety
/// `decoder` as for `_free`; `data` points to `len` readable bytes (or is NULL with `len` 0);
/// `out_events` points to writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn polystream_sse_decoder_feed(
    decoder: *mut PolystreamSseDecoder,
    data: *const u8,
    len: usize,
    out_events: *mut *mut c_char,
) -> i32 {
    // SAFETY: pointer contracts forwarded to the caller.
    unsafe {
        with_state::<SseState, _, _>(
            decoder,
            |c| c,
            |st| {
                init_out(out_events)?;
                let input = bytes(data, len)?;
                let mut json = Vec::with_capacity(len + len / 4 + 2);
                json.push(b'[');
                let SseState {
                    decoder,
                    id_generation,
                    id_text,
                } = st;
                let r = decoder.feed(input, |ev| {
                    if ev.id_generation != *id_generation {
                        *id_generation = ev.id_generation;
                        *id_text = ev.id_str().into_owned();
                    }
                    if json.len() > 1 {
                        json.push(b',');
                    }
                    let e = EventJson {
                        event: ev.event_str(),
                        data: ev.data_str(),
                        id: id_text,
                        retry: ev.retry,
                    };
                    // Writing to a Vec cannot fail, and these fields always serialise.
                    let _ = serde_json::to_writer(&mut json, &e);
                    Ok(())
                });
                json.push(b']');
                put_out(out_events, json_c_string(json));
                r.map(|()| 0).map_err(FfiError::from)
            },
        )
    }
}

/// As `polystream_sse_decoder_feed`, but the events come out packed, for hosts where parsing
/// JSON costs more than the decoding: for each event four fields, each followed by one CR (0x0D):
/// the event type (`message` by default), the data, the id, and the retry in decimal ms (empty if
/// none). No field can contain CR (SSE splits lines on it), so splitting on CR is unambiguous; the
/// data may contain LF and NUL. `*out_bytes`/`*out_len` receive the buffer — NULL and 0 when no
/// event completed — to be released with `polystream_bytes_free`. Errors as for `_feed`, with the
/// events completed before the error in the buffer.
///
/// # Safety
/// As `polystream_sse_decoder_feed`; `out_bytes` and `out_len` point to writable storage.
#[no_mangle]
pub unsafe extern "C" fn polystream_sse_decoder_feed_packed(
    decoder: *mut PolystreamSseDecoder,
    data: *const u8,
    len: usize,
    out_bytes: *mut *mut u8,
    out_len: *mut usize,
) -> i32 {
    // SAFETY: pointer contracts forwarded to the caller.
    unsafe {
        with_state::<SseState, _, _>(
            decoder,
            |c| c,
            |st| {
                if out_bytes.is_null() || out_len.is_null() {
                    return Err(FfiError::null("out_bytes/out_len"));
                }
                out_bytes.write(std::ptr::null_mut());
                out_len.write(0);
                let input = bytes(data, len)?;
                let mut packed: Vec<u8> = Vec::new();
                let SseState { decoder, .. } = st;
                let r = decoder.feed(input, |ev| {
                    if packed.capacity() == 0 {
                        packed.reserve(len + 64);
                    }
                    packed.extend_from_slice(if ev.event.is_empty() {
                        b"message"
                    } else {
                        ev.event
                    });
                    packed.push(b'\r');
                    packed.extend_from_slice(ev.data);
                    packed.push(b'\r');
                    packed.extend_from_slice(ev.id);
                    packed.push(b'\r');
                    if let Some(ms) = ev.retry {
                        packed.extend_from_slice(ms.to_string().as_bytes());
                    }
                    packed.push(b'\r');
                    Ok(())
                });
                if !packed.is_empty() {
                    // Text is UTF-8, invalid bytes as U+FFFD, as in the JSON form (no copy when valid).
                    let packed = match String::from_utf8(packed) {
                        Ok(s) => s.into_bytes(),
                        Err(e) => String::from_utf8_lossy(e.as_bytes())
                            .into_owned()
                            .into_bytes(),
                    };
                    let (ptr, n) = handle::bytes_into_raw(packed);
                    out_bytes.write(ptr);
                    out_len.write(n);
                }
                r.map(|()| 0).map_err(FfiError::from)
            },
        )
    }
}

/// End of stream: an unfinished event is discarded (as the spec says); the last event ID and
/// reconnection time survive and the decoder is ready for a new stream (a reconnect).
///
/// # Safety
/// `decoder` as for `_free`.
#[no_mangle]
pub unsafe extern "C" fn polystream_sse_decoder_finish(decoder: *mut PolystreamSseDecoder) -> i32 {
    // SAFETY: forwarded to the caller.
    unsafe {
        with_state::<SseState, _, _>(decoder, |c| c, |st| Ok(st.decoder.finish().map(|()| 0)?))
    }
}

/// The last event ID (to send as `Last-Event-ID` on reconnect) as an owned UTF-8 string in
/// `*out_id` (empty if none). Free it with `polystream_string_free`.
///
/// # Safety
/// `decoder` as for `_free`; `out_id` points to writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn polystream_sse_decoder_last_event_id(
    decoder: *mut PolystreamSseDecoder,
    out_id: *mut *mut c_char,
) -> i32 {
    // SAFETY: forwarded to the caller.
    unsafe {
        with_state::<SseState, _, _>(
            decoder,
            |c| c,
            |st| {
                init_out(out_id)?;
                let id = String::from_utf8_lossy(st.decoder.last_event_id()).into_owned();
                // An id containing NUL is ignored by the decoder, so this cannot fail.
                put_out(out_id, crate::error::c_string_lossy(id));
                Ok(0)
            },
        )
    }
}

/// The reconnection time set by the last valid `retry` field: returns 1 and writes the
/// milliseconds to `*out_ms` if one was set, 0 if none was (leaving `*out_ms` alone), or a
/// negative error code.
///
/// # Safety
/// `decoder` as for `_free`; `out_ms` points to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn polystream_sse_decoder_reconnection_time(
    decoder: *mut PolystreamSseDecoder,
    out_ms: *mut u64,
) -> i32 {
    // SAFETY: forwarded to the caller.
    unsafe {
        with_state::<SseState, _, _>(
            decoder,
            |c| c,
            |st| {
                if out_ms.is_null() {
                    return Err(FfiError::null("out_ms"));
                }
                match st.decoder.reconnection_time() {
                    Some(ms) => {
                        // SAFETY: checked non-NULL; the caller promises it is writable.
                        out_ms.write(ms);
                        Ok(1)
                    }
                    None => Ok(0),
                }
            },
        )
    }
}
