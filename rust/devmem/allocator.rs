// SPDX-License-Identifier: GPL-2.0

//! The free-page allocator of a pool: free lists of single pages and of
//! PMD-sized blocks, folios handed out and taken back, and the growth of
//! the pool by one chunk when none is free.

use super::chunk::{
    PageState,
    VTable, //
};
use super::{
    DevicePool,
    DevmemOps,
    MemoryType,
    PMD_ORDER,
    PMD_PAGES, //
};
use crate::ffi;
use core::sync::atomic::{
    AtomicU8,
    Ordering, //
};
use kernel::{
    alloc::{
        flags::{
            GFP_KERNEL,
            GFP_NOWAIT, //
        },
        VVec, //
    },
    prelude::*, //
};

/// Free device pages, as PFNs. Capacities always cover every page of the
/// pool, so that freeing never allocates.
pub(super) struct FreeLists {
    pub(super) small: VVec<u64>,
    pub(super) large: VVec<u64>,
}

impl FreeLists {
    /// Turns every whole, aligned PMD block of free small pages back into a
    /// large block. Sorting keeps this in place (no allocation under the
    /// spinlock); it runs only when a PMD request finds no large block, and
    /// on an already sorted list it is linear.
    pub(super) fn coalesce(&mut self) {
        if self.small.len() < PMD_PAGES as usize {
            return;
        }
        crate::sort::heapsort(self.small.as_mut_slice());
        let v = self.small.as_mut_slice();
        let (mut read, mut write) = (0, 0);
        while read < v.len() {
            let head = v[read];
            let whole = head % PMD_PAGES == 0
                && read + PMD_PAGES as usize <= v.len()
                && v[read + PMD_PAGES as usize - 1] == head + PMD_PAGES - 1;
            if whole && self.large.push_within_capacity(head).is_ok() {
                // Sorted and unique, so the block is all there.
                read += PMD_PAGES as usize;
                continue;
            }
            v[write] = v[read];
            write += 1;
            read += 1;
        }
        self.small.truncate(write);
    }
}

impl<T: DevmemOps> DevicePool<T> {
    /// A free folio of `order` (0, or [`PMD_ORDER`] for memory that has
    /// large folios), initialised as the migration core wants a
    /// destination: locked, one reference. Registers a chunk when none is
    /// free; `ENOMEM` at the limit. Coherent memory comes unfilled: the CPU
    /// maps it as it is, and it holds what its last user left.
    ///
    /// Not public: a migration into the pool must commit through
    /// [`Self::migrate_to_device`], which records the pages that then hold
    /// data (eviction moves only those). Only tests take folios here.
    pub(crate) fn alloc(&self, order: u32) -> Result<crate::migrate::DstFolio> {
        if order != 0 && (order != PMD_ORDER || !T::Memory::LARGE) {
            return Err(EINVAL);
        }
        loop {
            let seen = self.nchunks.load(Ordering::Acquire);
            if let Some(pfn) = self.take(order) {
                // SAFETY: `pfn` is a free page of one of our chunks.
                let page = unsafe { ffi::pfn_to_page(pfn as usize) };
                // SAFETY: As above; the chunk registration is its pgmap.
                let chunk = unsafe { VTable::<T>::chunk(page) };
                // SAFETY: A free page (refcount 0) of `chunk` with room for
                // `order` (large blocks are aligned and whole).
                unsafe { ffi::rust_hmm_zone_device_folio_init(page, chunk.pagemap.get(), order) };
                chunk.set_state(pfn, 1 << order, PageState::Held);
                self.in_use.fetch_add(1 << order, Ordering::Relaxed);
                // SAFETY: Just initialised: locked, one reference, ours. The
                // CPU cannot read device-private memory, so it may be mapped
                // as it is; coherent memory is marked unfilled.
                return Ok(unsafe {
                    crate::migrate::DstFolio::from_device(page, order, T::Memory::CPU_FAULTS)
                });
            }
            self.grow(seen)?;
        }
    }

