//! Building and loading the C programs that include Xen's own headers (shared by the header
//! test, the interop test and the ring benchmark).
#![allow(dead_code)]

use std::ffi::{CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's libxen-dev puts the headers.
pub const XEN_RING_H: &str = "/usr/include/xen/io/ring.h";

/// Fail with the fix when the Xen headers are missing.
pub fn require_xen_headers() {
    assert!(
        Path::new(XEN_RING_H).exists(),
        "{XEN_RING_H} is missing: the Xen public headers are needed to check compatibility. \
         Install them with `apt-get install libxen-dev`."
    );
}

/// The C sources directory (`shared-ring/c`).
pub fn c_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("c")
}

/// Compile `sources` (relative to `c/`) with the C compiler the `cc` crate finds, into
/// `output`, with `extra` flags (`-shared -fPIC` for a library).
pub fn compile(sources: &[&str], output: &Path, extra: &[&str]) {
    require_xen_headers();
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let compiler = cc::Build::new()
        .cargo_metadata(false)
        .cargo_warnings(false)
        .target(&target)
        .host(&target)
        .opt_level(2)
        .debug(false)
        .try_get_compiler()
        .unwrap_or_else(|e| panic!("no C compiler found ({e}); install one with `apt-get install gcc`"));
    let mut command: Command = compiler.to_command();
    command.args(["-std=gnu11", "-Wall", "-Werror", "-O2", "-march=native"]);
    command.args(extra);
    command.arg("-o").arg(output);
    for source in sources {
        command.arg(c_dir().join(source));
    }
    let result = command.output().expect("run the C compiler");
    assert!(result.status.success(), "C compile of {sources:?} failed:\n{}", String::from_utf8_lossy(&result.stderr));
}

/// A scratch directory for build products.
pub fn scratch_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("shared-ring-c");
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

unsafe extern "C" {
    fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlerror() -> *const c_char;
}

const RTLD_NOW: c_int = 2;

/// A loaded shared library (never unloaded).
pub struct Library(*mut c_void);

// SAFETY: the handle is only passed to dlsym, which is thread-safe.
unsafe impl Send for Library {}
// SAFETY: as above.
unsafe impl Sync for Library {}

impl Library {
    /// Compile `source` into a shared library named `name` and load it.
    pub fn build(source: &str, name: &str) -> Self {
        // Unique per process and call: tests build in parallel.
        static BUILDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let build = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = scratch_dir().join(format!("lib{name}-{}-{build}.so", std::process::id()));
        compile(&[source], &path, &["-shared", "-fPIC"]);
        let c_path = CString::new(path.to_str().expect("utf-8 path")).expect("no NUL");
        // SAFETY: a valid NUL-terminated path; loading runs no constructors of ours.
        let handle = unsafe { dlopen(c_path.as_ptr(), RTLD_NOW) };
        if handle.is_null() {
            // SAFETY: dlerror returns a NUL-terminated message after a failed dlopen.
            let message = unsafe { std::ffi::CStr::from_ptr(dlerror()) };
            panic!("dlopen {}: {}", path.display(), message.to_string_lossy());
        }
        Library(handle)
    }

    /// The address of `symbol`.
    pub fn symbol(&self, symbol: &str) -> *mut c_void {
        let c_symbol = CString::new(symbol).expect("no NUL");
        // SAFETY: a live handle and a NUL-terminated name.
        let address = unsafe { dlsym(self.0, c_symbol.as_ptr()) };
        assert!(!address.is_null(), "symbol {symbol} missing from the C library");
        address
    }
}

/// A page-aligned, zeroed allocation for a shared ring, freed on drop.
pub struct SharedPages {
    pointer: std::ptr::NonNull<u8>,
    layout: std::alloc::Layout,
}

// SAFETY: a plain heap allocation; all shared access goes through atomics or C.
unsafe impl Send for SharedPages {}
// SAFETY: as above.
unsafe impl Sync for SharedPages {}

impl SharedPages {
    /// `bytes` bytes aligned to 4096.
    pub fn new(bytes: usize) -> Self {
        let layout = std::alloc::Layout::from_size_align(bytes, 4096).expect("layout");
        // SAFETY: non-zero size.
        let pointer = unsafe { std::alloc::alloc_zeroed(layout) };
        let pointer = std::ptr::NonNull::new(pointer).expect("allocation");
        Self { pointer, layout }
    }

    /// The base address.
    pub fn pointer(&self) -> std::ptr::NonNull<u8> {
        self.pointer
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// A `PageMemory` view.
    pub fn memory(&self) -> shared_ring::PageMemory {
        // SAFETY: the allocation outlives every ring in the tests (they are dropped before the
        // `SharedPages`), and it is only accessed through PageMemory's atomics or the C peer.
        unsafe { shared_ring::PageMemory::new(self.pointer, self.len()) }
    }
}

impl Drop for SharedPages {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with the same layout.
        unsafe { std::alloc::dealloc(self.pointer.as_ptr(), self.layout) }
    }
}
