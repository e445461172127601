//! Core errors → the exception tree documented in `polystream.errors` (one class per variant).

use polystream_core::Error;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

fn class_name(e: &Error) -> &'static str {
    match e {
        Error::EventTooLarge { .. } => "EventTooLargeError",
        Error::InvalidJson { .. } => "InvalidChunkError",
        Error::InvalidFrame { .. } => "InvalidFrameError",
        Error::Provider { .. } => "ProviderStreamError",
        Error::Incomplete { .. } => "IncompleteStreamError",
        Error::UnknownDialect(_) => "UnknownDialectError",
        Error::Poisoned => "DecoderPoisonedError",
    }
}

/// Build the Python exception for `e`. `items` are the events or chunks completed before the
/// error in the same call: they ride on the exception (`exc.items`) so nothing is lost.
pub fn to_pyerr(py: Python<'_>, e: Error, items: Option<Bound<'_, PyList>>) -> PyErr {
    match build(py, &e, items) {
        Ok(err) => err,
        Err(import_failure) => import_failure,
    }
}

fn build(py: Python<'_>, e: &Error, items: Option<Bound<'_, PyList>>) -> PyResult<PyErr> {
    let errors = py.import("polystream.errors")?;
    let cls = errors.getattr(class_name(e))?;
    let kw = PyDict::new(py);
    kw.set_item("kind", e.kind_name())?;
    match e {
        Error::EventTooLarge { limit } => kw.set_item("limit", *limit)?,
        Error::InvalidJson {
            dialect, payload, ..
        } => {
            kw.set_item("dialect", *dialect)?;
            kw.set_item("payload", payload)?;
        }
        Error::InvalidFrame { framing, .. } => kw.set_item("framing", *framing)?,
        Error::Provider {
            message,
            kind,
            code,
            param,
            body,
        } => {
            kw.set_item("error_message", message)?;
            kw.set_item("type", kind)?;
            kw.set_item("code", code)?;
            kw.set_item("param", param)?;
            kw.set_item("body", body)?;
        }
        Error::Incomplete { dialect } => kw.set_item("dialect", *dialect)?,
        Error::UnknownDialect(name) => kw.set_item("dialect", name)?,
        Error::Poisoned => {}
    }
    if let Some(items) = items {
        kw.set_item("items", items)?;
    }
    let exc = cls.call((e.to_string(),), Some(&kw))?;
    Ok(PyErr::from_value(exc))
}

/// Panic inside Rust on purpose: proves a panic surfaces as a Python exception, not an abort.
#[pyfunction]
pub fn debug_panic() {
    panic!("polystream debug panic (deliberate)");
}
