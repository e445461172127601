//! `polystream_accumulator_*`: merge `chat.completion.chunk` JSON into the final `chat.completion`.

use std::ffi::c_char;

use polystream_core::{Accumulator, ChatChunk, Error as CoreError};

use crate::error::{guard, FfiError};
use crate::handle::{self, bytes, init_out, json_c_string, put_out, with_state, Tagged};

/// An accumulator handle. Create with `polystream_accumulator_new`, release with
/// `polystream_accumulator_free`. Not thread-safe.
pub struct PolystreamAccumulator {
    _opaque: [u8; 0],
}

impl Tagged for Accumulator {
    const MAGIC: u64 = 0x504f_4c59_4143_4301; // "POLYACC" + 1
    const NAME: &'static str = "PolystreamAccumulator";
}

/// A new, empty accumulator. NULL only on a caught panic.
#[no_mangle]
pub extern "C" fn polystream_accumulator_new() -> *mut PolystreamAccumulator {
    guard(
        |_| std::ptr::null_mut(),
        || Ok(handle::into_raw(Accumulator::new())),
    )
}

/// Release an accumulator. NULL is a no-op. Leaves the last error alone.
///
/// # Safety
/// `acc` must be NULL or a live handle from `polystream_accumulator_new`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn polystream_accumulator_free(acc: *mut PolystreamAccumulator) {
    // SAFETY: forwarded to the caller.
    unsafe { handle::free::<Accumulator, _>(acc) }
}

fn invalid_json(e: serde_json::Error, json: &[u8]) -> FfiError {
    let cut = json.len().min(512);
    FfiError::from(CoreError::InvalidJson {
        dialect: "chat_chunk",
        message: e.to_string(),
        payload: String::from_utf8_lossy(&json[..cut]).into_owned(),
    })
}

/// Add `len` bytes of UTF-8 JSON: one `chat.completion.chunk` object or an array of them. All or
/// nothing: if any of it does not parse, nothing is added and `POLYSTREAM_ERR_INVALID_JSON` is
/// returned.
///
/// # Safety
/// `acc` as for `_free`; `json` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn polystream_accumulator_add(
    acc: *mut PolystreamAccumulator,
    json: *const u8,
    len: usize,
) -> i32 {
    // SAFETY: pointer contracts forwarded to the caller.
    unsafe {
        with_state::<Accumulator, _, _>(
            acc,
            |c| c,
            |acc| {
                let text = bytes(json, len)?;
                let first = text.iter().find(|b| !b.is_ascii_whitespace());
                if first == Some(&b'[') {
                    let chunks: Vec<ChatChunk> =
                        serde_json::from_slice(text).map_err(|e| invalid_json(e, text))?;
                    chunks.iter().for_each(|c| acc.add(c));
                } else {
                    let chunk: ChatChunk =
                        serde_json::from_slice(text).map_err(|e| invalid_json(e, text))?;
                    acc.add(&chunk);
                }
                Ok(0)
            },
        )
    }
}

/// The completion so far as an owned `chat.completion` JSON object in `*out_completion`
/// (callable at any time). Free with `polystream_string_free`.
///
/// # Safety
/// `acc` as for `_free`; `out_completion` points to writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn polystream_accumulator_snapshot(
    acc: *mut PolystreamAccumulator,
    out_completion: *mut *mut c_char,
) -> i32 {
    // SAFETY: pointer contracts forwarded to the caller.
    unsafe {
        with_state::<Accumulator, _, _>(
            acc,
            |c| c,
            |acc| {
                init_out(out_completion)?;
                let json = serde_json::to_vec(&acc.snapshot())
                    .map_err(|e| FfiError::invalid(e.to_string()))?;
                put_out(out_completion, json_c_string(json));
                Ok(0)
            },
        )
    }
}

/// How many chunks have been added, or a negative error code.
///
/// # Safety
/// `acc` as for `_free`.
#[no_mangle]
pub unsafe extern "C" fn polystream_accumulator_chunk_count(
    acc: *mut PolystreamAccumulator,
) -> i64 {
    // SAFETY: forwarded to the caller.
    unsafe { with_state::<Accumulator, _, _>(acc, i64::from, |acc| Ok(acc.chunk_count() as i64)) }
}
