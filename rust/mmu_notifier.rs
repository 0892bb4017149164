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

use crate::ffi;
use core::marker::PhantomData;
use kernel::{
    alloc::flags::GFP_NOWAIT,
    bindings,
    error::to_result,
    mm::{Mm, MmWithUser},
    new_mutex,
    prelude::*,
    sync::{
        aref::ARef,
        lock::{mutex::MutexBackend, Guard},
        Mutex,
    },
    types::Opaque,
};

/// Why an invalidation happens (`enum mmu_notifier_event`).
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
    pub fn keeps_read(self) -> bool {
        matches!(self, Self::ProtectionPage | Self::SoftDirty)
    }
}

/// The range of one invalidation (`struct mmu_notifier_range`).
pub struct NotifierRange<'a> {
    raw: &'a bindings::mmu_notifier_range,
}

impl NotifierRange<'_> {
    /// First address of the range.
    pub fn start(&self) -> u64 {
        self.raw.start as u64
    }

    /// End of the range (exclusive).
    pub fn end(&self) -> u64 {
        self.raw.end as u64
    }

    /// Why the range is invalidated.
    pub fn event(&self) -> Event {
        Event::from_raw(self.raw.event)
    }

    /// The owner cookie that the initiator passed (migration, exclusive).
    pub fn owner(&self) -> *const core::ffi::c_void {
        self.raw.owner
    }

    /// Whether the callback may sleep (`mmu_notifier_range_blockable()`).
    pub fn blockable(&self) -> bool {
        self.raw.flags & bindings::MMU_NOTIFIER_RANGE_BLOCKABLE != 0
    }
}

/// What a user of [`IntervalNotifier`] implements.
pub trait IntervalNotifierOps: Send + Sync + Sized {
    /// The state protected by the notifier lock.
    type State: Send + Unpin;
    /// Handed from the first pass to the second in the two-pass form.
    type Finish: Send;
    /// Use `invalidate_start`/`invalidate_finish` instead of `invalidate`.
    const TWO_PASS: bool = false;

    /// Called before the lock is taken. Returning `true` skips the
    /// invalidation altogether, sequence update included: only for events
    /// this driver started itself and handles on its own (owner filtering).
    fn ignore(&self, _range: &NotifierRange<'_>) -> bool {
        false
    }

