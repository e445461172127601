//! Helpers for the Python objects made on the hot paths (one or more per chunk or per event).

use std::cell::{Cell, UnsafeCell};
use std::ffi::{c_int, c_void, CStr};
use std::marker::PhantomData;
use std::mem::{size_of, ManuallyDrop};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use pyo3::exceptions::{PySystemError, PyTypeError};
use pyo3::ffi;
use pyo3::impl_::pyclass::class_offset;
use pyo3::impl_::pyclass_init::PyObjectInit;
use pyo3::prelude::*;
use pyo3::pyclass::boolean_struct::True;
use pyo3::types::PyList;
use pyo3::{PyClass, PyClassInitializer};

/// A Python object built on first use and kept: a cheaper `GILOnceCell<Py<PyAny>>` for values
/// made per chunk. GILOnceCell goes through `std::sync::Once` and pyo3's deferred decref, about
/// 250 instructions per cell; this is one atomic load, one compare-exchange and one decref.
pub struct OnceObject(AtomicPtr<ffi::PyObject>);

impl OnceObject {
    pub const fn new() -> Self {
        OnceObject(AtomicPtr::new(ptr::null_mut()))
    }

    /// The cached object, made by `init` if there is none yet.
    pub fn get_or_try_init<'py>(
        &self,
        py: Python<'py>,
        init: impl FnOnce() -> PyResult<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cached = self.0.load(Ordering::Acquire);
        if !cached.is_null() {
            // SAFETY: a non-null pointer is a strong reference the cell owns until it is dropped,
            // and `&self` keeps the cell alive; the GIL is held (`py`).
            return Ok(unsafe { Bound::from_borrowed_ptr(py, cached) });
        }
        let made = init()?;
        match self.0.compare_exchange(
            ptr::null_mut(),
            made.as_ptr(),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: the cell now owns `made`'s reference (`into_ptr` gives it up); the caller
            // gets a new one. The GIL is held (`py`).
            Ok(_) => Ok(unsafe { Bound::from_borrowed_ptr(py, made.into_ptr()) }),
            // `init` let another thread in (it ran Python code) and that thread stored first: use
            // its object so that every caller sees the same one; ours is dropped.
            // SAFETY: as for `cached` above.
            Err(existing) => Ok(unsafe { Bound::from_borrowed_ptr(py, existing) }),
        }
    }
}

impl Drop for OnceObject {
    fn drop(&mut self) {
        let p = *self.0.get_mut();
        if !p.is_null() {
            // SAFETY: the cell only becomes non-null through `get_or_try_init`, which needs the GIL
            // and a `&self` of a chunk object's field: such a cell is dropped only from that
            // object's tp_dealloc, which CPython runs with the GIL held. The cell owns exactly this
            // one reference. (Releasing it directly skips pyo3's thread-local GIL check.)
            unsafe { ffi::Py_DecRef(p) }
        }
    }
}

/// A pyclass's type object, looked up once. `Bound::new` finds it through pyo3's lazy type
/// machinery on every call (~40 instructions), a noticeable share of an SSE event's cost.
pub struct TypeCache<T>(AtomicPtr<ffi::PyTypeObject>, PhantomData<fn() -> T>);

impl<T: PyClass> TypeCache<T> {
    pub const fn new() -> Self {
        TypeCache(AtomicPtr::new(ptr::null_mut()), PhantomData)
    }

    /// `Bound::new(py, value)`.
    pub fn new_object<'py>(&self, py: Python<'py>, value: T) -> PyResult<Bound<'py, T>>
    where
        PyClassInitializer<T>: From<T>,
    {
        let mut ty = self.0.load(Ordering::Relaxed);
        if ty.is_null() {
            ty = T::type_object_raw(py);
            self.0.store(ty, Ordering::Relaxed);
        }
        // SAFETY: `ty` is T's type object, which pyo3 keeps alive for the life of the process;
        // into_new_object returns a new reference to a T (or an error), owned by the Bound.
        unsafe {
            let obj = PyClassInitializer::from(value).into_new_object(py, ty)?;
            Ok(Bound::from_owned_ptr(py, obj).downcast_into_unchecked())
        }
    }
}

