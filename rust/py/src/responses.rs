//! `ResponsesBuilder` for Python: normalised chunks in, OpenAI Responses events out.
//!
//! Events leave as `(sequence_number, name, json_bytes)`: the proxy writes the bytes to its event
//! log and to SSE as they are, never re-serialising in Python.

use polystream_core::responses::{
    IncompleteReason, ResponseEvent, ResponsesBuilder as CoreBuilder, Status,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::chunks::expect_chunk;
use crate::convert::to_py;

#[pyclass(module = "polystream._core")]
pub struct ResponsesBuilder {
    core: CoreBuilder,
    buf: Vec<ResponseEvent>,
}

impl ResponsesBuilder {
    fn drain<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .buf
            .drain(..)
            .map(|ev| {
                let json =
                    serde_json::to_vec(&ev).map_err(|e| PyValueError::new_err(e.to_string()))?;
                PyTuple::new(
                    py,
                    [
                        ev.sequence_number.into_pyobject(py)?.into_any(),
                        ev.name().into_pyobject(py)?.into_any(),
                        PyBytes::new(py, &json).into_any(),
                    ],
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }
}

fn status_str(s: Status) -> &'static str {
    s.as_str()
}

#[pymethods]
impl ResponsesBuilder {
    /// `request`: the Responses request body (a dict) whose fields the Response echoes.
    /// `queued=True` starts the response as `queued` (background mode).
    #[new]
    #[pyo3(signature = (id, model, created_at, *, request = None, queued = false, item_id_base = None))]
    fn new(
        id: String,
        model: String,
        created_at: i64,
        request: Option<&Bound<'_, PyAny>>,
        queued: bool,
        item_id_base: Option<String>,
    ) -> PyResult<Self> {
        let mut core = CoreBuilder::new(id, model, created_at);
        if let Some(req) = request {
            let value: serde_json::Value = pythonize::depythonize(req)
                .map_err(|e| PyTypeError::new_err(format!("request: {e}")))?;
            core = core.with_request(&value);
        }
        core = core.with_initial_status(if queued {
            Status::Queued
        } else {
            Status::InProgress
        });
        if let Some(base) = item_id_base {
            core = core.with_item_id_base(base);
        }
        Ok(ResponsesBuilder {
            core,
            buf: Vec::new(),
        })
    }

    /// The clock for `completed_at` (the core reads none).
    fn set_now(&mut self, unix_seconds: i64) {
        self.core.set_now(unix_seconds);
    }

    /// `response.created` (and `response.queued` when queued).
    fn start<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.core.start(&mut self.buf);
        self.drain(py)
    }

    fn mark_in_progress<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.core.mark_in_progress(&mut self.buf);
        self.drain(py)
    }

    /// Events for a batch of chunks (one call per network read).
    fn on_chunks<'py>(
        &mut self,
        py: Python<'py>,
        chunks: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        for c in chunks.try_iter()? {
            let c = c?;
            self.core.on_chunk(expect_chunk(&c)?, &mut self.buf);
        }
        self.drain(py)
    }

    /// Terminal events chosen by the finish reason seen (no finish reason → failed).
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.core.finish(&mut self.buf);
        self.drain(py)
    }

    fn complete<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.core.complete(&mut self.buf);
        self.drain(py)
    }

    /// `reason`: "max_output_tokens" or "content_filter".
    fn incomplete<'py>(&mut self, py: Python<'py>, reason: &str) -> PyResult<Bound<'py, PyList>> {
        let r = match reason {
            "max_output_tokens" => IncompleteReason::MaxOutputTokens,
            "content_filter" => IncompleteReason::ContentFilter,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown incomplete reason {other:?}"
                )))
            }
        };
        self.core.incomplete(r, &mut self.buf);
        self.drain(py)
    }

    /// `code` is mapped into OpenAI's enum (unknown codes become "server_error").
    fn fail<'py>(
        &mut self,
        py: Python<'py>,
        code: &str,
        message: &str,
    ) -> PyResult<Bound<'py, PyList>> {
        self.core.fail(code, message, &mut self.buf);
        self.drain(py)
    }

    fn cancel<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.core.cancel(&mut self.buf);
        self.drain(py)
    }

    /// The full Response object now, as JSON bytes.
    fn snapshot_json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let json = serde_json::to_vec(&self.core.snapshot())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyBytes::new(py, &json))
    }

    /// The full Response object now, as plain Python data.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.core.snapshot())
    }

    #[getter]
    fn id(&self) -> &str {
        self.core.id()
    }
    #[getter]
    fn status(&self) -> &'static str {
        status_str(self.core.status())
    }
    #[getter]
    fn is_terminal(&self) -> bool {
        self.core.is_terminal()
    }
    #[getter]
    fn output_text(&self) -> &str {
        self.core.output_text()
    }
    #[getter]
    fn next_sequence_number(&self) -> u64 {
        self.core.next_sequence_number()
    }
    #[getter]
    fn finish_reason(&self) -> Option<&str> {
        self.core.finish_reason()
    }
}
