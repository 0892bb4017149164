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
//! the notifier filters exactly that event out, which is what keeps the
//! protocol from invalidating itself forever. Any notifier of this crate
//! serves ([`SeqNotifier`]): an
//! [`IntervalNotifier`](crate::mmu_notifier::IntervalNotifier), or the
//! chunk notifier of a [`crate::gpusvm::GpuSvm`] range, whose SVM filters
//! its own events in all its notifiers. A session
//! ([`exclusive_session`]) holds one mm user and the mmap read lock for a
//! whole run of pages, as `lib/test_hmm.c` does, rather than taking the
//! lock for each step of each page.
//!
//! Lock order: mmap read lock -> folio lock -> notifier lock. Invalidations
//! that hold a folio lock (migration, reclaim, the CPU fault that revokes
//! exclusive access) take the last two in the same order, and those that
//! hold the mmap lock (munmap, mprotect) take it first.
//!
//! # Safety contract
//!
//! The [`GuardedPages`] handed to the closure of [`ExclusiveSession::map`]
//! is a page that is locked, referenced, writable and mapped
//! device-exclusive at `addr` for the whole call (and cannot outlive it),
//! with the notifier lock held and the sequence validated; the address must
//! lie inside the notifier's interval (`EINVAL` otherwise), where the CPU
//! access that revokes the entry reaches the notifier. After
//! the call the entry lasts until an invalidation, which the notifier
//! passes to the driver under its lock as for any other mapping.
//!
//! # Deadlocks
//!
//! [`exclusive_session`] takes the mmap read lock: it must not be called
//! with that lock or the notifier lock held. The closure of
//! [`ExclusiveSession::map`] runs under the mmap read lock, a folio lock and
//! the notifier lock: it must not take the mmap lock, lock another folio,
//! allocate with `GFP_KERNEL`, or call into the notifier (see
//! [`crate::mmu_notifier`]). It runs with page faults disabled, so a user
//! access there fails (`EFAULT` from the user copy helpers) instead of
//! faulting into a deadlock.

use crate::ffi;
use crate::folio::LockedFolio;
use crate::guarded_page::{
    GuardedPages,
    Kind,
    Tie, //
};
use crate::mmu_notifier::SeqNotifier;
use kernel::{
    bindings,
    error::{
        from_err_ptr,
        to_result, //
    },
    mm::{
        MmWithUser,
        MmapReadGuard, //
    },
    page::PAGE_SIZE,
    prelude::*,
    time::{
        Instant,
        Monotonic, //
    }, //
};

/// A page that `make_device_exclusive()` converted, still locked and
/// referenced: CPU access cannot revoke it until this guard drops.
///
/// # Invariants
///
/// `_folio` holds the lock and a reference of the folio, and `page` is a
/// page of it.
///
/// # Examples
///
/// Drivers never hold one: [`ExclusiveSession::map`] keeps the page locked
/// this way while its closure runs, and gives the closure that page, the
/// one the CPU had mapped at the address.
///
/// ```
/// use rust_hmm::device_exclusive::exclusive_session;
/// use rust_hmm::hmm::{Fault, Mode, Range};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(1, true)?;
/// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
/// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
/// let cpu_pfn = range.fault(Fault::Write, Mode::Locked)?.pfns()[0].pfn();
/// let pfn = exclusive_session(&notifier, |s| s.map(addr, |_, page| Ok(page.pfn())))?;
/// assert_eq!(pfn, cpu_pfn);
/// # Ok::<(), Error>(())
/// ```
pub struct ExclusivePage {
    page: *mut bindings::page,
    /// Unlocked and released when the page is dropped.
    _folio: LockedFolio,
}

impl ExclusivePage {
    /// The page frame number of the exclusive page.
    ///
    /// # Examples
    ///
    /// Drivers cannot hold an `ExclusivePage`: [`ExclusiveSession::map`]
    /// gives its closure this PFN as `page.pfn()`. It stays the same when
    /// exclusive access is revoked and taken again: the CPU access restores
    /// the entry, it does not move the page.
    ///
    /// ```
    /// use rust_hmm::device_exclusive::exclusive_session;
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
    /// let take = || exclusive_session(&notifier, |s| s.map(addr, |_, page| Ok(page.pfn())));
    /// let pfn = take()?;
    /// kunit_mm::write_user(addr, b"cpu")?; // revokes the device's access
    /// assert_eq!(take()?, pfn);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn pfn(&self) -> u64 {
        // SAFETY: `page` is a valid page we hold a reference to.
        unsafe { ffi::page_to_pfn(self.page) as u64 }
    }
}

