//! The build script of every package that builds domain images (`build = "…/image-build.rs"`
//! in its Cargo.toml): on the bare-metal target its binaries link at `hv_abi::DOMAIN_BASE +
//! IMAGE_OFFSET` with the runtime's linker script, whose path hv-rt's own build script
//! publishes. Built for the host, the binaries are stubs and nothing is added.
fn main() {
    if std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-none") {
        let script = std::env::var("DEP_HV_RT_LINKER_SCRIPT")
            .expect("a package that builds domain images must depend on hv-rt on x86_64-unknown-none");
        println!("cargo::rustc-link-arg-bins=-T{script}");
    }
}
