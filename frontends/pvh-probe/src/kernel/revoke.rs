//! `revoke` mode: a paravirtual peer's grants mapped by this HVM guest when the peer dies. In
//! order: allocate an unbound port for the peer, take events on the callback vector and wait for
//! the peer's event (it has granted us two pages, refs [`REVOKE_REFS`], and bound the port);
//! map both at guest frames above RAM with `GNTTABOP_map_grant_ref` and print what each says;
//! tell the peer (an event) to die without ending its grants; poll `EVTCHNOP_status` until the
//! port is unbound again (the hypervisor does that when the peer's ports close, after it revoked
//! the peer's grant mappings). Then read both frames (they must show the scratch page the
//! hypervisor put there, not the peer's text), write the [`revoke_pattern`] through the first
//! and read it back through both (one scratch page behind both frames), unmap both (and one of
//! them a second time) and print the statuses. Last, allocate a second port for the peer's id:
//! its next incarnation (restarted in place by Dom0, likely on the same frames) binds it once it
//! exists, looks for the pattern in its RAM and notifies us; then power off.

use core::fmt::Write;

use super::events::{enable_upcalls, wait_for};
use super::xen::{self, Outcome};
use super::{Boot, Console, say, shutdown};
use hv_abi::xen::{evtchnstat, gntmap, gntst, shutdown_reason, xenmapspace};
use pvh_probe::{Options, REVOKE_PATTERN_SEED, REVOKE_REFS, revoke_pattern};

/// Yields while waiting for the peer (to exist, or to be gone), at most this often.
const PEER_WAIT_YIELDS: u32 = 1_000_000;
/// How much of a mapped page is shown.
const TEXT_MAX: usize = 96;
/// 64-bit words in a page.
const WORDS: usize = 512;

/// Ends the domain with a crash after saying why.
fn fail(console: &mut Console, what: core::fmt::Arguments<'_>) -> ! {
    say!(console, "pvh-probe: revoke FAILED: {what}");
    shutdown(console, shutdown_reason::CRASH)
}

/// Byte `i` (below 4096) of the frame at guest-physical `at`.
fn byte_at(at: u64, i: usize) -> u8 {
    // SAFETY: the callers pass frames below 4 GiB (identity mapped) that show a page while they
    // are mapped, and offsets inside it; a volatile read, no reference to the page is created.
    unsafe { (at as *const u8).add(i).read_volatile() }
}

/// The text at guest-physical `at` (a mapped frame) up to its first NUL, and how many of the
/// page's bytes are not zero.
fn read_page(at: u64, buf: &mut [u8; TEXT_MAX]) -> (&str, usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = byte_at(at, i);
    }
    let nonzero = (0..4096).filter(|&i| byte_at(at, i) != 0).count();
    (pvh_probe::cmdline_text(buf), nonzero)
}

/// Words of the page at `at` (a mapped frame) that hold the pattern.
fn pattern_words(at: u64) -> usize {
    let p = at as *const u64;
    // SAFETY: as in `byte_at`; the frame is 4 KiB-aligned, so its 512 words are aligned.
    (0..WORDS).filter(|&i| unsafe { p.add(i).read_volatile() } == revoke_pattern(i)).count()
}

/// The peer's port: allocated (waiting while the peer does not exist), and unmasked.
fn peer_port(console: &mut Console, peer: u16) -> u32 {
    let port = xen::alloc_unbound(peer, PEER_WAIT_YIELDS)
        .unwrap_or_else(|outcome| fail(console, format_args!("EVTCHNOP_alloc_unbound for domain {peer}: {outcome}")));
    let result = xen::unmask(port);
    if !matches!(result, Ok(0)) {
        fail(console, format_args!("EVTCHNOP_unmask({port}): {}", Outcome(result)));
    }
    port
}

/// Yields until `EVTCHNOP_status(port)` says unbound (its interdomain peer is gone).
fn wait_until_unbound(console: &mut Console, port: u32) {
    for _ in 0..PEER_WAIT_YIELDS {
        match xen::status(port) {
            Ok(st) if st.status == evtchnstat::UNBOUND => return,
            Ok(st) if st.status == evtchnstat::INTERDOMAIN => {
                let _ = xen::yield_now();
            }
            Ok(st) => fail(console, format_args!("port {port} is in state {}", st.status)),
            Err(outcome) => fail(console, format_args!("EVTCHNOP_status({port}): {outcome}")),
        }
    }
    fail(console, format_args!("port {port} still interdomain after {PEER_WAIT_YIELDS} yields"))
}

