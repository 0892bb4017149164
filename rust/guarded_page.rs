// SPDX-License-Identifier: GPL-2.0

//! Pages read under a notifier lock.
//!
//! What a mirror learns about the CPU's pages (a PFN from
//! `hmm_range_fault()`, a device-exclusive page, a device page table entry)
//! is only good while the notifier lock that validated it is held: once the
//! lock goes, an invalidation can remove the mapping and the page can be
//! freed. A [`GuardedPages`] is such a page, or a run of pages of one folio,
//! that borrows that lock for its lifetime `'a`, so the borrow checker ends
//! every use of it before the lock is released. Its methods copy, dirty and
//! reference the pages; none needs `unsafe` from a driver. A reference that
//! must outlive the lock is a [`PageRefs`], owned, dropped with a put.
//!
//! Only this crate makes them: [`crate::hmm::FaultedPfns`], the closure of
//! [`crate::device_exclusive::ExclusiveSession::map`], and the lookups and
//! dirty reports of [`crate::device_pt::DevicePageTable`].
//!
//! # Safety contract
//!
//! While a `GuardedPages<'a>` lives, its pages stay allocated (every way
//! to free them waits for the lock it borrows). The device may write them
//! only if the CPU maps them writable (never the zero page): [`write`],
//! [`fetch_add_u64`] and inserting with `WRITE` check that. A
//! device-private page has no memory the CPU can address: it can be
//! neither read nor written, only named, or give its driver's data page
//! through the `unsafe` [`device_data`].
//!
//! [`write`]: GuardedPages::write
//! [`fetch_add_u64`]: GuardedPages::fetch_add_u64
//! [`device_data`]: GuardedPages::device_data

use crate::ffi;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use kernel::{
    page::PAGE_SIZE,
    prelude::*,
    uaccess::UserPtr, //
};

/// What kind of memory a [`GuardedPages`] names.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// System memory the CPU maps (the zero page included).
    System,
    /// A device-private page: a `struct page` with no CPU-addressable memory.
    DevicePrivate,
    /// A page of the driver's own that holds a device page's data.
    DeviceData,
}

/// Pages known to stay allocated while the notifier lock borrowed for `'a`
/// is held: one page, or a run of pages of one folio (a huge leaf).
///
/// # Invariants
///
/// - The `npages` pages from `pfn` stay allocated for `'a`.
/// - `kind` says what they are; only `System` and `DeviceData` pages have
///   memory the CPU can address.
/// - If `writable`, the device may write them: the CPU maps them writable
///   (or they are device data of a page it maps writable).
/// - If `written`, the device wrote them while it could: they may be
///   marked dirty.
/// - If `tie` is not null, the pages were validated under the lock of the
///   notifier state at `tie..tie + tie_len`, for the address `addr`.
///
/// # Examples
///
/// The pages a device fault validated, read and written under the notifier
/// lock; a read-only mapping refuses a write.
///
/// ```
/// use rust_hmm::hmm::{Fault, Mode, Range};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let rw = kunit_mm::mmap_anon(1, true)?;
/// # let ro = kunit_mm::mmap_anon(1, false)?;
/// # let lo = rw.min(ro);
/// # let notifier = kunit_mm::notifier(&mm, lo, rw.max(ro) + PAGE - lo)?;
///
/// let mut range = Range::new(&notifier, rw, rw + PAGE, None)?;
/// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
/// let (_, pages) = faulted.split();
/// let page = pages.page(0).ok_or(EFAULT)?;
/// page.write(16, b"device")?;
/// let mut buf = [0u8; 6];
/// page.read(16, &mut buf)?;
/// assert_eq!(&buf, b"device");
/// assert_eq!(page.read(4091, &mut buf), Err(EINVAL)); // past the page
/// drop(faulted);
///
/// // Read faults on a read-only mapping give the shared zero page.
/// let mut range = Range::new(&notifier, ro, ro + PAGE, None)?;
/// let mut faulted = range.fault(Fault::Read, Mode::Locked)?;
/// let (_, pages) = faulted.split();
/// assert_eq!(pages.page(0).ok_or(EFAULT)?.write(0, b"x"), Err(EPERM));
/// # drop(faulted);
/// # kunit_mm::read_user(rw + 16, &mut buf)?;
/// # assert_eq!(&buf, b"device");
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct GuardedPages<'a> {
    pfn: u64,
    npages: u64,
    addr: usize,
    tie: *const u8,
    tie_len: usize,
    kind: Kind,
    writable: bool,
    written: bool,
    _lock: PhantomData<&'a ()>,
}

