// SPDX-License-Identifier: GPL-2.0

//! Interval MMU notifiers (`include/linux/mmu_notifier.h`).
//!
//! An [`IntervalNotifier`] watches a range of a process address space and
//! owns the state derived from it (a device page table). The state sits
//! behind the *notifier lock*, a mutex that the invalidate callback takes,
//! so the protocol of `mmu_interval_read_begin()` / `mmu_interval_set_seq()`
//! / `mmu_interval_read_retry()` is enforced by types:
//!
//! - the callback always bumps the sequence under the lock before it calls
//!   [`IntervalNotifierOps::invalidate`], which receives the state;
//! - [`IntervalNotifier::read_begin`] returns a [`ReadSeq`], and the only
//!   way to learn whether it is still current is
//!   [`IntervalNotifier::lock_valid`], which checks it with the lock held and
//!   returns the guard only if no invalidation ran in between. Whatever is
//!   installed under that guard is therefore never stale.
//!
//! Both the single-pass `invalidate` and 7.3's two-pass
//! `invalidate_start`/`invalidate_finish` are supported; see
//! [`IntervalNotifierOps::TWO_PASS`].
//!
//! # Safety contract
//!
//! What the types guarantee, and so what a driver's `unsafe` code may rely
//! on:
//!
//! - Every invalidation that overlaps the notifier's interval
//!   ([`IntervalNotifier::interval`]) advances the sequence under the lock
//!   before the driver sees it. None can be skipped, except the
//!   `MMU_NOTIFY_EXCLUSIVE` event of this notifier's own device-exclusive
//!   conversion, which only [`crate::device_exclusive`] can start.
//! - Outside the callbacks and [`IntervalNotifierOps::release`], the state
//!   can be changed only through a guard of [`lock_valid`]; [`lock`] only
//!   reads it.
//! - A [`lock_valid`] guard proves that nothing in the interval changed
//!   since `read_begin()` returned its [`ReadSeq`]: what was learned about
//!   the interval *after* that call is current while the guard lives. What
//!   was learned before is not covered, so this crate hands out pages only
//!   as [`crate::guarded_page::GuardedPages`] that borrow the guard that
//!   validates them ([`crate::hmm::Faulted::split`], the closure of
//!   [`crate::device_exclusive::ExclusiveSession::map`]),
//!   and the requests that produce them refuse addresses outside the
//!   interval, where the sequence never moves.
//!
//! # Deadlocks
//!
//! The notifier lock is taken by the invalidate callback, which runs from
//! reclaim, from `exit_mmap()` and under core mm locks (mmap lock, folio
//! lock, `i_mmap_rwsem`). So while a guard of [`lock`] or [`lock_valid`] is
//! held, and inside every [`IntervalNotifierOps`] callback, a driver must
//! not:
//!
//! - allocate with `GFP_KERNEL`, or touch user memory in a way that can
//!   fault (reclaim and faults invalidate, which waits for the lock);
//! - take the mmap lock of the watched mm, or drop its last user;
//! - call [`IntervalNotifier::read_begin`], [`lock`] or [`lock_valid`] on
//!   this notifier, or fault through it ([`crate::hmm::Range::fault`],
//!   [`crate::device_exclusive::exclusive_session`]): `read_begin()` waits
//!   for a running invalidation, which waits for the lock;
//! - drop an [`IntervalNotifier`] of the same mm: its removal waits for the
//!   running invalidation.
//!
//! [`IntervalNotifier::new`] must not be called with the mmap lock held
//! (the first notifier of an mm registers with that lock taken for write).
//!
//! The types rule none of these out, but lockdep reports each of them
//! without waiting for the deadlock: the lock is primed against reclaim
//! when the notifier is created (as `drm_gpusvm_init()` does), so a
//! `GFP_KERNEL` allocation under it is reported the first time it runs,
//! not only when reclaim happens to recurse into the callback;
//! `read_begin()`, a fault and `drop` assert that the notifier's own lock
//! is not held; the kernel's `mmu_notifier_invalidate_range_start` lockdep
//! map (taken around every callback, by `read_begin()` and by the removal)
//! reports the other waits, and `mmu_interval_notifier_insert()` asserts
//! that the mmap lock may be taken.
//!
//! # Files
//!
//! - this file: [`IntervalNotifierOps`], the notifier
//!   ([`IntervalNotifier`]) and its invariants, the read side of the
//!   sequence protocol ([`ReadSeq`], [`LockedState`]);
//! - `range.rs`: what an invalidation reports ([`NotifierRange`],
//!   [`Event`]);
//! - `callbacks.rs`: the `mmu_interval_notifier_ops` the kernel calls;
//! - `seq.rs`: [`SeqNotifier`], what a fault needs of a notifier, so that
//!   [`crate::hmm::Range`] serves [`crate::gpusvm`]'s notifiers too;
//! - `tests.rs`: the KUnit suite `rust_hmm_mmu_notifier`.
//!
//! [`lock`]: IntervalNotifier::lock
//! [`lock_valid`]: IntervalNotifier::lock_valid

