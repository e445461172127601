//! `SSEDecoder` and `ServerSentEvent` for Python.

use polystream_core::sse::{Event, SseDecoder as CoreSse, DEFAULT_MAX_EVENT_SIZE};

use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyList, PyString};

use crate::convert::{str_lossy, with_bytes};
use crate::errors::to_pyerr;
use crate::objects::{add_members, Member, TypeCache};

/// One event. `event` is "message" when the stream named none; `id` is the last event ID in force.
/// Those two and `data` are struct members (see [`Member`]), read without entering Rust.
#[pyclass(frozen, module = "polystream._core")]
pub struct ServerSentEvent {
    event: Member<PyString>,
    data: Member<PyString>,
    id: Member<PyString>,
    retry: Option<u64>,
}

impl ServerSentEvent {
    fn new_raw(
        event: Bound<'_, PyString>,
        data: Bound<'_, PyString>,
        id: Bound<'_, PyString>,
        retry: Option<u64>,
    ) -> Self {
        ServerSentEvent {
            event: Member::new(event),
            data: Member::new(data),
            id: Member::new(id),
            retry,
        }
    }

    pub fn add_members(py: Python<'_>) -> PyResult<()> {
        add_members!(py, ServerSentEvent { c"event" => event, c"data" => data, c"id" => id })
    }
}

static EVENT_TYPE: TypeCache<ServerSentEvent> = TypeCache::new();
static JSON_LOADS: GILOnceCell<Py<PyAny>> = GILOnceCell::new();

#[pymethods]
impl ServerSentEvent {
    #[new]
    #[pyo3(
        signature = (data = String::new(), event = String::from("message"), id = String::new(), retry = None),
        text_signature = "(data='', event='message', id='', retry=None)"
    )]
    fn new(py: Python<'_>, data: String, event: String, id: String, retry: Option<u64>) -> Self {
        ServerSentEvent::new_raw(
            PyString::new(py, &event),
            PyString::new(py, &data),
            PyString::new(py, &id),
            retry,
        )
    }
    #[getter]
    fn retry(&self) -> Option<u64> {
        self.retry
    }
    /// Parse `data` as JSON.
    fn json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let loads = JSON_LOADS.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
            Ok(py.import("json")?.getattr("loads")?.unbind())
        })?;
        loads.bind(py).call1((self.data.bind(py),))
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "ServerSentEvent(event={}, data={}, id={}, retry={})",
            self.event.bind(py).repr()?,
            self.data.bind(py).repr()?,
            self.id.bind(py).repr()?,
            self.retry
                .map_or_else(|| "None".to_owned(), |r| r.to_string())
        ))
    }
    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(o) = other.downcast::<ServerSentEvent>() else {
            return Ok(false);
        };
        let o = o.get();
        Ok(self.retry == o.retry
            && self.event.bind(py).as_any().eq(o.event.bind(py))?
            && self.data.bind(py).as_any().eq(o.data.bind(py))?
            && self.id.bind(py).as_any().eq(o.id.bind(py))?)
    }
}

/// Incremental WHATWG Server-Sent Events decoder: feed bytes split anywhere, get whole events.
#[pyclass(module = "polystream._core")]
pub struct SSEDecoder {
    core: CoreSse,
    strings: StringCache,
}

/// Decoded strings reused across events: the type and id rarely change within a stream.
struct StringCache {
    message: Py<PyString>,
    last_type: Option<(Vec<u8>, Py<PyString>)>,
    id_cache: (u64, Py<PyString>),
}

impl StringCache {
    fn make_event(&mut self, py: Python<'_>, ev: Event<'_>) -> PyResult<Py<PyAny>> {
        let event = if ev.event.is_empty() {
            self.message.bind(py).clone()
        } else {
            match &self.last_type {
                Some((raw, s)) if raw.as_slice() == ev.event => s.bind(py).clone(),
                _ => {
                    let s = str_lossy(py, ev.event)?;
                    self.last_type = Some((ev.event.to_vec(), s.clone().unbind()));
                    s
                }
            }
        };
        if self.id_cache.0 != ev.id_generation {
            self.id_cache = (ev.id_generation, str_lossy(py, ev.id)?.unbind());
        }
        let id = self.id_cache.1.bind(py).clone();
        let obj = ServerSentEvent::new_raw(event, str_lossy(py, ev.data)?, id, ev.retry);
        Ok(EVENT_TYPE.new_object(py, obj)?.into_any().unbind())
    }
}

#[pymethods]
impl SSEDecoder {
    #[new]
    #[pyo3(signature = (*, max_event_size = DEFAULT_MAX_EVENT_SIZE))]
    fn new(py: Python<'_>, max_event_size: usize) -> Self {
        SSEDecoder {
            core: CoreSse::with_max_event_size(max_event_size),
            strings: StringCache {
                message: PyString::intern(py, "message").unbind(),
                last_type: None,
                id_cache: (0, PyString::intern(py, "").unbind()),
            },
        }
    }

    /// Decode `data` (bytes, bytearray or memoryview); return the events it completed.
    /// On a decoding error the events completed before it are on the exception's `items`.
    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut out: Vec<Py<PyAny>> = Vec::new();
        let mut py_err: Option<PyErr> = None;
        let result = with_bytes(data, |bytes| {
            let strings = &mut self.strings;
            self.core.feed(bytes, |ev| {
                match strings.make_event(py, ev) {
                    Ok(o) => out.push(o),
                    Err(e) => py_err = Some(e),
                }
                Ok(())
            })
        })?;
        if let Some(e) = py_err {
            return Err(e);
        }
        let list = PyList::new(py, out)?;
        match result {
            Ok(()) => Ok(list),
            Err(e) => Err(to_pyerr(py, e, Some(list))),
        }
    }

    /// End of stream: an unfinished event is discarded (per the spec). Returns an empty list, so
    /// `feed` + `finish` read the same as for every other decoder. The decoder can then be reused
    /// for a reconnection; the last event ID and retry survive.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.core.finish().map_err(|e| to_pyerr(py, e, None))?;
        Ok(PyList::empty(py))
    }

    /// The last event ID string, for a reconnection's `Last-Event-ID` header.
    #[getter]
    fn last_event_id<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyString>> {
        str_lossy(py, self.core.last_event_id())
    }

    /// Reconnection time in milliseconds from the last valid `retry` field, if any.
    #[getter]
    fn retry(&self) -> Option<u64> {
        self.core.reconnection_time()
    }

    #[getter]
    fn max_event_size(&self) -> usize {
        self.core.max_event_size()
    }
}
