//! `polystream_chunk_decoder_*`: bytes of a provider's stream in, normalised
//! `chat.completion.chunk` JSON out, for any dialect the core knows by name.

use std::ffi::c_char;

use polystream_core::{Accumulator, ChatChunk, ChunkDecoder, DEFAULT_MAX_EVENT_SIZE};

use crate::error::{guard, FfiError};
use crate::handle::{self, bytes, init_out, json_c_string, put_out, utf8, with_state, Tagged};

/// Flag for `polystream_chunk_decoder_new_with_options`: also accumulate every decoded chunk
/// inside the handle, so `polystream_chunk_decoder_snapshot` can return the completion so far —
/// including after an error, so a partial answer is never lost.
pub const POLYSTREAM_ACCUMULATE: u32 = 1;

/// A chunk decoder handle (framing + one provider dialect). Create with
/// `polystream_chunk_decoder_new*`, release with `polystream_chunk_decoder_free`. Not thread-safe.
pub struct PolystreamChunkDecoder {
    _opaque: [u8; 0],
}

pub(crate) struct ChunkState {
    decoder: ChunkDecoder,
    accumulator: Option<Accumulator>,
    /// Reused between calls so a feed allocates only its JSON.
    chunks: Vec<ChatChunk>,
}

impl Tagged for ChunkState {
    const MAGIC: u64 = 0x504f_4c59_4348_4b01; // "POLYCHK" + 1
    const NAME: &'static str = "PolystreamChunkDecoder";
}

impl ChunkState {
    /// Serialise (and accumulate) what `self.chunks` holds, whatever `result` says, and hand the
    /// JSON out: chunks completed before an error are never dropped.
    fn emit(
        &mut self,
        result: polystream_core::Result<()>,
        out: *mut *mut c_char,
    ) -> Result<i32, FfiError> {
        if let Some(acc) = &mut self.accumulator {
            for c in &self.chunks {
                acc.add(c);
            }
        }
        let json = serde_json::to_vec(&self.chunks).unwrap_or_else(|_| b"[]".to_vec());
        self.chunks.clear();
        // SAFETY: `out` was checked by `init_out` in the caller.
        unsafe { put_out(out, json_c_string(json)) };
        result.map(|()| 0).map_err(FfiError::from)
    }
}

/// A decoder for the named dialect (`"openai_chat"`, `"anthropic"`, `"gemini"`, …; see
/// `polystream_dialect_names`) with the default limits and no accumulation. NULL on failure, with
/// the reason in the last error (`unknown_dialect`, `invalid_argument` for non-UTF-8, `null_pointer`).
///
/// # Safety
/// `dialect` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn polystream_chunk_decoder_new(
    dialect: *const c_char,
) -> *mut PolystreamChunkDecoder {
    // SAFETY: forwarded to the caller.
    unsafe { polystream_chunk_decoder_new_with_options(dialect, 0, 0) }
}

/// As `polystream_chunk_decoder_new`, with `max_event_size` (bytes per SSE event or NDJSON line;
/// 0 = the default 16 MiB) and `flags` (`POLYSTREAM_ACCUMULATE` or 0; unknown bits are refused).
///
/// # Safety
/// `dialect` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn polystream_chunk_decoder_new_with_options(
    dialect: *const c_char,
    max_event_size: usize,
    flags: u32,
) -> *mut PolystreamChunkDecoder {
    guard(
        |_| std::ptr::null_mut(),
        || {
            // SAFETY: forwarded to the caller.
            let name = unsafe { utf8(dialect, "dialect")? };
            if flags & !POLYSTREAM_ACCUMULATE != 0 {
                return Err(FfiError::invalid(format!("unknown flag bits {flags:#x}")));
            }
            let max = if max_event_size == 0 {
                DEFAULT_MAX_EVENT_SIZE
            } else {
                max_event_size
            };
            let decoder = ChunkDecoder::with_max_event_size(name, max)?;
            let accumulator = (flags & POLYSTREAM_ACCUMULATE != 0).then(Accumulator::new);
            Ok(handle::into_raw(ChunkState {
                decoder,
                accumulator,
                chunks: Vec::new(),
            }))
        },
    )
}

