// SPDX-License-Identifier: GPL-2.0

//! [`Migration`]: one round of `migrate_*_setup()`, `pages()` and
//! `finalize()`.

use super::{
    DstFolio,
    PagemapOwner,
    Select,
    SrcPfn,
    MAX_PAGES,
    MIGRATE_PFN_COMPOUND,
    MIGRATE_PFN_SHIFT,
    MIGRATE_PFN_VALID,
    MIGRATE_PFN_WRITE,
    PMD_ORDER, //
};
use crate::ffi;
use core::marker::PhantomData;
use kernel::{
    bindings,
    mm::virt::VmaRef,
    prelude::*, //
};

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
            Select::DeviceCoherent => ffi::MIGRATE_VMA_SELECT_DEVICE_COHERENT,
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
    /// ([`DevicePool::evict`] does this for a driver).
    ///
    /// [`DevicePool::evict`]: crate::devmem::DevicePool::evict
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
    /// #     fn copy_to_ram(_: &DevicePool<Self>, _: u64, _: &[()], dst: &mut DstFolio) -> Result {
    /// #         dst.zero();
    /// #         Ok(())
    /// #     }
    /// # }
    /// let pool = KBox::pin_init(DevicePool::new(ZeroDevice, 2 << 20, 1), GFP_KERNEL)?;
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