use crate::ffi;
use core::ops::Deref;
use kernel::{
    bindings,
    error::to_result,
    mm::{
        Mm,
        MmWithUser, //
    },
    prelude::*,
    static_lock_class,
    str::CStr,
    sync::{
        aref::ARef,
        lock::{
            mutex::MutexBackend,
            Guard, //
        },
        Mutex, //
    },
    types::Opaque, //
};

mod callbacks;
mod range;
pub(crate) mod seq;
mod tests;

/// The notifier lock's name, as a `static`: one class key (a `static` of
/// `new`) serves every `T`, and lockdep WARNs when it comes with two name
/// pointers, which a literal would give once `new` (generic, and its
/// initialiser runs where it is used) is built into two crates (a driver
/// and the kernel crate's tests, in tree).
static STATE_NAME: &CStr = c"IntervalNotifier::state";

use callbacks::OpsTable;
pub use range::{
    Event,
    NotifierRange, //
};
pub use seq::SeqNotifier;

/// What a user of [`IntervalNotifier`] implements.
///
/// An implementation cannot skip an invalidation: the sequence update is
/// not the driver's to leave out. A driver that skipped its own events (as
/// `lib/test_hmm.c` skips its own migrations) would keep, and could
/// install, PFNs of pages that the event is about to free. The only event
/// filtered is this notifier's own device-exclusive conversion.
///
/// # Examples
///
/// The two-pass form, for a device that flushes its TLB outside the lock:
/// the first pass drops the mappings and hands on how many it dropped, the
/// second waits for the flush (here, counts the pages flushed).
///
/// ```
/// use core::sync::atomic::{AtomicUsize, Ordering};
/// use rust_hmm::mmu_notifier::{IntervalNotifier, IntervalNotifierOps, NotifierRange};
/// # use rust_hmm::kunit_mm::{self, PAGE};
///
/// struct Device {
///     flushed: AtomicUsize,
/// }
///
/// impl IntervalNotifierOps for Device {
///     /// Pages the device maps.
///     type State = usize;
///     /// Pages to flush from the device TLB.
///     type Finish = usize;
///     const TWO_PASS: bool = true;
///
///     fn invalidate(&self, mapped: &mut usize, _range: &NotifierRange<'_>) -> usize {
///         core::mem::take(mapped)
///     }
///
///     fn invalidate_finish(&self, pages: usize, _blockable: bool) {
///         self.flushed.fetch_add(pages, Ordering::Relaxed);
///     }
/// }
///
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(2, true)?;
/// let device = Device { flushed: AtomicUsize::new(0) };
/// // As if the device had mapped both pages.
/// let notifier = IntervalNotifier::new(&mm, addr, 2 * PAGE, device, 2);
/// let notifier = KBox::pin_init(notifier, GFP_KERNEL)?;
/// kunit_mm::munmap(addr, 2)?;
/// assert_eq!(*notifier.lock(), 0);
/// assert_eq!(notifier.ops().flushed.load(Ordering::Relaxed), 2);
/// # Ok::<(), Error>(())
/// ```
pub trait IntervalNotifierOps: Send + Sync + Sized {
    /// The state protected by the notifier lock.
    type State: Send + Unpin;
    /// Handed from the first pass to the second in the two-pass form.
    type Finish: Send;
    /// Use `invalidate_start`/`invalidate_finish` instead of `invalidate`.
    const TWO_PASS: bool = false;

