// SPDX-License-Identifier: GPL-2.0

//! Directory storage: the two directory types and their boxes, the
//! [`DirReserve`] that inserts take them from under the notifier lock, and
//! the [`PtStats`] counters.

use super::{
    dir_size,
    entries_at,
    HUGE_LEVEL,
    LEVELS, //
};
use kernel::prelude::*;

/// A directory of any level but 1.
#[derive(Zeroable)]
#[repr(C, align(512))]
pub(super) struct Dir(pub(super) [u64; entries_at(0)]);
/// A level-1 directory.
#[derive(Zeroable)]
#[repr(C, align(64))]
struct MidDir([u64; entries_at(1)]);

const _: () = {
    assert!(core::mem::size_of::<Dir>() as u64 == dir_size(0));
    assert!(core::mem::size_of::<MidDir>() as u64 == dir_size(1));
    let mut l = HUGE_LEVEL;
    while l < LEVELS {
        assert!(entries_at(l) == entries_at(0));
        l += 1;
    }
};

/// Which of the two directory types a level uses, as an index.
pub(super) const fn kind(level: u32) -> usize {
    (level == 1) as usize
}

/// An owned directory, of the type its level uses.
enum DirBox {
    Dir(KBox<Dir>),
    Mid(KBox<MidDir>),
}

impl DirBox {
    /// A zeroed (empty) directory for `level`.
    fn alloc(level: u32, flags: kernel::alloc::Flags) -> Result<Self> {
        use pin_init::init_zeroed;
        Ok(match kind(level) {
            0 => Self::Dir(KBox::init(init_zeroed(), flags)?),
            _ => Self::Mid(KBox::init(init_zeroed(), flags)?),
        })
    }

    /// Leaks the directory, for a parent entry to own.
    fn into_raw(self) -> *mut u64 {
        match self {
            Self::Dir(b) => KBox::into_raw(b).cast(),
            Self::Mid(b) => KBox::into_raw(b).cast(),
        }
    }
}

/// Frees a directory leaked with [`DirBox::into_raw`].
///
/// # Safety
///
/// `dir` came from [`DirBox::into_raw`] of a directory of `level`, and
/// nothing refers to it any more.
pub(super) unsafe fn free_dir(dir: *mut u64, level: u32) {
    match kind(level) {
        // SAFETY: Per the function's safety requirements, `dir` is a leaked
        // box of the type `level` uses; likewise below.
        0 => drop(unsafe { KBox::from_raw(dir.cast::<Dir>()) }),
        // SAFETY: As above.
        _ => drop(unsafe { KBox::from_raw(dir.cast::<MidDir>()) }),
    }
}

/// The entries of the directory `dir` at `level`.
///
/// # Safety
///
/// `dir` is a live directory of `level`, not written to for `'a`.
pub(super) unsafe fn entries<'a>(dir: *const u64, level: u32) -> &'a [u64] {
    // SAFETY: Per the function's safety requirements.
    unsafe { core::slice::from_raw_parts(dir, entries_at(level)) }
}

/// Directories of each type ([`kind`]), as counts.
pub(super) type Need = [usize; 2];

/// What splitting a huge leaf takes: a level-1 directory and its leaves.
pub(super) const SPLIT_NEED: Need = [entries_at(1), 1];

/// What inserts anywhere inside one aligned [`HUGE_SIZE`] block may need:
/// the directories from below the root down to the leaves.
///
/// [`HUGE_SIZE`]: super::HUGE_SIZE
const BLOCK_NEED: Need = [entries_at(1) + (LEVELS - 1 - HUGE_LEVEL) as usize, 1];

/// Directories allocated ahead of time, outside the notifier lock.
///
/// Under the lock the table may only allocate with `GFP_NOWAIT` (the
/// invalidate callback takes the lock from reclaim), so a device fault
/// fills a reserve with `GFP_KERNEL` first and hands it to the inserts.
///
/// # Examples
///
/// ```
/// use rust_hmm::device_pt::DirReserve;
///
/// let mut reserve = DirReserve::new();
/// // Enough for any one insert inside an aligned 2 MiB block.
/// reserve.fill_block(GFP_KERNEL)?;
/// // ... take the notifier lock, fault, `insert_page(.., &mut reserve, ..)`;
/// // what an insert does not use is freed with the reserve.
/// # Ok::<(), Error>(())
/// ```
pub struct DirReserve([KVec<DirBox>; 2]);

