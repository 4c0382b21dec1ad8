//! Link settings for the `sluice` binary.
//!
//! On Linux with glibc, relative relocations are packed (`-z pack-relative-relocs`, DT_RELR):
//! the binary holds some 58,000 of them (vtables, static tables of rules and names), and the
//! unpacked table is 1.4 MB that every start pages in before `main`. Packed, it is a few KB, and
//! `sluice run` starts about a millisecond sooner. Set `SLUICE_NO_RELR=1` to link without it (a
//! linker older than binutils 2.38, or a glibc older than 2.36 on the machine that runs it).

fn main() {
    println!("cargo:rerun-if-env-changed=SLUICE_NO_RELR");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" && std::env::var_os("SLUICE_NO_RELR").is_none() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
