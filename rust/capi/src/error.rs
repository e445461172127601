//! Return codes, the thread-local last error, and the guard every exported body runs inside.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use polystream_core::Error as CoreError;
use serde_json::{json, Value};

/// Success.
pub const POLYSTREAM_OK: i32 = 0;
/// A required pointer argument (handle, out-parameter, or data with a non-zero length) was NULL.
/// Kind `"null_pointer"`.
pub const POLYSTREAM_ERR_NULL_POINTER: i32 = -1;
/// An argument was unusable: invalid UTF-8, a handle of the wrong type, an option not enabled.
/// Kind `"invalid_argument"`.
pub const POLYSTREAM_ERR_INVALID_ARGUMENT: i32 = -2;
/// Rust panicked inside the call; the panic was caught at the boundary. The handle used in the
/// call (if any) answers every later call with `POLYSTREAM_ERR_POISONED`. Kind `"panic"`.
pub const POLYSTREAM_ERR_PANIC: i32 = -3;
/// One SSE event or NDJSON line grew past the handle's maximum event size. Kind `"event_too_large"`.
pub const POLYSTREAM_ERR_EVENT_TOO_LARGE: i32 = -10;
/// A frame's payload (or JSON handed to the accumulator) is not the expected JSON. Kind `"invalid_json"`.
pub const POLYSTREAM_ERR_INVALID_JSON: i32 = -11;
/// The provider reported an error inside the stream. Kind `"provider_error"`.
pub const POLYSTREAM_ERR_PROVIDER: i32 = -12;
/// The stream ended before the dialect's terminator. Kind `"incomplete"`.
pub const POLYSTREAM_ERR_INCOMPLETE: i32 = -13;
/// No dialect of that name. Kind `"unknown_dialect"`.
pub const POLYSTREAM_ERR_UNKNOWN_DIALECT: i32 = -14;
/// The handle already failed (a decode error or a caught panic); create a new one. Kind `"poisoned"`.
pub const POLYSTREAM_ERR_POISONED: i32 = -15;
/// The binary framing is corrupt (an eventstream CRC mismatch, an impossible length, a malformed
/// header). Kind `"invalid_frame"`.
pub const POLYSTREAM_ERR_INVALID_FRAME: i32 = -16;

/// An error on its way to the caller: a code, a stable kind name, a message and structured detail.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub code: i32,
    pub kind: &'static str,
    pub message: String,
    pub detail: Value,
}

impl FfiError {
    pub fn null(what: &str) -> Self {
        FfiError {
            code: POLYSTREAM_ERR_NULL_POINTER,
            kind: "null_pointer",
            message: format!("{what} must not be NULL"),
            detail: Value::Null,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        FfiError {
            code: POLYSTREAM_ERR_INVALID_ARGUMENT,
            kind: "invalid_argument",
            message: message.into(),
            detail: Value::Null,
        }
    }

    pub fn poisoned(message: impl Into<String>) -> Self {
        FfiError {
            code: POLYSTREAM_ERR_POISONED,
            kind: "poisoned",
            message: message.into(),
            detail: Value::Null,
        }
    }

    fn panic(payload: &(dyn Any + Send)) -> Self {
        let what = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "non-string panic payload".to_owned()
        };
        FfiError {
            code: POLYSTREAM_ERR_PANIC,
            kind: "panic",
            message: format!("panic inside polystream (caught at the C boundary): {what}"),
            detail: Value::Null,
        }
    }
}

impl From<CoreError> for FfiError {
    /// Exhaustive on purpose: a new core variant must be given a code here.
    fn from(e: CoreError) -> Self {
        let message = e.to_string();
        let kind = e.kind_name();
        let (code, detail) = match e {
            CoreError::EventTooLarge { limit } => {
                (POLYSTREAM_ERR_EVENT_TOO_LARGE, json!({ "limit": limit }))
            }
            CoreError::InvalidJson {
                dialect,
                message,
                payload,
            } => (
                POLYSTREAM_ERR_INVALID_JSON,
                json!({ "dialect": dialect, "message": message, "payload": payload }),
            ),
            CoreError::InvalidFrame { framing, message } => (
                POLYSTREAM_ERR_INVALID_FRAME,
                json!({ "framing": framing, "message": message }),
            ),
            CoreError::Provider {
                message,
                kind,
                code,
                param,
                body,
            } => (
                POLYSTREAM_ERR_PROVIDER,
                json!({ "message": message, "type": kind, "code": code, "param": param, "body": body }),
            ),
            CoreError::Incomplete { dialect } => {
                (POLYSTREAM_ERR_INCOMPLETE, json!({ "dialect": dialect }))
            }
            CoreError::UnknownDialect(name) => {
                (POLYSTREAM_ERR_UNKNOWN_DIALECT, json!({ "name": name }))
            }
            CoreError::Poisoned => (POLYSTREAM_ERR_POISONED, Value::Null),
        };
        FfiError {
            code,
            kind,
            message,
            detail,
        }
    }
}

