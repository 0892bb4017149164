// SPDX-License-Identifier: GPL-2.0

//! SNAPSHOT: the CPU's view of each page of a range, and which of them
//! the device holds exclusive or maps with a huge leaf.

use super::{
    Backend,
    Mirror,
    CHUNK_PAGES, //
};
use crate::device_pt::Entry;
use crate::hmm::{
    self,
    next_vma,
    page_kinds,
    resched_or_killed,
    Fault,
    Mode,
    PageKind, //
};
use crate::uapi::*;
use core::mem::MaybeUninit;
use kernel::{
    page::{
        PAGE_SHIFT,
        PAGE_SIZE, //
    },
    prelude::*,
    uaccess::{
        UserPtr,
        UserSlice, //
    }, //
};

/// Writes the items of `it` to the start of `buf`, as many as fit, and
/// returns that part.
fn fill<T>(buf: &mut [T], it: impl Iterator<Item = T>) -> &mut [T] {
    let mut n = 0;
    for (slot, v) in buf.iter_mut().zip(it) {
        *slot = v;
        n += 1;
    }
    &mut buf[..n]
}

/// What SNAPSHOT says of a page the CPU maps as `p`, which names a page of
/// `kind` (if coherent, of this device's memory if `local`): the CPU's side
/// only.
fn snapshot_perm(p: &hmm::Pfn, kind: PageKind, local: bool) -> u8 {
    if p.is_error() {
        return HMM_DMIRROR_PROT_ERROR;
    }
    if !p.is_valid() {
        return HMM_DMIRROR_PROT_NONE;
    }
    // HMM reports only our own device-private pages; another device's show
    // as not present. Coherent pages it reports as the CPU maps them, any
    // device's.
    let mut v = match kind {
        PageKind::DevicePrivate => HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL,
        PageKind::DeviceCoherent if local => HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL,
        PageKind::DeviceCoherent => HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE,
        PageKind::Zero => HMM_DMIRROR_PROT_ZERO,
        PageKind::Other => HMM_DMIRROR_PROT_NONE,
    };
    v |= if p.is_write() {
        HMM_DMIRROR_PROT_WRITE
    } else {
        HMM_DMIRROR_PROT_READ
    };
    match p.order() + PAGE_SHIFT as u32 {
        21 => v | HMM_DMIRROR_PROT_PMD,
        30 => v | HMM_DMIRROR_PROT_PUD,
        _ => v,
    }
}

impl<B: Backend> Mirror<B> {
    /// HMM_DMIRROR_SNAPSHOT: the CPU's view of each page, one byte each.
    pub(crate) fn snapshot(&self, c: &mut HmmDmirrorCmd) -> Result {
        let (start, end) = self.range(c)?;
        let ptr = user_addr(c.ptr)?;
        // On the stack, as in test_hmm: an allocation costs as much as a
        // small SNAPSHOT. The kinds are not zeroed first.
        let mut perm_buf = [0u8; CHUNK_PAGES];
        let mut kinds = [const { MaybeUninit::uninit() }; CHUNK_PAGES];
        let mut addr = start;
        // A hole in the address space is all errors to `hmm_range_fault()`
        // and can span up to 2^56 bytes with 5-level paging: once a chunk
        // comes back all errors, the hole after it, up to `hole_end`, is
        // answered without walking it.
        let mut hole_end = 0;
        while addr < end {
            resched_or_killed()?;
            let mut next = end.min(addr + (CHUNK_PAGES << PAGE_SHIFT));
            let walk = addr >= hole_end;
            let perm = if !walk {
                next = next.min(hole_end);
                let n = (next - addr) >> PAGE_SHIFT;
                perm_buf[..n].fill(HMM_DMIRROR_PROT_ERROR);
                &perm_buf[..n]
            } else {
                let owner = self.owner();
                let memory = self.memory();
                let got = self.backend.with_range(addr, next, owner, |range, e| {
                    let f = range.fault(Fault::None, Mode::Locked)?;
                    let kinds = page_kinds(f.pfns(), &mut kinds)?;
                    let perm = fill(
                        &mut perm_buf,
                        f.pfns().iter().zip(kinds).map(|(p, &kind)| {
                            let local = kind == PageKind::DeviceCoherent && memory.owns(p);
                            snapshot_perm(p, kind, local)
                        }),
                    );
                    // The CPU sees a device-exclusive page as not present;
                    // say which of them this mirror holds, and which it maps
                    // with a huge leaf.
                    f.state().pt.for_each(addr, e, &mut |va, entry| {
                        let v = &mut perm[(va - addr) >> PAGE_SHIFT];
                        if entry.has(Entry::EXCLUSIVE) {
                            *v |= HMM_DMIRROR_PROT_DEV_EXCLUSIVE;
                        }
                        if entry.is_huge() {
                            *v |= HMM_DMIRROR_PROT_PMD;
                        }
                    });
                    Ok(e)
                });
                match got {
                    Ok(e) => next = e,
                    // No VMA at `addr` (only an SVM asks before it walks):
                    // a hole, up to the next VMA.
                    Err(e) if e == EFAULT => {
                        let mm = self.backend.mm().mmget_not_zero().ok_or(EFAULT)?;
                        // At least the page at `addr`: a VMA mapped there
                        // since is seen by the next SNAPSHOT.
                        hole_end = next_vma(&mm, addr)
                            .map_or(usize::MAX, |vma| vma.start)
                            .max(addr + PAGE_SIZE);
                        next = next.min(hole_end);
                        perm_buf[..(next - addr) >> PAGE_SHIFT].fill(HMM_DMIRROR_PROT_ERROR);
                    }
                    Err(e) => return Err(e),
                }
                &perm_buf[..(next - addr) >> PAGE_SHIFT]
            };
            let n = perm.len();
            // With the notifier lock dropped: the mmap lock nests outside it.
            if walk && next < end && perm.iter().all(|&v| v == HMM_DMIRROR_PROT_ERROR) {
                let mm = self.backend.mm().mmget_not_zero().ok_or(EFAULT)?;
                hole_end = next_vma(&mm, next).map_or(usize::MAX, |vma| vma.start);
            }
            // One byte per page, after those of the pages before `addr`.
            let uptr = UserPtr::from_addr(ptr.wrapping_add((addr - start) >> PAGE_SHIFT));
            UserSlice::new(uptr, n).writer().write_slice(perm)?;
            c.cpages += n as u64;
            addr = next;
        }
        Ok(())
    }
}
