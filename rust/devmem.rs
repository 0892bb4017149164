// SPDX-License-Identifier: GPL-2.0

//! Device memory (`include/linux/memremap.h`): device-private
//! (`MEMORY_DEVICE_PRIVATE`) and device-coherent (`MEMORY_DEVICE_COHERENT`).
//!
//! A [`DevicePool`] gives a device `struct page`s for its memory, in chunks
//! registered with `memremap_pages()`, and a free-page allocator over them.
//! Its [`MemoryType`] says which memory, and so which operations it has:
//!
//! - [`Private`]: memory the CPU cannot address, over physical address
//!   space that no RAM uses (`request_free_mem_region()`). The CPU faults
//!   on its pages (`migrate_to_ram`) and the pool moves them back. Pages
//!   and PMD-sized folios. [`DevicePool::new`].
//! - [`Coherent`]: memory the CPU maps like RAM (CXL or xGMI-attached
//!   accelerator memory), over a [`SoftReserved`] range the firmware set
//!   aside. A CPU access does not move a page; COW, a long-term pin
//!   (`FOLL_LONGTERM`) or reclaim do, and the core does those itself.
//!   Single pages only (see `coherent.rs`). [`DevicePool::new_coherent`].
//!
//! The pool is the `dev_pagemap` owner: its address is the cookie for
//! `hmm_range::dev_private_owner` and `migrate_vma::pgmap_owner`, so HMM
//! reports and migrates only its pages.
//!
//! The driver implements [`DevmemOps`], as drm_pagemap's devmem ops: what
//! to release when a folio is freed, and how to copy a folio's data to a
//! system folio. The pool does the migrations back itself: on a CPU fault
//! (`migrate_to_ram`), on [`DevicePool::evict`], and for every page
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
//!
//! # Files
//!
//! - this file: [`DevmemOps`], [`KernelPfn`], `DeviceFault`, the pool
//!   ([`DevicePool`]) and its invariants, lookups of its pages;
//! - `chunk.rs`: one `memremap_pages()` registration, the state and data
//!   of its pages, the `dev_pagemap_ops`;
//! - `memory_type.rs`: [`MemoryType`], [`Private`] and [`Coherent`];
//! - `coherent.rs`: [`SoftReserved`] ranges and coherent pools;
//! - `allocator.rs`: the free lists, folios handed out and freed, growth;
//! - `to_device.rs`, `to_ram.rs`: migrations into and out of the pool;
//! - `tests.rs`: the KUnit suite `rust_hmm_devmem`;
//! - `migration_tests.rs`: the KUnit suite `rust_hmm_migrate`.

use crate::ffi;
use crate::folio::Folio;
use crate::hmm;
use crate::migrate::{
    DstFolio,
    DstPage,
    PagemapOwner,
    SrcPfn, //
};
use core::marker::PhantomPinned;
use core::sync::atomic::{
    AtomicUsize,
    Ordering, //
};
use kernel::{
    alloc::VVec,
    bindings,
    prelude::*,
    static_lock_class,
    str::CStr,
    sync::{
        Mutex,
        SpinLock, //
    }, //
};

mod allocator;
mod chunk;
mod coherent;
mod memory_type;
mod migration_tests;
mod tests;
mod to_device;
mod to_ram;

/// The pool's lock names, as `static`s: as for the notifier lock (see
/// `mmu_notifier`), one name pointer per class key, whichever crates
/// instantiate the generic `new`.
static CHUNKS_NAME: &CStr = c"DevicePool::chunks";
static FREE_NAME: &CStr = c"DevicePool::free";

use allocator::FreeLists;
use chunk::{
    Chunk,
    PageState, //
};
pub use coherent::SoftReserved;
pub use memory_type::{
    Coherent,
    MemoryType,
    Private, //
};

pub use crate::migrate::PMD_ORDER;
const PMD_PAGES: u64 = 1 << PMD_ORDER;

