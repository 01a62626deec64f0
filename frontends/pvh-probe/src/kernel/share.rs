//! `share` mode: an HVM guest and a paravirtual unikernel on the same event channel and grant
//! table. In order: allocate an unbound port for the peer (the first port this domain allocates,
//! so its number is fixed: after the store and console ports the hypervisor made), map
//! shared_info and grant frame 0 above RAM, grant one page read-only (with
//! [`SHARE_MARKER`] in it) and one writable to the peer, take events on the callback vector and
//! wait with `sti; hlt` until the peer has written into the writable page and notified the port;
//! then copy with `GNTTABOP_copy` out of and into the page the peer granted us (named in its
//! text), and try three bad copies (a bad grant reference, a frame outside our RAM, a copy past
//! the page end), each of which must fail with its own status; map that page at a guest frame
//! above RAM with `GNTTABOP_map_grant_ref`, write through the mapping, unmap, map it read-only
//! and read it (a mapping over our RAM, an unaligned address, an unknown handle must each be
//! refused); then answer on the port, check
//! the peer let go of both grants, end them and power off.

use core::fmt::Write;
use core::sync::atomic::Ordering;

use super::events::{enable_upcalls, take_pending};
use super::xen::{self, Outcome, add_to_physmap, addr_mut, call, map_grant, unmap_grant};
use super::{Boot, Console, arch, say, shutdown};
use hv_abi::xen::{GnttabCopy, GnttabCopyPtr, gntcopy, gntmap, gntst, gnttabop};
use hv_abi::xen::{GrantEntryV1, gtf, nr, shutdown_reason, xenmapspace};
use pvh_probe::{
    CALLBACK_VECTOR, COPY_BACK_TEXT, MAPPED_TEXT, Options, PEER_COPY_MARKER, SHARE_MARKER, SHARE_READONLY_REF,
    SHARE_WRITABLE_REF,
};

/// A page this domain grants (4 KiB-aligned static; identity map, so address = guest-physical).
#[repr(C, align(4096))]
struct Page([u8; 4096]);
static mut READONLY_PAGE: Page = Page([0; 4096]);
static mut WRITABLE_PAGE: Page = Page([0; 4096]);
/// Where the peer's marker is copied to, and where the text copied back comes from.
static mut COPY_IN_PAGE: Page = Page([0; 4096]);
static mut COPY_OUT_PAGE: Page = Page([0; 4096]);

/// Yields while the peer does not exist yet (`alloc_unbound` says `-ESRCH`), at most this often.
const PEER_WAIT_YIELDS: u32 = 1_000_000;
/// How much of the writable page is shown.
const TEXT_MAX: usize = 96;

/// Ends the domain with a crash after saying why.
fn fail(console: &mut Console, what: core::fmt::Arguments<'_>) -> ! {
    say!(console, "pvh-probe: share FAILED: {what}");
    shutdown(console, shutdown_reason::CRASH)
}

/// `EVTCHNOP_alloc_unbound` for `peer`, yielding while the peer does not exist yet.
fn alloc_unbound(console: &mut Console, peer: u16) -> u32 {
    xen::alloc_unbound(peer, PEER_WAIT_YIELDS)
        .unwrap_or_else(|outcome| fail(console, format_args!("EVTCHNOP_alloc_unbound for domain {peer}: {outcome}")))
}

/// Writes grant entry `gref` of the table mapped at `table`: domid and frame first, flags last.
///
/// # Safety
/// `table` must be the guest address of a grant-table frame mapped by the hypervisor (identity
/// mapped), `gref` below the entries of one frame.
unsafe fn write_grant(table: u64, gref: u32, domid: u16, frame: u64, flags: u16) {
    let slot = (table as *mut GrantEntryV1).wrapping_add(gref as usize);
    // SAFETY: the caller's contract; volatile writes the compiler keeps in order, as the grant
    // protocol requires (the hypervisor reads the entry only once the flags say it is valid).
    unsafe {
        core::ptr::write_volatile(&raw mut (*slot).domid, domid);
        core::ptr::write_volatile(&raw mut (*slot).frame, frame as u32);
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
        core::ptr::write_volatile(&raw mut (*slot).flags, flags);
    }
}

