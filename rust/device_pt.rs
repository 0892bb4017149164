// SPDX-License-Identifier: GPL-2.0

//! A per-mirror device page table.
//!
//! This is the table a device walks to translate a virtual address of the
//! mirrored process into a system PFN: a radix tree of eight levels
//! covering virtual addresses `[0, 2^57)` (the largest x86-64 user address
//! space, with 5-level paging). Directories hold 64 entries (512 bytes),
//! except at level 1, where they hold 8 (64 bytes), so that one level-2
//! entry spans 2 MiB, the size of a huge leaf (`LEVEL_BITS`). Small
//! directories keep a sparse or small mirrored range about as cheap as an
//! xarray (whose nodes also have 64 slots); a dense one costs 8 bytes per
//! page plus 1/64 of that for level 1.
//!
//! A leaf entry is `pfn << PAGE_SHIFT | flags` (see [`Entry`]). A directory
//! entry is the address of the child directory, which is aligned to its
//! size, with the number of non-empty entries of that child in the low
//! bits. Keeping the count in the parent keeps every directory a power of
//! two in size, with no header. Directories are allocated on demand and
//! freed as soon as they are empty.
//!
//! # Huge leaves
//!
//! An entry of a level-2 directory is either a directory or a *huge leaf*:
//! one entry mapping a whole aligned 2 MiB range (PMD order, like the CPU's
//! PMD) to [`HUGE_PAGES`] physically contiguous pages of one folio, with
//! one set of flags. It is told from a directory by [`Entry::HUGE`], a bit
//! a directory entry there never has (its count is at most 8). Lookups
//! hand out the entry of the page inside, with `HUGE` set. Changing part of
//! a huge leaf (an invalidation, a 4 KiB insert) first splits it into a
//! level-1 directory and its eight leaf directories, full, whose entries
//! carry its flags, dirty bit included, so no dirty bit is lost; if those
//! directories cannot be had without sleeping, an invalidation drops the
//! whole leaf instead (reporting it dirty if it was), which is always
//! correct for a mirror: the device faults again.
//! [`DevicePageTable::insert_huge_page`] over directories merges them back.
//! Device-exclusive entries are always 4 KiB.
//!
//! # Locking and safety contract
//!
//! The table has no lock of its own: it lives in the state of an
//! [`IntervalNotifier`](crate::mmu_notifier::IntervalNotifier), so every
//! access holds the notifier lock, the same lock the invalidate callback
//! takes. That is also what keeps the pages its entries name alive, so
//! [`DevicePageTable::new`] is `unsafe`: its caller promises the table
//! lives there and follows every invalidation. Pages go in only as
//! [`GuardedPages`] validated by that notifier for the address they go to
//! ([`DevicePageTable::insert_page`]), and come out only as
//! [`GuardedPages`] that borrow the table ([`DevicePageTable::lookup_page`],
//! [`DevicePageTable::run_pages`], [`DirtySink`]); PFNs never leave it.
//! Because that callback can run from reclaim, nothing here may allocate
//! with `GFP_KERNEL`: directories come from a [`DirReserve`] filled before
//! the lock is taken, or from `GFP_NOWAIT`.
//!
//! [`GuardedPages`]: crate::guarded_page::GuardedPages
//!
//! # Files
//!
//! - this file: the geometry (levels, directory sizes, [`VA_LIMIT`], the
//!   huge leaf size), [`DevicePageTable`] and its invariants;
//! - `entry.rs`: [`Entry`] and its flags, [`DirtySink`], and what a raw
//!   directory entry holds (a huge leaf, or a child and its count);
//! - `dir.rs`: directory storage: the two directory types, [`DirReserve`],
//!   [`PtStats`];
//! - `lookup.rs`: lookups and walks ([`DevicePageTable::lookup`],
//!   [`DevicePageTable::run_pages`], [`DevicePageTable::for_each`], ...);
//! - `insert.rs`: inserts of 4 KiB entries and huge leaves, splitting and
//!   merging huge leaves;
//! - `update.rs`: range updates, as invalidations apply them
//!   ([`DevicePageTable::update`], [`DevicePageTable::clear`]);
//! - `tests.rs`: the KUnit suite `rust_hmm_device_pt`.

use kernel::prelude::*;

mod dir;
mod entry;
mod insert;
mod lookup;
mod tests;
mod update;

use dir::Dir;
pub use dir::{
    DirReserve,
    PtStats, //
};
pub use entry::{
    DirtySink,
    Entry, //
};
use update::NoDirty;

