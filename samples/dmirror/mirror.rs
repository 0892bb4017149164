// SPDX-License-Identifier: GPL-2.0

//! One mirror: a process address space seen by the device through its own
//! device page table.
//!
//! The device reads and writes only through that table. A miss is a device
//! page fault, served by `hmm_range_fault()` for the rest of the request and
//! counted in `faults`, as `lib/test_hmm.c` does. Pages are copied under
//! the notifier lock, and a user copy that faults could recurse into
//! reclaim, which takes that lock: READ copies to user memory with page
//! faults disabled and falls back to a bounce buffer where that stops short;
//! WRITE always goes through the bounce buffer.
//!
//! # Files
//!
//! - this file: the mirror ([`Mirror`]), its range checks and counters,
//!   and [`AnyMirror`], through which the device file reaches every form;
//! - `backend.rs`: where the table lives: one interval notifier over the
//!   address space, or a [`crate::gpusvm::GpuSvm`] (the `svm` devices);
//! - `invalidate.rs`: the notifier side: [`MirrorOps`], [`MirrorState`]
//!   (the device page table), and where the device's writes go;
//! - `access.rs`: the device page fault, READ and WRITE;
//! - `exclusive.rs`: EXCLUSIVE, CHECK_EXCLUSIVE and ATOMIC_ADD;
//! - `migration.rs`: MIGRATE_TO_DEV, MIGRATE_TO_SYS and RELEASE;
//! - `snapshot.rs`: SNAPSHOT.

use super::memory::Memory;
use super::uapi::*;
use super::DmirrorDevice;
use crate::gpusvm::GpuSvm;
use crate::hmm::MAX_RANGE_PAGES;
use crate::mmu_notifier::IntervalNotifier;
use core::sync::atomic::{
    AtomicBool,
    AtomicU32,
    AtomicU64,
    Ordering, //
};
use kernel::{
    mm::MmWithUser,
    page::PAGE_SIZE,
    prelude::*, //
};

mod access;
mod backend;
mod exclusive;
mod invalidate;
mod migration;
mod snapshot;

pub(crate) use backend::{
    Backend,
    SvmOps, //
};
use invalidate::MirrorOps;

/// Pages moved through the bounce buffer at a time.
const CHUNK_PAGES: usize = MAX_RANGE_PAGES;

/// A mirror of one process.
#[pin_data(PinnedDrop)]
pub(crate) struct Mirror<B: Backend> {
    #[pin]
    backend: B,
    /// Names this mirror as the owner of the device pages it migrated.
    id: u64,
    /// `HMM_DMIRROR_FLAG_FAIL_ALLOC`: destination allocations of this
    /// file's migrations left until the one that fails (0: none armed).
    fail_alloc: AtomicU32,
    /// `HMM_DMIRROR_FLAG_KEEP_ON_CLOSE`.
    keep_on_close: AtomicBool,
}

/// Source of [`Mirror::id`]s; 0 means "no owner".
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[pinned_drop]
impl<B: Backend> PinnedDrop for Mirror<B> {
    fn drop(self: Pin<&mut Self>) {
        // Pages this file moved to the device go back with it. What cannot
        // move now (busy for a moment) goes at the latest on unload.
        if !self.keep_on_close.load(Ordering::Relaxed) {
            let _ = self.memory().evict(Some(self.id));
        }
    }
}

impl<B: Backend> Mirror<B> {
    /// Mirrors `mm` for `device`.
    pub(crate) fn new<'a>(
        mm: &'a MmWithUser,
        device: &'static DmirrorDevice,
    ) -> Result<impl PinInit<Self, Error> + 'a> {
        Ok(try_pin_init!(Self {
            backend <- B::new(mm, device)?,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            fail_alloc: AtomicU32::new(0),
            keep_on_close: AtomicBool::new(false),
        }))
    }

    fn owner(&self) -> crate::migrate::PagemapOwner {
        self.backend.device().owner()
    }

    fn memory(&self) -> &Memory {
        &self.backend.device().memory
    }

    /// HMM_DMIRROR_FLAGS.
    pub(crate) fn set_flags(&self, flags: u64) {
        let nth = if flags & HMM_DMIRROR_FLAG_FAIL_ALLOC == 0 {
            0
        } else {
            ((flags >> HMM_DMIRROR_FLAG_FAIL_NTH_SHIFT) as u32 & 0xffff).max(1)
        };
        self.fail_alloc.store(nth, Ordering::Relaxed);
        self.keep_on_close.store(
            flags & HMM_DMIRROR_FLAG_KEEP_ON_CLOSE != 0,
            Ordering::Relaxed,
        );
    }

    /// Checks a command's range: page aligned, non-empty, no overflow
    /// (`EINVAL`, also for an address or a page count that does not fit a
    /// `usize`), and inside the user address space (`EFAULT`).
    fn range(&self, c: &HmmDmirrorCmd) -> Result<(usize, usize)> {
        let addr = usize::try_from(c.addr).map_err(|_| EINVAL)?;
        let npages = usize::try_from(c.npages).map_err(|_| EINVAL)?;
        self.pages(addr, npages)
    }

    /// [`Self::range`] of the `npages` pages at `addr`.
    fn pages(&self, addr: usize, npages: usize) -> Result<(usize, usize)> {
        if addr & (PAGE_SIZE - 1) != 0 || npages == 0 {
            return Err(EINVAL);
        }
        let size = npages.checked_mul(PAGE_SIZE).ok_or(EINVAL)?;
        let end = addr.checked_add(size).ok_or(EINVAL)?;
        if end > backend::task_size(self.backend.mm()) {
            return Err(EFAULT);
        }
        Ok((addr, end))
    }

    /// HMM_DMIRROR_STATS.
    pub(crate) fn stats(&self) -> HmmDmirrorStats {
        let ops = self.backend.counters();
        let pt = {
            let st = self.backend.lock();
            (st.pt.stats(), st.pt.bytes())
        };
        let dev = self.memory().stats();
        HmmDmirrorStats {
            invalidations: ops.invalidations.load(Ordering::Relaxed),
            invalidate_ns: ops.invalidate_ns.load(Ordering::Relaxed),
            entries: pt.0.entries,
            dirs: pt.0.dirs,
            table_bytes: pt.1,
            huge_entries: pt.0.huge,
            huge_splits: pt.0.splits,
            devmem_pages: dev.pages,
            devmem_in_use: dev.in_use,
            devmem_max_pages: dev.max_pages,
        }
    }
}

