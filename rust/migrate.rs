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
use crate::folio::LockedFolio;
use core::marker::PhantomData;
use kernel::{
    bindings,
    mm::virt::VmaRef,
    prelude::*, //
};

// The `MIGRATE_PFN_*` bits of the `u64` entries of `src` and `dst` (bindgen
// types a `#define` as `u32`).
const MIGRATE_PFN_VALID: u64 = ffi::MIGRATE_PFN_VALID as u64;
const MIGRATE_PFN_MIGRATE: u64 = ffi::MIGRATE_PFN_MIGRATE as u64;
const MIGRATE_PFN_WRITE: u64 = ffi::MIGRATE_PFN_WRITE as u64;
const MIGRATE_PFN_COMPOUND: u64 = ffi::MIGRATE_PFN_COMPOUND as u64;
const MIGRATE_PFN_SHIFT: u32 = ffi::MIGRATE_PFN_SHIFT;

/// Most pages one [`Migration`] handles: one PMD, as `lib/test_hmm.c`.
///
/// # Examples
///
/// A range of one page more is refused before anything is collected.
///
/// ```
/// use rust_hmm::migrate::{Migration, PagemapOwner, Select, MAX_PAGES};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// let addr = kunit_mm::mmap_anon(MAX_PAGES + 1, true)?;
/// let lock = mm.mmap_read_lock();
/// let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
/// let owner = PagemapOwner::of(&*mm);
/// let end = addr + MAX_PAGES * PAGE;
/// let m = Migration::vma(vma, addr, end + PAGE, owner, Select::System, false);
/// assert_eq!(m.err(), Some(EINVAL));
/// let m = Migration::vma(vma, addr, end, owner, Select::System, false)?;
/// assert_eq!(m.npages(), MAX_PAGES);
/// # Ok::<(), Error>(())
/// ```
pub const MAX_PAGES: usize = 512;

/// Order of a PMD-sized folio, the largest a migration moves whole
/// (`HPAGE_PMD_ORDER`).
///
/// # Examples
///
/// A PMD-sized folio is 2 MiB with 4 KiB pages: the most one migration moves.
///
/// ```
/// use rust_hmm::migrate::{MAX_PAGES, PMD_ORDER};
///
/// assert_eq!(1 << PMD_ORDER, MAX_PAGES);
/// assert_eq!(kernel::page::PAGE_SIZE << PMD_ORDER, 2 << 20);
/// ```
pub const PMD_ORDER: u32 = ffi::HPAGE_PMD_ORDER;

/// The owner cookie of device-private memory (`dev_pagemap::owner`): HMM
/// reports, and migration collects, only the device pages whose pagemap
/// carries the cookie asked for. Compared by address, never dereferenced.
///
/// # Examples
///
/// ```
/// use rust_hmm::migrate::PagemapOwner;
///
/// struct Device {
///     id: u32,
/// }
/// let (a, b) = (Device { id: 0 }, Device { id: 1 });
/// assert_eq!(PagemapOwner::of(&a), PagemapOwner::of(&a));
/// assert_ne!(PagemapOwner::of(&a), PagemapOwner::of(&b));
/// # let _ = (a.id, b.id);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PagemapOwner(*const core::ffi::c_void);

// SAFETY: A cookie compared by address; nothing is reached through it.
unsafe impl Send for PagemapOwner {}
// SAFETY: As above.
unsafe impl Sync for PagemapOwner {}

impl PagemapOwner {
    /// The cookie of the object at `owner` (a pool, a device).
    ///
    /// # Examples
    ///
    /// The cookie is the object's address: the same object always gives the same
    /// cookie, and an equal copy elsewhere is another owner.
    ///
    /// ```
    /// use rust_hmm::migrate::PagemapOwner;
    ///
    /// let device = [0u8; 16];
    /// assert_eq!(PagemapOwner::of(&device), PagemapOwner::of(&device));
    /// let copy = device;
    /// assert_ne!(PagemapOwner::of(&copy), PagemapOwner::of(&device));
    /// ```
    pub fn of<T>(owner: &T) -> Self {
        Self(core::ptr::from_ref(owner).cast())
    }