/// Ends access to grant entry `gref` unless the peer still maps it (the hypervisor's busy bits
/// are set): returns the flags it found.
///
/// # Safety
/// As for [`write_grant`].
unsafe fn end_grant(table: u64, gref: u32) -> Result<u16, u16> {
    let slot = (table as *mut GrantEntryV1).wrapping_add(gref as usize);
    // SAFETY: the caller's contract; the flags word is 2-aligned (8-byte entries in a
    // page-aligned frame) and any bit pattern is a valid AtomicU16. Compare-and-swap, so busy
    // bits set between the check and the write are not lost (as Linux's gnttab_end_foreign_access).
    let flags = unsafe { &*(&raw mut (*slot).flags).cast::<core::sync::atomic::AtomicU16>() };
    let current = flags.load(Ordering::SeqCst);
    if current & (gtf::READING | gtf::WRITING) != 0 {
        return Err(current);
    }
    flags.compare_exchange(current, 0, Ordering::SeqCst, Ordering::SeqCst)
}

/// A local side of a grant copy: our own frame `gfn`.
fn local(gfn: u64, offset: u16) -> GnttabCopyPtr {
    GnttabCopyPtr { u: gfn, domid: hv_abi::xen::domid::SELF, offset, _pad: 0 }
}

/// `GNTTABOP_copy` with the peer's grant `...; copy grant <ref>`: its marker out into our page,
/// our text into its page (both must succeed), then a bad grant reference, a frame far outside
/// our RAM and a copy past the page end (each must fail with its own status).
fn copy_with_peer(console: &mut Console, peer: u16, gref: Option<u32>) {
    let Some(gref) = gref else { fail(console, format_args!("the peer's text names no copy grant")) };
    let (in_gfn, out_gfn) = ((&raw const COPY_IN_PAGE as u64) >> 12, (&raw const COPY_OUT_PAGE as u64) >> 12);
    let out = (&raw mut COPY_OUT_PAGE).cast::<u8>();
    // SAFETY: our own static page, not shared with anyone; raw pointer writes, no reference.
    unsafe {
        core::ptr::copy_nonoverlapping(COPY_BACK_TEXT.as_ptr(), out, COPY_BACK_TEXT.len());
        out.add(COPY_BACK_TEXT.len()).write_volatile(0);
    }
    let theirs = GnttabCopyPtr { u: u64::from(gref), domid: peer, offset: 0, _pad: 0 };
    let marker_len = PEER_COPY_MARKER.len() as u16 + 1;
    let element = |source, dest, len, flags| GnttabCopy { source, dest, len, flags, status: 1, ..Default::default() };
    let mut ops = [
        element(theirs, local(in_gfn, 0), marker_len, gntcopy::SOURCE_GREF),
        element(local(out_gfn, 0), theirs, COPY_BACK_TEXT.len() as u16 + 1, gntcopy::DEST_GREF),
        element(GnttabCopyPtr { u: 4000, ..theirs }, local(in_gfn, 2048), 16, gntcopy::SOURCE_GREF),
        element(theirs, local(1 << 30, 0), 16, gntcopy::SOURCE_GREF),
        element(theirs, local(in_gfn, 4000), 200, gntcopy::SOURCE_GREF),
    ];
    let result = call(nr::GRANT_TABLE_OP, [gnttabop::COPY, addr_mut(&mut ops), ops.len() as u64, 0, 0]);
    if !matches!(result, Ok(0)) {
        fail(console, format_args!("GNTTABOP_copy: {}", Outcome(result)));
    }
    let status: [i16; 5] = core::array::from_fn(|i| ops[i].status);
    let expected = [gntst::OKAY, gntst::OKAY, gntst::BAD_GNTREF, gntst::BAD_COPY_ARG, gntst::BAD_COPY_ARG];
    if status != expected {
        fail(console, format_args!("GNTTABOP_copy statuses {status:?}, expected {expected:?}"));
    }
    let mut buf = [0u8; TEXT_MAX];
    let page = (&raw const COPY_IN_PAGE).cast::<u8>();
    for (i, b) in buf.iter_mut().enumerate() {
        // SAFETY: inside our own static page; volatile reads, no reference created.
        *b = unsafe { core::ptr::read_volatile(page.add(i)) };
    }
    say!(
        console,
        "pvh-probe: GNTTABOP_copy with grant {gref} of domain {peer}: copied out \"{}\", copied in our text; \
         bad ref, foreign frame and page overrun refused ({}, {}, {})",
        pvh_probe::cmdline_text(&buf),
        status[2],
        status[3],
        status[4]
    );
}

