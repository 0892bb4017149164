// SPDX-License-Identifier: GPL-2.0

//! DMA mappings of mirrored pages (`include/linux/hmm-dma.h`).
//!
//! A device that reaches process memory by DMA maps each page it was
//! handed by [`hmm::Range`](crate::hmm::Range) and must stop using the
//! address before the page can go: before the invalidation that ends the
//! page's validity returns. A [`DmaMap`] is the `struct hmm_dma_map` of a
//! window of a notifier's interval, entry `i` for the page at
//! `start + i` pages, and it lives in the notifier state:
//!
//! - [`DmaMap::map`] takes pages validated under the lock of the state
//!   that contains the map (checked), so an entry is only ever mapped for
//!   a page that the next invalidation of its address will see;
//! - the driver's invalidate callback calls [`DmaMap::unmap_range`] after
//!   it has waited for the device's DMA to the range, and so before the
//!   page can be freed; behind an IOMMU the unmap flushes the IOTLB
//!   before it returns (`dma_iova_unlink()`), and a mapping written by
//!   the device marks its page dirty;
//! - the address a map hands out, a [`DmaAddr`], borrows the pages, and
//!   so the notifier lock: software cannot keep it past the lock; the
//!   device's use of it past the lock is what the driver's invalidate
//!   waits for.
//!
//! With an IOMMU the kernel links every entry into one IOVA range
//! (`dma_iova_try_alloc()`); without one it maps page by page
//! (`dma_map_phys()`). Either way entries are mapped for both directions.
//! Devices that need bounce buffers or cache syncs, or whose mask does not
//! reach all memory, cannot share process pages this way:
//! [`DmaMap::new`] refuses them with `EOPNOTSUPP`.
//!
//! # Device lifetime
//!
//! A map is made for a bound device ([`Device<Bound>`]) and keeps a
//! reference to it; it must be dropped before the driver unbinds, which
//! the driver ensures as for the kernel crate's DMA allocations
//! (`kernel::dma::Coherent`, whose documentation has the same TODO).

use crate::ffi;
use crate::guarded_page::{
    GuardedPages,
    Kind, //
};
use crate::hmm::{
    HMM_PFN_FLAGS,
    HMM_PFN_VALID, //
};
use core::marker::PhantomData;
use kernel::{
    bindings,
    device::{
        Bound,
        Device, //
    },
    page::PAGE_SHIFT,
    prelude::*,
    sync::aref::ARef, //
};

mod tests;

/// `DMA_MAPPING_ERROR` (`linux/dma-mapping.h`), which bindgen makes no
/// constant of (bit 63 is set).
const DMA_MAPPING_ERROR: bindings::dma_addr_t = !0;

/// The C device of `dev`.
pub(crate) fn raw_dev(dev: &Device) -> *mut bindings::device {
    // `Device` is a transparent wrapper of `struct device` (its `as_raw()`
    // is not public outside the kernel crate).
    core::ptr::from_ref(dev).cast_mut().cast()
}

/// The DMA mappings, for one device, of the pages of a window of a
/// notifier's interval (`struct hmm_dma_map`).
///
/// # Invariants
///
/// `map` was set up by `hmm_dma_map_alloc()` for `dev` with `npages`
/// entries of a page each; entry `i` is mapped (`HMM_PFN_DMA_MAPPED`) only
/// for a page validated for `start + i` pages under the lock of the
/// notifier state that contains this map, and only until that state's next
/// invalidation of the address, which unmaps it ([`Self::unmap_range`], as
/// the contract of [`Self::new`] requires): so a mapped entry's page is
/// allocated.
///
/// # Examples
///
/// A map lives in a notifier's state (here one that unmaps every
/// invalidated range, `kunit_mm::DmaOps`); [`DmaMap::map`] shows such ops.
///
/// ```
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let dev = kunit_mm::dma_device()?;
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(4, true)?;
/// let notifier = kunit_mm::dma_notifier(&mm, &dev, addr, 4)?;
/// assert_eq!(notifier.lock().as_ref().map(|m| m.mapped()), Some(0));
/// # Ok::<(), Error>(())
/// ```
pub struct DmaMap {
    map: ffi::hmm_dma_map,
    dev: ARef<Device>,
    start: usize,
    npages: usize,
}

// SAFETY: The lists are owned by the map and only used through `&mut self`
// (or `&self` to read); the device is reference counted.
unsafe impl Send for DmaMap {}
// SAFETY: `&self` only reads.
unsafe impl Sync for DmaMap {}

