// SPDX-License-Identifier: GPL-2.0

//! The sample device's memory: device-private pages whose contents live in
//! ordinary pages the module allocates ("data pages"), as in
//! `lib/test_hmm.c`. A real device keeps them in its own memory and copies
//! with DMA; the migration steps are the same.
//!
//! Each device page records its data page and which open file moved it
//! there, so that closing the file moves back only that file's pages.

use crate::devmem::{DeviceFault, DevicePrivatePool, DevmemOps, PMD_ORDER};
use crate::ffi;
use crate::migrate::{DstFolio, Migration, Select};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::{bindings, mm::virt::VmaRef, page::PAGE_SIZE, prelude::*};

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

/// The [`DevmemOps`] of the sample device.
pub(crate) struct SimDevmem;

/// Device memory of one sample device.
pub(crate) type Devmem = DevicePrivatePool<SimDevmem>;

/// A new, empty pool.
pub(crate) fn new_pool() -> impl PinInit<Devmem, Error> {
    DevicePrivatePool::new(SimDevmem, CHUNK_BYTES, MAX_CHUNKS)
}

/// The data page of device page `dpfn` of `pool`, if it has one.
pub(crate) fn data_pfn(pool: &Devmem, dpfn: u64) -> Option<u64> {
    let d = pool.page_data(dpfn)?.data.load(Ordering::Acquire);
    (d != 0).then_some(d)
}

/// Copies device page `dpfn` into `dst` (zeros if it holds no data).
fn copy_from_device(pool: &Devmem, dpfn: u64, dst: *mut bindings::page) {
    match data_pfn(pool, dpfn) {
        // SAFETY: Both pages are alive: `dst` is a locked destination and the
        // data page lives until its device page is freed, which the
        // migration in progress prevents (it holds the source locked).
        Some(d) => unsafe { ffi::rust_hmm_copy_from_pfn(dst, d as usize) },
        // SAFETY: `dst` is a locked destination.
        None => unsafe { ffi::rust_hmm_clear_highpage(dst) },
    }
}

/// Gives each page of the device folio `dst` a data page filled from the
/// system pages from `src` on (zeros when there are none), owned by `id`.
fn fill_device(pool: &Devmem, dst: &DstFolio, src: Option<u64>, id: u64) -> Result {
    for j in 0..1u64 << dst.order() {
        // SAFETY: Allocates a plain page, or returns null.
        let data = unsafe { ffi::rust_hmm_alloc_data_page() };
        if data.is_null() {
            // Pages filled so far are freed with the folio (`folio_free`).
            return Err(ENOMEM);
        }
        match src {
            // SAFETY: `data` is ours; the source page is locked by the
            // migration.
            Some(s) => unsafe { ffi::rust_hmm_copy_from_pfn(data, (s + j) as usize) },
            // SAFETY: `data` is ours.
            None => unsafe { ffi::rust_hmm_clear_highpage(data) },
        }
        let d = pool.page_data(dst.pfn() + j).ok_or(EINVAL)?;
        // SAFETY: `data` is a valid page.
        d.data.store(
            unsafe { ffi::rust_hmm_page_to_pfn(data) } as u64,
            Ordering::Release,
        );
        d.owner.store(id, Ordering::Relaxed);
    }
    Ok(())
}

/// Counts one destination allocation against an injected failure
/// (`HMM_DMIRROR_FLAG_FAIL_ALLOC`): `fail` holds how many allocations are
/// left until the one that fails, 0 when none is armed. True for that one.
fn fail_now(fail: Option<&AtomicU32>) -> bool {
    fail.is_some_and(|f| {
        f.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)) == Ok(1)
    })
}

/// Chooses device destinations for a migration to the device and copies
/// the data in. A PMD-sized source gets a device folio, or 512 small pages
/// if that fails; pages that get no memory simply stay in system memory.
pub(crate) fn copy_to_device(pool: &Devmem, m: &mut Migration<'_>, id: u64, fail: &AtomicU32) {
    let mut i = 0;
    while i < m.npages() {
        let s = m.src(i);
        if !s.migrate() {
            i += 1;
            continue;
        }
        let nr = if s.compound() { 1usize << PMD_ORDER } else { 1 };
        let large = if s.compound() && !fail_now(Some(fail)) {
            pool.alloc(PMD_ORDER).ok()
        } else {
            None
        };
        if let Some(f) = large {
            if fill_device(pool, &f, s.pfn(), id).is_ok() {
                let _ = m.set_dst(i, f, s.write());
            }
        } else {
            for j in 0..nr {
                if !s.compound() && fail_now(Some(fail)) {
                    break;
                }
                let Ok(f) = pool.alloc(0) else { break };
                let src = s.pfn().map(|p| p + j as u64);
                if fill_device(pool, &f, src, id).is_ok() {
                    let _ = m.set_dst(i + j, f, s.write());
                }
            }
        }
        i += nr;
    }
}