    /// Invalidate `range` in `state`. Runs with the notifier lock held and
    /// the sequence already advanced. Must not sleep when
    /// `range.blockable()` is false.
    fn invalidate(&self, state: &mut Self::State, range: &NotifierRange<'_>) -> Self::Finish;

    /// Second pass, without the lock. In the two-pass form it runs after the
    /// first pass of every notifier of the mm; otherwise right after
    /// [`Self::invalidate`]. Device TLB flush waits belong here.
    ///
    /// `blockable` is the range's [`NotifierRange::blockable`]: when it is
    /// false (the OOM reaper), this must not sleep either.
    fn invalidate_finish(&self, _finish: Self::Finish, _blockable: bool) {}

    /// Whether invalidating `range` would have to sleep for the device,
    /// for example for DMA to the range that is still in flight. Asked,
    /// with the lock held, only of an invalidation that must not sleep (the
    /// OOM reaper's): if true, that one fails with `EAGAIN` and changes
    /// nothing, and the reaper comes back later. A driver whose
    /// [`Self::invalidate`] waits for its device must say so here.
    ///
    /// # Examples
    ///
    /// A device that waits in `invalidate` for work in flight; an munmap
    /// may sleep, so it is not asked and waits.
    ///
    /// ```
    /// use core::sync::atomic::{AtomicBool, Ordering};
    /// use rust_hmm::mmu_notifier::{IntervalNotifier, IntervalNotifierOps, NotifierRange};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    ///
    /// struct Device {
    ///     in_flight: AtomicBool,
    /// }
    ///
    /// impl IntervalNotifierOps for Device {
    ///     type State = ();
    ///     type Finish = ();
    ///
    ///     fn invalidate(&self, _state: &mut (), _range: &NotifierRange<'_>) {
    ///         // A real device would wait for its DMA to the range here.
    ///         self.in_flight.store(false, Ordering::Relaxed);
    ///     }
    ///
    ///     fn busy(&self, _state: &(), _range: &NotifierRange<'_>) -> bool {
    ///         self.in_flight.load(Ordering::Relaxed)
    ///     }
    /// }
    ///
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// let device = Device { in_flight: AtomicBool::new(true) };
    /// let notifier = IntervalNotifier::new(&mm, addr, PAGE, device, ());
    /// let notifier = KBox::pin_init(notifier, GFP_KERNEL)?;
    /// kunit_mm::munmap(addr, 1)?;
    /// assert!(!notifier.ops().in_flight.load(Ordering::Relaxed));
    /// # Ok::<(), Error>(())
    /// ```
    fn busy(&self, _state: &Self::State, _range: &NotifierRange<'_>) -> bool {
        false
    }

    /// Called once when the notifier is dropped, with the lock held and the
    /// notifier still inserted: the last moment at which what the state
    /// learned under the sequence protocol (PFNs) is still current, so the
    /// place to hand device writes back (`set_page_dirty()`). Once the
    /// notifier is removed, an unmap no longer waits for the lock and may
    /// free any page the state still names.
    fn release(&self, _state: &mut Self::State) {}
}

/// An `mmu_interval_notifier` inserted on an mm, with its locked state.
///
/// # Invariants
///
/// - `raw` is inserted on `mm` with the ops of `OpsTable<T>` for as long as
///   the object lives; it is removed in `drop`, which waits for running
///   callbacks.
/// - `raw.invalidate_seq` is only written with `state` locked.
/// - `raw` watches exactly `start..=last`.
///
/// # Examples
///
/// A device mirror's notifier. Its state, here how many pages the device
/// maps, is reachable only under the notifier lock; an unmap inside the
/// interval reaches `invalidate`, which drops the device's mappings.
///
/// ```
/// use rust_hmm::mmu_notifier::{IntervalNotifier, IntervalNotifierOps, NotifierRange};
/// # use rust_hmm::kunit_mm::{self, PAGE};
///
/// struct Mirror;
///
/// impl IntervalNotifierOps for Mirror {
///     type State = u64;
///     type Finish = ();
///
///     fn invalidate(&self, mapped: &mut u64, _range: &NotifierRange<'_>) {
///         *mapped = 0;
///     }
/// }
///
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(4, true)?;
/// let notifier = KBox::pin_init(
///     IntervalNotifier::new(&mm, addr, 4 * PAGE, Mirror, 0),
///     GFP_KERNEL,
/// )?;
/// let seq = notifier.read_begin();
/// // Fault the pages in, without the lock (`hmm::Range::fault` does).
/// if let Some(mut mapped) = notifier.lock_valid(seq) {
///     // No invalidation ran since `read_begin`: map them in the device.
///     *mapped = 4;
/// }
/// kunit_mm::munmap(addr, 4)?;
/// assert_eq!(*notifier.lock(), 0);
/// # Ok::<(), Error>(())
/// ```
#[pin_data(PinnedDrop)]
pub struct IntervalNotifier<T: IntervalNotifierOps> {
    #[pin]
    state: Mutex<T::State>,
    ops: T,
    mm: ARef<Mm>,
    start: usize,
    last: usize,
    // Last: the notifier goes live once inserted, so every other field must
    // be initialised by then.
    #[pin]
    raw: Opaque<bindings::mmu_interval_notifier>,
}

// SAFETY: The raw notifier is only touched through the kernel's own locking
// and the state through the mutex; `T` and `T::State` are `Send`.
unsafe impl<T: IntervalNotifierOps> Send for IntervalNotifier<T> {}
// SAFETY: See `Send`; shared access goes through the mutex or the kernel.
unsafe impl<T: IntervalNotifierOps> Sync for IntervalNotifier<T> {}

/// A sequence number from [`IntervalNotifier::read_begin`].
///
/// It can only be checked by [`IntervalNotifier::lock_valid`] on the notifier
/// that produced it.
///
/// # Examples
///
/// An invalidation between `read_begin` and `lock_valid` makes the
/// sequence stale: the driver must fault again before it maps anything.
///
/// ```
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(2, true)?;
/// # let notifier = kunit_mm::notifier(&mm, addr, 2 * PAGE)?;
/// let seq = notifier.read_begin();
/// kunit_mm::munmap(addr + PAGE, 1)?; // an invalidation inside the interval
/// assert!(notifier.lock_valid(seq).is_none());
///
/// let seq = notifier.read_begin();
/// assert!(notifier.lock_valid(seq).is_some());
/// # Ok::<(), Error>(())
/// ```
#[must_use]
pub struct ReadSeq<'a, T: IntervalNotifierOps> {
    seq: u64,
    notifier: &'a IntervalNotifier<T>,
}

