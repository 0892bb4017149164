// SPDX-License-Identifier: GPL-2.0

//! `hmm_range_fault()` (`include/linux/hmm.h`).
//!
//! An [`Range`] asks the CPU page tables about a range of the mirrored
//! process, faulting pages in as requested. The answers are only handed out
//! inside a [`Faulted`], together with the notifier lock, after the notifier
//! sequence has been checked: a PFN can be read only while it is known to be
//! current, and the device page table can be filled from it only then.
//!
//! # Safety contract
//!
//! A range must lie inside its notifier's interval
//! ([`IntervalNotifier::covers`]), or [`Range::new`] refuses it with
//! `EINVAL`: outside it no invalidation reaches the notifier, the sequence
//! never moves, and a validated answer could be stale. Inside it, the PFNs
//! of a [`Faulted`] were current when the lock was taken and stay so while
//! it is held (every invalidation of them waits for the lock).
//!
//! # Deadlocks
//!
//! [`Range::fault`] takes the mmap read lock (or lets the kernel take
//! it), waits for running invalidations, and then takes the notifier lock.
//! So it must not be called with the mmap lock of the mm held, nor with the
//! notifier lock held (a [`Faulted`] of another range of the same notifier,
//! or a guard of [`IntervalNotifier::lock`]; lockdep kernels warn). A
//! [`Faulted`] holds the notifier lock: the rules of
//! [`crate::mmu_notifier`] apply while it lives.
//!
//! [`IntervalNotifier::covers`]: crate::mmu_notifier::IntervalNotifier::covers
//! [`IntervalNotifier::lock`]: crate::mmu_notifier::IntervalNotifier::lock

use crate::ffi;
use kernel::{
    mm::{
        virt::VmaRef,
        MmWithUser, //
    },
    prelude::*, //
};

const PAGE_SHIFT: u32 = kernel::page::PAGE_SHIFT as u32;

// The `HMM_PFN_*` values with bit 63 set, built from what bindgen gives: it
// makes no constant of such a value.
pub(crate) const HMM_PFN_VALID: u64 = 1 << ffi::HMM_PFN_VALID_BIT;
const HMM_PFN_REQ_FAULT: u64 = 1 << ffi::HMM_PFN_REQ_FAULT_BIT;
pub(crate) const HMM_PFN_FLAGS: u64 = !ffi::HMM_PFN_NOT_FLAGS;

/// Pages one [`Range`] covers at most, so that its PFN array stays small.
///
/// # Examples
///
/// A notifier may watch more than one range can cover: a longer stretch
/// takes several requests.
///
/// ```
/// use rust_hmm::hmm::{Range, MAX_RANGE_PAGES};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(1, true)?;
/// let notifier = kunit_mm::notifier(&mm, addr, 2 * MAX_RANGE_PAGES * PAGE)?;
/// let max = addr + MAX_RANGE_PAGES * PAGE;
/// assert!(Range::new(&notifier, addr, max, None).is_ok());
/// assert_eq!(Range::new(&notifier, addr, max + PAGE, None).err(), Some(EINVAL));
/// # Ok::<(), Error>(())
/// ```
pub const MAX_RANGE_PAGES: usize = 512;

/// What to demand of every page of a range.
///
/// # Examples
///
/// The three demands on a read-only mapping nobody touched: a snapshot
/// finds nothing there, a read fault maps the shared zero page, and a
/// write fault is refused.
///
/// ```
/// use rust_hmm::hmm::{Fault, Mode, Range};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let ro = kunit_mm::mmap_anon(1, false)?;
/// # let notifier = kunit_mm::notifier(&mm, ro, PAGE)?;
/// let mut range = Range::new(&notifier, ro, ro + PAGE, None)?;
/// assert!(!range.fault(Fault::None, Mode::Locked)?.pfns()[0].is_valid());
/// assert!(range.fault(Fault::Read, Mode::Locked)?.pfns()[0].is_zero());
/// assert_eq!(range.fault(Fault::Write, Mode::Locked).err(), Some(EPERM));
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fault {
    /// Snapshot: report what is there, fault nothing.
    None,
    /// Fault pages in for reading.
    Read,
    /// Fault pages in for writing (breaks COW).
    Write,
}

