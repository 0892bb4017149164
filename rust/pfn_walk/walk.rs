// SPDX-License-Identifier: GPL-2.0

//! The walk itself, steps 1 to 4 of the module documentation in
//! `pfn_walk.rs` (which "the module documentation" means below too): the
//! address spaces that have a VMA of ours, each under its mmap read lock,
//! our VMAs found again in its tree, and their PTEs read one by one.

use super::{
    Missing,
    NoPagefaults,
    PfnEntry,
    PfnSource,
    VmaRegistry,
    WalkStats, //
};
use crate::ffi;
use kernel::{
    bindings,
    mm::{
        virt::VmaRef,
        Mm,
        MmWithUser, //
        MmapReadGuard,
    },
    page::PAGE_SIZE,
    prelude::*,
    sync::aref::ARef, //
};

impl VmaRegistry {
    /// Calls `f` for every PTE that maps a file page offset in `first..end`
    /// in every VMA of `src` (see the module documentation for the locking).
    ///
    /// `f` runs with the mmap read lock of the entry's process held and
    /// page faults disabled (see the module documentation, "Deadlocks"). A
    /// walk is not a snapshot: it sees every entry present for its whole
    /// duration; an entry installed or removed meanwhile may or may not be
    /// seen.
    /// Returns `EIO` if the registry lost track of a VMA, `ERESTARTSYS` if
    /// a signal is pending (a walk changes nothing but what populating
    /// adds, so it can restart), or the first error of `f` or of
    /// populating.
    ///
    /// # Examples
    ///
    /// An object of four pages mapped in the test's address space: a walk that
    /// populates the first two, then one that visits only what is present and
    /// finds each page of the object at its address.
    ///
    /// ```
    /// use rust_hmm::pfn_walk::{Missing, PfnEntry};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let _mm = kunit_mm::attach()?;
    /// // A test object that maps itself; `obj.vmas` is its registry.
    /// let obj = kunit_mm::pfn_mapping(4)?;
    /// let stats = obj.vmas.walk(&*obj, 0, 2, Missing::Populate, |_| Ok(()))?;
    /// assert_eq!((stats.entries, stats.vmas, stats.mms), (2, 1, 1));
    ///
    /// let mut seen: [Option<PfnEntry>; 4] = [None; 4];
    /// obj.vmas.walk(&*obj, 0, 4, Missing::Skip, |e| {
    ///     // No assertion here: the mmap lock is held, and page faults disabled.
    ///     *seen.get_mut(e.pgoff).ok_or(EINVAL)? = Some(*e);
    ///     Ok(())
    /// })?;
    /// assert!(seen[2].is_none() && seen[3].is_none());
    /// for (i, e) in seen.iter().take(2).enumerate() {
    ///     let e = e.ok_or(ENOENT)?;
    ///     assert_eq!((e.addr, e.pfn), (obj.addr + i * PAGE, obj.pfn(i)));
    ///     assert!(e.writable);
    /// }
    /// # Ok::<(), Error>(())
    /// ```
    pub fn walk<S, F>(
        &self,
        src: &S,
        first: usize,
        end: usize,
        missing: Missing,
        mut f: F,
    ) -> Result<WalkStats>
    where
        S: PfnSource,
        F: FnMut(&PfnEntry) -> Result,
    {
        let mut stats = WalkStats::default();
        let mms = self.pin_mms()?;
        for mm in mms.iter() {
            // An exiting process is skipped: its VMAs are going away, and
            // exit_mmap() cannot start while we hold the reference.
            let Some(mm) = mm.mmget_not_zero() else {
                continue;
            };
            let done = self.walk_mm(&mm, src, first, end, missing, stats.mms as usize, &mut f);
            // `mm` is dropped (mmput, which may run exit_mmap() and so our
            // `close`) with no lock of ours held.
            drop(mm);
            let n = done?;
            if n.vmas > 0 {
                stats.mms += 1;
            }
            stats.vmas += n.vmas;
            stats.entries += n.entries;
        }
        Ok(stats)
    }

    /// Step 1: an `mmgrab` reference to each distinct `mm` with a VMA here.
    fn pin_mms(&self) -> Result<KVVec<ARef<Mm>>> {
        let mut out: KVVec<ARef<Mm>> = KVVec::new();
        let t = self.vmas.lock();
        if t.lost {
            return Err(EIO);
        }
        out.reserve(t.records.len(), GFP_KERNEL)?;
        for r in t.records.iter() {
            if out.iter().any(|m| m.as_raw() == r.mm) {
                continue;
            }
            // SAFETY: By the type invariants of `Record`, its VMA is alive
            // and so is the `mm` it belongs to.
            let mm = unsafe { Mm::from_raw(r.mm) };
            // Capacity was reserved for every record.
            if out.push_within_capacity(ARef::from(mm)).is_err() {
                return Err(ENOMEM);
            }
        }
        drop(t);
        Ok(out)
    }

