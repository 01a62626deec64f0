fn main() {
    // Domains link at hv_abi::DOMAIN_BASE + IMAGE_OFFSET with the runtime's linker script.
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    if std::env::var("TARGET").unwrap() == "x86_64-unknown-none" {
        println!("cargo:rustc-link-arg-bins=-T{dir}/../../hv-core/rt/domain.ld");
    }
    println!("cargo:rerun-if-changed=../../hv-core/rt/domain.ld");
}
