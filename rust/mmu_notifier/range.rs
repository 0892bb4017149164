// SPDX-License-Identifier: GPL-2.0

//! What an invalidation tells the driver: its range, and why it happens.

use kernel::bindings;

/// Why an invalidation happens (`enum mmu_notifier_event`).
///
/// # Examples
///
/// A CPU write to a page that mapped the zero page gives it a page of its
/// own (`Clear`); munmap takes it away (`Unmap`).
///
/// ```
/// use rust_hmm::hmm::{Fault, Mode, Range};
/// use rust_hmm::mmu_notifier::Event;
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(1, true)?;
/// // The state is the event of the last invalidation.
/// let notifier = kunit_mm::notifier_with(&mm, addr, PAGE, |last: &mut Option<Event>, range| {
///     *last = Some(range.event());
/// })?;
/// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
/// assert!(range.fault(Fault::Read, Mode::Locked)?.pfns()[0].is_zero());
/// kunit_mm::write_user(addr, b"cpu")?;
/// assert_eq!(*notifier.lock(), Some(Event::Clear));
/// kunit_mm::munmap(addr, 1)?;
/// assert_eq!(*notifier.lock(), Some(Event::Unmap));
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Event {
    /// The range is being unmapped (munmap, mremap, zap).
    Unmap,
    /// The mapping is being cleared, for example on COW or reclaim.
    Clear,
    /// The protection of the whole VMA changes (mprotect).
    ProtectionVma,
    /// Pages are write-protected (fork COW, writeback, `folio_mkclean`).
    ProtectionPage,
    /// Soft-dirty tracking write-protects the range.
    SoftDirty,
    /// The process address space is torn down.
    Release,
    /// Pages are migrated.
    Migrate,
    /// Pages are made device exclusive.
    Exclusive,
}

impl Event {
    fn from_raw(e: bindings::mmu_notifier_event) -> Self {
        match e {
            bindings::mmu_notifier_event_MMU_NOTIFY_UNMAP => Self::Unmap,
            bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_VMA => Self::ProtectionVma,
            bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_PAGE => Self::ProtectionPage,
            bindings::mmu_notifier_event_MMU_NOTIFY_SOFT_DIRTY => Self::SoftDirty,
            bindings::mmu_notifier_event_MMU_NOTIFY_RELEASE => Self::Release,
            bindings::mmu_notifier_event_MMU_NOTIFY_MIGRATE => Self::Migrate,
            bindings::mmu_notifier_event_MMU_NOTIFY_EXCLUSIVE => Self::Exclusive,
            // CLEAR, and anything newer: assume the worst.
            _ => Self::Clear,
        }
    }

    /// Whether the CPU keeps read access to the pages after the event, so
    /// that a mirror may keep its entries read-only instead of dropping them.
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::mmu_notifier::Event;
    ///
    /// // fork() write-protects the parent's pages: they stay readable.
    /// assert!(Event::ProtectionPage.keeps_read());
    /// // mprotect() may take read access away too; munmap() takes all.
    /// assert!(!Event::ProtectionVma.keeps_read());
    /// assert!(!Event::Unmap.keeps_read());
    /// ```
    pub fn keeps_read(self) -> bool {
        matches!(self, Self::ProtectionPage | Self::SoftDirty)
    }
}

/// The range of one invalidation (`struct mmu_notifier_range`).
///
/// # Examples
///
/// A device that maps four pages drops those an invalidation covers.
///
/// ```
/// use rust_hmm::mmu_notifier::{IntervalNotifier, IntervalNotifierOps, NotifierRange};
/// # use rust_hmm::kunit_mm::{self, PAGE};
///
/// /// The device's view of the four pages from `base`.
/// struct Mirror {
///     base: usize,
/// }
///
/// impl IntervalNotifierOps for Mirror {
///     /// Which of the pages the device maps.
///     type State = [bool; 4];
///     type Finish = ();
///
///     fn invalidate(&self, mapped: &mut [bool; 4], range: &NotifierRange<'_>) {
///         for (i, m) in mapped.iter_mut().enumerate() {
///             let addr = self.base + i * PAGE;
///             if range.start() <= addr && addr < range.end() {
///                 *m = false;
///             }
///         }
///     }
/// }
///
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(4, true)?;
/// // As if the device had mapped all four.
/// let mirror = Mirror { base: addr };
/// let notifier = KBox::pin_init(
///     IntervalNotifier::new(&mm, addr, 4 * PAGE, mirror, [true; 4]),
///     GFP_KERNEL,
/// )?;
/// kunit_mm::munmap(addr + PAGE, 2)?;
/// assert_eq!(*notifier.lock(), [true, false, false, true]);
/// # Ok::<(), Error>(())
/// ```
pub struct NotifierRange<'a> {
    pub(crate) raw: &'a bindings::mmu_notifier_range,
}