    /// Steps 2 to 4 for one address space.
    #[expect(clippy::too_many_arguments)]
    fn walk_mm<S, F>(
        &self,
        mm: &MmWithUser,
        src: &S,
        first: usize,
        end: usize,
        missing: Missing,
        mm_index: usize,
        f: &mut F,
    ) -> Result<WalkStats>
    where
        S: PfnSource,
        F: FnMut(&PfnEntry) -> Result,
    {
        let mut stats = WalkStats::default();
        let guard = mm.mmap_read_lock();
        // Dropped before `guard`: a fault needs the lock this holds.
        let nofault = NoPagefaults::new();
        let mut starts: KVVec<usize> = KVVec::new();
        {
            let t = self.vmas.lock();
            if t.lost {
                return Err(EIO);
            }
            starts.reserve(t.records.len(), GFP_KERNEL)?;
            for r in t.records.iter().filter(|r| r.mm == mm.as_raw()) {
                // SAFETY: The record's VMA is alive (type invariants), and
                // with the mmap lock of its `mm` held its bounds are stable.
                let start = unsafe { (*r.vma).__bindgen_anon_1.__bindgen_anon_1.vm_start };
                if starts.push_within_capacity(start).is_err() {
                    return Err(ENOMEM);
                }
            }
        }
        crate::sort::heapsort(&mut starts);
        let mut prev = None;
        for &start in starts.iter() {
            if prev == Some(start) {
                continue;
            }
            prev = Some(start);
            // A record may name a VMA already detached by a munmap that
            // downgraded to the read lock; looking the address up again
            // finds only VMAs that are in the tree now.
            let Some(vma) = guard.vma_lookup(start) else {
                continue;
            };
            let raw = vma.as_ptr();
            // SAFETY: `vma` is valid while `guard` is held.
            let (ops, private, pgoff) =
                unsafe { ((*raw).vm_ops, (*raw).vm_private_data, (*raw).vm_pgoff) };
            if ops != src.vm_ops() || private.cast_const() != src.vm_private_data() {
                continue;
            }
            stats.vmas += 1;
            stats.entries += walk_vma(&guard, vma, pgoff, src, first, end, missing, mm_index, f)?;
        }
        drop(nofault);
        drop(guard);
        Ok(stats)
    }
}

/// Reads the PTE at `addr` of `vma` (a `VM_PFNMAP` VMA), if present.
fn read_pte(vma: &VmaRef, addr: usize) -> Option<(usize, bindings::pgprotval_t, bool)> {
    let mut args = bindings::follow_pfnmap_args {
        vma: vma.as_ptr(),
        address: addr,
        ..Default::default()
    };
    // SAFETY: `vma` is borrowed from an mmap read guard, which
    // follow_pfnmap_start() requires to be held until follow_pfnmap_end().
    if unsafe { bindings::follow_pfnmap_start(&mut args) } != 0 {
        return None;
    }
    let out = (args.pfn, args.pgprot.pgprot, args.writable);
    // SAFETY: Paired with the successful follow_pfnmap_start() above.
    unsafe { bindings::follow_pfnmap_end(&mut args) };
    Some(out)
}

/// Step 4 for one VMA; returns the number of entries visited.
#[expect(clippy::too_many_arguments)]
fn walk_vma<S, F>(
    guard: &MmapReadGuard<'_>,
    vma: &VmaRef,
    vm_pgoff: usize,
    src: &S,
    first: usize,
    end: usize,
    missing: Missing,
    mm_index: usize,
    f: &mut F,
) -> Result<u64>
where
    S: PfnSource,
    F: FnMut(&PfnEntry) -> Result,
{
    let pages = (vma.end() - vma.start()) / PAGE_SIZE;
    let lo = first.max(vm_pgoff);
    let hi = end.min(vm_pgoff.saturating_add(pages));
    let mut n = 0u64;
    let mut visit = |pgoff: usize| -> Result {
        let addr = vma.start() + (pgoff - vm_pgoff) * PAGE_SIZE;
        let mut pte = read_pte(vma, addr);
        if pte.is_none() && missing == Missing::Populate {
            src.populate(guard, vma, addr, pgoff)?;
            pte = read_pte(vma, addr);
        }
        let Some((pfn, prot, writable)) = pte else {
            return Ok(());
        };
        // SAFETY: Pure computations on a protection value.
        let (dirty, cache_bits) = unsafe {
            (
                ffi::rust_hmm_prot_dirty(prot),
                ffi::rust_hmm_prot_cache_bits(prot),
            )
        };
        n += 1;
        if n % 4096 == 0 && kernel::current!().signal_pending() {
            return Err(ERESTARTSYS);
        }
        f(&PfnEntry {
            addr,
            pgoff,
            pfn,
            writable,
            dirty,
            cache_bits: cache_bits as u64,
            mm_index,
        })
    };
    if lo < hi {
        match missing {
            Missing::Populate => {
                for pgoff in lo..hi {
                    visit(pgoff)?;
                }
            }
            Missing::Skip => {
                let mut pgoff = lo;
                while let Some(p) = src.next_maybe_mapped(pgoff, hi) {
                    // A source answering outside the range ends the VMA.
                    if p < pgoff || p >= hi {
                        break;
                    }
                    visit(p)?;
                    pgoff = p + 1;
                }
            }
        }
    }
    Ok(n)
}
