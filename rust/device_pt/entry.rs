// SPDX-License-Identifier: GPL-2.0

//! Leaf entries ([`Entry`]) and what a raw directory entry holds: a huge
//! leaf, or a child directory with its count in the low bits. Dirty pages
//! leave the table through a [`DirtySink`].

use super::{
    dir_size,
    entries_at,
    HUGE_LEVEL,
    HUGE_PAGES,
    PAGE_SHIFT, //
};
use crate::guarded_page::{
    GuardedPages,
    Kind, //
};

/// One leaf entry of the device page table.
///
/// # Examples
///
/// What a lookup finds at an address: here a page the device may write.
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
/// pt.insert_page(addr, &page, Entry::WRITE, &mut DirReserve::new(), &mut Dirtier)?;
/// let e = pt.lookup(addr).ok_or(EFAULT)?;
/// assert_eq!(e.flags(), Entry::VALID | Entry::WRITE);
/// assert!(!e.is_huge());
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Entry(pub(super) u64);

impl Entry {
    /// The entry maps a page.
    ///
    /// # Examples
    ///
    /// Every entry a lookup finds is valid; an update that keeps only `VALID`
    /// write-protects the entry, and one that keeps nothing removes it.
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
    /// pt.insert_page(addr, &page, Entry::WRITE, &mut DirReserve::new(), &mut Dirtier)?;
    /// pt.update(addr, addr + PAGE, Entry::VALID, &mut Dirtier);
    /// assert_eq!(pt.lookup(addr).map(|e| e.flags()), Some(Entry::VALID));
    /// pt.update(addr, addr + PAGE, 0, &mut Dirtier);
    /// assert!(pt.lookup(addr).is_none());
    /// # Ok::<(), Error>(())
    /// ```
    pub const VALID: u64 = 1 << 0;
    /// The device may write the page.
    ///
    /// # Examples
    ///
    /// Only for a page the CPU maps writable: not the shared zero page, which a
    /// read fault maps.
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
    /// let mut faulted = range.fault(Fault::Read, Mode::Locked)?;
    /// let (pt, pages) = faulted.split();
    /// let zero = pages.page(0).ok_or(EFAULT)?;
    /// let mut reserve = DirReserve::new();
    /// let write = pt.insert_page(addr, &zero, Entry::WRITE, &mut reserve, &mut Dirtier);
    /// assert_eq!(write, Err(EPERM));
    /// pt.insert_page(addr, &zero, 0, &mut reserve, &mut Dirtier)?;
    /// assert!(pt.lookup(addr).is_some_and(|e| !e.has(Entry::WRITE)));
    /// # Ok::<(), Error>(())
    /// ```
    pub const WRITE: u64 = 1 << 1;
    /// The device has written the page since the entry was made.
    ///
    /// # Examples
    ///
    /// The device records its writes. A dirty entry needs `WRITE`, and the page
    /// goes to the sink when its dirty bit is dropped, here by write-protection.
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
    /// /// Counts the pages handed over.
    /// struct Count(u64);
    ///
    /// impl DirtySink for Count {
    ///     fn dirty(&mut self, pages: GuardedPages<'_>) {
    ///         self.0 += pages.npages();
    ///     }
    /// }
    ///
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (pt, pages) = faulted.split();
    /// let page = pages.page(0).ok_or(EFAULT)?;
    /// let (mut reserve, mut count) = (DirReserve::new(), Count(0));
    /// let dirty = pt.insert_page(addr, &page, Entry::DIRTY, &mut reserve, &mut count);
    /// assert_eq!(dirty, Err(EINVAL));
    /// pt.insert_page(addr, &page, Entry::WRITE | Entry::DIRTY, &mut reserve, &mut count)?;
    /// pt.update(addr, addr + PAGE, Entry::VALID, &mut count);
    /// assert_eq!(count.0, 1);
    /// assert!(pt.lookup(addr).is_some_and(|e| !e.has(Entry::DIRTY)));
    /// # Ok::<(), Error>(())
    /// ```
    pub const DIRTY: u64 = 1 << 2;
    /// The CPU cannot access the page: it is device-exclusive for atomics.
    ///
    /// # Examples
    ///
    /// Kept as given: the mirror tells device atomics from ordinary access.
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
    /// let flags = Entry::WRITE | Entry::EXCLUSIVE;
    /// pt.insert_page(addr, &page, flags, &mut DirReserve::new(), &mut Dirtier)?;
    /// assert!(pt.lookup(addr).is_some_and(|e| e.has(Entry::EXCLUSIVE)));
    /// # Ok::<(), Error>(())
    /// ```
    pub const EXCLUSIVE: u64 = 1 << 3;
    /// The page is in device memory: the PFN names where the device keeps
    /// its data, a page the CPU never maps, so it is never passed to
    /// `set_page_dirty()`.
    ///
    /// # Examples
    ///
    /// Set by the table for device data only: a caller cannot ask for it, and a
    /// page of system memory never has it.
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
    /// let device = pt.insert_page(addr, &page, Entry::DEVICE, &mut reserve, &mut Dirtier);
    /// assert_eq!(device, Err(EINVAL));
    /// pt.insert_page(addr, &page, Entry::WRITE, &mut reserve, &mut Dirtier)?;
    /// assert!(pt.lookup(addr).is_some_and(|e| !e.has(Entry::DEVICE)));
    /// # Ok::<(), Error>(())
    /// ```
    pub const DEVICE: u64 = 1 << 5;
    /// All flag bits.
    ///
    /// # Examples
    ///
    /// Five flags, without [`Entry::HUGE`], which the table sets itself.
    ///
    /// ```
    /// use rust_hmm::device_pt::Entry;
    ///
    /// assert_eq!(Entry::FLAGS.count_ones(), 5);
    /// assert_eq!(Entry::FLAGS & Entry::HUGE, 0);
    /// ```
    pub const FLAGS: u64 = Self::VALID | Self::WRITE | Self::DIRTY | Self::EXCLUSIVE | Self::DEVICE;
    /// The page is part of a huge leaf. Set by the table in the entries it
    /// hands out and in huge leaves, never by a caller. Directory
    /// entries of level 2 never have this bit: their count is at most 8.
    ///
    /// # Examples
    ///
    /// Never asked for by a caller: only [`DevicePageTable::insert_huge_page`]
    /// makes huge leaves.
    ///
    /// [`DevicePageTable::insert_huge_page`]: super::DevicePageTable::insert_huge_page
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
    /// let huge = pt.insert_page(addr, &page, Entry::HUGE, &mut DirReserve::new(), &mut Dirtier);
    /// assert_eq!(huge, Err(EINVAL));
    /// # Ok::<(), Error>(())
    /// ```
    pub const HUGE: u64 = 1 << 4;
    pub(super) const PFN_MASK: u64 = !((1 << PAGE_SHIFT) - 1);

