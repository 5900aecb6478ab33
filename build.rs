//! Finds the shared data folder the real-data tests read (`traces/`, `fidelity/`,
//! `conformance/`, `paging/`): `KVSIM_SHARED` if set (relative to the checkout), else
//! `../shared` beside the checkout. When it is there, the tests are compiled with
//! `cfg(kvsim_shared)` and read it from `KVSIM_SHARED_DIR`; without it they are marked
//! ignored, so `cargo test` lists them as such instead of passing them.

use std::path::PathBuf;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kvsim_shared)");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=KVSIM_SHARED");
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dir = match std::env::var_os("KVSIM_SHARED") {
        Some(d) if !d.is_empty() => root.join(d),
        _ => root.join("../shared"),
    };
    // The traces' README marks a complete folder; watching it notices the folder going
    // away. A folder that appears later is seen after `touch build.rs` (a path that does
    // not exist would make cargo rebuild on every run).
    let marker = dir.join("traces/README.md");
    if marker.is_file() {
        let dir = dir.canonicalize().unwrap_or(dir);
        println!("cargo:rerun-if-changed={}", marker.display());
        println!("cargo:rustc-cfg=kvsim_shared");
        println!("cargo:rustc-env=KVSIM_SHARED_DIR={}", dir.display());
    }
}
