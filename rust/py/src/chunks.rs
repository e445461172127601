//! Chunk objects that read like the openai SDK's (`chunk.choices[0].delta.content`).
//!
//! A chunk owns its decoded Rust struct and makes no other Python object until `choices` is read
//! (the proxy only serialises chunks). Reading `choices` builds the chunk's views at once
//! ([`crate::views`]): each choice, its delta and tool calls, with their plain attributes already
//! Python objects that CPython reads as struct members, since code that reads `choices` reads
//! into them.

use std::sync::Arc;

use polystream_core::chunk::ChatChunk;
use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{to_py, to_record};
use crate::objects::{add_getter, OnceObject, TypeCache};

pub fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("chunk types always serialise")
}

#[pyclass(frozen, module = "polystream._core")]
pub struct ChatCompletionChunk {
    pub inner: Arc<ChatChunk>,
    choices: OnceObject,
}

impl ChatCompletionChunk {
    pub fn new(inner: ChatChunk) -> Self {
        Self::from_arc(Arc::new(inner))
    }
    pub fn from_arc(inner: Arc<ChatChunk>) -> Self {
        ChatCompletionChunk {
            inner,
            choices: OnceObject::new(),
        }
    }
    /// `choices`: built on first access, with all the views under it (see the module doc).
    /// Registered by [`add_getters`] as a raw getter ([`add_getter`]).
    fn choices<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.choices
            .get_or_try_init(py, || crate::views::choices(py, &self.inner))
    }
}

#[pymethods]
impl ChatCompletionChunk {
    /// Parse one chunk from its OpenAI JSON (str or bytes).
    #[staticmethod]
    fn from_json(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let chunk = crate::convert::with_bytes_or_str(data, |b| {
            serde_json::from_slice::<ChatChunk>(b).map_err(|e| {
                polystream_core::Error::InvalidJson {
                    dialect: "openai_chat",
                    message: e.to_string(),
                    payload: String::from_utf8_lossy(&b[..b.len().min(512)]).into_owned(),
                }
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
    fn usage<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.inner
            .usage
            .as_ref()
            .map(|u| to_record(py, u))
            .transpose()
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
        d.get_item(key)?
            .ok_or_else(|| PyKeyError::new_err(key.to_owned()))
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .downcast::<ChatCompletionChunk>()
            .is_ok_and(|o| *o.get().inner == *self.inner)
    }
    fn __repr__(&self) -> String {
        format!("ChatCompletionChunk({})", self.to_json())
    }
}

/// Register the chunk's raw `choices` getter.
pub fn add_getters(py: Python<'_>) -> PyResult<()> {
    add_getter::<ChatCompletionChunk>(py, c"choices", ChatCompletionChunk::choices)
}

// Chunks are made by the thousand: their type object is looked up once.
pub static CHUNK_TYPE: TypeCache<ChatCompletionChunk> = TypeCache::new();