/// Chooses system destinations for device pages leaving the device and
/// copies their data out. A device folio gets a PMD-sized folio, or, when
/// there is a VMA to split in, 512 small pages if that fails. `ENOMEM` if a
/// page the CPU needs got no memory.
pub(crate) fn copy_to_system(
    pool: &Devmem,
    m: &mut Migration<'_>,
    vma: Option<&VmaRef>,
    fail: Option<&AtomicU32>,
) -> Result {
    let mut i = 0;
    while i < m.npages() {
        let s = m.src(i);
        let Some(spfn) = s.pfn().filter(|_| s.migrate()) else {
            i += 1;
            continue;
        };
        let addr = m.start() + (i * PAGE_SIZE) as u64;
        let order = if s.compound() { PMD_ORDER } else { 0 };
        let nr = 1usize << order;
        let folio = if fail_now(fail) {
            None
        } else {
            DstFolio::alloc_system(vma, addr, order)
        };
        match folio {
            Some(f) => {
                for j in 0..nr {
                    copy_from_device(pool, spfn + j as u64, f.page(j));
                }
                m.set_dst(i, f, s.write())?;
            }
            // The core splits the device folio for small destinations, but
            // only when it migrates by address.
            None if order > 0 && vma.is_some() => {
                for j in 0..nr {
                    let f = DstFolio::alloc_system(vma, addr + (j * PAGE_SIZE) as u64, 0)
                        .ok_or(ENOMEM)?;
                    copy_from_device(pool, spfn + j as u64, f.page(0));
                    m.set_dst(i + j, f, s.write())?;
                }
            }
            None => return Err(ENOMEM),
        }
        i += nr;
    }
    Ok(())
}

/// Pages of `m` that reached their destination.
pub(crate) fn migrated_pages(m: &Migration<'_>) -> u64 {
    let mut n = 0;
    let mut i = 0;
    while i < m.npages() {
        let s = m.src(i);
        let nr = if s.compound() { 1 << PMD_ORDER } else { 1 };
        if m.migrated(i) {
            n += nr as u64;
        }
        i += nr;
    }
    n
}

/// Moves the device pages that `owner` migrated (all pages if `None`) back
/// to system memory. Returns how many pages are still in device memory
/// afterwards for that owner: pages the core could not move this time.
pub(crate) fn evict(pool: &Devmem, owner: Option<u64>) -> Result<u64> {
    if pool.stats().in_use == 0 {
        return Ok(0);
    }
    let mut pfns = KVVec::new();
    pool.for_each_page(|pfn, d| {
        let o = d.owner.load(Ordering::Relaxed);
        if o != 0 && owner.is_none_or(|w| w == o) {
            // Allocation failure only makes the eviction partial.
            let _ = pfns.push(pfn, GFP_KERNEL);
        }
    });
    if pfns.is_empty() {
        return Ok(0);
    }
    // Batches end only at PMD-aligned PFNs, so a device folio (PMD-aligned,
    // its pages listed together since they share an owner) is never cut.
    let mut from = 0;
    while from < pfns.len() {
        let mut to = from + 1;
        while to < pfns.len()
            && (to - from < crate::migrate::MAX_PAGES || pfns[to] % (1 << PMD_ORDER) != 0)
        {
            to += 1;
        }
        let mut v = KVec::with_capacity(to - from, GFP_KERNEL)?;
        v.extend_from_slice(&pfns[from..to], GFP_KERNEL)?;
        from = to;
        // SAFETY: Every PFN is a device page of `pool` (from its chunks).
        let mut m = unsafe { Migration::device_pfns(v)? };
        // Best effort: a page left without a destination stays put.
        let _ = copy_to_system(pool, &mut m, None, None);
        m.pages();
    }
    let mut left = 0;
    pool.for_each_page(|_, d| {
        let o = d.owner.load(Ordering::Relaxed);
        if o != 0 && owner.is_none_or(|w| w == o) {
            left += 1;
        }
    });
    Ok(left)
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
                unsafe { ffi::rust_hmm_free_data_pfn(data as usize) };
            }
        }
    }

    fn migrate_to_ram(pool: &Devmem, fault: &DeviceFault<'_>) -> u32 {
        // A folio mapped through PTEs may be mapped only in part: move the
        // faulting page alone.
        let order = if fault.through_pte() {
            0
        } else {
            // SAFETY: The faulting page is a valid device page.
            unsafe { ffi::rust_hmm_page_order(fault.page()) }
        };
        let size = (PAGE_SIZE as u64) << order;
        let start = fault.address() & !(size - 1);
        let vma = fault.vma();
        let Ok(mut m) = Migration::vma(
            vma,
            start,
            start + size,
            pool.owner(),
            Select::DevicePrivate,
            order > 0,
            Some(fault.page()),
        ) else {
            return bindings::vm_fault_reason_VM_FAULT_SIGBUS;
        };
        if copy_to_system(pool, &mut m, Some(vma), None).is_err() {
            // Dropped before `pages()`: every page stays where it was.
            return bindings::vm_fault_reason_VM_FAULT_OOM;
        }
        m.pages();
        // A page the core did not move (another thread held a reference
        // for a moment, or unmapped it) is faulted on again, as in
        // test_hmm: the CPU retries the access.
        0
    }

    fn evict_all(pool: &Devmem) {
        // A page can be busy for a moment (a concurrent fault holds it);
        // memunmap_pages() would wait for it forever, so insist.
        for _ in 0..1000 {
            match evict(pool, None) {
                Ok(0) => return,
                _ => kernel::time::delay::fsleep(kernel::time::Delta::from_millis(1)),
            }
        }
        pr_warn!("rust_hmm: device pages still in use at unload\n");
    }
}
