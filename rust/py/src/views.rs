//! The views under `chunk.choices`: `ChunkChoice`, `ChoiceDelta`, `ChoiceDeltaToolCall` and
//! `ChoiceDeltaToolCallFunction`.
//!
//! Every client loop reads `chunk.choices[0].delta.content`, so each chunk makes at least a choice
//! and a delta view, and frees them one chunk later. They are CPython types made from a spec, not
//! pyo3 classes. An instance is an object header, then a [`View`]:
//! - the shared Rust chunk and the view's place in it, for `to_dict()`, `repr()` and the rare getters;
//! - up to five attribute objects, which CPython reads as struct members without calling into Rust.
//!
//! A freed view goes to its type's free list and the next view of that type reuses its memory:
//! no malloc or free, no zeroing. pyo3's per-object work is gone too: its allocation and
//! initialiser layers, its dealloc trampoline, and the type-slot lookups that abi3 makes on every
//! dealloc. Together that is about 400 instructions per chunk.
//!
//! Views are frozen: attributes are read-only, and `choice.delta is choice.delta`, as with the
//! openai SDK's models.

use std::cell::{Cell, UnsafeCell};
use std::ffi::{c_int, c_void, CStr};
use std::mem::{offset_of, size_of};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;

use polystream_core::chunk::{ChatChunk, ChunkChoice, Delta, FunctionDelta, ToolCallDelta};
use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::convert::{new_str, to_py, to_record};
use crate::objects::{ffi_result, list_from_iter, method_table, slot, Member};

/// The most attributes a view keeps as members (a delta's five).
const MAX_ATTRS: usize = 5;

/// Which view a [`View`] is; indexes [`TYPES`] and [`SPECS`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
enum Kind {
    Choice = 0,
    Delta = 1,
    ToolCall = 2,
    Function = 3,
}

/// A view's Rust part, right after the object header.
struct View {
    chunk: Arc<ChatChunk>,
    /// The choice's position in `chunk.choices`.
    i: u32,
    /// The tool call's position in the choice's `delta.tool_calls` (tool calls and functions).
    j: u32,
    kind: Kind,
    /// The member attributes, in the order of the kind's [`Spec::attrs`]; `None` past them. A
    /// `Option<Member>` is one nullable object pointer (Member is a transparent `Py`), which is
    /// what a `Py_T_OBJECT_EX` member reads.
    attrs: [Option<Member>; MAX_ATTRS],
}

#[repr(C)]
struct ViewObject {
    ob_base: ffi::PyObject,
    view: View,
}

impl View {
    fn choice(&self) -> &ChunkChoice {
        &self.chunk.choices[self.i as usize]
    }
    fn delta(&self) -> &Delta {
        &self.choice().delta
    }
    fn tool_call(&self) -> &ToolCallDelta {
        tool_call_at(&self.chunk, self.i, self.j)
    }
    fn function(&self) -> &FunctionDelta {
        self.tool_call()
            .function
            .as_ref()
            .expect("function view made from a present function")
    }

    /// The viewed part as plain JSON-ready Python data, in OpenAI's wire shape.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.kind {
            Kind::Choice => to_py(py, self.choice()),
            Kind::Delta => to_py(py, self.delta()),
            Kind::ToolCall => to_py(py, self.tool_call()),
            Kind::Function => to_py(py, self.function()),
        }
    }

    fn to_json(&self) -> String {
        match self.kind {
            Kind::Choice => crate::chunks::to_json(self.choice()),
            Kind::Delta => crate::chunks::to_json(self.delta()),
            Kind::ToolCall => crate::chunks::to_json(self.tool_call()),
            Kind::Function => crate::chunks::to_json(self.function()),
        }
    }
}

/// `chunk.choices`: a list of choice views, with everything under them already built.
pub fn choices<'py>(py: Python<'py>, chunk: &Arc<ChatChunk>) -> PyResult<Bound<'py, PyAny>> {
    let views = (0..chunk.choices.len()).map(|i| choice(py, chunk, i as u32));
    Ok(list_from_iter(py, views)?.into_any())
}

fn choice<'py>(py: Python<'py>, chunk: &Arc<ChatChunk>, i: u32) -> PyResult<Bound<'py, PyAny>> {
    let c = &chunk.choices[i as usize];
    let attrs = [
        Some(Member::new(c.index.into_pyobject(py)?.into_any())),
        Some(Member::new(delta(py, chunk, i)?)),
        Some(Member::opt_str(py, c.finish_reason.as_deref())?),
        Some(Member::opt_str(py, c.native_finish_reason.as_deref())?),
        None,
    ];
    new_view(py, Kind::Choice, chunk, i, 0, attrs)
}

