// SPDX-License-Identifier: GPL-2.0

//! A window of the address space that one request moves by DMA: an
//! interval notifier whose state holds the window's DMA mappings and the
//! transfer the device has in flight on it.
//!
//! # Ordering
//!
//! The device uses the bus address of a page from the moment the engine
//! is started until the transfer's ticket is done. The engine is started
//! under the notifier lock, right after the page was validated, and the
//! same lock hold records the transfer in [`Window::inflight`]. An
//! invalidation of the page takes the lock after that, so it sees the
//! record, waits for the ticket, and only then unmaps (behind an IOMMU,
//! `unmap_range()` has flushed the IOTLB when it returns). The page can
//! be freed only after the invalidation returns: by then the device is
//! done with it, and any later use of the address faults in the IOMMU.

use super::{
    DmaStats,
    Shared, //
};
use crate::hmm_dma::DmaMap;
use crate::mmu_notifier::{
    IntervalNotifierOps,
    NotifierRange, //
};
use core::sync::atomic::Ordering;
use kernel::{
    sync::Arc,
    time::{
        Instant,
        Monotonic, //
    }, //
};

/// A transfer the device runs on a page of the window.
pub(super) struct InFlight {
    /// The page's address.
    pub(super) addr: usize,
    /// Done once the engine's completed ticket reaches it.
    pub(super) ticket: u64,
}

impl InFlight {
    fn overlaps(&self, start: usize, end: usize) -> bool {
        self.addr < end && start <= self.addr
    }
}

/// The notifier state of a window.
pub(super) struct Window {
    /// Bus addresses of the window's pages that the device was handed.
    pub(super) map: DmaMap,
    /// The transfer in flight on the window, if any.
    pub(super) inflight: Option<InFlight>,
}

/// The notifier callbacks of a window.
pub(super) struct WindowOps {
    pub(super) shared: Arc<Shared>,
    pub(super) stats: Arc<DmaStats>,
}

impl WindowOps {
    /// Waits for the transfer in flight on `[start, end)`, if any.
    fn drain(&self, w: &mut Window, start: usize, end: usize) {
        if let Some(f) = w.inflight.take_if(|f| f.overlaps(start, end)) {
            if !self.shared.is_done(f.ticket) {
                self.stats.invalidate_waits.fetch_add(1, Ordering::Relaxed);
            }
            self.shared.wait_done(f.ticket);
        }
    }
}

impl IntervalNotifierOps for WindowOps {
    type State = Window;
    type Finish = ();

    fn invalidate(&self, w: &mut Window, r: &NotifierRange<'_>) {
        let t0 = Instant::<Monotonic>::now();
        // Whatever the event: the device must be done with the pages
        // before they can change. `busy()` kept a non-blocking caller
        // from getting here while a transfer runs.
        self.drain(w, r.start(), r.end());
        let n = w.map.unmap_range(r.start(), r.end());
        self.stats.unmapped.fetch_add(n as u64, Ordering::Relaxed);
        self.stats.invalidations.fetch_add(1, Ordering::Relaxed);
        let ns = t0.elapsed().as_nanos().max(0) as u64;
        self.stats.invalidate_ns.fetch_add(ns, Ordering::Relaxed);
    }

    fn busy(&self, w: &Window, r: &NotifierRange<'_>) -> bool {
        w.inflight
            .as_ref()
            .is_some_and(|f| f.overlaps(r.start(), r.end()) && !self.shared.is_done(f.ticket))
    }

    fn release(&self, w: &mut Window) {
        self.drain(w, 0, usize::MAX);
        w.map.unmap_range(0, usize::MAX);
    }
}