/// A list of an exact-size iterator's items, filled in place (no intermediate Vec). Returns the
/// first error an item is.
pub fn list_from_iter<'py>(
    py: Python<'py>,
    items: impl ExactSizeIterator<Item = PyResult<Bound<'py, PyAny>>>,
) -> PyResult<Bound<'py, PyList>> {
    let n = items.len();
    // SAFETY: PyList_New returns a new reference or NULL with an exception set, owned by the Bound
    // (so an early return frees the list and the items already set; unset slots are NULL, which
    // list_dealloc skips). PyList_SetItem steals the item's reference into slot i < n of a list
    // no other code has seen.
    unsafe {
        let list = Bound::from_owned_ptr_or_err(py, ffi::PyList_New(n as ffi::Py_ssize_t))?;
        let mut filled = 0;
        for item in items.take(n) {
            if ffi::PyList_SetItem(list.as_ptr(), filled as ffi::Py_ssize_t, item?.into_ptr()) != 0
            {
                return Err(PyErr::fetch(py));
            }
            filled += 1;
        }
        if filled != n {
            return Err(PySystemError::new_err(
                "iterator shorter than its reported length",
            ));
        }
        Ok(list.downcast_into_unchecked())
    }
}

/// A Python object held by a frozen pyclass or a chunk view ([`crate::views`]) and exposed as a
/// read-only attribute (by [`add_members!`] for a pyclass): CPython reads it straight from the
/// object (a struct member), where a pyo3 getter costs ~300 instructions a read. `#[pyo3(get)]` does the same for plain `Py<T>` fields,
/// but those are released through pyo3's thread-local "is the GIL held?" check, a sizeable part of
/// an object's cost when thousands die per read; a `Member` is released directly.
///
/// A member owns one reference, except when it is `None`: None is never freed, so the views' many
/// `None` attributes cost no refcount traffic when they are made or dropped.
#[repr(transparent)]
pub struct Member<T = PyAny>(ManuallyDrop<Py<T>>);

impl<T> Member<T> {
    /// Takes over `obj`'s reference.
    pub fn new(obj: Bound<'_, T>) -> Self {
        let is_none = obj.as_any().is_none();
        let member = Member(ManuallyDrop::new(obj.unbind()));
        if is_none {
            // SAFETY: the GIL is held (we had a Bound); a None member keeps no reference.
            unsafe { ffi::Py_DecRef(member.0.as_ptr()) }
        }
        member
    }
    pub fn bind<'py>(&self, py: Python<'py>) -> &Bound<'py, T> {
        self.0.bind(py)
    }
}

impl Member<PyAny> {
    pub fn none(py: Python<'_>) -> Self {
        // SAFETY: Py_None is a static object, never freed; the Py is never dropped by pyo3
        // (ManuallyDrop) and Member's Drop does not release None, so taking no reference is right.
        Member(ManuallyDrop::new(unsafe {
            Py::from_owned_ptr(py, ffi::Py_None())
        }))
    }

    /// `None`, or the object `make` builds from the value.
    pub fn opt<'py, V>(
        py: Python<'py>,
        value: Option<V>,
        make: impl FnOnce(V) -> PyResult<Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        match value {
            Some(v) => Ok(Member::new(make(v)?)),
            None => Ok(Member::none(py)),
        }
    }

    /// `None` or a str.
    pub fn opt_str(py: Python<'_>, value: Option<&str>) -> PyResult<Self> {
        Member::opt(
            py,
            value,
            |s| Ok(crate::convert::new_str(py, s)?.into_any()),
        )
    }
}

impl<T> Drop for Member<T> {
    fn drop(&mut self) {
        let p = self.0.as_ptr();
        // SAFETY: members live only in pyclass structs and views, dropped by their tp_dealloc or,
        // if the object could not be created, by the constructing code: both hold the GIL. A
        // member other than None owns exactly this one reference.
        unsafe {
            if p != ffi::Py_None() {
                ffi::Py_DecRef(p)
            }
        }
    }
}

/// Register `Member` fields of a frozen pyclass as read-only attributes, each a CPython
/// struct-member descriptor (`Py_T_OBJECT_EX`) at the field's offset in the object:
/// `add_members!(py, ServerSentEvent { c"data" => data, c"id" => id })`.
macro_rules! add_members {
    ($py:expr, $cls:ty { $($name:literal => $field:ident),+ $(,)? }) => {{
        // Compile-time proof that each field is a `Member`, which is what makes the unsafe call sound.
        $( let _: fn(&$cls) -> &$crate::objects::Member<_> = |c| &c.$field; )+
        // SAFETY: the offsets are of `Member` fields (checked above), each holding an object for
        // the whole life of the object it is in.
        unsafe {
            $crate::objects::add_object_members::<$cls>(
                $py,
                &[$(($name, ::std::mem::offset_of!($cls, $field))),+],
            )
        }
    }};
}
pub(crate) use add_members;