/// Release a decoder. NULL is a no-op. Leaves the last error alone.
///
/// # Safety
/// `decoder` must be NULL or a live handle from `polystream_chunk_decoder_new*`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn polystream_chunk_decoder_free(decoder: *mut PolystreamChunkDecoder) {
    // SAFETY: forwarded to the caller.
    unsafe { handle::free::<ChunkState, _>(decoder) }
}

/// Decode `len` bytes at `data` (split anywhere). On return `*out_chunks` holds an owned JSON array
/// of the `chat.completion.chunk` objects this call completed — also when the call fails, in which
/// case it holds the chunks completed before the error (and, with `POLYSTREAM_ACCUMULATE`, they are
/// in the snapshot too). NULL only when the arguments were unusable. Free with
/// `polystream_string_free`. After a decode error the decoder is poisoned.
///
/// # Safety
/// `decoder` as for `_free`; `data` points to `len` readable bytes (or is NULL with `len` 0);
/// `out_chunks` points to writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn polystream_chunk_decoder_feed(
    decoder: *mut PolystreamChunkDecoder,
    data: *const u8,
    len: usize,
    out_chunks: *mut *mut c_char,
) -> i32 {
    // SAFETY: pointer contracts forwarded to the caller.
    unsafe {
        with_state::<ChunkState, _, _>(
            decoder,
            |c| c,
            |st| {
                init_out(out_chunks)?;
                let input = bytes(data, len)?;
                let r = st.decoder.feed(input, &mut st.chunks);
                st.emit(r, out_chunks)
            },
        )
    }
}

/// End of stream: `*out_chunks` gets any chunks held back (an owned JSON array, as `_feed`).
/// Fails with `POLYSTREAM_ERR_INCOMPLETE` if the provider's terminator never came — the chunks
/// and the snapshot are still there.
///
/// # Safety
/// `decoder` as for `_free`; `out_chunks` points to writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn polystream_chunk_decoder_finish(
    decoder: *mut PolystreamChunkDecoder,
    out_chunks: *mut *mut c_char,
) -> i32 {
    // SAFETY: pointer contracts forwarded to the caller.
    unsafe {
        with_state::<ChunkState, _, _>(
            decoder,
            |c| c,
            |st| {
                init_out(out_chunks)?;
                let r = st.decoder.finish(&mut st.chunks);
                st.emit(r, out_chunks)
            },
        )
    }
}

/// 1 if the provider's terminator (`[DONE]`, `message_stop`, …) has been seen, 0 if not, or a
/// negative error code.
///
/// # Safety
/// `decoder` as for `_free`.
#[no_mangle]
pub unsafe extern "C" fn polystream_chunk_decoder_is_done(
    decoder: *mut PolystreamChunkDecoder,
) -> i32 {
    // SAFETY: forwarded to the caller.
    unsafe {
        with_state::<ChunkState, _, _>(decoder, |c| c, |st| Ok(i32::from(st.decoder.is_done())))
    }
}

/// The `chat.completion` accumulated so far, as an owned JSON object in `*out_completion`. Needs
/// `POLYSTREAM_ACCUMULATE` (else `POLYSTREAM_ERR_INVALID_ARGUMENT`). Works after errors too.
///
/// # Safety
/// `decoder` as for `_free`; `out_completion` points to writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn polystream_chunk_decoder_snapshot(
    decoder: *mut PolystreamChunkDecoder,
    out_completion: *mut *mut c_char,
) -> i32 {
    // SAFETY: pointer contracts forwarded to the caller.
    unsafe {
        with_state::<ChunkState, _, _>(
            decoder,
            |c| c,
            |st| {
                init_out(out_completion)?;
                let acc = st.accumulator.as_ref().ok_or_else(|| {
                    FfiError::invalid(
                        "this decoder does not accumulate (create it with POLYSTREAM_ACCUMULATE)",
                    )
                })?;
                let json = serde_json::to_vec(&acc.snapshot())
                    .map_err(|e| FfiError::invalid(e.to_string()))?;
                put_out(out_completion, json_c_string(json));
                Ok(0)
            },
        )
    }
}
