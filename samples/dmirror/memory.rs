// SPDX-License-Identifier: GPL-2.0

//! The sample device's memory: device-private pages whose contents live in
//! ordinary pages the module allocates ("data pages"), as in
//! `lib/test_hmm.c`. A real device keeps them in its own memory and copies
//! with DMA; the migration steps are the same.
//!
//! Each device page records its data page and which open file moved it
//! there, so that closing the file moves back only that file's pages.

use crate::devmem::{
    DevicePrivatePool,
    DevmemOps,
    KernelPfn, //
};
use crate::ffi;
use crate::helpers;
use crate::migrate::{
    DstFolio,
    Migration,
    SrcPfn, //
};
use core::sync::atomic::{
    AtomicU32,
    AtomicU64,
    Ordering, //
};
use kernel::{
    mm::virt::VmaRef,
    prelude::*, //
};

/// Device memory is registered in chunks of this size, as test_hmm does.
const CHUNK_BYTES: u64 = 256 << 20;
/// At most this many chunks per device (4 GiB).
const MAX_CHUNKS: usize = 16;

/// What the device keeps per page of its memory.
#[derive(Default)]
pub(crate) struct PageData {
    /// PFN of the data page, 0 while the device page is free.
    data: AtomicU64,
    /// The file that migrated the page here (see `Mirror::id`), 0 if free.
    owner: AtomicU64,
}

impl PageData {
    /// The data page's PFN, if the device page holds data.
    fn data_pfn(&self) -> Option<u64> {
        let d = self.data.load(Ordering::Acquire);
        (d != 0).then_some(d)
    }
}

/// The [`DevmemOps`] of the sample device.
pub(crate) struct SimDevmem;

/// Device memory of one sample device.
pub(crate) type Devmem = DevicePrivatePool<SimDevmem>;

/// A new, empty pool.
pub(crate) fn new_pool() -> impl PinInit<Devmem, Error> {
    DevicePrivatePool::new(SimDevmem, CHUNK_BYTES, MAX_CHUNKS)
}

/// The data page of device page `page` of `pool`, if it has one.
pub(crate) fn data_pfn(pool: &Devmem, page: impl KernelPfn) -> Option<u64> {
    pool.page_data(page)?.data_pfn()
}

/// Gives each page of the device folio `dst` a data page filled from the
/// pages of the source `s` from page `first` on (zeros where it has none),
/// owned by `id`.
fn fill_device(pool: &Devmem, dst: &DstFolio, s: SrcPfn<'_>, first: usize, id: u64) -> Result {
    for j in 0..1usize << dst.order() {
        // SAFETY: Allocates a plain page, or returns null.
        let data = unsafe { helpers::dmirror_alloc_data_page() };
        if data.is_null() {
            // Pages filled so far are freed with the folio (`folio_free`).
            return Err(ENOMEM);
        }
        match s.subpage(first + j).and_then(|p| p.pfn()) {
            // SAFETY: `data` is ours; the source page is locked by the
            // migration that `s` borrows.
            Some(from) => unsafe { helpers::dmirror_copy_from_pfn(data, from as usize) },
            // SAFETY: `data` is ours.
            None => unsafe { ffi::clear_highpage(data) },
        }
        let d = dst
            .subpage(j)
            .and_then(|p| pool.page_data(p))
            .ok_or(EINVAL)?;
        // SAFETY: `data` is a valid page.
        d.data
            .store(unsafe { ffi::page_to_pfn(data) } as u64, Ordering::Release);
        d.owner.store(id, Ordering::Relaxed);
    }
    Ok(())
}

/// Counts one destination allocation against an injected failure
/// (`HMM_DMIRROR_FLAG_FAIL_ALLOC`): `fail` holds how many allocations are
/// left until the one that fails, 0 when none is armed. True for that one.
fn fail_now(fail: &AtomicU32) -> bool {
    fail.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)) == Ok(1)
}

/// Moves the system pages of `m` into the device, each with a data page
/// filled from its source and owned by `id`; returns how many moved. A
/// PMD-sized source gets a device folio, or 512 small pages if that fails;
/// pages that get no memory simply stay in system memory.
pub(crate) fn migrate_to_device(
    pool: &Devmem,
    m: &mut Migration<'_>,
    id: u64,
    fail: &AtomicU32,
) -> u64 {
    pool.migrate_to_device(
        m,
        |_| !fail_now(fail),
        |dst, src, first| fill_device(pool, dst, src, first, id),
    )
}

/// Moves this device's pages of `m` (a migration by address) back to
/// system memory through the pool, counting destination allocations
/// against `fail`; returns how many moved. `ENOMEM`, with nothing moved,
/// if a page got no memory.
pub(crate) fn migrate_to_system(
    pool: &Devmem,
    m: &mut Migration<'_>,
    vma: &VmaRef,
    fail: &AtomicU32,
) -> Result<u64> {
    pool.migrate_to_ram(m, Some(vma), |vma, addr, order| {
        if fail_now(fail) {
            None
        } else {
            DstFolio::alloc_system(vma, addr, order)
        }
    })
}

/// Moves the device pages that `owner` migrated (all pages if `None`) back
/// to system memory. Returns how many are still in device memory
/// afterwards for that owner: pages the core could not move this time.
pub(crate) fn evict(pool: &Devmem, owner: Option<u64>) -> Result<u64> {
    pool.evict(|d| {
        let o = d.owner.load(Ordering::Relaxed);
        o != 0 && owner.is_none_or(|w| w == o)
    })
}

impl DevmemOps for SimDevmem {
    type PageData = PageData;

    fn folio_free(_pool: &Devmem, _pfn: u64, pages: &[PageData]) {
        for d in pages {
            let data = d.data.swap(0, Ordering::AcqRel);
            d.owner.store(0, Ordering::Relaxed);
            if data != 0 {
                // SAFETY: The data page was allocated for this device page,
                // which is free now, so nothing reads it any more.
                unsafe { helpers::dmirror_free_data_pfn(data as usize) };
            }
        }
    }

    fn copy_to_ram(_pool: &Devmem, data: &[PageData], dst: &mut DstFolio) -> Result {
        if data.len() != 1 << dst.order() {
            return Err(EINVAL);
        }
        for (j, d) in data.iter().enumerate() {
            let to = dst.page(j);
            match d.data_pfn() {
                // SAFETY: `to` is a page of the locked destination; the data
                // page lives until its device page is freed, which the
                // migration in progress prevents (it holds the source
                // locked).
                Some(from) => unsafe { helpers::dmirror_copy_from_pfn(to, from as usize) },
                // SAFETY: `to` is a page of the locked destination.
                None => unsafe { ffi::clear_highpage(to) },
            }
        }
        // SAFETY: Every page of `dst` was copied into or cleared above.
        unsafe { dst.assume_filled() };
        Ok(())
    }
}
