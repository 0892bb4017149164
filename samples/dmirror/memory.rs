// SPDX-License-Identifier: GPL-2.0

//! The sample device's memory, of either kind, as in `lib/test_hmm.c`:
//!
//! - device-private pages whose contents live in ordinary pages the
//!   module allocates ("data pages"): a real device keeps them in its own
//!   memory and copies with DMA; the migration steps are the same;
//! - device-coherent pages over soft-reserved memory, which hold their
//!   contents themselves: the CPU maps them, and copies in and out of them
//!   are CPU copies.
//!
//! Each device page records which open file moved it there, so that
//! closing the file moves back only that file's pages.

use crate::devmem::{
    Coherent,
    DevicePool,
    DevmemOps,
    KernelPfn,
    Private,
    SoftReserved, //
};
use crate::ffi;
use crate::helpers;
use crate::migrate::{
    DstFolio,
    Migration,
    PagemapOwner,
    Select,
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

/// Device-private memory is registered in chunks of this size, as test_hmm
/// does.
const CHUNK_BYTES: u64 = 256 << 20;
/// At most this many chunks per device (4 GiB).
const MAX_CHUNKS: usize = 16;
/// Coherent memory is registered in chunks of this size, on first use.
const COHERENT_CHUNK_BYTES: u64 = 64 << 20;

/// What the device keeps per page of its memory.
#[derive(Default)]
pub(crate) struct PageData {
    /// PFN of the data page, 0 while the device page is free, and always 0
    /// for coherent memory (a coherent page holds its own data).
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

/// The [`DevmemOps`] of the sample's device-private memory.
pub(crate) struct SimDevmem;

/// The [`DevmemOps`] of the sample's device-coherent memory.
pub(crate) struct SimCoherent;

/// Device memory of one sample device.
pub(crate) enum Memory {
    Private(Pin<KBox<DevicePool<SimDevmem>>>),
    Coherent(Pin<KBox<DevicePool<SimCoherent>>>),
}

/// Runs `$body` with `$pool` bound to the pool of either kind.
macro_rules! with_pool {
    ($mem:expr, $pool:ident => $body:expr) => {
        match $mem {
            Memory::Private($pool) => $body,
            Memory::Coherent($pool) => $body,
        }
    };
}

impl Memory {
    /// Empty device-private memory.
    pub(crate) fn private() -> Result<Self> {
        let pool = DevicePool::new(SimDevmem, CHUNK_BYTES, MAX_CHUNKS);
        Ok(Self::Private(KBox::pin_init(pool, GFP_KERNEL)?))
    }

    /// Device-coherent memory over `range`.
    pub(crate) fn coherent(range: SoftReserved) -> Result<Self> {
        let pool = DevicePool::new_coherent(SimCoherent, range, COHERENT_CHUNK_BYTES)?;
        Ok(Self::Coherent(KBox::pin_init(pool, GFP_KERNEL)?))
    }

    /// The owner cookie of its pages.
    pub(crate) fn owner(&self) -> PagemapOwner {
        with_pool!(self, p => p.owner())
    }

    /// What a migration selects to collect its pages.
    pub(crate) fn select(&self) -> Select {
        match self {
            Self::Private(_) => Select::DevicePrivate,
            Self::Coherent(_) => Select::DeviceCoherent,
        }
    }

    /// Counters.
    pub(crate) fn stats(&self) -> crate::devmem::PoolStats {
        with_pool!(self, p => p.stats())
    }

    /// Whether `page` is a page of this memory.
    pub(crate) fn owns(&self, page: impl KernelPfn) -> bool {
        with_pool!(self, p => p.owns(page))
    }

    /// The data page of device-private page `page`, if it has one.
    pub(crate) fn data_pfn(&self, page: impl KernelPfn) -> Option<u64> {
        match self {
            Self::Private(p) => p.page_data(page)?.data_pfn(),
            Self::Coherent(_) => None,
        }
    }

    /// Moves the system pages of `m` into the device, each filled from its
    /// source and owned by `id`; returns how many moved. A PMD-sized
    /// source gets a device folio where the memory has them, or 512 small
    /// pages; pages that get no memory simply stay in system memory.
    pub(crate) fn migrate_to_device(
        &self,
        m: &mut Migration<'_>,
        id: u64,
        fail: &AtomicU32,
    ) -> u64 {
        let may_alloc = |_| !fail_now(fail);
        match self {
            Self::Private(p) => p.migrate_to_device(m, may_alloc, |dst, src, first| {
                fill_private(p, dst, src, first, id)
            }),
            Self::Coherent(p) => p.migrate_to_device(m, may_alloc, |dst, src, first| {
                fill_coherent(p, dst, src, first, id)
            }),
        }
    }

    /// Moves this device's pages of `m` (a migration by address) back to
    /// system memory, counting destination allocations against `fail`;
    /// returns how many moved. `ENOMEM`, with nothing moved, if a page got
    /// no memory.
    ///
    /// Coherent memory holds single pages only: what an injected failure
    /// stands for, the failed allocation of a THP that then moves as small
    /// pages, has no counterpart on its way out, so it does not count here
    /// (a THP moving in meets it, see [`Self::migrate_to_device`]).
    pub(crate) fn migrate_to_system(
        &self,
        m: &mut Migration<'_>,
        vma: &VmaRef,
        fail: &AtomicU32,
    ) -> Result<u64> {
        let counts = matches!(self, Self::Private(_));
        let alloc = |vma: Option<&VmaRef>, addr, order| {
            if counts && fail_now(fail) {
                None
            } else {
                DstFolio::alloc_system(vma, addr, order)
            }
        };
        with_pool!(self, p => p.migrate_to_ram(m, Some(vma), alloc))
    }

    /// Moves the device pages that `owner` migrated (all pages if `None`)
    /// back to system memory. Returns how many are still in device memory
    /// afterwards for that owner: pages the core could not move this time.
    pub(crate) fn evict(&self, owner: Option<u64>) -> Result<u64> {
        let select = |d: &PageData| {
            let o = d.owner.load(Ordering::Relaxed);
            o != 0 && owner.is_none_or(|w| w == o)
        };
        with_pool!(self, p => p.evict(select))
    }
}

/// Copies page `from` into `to`, or clears `to` if there is none.
///
/// # Safety
///
/// `to` is a page the caller owns (a locked destination, or a data page of
/// its own), and `from`, if any, stays allocated during the call.
unsafe fn copy_or_clear(to: *mut kernel::bindings::page, from: Option<u64>) {
    match from {
        // SAFETY: As the caller promises.
        Some(from) => unsafe { helpers::dmirror_copy_from_pfn(to, from as usize) },
        // SAFETY: As the caller promises.
        None => unsafe { ffi::clear_highpage(to) },
    }
}

/// Copies the page of `s` at `i` into `to`, or clears `to` if `s` has none
/// there.
fn copy_from_source(to: *mut kernel::bindings::page, s: &SrcPfn<'_>, i: usize) {
    // SAFETY: `to` is a page of a locked destination (or a fresh data
    // page); the source page is locked by the migration that `s` borrows.
    unsafe { copy_or_clear(to, s.subpage(i).and_then(|p| p.pfn())) }
}

/// Gives each page of the device-private folio `dst` a data page filled
/// from the pages of the source `s` from page `first` on (zeros where it
/// has none), owned by `id`.
fn fill_private(
    pool: &DevicePool<SimDevmem>,
    dst: &DstFolio,
    s: SrcPfn<'_>,
    first: usize,
    id: u64,
) -> Result {
    for j in 0..1usize << dst.order() {
        // SAFETY: Allocates a plain page, or returns null.
        let data = unsafe { helpers::dmirror_alloc_data_page() };
        if data.is_null() {
            // Pages filled so far are freed with the folio (`folio_free`).
            return Err(ENOMEM);
        }
        copy_from_source(data, &s, first + j);
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

/// Fills the coherent page `dst` itself from page `first` of the source
/// `s`, and marks it owned by `id`.
fn fill_coherent(
    pool: &DevicePool<SimCoherent>,
    dst: &mut DstFolio,
    s: SrcPfn<'_>,
    first: usize,
    id: u64,
) -> Result {
    for j in 0..1usize << dst.order() {
        copy_from_source(dst.page(j), &s, first + j);
    }
    // SAFETY: Every page of `dst` was copied into or cleared above.
    unsafe { dst.assume_filled() };
    let d = dst
        .subpage(0)
        .and_then(|p| pool.page_data(p))
        .ok_or(EINVAL)?;
    d.owner.store(id, Ordering::Relaxed);
    Ok(())
}

/// Counts one destination allocation against an injected failure
/// (`HMM_DMIRROR_FLAG_FAIL_ALLOC`): `fail` holds how many allocations are
/// left until the one that fails, 0 when none is armed. True for that one.
fn fail_now(fail: &AtomicU32) -> bool {
    fail.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)) == Ok(1)
}

impl DevmemOps for SimDevmem {
    type PageData = PageData;
    type Memory = Private;

    fn folio_free(_pool: &DevicePool<Self>, _pfn: u64, pages: &[PageData]) {
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

    fn copy_to_ram(
        _pool: &DevicePool<Self>,
        _pfn: u64,
        data: &[PageData],
        dst: &mut DstFolio,
    ) -> Result {
        if data.len() != 1 << dst.order() {
            return Err(EINVAL);
        }
        for (j, d) in data.iter().enumerate() {
            // SAFETY: The destination is locked and ours; the data page lives
            // until its device page is freed, which the migration in
            // progress prevents (it holds the source locked).
            unsafe { copy_or_clear(dst.page(j), d.data_pfn()) };
        }
        // SAFETY: Every page of `dst` was copied into or cleared above.
        unsafe { dst.assume_filled() };
        Ok(())
    }
}

impl DevmemOps for SimCoherent {
    type PageData = PageData;
    type Memory = Coherent;

    fn folio_free(_pool: &DevicePool<Self>, _pfn: u64, pages: &[PageData]) {
        for d in pages {
            d.owner.store(0, Ordering::Relaxed);
        }
    }

    fn copy_to_ram(
        _pool: &DevicePool<Self>,
        pfn: u64,
        data: &[PageData],
        dst: &mut DstFolio,
    ) -> Result {
        if data.len() != 1 << dst.order() {
            return Err(EINVAL);
        }
        for j in 0..data.len() {
            // SAFETY: `dst` is locked and ours; the source, a coherent page
            // the CPU addresses like RAM, is locked by the migration in
            // progress, so it stays allocated.
            unsafe { helpers::dmirror_copy_from_pfn(dst.page(j), pfn as usize + j) };
        }
        // SAFETY: Every page of `dst` was copied into above.
        unsafe { dst.assume_filled() };
        Ok(())
    }
}
