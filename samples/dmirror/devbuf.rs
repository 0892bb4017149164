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

use crate::ffi;
use crate::pfn_walk::{Missing, PfnEntry, PfnSource, VmaRegistry};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use kernel::{
    bindings,
    ffi::c_void,
    fs::File,
    mm::virt::{VmaNew, VmaRef},
    new_mutex,
    page::{Page, PAGE_SHIFT, PAGE_SIZE},
    prelude::*,
    sync::{Arc, ArcBorrow, Mutex},
    uaccess::{UserPtr, UserSlice},
};

use super::uapi::*;

/// Buffers live at file offsets `BASE + id * STRIDE`, far above any
/// `mixedmap` mapping at offset 0, each id used once per module load, so
/// a page offset of the device's address space names one buffer page.
const DEVBUF_MMAP_BASE: u64 = 1 << 40;
const DEVBUF_MMAP_STRIDE: u64 = 1 << 32;
const DEVBUF_MAX_IDS: u64 = 1 << 22;
/// Buffers one open file may hold.
const DEVBUF_MAX_PER_FILE: usize = 16;

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Buffer pages allocated now, in every buffer of the module.
static PAGES: AtomicUsize = AtomicUsize::new(0);
/// Of those, pages whose linear map is not write-back: 0 again once every
/// buffer is gone, checked at unload.
static PAGES_NOT_WB: AtomicUsize = AtomicUsize::new(0);
/// `set_pages_array_*()` calls made since load.
static CACHE_CALLS: AtomicU64 = AtomicU64::new(0);

const WB: u8 = HMM_DEVBUF_CACHE_WB as u8;
const UC: u8 = HMM_DEVBUF_CACHE_UC as u8;
const WC: u8 = HMM_DEVBUF_CACHE_WC as u8;
/// The linear map of a page after a change that failed: part of it may
/// have happened. Only a change to WB is tried on such a page.
const LINEAR_UNKNOWN: u8 = u8::MAX;

/// One call that sets the linear map of `pages` to `mode`. It flushes the
/// TLB of every CPU and may allocate: call it where sleeping is allowed,
/// and while no user PTE maps the pages with another type.
///
/// # Safety
///
/// Every entry of `pages` is a live page (allocated and not yet freed).
unsafe fn set_pages_cache(pages: &[*mut bindings::page], mode: u8) -> Result {
    CACHE_CALLS.fetch_add(1, Ordering::Relaxed);
    // The C function takes a mutable array but only reads it.
    let ptr = pages.as_ptr().cast_mut();
    // At most `HMM_DEVBUF_MAX_PAGES` entries: the length fits.
    let n = pages.len() as i32;
    // SAFETY: `n` readable entries, each a live page (function contract).
    let r = unsafe { ffi::rust_hmm_set_pages_cache(ptr, n, mode.into()) };
    kernel::error::to_result(r)
}

/// Sets the linear map of `pages` to `mode`; if that fails, tries to put
/// them back to write-back (the failed call may have changed some). Returns
/// the type they now have, and the error of the first call.
///
/// # Safety
///
/// As for [`set_pages_cache`].
unsafe fn change_linear(pages: &[*mut bindings::page], mode: u8) -> (u8, Result) {
    // SAFETY: The caller's contract is the callee's.
    let r = unsafe { set_pages_cache(pages, mode) };
    if r.is_ok() {
        (mode, r)
    // SAFETY: As above.
    } else if mode != WB && unsafe { set_pages_cache(pages, WB) }.is_ok() {
        (WB, r)
    } else {
        (LINEAR_UNKNOWN, r)
    }
}

/// The counters of `HMM_DEVBUF_STATS`.
fn stats() -> HmmDevbufStats {
    // SAFETY: Reads a boot-time setting.
    let pat = unsafe { ffi::rust_hmm_pat_enabled() };
    HmmDevbufStats {
        pages: PAGES.load(Ordering::Relaxed) as u64,
        pages_not_wb: PAGES_NOT_WB.load(Ordering::Relaxed) as u64,
        cache_calls: CACHE_CALLS.load(Ordering::Relaxed),
        flags: if pat { HMM_DEVBUF_STATS_PAT } else { 0 },
    }
}

/// At unload: every buffer is gone (each holds a file of the device, which
/// holds the module), so every page went back to write-back before it was
/// freed. A page whose linear map could not be restored was leaked, never
/// freed, and is still counted.
pub(crate) fn unload_check() {
    let n = PAGES_NOT_WB.load(Ordering::Relaxed);
    if n != 0 {
        pr_err!("{n} device-buffer pages not write-back at unload\n");
    }
    kernel::warn_on!(n != 0);
}

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