/// Number of levels; level 0 holds the 4 KiB leaf entries.
const LEVELS: u32 = 8;
/// Bits of virtual address each level translates, from level 0 up.
const LEVEL_BITS: [u32; LEVELS as usize] = [6, 3, 6, 6, 6, 6, 6, 6];
const PAGE_SHIFT: u32 = kernel::page::PAGE_SHIFT as u32;

/// Entries of a directory at `level`.
#[inline(always)]
const fn entries_at(level: u32) -> usize {
    ENTRIES[level as usize]
}

/// [`entries_at`] of every level. Tables rather than arithmetic: the walks
/// index them with a variable level, and each shift or multiplication
/// there would carry an overflow check.
const ENTRIES: [usize; LEVELS as usize] = {
    let mut t = [0; LEVELS as usize];
    let mut l = 0;
    while l < LEVELS as usize {
        t[l] = 1 << LEVEL_BITS[l];
        l += 1;
    }
    t
};

/// Bytes of a directory at `level`; also its alignment.
#[inline(always)]
const fn dir_size(level: u32) -> u64 {
    DIR_SIZES[level as usize]
}

/// [`dir_size`] of every level.
const DIR_SIZES: [u64; LEVELS as usize] = {
    let mut t = [0; LEVELS as usize];
    let mut l = 0;
    while l < LEVELS as usize {
        t[l] = (ENTRIES[l] * core::mem::size_of::<u64>()) as u64;
        l += 1;
    }
    t
};

/// Size of the address range one entry at `level` covers, as a shift.
#[inline(always)]
const fn level_shift(level: u32) -> u32 {
    SHIFTS[level as usize]
}

/// [`level_shift`] of every level, and of `LEVELS` (the whole table).
const SHIFTS: [u32; LEVELS as usize + 1] = {
    let mut t = [0; LEVELS as usize + 1];
    let mut shift = PAGE_SHIFT;
    let mut l = 0;
    while l < LEVELS as usize {
        t[l] = shift;
        shift += LEVEL_BITS[l];
        l += 1;
    }
    t[l] = shift;
    t
};

// Addresses are `usize`, and the table covers 57 bits of them: the shifts
// and masks below, and `VA_LIMIT` itself, need a 64-bit `usize`.
const _: () = assert!(usize::BITS >= 64);

/// First virtual address the table cannot describe.
///
/// # Examples
///
/// The 57-bit user address space of 5-level paging.
///
/// ```
/// use rust_hmm::device_pt::VA_LIMIT;
///
/// assert_eq!(VA_LIMIT, 1 << 57);
/// ```
pub const VA_LIMIT: usize = 1 << level_shift(LEVELS);

/// Level whose entries may be huge leaves.
const HUGE_LEVEL: u32 = 2;
/// log2 of the pages of a huge leaf: the PMD order.
///
/// # Examples
///
/// A huge leaf maps what the CPU maps with one PMD.
///
/// ```
/// use rust_hmm::device_pt::HUGE_ORDER;
///
/// assert_eq!(HUGE_ORDER, rust_hmm::migrate::PMD_ORDER);
/// ```
pub const HUGE_ORDER: u32 = level_shift(HUGE_LEVEL) - PAGE_SHIFT;
/// Pages one huge leaf maps.
///
/// # Examples
///
/// With 4 KiB pages, 512 of them.
///
/// ```
/// use rust_hmm::device_pt::{HUGE_ORDER, HUGE_PAGES};
///
/// assert_eq!(HUGE_PAGES, 1 << HUGE_ORDER);
/// assert_eq!(HUGE_PAGES, 512);
/// ```
pub const HUGE_PAGES: u64 = 1 << HUGE_ORDER;
/// Bytes one huge leaf maps (2 MiB with 4 KiB pages).
///
/// # Examples
///
/// The bytes of [`HUGE_PAGES`] pages.
///
/// ```
/// use rust_hmm::device_pt::{HUGE_PAGES, HUGE_SIZE};
///
/// assert_eq!(HUGE_SIZE, HUGE_PAGES as usize * kernel::page::PAGE_SIZE);
/// assert_eq!(HUGE_SIZE, 2 << 20);
/// ```
pub const HUGE_SIZE: usize = 1 << level_shift(HUGE_LEVEL);

const _: () = assert!(VA_LIMIT == 1 << 57 && HUGE_ORDER == 9);

