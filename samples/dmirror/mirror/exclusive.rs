// SPDX-License-Identifier: GPL-2.0

//! Device-exclusive access: EXCLUSIVE, CHECK_EXCLUSIVE, and the device
//! atomic ATOMIC_ADD, which runs only on a device-exclusive entry.

use super::invalidate::PageDirtier;
use super::{
    Backend,
    Mirror, //
};
use crate::device_exclusive::ExclusiveSession;
use crate::device_pt::{
    DirReserve,
    Entry,
    HUGE_SIZE, //
};
use crate::guarded_page::GuardedPages;
use crate::uapi::*;
use kernel::{
    page::PAGE_SIZE,
    prelude::*, //
};

impl<B: Backend> Mirror<B> {
    /// Takes device-exclusive access to the page at `addr` in `session`
    /// and runs `op` on it with the notifier lock held and the entry
    /// installed with `extra` flags (`DIRTY` when `op` writes the page).
    ///
    /// Directories come from `reserve` or `GFP_NOWAIT` under the lock; only
    /// if both fail is `reserve` filled with `GFP_KERNEL` and the page taken
    /// again, so a run of pages allocates only what it needs.
    fn take_exclusive<R>(
        session: &mut ExclusiveSession<'_, B::Notifier>,
        addr: usize,
        extra: u64,
        reserve: &mut DirReserve,
        op: impl FnOnce(&GuardedPages<'_>) -> Result<R>,
    ) -> Result<R> {
        let mut op = Some(op);
        let mut filled = false;
        loop {
            let res = session.map(addr, |st, page| {
                let flags = Entry::WRITE | Entry::EXCLUSIVE | extra;
                st.pt
                    .insert_page(addr, &page, flags, reserve, &mut PageDirtier)?;
                let op = op.take().ok_or(EINVAL)?;
                op(&page)
            });
            match res {
                Err(e) if e == ENOMEM && !filled => {
                    reserve.fill_block(GFP_KERNEL)?;
                    filled = true;
                }
                r => return r,
            }
        }
    }

    /// HMM_DMIRROR_EXCLUSIVE: make every page of the range exclusive to
    /// this mirror, then read it back through the device. The mmap lock is
    /// taken once per 2 MiB of the range, not per page.
    pub(crate) fn exclusive(&self, c: &mut HmmDmirrorCmd) -> Result {
        let (start, end) = self.range(c)?;
        let mut reserve = DirReserve::new();
        let mut addr = start;
        while addr < end {
            addr = self.backend.with_exclusive(addr, end, |session, e| {
                let mut a = addr;
                while a < e {
                    if a != start && a % HUGE_SIZE == 0 {
                        session.relax()?;
                    }
                    Self::take_exclusive(session, a, 0, &mut reserve, |_| Ok(()))?;
                    a += PAGE_SIZE;
                }
                Ok(e)
            })?;
        }
        self.read(c, false)
    }

    /// HMM_DMIRROR_CHECK_EXCLUSIVE: `EPERM` while any page of the range is
    /// still exclusive to this mirror.
    pub(crate) fn check_exclusive(&self, c: &HmmDmirrorCmd) -> Result {
        let (start, end) = self.range(c)?;
        let mut held = false;
        self.backend
            .lock()
            .pt
            .for_each(start, end, &mut |_, e| held |= e.has(Entry::EXCLUSIVE));
        if held {
            return Err(EPERM);
        }
        Ok(())
    }

    /// HMM_DMIRROR_ATOMIC_ADD: fetch-and-add on a `u64` by the device. It
    /// runs only on a device-exclusive entry, taking one first if the CPU
    /// (or another device) revoked it, so no update is ever lost.
    pub(crate) fn atomic_add(&self, a: &mut HmmDmirrorAtomic) -> Result {
        let addr = usize::try_from(a.addr).map_err(|_| EINVAL)?;
        if addr % 8 != 0 {
            return Err(EINVAL);
        }
        let page = addr & !(PAGE_SIZE - 1);
        self.pages(page, 1)?;
        let off = addr - page;
        a.faults = 0;
        {
            let st = self.backend.lock();
            if st.pt.lookup(page).is_some_and(|e| e.has(Entry::EXCLUSIVE)) {
                let p = st.pt.lookup_page(page).ok_or(EFAULT)?;
                a.old = p.fetch_add_u64(off, a.value)?;
                // Core mm considers device-exclusive entries clean.
                p.mark_dirty()?;
                return Ok(());
            }
        }
        a.faults = 1;
        let value = a.value;
        let mut reserve = DirReserve::new();
        a.old = self
            .backend
            .with_exclusive(page, page + PAGE_SIZE, |session, _| {
                Self::take_exclusive(session, page, Entry::DIRTY, &mut reserve, |p| {
                    p.fetch_add_u64(off, value)
                })
            })?;
        Ok(())
    }
}
