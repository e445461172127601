//! `ChatCompletionChunk`: chunk objects that read like the openai SDK's
//! (`chunk.choices[0].delta.content`).
//!
//! A chunk owns its decoded Rust struct and makes no other Python object until `choices` is read
//! (the proxy only serialises chunks). Reading `choices` builds the chunk's views at once
//! ([`crate::views`]): each choice, its delta and tool calls, with their plain attributes already
//! Python objects that CPython reads as struct members, since code that reads `choices` reads
//! into them.
//!
//! A chunk is made per streamed chunk, thousands a second, so like the views it is a CPython type
//! made from a spec with a free list ([`SpecType`]), not a pyo3 class: no allocation, initialiser
//! or dealloc layers per chunk (≈ 180 instructions a chunk fewer than the pyo3 class), and its
//! getters, methods and slots are called by CPython directly.
//! It is made only from Rust (the decoders and `from_json`), frozen, not subclassable, compares
//! by value and is unhashable.

use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::Arc;

use polystream_core::chunk::ChatChunk;
use polystream_core::sse_writer::SseWriter;
use pyo3::exceptions::{PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyList, PyString};
use pyo3::{ffi, DowncastError};

use crate::convert::{new_str, to_py, to_record, with_bytes_or_str};
use crate::objects::{
    ffi_result, getset_table, method_table, slot, spec_value, OnceObject, SpecGetter, SpecType,
    SpecValue,
};

pub fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("chunk types always serialise")
}

/// A chunk object's Rust part.
struct ChatCompletionChunk {
    inner: Arc<ChatChunk>,
    /// `choices`: built on first read, with all the views under it (see the module doc).
    choices: OnceObject,
}

static CHUNK_TYPE: SpecType<ChatCompletionChunk> = SpecType::new();

impl SpecValue for ChatCompletionChunk {
    fn spec_type(&self) -> &'static SpecType<Self> {
        &CHUNK_TYPE
    }
}

/// A new `ChatCompletionChunk` over `inner`.
pub fn new_chunk(py: Python<'_>, inner: Arc<ChatChunk>) -> PyResult<Bound<'_, PyAny>> {
    let chunk = ChatCompletionChunk {
        inner,
        choices: OnceObject::new(),
    };
    CHUNK_TYPE.new_object(py, chunk)
}

/// The Rust chunk of `obj`, if it is a `ChatCompletionChunk`.
pub fn chunk_of<'a>(obj: &'a Bound<'_, PyAny>) -> Option<&'a ChatChunk> {
    CHUNK_TYPE.get(obj).map(|c| &*c.inner)
}

/// The Rust chunk of `obj`, or the TypeError of a failed downcast.
pub fn expect_chunk<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<&'a ChatChunk> {
    chunk_of(obj).ok_or_else(|| DowncastError::new(obj, "ChatCompletionChunk").into())
}

/// The chat relay's writer, one per stream: `frames(chunks)` is the SSE events of `chunks` (the
/// chunks of one upstream read) as one `bytes`, and how many there are. With `drop_choiceless`,
/// chunks without choices (the usage chunk) are left out. The core writes them (see
/// `polystream_core::sse_writer`): no `str`, `encode` or concatenation per chunk in Python, and
/// the stream's repeated header is serialised once.
#[pyclass(module = "polystream._core")]
pub struct SseFrames {
    writer: SseWriter,
    drop_choiceless: bool,
}

#[pymethods]
impl SseFrames {
    #[new]
    #[pyo3(signature = (*, drop_choiceless = false))]
    fn new(drop_choiceless: bool) -> Self {
        SseFrames {
            writer: SseWriter::new(),
            drop_choiceless,
        }
    }

