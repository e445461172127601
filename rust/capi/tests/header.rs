//! The committed C header must be exactly what cbindgen generates from the code.
//! Regenerate it with `POLYSTREAM_UPDATE_HEADER=1 cargo test -p polystream-capi --test header`.

use std::path::Path;

#[test]
fn committed_header_matches_the_code() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).expect("header is UTF-8");

    let path = crate_dir.join("include/polystream.h");
    if std::env::var_os("POLYSTREAM_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write header");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: regenerate it with POLYSTREAM_UPDATE_HEADER=1 cargo test -p polystream-capi --test header",
        path.display()
    );
    // Sanity: the header declares the whole surface.
    for name in [
        "polystream_abi_version",
        "polystream_sse_decoder_feed",
        "polystream_chunk_decoder_snapshot",
        "polystream_accumulator_add",
        "polystream_last_error_kind",
        "polystream_debug_panic",
        "POLYSTREAM_ERR_PANIC",
        "typedef struct PolystreamSseDecoder PolystreamSseDecoder",
    ] {
        assert!(generated.contains(name), "header lacks {name}");
    }
}