    /// The raw cookie, for the kernel's structures.
    ///
    /// # Examples
    ///
    /// What `dev_pagemap::owner` and `hmm_range::dev_private_owner` hold: the
    /// owner's address.
    ///
    /// ```
    /// use rust_hmm::migrate::PagemapOwner;
    ///
    /// let device = 0u64;
    /// let cookie = PagemapOwner::of(&device).as_ptr();
    /// assert_eq!(cookie.cast_const(), core::ptr::from_ref(&device).cast());
    /// ```
    pub fn as_ptr(self) -> *mut core::ffi::c_void {
        self.0.cast_mut()
    }
}

/// Which pages `migrate_vma_setup()` collects.
///
/// # Examples
///
/// A page of system memory is collected to move into the device, never to
/// move out of it.
///
/// ```
/// use rust_hmm::migrate::{Migration, PagemapOwner, Select};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(1, true)?;
/// kunit_mm::write_user(addr, b"data")?;
/// let lock = mm.mmap_read_lock();
/// let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
/// let owner = PagemapOwner::of(&*mm);
/// for (select, collected) in [(Select::System, true), (Select::DevicePrivate, false)] {
///     let m = Migration::vma(vma, addr, addr + PAGE, owner, select, false)?;
///     assert_eq!(m.src(0).migrate(), collected);
/// }
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Select {
    /// System memory, to move it into the device.
    System,
    /// The caller's device-private pages (matched by owner), to move them
    /// back to system memory. Those of a `devmem::DevicePrivatePool` go
    /// through its `migrate_to_ram()`, which records that they no longer
    /// hold data; moved without it, eviction may take one again before it
    /// is freed.
    DevicePrivate,
}

/// One source entry, as the core reported it (`MIGRATE_PFN_*`), valid
/// while the [`Migration`] it came from lives: until then the page it
/// names is locked and referenced by the migration.
///
/// # Examples
///
/// A written page is collected with its PFN; an untouched one has no page
/// yet, and is collected too (its destination starts out zeroed).
///
/// ```
/// use rust_hmm::migrate::{Migration, PagemapOwner, Select};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(2, true)?;
/// kunit_mm::write_user(addr, b"data")?;
/// let lock = mm.mmap_read_lock();
/// let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
/// let owner = PagemapOwner::of(&*mm);
/// let m = Migration::vma(vma, addr, addr + 2 * PAGE, owner, Select::System, false)?;
/// let (written, untouched) = (m.src(0), m.src(1));
/// assert!(written.migrate() && written.pfn().is_some());
/// assert!(untouched.migrate() && untouched.pfn().is_none());
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SrcPfn<'m>(u64, PhantomData<&'m ()>);