impl NotifierRange<'_> {
    /// First address of the range.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(4, true)?;
    /// // The state is the start of the last invalidation.
    /// let notifier = kunit_mm::notifier_with(&mm, addr, 4 * PAGE, |start: &mut usize, range| {
    ///     *start = range.start();
    /// })?;
    /// kunit_mm::munmap(addr + 2 * PAGE, 1)?;
    /// assert_eq!(*notifier.lock(), addr + 2 * PAGE);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn start(&self) -> usize {
        self.raw.start
    }

    /// End of the range (exclusive).
    ///
    /// # Examples
    ///
    /// The range is the whole invalidation, which may reach past the
    /// notifier's interval on either side.
    ///
    /// ```
    /// # use rust_hmm::mmu_notifier::NotifierRange;
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(4, true)?;
    /// // The state is the last invalidation's range; the interval is the
    /// // middle two pages.
    /// let record = |r: &mut (usize, usize), range: &NotifierRange<'_>| {
    ///     *r = (range.start(), range.end());
    /// };
    /// let notifier = kunit_mm::notifier_with(&mm, addr + PAGE, 2 * PAGE, record)?;
    /// kunit_mm::munmap(addr, 4)?;
    /// assert_eq!(*notifier.lock(), (addr, addr + 4 * PAGE));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn end(&self) -> usize {
        self.raw.end
    }

    /// Why the range is invalidated.
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::mmu_notifier::Event;
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// // The state is the event of the last invalidation.
    /// let notifier = kunit_mm::notifier_with(&mm, addr, PAGE, |last: &mut Option<Event>, range| {
    ///     *last = Some(range.event());
    /// })?;
    /// kunit_mm::munmap(addr, 1)?;
    /// let event = notifier.lock().ok_or(EINVAL)?;
    /// assert_eq!(event, Event::Unmap);
    /// assert!(!event.keeps_read()); // the device must drop its mappings
    /// # Ok::<(), Error>(())
    /// ```
    pub fn event(&self) -> Event {
        Event::from_raw(self.raw.event)
    }

    /// The owner cookie that the initiator passed (migration, exclusive).
    ///
    /// # Examples
    ///
    /// Another notifier's device-exclusive conversion carries that notifier's
    /// owner cookie; an munmap carries none.
    ///
    /// ```
    /// use rust_hmm::device_exclusive::exclusive_session;
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// // The state is the owner of the last invalidation, as a number.
    /// let watcher = kunit_mm::notifier_with(&mm, addr, PAGE, |owner: &mut usize, range| {
    ///     *owner = range.owner() as usize;
    /// })?;
    /// let device = kunit_mm::notifier(&mm, addr, PAGE)?;
    /// exclusive_session(&device, |s| s.map(addr, |_, _| Ok(())))?;
    /// assert_eq!(*watcher.lock(), device.owner() as usize);
    /// kunit_mm::munmap(addr, 1)?;
    /// assert_eq!(*watcher.lock(), 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn owner(&self) -> *const core::ffi::c_void {
        self.raw.owner
    }

    /// Whether the callback may sleep (`mmu_notifier_range_blockable()`).
    ///
    /// # Examples
    ///
    /// An munmap may sleep in its callbacks (only the OOM reaper may not).
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// // The state is whether the last invalidation was blockable.
    /// let notifier = kunit_mm::notifier_with(&mm, addr, PAGE, |b: &mut Option<bool>, range| {
    ///     *b = Some(range.blockable());
    /// })?;
    /// kunit_mm::munmap(addr, 1)?;
    /// assert_eq!(*notifier.lock(), Some(true));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn blockable(&self) -> bool {
        self.raw.flags & bindings::MMU_NOTIFIER_RANGE_BLOCKABLE != 0
    }
}
