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
    pub fn lookup_page(&self, addr: usize) -> Option<GuardedPages<'_>> {
        let e = self.lookup(addr)?;
        Some(self.guarded(addr, e, 1))
    }

    /// [`Self::run_spans`] handing out the pages of each span: the device's
    /// sequential access path. `f` returns how many of them it took.
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
