//! The hypervisor calls a backend makes to attach a frontend's rings, and its console.
use hv_abi::DomId;
use hv_abi::Error;

/// Grant map/unmap, event-channel bind/close, and the console line sink.
///
/// # Safety
///
/// [`Platform::map`] must return the address of a page-aligned 4 KiB page that stays mapped
/// read-write for this domain, and is touched by nothing else of ours, until the handle is
/// given to [`Platform::unmap`] (the skeleton builds a ring's shared memory on it).
pub unsafe trait Platform {
    /// Maps frontend `domid`'s grant `gref` read-write: (handle, address).
    fn map(&mut self, domid: DomId, gref: u32) -> Result<(u32, u64), Error>;
    /// Unmaps a page mapped by [`Platform::map`].
    fn unmap(&mut self, handle: u32) -> Result<(), Error>;
    /// Binds to port `remote_port` that frontend `domid` offered us: our port.
    fn bind(&mut self, domid: DomId, remote_port: u32) -> Result<u32, Error>;
    /// Closes one of our ports.
    fn close(&mut self, port: u32) -> Result<(), Error>;
    /// Prints one console line.
    fn log(&mut self, line: &str);
}