/// What [`add_members!`] expands to. `fields` pairs attribute names with field offsets in `T`;
/// `T` is frozen, so a field is never replaced while CPython may be reading it.
///
/// # Safety
/// Each offset must be that of a [`Member`] field of `T`.
pub unsafe fn add_object_members<T: PyClass<Frozen = True>>(
    py: Python<'_>,
    fields: &[(&'static CStr, usize)],
) -> PyResult<()> {
    let ty = T::type_object(py);
    for &(name, offset) in fields {
        // The descriptor keeps a pointer to its definition: one leaked per attribute, once per process.
        let def = Box::leak(Box::new(ffi::PyMemberDef {
            name: name.as_ptr(),
            type_code: ffi::Py_T_OBJECT_EX,
            // Where pyo3 places T inside the object plus the field's offset in T: the formula
            // pyo3 itself uses for `#[pyo3(get)]` members. A Member is one object pointer.
            offset: (class_offset::<T>() + offset) as ffi::Py_ssize_t,
            flags: ffi::Py_READONLY,
            doc: ptr::null(),
        }));
        // SAFETY: `ty` is a live type object and `def` is never freed; the result is a new
        // reference or NULL with an exception set.
        let descr =
            Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMember(ty.as_type_ptr(), def))?;
        ty.setattr(name.to_str()?, descr)?;
    }
    Ok(())
}

/// What a slot, method or getter written against CPython's API returns for `f`'s result: a new
/// reference, or NULL with the error set. A panic becomes a PanicException, as in pyo3's own
/// trampoline: it must not unwind into CPython.
///
/// # Safety
/// The GIL must be held (CPython holds it when it calls a type's slots and descriptors).
pub unsafe fn ffi_result(
    f: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>>,
) -> *mut ffi::PyObject {
    let py = unsafe { Python::assume_gil_acquired() };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(py))) {
        Ok(Ok(value)) => value.into_ptr(),
        Ok(Err(err)) => {
            err.restore(py);
            ptr::null_mut()
        }
        Err(_) => {
            pyo3::panic::PanicException::new_err("polystream: a native method panicked")
                .restore(py);
            ptr::null_mut()
        }
    }
}

/// One entry of a `PyType_Spec`'s slot table.
pub fn slot(slot: std::ffi::c_int, pfunc: *mut std::ffi::c_void) -> ffi::PyType_Slot {
    ffi::PyType_Slot { slot, pfunc }
}

/// A type's method table for its `Py_tp_methods` slot, from (name, function, flags, doc)
/// entries. Every function takes `(self, arg)`: flags METH_O, METH_NOARGS or METH_VARARGS. A
/// doc starts with the text signature (`name($self, /)\n--\n\n`), which `inspect.signature`
/// and stubtest read. Leaked: CPython keeps pointers into the table for the life of the type,
/// which is made once, at import.
pub fn method_table(
    entries: &[(
        &'static CStr,
        ffi::PyCFunction,
        std::ffi::c_int,
        &'static CStr,
    )],
) -> *mut std::ffi::c_void {
    let table: Vec<ffi::PyMethodDef> = entries
        .iter()
        .map(|&(name, meth, flags, doc)| ffi::PyMethodDef {
            ml_name: name.as_ptr(),
            ml_meth: ffi::PyMethodDefPointer { PyCFunction: meth },
            ml_flags: flags,
            ml_doc: doc.as_ptr(),
        })
        .chain([ffi::PyMethodDef::zeroed()])
        .collect();
    Vec::leak(table).as_mut_ptr().cast()
}