    /// A valid entry for `pfn` with `flags` (`VALID` is implied). Private:
    /// entries come from [`GuardedPages`], through
    /// [`DevicePageTable::insert_page`].
    ///
    /// [`DevicePageTable::insert_page`]: super::DevicePageTable::insert_page
    pub(super) fn new(pfn: u64, flags: u64) -> Self {
        Self((pfn << PAGE_SHIFT) | (flags & Self::FLAGS) | Self::VALID)
    }

    /// The entry belongs to a huge leaf.
    ///
    /// # Examples
    ///
    /// Every page of a huge leaf is looked up with its own entry, marked huge.
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
    /// pt.insert_huge_page(addr, &block, Entry::WRITE, &mut DirReserve::new(), &mut Dirtier)?;
    /// assert!(pt.lookup(addr + 100 * PAGE).is_some_and(|e| e.is_huge()));
    /// assert!(pt.lookup(addr + HUGE_SIZE).is_none());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn is_huge(self) -> bool {
        self.0 & Self::HUGE != 0
    }

    /// The page frame number. Private: pages leave the table only as
    /// [`GuardedPages`] that borrow it ([`DevicePageTable::lookup_page`]).
    ///
    /// [`DevicePageTable::lookup_page`]: super::DevicePageTable::lookup_page
    pub(super) fn pfn(self) -> u64 {
        (self.0 & Self::PFN_MASK) >> PAGE_SHIFT
    }

    /// Whether every bit of `flags` is set.
    ///
    /// # Examples
    ///
    /// All the bits asked for, not just one of them.
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
    /// pt.insert_page(addr, &page, Entry::WRITE, &mut DirReserve::new(), &mut Dirtier)?;
    /// let e = pt.lookup(addr).ok_or(EFAULT)?;
    /// assert!(e.has(Entry::VALID | Entry::WRITE));
    /// assert!(!e.has(Entry::WRITE | Entry::DIRTY));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn has(self, flags: u64) -> bool {
        self.0 & flags == flags
    }

    /// Raw flag bits.
    ///
    /// # Examples
    ///
    /// The flags given, and `VALID`; a device write recorded later adds `DIRTY`.
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
    /// assert_eq!(pt.lookup(addr).map(|e| e.flags()), Some(Entry::VALID | Entry::WRITE));
    /// pt.insert_page(addr, &page, Entry::WRITE | Entry::DIRTY, &mut reserve, &mut Dirtier)?;
    /// let flags = Entry::VALID | Entry::WRITE | Entry::DIRTY;
    /// assert_eq!(pt.lookup(addr).map(|e| e.flags()), Some(flags));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn flags(self) -> u64 {
        self.0 & Self::FLAGS
    }

    /// The kind of memory the entry names.
    pub(super) fn kind(self) -> Kind {
        if self.has(Self::DEVICE) {
            Kind::DeviceData
        } else {
            Kind::System
        }
    }

    /// Hands the `npages` pages of this dirty entry, which the table is
    /// dropping or cleaning, to `sink`.
    pub(super) fn report(self, npages: u64, sink: &mut impl DirtySink) {
        // SAFETY: The entry was valid until now, and whoever changes the
        // table holds the notifier lock (the contract of
        // `DevicePageTable::new`), which every way to free its pages waits
        // for; the sink gets them only for the call. A dirty entry was
        // writable when the device wrote it (`entry_for`).
        sink.dirty(unsafe { GuardedPages::written(self.pfn(), npages, self.kind()) });
    }
}

