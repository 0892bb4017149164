// SPDX-License-Identifier: GPL-2.0

//! Device-private memory (`MEMORY_DEVICE_PRIVATE`, `include/linux/memremap.h`).
//!
//! A [`DevicePrivatePool`] gives a device `struct page`s for memory the CPU
//! cannot address: chunks of physical address space that no RAM uses
//! (`request_free_mem_region()`), registered with `memremap_pages()`, and
//! a free-page allocator over them that hands out single pages and
//! PMD-sized folios. The pool is the `dev_pagemap` owner: its address is
//! the cookie for `hmm_range::dev_private_owner` and
//! `migrate_vma::pgmap_owner`, so HMM reports and migrates only its pages.
//!
//! The driver implements [`DevmemOps`], as drm_pagemap's devmem ops: what
//! to release when a folio is freed, and how to copy a folio's data to a
//! system folio. The pool does the migrations back itself: on a CPU fault
//! (`migrate_to_ram`), on [`DevicePrivatePool::evict`], and for every page
//! still in use before the memory is unregistered, so no driver can leave a
//! page behind and hang the unload. Per page the pool keeps a
//! driver-defined [`DevmemOps::PageData`].
//!
//! # Deadlocks
//!
//! [`DevmemOps::copy_to_ram`] runs with a source folio locked by a
//! migration, and from a CPU fault with the mmap or VMA lock held: it must
//! not take the mmap lock, wait for a folio lock, or evict this pool.
//! [`DevmemOps::folio_free`] may run in atomic context: it must not sleep.

use crate::ffi;
use crate::hmm;
use crate::migrate::{DstFolio, DstPage, PagemapOwner, SrcPfn};
use core::marker::PhantomPinned;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use kernel::{
    alloc::{
        flags::{GFP_KERNEL, GFP_NOWAIT},
        VVec,
    },
    bindings, new_mutex, new_spinlock,
    prelude::*,
    sync::{Mutex, SpinLock},
    types::Opaque,
};

mod migration_tests;
mod to_device;
mod to_ram;

pub use crate::migrate::PMD_ORDER;
const PMD_PAGES: u64 = 1 << PMD_ORDER;

/// What a driver of device-private memory provides.
pub trait DevmemOps: Send + Sync + Sized + 'static {
    /// Kept for every device page, from pool creation to unload.
    type PageData: Default + Send + Sync;

    /// The folio at `pfn` was freed: release what the driver holds for it.
    /// `data` is that of each of its pages, in order (one for a small
    /// folio). May run in atomic context.
    fn folio_free(pool: &DevicePrivatePool<Self>, pfn: u64, data: &[Self::PageData]);

    /// Copies the data of a device folio into `dst`, a system folio of the
    /// same size, and marks `dst` filled ([`DstFolio::assume_filled`], or
    /// [`DstFolio::zero`] for a page that holds nothing). `data` is that of
    /// each page of the source, in order. An error, or `dst` left unfilled,
    /// leaves the source in device memory for now. Runs with the source
    /// locked by a migration; see the module's "Deadlocks".
    fn copy_to_ram(
        pool: &DevicePrivatePool<Self>,
        data: &[Self::PageData],
        dst: &mut DstFolio,
    ) -> Result;
}

mod private {
    pub trait Sealed {}
}

/// A page frame number the kernel handed out, which names a page with a
/// `struct page` for as long as the value can be used: an [`hmm::Pfn`]
/// borrowed from a `hmm_range_fault()` answer (under the notifier lock), a
/// migration's [`SrcPfn`] or a page of a [`DstFolio`]. What the pool's
/// lookups take, rather than any integer.
pub trait KernelPfn: private::Sealed {
    /// The PFN, or `None` for an entry that names no page.
    fn kernel_pfn(&self) -> Option<u64>;
}

impl private::Sealed for &hmm::Pfn {}
impl KernelPfn for &hmm::Pfn {
    fn kernel_pfn(&self) -> Option<u64> {
        self.is_valid().then(|| self.pfn())
    }
}

impl private::Sealed for SrcPfn<'_> {}
impl KernelPfn for SrcPfn<'_> {
    fn kernel_pfn(&self) -> Option<u64> {
        self.pfn()
    }
}