fn delta<'py>(py: Python<'py>, chunk: &Arc<ChatChunk>, i: u32) -> PyResult<Bound<'py, PyAny>> {
    let d = &chunk.choices[i as usize].delta;
    let tool_calls = Member::opt(py, d.tool_calls.as_ref(), |calls| {
        let views = (0..calls.len()).map(|j| tool_call(py, chunk, i, j as u32));
        Ok(list_from_iter(py, views)?.into_any())
    })?;
    let attrs = [
        Some(Member::opt_str(py, d.role.as_deref())?),
        Some(Member::opt_str(py, d.content.as_deref())?),
        Some(Member::opt_str(py, d.reasoning_content.as_deref())?),
        Some(Member::opt_str(py, d.refusal.as_deref())?),
        Some(tool_calls),
    ];
    new_view(py, Kind::Delta, chunk, i, 0, attrs)
}

fn tool_call<'py>(
    py: Python<'py>,
    chunk: &Arc<ChatChunk>,
    i: u32,
    j: u32,
) -> PyResult<Bound<'py, PyAny>> {
    let tc = tool_call_at(chunk, i, j);
    let function = Member::opt(py, tc.function.as_ref(), |f| {
        let attrs = [
            Some(Member::opt_str(py, f.name.as_deref())?),
            Some(Member::opt_str(py, f.arguments.as_deref())?),
            None,
            None,
            None,
        ];
        new_view(py, Kind::Function, chunk, i, j, attrs)
    })?;
    let attrs = [
        Some(Member::new(tc.index.into_pyobject(py)?.into_any())),
        Some(Member::opt_str(py, tc.id.as_deref())?),
        Some(Member::opt_str(py, tc.kind.as_deref())?),
        Some(function),
        None,
    ];
    new_view(py, Kind::ToolCall, chunk, i, j, attrs)
}

/// Tool call `j` of choice `i`'s delta; views are made only for tool calls that are there.
fn tool_call_at(chunk: &ChatChunk, i: u32, j: u32) -> &ToolCallDelta {
    &chunk.choices[i as usize]
        .delta
        .tool_calls
        .as_ref()
        .expect("tool call view made from a present list")[j as usize]
}

/// A view object of `kind`, from its type's free list when it has one.
fn new_view<'py>(
    py: Python<'py>,
    kind: Kind,
    chunk: &Arc<ChatChunk>,
    i: u32,
    j: u32,
    attrs: [Option<Member>; MAX_ATTRS],
) -> PyResult<Bound<'py, PyAny>> {
    let t = &TYPES[kind as usize];
    let ty = t.ty.load(Ordering::Acquire);
    if ty.is_null() {
        return Err(PyTypeError::new_err(
            "polystream._core: views are not ready",
        ));
    }
    let view = View {
        chunk: chunk.clone(),
        i,
        j,
        kind,
        attrs,
    };
    // SAFETY: the GIL is held (`py`). A free-list entry is an instance of this type whose view
    // was dropped (see `dealloc`): PyObject_Init makes it a live object again (type, type
    // reference, refcount 1). GenericAlloc returns a new instance or NULL with an exception set
    // (then `view` is dropped here, releasing what it holds). `view` is written into the
    // uninitialised field before any Python code can see the object.
    unsafe {
        let obj = match t.free.pop() {
            Some(obj) => ffi::PyObject_Init(obj, ty),
            None => ffi::PyType_GenericAlloc(ty, 0),
        };
        let obj = Bound::from_owned_ptr_or_err(py, obj)?;
        ptr::write(
            ptr::addr_of_mut!((*obj.as_ptr().cast::<ViewObject>()).view),
            view,
        );
        Ok(obj)
    }
}

/// The view in `obj`.
///
/// # Safety
/// `obj` must be a live instance of one of the view types, which is what CPython passes to their
/// slots, methods and descriptors (each checks the instance's type first; the types cannot be
/// subclassed or instantiated from Python).
unsafe fn view<'a>(obj: *mut ffi::PyObject) -> &'a View {
    &(*obj.cast::<ViewObject>()).view
}

/// Freed instances of one view type, kept for reuse. Touched only with the GIL held: abi3
/// modules run on GIL builds of CPython only, and every caller holds it (`dealloc`, `new_view`).
struct FreeList {
    items: UnsafeCell<[*mut ffi::PyObject; FREE_CAP]>,
    len: Cell<usize>,
}

/// Enough for the views of a read's worth of chunks; more are freed to the allocator.
const FREE_CAP: usize = 256;

// SAFETY: see the type's doc: the GIL serialises every access.
unsafe impl Sync for FreeList {}

