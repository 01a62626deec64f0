//! Dom0 serves the store: one `ServerPort` per domain over its store page (mapped with
//! `domctl store_connect`), pumped whenever that domain's store port fires.
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;
use hv_abi::DomId;
use hv_rt::{domctl, evtchn, grant, println};
use shared_ring::PageMemory;
use xenstored::{Limits, ServerPort, StoreServer};

struct Connected {
    domid: DomId,
    port: u32,
    map_handle: u32,
    memory: *mut PageMemory,
    server_port: ServerPort<&'static PageMemory>,
    /// Work was left over at the last pump.
    more: bool,
}

impl Connected {
    /// Ends the connection (the ServerPort borrowing the page goes here) and returns what must
    /// be released: port, map handle, page memory.
    fn into_parts(self) -> (u32, u32, *mut PageMemory) {
        (self.port, self.map_handle, self.memory)
    }
}

pub struct StoreService {
    pub server: StoreServer,
    domains: Vec<Connected>,
}

impl StoreService {
    /// A store whose domains' byte budgets together fit in half of Dom0's heap (the rest is the
    /// toolstack's): a domain beyond that is refused at introduction, so no domain can make
    /// Dom0 run out of memory through the store.
    pub fn new() -> Self {
        let si = hv_rt::start_info();
        let heap = (si.heap_end - si.heap_start) as usize;
        let limits = Limits { total_bytes: heap / 2, ..Limits::default() };
        println!(
            "store: {} KiB per domain, room for {} domains in {} KiB",
            limits.domain_budget() / 1024,
            limits.max_domains(),
            limits.total_bytes / 1024
        );
        Self { server: StoreServer::new(limits), domains: Vec::new() }
    }

    /// Starts serving a new domain.
    /// `Ok` also when the domain has already ended (nothing to serve).
    pub fn connect(&mut self, domid: DomId) -> Result<(), &'static str> {
        let c = match domctl::store_connect(domid) {
            Ok(c) => c,
            Err(hv_abi::Error::Srch) => return Ok(()),
            Err(e) => return Err(e.name()),
        };
        let base = NonNull::new(c.va as *mut u8).ok_or("store page not mapped")?;
        // SAFETY: the hypervisor mapped the domain's store page read-write at `va` for us; it
        // stays mapped (or is replaced by our scratch page if the domain dies) until we unmap it
        // in `disconnect`, after the ServerPort using it is dropped.
        let memory = Box::into_raw(Box::new(unsafe { PageMemory::new(base, 4096) }));
        // SAFETY: `memory` is a leaked box, freed only in `disconnect` after its last user.
        let mem_ref: &'static PageMemory = unsafe { &*memory };
        let Some(server_port) = ServerPort::attach(mem_ref, domid) else {
            // SAFETY: `memory` came from Box::into_raw above and has no other user.
            drop(unsafe { Box::from_raw(memory) });
            return Err("store page too small");
        };
        self.server.introduce(domid).map_err(|e| match e {
            xenstored::StoreError::QuotaExceeded(xenstored::Quota::Memory) => {
                "the store has no memory left for another domain (give Dom0 more memory_mib)"
            }
            _ => "store refused to introduce the domain",
        })?;
        self.domains.push(Connected { domid, port: c.port, map_handle: c.map_handle, memory, server_port, more: true });
        Ok(())
    }

    /// Stops serving a domain that is gone: its nodes, watches and mapping are released.
    pub fn disconnect(&mut self, domid: DomId) {
        self.disconnect_keeping(domid, false);
    }

    /// Stops serving a domain that is being restarted in place: its connection and mapping
    /// go, its nodes stay for the new instance (same id).
    pub fn disconnect_keeping_nodes(&mut self, domid: DomId) {
        self.disconnect_keeping(domid, true);
    }

    /// Removes the nodes of a domain whose connection `disconnect_keeping_nodes` dropped and
    /// that will not come back.
    pub fn release_nodes(&mut self, domid: DomId) {
        let _ = self.server.release_nodes(domid);
    }

    fn disconnect_keeping(&mut self, domid: DomId, keep_nodes: bool) {
        let Some(i) = self.domains.iter().position(|d| d.domid == domid) else { return };
        let d = self.domains.swap_remove(i);
        let _ = if keep_nodes { self.server.drop_connection(domid) } else { self.server.release(domid) };
        let (port, map_handle, memory) = d.into_parts();
        // SAFETY: the only user of `memory`, the ServerPort, is gone.
        drop(unsafe { Box::from_raw(memory) });
        let _ = grant::unmap(map_handle);
        let _ = evtchn::close(port);
    }

    /// Marks the connection on `port` as having work.
    pub fn kick(&mut self, port: u32) {
        if let Some(d) = self.domains.iter_mut().find(|d| d.port == port) {
            d.more = true;
        }
    }

    /// Pumps every connection with work: kicked ones, and ones with output waiting (watch
    /// events that another domain's request fired). Returns whether any still has more.
    pub fn pump(&mut self) -> bool {
        let mut any_more = false;
        for d in self.domains.iter_mut() {
            let (a, b) = self.server.output(d.domid);
            if !d.more && a.is_empty() && b.is_empty() {
                continue;
            }
            let out = d.server_port.pump(&mut self.server);
            if out.notify {
                let _ = evtchn::send(d.port);
            }
            if let Some(why) = out.broken {
                println!("store connection of domain {} is broken: {why:?}", d.domid);
            }
            d.more = out.more;
            any_more |= out.more;
        }
        any_more
    }

    /// Watches registered by every connection.
    pub fn watch_count(&self) -> usize {
        self.server.domains().filter_map(|d| self.server.connection(d)).map(|c| c.watch_count()).sum()
    }

    pub fn node_count(&self) -> usize {
        self.server.store().node_count()
    }
}
