// SPDX-License-Identifier: GPL-2.0

//! The notifier side of a mirror: what the notifier lock protects (the
//! device page table), and the invalidations applied to it, in one pass or
//! two, handing the pages the device wrote to the mm.

use crate::device_pt::{
    DevicePageTable,
    DirtySink,
    Entry, //
};
use crate::guarded_page::{
    GuardedPages,
    PageRefs, //
};
use crate::mmu_notifier::{
    IntervalNotifierOps,
    NotifierRange, //
};
use crate::DmirrorDevice;
use core::sync::atomic::{
    AtomicU64,
    Ordering, //
};
use kernel::time::{
    Instant,
    Monotonic, //
};
use kernel::{
    alloc::flags::GFP_NOWAIT,
    prelude::*, //
};

/// Hands pages the device wrote back to the mm, at once.
pub(super) struct PageDirtier;

impl DirtySink for PageDirtier {
    fn dirty(&mut self, pages: GuardedPages<'_>) {
        // Cannot fail: the table reports only pages the device wrote.
        let _ = pages.mark_dirty();
    }
}

/// Dirty pages handed from the first pass of a two-pass invalidation to
/// the second, which calls `set_page_dirty()` without the notifier lock.
/// The first pass has removed the entries by then, so an unmap racing with
/// the second pass no longer waits for the lock: only the references kept
/// here stop the pages from being freed under `set_page_dirty()`.
pub(crate) struct DeferredDirty(KVec<PageRefs>);

impl DeferredDirty {
    fn set_dirty(self) {
        for refs in self.0.iter() {
            let _ = refs.mark_dirty();
        }
    }
}

impl DirtySink for DeferredDirty {
    /// Falls back to dirtying at once when the list cannot grow without
    /// sleeping.
    fn dirty(&mut self, pages: GuardedPages<'_>) {
        if self.0.reserve(1, GFP_NOWAIT).is_err() {
            PageDirtier.dirty(pages);
            return;
        }
        // Cannot fail: there is room.
        let _ = self.0.push(pages.get(), GFP_NOWAIT);
    }
}

/// The notifier side of a mirror. `TWO_PASS` picks the kernel interface:
/// device 0 uses the single-pass `invalidate`, device 1 the two-pass
/// `invalidate_start`/`invalidate_finish`, so both stay exercised.
pub(crate) struct MirrorOps<const TWO_PASS: bool> {
    pub(super) device: &'static DmirrorDevice,
    pub(super) counters: Counters,
}

/// Invalidations handled, and nanoseconds spent in them (first pass).
#[derive(Default)]
pub(crate) struct Counters {
    pub(super) invalidations: AtomicU64,
    pub(super) invalidate_ns: AtomicU64,
}

impl Counters {
    /// Runs the invalidation `f`, counting it and its time.
    pub(super) fn count<R>(&self, f: impl FnOnce() -> R) -> R {
        let start = Instant::<Monotonic>::now();
        let r = f();
        self.invalidations.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(0);
        self.invalidate_ns.fetch_add(ns, Ordering::Relaxed);
        r
    }
}

/// What the notifier lock protects.
pub(crate) struct MirrorState {
    pub(super) pt: DevicePageTable,
}

impl<const TWO_PASS: bool> IntervalNotifierOps for MirrorOps<TWO_PASS> {
    type State = MirrorState;
    /// Pages to dirty in the second pass.
    type Finish = DeferredDirty;
    const TWO_PASS: bool = TWO_PASS;

    fn invalidate(&self, state: &mut MirrorState, range: &NotifierRange<'_>) -> DeferredDirty {
        // Write-protection keeps read access; everything else drops it.
        let mask = if range.event().keeps_read() {
            Entry::VALID
        } else {
            0
        };
        let mut dirty = DeferredDirty(KVec::new());
        self.counters.count(|| {
            if TWO_PASS {
                state
                    .pt
                    .update(range.start(), range.end(), mask, &mut dirty);
            } else {
                state
                    .pt
                    .update(range.start(), range.end(), mask, &mut PageDirtier);
            }
        });
        dirty
    }

    /// `set_page_dirty()` and dropping references never sleep, so this
    /// runs whether or not the range is blockable.
    fn invalidate_finish(&self, dirty: DeferredDirty, _blockable: bool) {
        dirty.set_dirty();
    }

    fn release(&self, state: &mut MirrorState) {
        state.pt.clear(&mut PageDirtier);
    }
}
