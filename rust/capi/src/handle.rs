//! Opaque handles: a boxed state behind a type tag, plus the pointer plumbing shared by every
//! exported function. All of the crate's `unsafe` pointer work lives here.

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use crate::error::{guard, guard_free, FfiError};

/// What sits behind every handle pointer. `repr(C)` so that `magic` is at offset 0 for every `T`:
/// a handle of the wrong type (or one already freed, on a best-effort basis) is refused rather
/// than misread.
#[repr(C)]
pub(crate) struct Handle<T> {
    magic: u64,
    /// Set while a call runs and cleared when it returns: still set afterwards means the call
    /// panicked midway, and the state may be half-updated, so the handle refuses further use.
    busy: bool,
    state: T,
}

/// A state type that can live behind a handle.
pub(crate) trait Tagged {
    /// A distinct value per type; never 0 (0 marks a freed handle).
    const MAGIC: u64;
    const NAME: &'static str;
}

/// Box `state` and hand ownership to the caller as an opaque pointer `P`.
pub(crate) fn into_raw<T: Tagged, P>(state: T) -> *mut P {
    Box::into_raw(Box::new(Handle {
        magic: T::MAGIC,
        busy: false,
        state,
    }))
    .cast::<P>()
}

/// Borrow the handle behind `ptr`.
///
/// # Safety
/// `ptr` must be NULL or a pointer returned by `into_raw` and not yet freed (the magic check
/// catches handles of the wrong type, but cannot make a dangling pointer safe).
unsafe fn get<'a, T: Tagged, P>(ptr: *mut P) -> Result<&'a mut Handle<T>, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::null(T::NAME));
    }
    // SAFETY: every handle starts with the u64 magic (repr(C)), and the caller promises `ptr` came
    // from `into_raw`, so reading the first 8 bytes is in bounds whatever the handle's type.
    let magic = unsafe { ptr.cast::<u64>().read() };
    if magic != T::MAGIC {
        return Err(FfiError::invalid(format!("not a live {} handle", T::NAME)));
    }
    // SAFETY: the magic says this is a live Handle<T>; the caller guarantees no other reference
    // to it is in use (handles are not shared between threads without a lock).
    Ok(unsafe { &mut *ptr.cast::<Handle<T>>() })
}

/// Run `body` on the state behind `ptr`, inside the panic guard. `on_error` maps a failure's code
/// to the function's return value.
///
/// # Safety
/// As [`get`].
pub(crate) unsafe fn with_state<T: Tagged, P, R>(
    ptr: *mut P,
    on_error: impl FnOnce(i32) -> R,
    body: impl FnOnce(&mut T) -> Result<R, FfiError>,
) -> R {
    guard(on_error, || {
        // SAFETY: forwarded to the caller.
        let h = unsafe { get::<T, P>(ptr)? };
        if h.busy {
            return Err(FfiError::poisoned(format!(
                "{} is unusable: an earlier call on it panicked",
                T::NAME
            )));
        }
        h.busy = true;
        let r = body(&mut h.state);
        h.busy = false;
        r
    })
}

/// Drop the handle behind `ptr`; NULL is a no-op. Leaves the last error alone, unless the pointer
/// is not a live handle of this type: then it is not touched and that becomes the last error.
///
/// # Safety
/// As [`get`]; `ptr` must not be used again.
pub(crate) unsafe fn free<T: Tagged, P>(ptr: *mut P) {
    if ptr.is_null() {
        return;
    }
    guard_free(|| {
        // SAFETY: forwarded to the caller.
        let h = unsafe { get::<T, P>(ptr)? };
        h.magic = 0;
        // SAFETY: `ptr` came from Box::into_raw in `into_raw` with this very type.
        drop(unsafe { Box::from_raw(ptr.cast::<Handle<T>>()) });
        Ok(())
    });
}