    fn take(&self, order: u32) -> Option<u64> {
        let mut free = self.free.lock();
        if order == PMD_ORDER {
            if free.large.is_empty() {
                free.coalesce();
            }
            return free.large.pop();
        }
        if let Some(pfn) = free.small.pop() {
            return Some(pfn);
        }
        // Break a large block up; the small list has room for all pages.
        let head = free.large.pop()?;
        for pfn in (head + 1..head + PMD_PAGES).rev() {
            let _ = free.small.push_within_capacity(pfn);
        }
        Some(head)
    }

    /// Returns a freed folio to the free lists.
    pub(super) fn release(&self, pfn: u64, order: u32) {
        self.in_use.fetch_sub(1 << order, Ordering::Relaxed);
        let mut free = self.free.lock();
        // Capacities cover every page, so these pushes cannot fail.
        if order == PMD_ORDER {
            let _ = free.large.push_within_capacity(pfn);
        } else {
            for p in pfn..pfn + (1 << order) {
                let _ = free.small.push_within_capacity(p);
            }
        }
    }

    /// Registers one more chunk, unless another thread did since the
    /// caller saw `seen` chunks.
    fn grow(&self, seen: usize) -> Result {
        let mut chunks = self.chunks.lock();
        if chunks.len() != seen {
            return Ok(());
        }
        if chunks.len() >= self.max_chunks {
            return Err(ENOMEM);
        }
        // Room for the new chunk first: once registered it must be kept.
        chunks.reserve(1, GFP_KERNEL)?;
        let (at, bytes) = match &self.range {
            Some(r) => {
                let (at, bytes) = r.chunk(chunks.len(), self.chunk_bytes).ok_or(ENOMEM)?;
                (Some(at), bytes)
            }
            None => (None, self.chunk_bytes),
        };
        let npages = bytes >> kernel::page::PAGE_SHIFT;
        let total = self.pages.load(Ordering::Relaxed) + npages as usize;
        // New lists with room for every page, filled outside the spinlock.
        let mut small = VVec::with_capacity(total, GFP_KERNEL)?;
        let mut large = VVec::with_capacity(total / PMD_PAGES as usize + 1, GFP_KERNEL)?;
        let mut data = VVec::with_capacity(npages as usize, GFP_KERNEL)?;
        let mut state = VVec::with_capacity(npages as usize, GFP_KERNEL)?;
        for _ in 0..npages {
            data.push(T::PageData::default(), GFP_KERNEL)?;
            state.push(AtomicU8::new(PageState::Free as u8), GFP_KERNEL)?;
        }
        let chunk = self.register(at, npages, data, state)?;
        let first = chunk.first_pfn;
        let end = first + npages;
        // Memory without large folios keeps every page on the small list.
        let aligned = if T::Memory::LARGE {
            first.next_multiple_of(PMD_PAGES)
        } else {
            end
        };
        {
            let mut free = self.free.lock();
            // Room was reserved above, so these copy without allocating.
            small.extend_from_slice(&free.small, GFP_NOWAIT)?;
            large.extend_from_slice(&free.large, GFP_NOWAIT)?;
            for pfn in first..aligned.min(end) {
                small.push_within_capacity(pfn).map_err(|_| ENOMEM)?;
            }
            let mut pfn = aligned;
            while pfn + PMD_PAGES <= end {
                large.push_within_capacity(pfn).map_err(|_| ENOMEM)?;
                pfn += PMD_PAGES;
            }
            for p in pfn..end {
                small.push_within_capacity(p).map_err(|_| ENOMEM)?;
            }
            core::mem::swap(&mut free.small, &mut small);
            core::mem::swap(&mut free.large, &mut large);
        }
        self.pages.store(total, Ordering::Relaxed);
        // Cannot fail: room was reserved before the chunk was registered.
        chunks.push_within_capacity(chunk).map_err(|_| ENOMEM)?;
        self.nchunks.store(chunks.len(), Ordering::Release);
        Ok(())
    }
}