/// Pages and their cache modes, allocated on first fault.
///
/// # Invariants
///
/// For an allocated page `i`, `linear[i]` is the memory type of its linear
/// map (`WB`, `UC`, `WC` or `LINEAR_UNKNOWN`), and the page is counted in
/// [`PAGES`] and, unless `linear[i]` is `WB`, in [`PAGES_NOT_WB`]. A user
/// PTE maps page `i` only while `linear[i] == cache[i]`. A page is freed
/// only with a write-back linear map.
struct Store {
    pages: KVVec<Option<Page>>,
    /// The mode of each page's PTEs.
    cache: KVVec<u8>,
    linear: KVVec<u8>,
}

impl Store {
    fn new(npages: usize) -> Result<Self> {
        let mut pages = KVVec::with_capacity(npages, GFP_KERNEL)?;
        for _ in 0..npages {
            pages.push(None, GFP_KERNEL)?;
        }
        Ok(Self {
            pages,
            cache: KVVec::from_elem(WB, npages, GFP_KERNEL)?,
            linear: KVVec::from_elem(WB, npages, GFP_KERNEL)?,
        })
    }

    /// Page `idx`, allocated (zeroed, write-back) if it was not.
    fn page(&mut self, idx: usize) -> Result<&Page> {
        if self.pages[idx].is_none() {
            self.pages[idx] = Some(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?);
            self.linear[idx] = WB;
            PAGES.fetch_add(1, Ordering::Relaxed);
        }
        self.pages[idx].as_ref().ok_or(ENOMEM)
    }

    /// Records that the linear map of allocated page `idx` is now `new`.
    fn record_linear(&mut self, idx: usize, new: u8) {
        match (self.linear[idx] == WB, new == WB) {
            (true, false) => PAGES_NOT_WB.fetch_add(1, Ordering::Relaxed),
            (false, true) => PAGES_NOT_WB.fetch_sub(1, Ordering::Relaxed),
            _ => 0,
        };
        self.linear[idx] = new;
    }

    /// Sets the linear map of the allocated pages of `first..end` that
    /// `pick(linear, cache)` selects to `mode`: one call, or one per page
    /// if there is no memory for the array. The picked pages must have no
    /// user PTE: `sync_linear` picks only pages whose linear map differs
    /// from their mode (type invariants), `drop` runs when no VMA is left.
    fn convert(&mut self, first: usize, end: usize, mode: u8, pick: fn(u8, u8) -> bool) -> Result {
        let picked = |s: &Self, i: usize| s.pages[i].is_some() && pick(s.linear[i], s.cache[i]);
        let ptr = |s: &Self, i: usize| {
            s.pages[i]
                .as_ref()
                .map_or(core::ptr::null_mut(), Page::as_ptr)
        };
        let n = (first..end).filter(|&i| picked(self, i)).count();
        if n == 0 {
            return Ok(());
        }
        let Ok(mut ptrs) = KVVec::with_capacity(n, GFP_KERNEL) else {
            let mut r = Ok(());
            for i in first..end {
                if picked(self, i) {
                    // SAFETY: `pages[i]` holds it: a live page.
                    let (new, ri) = unsafe { change_linear(&[ptr(self, i)], mode) };
                    self.record_linear(i, new);
                    r = r.and(ri);
                }
            }
            return r;
        };
        for i in first..end {
            if picked(self, i) {
                // Within the capacity: does not allocate.
                ptrs.push(ptr(self, i), GFP_KERNEL)?;
            }
        }
        // SAFETY: As above, each entry.
        let (new, r) = unsafe { change_linear(&ptrs, mode) };
        for i in first..end {
            // Picked as above: recording page `i` changes only `linear[i]`,
            // after it was tested.
            if picked(self, i) {
                self.record_linear(i, new);
            }
        }
        r
    }

    /// Brings the linear map of every allocated page of `first..end` to
    /// the page's mode: pages leaving UC or WC (or in an unknown state) go
    /// back to write-back first, since PAT grants a new type only to a
    /// write-back page; then one call per target type. Returns the first
    /// error; a page left behind is retried at its next fault.
    fn sync_linear(&mut self, first: usize, end: usize) -> Result {
        let r = self.convert(first, end, WB, |lin, want| lin != want && lin != WB);
        let r = r.and(self.convert(first, end, UC, |lin, want| lin == WB && want == UC));
        r.and(self.convert(first, end, WC, |lin, want| lin == WB && want == WC))
    }
}

