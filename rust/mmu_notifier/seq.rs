// SPDX-License-Identifier: GPL-2.0

//! [`SeqNotifier`]: what [`crate::hmm::Range`] needs of a notifier, so that
//! one fault path serves an [`IntervalNotifier`] with a lock of its own and
//! the chunk notifiers of [`crate::gpusvm`], which share one lock.

use super::{
    IntervalNotifier,
    IntervalNotifierOps, //
};
use kernel::{
    bindings,
    mm::Mm,
    prelude::*,
    sync::lock::{
        mutex::MutexBackend,
        Guard, //
    },
};

/// An inserted `mmu_interval_notifier` whose invalidations advance its
/// sequence under a mutex, the notifier lock, before anything it guards
/// changes. Sealed: only this crate's notifiers are such.
///
/// # Examples
///
/// Any of them serves [`crate::hmm::Range`]:
///
/// ```
/// use rust_hmm::hmm::{Fault, Mode, Range};
/// use rust_hmm::mmu_notifier::SeqNotifier;
/// # use rust_hmm::kunit_mm::{self, PAGE};
///
/// fn writable<N: SeqNotifier>(notifier: &N, addr: usize) -> Result<bool> {
///     let mut range = Range::new(notifier, addr, addr + PAGE, None)?;
///     let faulted = range.fault(Fault::Write, Mode::Locked)?;
///     Ok(faulted.pfns()[0].is_write())
/// }
///
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(1, true)?;
/// let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
/// assert!(writable(&notifier, addr)?);
/// # Ok::<(), Error>(())
/// ```
pub trait SeqNotifier: Sync + sealed::Sealed {
    /// The driver's part of what the notifier lock guards, which a
    /// validated fault may change ([`crate::hmm::Faulted::state_mut`]).
    type State: Send + Unpin;

    /// The driver's state inside what the lock guards (which only this
    /// crate can reach).
    #[doc(hidden)]
    fn state_of(locked: &mut Self::Locked) -> &mut Self::State;

    /// The same, to read.
    #[doc(hidden)]
    fn state_ref(locked: &Self::Locked) -> &Self::State;
}

pub(crate) mod sealed {
    use super::*;

    /// The protocol, kept out of drivers' reach: [`Self::lock_valid`]
    /// hands out the whole locked content, which for a shared lock holds
    /// more than the driver's state.
    pub trait Sealed {
        /// What the notifier lock guards.
        type Locked: Send + Unpin;

        /// The inserted notifier.
        fn raw(&self) -> *mut bindings::mmu_interval_notifier;
        /// The mm it watches.
        fn mm(&self) -> &Mm;
        /// First and last address watched.
        fn interval(&self) -> (usize, usize);
        /// On lockdep kernels, warns if the notifier lock is held.
        fn assert_unlocked(&self);
        /// `mmu_interval_read_begin()`.
        fn read_begin_raw(&self) -> u64;
        /// The owner cookie of device-exclusive conversions made through
        /// it: their `MMU_NOTIFY_EXCLUSIVE` events leave its sequence
        /// alone.
        fn owner(&self) -> *const core::ffi::c_void;
        /// Takes the notifier lock and returns it if no invalidation ran
        /// since `seq`; `Ok(None)`: one did, try again; `Err`: trying again
        /// cannot succeed (the notifier is no longer in use).
        fn lock_valid(&self, seq: u64) -> Result<Option<Guard<'_, Self::Locked, MutexBackend>>>;
    }
}

impl<T: IntervalNotifierOps> SeqNotifier for IntervalNotifier<T> {
    type State = T::State;

    fn state_of(locked: &mut T::State) -> &mut T::State {
        locked
    }

    fn state_ref(locked: &T::State) -> &T::State {
        locked
    }
}

impl<T: IntervalNotifierOps> sealed::Sealed for IntervalNotifier<T> {
    type Locked = T::State;

    fn raw(&self) -> *mut bindings::mmu_interval_notifier {
        IntervalNotifier::raw(self)
    }

    fn mm(&self) -> &Mm {
        IntervalNotifier::mm(self)
    }

    fn interval(&self) -> (usize, usize) {
        IntervalNotifier::interval(self)
    }

    fn assert_unlocked(&self) {
        IntervalNotifier::assert_unlocked(self)
    }

    fn read_begin_raw(&self) -> u64 {
        self.read_begin().raw()
    }

    fn owner(&self) -> *const core::ffi::c_void {
        IntervalNotifier::owner(self)
    }

    fn lock_valid(&self, seq: u64) -> Result<Option<Guard<'_, T::State, MutexBackend>>> {
        Ok(IntervalNotifier::lock_valid(
            self,
            super::ReadSeq::from_kernel(self, seq),
        ))
    }
}

/// A pinned box of a notifier serves as the notifier, as the notifiers of
/// most drivers are held.
impl<N: SeqNotifier> SeqNotifier for Pin<KBox<N>> {
    type State = N::State;

    fn state_of(locked: &mut N::Locked) -> &mut N::State {
        N::state_of(locked)
    }

    fn state_ref(locked: &N::Locked) -> &N::State {
        N::state_ref(locked)
    }
}

impl<N: SeqNotifier> sealed::Sealed for Pin<KBox<N>> {
    type Locked = N::Locked;

    fn raw(&self) -> *mut bindings::mmu_interval_notifier {
        (**self).raw()
    }

    fn mm(&self) -> &Mm {
        (**self).mm()
    }

    fn interval(&self) -> (usize, usize) {
        (**self).interval()
    }

    fn assert_unlocked(&self) {
        (**self).assert_unlocked()
    }

    fn read_begin_raw(&self) -> u64 {
        (**self).read_begin_raw()
    }

    fn owner(&self) -> *const core::ffi::c_void {
        (**self).owner()
    }

    fn lock_valid(&self, seq: u64) -> Result<Option<Guard<'_, N::Locked, MutexBackend>>> {
        (**self).lock_valid(seq)
    }
}
