// SPDX-License-Identifier: GPL-2.0

//! Shared virtual memory: the ranges of a process address space a device
//! maps, as `drm_gpusvm` keeps them (`drivers/gpu/drm/drm_gpusvm.c`).
//!
//! A [`GpuSvm`] covers `[start, end)` of an mm. A device fault at an
//! address finds or makes the range around it ([`GpuSvm::range_find_or_insert`]):
//! the largest of the driver's chunk sizes (2 MiB, 64 KiB, 4 KiB, ...)
//! whose aligned block around the address fits inside the VMA, the SVM and
//! the notifier chunk, and overlaps no other range. Ranges are watched by
//! one interval notifier per aligned chunk of the address space
//! (`notifier_size`), made on the first fault in the chunk and removed
//! when its last range goes, so an invalidation elsewhere in the process
//! does not retry a fault here.
//!
//! All the notifiers share one *notifier lock*, which guards the driver's
//! [`GpuSvmOps::State`] (its device page table) and the ranges: a device
//! page-table update over many ranges is one critical section, as with
//! `drm_gpusvm`'s `notifier_lock`. Only the lock holds are serialized;
//! faults on disjoint ranges run `hmm_range_fault()` in parallel.
//!
//! An unmap of any part of a range drops the device's mappings of the
//! whole range and marks it unmapped; [`GpuSvm::garbage_collect`], run at
//! the start of every [`GpuSvm::range_find_or_insert`], removes such
//! ranges and the notifiers left without any, so that the next fault makes
//! ranges that fit the new VMAs. Ranges are never split: `drm_gpusvm`
//! does the same.
//!
//! # Safety contract
//!
//! What the types guarantee, so what a driver's `unsafe` code may rely on:
//! everything [`crate::hmm::Faulted`] hands out was validated under the
//! notifier lock against the notifier of its chunk while that notifier
//! was in use, and a notifier goes out of use only under the lock, after
//! [`GpuSvmOps::invalidate`] was told to drop the whole chunk. So nothing
//! the state learned from a fault outlives the notifier that keeps it
//! current, provided `invalidate` drops what it is told to.
//!
//! # Deadlocks
//!
//! The notifier lock is taken by the invalidate callbacks: the rules of
//! [`crate::mmu_notifier`] apply to it. In particular, with a guard of
//! [`GpuSvm::lock`] or a [`crate::hmm::Faulted`] alive, and inside
//! [`GpuSvmOps::invalidate`], do not allocate with `GFP_KERNEL`, fault,
//! call into this [`GpuSvm`], or drop a [`SvmRange`] (the last reference
//! to a notifier removes it, which waits for running invalidations).
//!
//! # Files
//!
//! - this file: [`GpuSvmOps`], [`GpuSvm`] and what it guards;
//! - `notifier.rs`: the notifier of one chunk and its callback;
//! - `range.rs`: ranges, their chunk sizes, [`SvmRange`] and [`RangeInfo`];
//! - `tests.rs`: the KUnit suite `rust_hmm_gpusvm`.

use crate::ffi;
use crate::hmm;
use crate::mmu_notifier::Event;
use kernel::{
    mm::{
        Mm,
        MmWithUser, //
    },
    page::PAGE_SIZE,
    prelude::*,
    rbtree::{
        RBTree,
        RBTreeNodeReservation, //
    },
    static_lock_class,
    str::CStr,
    sync::{
        aref::ARef,
        lock::{
            mutex::MutexBackend,
            Guard, //
        },
        Arc,
        Mutex, //
    },
};

mod notifier;
pub(crate) mod range;
mod tests;

pub use notifier::Notifier;
use range::{
    chunk_for,
    RangeEntry, //
};
pub use range::{
    RangeInfo,
    SvmRange, //
};

/// The notifier lock's name (see `STATE_NAME` in [`crate::mmu_notifier`]).
static LOCK_NAME: &CStr = c"GpuSvm::notifier_lock";

/// How often [`GpuSvm::range_find_or_insert`] starts over when the ranges
/// change under it, before it answers `EAGAIN`.
const INSERT_TRIES: usize = 8;

