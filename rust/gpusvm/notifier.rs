// SPDX-License-Identifier: GPL-2.0

//! The notifier of one chunk of a [`GpuSvm`] (`drm_gpusvm_notifier`): an
//! `mmu_interval_notifier` whose callback takes the SVM's shared lock.

use super::{
    GpuSvm,
    GpuSvmOps,
    Locked, //
};
use crate::ffi;
use crate::mmu_notifier::{
    seq::sealed::Sealed,
    NotifierRange,
    SeqNotifier, //
};
use core::marker::PhantomData;
use kernel::{
    bindings,
    error::to_result,
    mm::{
        Mm,
        MmWithUser, //
    },
    prelude::*,
    sync::lock::{
        mutex::MutexBackend,
        Guard, //
    },
    types::Opaque, //
};

/// The notifier of one aligned chunk of a [`GpuSvm`]. Only the SVM makes
/// them; a driver meets them as the notifier of a
/// [`crate::hmm::Range`] made by [`super::SvmRange::hmm_range`].
///
/// # Invariants
///
/// - `raw` is inserted on the SVM's mm over `start..=last` with the ops of
///   `Ops<T>` from creation to `drop`, which removes it.
/// - `svm` points to the pinned [`GpuSvm`] that made it, which outlives it
///   (see the invariants of [`GpuSvm`]).
/// - `raw.invalidate_seq` is only written with the SVM's lock held.
///
/// # Examples
///
/// Ranges of one 2 MiB chunk share its notifier.
///
/// ```
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// let addr = kunit_mm::mmap_aligned(32, 64 * 1024)?;
/// let svm = kunit_mm::svm(&mm)?;
/// let a = svm.range_find_or_insert(addr)?;
/// let b = svm.range_find_or_insert(addr + 16 * PAGE)?;
/// assert!(core::ptr::eq(a.notifier(), b.notifier()));
/// # Ok::<(), Error>(())
/// ```
#[pin_data(PinnedDrop)]
pub struct Notifier<T: GpuSvmOps> {
    svm: *const GpuSvm<T>,
    start: usize,
    last: usize,
    // Last: the notifier goes live once inserted.
    #[pin]
    raw: Opaque<bindings::mmu_interval_notifier>,
}

// SAFETY: The raw notifier is only touched through the kernel's locking and
// the SVM's lock; the SVM is `Sync`.
unsafe impl<T: GpuSvmOps> Send for Notifier<T> {}
// SAFETY: See `Send`.
unsafe impl<T: GpuSvmOps> Sync for Notifier<T> {}

impl<T: GpuSvmOps> Notifier<T> {
    /// Inserts a notifier over `[start, start + size)` of `mm` for `svm`.
    /// Must not be called with the mmap lock or the SVM's lock held.
    pub(super) fn new(
        svm: &GpuSvm<T>,
        mm: &MmWithUser,
        start: usize,
        size: usize,
    ) -> impl PinInit<Self, Error> {
        let raw_mm = mm.as_raw();
        let svm = core::ptr::from_ref(svm);
        let last = start.saturating_add(size - 1);
        let (raw_start, raw_len) = (start, last - start + 1);
        try_pin_init!(Self {
            svm,
            start,
            last,
            raw <- Opaque::try_ffi_init(move |slot: *mut bindings::mmu_interval_notifier| {
                // SAFETY: `slot` is pinned storage that stays valid until
                // `drop` removes the notifier; `raw_mm` has users; the ops
                // table is static.
                to_result(unsafe {
                    bindings::mmu_interval_notifier_insert(
                        slot,
                        raw_mm,
                        raw_start,
                        raw_len,
                        Ops::<T>::build(),
                    )
                })
            }),
        })
    }

