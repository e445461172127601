//! Chunk objects that read like the openai SDK's (`chunk.choices[0].delta.content`).
//!
//! A chunk owns its decoded Rust struct and makes no other Python object until `choices` is read
//! (the proxy only serialises chunks). Reading `choices` builds the chunk's views at once: each
//! choice, its delta and tool calls, with their plain attributes already Python objects in struct
//! members ([`Member`]), since code that reads `choices` reads into them: every attribute read
//! after that is a CPython struct-member read, not a call into Rust (~300 instructions each).
//! Views are frozen, so this is invisible but for identity: `choice.delta is choice.delta`, as
//! with the SDK's models. They share the Rust chunk for `to_dict()`, `repr()` and `logprobs`.

use std::sync::Arc;

use polystream_core::chunk::{ChatChunk, ChunkChoice as CoreChoice, ToolCallDelta};
use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{to_py, to_record};
use crate::objects::{add_getter, add_members, list_from_iter, Member, OnceObject, TypeCache};

fn to_json<T: serde::Serialize>(v: &T) -> String {
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
    /// Registered by [`add_members`] as a raw getter ([`add_getter`]).
    fn choices<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.choices.get_or_try_init(py, || {
            let views = (0..self.inner.choices.len())
                .map(|i| Ok(ChunkChoice::new(py, &self.inner, i)?.into_any()));
            Ok(list_from_iter(py, views)?.into_any())
        })
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

/// Register the views' struct-member attributes (see [`Member`]) on their classes, and the
/// chunk's raw `choices` getter.
pub fn add_members(py: Python<'_>) -> PyResult<()> {
    add_getter::<ChatCompletionChunk>(py, c"choices", ChatCompletionChunk::choices)?;
    add_members!(py, ChunkChoice {
        c"index" => index,
        c"delta" => delta,
        c"finish_reason" => finish_reason,
        c"native_finish_reason" => native_finish_reason,
    })?;
    add_members!(py, ChoiceDelta {
        c"role" => role,
        c"content" => content,
        c"reasoning_content" => reasoning_content,
        c"refusal" => refusal,
        c"tool_calls" => tool_calls,
    })?;
    add_members!(py, ChoiceDeltaToolCall { c"index" => index, c"id" => id, c"type" => kind, c"function" => function })?;
    add_members!(py, ChoiceDeltaToolCallFunction { c"name" => name, c"arguments" => arguments })
}

// Chunks and views are made by the thousand: their type objects are looked up once.
static CHOICE_TYPE: TypeCache<ChunkChoice> = TypeCache::new();
static DELTA_TYPE: TypeCache<ChoiceDelta> = TypeCache::new();
static TOOL_CALL_TYPE: TypeCache<ChoiceDeltaToolCall> = TypeCache::new();
static FUNCTION_TYPE: TypeCache<ChoiceDeltaToolCallFunction> = TypeCache::new();
pub static CHUNK_TYPE: TypeCache<ChatCompletionChunk> = TypeCache::new();

#[pyclass(frozen, module = "polystream._core")]
pub struct ChunkChoice {
    chunk: Arc<ChatChunk>,
    i: usize,
    index: Member,
    delta: Member<ChoiceDelta>,
    finish_reason: Member,
    /// The provider's own finish reason before mapping to OpenAI's values.
    native_finish_reason: Member,
}

impl ChunkChoice {
    fn new<'py>(
        py: Python<'py>,
        chunk: &Arc<ChatChunk>,
        i: usize,
    ) -> PyResult<Bound<'py, ChunkChoice>> {
        let c = &chunk.choices[i];
        let choice = ChunkChoice {
            chunk: chunk.clone(),
            i,
            index: Member::new(c.index.into_pyobject(py)?.into_any()),
            delta: Member::new(DELTA_TYPE.new_object(py, ChoiceDelta::new(py, chunk, i)?)?),
            finish_reason: Member::opt_str(py, c.finish_reason.as_deref())?,
            native_finish_reason: Member::opt_str(py, c.native_finish_reason.as_deref())?,
        };
        CHOICE_TYPE.new_object(py, choice)
    }
    fn get(&self) -> &CoreChoice {
        &self.chunk.choices[self.i]
    }
}