impl Fault {
    fn flags(self) -> u64 {
        match self {
            Fault::None => 0,
            Fault::Read => HMM_PFN_REQ_FAULT,
            Fault::Write => HMM_PFN_REQ_FAULT | ffi::HMM_PFN_REQ_WRITE,
        }
    }
}

/// `HMM_RANGE_DEFAULT_TIMEOUT`: how long [`Mode::Locked`] retries after
/// invalidations before `EBUSY`, in milliseconds; a good
/// [`Mode::Unlocked`] timeout too.
///
/// # Examples
///
/// ```
/// use rust_hmm::hmm::DEFAULT_TIMEOUT_MS;
///
/// // `HMM_RANGE_DEFAULT_TIMEOUT` is one second.
/// assert_eq!(DEFAULT_TIMEOUT_MS, 1000);
/// ```
pub const DEFAULT_TIMEOUT_MS: u32 = ffi::HMM_RANGE_DEFAULT_TIMEOUT;

/// How to take the mmap lock while faulting.
///
/// # Examples
///
/// A fault that lets the kernel take the mmap lock itself, as drivers do
/// for memory whose faults may drop it (userfaultfd, file systems).
///
/// ```
/// use rust_hmm::hmm::{Fault, Mode, Range, DEFAULT_TIMEOUT_MS};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(1, true)?;
/// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
///
/// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
/// let mode = Mode::Unlocked { timeout_ms: DEFAULT_TIMEOUT_MS };
/// let faulted = range.fault(Fault::Write, mode)?;
/// assert!(faulted.pfns()[0].is_write());
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Hold the mmap read lock around `hmm_range_fault()`; give up with
    /// `EBUSY` after `HMM_RANGE_DEFAULT_TIMEOUT` of invalidation retries.
    Locked,
    /// `hmm_range_fault_unlocked_timeout()`: the kernel takes the lock and
    /// lets fault handlers drop it (userfaultfd, file systems). The timeout
    /// bounds its internal retries in milliseconds; 0 retries forever.
    Unlocked {
        /// Milliseconds, or 0 for no limit.
        timeout_ms: u32,
    },
}

mod pfn;
mod range;

pub use pfn::{
    page_kinds,
    PageKind,
    Pfn, //
};
pub use range::{
    Faulted,
    FaultedPfns,
    Range, //
};

/// Called between the chunks of a long request, with no spinlock held:
/// gives up the CPU if needed, and fails with `EINTR` once the task has a
/// fatal signal, so that a request over an absurd range stays killable
/// (with 5-level paging a user range can span 2^56 bytes).
///
/// # Examples
///
/// A long loop that stays preemptible and stops for a fatal signal; the
/// test thread has none, so it runs to the end.
///
/// ```
/// use rust_hmm::hmm::resched_or_killed;
///
/// let mut chunks = 0;
/// for _ in 0..1000 {
///     // ... one chunk of the work ...
///     resched_or_killed()?;
///     chunks += 1;
/// }
/// assert_eq!(chunks, 1000);
/// # Ok::<(), Error>(())
/// ```
pub fn resched_or_killed() -> Result {
    // SAFETY: The helper only calls `cond_resched()` and reads the current
    // task's signal state; the callers run in process context.
    if unsafe { ffi::rust_hmm_resched_killed() } {
        return Err(EINTR);
    }
    Ok(())
}

