//! The views under `chunk.choices`: `ChunkChoice`, `ChoiceDelta`, `ChoiceDeltaToolCall` and
//! `ChoiceDeltaToolCallFunction`.
//!
//! Every client loop reads `chunk.choices[0].delta.content`, so each chunk makes at least a choice
//! and a delta view, and frees them one chunk later. They are CPython types made from a spec, not
//! pyo3 classes. An instance is an object header, then a [`View`]:
//! - the shared Rust chunk and the view's place in it, for `to_dict()`, `repr()` and the rare getters;
//! - up to five attribute objects, which CPython reads as struct members without calling into Rust.
//!
//! Each view type is a [`SpecType`]: a freed view goes to its type's free list and the next view
//! of that type reuses its memory, without pyo3's per-object work. Together that saved about 400
//! instructions per chunk.
//!
//! Views are frozen: attributes are read-only, and `choice.delta is choice.delta`, as with the
//! openai SDK's models.

use std::ffi::{c_void, CStr};
use std::mem::{offset_of, size_of};
use std::ptr;
use std::sync::Arc;

use polystream_core::chunk::{ChatChunk, ChunkChoice, Delta, FunctionDelta, ToolCallDelta};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::convert::{new_str, to_py, to_record};
use crate::objects::{
    ffi_result, getset_table, list_from_iter, method_table, slot, spec_value, Member, SpecGetter,
    SpecObject, SpecType, SpecValue,
};

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
    let view = View {
        chunk: chunk.clone(),
        i,
        j,
        kind,
        attrs,
    };
    TYPES[kind as usize].new_object(py, view)
}

/// The view in `obj`.
///
/// # Safety
/// `obj` must be a live instance of one of the view types (see [`spec_value`]).
unsafe fn view<'a>(obj: *mut ffi::PyObject) -> &'a View {
    spec_value(obj)
}

static TYPES: [SpecType<View>; 4] = [
    SpecType::new(),
    SpecType::new(),
    SpecType::new(),
    SpecType::new(),
];

impl SpecValue for View {
    fn spec_type(&self) -> &'static SpecType<View> {
        &TYPES[self.kind as usize]
    }
}

/// A view type's definition, at its kind's index in [`SPECS`].
struct Spec {
    /// The class name in the module, and the prefix of its `repr()`.
    name: &'static CStr,
    repr: &'static str,
    /// Member attribute names, in the order of [`View::attrs`].
    attrs: &'static [&'static CStr],
    /// Attributes computed on read, for what is rarely read (not worth a member per view).
    getters: &'static [(&'static CStr, SpecGetter<View>)],
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
            (c"annotations", |v, py| {
                opt_record(py, v.delta().annotations.as_ref())
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
        register_type(m, spec, t)?;
    }
    Ok(())
}

fn register_type(m: &Bound<'_, PyModule>, spec: &Spec, t: &SpecType<View>) -> PyResult<()> {
    assert!(
        spec.attrs.len() <= MAX_ATTRS,
        "a view has at most {MAX_ATTRS} members"
    );
    let base = offset_of!(SpecObject<View>, value) + offset_of!(View, attrs);
    // CPython keeps pointers into the table for the life of the type (made once, at import):
    // leaked.
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
    // No GC (see `SpecType::register`): a view refers only to views below it.
    t.register(
        m,
        spec.name,
        &[
            slot(ffi::Py_tp_repr, repr as *mut c_void),
            slot(ffi::Py_tp_members, Vec::leak(members).as_mut_ptr().cast()),
            slot(ffi::Py_tp_getset, getset_table(spec.getters)),
            slot(
                ffi::Py_tp_methods,
                method_table(&[(
                    c"to_dict",
                    to_dict,
                    ffi::METH_NOARGS,
                    c"to_dict($self, /)\n--\n\nThe view as plain JSON-ready Python data, in OpenAI's wire shape.",
                )]),
            ),
        ],
    )
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