/// What a driver of device-private memory provides.
///
/// # Examples
///
/// A device that keeps a word for each of its pages, and remembers the
/// word of the last page freed; its pages go back to the CPU zeroed.
///
/// ```
/// use core::sync::atomic::{AtomicU64, Ordering};
/// use rust_hmm::devmem::{DevicePool, DevmemOps, Private};
/// use rust_hmm::migrate::DstFolio;
/// # use rust_hmm::kunit_mm;
///
/// struct Device {
///     last_freed: AtomicU64,
/// }
///
/// impl DevmemOps for Device {
///     type PageData = AtomicU64;
///     type Memory = Private;
///
///     fn folio_free(pool: &DevicePool<Self>, _pfn: u64, data: &[AtomicU64]) {
///         if let Some(word) = data.first() {
///             let word = word.swap(0, Ordering::Relaxed);
///             pool.ops().last_freed.store(word, Ordering::Relaxed);
///         }
///     }
///
///     fn copy_to_ram(
///         _: &DevicePool<Self>,
///         _pfn: u64,
///         _: &[AtomicU64],
///         dst: &mut DstFolio,
///     ) -> Result {
///         dst.zero();
///         Ok(())
///     }
/// }
///
/// let device = Device { last_freed: AtomicU64::new(0) };
/// let pool = KBox::pin_init(DevicePool::new(device, 2 << 20, 1), GFP_KERNEL)?;
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(1, true)?;
/// // Move an untouched page in, giving its device page the word 42.
/// let moved = kunit_mm::move_to(&mm, &pool, addr, 1, |page| {
///     pool.page_data(page).ok_or(EINVAL)?.store(42, Ordering::Relaxed);
///     Ok(())
/// })?;
/// assert_eq!(moved, 1);
/// // A CPU read brings the page back, and frees its device page.
/// let mut word = [1u8; 8];
/// kunit_mm::read_user(addr, &mut word)?;
/// assert_eq!(word, [0; 8]);
/// assert_eq!(pool.ops().last_freed.load(Ordering::Relaxed), 42);
/// # Ok::<(), Error>(())
/// ```
pub trait DevmemOps: Send + Sync + Sized + 'static {
    /// Kept for every device page, from pool creation to unload.
    type PageData: Default + Send + Sync;

    /// The kind of memory: [`Private`] or [`Coherent`].
    type Memory: MemoryType;

    /// The folio at `pfn` was freed: release what the driver holds for it.
    /// `data` is that of each of its pages, in order (one for a small
    /// folio). May run in atomic context.
    fn folio_free(pool: &DevicePool<Self>, pfn: u64, data: &[Self::PageData]);

    /// Copies the data of the device folio at `pfn` into `dst`, a system
    /// folio of the same size, and marks `dst` filled
    /// ([`DstFolio::assume_filled`], or [`DstFolio::zero`] for a page that
    /// holds nothing). `data` is that of each page of the source, in order.
    /// An error, or `dst` left unfilled, leaves the source in device memory
    /// for now. Runs with the source locked by a migration; see the
    /// module's "Deadlocks".
    fn copy_to_ram(
        pool: &DevicePool<Self>,
        pfn: u64,
        data: &[Self::PageData],
        dst: &mut DstFolio,
    ) -> Result;
}

mod private {
    /// Seals [`super::KernelPfn`]: only the PFN types of this crate, each
    /// of which names a page the kernel handed out, implement it.
    ///
    /// # Examples
    ///
    /// A migration's source is one of them: the device page of a pool,
    /// collected to move back.
    ///
    /// ```
    /// use rust_hmm::migrate::{Migration, Select};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// let pool = kunit_mm::to_device(&mm, addr, 1)?; // a test pool
    /// let lock = mm.mmap_read_lock();
    /// let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    /// let end = addr + PAGE;
    /// let m = Migration::vma(vma, addr, end, pool.owner(), Select::DevicePrivate, false)?;
    /// assert!(pool.owns(m.src(0)));
    /// // Dropped before `pages()`: the page stays where it is.
    /// drop(m);
    /// # drop(lock);
    /// assert_eq!(pool.stats().in_use, 1);
    /// # Ok::<(), Error>(())
    /// ```
    pub trait Sealed {}
}

