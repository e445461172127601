//! PyO3 glue over polystream-core, built by maturin into `polystream._core`.
//!
//! Only conversion lives here: the state machines are the core's. Calls run synchronously on the
//! caller's thread, one call per network read, returning every item that read completed.

use pyo3::prelude::*;

// Decoding allocates a few small strings per chunk; mimalloc makes those allocations several
// times cheaper than glibc's malloc (measured with callgrind on the chunk path).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod aiter;
mod chunks;
mod convert;
mod decoders;
mod errors;
mod objects;
mod responses;
mod sse;
mod views;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    convert::init_ascii_str(m.py());
    m.add(
        "DEFAULT_MAX_EVENT_SIZE",
        polystream_core::DEFAULT_MAX_EVENT_SIZE,
    )?;
    m.add("DIALECTS", polystream_core::dialect::NAMES.to_vec())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<sse::ServerSentEvent>()?;
    sse::ServerSentEvent::add_members(m.py())?;
    m.add_class::<sse::SSEDecoder>()?;
    chunks::register(m)?;
    views::register(m)?;
    aiter::register(m)?;
    m.add_class::<decoders::ChunkDecoder>()?;
    m.add_class::<decoders::Accumulator>()?;
    m.add_class::<responses::ResponsesBuilder>()?;
    m.add_function(wrap_pyfunction!(errors::debug_panic, m)?)?;
    Ok(())
}
