// SPDX-License-Identifier: GPL-2.0

//! Real address spaces for the KUnit suites of the abstractions.
//!
//! Each KUnit case runs in a kernel thread of its own. [`attach`] gives that
//! thread an mm (`kunit_attach_mm()`, `lib/kunit/user_alloc.c`), which it
//! keeps until the [`TestMm`] is dropped, so the `vm_mmap()`, `vm_munmap()`
//! and user copies below act on a process address space like any other:
//! faults, invalidations and notifiers behave as for a user process.

use crate::ffi;
use crate::mmu_notifier::{
    Event,
    IntervalNotifier,
    IntervalNotifierOps,
    NotifierRange, //
};
use core::sync::atomic::{
    AtomicU64,
    Ordering, //
};
use kernel::{
    bindings,
    error::to_result,
    mm::MmWithUser,
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        aref::ARef,
        Arc, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    }, //
};

/// Page size as an address offset.
pub(crate) const PAGE: usize = PAGE_SIZE;

/// The test thread's own mm, given by [`attach`]; dropping it takes the mm
/// away from the thread again and frees it.
///
/// `kunit_attach_mm()` leaves the mm attached until the thread exits, and
/// then `exit_mm()` takes a lazy-TLB reference of its own on top of the one
/// `kthread_use_mm()` took: one `mm_struct` (about 4 KiB of slab) was lost
/// per case, which `make check`'s unload test saw as slab growth over 100
/// module loads. Detaching with `kthread_unuse_mm()` leaves the thread one
/// lazy reference, dropped at its last context switch, as for any kthread.
///
/// # Invariants
///
/// `mm` is `current`'s mm, attached by `kunit_attach_mm()`, which holds a
/// user reference of its own that this type drops.
pub(crate) struct TestMm {
    mm: ARef<MmWithUser>,
}

impl core::ops::Deref for TestMm {
    type Target = MmWithUser;

    fn deref(&self) -> &MmWithUser {
        &self.mm
    }
}

impl Drop for TestMm {
    fn drop(&mut self) {
        let mm = self.mm.as_raw();
        // SAFETY: By the type invariant `mm` is the current kthread's mm,
        // from `kthread_use_mm()`, and the user reference `mm_alloc()` gave
        // `kunit_attach_mm()` is ours to drop; `self.mm` keeps another until
        // after this.
        unsafe {
            bindings::kthread_unuse_mm(mm);
            bindings::mmput(mm);
        }
    }
}

/// Gives the test thread an mm of its own, until the result is dropped.
/// `EBUSY` if the thread already has one.
pub(crate) fn attach() -> Result<TestMm> {
    if kernel::current!().mm().is_some() {
        return Err(EBUSY);
    }
    // SAFETY: Called from a KUnit case, whose kernel thread has no mm (just
    // checked) and may adopt one.
    to_result(unsafe { bindings::kunit_attach_mm() })?;
    let mm = kernel::current!()
        .mm()
        .ok_or(ENOMEM)?
        .mmget_not_zero()
        .ok_or(EFAULT)?;
    // INVARIANT: The mm `kunit_attach_mm()` just attached to this thread.
    Ok(TestMm { mm })
}

/// Maps `pages` pages of `file` (shared, from file page `pgoff`) or, with a
/// null `file`, anonymous private memory, in the thread's mm.
pub(crate) fn mmap(
    file: *mut bindings::file,
    pages: usize,
    writable: bool,
    pgoff: usize,
) -> Result<usize> {
    let len = pages * PAGE_SIZE;
    // SAFETY: `file` is null or a file the caller holds a reference to;
    // `vm_mmap()` takes its own for the mapping.
    let addr = unsafe { ffi::rust_hmm_vm_mmap(file, len, writable, pgoff) };
    if addr > usize::MAX - 4095 {
        // `IS_ERR_VALUE()`: a negative errno.
        return Err(Error::from_errno(addr as i32));
    }
    Ok(addr)
}

/// Anonymous private memory: [`mmap`] with no file.
pub(crate) fn mmap_anon(pages: usize, writable: bool) -> Result<usize> {
    mmap(core::ptr::null_mut(), pages, writable, 0)
}