impl private::Sealed for DstPage<'_> {}
impl KernelPfn for DstPage<'_> {
    fn kernel_pfn(&self) -> Option<u64> {
        Some(self.pfn())
    }
}

/// A CPU fault on a device-private page (`struct vm_fault`), valid for the
/// duration of the pool's `migrate_to_ram` callback.
pub struct DeviceFault<'a> {
    raw: &'a bindings::vm_fault,
}

impl DeviceFault<'_> {
    /// Faulting address.
    pub fn address(&self) -> u64 {
        self.raw.__bindgen_anon_1.address as u64
    }

    /// The VMA, locked by the fault path.
    pub fn vma(&self) -> &kernel::mm::virt::VmaRef {
        // SAFETY: The fault handler holds the mmap lock or the VMA lock for
        // the duration of the callback, which bounds `'_`.
        unsafe { kernel::mm::virt::VmaRef::from_raw(self.raw.__bindgen_anon_1.vma) }
    }

    /// The order of the folio of the device page the CPU touched.
    pub fn folio_order(&self) -> u32 {
        // SAFETY: The fault holds the page locked and referenced.
        unsafe { ffi::rust_hmm_page_order(self.raw.page) }
    }

    /// Whether the fault came through a PTE: the folio may then be mapped
    /// only in part and must be migrated page by page.
    pub fn through_pte(&self) -> bool {
        !self.raw.pte.is_null()
    }

    /// A migration of `[start, end)` of the faulting VMA back to system
    /// memory, with the faulting page as `migrate_vma_setup()`'s fault page
    /// (which it must not lock again); `owner` is the pool's.
    pub fn migration(
        &self,
        owner: PagemapOwner,
        start: u64,
        end: u64,
        compound: bool,
    ) -> Result<crate::migrate::Migration<'_>> {
        // SAFETY: `self.raw.page` is the page of the fault being handled:
        // the core locked and referenced it before calling
        // `migrate_to_ram()`, and keeps it so until the callback returns,
        // which outlives the `'_` of the result.
        unsafe {
            crate::migrate::Migration::vma_in_fault(
                self.vma(),
                start,
                end,
                owner,
                crate::migrate::Select::DevicePrivate,
                compound,
                Some(self.raw.page),
            )
        }
    }
}

/// One `memremap_pages()` registration.
///
/// # Invariants
///
/// `res` is a region reserved for this chunk until drop, and if
/// `registered`, `pagemap` is registered over it; `pool` outlives the chunk.
#[repr(C)]
struct Chunk<T: DevmemOps> {
    /// First, so that a `dev_pagemap` pointer is a `Chunk` pointer.
    pagemap: Opaque<bindings::dev_pagemap>,
    pool: *const DevicePrivatePool<T>,
    res: *mut bindings::resource,
    first_pfn: u64,
    npages: u64,
    data: VVec<T::PageData>,
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
enum PageState {
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
    fn set_state(&self, pfn: u64, n: usize, state: PageState) {
        let first = (pfn - self.first_pfn) as usize;
        if let Some(cells) = self.state.get(first..first + n) {
            for c in cells {
                c.store(state as u8, Ordering::Release);
            }
        }
    }

