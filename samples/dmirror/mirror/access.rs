// SPDX-License-Identifier: GPL-2.0

//! The device's accesses: its page fault, which fills the device page
//! table through `hmm_range_fault()`, and READ and WRITE through the table
//! (see the module documentation of `mirror.rs` for the copies).

use super::invalidate::PageDirtier;
use super::{
    Backend,
    Mirror,
    CHUNK_PAGES, //
};
use crate::bounce::Bounce;
use crate::device_pt::{
    DirReserve,
    Entry,
    HUGE_ORDER,
    HUGE_PAGES,
    HUGE_SIZE, //
};
use crate::hmm::{
    self,
    resched_or_killed,
    Fault,
    Mode, //
};
use crate::uapi::*;
use kernel::{
    page::{
        PAGE_SHIFT,
        PAGE_SIZE, //
    },
    prelude::*,
    uaccess::UserPtr, //
};

/// A bounce buffer for up to `CHUNK_PAGES` of the request `[start, end)`.
fn bounce_for(start: usize, end: usize) -> Result<Bounce> {
    Bounce::new(((end - start) >> PAGE_SHIFT).min(CHUNK_PAGES))
}

impl<B: Backend> Mirror<B> {
    /// Device page fault: fills the device page table for `[start, end)`.
    ///
    /// A page the CPU maps with a PMD gets a huge leaf for that whole PMD,
    /// even where it reaches past the range (see [`crate::hmm::block_head`]).
    pub(super) fn fault(&self, start: usize, end: usize, fault: Fault, mode: Mode) -> Result {
        // Directories come from GFP_NOWAIT under the lock; only when that
        // fails is the reserve filled with GFP_KERNEL, outside the lock, and
        // the chunk faulted again.
        let mut reserve = DirReserve::new();
        let mut moved_back = 0;
        let mut addr = start;
        while addr < end {
            resched_or_killed()?;
            // Chunks never cross a huge leaf boundary.
            const _: () = assert!(CHUNK_PAGES as u64 >= HUGE_PAGES);
            let next = end.min((addr & !(HUGE_SIZE - 1)) + HUGE_SIZE);
            let memory = self.memory();
            let res = self
                .backend
                .with_range(addr, next, self.owner(), |range, next| {
                    let mut f = range.fault(fault, mode)?;
                    let (st, pfns) = f.split();
                    let mut res = Ok(next);
                    let mut i = 0;
                    while i < pfns.pfns().len() {
                        let va = addr + (i << PAGE_SHIFT);
                        let Some(page) = pfns.page(i) else {
                            // Only device pages are asked for without faulting.
                            return Err(if fault == Fault::None { ENOENT } else { EFAULT });
                        };
                        // HMM reports our own device pages as they are, without
                        // faulting them for write: one the CPU maps read-only
                        // (shared with a forked child, or write-protected) must
                        // go back to system memory, where a write fault breaks
                        // COW or finds the VMA read-only.
                        if fault == Fault::Write && page.is_device_private() && !page.is_writable()
                        {
                            res = Err((va, ENOENT));
                            break;
                        }
                        let flags = if page.is_writable() { Entry::WRITE } else { 0 };
                        let inserted = if page.is_device_private() {
                            // HMM reports device-private pages of our owner
                            // only, so they are ours; the device reads them
                            // through their data (4 KiB entries: see
                            // `block_head`).
                            let data = memory.data_pfn(&pfns.pfns()[i]).ok_or(EFAULT)?;
                            // SAFETY: The data page of one of our device pages
                            // is freed only in its `folio_free`, once the device
                            // page itself is.
                            let data = unsafe { page.device_data(data)? };
                            i += 1;
                            st.pt
                                .insert_page(va, &data, flags, &mut reserve, &mut PageDirtier)
                        } else if fault == Fault::None && !memory.owns(&pfns.pfns()[i]) {
                            // Only device pages are asked for without faulting;
                            // the CPU maps coherent ones as it maps RAM.
                            return Err(ENOENT);
                        } else if let Some(block) = pfns.block(i, HUGE_ORDER) {
                            let base = va & !(HUGE_SIZE - 1);
                            i = pfns.pfns().len();
                            st.pt.insert_huge_page(
                                base,
                                &block,
                                flags,
                                &mut reserve,
                                &mut PageDirtier,
                            )
                        } else {
                            i += 1;
                            st.pt
                                .insert_page(va, &page, flags, &mut reserve, &mut PageDirtier)
                        };
                        if let Err(e) = inserted {
                            res = Err((va, e));
                            break;
                        }
                    }
                    Ok(res)
                })?;
            match res {
                Ok(next) => addr = next,
                Err((_, e)) if e == ENOMEM => reserve.fill_block(GFP_KERNEL)?,
                Err((va, e)) if e == ENOENT => {
                    // Bounded: the page may be migrated here again meanwhile.
                    moved_back += 1;
                    if moved_back > 16 {
                        return Err(EBUSY);
                    }
                    // A racing munmap or mprotect may have taken the VMA:
                    // that is an unmapped page here, as anywhere in a fault.
                    self.migrate(va, va + PAGE_SIZE, self.memory().select())
                        .map_err(|e| if e == EINVAL { EFAULT } else { e })?;
                    addr = va;
                }
                Err((_, e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// HMM_DMIRROR_READ and HMM_DMIRROR_READ_UNLOCKED.
    ///
    /// Each span of valid entries is copied straight to user memory under
    /// the notifier lock, one copy per huge leaf. Where a user page is not
    /// there to take it without a fault, the rest of the chunk goes through
    /// the bounce buffer, whose copy to user memory runs unlocked and may
    /// fault.
    pub(crate) fn read(&self, c: &mut HmmDmirrorCmd, unlocked: bool) -> Result {
        let (start, end) = self.range(c)?;
        let ptr = user_addr(c.ptr)?;
        let mode = if unlocked {
            // Bounded, unlike test_hmm's 0 (retry for ever): with two CPUs
            // a thread invalidating elsewhere in the mm could keep the
            // kernel's retry loop going; this gives up with EBUSY as READ
            // does. A fault that drops the mmap lock (userfaultfd) made
            // progress and restarts the clock.
            Mode::Unlocked {
                timeout_ms: hmm::DEFAULT_TIMEOUT_MS,
            }
        } else {
            Mode::Locked
        };
        // A destination overlapping the source would read back its own
        // writes: such a READ copies each chunk whole before writing it.
        let overlaps = ptr < end && start < ptr.saturating_add(end - start);
        let uptr = |va: usize| ptr.wrapping_add(va - start);
        let mut bounce = None;
        let mut addr = start;
        while addr < end {
            resched_or_killed()?;
            let chunk_end = end.min(addr + (CHUNK_PAGES << PAGE_SHIFT));
            let mut short = overlaps;
            if !overlaps {
                let guard = self.backend.lock();
                let mut va = addr;
                let reached = guard.pt.run_pages(addr, chunk_end, &mut |pages| {
                    let done = pages.copy_to_user_nofault(UserPtr::from_addr(uptr(va)));
                    short = done < pages.npages();
                    va += (done as usize) << PAGE_SHIFT;
                    done
                });
                drop(guard);
                c.cpages += ((reached - addr) >> PAGE_SHIFT) as u64;
                addr = reached;
            }
            if short {
                let bounce = match &mut bounce {
                    Some(b) => b,
                    None => bounce.insert(bounce_for(start, end)?),
                };
                bounce.clear();
                self.backend
                    .lock()
                    .pt
                    .run_pages(addr, chunk_end, &mut |pages| bounce.push_pages(&pages));
                let n = bounce.filled().len() / PAGE_SIZE;
                if n > 0 {
                    bounce.copy_to_user(uptr(addr))?;
                    c.cpages += n as u64;
                    addr += n << PAGE_SHIFT;
                }
            }
            if addr < chunk_end {
                self.fault(addr, end, Fault::Read, mode)?;
                c.faults += 1;
            }
        }
        Ok(())
    }

    /// HMM_DMIRROR_WRITE.
    pub(crate) fn write(&self, c: &mut HmmDmirrorCmd) -> Result {
        let (start, end) = self.range(c)?;
        let ptr = user_addr(c.ptr)?;
        let mut bounce = bounce_for(start, end)?;
        let mut addr = start;
        while addr < end {
            resched_or_killed()?;
            let chunk_start = addr;
            let chunk_end = end.min(addr + (CHUNK_PAGES << PAGE_SHIFT));
            bounce.fill_from_user(ptr.wrapping_add(addr - start), chunk_end - addr)?;
            while addr < chunk_end {
                let mut n = 0;
                {
                    let st = self.backend.lock();
                    let mut va = addr;
                    while va < chunk_end {
                        let Some(page) = st.pt.lookup_page(va) else {
                            break;
                        };
                        if !page.is_writable() {
                            break;
                        }
                        let off = va - chunk_start;
                        bounce.copy_to_page(off, &page)?;
                        // Dirty the page now, as a CPU write would, while
                        // the lock keeps it mapped (`lock()` only reads the
                        // table). Device memory has no CPU mapping to dirty.
                        page.mark_dirty()?;
                        n += 1;
                        va += PAGE_SIZE;
                    }
                }
                c.cpages += n as u64;
                addr += n << PAGE_SHIFT;
                if addr < chunk_end {
                    self.fault(addr, end, Fault::Write, Mode::Locked)?;
                    c.faults += 1;
                }
            }
        }
        Ok(())
    }
}
