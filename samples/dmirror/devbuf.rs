// SPDX-License-Identifier: GPL-2.0

//! Device buffers: memory the module owns, mapped into processes through
//! the device file, with dirty tracking across every process that maps it.
//!
//! `HMM_DEVBUF_CREATE` gives a buffer and its mmap offset (offset 0 stays
//! the upstream `mixedmap` case). The VMA is `VM_PFNMAP | VM_SHARED`; its
//! fault handler allocates the page on first touch and inserts it with a
//! protection computed for that page at that fault: its cache mode
//! (`HMM_DEVBUF_SET_CACHE`) and writable only for a write fault.
//!
//! # Cache modes
//!
//! A UC or WC page also has its linear (direct) map set to that memory
//! type before any user PTE maps it with that mode, and back to
//! write-back before it changes mode again or is freed, as TTM's page pool
//! does: on x86 with PAT, `vmf_insert_pfn_prot()` gives a RAM page the
//! type recorded for it, whatever the pgprot asks, and without PAT a UC or
//! WC user mapping of a page the linear map holds write-back is a
//! conflicting alias. Each change flushes the TLB on every CPU, so
//! `SET_CACHE` changes all allocated pages of its range in one call per
//! target type; a page allocated later gets its type at its first fault.
//!
//! # Dirty tracking
//!
//! `dirty` has a bit per page. Every writable PTE of a page is created
//! with the `store` mutex held, after its dirty bit is set: by a write
//! fault, or by `pfn_mkwrite`, which zaps the read-only PTE and inserts a
//! writable one itself and returns `VM_FAULT_NOPAGE` (so the core's
//! `finish_mkwrite_fault()` never makes a PTE writable behind our back).
//! `HMM_DEVBUF_CLEAN` holds the same mutex while it write-protects each
//! dirty page in every process with `mapping_wrprotect_range()` (rmap:
//! notifies, flushes, and sees a forked child's VMA after its parent's) and
//! clears its bit. Hence a page written after CLEAN returns has its bit set
//! again: no false negatives. A page is reported dirty when a write fault
//! or `pfn_mkwrite` ran for it since the last CLEAN, even if the write then
//! did not happen (a faulting store that was interrupted, or a read-write
//! populate by `mmap(MAP_POPULATE)`-like writers): those are the only false
//! positives.
//!
//! # The walker's hint
//!
//! `mapped` has a bit per page that may have a PTE in some VMA: set (with
//! the mutex held) before any insert, cleared only with the mutex held and
//! before the page is unmapped everywhere (ZAP, SET_CACHE). Walks that skip
//! missing entries read only these pages, so their cost follows the
//! populated part of the range.
//!
//! # Files
//!
//! - this file: the buffer ([`DevBuffer`]) and its invariants, its
//!   bitmaps, the range operations (ZAP, SET_CACHE, CLEAN), and the
//!   buffers of one open file;
//! - `cache.rs`: the pages of a buffer ([`Store`]) and the memory type of
//!   their linear map, the module-wide counters, the check at unload;
//! - `vma.rs`: `mmap`, the VMA callbacks and the PTE insert, and the
//!   walker's view of a buffer;
//! - `ioctl.rs`: the device-buffer ioctls;
//! - `tests.rs`: the KUnit suite `rust_hmm_devbuf`.

use crate::ffi;
use crate::helpers;
use crate::pfn_walk::VmaRegistry;
use core::sync::atomic::{
    AtomicU64,
    Ordering, //
};
use kernel::{
    bindings,
    new_mutex,
    page::PAGE_SHIFT,
    prelude::*,
    sync::{
        Arc,
        Mutex, //
    }, //
};

mod cache;
mod ioctl;
mod tests;
mod vma;

pub(crate) use cache::unload_check;
use cache::{
    Pages,
    Store, //
};
pub(crate) use ioctl::ioctl;
pub(crate) use vma::mmap;

/// Buffers live at file offsets `BASE + id * STRIDE`, far above any
/// `mixedmap` mapping at offset 0, each id used once per module load, so
/// a page offset of the device's address space names one buffer page.
const DEVBUF_MMAP_BASE: u64 = 1 << 40;
const DEVBUF_MMAP_STRIDE: u64 = 1 << 32;
const DEVBUF_MAX_IDS: u64 = 1 << 22;
/// Buffers one open file may hold.
const DEVBUF_MAX_PER_FILE: usize = 16;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A bitmap with atomic bits, one per buffer page.
struct Bits(KVVec<AtomicU64>);

impl Bits {
    fn new(n: usize) -> Result<Self> {
        let words = n.div_ceil(64);
        let mut v = KVVec::with_capacity(words, GFP_KERNEL)?;
        for _ in 0..words {
            v.push(AtomicU64::new(0), GFP_KERNEL)?;
        }
        Ok(Self(v))
    }

    fn set(&self, i: usize) {
        self.0[i / 64].fetch_or(1 << (i % 64), Ordering::AcqRel);
    }

    fn clear(&self, i: usize) {
        self.0[i / 64].fetch_and(!(1 << (i % 64)), Ordering::AcqRel);
    }

