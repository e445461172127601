//! Chunk objects that read like the openai SDK's (`chunk.choices[0].delta.content`).
//!
//! A chunk owns its decoded Rust struct; the nested objects are thin views that share it and build
//! Python values only for the attributes actually read, so decoding a chunk costs one allocation
//! on the Python side whatever its shape.

use std::sync::Arc;

use polystream_core::chunk::{ChatChunk, ChunkChoice as CoreChoice, ToolCallDelta};
use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyList};

use crate::convert::{to_py, to_record};

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("chunk types always serialise")
}

#[pyclass(frozen, module = "polystream._core")]
pub struct ChatCompletionChunk {
    pub inner: Arc<ChatChunk>,
    choices: GILOnceCell<Py<PyList>>,
}

impl ChatCompletionChunk {
    pub fn new(inner: ChatChunk) -> Self {
        ChatCompletionChunk { inner: Arc::new(inner), choices: GILOnceCell::new() }
    }
}

#[pymethods]
impl ChatCompletionChunk {
    /// Parse one chunk from its OpenAI JSON (str or bytes).
    #[staticmethod]
    fn from_json(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let chunk = crate::convert::with_bytes_or_str(data, |b| {
            serde_json::from_slice::<ChatChunk>(b).map_err(|e| polystream_core::Error::InvalidJson {
                dialect: "openai_chat",
                message: e.to_string(),
                payload: String::from_utf8_lossy(&b[..b.len().min(512)]).into_owned(),
            })
        })?
        .map_err(|e| crate::errors::to_pyerr(py, e, None))?;
        Ok(Self::new(chunk))
    }
    #[getter]
    fn id(&self) -> &str {
        &self.inner.id
    }
    #[getter]
    fn object(&self) -> &'static str {
        "chat.completion.chunk"
    }
    #[getter]
    fn created(&self) -> i64 {
        self.inner.created
    }
    #[getter]
    fn model(&self) -> &str {
        &self.inner.model
    }
    #[getter]
    fn system_fingerprint(&self) -> Option<&str> {
        self.inner.system_fingerprint.as_deref()
    }
    #[getter]
    fn service_tier(&self) -> Option<&str> {
        self.inner.service_tier.as_deref()
    }
    #[getter]
    fn choices(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        let list = self.choices.get_or_try_init(py, || -> PyResult<Py<PyList>> {
            let views = (0..self.inner.choices.len())
                .map(|i| Py::new(py, ChunkChoice { chunk: self.inner.clone(), i }))
                .collect::<PyResult<Vec<_>>>()?;
            Ok(PyList::new(py, views)?.unbind())
        })?;
        Ok(list.clone_ref(py))
    }
    #[getter]
    fn usage<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner.usage.as_ref().map(|u| to_record(py, u)).transpose()
    }
    /// The chunk as plain JSON-ready Python data, in OpenAI's wire shape.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &*self.inner)
    }
    fn to_json(&self) -> String {
        to_json(&*self.inner)
    }
    /// pydantic-style aliases, for code written against the openai SDK.
    fn model_dump<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.to_dict(py)
    }
    fn model_dump_json(&self) -> String {
        self.to_json()
    }
    /// Dict-style access (`chunk["choices"]`), for code written against dict chunks.
    fn __getitem__<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyAny>> {
        let d = self.to_dict(py)?;
        let d = d.downcast::<PyDict>()?;
        d.get_item(key)?.ok_or_else(|| PyKeyError::new_err(key.to_owned()))
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.downcast::<ChatCompletionChunk>().is_ok_and(|o| *o.get().inner == *self.inner)
    }
    fn __repr__(&self) -> String {
        format!("ChatCompletionChunk({})", self.to_json())
    }
}

#[pyclass(frozen, module = "polystream._core")]
pub struct ChunkChoice {
    chunk: Arc<ChatChunk>,
    i: usize,
}

impl ChunkChoice {
    fn get(&self) -> &CoreChoice {
        &self.chunk.choices[self.i]
    }
}

