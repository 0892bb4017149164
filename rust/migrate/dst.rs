// SPDX-License-Identifier: GPL-2.0

//! The destination side of a migration: folios the driver hands over.

use crate::ffi;
use crate::folio::LockedFolio;
use kernel::{
    bindings,
    mm::virt::VmaRef, //
};

/// A destination: a locked folio head with one reference, owned.
///
/// A folio of system memory from [`DstFolio::alloc_system`] starts out
/// holding whatever the allocator left in it, and the migration maps it
/// into the process as it is:
/// [`Migration::set_dst`](super::Migration::set_dst) takes it only once it
/// is *filled* ([`DstFolio::zero`], or [`DstFolio::assume_filled`] after
/// the driver's own copy). Device-private destinations cannot be read by
/// the CPU and are filled from the start.
///
/// # Invariants
///
/// `page` is the head of a locked folio of `order` on which this value
/// owns one reference. If `filled`, every byte of the folio may be shown
/// to the process that maps it.
///
/// # Examples
///
/// A system folio holds whatever the allocator left in it: the migration
/// refuses it until it is filled.
///
/// ```
/// use rust_hmm::migrate::{DstFolio, Migration, PagemapOwner, Select};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(1, true)?;
/// kunit_mm::write_user(addr, b"data")?;
/// {
///     let lock = mm.mmap_read_lock();
///     let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
///     let owner = PagemapOwner::of(&*mm);
///     let mut m = Migration::vma(vma, addr, addr + PAGE, owner, Select::System, false)?;
///     let dst = DstFolio::alloc_system(Some(vma), addr, 0).ok_or(ENOMEM)?;
///     assert_eq!(m.set_dst(0, dst, true), Err(EINVAL));
///     let mut dst = DstFolio::alloc_system(Some(vma), addr, 0).ok_or(ENOMEM)?;
///     dst.zero();
///     m.set_dst(0, dst, true)?;
///     m.pages();
/// }
/// let mut buf = [1u8; 4];
/// kunit_mm::read_user(addr, &mut buf)?;
/// assert_eq!(buf, [0; 4]);
/// # Ok::<(), Error>(())
/// ```
pub struct DstFolio {
    page: *mut bindings::page,
    /// The folio of `page`: unlocked and released when this drops.
    _folio: LockedFolio,
    order: u32,
    pub(super) filled: bool,
}

// SAFETY: A locked folio reference may be dropped from any thread.
unsafe impl Send for DstFolio {}

impl DstFolio {
    /// Takes ownership of a locked folio head whose contents may be mapped
    /// as they are (a device-private folio, or one the caller filled).
    ///
    /// # Safety
    ///
    /// `page` is the head of a locked folio of `order`, the caller gives
    /// this value its one reference, and every byte of the folio may be
    /// shown to the process it will be mapped into.
    ///
    /// # Examples
    ///
    /// A folio passed on as a raw page, as from a driver's own allocator, taken
    /// back with its lock and reference.
    ///
    /// ```
    /// use rust_hmm::migrate::DstFolio;
    ///
    /// let mut folio = DstFolio::alloc_system(None, 0, 0).ok_or(ENOMEM)?;
    /// folio.zero();
    /// let (page, pfn) = (folio.page(0), folio.pfn());
    /// // The lock and the reference go with `page`.
    /// core::mem::forget(folio);
    /// // SAFETY: `page` is the head of a locked folio of order 0, whose one
    /// // reference `folio` gave up, and it holds zeros.
    /// let folio = unsafe { DstFolio::from_raw(page, 0) };
    /// assert!(folio.is_filled());
    /// assert_eq!(folio.pfn(), pfn);
    /// # Ok::<(), Error>(())
    /// ```
    pub unsafe fn from_raw(page: *mut bindings::page, order: u32) -> Self {
        // SAFETY: As the caller promises.
        unsafe { Self::new(page, order, true) }
    }