    /// First set bit in `from..to`.
    fn next_set(&self, from: usize, to: usize) -> Option<usize> {
        let mut i = from;
        while i < to {
            let w = self.0[i / 64].load(Ordering::Acquire) >> (i % 64);
            if w != 0 {
                let j = i + w.trailing_zeros() as usize;
                return (j < to).then_some(j);
            }
            i = (i / 64 + 1) * 64;
        }
        None
    }
}

/// One device buffer.
///
/// # Invariants
///
/// `mapping` is the `f_mapping` of the file that created the buffer; that
/// file holds the buffer, and every VMA of the buffer holds that file, so
/// the mapping outlives every use. `mapped` is a superset of the pages
/// with a PTE in any VMA, outside the `store` mutex. Every writable PTE of
/// a page was created, with `store` held, after its `dirty` bit was set
/// (or copied by fork from such a PTE), and no CLEAN of the page has run
/// since.
#[pin_data]
pub(crate) struct DevBuffer {
    offset: u64,
    npages: usize,
    mapping: *mut bindings::address_space,
    /// The store's pages, which PTEs borrow without its mutex.
    pages: Arc<Pages>,
    #[pin]
    store: Mutex<Store>,
    dirty: Bits,
    mapped: Bits,
    #[pin]
    vmas: VmaRegistry,
}

// SAFETY: `mapping` is only passed to kernel functions that may be called
// from any thread; everything else is `Send`/`Sync` or behind the mutex.
unsafe impl Send for DevBuffer {}
// SAFETY: As above.
unsafe impl Sync for DevBuffer {}

impl DevBuffer {
    fn base_pgoff(&self) -> usize {
        (self.offset >> PAGE_SHIFT) as usize
    }

    /// Page index of file page offset `pgoff`, if inside the buffer.
    fn index(&self, pgoff: usize) -> Option<usize> {
        pgoff
            .checked_sub(self.base_pgoff())
            .filter(|&i| i < self.npages)
    }

    /// The range `first..first + npages` of the buffer, checked.
    fn range(&self, first: u64, npages: u64) -> Result<(usize, usize)> {
        page_range(self.npages, first, npages)
    }

    /// Unmaps pages `first..end` from every process, all under `store`.
    fn unmap(&self, first: usize, end: usize) {
        // SAFETY: `mapping` is valid (type invariants); the byte range
        // names only this buffer's pages.
        unsafe {
            bindings::unmap_mapping_range(
                self.mapping,
                ((self.base_pgoff() + first) << PAGE_SHIFT) as i64,
                ((end - first) << PAGE_SHIFT) as i64,
                1,
            )
        };
    }

    fn zap(&self, first: usize, end: usize) {
        let _store = self.store.lock();
        for i in first..end {
            self.mapped.clear(i);
        }
        self.unmap(first, end);
    }

    /// Sets the mode of `first..end`. On error the mode is set all the
    /// same, and a page whose linear map could not be changed is changed
    /// at its next fault (which fails if that fails again).
    fn set_cache(&self, first: usize, end: usize, mode: u8) -> Result {
        let mut store = self.store.lock();
        for i in first..end {
            store.cache[i] = mode;
            self.mapped.clear(i);
        }
        // The next fault of each page computes its new protection; and no
        // user PTE may map a page while its linear map changes.
        self.unmap(first, end);
        store.sync_linear(first, end)
    }

    /// Reports and clears the dirty bits of `first..end` into `out` (bit
    /// `i` for page `first + i`), write-protecting those pages everywhere.
    fn clean(&self, first: usize, end: usize, out: &mut [u64]) -> Result<u64> {
        let store = self.store.lock();
        let mut n = 0;
        let mut i = first;
        while let Some(idx) = self.dirty.next_set(i, end) {
            i = idx + 1;
            let Some(page) = store.pages[idx].as_ref() else {
                self.dirty.clear(idx);
                continue;
            };
            // SAFETY: A live page of ours.
            let pfn = unsafe { ffi::page_to_pfn(page.as_ptr()) };
            // SAFETY: `mapping` is valid (type invariants); the page is
            // mapped at `pgoff` in every VMA of the buffer.
            let r = unsafe {
                helpers::mapping_wrprotect_range(self.mapping, self.base_pgoff() + idx, pfn, 1)
            };
            if r < 0 {
                return Err(Error::from_errno(r));
            }
            self.dirty.clear(idx);
            out[(idx - first) / 64] |= 1 << ((idx - first) % 64);
            n += 1;
        }
        drop(store);
        Ok(n)
    }
}

/// `first..first + npages` as indices into `size` pages: `EINVAL` if
/// empty, overflowing or past the end.
fn page_range(size: usize, first: u64, npages: u64) -> Result<(usize, usize)> {
    let end = first.checked_add(npages).ok_or(EINVAL)?;
    if npages == 0 || end > size as u64 {
        return Err(EINVAL);
    }
    Ok((first as usize, end as usize))
}

/// The buffers of one open file.
pub(crate) type Buffers = Mutex<KVec<Arc<DevBuffer>>>;

/// A new, empty table.
pub(crate) fn new_buffers() -> impl PinInit<Buffers> {
    new_mutex!(KVec::new(), "DevBuffer::buffers")
}

fn find(bufs: &Buffers, offset: u64) -> Result<Arc<DevBuffer>> {
    bufs.lock()
        .iter()
        .find(|b| b.offset == offset)
        .cloned()
        .ok_or(EINVAL)
}
