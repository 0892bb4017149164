// SPDX-License-Identifier: GPL-2.0

//! Range updates, as invalidations apply them: [`DevicePageTable::update`]
//! masks or removes the entries of a range, splitting or dropping huge
//! leaves partly in it and freeing the directories it empties;
//! [`DevicePageTable::clear`] removes everything.

use super::dir::{
    entries,
    free_dir,
    DirReserve,
    PtStats,
    SPLIT_NEED, //
};
use super::entry::{
    child,
    count_mask,
    is_huge_slot,
    DirtySink,
    Entry, //
};
use super::{
    entries_at,
    level_shift,
    DevicePageTable,
    HUGE_LEVEL,
    HUGE_PAGES,
    HUGE_SIZE,
    LEVELS,
    VA_LIMIT, //
};
use crate::guarded_page::GuardedPages;
use kernel::alloc::flags::{
    __GFP_NOWARN,
    GFP_NOWAIT, //
};

/// What one range update applies, the same at every level of its walk
/// ([`DevicePageTable::update_dir`]).
pub(super) struct Update<'a, S> {
    /// First address of the range.
    pub(super) start: usize,
    /// End of the range, above `start` and at most [`VA_LIMIT`].
    pub(super) end: usize,
    /// What to keep of each entry in range: `0` removes them, otherwise
    /// the mask of [`DevicePageTable::update`] widened to keep the PFN and
    /// `DEVICE`.
    pub(super) mask: u64,
    /// Where the pages of dropped dirty bits go.
    pub(super) sink: &'a mut S,
    /// How to allocate the directories to split a huge leaf only partly in
    /// range, or `None` to remove such a leaf whole.
    pub(super) split: Option<kernel::alloc::Flags>,
    /// The counters of the table.
    pub(super) stats: &'a mut PtStats,
}