impl FreeList {
    const fn new() -> Self {
        FreeList {
            items: UnsafeCell::new([ptr::null_mut(); FREE_CAP]),
            len: Cell::new(0),
        }
    }
    /// # Safety
    /// The GIL must be held.
    unsafe fn pop(&self) -> Option<*mut ffi::PyObject> {
        let n = self.len.get();
        if n == 0 {
            return None;
        }
        self.len.set(n - 1);
        Some((*self.items.get())[n - 1])
    }
    /// Keep `obj`; false if the list is full. # Safety: the GIL must be held.
    unsafe fn push(&self, obj: *mut ffi::PyObject) -> bool {
        let n = self.len.get();
        if n == FREE_CAP {
            return false;
        }
        (*self.items.get())[n] = obj;
        self.len.set(n + 1);
        true
    }
}

struct ViewType {
    ty: AtomicPtr<ffi::PyTypeObject>,
    free: FreeList,
}

impl ViewType {
    const fn new() -> Self {
        ViewType {
            ty: AtomicPtr::new(ptr::null_mut()),
            free: FreeList::new(),
        }
    }
}

static TYPES: [ViewType; 4] = [
    ViewType::new(),
    ViewType::new(),
    ViewType::new(),
    ViewType::new(),
];

/// A getter computed on read, for what is rarely read (not worth a member per view).
type Getter = for<'py> fn(&View, Python<'py>) -> PyResult<Bound<'py, PyAny>>;

/// A view type's definition, at its kind's index in [`SPECS`].
struct Spec {
    /// The class name in the module, and the prefix of its `repr()`.
    name: &'static CStr,
    repr: &'static str,
    /// Member attribute names, in the order of [`View::attrs`].
    attrs: &'static [&'static CStr],
    getters: &'static [(&'static CStr, Getter)],
}

const SPECS: [Spec; 4] = [
    Spec {
        name: c"ChunkChoice",
        repr: "Choice",
        attrs: &[
            c"index",
            c"delta",
            c"finish_reason",
            c"native_finish_reason",
        ],
        getters: &[(c"logprobs", |v, py| {
            opt_record(py, v.choice().logprobs.as_ref())
        })],
    },
    Spec {
        name: c"ChoiceDelta",
        repr: "ChoiceDelta",
        attrs: &[
            c"role",
            c"content",
            c"reasoning_content",
            c"refusal",
            c"tool_calls",
        ],
        getters: &[
            (c"reasoning_signature", |v, py| {
                match v.delta().reasoning_signature.as_deref() {
                    Some(s) => Ok(new_str(py, s)?.into_any()),
                    None => Ok(py.None().into_bound(py)),
                }
            }),
            (c"thinking_blocks", |v, py| {
                opt_record(py, v.delta().thinking_blocks.as_ref())
            }),
        ],
    },
    Spec {
        name: c"ChoiceDeltaToolCall",
        repr: "ChoiceDeltaToolCall",
        attrs: &[c"index", c"id", c"type", c"function"],
        getters: &[],
    },
    Spec {
        name: c"ChoiceDeltaToolCallFunction",
        repr: "ChoiceDeltaToolCallFunction",
        attrs: &[c"name", c"arguments"],
        getters: &[],
    },
];

fn opt_record<'py, T: serde::Serialize>(
    py: Python<'py>,
    v: Option<&T>,
) -> PyResult<Bound<'py, PyAny>> {
    match v {
        Some(v) => to_record(py, v),
        None => Ok(py.None().into_bound(py)),
    }
}

/// Make the four view types and add them to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    for (spec, t) in SPECS.iter().zip(&TYPES) {
        let ty = make_type(m, spec)?;
        m.add(spec.name.to_str()?, &ty)?;
        // Kept for the life of the process, like a static type.
        t.ty.store(ty.into_ptr().cast(), Ordering::Release);
    }
    Ok(())
}