/// Maps the peer's grant `gref` at our guest frame `gfn` (above RAM), reads what the copy put
/// there, writes [`MAPPED_TEXT`] through the mapping and unmaps it; maps it read-only and reads
/// it again; then a mapping over our own RAM, an unaligned address and an unknown handle must
/// each be refused.
fn map_peer_grant(console: &mut Console, peer: u16, gref: u32, gfn: u64) {
    let at = gfn << 12;
    let read_text = |buf: &mut [u8; TEXT_MAX]| {
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `at` is below 4 GiB (identity mapped) and shows the peer's page while the
            // grant is mapped there; volatile reads, the peer may write concurrently.
            *b = unsafe { core::ptr::read_volatile((at as *const u8).add(i)) };
        }
    };
    let (status, handle) = map_grant(peer, gref, at, gntmap::HOST_MAP);
    if status != gntst::OKAY {
        fail(console, format_args!("GNTTABOP_map_grant_ref of grant {gref} at gfn {gfn:#x}: status {status}"));
    }
    let mut buf = [0u8; TEXT_MAX];
    read_text(&mut buf);
    say!(
        console,
        "pvh-probe: mapped grant {gref} of domain {peer} at gfn {gfn:#x}: \"{}\"",
        pvh_probe::cmdline_text(&buf)
    );
    // SAFETY: the mapping above is writable and covers the page at `at`; the text and its NUL fit.
    unsafe {
        let p = at as *mut u8;
        for (i, &b) in MAPPED_TEXT.as_bytes().iter().chain(&[0]).enumerate() {
            p.add(i).write_volatile(b);
        }
    }
    let unmapped = unmap_grant(at, handle);
    let (ro_status, ro_handle) = map_grant(peer, gref, at, gntmap::HOST_MAP | gntmap::READONLY);
    if (unmapped, ro_status) != (gntst::OKAY, gntst::OKAY) {
        fail(console, format_args!("unmap {unmapped}, read-only map {ro_status}"));
    }
    read_text(&mut buf);
    let ro_unmapped = unmap_grant(at, ro_handle);
    let own_ram = (&raw const COPY_IN_PAGE as u64) & !0xfff;
    let (over_ram, _) = map_grant(peer, gref, own_ram, gntmap::HOST_MAP);
    let (unaligned, _) = map_grant(peer, gref, at + 8, gntmap::HOST_MAP);
    let bad_handle = unmap_grant(at, 77);
    say!(
        console,
        "pvh-probe: wrote through it, unmapped ({unmapped}); read-only again: \"{}\", unmapped ({ro_unmapped}); \
         over our RAM {over_ram}, unaligned {unaligned}, unknown handle {bad_handle}",
        pvh_probe::cmdline_text(&buf)
    );
}

/// The writable page's text: up to its first NUL, at most `TEXT_MAX` bytes, valid UTF-8.
fn writable_text(buf: &mut [u8; TEXT_MAX]) -> &str {
    let page = (&raw const WRITABLE_PAGE).cast::<u8>();
    for (i, b) in buf.iter_mut().enumerate() {
        // SAFETY: inside our own static page, which the peer may write concurrently: volatile
        // byte reads, no reference to the page is created.
        *b = unsafe { core::ptr::read_volatile(page.add(i)) };
    }
    pvh_probe::cmdline_text(buf)
}

