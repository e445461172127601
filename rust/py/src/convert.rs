//! Rust → Python conversions shared by the bindings.

#[cfg(not(windows))]
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyByteArray, PyBytes, PyString};

/// Decode UTF-8 with U+FFFD for invalid sequences (maximal subparts, as the WHATWG decoder does),
/// straight into a Python str: one pass, no intermediate Rust String.
pub fn str_lossy<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    // Length 0 and 1 go to the decoder, which returns CPython's cached singletons for them.
    if bytes.len() > 1 && is_ascii(bytes) {
        if let Some(s) = ascii_str(py, bytes) {
            return s;
        }
    }
    // SAFETY: pointer and length come from a live slice; "replace" is a static C string; the
    // returned new reference (or NULL with an exception set) is owned by the Bound.
    unsafe {
        let ptr = ffi::PyUnicode_DecodeUTF8(
            bytes.as_ptr().cast(),
            bytes.len() as ffi::Py_ssize_t,
            c"replace".as_ptr(),
        );
        Ok(Bound::from_owned_ptr_or_err(py, ptr)?.downcast_into_unchecked())
    }
}

/// A Python str of a Rust str.
pub fn new_str<'py>(py: Python<'py>, s: &str) -> PyResult<Bound<'py, PyString>> {
    str_lossy(py, s.as_bytes())
}

#[cfg(not(windows))]
extern "C" {
    // Outside the limited API, but exported with this signature by every CPython since 3.3. Not
    // on Windows, where an abi3 module links against python3.dll, which exports only the stable ABI.
    fn PyUnicode_New(size: ffi::Py_ssize_t, maxchar: ffi::Py_UCS4) -> *mut ffi::PyObject;
}

/// Where a compact ASCII str keeps its characters, in bytes from the start of the object; 0 while
/// the fast path is off (before [`init_ascii_str`], or if its check failed).
#[cfg(not(windows))]
static ASCII_DATA_OFFSET: AtomicUsize = AtomicUsize::new(0);

/// At import: find where CPython puts an ASCII str's characters (right after the object header
/// in every CPython since 3.3, at a size that varies by version) and check that filling them there
/// makes the same str as decoding does. If anything is off, strings are always decoded.
#[cfg(not(windows))]
pub fn init_ascii_str(py: Python<'_>) {
    if let Some(offset) = probe_ascii_data_offset(py) {
        ASCII_DATA_OFFSET.store(offset, Ordering::Relaxed);
    }
}

#[cfg(not(windows))]
fn probe_ascii_data_offset(py: Python<'_>) -> Option<usize> {
    const PROBE: &str = "polystream";
    // SAFETY: PyUnicode_New returns a new str (owned by the Bound) or NULL with an exception set.
    // For a compact ASCII str, PyUnicode_AsUTF8AndSize returns the str's own character buffer
    // (it has no separate UTF-8 copy), which we fill before any other code sees the str; the
    // comparison with a decoded str proves that this is where the characters live.
    unsafe {
        let s =
            Bound::from_owned_ptr_or_err(py, PyUnicode_New(PROBE.len() as ffi::Py_ssize_t, 127))
                .ok()?;
        let mut size: ffi::Py_ssize_t = 0;
        let buf = ffi::PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut size);
        if buf.is_null() {
            let _ = PyErr::take(py);
            return None;
        }
        if size as usize != PROBE.len() {
            return None;
        }
        std::ptr::copy_nonoverlapping(PROBE.as_ptr(), buf as *mut u8, PROBE.len());
        let offset = (buf as usize).wrapping_sub(s.as_ptr() as usize);
        ((1..=256).contains(&offset) && s.eq(PROBE).unwrap_or(false)).then_some(offset)
    }
}