/// Make the heap type `polystream._core.<name>` from `slots` (a terminator is added), with
/// `flags` on top of these: not instantiable from Python (instances are made only from Rust), not
/// subclassable (an instance's type is exactly this one), type attributes fixed. Adds it to the
/// module and returns it, kept for the life of the process like a static type.
pub fn add_type(
    m: &Bound<'_, PyModule>,
    name: &'static CStr,
    basicsize: usize,
    flags: std::ffi::c_ulong,
    slots: &[ffi::PyType_Slot],
) -> PyResult<*mut ffi::PyTypeObject> {
    // CPython keeps a pointer to the qualified name for the life of the type (made once, at
    // import): leaked.
    let full_name = format!("polystream._core.{}", name.to_str()?);
    let full_name = Box::leak(std::ffi::CString::new(full_name)?.into_boxed_c_str());
    let mut slots: Vec<ffi::PyType_Slot> = slots
        .iter()
        .copied()
        .chain([slot(0, ptr::null_mut())])
        .collect();
    let mut spec = ffi::PyType_Spec {
        name: full_name.as_ptr(),
        basicsize: c_int::try_from(basicsize)?,
        itemsize: 0,
        flags: (ffi::Py_TPFLAGS_DEFAULT
            | ffi::Py_TPFLAGS_DISALLOW_INSTANTIATION
            | ffi::Py_TPFLAGS_IMMUTABLETYPE
            | flags) as _,
        slots: slots.as_mut_ptr(),
    };
    // SAFETY: the spec and its slots are valid for the call (CPython copies the spec; what it
    // keeps pointers to is leaked). A new reference or NULL with an exception set.
    let ty = unsafe { Bound::from_owned_ptr_or_err(m.py(), ffi::PyType_FromSpec(&mut spec))? };
    m.add(name.to_str()?, &ty)?;
    Ok(ty.into_ptr().cast())
}

/// A CPython type made from a spec (`PyType_FromSpec`) whose instances are a [`SpecObject<T>`]:
/// made only from Rust, never instantiated, subclassed or changed from Python.
///
/// A freed instance goes to the type's free list and the next instance reuses its memory: no
/// malloc or free, no zeroing. Nor any of pyo3's per-object work: its allocation and initialiser
/// layers, its dealloc trampoline (with its thread-local GIL count) and the type-slot lookups
/// that abi3 makes on every dealloc. For objects made per chunk, that is most of their cost.
pub struct SpecType<T> {
    ty: AtomicPtr<ffi::PyTypeObject>,
    free: FreeList,
    _value: PhantomData<fn() -> T>,
}

/// An instance of a [`SpecType`]: the object header, then the Rust value.
#[repr(C)]
pub struct SpecObject<T> {
    ob_base: ffi::PyObject,
    pub value: T,
}

/// The Rust value of a [`SpecType`]'s instances.
pub trait SpecValue: Sized + 'static {
    /// The type of the object holding this value: its free list takes the object when it dies.
    fn spec_type(&self) -> &'static SpecType<Self>;
}

impl<T: SpecValue> SpecType<T> {
    pub const fn new() -> Self {
        SpecType {
            ty: AtomicPtr::new(ptr::null_mut()),
            free: FreeList::new(),
            _value: PhantomData,
        }
    }

    /// Make the type `polystream._core.<name>` from `slots` (the dealloc is added here) and add it
    /// to the module.
    pub fn register(
        &self,
        m: &Bound<'_, PyModule>,
        name: &'static CStr,
        slots: &[ffi::PyType_Slot],
    ) -> PyResult<()> {
        let slots: Vec<ffi::PyType_Slot> = [slot(ffi::Py_tp_dealloc, dealloc::<T> as *mut c_void)]
            .into_iter()
            .chain(slots.iter().copied())
            .collect();
        // No GC: each user says why its objects cannot be part of a cycle.
        let ty = add_type(m, name, size_of::<SpecObject<T>>(), 0, &slots)?;
        self.ty.store(ty, Ordering::Release);
        Ok(())
    }