pub fn run(console: &mut Console, boot: &Boot, options: &Options) -> ! {
    let Some(peer) = options.peer else { fail(console, format_args!("no peer domain")) };
    say!(console, "pvh-probe: share mode with domain {peer}");

    // The port first: its number is the first free one after the store and console ports.
    let port = alloc_unbound(console, peer);
    say!(console, "pvh-probe: allocated unbound port {port} for domain {peer}");

    // shared_info and grant frame 0, 16 MiB above RAM (above any special page right after it).
    let map = boot.memmap();
    let shared_gfn = pvh_probe::free_frame_above_ram(map, 16 << 20);
    let table_gfn = pvh_probe::free_frame_above_ram(map, (16 << 20) + 4096);
    if table_gfn == shared_gfn || table_gfn.max(shared_gfn) >= (1 << 32) >> 12 {
        fail(console, format_args!("no room below 4 GiB for shared_info and the grant table"));
    }
    for (what, space, gfn) in
        [("shared_info", xenmapspace::SHARED_INFO, shared_gfn), ("grant frame 0", xenmapspace::GRANT_TABLE, table_gfn)]
    {
        let result = add_to_physmap(space, 0, gfn);
        if !matches!(result, Ok(0)) {
            fail(console, format_args!("XENMEM_add_to_physmap({what}) at gfn {gfn:#x}: {}", Outcome(result)));
        }
    }
    let shared_info = shared_gfn << 12;
    let table = table_gfn << 12;

    // The two pages: the marker in the read-only one, the writable one empty.
    let ro = &raw mut READONLY_PAGE;
    // SAFETY: our own static page, not granted yet; raw pointer writes, no reference created.
    unsafe {
        core::ptr::copy_nonoverlapping(SHARE_MARKER.as_ptr(), ro.cast::<u8>(), SHARE_MARKER.len());
        ro.cast::<u8>().add(SHARE_MARKER.len()).write_volatile(0);
    }
    let ro_frame = (&raw const READONLY_PAGE as u64) >> 12;
    let rw_frame = (&raw const WRITABLE_PAGE as u64) >> 12;
    // SAFETY: grant frame 0 is mapped at `table` (checked below 4 GiB above); both refs are
    // below the 512 entries of a frame.
    unsafe {
        write_grant(table, SHARE_READONLY_REF, peer, ro_frame, gtf::PERMIT_ACCESS | gtf::READONLY);
        write_grant(table, SHARE_WRITABLE_REF, peer, rw_frame, gtf::PERMIT_ACCESS);
    }
    say!(
        console,
        "pvh-probe: granted ref {SHARE_READONLY_REF} (read-only, gfn {ro_frame:#x}) and ref {SHARE_WRITABLE_REF} \
         (writable, gfn {rw_frame:#x}) to domain {peer}"
    );

    // Events: the callback vector, vcpu_info 0 in shared_info, the port unmasked.
    let result = enable_upcalls(shared_info);
    if !matches!(result, Ok(0)) {
        fail(console, format_args!("HVM_PARAM_CALLBACK_IRQ: {}", Outcome(result)));
    }
    let result = xen::unmask(port);
    if !matches!(result, Ok(0)) {
        fail(console, format_args!("EVTCHNOP_unmask({port}): {}", Outcome(result)));
    }
    say!(console, "pvh-probe: waiting for an event on port {port} (callback vector {CALLBACK_VECTOR:#x})");

    // Wait: scan with interrupts off, sleep with them on; until our port fired and the peer's
    // text is in the writable page.
    let mut text = [0u8; TEXT_MAX];
    let mut others = 0u32;
    loop {
        let mut ours = false;
        take_pending(shared_info, |p| {
            if p == port {
                ours = true;
            } else {
                others += 1;
            }
        });
        if ours {
            if !writable_text(&mut text).is_empty() {
                break;
            }
            say!(console, "pvh-probe: event on port {port} but the writable page is still empty; waiting on");
        }
        arch::wait_for_interrupt();
    }
    let upcalls = arch::UPCALLS.load(Ordering::SeqCst);
    say!(
        console,
        "pvh-probe: event on port {port} from the PV peer; writable page now says \"{}\"",
        writable_text(&mut text)
    );
    say!(console, "pvh-probe: {upcalls} upcall(s) on vector {CALLBACK_VECTOR:#x}, {others} event(s) on other ports");

    let copy_ref = pvh_probe::copy_grant_in(writable_text(&mut text));
    copy_with_peer(console, peer, copy_ref);
    let map_gfn = pvh_probe::free_frame_above_ram(map, (16 << 20) + 2 * 4096);
    if map_gfn == shared_gfn || map_gfn == table_gfn || map_gfn >= (1 << 32) >> 12 {
        fail(console, format_args!("no room below 4 GiB to map the peer's grant"));
    }
    map_peer_grant(console, peer, copy_ref.unwrap_or(0), map_gfn);

    // Said before sending: the peer may run (and print) as soon as the event is sent.
    say!(console, "pvh-probe: answering on port {port}");
    let result = xen::send(port);
    if !matches!(result, Ok(0)) {
        fail(console, format_args!("EVTCHNOP_send({port}): {}", Outcome(result)));
    }

    // The peer unmapped both pages before it notified us: no busy bits left, and ending access
    // (clearing the flags) takes both pages back.
    for gref in [SHARE_READONLY_REF, SHARE_WRITABLE_REF] {
        // SAFETY: as for the writes above.
        if let Err(flags) = unsafe { end_grant(table, gref) } {
            fail(console, format_args!("grant {gref} still mapped by the peer (flags {flags:#x})"));
        }
    }
    say!(console, "pvh-probe: both grants ended (no mapping left)");
    for _ in 0..options.hold {
        let _ = xen::yield_now();
    }
    say!(console, "pvh-probe: share done, shutting down (poweroff)");
    shutdown(console, shutdown_reason::POWEROFF)
}
