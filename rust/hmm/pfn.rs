// SPDX-License-Identifier: GPL-2.0

//! What `hmm_range_fault()` answers for each page: [`Pfn`] entries and
//! their [`PageKind`].

use super::{
    HMM_PFN_FLAGS,
    HMM_PFN_VALID, //
};
use crate::ffi;
use core::mem::MaybeUninit;
use kernel::prelude::*;

/// One output entry of `hmm_range_fault()`.
///
/// # Examples
///
/// A read fault on memory nobody wrote maps the shared zero page,
/// read-only; a write fault gives each page a page of its own.
///
/// ```
/// use rust_hmm::hmm::{Fault, Mode, Range};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(1, true)?;
/// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
///
/// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
/// let faulted = range.fault(Fault::Read, Mode::Locked)?;
/// let p = &faulted.pfns()[0];
/// assert!(p.is_valid() && p.is_zero() && !p.is_write());
/// let zero = p.pfn();
/// drop(faulted);
///
/// let faulted = range.fault(Fault::Write, Mode::Locked)?;
/// let p = &faulted.pfns()[0];
/// assert!(p.is_valid() && p.is_write() && !p.is_zero());
/// assert_ne!(p.pfn(), zero);
/// assert_eq!(p.order(), 0);
/// # Ok::<(), Error>(())
/// ```
#[repr(transparent)]
pub struct Pfn(pub(super) u64);

impl Pfn {
    /// The PFN field points to a page.
    ///
    /// # Examples
    ///
    /// A snapshot reports the page the CPU wrote, and nothing for the page
    /// next to it that nobody touched.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, 2 * PAGE)?;
    /// kunit_mm::write_user(addr, b"cpu")?;
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
    /// let faulted = range.fault(Fault::None, Mode::Locked)?;
    /// assert!(faulted.pfns()[0].is_valid());
    /// assert!(!faulted.pfns()[1].is_valid());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn is_valid(&self) -> bool {
        self.0 & HMM_PFN_VALID != 0
    }

    /// The CPU may write the page.
    ///
    /// # Examples
    ///
    /// Even a read fault reports the access the CPU has: write for a page the
    /// CPU wrote, none in a read-only mapping.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let rw = kunit_mm::mmap_anon(1, true)?;
    /// # let ro = kunit_mm::mmap_anon(1, false)?;
    /// # let lo = rw.min(ro);
    /// # let notifier = kunit_mm::notifier(&mm, lo, rw.max(ro) + PAGE - lo)?;
    /// kunit_mm::write_user(rw, b"cpu")?;
    /// let mut range = Range::new(&notifier, rw, rw + PAGE, None)?;
    /// assert!(range.fault(Fault::Read, Mode::Locked)?.pfns()[0].is_write());
    /// let mut range = Range::new(&notifier, ro, ro + PAGE, None)?;
    /// assert!(!range.fault(Fault::Read, Mode::Locked)?.pfns()[0].is_write());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn is_write(&self) -> bool {
        self.0 & ffi::HMM_PFN_WRITE != 0
    }

    /// The page cannot be accessed (PROT_NONE, poisoned, ...).
    ///
    /// # Examples
    ///
    /// A snapshot over a hole in the address space reports an error there; a
    /// fault over it fails with `EFAULT`.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, 2 * PAGE)?;
    /// kunit_mm::munmap(addr + PAGE, 1)?;
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
    /// let faulted = range.fault(Fault::None, Mode::Locked)?;
    /// assert!(!faulted.pfns()[0].is_error() && faulted.pfns()[1].is_error());
    /// drop(faulted);
    /// assert_eq!(range.fault(Fault::Read, Mode::Locked).err(), Some(EFAULT));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn is_error(&self) -> bool {
        self.0 & ffi::HMM_PFN_ERROR != 0
    }

    /// The page frame number; meaningful only if [`Self::is_valid`].
    ///
    /// # Examples
    ///
    /// The PFN names the page that holds the process's data, here read
    /// through the kernel's mapping of it, under the lock that keeps it current.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
    /// kunit_mm::write_user(addr, b"cpu")?;
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// let faulted = range.fault(Fault::Read, Mode::Locked)?;
    /// let mut buf = [0u8; 3];
    /// // SAFETY: `faulted` holds the notifier lock: the page cannot be freed.
    /// assert!(unsafe { kunit_mm::read_pfn(faulted.pfns()[0].pfn(), &mut buf) });
    /// assert_eq!(&buf, b"cpu");
    /// # Ok::<(), Error>(())
    /// ```
    pub fn pfn(&self) -> u64 {
        self.0 & !HMM_PFN_FLAGS
    }

    /// log2 of the number of pages the CPU maps with one entry here.
    ///
    /// # Examples
    ///
    /// An anonymous mapping of small pages maps each with a PTE of its own:
    /// order 0 (a transparent huge page would report
    /// [`PMD_ORDER`](crate::migrate::PMD_ORDER)).
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(4, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, 4 * PAGE)?;
    /// let mut range = Range::new(&notifier, addr, addr + 4 * PAGE, None)?;
    /// let faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// assert!(faulted.pfns().iter().all(|p| p.is_valid() && p.order() == 0));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn order(&self) -> u32 {
        ((self.0 >> ffi::HMM_PFN_ORDER_SHIFT) & 0x1f) as u32
    }

    /// The page is the shared zero page.
    ///
    /// # Examples
    ///
    /// Memory nobody wrote reads as the shared zero page until the CPU writes
    /// it, which gives it a page of its own.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// assert!(range.fault(Fault::Read, Mode::Locked)?.pfns()[0].is_zero());
    /// kunit_mm::write_user(addr, b"cpu")?;
    /// assert!(!range.fault(Fault::Read, Mode::Locked)?.pfns()[0].is_zero());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn is_zero(&self) -> bool {
        // SAFETY: `is_zero_pfn` only compares numbers.
        self.is_valid() && unsafe { ffi::is_zero_pfn(self.pfn() as usize) }
    }

    /// The page is device-private memory.
    ///
    /// # Examples
    ///
    /// A page moved to device-private memory is reported as such to the device
    /// that owns it (the owner passed to [`Range::new`](super::Range::new)), instead of being
    /// faulted back; the page next to it is ordinary memory.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, 2 * PAGE)?;
    /// // Move the first page to device memory (a test pool).
    /// let pool = kunit_mm::to_device(&mm, addr, 1)?;
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, Some(pool.owner()))?;
    /// let faulted = range.fault(Fault::Read, Mode::Locked)?;
    /// assert!(faulted.pfns()[0].is_device_private());
    /// assert!(!faulted.pfns()[1].is_device_private());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn is_device_private(&self) -> bool {
        // SAFETY: A valid HMM PFN names a page with a `struct page`.
        self.is_valid()
            && !unsafe { ffi::rust_hmm_device_private_pgmap(self.pfn() as usize) }.is_null()
    }
}