/// A page frame number the kernel handed out, which names a page with a
/// `struct page` for as long as the value can be used: an [`hmm::Pfn`]
/// borrowed from a `hmm_range_fault()` answer (under the notifier lock), a
/// migration's [`SrcPfn`] or a page of a [`DstFolio`]. What the pool's
/// lookups take, rather than any integer.
///
/// # Examples
///
/// An entry of a `hmm_range_fault()` snapshot: a device page names its
/// PFN, an untouched page none.
///
/// ```
/// use rust_hmm::devmem::KernelPfn;
/// use rust_hmm::hmm::{Fault, Mode, Range};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(2, true)?;
/// # let notifier = kunit_mm::notifier(&mm, addr, 2 * PAGE)?;
/// let pool = kunit_mm::to_device(&mm, addr, 1)?; // a test pool
/// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, Some(pool.owner()))?;
/// let snapshot = range.fault(Fault::None, Mode::Locked)?;
/// let (device, untouched) = (&snapshot.pfns()[0], &snapshot.pfns()[1]);
/// assert_eq!(device.kernel_pfn(), Some(device.pfn()));
/// assert_eq!(untouched.kernel_pfn(), None);
/// # Ok::<(), Error>(())
/// ```
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
/// duration of the pool's `migrate_to_ram` callback. No driver is handed
/// one: the pool handles CPU faults on its pages itself, and moves the data
/// back with the driver's [`DevmemOps::copy_to_ram`].
pub(crate) struct DeviceFault<'a> {
    raw: &'a bindings::vm_fault,
}

impl DeviceFault<'_> {
    /// Faulting address.
    pub(crate) fn address(&self) -> usize {
        self.raw.__bindgen_anon_1.address
    }

    /// The VMA, locked by the fault path.
    pub(crate) fn vma(&self) -> &kernel::mm::virt::VmaRef {
        // SAFETY: The fault handler holds the mmap lock or the VMA lock for
        // the duration of the callback, which bounds `'_`.
        unsafe { kernel::mm::virt::VmaRef::from_raw(self.raw.__bindgen_anon_1.vma) }
    }

    /// The order of the folio of the device page the CPU touched.
    pub(crate) fn folio_order(&self) -> u32 {
        // SAFETY: The fault holds the page locked and referenced.
        unsafe { Folio::from_raw(ffi::page_folio(self.raw.page)) }.order()
    }

    /// Whether the fault came through a PTE: the folio may then be mapped
    /// only in part and must be migrated page by page.
    pub(crate) fn through_pte(&self) -> bool {
        !self.raw.pte.is_null()
    }

    /// A migration of `[start, end)` of the faulting VMA back to system
    /// memory, with the faulting page as `migrate_vma_setup()`'s fault page
    /// (which it must not lock again); `owner` is the pool's.
    pub(crate) fn migration(
        &self,
        owner: PagemapOwner,
        start: usize,
        end: usize,
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

/// Counters of a pool.
///
/// # Examples
///
/// A chunk of 2 MiB is registered on first use; two of its pages hold
/// data.
///
/// ```
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(2, true)?;
/// let pool = kunit_mm::to_device(&mm, addr, 2)?; // a test pool of one chunk
/// let stats = pool.stats();
/// assert_eq!((stats.pages, stats.in_use), ((2 << 20) / PAGE as u64, 2));
/// assert_eq!(stats.max_pages, stats.pages); // It may have one chunk only.
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Default, Debug)]
pub struct PoolStats {
    /// Pages registered.
    pub pages: u64,
    /// Pages handed out and not yet freed.
    pub in_use: u64,
    /// Pages the pool may register at most.
    pub max_pages: u64,
}

