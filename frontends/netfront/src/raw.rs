//! [`RawVif`]: the netif handshake with bare rings and no data path, for test domains that play
//! a hostile frontend (they push whatever they like on the tx ring).
use alloc::vec::Vec;
use core::ptr::NonNull;

use hv_rt::evtchn;
use hv_rt::store::Store;
use shared_ring::{FrontRing, NetifRx, NetifTx, PageMemory};

use crate::datapath::{PAGE, Page};
use crate::front::{NetError, RingPages, VifDir, alloc_page, end_pool, err, grant_pool};

/// A connected vif whose rings the caller drives directly.
pub struct RawVif {
    vif: VifDir,
    rings: Option<RingPages>,
    pub tx: FrontRing<NetifTx, PageMemory>,
    pub rx: FrontRing<NetifRx, PageMemory>,
    pages: Vec<NonNull<u8>>,
    /// Pages granted (read-only) to the backend, for tx requests.
    pub pool: Vec<Page>,
}

impl RawVif {
    /// Connects `vif/<index>` with `pages` tx pages.
    pub fn connect(store: Store, index: u32, pages: usize) -> Result<Self, NetError> {
        let vif = VifDir::open(store, index)?;
        let mut ptrs = Vec::with_capacity(pages);
        for _ in 0..pages {
            ptrs.push(alloc_page()?);
        }
        let (rings, tx, rx, pool) = Self::share(&vif, &ptrs)?;
        let mut v = Self { vif, rings: Some(rings), tx, rx, pages: ptrs, pool };
        v.handshake()?;
        Ok(v)
    }

    #[allow(clippy::type_complexity)]
    fn share(
        vif: &VifDir,
        ptrs: &[NonNull<u8>],
    ) -> Result<(RingPages, FrontRing<NetifTx, PageMemory>, FrontRing<NetifRx, PageMemory>, Vec<Page>), NetError> {
        let rings = RingPages::new(vif.be)?;
        let (t, r) = rings.memories();
        let tx = FrontRing::init(t).map_err(|e| err("tx ring", alloc::format!("{e:?}")))?;
        let rx = FrontRing::init(r).map_err(|e| err("rx ring", alloc::format!("{e:?}")))?;
        let pool = grant_pool(vif.be, ptrs, true)?;
        Ok((rings, tx, rx, pool))
    }

    fn handshake(&mut self) -> Result<(), NetError> {
        let rings = self.rings.as_ref().ok_or(NetError("no rings".into()))?;
        self.vif.publish(rings)?;
        self.vif.await_connected()
    }

    /// Tears the connection down (Closing, Closed, grants and port ended) and connects again
    /// with fresh rings (to the backend the `backend` key names now).
    pub fn reconnect(&mut self) -> Result<(), NetError> {
        if let Some(r) = &self.rings {
            let _ = evtchn::close(r.port);
        }
        self.vif.close();
        if let Some(r) = self.rings.take() {
            r.end();
        }
        let kept = end_pool(core::mem::take(&mut self.pool));
        // Pages the old backend still holds are left to it.
        self.pages.retain(|p| kept.contains(p));
        self.vif.reopen()?;
        self.vif.find_backend(false)?;
        let (rings, tx, rx, pool) = Self::share(&self.vif, &self.pages)?;
        self.rings = Some(rings);
        self.tx = tx;
        self.rx = rx;
        self.pool = pool;
        self.handshake()
    }

    /// Notifies the backend.
    pub fn notify(&self) {
        if let Some(r) = &self.rings {
            let _ = evtchn::send(r.port);
        }
    }

    pub fn port(&self) -> Option<u32> {
        self.rings.as_ref().map(|r| r.port)
    }

    pub fn mac(&self) -> [u8; 6] {
        self.vif.mac
    }

    pub fn backend(&self) -> hv_abi::DomId {
        self.vif.be
    }

    /// Why the connection is gone (backend state or a moved vif), if it is.
    pub fn check(&mut self) -> Option<alloc::string::String> {
        self.vif.drain_events();
        self.vif.check()
    }

    /// Copies `data` (at most a page) to the start of pool page `i`.
    pub fn write_page(&mut self, i: usize, data: &[u8]) {
        if let Some(p) = self.pool.get(i) {
            let n = data.len().min(PAGE);
            // SAFETY: a 4 KiB page of ours; the backend only ever copies from it (read-only
            // grant), so writing while a request refers to it can only change what it reads.
            unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), p.ptr.as_ptr(), n) };
        }
    }
}