struct LastError {
    code: i32,
    kind: CString,
    message: CString,
    detail: CString,
}

thread_local! {
    static LAST_ERROR: RefCell<Option<LastError>> = const { RefCell::new(None) };
}

/// A C string from text that might hold NUL (messages quote stream bytes): NULs become U+FFFD.
pub(crate) fn c_string_lossy(s: String) -> CString {
    match CString::new(s) {
        Ok(c) => c,
        Err(e) => {
            let fixed = String::from_utf8_lossy(&e.into_vec()).replace('\0', "\u{FFFD}");
            CString::new(fixed).unwrap_or_default()
        }
    }
}

fn set_last_error(e: FfiError) -> i32 {
    let code = e.code;
    let detail = if e.detail.is_null() {
        json!({})
    } else {
        e.detail
    };
    let last = LastError {
        code,
        kind: c_string_lossy(e.kind.to_owned()),
        message: c_string_lossy(e.message),
        detail: c_string_lossy(detail.to_string()),
    };
    LAST_ERROR.with(|l| *l.borrow_mut() = Some(last));
    code
}

fn clear_last_error() {
    LAST_ERROR.with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            *l = None;
        }
    });
}

/// Run an exported body: clear the last error, catch any panic, and record a failure as the
/// thread's last error. `on_error` maps the failure's code to what the function returns.
pub(crate) fn guard<R>(
    on_error: impl FnOnce(i32) -> R,
    body: impl FnOnce() -> Result<R, FfiError>,
) -> R {
    clear_last_error();
    guard_keeping_last_error(on_error, body)
}

/// [`guard`] without clearing the last error first: for the `*_free` functions, which a caller
/// runs between a failed call and reading its error.
pub(crate) fn guard_keeping_last_error<R>(
    on_error: impl FnOnce(i32) -> R,
    body: impl FnOnce() -> Result<R, FfiError>,
) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => on_error(set_last_error(e)),
        Err(payload) => {
            let e = FfiError::panic(&*payload);
            // Dropping the payload could itself panic (a payload with a panicking Drop), which
            // would abort at the boundary: leak it instead, it is small and panics are rare.
            std::mem::forget(payload);
            on_error(set_last_error(e))
        }
    }
}

/// [`guard`] for the common shape: a return code, `Ok(())` being `POLYSTREAM_OK`.
pub(crate) fn guard_code(body: impl FnOnce() -> Result<(), FfiError>) -> i32 {
    guard(|code| code, || body().map(|()| POLYSTREAM_OK))
}

/// [`guard_keeping_last_error`] for a function without a result (the `*_free` functions).
pub(crate) fn guard_free(body: impl FnOnce() -> Result<(), FfiError>) {
    guard_keeping_last_error(|_| (), body)
}

fn read_last<T>(f: impl Fn(&LastError) -> T, none: T) -> T {
    // Never unwinds: a poisoned or busy cell just reads as "no error".
    catch_unwind(AssertUnwindSafe(|| {
        LAST_ERROR.with(|l| match l.try_borrow() {
            Ok(l) => l.as_ref().map(&f),
            Err(_) => None,
        })
    }))
    .ok()
    .flatten()
    .unwrap_or(none)
}

/// The code of the last failed call on this thread, or 0 if the last call succeeded.
#[no_mangle]
pub extern "C" fn polystream_last_error_code() -> i32 {
    read_last(|e| e.code, POLYSTREAM_OK)
}

/// The kind of the last failed call on this thread (`"event_too_large"`, `"invalid_json"`,
/// `"invalid_frame"`, `"provider_error"`, `"incomplete"`, `"unknown_dialect"`, `"poisoned"` — the
/// core's `Error::kind_name()` — or `"null_pointer"`, `"invalid_argument"`, `"panic"`), or NULL if
/// the last call succeeded. Borrowed: valid until the next `polystream_*` call on this thread
/// other than the `polystream_last_error_*` accessors and the `*_free` functions. Do not free.
#[no_mangle]
pub extern "C" fn polystream_last_error_kind() -> *const c_char {
    read_last(|e| e.kind.as_ptr(), ptr::null())
}

/// The human-readable message of the last failed call on this thread, or NULL. Borrowed, as
/// `polystream_last_error_kind`.
#[no_mangle]
pub extern "C" fn polystream_last_error_message() -> *const c_char {
    read_last(|e| e.message.as_ptr(), ptr::null())
}

/// Structured detail of the last failed call as a JSON object (`{}` when there is none), or NULL
/// if the last call succeeded. Keys by kind: `event_too_large` {limit}; `invalid_json` {dialect,
/// message, payload}; `invalid_frame` {framing, message}; `provider_error` {message, type, code,
/// param, body}; `incomplete` {dialect}; `unknown_dialect` {name}. Borrowed, as `polystream_last_error_kind`.
#[no_mangle]
pub extern "C" fn polystream_last_error_detail() -> *const c_char {
    read_last(|e| e.detail.as_ptr(), ptr::null())
}