fn make_type<'py>(m: &Bound<'py, PyModule>, spec: &Spec) -> PyResult<Bound<'py, PyAny>> {
    let py = m.py();
    assert!(
        spec.attrs.len() <= MAX_ATTRS,
        "a view has at most {MAX_ATTRS} members"
    );
    let base = offset_of!(ViewObject, view) + offset_of!(View, attrs);
    // CPython keeps pointers into these tables for the life of the type (made once, at import),
    // and the type's qualified name into `full_name`: all are leaked.
    let members: Vec<ffi::PyMemberDef> = spec
        .attrs
        .iter()
        .enumerate()
        .map(|(k, name)| ffi::PyMemberDef {
            name: name.as_ptr(),
            type_code: ffi::Py_T_OBJECT_EX,
            offset: (base + k * size_of::<Option<Member>>()) as ffi::Py_ssize_t,
            flags: ffi::Py_READONLY,
            doc: ptr::null(),
        })
        .chain([zeroed_member()])
        .collect();
    let getset: Vec<ffi::PyGetSetDef> = spec
        .getters
        .iter()
        .map(|&(name, get)| ffi::PyGetSetDef {
            name: name.as_ptr(),
            get: Some(raw_getter),
            set: None,
            doc: ptr::null(),
            closure: get as *mut c_void, // the function travels in the closure pointer
        })
        .chain([ffi::PyGetSetDef {
            name: ptr::null(),
            get: None,
            set: None,
            doc: ptr::null(),
            closure: ptr::null_mut(),
        }])
        .collect();
    let full_name = format!("polystream._core.{}", spec.name.to_str()?);
    let full_name = Box::leak(std::ffi::CString::new(full_name)?.into_boxed_c_str());
    let mut slots = [
        slot(ffi::Py_tp_dealloc, dealloc as *mut c_void),
        slot(ffi::Py_tp_repr, repr as *mut c_void),
        slot(ffi::Py_tp_members, Vec::leak(members).as_mut_ptr().cast()),
        slot(ffi::Py_tp_getset, Vec::leak(getset).as_mut_ptr().cast()),
        slot(
            ffi::Py_tp_methods,
            method_table(&[(
                c"to_dict",
                to_dict,
                ffi::METH_NOARGS,
                c"to_dict($self, /)\n--\n\nThe view as plain JSON-ready Python data, in OpenAI's wire shape.",
            )]),
        ),
        slot(0, ptr::null_mut()),
    ];
    let mut type_spec = ffi::PyType_Spec {
        name: full_name.as_ptr(),
        basicsize: size_of::<ViewObject>() as c_int,
        itemsize: 0,
        // Not instantiable from Python (a view is only ever made here, over a chunk), not
        // subclassable, type attributes fixed. No GC: a view refers only to views below it.
        flags: (ffi::Py_TPFLAGS_DEFAULT
            | ffi::Py_TPFLAGS_DISALLOW_INSTANTIATION
            | ffi::Py_TPFLAGS_IMMUTABLETYPE) as _,
        slots: slots.as_mut_ptr(),
    };
    // SAFETY: the spec and its slots are valid for the call (CPython copies the spec; the tables
    // and the name it keeps pointers to are leaked). A new reference or NULL with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyType_FromSpec(&mut type_spec)) }
}

fn zeroed_member() -> ffi::PyMemberDef {
    ffi::PyMemberDef {
        name: ptr::null(),
        type_code: 0,
        offset: 0,
        flags: 0,
        doc: ptr::null(),
    }
}

unsafe extern "C" fn dealloc(obj: *mut ffi::PyObject) {
    let vo = obj.cast::<ViewObject>();
    let kind = (*vo).view.kind;
    // Releases the chunk and the attributes; a delta or tool-call list freed here frees its views
    // first (into their own free lists). No Python code runs: they are strs, ints, lists and views.
    ptr::drop_in_place(ptr::addr_of_mut!((*vo).view));
    let ty = ffi::Py_TYPE(obj);
    if !TYPES[kind as usize].free.push(obj) {
        ffi::PyObject_Free(obj.cast()); // the heap type's tp_free for a non-GC type
    }
    ffi::Py_DecRef(ty.cast()); // an instance of a heap type holds a reference to it
}

unsafe extern "C" fn repr(obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
    ffi_result(|py| {
        let v = view(obj);
        let text = format!("{}({})", SPECS[v.kind as usize].repr, v.to_json());
        Ok(PyString::new(py, &text).into_any())
    })
}

unsafe extern "C" fn to_dict(obj: *mut ffi::PyObject, _: *mut ffi::PyObject) -> *mut ffi::PyObject {
    ffi_result(|py| view(obj).to_dict(py))
}

unsafe extern "C" fn raw_getter(
    obj: *mut ffi::PyObject,
    closure: *mut c_void,
) -> *mut ffi::PyObject {
    // SAFETY: `closure` is the `Getter` that `make_type` stored in this descriptor.
    let get = std::mem::transmute::<*mut c_void, Getter>(closure);
    ffi_result(|py| get(view(obj), py))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_optional_member_is_one_object_pointer() {
        assert_eq!(size_of::<Option<Member>>(), size_of::<*mut ffi::PyObject>());
        let names = [Kind::Choice, Kind::Delta, Kind::ToolCall, Kind::Function]
            .map(|k| SPECS[k as usize].name.to_str().expect("ASCII"));
        assert_eq!(
            names,
            [
                "ChunkChoice",
                "ChoiceDelta",
                "ChoiceDeltaToolCall",
                "ChoiceDeltaToolCallFunction"
            ]
        );
    }
}