impl<'m> SrcPfn<'m> {
    /// The page may be migrated (it was collected and is locked).
    ///
    /// # Examples
    ///
    /// One migration at a time: while a first one holds the page, a second one
    /// over it finds nothing it may move.
    ///
    /// ```
    /// use rust_hmm::migrate::{Migration, PagemapOwner, Select};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// kunit_mm::write_user(addr, b"data")?;
    /// let lock = mm.mmap_read_lock();
    /// let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    /// let owner = PagemapOwner::of(&*mm);
    /// let first = Migration::vma(vma, addr, addr + PAGE, owner, Select::System, false)?;
    /// let second = Migration::vma(vma, addr, addr + PAGE, owner, Select::System, false)?;
    /// assert!(first.src(0).migrate());
    /// assert!(!second.src(0).migrate());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn migrate(self) -> bool {
        self.0 & MIGRATE_PFN_MIGRATE != 0
    }

    /// The PFN of the source page; `None` for an empty or zero-page entry,
    /// whose destination starts out zeroed.
    ///
    /// # Examples
    ///
    /// The PFN names the page holding the process's data, which stays locked and
    /// referenced while the migration lives.
    ///
    /// ```
    /// use rust_hmm::migrate::{Migration, PagemapOwner, Select};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// kunit_mm::write_user(addr, b"data")?;
    /// let lock = mm.mmap_read_lock();
    /// let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    /// let owner = PagemapOwner::of(&*mm);
    /// let m = Migration::vma(vma, addr, addr + PAGE, owner, Select::System, false)?;
    /// let pfn = m.src(0).pfn().ok_or(EFAULT)?;
    /// let mut buf = [0u8; 4];
    /// // SAFETY: `m` holds the page until it is dropped.
    /// assert!(unsafe { kunit_mm::read_pfn(pfn, &mut buf) });
    /// assert_eq!(&buf, b"data");
    /// # Ok::<(), Error>(())
    /// ```
    pub fn pfn(self) -> Option<u64> {
        (self.0 & MIGRATE_PFN_VALID != 0).then_some(self.0 >> MIGRATE_PFN_SHIFT)
    }

    /// The CPU mapping was writable.
    ///
    /// # Examples
    ///
    /// A page the process has written is mapped writable; the shared zero page,
    /// which a read maps, is collected as no page at all, not writable.
    ///
    /// ```
    /// use rust_hmm::migrate::{Migration, PagemapOwner, Select};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// kunit_mm::write_user(addr, b"data")?;
    /// kunit_mm::read_user(addr + PAGE, &mut [0u8; 4])?;
    /// let lock = mm.mmap_read_lock();
    /// let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    /// let owner = PagemapOwner::of(&*mm);
    /// let m = Migration::vma(vma, addr, addr + 2 * PAGE, owner, Select::System, false)?;
    /// assert!(m.src(0).write());
    /// assert!(!m.src(1).write() && m.src(1).pfn().is_none());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn write(self) -> bool {
        self.0 & MIGRATE_PFN_WRITE != 0
    }

    /// The entry heads a PMD-sized folio; the next 511 entries belong to it.
    ///
    /// # Examples
    ///
    /// Over an aligned 2 MiB range nothing maps yet, a compound migration
    /// collects one entry for the whole PMD; without `compound`, each page is an
    /// entry of its own.
    ///
    /// ```
    /// use rust_hmm::migrate::{Migration, PagemapOwner, Select, PMD_ORDER};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// let size = PAGE << PMD_ORDER;
    /// // Twice the size, to hold an aligned block.
    /// let addr = kunit_mm::mmap_anon(2 << PMD_ORDER, true)?.next_multiple_of(size);
    /// let lock = mm.mmap_read_lock();
    /// let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    /// let owner = PagemapOwner::of(&*mm);
    /// let m = Migration::vma(vma, addr, addr + size, owner, Select::System, true)?;
    /// assert!(m.src(0).compound() && m.src(0).migrate());
    /// assert!(!m.src(1).migrate());
    /// drop(m);
    /// let m = Migration::vma(vma, addr, addr + size, owner, Select::System, false)?;
    /// assert!(!m.src(0).compound() && m.src(1).migrate());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn compound(self) -> bool {
        self.0 & MIGRATE_PFN_COMPOUND != 0
    }

    /// Page `j` of the source folio (0 is this page; up to 511 for a
    /// compound source), or `None` past its end or for an empty entry.
    ///
    /// # Examples
    ///
    /// A PMD-sized folio is collected whole, as one compound entry whose pages
    /// follow its head. The folio is first made by migrating a zeroed one into
    /// an empty 2 MiB block.
    ///
    /// ```
    /// use rust_hmm::migrate::{DstFolio, Migration, PagemapOwner, Select, PMD_ORDER};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// let size = PAGE << PMD_ORDER;
    /// let addr = kunit_mm::mmap_anon(2 << PMD_ORDER, true)?.next_multiple_of(size);
    /// let lock = mm.mmap_read_lock();
    /// let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    /// let owner = PagemapOwner::of(&*mm);
    /// let mut m = Migration::vma(vma, addr, addr + size, owner, Select::System, true)?;
    /// let mut folio = DstFolio::alloc_system(Some(vma), addr, PMD_ORDER).ok_or(ENOMEM)?;
    /// folio.zero();
    /// let head = folio.pfn();
    /// m.set_dst(0, folio, true)?;
    /// m.pages();
    /// drop(m);
    ///
    /// let m = Migration::vma(vma, addr, addr + size, owner, Select::System, true)?;
    /// let s = m.src(0);
    /// assert!(s.compound() && s.pfn() == Some(head));
    /// assert_eq!(s.subpage(511).and_then(|p| p.pfn()), Some(head + 511));
    /// assert!(s.subpage(512).is_none());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn subpage(self, j: usize) -> Option<Self> {
        let n = if self.compound() {
            1usize << PMD_ORDER
        } else {
            1
        };
        self.pfn().filter(|_| j < n)?;
        let v = (self.0 & !MIGRATE_PFN_COMPOUND) + ((j as u64) << MIGRATE_PFN_SHIFT);
        Some(Self(v, PhantomData))
    }
}