/// What a driver of a [`GpuSvm`] implements.
///
/// # Examples
///
/// A device that counts the pages it was told to drop.
///
/// ```
/// use rust_hmm::gpusvm::{GpuSvm, GpuSvmOps, Invalidation};
/// # use rust_hmm::kunit_mm::{self, PAGE};
///
/// struct Counting;
///
/// impl GpuSvmOps for Counting {
///     type State = usize;
///
///     fn invalidate(&self, dropped: &mut usize, inv: &Invalidation) {
///         *dropped += (inv.end() - inv.start()) / PAGE;
///     }
/// }
///
/// # let mm = kunit_mm::attach()?;
/// let addr = kunit_mm::mmap_aligned(16, 64 * 1024)?;
/// let svm = GpuSvm::new(&mm, 0, 1 << 47, 1 << 21, kunit_mm::SVM_SIZES, Counting, 0);
/// let svm = KBox::pin_init(svm, GFP_KERNEL)?;
/// drop(svm.range_find_or_insert(addr)?);
/// kunit_mm::munmap(addr, 1)?;
/// // The whole 64 KiB range, though one page went.
/// assert_eq!(*svm.lock().state(), 16);
/// # Ok::<(), Error>(())
/// ```
pub trait GpuSvmOps: Send + Sync + Sized {
    /// What the notifier lock guards for the driver: its device page table.
    type State: Send + Unpin;

    /// Drop the device's mappings of `inv`'s range. Runs with the notifier
    /// lock held: for a CPU invalidation, after the sequence of the chunk's
    /// notifier has advanced; also when the layer forgets a range or a
    /// notifier. Must not sleep unless [`Invalidation::blockable`].
    fn invalidate(&self, state: &mut Self::State, inv: &Invalidation);
}

/// A range of one chunk whose device mappings must go.
///
/// # Examples
///
/// An munmap of one page of a 64 KiB range reaches the driver as the
/// whole range, blockable, for [`Event::Unmap`].
///
/// ```
/// use rust_hmm::mmu_notifier::Event;
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// let addr = kunit_mm::mmap_aligned(16, 64 * 1024)?;
/// let svm = kunit_mm::svm(&mm)?;
/// drop(svm.range_find_or_insert(addr)?);
/// kunit_mm::munmap(addr + PAGE, 1)?;
/// let inv = svm.lock().state().last.ok_or(EINVAL)?;
/// assert_eq!((inv.start(), inv.end()), (addr, addr + 16 * PAGE));
/// assert_eq!(inv.event(), Event::Unmap);
/// assert!(inv.blockable());
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invalidation {
    start: usize,
    end: usize,
    event: Event,
    blockable: bool,
}

impl Invalidation {
    /// First address.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_aligned(16, 64 * 1024)?;
    /// # let svm = kunit_mm::svm(&mm)?;
    /// drop(svm.range_find_or_insert(addr + 4 * PAGE)?);
    /// kunit_mm::munmap(addr + 8 * PAGE, 8)?;
    /// // The range starts at `addr`, before the unmap.
    /// assert_eq!(svm.lock().state().last.map(|i| i.start()), Some(addr));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn start(&self) -> usize {
        self.start
    }

    /// End (exclusive).
    ///
    /// # Examples
    ///
    /// A CPU invalidation outside every range is passed on as it is,
    /// clipped to the chunk.
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_aligned(32, 64 * 1024)?;
    /// # let svm = kunit_mm::svm(&mm)?;
    /// drop(svm.range_find_or_insert(addr)?);
    /// kunit_mm::munmap(addr + 20 * PAGE, 2)?;
    /// let last = svm.lock().state().last.ok_or(EINVAL)?;
    /// assert_eq!((last.start(), last.end()), (addr + 20 * PAGE, addr + 22 * PAGE));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn end(&self) -> usize {
        self.end
    }

    /// Why: the CPU event, [`Event::Unmap`] when the layer removes a range
    /// or notifier, [`Event::Release`] when the [`GpuSvm`] goes.
    ///
    /// # Examples
    ///
    /// An munmap: the driver sees why its mappings go.
    ///
    /// ```
    /// use rust_hmm::mmu_notifier::Event;
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_aligned(16, 64 * 1024)?;
    /// # let svm = kunit_mm::svm(&mm)?;
    /// drop(svm.range_find_or_insert(addr)?);
    /// kunit_mm::munmap(addr, 16)?;
    /// assert_eq!(svm.lock().state().last.map(|i| i.event()), Some(Event::Unmap));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn event(&self) -> Event {
        self.event
    }

    /// Whether the callback may sleep.
    ///
    /// # Examples
    ///
    /// Only the OOM reaper's invalidations may not sleep; an munmap may.
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_aligned(16, 64 * 1024)?;
    /// # let svm = kunit_mm::svm(&mm)?;
    /// drop(svm.range_find_or_insert(addr)?);
    /// kunit_mm::munmap(addr, 1)?;
    /// assert_eq!(svm.lock().state().last.map(|i| i.blockable()), Some(true));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn blockable(&self) -> bool {
        self.blockable
    }
}

/// A chunk's notifier and how many ranges it watches.
struct Slot<T: GpuSvmOps> {
    notifier: Arc<Notifier<T>>,
    ranges: usize,
}

