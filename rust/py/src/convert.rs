//! Rust → Python conversions shared by the bindings.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyByteArray, PyBytes, PyString};

/// Decode UTF-8 with U+FFFD for invalid sequences (maximal subparts, as the WHATWG decoder does),
/// straight into a Python str: one pass, no intermediate Rust String.
pub fn str_lossy<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    // SAFETY: pointer and length come from a live slice; "replace" is a static C string; the
    // returned new reference (or NULL with an exception set) is owned by the Bound.
    unsafe {
        let ptr = pyo3::ffi::PyUnicode_DecodeUTF8(
            bytes.as_ptr().cast(),
            bytes.len() as pyo3::ffi::Py_ssize_t,
            c"replace".as_ptr(),
        );
        Ok(Bound::from_owned_ptr_or_err(py, ptr)?.downcast_into_unchecked())
    }
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
        Ok(py.import("polystream.types")?.getattr("Record")?.getattr("wrap")?.unbind())
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
