// SPDX-License-Identifier: GPL-2.0

//! Cache modes (see "Cache modes" in `devbuf.rs`): the pages of a buffer,
//! the memory type of each page's linear map, and the module-wide
//! counters of both.

use crate::ffi;
use crate::helpers;
use crate::uapi::*;
use core::sync::atomic::{
    AtomicU64,
    AtomicUsize,
    Ordering, //
};
use kernel::{
    bindings,
    page::Page,
    prelude::*,
    sync::{
        Arc,
        SetOnce, //
    }, //
};

/// Buffer pages allocated now, in every buffer of the module.
pub(super) static PAGES: AtomicUsize = AtomicUsize::new(0);
/// Of those, pages whose linear map is not write-back: 0 again once every
/// buffer is gone, checked at unload.
pub(super) static PAGES_NOT_WB: AtomicUsize = AtomicUsize::new(0);
/// `set_pages_array_*()` calls made since load.
pub(super) static CACHE_CALLS: AtomicU64 = AtomicU64::new(0);

pub(super) const WB: u8 = HMM_DEVBUF_CACHE_WB as u8;
pub(super) const UC: u8 = HMM_DEVBUF_CACHE_UC as u8;
pub(super) const WC: u8 = HMM_DEVBUF_CACHE_WC as u8;
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
pub(super) unsafe fn set_pages_cache(pages: &[*mut bindings::page], mode: u8) -> Result {
    CACHE_CALLS.fetch_add(1, Ordering::Relaxed);
    // The C function takes a mutable array but only reads it.
    let ptr = pages.as_ptr().cast_mut();
    // At most `HMM_DEVBUF_MAX_PAGES` entries: the length fits.
    let n = pages.len() as i32;
    // SAFETY: `n` readable entries, each a live page (function contract).
    let r = unsafe { helpers::dmirror_set_pages_cache(ptr, n, mode.into()) };
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
pub(super) fn stats() -> HmmDevbufStats {
    // SAFETY: Reads a boot-time setting.
    let pat = unsafe { helpers::dmirror_pat_enabled() };
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

/// The pages of a buffer: each allocated once, at its first fault, and
/// freed with the last holder of the table (the buffer and its store),
/// after the last VMA is gone. A page whose PTE is inserted is borrowed
/// from here (see `crate::vma_ops::PfnVma::insert_pfn_prot`), which is
/// why it is not behind the store mutex.
pub(super) type Pages = KVVec<SetOnce<Page>>;

/// Pages and their cache modes, allocated on first fault.
///
/// # Invariants
///
/// For an allocated page `i`, `linear[i]` is the memory type of its linear
/// map (`WB`, `UC`, `WC` or `LINEAR_UNKNOWN`), and the page is counted in
/// [`PAGES`] and, unless `linear[i]` is `WB`, in [`PAGES_NOT_WB`]. A user
/// PTE maps page `i` only while `linear[i] == cache[i]`. A page is freed
/// only with a write-back linear map.
pub(super) struct Store {
    pub(super) pages: Arc<Pages>,
    /// The mode of each page's PTEs.
    pub(super) cache: KVVec<u8>,
    pub(super) linear: KVVec<u8>,
}

impl Store {
    pub(super) fn new(npages: usize) -> Result<Self> {
        let mut pages = KVVec::with_capacity(npages, GFP_KERNEL)?;
        for _ in 0..npages {
            pages.push(SetOnce::new(), GFP_KERNEL)?;
        }
        Ok(Self {
            pages: Arc::new(pages, GFP_KERNEL)?,
            cache: KVVec::from_elem(WB, npages, GFP_KERNEL)?,
            linear: KVVec::from_elem(WB, npages, GFP_KERNEL)?,
        })
    }

    /// Page `idx`, allocated (zeroed, write-back) if it was not.
    pub(super) fn page(&mut self, idx: usize) -> Result<&Page> {
        if self.pages[idx].as_ref().is_none() {
            // Only the store fills a slot, and the caller holds it
            // mutably: this one is still empty.
            self.pages[idx].populate(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?);
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
        let picked =
            |s: &Self, i: usize| s.pages[i].as_ref().is_some() && pick(s.linear[i], s.cache[i]);
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
    pub(super) fn sync_linear(&mut self, first: usize, end: usize) -> Result {
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
    /// cannot be restored is leaked (a reference of ours is never
    /// dropped), and stays counted; the others are freed with the last
    /// holder of `pages`.
    fn drop(&mut self) {
        let n = self.pages.len();
        if self.convert(0, n, WB, |lin, _| lin != WB).is_err() {
            for i in 0..n {
                let _ = self.convert(i, i + 1, WB, |lin, _| lin != WB);
            }
        }
        for i in 0..n {
            let Some(page) = self.pages[i].as_ref() else {
                continue;
            };
            if self.linear[i] == WB {
                PAGES.fetch_sub(1, Ordering::Relaxed);
            } else {
                pr_err!("a device-buffer page could not be made write-back again: leaked\n");
                // SAFETY: A live page of ours; the reference is never
                // dropped, so the page is never freed.
                unsafe { ffi::rust_hmm_get_pages(ffi::page_to_pfn(page.as_ptr()), 1) };
            }
        }
    }
}
