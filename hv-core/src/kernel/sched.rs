//! Running domains: the context switch, the one-shot timer, sleepers' deadlines and CPU-time
//! accounting. The policy (who runs next, for how long) is `crate::sched` (host-tested); this
//! file applies it to the CPU.
use super::domain::Domain;
use super::{HV, Hv, console, time};
use crate::arch::{TrapFrame, apic, paging, trap};
use hv_abi::virq;

/// Longest console output waits for the UART while the CPU is busy.
const CONSOLE_FLUSH_NS: u64 = 1_000_000;

impl Hv {
    /// Picks the first domain to run at boot and loads its address space.
    pub fn schedule_first(&mut self) -> TrapFrame {
        let slot = self.sched.pick(time::now_ns()).expect("dom0 is runnable");
        self.load_context(slot)
    }

    fn load_context(&mut self, slot: usize) -> TrapFrame {
        let live = self.domains[slot].as_ref().and_then(Domain::live).expect("scheduled domain is alive");
        if self.loaded_pml4 != live.aspace.pml4 {
            paging::load(live.aspace.pml4);
            self.loaded_pml4 = live.aspace.pml4;
        }
        let ctx = live.ctx;
        self.arm_timer();
        ctx
    }

    pub fn arm_timer(&mut self) {
        let now = time::now_ns();
        let mut deadline = self.sched.next_deadline(now);
        if console::pending() {
            // Console output waits at most about a millisecond, even under a CPU hog.
            let flush = self.armed_deadline.filter(|&d| d <= now + CONSOLE_FLUSH_NS).unwrap_or(now + CONSOLE_FLUSH_NS);
            deadline = Some(deadline.map_or(flush, |d| d.min(flush)));
        }
        if let Some(t) = self.hvm_timer_deadline() {
            deadline = Some(deadline.map_or(t, |d| d.min(t)));
        }
        if let Some(poll) = self.control.deadline() {
            // The control channel is polled: an idle CPU still looks at it every millisecond.
            deadline = Some(deadline.map_or(poll, |d| d.min(poll)));
        }
        // `armed_deadline` is cleared whenever the one-shot timer fires (see `trap`).
        if deadline != self.armed_deadline {
            apic::arm(deadline.map(time::ns_to_tsc_deadline));
            self.armed_deadline = deadline;
        }
    }

    pub(super) fn charge(&mut self, now: u64) {
        let slot = self.sched.current();
        let ran = self.sched.account(now);
        if let Some(d) = slot.and_then(|s| self.domains[s].as_mut()) {
            d.cpu_ns += ran;
        }
    }

    /// Wakes the domains whose `block` deadline passed and raises their TIMER virq.
    pub fn expire_timers(&mut self, now: u64) -> usize {
        let mut woken = [0usize; hv_abi::MAX_DOMAINS];
        let mut n = 0;
        self.sched.expire(now, |slot| {
            if n < woken.len() {
                woken[n] = slot;
                n += 1;
            }
        });
        for &slot in &woken[..n] {
            if let Some(id) = self.domains[slot].as_ref().map(|d| d.id) {
                self.raise_virq(id, virq::TIMER);
            }
        }
        n + self.expire_hvm_timers(now)
    }

    /// The earliest single-shot timer of an HVM vCPU.
    fn hvm_timer_deadline(&self) -> Option<u64> {
        self.domains.iter().flatten().filter_map(Domain::live).filter_map(|l| l.hvm.as_ref()?.timer).min()
    }

    /// Fires the HVM vCPUs' single-shot timers that are due (their TIMER virq).
    fn expire_hvm_timers(&mut self, now: u64) -> usize {
        let mut due = [0 as hv_abi::DomId; hv_abi::MAX_DOMAINS];
        let mut n = 0;
        for d in self.domains.iter_mut().flatten() {
            let id = d.id;
            if let Some(h) = d.live_mut().and_then(|l| l.hvm.as_deref_mut())
                && h.timer.is_some_and(|t| t <= now)
                && n < due.len()
            {
                h.timer = None;
                due[n] = id;
                n += 1;
            }
        }
        for &id in &due[..n] {
            self.raise_virq(id, virq::TIMER);
        }
        n
    }
}

/// Decides what runs when the hypervisor returns to ring 3 and fills `frame` with it. Called at
/// the end of every trap and hypercall from a domain, with `guard` holding the state lock. If
/// nothing is runnable the CPU idles here (lock released, interrupts on) until something is.
pub fn leave(mut guard: spin::MutexGuard<'static, Option<Hv>>, frame: &mut TrapFrame) {
    let hv = guard.as_mut().expect("hypervisor initialised");
    let now = time::now_ns();
    hv.charge(now);
    hv.expire_timers(now);
    hv.poll_control(now);
    hv.poll_iommu(now);
    let cur = hv.sched.current();
    let keep = cur.is_some_and(|c| hv.sched.is_runnable(c)) && !hv.need_resched && !hv.sched.slice_expired(now);
    if keep {
        hv.arm_timer();
        return;
    }
    hv.need_resched = false;
    // Save the outgoing domain (if it still exists).
    if let Some(live) = cur.and_then(|c| hv.domains[c].as_mut()).and_then(Domain::live_mut) {
        live.ctx = *frame;
    }
    loop {
        let hv = guard.as_mut().expect("hypervisor initialised");
        let now = time::now_ns();
        hv.expire_timers(now);
        hv.poll_control(now);
        hv.poll_iommu(now);
        if let Some(next) = hv.sched.pick(now) {
            if hv.domains[next].as_ref().and_then(Domain::live).is_some_and(|l| l.hvm.is_some()) {
                // An HVM vCPU runs here, inside the hypervisor, until it gives up the CPU.
                if hv.loaded_pml4 != hv.ktables.pml4 {
                    paging::load(hv.ktables.pml4);
                    hv.loaded_pml4 = hv.ktables.pml4;
                }
                guard = super::hvm::run::run(guard, next);
                continue;
            }
            *frame = hv.load_context(next);
            return;
        }
        // Idle: nothing runnable. Sleep until the next deadline or interrupt.
        if hv.loaded_pml4 != hv.ktables.pml4 {
            paging::load(hv.ktables.pml4);
            hv.loaded_pml4 = hv.ktables.pml4;
        }
        drop(guard);
        console::drain_some(console::DRAIN_IDLE);
        guard = HV.lock();
        let hv = guard.as_mut().expect("hypervisor initialised");
        if hv.expire_timers(time::now_ns()) > 0 {
            continue;
        }
        hv.arm_timer();
        drop(guard);
        trap::wait_for_interrupt();
        guard = HV.lock();
        // Whatever woke us, the one-shot timer may have fired: re-arm from scratch.
        guard.as_mut().expect("hypervisor initialised").armed_deadline = None;
    }
}
