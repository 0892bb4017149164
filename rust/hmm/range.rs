// SPDX-License-Identifier: GPL-2.0

//! [`Range`]: a range of a notifier's interval to fault, and what a
//! fault gives ([`Faulted`], [`FaultedPfns`]), valid under the notifier
//! lock.

use super::{
    block_head,
    Fault,
    Mode,
    Pfn,
    HMM_PFN_REQ_FAULT,
    MAX_RANGE_PAGES,
    PAGE_SHIFT, //
};
use crate::ffi;
use crate::guarded_page::{
    GuardedPages,
    Kind,
    Tie, //
};
use crate::migrate::PagemapOwner;
use crate::mmu_notifier::SeqNotifier;
use kernel::{
    prelude::*,
    sync::lock::{
        mutex::MutexBackend,
        Guard, //
    },
    time::{
        Instant,
        Monotonic, //
    }, //
};

/// A range request for `hmm_range_fault()`.
///
/// # Examples
///
/// A device fault: the two pages at `addr`, which an interval notifier
/// watches, faulted in writable; their data read under the notifier lock
/// that validated them (it is held until `faulted` goes).
///
/// ```
/// use rust_hmm::hmm::{Fault, Mode, Range};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(2, true)?;
/// # kunit_mm::write_user(addr, b"hello")?;
/// # let notifier = kunit_mm::notifier(&mm, addr, 2 * PAGE)?;
///
/// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
/// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
/// assert!(faulted.pfns().iter().all(|p| p.is_valid() && p.is_write()));
///
/// let (_state, pages) = faulted.split();
/// let mut buf = [0u8; 5];
/// pages.page(0).ok_or(EFAULT)?.read(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
///
/// // Not page-aligned, or outside what the notifier watches.
/// assert!(Range::new(&notifier, addr + 8, addr + PAGE, None).is_err());
/// assert!(Range::new(&notifier, addr, addr + 3 * PAGE, None).is_err());
/// # Ok::<(), Error>(())
/// ```
pub struct Range<'a, N: SeqNotifier> {
    notifier: &'a N,
    raw: ffi::hmm_range,
    pfns: KVec<u64>,
}

/// The answer to a request: valid PFNs and the notifier lock that keeps
/// them valid. Dropping it releases the lock.
///
/// The fields are private: the pages behind the PFNs are only reachable
/// as [`GuardedPages`] that borrow it ([`Self::split`]), so none outlives
/// the lock. The PFNs themselves ([`Self::pfns`]) are numbers.
///
/// # Invariants
///
/// `state` was validated by `lock_valid()` for a sequence taken before
/// `hmm_range_fault()` filled `pfns`, for the range from `start`, which
/// lies inside the notifier's interval `interval` (first, last).
///
/// # Examples
///
/// A device fault that maps a page in the device: the mapping goes into the
/// notifier state under the lock that validated the PFN, and the CPU's
/// munmap later takes it out through the notifier.
///
/// ```
/// use rust_hmm::hmm::{Fault, Mode, Range};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(1, true)?;
/// // The state is the PFN the device maps, dropped by any invalidation.
/// let notifier = kunit_mm::notifier_with(&mm, addr, PAGE, |mapped: &mut Option<u64>, _| {
///     *mapped = None;
/// })?;
/// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
/// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
/// let pfn = faulted.pfns()[0].pfn();
/// *faulted.state_mut() = Some(pfn);
/// drop(faulted); // releases the notifier lock
/// assert_eq!(*notifier.lock(), Some(pfn));
/// kunit_mm::munmap(addr, 1)?;
/// assert_eq!(*notifier.lock(), None);
/// # Ok::<(), Error>(())
/// ```
pub struct Faulted<'a, N: SeqNotifier> {
    state: Guard<'a, N::Locked, MutexBackend>,
    pfns: &'a [Pfn],
    start: usize,
    interval: (usize, usize),
}