#[cfg(windows)]
pub fn init_ascii_str(_py: Python<'_>) {}

/// A str from bytes known to be ASCII: made as an ASCII str and filled with one memcpy, skipping
/// the UTF-8 decoder's checking copy loop (a quarter of an SSE event's cost). `None` when the fast
/// path is off; the caller then decodes.
#[cfg(not(windows))]
fn ascii_str<'py>(py: Python<'py>, bytes: &[u8]) -> Option<PyResult<Bound<'py, PyString>>> {
    let offset = ASCII_DATA_OFFSET.load(Ordering::Relaxed);
    if offset == 0 {
        return None;
    }
    // SAFETY: PyUnicode_New(n, 127) returns a new compact ASCII str with room for n characters
    // (or NULL with an exception set), owned by the Bound. Its characters start `offset` bytes
    // into the object (found and checked by `init_ascii_str`); no other code has seen the str, so
    // writing them is its initialisation. The bytes are ASCII, as an ASCII str's must be.
    unsafe {
        let made =
            Bound::from_owned_ptr_or_err(py, PyUnicode_New(bytes.len() as ffi::Py_ssize_t, 127));
        Some(made.map(|s| {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                (s.as_ptr() as *mut u8).add(offset),
                bytes.len(),
            );
            s.downcast_into_unchecked()
        }))
    }
}

#[cfg(windows)]
fn ascii_str<'py>(_py: Python<'py>, _bytes: &[u8]) -> Option<PyResult<Bound<'py, PyString>>> {
    None
}

/// `bytes.is_ascii()` without early exits: strings here are short and mostly ASCII, so OR-ing
/// whole 8-byte words (in 32-byte blocks, which the compiler vectorises) beats a branch per word.
fn is_ascii(bytes: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0xff; 8]));
    if bytes.len() < 8 {
        return bytes.iter().fold(0, |a, &x| a | x) < 0x80;
    }
    let mut lanes = [0u64; 4];
    let mut blocks = bytes.chunks_exact(32);
    for b in &mut blocks {
        for (lane, w) in lanes.iter_mut().zip(b.chunks_exact(8)) {
            *lane |= word(w);
        }
    }
    let mut acc = lanes[0] | lanes[1] | lanes[2] | lanes[3];
    for w in blocks.remainder().chunks_exact(8) {
        acc |= word(w);
    }
    // The last 8 bytes, overlapping what was read: covers a tail shorter than a word.
    acc |= word(&bytes[bytes.len() - 8..]);
    acc & HIGH == 0
}

/// Run `f` over the bytes of a bytes, bytearray or memoryview object without copying bytes.
pub fn with_bytes<R>(obj: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    if let Ok(b) = obj.downcast::<PyBytes>() {
        return Ok(f(b.as_bytes()));
    }
    if let Ok(b) = obj.downcast::<PyByteArray>() {
        // Copy: the bytearray could be resized by other Python code while we hold a slice.
        return Ok(f(&b.to_vec()));
    }
    if obj.hasattr("tobytes")? {
        let b = obj.call_method0("tobytes")?;
        if let Ok(b) = b.downcast::<PyBytes>() {
            return Ok(f(b.as_bytes()));
        }
    }
    Err(PyTypeError::new_err(format!(
        "expected bytes, bytearray or memoryview, got {}",
        obj.get_type().name()?
    )))
}

/// Any serialisable core value → plain Python objects, fields in declaration order.
pub fn to_py<'py, T: serde::Serialize>(py: Python<'py>, v: &T) -> PyResult<Bound<'py, PyAny>> {
    pythonize::pythonize(py, v).map_err(|e| PyTypeError::new_err(e.to_string()))
}

static RECORD: GILOnceCell<Py<PyAny>> = GILOnceCell::new();

/// Wrap plain data in `polystream.types.Record` (attribute access over dicts, like the SDK's models).
pub fn record<'py>(py: Python<'py>, plain: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let wrap = RECORD.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py
            .import("polystream.types")?
            .getattr("Record")?
            .getattr("wrap")?
            .unbind())
    })?;
    wrap.bind(py).call1((plain,))
}

/// A serialisable core value as a `Record`.
pub fn to_record<'py, T: serde::Serialize>(py: Python<'py>, v: &T) -> PyResult<Bound<'py, PyAny>> {
    let plain = to_py(py, v)?;
    record(py, plain)
}

/// Like [`with_bytes`], also accepting `str` (its UTF-8 bytes).
pub fn with_bytes_or_str<R>(obj: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    if let Ok(s) = obj.downcast::<PyString>() {
        return Ok(f(s.to_str()?.as_bytes()));
    }
    with_bytes(obj, f)
}
