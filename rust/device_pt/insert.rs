// SPDX-License-Identifier: GPL-2.0

//! Inserts: 4 KiB entries ([`DevicePageTable::insert_page`]) and huge
//! leaves ([`DevicePageTable::insert_huge_page`]), the descent that creates
//! the directories on the way, and the split of a huge leaf in the way.
//! A huge leaf inserted over directories merges them.

use super::dir::{
    entries,
    free_dir,
    kind,
    DirReserve,
    Need,
    PtStats,
    SPLIT_NEED, //
};
use super::entry::{
    child,
    huge_page,
    is_huge_slot,
    DirtySink,
    Entry, //
};
use super::update::{
    NoDirty,
    Update, //
};
use super::{
    entries_at,
    DevicePageTable,
    HUGE_LEVEL,
    HUGE_PAGES,
    HUGE_SIZE,
    LEVELS,
    PAGE_SHIFT, //
};
use crate::guarded_page::{
    GuardedPages,
    Kind, //
};
use kernel::alloc::flags::GFP_NOWAIT;
use kernel::prelude::*;

impl DevicePageTable {
    /// The directories a descent to the directory of `level` covering
    /// `addr` would allocate; splitting a huge leaf in the way takes
    /// [`SPLIT_NEED`].
    fn missing_dirs(&self, addr: usize, level: u32) -> Need {
        let mut need = [0; 2];
        let mut dir: &[u64] = &self.root.0;
        for l in (level + 1..LEVELS).rev() {
            let e = dir[Self::index(addr, l)];
            if e == 0 {
                for m in level..l {
                    need[kind(m)] += 1;
                }
                return need;
            }
            if l == HUGE_LEVEL && is_huge_slot(e) {
                return SPLIT_NEED;
            }
            // SAFETY: Non-zero directory entries point to live directories
            // one level down, owned by `self` (type invariant).
            dir = unsafe { entries(child(e, l - 1), l - 1) };
        }
        need
    }

    /// The entry slot for `addr`: a 4 KiB entry in its leaf directory, or
    /// the huge leaf covering it; `None` when neither exists there.
    fn slot_mut(&mut self, addr: usize) -> Option<&mut u64> {
        let mut dir: *mut u64 = self.root.0.as_mut_ptr();
        for level in (1..LEVELS).rev() {
            // SAFETY: `dir` is the root or a live directory of `level` owned
            // by `self`, and `&mut self` makes this the only reference into
            // it.
            let slot = unsafe { &mut *dir.add(Self::index(addr, level)) };
            if *slot == 0 {
                return None;
            }
            if level == HUGE_LEVEL && is_huge_slot(*slot) {
                return Some(slot);
            }
            dir = child(*slot, level - 1);
        }
        // SAFETY: `dir` is a live leaf directory owned by `self`, and `&mut
        // self` makes this the only reference into it.
        Some(unsafe { &mut *dir.add(Self::index(addr, 0)) })
    }

    /// Replaces the huge leaf in `slot` with a level-1 directory and its
    /// leaf directories from `reserve`, full, whose entries carry the
    /// leaf's flags, dirty bit included. The slot stays non-zero, so the
    /// parent's count does not change. `ENOMEM` (and no change) if the
    /// reserve lacks [`SPLIT_NEED`].
    pub(super) fn split_into(
        slot: &mut u64,
        reserve: &mut DirReserve,
        stats: &mut PtStats,
    ) -> Result {
        let (mid, leaves) = reserve.pop_split().ok_or(ENOMEM)?;
        let e = *slot;
        let head = e & Entry::PFN_MASK;
        let flags = e & Entry::FLAGS;
        let per_leaf = entries_at(0);
        for (j, leaf) in leaves.iter().enumerate() {
            for i in 0..per_leaf {
                let page = (j * per_leaf + i) as u64;
                // SAFETY: `leaf` and `mid` are directories just taken out of
                // the reserve, not yet shared, of `per_leaf` and
                // `leaves.len()` entries.
                unsafe { *leaf.add(i) = (head + (page << PAGE_SHIFT)) | flags };
            }
            // SAFETY: As above.
            unsafe { *mid.add(j) = *leaf as u64 | per_leaf as u64 };
            stats.dir_added(0);
        }
        // INVARIANT: the slot now points to an owned level-1 directory of
        // full leaf directories; the huge leaf became 512 4 KiB entries.
        *slot = mid as u64 | leaves.len() as u64;
        stats.dir_added(1);
        stats.huge -= 1;
        stats.entries += HUGE_PAGES;
        stats.splits += 1;
        Ok(())
    }