pub fn run(console: &mut Console, boot: &Boot, options: &Options) -> ! {
    let Some(peer) = options.peer else { fail(console, format_args!("no peer domain")) };
    say!(console, "pvh-probe: revoke mode with domain {peer}");

    // shared_info 16 MiB above RAM, the two mappings in the frames after it.
    let map = boot.memmap();
    let shared_gfn = pvh_probe::free_frame_above_ram(map, 16 << 20);
    let gfns = [1, 2].map(|i| pvh_probe::free_frame_above_ram(map, (16 << 20) + i * 4096));
    if gfns.contains(&shared_gfn) || gfns[0] == gfns[1] || gfns[1].max(shared_gfn) >= (1 << 32) >> 12 {
        fail(console, format_args!("no room below 4 GiB for shared_info and two mappings"));
    }
    let result = xen::add_to_physmap(xenmapspace::SHARED_INFO, 0, shared_gfn);
    if !matches!(result, Ok(0)) {
        fail(console, format_args!("XENMEM_add_to_physmap(shared_info) at gfn {shared_gfn:#x}: {}", Outcome(result)));
    }
    let shared_info = shared_gfn << 12;
    let result = enable_upcalls(shared_info);
    if !matches!(result, Ok(0)) {
        fail(console, format_args!("HVM_PARAM_CALLBACK_IRQ: {}", Outcome(result)));
    }
    let port = peer_port(console, peer);
    say!(console, "pvh-probe: allocated unbound port {port} for domain {peer}; waiting for its grants");
    wait_for(shared_info, port);

    // Map both grants (writable) and show what the peer put in them.
    let at = gfns.map(|gfn| gfn << 12);
    let mut handles = [0u32; 2];
    let mut buf = [0u8; TEXT_MAX];
    for i in 0..2 {
        let (status, handle) = xen::map_grant(peer, REVOKE_REFS[i], at[i], gntmap::HOST_MAP);
        if status != gntst::OKAY {
            fail(
                console,
                format_args!("GNTTABOP_map_grant_ref of grant {} of domain {peer}: status {status}", REVOKE_REFS[i]),
            );
        }
        handles[i] = handle;
        let (text, _) = read_page(at[i], &mut buf);
        say!(console, "pvh-probe: mapped grant {} of domain {peer} at gfn {:#x}: \"{text}\"", REVOKE_REFS[i], gfns[i]);
    }

    // Said before sending: the peer may run (and die) as soon as the event is sent.
    say!(console, "pvh-probe: both mapped; telling domain {peer} on port {port} to die without ending its grants");
    let result = xen::send(port);
    if !matches!(result, Ok(0)) {
        fail(console, format_args!("EVTCHNOP_send({port}): {}", Outcome(result)));
    }
    wait_until_unbound(console, port);
    say!(console, "pvh-probe: port {port} is unbound: domain {peer} is gone");

    // What the revoked mappings show now.
    for i in 0..2 {
        let (text, nonzero) = read_page(at[i], &mut buf);
        say!(
            console,
            "pvh-probe: after revocation gfn {:#x} (grant {}) reads \"{text}\" ({nonzero} non-zero bytes)",
            gfns[i],
            REVOKE_REFS[i]
        );
    }
    let p = at[0] as *mut u64;
    for i in 0..WORDS {
        // SAFETY: gfns[0] (below 4 GiB, identity mapped) is still mapped, writable; aligned words.
        unsafe { p.add(i).write_volatile(revoke_pattern(i)) };
    }
    say!(
        console,
        "pvh-probe: wrote pattern {REVOKE_PATTERN_SEED:#018x} through gfn {:#x}: {} of {WORDS} words read back there, \
         {} through gfn {:#x}",
        gfns[0],
        pattern_words(at[0]),
        pattern_words(at[1]),
        gfns[1]
    );
    let unmapped = [0, 1].map(|i| xen::unmap_grant(at[i], handles[i]));
    let again = xen::unmap_grant(at[0], handles[0]);
    say!(
        console,
        "pvh-probe: unmapped both revoked mappings: status {}, {}; the first again: {again}",
        unmapped[0],
        unmapped[1]
    );

    // The peer's next incarnation (same id) binds this port once it exists and has looked.
    let next = peer_port(console, peer);
    say!(console, "pvh-probe: allocated port {next} for domain {peer}'s next incarnation; waiting for its event");
    wait_for(shared_info, next);
    say!(console, "pvh-probe: event on port {next} from domain {peer}; revoke done, shutting down (poweroff)");
    shutdown(console, shutdown_reason::POWEROFF)
}