    /// A device folio from a pool's allocator, `filled` if the CPU cannot
    /// read it (device-private memory).
    ///
    /// # Safety
    ///
    /// As for [`Self::new`].
    pub(crate) unsafe fn from_device(page: *mut bindings::page, order: u32, filled: bool) -> Self {
        // SAFETY: As the caller promises.
        unsafe { Self::new(page, order, filled) }
    }

    /// # Safety
    ///
    /// `page` is the head of a locked folio of `order` whose lock and one
    /// reference the caller hands over; if `filled`, every byte of it is
    /// written.
    unsafe fn new(page: *mut bindings::page, order: u32, filled: bool) -> Self {
        // SAFETY: The caller hands over the lock and a reference of the
        // folio of `page`.
        let folio = unsafe { LockedFolio::from_raw(ffi::page_folio(page)) };
        // INVARIANT: As the caller promises.
        Self {
            page,
            _folio: folio,
            order,
            filled,
        }
    }

    /// A system-memory folio of `order` to migrate into, near `vma` at
    /// `addr` if given, anywhere otherwise; not yet filled. `None` if
    /// memory is short.
    ///
    /// # Examples
    ///
    /// A PMD-sized folio, for a compound source; naturally aligned, and not yet
    /// filled.
    ///
    /// ```
    /// use rust_hmm::migrate::{DstFolio, PMD_ORDER};
    ///
    /// let folio = DstFolio::alloc_system(None, 0, PMD_ORDER).ok_or(ENOMEM)?;
    /// assert_eq!(folio.order(), PMD_ORDER);
    /// assert_eq!(folio.pfn() % (1 << PMD_ORDER), 0);
    /// assert!(!folio.is_filled());
    ///
    /// // An order no allocator has: `None`, quietly (`__GFP_NOWARN`).
    /// assert!(DstFolio::alloc_system(None, 0, 2 * PMD_ORDER + 4).is_none());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn alloc_system(vma: Option<&VmaRef>, addr: usize, order: u32) -> Option<Self> {
        let vma = vma.map_or(core::ptr::null_mut(), VmaRef::as_ptr);
        // SAFETY: `vma` is null or a VMA kept alive by the caller's borrow
        // (which holds the mmap lock); the helper returns a locked folio
        // with one reference, or null.
        let page = unsafe { ffi::rust_hmm_alloc_migrate_folio(vma, addr, order) };
        if page.is_null() {
            return None;
        }
        // SAFETY: A locked folio of `order` with our reference, not yet
        // filled.
        Some(unsafe { Self::new(page, order, false) })
    }

    /// Clears every page of the folio, which is then filled.
    ///
    /// # Examples
    ///
    /// A fresh folio cleared: the process may be shown it now, and it reads as
    /// zeros.
    ///
    /// ```
    /// use rust_hmm::migrate::DstFolio;
    /// # use rust_hmm::kunit_mm;
    ///
    /// let mut folio = DstFolio::alloc_system(None, 0, 0).ok_or(ENOMEM)?;
    /// folio.zero();
    /// assert!(folio.is_filled());
    /// let mut buf = [1u8; 64];
    /// // SAFETY: `folio` holds the page.
    /// assert!(unsafe { kunit_mm::read_pfn(folio.pfn(), &mut buf) });
    /// assert_eq!(buf, [0; 64]);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn zero(&mut self) {
        for i in 0..1usize << self.order {
            // SAFETY: Page `i` of a folio we hold locked and referenced.
            unsafe { ffi::clear_highpage(self.page(i)) };
        }
        // INVARIANT: Every byte is zero now.
        self.filled = true;
    }

    /// Marks the folio filled, after the driver wrote it itself (its own
    /// copy, or DMA from the device).
    ///
    /// # Safety
    ///
    /// Every byte of every page of the folio has been written with data
    /// the process it will be mapped into may see.
    ///
    /// # Examples
    ///
    /// A driver that writes the destination itself (here a pattern; usually a
    /// copy or DMA): the process then reads what it wrote.
    ///
    /// ```
    /// use kernel::bindings;
    /// use rust_hmm::migrate::{DstFolio, Migration, PagemapOwner, Select};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// {
    ///     let lock = mm.mmap_read_lock();
    ///     let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    ///     let owner = PagemapOwner::of(&*mm);
    ///     let mut m = Migration::vma(vma, addr, addr + PAGE, owner, Select::System, false)?;
    ///     let mut dst = DstFolio::alloc_system(Some(vma), addr, 0).ok_or(ENOMEM)?;
    ///     // SAFETY: `dst` holds its page locked and referenced; the write stays
    ///     // inside it.
    ///     unsafe {
    ///         let va = bindings::kmap_local_page(dst.page(0));
    ///         core::ptr::write_bytes(va.cast::<u8>(), b'x', PAGE);
    ///         bindings::kunmap_local(va);
    ///     }
    ///     // SAFETY: Every byte was written just above.
    ///     unsafe { dst.assume_filled() };
    ///     m.set_dst(0, dst, true)?;
    ///     m.pages();
    /// }
    /// let mut buf = [0u8; 4];
    /// kunit_mm::read_user(addr + PAGE - 4, &mut buf)?;
    /// assert_eq!(&buf, b"xxxx");
    /// # Ok::<(), Error>(())
    /// ```
    pub unsafe fn assume_filled(&mut self) {
        // INVARIANT: As the caller promises.
        self.filled = true;
    }

    /// Whether [`Migration::set_dst`](super::Migration::set_dst) takes the folio.
    ///
    /// # Examples
    ///
    /// A system folio is filled only once written, here cleared.
    ///
    /// ```
    /// use rust_hmm::migrate::DstFolio;
    ///
    /// let mut folio = DstFolio::alloc_system(None, 0, 0).ok_or(ENOMEM)?;
    /// assert!(!folio.is_filled());
    /// folio.zero();
    /// assert!(folio.is_filled());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn is_filled(&self) -> bool {
        self.filled
    }

    /// PFN of the head page.
    ///
    /// # Examples
    ///
    /// After the migration the process maps the destination: HMM reports its
    /// PFN at the address.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// use rust_hmm::migrate::{DstFolio, Migration, PagemapOwner, Select};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
    /// let new = {
    ///     let lock = mm.mmap_read_lock();
    ///     let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    ///     let owner = PagemapOwner::of(&*mm);
    ///     let mut m = Migration::vma(vma, addr, addr + PAGE, owner, Select::System, false)?;
    ///     let mut dst = DstFolio::alloc_system(Some(vma), addr, 0).ok_or(ENOMEM)?;
    ///     dst.zero();
    ///     let pfn = dst.pfn();
    ///     m.set_dst(0, dst, true)?;
    ///     m.pages();
    ///     pfn
    /// };
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// let faulted = range.fault(Fault::Read, Mode::Locked)?;
    /// assert_eq!(faulted.pfns()[0].pfn(), new);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn pfn(&self) -> u64 {
        // SAFETY: `page` is a valid page by the type invariant.
        unsafe { ffi::page_to_pfn(self.page) as u64 }
    }

    /// The folio's order.
    ///
    /// # Examples
    ///
    /// The order the folio was allocated with: a page, or a PMD's worth.
    ///
    /// ```
    /// use rust_hmm::migrate::{DstFolio, PMD_ORDER};
    ///
    /// let small = DstFolio::alloc_system(None, 0, 0).ok_or(ENOMEM)?;
    /// let large = DstFolio::alloc_system(None, 0, PMD_ORDER).ok_or(ENOMEM)?;
    /// assert_eq!((small.order(), large.order()), (0, PMD_ORDER));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn order(&self) -> u32 {
        self.order
    }

    /// The `i`-th page of the folio.
    ///
    /// # Examples
    ///
    /// Page `i` is the one at PFN `pfn() + i`: a byte written through the first
    /// is read back at the second.
    ///
    /// ```
    /// use kernel::bindings;
    /// use rust_hmm::migrate::DstFolio;
    /// # use rust_hmm::kunit_mm;
    ///
    /// let mut folio = DstFolio::alloc_system(None, 0, 1).ok_or(ENOMEM)?;
    /// folio.zero();
    /// // SAFETY: Page 1 of a folio that `folio` holds; the write stays inside it.
    /// unsafe {
    ///     let va = bindings::kmap_local_page(folio.page(1));
    ///     va.cast::<u8>().write(7);
    ///     bindings::kunmap_local(va);
    /// }
    /// let mut buf = [0u8; 1];
    /// // SAFETY: `folio` holds the page.
    /// assert!(unsafe { kunit_mm::read_pfn(folio.pfn() + 1, &mut buf) });
    /// assert_eq!(buf, [7]);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn page(&self, i: usize) -> *mut bindings::page {
        debug_assert!(i < 1 << self.order);
        // Folio pages are contiguous in the memory map (SPARSEMEM_VMEMMAP).
        self.page.wrapping_add(i)
    }

    /// Page `i` of the folio, for lookups by page, while the folio is ours.
    ///
    /// # Examples
    ///
    /// A folio of order 1 has pages 0 and 1, and no more.
    ///
    /// ```
    /// use rust_hmm::migrate::DstFolio;
    ///
    /// let folio = DstFolio::alloc_system(None, 0, 1).ok_or(ENOMEM)?;
    /// assert!(folio.subpage(1).is_some());
    /// assert!(folio.subpage(2).is_none());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn subpage(&self, i: usize) -> Option<DstPage<'_>> {
        (i < 1 << self.order).then_some(DstPage { folio: self, i })
    }
}