/// A notifier made outside the lock, and the node to keep it in.
type NewNotifier<T> = (Arc<Notifier<T>>, RBTreeNodeReservation<usize, Slot<T>>);

/// What the notifier lock of a [`GpuSvm`] guards; only the layer reaches
/// it (a driver sees its state through [`SvmGuard`] and
/// [`crate::hmm::Faulted`]).
///
/// # Invariants
///
/// - `ranges` are keyed by their last address, do not overlap, and each
///   lies inside the chunk of a notifier in `notifiers`, whose `ranges`
///   counts it.
/// - `garbage` holds the keys of the ranges marked unmapped, and only
///   those; `idle` counts the slots with no range.
/// - Every notifier in `notifiers` is inserted and has this SVM's lock.
#[doc(hidden)]
pub struct Locked<T: GpuSvmOps> {
    state: T::State,
    ranges: RBTree<usize, RangeEntry>,
    notifiers: RBTree<usize, Slot<T>>,
    garbage: RBTree<usize, ()>,
    idle: usize,
    stats: SvmStats,
}

/// Counts kept under the notifier lock.
///
/// # Examples
///
/// ```
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// let addr = kunit_mm::mmap_aligned(32, 64 * 1024)?;
/// let svm = kunit_mm::svm(&mm)?;
/// drop(svm.range_find_or_insert(addr)?);
/// drop(svm.range_find_or_insert(addr + 16 * PAGE)?);
/// kunit_mm::munmap(addr, 16)?;
/// svm.garbage_collect();
/// let stats = svm.lock().stats();
/// assert_eq!((stats.ranges, stats.notifiers), (1, 1));
/// assert_eq!((stats.ranges_inserted, stats.ranges_removed), (2, 1));
/// assert_eq!((stats.invalidations, stats.partial_unmaps), (1, 0));
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SvmStats {
    /// Ranges now.
    pub ranges: usize,
    /// Notifiers now.
    pub notifiers: usize,
    /// Ranges made since the start.
    pub ranges_inserted: u64,
    /// Ranges removed by the garbage collector.
    pub ranges_removed: u64,
    /// Notifiers removed.
    pub notifiers_removed: u64,
    /// CPU invalidations that reached a notifier.
    pub invalidations: u64,
    /// Of those, how many marked a range unmapped without covering it.
    pub partial_unmaps: u64,
}

impl<T: GpuSvmOps> Locked<T> {
    /// Marks the ranges overlapping `[start, end)` invalidated and, for an
    /// unmap, unmapped; returns the span the device must drop: the
    /// invalidation widened to the whole of every range it unmaps.
    fn mark(&mut self, start: usize, end: usize, unmap: bool) -> (usize, usize) {
        let (mut lo, mut hi) = (start, end);
        let Self {
            ranges,
            garbage,
            stats,
            ..
        } = self;
        let mut cursor = ranges.cursor_lower_bound_mut(&start);
        while let Some(mut c) = cursor {
            let (&last, r) = c.current_mut();
            if r.start >= end {
                break;
            }
            if unmap && !r.unmapped {
                r.unmapped = true;
                if start > r.start || end <= last {
                    r.partial = true;
                    stats.partial_unmaps += 1;
                }
                lo = lo.min(r.start);
                hi = hi.max(r.end);
                if let Some(node) = r.gc.take() {
                    garbage.insert(node.into_node(last, ()));
                }
            }
            cursor = c.move_next();
        }
        (lo, hi)
    }

    /// Whether any range overlaps `[start, end)`.
    fn overlaps(&self, start: usize, end: usize) -> bool {
        self.ranges
            .cursor_lower_bound(&start)
            .is_some_and(|c| c.current().1.start < end)
    }

    /// The range that contains `addr`.
    fn range_at(&self, addr: usize) -> Option<&RangeEntry> {
        let key = *self.ranges.cursor_lower_bound(&addr)?.current().0;
        self.ranges.get(&key).filter(|r| r.start <= addr)
    }

    /// Whether `notifier` is the one in use for its chunk.
    fn in_use(&self, notifier: &Notifier<T>) -> bool {
        self.notifiers
            .get(&notifier.start())
            .is_some_and(|s| core::ptr::eq(&*s.notifier, notifier))
    }
}

