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
use crate::serve::Queue;
use crate::vbd::Vbd;

/// One vdisk's data path: the vbd, while connected its ring and the requests taken from it and
/// not answered yet, and the frontend's pages kept mapped (persistent grants, if it asked for
/// them).
pub struct Vdisk {
    pub vbd: Vbd,
    pub ring: Option<BackRing<Blkif, PageMemory>>,
    pub queue: Queue,
    pub pgrants: PersistentGrants,
}

impl DataPath for Vdisk {
    /// Sectors of the backing device.
    type Shared = u64;
    const KIND: &'static str = "vbd";
    const RINGS: &'static [RingKey] = &[RingKey { key: "ring-ref", label: "ring ref" }];

    fn probe(client: &mut impl StoreClient, info: &Info, device_sectors: &mut u64) -> Result<Self, String> {
        let params = read_string(client, &format!("{}/params", info.dir)).unwrap_or_default();
        match crate::params::parse(&params, *device_sectors) {
            Ok(region) => Ok(Vdisk {
                vbd: Vbd::new(info.fe, region),
                ring: None,
                queue: Queue::new(),
                pgrants: PersistentGrants::new(),
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
            ("feature-persistent", String::from("1")),
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
        match read_string(client, &format!("{fe_dir}/protocol")) {
            Ok(p) if p != "x86_64-abi" => return Err(format!("unsupported protocol {p:?}")),
            _ => {}
        }
        // Persistent grants only if the frontend promises to reuse its grants (blkif.h: a
        // backend must not map persistently otherwise); anything but "1" means no.
        let persistent = read_string(client, &format!("{fe_dir}/feature-persistent")).is_ok_and(|v| v.trim() == "1");
        self.pgrants.set_enabled(persistent);
        Ok(())
    }

    fn attach(&mut self, _: &mut u64, _fe: hv_abi::DomId, pages: Vec<PageMemory>, _port: u32) -> Result<(), String> {
        let page = pages.into_iter().next().ok_or("no ring page")?;
        // `resume`: a restarted blkback serves again what its predecessor left unanswered.
        self.ring = Some(BackRing::<Blkif, _>::resume(page).map_err(|e| format!("{e:?}"))?);
        Ok(())
    }

    /// Unanswered requests are forgotten with the ring (a reconnecting frontend sends them
    /// again); buffers the device still uses for them go back once it finished.
    fn detach(&mut self, _: &mut u64) {
        self.ring = None;
        self.queue.clear();
    }

    /// Every persistently mapped page goes back on disconnect.
    fn release(&mut self, p: &mut impl Platform) {
        let n = self.pgrants.len();
        if !self.pgrants.unmap_all(p) {
            p.log(&format!("vbd {}: some of {n} persistent grants would not unmap", self.vbd.frontend));
        }
    }
}