    /// The state of page `i` of the chunk.
    fn state(&self, i: usize) -> PageState {
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

/// Free device pages, as PFNs. Capacities always cover every page of the
/// pool, so that freeing never allocates.
struct FreeLists {
    small: VVec<u64>,
    large: VVec<u64>,
}

impl FreeLists {
    /// Turns every whole, aligned PMD block of free small pages back into a
    /// large block. Sorting keeps this in place (no allocation under the
    /// spinlock); it runs only when a PMD request finds no large block, and
    /// on an already sorted list it is linear.
    fn coalesce(&mut self) {
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

/// Counters of a pool.
#[derive(Clone, Copy, Default, Debug)]
pub struct PoolStats {
    /// Pages registered.
    pub pages: u64,
    /// Pages handed out and not yet freed.
    pub in_use: u64,
}

/// Device-private memory of one device; see the module documentation.
///
/// # Invariants
///
/// Every chunk's `pool` points to this pool, which is pinned; free lists
/// hold only free pages of its chunks, each once.
#[pin_data(PinnedDrop)]
pub struct DevicePrivatePool<T: DevmemOps> {
    ops: T,
    chunk_bytes: u64,
    max_chunks: usize,
    /// Chunks, only ever appended to until drop. Growth is serialised here.
    #[pin]
    chunks: Mutex<KVec<Pin<KBox<Chunk<T>>>>>,
    #[pin]
    free: SpinLock<FreeLists>,
    in_use: AtomicUsize,
    pages: AtomicUsize,
    /// `chunks.len()`, readable without the mutex.
    nchunks: AtomicUsize,
    #[pin]
    _pin: PhantomPinned,
}

/// The `dev_pagemap_ops` of pools of `T`.
struct VTable<T>(PhantomData<T>);
use core::marker::PhantomData;

impl<T: DevmemOps> VTable<T> {
    const OPS: bindings::dev_pagemap_ops = bindings::dev_pagemap_ops {
        folio_free: Some(Self::folio_free),
        migrate_to_ram: Some(Self::migrate_to_ram),
        memory_failure: None,
        // The core's default split (copy `pgmap` and `mapping` to the new
        // folio) is right: per-page data is kept by PFN, not in the folio.
        folio_split: None,
    };

    /// # Safety
    ///
    /// `page` belongs to a chunk of a live pool of `T`.
    unsafe fn chunk<'a>(page: *mut bindings::page) -> &'a Chunk<T> {
        // SAFETY: A ZONE_DEVICE page names its `dev_pagemap`, the first field
        // of our `#[repr(C)]` chunk, which lives as long as its pages.
        unsafe { &*ffi::rust_hmm_page_pgmap(page).cast::<Chunk<T>>() }
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
        // SAFETY: `page` is a valid folio head.
        let (pfn, order) = unsafe {
            (
                ffi::rust_hmm_page_to_pfn(page) as u64,
                ffi::rust_hmm_page_order(page),
            )
        };
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

impl<T: DevmemOps> DevicePrivatePool<T> {
    /// A pool of up to `max_chunks` chunks of `chunk_bytes` (a multiple of
    /// 2 MiB), registered on first use.
    pub fn new(ops: T, chunk_bytes: u64, max_chunks: usize) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            ops,
            chunk_bytes,
            max_chunks,
            chunks <- new_mutex!(KVec::new()),
            free <- new_spinlock!(FreeLists { small: VVec::new(), large: VVec::new() }),
            in_use: AtomicUsize::new(0),
            pages: AtomicUsize::new(0),
            nchunks: AtomicUsize::new(0),
            _pin: PhantomPinned,
        }? Error)
    }

    /// The driver's part.
    pub fn ops(&self) -> &T {
        &self.ops
    }

    /// The owner cookie of this pool's pages.
    pub fn owner(&self) -> PagemapOwner {
        PagemapOwner::of(self)
    }

    /// Counters.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            pages: self.pages.load(Ordering::Relaxed) as u64,
            in_use: self.in_use.load(Ordering::Relaxed) as u64,
        }
    }

    /// The chunk holding `pfn`, if it is a device-private page of this pool.
    /// `pfn` comes from a [`KernelPfn`] (or from a chunk), so it has a
    /// `struct page`.
    fn chunk_of(&self, pfn: u64) -> Option<&Chunk<T>> {
        // SAFETY: Only reads the page's flags and pgmap (and checks the PFN
        // has a `struct page` first). One call for both: helper calls are
        // what this path costs.
        let pgmap = unsafe { ffi::rust_hmm_device_private_pgmap(pfn as usize) };
        if pgmap.is_null() {
            return None;
        }
        // SAFETY: Every `dev_pagemap` of the kernel stays valid while it has
        // pages; `owner` is set before registration and never changes.
        if unsafe { (*pgmap).owner } != self.owner().as_ptr() {
            return None;
        }
        // SAFETY: Our owner cookie is on our chunks' pagemaps only, each the
        // first field of its `#[repr(C)]` chunk, which outlives its pages.
        Some(unsafe { &*pgmap.cast::<Chunk<T>>() })
    }

    /// Whether `page` is a device-private page of this pool.
    pub fn owns(&self, page: impl KernelPfn) -> bool {
        page.kernel_pfn()
            .and_then(|pfn| self.chunk_of(pfn))
            .is_some()
    }

    /// The driver data of `page`, if it is a device page of this pool.
    pub fn page_data(&self, page: impl KernelPfn) -> Option<&T::PageData> {
        let pfn = page.kernel_pfn()?;
        let chunk = self.chunk_of(pfn)?;
        chunk.data.get((pfn - chunk.first_pfn) as usize)
    }

    /// The data of the `n` pages from `pfn` on, if they are all in one
    /// chunk of this pool.
    fn pages_data(&self, pfn: u64, n: usize) -> Option<&[T::PageData]> {
        let chunk = self.chunk_of(pfn)?;
        let first = (pfn - chunk.first_pfn) as usize;
        chunk.data.get(first..first.checked_add(n)?)
    }

    /// A free folio of `order` (0 or [`PMD_ORDER`]), initialised as the
    /// migration core wants a destination: locked, one reference. Registers
    /// a chunk when none is free; `ENOMEM` at the limit.
    ///
    /// Not public: a migration into the pool must commit through
    /// [`Self::migrate_to_device`], which records the pages that then hold
    /// data (eviction moves only those). Only tests take folios here.
    pub(crate) fn alloc(&self, order: u32) -> Result<crate::migrate::DstFolio> {
        if order != 0 && order != PMD_ORDER {
            return Err(EINVAL);
        }
        loop {
            let seen = self.nchunks.load(Ordering::Acquire);
            if let Some(pfn) = self.take(order) {
                // SAFETY: `pfn` is a free page of one of our chunks.
                let page = unsafe { ffi::rust_hmm_pfn_to_page(pfn as usize) };
                // SAFETY: As above; the chunk registration is its pgmap.
                let chunk = unsafe { VTable::<T>::chunk(page) };
                // SAFETY: A free page (refcount 0) of `chunk` with room for
                // `order` (large blocks are aligned and whole).
                unsafe { ffi::rust_hmm_zone_device_folio_init(page, chunk.pagemap.get(), order) };
                chunk.set_state(pfn, 1 << order, PageState::Held);
                self.in_use.fetch_add(1 << order, Ordering::Relaxed);
                // SAFETY: Just initialised: locked, one reference, ours.
                return Ok(unsafe { crate::migrate::DstFolio::from_raw(page, order) });
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
    fn release(&self, pfn: u64, order: u32) {
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
        let npages = self.chunk_bytes >> kernel::page::PAGE_SHIFT;
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
        let chunk = self.register(npages, data, state)?;
        let first = chunk.first_pfn;
        let aligned = first.next_multiple_of(PMD_PAGES);
        let end = first + npages;
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

    /// Reserves address space and registers `npages` device pages there.
    fn register(
        &self,
        npages: u64,
        data: VVec<T::PageData>,
        state: VVec<AtomicU8>,
    ) -> Result<Pin<KBox<Chunk<T>>>> {
        let bytes = npages << kernel::page::PAGE_SHIFT;
        // SAFETY: Searches the resource tree under its own lock; the name
        // is static.
        let res = unsafe {
            bindings::request_free_mem_region(
                &raw mut bindings::iomem_resource,
                bytes as usize,
                c"rust_hmm".as_char_ptr(),
            )
        };
        let res = kernel::error::from_err_ptr(res)?;
        if res.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: A region just reserved for us, of at least `bytes`.
        let (start, res_end) = unsafe { ((*res).start, (*res).end) };
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
            (*pgmap).type_ = bindings::memory_type_MEMORY_DEVICE_PRIVATE;
            (*pgmap).nr_range = 1;
            let range = (*pgmap).__bindgen_anon_1.range.as_mut();
            range.start = start;
            range.end = end;
            (*pgmap).ops = &VTable::<T>::OPS;
            (*pgmap).owner = self.owner().as_ptr();
            bindings::memremap_pages(pgmap, ffi::rust_hmm_numa_node_id())
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

#[pinned_drop]
impl<T: DevmemOps> PinnedDrop for DevicePrivatePool<T> {
    fn drop(self: Pin<&mut Self>) {
        // Unregistering a chunk waits until every page of it is free, so
        // every page in use goes back to system memory first: the driver
        // cannot forget one.
        self.evict_all();
        // The chunks go while `ops` is still alive: `folio_free` of the
        // last pages runs during `memunmap_pages()` and reaches the driver.
        let chunks = core::mem::take(&mut *self.chunks.lock());
        drop(chunks);
    }
}

#[kunit_tests(rust_hmm_devmem)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicU64;

    /// Counts the pages `folio_free` saw.
    #[derive(Default)]
    struct Freed(AtomicU64);

    struct TestOps;

    impl DevmemOps for TestOps {
        type PageData = Freed;

        fn folio_free(_pool: &DevicePrivatePool<Self>, _pfn: u64, data: &[Freed]) {
            if let Some(d) = data.first() {
                d.0.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }

        fn copy_to_ram(
            _pool: &DevicePrivatePool<Self>,
            _data: &[Freed],
            dst: &mut DstFolio,
        ) -> Result {
            dst.zero();
            Ok(())
        }
    }

    #[test]
    fn coalesce_rebuilds_whole_blocks() -> Result {
        let mut f = FreeLists {
            small: VVec::with_capacity(3 * PMD_PAGES as usize, GFP_KERNEL)?,
            large: VVec::with_capacity(3, GFP_KERNEL)?,
        };
        // Two whole blocks, interleaved and reversed, plus a partial one.
        for i in (0..PMD_PAGES).rev() {
            f.small.push(4 * PMD_PAGES + i, GFP_KERNEL)?;
            f.small.push(PMD_PAGES + i, GFP_KERNEL)?;
        }
        for i in 0..10 {
            f.small.push(2 * PMD_PAGES + i, GFP_KERNEL)?;
        }
        f.coalesce();
        crate::sort::heapsort(&mut f.large);
        assert_eq!(&f.large[..], &[PMD_PAGES, 4 * PMD_PAGES]);
        assert_eq!(f.small.len(), 10);
        assert!(f
            .small
            .iter()
            .all(|p| (2 * PMD_PAGES..2 * PMD_PAGES + 10).contains(p)));
        Ok(())
    }

    #[test]
    fn alloc_free_split_and_merge() -> Result {
        // One chunk of two PMD blocks (if the region is aligned; at least one).
        let pool = KBox::pin_init(
            DevicePrivatePool::new(TestOps, (2 * PMD_PAGES) << kernel::page::PAGE_SHIFT, 1),
            GFP_KERNEL,
        )?;
        let big = pool.alloc(PMD_ORDER)?;
        let head = big.pfn();
        assert_eq!(head % PMD_PAGES, 0);
        assert_eq!(pool.stats().in_use, PMD_PAGES);
        let last = big.subpage(PMD_PAGES as usize - 1).ok_or(EINVAL)?;
        assert!(pool.owns(big.subpage(0).ok_or(EINVAL)?) && pool.owns(last));
        drop(big);
        assert_eq!(pool.stats().in_use, 0);
        let freed = |p: u64| {
            pool.pages_data(p, 1)
                .map_or(0, |d| d[0].0.load(Ordering::Relaxed))
        };
        assert_eq!(freed(head), PMD_PAGES);

        // Small pages break blocks up; with the only chunk used up in small
        // pages, a PMD request fails rather than registering another.
        let total = pool.stats().pages as usize;
        let mut small = KVec::new();
        for _ in 0..total {
            small.push(pool.alloc(0)?, GFP_KERNEL)?;
        }
        assert!(pool.alloc(0).is_err());
        assert!(pool.alloc(PMD_ORDER).is_err());
        // Freed again, the small pages merge back into a whole block.
        drop(small);
        assert_eq!(pool.stats().in_use, 0);
        let again = pool.alloc(PMD_ORDER)?;
        assert_eq!(again.pfn() % PMD_PAGES, 0);
        Ok(())
    }
}
