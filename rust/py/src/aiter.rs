//! `chunk_aiter(batches)`: the chunks of an async iterator of lists, for `async for`, at the cost
//! of a list step per chunk.
//!
//! `AsyncStream` reads one list of chunks per upstream read. Handing those out one by one from an
//! async generator costs each chunk an `asend` object, a frame resume and a StopIteration
//! (~1,000 instructions, more than a tenth of a chunk's whole cost at 100 streams). This iterator
//! is its own awaitable and implements `am_send` (PEP 590's send protocol, CPython ≥ 3.10): a
//! chunk already read is the await's result at once, with no frame, exception or allocation. Only
//! when its list is used up does it await `batches.__anext__()`, passing whatever that yields (the
//! event loop's futures) up to the task, and its `throw` / `close` down to it.
//!
//! A CPython type made from a spec, not a pyo3 class: pyo3 has no `am_send` slot.

use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;

use crate::objects::{add_type, method_table, slot};

/// `Py_am_send` from CPython's typeslots.h (3.10+); pyo3-ffi 0.23 lacks it.
const PY_AM_SEND: c_int = 81;

extern "C" {
    // Declared here because pyo3-ffi 0.23 declares it returning `()`: it returns a PySendResult.
    fn PyIter_Send(
        iter: *mut ffi::PyObject,
        arg: *mut ffi::PyObject,
        presult: *mut *mut ffi::PyObject,
    ) -> ffi::PySendResult;
}

use ffi::PySendResult::{PYGEN_ERROR, PYGEN_NEXT, PYGEN_RETURN};

#[repr(C)]
struct ChunkAsyncIter {
    ob_base: ffi::PyObject,
    /// `batches.__anext__`, bound once.
    anext: *mut ffi::PyObject,
    /// The list being handed out, or NULL.
    batch: *mut ffi::PyObject,
    pos: ffi::Py_ssize_t,
    /// The awaitable of `batches.__anext__()` in flight, or NULL.
    inner: *mut ffi::PyObject,
}

static TYPE: AtomicPtr<ffi::PyObject> = AtomicPtr::new(ptr::null_mut());

/// An async iterator (and awaitable) of the items of the lists `batches` yields.
#[pyfunction]
pub fn chunk_aiter<'py>(batches: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = batches.py();
    let anext = batches.getattr("__anext__")?;
    let ty = TYPE.load(Ordering::Acquire);
    if ty.is_null() {
        return Err(PyTypeError::new_err(
            "polystream._core: ChunkAsyncIter is not ready",
        ));
    }
    // SAFETY: `ty` is our heap type (made in `register`, kept for the process); GenericAlloc
    // returns a zeroed, GC-tracked instance or NULL with an exception set. The fields are set
    // before any Python code can run and see them.
    unsafe {
        let obj = ffi::PyType_GenericAlloc(ty.cast(), 0);
        let obj = Bound::from_owned_ptr_or_err(py, obj)?;
        let it = obj.as_ptr().cast::<ChunkAsyncIter>();
        (*it).anext = anext.into_ptr();
        Ok(obj)
    }
}

/// Make the type and add `chunk_aiter` to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let slots = [
        slot(ffi::Py_tp_dealloc, dealloc as *mut c_void),
        slot(ffi::Py_tp_traverse, traverse as *mut c_void),
        slot(ffi::Py_tp_clear, clear as *mut c_void),
        slot(ffi::Py_tp_iter, self_ as *mut c_void),
        slot(ffi::Py_tp_iternext, iternext as *mut c_void),
        slot(ffi::Py_tp_methods, methods()),
        slot(ffi::Py_am_aiter, self_ as *mut c_void),
        slot(ffi::Py_am_anext, self_ as *mut c_void),
        slot(ffi::Py_am_await, self_ as *mut c_void),
        slot(PY_AM_SEND, am_send as *mut c_void),
    ];
    // GC: an iterator holds the batches' generator, which may hold the iterator back.
    let ty = add_type(
        m,
        c"ChunkAsyncIter",
        std::mem::size_of::<ChunkAsyncIter>(),
        ffi::Py_TPFLAGS_HAVE_GC,
        &slots,
    )?;
    TYPE.store(ty.cast(), Ordering::Release);
    m.add_function(wrap_pyfunction!(chunk_aiter, m)?)
}

fn methods() -> *mut c_void {
    method_table(&[
        (
            c"send",
            send,
            ffi::METH_O,
            c"send($self, value, /)\n--\n\nResume the await with `value`: the next chunk as StopIteration, or what the read awaits.",
        ),
        (
            c"throw",
            throw,
            ffi::METH_VARARGS,
            c"Raise an exception into the read in flight, or here when none is.",
        ),
        (
            c"close",
            close,
            ffi::METH_NOARGS,
            c"close($self, /)\n--\n\nClose the read in flight and drop the chunks not handed out.",
        ),
    ])
}