/// A DMA address of a mapped page, valid while the pages it was mapped
/// from are borrowed: under the notifier lock.
///
/// # Invariants
///
/// `addr` is the DMA address of the page at `va` for the map's device,
/// mapped for `'a`; if `writable`, the CPU maps the page writable.
///
/// # Examples
///
/// The address borrows the pages, and so the notifier lock: it cannot be
/// kept once the lock is dropped.
///
/// ```
/// use rust_hmm::hmm::{Fault, Mode, Range};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let dev = kunit_mm::dma_device()?;
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(1, true)?;
/// let notifier = kunit_mm::dma_notifier(&mm, &dev, addr, 1)?;
/// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
/// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
/// let (state, pages) = faulted.split();
/// let map = state.as_mut().ok_or(EINVAL)?;
/// let dma = map.map(addr, pages.page(0).ok_or(EFAULT)?)?;
/// let bus = dma.addr(); // a number for the device, programmed under the lock
/// drop(faulted); // `dma` may not be used past here
/// assert_ne!(bus, 0);
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct DmaAddr<'a> {
    addr: bindings::dma_addr_t,
    writable: bool,
    _pages: PhantomData<GuardedPages<'a>>,
}

impl DmaAddr<'_> {
    /// The address, for the device to read the page from.
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let dev = kunit_mm::dma_device()?;
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// // A notifier whose state is a `DmaMap` of its two pages.
    /// let notifier = kunit_mm::dma_notifier(&mm, &dev, addr, 2)?;
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (state, pages) = faulted.split();
    /// let map = state.as_mut().ok_or(EINVAL)?;
    /// let a = map.map(addr, pages.page(0).ok_or(EFAULT)?)?.addr();
    /// let b = map.map(addr + PAGE, pages.page(1).ok_or(EFAULT)?)?.addr();
    /// assert_ne!(a, b);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn addr(&self) -> bindings::dma_addr_t {
        self.addr
    }

    /// The address, for the device to write the page to: `None` if the
    /// CPU maps the page read-only (the IOMMU mapping is writable all the
    /// same, so this is the check).
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let dev = kunit_mm::dma_device()?;
    /// # let mm = kunit_mm::attach()?;
    /// // Read-only memory: a read fault maps the zero page.
    /// let addr = kunit_mm::mmap_anon(1, false)?;
    /// let notifier = kunit_mm::dma_notifier(&mm, &dev, addr, 1)?;
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Read, Mode::Locked)?;
    /// let (state, pages) = faulted.split();
    /// let map = state.as_mut().ok_or(EINVAL)?;
    /// let dma = map.map(addr, pages.page(0).ok_or(EFAULT)?)?;
    /// assert_eq!(dma.for_write(), None);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn for_write(&self) -> Option<bindings::dma_addr_t> {
        self.writable.then_some(self.addr)
    }
}