/// The notifier state whose lock validated some pages: where it is and
/// how large, so that a device page table can tell whether it lies inside.
#[derive(Clone, Copy)]
pub(crate) struct Tie {
    at: *const u8,
    len: usize,
}

impl Tie {
    /// Not tied to any state: such pages cannot be inserted anywhere.
    pub(crate) const NONE: Tie = Tie {
        at: core::ptr::null(),
        len: 0,
    };

    /// The `T` at `at`.
    pub(crate) fn of<T>(at: *const T) -> Tie {
        Tie {
            at: at.cast(),
            len: core::mem::size_of::<T>(),
        }
    }
}

impl<'a> GuardedPages<'a> {
    /// The `npages` pages from `pfn`, mapped from `addr`, validated under
    /// the lock of the notifier state `tie`.
    ///
    /// # Safety
    ///
    /// The type invariants hold for the result: the pages stay allocated
    /// for `'a`, are of `kind`, and writable by the device if `writable`.
    pub(crate) unsafe fn new(
        pfn: u64,
        npages: u64,
        addr: usize,
        tie: Tie,
        kind: Kind,
        writable: bool,
    ) -> Self {
        // INVARIANT: per the function's safety requirements.
        Self {
            pfn,
            npages,
            addr,
            tie: tie.at,
            tie_len: tie.len,
            kind,
            writable,
            written: writable,
            _lock: PhantomData,
        }
    }

    /// Pages the device wrote, as a device page table reports them when
    /// it drops their dirty bit: they may be read and marked dirty, not
    /// written (the CPU may be write-protecting them), nor inserted again.
    ///
    /// # Safety
    ///
    /// The pages stay allocated for `'a`, are of `kind`, and were writable
    /// by the device when it wrote them.
    pub(crate) unsafe fn written(pfn: u64, npages: u64, kind: Kind) -> Self {
        // SAFETY: Per the function's safety requirements; not writable.
        let mut p = unsafe { Self::new(pfn, npages, usize::MAX, Tie::NONE, kind, false) };
        // INVARIANT: the device wrote them while it could.
        p.written = true;
        p
    }