/// Page `i` of a [`DstFolio`], borrowed from it.
///
/// # Examples
///
/// The pages of a destination name pages for a pool's lookups: a folio the
/// pool allocated is its own, a system folio is not.
///
/// ```
/// use rust_hmm::devmem::{DevicePool, DevmemOps, Private};
/// use rust_hmm::migrate::{DstFolio, Migration, Select};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # struct ZeroDevice;
/// # impl DevmemOps for ZeroDevice {
/// #     type PageData = ();
/// #     type Memory = Private;
/// #     fn folio_free(_: &DevicePool<Self>, _: u64, _: &[()]) {}
/// #     fn copy_to_ram(_: &DevicePool<Self>, _pfn: u64, _: &[()], dst: &mut DstFolio) -> Result {
/// #         dst.zero();
/// #         Ok(())
/// #     }
/// # }
/// let pool = KBox::pin_init(DevicePool::new(ZeroDevice, 2 << 20, 1), GFP_KERNEL)?;
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(1, true)?;
/// let lock = mm.mmap_read_lock();
/// let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
/// let mut m = Migration::vma(vma, addr, addr + PAGE, pool.owner(), Select::System, false)?;
/// let mut owned = false;
/// pool.migrate_to_device(&mut m, |_| true, |dst, _src, _first| {
///     owned = dst.subpage(0).is_some_and(|page| pool.owns(page));
///     Ok(())
/// });
/// assert!(owned);
/// let system = DstFolio::alloc_system(None, 0, 0).ok_or(ENOMEM)?;
/// assert!(!pool.owns(system.subpage(0).ok_or(EINVAL)?));
/// # Ok::<(), Error>(())
/// ```
pub struct DstPage<'a> {
    folio: &'a DstFolio,
    i: usize,
}

impl DstPage<'_> {
    /// The page's frame number.
    ///
    /// # Examples
    ///
    /// The pages of a folio are contiguous: page 1 follows the head.
    ///
    /// ```
    /// use rust_hmm::migrate::DstFolio;
    ///
    /// let folio = DstFolio::alloc_system(None, 0, 1).ok_or(ENOMEM)?;
    /// let tail = folio.subpage(1).ok_or(EINVAL)?;
    /// assert_eq!(tail.pfn(), folio.pfn() + 1);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn pfn(&self) -> u64 {
        self.folio.pfn() + self.i as u64
    }
}
