//! Event channels (Xen's 2-level model): per-domain port tables and the inter-domain operations,
//! as plain logic. The kernel applies the resulting "set pending" effects to the domains'
//! shared_info bitmaps and wakes blocked domains.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use hv_abi::{DomId, MAX_PORTS, Port};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortState {
    Free,
    /// Waiting for `remote` to bind to it.
    Unbound {
        remote: DomId,
    },
    Interdomain {
        remote_dom: DomId,
        remote_port: Port,
    },
    Virq(u32),
    /// A physical device's interrupt (the device's bus/device/function).
    Pirq(u32),
    /// An inter-processor interrupt of an HVM guest to itself (one vCPU: `send` sets the same
    /// port pending).
    Ipi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvtchnError {
    /// Port number out of range or not in use (EINVAL).
    BadPort,
    /// No such domain (ESRCH).
    NoDomain,
    /// The remote port is not unbound for us, or the state forbids the operation (EINVAL).
    WrongState,
    /// Every port of the domain is in use (ENOSPC).
    NoFreePort,
    /// The virq is already bound, or does not exist (EEXIST / EINVAL).
    VirqBound,
    BadVirq,
}

/// Virq numbers the table accepts: the paravirtual ABI's (`hv_abi::virq`, below
/// `virq::COUNT`) and those HVM guests bind under Xen's numbers (`kernel::hvm::xen`).
pub const VIRQ_LIMIT: u32 = 32;

/// "Set this port of this domain pending": what the kernel must do after an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pend {
    pub dom: DomId,
    pub port: Port,
}

#[derive(Debug, Default)]
struct PortTable {
    /// Index = port; port 0 is never handed out.
    ports: Vec<PortState>,
    in_use: usize,
}

impl PortTable {
    fn get(&self, port: Port) -> Result<PortState, EvtchnError> {
        match self.ports.get(port as usize) {
            Some(PortState::Free) | None => Err(EvtchnError::BadPort),
            Some(s) if port != 0 => Ok(*s),
            Some(_) => Err(EvtchnError::BadPort),
        }
    }

    fn alloc(&mut self, state: PortState) -> Result<Port, EvtchnError> {
        let free = (1..self.ports.len()).find(|&p| self.ports[p] == PortState::Free);
        let port = match free {
            Some(p) => p,
            None if self.ports.len().max(1) < MAX_PORTS => {
                if self.ports.is_empty() {
                    self.ports.push(PortState::Free); // port 0
                }
                self.ports.push(PortState::Free);
                self.ports.len() - 1
            }
            None => return Err(EvtchnError::NoFreePort),
        };
        self.ports[port] = state;
        self.in_use += 1;
        Ok(port as u32)
    }

    fn set(&mut self, port: Port, state: PortState) {
        if let Some(s) = self.ports.get_mut(port as usize) {
            if *s == PortState::Free && state != PortState::Free {
                self.in_use += 1;
            } else if *s != PortState::Free && state == PortState::Free {
                self.in_use -= 1;
            }
            *s = state;
        }
    }
}

/// Every domain's ports.
#[derive(Debug, Default)]
pub struct EventChannels {
    tables: BTreeMap<DomId, PortTable>,
}

impl EventChannels {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_domain(&mut self, dom: DomId) {
        self.tables.entry(dom).or_default();
    }

    fn table(&mut self, dom: DomId) -> Result<&mut PortTable, EvtchnError> {
        self.tables.get_mut(&dom).ok_or(EvtchnError::NoDomain)
    }

    /// Closes every port of `dom` (peers' ends become unbound again) and forgets the domain.
    pub fn remove_domain(&mut self, dom: DomId) {
        let Some(t) = self.tables.remove(&dom) else { return };
        for s in t.ports {
            if let PortState::Interdomain { remote_dom, remote_port } = s
                && let Some(r) = self.tables.get_mut(&remote_dom)
            {
                r.set(remote_port, PortState::Unbound { remote: dom });
            }
        }
    }

    pub fn ports_in_use(&self) -> usize {
        self.tables.values().map(|t| t.in_use).sum()
    }

    pub fn ports_of(&self, dom: DomId) -> usize {
        self.tables.get(&dom).map_or(0, |t| t.in_use)
    }

    pub fn status(&self, dom: DomId, port: Port) -> Result<PortState, EvtchnError> {
        match self.tables.get(&dom) {
            Some(t) => match t.get(port) {
                Err(EvtchnError::BadPort) if (port as usize) < MAX_PORTS && port != 0 => Ok(PortState::Free),
                r => r,
            },
            None => Err(EvtchnError::NoDomain),
        }
    }

