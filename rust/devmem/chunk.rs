// SPDX-License-Identifier: GPL-2.0

//! Chunks: one `memremap_pages()` registration each, over address space
//! that no RAM uses, with the state and driver data of each of its pages,
//! and the `dev_pagemap_ops` through which the core reaches the pool.

use super::{
    DeviceFault,
    DevicePool,
    DevmemOps,
    MemoryType, //
};
use crate::ffi;
use core::marker::PhantomData;
use core::sync::atomic::{
    AtomicU8,
    Ordering, //
};
use kernel::{
    alloc::VVec,
    bindings,
    prelude::*,
    types::Opaque, //
};

/// One `memremap_pages()` registration.
///
/// # Invariants
///
/// `res` is a region reserved for this chunk until drop (address space no
/// RAM uses, or soft-reserved memory of the pool's range), and if
/// `registered`, `pagemap` is registered over it; `pool` outlives the chunk.
#[repr(C)]
pub(super) struct Chunk<T: DevmemOps> {
    /// First, so that a `dev_pagemap` pointer is a `Chunk` pointer.
    pub(super) pagemap: Opaque<bindings::dev_pagemap>,
    pool: *const DevicePool<T>,
    res: *mut bindings::resource,
    pub(super) first_pfn: u64,
    pub(super) npages: u64,
    pub(super) data: VVec<T::PageData>,
    /// Per page, a [`PageState`] value.
    state: VVec<AtomicU8>,
    registered: bool,
}

/// What a device page of a pool is doing. Only the pool changes it: to
/// [`PageState::Held`] when it hands the page out, between `Held` and
/// [`PageState::Resident`] while the page is locked by a migration that
/// committed, and to [`PageState::Free`] when the folio is freed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(super) enum PageState {
    Free = 0,
    /// Handed out but holding no process data: a destination not yet
    /// migrated into, or a page whose data has migrated out and which is
    /// about to be freed. Eviction leaves it alone: it is not mapped, and
    /// moving it would put stale (or no) data in a second place.
    Held = 1,
    /// Holds the data of a mapping: a migration into the page committed
    /// and none out of it since.
    Resident = 2,
}

// SAFETY: The kernel synchronises `pagemap` itself; the other fields are
// immutable after registration and `data` is `Sync`.
unsafe impl<T: DevmemOps> Sync for Chunk<T> {}
// SAFETY: As above; nothing is tied to the creating thread.
unsafe impl<T: DevmemOps> Send for Chunk<T> {}

impl<T: DevmemOps> Chunk<T> {
    /// Sets the state of the `n` pages from `pfn` on (inside the chunk).
    pub(super) fn set_state(&self, pfn: u64, n: usize, state: PageState) {
        let first = (pfn - self.first_pfn) as usize;
        if let Some(cells) = self.state.get(first..first + n) {
            for c in cells {
                c.store(state as u8, Ordering::Release);
            }
        }
    }

    /// The state of page `i` of the chunk.
    pub(super) fn state(&self, i: usize) -> PageState {
        match self.state.get(i).map(|c| c.load(Ordering::Acquire)) {
            Some(1) => PageState::Held,
            Some(2) => PageState::Resident,
            _ => PageState::Free,
        }
    }
}

impl<T: DevmemOps> Drop for Chunk<T> {
    fn drop(&mut self) {
        if self.registered {
            // SAFETY: Registered (type invariant); this waits for every page
            // to be freed, which `evict_all` has arranged.
            unsafe { bindings::memunmap_pages(self.pagemap.get()) };
        }
        // SAFETY: `res` was reserved for this chunk and is released once,
        // whole: the kernel rounds the reservation up to a memory section,
        // which may be more than the chunk registers.
        unsafe {
            let (start, end) = ((*self.res).start, (*self.res).end);
            bindings::release_mem_region(start, end - start + 1)
        };
    }
}

/// The `dev_pagemap_ops` of pools of `T`.
pub(super) struct VTable<T>(PhantomData<T>);

impl<T: DevmemOps> VTable<T> {
    const OPS: bindings::dev_pagemap_ops = bindings::dev_pagemap_ops {
        folio_free: Some(Self::folio_free),
        // Coherent pages are mapped by the CPU, which never faults on them.
        migrate_to_ram: if T::Memory::CPU_FAULTS {
            Some(Self::migrate_to_ram)
        } else {
            None
        },
        memory_failure: None,
        // The core's default split (copy `pgmap` and `mapping` to the new
        // folio) is right: per-page data is kept by PFN, not in the folio.
        folio_split: None,
    };

    /// # Safety
    ///
    /// `page` belongs to a chunk of a live pool of `T`.
    pub(super) unsafe fn chunk<'a>(page: *mut bindings::page) -> &'a Chunk<T> {
        // SAFETY: A ZONE_DEVICE page names its `dev_pagemap`, the first field
        // of our `#[repr(C)]` chunk, which lives as long as its pages.
        unsafe { &*ffi::page_pgmap(page).cast::<Chunk<T>>() }
    }

