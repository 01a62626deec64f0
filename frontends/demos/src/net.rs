//! Network setup shared by the network DomUs: arguments → netfront + a smoltcp interface, and
//! the poll loop (poll, then block on the event channel until smoltcp's next deadline).
//!
//! Arguments: `vif=N` (default 0), `ip=A.B.C.D/N gw=A.B.C.D` (static) or `ip=dhcp` (the
//! default), `connect_s=300` (how long to keep trying to connect the vif before failing).
use alloc::format;
use alloc::string::String;
use alloc::vec;

use hv_rt::store::Store;
use hv_rt::{println, time};
use netfront::NetFront;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::dhcpv4;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

/// smoltcp's clock: system time.
pub fn now() -> Instant {
    Instant::from_micros((time::now_ns() / 1000) as i64)
}

/// A configured network stack on one vif.
pub struct Net {
    pub nf: NetFront,
    pub iface: Interface,
    pub sockets: SocketSet<'static>,
    dhcp: Option<SocketHandle>,
    /// Prefix for log lines (the app's name).
    tag: &'static str,
}

impl Net {
    /// Connects the vif named by the arguments and configures the interface.
    pub fn from_args(tag: &'static str) -> Result<Self, String> {
        let store = Store::connect().map_err(|e| format!("store: {e}"))?;
        Self::with_store(tag, store)
    }

    /// [`Net::from_args`] over a store connection the domain already has (a domain holds one).
    pub fn with_store(tag: &'static str, store: Store) -> Result<Self, String> {
        let vif = hv_rt::arg_u64("vif", 0) as u32;
        let within = hv_rt::arg_u64("connect_s", 300) * 1_000_000_000;
        let nf = NetFront::connect_within(store, vif, within).map_err(|e| format!("vif {vif}: {e}"))?;
        Self::from_front(tag, nf)
    }

    /// Configures the interface (arguments `ip`, `gw`) on a connected vif.
    pub fn from_front(tag: &'static str, mut nf: NetFront) -> Result<Self, String> {
        let mut cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(nf.mac())));
        cfg.random_seed = time::rdtsc() ^ (u64::from(hv_rt::domid()) << 48);
        let mut iface = Interface::new(cfg, &mut nf, now());
        let mut sockets = SocketSet::new(vec![]);
        let mut dhcp = None;
        match hv_rt::arg("ip").unwrap_or("dhcp") {
            "dhcp" => dhcp = Some(sockets.add(dhcpv4::Socket::new())),
            ip => {
                let cidr: Ipv4Cidr = ip.parse().map_err(|()| format!("ip={ip}: not A.B.C.D/N"))?;
                iface.update_ip_addrs(|a| {
                    let _ = a.push(IpCidr::Ipv4(cidr));
                });
                if let Some(gw) = hv_rt::arg("gw") {
                    let gw: Ipv4Address = gw.parse().map_err(|_| format!("gw={gw}: not A.B.C.D"))?;
                    iface.routes_mut().add_default_ipv4_route(gw).map_err(|_| "route table full")?;
                }
            }
        }
        Ok(Self { nf, iface, sockets, dhcp, tag })
    }

    /// The interface's IPv4 address, once it has one.
    pub fn ipv4(&self) -> Option<Ipv4Cidr> {
        self.iface.ip_addrs().iter().find_map(|a| match a {
            IpCidr::Ipv4(c) => Some(*c),
            #[allow(unreachable_patterns)]
            _ => None,
        })
    }

    /// One round of smoltcp (receive, timers, send) and DHCP; publishes what was sent.
    pub fn poll(&mut self) {
        self.iface.poll(now(), &mut self.nf, &mut self.sockets);
        self.nf.flush();
        let Some(h) = self.dhcp else { return };
        let event = match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
            None => return,
            Some(dhcpv4::Event::Configured(c)) => Some((c.address, c.router)),
            Some(dhcpv4::Event::Deconfigured) => None,
        };
        let tag = self.tag;
        self.iface.update_ip_addrs(|a| a.clear());
        self.iface.routes_mut().remove_default_ipv4_route();
        match event {
            Some((addr, router)) => {
                self.iface.update_ip_addrs(|a| {
                    let _ = a.push(IpCidr::Ipv4(addr));
                });
                if let Some(r) = router {
                    let _ = self.iface.routes_mut().add_default_ipv4_route(r);
                }
                match router {
                    Some(r) => println!("{tag}: dhcp lease {addr}, gateway {r}"),
                    None => println!("{tag}: dhcp lease {addr}, no gateway"),
                }
            }
            None => println!("{tag}: dhcp lease lost"),
        }
    }

    /// Blocks until a frame arrives or smoltcp's next timer (at most `max_ns`).
    pub fn wait_max(&mut self, max_ns: u64) {
        let delay = self.iface.poll_delay(now(), &self.sockets).map_or(max_ns, |d| d.total_micros() * 1000);
        self.nf.wait(time::now_ns().saturating_add(delay.min(max_ns)));
    }

    /// Blocks until a frame arrives or smoltcp's next timer (at most 1 s).
    pub fn wait(&mut self) {
        self.wait_max(1_000_000_000);
    }

    /// Polls until the interface has an address (static: at once; DHCP: the lease) or the
    /// timeout.
    pub fn wait_for_address(&mut self, timeout_ns: u64) -> Option<Ipv4Cidr> {
        let deadline = time::now_ns().saturating_add(timeout_ns);
        loop {
            self.poll();
            if let Some(a) = self.ipv4() {
                return Some(a);
            }
            if time::now_ns() >= deadline {
                return None;
            }
            self.wait();
        }
    }
}

/// Prints `<tag>: <why>` and shuts the domain down with a failure (reason crash).
pub fn fail(tag: &str, why: &str) -> ! {
    println!("{tag}: {why}");
    hv_rt::shutdown(hv_rt::abi::ShutdownReason::Crash)
}