/// Shared virtual memory over part of a process address space: ranges,
/// their notifiers, and the driver's state under the notifier lock.
///
/// # Invariants
///
/// - Every notifier in `lock.notifiers` points back to this object, which
///   is pinned and removes them all before its fields go (`drop`).
/// - References to notifiers outside `lock.notifiers` live only in
///   [`SvmRange`]s, which borrow this object.
/// - `chunk_sizes` descend, are powers of two, end with `PAGE_SIZE`, and
///   none exceeds `notifier_size` (a power of two) or
///   [`hmm::MAX_RANGE_PAGES`] pages.
///
/// # Examples
///
/// A device that maps pages of a process: its state is the set of pages it
/// maps; a fault maps a range, an unmap of part of it drops the whole
/// range, and the next fault makes a range that fits what is left.
///
/// ```
/// use rust_hmm::gpusvm::{GpuSvm, GpuSvmOps, Invalidation};
/// use rust_hmm::hmm::{Fault, Mode};
/// # use rust_hmm::kunit_mm::{self, PAGE};
///
/// struct Device;
///
/// impl GpuSvmOps for Device {
///     /// The first and last address of every range the device maps.
///     type State = KVec<(usize, usize)>;
///
///     fn invalidate(&self, mapped: &mut Self::State, inv: &Invalidation) {
///         mapped.retain(|&mut (s, l)| l < inv.start() || s >= inv.end());
///     }
/// }
///
/// const SIZES: &[usize] = &[64 * 1024, PAGE];
/// # let mm = kunit_mm::attach()?;
/// // 16 pages, aligned to 64 KiB.
/// let addr = kunit_mm::mmap_aligned(16, 64 * 1024)?;
/// let svm = GpuSvm::new(&mm, 0, 1 << 47, 1 << 21, SIZES, Device, KVec::new());
/// let svm = KBox::pin_init(svm, GFP_KERNEL)?;
///
/// let range = svm.range_find_or_insert(addr + PAGE)?;
/// assert_eq!((range.start(), range.end()), (addr, addr + 16 * PAGE));
/// let mut hmm_range = range.hmm_range(None)?;
/// let mut faulted = hmm_range.fault(Fault::Write, Mode::Locked)?;
/// faulted.state_mut().push((range.start(), range.end() - 1), GFP_NOWAIT)?;
/// drop(faulted);
/// drop(hmm_range);
/// drop(range);
///
/// kunit_mm::munmap(addr + 15 * PAGE, 1)?;
/// assert!(svm.lock().state().is_empty());
/// // The unmapped range went; the VMA is now too small for 64 KiB.
/// let range = svm.range_find_or_insert(addr)?;
/// assert_eq!((range.start(), range.end()), (addr, addr + PAGE));
/// assert_eq!(svm.lock().stats().ranges_removed, 1);
/// # Ok::<(), Error>(())
/// ```
#[pin_data(PinnedDrop)]
pub struct GpuSvm<T: GpuSvmOps> {
    #[pin]
    lock: Mutex<Locked<T>>,
    ops: T,
    mm: ARef<Mm>,
    start: usize,
    end: usize,
    notifier_size: usize,
    chunk_sizes: &'static [usize],
}

// SAFETY: The notifiers are reached through the lock or, in `SvmRange`,
// through `Arc`s of `Sync` notifiers; `T` is `Send + Sync`.
unsafe impl<T: GpuSvmOps> Send for GpuSvm<T> {}
// SAFETY: See `Send`; shared access goes through the mutex.
unsafe impl<T: GpuSvmOps> Sync for GpuSvm<T> {}

/// A read-only view of a [`GpuSvm`] under its notifier lock.
///
/// As [`crate::mmu_notifier::LockedState`]: what the state holds while the
/// guard lives is current; changes go through a validated fault.
///
/// # Examples
///
/// ```
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_aligned(16, 64 * 1024)?;
/// let svm = kunit_mm::svm(&mm)?;
/// drop(svm.range_find_or_insert(addr)?);
/// let guard = svm.lock();
/// assert_eq!(guard.stats().ranges, 1);
/// assert_eq!(guard.state().calls, 0); // nothing invalidated yet
/// # Ok::<(), Error>(())
/// ```
pub struct SvmGuard<'a, T: GpuSvmOps> {
    guard: Guard<'a, Locked<T>, MutexBackend>,
}