    /// Walks from the root to the directory at `level` that covers `addr`,
    /// creating missing directories from `reserve` and splitting a huge leaf
    /// met on the way. Returns that directory and a pointer to its count of
    /// non-zero entries (packed in the parent's entry, or the root's count).
    fn descend(
        &mut self,
        addr: usize,
        level: u32,
        reserve: &mut DirReserve,
    ) -> Result<(*mut u64, *mut u64)> {
        let mut dir: *mut u64 = self.root.0.as_mut_ptr();
        let mut count: *mut u64 = &mut self.root_count;
        for l in (level + 1..LEVELS).rev() {
            // SAFETY: `dir` is the root or a live directory of level `l`
            // owned by `self`.
            let slot = unsafe { &mut *dir.add(Self::index(addr, l)) };
            if l == HUGE_LEVEL && is_huge_slot(*slot) {
                // A 4 KiB entry inside a huge leaf: split it first.
                Self::split_into(slot, reserve, &mut self.stats)?;
            }
            if *slot == 0 {
                let new = reserve.pop(l - 1).ok_or(ENOMEM)?;
                // INVARIANT: the new child is empty and owned by the table;
                // the parent gains one non-zero entry.
                *slot = new as u64;
                // SAFETY: `count` points to the count of `dir`.
                unsafe { *count += 1 };
                self.stats.dir_added(l - 1);
            }
            // The child's count lives in the low bits of `slot`.
            count = core::ptr::from_mut(slot);
            dir = child(*slot, l - 1);
        }
        Ok((dir, count))
    }

    /// The entry for `pages` at `addr` with `flags` (of `WRITE`, `DIRTY`
    /// and `EXCLUSIVE`), if they are `npages` pages this table's notifier
    /// validated for `addr` (`EINVAL` otherwise), writable if `flags` ask
    /// for `WRITE` (`EPERM`; `DIRTY` needs `WRITE`). Device data gets
    /// `DEVICE`; a device-private page has nothing the device could read
    /// through the table (`EINVAL`).
    fn entry_for(
        &self,
        addr: usize,
        pages: &GuardedPages<'_>,
        flags: u64,
        npages: u64,
    ) -> Result<Entry> {
        let allowed = Entry::WRITE | Entry::DIRTY | Entry::EXCLUSIVE;
        if pages.npages() != npages
            || !pages.tied_to(core::ptr::from_ref(self), addr)
            || flags & !allowed != 0
            || (flags & Entry::DIRTY != 0 && flags & Entry::WRITE == 0)
        {
            return Err(EINVAL);
        }
        if flags & Entry::WRITE != 0 && !pages.is_writable() {
            return Err(EPERM);
        }
        match pages.kind() {
            Kind::System => Ok(Entry::new(pages.pfn(), flags)),
            Kind::DeviceData => Ok(Entry::new(pages.pfn(), flags | Entry::DEVICE)),
            Kind::DevicePrivate => Err(EINVAL),
        }
    }

