// SPDX-License-Identifier: GPL-2.0

//! Device-exclusive access to anonymous pages (`make_device_exclusive()`).
//!
//! A device that does atomics on system memory asks for a page to be
//! exclusive: the CPU PTE becomes a device-exclusive swap entry, and any CPU
//! access faults, takes the folio lock, and revokes the device's access
//! through the MMU notifiers before the PTE is restored.
//!
//! [`ExclusiveSession::map`] runs the whole protocol for one page: it
//! converts the page inside a notifier read section and hands the PFN to
//! the caller's closure with the notifier lock held, only if no
//! invalidation ran in between; it retries otherwise. The conversion's own
//! `MMU_NOTIFY_EXCLUSIVE` event carries this notifier's owner cookie, and
//! [`IntervalNotifier`] filters exactly that event out, which is what keeps
//! the protocol from invalidating itself forever. A session
//! ([`exclusive_session`]) holds one mm user and the mmap read lock for a
//! whole run of pages, as `lib/test_hmm.c` does, rather than taking the
//! lock for each step of each page.
//!
//! Lock order: mmap read lock -> folio lock -> notifier lock. Invalidations
//! that hold a folio lock (migration, reclaim, the CPU fault that revokes
//! exclusive access) take the last two in the same order, and those that
//! hold the mmap lock (munmap, mprotect) take it first.
//!
//! # Deadlocks
//!
//! The closure runs under the mmap read lock, a folio lock and the notifier
//! lock: it must not fault on user memory, take the mmap lock, or wait for
//! an invalidation of this mm.

use crate::ffi;
use crate::mmu_notifier::{IntervalNotifier, IntervalNotifierOps};
use kernel::{
    bindings,
    error::{from_err_ptr, to_result},
    mm::{MmWithUser, MmapReadGuard},
    prelude::*,
    time::{Instant, Monotonic},
};

/// A page that `make_device_exclusive()` converted, still locked and
/// referenced: CPU access cannot revoke it until this guard drops.
///
/// # Invariants
///
/// `folio` is locked and referenced by us, and `page` is a page of it.
pub struct ExclusivePage {
    page: *mut bindings::page,
    folio: *mut bindings::folio,
}

impl ExclusivePage {
    /// The page frame number of the exclusive page.
    pub fn pfn(&self) -> u64 {
        // SAFETY: `page` is a valid page we hold a reference to.
        unsafe { ffi::rust_hmm_page_to_pfn(self.page) as u64 }
    }
}

impl Drop for ExclusivePage {
    fn drop(&mut self) {
        // SAFETY: We own the folio lock and one reference (type invariant).
        unsafe {
            bindings::folio_unlock(self.folio);
            ffi::rust_hmm_folio_put(self.folio);
        }
    }
}

/// A run of conversions for one notifier's mm: an mm user and its mmap
/// read lock, held until [`exclusive_session`]'s closure returns or
/// [`Self::relax`] lets writers in.
pub struct ExclusiveSession<'a, T: IntervalNotifierOps> {
    notifier: &'a IntervalNotifier<T>,
    mm: &'a MmWithUser,
    lock: Option<MmapReadGuard<'a>>,
}

