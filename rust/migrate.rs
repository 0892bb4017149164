// SPDX-License-Identifier: GPL-2.0

//! Page migration between system and device memory
//! (`include/linux/migrate.h`).
//!
//! A [`Migration`] is one round of `migrate_vma_setup()` (pages found by
//! virtual address, under the mmap lock) or `migrate_device_pfns()` (pages
//! found by device PFN, for eviction), followed by the driver choosing a
//! destination for each collected page, `migrate_*_pages()`, and always
//! `migrate_*_finalize()`, which [`Drop`] runs. The source pages stay
//! locked and referenced by the migration until then, so they may be read
//! for as long as the [`Migration`] lives; destinations are handed over as
//! [`DstFolio`]s, whose ownership passes to the migration core.
//!
//! Pages the driver gives no destination, or that the core cannot move, are
//! restored where they were: a failure is per page, never for the range.
//! A [`Migration`] dropped before [`Migration::pages`] (a driver's error
//! path) releases the destinations it was given and restores every page.

use crate::ffi;
use core::marker::PhantomData;
use kernel::{bindings, mm::virt::VmaRef, prelude::*};

/// Most pages one [`Migration`] handles: one PMD, as `lib/test_hmm.c`.
pub const MAX_PAGES: usize = 512;

/// Which pages `migrate_vma_setup()` collects.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Select {
    /// System memory, to move it into the device.
    System,
    /// The caller's device-private pages (matched by owner), to move them
    /// back to system memory.
    DevicePrivate,
}

/// One source entry, as the core reported it (`MIGRATE_PFN_*`).
#[derive(Clone, Copy, Debug)]
pub struct SrcPfn(u64);

impl SrcPfn {
    /// The page may be migrated (it was collected and is locked).
    pub fn migrate(self) -> bool {
        self.0 & ffi::MIGRATE_PFN_MIGRATE != 0
    }

    /// The PFN of the source page; `None` for an empty or zero-page entry,
    /// whose destination starts out zeroed.
    pub fn pfn(self) -> Option<u64> {
        (self.0 & ffi::MIGRATE_PFN_VALID != 0).then_some(self.0 >> ffi::MIGRATE_PFN_SHIFT)
    }

    /// The CPU mapping was writable.
    pub fn write(self) -> bool {
        self.0 & ffi::MIGRATE_PFN_WRITE != 0
    }

    /// The entry heads a PMD-sized folio; the next 511 entries belong to it.
    pub fn compound(self) -> bool {
        self.0 & ffi::MIGRATE_PFN_COMPOUND != 0
    }
}

/// A destination: a locked folio head with one reference, owned.
///
/// # Invariants
///
/// `page` is the head of a locked folio of `order` on which this value
/// owns one reference.
pub struct DstFolio {
    page: *mut bindings::page,
    order: u32,
}

// SAFETY: A locked folio reference may be dropped from any thread.
unsafe impl Send for DstFolio {}

impl DstFolio {
    /// Takes ownership of a locked folio head.
    ///
    /// # Safety
    ///
    /// `page` is the head of a locked folio of `order` and the caller gives
    /// this value its one reference.
    pub unsafe fn from_raw(page: *mut bindings::page, order: u32) -> Self {
        // INVARIANT: As the caller promises.
        Self { page, order }
    }

    /// A system-memory folio of `order` to migrate into: near `vma` at
    /// `addr` if given, anywhere otherwise. `None` if memory is short.
    pub fn alloc_system(vma: Option<&VmaRef>, addr: u64, order: u32) -> Option<Self> {
        let vma = vma.map_or(core::ptr::null_mut(), VmaRef::as_ptr);
        // SAFETY: `vma` is null or a VMA kept alive by the caller's borrow
        // (which holds the mmap lock); the helper returns a locked folio
        // with one reference, or null.
        let page = unsafe { ffi::rust_hmm_alloc_migrate_folio(vma, addr as usize, order) };
        // SAFETY: See above.
        (!page.is_null()).then(|| unsafe { Self::from_raw(page, order) })
    }

    /// PFN of the head page.
    pub fn pfn(&self) -> u64 {
        // SAFETY: `page` is a valid page by the type invariant.
        unsafe { ffi::rust_hmm_page_to_pfn(self.page) as u64 }
    }

    /// The folio's order.
    pub fn order(&self) -> u32 {
        self.order
    }

    /// The `i`-th page of the folio.
    pub fn page(&self, i: usize) -> *mut bindings::page {
        debug_assert!(i < 1 << self.order);
        // Folio pages are contiguous in the memory map (SPARSEMEM_VMEMMAP).
        self.page.wrapping_add(i)
    }
}

impl Drop for DstFolio {
    fn drop(&mut self) {
        // SAFETY: We own a reference to a locked folio (type invariant).
        unsafe { ffi::rust_hmm_unlock_put_page(self.page) };
    }
}

enum Kind<'a> {
    /// `migrate_vma_*`; borrows the VMA, and with it the mmap lock.
    Vma(PhantomData<&'a VmaRef>),
    /// `migrate_device_*`.
    Device,
}