    /// Invalidate `range` in `state`. Runs with the notifier lock held and
    /// the sequence already advanced. Must not sleep when
    /// `range.blockable()` is false.
    fn invalidate(&self, state: &mut Self::State, range: &NotifierRange<'_>) -> Self::Finish;

    /// Second pass, without the lock. In the two-pass form it runs after the
    /// first pass of every notifier of the mm; otherwise right after
    /// [`Self::invalidate`]. Device TLB flush waits belong here.
    fn invalidate_finish(&self, _finish: Self::Finish) {}

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
#[pin_data(PinnedDrop)]
pub struct IntervalNotifier<T: IntervalNotifierOps> {
    #[pin]
    state: Mutex<T::State>,
    ops: T,
    mm: ARef<Mm>,
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

impl<T: IntervalNotifierOps> IntervalNotifier<T> {
    /// Inserts a notifier for `[start, start + length)` of `mm`.
    ///
    /// The notifier holds the mm with `mmgrab` (the struct stays, the address
    /// space may go): process exit reaches it as [`Event::Release`].
    pub fn new(
        mm: &MmWithUser,
        start: u64,
        length: u64,
        ops: T,
        state: T::State,
    ) -> impl PinInit<Self, Error> + use<T> {
        let raw_mm = mm.as_raw();
        let mm: ARef<Mm> = ARef::from(&**mm);
        try_pin_init!(Self {
            state <- new_mutex!(state),
            ops,
            mm,
            raw <- Opaque::try_ffi_init(move |slot: *mut bindings::mmu_interval_notifier| {
                // SAFETY: `slot` is valid, pinned storage for the notifier
                // and stays so until `drop` removes it. `raw_mm` has users
                // (we were given an `MmWithUser`). The ops table is static.
                to_result(unsafe {
                    bindings::mmu_interval_notifier_insert(
                        slot,
                        raw_mm,
                        start as usize,
                        length as usize,
                        OpsTable::<T>::build(),
                    )
                })
            }),
        })
    }

    /// The driver's callbacks.
    pub fn ops(&self) -> &T {
        &self.ops
    }

    /// The mm being watched (held with `mmgrab`).
    pub fn mm(&self) -> &Mm {
        &self.mm
    }

    /// The owner cookie of this notifier: `MMU_NOTIFY_EXCLUSIVE` events that
    /// carry it were started by this notifier's own device-exclusive
    /// conversion (see [`crate::device_exclusive`]) and are filtered out.
    pub fn owner(&self) -> *const core::ffi::c_void {
        core::ptr::from_ref(self).cast()
    }

    /// Takes the notifier lock, for work that only reads or removes state.
    pub fn lock(&self) -> Guard<'_, T::State, MutexBackend> {
        self.state.lock()
    }

    /// Starts a read-side critical section (`mmu_interval_read_begin`).
    ///
    /// May sleep until a running invalidation of the range completes.
    pub fn read_begin(&self) -> ReadSeq<'_, T> {
        // SAFETY: `raw` is an inserted notifier (type invariant).
        let seq = unsafe { bindings::mmu_interval_read_begin(self.raw.get()) };
        ReadSeq {
            seq: seq as u64,
            notifier: self,
        }
    }

    /// Takes the notifier lock and returns the guard if no invalidation ran
    /// since `seq` was taken; otherwise releases the lock and returns `None`,
    /// and the caller starts over.
    pub fn lock_valid(&self, seq: ReadSeq<'_, T>) -> Option<Guard<'_, T::State, MutexBackend>> {
        if !core::ptr::eq(seq.notifier, self) {
            return None;
        }
        let guard = self.state.lock();
        // SAFETY: `raw` is inserted; the lock that `set_seq` runs under is
        // held, as `mmu_interval_read_retry` requires.
        if unsafe { ffi::rust_hmm_interval_read_retry(self.raw.get(), seq.seq as usize) } {
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
    /// invalidate. `None` means the lock could not be had without sleeping.
    fn start(&self, range: &NotifierRange<'_>, cur_seq: u64) -> Option<Option<T::Finish>> {
        // Our own device-exclusive conversion: the caller is about to
        // install the entry under a sequence this must not invalidate.
        if range.event() == Event::Exclusive && range.owner() == self.owner() {
            return Some(None);
        }
        if self.ops.ignore(range) {
            return Some(None);
        }
        let mut guard = if range.blockable() {
            self.state.lock()
        } else {
            self.state.try_lock()?
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
        self.ops.release(&mut self.state.lock());
        // SAFETY: `raw` was inserted in `new` (type invariant). This waits
        // for callbacks in flight, so none can see the fields dropped next.
        unsafe { bindings::mmu_interval_notifier_remove(self.raw.get()) };
    }
}

/// The two-pass hand-over: the kernel's link plus the driver's data.
#[repr(C)]
struct FinishBox<T: IntervalNotifierOps> {
    raw: bindings::mmu_interval_notifier_finish,
    data: T::Finish,
}

struct OpsTable<T>(PhantomData<T>);

impl<T: IntervalNotifierOps> OpsTable<T> {
    const OPS: bindings::mmu_interval_notifier_ops = bindings::mmu_interval_notifier_ops {
        invalidate: if T::TWO_PASS {
            None
        } else {
            Some(Self::invalidate)
        },
        invalidate_start: if T::TWO_PASS {
            Some(Self::invalidate_start)
        } else {
            None
        },
        invalidate_finish: if T::TWO_PASS {
            Some(Self::invalidate_finish)
        } else {
            None
        },
    };

    const fn build() -> &'static bindings::mmu_interval_notifier_ops {
        &Self::OPS
    }

    /// # Safety
    ///
    /// Called by the kernel for a notifier inserted by `IntervalNotifier<T>`.
    unsafe extern "C" fn invalidate(
        sub: *mut bindings::mmu_interval_notifier,
        range: *const bindings::mmu_notifier_range,
        cur_seq: kernel::ffi::c_ulong,
    ) -> bool {
        // SAFETY: The kernel passes our live notifier and a valid range.
        let (this, range) = unsafe { (IntervalNotifier::<T>::from_raw(sub), &*range) };
        let range = NotifierRange { raw: range };
        match this.start(&range, cur_seq as u64) {
            None => false,
            Some(None) => true,
            Some(Some(finish)) => {
                this.ops.invalidate_finish(finish);
                true
            }
        }
    }

    /// # Safety
    ///
    /// As for `invalidate`; `finish` is valid and `*finish` is null.
    unsafe extern "C" fn invalidate_start(
        sub: *mut bindings::mmu_interval_notifier,
        range: *const bindings::mmu_notifier_range,
        cur_seq: kernel::ffi::c_ulong,
        finish: *mut *mut bindings::mmu_interval_notifier_finish,
    ) -> bool {
        // SAFETY: The kernel passes our live notifier and a valid range.
        let (this, range) = unsafe { (IntervalNotifier::<T>::from_raw(sub), &*range) };
        let range = NotifierRange { raw: range };
        let data = match this.start(&range, cur_seq as u64) {
            None => return false,
            Some(None) => return true,
            Some(Some(data)) => data,
        };
        let Ok(slot) = KBox::<FinishBox<T>>::new_uninit(GFP_NOWAIT) else {
            // No memory for a second pass: finish now, as the API allows.
            this.ops.invalidate_finish(data);
            return true;
        };
        let b = KBox::write(
            slot,
            FinishBox::<T> {
                raw: bindings::mmu_interval_notifier_finish {
                    link: bindings::llist_node {
                        next: core::ptr::null_mut(),
                    },
                    notifier: sub,
                },
                data,
            },
        );
        // SAFETY: `finish` is valid for writes; the kernel hands the pointer
        // back to `invalidate_finish` exactly once.
        unsafe { *finish = KBox::into_raw(b).cast() };
        true
    }

    /// # Safety
    ///
    /// `finish` was returned by `invalidate_start` of an `IntervalNotifier<T>`.
    unsafe extern "C" fn invalidate_finish(finish: *mut bindings::mmu_interval_notifier_finish) {
        // SAFETY: `finish` is the first field of a `FinishBox<T>` leaked in
        // `invalidate_start`, handed back once.
        let b = unsafe { KBox::from_raw(finish.cast::<FinishBox<T>>()) };
        // SAFETY: The kernel set `notifier` to our live notifier.
        let this = unsafe { IntervalNotifier::<T>::from_raw(b.raw.notifier) };
        let b = KBox::into_inner(b);
        this.ops.invalidate_finish(b.data);
    }
}