/// Set `*slot` to NULL and release what it held.
unsafe fn clear_field(slot: *mut *mut ffi::PyObject) {
    let old = *slot;
    if !old.is_null() {
        *slot = ptr::null_mut();
        ffi::Py_DecRef(old);
    }
}

/// The read in flight returned `value` (owned): make it the list being handed out. False, with
/// TypeError set, if it is not a list.
unsafe fn take_batch(it: *mut ChunkAsyncIter, value: *mut ffi::PyObject) -> bool {
    clear_field(&mut (*it).inner);
    if ffi::PyList_Check(value) == 0 {
        ffi::Py_DecRef(value);
        ffi::PyErr_SetString(
            ffi::PyExc_TypeError,
            c"chunk_aiter: batches must yield lists".as_ptr(),
        );
        return false;
    }
    clear_field(&mut (*it).batch);
    (*it).batch = value;
    (*it).pos = 0;
    true
}

/// The next item, or the next value to pass up to the event loop. Every path through here runs
/// with the GIL held (CPython calls the slots and methods with it).
unsafe fn step(
    it: *mut ChunkAsyncIter,
    mut arg: *mut ffi::PyObject,
    result: *mut *mut ffi::PyObject,
) -> ffi::PySendResult {
    loop {
        if (*it).inner.is_null() {
            let batch = (*it).batch;
            if !batch.is_null() {
                let n = ffi::PyList_Size(batch);
                if (*it).pos < n {
                    let item = ffi::PyList_GetItem(batch, (*it).pos); // borrowed
                    ffi::Py_IncRef(item);
                    (*it).pos += 1;
                    if (*it).pos == n {
                        clear_field(&mut (*it).batch); // don't keep the read's chunks alive
                    }
                    *result = item;
                    return PYGEN_RETURN;
                }
                clear_field(&mut (*it).batch);
            }
            if (*it).anext.is_null() {
                *result = ptr::null_mut();
                ffi::PyErr_SetString(
                    ffi::PyExc_RuntimeError,
                    c"ChunkAsyncIter was cleared".as_ptr(),
                );
                return PYGEN_ERROR;
            }
            let inner = ffi::PyObject_CallNoArgs((*it).anext);
            if inner.is_null() {
                *result = ptr::null_mut();
                return PYGEN_ERROR;
            }
            (*it).inner = inner;
            arg = ffi::Py_None(); // a fresh awaitable is started with None
        }
        let mut value = ptr::null_mut();
        match PyIter_Send((*it).inner, arg, &mut value) {
            PYGEN_NEXT => {
                *result = value; // what the read awaits (a future): up to the task
                return PYGEN_NEXT;
            }
            PYGEN_RETURN => {
                if !take_batch(it, value) {
                    *result = ptr::null_mut();
                    return PYGEN_ERROR;
                }
            }
            PYGEN_ERROR => {
                // StopAsyncIteration (the end) or the read's error: the await raises it.
                clear_field(&mut (*it).inner);
                *result = ptr::null_mut();
                return PYGEN_ERROR;
            }
        }
    }
}

unsafe extern "C" fn am_send(
    slf: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
    result: *mut *mut ffi::PyObject,
) -> ffi::PySendResult {
    step(slf.cast(), arg, result)
}

/// `send(arg)` / `__next__()` for callers without `am_send` (a tracer, `yield from`): a finished
/// await is StopIteration(item).
unsafe fn send_via_exception(
    slf: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let mut value = ptr::null_mut();
    match step(slf.cast(), arg, &mut value) {
        PYGEN_NEXT => value,
        PYGEN_RETURN => {
            // StopIteration(item) as an instance, so a tuple item is not taken as its arguments.
            let args = ffi::PyTuple_New(1);
            if args.is_null() {
                ffi::Py_DecRef(value);
                return ptr::null_mut();
            }
            ffi::PyTuple_SetItem(args, 0, value); // steals `value`
            let exc = ffi::PyObject_Call(ffi::PyExc_StopIteration, args, ptr::null_mut());
            ffi::Py_DecRef(args);
            if !exc.is_null() {
                ffi::PyErr_SetObject(ffi::PyExc_StopIteration, exc);
                ffi::Py_DecRef(exc);
            }
            ptr::null_mut()
        }
        PYGEN_ERROR => ptr::null_mut(),
    }
}

unsafe extern "C" fn iternext(slf: *mut ffi::PyObject) -> *mut ffi::PyObject {
    send_via_exception(slf, ffi::Py_None())
}

unsafe extern "C" fn send(slf: *mut ffi::PyObject, arg: *mut ffi::PyObject) -> *mut ffi::PyObject {
    send_via_exception(slf, arg)
}