impl<'a, T: IntervalNotifierOps> ReadSeq<'a, T> {
    pub(crate) fn raw(&self) -> u64 {
        self.seq
    }

    /// A sequence that the kernel took with `mmu_interval_read_begin()` on
    /// `notifier`'s behalf (`hmm_range_fault_unlocked_timeout()` does).
    pub(crate) fn from_kernel(notifier: &'a IntervalNotifier<T>, seq: u64) -> Self {
        Self { seq, notifier }
    }
}

/// The notifier lock taken by [`IntervalNotifier::lock`], outside any read
/// section: the state can be read, not changed.
///
/// Reading needs no sequence check: every invalidation removes what it
/// invalidates under this same lock, so whatever the state holds while the
/// guard lives is current. Changing it does: a value installed here could
/// have been learned before an invalidation that has already run. Changes
/// go through [`IntervalNotifier::lock_valid`]. (Interior mutability in
/// the state bypasses this; keep what the protocol protects out of it.)
///
/// # Examples
///
/// A PFN the device mapped, installed under [`IntervalNotifier::lock_valid`]
/// and read back under [`IntervalNotifier::lock`] until an unmap drops it.
///
/// ```
/// # use rust_hmm::mmu_notifier::NotifierRange;
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(1, true)?;
/// // The state is the PFN the device maps, if any; any invalidation drops it.
/// let forget = |pfn: &mut Option<u64>, _: &NotifierRange<'_>| *pfn = None;
/// let notifier = kunit_mm::notifier_with(&mm, addr, PAGE, forget)?;
/// let seq = notifier.read_begin();
/// *notifier.lock_valid(seq).ok_or(EAGAIN)? = Some(42);
/// let state = notifier.lock();
/// assert_eq!(*state, Some(42));
/// drop(state);
/// kunit_mm::munmap(addr, 1)?;
/// assert_eq!(*notifier.lock(), None);
/// # Ok::<(), Error>(())
/// ```
pub struct LockedState<'a, T: IntervalNotifierOps> {
    guard: Guard<'a, T::State, MutexBackend>,
}