/// A destination: a locked folio head with one reference, owned.
///
/// A folio of system memory from [`DstFolio::alloc_system`] starts out
/// holding whatever the allocator left in it, and the migration maps it
/// into the process as it is: [`Migration::set_dst`] takes it only once it
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
    filled: bool,
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

    /// Whether [`Migration::set_dst`] takes the folio.
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
/// use rust_hmm::devmem::{DevicePrivatePool, DevmemOps};
/// use rust_hmm::migrate::{DstFolio, Migration, Select};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # struct ZeroDevice;
/// # impl DevmemOps for ZeroDevice {
/// #     type PageData = ();
/// #     fn folio_free(_: &DevicePrivatePool<Self>, _: u64, _: &[()]) {}
/// #     fn copy_to_ram(_: &DevicePrivatePool<Self>, _: &[()], dst: &mut DstFolio) -> Result {
/// #         dst.zero();
/// #         Ok(())
/// #     }
/// # }
/// let pool = KBox::pin_init(DevicePrivatePool::new(ZeroDevice, 2 << 20, 1), GFP_KERNEL)?;
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
///
/// # Examples
///
/// A migration given a destination but dropped before
/// [`Migration::pages`], as on an error path, leaves the page where it was,
/// with its data; the destination is released.
///
/// ```
/// use rust_hmm::migrate::{DstFolio, Migration, PagemapOwner, Select};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(1, true)?;
/// kunit_mm::write_user(addr, b"kept")?;
/// {
///     let lock = mm.mmap_read_lock();
///     let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
///     let owner = PagemapOwner::of(&*mm);
///     let mut m = Migration::vma(vma, addr, addr + PAGE, owner, Select::System, false)?;
///     assert!(m.src(0).migrate() && m.src(0).pfn().is_some());
///
///     let dst = DstFolio::alloc_system(Some(vma), addr, 0).ok_or(ENOMEM)?;
///     // Not filled yet: the migration would map whatever it holds.
///     assert!(!dst.is_filled());
///     let mut dst = dst;
///     dst.zero();
///     m.set_dst(0, dst, true)?;
///     // An error here drops `m` without `pages()`.
/// }
/// let mut buf = [0u8; 4];
/// kunit_mm::read_user(addr, &mut buf)?;
/// assert_eq!(&buf, b"kept");
/// # Ok::<(), Error>(())
/// ```
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
    /// instead of splitting them. A CPU fault on a device page of a
    /// [`crate::devmem`] pool needs none: the pool moves the page itself.
    ///
    /// # Examples
    ///
    /// The range must be page aligned and inside the VMA, whose mmap lock the
    /// migration borrows.
    ///
    /// ```
    /// use rust_hmm::migrate::{Migration, PagemapOwner, Select};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// let lock = mm.mmap_read_lock();
    /// let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    /// let (owner, end) = (PagemapOwner::of(&*mm), vma.end());
    /// let m = Migration::vma(vma, addr + 8, end, owner, Select::System, false);
    /// assert_eq!(m.err(), Some(EINVAL));
    /// let m = Migration::vma(vma, addr, end + PAGE, owner, Select::System, false);
    /// assert_eq!(m.err(), Some(EINVAL));
    /// let m = Migration::vma(vma, addr, end, owner, Select::System, false)?;
    /// assert_eq!(m.npages(), (end - addr) / PAGE);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn vma(
        vma: &'a VmaRef,
        start: usize,
        end: usize,
        owner: PagemapOwner,
        select: Select,
        compound: bool,
    ) -> Result<Self> {
        // SAFETY: No fault page.
        unsafe { Self::vma_in_fault(vma, start, end, owner, select, compound, None) }
    }

    /// [`Self::vma`] from inside a CPU fault on the device page
    /// `fault_page`, which `migrate_vma_setup()` then expects locked by the
    /// caller and leaves locked.
    ///
    /// # Safety
    ///
    /// If `fault_page` is given, it is the page of the fault being handled
    /// by the `migrate_to_ram()` callback that calls this, which holds it
    /// locked and referenced for the whole life of the [`Migration`].
    pub(crate) unsafe fn vma_in_fault(
        vma: &'a VmaRef,
        start: usize,
        end: usize,
        owner: PagemapOwner,
        select: Select,
        compound: bool,
        fault_page: Option<*mut bindings::page>,
    ) -> Result<Self> {
        let page_mask = kernel::page::PAGE_SIZE - 1;
        if start >= end || (start | end) & page_mask != 0 {
            return Err(EINVAL);
        }
        if start < vma.start() || end > vma.end() {
            return Err(EINVAL);
        }
        let npages = (end - start) >> kernel::page::PAGE_SHIFT;
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
            start,
            end,
            pgmap_owner: owner.as_ptr(),
            flags: flags as usize,
            fault_page: fault_page.unwrap_or(core::ptr::null_mut()),
        };
        // SAFETY: `raw` names a range inside `vma`, which the caller keeps
        // mmap-locked for `'a`; the arrays hold one entry per page; a fault
        // page is locked by the fault (the caller's promise).
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
    ///
    /// # Examples
    ///
    /// A page of a pool moved back to system memory by its device PFN, without
    /// knowing where it is mapped, as eviction does
    /// ([`DevicePrivatePool::evict`] does this for a driver).
    ///
    /// [`DevicePrivatePool::evict`]: crate::devmem::DevicePrivatePool::evict
    ///
    /// ```
    /// use rust_hmm::devmem::{DevicePrivatePool, DevmemOps};
    /// use rust_hmm::migrate::{DstFolio, Migration, Select};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # struct ZeroDevice;
    /// # impl DevmemOps for ZeroDevice {
    /// #     type PageData = ();
    /// #     fn folio_free(_: &DevicePrivatePool<Self>, _: u64, _: &[()]) {}
    /// #     fn copy_to_ram(_: &DevicePrivatePool<Self>, _: &[()], dst: &mut DstFolio) -> Result {
    /// #         dst.zero();
    /// #         Ok(())
    /// #     }
    /// # }
    /// let pool = KBox::pin_init(DevicePrivatePool::new(ZeroDevice, 2 << 20, 1), GFP_KERNEL)?;
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// let device_pfn = {
    ///     let lock = mm.mmap_read_lock();
    ///     let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    ///     let (end, owner) = (addr + PAGE, pool.owner());
    ///     let mut m = Migration::vma(vma, addr, end, owner, Select::System, false)?;
    ///     pool.migrate_to_device(&mut m, |_| true, |_, _, _| Ok(()));
    ///     m.dst_pfn(0).ok_or(EFAULT)?
    /// };
    /// let mut pfns = KVec::new();
    /// pfns.push(device_pfn, GFP_KERNEL)?;
    /// // SAFETY: `device_pfn` is a page of `pool`, whose `dev_pagemap` is ours.
    /// let mut m = unsafe { Migration::device_pfns(pfns)? };
    /// assert_eq!(m.src(0).pfn(), Some(device_pfn));
    /// assert_eq!(pool.migrate_to_ram(&mut m, None, DstFolio::alloc_system)?, 1);
    /// drop(m);
    /// assert_eq!(pool.stats().in_use, 0);
    /// # Ok::<(), Error>(())
    /// ```
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
    ///
    /// # Examples
    ///
    /// One entry per page, each collected here (untouched memory).
    ///
    /// ```
    /// use rust_hmm::migrate::{Migration, PagemapOwner, Select};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(3, true)?;
    /// let lock = mm.mmap_read_lock();
    /// let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    /// let owner = PagemapOwner::of(&*mm);
    /// let m = Migration::vma(vma, addr, addr + 3 * PAGE, owner, Select::System, false)?;
    /// assert_eq!(m.npages(), 3);
    /// assert!((0..m.npages()).all(|i| m.src(i).migrate()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn npages(&self) -> usize {
        self.src.len()
    }

    /// Start address of the range (0 for a device migration).
    ///
    /// # Examples
    ///
    /// Entry `i` is the page at `start() + i` pages: here only the second page
    /// of the range was written.
    ///
    /// ```
    /// use rust_hmm::migrate::{Migration, PagemapOwner, Select};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(3, true)?;
    /// kunit_mm::write_user(addr + 2 * PAGE, b"data")?;
    /// let lock = mm.mmap_read_lock();
    /// let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    /// let owner = PagemapOwner::of(&*mm);
    /// let m = Migration::vma(vma, addr + PAGE, addr + 3 * PAGE, owner, Select::System, false)?;
    /// assert_eq!(m.start(), addr + PAGE);
    /// let written = (0..m.npages()).find(|&i| m.src(i).pfn().is_some());
    /// assert_eq!(written.map(|i| m.start() + i * PAGE), Some(addr + 2 * PAGE));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn start(&self) -> usize {
        self.raw.start
    }

    /// Entry `i` as collected.
    ///
    /// # Examples
    ///
    /// Two written pages are two different pages, each collected writable.
    ///
    /// ```
    /// use rust_hmm::migrate::{Migration, PagemapOwner, Select};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// kunit_mm::write_user(addr, b"one")?;
    /// kunit_mm::write_user(addr + PAGE, b"two")?;
    /// let lock = mm.mmap_read_lock();
    /// let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    /// let owner = PagemapOwner::of(&*mm);
    /// let m = Migration::vma(vma, addr, addr + 2 * PAGE, owner, Select::System, false)?;
    /// let (a, b) = (m.src(0), m.src(1));
    /// assert!(a.write() && b.write());
    /// assert!(a.pfn().is_some() && a.pfn() != b.pfn());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn src(&self, i: usize) -> SrcPfn<'_> {
        SrcPfn(self.src[i], PhantomData)
    }

    /// Gives entry `i` (the head, for a compound source) the destination
    /// `folio`, mapped writable if `write`. A folio of a different size
    /// than the source makes the core split the source (system memory) or
    /// skip the page (device memory). `EINVAL` if the folio is not filled,
    /// the entry is not to be migrated or already has a destination, or
    /// the folio would overflow the range.
    ///
    /// # Examples
    ///
    /// One filled destination per entry, inside the range.
    ///
    /// ```
    /// use rust_hmm::migrate::{DstFolio, Migration, PagemapOwner, Select};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// let lock = mm.mmap_read_lock();
    /// let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    /// let owner = PagemapOwner::of(&*mm);
    /// let mut m = Migration::vma(vma, addr, addr + PAGE, owner, Select::System, false)?;
    /// let zeroed = || -> Result<DstFolio> {
    ///     let mut folio = DstFolio::alloc_system(Some(vma), addr, 0).ok_or(ENOMEM)?;
    ///     folio.zero();
    ///     Ok(folio)
    /// };
    /// m.set_dst(0, zeroed()?, true)?;
    /// assert_eq!(m.set_dst(0, zeroed()?, true), Err(EINVAL));
    /// assert_eq!(m.set_dst(1, zeroed()?, true), Err(EINVAL));
    /// m.pages();
    /// assert!(m.migrated(0));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn set_dst(&mut self, i: usize, folio: DstFolio, write: bool) -> Result {
        if !folio.filled || self.pages_done || i >= self.npages() || self.dst[i] != 0 {
            return Err(EINVAL);
        }
        let split_tail = || folio.order() == 0 && self.in_compound(i);
        if !self.src(i).migrate() && !split_tail() {
            return Err(EINVAL);
        }
        if i + (1usize << folio.order()) > self.npages() {
            return Err(EINVAL);
        }
        let mut v = (folio.pfn() << MIGRATE_PFN_SHIFT) | MIGRATE_PFN_VALID;
        if write {
            v |= MIGRATE_PFN_WRITE;
        }
        if folio.order() > 0 {
            v |= MIGRATE_PFN_COMPOUND;
        }
        self.dst[i] = v;
        // The migration core now owns the reference and the lock.
        core::mem::forget(folio);
        Ok(())
    }

    /// Whether entry `i` lies inside a compound source being migrated, whose
    /// pages may each get a small destination.
    fn in_compound(&self, i: usize) -> bool {
        let span = 1usize << PMD_ORDER;
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
    ///
    /// # Examples
    ///
    /// Only `pages()` moves anything: the process then finds the destination's
    /// contents (zeros here) where its data was.
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
    ///     let mut dst = DstFolio::alloc_system(Some(vma), addr, 0).ok_or(ENOMEM)?;
    ///     dst.zero();
    ///     m.set_dst(0, dst, true)?;
    ///     assert!(!m.migrated(0));
    ///     m.pages();
    ///     assert!(m.migrated(0));
    /// }
    /// let mut buf = [1u8; 4];
    /// kunit_mm::read_user(addr, &mut buf)?;
    /// assert_eq!(buf, [0; 4]);
    /// # Ok::<(), Error>(())
    /// ```
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
    ///
    /// # Examples
    ///
    /// A page given no destination stays where it was, with its data.
    ///
    /// ```
    /// use rust_hmm::migrate::{DstFolio, Migration, PagemapOwner, Select};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// kunit_mm::write_user(addr + PAGE, b"kept")?;
    /// {
    ///     let lock = mm.mmap_read_lock();
    ///     let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    ///     let owner = PagemapOwner::of(&*mm);
    ///     let mut m = Migration::vma(vma, addr, addr + 2 * PAGE, owner, Select::System, false)?;
    ///     let mut dst = DstFolio::alloc_system(Some(vma), addr, 0).ok_or(ENOMEM)?;
    ///     dst.zero();
    ///     m.set_dst(0, dst, true)?;
    ///     m.pages();
    ///     assert!(m.migrated(0) && !m.migrated(1));
    /// }
    /// let mut buf = [0u8; 4];
    /// kunit_mm::read_user(addr + PAGE, &mut buf)?;
    /// assert_eq!(&buf, b"kept");
    /// # Ok::<(), Error>(())
    /// ```
    pub fn migrated(&self, i: usize) -> bool {
        self.pages_done && self.src(i).migrate() && self.dst[i] != 0
    }

    /// The PFN of the destination entry `i` was given, if any.
    ///
    /// # Examples
    ///
    /// The destination's PFN, from [`Migration::set_dst`] on; none for an
    /// entry without one, or outside the range.
    ///
    /// ```
    /// use rust_hmm::migrate::{DstFolio, Migration, PagemapOwner, Select};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// let lock = mm.mmap_read_lock();
    /// let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    /// let owner = PagemapOwner::of(&*mm);
    /// let mut m = Migration::vma(vma, addr, addr + PAGE, owner, Select::System, false)?;
    /// assert_eq!(m.dst_pfn(0), None);
    /// let mut dst = DstFolio::alloc_system(Some(vma), addr, 0).ok_or(ENOMEM)?;
    /// dst.zero();
    /// let pfn = dst.pfn();
    /// m.set_dst(0, dst, true)?;
    /// assert_eq!(m.dst_pfn(0), Some(pfn));
    /// assert_eq!(m.dst_pfn(1), None);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn dst_pfn(&self, i: usize) -> Option<u64> {
        let d = *self.dst.get(i)?;
        (d & MIGRATE_PFN_VALID != 0).then_some(d >> MIGRATE_PFN_SHIFT)
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
                if *d & MIGRATE_PFN_VALID != 0 {
                    let order = if *d & MIGRATE_PFN_COMPOUND != 0 {
                        PMD_ORDER
                    } else {
                        0
                    };
                    // SAFETY: `set_dst` stored the PFN of a locked folio
                    // head of that order and gave up its reference, which
                    // nothing has taken over since `pages()` never ran.
                    let page = unsafe { ffi::pfn_to_page((*d >> MIGRATE_PFN_SHIFT) as usize) };
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
