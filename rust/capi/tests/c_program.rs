//! Compile tests/c/smoke.c with the system C compiler against the committed header, link it to the
//! cdylib cargo built for this test run, and run it. (Rust builds need a C linker, so `cc` is there.)

use std::path::{Path, PathBuf};
use std::process::Command;

/// target/<profile>/ — this test binary lives in target/<profile>/deps/.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

#[test]
fn a_c_program_compiles_links_and_runs_against_the_library() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib_dir = profile_dir();
    assert!(
        lib_dir.join("libpolystream.so").exists() || lib_dir.join("deps/libpolystream.so").exists(),
        "cdylib not found in {}",
        lib_dir.display()
    );
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let exe = out_dir.join("polystream_c_smoke");
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg("-I")
        .arg(crate_dir.join("include"))
        .arg(crate_dir.join("tests/c/smoke.c"))
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(lib_dir.join("deps"))
        .arg("-L")
        .arg(&lib_dir)
        .arg("-lpolystream")
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "the C program failed to compile or link");
    let ld_path = format!("{}:{}", lib_dir.join("deps").display(), lib_dir.display());
    let out = Command::new(&exe)
        .env("LD_LIBRARY_PATH", ld_path)
        .output()
        .expect("run the C program");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "C program failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("c smoke: ok"), "{stdout}");
}