    pub fn alloc_unbound(&mut self, dom: DomId, remote: DomId) -> Result<Port, EvtchnError> {
        if !self.tables.contains_key(&remote) {
            return Err(EvtchnError::NoDomain);
        }
        self.table(dom)?.alloc(PortState::Unbound { remote })
    }

    /// Connects `dom` to `remote_port` of `remote_dom`; the new local port starts pending.
    pub fn bind_interdomain(
        &mut self,
        dom: DomId,
        remote_dom: DomId,
        remote_port: Port,
    ) -> Result<(Port, Pend), EvtchnError> {
        self.table(dom)?;
        let remote_state = self.tables.get(&remote_dom).ok_or(EvtchnError::NoDomain)?.get(remote_port)?;
        if remote_state != (PortState::Unbound { remote: dom }) {
            return Err(EvtchnError::WrongState);
        }
        let local = self.table(dom)?.alloc(PortState::Interdomain { remote_dom, remote_port })?;
        self.table(remote_dom)?.set(remote_port, PortState::Interdomain { remote_dom: dom, remote_port: local });
        Ok((local, Pend { dom, port: local }))
    }

    pub fn bind_virq(&mut self, dom: DomId, virq: u32) -> Result<Port, EvtchnError> {
        if virq >= VIRQ_LIMIT {
            return Err(EvtchnError::BadVirq);
        }
        let t = self.table(dom)?;
        if t.ports.contains(&PortState::Virq(virq)) {
            return Err(EvtchnError::VirqBound);
        }
        t.alloc(PortState::Virq(virq))
    }

    /// The port to set pending for `send` on `port`, if any (unbound ports drop the event).
    pub fn send(&mut self, dom: DomId, port: Port) -> Result<Option<Pend>, EvtchnError> {
        match self.table(dom)?.get(port)? {
            PortState::Interdomain { remote_dom, remote_port } => Ok(Some(Pend { dom: remote_dom, port: remote_port })),
            PortState::Unbound { .. } => Ok(None),
            PortState::Ipi => Ok(Some(Pend { dom, port })),
            _ => Err(EvtchnError::WrongState),
        }
    }

    pub fn close(&mut self, dom: DomId, port: Port) -> Result<(), EvtchnError> {
        let state = self.table(dom)?.get(port)?;
        if let PortState::Interdomain { remote_dom, remote_port } = state
            && let Some(r) = self.tables.get_mut(&remote_dom)
        {
            r.set(remote_port, PortState::Unbound { remote: dom });
        }
        self.table(dom)?.set(port, PortState::Free);
        Ok(())
    }

    /// Binds an IPI port (HVM guests: a port `send` raises on the sender itself).
    pub fn bind_ipi(&mut self, dom: DomId) -> Result<Port, EvtchnError> {
        self.table(dom)?.alloc(PortState::Ipi)
    }

    /// Binds a device interrupt (`pirq` = the device's bdf; the caller checked ownership).
    pub fn bind_pirq(&mut self, dom: DomId, pirq: u32) -> Result<Port, EvtchnError> {
        let t = self.table(dom)?;
        if t.ports.contains(&PortState::Pirq(pirq)) {
            return Err(EvtchnError::VirqBound);
        }
        t.alloc(PortState::Pirq(pirq))
    }

    /// The port `dom` bound device interrupt `pirq` to, if any.
    pub fn pirq_port(&self, dom: DomId, pirq: u32) -> Option<Port> {
        let t = self.tables.get(&dom)?;
        t.ports.iter().position(|s| *s == PortState::Pirq(pirq)).map(|p| p as u32)
    }

    /// The port `dom` bound `virq` to, if any.
    pub fn virq_port(&self, dom: DomId, virq: u32) -> Option<Port> {
        let t = self.tables.get(&dom)?;
        t.ports.iter().position(|s| *s == PortState::Virq(virq)).map(|p| p as u32)
    }