impl<'a, N: SeqNotifier> Faulted<'a, N> {
    /// The notifier state (the device page table), locked.
    ///
    /// # Examples
    ///
    /// A write fault on a page that mapped the zero page breaks its COW: the
    /// notifier saw that invalidation, and the request was retried past it.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// // The state counts invalidations.
    /// let notifier = kunit_mm::notifier_with(&mm, addr, PAGE, |calls: &mut u32, _| *calls += 1)?;
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// assert_eq!(*range.fault(Fault::Read, Mode::Locked)?.state(), 0);
    /// let faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// assert_eq!(*faulted.state(), 1);
    /// assert!(faulted.pfns()[0].is_write());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn state(&self) -> &N::State {
        N::state_ref(&self.state)
    }

    /// The notifier state, to install what the PFNs say.
    ///
    /// # Examples
    ///
    /// Installing what the PFNs say, here how many pages the device may write.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// // The state: pages the device maps writable, all dropped on invalidation.
    /// let notifier = kunit_mm::notifier_with(&mm, addr, 2 * PAGE, |w: &mut usize, _| *w = 0)?;
    /// kunit_mm::write_user(addr + PAGE, b"cpu")?;
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Read, Mode::Locked)?;
    /// let writable = faulted.pfns().iter().filter(|p| p.is_write()).count();
    /// *faulted.state_mut() = writable;
    /// assert_eq!(*faulted.state(), 1); // the zero page is read-only
    /// # Ok::<(), Error>(())
    /// ```
    pub fn state_mut(&mut self) -> &mut N::State {
        N::state_of(&mut self.state)
    }

    /// One entry per page of the range.
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(4, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, 4 * PAGE)?;
    /// // One entry per page, in address order.
    /// let mut range = Range::new(&notifier, addr + PAGE, addr + 4 * PAGE, None)?;
    /// let faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// assert_eq!(faulted.pfns().len(), 3);
    /// assert!(faulted.pfns().iter().all(|p| p.is_valid() && p.is_write()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn pfns(&self) -> &[Pfn] {
        self.pfns
    }

    /// The state and the pages at once: the state to change, the pages to
    /// put in it, valid for as long as both are borrowed.
    ///
    /// # Examples
    ///
    /// A device page table in the state, filled from the pages it is given:
    /// both are borrowed from `faulted` at once.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// # kunit_mm::write_user(addr + PAGE, b"cpu")?;
    /// let notifier = kunit_mm::notifier_with(&mm, addr, 2 * PAGE, |pt: &mut [u64; 2], _| {
    ///     *pt = [0; 2];
    /// })?;
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
    /// let mut faulted = range.fault(Fault::None, Mode::Locked)?;
    /// let (pt, pages) = faulted.split();
    /// for (i, slot) in pt.iter_mut().enumerate() {
    ///     *slot = pages.page(i).map_or(0, |p| p.pfn());
    /// }
    /// assert_eq!(pt[0], 0); // untouched: nothing to map
    /// assert_eq!(pt[1], pages.pfns()[1].pfn());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn split(&mut self) -> (&mut N::State, FaultedPfns<'_>) {
        let state = N::state_of(&mut self.state);
        let pfns = FaultedPfns {
            pfns: self.pfns,
            start: self.start,
            interval: self.interval,
            tie: Tie::of(&raw const *state),
        };
        (state, pfns)
    }
}

/// The pages of a [`Faulted`], borrowed from it together with its lock.
///
/// # Invariants
///
/// As for [`Faulted`], whose lock is held for `'b`; `tie` is its state.
///
/// # Examples
///
/// The pages are `Copy`: a helper can take them by value, and the caller
/// still has them.
///
/// ```
/// use rust_hmm::hmm::{Fault, FaultedPfns, Mode, Range};
/// # use rust_hmm::kunit_mm::{self, PAGE};
///
/// /// Copies the first byte of every valid page to `out`; returns how many.
/// fn first_bytes(pages: FaultedPfns<'_>, out: &mut [u8]) -> Result<usize> {
///     let mut n = 0;
///     for page in (0..pages.pfns().len()).filter_map(|i| pages.page(i)) {
///         page.read(0, out.get_mut(n..n + 1).ok_or(EINVAL)?)?;
///         n += 1;
///     }
///     Ok(n)
/// }
///
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(3, true)?;
/// # let notifier = kunit_mm::notifier(&mm, addr, 3 * PAGE)?;
/// kunit_mm::write_user(addr, b"a")?;
/// kunit_mm::write_user(addr + 2 * PAGE, b"c")?;
/// let mut range = Range::new(&notifier, addr, addr + 3 * PAGE, None)?;
/// let mut faulted = range.fault(Fault::None, Mode::Locked)?;
/// let (_, pages) = faulted.split();
/// let mut out = [0u8; 3];
/// assert_eq!(first_bytes(pages, &mut out)?, 2);
/// assert_eq!(&out[..2], b"ac");
/// assert!(pages.page(1).is_none()); // untouched
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct FaultedPfns<'b> {
    pfns: &'b [Pfn],
    start: usize,
    interval: (usize, usize),
    tie: Tie,
}

