//! The boot bundle as hv-core reads it at boot: `Bundle::parse` (header, postcard index, image
//! bounds), `Bundle::topology` (postcard topology + validation), then every domain's image
//! through the ELF loader. No panic on any bytes; anything accepted satisfies the topology
//! rules Dom0 and hv-core rely on, its images lie inside the bundle, and the topology
//! re-encodes to itself.
#![no_main]

use hv_abi::layout::{DOMAIN_BASE, IMAGE_OFFSET};
use hv_bundle::{Bundle, DomainKind, MAX_DOMAINS, MAX_NAME_LEN, Topology};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &[u8]| {
    let bundle = match Bundle::parse(raw) {
        Ok(b) => b,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    for r in &bundle.index.images {
        let image = bundle.image(&r.name).expect("an indexed image is found");
        let start = image.as_ptr() as usize - raw.as_ptr() as usize;
        assert!(start + image.len() <= raw.len());
    }
    let topology = match bundle.topology() {
        Ok(t) => t,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert!(!topology.domains.is_empty() && topology.domains.len() <= MAX_DOMAINS);
    assert_eq!(topology.domains[0].kind, DomainKind::Dom0);
    for (i, d) in topology.domains.iter().enumerate() {
        assert!(i == 0 || d.kind != DomainKind::Dom0, "a second dom0");
        assert!(!d.name.is_empty() && d.name.len() <= MAX_NAME_LEN && d.image.len() <= MAX_NAME_LEN);
        assert!(d.memory_mib > 0);
        assert!(topology.domains[..i].iter().all(|o| o.name != d.name));
        for dev in &d.devices {
            assert!(dev.backend != d.name && topology.domains.iter().any(|o| o.name == dev.backend));
        }
        let image = bundle.image(&d.image).expect("validated: every domain's image is in the bundle");
        // What hv-core does next with it (the window of a domain of that many MiB, capped).
        let memory = u64::from(d.memory_mib.min(512)) << 20;
        let end = (DOMAIN_BASE + memory).saturating_sub(256 << 10);
        let _ = hv_core::elf::parse(image, DOMAIN_BASE + IMAGE_OFFSET, end.max(DOMAIN_BASE + IMAGE_OFFSET));
    }
    assert_eq!(Topology::decode(&topology.encode()).as_ref(), Ok(&topology));
});