/// Arrays of up to this many entries live inside the [`Migration`]: a CPU
/// fault moves one page, and two allocations would cost a good part of it.
const INLINE: usize = 1;

/// A `src` or `dst` array of `MIGRATE_PFN_*` entries.
enum Pfns {
    Inline([u64; INLINE], usize),
    Heap(KVec<u64>),
}

impl Pfns {
    fn zeroed(n: usize) -> Result<Self> {
        Ok(if n <= INLINE {
            Self::Inline([0; INLINE], n)
        } else {
            Self::Heap(KVec::from_elem(0u64, n, GFP_KERNEL)?)
        })
    }
}

impl core::ops::Deref for Pfns {
    type Target = [u64];

    fn deref(&self) -> &[u64] {
        match self {
            Self::Inline(a, n) => &a[..*n],
            Self::Heap(v) => v,
        }
    }
}

impl core::ops::DerefMut for Pfns {
    fn deref_mut(&mut self) -> &mut [u64] {
        match self {
            Self::Inline(a, n) => &mut a[..*n],
            Self::Heap(v) => v,
        }
    }
}

/// One migration round; see the module documentation.
///
/// # Invariants
///
/// `src` and `dst` hold `raw.npages` entries (`raw.src` and `raw.dst` are
/// pointed at them before each call into the core, since inline arrays
/// move with the value); setup has succeeded, so finalize is owed, and
/// `pages_done` says whether `migrate_*_pages()` has run.
pub struct Migration<'a> {
    raw: ffi::migrate_vma,
    src: Pfns,
    dst: Pfns,
    kind: Kind<'a>,
    pages_done: bool,
}

impl<'a> Migration<'a> {
    /// `migrate_vma_setup()` over `[start, end)` of `vma`: at most
    /// [`MAX_PAGES`] pages, inside the VMA. `owner` is the device's
    /// `dev_pagemap` owner; `compound` collects PMD-sized folios whole
    /// instead of splitting them; `fault_page` is the page of a
    /// `migrate_to_ram()` fault, if this runs in one.
    pub fn vma(
        vma: &'a VmaRef,
        start: u64,
        end: u64,
        owner: *const core::ffi::c_void,
        select: Select,
        compound: bool,
        fault_page: Option<*mut bindings::page>,
    ) -> Result<Self> {
        let page_mask = kernel::page::PAGE_SIZE as u64 - 1;
        if start >= end || (start | end) & page_mask != 0 {
            return Err(EINVAL);
        }
        if start < vma.start() as u64 || end > vma.end() as u64 {
            return Err(EINVAL);
        }
        let npages = ((end - start) >> kernel::page::PAGE_SHIFT) as usize;
        if npages > MAX_PAGES {
            return Err(EINVAL);
        }
        let mut src = Pfns::zeroed(npages)?;
        let mut dst = Pfns::zeroed(npages)?;
        let mut flags = match select {
            Select::System => ffi::MIGRATE_VMA_SELECT_SYSTEM,
            Select::DevicePrivate => ffi::MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
        };
        if compound {
            flags |= ffi::MIGRATE_VMA_SELECT_COMPOUND;
        }
        let mut raw = ffi::migrate_vma {
            vma: vma.as_ptr(),
            dst: dst.as_mut_ptr().cast(),
            src: src.as_mut_ptr().cast(),
            cpages: 0,
            npages: 0,
            start: start as usize,
            end: end as usize,
            pgmap_owner: owner.cast_mut(),
            flags: flags as usize,
            fault_page: fault_page.unwrap_or(core::ptr::null_mut()),
        };
        // SAFETY: `raw` names a range inside `vma`, which the caller keeps
        // mmap-locked for `'a`; the arrays hold one entry per page.
        kernel::error::to_result(unsafe { ffi::migrate_vma_setup(&mut raw) })?;
        // INVARIANT: Setup succeeded; the arrays are owned.
        Ok(Self {
            raw,
            src,
            dst,
            kind: Kind::Vma(PhantomData),
            pages_done: false,
        })
    }