    fn __call__<'py>(
        &mut self,
        chunks: &Bound<'py, PyList>,
    ) -> PyResult<(Bound<'py, PyBytes>, usize)> {
        let mut out = Vec::with_capacity(chunks.len() * 200);
        let mut n = 0;
        for obj in chunks.iter() {
            let c = expect_chunk(&obj)?;
            if self.drop_choiceless && c.choices.is_empty() {
                continue;
            }
            self.writer.write(c, &mut out);
            n += 1;
        }
        Ok((PyBytes::new(chunks.py(), &out), n))
    }
}

/// The chunk in `obj`.
///
/// # Safety
/// `obj` must be a live `ChatCompletionChunk` (see [`spec_value`]).
unsafe fn chunk<'a>(obj: *mut ffi::PyObject) -> &'a ChatChunk {
    &spec_value::<ChatCompletionChunk>(obj).inner
}

fn opt_str<'py>(py: Python<'py>, s: Option<&str>) -> PyResult<Bound<'py, PyAny>> {
    match s {
        Some(s) => Ok(new_str(py, s)?.into_any()),
        None => Ok(py.None().into_bound(py)),
    }
}

const GETTERS: &[(&std::ffi::CStr, SpecGetter<ChatCompletionChunk>)] = &[
    (c"id", |c, py| Ok(new_str(py, &c.inner.id)?.into_any())),
    (c"object", |_, py| {
        Ok(pyo3::intern!(py, "chat.completion.chunk")
            .clone()
            .into_any())
    }),
    (c"created", |c, py| {
        Ok(c.inner.created.into_pyobject(py)?.into_any())
    }),
    (
        c"model",
        |c, py| Ok(new_str(py, &c.inner.model)?.into_any()),
    ),
    (c"system_fingerprint", |c, py| {
        opt_str(py, c.inner.system_fingerprint.as_deref())
    }),
    (c"service_tier", |c, py| {
        opt_str(py, c.inner.service_tier.as_deref())
    }),
    (c"usage", |c, py| match &c.inner.usage {
        Some(u) => to_record(py, u),
        None => Ok(py.None().into_bound(py)),
    }),
    (c"choices", |c, py| {
        c.choices
            .get_or_try_init(py, || crate::views::choices(py, &c.inner))
    }),
];

/// Make the `ChatCompletionChunk` type and add it to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // SAFETY: CPython calls a METH_KEYWORDS function with (self, args, kwargs); C code stores it
    // cast to PyCFunction the same way.
    let from_json =
        unsafe { std::mem::transmute::<ffi::PyCFunctionWithKeywords, ffi::PyCFunction>(from_json) };
    let methods = method_table(&[
        (
            c"from_json",
            from_json,
            ffi::METH_VARARGS | ffi::METH_KEYWORDS | ffi::METH_STATIC,
            c"from_json(data)\n--\n\nParse one chunk from its OpenAI JSON (str or bytes).",
        ),
        (
            c"to_dict",
            to_dict,
            ffi::METH_NOARGS,
            c"to_dict($self, /)\n--\n\nThe chunk as plain JSON-ready Python data, in OpenAI's wire shape.",
        ),
        (
            c"to_json",
            to_json_method,
            ffi::METH_NOARGS,
            c"to_json($self, /)\n--\n\nThe chunk as OpenAI's wire JSON.",
        ),
        // pydantic-style aliases, for code written against the openai SDK.
        (
            c"model_dump",
            to_dict,
            ffi::METH_NOARGS,
            c"model_dump($self, /)\n--\n\nto_dict(), under pydantic's name.",
        ),
        (
            c"model_dump_json",
            to_json_method,
            ffi::METH_NOARGS,
            c"model_dump_json($self, /)\n--\n\nto_json(), under pydantic's name.",
        ),
    ]);
    // No GC: a chunk refers to its Rust struct and its `choices` list, whose views never refer
    // back to it. Only code that puts a chunk into its own `choices` list makes a cycle, which is
    // then never collected, as with the pyo3 class before; GC tracking would cost every chunk a
    // GC header, tracking and untracking, and bring gen-0 collections sooner.
    m.add_class::<SseFrames>()?;
    CHUNK_TYPE.register(
        m,
        c"ChatCompletionChunk",
        &[
            slot(ffi::Py_tp_getset, getset_table(GETTERS)),
            slot(ffi::Py_tp_methods, methods),
            slot(ffi::Py_tp_repr, repr as *mut c_void),
            slot(ffi::Py_tp_richcompare, richcompare as *mut c_void),
            // Equality by value and mutable views: unhashable, as a pyo3 class with `__eq__` is.
            slot(
                ffi::Py_tp_hash,
                ffi::PyObject_HashNotImplemented as *mut c_void,
            ),
            slot(ffi::Py_mp_subscript, getitem as *mut c_void),
        ],
    )
}

