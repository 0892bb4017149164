// SPDX-License-Identifier: GPL-2.0

//! Device-exclusive access to anonymous pages (`make_device_exclusive()`).
//!
//! A device that does atomics on system memory asks for a page to be
//! exclusive: the CPU PTE becomes a device-exclusive swap entry, and any CPU
//! access faults, takes the folio lock, and revokes the device's access
//! through the MMU notifiers before the PTE is restored.
//!
//! [`map_exclusive`] runs the whole protocol: it starts a notifier read
//! section, converts the page, and hands the PFN to the caller's closure
//! with the notifier lock held, only if no invalidation ran in between; it
//! retries otherwise. The conversion's own `MMU_NOTIFY_EXCLUSIVE` event
//! carries this notifier's owner cookie, and [`IntervalNotifier`] filters
//! exactly that event out, which is what keeps the protocol from
//! invalidating itself forever.
//!
//! Lock order: mmap read lock (during the conversion only) -> folio lock ->
//! notifier lock. Invalidations that hold a folio lock (migration, reclaim,
//! the CPU fault that revokes exclusive access) take the locks in the same
//! order.

use crate::ffi;
use crate::mmu_notifier::{IntervalNotifier, IntervalNotifierOps};
use kernel::{
    bindings,
    error::{from_err_ptr, to_result},
    mm::MmWithUser,
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
    /// Makes the page at `addr` of `mm` exclusive to `owner`.
    ///
    /// Takes the mmap read lock for the conversion. Fails with `EFAULT` if
    /// nothing is mapped there or it cannot be written, `EOPNOTSUPP` for
    /// pages that are not anonymous (file, hugetlb), `EINTR` on a fatal
    /// signal.
    pub fn new(mm: &MmWithUser, addr: u64, owner: *const core::ffi::c_void) -> Result<Self> {
        let _lock = mm.mmap_read_lock();
        let mut folio: *mut bindings::folio = core::ptr::null_mut();
        // SAFETY: The mm has users and its mmap lock is read-held, as the
        // function requires; `folio` is valid for writes.
        let page = from_err_ptr(unsafe {
            ffi::make_device_exclusive(mm.as_raw(), addr as usize, owner.cast_mut(), &mut folio)
        })?;
        // INVARIANT: on success the folio is returned locked and referenced.
        Ok(Self { page, folio })
    }

    /// The page frame number of the exclusive page.
    pub fn pfn(&self) -> u64 {
        // SAFETY: `page` is a valid page we hold a reference to.
        unsafe { ffi::rust_hmm_page_to_pfn(self.page) as u64 }
    }
}

/// Faults the page at `addr` in writable, which also turns any
/// device-exclusive entry there (another device's, or ours from a try that
/// lost a race) back into an ordinary PTE.
fn fault_in_writable(mm: &MmWithUser, addr: u64) -> Result {
    let _lock = mm.mmap_read_lock();
    // SAFETY: The mm has users and its mmap lock is read-held; with a null
    // `unlocked` the lock is never dropped, so no retry flag is passed.
    to_result(unsafe {
        bindings::fixup_user_fault(
            mm.as_raw(),
            addr as usize,
            bindings::fault_flag_FAULT_FLAG_WRITE,
            core::ptr::null_mut(),
        )
    })
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

/// Makes the page at `addr` exclusive to the device that owns `notifier`
/// and calls `map` with the notifier lock held and the PFN, once it is
/// known that no invalidation ran since the conversion began. `map`
/// installs the device mapping; CPU access revokes it through the
/// notifier as soon as this returns.
///
/// Gives up with `EBUSY` when invalidations keep racing for longer than
/// `HMM_RANGE_DEFAULT_TIMEOUT`.
pub fn map_exclusive<T: IntervalNotifierOps, R>(
    notifier: &IntervalNotifier<T>,
    addr: u64,
    map: impl FnOnce(&mut T::State, u64) -> Result<R>,
) -> Result<R> {
    let start = Instant::<Monotonic>::now();
    let mm = notifier.mm().mmget_not_zero().ok_or(EFAULT)?;
    let res = loop {
        // Restoring a device-exclusive PTE notifies `MMU_NOTIFY_CLEAR` with
        // no owner. If `make_device_exclusive()` had to do that itself, it
        // would happen inside the read section and fail it, and every retry
        // would restore our own entry from the try before: a livelock. So
        // restore first, then open the section.
        if let Err(e) = fault_in_writable(&mm, addr) {
            break Err(e);
        }
        let seq = notifier.read_begin();
        let page = match ExclusivePage::new(&mm, addr, notifier.owner()) {
            Ok(p) => p,
            Err(e) => break Err(e),
        };
        if let Some(mut state) = notifier.lock_valid(seq) {
            let r = map(&mut state, page.pfn());
            // Unlock the notifier before the folio: CPU faults take the
            // folio lock first.
            drop(state);
            drop(page);
            break r;
        }
        drop(page);
        if start.elapsed().as_millis() > i64::from(ffi::HMM_RANGE_DEFAULT_TIMEOUT) {
            break Err(EBUSY);
        }
    };
    // Not under any lock: the last `mmput` may run exit_mmap.
    drop(mm);
    res
}