/// The bounds of the first VMA of `mm` that ends above `addr` (it may
/// contain `addr`), or `None` if there is none: lets a caller answer a
/// hole in the address space without walking it a range at a time.
///
/// The answer is only a snapshot: the mmap lock is dropped on return.
/// Takes the mmap read lock, so never with a notifier lock held (the mmap
/// lock nests outside it).
///
/// # Examples
///
/// The VMA around an address, and past a hole the next one, so that a
/// caller answers the whole hole at once.
///
/// ```
/// use rust_hmm::hmm::next_vma;
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(3, true)?;
/// assert_eq!(next_vma(&mm, addr + PAGE), Some(addr..addr + 3 * PAGE));
/// kunit_mm::munmap(addr + PAGE, 1)?;
/// assert_eq!(next_vma(&mm, addr + PAGE), Some(addr + 2 * PAGE..addr + 3 * PAGE));
/// // Nothing else is mapped above in the test's address space.
/// assert_eq!(next_vma(&mm, addr + 3 * PAGE), None);
/// # Ok::<(), Error>(())
/// ```
pub fn next_vma(mm: &MmWithUser, addr: usize) -> Option<core::ops::Range<usize>> {
    let _lock = mm.mmap_read_lock();
    // SAFETY: `mm` has users and its mmap lock is read-held, which is what
    // `find_vma()` requires; any address may be asked about.
    let vma = unsafe { kernel::bindings::find_vma(mm.as_raw(), addr) };
    (!vma.is_null()).then(|| {
        // SAFETY: A non-NULL result is a VMA of `mm`, valid while the mmap
        // read lock is held, and the reference does not outlive `_lock`.
        let vma = unsafe { VmaRef::from_raw(vma) };
        vma.start()..vma.end()
    })
}

/// The first PFN of the `1 << order` pages (naturally aligned, a PMD's
/// worth for the PMD order) around page `i` of `pfns`, the answer for the
/// range starting at `start`, if the CPU maps all of them with one entry of
/// at least that order.
///
/// `hmm_pfn_to_map_order()` tells that the CPU maps the block with one
/// entry, so its pages are one folio even where they lie outside the range
/// asked for. The pages of the block inside the range must agree with that
/// (contiguous PFNs, same flags, same order), or this is `None`.
/// Device-private pages are left to 4 KiB entries.
///
/// # Examples
///
/// Small pages are blocks of one page (order 0); a PMD-sized block needs a
/// huge mapping, which small pages are not.
///
/// ```
/// use rust_hmm::hmm::{block_head, Fault, Mode, Range};
/// use rust_hmm::migrate::PMD_ORDER;
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(2, true)?;
/// # let notifier = kunit_mm::notifier(&mm, addr, 2 * PAGE)?;
/// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
/// let faulted = range.fault(Fault::Write, Mode::Locked)?;
/// let pfns = faulted.pfns();
/// assert_eq!(block_head(pfns, addr, 1, 0), Some(pfns[1].pfn()));
/// assert_eq!(block_head(pfns, addr, 1, PMD_ORDER), None);
/// assert_eq!(block_head(pfns, addr, 2, 0), None); // past the range
/// # Ok::<(), Error>(())
/// ```
pub fn block_head(pfns: &[Pfn], start: usize, i: usize, order: u32) -> Option<u64> {
    let p = pfns.get(i)?;
    if !p.is_valid() || p.is_error() || p.order() < order || order >= 32 {
        return None;
    }
    let n = 1u64 << order;
    let va = start + (i << PAGE_SHIFT);
    let off = (va >> PAGE_SHIFT) as u64 & (n - 1);
    let head = p.pfn().checked_sub(off)?;
    if head & (n - 1) != 0 || p.is_device_private() {
        return None;
    }
    // The block's pages inside `pfns`, from `first`, whose offset in the
    // block is `first_off`.
    let back = (off as usize).min(i);
    let (first, first_off) = (i - back, off - back as u64);
    let last = pfns.len().min(i + (n - off) as usize);
    let flags = HMM_PFN_VALID | ffi::HMM_PFN_WRITE | ffi::HMM_PFN_ERROR;
    let agree = pfns[first..last].iter().enumerate().all(|(j, q)| {
        q.0 & flags == p.0 & flags && q.order() >= order && q.pfn() == head + first_off + j as u64
    });
    agree.then_some(head)
}

mod tests;