    /// The first page frame number, a number to compare or to hand to
    /// hardware; the pages behind it are only valid for `'a`.
    ///
    /// # Examples
    ///
    /// The page a device fault was given is the page `hmm_range_fault()`
    /// reported.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (_, pages) = faulted.split();
    /// let page = pages.page(0).ok_or(EFAULT)?;
    /// assert_eq!(page.pfn(), pages.pfns()[0].pfn());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn pfn(&self) -> u64 {
        self.pfn
    }

    /// How many pages.
    ///
    /// # Examples
    ///
    /// A single page of a range is one page; so is a block of order 0.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (_, pages) = faulted.split();
    /// assert_eq!(pages.page(0).ok_or(EFAULT)?.npages(), 1);
    /// assert_eq!(pages.block(0, 0).ok_or(EFAULT)?.npages(), 1);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn npages(&self) -> u64 {
        self.npages
    }

    /// Bytes the pages span.
    fn bytes(&self) -> usize {
        self.npages as usize * PAGE_SIZE
    }

    /// Whether the device may write the pages.
    ///
    /// # Examples
    ///
    /// The device may write what the CPU may write: a page faulted for
    /// writing, not the zero page a read fault maps.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, 2 * PAGE)?;
    /// kunit_mm::read_user(addr, &mut [0u8; 1])?; // maps the zero page, and a page table
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
    /// range.set_page_fault(1, Fault::Write)?;
    /// let mut faulted = range.fault(Fault::Read, Mode::Locked)?;
    /// let (_, pages) = faulted.split();
    /// assert!(!pages.page(0).ok_or(EFAULT)?.is_writable());
    /// assert!(pages.page(1).ok_or(EFAULT)?.is_writable());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// Whether this is a device-private page (see [`Self::device_data`]).
    ///
    /// # Examples
    ///
    /// A page in device-private memory can be named, not read.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
    /// let pool = kunit_mm::to_device(&mm, addr, 1)?; // a test pool
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, Some(pool.owner()))?;
    /// let mut faulted = range.fault(Fault::Read, Mode::Locked)?;
    /// let (_, pages) = faulted.split();
    /// let page = pages.page(0).ok_or(EFAULT)?;
    /// assert!(page.is_device_private());
    /// assert_eq!(page.read(0, &mut [0u8; 8]), Err(EINVAL));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn is_device_private(&self) -> bool {
        self.kind == Kind::DevicePrivate
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether these pages were validated for `addr` under the lock of a
    /// notifier state that contains the `T` at `at`: the check that lets a
    /// device page table inside that state take them.
    pub(crate) fn tied_to<T>(&self, at: *const T, addr: usize) -> bool {
        let (at, tie) = (at as usize, self.tie as usize);
        !self.tie.is_null()
            && self.addr == addr
            && at >= tie
            && at + core::mem::size_of::<T>() <= tie + self.tie_len
    }

    /// `EINVAL` unless `[offset, offset + len)` lies inside CPU-addressable
    /// pages.
    fn check(&self, offset: usize, len: usize) -> Result {
        let end = offset.checked_add(len).ok_or(EINVAL)?;
        if self.kind == Kind::DevicePrivate || end > self.bytes() {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Copies `buf.len()` bytes at byte `offset` of the pages into `buf`.
    /// `EINVAL` if that reaches past them or the page is device-private.
    ///
    /// # Examples
    ///
    /// The device reads what the CPU wrote; not past the end of the page.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
    /// kunit_mm::write_user(addr + 100, b"cpu")?;
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Read, Mode::Locked)?;
    /// let (_, pages) = faulted.split();
    /// let page = pages.page(0).ok_or(EFAULT)?;
    /// let mut buf = [0u8; 3];
    /// page.read(100, &mut buf)?;
    /// assert_eq!(&buf, b"cpu");
    /// assert_eq!(page.read(PAGE - 2, &mut buf), Err(EINVAL));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result {
        self.check(offset, buf.len())?;
        // SAFETY: The pages are allocated (type invariant) and addressable,
        // the range lies inside them (checked), and `buf` is writable for
        // its length.
        unsafe {
            ffi::rust_hmm_pages_read(
                self.pfn as usize,
                offset,
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        Ok(())
    }

    /// [`Self::read`] into memory that need not be initialised; returns it,
    /// initialised.
    ///
    /// # Examples
    ///
    /// Reading into a buffer that need not be zeroed first.
    ///
    /// ```
    /// use core::mem::MaybeUninit;
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
    /// kunit_mm::write_user(addr, b"cpu data")?;
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Read, Mode::Locked)?;
    /// let (_, pages) = faulted.split();
    /// let mut buf = [MaybeUninit::<u8>::uninit(); 8];
    /// let data = pages.page(0).ok_or(EFAULT)?.read_uninit(0, &mut buf)?;
    /// assert_eq!(data, b"cpu data");
    /// # Ok::<(), Error>(())
    /// ```
    pub fn read_uninit<'b>(
        &self,
        offset: usize,
        buf: &'b mut [MaybeUninit<u8>],
    ) -> Result<&'b mut [u8]> {
        self.check(offset, buf.len())?;
        // SAFETY: As in `read`; the helper only writes to `buf`.
        unsafe {
            ffi::rust_hmm_pages_read(
                self.pfn as usize,
                offset,
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        // SAFETY: The helper initialised every byte, and `MaybeUninit<u8>`
        // has the layout of `u8`.
        Ok(unsafe { &mut *(core::ptr::from_mut(buf) as *mut [u8]) })
    }

    /// Copies `data` into the pages at byte `offset`. `EPERM` if the device
    /// may not write them, `EINVAL` if it reaches past them.
    ///
    /// # Examples
    ///
    /// What the device writes, the CPU reads once the lock is gone.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (_, pages) = faulted.split();
    /// pages.page(0).ok_or(EFAULT)?.write(8, b"device")?;
    /// drop(faulted);
    /// let mut buf = [0u8; 6];
    /// kunit_mm::read_user(addr + 8, &mut buf)?;
    /// assert_eq!(&buf, b"device");
    /// # Ok::<(), Error>(())
    /// ```
    pub fn write(&self, offset: usize, data: &[u8]) -> Result {
        if !self.writable {
            return Err(EPERM);
        }
        self.check(offset, data.len())?;
        // SAFETY: As in `read`, and the device may write the pages (type
        // invariant).
        unsafe {
            ffi::rust_hmm_pages_write(self.pfn as usize, offset, data.as_ptr().cast(), data.len())
        };
        Ok(())
    }

    /// Atomically adds `value` to the `u64` at byte `offset` (8-byte
    /// aligned, `EINVAL` otherwise) and returns the old value, as a device
    /// atomic would. `EPERM` if the device may not write the pages.
    ///
    /// # Examples
    ///
    /// A device atomic on a counter the CPU set; only aligned words.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
    /// kunit_mm::write_user(addr + 16, &41u64.to_ne_bytes())?;
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let (_, pages) = faulted.split();
    /// let page = pages.page(0).ok_or(EFAULT)?;
    /// assert_eq!(page.fetch_add_u64(16, 1)?, 41);
    /// assert_eq!(page.fetch_add_u64(12, 1), Err(EINVAL));
    /// drop(faulted);
    /// let mut word = [0u8; 8];
    /// kunit_mm::read_user(addr + 16, &mut word)?;
    /// assert_eq!(u64::from_ne_bytes(word), 42);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn fetch_add_u64(&self, offset: usize, value: u64) -> Result<u64> {
        if !self.writable {
            return Err(EPERM);
        }
        if !offset.is_multiple_of(8) {
            return Err(EINVAL);
        }
        self.check(offset, 8)?;
        // SAFETY: As in `write`; the aligned `u64` lies inside one page.
        Ok(unsafe { ffi::rust_hmm_pages_fetch_add_u64(self.pfn as usize, offset, value) })
    }

    /// Copies the pages, whole, straight to user address `uptr` with page
    /// faults disabled, and returns how many whole pages were copied: a
    /// user page that is not present and writable ends the copy there
    /// instead of faulting. So this may run under the notifier lock, which
    /// a fault (through reclaim) could need.
    ///
    /// # Examples
    ///
    /// Copying a page to a user buffer under the lock: a buffer the CPU has
    /// written takes the whole page; one not mapped yet takes nothing, where a
    /// fault could have deadlocked.
    ///
    /// ```
    /// use kernel::uaccess::UserPtr;
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
    /// let (fresh, mapped) = (kunit_mm::mmap_anon(1, true)?, kunit_mm::mmap_anon(1, true)?);
    /// kunit_mm::write_user(mapped, b"....")?;
    /// kunit_mm::write_user(addr, b"page")?;
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Read, Mode::Locked)?;
    /// let page = faulted.split().1.page(0).ok_or(EFAULT)?;
    /// assert_eq!(page.copy_to_user_nofault(UserPtr::from_addr(fresh)), 0);
    /// assert_eq!(page.copy_to_user_nofault(UserPtr::from_addr(mapped)), 1);
    /// drop(faulted);
    /// let mut buf = [0u8; 4];
    /// kunit_mm::read_user(mapped, &mut buf)?;
    /// assert_eq!(&buf, b"page");
    /// # Ok::<(), Error>(())
    /// ```
    pub fn copy_to_user_nofault(&self, uptr: UserPtr) -> u64 {
        if self.kind == Kind::DevicePrivate {
            return 0;
        }
        let len = self.bytes();
        // The helper checks `access_ok()` and copies with
        // `pagefault_disable()`: a fault on the user address finds
        // `faulthandler_disabled()` and goes to the exception fixup before
        // it takes a lock or allocates (arch/x86/mm/fault.c).
        // SAFETY: The pages are allocated and addressable (type invariant);
        // any user address may be passed.
        let left = unsafe {
            ffi::rust_hmm_copy_pages_to_user_nofault(uptr.as_mut_ptr(), self.pfn as usize, len)
        };
        (len.saturating_sub(left) / PAGE_SIZE) as u64
    }

    /// `set_page_dirty()` once per folio, as a CPU write would set its
    /// PTE's dirty bit. Device data has no CPU mapping to dirty: nothing
    /// to do. `EPERM` for pages the device could not have written.
    ///
    /// # Examples
    ///
    /// A device write is reported as a CPU write would be, by dirtying the
    /// page; the zero page cannot have been written, so it cannot be dirtied.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, 2 * PAGE)?;
    /// kunit_mm::read_user(addr, &mut [0u8; 1])?; // maps the zero page, and a page table
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
    /// range.set_page_fault(1, Fault::Write)?;
    /// let mut faulted = range.fault(Fault::Read, Mode::Locked)?;
    /// let (_, pages) = faulted.split();
    /// let page = pages.page(1).ok_or(EFAULT)?;
    /// page.write(0, b"dma")?;
    /// // SAFETY: The notifier lock held keeps the page allocated.
    /// assert!(!unsafe { kunit_mm::page_dirty(page.pfn()) });
    /// page.mark_dirty()?;
    /// // SAFETY: As above.
    /// assert!(unsafe { kunit_mm::page_dirty(page.pfn()) });
    /// assert_eq!(pages.page(0).ok_or(EFAULT)?.mark_dirty(), Err(EPERM));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn mark_dirty(&self) -> Result {
        if !self.written {
            return Err(EPERM);
        }
        if self.kind == Kind::System {
            // SAFETY: The pages are allocated (type invariant).
            unsafe { ffi::rust_hmm_set_pages_dirty(self.pfn as usize, self.npages as usize) };
        }
        Ok(())
    }

    /// A reference on every folio of the pages, which may outlive the lock.
    ///
    /// # Examples
    ///
    /// A reference keeps the page after the process has unmapped it, with the
    /// data the device wrote.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// let refs = {
    ///     let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    ///     let page = faulted.split().1.page(0).ok_or(EFAULT)?;
    ///     page.write(0, b"kept")?;
    ///     page.get()
    /// };
    /// kunit_mm::munmap(addr, 1)?;
    /// let mut buf = [0u8; 4];
    /// // SAFETY: `refs` keeps the page allocated.
    /// assert!(unsafe { kunit_mm::read_pfn(refs.pfn(), &mut buf) });
    /// assert_eq!(&buf, b"kept");
    /// # Ok::<(), Error>(())
    /// ```
    pub fn get(&self) -> PageRefs {
        // SAFETY: The pages are allocated (type invariant).
        unsafe { ffi::rust_hmm_get_pages(self.pfn as usize, self.npages as usize) };
        // INVARIANT: the references just taken.
        PageRefs {
            pfn: self.pfn,
            npages: self.npages,
            kind: self.kind,
            written: self.written,
        }
    }

    /// The page `data_pfn` that holds this device-private page's data in a
    /// driver that keeps it in system memory (as the sample does), with
    /// the same address, lock and permissions. `EINVAL` unless this is one
    /// device-private page.
    ///
    /// # Safety
    ///
    /// `data_pfn` is a page that stays allocated for as long as this
    /// device-private page does (the driver frees it in its `folio_free`).
    ///
    /// # Examples
    ///
    /// A driver that keeps a device page's data in a system page of its own
    /// (as the sample does) reaches it through the device-private page that
    /// `hmm_range_fault()` reported; other pages have no device data.
    ///
    /// ```
    /// use kernel::page::Page;
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
    /// let data = Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?;
    /// let data_pfn = kunit_mm::page_pfn(&data);
    /// // After `data`, so dropped (its pages back in RAM) before it.
    /// let pool = kunit_mm::to_device(&mm, addr, 1)?;
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, Some(pool.owner()))?;
    /// let mut faulted = range.fault(Fault::Read, Mode::Locked)?;
    /// let page = faulted.split().1.page(0).ok_or(EFAULT)?;
    /// // SAFETY: `data` outlives the device page, freed when `pool` goes.
    /// let dev = unsafe { page.device_data(data_pfn)? };
    /// dev.write(0, b"vram")?;
    /// let mut buf = [0u8; 4];
    /// // SAFETY: `data` is allocated.
    /// assert!(unsafe { kunit_mm::read_pfn(data_pfn, &mut buf) });
    /// assert_eq!(&buf, b"vram");
    /// // SAFETY: As above.
    /// assert_eq!(unsafe { dev.device_data(data_pfn) }.err(), Some(EINVAL));
    /// # Ok::<(), Error>(())
    /// ```
    pub unsafe fn device_data(&self, data_pfn: u64) -> Result<GuardedPages<'a>> {
        if self.kind != Kind::DevicePrivate || self.npages != 1 {
            return Err(EINVAL);
        }
        // INVARIANT: this page stays allocated for `'a`, so by the caller's
        // promise the data page does too.
        Ok(Self {
            pfn: data_pfn,
            kind: Kind::DeviceData,
            ..*self
        })
    }
}