impl<T: GpuSvmOps> SvmGuard<'_, T> {
    /// The driver's state.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_aligned(16, 64 * 1024)?;
    /// let svm = kunit_mm::svm(&mm)?;
    /// drop(svm.range_find_or_insert(addr)?);
    /// kunit_mm::munmap(addr, 16)?;
    /// assert_eq!(svm.lock().state().calls, 1);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn state(&self) -> &T::State {
        let locked: &Locked<T> = &self.guard;
        &locked.state
    }

    /// The counts.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_aligned(16, 64 * 1024)?;
    /// let svm = kunit_mm::svm(&mm)?;
    /// assert_eq!(svm.lock().stats().notifiers, 0);
    /// drop(svm.range_find_or_insert(addr)?);
    /// assert_eq!(svm.lock().stats().notifiers, 1);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn stats(&self) -> SvmStats {
        self.guard.stats
    }

    /// The range that contains `addr`, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_aligned(16, 64 * 1024)?;
    /// let svm = kunit_mm::svm(&mm)?;
    /// assert_eq!(svm.lock().range_at(addr), None);
    /// drop(svm.range_find_or_insert(addr + PAGE)?);
    /// let info = svm.lock().range_at(addr + 15 * PAGE).ok_or(EINVAL)?;
    /// assert_eq!((info.start, info.end), (addr, addr + 16 * PAGE));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn range_at(&self, addr: usize) -> Option<RangeInfo> {
        self.guard.range_at(addr).map(RangeEntry::info)
    }

    /// The ranges from the one that contains or follows `addr`, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// let addr = kunit_mm::mmap_aligned(18, 64 * 1024)?;
    /// let svm = kunit_mm::svm(&mm)?;
    /// drop(svm.range_find_or_insert(addr + 17 * PAGE)?);
    /// drop(svm.range_find_or_insert(addr)?);
    /// let guard = svm.lock();
    /// let mut it = guard.ranges_from(addr + PAGE);
    /// assert_eq!(it.next().map(|r| r.end), Some(addr + 16 * PAGE));
    /// assert_eq!(it.next().map(|r| r.start), Some(addr + 17 * PAGE));
    /// assert!(it.next().is_none());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn ranges_from(&self, addr: usize) -> impl Iterator<Item = RangeInfo> + '_ {
        let mut cursor = self.guard.ranges.cursor_lower_bound(&addr);
        core::iter::from_fn(move || {
            let c = cursor.take()?;
            let info = c.current().1.info();
            cursor = c
                .peek_next()
                .map(|(k, _)| *k)
                .and_then(|k| self.guard.ranges.cursor_lower_bound(&k));
            Some(info)
        })
    }
}