/// Runs `f` with a session on the mm `notifier` watches: `EFAULT` if the
/// process is gone. The mmap read lock is taken once for the whole run.
pub fn exclusive_session<T: IntervalNotifierOps, R>(
    notifier: &IntervalNotifier<T>,
    f: impl FnOnce(&mut ExclusiveSession<'_, T>) -> Result<R>,
) -> Result<R> {
    let mm = notifier.mm().mmget_not_zero().ok_or(EFAULT)?;
    let res = {
        let mut session = ExclusiveSession {
            notifier,
            mm: &mm,
            lock: Some(mm.mmap_read_lock()),
        };
        f(&mut session)
    };
    // After the lock, and under no lock: the last `mmput` may run
    // exit_mmap, whose release callback takes the notifier lock.
    drop(mm);
    res
}

impl<T: IntervalNotifierOps> ExclusiveSession<'_, T> {
    /// The mmap read lock, taken again if [`Self::relax`] dropped it.
    fn locked(&mut self) -> &MmapReadGuard<'_> {
        let mm = self.mm;
        self.lock.get_or_insert_with(|| mm.mmap_read_lock())
    }

    /// Drops the mmap read lock for a moment (it is taken again by the
    /// next [`Self::map`]), so that a long run does not hold off munmap
    /// and mprotect, and reschedules. `EINTR` if the task was killed.
    pub fn relax(&mut self) -> Result {
        self.lock = None;
        crate::hmm::resched_or_killed()
    }

    /// Faults the page at `addr` in writable, which also turns any
    /// device-exclusive entry there (another device's, or ours from a try
    /// that lost a race) back into an ordinary PTE.
    fn fault_in_writable(&mut self, addr: u64) -> Result {
        let mm = self.mm.as_raw();
        let _lock = self.locked();
        // SAFETY: The mm has users and its mmap lock is read-held; with a
        // null `unlocked` the lock is never dropped.
        to_result(unsafe {
            bindings::fixup_user_fault(
                mm,
                addr as usize,
                bindings::fault_flag_FAULT_FLAG_WRITE,
                core::ptr::null_mut(),
            )
        })
    }

    /// `make_device_exclusive()` of the page at `addr` with the notifier's
    /// owner cookie. Fails with `EFAULT` if nothing is mapped there or it
    /// cannot be written, `EOPNOTSUPP` for pages that are not anonymous
    /// (file, hugetlb), `EINTR` on a fatal signal.
    fn convert(&mut self, addr: u64) -> Result<ExclusivePage> {
        let (mm, owner) = (self.mm.as_raw(), self.notifier.owner());
        let _lock = self.locked();
        let mut folio: *mut bindings::folio = core::ptr::null_mut();
        // SAFETY: The mm has users and its mmap lock is read-held, as the
        // function requires; `folio` is valid for writes.
        let page = from_err_ptr(unsafe {
            ffi::make_device_exclusive(mm, addr as usize, owner.cast_mut(), &mut folio)
        })?;
        // INVARIANT: on success the folio is returned locked and referenced.
        Ok(ExclusivePage { page, folio })
    }

    /// Makes the page at `addr` exclusive to the device that owns the
    /// notifier and calls `map` with the notifier lock held and the PFN,
    /// once it is known that no invalidation ran since the conversion
    /// began. `map` installs the device mapping; CPU access revokes it
    /// through the notifier as soon as this returns.
    ///
    /// Gives up with `EBUSY` when invalidations keep racing for longer than
    /// `HMM_RANGE_DEFAULT_TIMEOUT`.
    pub fn map<R>(
        &mut self,
        addr: u64,
        map: impl FnOnce(&mut T::State, u64) -> Result<R>,
    ) -> Result<R> {
        let start = Instant::<Monotonic>::now();
        loop {
            // Restoring a device-exclusive PTE notifies `MMU_NOTIFY_CLEAR`
            // with no owner. If `make_device_exclusive()` had to do that
            // itself, it would happen inside the read section and fail it,
            // and every retry would restore our own entry from the try
            // before: a livelock. So restore first, then open the section.
            self.fault_in_writable(addr)?;
            // Under the mmap read lock: nothing that holds this mm's mmap
            // lock for write can be invalidating now, and no invalidation
            // waits for a lock we hold (the folio and notifier locks come
            // after this), so the wait for a running one ends.
            let seq = self.notifier.read_begin();
            let page = self.convert(addr)?;
            if let Some(mut state) = self.notifier.lock_valid(seq) {
                let r = map(&mut state, page.pfn());
                // Unlock the notifier before the folio: CPU faults take the
                // folio lock first.
                drop(state);
                drop(page);
                return r;
            }
            drop(page);
            if start.elapsed().as_millis() > i64::from(ffi::HMM_RANGE_DEFAULT_TIMEOUT) {
                return Err(EBUSY);
            }
        }
    }
}
