//! Reads, writes and flushes: a transfer's [`Pending`] ranges issued as requests built for the
//! connection's limits ([`crate::request`]), as many in flight as the ring, the data pool and
//! the indirect pages allow; responses collected in any order; on a backend that leaves, every
//! unanswered range goes back to be issued on the new connection.
use alloc::format;
use alloc::vec::Vec;
use core::borrow::BorrowMut;

use hv_rt::grant::GrantedPages;
use hv_rt::store::{Store, XenbusState};
use hv_rt::{evtchn, time};
use shared_ring::wire::blkif::{OP_FLUSH_DISKCACHE, OP_READ, OP_WRITE, OP_WRITE_BARRIER, RSP_OKAY};

use crate::front::{InFlight, SECOND, setup_err};
use crate::pending::Pending;
use crate::request::{self, MAX_INDIRECT_SEGMENTS, PAGE, Target};
use crate::{BlkError, BlkFront, SECTOR_SIZE};

/// A transfer gives up after this long without any response.
const STALL_TIMEOUT_NS: u64 = 30 * SECOND;

enum Buf<'a> {
    Read(&'a mut [u8]),
    Write(&'a [u8]),
    None,
}

impl Buf<'_> {
    fn len(&self) -> usize {
        match self {
            Buf::Read(b) => b.len(),
            Buf::Write(b) => b.len(),
            Buf::None => 0,
        }
    }
}

/// `n` pool pages; if fewer are free, as many as there are when `fewer` allows it (at least
/// one), else none (and the pool unchanged).
fn take_pages(pool: &mut GrantedPages, n: usize, fewer: bool) -> Option<Vec<(u32, u64)>> {
    let mut pages = Vec::with_capacity(n);
    while pages.len() < n {
        match pool.take() {
            Some(p) => pages.push(p),
            None if fewer && !pages.is_empty() => break,
            None => {
                for p in pages {
                    pool.give_back(p);
                }
                return None;
            }
        }
    }
    Some(pages)
}

impl<S: BorrowMut<Store>> BlkFront<S> {
    /// Reads `buf.len() / 512` sectors at `sector`.
    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlkError> {
        self.transfer(OP_READ, sector, Buf::Read(buf))
    }

    /// Writes whole sectors at `sector`; returns once the backend acknowledged every request
    /// (that is, the backing device completed it; call [`BlkFront::flush`] for durability).
    pub fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlkError> {
        if self.info.read_only {
            return Err(BlkError::ReadOnly);
        }
        self.transfer(OP_WRITE, sector, Buf::Write(buf))
    }

    /// Makes every acknowledged write durable.
    pub fn flush(&mut self) -> Result<(), BlkError> {
        let op = if self.info.flush {
            OP_FLUSH_DISKCACHE
        } else if self.info.barrier {
            OP_WRITE_BARRIER
        } else {
            return Ok(()); // no volatile cache advertised: writes are durable when acknowledged
        };
        self.transfer(op, 0, Buf::None)
    }

    /// Gives a request's pages back to their pools.
    fn release(&mut self, f: InFlight) {
        if let Some(pool) = self.pool.as_mut() {
            for p in f.pages {
                pool.give_back(p);
            }
        }
        if let Some(ind) = self.indirect.as_mut() {
            ind.give_back(f.indirect);
        }
    }

    /// Issues requests for `pending`'s ranges while a slot, the ring, the pool and (for a
    /// request past 11 pages) the indirect pages allow; returns how many it pushed. With
    /// nothing in flight, a request takes the pool pages there are (the caller may hold some,
    /// [`BlkFront::take_page`]) rather than wait for pages that are not coming back.
    fn issue(&mut self, op: u8, sector: u64, buf: &Buf<'_>, pending: &mut Pending) -> Result<usize, BlkError> {
        let limits = self.limits;
        let mut pushed = 0;
        while let Some(slot) = self.slots.iter().position(Option::is_none) {
            let idle = self.slots.iter().all(Option::is_none);
            let (Some(r), Some(pool)) = (self.ring.as_mut(), self.pool.as_mut()) else { break };
            let Some(bytes) = pending.next_len(limits.bytes()) else { break };
            if r.ring.free_requests() == 0 {
                break;
            }
            let Some(pages) = take_pages(pool, bytes.div_ceil(PAGE), idle) else { break };
            let (npages, bytes) = (pages.len(), bytes.min(pages.len() * PAGE));
            let nind = request::indirect_pages_for(npages);
            let indirect = if nind == 0 { Some(Vec::new()) } else { self.indirect.as_mut().and_then(|p| p.take(nind)) };
            let Some(indirect) = indirect else {
                for p in pages {
                    pool.give_back(p);
                }
                break;
            };
            let range = pending.take(bytes).unwrap_or(0..0);
            let mut grefs = [0u32; MAX_INDIRECT_SEGMENTS];
            for (i, (g, &(gref, va))) in grefs.iter_mut().zip(&pages).enumerate() {
                *g = gref;
                if let Buf::Write(src) = buf {
                    let at = range.start + i * PAGE;
                    let n = (range.end - at).min(PAGE);
                    // SAFETY: `va` is a pool page of ours (4 KiB, page-aligned), in no other
                    // request; the backend only copies from it, after we publish.
                    let dst = unsafe { core::slice::from_raw_parts_mut(va as *mut u8, n) };
                    dst.copy_from_slice(&src[at..at + n]);
                }
            }
            let mut lists: Vec<(u32, &mut [u8; PAGE])> = indirect
                .iter()
                // SAFETY: an indirect page of ours (4 KiB, page-aligned), in no other request;
                // the backend may only read it (read-only grant), after we publish.
                .map(|&(gref, va)| (gref, unsafe { &mut *(va as *mut [u8; PAGE]) }))
                .collect();
            let target =
                Target { operation: op, id: slot as u64, sector: sector + (range.start / SECTOR_SIZE) as u64, bytes };
            let built = request::build(target, &grefs[..npages], limits, &mut lists);
            drop(lists);
            let f = InFlight { transfer: self.transfers, operation: op, sector: target.sector, range, pages, indirect };
            let slot_bytes = match built {
                Ok(s) => s,
                Err(e) => {
                    // Our own bug (the limits and the pages taken disagree): nothing was sent.
                    pending.put_back(f.range.clone());
                    self.release(f);
                    return Err(setup_err("request", format!("{e:?}")));
                }
            };
            if let Err(e) = r.ring.push_request(slot_bytes) {
                pending.put_back(f.range.clone());
                self.release(f);
                return Err(setup_err("push", e));
            }
            self.slots[slot] = Some(f);
            pushed += 1;
        }
        Ok(pushed)
    }

