//! The vif device class on the `xenbus-backend` skeleton: what netback publishes and checks in
//! the store, and its data path's attach (a vif on the bridge) and detach. The handshake itself
//! is the skeleton's; `domain` runs it with the hypervisor, the tests with the in-process store.
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use shared_ring::{BackRing, NetifRx, NetifTx, PageMemory};
use xenbus_backend::{DataPath, Info, RingKey, read_string};
use xenstore::StoreClient;

use crate::bridge::Bridge;
use crate::switch::{Mac, MacDisplay, PortId, parse_mac};
use crate::vif::{Counters, Vif};

/// The switch over the vifs' shared rings.
pub type Net = Bridge<PageMemory>;

/// What every vif shares: the switch, the capture stream's state, the console.
pub struct Shared {
    pub net: Net,
    /// The pcap stream's global header was printed.
    pub pcap_started: bool,
    /// Prints one console line.
    pub log: fn(&str),
}

impl Shared {
    pub fn new(net: Net, log: fn(&str)) -> Self {
        Self { net, pcap_started: false, log }
    }

    /// Starts the pcap stream (its global header) once.
    fn start_pcap(&mut self) {
        if !self.pcap_started {
            self.pcap_started = true;
            let log = self.log;
            crate::pcap::hex_lines(&[&crate::pcap::global_header()], |l| log(&format!("pcap {l}")));
        }
    }
}

/// One vif's data path: its bridge port while connected, its counters as last printed.
pub struct VifPath {
    name: String,
    mac: Option<Mac>,
    capture: bool,
    /// The vif's port on the bridge, while connected.
    pub bridge_port: Option<PortId>,
    /// The counters as last printed.
    pub printed: Counters,
    /// The counters of the connection just torn down, printed after the disconnected line.
    last: Option<Counters>,
    /// Frames from forged source MACs dropped (anti-spoofing), as last printed.
    pub printed_spoofed: u64,
    /// The forged frames of the connection just torn down.
    last_spoofed: u64,
}

impl VifPath {
    /// Prints `<name>: <counters><suffix>` and remembers them as printed.
    pub fn print_counters(&mut self, log: fn(&str), c: Counters, suffix: &str) {
        log(&format!("{}: {c}{suffix}", self.name));
        self.printed = c;
    }

    /// Prints `<name>: <n> frames from forged source MACs dropped<suffix>` and remembers `n`.
    pub fn print_spoofed(&mut self, log: fn(&str), n: u64, suffix: &str) {
        log(&format!("{}: {n} frames from forged source MACs dropped{suffix}", self.name));
        self.printed_spoofed = n;
    }
}

impl DataPath for VifPath {
    type Shared = Shared;
    const KIND: &'static str = "vif";
    const RINGS: &'static [RingKey] =
        &[RingKey { key: "tx-ring-ref", label: "tx ring ref" }, RingKey { key: "rx-ring-ref", label: "rx ring ref" }];
    const PROBE_KEYS: &'static [&'static str] = &["params", "mac"];
    const FRONTEND_KEYS: &'static [&'static str] = &["request-rx-copy"];

    fn probe(client: &mut impl StoreClient, info: &Info, _: &mut Shared) -> Result<Self, String> {
        // Both keys together (read ahead with `frontend`: PROBE_KEYS).
        let (params, mac) = (format!("{}/params", info.dir), format!("{}/mac", info.dir));
        let mut read = client
            .read_many(&[params.as_bytes(), mac.as_bytes()])
            .into_iter()
            .map(|r| r.ok().map(|v| String::from_utf8_lossy(&v).into_owned()));
        let params = read.next().flatten().unwrap_or_default();
        let mac = read.next().flatten().and_then(|m| parse_mac(&m));
        Ok(VifPath {
            name: info.name.clone(),
            mac,
            capture: crate::wants_capture(&params),
            bridge_port: None,
            printed: Counters::default(),
            last: None,
            printed_spoofed: 0,
            last_spoofed: 0,
        })
    }

    fn features(&self) -> Vec<(&'static str, String)> {
        [
            ("feature-rx-copy", "1"),
            ("feature-rx-flip", "0"),
            // Multi-slot tx packets, and TCP segmentation offload (netback cuts the packets:
            // crate::gso); IPv6 checksum offload too (Linux's netfront needs it for TSO6).
            ("feature-sg", "1"),
            ("feature-gso-tcpv4", "1"),
            ("feature-gso-tcpv6", "1"),
            ("feature-ipv6-csum-offload", "1"),
            ("feature-split-event-channels", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k, String::from(v)))
        .collect()
    }

    fn describe(&self) -> String {
        let mac = match &self.mac {
            Some(m) => format!("{}", MacDisplay(m)),
            None => String::from("unknown"),
        };
        format!("mac {mac}, pcap {}", if self.capture { "on" } else { "off" })
    }

    fn check_frontend(&mut self, client: &mut impl StoreClient, fe_dir: &str) -> Result<(), String> {
        // We only copy into the frontend's buffers (no page flipping).
        match read_string(client, &format!("{fe_dir}/request-rx-copy")) {
            Ok(v) if v.trim() != "1" => Err(format!("request-rx-copy = {v:?} (only rx-copy is supported)")),
            _ => Ok(()),
        }
    }

    fn attach(
        &mut self,
        shared: &mut Shared,
        fe: hv_abi::DomId,
        pages: Vec<PageMemory>,
        _port: u32,
    ) -> Result<(), String> {
        let mut pages = pages.into_iter();
        let (Some(tx_mem), Some(rx_mem)) = (pages.next(), pages.next()) else {
            return Err("two ring pages expected".into());
        };
        // `resume`: a restarted netback takes over where its predecessor's responses ended.
        let tx = BackRing::<NetifTx, _>::resume(tx_mem).map_err(|e| format!("{e:?}"))?;
        let rx = BackRing::<NetifRx, _>::resume(rx_mem).map_err(|e| format!("{e:?}"))?;
        let mut vif = Vif::new(fe, tx, rx);
        vif.capture = self.capture;
        if self.capture {
            shared.start_pcap();
        }
        self.bridge_port = Some(shared.net.add_vif(vif, self.mac));
        self.printed = Counters::default();
        self.printed_spoofed = 0;
        Ok(())
    }

    fn detach(&mut self, shared: &mut Shared) {
        if let Some(port) = self.bridge_port.take() {
            self.last_spoofed = shared.net.spoofed(port).unwrap_or(0);
            self.last = shared.net.remove_vif(port).map(|v| v.counters);
        }
    }

    fn after_detach(&mut self, shared: &mut Shared) {
        if let Some(counters) = self.last.take() {
            self.print_counters(shared.log, counters, " (final)");
        }
        let spoofed = core::mem::take(&mut self.last_spoofed);
        if spoofed > 0 {
            self.print_spoofed(shared.log, spoofed, " (final)");
        }
    }
}