impl<'b> FaultedPfns<'b> {
    /// One entry per page of the range.
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, 2 * PAGE)?;
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (_, pages) = faulted.split();
    /// // The same entries as `faulted.pfns()`, next to the state.
    /// assert_eq!(pages.pfns().len(), 2);
    /// assert_eq!(pages.page(1).ok_or(EFAULT)?.pfn(), pages.pfns()[1].pfn());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn pfns(&self) -> &'b [Pfn] {
        self.pfns
    }

    /// Page `i` of the range, if valid: readable, and writable by the
    /// device if the CPU maps it so. A device-private page is named only
    /// (see [`GuardedPages::device_data`]).
    ///
    /// # Examples
    ///
    /// Only valid entries are pages: not an untouched page in a snapshot, nor
    /// one past the range.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, 2 * PAGE)?;
    /// kunit_mm::write_user(addr, b"cpu")?;
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
    /// let mut faulted = range.fault(Fault::None, Mode::Locked)?;
    /// let (_, pages) = faulted.split();
    /// let mut buf = [0u8; 3];
    /// pages.page(0).ok_or(EFAULT)?.read(0, &mut buf)?;
    /// assert_eq!(&buf, b"cpu");
    /// assert!(pages.page(1).is_none() && pages.page(2).is_none());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn page(&self, i: usize) -> Option<GuardedPages<'b>> {
        let p = self.pfns.get(i)?;
        if !p.is_valid() || p.is_error() {
            return None;
        }
        let kind = if p.is_device_private() {
            Kind::DevicePrivate
        } else {
            Kind::System
        };
        let addr = self.start + (i << PAGE_SHIFT);
        // SAFETY: A valid PFN under the lock held for `'b` (type invariant)
        // names a page the CPU maps at `addr`, inside the interval: freeing
        // it takes an invalidation, which waits for the lock. The CPU maps
        // it writable if `HMM_PFN_WRITE` says so (never the zero page).
        Some(unsafe { GuardedPages::new(p.pfn(), 1, addr, self.tie, kind, p.is_write()) })
    }

    /// The naturally aligned block of `1 << order` pages around page `i`,
    /// if the CPU maps it with one entry (see [`block_head`]) and the whole
    /// block lies inside the notifier's interval; addressed from its first
    /// page.
    ///
    /// # Examples
    ///
    /// A small page is a block of order 0; no PMD-sized block is mapped here.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// use rust_hmm::migrate::PMD_ORDER;
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, 2 * PAGE)?;
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (_, pages) = faulted.split();
    /// let block = pages.block(1, 0).ok_or(EFAULT)?;
    /// assert_eq!((block.pfn(), block.npages()), (pages.pfns()[1].pfn(), 1));
    /// assert!(pages.block(1, PMD_ORDER).is_none());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn block(&self, i: usize, order: u32) -> Option<GuardedPages<'b>> {
        let head = block_head(self.pfns, self.start, i, order)?;
        let size = 1usize << (order + PAGE_SHIFT);
        let addr = (self.start + (i << PAGE_SHIFT)) & !(size - 1);
        let last = addr.checked_add(size - 1)?;
        if addr < self.interval.0 || last > self.interval.1 {
            return None;
        }
        let write = self.pfns[i].is_write();
        // SAFETY: As in `page`: the CPU maps the whole block with one entry
        // of that order, inside the interval, so any change to any of its
        // pages invalidates it first, under the lock held for `'b`.
        Some(unsafe { GuardedPages::new(head, 1 << order, addr, self.tie, Kind::System, write) })
    }
}

