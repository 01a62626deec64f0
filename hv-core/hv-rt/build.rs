//! Publishes the domain linker script's path to the packages that build domain images (they
//! read it as `DEP_HV_RT_LINKER_SCRIPT` in `image-build.rs`).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo::metadata=linker_script={dir}/domain.ld");
    println!("cargo::rerun-if-changed=domain.ld");
}