impl<T: GpuSvmOps> GpuSvm<T> {
    /// An SVM over `[start, end)` of `mm`, with notifiers over aligned
    /// chunks of `notifier_size` bytes and ranges of `chunk_sizes`.
    ///
    /// `EINVAL` unless the bounds are page aligned and ordered, and the
    /// sizes are powers of two, `chunk_sizes` in descending order ending
    /// with the page size, none larger than `notifier_size` or
    /// [`hmm::MAX_RANGE_PAGES`] pages.
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::gpusvm::{GpuSvm, GpuSvmOps, Invalidation};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    ///
    /// struct Nothing;
    ///
    /// impl GpuSvmOps for Nothing {
    ///     type State = ();
    ///     fn invalidate(&self, _state: &mut (), _inv: &Invalidation) {}
    /// }
    ///
    /// # let mm = kunit_mm::attach()?;
    /// let new = |n, sizes| {
    ///     KBox::pin_init(GpuSvm::new(&mm, 0, 1 << 40, n, sizes, Nothing, ()), GFP_KERNEL)
    /// };
    /// assert!(new(1 << 21, &[1 << 21, 1 << 16, PAGE]).is_ok());
    /// // Not ending with a page, ascending, larger than a notifier.
    /// assert_eq!(new(1 << 21, &[1 << 21]).err(), Some(EINVAL));
    /// assert_eq!(new(1 << 21, &[PAGE, 1 << 16]).err(), Some(EINVAL));
    /// assert_eq!(new(1 << 16, &[1 << 21, PAGE]).err(), Some(EINVAL));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(
        mm: &MmWithUser,
        start: usize,
        end: usize,
        notifier_size: usize,
        chunk_sizes: &'static [usize],
        ops: T,
        state: T::State,
    ) -> impl PinInit<Self, Error> + use<T> {
        let mm: ARef<Mm> = ARef::from(&**mm);
        let valid = Self::valid_config(start, end, notifier_size, chunk_sizes);
        try_pin_init!(&this in Self {
            lock <- Mutex::new(
                Locked {
                    state,
                    ranges: RBTree::new(),
                    notifiers: RBTree::new(),
                    garbage: RBTree::new(),
                    idle: 0,
                    stats: SvmStats::default(),
                },
                LOCK_NAME,
                static_lock_class!()
            ),
            ops,
            mm,
            start,
            end,
            notifier_size,
            chunk_sizes: if valid { chunk_sizes } else { return Err(EINVAL) },
            _: {
                // SAFETY: `lock` was initialised in place above; the helper
                // only makes lockdep annotations (see `IntervalNotifier`).
                unsafe { ffi::rust_hmm_prime_reclaim(Self::lock_ptr(&(*this.as_ptr()).lock)) };
            },
        })
    }

    fn valid_config(start: usize, end: usize, notifier_size: usize, sizes: &[usize]) -> bool {
        let max = hmm::MAX_RANGE_PAGES * PAGE_SIZE;
        let pow2 = |s: usize| s.is_power_of_two() && s >= PAGE_SIZE;
        start % PAGE_SIZE == 0
            && end % PAGE_SIZE == 0
            && start < end
            && pow2(notifier_size)
            && sizes.last() == Some(&PAGE_SIZE)
            && sizes.windows(2).all(|w| w[0] > w[1])
            && sizes
                .iter()
                .all(|&s| pow2(s) && s <= notifier_size && s <= max)
    }

    /// The kernel's mutex inside `lock`, for lockdep.
    fn lock_ptr(lock: *const Mutex<Locked<T>>) -> *mut kernel::bindings::mutex {
        // `Lock` is `repr(C)` with the kernel's lock as its first field.
        lock.cast_mut().cast()
    }

    /// On lockdep kernels, warns if the current task holds the lock.
    fn assert_unlocked(&self) {
        // SAFETY: The mutex is initialised and lives as long as `self`.
        unsafe { ffi::lockdep_assert_not_held(Self::lock_ptr(&self.lock)) };
    }

    /// The driver's callbacks.
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::kunit_mm::SvmRecorder;
    /// # let mm = rust_hmm::kunit_mm::attach()?;
    /// let svm = rust_hmm::kunit_mm::svm(&mm)?;
    /// let _ops: &SvmRecorder = svm.ops();
    /// # Ok::<(), Error>(())
    /// ```
    pub fn ops(&self) -> &T {
        &self.ops
    }

    /// The mm (held with `mmgrab`).
    ///
    /// # Examples
    ///
    /// ```
    /// # let mm = rust_hmm::kunit_mm::attach()?;
    /// let svm = rust_hmm::kunit_mm::svm(&mm)?;
    /// assert_eq!(svm.mm().as_raw(), mm.as_raw());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn mm(&self) -> &Mm {
        &self.mm
    }

    /// The owner cookie of the SVM's device-exclusive conversions
    /// ([`crate::device_exclusive`] through an [`SvmRange`]'s notifier):
    /// their events are filtered out, as [`crate::mmu_notifier`] does.
    ///
    /// # Examples
    ///
    /// A device atomic through a range's notifier: the SVM is not
    /// invalidated by its own conversion; the CPU's next access is.
    ///
    /// ```
    /// use rust_hmm::device_exclusive::exclusive_session;
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// let addr = kunit_mm::mmap_aligned(16, 64 * 1024)?;
    /// kunit_mm::write_user(addr, &[0; 8])?;
    /// let svm = kunit_mm::svm(&mm)?;
    /// let range = svm.range_find_or_insert(addr)?;
    /// let old = exclusive_session(range.notifier(), |s| {
    ///     s.map(addr, |_, page| page.fetch_add_u64(0, 5))
    /// })?;
    /// assert_eq!(old, 0);
    /// assert_eq!(svm.lock().state().calls, 0);
    /// kunit_mm::read_user(addr, &mut [0u8; 8])?;
    /// assert_eq!(svm.lock().state().calls, 1);
    /// assert!(!svm.owner().is_null());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn owner(&self) -> *const core::ffi::c_void {
        core::ptr::from_ref(self).cast()
    }

    /// Takes the notifier lock to read the state and the ranges.
    ///
    /// # Examples
    ///
    /// ```
    /// # let mm = rust_hmm::kunit_mm::attach()?;
    /// let svm = rust_hmm::kunit_mm::svm(&mm)?;
    /// assert_eq!(svm.lock().stats().ranges, 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn lock(&self) -> SvmGuard<'_, T> {
        SvmGuard {
            guard: self.lock.lock(),
        }
    }

    /// The range around `addr`, made if there is none
    /// (`drm_gpusvm_range_find_or_insert()`), with the notifier of its
    /// chunk held for it. Collects garbage first.
    ///
    /// `EINVAL` if `addr` lies outside the SVM, `EFAULT` if no VMA holds it
    /// or the mm is gone, `EAGAIN` if the ranges kept changing under it.
    ///
    /// # Examples
    ///
    /// Ranges get the largest size that fits the VMA: here 64 KiB, then,
    /// beyond the last aligned 64 KiB of the mapping, single pages.
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// let addr = kunit_mm::mmap_aligned(17, 64 * 1024)?;
    /// let svm = kunit_mm::svm(&mm)?;
    /// let r = svm.range_find_or_insert(addr + 3 * PAGE)?;
    /// assert_eq!((r.start(), r.end()), (addr, addr + 16 * PAGE));
    /// let r = svm.range_find_or_insert(addr + 16 * PAGE)?;
    /// assert_eq!((r.start(), r.end()), (addr + 16 * PAGE, addr + 17 * PAGE));
    /// assert_eq!(svm.range_find_or_insert(addr + 17 * PAGE).err(), Some(EFAULT));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn range_find_or_insert(&self, addr: usize) -> Result<SvmRange<'_, T>> {
        if addr < self.start || addr >= self.end {
            return Err(EINVAL);
        }
        self.assert_unlocked();
        for _ in 0..INSERT_TRIES {
            self.garbage_collect();
            if let Some(range) = self.try_insert(addr)? {
                return Ok(range);
            }
        }
        Err(EAGAIN)
    }

    /// One try of [`Self::range_find_or_insert`]; `None`: start over.
    fn try_insert(&self, addr: usize) -> Result<Option<SvmRange<'_, T>>> {
        let mm = self.mm.mmget_not_zero().ok_or(EFAULT)?;
        let vma = hmm::next_vma(&mm, addr)
            .filter(|v| v.start <= addr)
            .ok_or(EFAULT)?;
        let chunk = addr & !(self.notifier_size - 1);
        let range_node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let gc_node = RBTreeNodeReservation::new(GFP_KERNEL)?;
        let has_notifier = self.lock.lock().notifiers.get(&chunk).is_some();
        let mut new = None;
        if !has_notifier {
            let n = Arc::pin_init(
                Notifier::new(self, &mm, chunk, self.notifier_size),
                GFP_KERNEL,
            )?;
            new = Some((n, RBTreeNodeReservation::new(GFP_KERNEL)?));
        }
        drop(mm);
        let fit = [
            vma,
            chunk..chunk.saturating_add(self.notifier_size),
            self.start..self.end,
        ];
        let mut spare = None;
        let result = self.insert_locked(addr, &fit, range_node, gc_node, new, &mut spare);
        // A notifier another fault installed first: removed only now,
        // outside the lock its removal may wait for.
        drop(spare);
        result
    }

    fn insert_locked(
        &self,
        addr: usize,
        fit: &[core::ops::Range<usize>; 3],
        range_node: RBTreeNodeReservation<usize, RangeEntry>,
        gc_node: RBTreeNodeReservation<usize, ()>,
        new: Option<NewNotifier<T>>,
        spare: &mut Option<Arc<Notifier<T>>>,
    ) -> Result<Option<SvmRange<'_, T>>> {
        let chunk = fit[1].start;
        let mut l = self.lock.lock();
        if let Some((notifier, node)) = new {
            if l.notifiers.get(&chunk).is_some() {
                *spare = Some(notifier);
            } else {
                l.notifiers.insert(node.into_node(
                    chunk,
                    Slot {
                        notifier,
                        ranges: 0,
                    },
                ));
                l.idle += 1;
                l.stats.notifiers += 1;
            }
        }
        // A notifier removed since we looked: start over.
        let Some(notifier) = l.notifiers.get(&chunk).map(|s| s.notifier.clone()) else {
            return Ok(None);
        };
        if let Some(r) = l.range_at(addr) {
            // An unmapped range waits for the collector: start over.
            return Ok((!r.unmapped).then(|| SvmRange::new(self, notifier, r.start, r.end)));
        }
        let lo = fit.iter().map(|f| f.start).max().unwrap_or(0);
        let hi = fit.iter().map(|f| f.end).min().unwrap_or(0);
        let (start, end) =
            chunk_for(addr, self.chunk_sizes, lo..hi, |s, e| !l.overlaps(s, e)).ok_or(EFAULT)?;
        l.ranges
            .insert(range_node.into_node(end - 1, RangeEntry::new(start, end, gc_node)));
        let slot = l.notifiers.get_mut(&chunk).ok_or(EINVAL)?;
        slot.ranges += 1;
        if slot.ranges == 1 {
            l.idle -= 1;
        }
        l.stats.ranges += 1;
        l.stats.ranges_inserted += 1;
        Ok(Some(SvmRange::new(self, notifier, start, end)))
    }

    /// Removes the ranges an unmap marked, telling the driver to drop
    /// their mappings, then the notifiers left without a range
    /// (`drm_gpusvm_range_remove()`, `drm_gpusvm_notifier_remove()`).
    /// Returns how many ranges went.
    ///
    /// Runs at the start of [`Self::range_find_or_insert`]; a driver calls
    /// it too when it wants the memory back sooner.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// let addr = kunit_mm::mmap_aligned(16, 64 * 1024)?;
    /// let svm = kunit_mm::svm(&mm)?;
    /// drop(svm.range_find_or_insert(addr)?);
    /// assert_eq!(svm.garbage_collect(), 0);
    /// kunit_mm::munmap(addr, 1)?;
    /// assert!(svm.lock().range_at(addr + PAGE).is_some_and(|r| r.unmapped));
    /// assert_eq!(svm.garbage_collect(), 1);
    /// assert_eq!(svm.lock().stats().notifiers, 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn garbage_collect(&self) -> usize {
        self.assert_unlocked();
        let mut removed = 0;
        loop {
            let gone = {
                let mut l = self.lock.lock();
                removed += self.collect_ranges(&mut l);
                self.take_idle_notifier(&mut l)
            };
            // Outside the lock: the removal waits for running callbacks.
            match gone {
                Some(notifier) => drop(notifier),
                None => return removed,
            }
        }
    }

    fn collect_ranges(&self, l: &mut Locked<T>) -> usize {
        let mut removed = 0;
        let Locked {
            state,
            ranges,
            notifiers,
            garbage,
            idle,
            stats,
        } = l;
        while let Some(c) = garbage.cursor_front_mut() {
            let (key, ()) = c.remove_current().1.to_key_value();
            let Some(r) = ranges.remove(&key) else {
                continue;
            };
            let inv = Invalidation {
                start: r.start,
                end: r.end,
                event: Event::Unmap,
                blockable: true,
            };
            self.ops.invalidate(state, &inv);
            let chunk = r.start & !(self.notifier_size - 1);
            if let Some(slot) = notifiers.get_mut(&chunk) {
                slot.ranges -= 1;
                if slot.ranges == 0 {
                    *idle += 1;
                }
            }
            stats.ranges -= 1;
            stats.ranges_removed += 1;
            removed += 1;
        }
        removed
    }

    /// Takes one notifier with no range out of use, after the driver was
    /// told to drop everything in its chunk.
    fn take_idle_notifier(&self, l: &mut Locked<T>) -> Option<Arc<Notifier<T>>> {
        if l.idle == 0 {
            return None;
        }
        let chunk = *l.notifiers.iter().find(|(_, s)| s.ranges == 0)?.0;
        let slot = l.notifiers.remove(&chunk)?;
        let inv = Invalidation {
            start: chunk,
            end: chunk.saturating_add(self.notifier_size),
            event: Event::Unmap,
            blockable: true,
        };
        self.ops.invalidate(&mut l.state, &inv);
        l.idle -= 1;
        l.stats.notifiers -= 1;
        l.stats.notifiers_removed += 1;
        Some(slot.notifier)
    }

    /// The callback of `notifier`, a notifier of this SVM; `false` if it
    /// would have to sleep and may not.
    fn invalidate(
        &self,
        notifier: &Notifier<T>,
        range: &crate::mmu_notifier::NotifierRange<'_>,
        cur_seq: u64,
    ) -> bool {
        // Our own device-exclusive conversion: its caller is about to
        // install the entry under a sequence this must not invalidate.
        if range.event() == Event::Exclusive && range.owner() == self.owner() {
            return true;
        }
        let blockable = range.blockable();
        let mut guard = if blockable {
            self.lock.lock()
        } else {
            match self.lock.try_lock() {
                Some(guard) => guard,
                None => return false,
            }
        };
        // Through `Deref`: in the kernel crate, `Guard`'s own fields would
        // shadow those of what it guards.
        let l: &mut Locked<T> = &mut guard;
        // SAFETY: The notifier is inserted and the lock it validates under
        // is held.
        unsafe { notifier.set_seq(cur_seq) };
        let (first, last) = notifier.interval();
        let start = range.start().max(first);
        let end = range.end().min(last.saturating_add(1));
        let event = range.event();
        let (start, end) = l.mark(start, end, matches!(event, Event::Unmap | Event::Release));
        l.stats.invalidations += 1;
        let inv = Invalidation {
            start,
            end,
            event,
            blockable,
        };
        self.ops.invalidate(&mut l.state, &inv);
        true
    }
}

#[pinned_drop]
impl<T: GpuSvmOps> PinnedDrop for GpuSvm<T> {
    fn drop(self: Pin<&mut Self>) {
        self.assert_unlocked();
        let notifiers = {
            let mut l = self.lock.lock();
            let Locked {
                state, notifiers, ..
            } = &mut *l;
            for (&chunk, _) in notifiers.iter() {
                let inv = Invalidation {
                    start: chunk,
                    end: chunk.saturating_add(self.notifier_size),
                    event: Event::Release,
                    blockable: true,
                };
                self.ops.invalidate(state, &inv);
            }
            core::mem::take(notifiers)
        };
        // No `SvmRange` is left (they borrow `self`), so these are the last
        // references: each removal waits for its callbacks in flight, which
        // still find every field alive.
        drop(notifiers);
    }
}