#[pymethods]
impl ChunkChoice {
    #[getter]
    fn index(&self) -> u32 {
        self.get().index
    }
    #[getter]
    fn delta(&self) -> ChoiceDelta {
        ChoiceDelta { chunk: self.chunk.clone(), i: self.i }
    }
    #[getter]
    fn finish_reason(&self) -> Option<&str> {
        self.get().finish_reason.as_deref()
    }
    /// The provider's own finish reason before mapping to OpenAI's values.
    #[getter]
    fn native_finish_reason(&self) -> Option<&str> {
        self.get().native_finish_reason.as_deref()
    }
    #[getter]
    fn logprobs<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.get().logprobs.as_ref().map(|l| to_record(py, l)).transpose()
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, self.get())
    }
    fn __repr__(&self) -> String {
        format!("Choice({})", to_json(self.get()))
    }
}

#[pyclass(frozen, module = "polystream._core")]
pub struct ChoiceDelta {
    chunk: Arc<ChatChunk>,
    i: usize,
}

impl ChoiceDelta {
    fn get(&self) -> &polystream_core::chunk::Delta {
        &self.chunk.choices[self.i].delta
    }
}

#[pymethods]
impl ChoiceDelta {
    #[getter]
    fn role(&self) -> Option<&str> {
        self.get().role.as_deref()
    }
    #[getter]
    fn content(&self) -> Option<&str> {
        self.get().content.as_deref()
    }
    #[getter]
    fn reasoning_content(&self) -> Option<&str> {
        self.get().reasoning_content.as_deref()
    }
    #[getter]
    fn refusal(&self) -> Option<&str> {
        self.get().refusal.as_deref()
    }
    #[getter]
    fn tool_calls(&self, py: Python<'_>) -> PyResult<Option<Py<PyList>>> {
        let Some(calls) = &self.get().tool_calls else { return Ok(None) };
        let views = (0..calls.len())
            .map(|j| Py::new(py, ChoiceDeltaToolCall { chunk: self.chunk.clone(), i: self.i, j }))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Some(PyList::new(py, views)?.unbind()))
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, self.get())
    }
    fn __repr__(&self) -> String {
        format!("ChoiceDelta({})", to_json(self.get()))
    }
}

#[pyclass(frozen, module = "polystream._core")]
pub struct ChoiceDeltaToolCall {
    chunk: Arc<ChatChunk>,
    i: usize,
    j: usize,
}

fn tool_call(chunk: &ChatChunk, i: usize, j: usize) -> &ToolCallDelta {
    &chunk.choices[i].delta.tool_calls.as_ref().expect("view made from a present list")[j]
}

#[pymethods]
impl ChoiceDeltaToolCall {
    #[getter]
    fn index(&self) -> u32 {
        tool_call(&self.chunk, self.i, self.j).index
    }
    #[getter]
    fn id(&self) -> Option<&str> {
        tool_call(&self.chunk, self.i, self.j).id.as_deref()
    }
    #[getter]
    fn r#type(&self) -> Option<&str> {
        tool_call(&self.chunk, self.i, self.j).kind.as_deref()
    }
    #[getter]
    fn function(&self) -> Option<ChoiceDeltaToolCallFunction> {
        tool_call(&self.chunk, self.i, self.j)
            .function
            .as_ref()
            .map(|_| ChoiceDeltaToolCallFunction { chunk: self.chunk.clone(), i: self.i, j: self.j })
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, tool_call(&self.chunk, self.i, self.j))
    }
    fn __repr__(&self) -> String {
        format!("ChoiceDeltaToolCall({})", to_json(tool_call(&self.chunk, self.i, self.j)))
    }
}

#[pyclass(frozen, module = "polystream._core")]
pub struct ChoiceDeltaToolCallFunction {
    chunk: Arc<ChatChunk>,
    i: usize,
    j: usize,
}

impl ChoiceDeltaToolCallFunction {
    fn get(&self) -> &polystream_core::chunk::FunctionDelta {
        tool_call(&self.chunk, self.i, self.j).function.as_ref().expect("view made from a present function")
    }
}

#[pymethods]
impl ChoiceDeltaToolCallFunction {
    #[getter]
    fn name(&self) -> Option<&str> {
        self.get().name.as_deref()
    }
    #[getter]
    fn arguments(&self) -> Option<&str> {
        self.get().arguments.as_deref()
    }
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, self.get())
    }
    fn __repr__(&self) -> String {
        format!("ChoiceDeltaToolCallFunction({})", to_json(self.get()))
    }
}