impl<'a, N: SeqNotifier> Range<'a, N> {
    /// A request for `[start, end)`, page aligned, at most
    /// [`MAX_RANGE_PAGES`] pages, inside the notifier's interval (`EINVAL`
    /// otherwise). `owner` identifies the caller's device-private pages,
    /// which are then reported instead of migrated; with `None`, every
    /// device-private page is migrated back to system memory.
    ///
    /// # Examples
    ///
    /// `owner` decides what becomes of device-private pages: the device that
    /// owns them sees them where they are, and a request without an owner
    /// brings them back to system memory.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
    /// // Move the page to device memory (a test pool).
    /// let pool = kunit_mm::to_device(&mm, addr, 1)?;
    /// let mut mine = Range::new(&notifier, addr, addr + PAGE, Some(pool.owner()))?;
    /// assert!(mine.fault(Fault::Read, Mode::Locked)?.pfns()[0].is_device_private());
    /// let mut cpu = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// assert!(!cpu.fault(Fault::Read, Mode::Locked)?.pfns()[0].is_device_private());
    /// assert_eq!(pool.stats().in_use, 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(
        notifier: &'a N,
        start: usize,
        end: usize,
        owner: Option<PagemapOwner>,
    ) -> Result<Self> {
        let mask = (1usize << PAGE_SHIFT) - 1;
        let (first, last) = notifier.interval();
        let covered = start < end && start >= first && end - 1 <= last;
        if start & mask != 0 || end & mask != 0 || !covered {
            return Err(EINVAL);
        }
        let npages = (end - start) >> PAGE_SHIFT;
        if npages > MAX_RANGE_PAGES {
            return Err(EINVAL);
        }
        let mut pfns = KVec::with_capacity(npages, GFP_KERNEL)?;
        pfns.resize(npages, 0, GFP_KERNEL)?;
        Ok(Self {
            notifier,
            raw: ffi::hmm_range {
                notifier: notifier.raw(),
                notifier_seq: 0,
                start,
                end,
                hmm_pfns: core::ptr::null_mut(),
                default_flags: 0,
                pfn_flags_mask: 0,
                dev_private_owner: owner.map_or(core::ptr::null_mut(), PagemapOwner::as_ptr),
            },
            pfns,
        })
    }

    /// Sets what to demand of page `index` alone, over the default.
    ///
    /// # Examples
    ///
    /// A snapshot that faults only its second page in, for writing. That
    /// holds where the process has a page table: over a hole without one,
    /// `hmm_range_fault()` faults the whole hole with the strongest demand
    /// of its pages. Here the CPU's write to the page before made one.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(3, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, 3 * PAGE)?;
    /// kunit_mm::write_user(addr, b"cpu")?;
    /// let mut range = Range::new(&notifier, addr + PAGE, addr + 3 * PAGE, None)?;
    /// range.set_page_fault(1, Fault::Write)?;
    /// assert_eq!(range.set_page_fault(2, Fault::Write).err(), Some(EINVAL));
    /// let faulted = range.fault(Fault::None, Mode::Locked)?;
    /// assert!(!faulted.pfns()[0].is_valid());
    /// assert!(faulted.pfns()[1].is_valid() && faulted.pfns()[1].is_write());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn set_page_fault(&mut self, index: usize, fault: Fault) -> Result {
        *self.pfns.get_mut(index).ok_or(EINVAL)? = fault.flags();
        self.raw.pfn_flags_mask = (HMM_PFN_REQ_FAULT | ffi::HMM_PFN_REQ_WRITE) as usize;
        Ok(())
    }

    /// Runs `hmm_range_fault()` with `fault` as the default demand, retrying
    /// on `EBUSY` and on invalidations, and returns the PFNs with the
    /// notifier lock held once they are known to be current.
    ///
    /// Errors are those of `hmm_range_fault()`: `EFAULT` for an address
    /// that is not mapped or not accessible as demanded (or an mm that has
    /// exited), `EBUSY` on timeout, `EPERM`, `ENOMEM`, `EINTR`.
    ///
    /// # Examples
    ///
    /// One page that cannot be faulted fails the whole request: a hole in the
    /// range is `EFAULT`, while the page before it can be faulted alone.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, 2 * PAGE)?;
    /// kunit_mm::munmap(addr + PAGE, 1)?;
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
    /// assert_eq!(range.fault(Fault::Write, Mode::Locked).err(), Some(EFAULT));
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// assert!(range.fault(Fault::Write, Mode::Locked)?.pfns()[0].is_write());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn fault(&mut self, fault: Fault, mode: Mode) -> Result<Faulted<'_, N>> {
        let notifier = self.notifier;
        // `Mode::Unlocked` waits inside the kernel, past `read_begin()`.
        notifier.assert_unlocked();
        let start = Instant::<Monotonic>::now();
        self.raw.default_flags = fault.flags() as usize;
        let input: Option<KVec<u64>> = if self.raw.pfn_flags_mask != 0 {
            let mut v = KVec::with_capacity(self.pfns.len(), GFP_KERNEL)?;
            v.extend_from_slice(&self.pfns, GFP_KERNEL)?;
            Some(v)
        } else {
            None
        };
        loop {
            if let Some(input) = &input {
                // Restore the per-page demands that the last try overwrote.
                for (out, inp) in self.pfns.iter_mut().zip(input.iter()) {
                    *out = *inp;
                }
            }
            self.raw.hmm_pfns = self.pfns.as_mut_ptr().cast();
            // Hold a user of the mm only while faulting: the last `mmput`
            // runs exit_mmap, whose release callback takes the notifier lock.
            let mm = notifier.mm().mmget_not_zero().ok_or(EFAULT)?;
            let seq = match mode {
                Mode::Locked => {
                    let seq = notifier.read_begin_raw();
                    self.raw.notifier_seq = seq as usize;
                    let _lock = mm.mmap_read_lock();
                    // SAFETY: `raw` describes a valid range whose PFN array
                    // has one entry per page; the notifier is inserted, and
                    // the mm has users and is read-locked.
                    let ret = unsafe { ffi::hmm_range_fault(&mut self.raw) };
                    if ret == EBUSY.to_errno() {
                        if start.elapsed().as_millis() > i64::from(ffi::HMM_RANGE_DEFAULT_TIMEOUT) {
                            return Err(EBUSY);
                        }
                        continue;
                    }
                    kernel::error::to_result(ret)?;
                    seq
                }
                Mode::Unlocked { timeout_ms } => {
                    let timeout = kernel::time::msecs_to_jiffies(timeout_ms);
                    // SAFETY: As above; this variant takes the mmap lock
                    // itself and must be called without it.
                    let ret =
                        unsafe { ffi::hmm_range_fault_unlocked_timeout(&mut self.raw, timeout) };
                    kernel::error::to_result(ret)?;
                    self.raw.notifier_seq as u64
                }
            };
            drop(mm);
            if let Some(state) = notifier.lock_valid(seq)? {
                let pfns = self.pfns.as_slice();
                // SAFETY: `Pfn` is a transparent `u64`.
                let pfns = unsafe { &*(core::ptr::from_ref(pfns) as *const [Pfn]) };
                // INVARIANT: validated for the sequence taken before the
                // fault; `new` checked that the range is inside the interval.
                return Ok(Faulted {
                    state,
                    pfns,
                    start: self.raw.start,
                    interval: notifier.interval(),
                });
            }
            // Invalidated before the answer could be used: as for EBUSY,
            // retry only for as long as `hmm_range_fault()` would.
            if start.elapsed().as_millis() > i64::from(ffi::HMM_RANGE_DEFAULT_TIMEOUT) {
                return Err(EBUSY);
            }
        }
    }
}