/// The bytes `(data, len)` as a slice; NULL is allowed when `len` is 0.
///
/// # Safety
/// If `len > 0`, `data` must point to `len` readable bytes that stay unchanged during the call.
pub(crate) unsafe fn bytes<'a>(data: *const u8, len: usize) -> Result<&'a [u8], FfiError> {
    if len == 0 {
        return Ok(&[]);
    }
    if data.is_null() {
        return Err(FfiError::null("data (with a non-zero length)"));
    }
    // SAFETY: the caller promises `len` readable bytes at `data`.
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `s` must be NULL or point to a NUL-terminated string.
pub(crate) unsafe fn utf8<'a>(s: *const c_char, what: &str) -> Result<&'a str, FfiError> {
    if s.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: the caller promises a NUL-terminated string.
    let c = unsafe { CStr::from_ptr(s) };
    c.to_str()
        .map_err(|_| FfiError::invalid(format!("{what} is not valid UTF-8")))
}

/// Reset an out-parameter to NULL, failing if the out-parameter itself is NULL.
///
/// # Safety
/// `out` must be NULL or point to writable storage for one pointer.
pub(crate) unsafe fn init_out(out: *mut *mut c_char) -> Result<(), FfiError> {
    if out.is_null() {
        return Err(FfiError::null("out"));
    }
    // SAFETY: checked non-NULL; the caller promises it is writable.
    unsafe { out.write(ptr::null_mut()) };
    Ok(())
}

/// Hand an owned string to the caller through `out` (already checked by [`init_out`]).
/// The caller frees it with `polystream_string_free`.
///
/// # Safety
/// As [`init_out`].
pub(crate) unsafe fn put_out(out: *mut *mut c_char, s: CString) {
    // SAFETY: as `init_out`.
    unsafe { out.write(s.into_raw()) };
}

/// Hand a byte buffer to the caller as (pointer, length); released by [`bytes_free`].
pub(crate) fn bytes_into_raw(v: Vec<u8>) -> (*mut u8, usize) {
    let b = v.into_boxed_slice();
    let n = b.len();
    (Box::into_raw(b).cast::<u8>(), n)
}

/// Release a buffer from [`bytes_into_raw`].
///
/// # Safety
/// `(ptr, len)` must come from `bytes_into_raw`, not freed before.
pub(crate) unsafe fn bytes_free(ptr: *mut u8, len: usize) {
    // SAFETY: the caller promises this is exactly the boxed slice `bytes_into_raw` leaked.
    drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(ptr, len)) });
}

/// JSON text as a C string. serde_json escapes NUL as `\u0000`, so this never fails on JSON.
pub(crate) fn json_c_string(json: Vec<u8>) -> CString {
    CString::new(json).unwrap_or_else(|e| {
        crate::error::c_string_lossy(String::from_utf8_lossy(&e.into_vec()).into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{
        polystream_last_error_kind, POLYSTREAM_ERR_PANIC, POLYSTREAM_ERR_POISONED, POLYSTREAM_OK,
    };

    struct Probe(u32);
    impl Tagged for Probe {
        const MAGIC: u64 = 0x5052_4f42_4500_0001;
        const NAME: &'static str = "probe";
    }

    struct Other;
    impl Tagged for Other {
        const MAGIC: u64 = 0x5052_4f42_4500_0002;
        const NAME: &'static str = "other";
    }

    #[test]
    fn a_panic_mid_call_poisons_the_handle() {
        let p: *mut u8 = into_raw(Probe(1));
        let code = unsafe {
            with_state::<Probe, _, _>(
                p,
                |c| c,
                |s| {
                    s.0 += 1;
                    panic!("half-way");
                },
            )
        };
        assert_eq!(code, POLYSTREAM_ERR_PANIC);
        let code = unsafe { with_state::<Probe, _, _>(p, |c| c, |_| Ok(POLYSTREAM_OK)) };
        assert_eq!(code, POLYSTREAM_ERR_POISONED);
        let kind = unsafe { CStr::from_ptr(polystream_last_error_kind()) };
        assert_eq!(kind.to_str().unwrap(), "poisoned");
        unsafe { free::<Probe, _>(p) };
    }

    #[test]
    fn a_handle_of_another_type_is_refused_not_misread() {
        let p: *mut u8 = into_raw(Probe(7));
        let code = unsafe { with_state::<Other, _, _>(p, |c| c, |_| Ok(POLYSTREAM_OK)) };
        assert_eq!(code, crate::error::POLYSTREAM_ERR_INVALID_ARGUMENT);
        // Freeing it as the wrong type is refused too (and leaves it intact).
        unsafe { free::<Other, _>(p) };
        let v = unsafe { with_state::<Probe, _, _>(p, |_| 0, |s| Ok(s.0)) };
        assert_eq!(v, 7);
        unsafe { free::<Probe, _>(p) };
    }
}