/// What kind of page a valid [`Pfn`] names, as [`page_kinds`] tells.
///
/// # Examples
///
/// A device page, the zero page and a page the CPU wrote.
///
/// ```
/// use core::mem::MaybeUninit;
/// use rust_hmm::hmm::{page_kinds, Fault, Mode, PageKind, Range};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(3, true)?;
/// # let notifier = kunit_mm::notifier(&mm, addr, 3 * PAGE)?;
/// let pool = kunit_mm::to_device(&mm, addr, 1)?; // a test pool
/// kunit_mm::write_user(addr + 2 * PAGE, b"cpu")?;
/// let mut range = Range::new(&notifier, addr, addr + 3 * PAGE, Some(pool.owner()))?;
/// let faulted = range.fault(Fault::Read, Mode::Locked)?;
/// let mut kinds = [MaybeUninit::uninit(); 3];
/// let kinds = page_kinds(faulted.pfns(), &mut kinds)?;
/// assert_eq!(kinds, [PageKind::DevicePrivate, PageKind::Zero, PageKind::Other]);
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum PageKind {
    /// Not valid, or an ordinary page.
    Other = 0,
    /// The shared zero page.
    Zero = 1,
    /// Device-private memory.
    DevicePrivate = 2,
    /// Device-coherent memory: any device's, since HMM reports such pages
    /// as the ordinary pages the CPU maps them as, whatever the owner.
    DeviceCoherent = 3,
}

/// Tells for every entry of `pfns` what [`PageKind`] it is, with one
/// helper call for the lot: the same answers as [`Pfn::is_zero`] and
/// [`Pfn::is_device_private`], which cost two calls per page. Fills the
/// start of `kinds` (`EINVAL` if it is shorter than `pfns`) and returns it.
///
/// # Examples
///
/// The kinds of a whole range in one call, as [`Pfn::is_zero`] tells them
/// page by page; the output must have room for every entry.
///
/// ```
/// use core::mem::MaybeUninit;
/// use rust_hmm::hmm::{page_kinds, Fault, Mode, PageKind, Range};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(4, true)?;
/// # let notifier = kunit_mm::notifier(&mm, addr, 4 * PAGE)?;
/// kunit_mm::write_user(addr + PAGE, b"cpu")?;
/// let mut range = Range::new(&notifier, addr, addr + 4 * PAGE, None)?;
/// let faulted = range.fault(Fault::Read, Mode::Locked)?;
/// let mut buf = [MaybeUninit::uninit(); 8];
/// let kinds = page_kinds(faulted.pfns(), &mut buf)?;
/// assert_eq!(kinds.len(), 4);
/// for (p, k) in faulted.pfns().iter().zip(kinds) {
///     assert_eq!(p.is_zero(), *k == PageKind::Zero);
/// }
/// assert_eq!(kinds[1], PageKind::Other);
/// assert_eq!(page_kinds(faulted.pfns(), &mut buf[..3]).err(), Some(EINVAL));
/// # Ok::<(), Error>(())
/// ```
pub fn page_kinds<'a>(
    pfns: &[Pfn],
    kinds: &'a mut [MaybeUninit<PageKind>],
) -> Result<&'a [PageKind]> {
    let kinds = kinds.get_mut(..pfns.len()).ok_or(EINVAL)?;
    // SAFETY: `Pfn` is a transparent `u64`, and `kinds` has one byte for
    // each of the `pfns.len()` entries the helper reads.
    unsafe {
        ffi::rust_hmm_pfn_kinds(
            pfns.as_ptr().cast(),
            kinds.as_mut_ptr().cast(),
            pfns.len(),
            PageKind::Zero as u8,
            PageKind::DevicePrivate as u8,
            PageKind::DeviceCoherent as u8,
        )
    };
    // SAFETY: The helper wrote every byte of `kinds`, each 0 (`Other`) or
    // one of the three discriminants it was given; `MaybeUninit<PageKind>`
    // has the layout of `PageKind`.
    Ok(unsafe { &*(core::ptr::from_ref(kinds) as *const [PageKind]) })
}
