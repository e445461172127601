//! polystream's C ABI: a small, hand-written surface over `polystream-core` for Ruby's Fiddle and
//! other FFI hosts. The header `include/polystream.h` is generated from this crate by cbindgen
//! and committed; `tests/header.rs` fails when it is stale.
//!
//! # Conventions
//! - **Handles** are opaque pointers (`PolystreamSseDecoder`, `PolystreamChunkDecoder`,
//!   `PolystreamAccumulator`), created by `*_new*` and released by the matching `*_free`
//!   (NULL-safe). A handle is not thread-safe; different handles may be used on different threads.
//!   A handle of the wrong type is refused with `POLYSTREAM_ERR_INVALID_ARGUMENT`.
//! - **Return codes**: `POLYSTREAM_OK` (0) or a negative `POLYSTREAM_ERR_*`; queries return their
//!   non-negative answer or a negative code.
//! - **Strings out** are owned, NUL-terminated UTF-8 (JSON for structured data), handed out through
//!   a `char **` out-parameter and released with `polystream_string_free`. The one byte buffer
//!   (`polystream_sse_decoder_feed_packed`) comes with its length and goes to `polystream_bytes_free`.
//! - **Partial results survive errors**: a `*_feed` that fails still hands out the events or chunks
//!   completed before the error, and a chunk decoder made with `POLYSTREAM_ACCUMULATE` keeps its
//!   snapshot. After a decode error a decoder is poisoned.
//! - **Errors**: each call clears, and on failure sets, a thread-local last error:
//!   `polystream_last_error_code/kind/message/detail` (the `*_free` functions leave it alone, so a
//!   caller can free a failed call's out-string before reading its error).
//! - **Panics never cross the boundary**: every body runs inside `catch_unwind`; a panic becomes
//!   `POLYSTREAM_ERR_PANIC` (kind `"panic"`) and the handle involved refuses further use.

use std::ffi::{c_char, CString};

pub mod accumulator;
pub mod chunk_decoder;
pub mod error;
mod handle;
pub mod sse;

pub use accumulator::*;
pub use chunk_decoder::*;
pub use error::*;
pub use sse::*;

use crate::error::{guard, guard_code, guard_free};
use crate::handle::{init_out, json_c_string, put_out};

/// Bumped on every incompatible change of this ABI; bindings check it when loading the library.
pub const POLYSTREAM_ABI_VERSION: u32 = 1;

/// The ABI version this library implements (`POLYSTREAM_ABI_VERSION` of its header).
#[no_mangle]
pub extern "C" fn polystream_abi_version() -> u32 {
    POLYSTREAM_ABI_VERSION
}

/// Release a string handed out by this library. NULL is a no-op. Leaves the last error alone.
///
/// # Safety
/// `s` must be NULL or a string from a `polystream_*` out-parameter, not freed before and not used
/// afterwards. (The `polystream_last_error_*` strings are borrowed and must not be passed here.)
#[no_mangle]
pub unsafe extern "C" fn polystream_string_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    guard_free(|| {
        // SAFETY: the caller promises `s` came from CString::into_raw in this library.
        drop(unsafe { CString::from_raw(s) });
        Ok(())
    });
}

/// Release a byte buffer handed out with its length (`polystream_sse_decoder_feed_packed`),
/// passing the same length back. NULL is a no-op. Leaves the last error alone.
///
/// # Safety
/// `(bytes, len)` must be NULL or a buffer and its length from this library, not freed before and
/// not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn polystream_bytes_free(bytes: *mut u8, len: usize) {
    if bytes.is_null() {
        return;
    }
    guard_free(|| {
        // SAFETY: forwarded to the caller.
        unsafe { handle::bytes_free(bytes, len) };
        Ok(())
    });
}

/// The names `polystream_chunk_decoder_new` accepts, as an owned JSON array of strings in
/// `*out_names`. Free with `polystream_string_free`.
///
/// # Safety
/// `out_names` points to writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn polystream_dialect_names(out_names: *mut *mut c_char) -> i32 {
    guard_code(|| {
        // SAFETY: forwarded to the caller.
        unsafe { init_out(out_names)? };
        let json =
            serde_json::to_vec(polystream_core::dialect::NAMES).unwrap_or_else(|_| b"[]".to_vec());
        // SAFETY: checked by init_out.
        unsafe { put_out(out_names, json_c_string(json)) };
        Ok(())
    })
}

/// Test hook: panics inside the library on purpose, so a binding can prove that a panic comes back
/// as `POLYSTREAM_ERR_PANIC` (kind `"panic"`) and the host process lives. Always returns
/// `POLYSTREAM_ERR_PANIC`.
#[no_mangle]
pub extern "C" fn polystream_debug_panic() -> i32 {
    guard(
        |code| code,
        || -> Result<i32, error::FfiError> { panic!("polystream_debug_panic called") },
    )
}