    /// `migrate_device_pfns()`: collects the device pages `pfns` (every page
    /// of a large folio, in order) to move them out of device memory
    /// without knowing where they are mapped.
    ///
    /// # Safety
    ///
    /// Every PFN is a device-private page of the caller's `dev_pagemap`.
    pub unsafe fn device_pfns(mut pfns: KVec<u64>) -> Result<Migration<'static>> {
        let n = pfns.len();
        let mut dst = Pfns::zeroed(n)?;
        // SAFETY: The caller guarantees the PFNs; `pfns` has `n` entries and
        // is rewritten in place into source entries.
        unsafe { ffi::migrate_device_pfns(pfns.as_mut_ptr().cast(), n) };
        let raw = ffi::migrate_vma {
            vma: core::ptr::null_mut(),
            dst: dst.as_mut_ptr().cast(),
            src: pfns.as_mut_ptr().cast(),
            cpages: 0,
            npages: n,
            start: 0,
            end: 0,
            pgmap_owner: core::ptr::null_mut(),
            flags: 0,
            fault_page: core::ptr::null_mut(),
        };
        // INVARIANT: As in `vma`.
        Ok(Migration {
            raw,
            src: Pfns::Heap(pfns),
            dst,
            kind: Kind::Device,
            pages_done: false,
        })
    }

    /// Number of entries (pages of the range).
    pub fn npages(&self) -> usize {
        self.src.len()
    }

    /// Start address of the range (0 for a device migration).
    pub fn start(&self) -> u64 {
        self.raw.start as u64
    }

    /// Entry `i` as collected.
    pub fn src(&self, i: usize) -> SrcPfn {
        SrcPfn(self.src[i])
    }

    /// Gives entry `i` (the head, for a compound source) the destination
    /// `folio`, mapped writable if `write`. A folio of a different size
    /// than the source makes the core split the source (system memory) or
    /// skip the page (device memory). `EINVAL` if the entry is not to be
    /// migrated, already has a destination, or would overflow the range.
    pub fn set_dst(&mut self, i: usize, folio: DstFolio, write: bool) -> Result {
        if self.pages_done || i >= self.npages() || self.dst[i] != 0 {
            return Err(EINVAL);
        }
        let split_tail = || folio.order() == 0 && self.in_compound(i);
        if !self.src(i).migrate() && !split_tail() {
            return Err(EINVAL);
        }
        if i + (1usize << folio.order()) > self.npages() {
            return Err(EINVAL);
        }
        let mut v = (folio.pfn() << ffi::MIGRATE_PFN_SHIFT) | ffi::MIGRATE_PFN_VALID;
        if write {
            v |= ffi::MIGRATE_PFN_WRITE;
        }
        if folio.order() > 0 {
            v |= ffi::MIGRATE_PFN_COMPOUND;
        }
        self.dst[i] = v;
        // The migration core now owns the reference and the lock.
        core::mem::forget(folio);
        Ok(())
    }

    /// Whether entry `i` lies inside a compound source being migrated, whose
    /// pages may each get a small destination.
    fn in_compound(&self, i: usize) -> bool {
        let span = 1usize << crate::devmem::PMD_ORDER;
        (i.saturating_sub(span - 1)..i)
            .rev()
            .map(|h| (h, self.src(h)))
            .find(|(_, s)| s.0 != 0)
            .is_some_and(|(h, s)| s.compound() && s.migrate() && i < h + span)
    }

    /// `raw`, pointed at the arrays where they are now.
    fn raw(&mut self) -> &mut ffi::migrate_vma {
        self.raw.src = self.src.as_mut_ptr().cast();
        self.raw.dst = self.dst.as_mut_ptr().cast();
        &mut self.raw
    }

    /// `migrate_*_pages()`: moves every entry that has a destination.
    /// Afterwards [`Self::migrated`] tells which did.
    pub fn pages(&mut self) {
        if self.pages_done {
            return;
        }
        self.pages_done = true;
        match self.kind {
            // SAFETY: Setup succeeded (type invariant) and the VMA is still
            // locked (`'a`).
            Kind::Vma(_) => unsafe { ffi::migrate_vma_pages(self.raw()) },
            Kind::Device => {
                let raw = self.raw();
                // SAFETY: As above; the arrays have `npages` entries.
                unsafe { ffi::migrate_device_pages(raw.src, raw.dst, raw.npages) }
            }
        }
    }

    /// Whether entry `i` now lives at its destination.
    pub fn migrated(&self, i: usize) -> bool {
        self.pages_done && self.src(i).migrate() && self.dst[i] != 0
    }
}

impl Drop for Migration<'_> {
    fn drop(&mut self) {
        if !self.pages_done {
            // Finalize replaces each source's migration entries by walking
            // the rmap of its destination, which only `migrate_*_pages()`
            // gives the source's mapping. Finalized without it, a
            // destination's walk finds nothing, the entries stay behind
            // pointing to a source that is then unlocked and released, and
            // every later fault there returns at once and faults again, for
            // ever. So the destinations go first, and finalize restores
            // every source where it was.
            for d in self.dst.iter_mut() {
                if *d & ffi::MIGRATE_PFN_VALID != 0 {
                    let order = if *d & ffi::MIGRATE_PFN_COMPOUND != 0 {
                        crate::devmem::PMD_ORDER
                    } else {
                        0
                    };
                    // SAFETY: `set_dst` stored the PFN of a locked folio
                    // head of that order and gave up its reference, which
                    // nothing has taken over since `pages()` never ran.
                    let page = unsafe {
                        ffi::rust_hmm_pfn_to_page((*d >> ffi::MIGRATE_PFN_SHIFT) as usize)
                    };
                    // SAFETY: As above: ours to unlock and release.
                    drop(unsafe { DstFolio::from_raw(page, order) });
                    *d = 0;
                }
            }
        }
        match self.kind {
            // SAFETY: Setup succeeded and finalize has not run (type
            // invariant); it unlocks and releases sources and destinations.
            Kind::Vma(_) => unsafe { ffi::migrate_vma_finalize(self.raw()) },
            Kind::Device => {
                let raw = self.raw();
                // SAFETY: As above.
                unsafe { ffi::migrate_device_finalize(raw.src, raw.dst, raw.npages) }
            }
        }
    }
}