impl DmaMap {
    /// A map of the `npages` pages from `start`, for `dev`. `EINVAL` if
    /// `start` is not page-aligned or the window is empty or wraps;
    /// `EOPNOTSUPP` if the device needs bounce buffers or cache syncs, or
    /// its DMA mask does not reach all memory.
    ///
    /// # Safety
    ///
    /// The map hands the device addresses of the pages it maps, and marks
    /// them dirty when it unmaps them, which is only sound while each entry
    /// is current. So the map must live in the state of an
    /// [`IntervalNotifier`](crate::mmu_notifier::IntervalNotifier) whose
    /// interval covers the window, and not be moved out of it while it
    /// holds mappings; that notifier's `invalidate` must call
    /// [`Self::unmap_range`] over every invalidated range, whatever the
    /// event, once the device no longer uses those addresses, and its
    /// `release` must unmap everything. [`Self::map`] then only takes pages
    /// that notifier validated, for the address they are mapped at.
    ///
    /// # Examples
    ///
    /// The window is checked; the rest of the contract is the caller's
    /// (see [`DmaMap::map`] for a notifier that keeps it).
    ///
    /// ```
    /// use rust_hmm::hmm_dma::DmaMap;
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let dev = kunit_mm::dma_device()?;
    /// // SAFETY: Refused, or dropped with nothing mapped.
    /// let new = |start, npages| unsafe { DmaMap::new(dev.device(), start, npages) };
    /// assert!(new(PAGE, 0).is_err_and(|e| e == EINVAL));
    /// assert!(new(PAGE + 1, 1).is_err_and(|e| e == EINVAL));
    /// assert_eq!(new(PAGE, 16)?.mapped(), 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub unsafe fn new(dev: &Device<Bound>, start: usize, npages: usize) -> Result<Self> {
        let len = npages.checked_mul(1 << PAGE_SHIFT).ok_or(EINVAL)?;
        if npages == 0 || start % (1 << PAGE_SHIFT) != 0 || start.checked_add(len).is_none() {
            return Err(EINVAL);
        }
        let mut map: ffi::hmm_dma_map = pin_init::zeroed();
        // SAFETY: A bound device; `map` is ours to fill.
        kernel::error::to_result(unsafe {
            ffi::hmm_dma_map_alloc(raw_dev(dev), &mut map, npages, 1 << PAGE_SHIFT)
        })?;
        // INVARIANT: Just allocated, with nothing mapped.
        Ok(Self {
            map,
            dev: dev.into(),
            start,
            npages,
        })
    }

    /// Whether the map uses one IOVA range behind an IOMMU (otherwise each
    /// page is mapped on its own).
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let dev = kunit_mm::dma_device()?;
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// let notifier = kunit_mm::dma_notifier(&mm, &dev, addr, 1)?;
    /// // The KUnit device sits behind no IOMMU.
    /// assert_eq!(notifier.lock().as_ref().map(|m| m.uses_iova()), Some(false));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn uses_iova(&self) -> bool {
        self.map.state.__size != 0
    }

    /// The entry of `addr`, if the window covers it.
    fn index(&self, addr: usize) -> Option<usize> {
        let i = addr.checked_sub(self.start)? >> PAGE_SHIFT;
        (addr % (1 << PAGE_SHIFT) == 0 && i < self.npages).then_some(i)
    }

    /// The entry `i` of the PFN list.
    fn entry(&mut self, i: usize) -> &mut u64 {
        // SAFETY: `pfn_list` has `npages` entries (type invariants), and
        // callers pass `i < npages`.
        unsafe { &mut *self.map.pfn_list.cast::<u64>().add(i) }
    }

    /// Maps the page at `addr` for the device, from `page`, which the
    /// caller split from the same notifier state as this map (the lock it
    /// holds): `EINVAL` otherwise, or if the window does not cover `addr`,
    /// or for anything but one page of system memory. `ENOMEM` if the
    /// mapping fails. A page already mapped keeps its address.
    ///
    /// # Examples
    ///
    /// A device reads a page of the process: the map sits in the notifier
    /// state, gets the page under the lock, and loses it to the munmap.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// use rust_hmm::hmm_dma::DmaMap;
    /// use rust_hmm::mmu_notifier::{IntervalNotifier, IntervalNotifierOps, NotifierRange};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    ///
    /// struct Dma;
    ///
    /// impl IntervalNotifierOps for Dma {
    ///     type State = Option<DmaMap>;
    ///     type Finish = ();
    ///
    ///     fn invalidate(&self, map: &mut Option<DmaMap>, r: &NotifierRange<'_>) {
    ///         // A real device would first wait for its DMA to the range.
    ///         if let Some(map) = map {
    ///             map.unmap_range(r.start(), r.end());
    ///         }
    ///     }
    ///
    ///     fn release(&self, map: &mut Option<DmaMap>) {
    ///         if let Some(map) = map {
    ///             map.unmap_range(0, usize::MAX);
    ///         }
    ///     }
    /// }
    ///
    /// # let dev = kunit_mm::dma_device()?;
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// let notifier = IntervalNotifier::new(&mm, addr, 2 * PAGE, Dma, None);
    /// let notifier = KBox::pin_init(notifier, GFP_KERNEL)?;
    /// // SAFETY: The map goes into the state of `notifier`, whose ops unmap
    /// // every invalidated range and everything on release.
    /// let map = unsafe { DmaMap::new(dev.device(), addr, 2)? };
    /// let seq = notifier.read_begin();
    /// *notifier.lock_valid(seq).ok_or(EAGAIN)? = Some(map);
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (state, pages) = faulted.split();
    /// let map = state.as_mut().ok_or(EINVAL)?;
    /// let page = pages.page(0).ok_or(EFAULT)?;
    /// let dma = map.map(addr, page)?;
    /// assert!(dma.for_write().is_some());
    /// if !map.uses_iova() {
    ///     // No IOMMU: the bus sees the page where the CPU does.
    ///     assert_eq!(dma.addr(), page.pfn() * PAGE as u64);
    /// }
    /// assert_eq!(map.map(addr, page)?.addr(), dma.addr()); // kept
    /// assert_eq!(map.mapped(), 1);
    /// drop(faulted);
    /// kunit_mm::munmap(addr, 2)?;
    /// assert_eq!(notifier.lock().as_ref().map(|m| m.mapped()), Some(0));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn map<'a>(&mut self, addr: usize, page: GuardedPages<'a>) -> Result<DmaAddr<'a>> {
        let i = self.index(addr).ok_or(EINVAL)?;
        if !page.tied_to(core::ptr::from_ref(&*self), addr)
            || page.npages() != 1
            || page.kind() != Kind::System
        {
            return Err(EINVAL);
        }
        let want = page.pfn() | HMM_PFN_VALID;
        let want = if page.is_writable() {
            want | ffi::HMM_PFN_WRITE
        } else {
            want
        };
        let cur = *self.entry(i);
        // A mapped entry names the page still there (type invariants), and
        // keeps its address; anything else is a broken contract.
        if cur & ffi::HMM_PFN_DMA_MAPPED != 0 && cur & !HMM_PFN_FLAGS != page.pfn() {
            return Err(EINVAL);
        }
        // Keep the DMA state bits (`HMM_PFN_INOUT_FLAGS` in `mm/hmm.c`): a
        // peer-to-peer page mapped by bus address must not be taken for
        // an IOVA; the page and its access come from `page`.
        let dma_bits = ffi::HMM_PFN_DMA_MAPPED | ffi::HMM_PFN_P2PDMA | ffi::HMM_PFN_P2PDMA_BUS;
        *self.entry(i) = want | (cur & dma_bits);
        let mut p2p: bindings::pci_p2pdma_map_state = pin_init::zeroed();
        // SAFETY: `i < npages` and entry `i` names a page that stays
        // allocated while `page` is borrowed (the notifier lock), and that
        // the state's next invalidation of `addr` unmaps (type invariants,
        // checked through `tied_to`).
        let dma = unsafe { ffi::hmm_dma_map_pfn(raw_dev(&self.dev), &mut self.map, i, &mut p2p) };
        if dma == DMA_MAPPING_ERROR {
            *self.entry(i) = 0;
            return Err(ENOMEM);
        }
        // INVARIANT: Mapped for the page at `addr`, borrowed for `'a`.
        Ok(DmaAddr {
            addr: dma,
            writable: page.is_writable(),
            _pages: PhantomData,
        })
    }

    /// Unmaps entry `i`, marking its page dirty if `dirty` and the device
    /// could write it; whether it was mapped.
    fn unmap(&mut self, i: usize, dirty: bool) -> bool {
        let e = *self.entry(i);
        // SAFETY: `i < npages`, an entry of `dev`'s map; unmapping goes by
        // the entry's DMA address, not its page.
        let was = unsafe { ffi::hmm_dma_unmap_pfn(raw_dev(&self.dev), &mut self.map, i) };
        if was && dirty && e & ffi::HMM_PFN_WRITE != 0 {
            // SAFETY: A mapped entry's page is allocated (type invariants):
            // a system page.
            unsafe { ffi::rust_hmm_set_pages_dirty((e & !HMM_PFN_FLAGS) as usize, 1) };
        }
        *self.entry(i) = 0;
        was
    }

    /// Unmaps the pages of `[start, end)` that are mapped: for the
    /// invalidate callback, once the device no longer uses them. Returns
    /// how many were mapped. Behind an IOMMU, the IOTLB is flushed before
    /// this returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let dev = kunit_mm::dma_device()?;
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// // A notifier whose state is a `DmaMap` of its two pages.
    /// let notifier = kunit_mm::dma_notifier(&mm, &dev, addr, 2)?;
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (state, pages) = faulted.split();
    /// let map = state.as_mut().ok_or(EINVAL)?;
    /// map.map(addr, pages.page(0).ok_or(EFAULT)?)?;
    /// map.map(addr + PAGE, pages.page(1).ok_or(EFAULT)?)?;
    /// // As an invalidation of the second page would.
    /// assert_eq!(map.unmap_range(addr + PAGE, addr + 2 * PAGE), 1);
    /// assert_eq!(map.mapped(), 1);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn unmap_range(&mut self, start: usize, end: usize) -> usize {
        let first = start.saturating_sub(self.start) >> PAGE_SHIFT;
        let last = (end.saturating_sub(self.start).div_ceil(1 << PAGE_SHIFT)).min(self.npages);
        (first..last).filter(|&i| self.unmap(i, true)).count()
    }

    /// How many pages are mapped.
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let dev = kunit_mm::dma_device()?;
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// // A notifier whose state is a `DmaMap` of its two pages.
    /// let notifier = kunit_mm::dma_notifier(&mm, &dev, addr, 2)?;
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (state, pages) = faulted.split();
    /// let map = state.as_mut().ok_or(EINVAL)?;
    /// assert_eq!(map.mapped(), 0);
    /// map.map(addr + PAGE, pages.page(1).ok_or(EFAULT)?)?;
    /// assert_eq!(map.mapped(), 1);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn mapped(&self) -> usize {
        // SAFETY: `npages` entries (type invariants), read only.
        let list =
            unsafe { core::slice::from_raw_parts(self.map.pfn_list.cast::<u64>(), self.npages) };
        list.iter()
            .filter(|e| **e & ffi::HMM_PFN_DMA_MAPPED != 0)
            .count()
    }
}

impl Drop for DmaMap {
    fn drop(&mut self) {
        // The notifier may be gone, and the pages with it: no dirtying here
        // (`release` did it, per the contract of `new`).
        for i in 0..self.npages {
            self.unmap(i, false);
        }
        // SAFETY: Allocated for `dev` (type invariants), nothing mapped.
        unsafe { ffi::hmm_dma_map_free(raw_dev(&self.dev), &mut self.map) };
    }
}
