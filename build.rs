//! Links GCC's unwinder into the binary (what `gcc -static-libgcc` does)
//! instead of loading `libgcc_s.so.1` at every start.
//!
//! Every `upkeep status` is a process start, and for a dynamically linked
//! Rust program on glibc the shared unwinder is a tenth of that start: one
//! more object for the dynamic loader to find, map and relocate, and a
//! constructor that runs `cpuid` (which traps to the hypervisor on a VM).
//! The static archive has the same code, so unwinding (panics, backtraces)
//! is unchanged. Only for glibc targets that are not already linked
//! statically (`+crt-static` links the archive itself); where the compiler
//! driver cannot name the archive, the build goes on with the shared
//! library and says so.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let gnu = env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|e| e == "gnu");
    let linux = env::var("CARGO_CFG_TARGET_OS").is_ok_and(|o| o == "linux");
    let crt_static =
        env::var("CARGO_CFG_TARGET_FEATURE").is_ok_and(|f| f.split(',').any(|f| f == "crt-static"));
    if !gnu || !linux || crt_static {
        return;
    }
    let cc = env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let archive = Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    // Without the archive, the driver prints the bare name back.
    match archive.as_deref().map(Path::new) {
        Some(p) if p.is_absolute() && p.is_file() => {
            let dir = p.parent().expect("an absolute file path has a parent");
            println!("cargo:rustc-link-search=native={}", dir.display());
            println!("cargo:rustc-link-lib=static=gcc_eh");
        }
        _ => println!(
            "cargo:warning=libgcc_eh.a not found through `{cc} -print-file-name`: \
             the binary loads libgcc_s.so.1 at start"
        ),
    }
}