// A level-2 directory entry's count stays below `HUGE`.
const _: () = assert!((entries_at(HUGE_LEVEL - 1) as u64) < Entry::HUGE);
const _: () = assert!(dir_size(HUGE_LEVEL - 1) > Entry::HUGE);

/// Receives the pages whose dirty bit the table drops.
///
/// The mirror marks them dirty ([`GuardedPages::mark_dirty`]) or takes
/// references to do so later ([`GuardedPages::get`]); tests record them.
///
/// # Examples
///
/// A sink that marks the pages dirty, as a mirror does, and counts them:
/// clearing the table hands it the one page the device wrote.
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
/// /// Marks what the device wrote dirty, and counts it.
/// struct MarkDirty(u64);
///
/// impl DirtySink for MarkDirty {
///     fn dirty(&mut self, pages: GuardedPages<'_>) {
///         let _ = pages.mark_dirty();
///         self.0 += pages.npages();
///     }
/// }
///
/// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
/// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
/// let (pt, pages) = faulted.split();
/// let mut sink = MarkDirty(0);
/// for (i, flags) in [(0, Entry::WRITE | Entry::DIRTY), (1, Entry::WRITE)] {
///     let page = pages.page(i).ok_or(EFAULT)?;
///     pt.insert_page(addr + i * PAGE, &page, flags, &mut DirReserve::new(), &mut sink)?;
/// }
/// pt.clear(&mut sink);
/// assert_eq!(sink.0, 1);
/// # Ok::<(), Error>(())
/// ```
pub trait DirtySink {
    /// The device wrote `pages` (one page, or every page of a huge leaf),
    /// and the table no longer remembers it. They are valid for the call.
    fn dirty(&mut self, pages: GuardedPages<'_>);
}

/// Whether a non-zero entry of a level-2 directory is a huge leaf.
#[inline(always)]
pub(super) fn is_huge_slot(e: u64) -> bool {
    e & Entry::HUGE != 0
}

/// The entry of the page at `addr` inside the huge leaf `e`.
#[inline(always)]
pub(super) fn huge_page(e: u64, addr: usize) -> Entry {
    let i = (addr >> PAGE_SHIFT) as u64 & (HUGE_PAGES - 1);
    // The head PFN is HUGE_PAGES aligned, so this only adds to the PFN.
    Entry(e + (i << PAGE_SHIFT))
}

/// Bits of a directory entry that hold the count of the child at
/// `child_level`: the child's alignment leaves them free in its address.
#[inline(always)]
pub(super) fn count_mask(child_level: u32) -> u64 {
    dir_size(child_level).wrapping_sub(1)
}

/// The child directory (at `child_level`) named by a directory entry.
#[inline(always)]
pub(super) fn child(e: u64, child_level: u32) -> *mut u64 {
    (e & !count_mask(child_level)) as *mut u64
}