/// The memory of one device; see the module documentation.
///
/// # Invariants
///
/// Every chunk's `pool` points to this pool, which is pinned; free lists
/// hold only free pages of its chunks, each once. `range` is `Some`
/// exactly for [`Coherent`] memory, and its chunks lie inside it.
///
/// # Examples
///
/// A device whose memory keeps nothing of its own, so its pages read as
/// zeros: two untouched pages of a process move into it, a CPU access
/// brings one back, and dropping the pool brings back the other.
///
/// ```
/// use rust_hmm::devmem::{DevicePool, DevmemOps, Private};
/// use rust_hmm::migrate::{DstFolio, Migration, Select};
/// # use rust_hmm::kunit_mm::{self, PAGE};
///
/// struct ZeroDevice;
///
/// impl DevmemOps for ZeroDevice {
///     type PageData = ();
///     type Memory = Private;
///
///     fn folio_free(_pool: &DevicePool<Self>, _pfn: u64, _data: &[()]) {}
///
///     fn copy_to_ram(
///         _pool: &DevicePool<Self>,
///         _pfn: u64,
///         _data: &[()],
///         dst: &mut DstFolio,
///     ) -> Result {
///         dst.zero();
///         Ok(())
///     }
/// }
///
/// // At most one chunk of 2 MiB, registered on first use.
/// let pool = KBox::pin_init(DevicePool::new(ZeroDevice, 2 << 20, 1), GFP_KERNEL)?;
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(2, true)?;
/// {
///     let lock = mm.mmap_read_lock();
///     let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
///     let (start, end) = (addr, addr + 2 * PAGE);
///     let mut m = Migration::vma(vma, start, end, pool.owner(), Select::System, false)?;
///     // Untouched pages have no source page: nothing to copy. A page with
///     // data would stay where it is.
///     let moved = pool.migrate_to_device(
///         &mut m,
///         |_order| true,
///         |_dst, src, _first| src.pfn().map_or(Ok(()), |_| Err(EINVAL)),
///     );
///     assert_eq!(moved, 2);
/// }
/// assert_eq!(pool.stats().in_use, 2);
///
/// let mut word = [1u8; 8];
/// kunit_mm::read_user(addr, &mut word)?;
/// assert_eq!(word, [0; 8]);
/// assert_eq!(pool.stats().in_use, 1);
/// drop(pool);
/// # kunit_mm::read_user(addr + PAGE, &mut word)?;
/// # assert_eq!(word, [0; 8]);
/// # Ok::<(), Error>(())
/// ```
#[pin_data(PinnedDrop)]
pub struct DevicePool<T: DevmemOps> {
    ops: T,
    chunk_bytes: u64,
    max_chunks: usize,
    /// Where coherent memory lies: chunk `n` starts `n * chunk_bytes` in.
    range: Option<SoftReserved>,
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

impl<T: DevmemOps<Memory = Private>> DevicePool<T> {
    /// A pool of device-private memory: up to `max_chunks` chunks of
    /// `chunk_bytes` (a multiple of 2 MiB), registered on first use.
    ///
    /// # Examples
    ///
    /// A pool registers no memory until a page moves in; one allowed no
    /// chunk takes no page.
    ///
    /// ```
    /// use rust_hmm::devmem::DevicePool;
    /// # use rust_hmm::kunit_mm::{self, PAGE, ZeroDevice};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// // `ZeroDevice`: a test device whose pages read as zeros.
    /// let none = KBox::pin_init(DevicePool::new(ZeroDevice, 2 << 20, 0), GFP_KERNEL)?;
    /// assert_eq!(kunit_mm::move_to(&mm, &none, addr, 1, |_| Ok(()))?, 0);
    ///
    /// let pool = KBox::pin_init(DevicePool::new(ZeroDevice, 2 << 20, 1), GFP_KERNEL)?;
    /// assert_eq!(pool.stats().pages, 0);
    /// assert_eq!(kunit_mm::move_to(&mm, &pool, addr, 1, |_| Ok(()))?, 1);
    /// assert_eq!(pool.stats().pages, (2 << 20) / PAGE as u64);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(ops: T, chunk_bytes: u64, max_chunks: usize) -> impl PinInit<Self, Error> {
        Self::init(ops, chunk_bytes, max_chunks, None)
    }
}