    /// A new instance holding `value`, from the free list when it has one.
    pub fn new_object<'py>(&self, py: Python<'py>, value: T) -> PyResult<Bound<'py, PyAny>> {
        let ty = self.ty.load(Ordering::Acquire);
        if ty.is_null() {
            return Err(PyTypeError::new_err(
                "polystream._core: a type used before the module registered it",
            ));
        }
        // SAFETY: the GIL is held (`py`). A free-list entry is an instance of this type whose
        // value was dropped (see `dealloc`): PyObject_Init makes it a live object again (type,
        // type reference, refcount 1). GenericAlloc returns a new instance or NULL with an
        // exception set (then `value` is dropped here, releasing what it holds). `value` is
        // written into the uninitialised field before any Python code can see the object.
        unsafe {
            let obj = match self.free.pop() {
                Some(obj) => ffi::PyObject_Init(obj, ty),
                None => ffi::PyType_GenericAlloc(ty, 0),
            };
            let obj = Bound::from_owned_ptr_or_err(py, obj)?;
            ptr::write(
                ptr::addr_of_mut!((*obj.as_ptr().cast::<SpecObject<T>>()).value),
                value,
            );
            Ok(obj)
        }
    }

    /// `obj`'s value, if `obj` is an instance of this type.
    pub fn get<'a>(&self, obj: &'a Bound<'_, PyAny>) -> Option<&'a T> {
        let ty = self.ty.load(Ordering::Acquire);
        // SAFETY: `obj` is live (borrowed for 'a). The type cannot be subclassed, so an object
        // whose type is exactly it is one of its instances, whose value lives as long as it does.
        unsafe {
            (!ty.is_null() && ffi::Py_TYPE(obj.as_ptr()) == ty).then(|| spec_value(obj.as_ptr()))
        }
    }
}

/// The value of `obj`, an instance of a [`SpecType<T>`].
///
/// # Safety
/// `obj` must be a live instance of that type, and the reference must not outlive it. CPython
/// passes such an object to the type's slots, methods and descriptors (each checks the
/// instance's type first; the type cannot be subclassed or instantiated from Python).
pub unsafe fn spec_value<'a, T>(obj: *mut ffi::PyObject) -> &'a T {
    &(*obj.cast::<SpecObject<T>>()).value
}

unsafe extern "C" fn dealloc<T: SpecValue>(obj: *mut ffi::PyObject) {
    let so = obj.cast::<SpecObject<T>>();
    let t = (*so).value.spec_type();
    // The value goes first. What it releases may run Python code (a `__del__` in a list the
    // user filled) that makes and frees objects of this type: the free list is touched only
    // after. Nothing here panics: it releases Arcs and object references.
    ptr::drop_in_place(ptr::addr_of_mut!((*so).value));
    let ty = ffi::Py_TYPE(obj);
    if !t.free.push(obj) {
        ffi::PyObject_Free(obj.cast()); // the heap type's tp_free for a non-GC type
    }
    ffi::Py_DecRef(ty.cast()); // an instance of a heap type holds a reference to it
}

/// Freed instances of one spec type, kept for reuse. Touched only with the GIL held: abi3
/// modules run on GIL builds of CPython only, and every caller holds it (`dealloc`, `new_object`).
struct FreeList {
    items: UnsafeCell<[*mut ffi::PyObject; FREE_CAP]>,
    len: Cell<usize>,
}

/// Enough for the objects of a read's worth of chunks; more are freed to the allocator.
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
    /// Keep `obj`; false if the list is full.
    ///
    /// # Safety
    /// The GIL must be held.
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

/// What a spec type's getter computes from its object's value.
pub type SpecGetter<T> = for<'py> fn(&T, Python<'py>) -> PyResult<Bound<'py, PyAny>>;

/// A spec type's `Py_tp_getset` table: read-only attributes computed by Rust functions that
/// CPython calls straight from the descriptor, without pyo3's trampoline (its thread-local GIL
/// count and reference pool, and a downcast: ~190 instructions a read). Leaked, as
/// [`method_table`].
pub fn getset_table<T: SpecValue>(getters: &[(&'static CStr, SpecGetter<T>)]) -> *mut c_void {
    let table: Vec<ffi::PyGetSetDef> = getters
        .iter()
        .map(|&(name, get)| ffi::PyGetSetDef {
            name: name.as_ptr(),
            get: Some(spec_getter::<T>),
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
    Vec::leak(table).as_mut_ptr().cast()
}

unsafe extern "C" fn spec_getter<T: SpecValue>(
    obj: *mut ffi::PyObject,
    closure: *mut c_void,
) -> *mut ffi::PyObject {
    // SAFETY: `closure` is the `SpecGetter<T>` that `getset_table` stored in this descriptor,
    // which CPython calls only for an instance of T's type, with the GIL held.
    let get = std::mem::transmute::<*mut c_void, SpecGetter<T>>(closure);
    ffi_result(|py| get(spec_value(obj), py))
}