    /// Takes every response there is; returns how many answered requests of this transfer.
    fn collect(&mut self, buf: &mut Buf<'_>, first_error: &mut Option<BlkError>) -> Result<usize, BlkError> {
        let mut answered = 0;
        loop {
            let Some(r) = self.ring.as_mut() else { return Ok(answered) };
            let rsp = match r.ring.poll_response() {
                Ok(Some(rsp)) => rsp,
                Ok(None) => return Ok(answered),
                Err(e) => return Err(BlkError::Broken(e)),
            };
            let slot = rsp.id as usize; // the ring checked it is outstanding (< 32)
            let Some(f) = self.slots.get_mut(slot).and_then(Option::take) else { continue };
            if f.transfer != self.transfers {
                // Left over from a transfer that gave up (timeout): only its pages matter now.
                self.release(f);
                continue;
            }
            answered += 1;
            if rsp.status != RSP_OKAY || !request::response_matches(f.operation, !f.indirect.is_empty(), rsp.operation)
            {
                first_error.get_or_insert(BlkError::Io {
                    operation: f.operation,
                    sector: f.sector,
                    status: rsp.status,
                });
            } else if let Buf::Read(dst) = buf {
                for (i, &(_, va)) in f.pages.iter().enumerate() {
                    let at = f.range.start + i * PAGE;
                    let n = (f.range.end - at).min(PAGE);
                    // SAFETY: our pool page; the backend finished copying into it before it
                    // responded (and the response's read was ordered after that).
                    let src = unsafe { core::slice::from_raw_parts(va as *const u8, n) };
                    dst[at..at + n].copy_from_slice(src);
                }
            }
            self.release(f);
        }
    }

    fn transfer(&mut self, op: u8, sector: u64, mut buf: Buf<'_>) -> Result<(), BlkError> {
        let len = buf.len();
        if !len.is_multiple_of(SECTOR_SIZE) {
            return Err(BlkError::BadRange);
        }
        let sectors = (len / SECTOR_SIZE) as u64;
        if sector.checked_add(sectors).is_none_or(|end| end > self.info.sectors) {
            return Err(BlkError::BadRange);
        }
        self.transfers += 1;
        let mut pending = Pending::new(len);
        let mut in_flight = 0usize; // requests of this transfer
        let mut first_error: Option<BlkError> = None;
        let mut last_progress = time::now_ns();
        let mut last_state_check = time::now_ns();
        loop {
            let pushed = if first_error.is_none() { self.issue(op, sector, &buf, &mut pending)? } else { 0 };
            in_flight += pushed;
            let Some(r) = self.ring.as_mut() else { return Err(BlkError::Setup("not connected".into())) };
            if pushed > 0 && r.ring.publish_requests().is_needed() {
                let _ = evtchn::send(r.port);
            }
            evtchn::clear(r.port);
            let answered = self.collect(&mut buf, &mut first_error)?;
            in_flight -= answered.min(in_flight);
            if in_flight == 0 && (pending.is_empty() || first_error.is_some()) {
                break;
            }
            let now = time::now_ns();
            if answered > 0 {
                last_progress = now;
                continue;
            }
            if pushed > 0 {
                continue;
            }
            let Some(r) = self.ring.as_mut() else { return Err(BlkError::Setup("not connected".into())) };
            if r.ring.final_check_for_responses().map_err(BlkError::Broken)? {
                continue;
            }
            // Idle: is the backend still there? Checked at once when a store watch fired (the
            // backend's state changed, or its directory went with its domain), else twice a
            // second.
            let store_port = hv_rt::start_info().store_port as u32;
            let watch_fired = evtchn::clear(store_port);
            if watch_fired || now - last_state_check > SECOND / 2 {
                last_state_check = now;
                let _ = self.store.borrow_mut().poll();
                while self.store.borrow_mut().take_event().is_some() {}
                let s = self.backend_state();
                if s != XenbusState::Connected {
                    // Every unanswered request is issued again on the new ring, cut for what
                    // the new backend offers.
                    for i in 0..self.slots.len() {
                        if let Some(f) = self.slots[i].take() {
                            if f.transfer == self.transfers {
                                pending.put_back(f.range.clone());
                            }
                            self.release(f);
                        }
                    }
                    in_flight = 0;
                    self.reconnect(&format!("backend went {s:?} with requests in flight"))?;
                    last_progress = time::now_ns();
                    continue;
                }
            }
            if now - last_progress > STALL_TIMEOUT_NS {
                return Err(BlkError::Timeout);
            }
            time::block_until(now + SECOND / 10);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
