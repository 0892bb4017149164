// SPDX-License-Identifier: GPL-2.0

//! The source side of a migration: the pages the core collected.

use super::{
    MIGRATE_PFN_COMPOUND,
    MIGRATE_PFN_MIGRATE,
    MIGRATE_PFN_SHIFT,
    MIGRATE_PFN_VALID,
    MIGRATE_PFN_WRITE,
    PMD_ORDER, //
};
use core::marker::PhantomData;

/// One source entry, as the core reported it (`MIGRATE_PFN_*`), valid
/// while the [`Migration`](super::Migration) it came from lives: until then the page it
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
pub struct SrcPfn<'m>(pub(super) u64, pub(super) PhantomData<&'m ()>);

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