/// `vm_munmap()` of `pages` pages at `addr` in the thread's mm.
pub(crate) fn munmap(addr: usize, pages: usize) -> Result {
    // SAFETY: Only the test's own mappings are passed, and nothing of the
    // kernel's lives in the thread's user address space.
    to_result(unsafe { bindings::vm_munmap(addr, pages * PAGE_SIZE) })
}

/// Writes `data` to user address `addr` as the CPU would (faults included).
pub(crate) fn write_user(addr: usize, data: &[u8]) -> Result {
    UserSlice::new(UserPtr::from_addr(addr), data.len())
        .writer()
        .write_slice(data)
}

/// Reads `out.len()` bytes at user address `addr`, as the CPU would.
pub(crate) fn read_user(addr: usize, out: &mut [u8]) -> Result {
    UserSlice::new(UserPtr::from_addr(addr), out.len())
        .reader()
        .read_slice(out)
}

/// The first `out.len()` bytes of page `pfn`, read through the kernel's
/// mapping of it.
///
/// # Safety
///
/// `pfn` is a page that stays allocated during the call.
pub(crate) unsafe fn read_pfn(pfn: u64, out: &mut [u8]) -> bool {
    // SAFETY: The caller keeps the page alive; `out` has room for the bytes.
    unsafe { ffi::rust_hmm_copy_from_folio(out.as_mut_ptr().cast(), pfn as usize, out.len()) }
}

/// What a [`Recorder`] saw, under the notifier lock.
#[derive(Default)]
pub(crate) struct Seen {
    /// Invalidations that reached the callback.
    pub(crate) calls: u64,
    /// The last one's range and event.
    pub(crate) last: Option<(usize, usize, Event)>,
    /// A device mapping of one page (`(address, pfn)`), dropped by any
    /// invalidation that covers it.
    pub(crate) mapped: Option<(usize, u64)>,
}

/// Counters shared with the test, outside the notifier.
#[derive(Default)]
pub(crate) struct Counters {
    /// Second passes run, and how many of them were told they may block.
    pub(crate) finishes: AtomicU64,
    pub(crate) blockable: AtomicU64,
    /// `release` calls.
    pub(crate) releases: AtomicU64,
}

/// Notifier callbacks that record what reaches them.
pub(crate) struct Recorder<const TWO_PASS: bool> {
    pub(crate) counters: Arc<Counters>,
}

impl<const TWO_PASS: bool> Recorder<TWO_PASS> {
    /// Callbacks and the counters they update.
    pub(crate) fn new() -> Result<(Self, Arc<Counters>)> {
        let counters = Arc::new(Counters::default(), GFP_KERNEL)?;
        Ok((
            Self {
                counters: counters.clone(),
            },
            counters,
        ))
    }
}

impl<const TWO_PASS: bool> IntervalNotifierOps for Recorder<TWO_PASS> {
    type State = Seen;
    type Finish = ();
    const TWO_PASS: bool = TWO_PASS;

    fn invalidate(&self, state: &mut Seen, range: &NotifierRange<'_>) {
        state.calls += 1;
        state.last = Some((range.start(), range.end(), range.event()));
        if let Some((addr, _)) = state.mapped {
            if range.start() <= addr && addr < range.end() {
                state.mapped = None;
            }
        }
    }

    fn invalidate_finish(&self, _finish: (), blockable: bool) {
        self.counters.finishes.fetch_add(1, Ordering::Relaxed);
        if blockable {
            self.counters.blockable.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn release(&self, _state: &mut Seen) {
        self.counters.releases.fetch_add(1, Ordering::Relaxed);
    }
}

/// A single-pass [`Recorder`] notifier, as most suites use.
pub(crate) type Notifier = Pin<KBox<IntervalNotifier<Recorder<false>>>>;

/// A [`Notifier`] over `[start, start + len)` of `mm`.
pub(crate) fn notifier(mm: &MmWithUser, start: usize, len: usize) -> Result<Notifier> {
    let (ops, _) = Recorder::new()?;
    KBox::pin_init(
        IntervalNotifier::new(mm, start, len, ops, Default::default()),
        GFP_KERNEL,
    )
}