/// A multi-level device page table.
///
/// # Invariants
///
/// - Every non-zero entry of a directory at level `l > 0` is the address of
///   a directory of level `l - 1` leaked with `DirBox::into_raw`, owned by
///   this table, or'ed with the number (at least 1) of non-zero entries of
///   that directory.
/// - `root` is the directory of level `LEVELS - 1`, and `root_count` is the
///   number of its non-zero entries.
/// - A non-zero entry of a level-2 directory with [`Entry::HUGE`] set is a
///   huge leaf, not a directory: its PFN is `HUGE_PAGES` aligned and it
///   never has `EXCLUSIVE`.
/// - `stats` counts the 4 KiB and huge leaves and the directories below
///   the root, and their bytes.
///
/// # Examples
///
/// A mirror: the table lives in its notifier's state, every invalidation
/// is applied to it, and a device fault puts the page it faulted in. A
/// device write then dirties the page, and the CPU's munmap both drops the
/// entry and hands the dirty page to the sink.
///
/// ```
/// use rust_hmm::device_pt::{DevicePageTable, DirReserve, DirtySink, Entry};
/// use rust_hmm::guarded_page::GuardedPages;
/// use rust_hmm::hmm::{Fault, Mode, Range};
/// use rust_hmm::mmu_notifier::{IntervalNotifier, IntervalNotifierOps, NotifierRange};
/// # use rust_hmm::kunit_mm::{self, PAGE};
///
/// /// Marks what the device wrote dirty, as the table forgets it.
/// struct Dirtier;
///
/// impl DirtySink for Dirtier {
///     fn dirty(&mut self, pages: GuardedPages<'_>) {
///         let _ = pages.mark_dirty();
///     }
/// }
///
/// struct Mirror;
///
/// impl IntervalNotifierOps for Mirror {
///     type State = DevicePageTable;
///     type Finish = ();
///
///     fn invalidate(&self, pt: &mut DevicePageTable, range: &NotifierRange<'_>) {
///         // Write-protection keeps read access; anything else drops it.
///         let keep = if range.event().keeps_read() { Entry::VALID } else { 0 };
///         pt.update(range.start(), range.end(), keep, &mut Dirtier);
///     }
///
///     fn release(&self, pt: &mut DevicePageTable) {
///         pt.clear(&mut Dirtier);
///     }
/// }
///
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(1, true)?;
/// // SAFETY: The table goes into the state of the notifier below, whose
/// // `invalidate` applies every invalidation, never keeping `WRITE`, and
/// // whose `release` empties it.
/// let pt = unsafe { DevicePageTable::new(GFP_KERNEL)? };
/// let notifier = KBox::pin_init(IntervalNotifier::new(&mm, addr, PAGE, Mirror, pt), GFP_KERNEL)?;
///
/// // A device write fault.
/// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
/// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
/// let (pt, pages) = faulted.split();
/// let page = pages.page(0).ok_or(EFAULT)?;
/// pt.insert_page(addr, &page, Entry::WRITE, &mut DirReserve::new(), &mut Dirtier)?;
///
/// // The device writes through its table, and the entry records it (the
/// // page from the table cannot go back in while it borrows the table).
/// pt.lookup_page(addr).ok_or(EFAULT)?.write(0, b"from the device")?;
/// let dirty = Entry::WRITE | Entry::DIRTY;
/// pt.insert_page(addr, &page, dirty, &mut DirReserve::new(), &mut Dirtier)?;
/// assert!(pt.lookup(addr).is_some_and(|e| e.has(Entry::DIRTY)));
/// drop(faulted);
///
/// let mut buf = [0u8; 15];
/// kunit_mm::read_user(addr, &mut buf)?;
/// assert_eq!(&buf, b"from the device");
/// kunit_mm::munmap(addr, 1)?;
/// assert!(notifier.lock().lookup(addr).is_none());
/// # Ok::<(), Error>(())
/// ```
pub struct DevicePageTable {
    root: KBox<Dir>,
    root_count: u64,
    stats: PtStats,
}

// SAFETY: The table owns its directories; nothing in it is tied to a thread.
unsafe impl Send for DevicePageTable {}