/// A run of conversions for one notifier's mm: an mm user and its mmap
/// read lock, held until [`exclusive_session`]'s closure returns or
/// [`Self::relax`] lets writers in.
///
/// # Examples
///
/// One session for a run of pages; an address outside the notifier's
/// interval is refused, and the session goes on.
///
/// ```
/// use rust_hmm::device_exclusive::exclusive_session;
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(3, true)?;
/// # let notifier = kunit_mm::notifier(&mm, addr, 2 * PAGE)?;
/// // `notifier` watches the first two of the three pages at `addr`.
/// let pfns = exclusive_session(&notifier, |s| {
///     assert_eq!(s.map(addr + 2 * PAGE, |_, _| Ok(())).err(), Some(EINVAL));
///     let a = s.map(addr, |_, page| Ok(page.pfn()))?;
///     let b = s.map(addr + PAGE, |_, page| Ok(page.pfn()))?;
///     Ok((a, b))
/// })?;
/// assert_ne!(pfns.0, pfns.1);
/// # Ok::<(), Error>(())
/// ```
pub struct ExclusiveSession<'a, N: SeqNotifier> {
    notifier: &'a N,
    mm: &'a MmWithUser,
    lock: Option<MmapReadGuard<'a>>,
}

/// Runs `f` with a session on the mm `notifier` watches: `EFAULT` if the
/// process is gone. The mmap read lock is taken once for the whole run.
///
/// # Examples
///
/// A device atomic: the page at `addr` is made exclusive to the device,
/// which adds to a word of it; the CPU's next access takes the page back
/// and sees the sum.
///
/// ```
/// use rust_hmm::device_exclusive::exclusive_session;
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(1, true)?;
/// # kunit_mm::write_user(addr, &41u64.to_ne_bytes())?;
/// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
///
/// let old = exclusive_session(&notifier, |s| {
///     s.map(addr, |_state, page| page.fetch_add_u64(0, 1))
/// })?;
/// assert_eq!(old, 41);
///
/// let mut word = [0u8; 8];
/// kunit_mm::read_user(addr, &mut word)?;
/// assert_eq!(u64::from_ne_bytes(word), 42);
/// # Ok::<(), Error>(())
/// ```
pub fn exclusive_session<N: SeqNotifier, R>(
    notifier: &N,
    f: impl FnOnce(&mut ExclusiveSession<'_, N>) -> Result<R>,
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

impl<N: SeqNotifier> ExclusiveSession<'_, N> {
    /// The mmap read lock, taken again if [`Self::relax`] dropped it.
    fn locked(&mut self) -> &MmapReadGuard<'_> {
        let mm = self.mm;
        self.lock.get_or_insert_with(|| mm.mmap_read_lock())
    }

    /// Drops the mmap read lock for a moment (it is taken again by the
    /// next [`Self::map`]), so that a long run does not hold off munmap
    /// and mprotect, and reschedules. `EINTR` if the task was killed.
    ///
    /// # Examples
    ///
    /// A device atomic on each of four pages, in one session that lets
    /// writers of the mmap lock in between pages.
    ///
    /// ```
    /// use rust_hmm::device_exclusive::exclusive_session;
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(4, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, 4 * PAGE)?;
    ///
    /// let sum = exclusive_session(&notifier, |s| {
    ///     let mut sum = 0;
    ///     for i in 0..4 {
    ///         sum += s.map(addr + i * PAGE, |_, page| page.fetch_add_u64(0, 10))?;
    ///         s.relax()?;
    ///     }
    ///     Ok(sum)
    /// })?;
    /// assert_eq!(sum, 0); // the pages held zeros
    /// let mut word = [0u8; 8];
    /// kunit_mm::read_user(addr + 3 * PAGE, &mut word)?;
    /// assert_eq!(u64::from_ne_bytes(word), 10);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn relax(&mut self) -> Result {
        self.lock = None;
        crate::hmm::resched_or_killed()
    }

    /// Faults the page at `addr` in writable, which also turns any
    /// device-exclusive entry there (another device's, or ours from a try
    /// that lost a race) back into an ordinary PTE.
    fn fault_in_writable(&mut self, addr: usize) -> Result {
        let mm = self.mm.as_raw();
        let _lock = self.locked();
        // SAFETY: The mm has users and its mmap lock is read-held; with a
        // null `unlocked` the lock is never dropped.
        to_result(unsafe {
            bindings::fixup_user_fault(
                mm,
                addr,
                bindings::fault_flag_FAULT_FLAG_WRITE,
                core::ptr::null_mut(),
            )
        })
    }

    /// `make_device_exclusive()` of the page at `addr` with the notifier's
    /// owner cookie. Fails with `EFAULT` if nothing is mapped there or it
    /// cannot be written, `EOPNOTSUPP` for pages that are not anonymous
    /// (file, hugetlb), `EINTR` on a fatal signal.
    fn convert(&mut self, addr: usize) -> Result<ExclusivePage> {
        let (mm, owner) = (self.mm.as_raw(), self.notifier.owner());
        let _lock = self.locked();
        let mut folio: *mut bindings::folio = core::ptr::null_mut();
        // SAFETY: The mm has users and its mmap lock is read-held, as the
        // function requires; `folio` is valid for writes.
        let page = from_err_ptr(unsafe {
            ffi::make_device_exclusive(mm, addr, owner.cast_mut(), &mut folio)
        })?;
        // SAFETY: On success the folio comes back locked and referenced,
        // both ours now.
        let folio = unsafe { LockedFolio::from_raw(folio) };
        // INVARIANT: `page` is a page of `folio`, which is locked and
        // referenced.
        Ok(ExclusivePage {
            page,
            _folio: folio,
        })
    }

    /// Makes the page at `addr` exclusive to the device that owns the
    /// notifier and calls `map` with the notifier lock held and the page,
    /// once it is known that no invalidation ran since the conversion
    /// began. `map` installs the device mapping; CPU access revokes it
    /// through the notifier as soon as this returns.
    ///
    /// Gives up with `EBUSY` when invalidations keep racing for longer than
    /// `HMM_RANGE_DEFAULT_TIMEOUT`; `EINVAL` if the page at `addr` is not
    /// inside the notifier's interval. `map` runs with page faults disabled
    /// (see the module documentation).
    ///
    /// # Examples
    ///
    /// The device maps the page under the notifier lock; the CPU's next access
    /// revokes it through the notifier, which drops the mapping.
    ///
    /// ```
    /// use rust_hmm::device_exclusive::exclusive_session;
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// // The state is the PFN the device maps, dropped by any invalidation.
    /// let notifier = kunit_mm::notifier_with(&mm, addr, PAGE, |mapped: &mut Option<u64>, _| {
    ///     *mapped = None;
    /// })?;
    /// let pfn = exclusive_session(&notifier, |s| {
    ///     s.map(addr, |mapped, page| {
    ///         *mapped = Some(page.pfn());
    ///         Ok(page.pfn())
    ///     })
    /// })?;
    /// assert_eq!(*notifier.lock(), Some(pfn));
    /// kunit_mm::read_user(addr, &mut [0u8; 8])?;
    /// assert_eq!(*notifier.lock(), None);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn map<R>(
        &mut self,
        addr: usize,
        map: impl for<'g> FnOnce(&'g mut N::State, GuardedPages<'g>) -> Result<R>,
    ) -> Result<R> {
        let first = addr & !(PAGE_SIZE - 1);
        let (lo, hi) = self.notifier.interval();
        if first < lo
            || first
                .checked_add(PAGE_SIZE - 1)
                .is_none_or(|last| last > hi)
        {
            return Err(EINVAL);
        }
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
            let seq = self.notifier.read_begin_raw();
            let page = self.convert(addr)?;
            if let Some(mut locked) = self.notifier.lock_valid(seq)? {
                let state = N::state_of(&mut locked);
                let r = {
                    let _nofault = crate::pfn_walk::NoPagefaults::new();
                    let tie = Tie::of(&raw const *state);
                    // SAFETY: The page is locked, referenced and mapped
                    // device-exclusive at `first` (the guard `page`, dropped
                    // after the closure returns), made writable by the
                    // fault above, under the notifier lock validated for
                    // the sequence taken before the conversion. The
                    // closure's `'g` ends with the call.
                    let pages =
                        unsafe { GuardedPages::new(page.pfn(), 1, first, tie, Kind::System, true) };
                    map(state, pages)
                };
                // Unlock the notifier before the folio: CPU faults take the
                // folio lock first.
                drop(locked);
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

#[kunit_tests(rust_hmm_device_exclusive)]
mod tests {
    use super::*;
    use crate::kunit_mm::{
        self,
        notifier,
        Notifier,
        PAGE, //
    };
    use crate::mmu_notifier::Event;

    /// Makes the page at `addr` exclusive to `n`, records it as the
    /// device's mapping, and returns its PFN.
    fn take(n: &Notifier, addr: usize) -> Result<u64> {
        exclusive_session(n, |s| {
            s.map(addr, |st, page| {
                st.mapped = Some((addr, page.pfn()));
                Ok(page.pfn())
            })
        })
    }

    /// Pages outside the interval are refused before anything happens.
    #[test]
    fn outside_interval() -> Result {
        let mm = kunit_mm::attach()?;
        let a = kunit_mm::mmap_anon(4, true)?;
        let n = notifier(&mm, a + PAGE, 2 * PAGE)?;
        for addr in [a, a + 3 * PAGE, a + 3 * PAGE + 8] {
            let r = exclusive_session(&n, |s| s.map(addr, |_, _| Ok(())));
            assert_eq!(r.err(), Some(EINVAL));
        }
        // Inside, unaligned: the page it is in.
        assert!(take(&n, a + PAGE + 8).is_ok());
        assert_eq!(n.lock().mapped.map(|m| m.0), Some(a + PAGE + 8));
        Ok(())
    }

    /// The conversion does not invalidate its own notifier; a CPU read of
    /// the page revokes the entry through it, and the data is intact.
    #[test]
    fn cpu_access_revokes() -> Result {
        let mm = kunit_mm::attach()?;
        let a = kunit_mm::mmap_anon(2, true)?;
        kunit_mm::write_user(a, &42u64.to_ne_bytes())?;
        let n = notifier(&mm, a, 2 * PAGE)?;
        let before = n.read_begin();
        // Taken, with the device's atomic on the page it now holds.
        let (pfn, old) = exclusive_session(&n, |s| {
            s.map(a, |st, page| {
                st.mapped = Some((a, page.pfn()));
                Ok((page.pfn(), page.fetch_add_u64(0, 1)?))
            })
        })?;
        assert_eq!(old, 42);
        {
            let st = n.lock();
            // Our own `MMU_NOTIFY_EXCLUSIVE` was filtered out.
            assert_eq!(st.calls, 0);
            assert_eq!(st.mapped, Some((a, pfn)));
        }
        // ...so a section opened before the conversion is still valid.
        assert!(n.lock_valid(before).is_some());
        let mut word = [0u8; 8];

        let seq = n.read_begin();
        kunit_mm::read_user(a, &mut word)?;
        assert_eq!(u64::from_ne_bytes(word), 43);
        {
            let st = n.lock();
            assert_eq!(st.calls, 1);
            assert_eq!(st.last, Some((a, a + PAGE, Event::Clear)));
            assert_eq!(st.mapped, None);
        }
        assert!(n.lock_valid(seq).is_none());
        // Taken again, it is the same page; a CPU write revokes it too.
        assert_eq!(take(&n, a)?, pfn);
        kunit_mm::write_user(a, &7u64.to_ne_bytes())?;
        assert_eq!(n.lock().mapped, None);
        // The device sees the CPU's write in the same page.
        let got = exclusive_session(&n, |s| {
            s.map(a, |_, page| {
                page.read(0, &mut word)?;
                Ok(page.pfn())
            })
        })?;
        assert_eq!((got, u64::from_ne_bytes(word)), (pfn, 7));
        Ok(())
    }

    /// Another notifier's conversion is an invalidation like any other:
    /// the owner filter is per notifier.
    #[test]
    fn other_owner_revokes() -> Result {
        let mm = kunit_mm::attach()?;
        let a = kunit_mm::mmap_anon(1, true)?;
        kunit_mm::write_user(a, &[1])?;
        let n1 = notifier(&mm, a, PAGE)?;
        let n2 = notifier(&mm, a, PAGE)?;
        let pfn = take(&n1, a)?;
        {
            // n1's conversion is an invalidation for n2, not for n1.
            assert_eq!(n1.lock().calls, 0);
            let st = n2.lock();
            assert_eq!(st.calls, 1);
            assert_eq!(st.last, Some((a, a + PAGE, Event::Exclusive)));
        }
        assert_eq!(take(&n2, a)?, pfn);
        {
            // Restoring n1's entry (`CLEAR`), then n2's conversion.
            let st = n1.lock();
            assert_eq!(st.calls, 2);
            assert_eq!(st.last.map(|l| l.2), Some(Event::Exclusive));
            assert_eq!(st.mapped, None);
        }
        {
            // The restore only: n2's own conversion was filtered.
            let st = n2.lock();
            assert_eq!(st.calls, 2);
            assert_eq!(st.last.map(|l| l.2), Some(Event::Clear));
            assert_eq!(st.mapped, Some((a, pfn)));
        }
        Ok(())
    }
}
