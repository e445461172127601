//! `ChunkDecoder` (bytes → chunk objects for a provider dialect) and `Accumulator`.

use std::sync::Arc;

use polystream_core::{
    Accumulator as CoreAcc, ChatChunk, ChunkDecoder as CoreDecoder, DEFAULT_MAX_EVENT_SIZE,
};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyList, PyString};

use crate::chunks::{chunk_of, new_chunk};
use crate::convert::{to_record, with_bytes, with_bytes_or_str};
use crate::errors::to_pyerr;
use crate::objects::list_from_iter;

/// Bytes of one provider's streaming body in, normalised `ChatCompletionChunk`s out.
///
/// With `accumulate=True` the decoder also keeps the completion so far (`snapshot()`), so a
/// caller that stops early or hits an error still has the partial answer.
#[pyclass(module = "polystream._core")]
pub struct ChunkDecoder {
    core: CoreDecoder,
    acc: Option<CoreAcc>,
    buf: Vec<ChatChunk>,
}

impl ChunkDecoder {
    fn wrap<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let acc = &mut self.acc;
        let chunks = self.buf.drain(..).map(|c| {
            // Into the Arc first, then read from there: each move of a chunk is a memcpy.
            let c = Arc::new(c);
            if let Some(acc) = acc.as_mut() {
                acc.add(&c);
            }
            new_chunk(py, c)
        });
        list_from_iter(py, chunks)
    }

    fn settle<'py>(
        &mut self,
        py: Python<'py>,
        r: polystream_core::Result<()>,
    ) -> PyResult<Bound<'py, PyList>> {
        let list = self.wrap(py)?;
        match r {
            Ok(()) => Ok(list),
            Err(e) => Err(to_pyerr(py, e, Some(list))),
        }
    }
}

#[pymethods]
impl ChunkDecoder {
    #[new]
    #[pyo3(signature = (dialect, *, accumulate = false, max_event_size = DEFAULT_MAX_EVENT_SIZE))]
    fn new(
        py: Python<'_>,
        dialect: &str,
        accumulate: bool,
        max_event_size: usize,
    ) -> PyResult<Self> {
        let core = CoreDecoder::with_max_event_size(dialect, max_event_size)
            .map_err(|e| to_pyerr(py, e, None))?;
        Ok(ChunkDecoder {
            core,
            acc: accumulate.then(CoreAcc::new),
            buf: Vec::new(),
        })
    }

    /// Decode `data`; return the chunks it completed. On an error (a provider error event,
    /// invalid JSON, an oversized event) the chunks completed before it are on `exc.items`.
    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let r = with_bytes(data, |bytes| self.core.feed(bytes, &mut self.buf))?;
        self.settle(py, r)
    }

    /// End of stream: return any last chunks; raise `IncompleteStreamError` if the provider's
    /// terminator never came (a truncated response).
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let r = self.core.finish(&mut self.buf);
        self.settle(py, r)
    }

    /// The provider's terminator (`[DONE]`, `message_stop`, …) has been seen.
    #[getter]
    fn done(&self) -> bool {
        self.core.is_done()
    }

    #[getter]
    fn dialect(&self) -> &'static str {
        self.core.dialect_name()
    }

    /// The completion accumulated so far (requires `accumulate=True`).
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.acc {
            Some(acc) => to_record(py, &acc.snapshot()),
            None => Err(pyo3::exceptions::PyValueError::new_err(
                "snapshot() needs ChunkDecoder(..., accumulate=True)",
            )),
        }
    }
}

static DUMPS: GILOnceCell<Py<PyAny>> = GILOnceCell::new();

/// Merges chunks into the final `ChatCompletion`, O(delta) per chunk.
#[pyclass(module = "polystream._core")]
pub struct Accumulator {
    core: CoreAcc,
}

impl Accumulator {
    fn add_one(&mut self, py: Python<'_>, chunk: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Some(c) = chunk_of(chunk) {
            self.core.add(c);
            return Ok(());
        }
        // Foreign chunks (dicts, openai SDK models, Records): through their JSON.
        let json = if chunk.is_instance_of::<PyString>() {
            chunk.clone()
        } else if chunk.hasattr("model_dump_json")? {
            chunk.call_method0("model_dump_json")?
        } else {
            let plain = if chunk.hasattr("to_dict")? {
                chunk.call_method0("to_dict")?
            } else {
                chunk.clone()
            };
            let dumps = DUMPS.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
                Ok(py.import("json")?.getattr("dumps")?.unbind())
            })?;
            dumps.bind(py).call1((plain,))?
        };
        let parsed = with_bytes_or_str(&json, |b| serde_json::from_slice::<ChatChunk>(b))?;
        let parsed = parsed.map_err(|e| {
            to_pyerr(
                py,
                polystream_core::Error::InvalidJson {
                    dialect: "openai_chat",
                    message: e.to_string(),
                    payload: String::new(),
                },
                None,
            )
        })?;
        self.core.add(&parsed);
        Ok(())
    }
}

#[pymethods]
impl Accumulator {
    #[new]
    fn new() -> Self {
        Accumulator {
            core: CoreAcc::new(),
        }
    }

    /// Add one chunk: a `ChatCompletionChunk`, or any dict / object with the OpenAI chunk shape.
    fn add(&mut self, py: Python<'_>, chunk: &Bound<'_, PyAny>) -> PyResult<()> {
        self.add_one(py, chunk)
    }

    /// Add every chunk of an iterable.
    fn add_many(&mut self, py: Python<'_>, chunks: &Bound<'_, PyAny>) -> PyResult<()> {
        for c in chunks.try_iter()? {
            self.add_one(py, &c?)?;
        }
        Ok(())
    }

    /// The `ChatCompletion` so far.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_record(py, &self.core.snapshot())
    }

    #[getter]
    fn chunk_count(&self) -> usize {
        self.core.chunk_count()
    }
}