impl<T: IntervalNotifierOps> Deref for LockedState<'_, T> {
    type Target = T::State;

    fn deref(&self) -> &T::State {
        &self.guard
    }
}

impl<T: IntervalNotifierOps> IntervalNotifier<T> {
    /// Inserts a notifier for `[start, start + length)` of `mm`.
    ///
    /// The notifier holds the mm with `mmgrab` (the struct stays, the address
    /// space may go): process exit reaches it as [`Event::Release`].
    /// `EOVERFLOW` for an empty interval or one that wraps around, as
    /// `mmu_interval_notifier_insert()` answers.
    ///
    /// # Deadlocks
    ///
    /// Must not be called with `mm`'s mmap lock held: the first notifier of
    /// an mm registers with that lock taken for write.
    ///
    /// # Examples
    ///
    /// An empty interval, or one that wraps around the address space, is
    /// refused before anything is inserted.
    ///
    /// ```
    /// use rust_hmm::mmu_notifier::{IntervalNotifier, IntervalNotifierOps, NotifierRange};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    ///
    /// struct Nothing;
    ///
    /// impl IntervalNotifierOps for Nothing {
    ///     type State = ();
    ///     type Finish = ();
    ///
    ///     fn invalidate(&self, _state: &mut (), _range: &NotifierRange<'_>) {}
    /// }
    ///
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// let empty = KBox::pin_init(IntervalNotifier::new(&mm, addr, 0, Nothing, ()), GFP_KERNEL);
    /// assert_eq!(empty.err(), Some(EOVERFLOW));
    /// let wraps = IntervalNotifier::new(&mm, usize::MAX - PAGE + 1, 2 * PAGE, Nothing, ());
    /// assert_eq!(KBox::pin_init(wraps, GFP_KERNEL).err(), Some(EOVERFLOW));
    ///
    /// let notifier = IntervalNotifier::new(&mm, addr, PAGE, Nothing, ());
    /// let notifier = KBox::pin_init(notifier, GFP_KERNEL)?;
    /// assert_eq!(notifier.interval(), (addr, addr + PAGE - 1));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(
        mm: &MmWithUser,
        start: usize,
        length: usize,
        ops: T,
        state: T::State,
    ) -> impl PinInit<Self, Error> + use<T> {
        let raw_mm = mm.as_raw();
        let mm: ARef<Mm> = ARef::from(&**mm);
        // The kernel checks the same, but `last` is ours to keep right.
        let last = length.checked_sub(1).and_then(|l| start.checked_add(l));
        // Inside the initialiser, `start` names the field being initialised.
        let raw_start = start;
        try_pin_init!(&this in Self {
            state <- Mutex::new(state, STATE_NAME, static_lock_class!()),
            ops,
            mm,
            start,
            last: last.ok_or(EOVERFLOW)?,
            _: {
                // SAFETY: `state` was initialised in place above, so this
                // points to a live, initialised mutex.
                let lock = unsafe { Self::lock_ptr(&raw const (*this.as_ptr()).state) };
                // Tell lockdep, once, that reclaim takes the notifier lock
                // (through the invalidate callback), as `drm_gpusvm_init()`
                // does: a `GFP_KERNEL` allocation under the lock is then
                // reported even if reclaim never recurses into it.
                // SAFETY: `lock` is an initialised mutex; the helper only
                // makes lockdep annotations.
                unsafe { ffi::rust_hmm_prime_reclaim(lock) };
            },
            raw <- Opaque::try_ffi_init(move |slot: *mut bindings::mmu_interval_notifier| {
                // SAFETY: `slot` is valid, pinned storage for the notifier
                // and stays so until `drop` removes it. `raw_mm` has users
                // (we were given an `MmWithUser`). The ops table is static.
                to_result(unsafe {
                    bindings::mmu_interval_notifier_insert(
                        slot,
                        raw_mm,
                        raw_start,
                        length,
                        OpsTable::<T>::build(),
                    )
                })
            }),
        })
    }

    /// The kernel's `struct mutex` inside the `Mutex` at `state`.
    ///
    /// # Safety
    ///
    /// `state` points to a `Mutex` (initialised or not); the result is
    /// valid for as long as that `Mutex` is.
    unsafe fn lock_ptr(state: *const Mutex<T::State>) -> *mut bindings::mutex {
        // `Lock` is `repr(C)` with the kernel's lock, behind `Opaque`
        // (`repr(transparent)`), as its first field: `Lock::from_raw()`
        // relies on the same layout, the other way round.
        state.cast_mut().cast()
    }

    /// The first and the last address watched.
    ///
    /// # Examples
    ///
    /// The interval need not be page aligned; the last address is inclusive.
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// let notifier = kunit_mm::notifier(&mm, addr + 8, PAGE)?;
    /// assert_eq!(notifier.interval(), (addr + 8, addr + PAGE + 7));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn interval(&self) -> (usize, usize) {
        (self.start, self.last)
    }

    /// Whether `[start, end)` is non-empty and inside the interval, where
    /// every invalidation reaches this notifier.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, 2 * PAGE)?;
    /// // `notifier` watches the two pages at `addr`.
    /// assert_eq!(notifier.interval(), (addr, addr + 2 * PAGE - 1));
    /// assert!(notifier.covers(addr, addr + 2 * PAGE));
    /// assert!(!notifier.covers(addr, addr + 3 * PAGE));
    /// assert!(!notifier.covers(addr + PAGE, addr + PAGE)); // empty
    /// # Ok::<(), Error>(())
    /// ```
    pub fn covers(&self, start: usize, end: usize) -> bool {
        start < end && start >= self.start && end - 1 <= self.last
    }

    /// The driver's callbacks.
    ///
    /// # Examples
    ///
    /// What needs no lock can live in the callbacks' own type: here a count
    /// of the invalidations that reached them, read without the notifier
    /// lock.
    ///
    /// ```
    /// use core::sync::atomic::{AtomicU64, Ordering};
    /// use rust_hmm::mmu_notifier::{IntervalNotifier, IntervalNotifierOps, NotifierRange};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    ///
    /// struct Counting(AtomicU64);
    ///
    /// impl IntervalNotifierOps for Counting {
    ///     type State = ();
    ///     type Finish = ();
    ///
    ///     fn invalidate(&self, _state: &mut (), _range: &NotifierRange<'_>) {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// }
    ///
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(3, true)?;
    /// let ops = Counting(AtomicU64::new(0));
    /// let notifier = IntervalNotifier::new(&mm, addr, 2 * PAGE, ops, ());
    /// let notifier = KBox::pin_init(notifier, GFP_KERNEL)?;
    /// kunit_mm::munmap(addr + 2 * PAGE, 1)?; // outside the interval
    /// assert_eq!(notifier.ops().0.load(Ordering::Relaxed), 0);
    /// kunit_mm::munmap(addr + PAGE, 1)?;
    /// assert_eq!(notifier.ops().0.load(Ordering::Relaxed), 1);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn ops(&self) -> &T {
        &self.ops
    }

    /// The mm being watched (held with `mmgrab`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
    /// // The test thread's own mm.
    /// assert_eq!(notifier.mm().as_raw(), mm.as_raw());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn mm(&self) -> &Mm {
        &self.mm
    }

    /// The owner cookie of this notifier: `MMU_NOTIFY_EXCLUSIVE` events that
    /// carry it were started by this notifier's own device-exclusive
    /// conversion (see [`crate::device_exclusive`]) and are filtered out.
    ///
    /// # Examples
    ///
    /// A device-exclusive conversion carries the cookie of the notifier
    /// that asked for it: another notifier of the page sees it, the
    /// notifier itself is not invalidated.
    ///
    /// ```
    /// use rust_hmm::device_exclusive::exclusive_session;
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// kunit_mm::write_user(addr, b"cpu")?; // a page of its own first
    /// // The states: how many invalidations reached the device's notifier,
    /// // and the owner of the last one another notifier saw, as a number.
    /// let device = kunit_mm::notifier_with(&mm, addr, PAGE, |calls: &mut u32, _| *calls += 1)?;
    /// let other = kunit_mm::notifier_with(&mm, addr, PAGE, |owner: &mut usize, range| {
    ///     *owner = range.owner() as usize;
    /// })?;
    /// exclusive_session(&device, |s| s.map(addr, |_, _| Ok(())))?;
    /// assert_eq!(*other.lock(), device.owner() as usize);
    /// assert_eq!(*device.lock(), 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn owner(&self) -> *const core::ffi::c_void {
        core::ptr::from_ref(self).cast()
    }

    /// Takes the notifier lock to read the state (see [`LockedState`];
    /// deadlocks: see the module documentation).
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// // The state counts the invalidations of the first page.
    /// let notifier = kunit_mm::notifier_with(&mm, addr, PAGE, |calls: &mut u32, _| *calls += 1)?;
    /// assert_eq!(*notifier.lock(), 0);
    /// kunit_mm::munmap(addr, 2)?;
    /// assert_eq!(*notifier.lock(), 1);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn lock(&self) -> LockedState<'_, T> {
        LockedState {
            guard: self.state.lock(),
        }
    }

    /// Starts a read-side critical section (`mmu_interval_read_begin`).
    ///
    /// May sleep until a running invalidation of the range completes.
    ///
    /// # Deadlocks
    ///
    /// Never with this notifier's lock held (a guard, or inside one of its
    /// callbacks): the invalidation it waits for waits for that lock.
    /// Lockdep kernels warn here.
    ///
    /// # Examples
    ///
    /// Only invalidations inside the interval make a sequence stale: an
    /// unmap of the page next to it does not.
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(3, true)?;
    /// // Watches the middle page.
    /// let notifier = kunit_mm::notifier(&mm, addr + PAGE, PAGE)?;
    /// let seq = notifier.read_begin();
    /// kunit_mm::munmap(addr, 1)?;
    /// assert!(notifier.lock_valid(seq).is_some());
    /// let seq = notifier.read_begin();
    /// kunit_mm::munmap(addr + PAGE, 1)?;
    /// assert!(notifier.lock_valid(seq).is_none());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn read_begin(&self) -> ReadSeq<'_, T> {
        self.assert_unlocked();
        // SAFETY: `raw` is an inserted notifier (type invariant).
        let seq = unsafe { bindings::mmu_interval_read_begin(self.raw.get()) };
        ReadSeq {
            seq: seq as u64,
            notifier: self,
        }
    }

    /// On lockdep kernels, warns if the current task holds the notifier
    /// lock: for calls that may wait for an invalidation.
    pub(crate) fn assert_unlocked(&self) {
        // SAFETY: The mutex is initialised (`self` is) and lives as long as
        // `self`; the helper only asks lockdep.
        unsafe { ffi::lockdep_assert_not_held(Self::lock_ptr(&self.state)) };
    }

    /// Takes the notifier lock and returns the guard if no invalidation ran
    /// since `seq` was taken; otherwise releases the lock and returns `None`,
    /// and the caller starts over.
    ///
    /// Outside the callbacks, this guard is the only way to change the
    /// state. It validates what was learned after `read_begin()`, not
    /// before (see the module documentation).
    ///
    /// # Examples
    ///
    /// A sequence is only good for the notifier that produced it, even one
    /// of the same type over the same page. The guard is how the state
    /// changes.
    ///
    /// ```
    /// use rust_hmm::mmu_notifier::NotifierRange;
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    ///
    /// /// The state is the PFN the device maps, if any; any invalidation
    /// /// drops it.
    /// fn drop_pfn(pfn: &mut Option<u64>, _range: &NotifierRange<'_>) {
    ///     *pfn = None;
    /// }
    ///
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// let a = kunit_mm::notifier_with(&mm, addr, PAGE, drop_pfn)?;
    /// let b = kunit_mm::notifier_with(&mm, addr, PAGE, drop_pfn)?;
    /// assert!(b.lock_valid(a.read_begin()).is_none());
    ///
    /// let seq = a.read_begin();
    /// let mut mapped = a.lock_valid(seq).ok_or(EAGAIN)?;
    /// *mapped = Some(42);
    /// drop(mapped);
    /// assert_eq!(*a.lock(), Some(42));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn lock_valid(&self, seq: ReadSeq<'_, T>) -> Option<Guard<'_, T::State, MutexBackend>> {
        if !core::ptr::eq(seq.notifier, self) {
            return None;
        }
        let guard = self.state.lock();
        // SAFETY: `raw` is inserted; the lock that `set_seq` runs under is
        // held, as `mmu_interval_read_retry` requires.
        if unsafe { ffi::mmu_interval_read_retry(self.raw.get(), seq.seq as usize) } {
            return None;
        }
        Some(guard)
    }

    pub(crate) fn raw(&self) -> *mut bindings::mmu_interval_notifier {
        self.raw.get()
    }

    /// # Safety
    ///
    /// `raw` must be the `raw` field of a live `IntervalNotifier<T>`.
    unsafe fn from_raw<'a>(raw: *mut bindings::mmu_interval_notifier) -> &'a Self {
        // SAFETY: `Opaque<T>` is `repr(transparent)`, so the field pointer is
        // the `raw` field of the container, which the caller says is live.
        unsafe { &*kernel::container_of!(raw.cast::<Opaque<_>>(), Self, raw) }
    }

    /// First half of both callback forms: filter, lock, bump the sequence,
    /// invalidate. `None` means that could not be done without sleeping:
    /// the lock is taken, or the ops are [`busy`](IntervalNotifierOps::busy).
    fn start(&self, range: &NotifierRange<'_>, cur_seq: u64) -> Option<Option<T::Finish>> {
        // Our own device-exclusive conversion: the caller is about to
        // install the entry under a sequence this must not invalidate.
        if range.event() == Event::Exclusive && range.owner() == self.owner() {
            return Some(None);
        }
        let mut guard = if range.blockable() {
            self.state.lock()
        } else {
            let guard = self.state.try_lock()?;
            if self.ops.busy(&guard, range) {
                return None;
            }
            guard
        };
        // `mmu_interval_set_seq()`, a `WRITE_ONCE()`: called on every
        // invalidation, so not through a helper call.
        // SAFETY: `raw` is inserted and its lock is held, which is what
        // the kernel asks of a writer of `invalidate_seq`.
        unsafe {
            core::ptr::write_volatile(
                &raw mut (*self.raw.get()).invalidate_seq,
                cur_seq as kernel::ffi::c_ulong,
            )
        };
        Some(Some(self.ops.invalidate(&mut guard, range)))
    }
}

#[pinned_drop]
impl<T: IntervalNotifierOps> PinnedDrop for IntervalNotifier<T> {
    fn drop(self: Pin<&mut Self>) {
        // `mmu_interval_notifier_remove()` waits for a running invalidation.
        self.assert_unlocked();
        self.ops.release(&mut self.state.lock());
        // SAFETY: `raw` was inserted in `new` (type invariant). This waits
        // for callbacks in flight, so none can see the fields dropped next.
        unsafe { bindings::mmu_interval_notifier_remove(self.raw.get()) };
    }
}