impl DevicePageTable {
    /// An empty table.
    ///
    /// # Safety
    ///
    /// The table hands out the pages its entries name ([`Self::lookup_page`],
    /// [`Self::run_pages`], the dirty reports), which is only sound while
    /// each entry is current. So the table must live in the state of an
    /// [`IntervalNotifier`](crate::mmu_notifier::IntervalNotifier), and not
    /// be moved out of it while it holds entries; that notifier's
    /// `invalidate` must apply every invalidation to it with
    /// [`Self::update`] over the invalidated range, with a mask that keeps
    /// `VALID` only for events that keep the pages mapped
    /// ([`Event::keeps_read`](crate::mmu_notifier::Event::keeps_read)) and
    /// never keeps `WRITE`; and its `release` must empty it
    /// ([`Self::clear`]). [`Self::insert_page`] then only takes pages that
    /// notifier validated, for the address they are inserted at.
    ///
    /// # Examples
    ///
    /// A table made for the state of a notifier whose `Mirror` ops apply every
    /// invalidation with [`Self::update`] and empty it on release, as in the
    /// example of [`DevicePageTable`]; it starts out empty.
    ///
    /// ```
    /// use rust_hmm::device_pt::{DevicePageTable, PtStats};
    /// # use rust_hmm::device_pt::{DirtySink, Entry};
    /// # use rust_hmm::guarded_page::GuardedPages;
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
    /// // SAFETY: The table goes into the state of the notifier below, whose ops
    /// // apply every invalidation to it, never keeping `WRITE`, and empty it on
    /// // release.
    /// let pt = unsafe { DevicePageTable::new(GFP_KERNEL)? };
    /// let notifier = IntervalNotifier::new(&mm, addr, PAGE, Mirror, pt);
    /// let notifier = KBox::pin_init(notifier, GFP_KERNEL)?;
    /// let pt = notifier.lock();
    /// assert_eq!(pt.stats(), PtStats::default());
    /// assert!(pt.lookup(addr).is_none());
    /// # Ok::<(), Error>(())
    /// ```
    pub unsafe fn new(flags: kernel::alloc::Flags) -> Result<Self> {
        Self::alloc(flags)
    }

    /// [`Self::new`], for tables whose PFNs are made up and never read
    /// (the tests, in `tests.rs`).
    fn alloc(flags: kernel::alloc::Flags) -> Result<Self> {
        let root = KBox::init(pin_init::init_zeroed(), flags)?;
        Ok(Self {
            root,
            root_count: 0,
            stats: PtStats::default(),
        })
    }

    /// What the table holds.
    ///
    /// # Examples
    ///
    /// The first page costs a directory on each level below the root; an unmap
    /// frees them again.
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
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// # // SAFETY: The table lives in the notifier, which applies every
    /// # // invalidation to it and empties it on release.
    /// # let pt = unsafe { DevicePageTable::new(GFP_KERNEL)? };
    /// # let notifier = IntervalNotifier::new(&mm, addr, 1 * PAGE, Mirror, pt);
    /// # let notifier = KBox::pin_init(notifier, GFP_KERNEL)?;
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (pt, pages) = faulted.split();
    /// let page = pages.page(0).ok_or(EFAULT)?;
    /// pt.insert_page(addr, &page, Entry::WRITE, &mut DirReserve::new(), &mut Dirtier)?;
    /// let one = PtStats { entries: 1, huge: 0, dirs: 7, bytes: 6 * 512 + 64, splits: 0 };
    /// assert_eq!(pt.stats(), one);
    /// drop(faulted);
    ///
    /// kunit_mm::munmap(addr, 1)?;
    /// assert_eq!(notifier.lock().stats(), PtStats::default());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn stats(&self) -> PtStats {
        self.stats
    }

    /// Bytes of directories the table uses, the root included.
    ///
    /// # Examples
    ///
    /// An empty table is its 512-byte root; a first page adds seven
    /// directories, of 512 bytes but for the 64 bytes of level 1.
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
    /// assert_eq!(notifier.lock().bytes(), 512);
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (pt, pages) = faulted.split();
    /// let page = pages.page(0).ok_or(EFAULT)?;
    /// pt.insert_page(addr, &page, Entry::WRITE, &mut DirReserve::new(), &mut Dirtier)?;
    /// assert_eq!(pt.bytes(), 512 + 6 * 512 + 64);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn bytes(&self) -> u64 {
        self.stats.bytes + dir_size(LEVELS - 1)
    }

    #[inline(always)]
    fn check_addr(addr: usize) -> Result {
        if addr & ((1 << PAGE_SHIFT) - 1) != 0 {
            return Err(EINVAL);
        }
        if addr >= VA_LIMIT {
            return Err(EFAULT);
        }
        Ok(())
    }

    #[inline(always)]
    fn index(addr: usize, level: u32) -> usize {
        addr.wrapping_shr(level_shift(level)) & entries_at(level).wrapping_sub(1)
    }
}

impl Drop for DevicePageTable {
    fn drop(&mut self) {
        // Owners clear the table with their own sink first; this only frees
        // what is left.
        self.clear(&mut NoDirty);
    }
}
