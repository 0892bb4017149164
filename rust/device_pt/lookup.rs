// SPDX-License-Identifier: GPL-2.0

//! Lookups and walks: one entry ([`DevicePageTable::lookup`],
//! [`DevicePageTable::lookup_page`]), the device's sequential access path
//! ([`DevicePageTable::run`] and its variants), and every entry of a range
//! ([`DevicePageTable::for_each`]).

use super::dir::entries;
use super::entry::{
    child,
    huge_page,
    is_huge_slot, //
};
use super::{
    level_shift,
    DevicePageTable,
    Entry,
    HUGE_LEVEL,
    HUGE_SIZE,
    LEVELS,
    PAGE_SHIFT,
    VA_LIMIT, //
};
use crate::guarded_page::{
    GuardedPages,
    Tie, //
};

/// What covers an address.
enum Leaf<'a> {
    /// The entries of a leaf directory.
    Dir(&'a [u64]),
    /// A huge leaf (raw entry).
    Huge(u64),
}

impl DevicePageTable {
    /// What covers `addr`: a leaf directory or a huge leaf, if either.
    fn leaf(&self, addr: usize) -> Option<Leaf<'_>> {
        Self::check_addr(addr).ok()?;
        let mut dir: *const u64 = self.root.0.as_ptr();
        for level in (1..LEVELS).rev() {
            // SAFETY: `dir` is the root or, through non-zero entries (type
            // invariant), a live directory of `level` owned by `self`; the
            // index is below its size.
            let e = unsafe { *dir.add(Self::index(addr, level)) };
            if e == 0 {
                return None;
            }
            if level == HUGE_LEVEL && is_huge_slot(e) {
                return Some(Leaf::Huge(e));
            }
            dir = child(e, level - 1);
        }
        // SAFETY: `dir` is a live leaf directory owned by `self`; `&self`
        // keeps it alive and unchanged.
        Some(Leaf::Dir(unsafe { entries(dir, 0) }))
    }

    /// The leaf entry for `addr`, if one is present. Inside a huge leaf it
    /// is the entry of that page, with [`Entry::HUGE`] set.
    ///
    /// # Examples
    ///
    /// The entry of a page inserted read-only; nothing where no page went in, nor
    /// at an address inside a page.
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
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (pt, pages) = faulted.split();
    /// let page = pages.page(0).ok_or(EFAULT)?;
    /// pt.insert_page(addr, &page, 0, &mut DirReserve::new(), &mut Dirtier)?;
    /// assert_eq!(pt.lookup(addr).map(|e| e.flags()), Some(Entry::VALID));
    /// assert!(pt.lookup(addr + PAGE).is_none());
    /// assert!(pt.lookup(addr + 8).is_none());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn lookup(&self, addr: usize) -> Option<Entry> {
        match self.leaf(addr)? {
            Leaf::Dir(dir) => {
                let e = dir[Self::index(addr, 0)];
                (e != 0).then_some(Entry(e))
            }
            Leaf::Huge(e) => Some(huge_page(e, addr)),
        }
    }

    /// Calls `f(addr, entry)` for the present entries from `start` on, in
    /// order, up to `end`, the first missing entry, or the first `false`
    /// from `f`. Returns the address where it stopped. One descent per
    /// leaf directory or huge leaf: the device's sequential access path.
    ///
    /// # Examples
    ///
    /// A device reading three pages, of which two are mapped: the run stops at
    /// the hole, or where `f` says.
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
    /// # let addr = kunit_mm::mmap_anon(3, true)?;
    /// # // SAFETY: The table lives in the notifier, which applies every
    /// # // invalidation to it and empties it on release.
    /// # let pt = unsafe { DevicePageTable::new(GFP_KERNEL)? };
    /// # let notifier = IntervalNotifier::new(&mm, addr, 3 * PAGE, Mirror, pt);
    /// # let notifier = KBox::pin_init(notifier, GFP_KERNEL)?;
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (pt, pages) = faulted.split();
    /// for i in 0..2 {
    ///     let page = pages.page(i).ok_or(EFAULT)?;
    ///     pt.insert_page(addr + i * PAGE, &page, 0, &mut DirReserve::new(), &mut Dirtier)?;
    /// }
    /// let end = addr + 3 * PAGE;
    /// let mut seen = 0;
    /// assert_eq!(pt.run(addr, end, &mut |_, _| { seen += 1; true }), addr + 2 * PAGE);
    /// assert_eq!(seen, 2);
    /// assert_eq!(pt.run(addr, end, &mut |a, _| a < addr + PAGE), addr + PAGE);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn run(&self, start: usize, end: usize, f: &mut impl FnMut(usize, Entry) -> bool) -> usize {
        self.run_spans(start, end, &mut |addr, e, n| {
            let (mut i, mut a) = (0, addr);
            while i < n && f(a, Entry(e.0 + (i << PAGE_SHIFT))) {
                i += 1;
                a += 1 << PAGE_SHIFT;
            }
            i
        })
    }

    /// Like [`Self::run`], but hands over physically contiguous spans:
    /// `f(addr, entry, n)` gets `n` pages from `addr`, whose PFNs follow
    /// `entry`'s and share its flags. That is the part in range of a huge
    /// leaf (one folio), or a single 4 KiB entry. `f` returns how many of
    /// the `n` pages it took; fewer stops the run there.
    ///
    /// # Examples
    ///
    /// Inside a huge leaf the run is one span, from the start asked for to the
    /// end of the leaf.
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
    /// pt.insert_huge_page(addr, &block, 0, &mut DirReserve::new(), &mut Dirtier)?;
    /// let mut spans = 0;
    /// let stop = pt.run_spans(addr + PAGE, addr + 2 * HUGE_SIZE, &mut |a, e, n| {
    ///     spans += 1;
    ///     assert!(a == addr + PAGE && e.is_huge() && n == HUGE_PAGES - 1);
    ///     n
    /// });
    /// assert_eq!((stop, spans), (addr + HUGE_SIZE, 1));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn run_spans(
        &self,
        start: usize,
        end: usize,
        f: &mut impl FnMut(usize, Entry, u64) -> u64,
    ) -> usize {
        let mut addr = start;
        while addr < end {
            match self.leaf(addr) {
                None => return addr,
                Some(Leaf::Huge(e)) => {
                    // `addr < VA_LIMIT`, so this cannot overflow.
                    let leaf_end = (addr | (HUGE_SIZE - 1)) + 1;
                    let n = (leaf_end.min(end) - addr).div_ceil(1 << PAGE_SHIFT) as u64;
                    let took = f(addr, huge_page(e, addr), n).min(n);
                    addr += (took as usize) << PAGE_SHIFT;
                    if took < n {
                        return addr;
                    }
                }
                Some(Leaf::Dir(dir)) => {
                    for e in dir[Self::index(addr, 0)..].iter() {
                        if addr >= end || *e == 0 || f(addr, Entry(*e), 1) == 0 {
                            return addr;
                        }
                        addr += 1 << PAGE_SHIFT;
                    }
                }
            }
        }
        addr
    }

    /// The `n` pages from the entry `e` at `addr`, borrowing the table.
    fn guarded(&self, addr: usize, e: Entry, n: u64) -> GuardedPages<'_> {
        let tie = Tie::of(core::ptr::from_ref(self));
        // SAFETY: The entries are present, and the table is only reachable
        // under its notifier's lock, which every invalidation of them waits
        // for (the contract of `new`), for as long as `self` is borrowed.
        // `WRITE` was only set for writable pages (`entry_for`), and
        // write-protection drops it.
        unsafe { GuardedPages::new(e.pfn(), n, addr, tie, e.kind(), e.has(Entry::WRITE)) }
    }

    /// The page at `addr`, if an entry is present, valid while the table
    /// is borrowed: to read, to write (if the entry is writable), to dirty.
    ///
    /// # Examples
    ///
    /// The device reads what the CPU wrote, through its own table.
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
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// # // SAFETY: The table lives in the notifier, which applies every
    /// # // invalidation to it and empties it on release.
    /// # let pt = unsafe { DevicePageTable::new(GFP_KERNEL)? };
    /// # let notifier = IntervalNotifier::new(&mm, addr, 1 * PAGE, Mirror, pt);
    /// # let notifier = KBox::pin_init(notifier, GFP_KERNEL)?;
    /// kunit_mm::write_user(addr, b"from the CPU")?;
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Read, Mode::Locked)?;
    /// let (pt, pages) = faulted.split();
    /// let page = pages.page(0).ok_or(EFAULT)?;
    /// pt.insert_page(addr, &page, 0, &mut DirReserve::new(), &mut Dirtier)?;
    /// let mut buf = [0u8; 12];
    /// pt.lookup_page(addr).ok_or(EFAULT)?.read(0, &mut buf)?;
    /// assert_eq!(&buf, b"from the CPU");
    /// # Ok::<(), Error>(())
    /// ```
    pub fn lookup_page(&self, addr: usize) -> Option<GuardedPages<'_>> {
        let e = self.lookup(addr)?;
        Some(self.guarded(addr, e, 1))
    }

    /// [`Self::run_spans`] handing out the pages of each span: the device's
    /// sequential access path. `f` returns how many of them it took.
    ///
    /// # Examples
    ///
    /// The device reads the first byte of each page, in one pass.
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
    /// kunit_mm::write_user(addr, b"a")?;
    /// kunit_mm::write_user(addr + PAGE, b"b")?;
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Read, Mode::Locked)?;
    /// let (pt, pages) = faulted.split();
    /// for i in 0..2 {
    ///     let page = pages.page(i).ok_or(EFAULT)?;
    ///     pt.insert_page(addr + i * PAGE, &page, 0, &mut DirReserve::new(), &mut Dirtier)?;
    /// }
    /// let (mut firsts, mut n) = ([0u8; 2], 0);
    /// let stop = pt.run_pages(addr, addr + 2 * PAGE, &mut |pages| {
    ///     let _ = pages.read(0, &mut firsts[n..n + 1]);
    ///     n += 1;
    ///     pages.npages()
    /// });
    /// assert_eq!((stop, &firsts), (addr + 2 * PAGE, b"ab"));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn run_pages(
        &self,
        start: usize,
        end: usize,
        f: &mut impl FnMut(GuardedPages<'_>) -> u64,
    ) -> usize {
        self.run_spans(start, end, &mut |addr, e, n| f(self.guarded(addr, e, n)))
    }

    /// Calls `f(addr, entry)` for every present entry in `[start, end)`, in
    /// address order, skipping empty directories; for each page in range
    /// of a huge leaf, with [`Entry::HUGE`] set.
    ///
    /// # Examples
    ///
    /// Every entry of the range, past the holes.
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
    /// # let addr = kunit_mm::mmap_anon(3, true)?;
    /// # // SAFETY: The table lives in the notifier, which applies every
    /// # // invalidation to it and empties it on release.
    /// # let pt = unsafe { DevicePageTable::new(GFP_KERNEL)? };
    /// # let notifier = IntervalNotifier::new(&mm, addr, 3 * PAGE, Mirror, pt);
    /// # let notifier = KBox::pin_init(notifier, GFP_KERNEL)?;
    /// let mut range = Range::new(&notifier, addr, addr + 3 * PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (pt, pages) = faulted.split();
    /// for i in [0, 2] {
    ///     let page = pages.page(i).ok_or(EFAULT)?;
    ///     pt.insert_page(addr + i * PAGE, &page, 0, &mut DirReserve::new(), &mut Dirtier)?;
    /// }
    /// let (mut found, mut n) = ([0; 3], 0);
    /// pt.for_each(addr, addr + 3 * PAGE, &mut |a, _| {
    ///     found[n] = a;
    ///     n += 1;
    /// });
    /// assert_eq!(&found[..n], &[addr, addr + 2 * PAGE]);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn for_each(&self, start: usize, end: usize, f: &mut impl FnMut(usize, Entry)) {
        let end = end.min(VA_LIMIT);
        if start < end {
            Self::walk_dir(&self.root.0, LEVELS - 1, 0, start, end, f);
        }
    }

    /// Recursive part of [`Self::for_each`] for the entries `dir` of a
    /// directory at `level` whose first address is `base`.
    pub(super) fn walk_dir(
        dir: &[u64],
        level: u32,
        base: usize,
        start: usize,
        end: usize,
        f: &mut impl FnMut(usize, Entry),
    ) {
        let shift = level_shift(level);
        let first = (start.max(base) - base) >> shift;
        let last = ((end - 1 - base) >> shift).min(dir.len() - 1);
        for (i, &e) in dir.iter().enumerate().take(last + 1).skip(first) {
            if e == 0 {
                continue;
            }
            let addr = base + (i << shift);
            if level == 0 {
                f(addr, Entry(e));
            } else if level == HUGE_LEVEL && is_huge_slot(e) {
                let mut a = addr.max(start) & !((1 << PAGE_SHIFT) - 1);
                while a < end && a < addr + HUGE_SIZE {
                    f(a, huge_page(e, a));
                    a += 1 << PAGE_SHIFT;
                }
            } else {
                // SAFETY: Non-zero directory entries point to live
                // directories one level down, owned by the table and kept
                // alive and unchanged while `dir` is borrowed.
                let sub = unsafe { entries(child(e, level - 1), level - 1) };
                Self::walk_dir(sub, level - 1, addr, start, end, f);
            }
        }
    }
}