    /// # Safety
    ///
    /// Called by the core with a folio of one of our pagemaps.
    unsafe extern "C" fn folio_free(folio: *mut bindings::folio) {
        let page = folio.cast::<bindings::page>();
        // SAFETY: The core calls this only for folios of our pagemaps.
        let chunk = unsafe { Self::chunk(page) };
        // SAFETY: `pool` outlives its chunks (type invariant of `Chunk`).
        let pool = unsafe { &*chunk.pool };
        // SAFETY: `folio` is being freed (no reference is left, so it is
        // not a `Folio`), and is ours until this returns.
        let (pfn, order) = unsafe { (ffi::page_to_pfn(page) as u64, ffi::folio_order(folio)) };
        // A folio lies inside its chunk, so this always finds its data.
        let first = (pfn - chunk.first_pfn) as usize;
        if let Some(data) = chunk.data.get(first..first + (1 << order)) {
            T::folio_free(pool, pfn, data);
        }
        chunk.set_state(pfn, 1 << order, PageState::Free);
        pool.release(pfn, order);
    }

    /// # Safety
    ///
    /// Called by the core with a valid fault on a page of our pagemaps.
    unsafe extern "C" fn migrate_to_ram(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
        // SAFETY: The core passes a valid fault whose page is ours.
        let raw = unsafe { &*vmf };
        // SAFETY: As above.
        let chunk = unsafe { Self::chunk(raw.page) };
        // SAFETY: `pool` outlives its chunks.
        let pool = unsafe { &*chunk.pool };
        pool.fault_to_ram(&DeviceFault { raw })
    }
}

impl<T: DevmemOps> DevicePool<T> {
    /// Reserves address space, at `at` (soft-reserved memory of this
    /// coherent pool) or wherever no RAM is (device-private memory), and
    /// registers `npages` device pages there.
    pub(super) fn register(
        &self,
        at: Option<u64>,
        npages: u64,
        data: VVec<T::PageData>,
        state: VVec<AtomicU8>,
    ) -> Result<Pin<KBox<Chunk<T>>>> {
        let bytes = npages << kernel::page::PAGE_SHIFT;
        let name = c"rust_hmm".as_char_ptr();
        let res = match at {
            // SAFETY: Claims the range in the resource tree, under its own
            // lock; the name is static.
            Some(at) => unsafe { bindings::request_mem_region(at, bytes, name) },
            // SAFETY: Searches the resource tree under its own lock; the
            // name is static.
            None => unsafe {
                bindings::request_free_mem_region(
                    &raw mut bindings::iomem_resource,
                    bytes as usize,
                    name,
                )
            },
        };
        let res = kernel::error::from_err_ptr(res)?;
        if res.is_null() {
            // Claimed already: by another pool, or a driver.
            return Err(if at.is_some() { EBUSY } else { ENOMEM });
        }
        // SAFETY: A region just reserved for us, of at least `bytes`.
        let (start, res_end) = unsafe { ((*res).start, (*res).end) };
        let first_pfn = start >> kernel::page::PAGE_SHIFT;
        let (pfn, n) = (first_pfn as usize, npages as usize);
        // SAFETY: Only looks the PFNs up in the kernel's pagemap table.
        let taken = at.is_some() && unsafe { ffi::rust_hmm_pfns_have_pgmap(pfn, n) };
        if taken {
            // Registered by a driver that did not claim it (test_hmm does
            // not): `memremap_pages()` would WARN and fail.
            // SAFETY: Releases the region reserved above, whole.
            unsafe { bindings::release_mem_region(start, res_end - start + 1) };
            return Err(EBUSY);
        }
        let end = start + bytes - 1;
        // Owning the region from here on, the chunk releases it on drop.
        let chunk = KBox::new(
            Chunk {
                pagemap: Opaque::new(bindings::dev_pagemap::default()),
                pool: self,
                res,
                first_pfn: start >> kernel::page::PAGE_SHIFT,
                npages,
                data,
                state,
                registered: false,
            },
            GFP_KERNEL,
        );
        let mut chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                // SAFETY: Releases the region reserved above, whole.
                unsafe { bindings::release_mem_region(start, res_end - start + 1) };
                return Err(e.into());
            }
        };
        let pgmap = chunk.pagemap.get();
        // SAFETY: `pgmap` is ours and not yet registered; the chunk is boxed
        // and never moves, as `memremap_pages()` requires.
        let ret = unsafe {
            (*pgmap).type_ = T::Memory::TYPE;
            (*pgmap).nr_range = 1;
            let range = (*pgmap).__bindgen_anon_1.range.as_mut();
            range.start = start;
            range.end = end;
            (*pgmap).ops = &VTable::<T>::OPS;
            (*pgmap).owner = self.owner().as_ptr();
            bindings::memremap_pages(pgmap, ffi::numa_node_id())
        };
        if kernel::error::from_err_ptr(ret)?.is_null() {
            return Err(EFAULT);
        }
        chunk.registered = true;
        // INVARIANT: Registered over the reserved region; `self` is pinned
        // and drops its chunks before it goes.
        Ok(KBox::into_pin(chunk))
    }
}