/// References on the folios of some pages, taken by [`GuardedPages::get`]:
/// the pages stay allocated, lock or no lock, until this is dropped.
///
/// # Examples
///
/// Dirtying a page the device wrote after the notifier lock is gone, as a
/// two-pass invalidation does in its second pass.
///
/// ```
/// use rust_hmm::hmm::{Fault, Mode, Range};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(1, true)?;
/// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
///
/// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
/// let refs = {
///     let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
///     let (_, pages) = faulted.split();
///     let page = pages.page(0).ok_or(EFAULT)?;
///     page.write(0, b"dma")?;
///     page.get()
/// }; // The notifier lock is released here.
/// assert_eq!(refs.npages(), 1);
/// refs.mark_dirty()?;
/// # Ok::<(), Error>(())
/// ```
///
/// # Invariants
///
/// Holds one reference on each folio of the `npages` pages from `pfn`, as
/// `rust_hmm_get_pages()` takes them; `kind` and `written` are those of the
/// [`GuardedPages`] they came from.
pub struct PageRefs {
    pfn: u64,
    npages: u64,
    kind: Kind,
    written: bool,
}

impl PageRefs {
    /// The first page frame number.
    ///
    /// # Examples
    ///
    /// The references name the page they hold, the page the device was given.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let page = faulted.split().1.page(0).ok_or(EFAULT)?;
    /// let refs = page.get();
    /// assert_eq!(refs.pfn(), page.pfn());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn pfn(&self) -> u64 {
        self.pfn
    }

    /// How many pages.
    ///
    /// # Examples
    ///
    /// As many pages as were referenced, each folio once: one more reference
    /// on a small page's folio.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, PAGE)?;
    /// let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
    /// let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
    /// let page = faulted.split().1.page(0).ok_or(EFAULT)?;
    /// // SAFETY: The notifier lock held keeps the page allocated.
    /// let before = unsafe { kunit_mm::page_refcount(page.pfn()) };
    /// let refs = page.get();
    /// assert_eq!(refs.npages(), 1);
    /// // SAFETY: As above.
    /// assert_eq!(unsafe { kunit_mm::page_refcount(page.pfn()) }, before + 1);
    /// drop(refs);
    /// // SAFETY: As above.
    /// assert_eq!(unsafe { kunit_mm::page_refcount(page.pfn()) }, before);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn npages(&self) -> u64 {
        self.npages
    }

    /// [`GuardedPages::mark_dirty`], without the lock: the references keep
    /// the folios alive.
    ///
    /// # Examples
    ///
    /// Dirtying a page the device wrote, after the lock is gone; references
    /// on a page it could not write refuse.
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode, Range};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// # let notifier = kunit_mm::notifier(&mm, addr, 2 * PAGE)?;
    /// kunit_mm::read_user(addr, &mut [0u8; 1])?; // maps the zero page, and a page table
    /// let mut range = Range::new(&notifier, addr, addr + 2 * PAGE, None)?;
    /// range.set_page_fault(1, Fault::Write)?;
    /// let (zero, written) = {
    ///     let mut faulted = range.fault(Fault::Read, Mode::Locked)?;
    ///     let (_, pages) = faulted.split();
    ///     (pages.page(0).ok_or(EFAULT)?.get(), pages.page(1).ok_or(EFAULT)?.get())
    /// };
    /// written.mark_dirty()?;
    /// // SAFETY: `written` keeps the page allocated.
    /// assert!(unsafe { kunit_mm::page_dirty(written.pfn()) });
    /// assert_eq!(zero.mark_dirty(), Err(EPERM));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn mark_dirty(&self) -> Result {
        if !self.written {
            return Err(EPERM);
        }
        if self.kind == Kind::System {
            // SAFETY: We hold references on the folios (type invariant).
            unsafe { ffi::rust_hmm_set_pages_dirty(self.pfn as usize, self.npages as usize) };
        }
        Ok(())
    }
}

impl Drop for PageRefs {
    fn drop(&mut self) {
        // SAFETY: The references are ours (type invariant).
        unsafe { ffi::rust_hmm_put_pages(self.pfn as usize, self.npages as usize) };
    }
}

mod tests;