    /// Installs the page `page` at `addr` with `flags` (of `WRITE`, `DIRTY`,
    /// `EXCLUSIVE`), allocating directories as needed. The page must have
    /// been validated for `addr` under the lock of the notifier state this
    /// table lives in, and be writable for `WRITE` (errors: see
    /// `entry_for`).
    ///
    /// Replacing a dirty entry of another page reports that page dirty;
    /// re-installing the same page keeps its dirty bit.
    ///
    /// # Examples
    ///
    /// Pages go in only at the address their notifier validated them for, and
    /// writable only if the CPU maps them so: not the shared zero page.
    ///
    /// ```
    /// # use rust_hmm::device_pt::{DevicePageTable, DirReserve, DirtySink, Entry};
    /// # use rust_hmm::guarded_page::GuardedPages;
    /// # use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # use rust_hmm::mmu_notifier::{IntervalNotifier, IntervalNotifierOps, NotifierRange};
    /// # struct Dirtier;
    /// # impl DirtySink for Dirtier {
    /// #     fn dirty(&mut self, pages: GuardedPages<'_>) {
    /// #         let _ = pages.mark_dirty();
    /// #     }
    /// # }
    /// # struct Mirror;
    /// # impl IntervalNotifierOps for Mirror {
    /// #     type State = DevicePageTable;
    /// #     type Finish = ();
    /// #     fn invalidate(&self, pt: &mut DevicePageTable, range: &NotifierRange<'_>) {
    /// #         let keep = if range.event().keeps_read() { Entry::VALID } else { 0 };
    /// #         pt.update(range.start(), range.end(), keep, &mut Dirtier);
    /// #     }
    /// #     fn release(&self, pt: &mut DevicePageTable) {
    /// #         pt.clear(&mut Dirtier);
    /// #     }
    /// # }
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// # // SAFETY: The table lives in the notifier, which applies every
    /// # // invalidation to it and empties it on release.
    /// # let pt = unsafe { DevicePageTable::new(GFP_KERNEL)? };
    /// # let notifier = IntervalNotifier::new(&mm, addr, 2 * PAGE, Mirror, pt);
    /// # let notifier = KBox::pin_init(notifier, GFP_KERNEL)?;
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// // Memory nobody wrote: a read fault maps the zero page, read-only.
    /// let mut faulted = range.fault(Fault::Read, Mode::Locked)?;
    /// let (pt, pages) = faulted.split();
    /// let zero = pages.page(0).ok_or(EFAULT)?;
    /// let mut reserve = DirReserve::new();
    /// let write = pt.insert_page(addr, &zero, Entry::WRITE, &mut reserve, &mut Dirtier);
    /// assert_eq!(write, Err(EPERM));
    /// let elsewhere = pt.insert_page(addr + PAGE, &zero, 0, &mut reserve, &mut Dirtier);
    /// assert_eq!(elsewhere, Err(EINVAL));
    /// pt.insert_page(addr, &zero, 0, &mut reserve, &mut Dirtier)?;
    /// assert!(pt.lookup(addr).is_some_and(|e| !e.has(Entry::WRITE)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn insert_page(
        &mut self,
        addr: usize,
        page: &GuardedPages<'_>,
        flags: u64,
        reserve: &mut DirReserve,
        sink: &mut impl DirtySink,
    ) -> Result {
        let entry = self.entry_for(addr, page, flags, 1)?;
        self.insert(addr, entry, reserve, sink)
    }

    /// Installs a huge leaf at `addr` for the [`HUGE_PAGES`] pages `pages`
    /// (one folio, as [`crate::hmm::FaultedPfns::block`] gives them),
    /// validated for `addr`; otherwise as [`Self::insert_page`]. Whatever
    /// was there is replaced (see the module documentation); `EINVAL` for
    /// `EXCLUSIVE`, or a misaligned address or folio.
    ///
    /// # Examples
    ///
    /// A PMD-mapped THP at `addr` goes in as one huge leaf: one entry instead of
    /// 512, and a directory fewer.
    ///
    /// ```
    /// # use rust_hmm::device_pt::{DevicePageTable, DirReserve, DirtySink, Entry};
    /// # use rust_hmm::guarded_page::GuardedPages;
    /// # use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # use rust_hmm::mmu_notifier::{IntervalNotifier, IntervalNotifierOps, NotifierRange};
    /// # struct Dirtier;
    /// # impl DirtySink for Dirtier {
    /// #     fn dirty(&mut self, pages: GuardedPages<'_>) {
    /// #         let _ = pages.mark_dirty();
    /// #     }
    /// # }
    /// # struct Mirror;
    /// # impl IntervalNotifierOps for Mirror {
    /// #     type State = DevicePageTable;
    /// #     type Finish = ();
    /// #     fn invalidate(&self, pt: &mut DevicePageTable, range: &NotifierRange<'_>) {
    /// #         let keep = if range.event().keeps_read() { Entry::VALID } else { 0 };
    /// #         pt.update(range.start(), range.end(), keep, &mut Dirtier);
    /// #     }
    /// #     fn release(&self, pt: &mut DevicePageTable) {
    /// #         pt.clear(&mut Dirtier);
    /// #     }
    /// # }
    /// # let mm = kunit_mm::attach()?;
    /// # use rust_hmm::device_pt::{HUGE_ORDER, HUGE_PAGES, HUGE_SIZE};
    /// # use rust_hmm::migrate::{DstFolio, Migration, PagemapOwner, Select};
    /// # let addr = kunit_mm::mmap_anon(2 * HUGE_PAGES as usize, true)?;
    /// # let addr = addr.next_multiple_of(HUGE_SIZE);
    /// # {
    /// #     // A THP at `addr`: a zeroed PMD-sized folio migrated into the empty block.
    /// #     let lock = mm.mmap_read_lock();
    /// #     let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    /// #     let owner = PagemapOwner::of(&*mm);
    /// #     let mut m = Migration::vma(vma, addr, addr + HUGE_SIZE, owner, Select::System, true)?;
    /// #     let mut folio = DstFolio::alloc_system(Some(vma), addr, HUGE_ORDER).ok_or(ENOMEM)?;
    /// #     folio.zero();
    /// #     m.set_dst(0, folio, true)?;
    /// #     m.pages();
    /// # }
    /// # // SAFETY: The table lives in the notifier, which applies every
    /// # // invalidation to it and empties it on release.
    /// # let pt = unsafe { DevicePageTable::new(GFP_KERNEL)? };
    /// # let notifier = IntervalNotifier::new(&mm, addr, HUGE_SIZE, Mirror, pt);
    /// # let notifier = KBox::pin_init(notifier, GFP_KERNEL)?;
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (pt, pages) = faulted.split();
    /// let block = pages.block(0, HUGE_ORDER).ok_or(EFAULT)?;
    /// assert_eq!(block.npages(), HUGE_PAGES);
    /// pt.insert_huge_page(addr, &block, Entry::WRITE, &mut DirReserve::new(), &mut Dirtier)?;
    /// let stats = pt.stats();
    /// assert_eq!((stats.entries, stats.huge, stats.dirs), (0, 1, 5));
    /// let last = pt.lookup(addr + HUGE_SIZE - PAGE).ok_or(EFAULT)?;
    /// assert!(last.is_huge() && last.has(Entry::WRITE));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn insert_huge_page(
        &mut self,
        addr: usize,
        pages: &GuardedPages<'_>,
        flags: u64,
        reserve: &mut DirReserve,
        sink: &mut impl DirtySink,
    ) -> Result {
        let entry = self.entry_for(addr, pages, flags, HUGE_PAGES)?;
        self.insert_huge(addr, entry, reserve, sink)
    }

    /// Installs `entry` at `addr`, allocating directories as needed.
    ///
    /// Replacing a dirty entry of another page reports that page dirty;
    /// re-installing the same page keeps its dirty bit.
    pub(super) fn insert(
        &mut self,
        addr: usize,
        entry: Entry,
        reserve: &mut DirReserve,
        sink: &mut impl DirtySink,
    ) -> Result {
        Self::check_addr(addr)?;
        // Get every missing directory first, so that a failed allocation
        // leaves the table as it was.
        reserve.fill_need(self.missing_dirs(addr, 0), GFP_NOWAIT)?;
        let (dir, count) = self.descend(addr, 0, reserve)?;
        // SAFETY: `dir` is a live leaf directory owned by `self`.
        let slot = unsafe { &mut *dir.add(Self::index(addr, 0)) };
        let old = *slot;
        let mut new = entry.0;
        if old != 0 {
            let old = Entry(old);
            if old.pfn() == entry.pfn() {
                new |= old.0 & Entry::DIRTY & if entry.has(Entry::WRITE) { !0 } else { 0 };
                if old.has(Entry::DIRTY) && new & Entry::DIRTY == 0 {
                    old.report(1, sink);
                }
            } else if old.has(Entry::DIRTY) {
                old.report(1, sink);
            }
            *slot = new;
            return Ok(());
        }
        *slot = new;
        self.stats.entries += 1;
        // The leaf gained an entry: bump the count packed in its parent.
        // SAFETY: `count` points to the parent's entry for this leaf.
        unsafe { *count += 1 };
        Ok(())
    }

    /// Sets `flags` on the present entry at `addr` (for example `DIRTY`
    /// after a device write). Returns the updated entry. On a huge leaf the
    /// flags apply to the whole leaf, except `EXCLUSIVE`, which never does.
    /// Private (tests): `WRITE` here could make a read-only page writable.
    pub(super) fn set_flags(&mut self, addr: usize, flags: u64) -> Option<Entry> {
        Self::check_addr(addr).ok()?;
        let slot = self.slot_mut(addr)?;
        if *slot == 0 {
            return None;
        }
        if is_huge_slot(*slot) {
            *slot |= flags & Entry::FLAGS & !Entry::EXCLUSIVE;
            return Some(huge_page(*slot, addr));
        }
        *slot |= flags & Entry::FLAGS;
        Some(Entry(*slot))
    }

    /// Installs a huge leaf mapping the [`HUGE_SIZE`] bytes at `addr` to
    /// the [`HUGE_PAGES`] pages of one folio from `entry`'s PFN, allocating
    /// directories as needed.
    ///
    /// `addr` and the PFN must be aligned to the leaf size, and `entry`
    /// must not be `EXCLUSIVE` (`EINVAL`). Whatever was there is replaced:
    /// directories of 4 KiB entries are merged into the huge leaf and
    /// freed. Dirty bits of the same pages carry over when the leaf is
    /// writable; any other dirty page replaced is reported to `sink`.
    pub(super) fn insert_huge(
        &mut self,
        addr: usize,
        entry: Entry,
        reserve: &mut DirReserve,
        sink: &mut impl DirtySink,
    ) -> Result {
        Self::check_addr(addr)?;
        if addr & (HUGE_SIZE - 1) != 0
            || entry.pfn() & (HUGE_PAGES - 1) != 0
            || entry.has(Entry::EXCLUSIVE)
        {
            return Err(EINVAL);
        }
        reserve.fill_need(self.missing_dirs(addr, HUGE_LEVEL), GFP_NOWAIT)?;
        let (dir, count) = self.descend(addr, HUGE_LEVEL, reserve)?;
        // SAFETY: `dir` is a live level-2 directory owned by `self`.
        let slot = unsafe { &mut *dir.add(Self::index(addr, HUGE_LEVEL)) };
        let head = entry.pfn();
        let keep_dirty = entry.has(Entry::WRITE);
        let mut new = entry.0 | Entry::HUGE;
        let old = *slot;
        if old == 0 {
            // SAFETY: `count` points to the parent's entry for `dir`.
            unsafe { *count += 1 };
        } else if is_huge_slot(old) {
            let old = Entry(old);
            if old.has(Entry::DIRTY) {
                if old.pfn() == head && keep_dirty {
                    new |= Entry::DIRTY;
                } else {
                    old.report(HUGE_PAGES, sink);
                }
            }
            self.stats.huge -= 1;
        } else {
            // Merge: first hand over the dirty bits, then free the
            // directories below.
            let sub = child(old, HUGE_LEVEL - 1);
            let end = addr + HUGE_SIZE;
            // SAFETY: `sub` is a live level-1 directory owned by the table.
            let sub_entries = unsafe { entries(sub, HUGE_LEVEL - 1) };
            Self::walk_dir(sub_entries, HUGE_LEVEL - 1, addr, addr, end, &mut |a, e| {
                if !e.has(Entry::DIRTY) {
                    return;
                }
                if keep_dirty && e.pfn() == head + ((a - addr) >> PAGE_SHIFT) as u64 {
                    new |= Entry::DIRTY;
                } else {
                    e.report(1, sink);
                }
            });
            let mut remove = Update {
                start: addr,
                end,
                mask: 0,
                sink: &mut NoDirty,
                split: None,
                stats: &mut self.stats,
            };
            let mut emptied = 0;
            // SAFETY: `sub` is a live level-1 directory of this table, not
            // otherwise borrowed.
            unsafe { Self::update_dir(sub, HUGE_LEVEL - 1, addr, &mut remove, &mut emptied) };
            // SAFETY: `sub` came from `DirBox::into_raw`; the slot that
            // referred to it is overwritten below.
            unsafe { free_dir(sub, HUGE_LEVEL - 1) };
            self.stats.dir_freed(HUGE_LEVEL - 1);
        }
        // INVARIANT: an aligned, non-exclusive huge leaf.
        *slot = new;
        self.stats.huge += 1;
        Ok(())
    }
}