impl Drop for Store {
    /// Every page goes back to write-back before it is freed: the page
    /// allocator clears PAT's record of the type but not the linear map,
    /// so the next owner would get an uncached page. One call for all;
    /// then one per page for any the batch left behind. A page that still
    /// cannot be restored is leaked, and stays counted.
    fn drop(&mut self) {
        let n = self.pages.len();
        if self.convert(0, n, WB, |lin, _| lin != WB).is_err() {
            for i in 0..n {
                let _ = self.convert(i, i + 1, WB, |lin, _| lin != WB);
            }
        }
        for i in 0..n {
            let Some(page) = self.pages[i].take() else {
                continue;
            };
            if self.linear[i] == WB {
                drop(page);
                PAGES.fetch_sub(1, Ordering::Relaxed);
            } else {
                pr_err!("a device-buffer page could not be made write-back again: leaked\n");
                core::mem::forget(page);
            }
        }
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

/// `vm_operations_struct` is not `Sync` (it has a raw pointer): ours is
/// immutable.
struct VmOps(bindings::vm_operations_struct);
// SAFETY: Function pointers and a null pointer, never written.
unsafe impl Sync for VmOps {}

static DEVBUF_VM_OPS: VmOps = VmOps(bindings::vm_operations_struct {
    open: Some(devbuf_open),
    close: Some(devbuf_close),
    fault: Some(devbuf_fault),
    pfn_mkwrite: Some(devbuf_pfn_mkwrite),
    // SAFETY: All-zero is a valid `vm_operations_struct` (no callbacks).
    ..unsafe { core::mem::zeroed() }
});

const VM_FAULT_OOM: bindings::vm_fault_t = bindings::vm_fault_reason_VM_FAULT_OOM;
const VM_FAULT_SIGBUS: bindings::vm_fault_t = bindings::vm_fault_reason_VM_FAULT_SIGBUS;

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

    /// The protection of page `idx` for a VMA with `vm_flags`, computed
    /// now: writable only if asked, with the page's cache mode.
    fn prot(vm_flags: usize, write: bool, cache: u8) -> bindings::pgprot_t {
        let mut f = vm_flags
            & (bindings::VM_READ | bindings::VM_WRITE | bindings::VM_EXEC | bindings::VM_SHARED);
        if !write {
            f &= !bindings::VM_WRITE;
        }
        // SAFETY: Pure computations on flags and protection values.
        let val = unsafe {
            let base = bindings::vm_get_page_prot(f);
            ffi::rust_hmm_prot_with_cache(base.pgprot, cache.into())
        };
        bindings::pgprot_t { pgprot: val }
    }

    /// Maps page `idx` at `addr` of `vma`, allocating it on first use.
    ///
    /// # Safety
    ///
    /// `vma` is a VMA of this buffer and its mmap lock is held.
    unsafe fn insert(
        &self,
        vma: *mut bindings::vm_area_struct,
        addr: usize,
        idx: usize,
        write: bool,
        mkwrite: bool,
    ) -> bindings::vm_fault_t {
        let mut store = self.store.lock();
        let page = match store.page(idx) {
            Ok(p) => p.as_ptr(),
            Err(_) => return VM_FAULT_OOM,
        };
        // A new page, or one a failed SET_CACHE left behind, gets its
        // linear map changed now. We hold the store mutex and the mmap
        // lock, and may sleep: TTM's pool changes pages at fault time too.
        if store.linear[idx] != store.cache[idx] {
            let r = store.sync_linear(idx, idx + 1);
            if store.linear[idx] != store.cache[idx] {
                return if r == Err(ENOMEM) {
                    VM_FAULT_OOM
                } else {
                    VM_FAULT_SIGBUS
                };
            }
        }
        // SAFETY: `page` is a live page of ours.
        let pfn = unsafe { ffi::rust_hmm_page_to_pfn(page) };
        // SAFETY: The caller holds the mmap lock of a valid `vma`.
        let flags = unsafe { VmaRef::from_raw(vma) }.flags();
        let prot = Self::prot(flags, write, store.cache[idx]);
        // Invariants: the hint and the dirty bit come before the PTE.
        self.mapped.set(idx);
        if write {
            self.dirty.set(idx);
        }
        let page_addr = addr & !(PAGE_SIZE - 1);
        if mkwrite {
            // The read-only PTE goes, through the primitive that notifies
            // and flushes, so that the writable one is ours, made under
            // the mutex.
            // SAFETY: `vma` is a `VM_PFNMAP` VMA, its mmap lock held.
            unsafe { bindings::zap_special_vma_range(vma, page_addr, PAGE_SIZE) };
        }
        // SAFETY: A `VM_PFNMAP`, `VM_SHARED` VMA under its mmap lock, an
        // address inside it, and a page that lives as long as the buffer,
        // which outlives every VMA (each holds a reference).
        unsafe { bindings::vmf_insert_pfn_prot(vma, page_addr, pfn, prot) }
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
            let pfn = unsafe { ffi::rust_hmm_page_to_pfn(page.as_ptr()) };
            // SAFETY: `mapping` is valid (type invariants); the page is
            // mapped at `pgoff` in every VMA of the buffer.
            let r = unsafe {
                ffi::mapping_wrprotect_range(self.mapping, self.base_pgoff() + idx, pfn, 1)
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

impl PfnSource for DevBuffer {
    fn vm_ops(&self) -> *const bindings::vm_operations_struct {
        &DEVBUF_VM_OPS.0
    }

    fn vm_private_data(&self) -> *const c_void {
        core::ptr::from_ref(self).cast()
    }

    fn next_maybe_mapped(&self, from: usize, to: usize) -> Option<usize> {
        let base = self.base_pgoff();
        let (from, to) = (from.checked_sub(base)?, to.checked_sub(base)?);
        self.mapped.next_set(from, to).map(|i| i + base)
    }

    fn populate(&self, vma: &VmaRef, addr: usize, pgoff: usize) -> Result {
        let idx = self.index(pgoff).ok_or(EFAULT)?;
        // SAFETY: The walker checked that `vma` is ours, and the borrow
        // proves its mmap lock is held.
        let r = unsafe { self.insert(vma.as_ptr(), addr, idx, false, false) };
        if r & VM_FAULT_OOM != 0 {
            Err(ENOMEM)
        } else if r & VM_FAULT_SIGBUS != 0 {
            Err(EFAULT)
        } else {
            Ok(())
        }
    }
}

/// The buffer of a VMA of ours.
///
/// # Safety
///
/// `vma` is a live VMA with our `vm_ops`: its `vm_private_data` holds a
/// reference to the buffer for as long as the VMA lives.
unsafe fn vma_buffer<'a>(vma: *const bindings::vm_area_struct) -> ArcBorrow<'a, DevBuffer> {
    // SAFETY: Per the function's contract, `vm_private_data` came from
    // `Arc::into_raw` and that reference is still held.
    unsafe { ArcBorrow::from_raw((*vma).vm_private_data.cast_const().cast()) }
}

/// `vm_ops->open`: a copy of one of our VMAs (fork, split, mremap). It
/// inherited `vm_private_data`, so it takes its own reference.
///
/// # Safety
///
/// Called by the core mm on a VMA copied from one with our `vm_ops`.
unsafe extern "C" fn devbuf_open(vma: *mut bindings::vm_area_struct) {
    // SAFETY: `vma` was copied from one of ours, so it has our private data.
    let buf: Arc<DevBuffer> = unsafe { vma_buffer(vma) }.into();
    // SAFETY: `open` is one of the places `register` may be called from;
    // `close` unregisters.
    unsafe { buf.vmas.register_or_poison(vma) };
    // The reference now belongs to the VMA.
    let _ = Arc::into_raw(buf);
}

/// `vm_ops->close`: the VMA goes; its PTEs are already gone.
///
/// # Safety
///
/// Called by the core mm, once, on a VMA with our `vm_ops`.
unsafe extern "C" fn devbuf_close(vma: *mut bindings::vm_area_struct) {
    // SAFETY: One of our VMAs, whose reference we take back here.
    let buf = unsafe { Arc::from_raw((*vma).vm_private_data.cast_const().cast::<DevBuffer>()) };
    buf.vmas.unregister(vma);
}

/// Where a fault lands: the buffer and page index, or `None` (`SIGBUS`).
///
/// # Safety
///
/// `vmf` is a fault on one of our VMAs.
unsafe fn fault_target<'a>(
    vmf: *mut bindings::vm_fault,
) -> Option<(
    ArcBorrow<'a, DevBuffer>,
    *mut bindings::vm_area_struct,
    usize,
    usize,
)> {
    // SAFETY: The caller passes a valid fault.
    let v = unsafe { &(*vmf).__bindgen_anon_1 };
    // SAFETY: The VMA is ours and alive during the fault.
    let buf = unsafe { vma_buffer(v.vma) };
    let idx = buf.index(v.pgoff)?;
    Some((buf, v.vma, v.address, idx))
}

/// `vm_ops->fault`: inserts the page, read-only unless this is a write.
///
/// # Safety
///
/// Called by the core mm for a fault on a VMA with our `vm_ops`.
unsafe extern "C" fn devbuf_fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
    // SAFETY: A fault on one of our VMAs.
    let Some((buf, vma, addr, idx)) = (unsafe { fault_target(vmf) }) else {
        return VM_FAULT_SIGBUS;
    };
    // SAFETY: As above.
    let write = unsafe { (*vmf).flags } & bindings::fault_flag_FAULT_FLAG_WRITE != 0;
    // SAFETY: Faults on VMAs without `map_pages` run under the mmap lock.
    unsafe { buf.insert(vma, addr, idx, write, false) }
}

/// `vm_ops->pfn_mkwrite`: the first write through a read-only PTE.
///
/// # Safety
///
/// Called by the core mm for a fault on a VMA with our `vm_ops`.
unsafe extern "C" fn devbuf_pfn_mkwrite(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
    // SAFETY: A fault on one of our VMAs.
    let Some((buf, vma, addr, idx)) = (unsafe { fault_target(vmf) }) else {
        return VM_FAULT_SIGBUS;
    };
    // SAFETY: `pfn_mkwrite` runs under the mmap lock (see
    // `vmf_can_call_fault()`). Returning `VM_FAULT_NOPAGE` (or an error)
    // tells the core we made the PTE writable ourselves.
    unsafe { buf.insert(vma, addr, idx, true, true) }
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
    new_mutex!(KVec::new())
}

fn find(bufs: &Buffers, offset: u64) -> Result<Arc<DevBuffer>> {
    bufs.lock()
        .iter()
        .find(|b| b.offset == offset)
        .cloned()
        .ok_or(EINVAL)
}

/// `mmap` at a buffer's offset: `MAP_SHARED`, inside the buffer.
pub(crate) fn mmap(bufs: &Buffers, vma: &VmaNew) -> Result {
    if vma.flags() & bindings::VM_SHARED == 0 {
        return Err(EINVAL);
    }
    let raw = vma.as_ptr();
    // SAFETY: The VMA being set up is valid.
    let pgoff = unsafe { (*raw).vm_pgoff } as u64;
    let off = pgoff.checked_mul(PAGE_SIZE as u64).ok_or(EINVAL)?;
    let rel = off.checked_sub(DEVBUF_MMAP_BASE).ok_or(EINVAL)?;
    let buf = find(bufs, off - rel % DEVBUF_MMAP_STRIDE)?;
    let first = (rel % DEVBUF_MMAP_STRIDE) >> PAGE_SHIFT;
    let pages = ((vma.end() - vma.start()) >> PAGE_SHIFT) as u64;
    buf.range(first, pages)?;
    // SAFETY: A VMA in its `mmap` call may have its flags set.
    unsafe { ffi::rust_hmm_vma_set_pfnmap(raw) };
    // SAFETY: Called in `mmap` after the last check that can fail; our
    // `close` unregisters.
    unsafe { buf.vmas.register(raw)? };
    // SAFETY: Nothing else uses the VMA during its `mmap` call. The
    // reference moves into the VMA and comes back in `close`.
    unsafe {
        (*raw).vm_private_data = Arc::into_raw(buf).cast_mut().cast();
        (*raw).vm_ops = &DEVBUF_VM_OPS.0;
    }
    Ok(())
}

fn create(bufs: &Buffers, file: &File, c: &mut HmmDevbufCreate) -> Result {
    if c.npages == 0 || c.npages > HMM_DEVBUF_MAX_PAGES {
        return Err(EINVAL);
    }
    let npages = c.npages as usize;
    if bufs.lock().len() >= DEVBUF_MAX_PER_FILE {
        return Err(ENOSPC);
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if id >= DEVBUF_MAX_IDS {
        return Err(ENOSPC);
    }
    let offset = DEVBUF_MMAP_BASE + id * DEVBUF_MMAP_STRIDE;
    let store = Store::new(npages)?;
    // SAFETY: The file is valid during the ioctl.
    let mapping = unsafe { (*file.as_ptr()).f_mapping };
    let (dirty, mapped) = (Bits::new(npages)?, Bits::new(npages)?);
    let buf = Arc::pin_init(
        try_pin_init!(DevBuffer {
            offset,
            npages,
            mapping,
            store <- new_mutex!(store),
            dirty,
            mapped,
            vmas <- VmaRegistry::new(),
        }),
        GFP_KERNEL,
    )?;
    let mut b = bufs.lock();
    if b.len() >= DEVBUF_MAX_PER_FILE {
        return Err(ENOSPC);
    }
    b.push(buf, GFP_KERNEL)?;
    c.offset = offset;
    Ok(())
}

fn walk(bufs: &Buffers, w: &mut HmmDevbufWalk) -> Result {
    if w.flags & !HMM_DEVBUF_WALK_POPULATE != 0 || w.max_entries > HMM_DEVBUF_WALK_MAX_ENTRIES {
        return Err(EINVAL);
    }
    if w.max_entries > 0 && w.entries == 0 {
        return Err(EINVAL);
    }
    let buf = find(bufs, w.offset)?;
    let (first, end) = buf.range(w.first, w.npages)?;
    let missing = if w.flags & HMM_DEVBUF_WALK_POPULATE != 0 {
        Missing::Populate
    } else {
        Missing::Skip
    };
    // Entries are gathered first: user memory cannot be written with an
    // mmap lock held.
    let max = w.max_entries as usize;
    let mut out: KVVec<HmmDevbufEntry> = KVVec::new();
    let base = buf.base_pgoff();
    // Publishes the `mapped` bits of every fault that completed before.
    drop(buf.store.lock());
    let stats = buf
        .vmas
        .walk(&*buf, base + first, base + end, missing, |e: &PfnEntry| {
            if out.len() < max {
                let mut flags = 0;
                if e.writable {
                    flags |= HMM_DEVBUF_PTE_WRITE;
                }
                if e.dirty {
                    flags |= HMM_DEVBUF_PTE_DIRTY;
                }
                out.push(
                    HmmDevbufEntry {
                        addr: e.addr as u64,
                        page: (e.pgoff - base) as u64,
                        flags,
                        cache: e.cache_bits as u32,
                        mm: e.mm_index as u64,
                    },
                    GFP_KERNEL,
                )?;
            }
            Ok(())
        })?;
    if !out.is_empty() {
        let bytes = out.len() * size_of::<HmmDevbufEntry>();
        let mut writer = UserSlice::new(UserPtr::from_addr(w.entries as usize), bytes).writer();
        for e in out.iter() {
            writer.write(e)?;
        }
    }
    w.nentries = stats.entries;
    w.nvmas = stats.vmas;
    w.nmms = stats.mms;
    Ok(())
}

fn range_cmd(bufs: &Buffers, cmd: u32, r: &mut HmmDevbufRange) -> Result {
    let buf = find(bufs, r.offset)?;
    let (first, end) = buf.range(r.first, r.npages)?;
    match cmd {
        HMM_DEVBUF_CLEAN => {
            let words = (end - first).div_ceil(64);
            let mut bits = KVVec::from_elem(0u64, words, GFP_KERNEL)?;
            r.count = buf.clean(first, end, &mut bits)?;
            let mut writer = UserSlice::new(UserPtr::from_addr(r.arg as usize), words * 8).writer();
            if let Err(e) = bits.iter().try_for_each(|w| writer.write(w)) {
                // The report is lost: keep the pages dirty (they are
                // write-protected now, which only costs a fault).
                for (i, w) in bits.iter().enumerate() {
                    for b in 0..64 {
                        if w & (1 << b) != 0 {
                            buf.dirty.set(first + i * 64 + b);
                        }
                    }
                }
                return Err(e);
            }
        }
        HMM_DEVBUF_ZAP => {
            if r.arg != 0 {
                return Err(EINVAL);
            }
            buf.zap(first, end);
            r.count = (end - first) as u64;
        }
        HMM_DEVBUF_SET_CACHE => {
            let mode = match r.arg {
                HMM_DEVBUF_CACHE_WB | HMM_DEVBUF_CACHE_UC | HMM_DEVBUF_CACHE_WC => r.arg as u8,
                _ => return Err(EINVAL),
            };
            buf.set_cache(first, end, mode)?;
            r.count = (end - first) as u64;
        }
        _ => return Err(ENOTTY),
    }
    Ok(())
}

/// The device-buffer ioctls, or `None` if `cmd` is not one of them.
pub(crate) fn ioctl(bufs: &Buffers, file: &File, cmd: u32, arg: usize) -> Option<Result<isize>> {
    fn rw<T: kernel::transmute::FromBytes + kernel::transmute::AsBytes>(
        arg: usize,
        f: impl FnOnce(&mut T) -> Result,
    ) -> Result<isize> {
        let (mut reader, mut writer) =
            UserSlice::new(UserPtr::from_addr(arg), size_of::<T>()).reader_writer();
        let mut v: T = reader.read()?;
        f(&mut v)?;
        writer.write(&v)?;
        Ok(0)
    }
    Some(match cmd {
        HMM_DEVBUF_CREATE => rw(arg, |c: &mut HmmDevbufCreate| create(bufs, file, c)),
        HMM_DEVBUF_WALK => rw(arg, |w: &mut HmmDevbufWalk| walk(bufs, w)),
        HMM_DEVBUF_CLEAN | HMM_DEVBUF_ZAP | HMM_DEVBUF_SET_CACHE => {
            rw(arg, |r: &mut HmmDevbufRange| range_cmd(bufs, cmd, r))
        }
        HMM_DEVBUF_STATS => UserSlice::new(UserPtr::from_addr(arg), size_of::<HmmDevbufStats>())
            .writer()
            .write(&stats())
            .map(|()| 0),
        _ => return None,
    })
}

#[kunit_tests(rust_hmm_devbuf)]
mod tests {
    use super::*;

    #[test]
    fn bits_next_set() -> Result {
        let b = Bits::new(200)?;
        assert_eq!(b.next_set(0, 200), None);
        for i in [0, 63, 64, 130, 199] {
            b.set(i);
        }
        assert_eq!(b.next_set(0, 200), Some(0));
        assert_eq!(b.next_set(1, 200), Some(63));
        assert_eq!(b.next_set(64, 200), Some(64));
        assert_eq!(b.next_set(65, 130), None);
        assert_eq!(b.next_set(65, 131), Some(130));
        assert_eq!(b.next_set(131, 200), Some(199));
        b.clear(199);
        assert_eq!(b.next_set(131, 200), None);
        assert_eq!(b.next_set(5, 5), None);
        Ok(())
    }

    #[test]
    fn ranges() {
        assert_eq!(page_range(64, 0, 64).ok(), Some((0, 64)));
        assert_eq!(page_range(64, 63, 1).ok(), Some((63, 64)));
        assert!(page_range(64, 0, 0).is_err());
        assert!(page_range(64, 1, 64).is_err());
        assert!(page_range(64, u64::MAX, 2).is_err());
        assert!(page_range(64, 64, 1).is_err());
    }

    /// Per-page protections: write only when asked, cache bits only for
    /// the non-write-back modes, never dirty.
    #[test]
    fn protections() {
        let shared_rw = bindings::VM_READ | bindings::VM_WRITE | bindings::VM_SHARED;
        let bits = |p: bindings::pgprot_t| {
            // SAFETY: Pure computations on protection values.
            unsafe {
                (
                    ffi::rust_hmm_prot_cache_bits(p.pgprot),
                    ffi::rust_hmm_prot_dirty(p.pgprot),
                )
            }
        };
        let wb = DevBuffer::prot(shared_rw, false, 0);
        let uc = DevBuffer::prot(shared_rw, false, 1);
        let wc = DevBuffer::prot(shared_rw, true, 2);
        assert_eq!(bits(wb), (0, false));
        assert_ne!(bits(uc).0, 0);
        assert_ne!(bits(wc).0, 0);
        assert!(!bits(wc).1);
        // Read and write protections of one VMA differ, in the write bit.
        assert_ne!(
            DevBuffer::prot(shared_rw, true, 0).pgprot,
            DevBuffer::prot(shared_rw, false, 0).pgprot
        );
        assert_eq!(
            DevBuffer::prot(shared_rw & !bindings::VM_WRITE, true, 0).pgprot,
            wb.pgprot
        );
    }

    /// The linear map follows the modes: one call per target type for the
    /// allocated pages of a range, none for pages already there, one for a
    /// page allocated later; dropping the store puts every page back to
    /// write-back, in one call, before freeing it.
    #[test]
    fn linear_map_follows_mode() -> Result {
        // SAFETY: Reads the kernel's page table entry for the linear
        // address of a page, which the test holds.
        let bits = |p: *mut bindings::page| unsafe { ffi::rust_hmm_linear_cache_bits(p) };
        // SAFETY: A pure computation.
        let want = |m: u8| unsafe { ffi::rust_hmm_cache_mode_bits(m.into()) };
        let calls = || CACHE_CALLS.load(Ordering::Relaxed);
        let not_wb = || PAGES_NOT_WB.load(Ordering::Relaxed);
        // SAFETY: Reads a boot-time setting.
        if unsafe { ffi::rust_hmm_pat_enabled() } {
            // SAFETY: Reads the PAT MSR of each CPU.
            let hw = |m: u8| unsafe { ffi::rust_hmm_pat_memtype(want(m)) };
            // What the CPUs make of the bits: `X86_MEMTYPE_WB`, `_UC_MINUS`
            // and `_WC`.
            assert_eq!((hw(WB), hw(UC), hw(WC)), (6, 7, 1));
        }
        let (c0, n0, pages0) = (calls(), not_wb(), PAGES.load(Ordering::Relaxed));
        let mut s = Store::new(4)?;
        let p = [
            s.page(0)?.as_ptr(),
            s.page(1)?.as_ptr(),
            s.page(2)?.as_ptr(),
        ];
        assert_eq!(PAGES.load(Ordering::Relaxed), pages0 + 3);
        for &pg in &p {
            assert_eq!(bits(pg), want(WB));
        }
        s.cache.iter_mut().for_each(|m| *m = UC);
        s.sync_linear(0, 4)?;
        assert_eq!(calls() - c0, 1);
        assert_eq!(not_wb() - n0, 3);
        for &pg in &p {
            assert_eq!(bits(pg), want(UC));
        }
        s.sync_linear(0, 4)?;
        assert_eq!(calls() - c0, 1);
        // UC to WC goes through write-back: two calls.
        s.cache.iter_mut().for_each(|m| *m = WC);
        s.sync_linear(0, 4)?;
        assert_eq!(calls() - c0, 3);
        assert_eq!(not_wb() - n0, 3);
        for &pg in &p {
            assert_eq!(bits(pg), want(WC));
        }
        let p3 = s.page(3)?.as_ptr();
        assert_eq!(bits(p3), want(WB));
        // A reference of our own on the pages we check after the store
        // frees them: a free page may be unmapped from the linear map
        // (DEBUG_PAGEALLOC), and must be checked while still ours.
        let kept = [p[0], p[2], p3];
        for &pg in &kept {
            // SAFETY: The store holds the page, so it is alive to take a
            // reference on; `rust_hmm_put_pages` below drops it.
            unsafe { ffi::rust_hmm_get_pages(ffi::rust_hmm_page_to_pfn(pg), 1) };
        }
        s.sync_linear(3, 4)?;
        assert_eq!(calls() - c0, 4);
        assert_eq!(bits(p3), want(WC));
        s.cache[1] = WB;
        s.sync_linear(0, 4)?;
        assert_eq!(calls() - c0, 5);
        assert_eq!(bits(p[1]), want(WB));
        assert_eq!(not_wb() - n0, 3);
        drop(s);
        assert_eq!(calls() - c0, 6);
        assert_eq!(not_wb(), n0);
        assert_eq!(PAGES.load(Ordering::Relaxed), pages0);
        for &pg in &kept {
            assert_eq!(bits(pg), want(WB));
            // SAFETY: The reference taken above.
            unsafe { ffi::rust_hmm_put_pages(ffi::rust_hmm_page_to_pfn(pg), 1) };
        }
        Ok(())
    }

    /// A change that fails (here PAT refuses WC for a page it records as
    /// UC behind the store's back) leaves its whole batch write-back and
    /// counted as such; the next sync makes it.
    #[test]
    fn failed_change_leaves_write_back() -> Result {
        // SAFETY: Reads a boot-time setting.
        if !unsafe { ffi::rust_hmm_pat_enabled() } {
            // Without PAT nothing refuses a change.
            return Ok(());
        }
        // SAFETY: As in `linear_map_follows_mode`.
        let bits = |p: *mut bindings::page| unsafe { ffi::rust_hmm_linear_cache_bits(p) };
        // SAFETY: A pure computation.
        let want = |m: u8| unsafe { ffi::rust_hmm_cache_mode_bits(m.into()) };
        let not_wb = || PAGES_NOT_WB.load(Ordering::Relaxed);
        let n0 = not_wb();
        let mut s = Store::new(2)?;
        let (a, b) = (s.page(0)?.as_ptr(), s.page(1)?.as_ptr());
        // SAFETY: A live page of `s`.
        unsafe { set_pages_cache(&[b], UC)? };
        s.cache.iter_mut().for_each(|m| *m = WC);
        assert_eq!(s.sync_linear(0, 2), Err(EINVAL));
        assert_eq!((s.linear[0], s.linear[1]), (WB, WB));
        assert_eq!((bits(a), bits(b)), (want(WB), want(WB)));
        assert_eq!(not_wb(), n0);
        s.sync_linear(0, 2)?;
        assert_eq!((bits(a), bits(b)), (want(WC), want(WC)));
        assert_eq!(not_wb() - n0, 2);
        drop(s);
        assert_eq!(not_wb(), n0);
        Ok(())
    }
}