impl DevicePageTable {
    /// Applies `new = old & mask` to every present entry in `[start, end)`.
    ///
    /// Entries that lose `VALID` are removed, and directories left empty are
    /// freed. Whenever a `DIRTY` bit is dropped, whether or not the entry
    /// stays valid or writable, the page goes to `sink`. The cost is
    /// proportional to the directories present in the range, not to its
    /// size. Returns the number of entries changed.
    ///
    /// A huge leaf wholly inside the range is changed as one entry (and
    /// counts as one). One only partly inside is split first, with
    /// directories from `GFP_NOWAIT`; if there are none, it is removed
    /// whole.
    ///
    /// # Examples
    ///
    /// Write-protection keeps the entries but drops `WRITE` and `DIRTY`, handing
    /// the dirty page to the sink; a mask of 0 then removes them.
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
    /// /// Counts the pages handed over.
    /// struct Count(u64);
    ///
    /// impl DirtySink for Count {
    ///     fn dirty(&mut self, pages: GuardedPages<'_>) {
    ///         self.0 += pages.npages();
    ///     }
    /// }
    ///
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (pt, pages) = faulted.split();
    /// let mut count = Count(0);
    /// for (i, flags) in [(0, Entry::WRITE | Entry::DIRTY), (1, Entry::WRITE)] {
    ///     let page = pages.page(i).ok_or(EFAULT)?;
    ///     pt.insert_page(addr + i * PAGE, &page, flags, &mut DirReserve::new(), &mut count)?;
    /// }
    /// assert_eq!(pt.update(addr, addr + 2 * PAGE, Entry::VALID, &mut count), 2);
    /// assert_eq!(count.0, 1);
    /// assert_eq!(pt.lookup(addr + PAGE).map(|e| e.flags()), Some(Entry::VALID));
    /// assert_eq!(pt.update(addr, addr + 2 * PAGE, 0, &mut count), 2);
    /// assert_eq!(pt.stats().entries, 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn update(
        &mut self,
        start: usize,
        end: usize,
        mask: u64,
        sink: &mut impl DirtySink,
    ) -> u64 {
        self.update_split(start, end, mask, sink, Some(GFP_NOWAIT | __GFP_NOWARN))
    }

    /// [`Self::update`], splitting huge leaves with directories allocated
    /// with `split`, or never (removing them whole) if `None`.
    pub(super) fn update_split(
        &mut self,
        start: usize,
        end: usize,
        mask: u64,
        sink: &mut impl DirtySink,
        split: Option<kernel::alloc::Flags>,
    ) -> u64 {
        let end = end.min(VA_LIMIT);
        if start >= end {
            return 0;
        }
        // Removing VALID removes the entry whatever else the mask keeps;
        // an entry that stays keeps its page and where that page lives.
        let mask = if mask & Entry::VALID == 0 {
            0
        } else {
            mask | Entry::PFN_MASK | Entry::DEVICE
        };
        // A range inside one leaf directory (a CPU fault, one page of a
        // migration) goes without recursion: every call costs, and most
        // under emulation, where a return is an indirect jump.
        if start >> level_shift(1) == (end - 1) >> level_shift(1) {
            if let Some(changed) = self.update_leaf(start, end, mask, sink) {
                return changed;
            }
        }
        let root = self.root.0.as_mut_ptr();
        let mut ctx = Update {
            start,
            end,
            mask,
            sink,
            split,
            stats: &mut self.stats,
        };
        let mut removed_children = 0;
        // SAFETY: `root` is the live root directory, exclusively borrowed.
        let changed =
            unsafe { Self::update_dir(root, LEVELS - 1, 0, &mut ctx, &mut removed_children) };
        self.root_count -= removed_children;
        changed
    }

    /// Applies `mask` to the 4 KiB entry in `slot`, handing a lost dirty bit
    /// to `sink`. Returns whether the entry changed, and whether it went.
    #[inline(always)]
    fn update_entry(
        slot: &mut u64,
        mask: u64,
        sink: &mut impl DirtySink,
        stats: &mut PtStats,
    ) -> (bool, bool) {
        let e = *slot;
        let new = e & mask;
        if new == e {
            return (false, false);
        }
        let old = Entry(e);
        if old.has(Entry::DIRTY) && new & Entry::DIRTY == 0 {
            old.report(1, sink);
        }
        *slot = new;
        if new == 0 {
            stats.entries -= 1;
        }
        (true, new == 0)
    }

    /// [`Self::update_split`] of `[start, end)`, inside one leaf directory's
    /// span, with the mask already widened. `None` (and no change) if a huge
    /// leaf covers the range: the general path splits it.
    fn update_leaf(
        &mut self,
        start: usize,
        end: usize,
        mask: u64,
        sink: &mut impl DirtySink,
    ) -> Option<u64> {
        // `dirs[l]` is the directory at level `l` on the way down.
        let mut dirs = [core::ptr::null_mut::<u64>(); LEVELS as usize];
        dirs[LEVELS as usize - 1] = self.root.0.as_mut_ptr();
        for level in (1..LEVELS).rev() {
            // SAFETY: `dirs[level]` is the root or a live directory of
            // `level` owned by `self`, and `&mut self` makes this the only
            // reference into it.
            let e = unsafe { *dirs[level as usize].add(Self::index(start, level)) };
            if e == 0 {
                return Some(0);
            }
            if level == HUGE_LEVEL && is_huge_slot(e) {
                return None;
            }
            dirs[level as usize - 1] = child(e, level - 1);
        }
        let (first, last) = (Self::index(start, 0), Self::index(end - 1, 0));
        let mut changed = 0;
        let mut emptied = 0;
        for i in first..=last {
            // SAFETY: `dirs[0]` is a live leaf directory owned by `self`,
            // and `i` one of its indices.
            let slot = unsafe { &mut *dirs[0].add(i) };
            let (c, gone) = Self::update_entry(slot, mask, sink, &mut self.stats);
            changed += u64::from(c);
            emptied += u64::from(gone);
        }
        // Lower the counts on the way up, freeing what became empty.
        let mut level = 1;
        while emptied > 0 {
            if level == LEVELS {
                self.root_count -= emptied;
                break;
            }
            // SAFETY: As above, for the directory at `level`.
            let slot = unsafe { &mut *dirs[level as usize].add(Self::index(start, level)) };
            if *slot & count_mask(level - 1) == emptied {
                // SAFETY: The child came from `DirBox::into_raw` and nothing
                // refers to it once its parent entry is cleared.
                unsafe { free_dir(dirs[level as usize - 1], level - 1) };
                *slot = 0;
                self.stats.dir_freed(level - 1);
                emptied = 1;
            } else {
                // The count is in the low bits.
                *slot -= emptied;
                emptied = 0;
            }
            level += 1;
        }
        Some(changed)
    }

    /// Recursive part of [`Self::update`]: applies `ctx` to the directory
    /// `dir` at `level` whose first address is `base`. Adds to `emptied` the
    /// number of entries of `dir` that became zero.
    ///
    /// # Safety
    ///
    /// `dir` is a live directory of this table at `level`, not otherwise
    /// borrowed.
    pub(super) unsafe fn update_dir(
        dir: *mut u64,
        level: u32,
        base: usize,
        ctx: &mut Update<'_, impl DirtySink>,
        emptied: &mut u64,
    ) -> u64 {
        let shift = level_shift(level);
        let first = (ctx.start.max(base) - base) >> shift;
        let last = ((ctx.end - 1 - base) >> shift).min(entries_at(level) - 1);
        let mut changed = 0;
        // SAFETY: Per the function's safety requirements.
        let entries = unsafe { core::slice::from_raw_parts_mut(dir, entries_at(level)) };
        for (i, slot) in entries.iter_mut().enumerate().take(last + 1).skip(first) {
            let mut e = *slot;
            if e == 0 {
                continue;
            }
            let cbase = base + (i << shift);
            if level == HUGE_LEVEL && is_huge_slot(e) {
                let new = e & (ctx.mask | Entry::HUGE);
                let new = if new & Entry::VALID == 0 { 0 } else { new };
                if new == e {
                    continue;
                }
                let whole = ctx.start <= cbase && ctx.end - cbase >= HUGE_SIZE;
                let mut dirs = DirReserve::new();
                let can_split = !whole
                    && ctx
                        .split
                        .is_some_and(|flags| dirs.fill_need(SPLIT_NEED, flags).is_ok());
                if can_split && Self::split_into(slot, &mut dirs, ctx.stats).is_ok() {
                    e = *slot;
                    // Fall through to the new level-1 directory.
                } else {
                    // The whole leaf changes, or goes if it cannot be split.
                    let new = if whole { new } else { 0 };
                    let old = Entry(e);
                    if old.has(Entry::DIRTY) && new & Entry::DIRTY == 0 {
                        old.report(HUGE_PAGES, ctx.sink);
                    }
                    *slot = new;
                    changed += 1;
                    if new == 0 {
                        ctx.stats.huge -= 1;
                        *emptied += 1;
                    }
                    continue;
                }
            }
            if level == 0 {
                let (c, gone) = Self::update_entry(slot, ctx.mask, ctx.sink, ctx.stats);
                changed += u64::from(c);
                *emptied += u64::from(gone);
                continue;
            }
            let sub = child(e, level - 1);
            if ctx.mask == 0 && ctx.start <= cbase && ctx.end - cbase >= 1 << shift {
                // Removing everything below: free the subtree whole,
                // without clearing its entries one by one first.
                // SAFETY: `sub` is a live child directory owned by the
                // table, one level down, and its slot is cleared next.
                changed += unsafe { Self::drop_dir(sub, level - 1, ctx.sink, ctx.stats) };
                *slot = 0;
                *emptied += 1;
                continue;
            }
            let mut sub_emptied = 0;
            // SAFETY: `sub` is a live child directory owned by the table
            // (type invariant), one level down.
            changed += unsafe { Self::update_dir(sub, level - 1, cbase, ctx, &mut sub_emptied) };
            let count = (e & count_mask(level - 1)) - sub_emptied;
            if count == 0 {
                // SAFETY: `sub` came from `DirBox::into_raw` and nothing
                // else refers to it once its parent entry is cleared.
                unsafe { free_dir(sub, level - 1) };
                *slot = 0;
                ctx.stats.dir_freed(level - 1);
                *emptied += 1;
            } else {
                *slot = sub as u64 | count;
            }
        }
        changed
    }

    /// Frees the directory `dir` at `level` and everything below it, handing
    /// the dirty pages of its leaves to `sink`. Returns the number of leaves
    /// (4 KiB entries and huge leaves) it held.
    ///
    /// # Safety
    ///
    /// `dir` is a live directory of this table at `level`, not otherwise
    /// borrowed, and the caller clears the entry that names it.
    unsafe fn drop_dir(
        dir: *mut u64,
        level: u32,
        sink: &mut impl DirtySink,
        stats: &mut PtStats,
    ) -> u64 {
        // SAFETY: Per the function's safety requirements.
        let entries = unsafe { entries(dir, level) };
        let mut removed = 0;
        for &e in entries {
            if e == 0 {
                continue;
            }
            if level == 0 {
                removed += 1;
                if e & Entry::DIRTY != 0 {
                    Entry(e).report(1, sink);
                }
            } else if level == HUGE_LEVEL && is_huge_slot(e) {
                removed += 1;
                stats.huge -= 1;
                if e & Entry::DIRTY != 0 {
                    Entry(e).report(HUGE_PAGES, sink);
                }
            } else {
                // SAFETY: A directory entry names a live child directory
                // owned by the table (type invariant), dropped with `dir`.
                removed += unsafe { Self::drop_dir(child(e, level - 1), level - 1, sink, stats) };
            }
        }
        if level == 0 {
            stats.entries -= removed;
        }
        // SAFETY: `dir` came from `DirBox::into_raw`, and nothing refers to
        // it once the caller clears its entry.
        unsafe { free_dir(dir, level) };
        stats.dir_freed(level);
        removed
    }

    /// Removes every entry, reporting dirty pages to `sink`.
    ///
    /// # Examples
    ///
    /// Everything goes, directories included; the dirty page goes to the sink.
    ///
    /// ```
    /// use rust_hmm::device_pt::PtStats;
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
    /// /// Counts the pages handed over.
    /// struct Count(u64);
    ///
    /// impl DirtySink for Count {
    ///     fn dirty(&mut self, pages: GuardedPages<'_>) {
    ///         self.0 += pages.npages();
    ///     }
    /// }
    ///
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (pt, pages) = faulted.split();
    /// let mut count = Count(0);
    /// for (i, flags) in [(0, Entry::WRITE), (1, Entry::WRITE | Entry::DIRTY)] {
    ///     let page = pages.page(i).ok_or(EFAULT)?;
    ///     pt.insert_page(addr + i * PAGE, &page, flags, &mut DirReserve::new(), &mut count)?;
    /// }
    /// pt.clear(&mut count);
    /// assert_eq!(count.0, 1);
    /// assert_eq!(pt.stats(), PtStats::default());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn clear(&mut self, sink: &mut impl DirtySink) {
        self.update(0, VA_LIMIT, 0, sink);
    }
}

/// Drops dirty bits on the floor; only for tables known to hold none, or
/// entries whose dirty bits were handed over already.
pub(super) struct NoDirty;

impl DirtySink for NoDirty {
    fn dirty(&mut self, _pages: GuardedPages<'_>) {}
}