#[pymethods]
impl ChunkChoice {
    #[getter]
    fn logprobs<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.get()
            .logprobs
            .as_ref()
            .map(|l| to_record(py, l))
            .transpose()
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
    role: Member,
    content: Member,
    reasoning_content: Member,
    refusal: Member,
    tool_calls: Member,
}

impl ChoiceDelta {
    fn new(py: Python<'_>, chunk: &Arc<ChatChunk>, i: usize) -> PyResult<Self> {
        let d = &chunk.choices[i].delta;
        let tool_calls = Member::opt(py, d.tool_calls.as_ref(), |calls| {
            let views =
                (0..calls.len()).map(|j| Ok(ChoiceDeltaToolCall::new(py, chunk, i, j)?.into_any()));
            Ok(list_from_iter(py, views)?.into_any())
        })?;
        Ok(ChoiceDelta {
            chunk: chunk.clone(),
            i,
            role: Member::opt_str(py, d.role.as_deref())?,
            content: Member::opt_str(py, d.content.as_deref())?,
            reasoning_content: Member::opt_str(py, d.reasoning_content.as_deref())?,
            refusal: Member::opt_str(py, d.refusal.as_deref())?,
            tool_calls,
        })
    }
    fn get(&self) -> &polystream_core::chunk::Delta {
        &self.chunk.choices[self.i].delta
    }
}

#[pymethods]
impl ChoiceDelta {
    /// Read on demand (rare, unlike the members above, made with the view).
    #[getter]
    fn reasoning_signature(&self) -> Option<&str> {
        self.get().reasoning_signature.as_deref()
    }
    #[getter]
    fn thinking_blocks<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.get()
            .thinking_blocks
            .as_ref()
            .map(|b| to_record(py, b))
            .transpose()
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
    index: Member,
    id: Member,
    kind: Member,
    function: Member,
}

fn tool_call(chunk: &ChatChunk, i: usize, j: usize) -> &ToolCallDelta {
    &chunk.choices[i]
        .delta
        .tool_calls
        .as_ref()
        .expect("view made from a present list")[j]
}

impl ChoiceDeltaToolCall {
    fn new<'py>(
        py: Python<'py>,
        chunk: &Arc<ChatChunk>,
        i: usize,
        j: usize,
    ) -> PyResult<Bound<'py, Self>> {
        let tc = tool_call(chunk, i, j);
        let function = Member::opt(py, tc.function.as_ref(), |f| {
            let view = ChoiceDeltaToolCallFunction {
                chunk: chunk.clone(),
                i,
                j,
                name: Member::opt_str(py, f.name.as_deref())?,
                arguments: Member::opt_str(py, f.arguments.as_deref())?,
            };
            Ok(FUNCTION_TYPE.new_object(py, view)?.into_any())
        })?;
        let call = ChoiceDeltaToolCall {
            chunk: chunk.clone(),
            i,
            j,
            index: Member::new(tc.index.into_pyobject(py)?.into_any()),
            id: Member::opt_str(py, tc.id.as_deref())?,
            kind: Member::opt_str(py, tc.kind.as_deref())?,
            function,
        };
        TOOL_CALL_TYPE.new_object(py, call)
    }
}

#[pymethods]
impl ChoiceDeltaToolCall {
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, tool_call(&self.chunk, self.i, self.j))
    }
    fn __repr__(&self) -> String {
        format!(
            "ChoiceDeltaToolCall({})",
            to_json(tool_call(&self.chunk, self.i, self.j))
        )
    }
}

#[pyclass(frozen, module = "polystream._core")]
pub struct ChoiceDeltaToolCallFunction {
    chunk: Arc<ChatChunk>,
    i: usize,
    j: usize,
    name: Member,
    arguments: Member,
}

impl ChoiceDeltaToolCallFunction {
    fn get(&self) -> &polystream_core::chunk::FunctionDelta {
        tool_call(&self.chunk, self.i, self.j)
            .function
            .as_ref()
            .expect("view made from a present function")
    }
}

#[pymethods]
impl ChoiceDeltaToolCallFunction {
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, self.get())
    }
    fn __repr__(&self) -> String {
        format!("ChoiceDeltaToolCallFunction({})", to_json(self.get()))
    }
}