unsafe extern "C" fn from_json(
    _: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let mut data: *mut ffi::PyObject = ptr::null_mut();
    let mut keywords = [c"data".as_ptr().cast_mut(), ptr::null_mut()];
    // One argument, `data`, by position or keyword; a borrowed reference on success.
    if ffi::PyArg_ParseTupleAndKeywords(
        args,
        kwargs,
        c"O:from_json".as_ptr(),
        keywords.as_mut_ptr(),
        &mut data,
    ) == 0
    {
        return ptr::null_mut();
    }
    ffi_result(|py| {
        let data = Bound::from_borrowed_ptr(py, data);
        let parsed = with_bytes_or_str(&data, |b| {
            serde_json::from_slice::<ChatChunk>(b).map_err(|e| {
                polystream_core::Error::InvalidJson {
                    dialect: "openai_chat",
                    message: e.to_string(),
                    payload: String::from_utf8_lossy(&b[..b.len().min(512)]).into_owned(),
                }
            })
        })?;
        let parsed = parsed.map_err(|e| crate::errors::to_pyerr(py, e, None))?;
        new_chunk(py, Arc::new(parsed))
    })
}

unsafe extern "C" fn to_dict(obj: *mut ffi::PyObject, _: *mut ffi::PyObject) -> *mut ffi::PyObject {
    ffi_result(|py| to_py(py, chunk(obj)))
}

unsafe extern "C" fn to_json_method(
    obj: *mut ffi::PyObject,
    _: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    ffi_result(|py| Ok(PyString::new(py, &to_json(chunk(obj))).into_any()))
}

unsafe extern "C" fn repr(obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
    ffi_result(|py| {
        let text = format!("ChatCompletionChunk({})", to_json(chunk(obj)));
        Ok(PyString::new(py, &text).into_any())
    })
}

/// `==` is true for a chunk with an equal Rust chunk and false for anything else (never
/// NotImplemented); `!=` is its negation; the orderings are NotImplemented.
unsafe extern "C" fn richcompare(
    obj: *mut ffi::PyObject,
    other: *mut ffi::PyObject,
    op: c_int,
) -> *mut ffi::PyObject {
    ffi_result(|py| {
        let other = Bound::from_borrowed_ptr(py, other);
        let eq = || chunk_of(&other).is_some_and(|o| *o == *chunk(obj));
        Ok(match op {
            ffi::Py_EQ => PyBool::new(py, eq()).to_owned().into_any(),
            ffi::Py_NE => PyBool::new(py, !eq()).to_owned().into_any(),
            _ => py.NotImplemented().into_bound(py),
        })
    })
}

/// Dict-style access (`chunk["choices"]`), for code written against dict chunks.
unsafe extern "C" fn getitem(
    obj: *mut ffi::PyObject,
    key: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    ffi_result(|py| {
        let key = Bound::from_borrowed_ptr(py, key);
        // The TypeError pyo3 gave for a `key: &str` argument.
        let key = key
            .downcast::<PyString>()
            .map_err(|e| PyTypeError::new_err(format!("argument 'key': {e}")))?
            .to_str()?;
        let d = to_py(py, chunk(obj))?;
        d.downcast::<PyDict>()?
            .get_item(key)?
            .ok_or_else(|| PyKeyError::new_err(key.to_owned()))
    })
}