    /// The first address of the chunk.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// let svm = kunit_mm::svm(&mm)?;
    /// let range = svm.range_find_or_insert(addr)?;
    /// assert_eq!(range.notifier().start(), addr & !((1 << 21) - 1));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn start(&self) -> usize {
        self.start
    }

    /// The first and the last address watched.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// let svm = kunit_mm::svm(&mm)?;
    /// let range = svm.range_find_or_insert(addr)?;
    /// let (first, last) = range.notifier().interval();
    /// assert_eq!(last - first + 1, 1 << 21);
    /// assert!(first <= addr && addr <= last);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn interval(&self) -> (usize, usize) {
        (self.start, self.last)
    }

    fn svm(&self) -> &GpuSvm<T> {
        // SAFETY: The SVM outlives its notifiers (type invariant).
        unsafe { &*self.svm }
    }

    /// `mmu_interval_set_seq()`.
    ///
    /// # Safety
    ///
    /// The SVM's lock is held by the caller.
    pub(super) unsafe fn set_seq(&self, seq: u64) {
        // SAFETY: `raw` is inserted; the caller holds the lock that
        // `invalidate_seq` is written under. A `WRITE_ONCE()`.
        unsafe {
            core::ptr::write_volatile(
                &raw mut (*self.raw.get()).invalidate_seq,
                seq as kernel::ffi::c_ulong,
            )
        };
    }

    /// # Safety
    ///
    /// `raw` is the `raw` field of a live `Notifier<T>`.
    unsafe fn from_raw<'a>(raw: *mut bindings::mmu_interval_notifier) -> &'a Self {
        // SAFETY: `Opaque` is `repr(transparent)`; the caller says the
        // container is live.
        unsafe { &*kernel::container_of!(raw.cast::<Opaque<_>>(), Self, raw) }
    }
}

impl<T: GpuSvmOps> SeqNotifier for Notifier<T> {
    type State = T::State;

    fn state_of(locked: &mut Locked<T>) -> &mut T::State {
        &mut locked.state
    }

    fn state_ref(locked: &Locked<T>) -> &T::State {
        &locked.state
    }
}

impl<T: GpuSvmOps> Sealed for Notifier<T> {
    type Locked = Locked<T>;

    fn raw(&self) -> *mut bindings::mmu_interval_notifier {
        self.raw.get()
    }

    fn mm(&self) -> &Mm {
        self.svm().mm()
    }

    fn interval(&self) -> (usize, usize) {
        (self.start, self.last)
    }

    fn assert_unlocked(&self) {
        self.svm().assert_unlocked();
    }

    fn read_begin_raw(&self) -> u64 {
        self.assert_unlocked();
        // SAFETY: `raw` is inserted (type invariant).
        unsafe { bindings::mmu_interval_read_begin(self.raw.get()) as u64 }
    }

    fn owner(&self) -> *const core::ffi::c_void {
        self.svm().owner()
    }

    fn lock_valid(&self, seq: u64) -> Result<Option<Guard<'_, Locked<T>, MutexBackend>>> {
        let l = self.svm().lock.lock();
        // A notifier the collector took out of use may not validate
        // anything: once its last reference goes, nothing keeps what it
        // validated current.
        if !l.in_use(self) {
            return Err(EAGAIN);
        }
        // SAFETY: `raw` is inserted and the lock `set_seq` runs under is
        // held, as `mmu_interval_read_retry()` requires.
        if unsafe { ffi::mmu_interval_read_retry(self.raw.get(), seq as usize) } {
            return Ok(None);
        }
        Ok(Some(l))
    }
}

#[pinned_drop]
impl<T: GpuSvmOps> PinnedDrop for Notifier<T> {
    fn drop(self: Pin<&mut Self>) {
        // The removal waits for a running invalidation, which may wait for
        // the SVM's lock.
        self.assert_unlocked();
        // SAFETY: `raw` was inserted in `new` (type invariant); this waits
        // for callbacks in flight.
        unsafe { bindings::mmu_interval_notifier_remove(self.raw.get()) };
    }
}

/// The `mmu_interval_notifier_ops` of `Notifier<T>`: single pass.
struct Ops<T>(PhantomData<T>);

impl<T: GpuSvmOps> Ops<T> {
    const OPS: bindings::mmu_interval_notifier_ops = bindings::mmu_interval_notifier_ops {
        invalidate: Some(Self::invalidate),
        invalidate_start: None,
        invalidate_finish: None,
    };

    const fn build() -> &'static bindings::mmu_interval_notifier_ops {
        &Self::OPS
    }

    /// # Safety
    ///
    /// Called by the kernel for a notifier inserted by `Notifier<T>::new`.
    unsafe extern "C" fn invalidate(
        sub: *mut bindings::mmu_interval_notifier,
        range: *const bindings::mmu_notifier_range,
        cur_seq: kernel::ffi::c_ulong,
    ) -> bool {
        // SAFETY: The kernel passes our live notifier and a valid range.
        let (this, range) = unsafe { (Notifier::<T>::from_raw(sub), &*range) };
        let range = NotifierRange { raw: range };
        this.svm().invalidate(this, &range, cur_seq as u64)
    }
}