/// `throw(exc)`: into the read in flight (a cancelled task's CancelledError reaches the socket
/// read that way); with none in flight, raised here.
unsafe extern "C" fn throw(
    slf: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let it = slf.cast::<ChunkAsyncIter>();
    if !(*it).inner.is_null() {
        let meth = ffi::PyObject_GetAttrString((*it).inner, c"throw".as_ptr());
        if meth.is_null() {
            return ptr::null_mut();
        }
        let r = ffi::PyObject_Call(meth, args, ptr::null_mut());
        ffi::Py_DecRef(meth);
        if !r.is_null() {
            return r; // the read caught it and awaits again: pass that up
        }
        if ffi::PyErr_ExceptionMatches(ffi::PyExc_StopIteration) == 0 {
            clear_field(&mut (*it).inner);
            return ptr::null_mut();
        }
        // The read caught it and returned its list: hand out the list's first item.
        let (mut t, mut v, mut tb) = (ptr::null_mut(), ptr::null_mut(), ptr::null_mut());
        ffi::PyErr_Fetch(&mut t, &mut v, &mut tb);
        ffi::PyErr_NormalizeException(&mut t, &mut v, &mut tb);
        let batch = if v.is_null() {
            ptr::null_mut()
        } else {
            ffi::PyObject_GetAttrString(v, c"value".as_ptr())
        };
        for o in [t, v, tb] {
            if !o.is_null() {
                ffi::Py_DecRef(o);
            }
        }
        if batch.is_null() {
            clear_field(&mut (*it).inner);
            return ptr::null_mut();
        }
        if !take_batch(it, batch) {
            return ptr::null_mut();
        }
        return send_via_exception(slf, ffi::Py_None());
    }
    // Nothing in flight: raise what was thrown (an instance, or a type and an optional value).
    let n = ffi::PyTuple_Size(args);
    if n < 1 {
        ffi::PyErr_SetString(
            ffi::PyExc_TypeError,
            c"throw expected at least 1 argument".as_ptr(),
        );
        return ptr::null_mut();
    }
    let first = ffi::PyTuple_GetItem(args, 0);
    let value = if n > 1 {
        ffi::PyTuple_GetItem(args, 1)
    } else {
        ptr::null_mut()
    };
    if ffi::PyObject_IsInstance(first, ffi::PyExc_BaseException) == 1 {
        ffi::PyErr_SetObject(ffi::Py_TYPE(first).cast(), first);
    } else if ffi::PyType_Check(first) != 0
        && ffi::PyObject_IsSubclass(first, ffi::PyExc_BaseException) == 1
    {
        let value = if value.is_null() || value == ffi::Py_None() {
            ptr::null_mut()
        } else {
            value
        };
        ffi::PyErr_SetObject(first, value);
    } else {
        ffi::PyErr_SetString(
            ffi::PyExc_TypeError,
            c"exceptions must derive from BaseException".as_ptr(),
        );
    }
    ptr::null_mut()
}

/// `close()`: closes the read in flight, if any, and drops the chunks not handed out.
unsafe extern "C" fn close(slf: *mut ffi::PyObject, _: *mut ffi::PyObject) -> *mut ffi::PyObject {
    let it = slf.cast::<ChunkAsyncIter>();
    clear_field(&mut (*it).batch);
    if !(*it).inner.is_null() {
        let inner = (*it).inner;
        (*it).inner = ptr::null_mut();
        let meth = ffi::PyObject_GetAttrString(inner, c"close".as_ptr());
        ffi::Py_DecRef(inner);
        if meth.is_null() {
            return ptr::null_mut();
        }
        let r = ffi::PyObject_CallNoArgs(meth);
        ffi::Py_DecRef(meth);
        if r.is_null() {
            return ptr::null_mut();
        }
        ffi::Py_DecRef(r);
    }
    let none = ffi::Py_None();
    ffi::Py_IncRef(none);
    none
}

unsafe extern "C" fn self_(slf: *mut ffi::PyObject) -> *mut ffi::PyObject {
    ffi::Py_IncRef(slf);
    slf
}

unsafe extern "C" fn traverse(
    slf: *mut ffi::PyObject,
    visit: ffi::visitproc,
    arg: *mut c_void,
) -> c_int {
    let it = slf.cast::<ChunkAsyncIter>();
    for o in [(*it).anext, (*it).batch, (*it).inner] {
        if !o.is_null() {
            let r = visit(o, arg);
            if r != 0 {
                return r;
            }
        }
    }
    0
}

unsafe extern "C" fn clear(slf: *mut ffi::PyObject) -> c_int {
    let it = slf.cast::<ChunkAsyncIter>();
    clear_field(&mut (*it).inner);
    clear_field(&mut (*it).batch);
    clear_field(&mut (*it).anext);
    0
}

unsafe extern "C" fn dealloc(slf: *mut ffi::PyObject) {
    let ty = ffi::Py_TYPE(slf);
    ffi::PyObject_GC_UnTrack(slf.cast());
    clear(slf);
    ffi::PyObject_GC_Del(slf.cast());
    ffi::Py_DecRef(ty.cast()); // instances of a heap type hold a reference to it
}