/// A mirror of the interval-notifier form `TWO_PASS`.
type Classic<const TWO_PASS: bool> = Mirror<IntervalNotifier<MirrorOps<TWO_PASS>>>;

/// A mirror of any form.
pub(crate) enum AnyMirror {
    /// Single-pass `invalidate`.
    Single(Pin<KBox<Classic<false>>>),
    /// Two-pass `invalidate_start`/`invalidate_finish`.
    TwoPass(Pin<KBox<Classic<true>>>),
    /// Ranges and chunk notifiers of a [`GpuSvm`].
    Svm(Pin<KBox<Mirror<GpuSvm<SvmOps>>>>),
}

/// Calls the same method of whichever mirror `$m` holds.
macro_rules! dispatch {
    ($m:expr, $x:ident => $e:expr) => {
        match $m {
            AnyMirror::Single($x) => $e,
            AnyMirror::TwoPass($x) => $e,
            AnyMirror::Svm($x) => $e,
        }
    };
}

impl AnyMirror {
    /// Mirrors `mm` for `device`: an SVM for the `svm` devices; odd
    /// `dmirror` devices use the two-pass form.
    pub(crate) fn new(mm: &MmWithUser, device: &'static DmirrorDevice) -> Result<Self> {
        Ok(if device.svm {
            Self::Svm(KBox::pin_init(Mirror::new(mm, device)?, GFP_KERNEL)?)
        } else if device.index % 2 == 1 {
            Self::TwoPass(KBox::pin_init(Mirror::new(mm, device)?, GFP_KERNEL)?)
        } else {
            Self::Single(KBox::pin_init(Mirror::new(mm, device)?, GFP_KERNEL)?)
        })
    }

    /// HMM_DMIRROR_READ and HMM_DMIRROR_READ_UNLOCKED.
    pub(crate) fn read(&self, c: &mut HmmDmirrorCmd, unlocked: bool) -> Result {
        dispatch!(self, m => m.read(c, unlocked))
    }

    /// HMM_DMIRROR_WRITE.
    pub(crate) fn write(&self, c: &mut HmmDmirrorCmd) -> Result {
        dispatch!(self, m => m.write(c))
    }

    /// HMM_DMIRROR_EXCLUSIVE.
    pub(crate) fn exclusive(&self, c: &mut HmmDmirrorCmd) -> Result {
        dispatch!(self, m => m.exclusive(c))
    }

    /// HMM_DMIRROR_CHECK_EXCLUSIVE.
    pub(crate) fn check_exclusive(&self, c: &HmmDmirrorCmd) -> Result {
        dispatch!(self, m => m.check_exclusive(c))
    }

    /// HMM_DMIRROR_ATOMIC_ADD.
    pub(crate) fn atomic_add(&self, a: &mut HmmDmirrorAtomic) -> Result {
        dispatch!(self, m => m.atomic_add(a))
    }

    /// HMM_DMIRROR_STATS.
    pub(crate) fn stats(&self) -> HmmDmirrorStats {
        dispatch!(self, m => m.stats())
    }

    /// HMM_DMIRROR_SNAPSHOT.
    pub(crate) fn snapshot(&self, c: &mut HmmDmirrorCmd) -> Result {
        dispatch!(self, m => m.snapshot(c))
    }

    /// HMM_DMIRROR_MIGRATE_TO_DEV.
    pub(crate) fn migrate_to_device(&self, c: &mut HmmDmirrorCmd) -> Result {
        dispatch!(self, m => m.migrate_to_device(c))
    }

    /// HMM_DMIRROR_MIGRATE_TO_SYS.
    pub(crate) fn migrate_to_system(&self, c: &mut HmmDmirrorCmd) -> Result {
        dispatch!(self, m => m.migrate_to_system(c))
    }

    /// HMM_DMIRROR_RELEASE.
    pub(crate) fn release(&self) -> Result {
        dispatch!(self, m => m.release())
    }

    /// HMM_DMIRROR_FLAGS.
    pub(crate) fn set_flags(&self, flags: u64) {
        dispatch!(self, m => m.set_flags(flags))
    }

    /// HMM_SVM_PREFETCH.
    pub(crate) fn prefetch(&self, addr: usize, npages: usize, to_device: bool) -> Result<u64> {
        dispatch!(self, m => m.prefetch(addr, npages, to_device))
    }

    /// The SVM of an `svm` device's mirror; `ENOTTY` for the others.
    pub(crate) fn svm(&self) -> Result<&GpuSvm<SvmOps>> {
        dispatch!(self, m => m.backend.svm())
    }
}