    /// Checks `port` is a valid, in-use port of `dom` (for `unmask`).
    pub fn check_port(&self, dom: DomId, port: Port) -> Result<(), EvtchnError> {
        self.tables.get(&dom).ok_or(EvtchnError::NoDomain)?.get(port).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> EventChannels {
        let mut e = EventChannels::new();
        e.add_domain(1);
        e.add_domain(2);
        e
    }

    #[test]
    fn connect_send_close() {
        let mut e = two();
        let p2 = e.alloc_unbound(2, 1).unwrap();
        // Sends on an unbound port go nowhere.
        assert_eq!(e.send(2, p2), Ok(None));
        let (p1, pend) = e.bind_interdomain(1, 2, p2).unwrap();
        assert_eq!(pend, Pend { dom: 1, port: p1 }, "a fresh binding starts pending");
        assert_eq!(e.send(1, p1), Ok(Some(Pend { dom: 2, port: p2 })));
        assert_eq!(e.send(2, p2), Ok(Some(Pend { dom: 1, port: p1 })));
        assert_eq!(e.ports_in_use(), 2);
        e.close(1, p1).unwrap();
        assert_eq!(e.status(2, p2), Ok(PortState::Unbound { remote: 1 }));
        assert_eq!(e.send(1, p1), Err(EvtchnError::BadPort));
        // The unbound end can be bound again (reconnect).
        let (p1b, _) = e.bind_interdomain(1, 2, p2).unwrap();
        assert_eq!(e.send(2, p2), Ok(Some(Pend { dom: 1, port: p1b })));
    }

    #[test]
    fn binding_rules() {
        let mut e = two();
        e.add_domain(3);
        let p2 = e.alloc_unbound(2, 1).unwrap();
        // Only the named domain may bind.
        assert_eq!(e.bind_interdomain(3, 2, p2), Err(EvtchnError::WrongState));
        assert_eq!(e.bind_interdomain(1, 2, 999), Err(EvtchnError::BadPort));
        assert_eq!(e.bind_interdomain(1, 9, 1), Err(EvtchnError::NoDomain));
        assert_eq!(e.alloc_unbound(1, 9), Err(EvtchnError::NoDomain));
        let (_, _) = e.bind_interdomain(1, 2, p2).unwrap();
        // Already bound: a second bind fails.
        assert_eq!(e.bind_interdomain(1, 2, p2), Err(EvtchnError::WrongState));
        // Ports of other domains are not ours to send on or close.
        assert_eq!(e.send(3, p2), Err(EvtchnError::BadPort));
        assert_eq!(e.close(3, p2), Err(EvtchnError::BadPort));
        assert_eq!(e.send(1, 0), Err(EvtchnError::BadPort));
        assert_eq!(e.send(1, u32::MAX), Err(EvtchnError::BadPort));
    }

    #[test]
    fn port_limit() {
        let mut e = two();
        for _ in 1..MAX_PORTS {
            e.alloc_unbound(1, 2).unwrap();
        }
        assert_eq!(e.alloc_unbound(1, 2), Err(EvtchnError::NoFreePort));
        assert_eq!(e.ports_of(1), MAX_PORTS - 1);
        // Domain 2 is unaffected.
        assert!(e.alloc_unbound(2, 1).is_ok());
        e.close(1, 5).unwrap();
        assert_eq!(e.alloc_unbound(1, 2), Ok(5));
    }

    #[test]
    fn removing_a_domain_unbinds_its_peers() {
        let mut e = two();
        let p2 = e.alloc_unbound(2, 1).unwrap();
        let (p1, _) = e.bind_interdomain(1, 2, p2).unwrap();
        e.bind_virq(1, 0).unwrap();
        e.remove_domain(1);
        assert_eq!(e.status(2, p2), Ok(PortState::Unbound { remote: 1 }));
        assert_eq!(e.send(1, p1), Err(EvtchnError::NoDomain));
        assert_eq!(e.ports_in_use(), 1);
        e.remove_domain(2);
        assert_eq!(e.ports_in_use(), 0);
    }

    #[test]
    fn pirqs() {
        let mut e = two();
        let p = e.bind_pirq(1, 0x08).unwrap();
        assert_eq!(e.bind_pirq(1, 0x08), Err(EvtchnError::VirqBound));
        assert_eq!(e.pirq_port(1, 0x08), Some(p));
        assert_eq!(e.pirq_port(2, 0x08), None);
        assert_eq!(e.send(1, p), Err(EvtchnError::WrongState));
        e.close(1, p).unwrap();
        assert_eq!(e.pirq_port(1, 0x08), None);
    }

    #[test]
    fn virqs() {
        let mut e = two();
        let p = e.bind_virq(1, 0).unwrap();
        assert_eq!(e.bind_virq(1, 0), Err(EvtchnError::VirqBound));
        assert_eq!(e.bind_virq(1, 99), Err(EvtchnError::BadVirq));
        assert_eq!(e.virq_port(1, 0), Some(p));
        assert_eq!(e.virq_port(2, 0), None);
        assert_eq!(e.send(1, p), Err(EvtchnError::WrongState));
    }
}