impl DirReserve {
    /// An empty reserve.
    ///
    /// # Examples
    ///
    /// Inserts take what they need from the reserve, and what it lacks with
    /// `GFP_NOWAIT`: an empty one works too, unless memory is short.
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
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (pt, pages) = faulted.split();
    /// let page = pages.page(0).ok_or(EFAULT)?;
    /// let mut reserve = DirReserve::new();
    /// pt.insert_page(addr, &page, Entry::WRITE, &mut reserve, &mut Dirtier)?;
    /// assert!(pt.lookup(addr).is_some());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new() -> Self {
        Self([KVec::new(), KVec::new()])
    }

    pub(super) fn fill_need(&mut self, need: Need, flags: kernel::alloc::Flags) -> Result {
        for (k, dirs) in self.0.iter_mut().enumerate() {
            while dirs.len() < need[k] {
                dirs.push(DirBox::alloc(k as u32, flags)?, flags)?;
            }
        }
        Ok(())
    }

    /// Makes sure the reserve holds every directory that inserts anywhere
    /// inside one aligned [`HUGE_SIZE`] block may need, allocating with
    /// `flags`. One [`DevicePageTable::insert_page`] or
    /// [`DevicePageTable::insert_huge_page`] never needs more.
    ///
    /// [`HUGE_SIZE`]: super::HUGE_SIZE
    /// [`DevicePageTable::insert_page`]: super::DevicePageTable::insert_page
    /// [`DevicePageTable::insert_huge_page`]: super::DevicePageTable::insert_huge_page
    ///
    /// # Examples
    ///
    /// A device fault fills the reserve before it takes the notifier lock, then
    /// inserts its pages with it.
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
    /// let mut reserve = DirReserve::new();
    /// reserve.fill_block(GFP_KERNEL)?;
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (pt, pages) = faulted.split();
    /// for i in 0..2 {
    ///     let page = pages.page(i).ok_or(EFAULT)?;
    ///     pt.insert_page(addr + i * PAGE, &page, Entry::WRITE, &mut reserve, &mut Dirtier)?;
    /// }
    /// assert_eq!(pt.stats().entries, 2);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn fill_block(&mut self, flags: kernel::alloc::Flags) -> Result {
        self.fill_need(BLOCK_NEED, flags)
    }

    /// A directory for `level`, leaked for a parent entry to own.
    pub(super) fn pop(&mut self, level: u32) -> Option<*mut u64> {
        self.0[kind(level)].pop().map(DirBox::into_raw)
    }

    /// The directories of one split, or `None` if the reserve lacks any.
    pub(super) fn pop_split(&mut self) -> Option<(*mut u64, [*mut u64; entries_at(1)])> {
        if self.0[0].len() < SPLIT_NEED[0] || self.0[1].len() < SPLIT_NEED[1] {
            return None;
        }
        let mut leaves = [core::ptr::null_mut(); entries_at(1)];
        for leaf in leaves.iter_mut() {
            // Cannot fail: there are enough, checked above.
            *leaf = self.pop(0)?;
        }
        Some((self.pop(1)?, leaves))
    }
}

impl Default for DirReserve {
    fn default() -> Self {
        Self::new()
    }
}

/// Counters of what the table holds.
///
/// # Examples
///
/// Two pages in one leaf directory share its directories; write-protection
/// keeps them, an unmap empties the table.
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
/// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
/// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
/// let (pt, pages) = faulted.split();
/// for i in 0..2 {
///     let page = pages.page(i).ok_or(EFAULT)?;
///     pt.insert_page(addr + i * PAGE, &page, Entry::WRITE, &mut DirReserve::new(), &mut Dirtier)?;
/// }
/// let two = PtStats { entries: 2, huge: 0, dirs: 7, bytes: 6 * 512 + 64, splits: 0 };
/// assert_eq!(pt.stats(), two);
/// pt.update(addr, addr + 2 * PAGE, Entry::VALID, &mut Dirtier);
/// assert_eq!(pt.stats(), two);
/// drop(faulted);
///
/// kunit_mm::munmap(addr, 2)?;
/// assert_eq!(notifier.lock().stats(), PtStats::default());
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct PtStats {
    /// Valid 4 KiB leaf entries.
    pub entries: u64,
    /// Huge (2 MiB) leaves.
    pub huge: u64,
    /// Directories below the root.
    pub dirs: u64,
    /// Bytes of the directories below the root.
    pub bytes: u64,
    /// Huge leaves split into 4 KiB entries, ever.
    pub splits: u64,
}

impl PtStats {
    pub(super) fn dir_added(&mut self, level: u32) {
        self.dirs += 1;
        self.bytes += dir_size(level);
    }

    pub(super) fn dir_freed(&mut self, level: u32) {
        self.dirs -= 1;
        self.bytes -= dir_size(level);
    }
}