impl<T: DevmemOps> DevicePool<T> {
    fn init(
        ops: T,
        chunk_bytes: u64,
        max_chunks: usize,
        range: Option<SoftReserved>,
    ) -> impl PinInit<Self, Error> {
        // INVARIANT: `range` is given by `new_coherent` only.
        try_pin_init!(Self {
            ops,
            chunk_bytes,
            max_chunks,
            range,
            chunks <- Mutex::new(KVec::new(), CHUNKS_NAME, static_lock_class!()),
            free <- SpinLock::new(
                FreeLists { small: VVec::new(), large: VVec::new() },
                FREE_NAME,
                static_lock_class!()
            ),
            in_use: AtomicUsize::new(0),
            pages: AtomicUsize::new(0),
            nchunks: AtomicUsize::new(0),
            _pin: PhantomPinned,
        }? Error)
    }

    /// The driver's part.
    ///
    /// # Examples
    ///
    /// The callbacks get the pool, and through it the driver's state: here
    /// a count of the device pages freed.
    ///
    /// ```
    /// use core::sync::atomic::{AtomicU64, Ordering};
    /// use rust_hmm::devmem::{DevicePool, DevmemOps, Private};
    /// use rust_hmm::migrate::DstFolio;
    /// # use rust_hmm::kunit_mm;
    ///
    /// struct Device {
    ///     freed: AtomicU64,
    /// }
    ///
    /// impl DevmemOps for Device {
    ///     type PageData = ();
    ///     type Memory = Private;
    ///
    ///     fn folio_free(pool: &DevicePool<Self>, _pfn: u64, data: &[()]) {
    ///         pool.ops().freed.fetch_add(data.len() as u64, Ordering::Relaxed);
    ///     }
    ///
    ///     fn copy_to_ram(_: &DevicePool<Self>, _: u64, _: &[()], dst: &mut DstFolio) -> Result {
    ///         dst.zero();
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let device = Device { freed: AtomicU64::new(0) };
    /// let pool = KBox::pin_init(DevicePool::new(device, 2 << 20, 1), GFP_KERNEL)?;
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// assert_eq!(kunit_mm::move_to(&mm, &pool, addr, 2, |_| Ok(()))?, 2);
    /// assert_eq!(pool.evict(|()| true)?, 0);
    /// assert_eq!(pool.ops().freed.load(Ordering::Relaxed), 2);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn ops(&self) -> &T {
        &self.ops
    }

    /// The owner cookie of this pool's pages.
    ///
    /// # Examples
    ///
    /// Another device's request does not see this pool's pages where they
    /// are: `hmm_range_fault()` brings them back to system memory.
    ///
    /// ```
    /// use rust_hmm::devmem::DevicePool;
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE, ZeroDevice};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
    /// let pool = kunit_mm::to_device(&mm, addr, 1)?; // a test pool
    /// let other = KBox::pin_init(DevicePool::new(ZeroDevice, 2 << 20, 1), GFP_KERNEL)?;
    /// assert_ne!(pool.owner().as_ptr(), other.owner().as_ptr());
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, Some(other.owner()))?;
    /// assert!(!range.fault(Fault::Read, Mode::Locked)?.pfns()[0].is_device_private());
    /// assert_eq!(pool.stats().in_use, 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn owner(&self) -> PagemapOwner {
        PagemapOwner::of(self)
    }

    /// Counters.
    ///
    /// # Examples
    ///
    /// `in_use` counts the pages that hold data, until the CPU takes them
    /// back.
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// let pool = kunit_mm::to_device(&mm, addr, 2)?; // a test pool
    /// assert_eq!(pool.stats().in_use, 2);
    /// kunit_mm::write_user(addr, b"cpu")?;
    /// assert_eq!(pool.stats().in_use, 1);
    /// kunit_mm::munmap(addr + PAGE, 1)?; // frees the other device page
    /// assert_eq!(pool.stats().in_use, 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn stats(&self) -> PoolStats {
        let max_bytes = match &self.range {
            Some(r) => r.size(),
            None => self.chunk_bytes.saturating_mul(self.max_chunks as u64),
        };
        PoolStats {
            pages: self.pages.load(Ordering::Relaxed) as u64,
            in_use: self.in_use.load(Ordering::Relaxed) as u64,
            max_pages: max_bytes >> kernel::page::PAGE_SHIFT,
        }
    }

    /// The chunk holding `pfn`, if it is a device page of this pool.
    /// `pfn` comes from a [`KernelPfn`] (or from a chunk), so it has a
    /// `struct page`.
    fn chunk_of(&self, pfn: u64) -> Option<&Chunk<T>> {
        // SAFETY: Only reads the page's flags and pgmap (and checks the PFN
        // has a `struct page` first). One call for both: helper calls are
        // what this path costs.
        let pgmap = unsafe { ffi::rust_hmm_device_pgmap(pfn as usize, T::Memory::TYPE) };
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

    /// Whether `page` is a device page of this pool.
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::devmem::DevicePool;
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE, ZeroDevice};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, 2 * PAGE)?;
    /// let pool = kunit_mm::to_device(&mm, addr, 1)?; // a test pool
    /// let other = KBox::pin_init(DevicePool::new(ZeroDevice, 2 << 20, 1), GFP_KERNEL)?;
    /// kunit_mm::write_user(addr + PAGE, b"cpu")?; // a system page
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, Some(pool.owner()))?;
    /// let snapshot = range.fault(Fault::None, Mode::Locked)?;
    /// let (device, system) = (&snapshot.pfns()[0], &snapshot.pfns()[1]);
    /// assert!(pool.owns(device) && !other.owns(device));
    /// assert!(system.is_valid() && !pool.owns(system));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn owns(&self, page: impl KernelPfn) -> bool {
        page.kernel_pfn()
            .and_then(|pfn| self.chunk_of(pfn))
            .is_some()
    }

    /// The driver data of `page`, if it is a device page of this pool.
    ///
    /// # Examples
    ///
    /// A word given to a page as it moves in is found again through the
    /// page's entry in a `hmm_range_fault()` snapshot.
    ///
    /// ```
    /// use core::sync::atomic::{AtomicU64, Ordering};
    /// use rust_hmm::devmem::{DevicePool, DevmemOps, Private};
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// use rust_hmm::migrate::DstFolio;
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    ///
    /// struct Device;
    ///
    /// impl DevmemOps for Device {
    ///     type PageData = AtomicU64;
    ///     type Memory = Private;
    ///
    ///     fn folio_free(_: &DevicePool<Self>, _: u64, _: &[AtomicU64]) {}
    ///
    ///     fn copy_to_ram(
    ///         _: &DevicePool<Self>,
    ///         _pfn: u64,
    ///         _: &[AtomicU64],
    ///         dst: &mut DstFolio,
    ///     ) -> Result {
    ///         dst.zero();
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let pool = KBox::pin_init(DevicePool::new(Device, 2 << 20, 1), GFP_KERNEL)?;
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, 2 * PAGE)?;
    /// kunit_mm::move_to(&mm, &pool, addr, 1, |page| {
    ///     pool.page_data(page).ok_or(EINVAL)?.store(7, Ordering::Relaxed);
    ///     Ok(())
    /// })?;
    /// kunit_mm::write_user(addr + PAGE, b"cpu")?; // a system page
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, Some(pool.owner()))?;
    /// let snapshot = range.fault(Fault::None, Mode::Locked)?;
    /// let word = pool.page_data(&snapshot.pfns()[0]).map(|w| w.load(Ordering::Relaxed));
    /// assert_eq!(word, Some(7));
    /// assert!(pool.page_data(&snapshot.pfns()[1]).is_none());
    /// # Ok::<(), Error>(())
    /// ```
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
}

#[pinned_drop]
impl<T: DevmemOps> PinnedDrop for DevicePool<T> {
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
