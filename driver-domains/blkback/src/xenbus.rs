//! The vbd device class on the `xenbus-backend` skeleton: what blkback publishes and checks in
//! the store, and its data path's attach and detach. The handshake itself is the skeleton's;
//! `domain` runs it with the hypervisor, the tests with the in-process store.
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use shared_ring::wire::blkif::Blkif;
use shared_ring::{BackRing, PageMemory};
use xenbus_backend::{DataPath, Info, Platform, RingKey, read_string};
use xenstore::StoreClient;

use crate::params::Region;
use crate::persistent::PersistentGrants;
use crate::vbd::Vbd;

/// What every vdisk of the domain shares: the backing device's size and what the domain offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backing {
    /// Sectors of the backing device.
    pub sectors: u64,
    /// Offer persistent grants (`feature-persistent`; the domain's `persistent=1` argument).
    pub persistent: bool,
}

/// One vdisk's data path: the vbd (with the requests taken from its ring and not answered yet),
/// while connected its ring, and the frontend's pages kept mapped (persistent grants, if it
/// asked for them).
pub struct Vdisk {
    pub vbd: Vbd,
    pub ring: Option<BackRing<Blkif, PageMemory>>,
    pub pgrants: PersistentGrants,
    /// Whether this vdisk offered persistent grants.
    offers_persistent: bool,
}

impl DataPath for Vdisk {
    type Shared = Backing;
    const KIND: &'static str = "vbd";
    const RINGS: &'static [RingKey] = &[RingKey { key: "ring-ref", label: "ring ref" }];
    const PROBE_KEYS: &'static [&'static str] = &["params"];
    const FRONTEND_KEYS: &'static [&'static str] = &["protocol", "feature-persistent"];

    fn probe(client: &mut impl StoreClient, info: &Info, backing: &mut Backing) -> Result<Self, String> {
        let params = read_string(client, &format!("{}/params", info.dir)).unwrap_or_default();
        match crate::params::parse(&params, backing.sectors) {
            Ok(region) => Ok(Vdisk {
                vbd: Vbd::new(info.fe, region),
                ring: None,
                pgrants: PersistentGrants::new(),
                offers_persistent: backing.persistent,
            }),
            Err(e) => Err(format!("bad params {params:?}: {e}; device closed")),
        }
    }

    fn features(&self) -> Vec<(&'static str, String)> {
        let Region { sectors, read_only: ro, .. } = self.vbd.region;
        vec![
            ("sectors", format!("{sectors}")),
            ("sector-size", format!("{}", crate::SECTOR_SIZE)),
            ("info", format!("{}", if ro { 4 } else { 0 })),
            ("feature-flush-cache", String::from(if ro { "0" } else { "1" })),
            ("feature-barrier", String::from(if ro { "0" } else { "1" })),
            ("feature-max-indirect-segments", format!("{}", crate::vbd::MAX_INDIRECT_SEGMENTS)),
            ("feature-persistent", String::from(if self.offers_persistent { "1" } else { "0" })),
        ]
    }

    fn describe(&self) -> String {
        let r = &self.vbd.region;
        format!(
            "{} MiB at {} MiB, {}",
            r.sectors / 2048,
            r.start / 2048,
            if r.read_only { "read-only" } else { "read-write" }
        )
    }

    fn check_frontend(&mut self, client: &mut impl StoreClient, fe_dir: &str) -> Result<(), String> {
        // Both keys together (read ahead with the ring refs: FRONTEND_KEYS).
        let (protocol, persistent) = (format!("{fe_dir}/protocol"), format!("{fe_dir}/feature-persistent"));
        let mut read = client
            .read_many(&[protocol.as_bytes(), persistent.as_bytes()])
            .into_iter()
            .map(|r| r.map(|v| String::from_utf8_lossy(&v).into_owned()));
        match read.next() {
            Some(Ok(p)) if p != "x86_64-abi" => return Err(format!("unsupported protocol {p:?}")),
            _ => {}
        }
        // Persistent grants only if both ends said so: the frontend promises to reuse its
        // grants only when the backend offered them too (blkif.h: a backend must not map
        // persistently otherwise; Linux's blkfront writes "1" whatever the backend offers and
        // then ends its grants after each request). Anything but "1" means no.
        let persistent = read.next().is_some_and(|v| v.is_ok_and(|v| v.trim() == "1"));
        self.pgrants.set_enabled(self.offers_persistent && persistent);
        Ok(())
    }

    fn attach(
        &mut self,
        _: &mut Backing,
        _fe: hv_abi::DomId,
        pages: Vec<PageMemory>,
        _port: u32,
    ) -> Result<(), String> {
        let page = pages.into_iter().next().ok_or("no ring page")?;
        // `resume`: a restarted blkback serves again what its predecessor left unanswered.
        self.ring = Some(BackRing::<Blkif, _>::resume(page).map_err(|e| format!("{e:?}"))?);
        Ok(())
    }

    /// Unanswered requests are forgotten with the ring (a reconnecting frontend sends them
    /// again); buffers the device still uses for them go back once it finished.
    fn detach(&mut self, _: &mut Backing) {
        self.ring = None;
        self.vbd.queue.clear();
    }

    /// Every persistently mapped page goes back on disconnect.
    fn release(&mut self, p: &mut impl Platform) {
        let n = self.pgrants.len();
        if !self.pgrants.unmap_all(p) {
            p.log(&format!("vbd {}: some of {n} persistent grants would not unmap", self.vbd.frontend));
        }
    }
}
