// SPDX-License-Identifier: GPL-2.0

//! Migrations into a [`DevicePool`], and the record of which of its
//! pages hold data. The pool allocates each destination and commits the
//! migration; the driver only fills the destinations. Because every
//! migration into or out of the pool commits here, the pool knows which
//! pages hold a process's data ([`PageState::Resident`]), and eviction
//! moves only those: never a page whose data has just moved out but which
//! its migration has not released yet, nor a destination whose migration
//! failed. Moved again, such a page would put stale data, and no memory
//! cgroup charge, into a second folio.

use super::{
    DevicePool,
    DevmemOps,
    MemoryType,
    PageState,
    PMD_PAGES, //
};
use crate::migrate::{
    DstFolio,
    Migration,
    SrcPfn,
    PMD_ORDER, //
};
use kernel::prelude::*;

impl<T: DevmemOps> DevicePool<T> {
    /// Moves the collected system pages of `m` into this pool and runs the
    /// migration; returns how many pages moved.
    ///
    /// A PMD-sized source gets a device folio (device-private memory only),
    /// or small pages when that is refused or fails; a page that gets no
    /// memory stays in system memory. `may_alloc(order)` is asked before
    /// each allocation (a driver's limit, or an injected failure), for a
    /// PMD-sized source first with [`PMD_ORDER`] even where the memory
    /// has no large folios, as a driver that tried one would.
    ///
    /// `fill(dst, src, first)` gives each page of `dst` the data of the
    /// pages of `src` from page `first` on (zeros where the source has
    /// none); an error leaves that source where it is. Device-coherent
    /// destinations come unfilled, as the CPU will map them as they are:
    /// `fill` must fill them ([`DstFolio::zero`], or
    /// [`DstFolio::assume_filled`] after a copy).
    ///
    /// # Examples
    ///
    /// A device with room for three pages, which can only take pages with
    /// nothing to copy (it keeps none of their data): of four pages, the two
    /// untouched ones at the start move in, the written one stays (`fill`
    /// fails), and the last gets no room.
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
    /// # let addr = kunit_mm::mmap_anon(4, true)?;
    /// kunit_mm::write_user(addr + 2 * PAGE, b"data")?;
    /// let lock = mm.mmap_read_lock();
    /// let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    /// let (end, owner) = (addr + 4 * PAGE, pool.owner());
    /// let mut m = Migration::vma(vma, addr, end, owner, Select::System, false)?;
    /// let mut room = 3;
    /// let moved = pool.migrate_to_device(
    ///     &mut m,
    ///     |_order| {
    ///         room -= 1;
    ///         room >= 0
    ///     },
    ///     |_dst, src, _first| src.pfn().map_or(Ok(()), |_| Err(EINVAL)),
    /// );
    /// assert_eq!(moved, 2);
    /// assert!(m.migrated(0) && m.migrated(1) && !m.migrated(2) && !m.migrated(3));
    /// assert_eq!(pool.stats().in_use, 2);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn migrate_to_device(
        &self,
        m: &mut Migration<'_>,
        mut may_alloc: impl FnMut(u32) -> bool,
        mut fill: impl FnMut(&mut DstFolio, SrcPfn<'_>, usize) -> Result,
    ) -> u64 {
        let mut i = 0;
        while i < m.npages() {
            let s = m.src(i);
            if !s.migrate() {
                i += 1;
                continue;
            }
            let (compound, write) = (s.compound(), s.write());
            let nr = if compound { PMD_PAGES as usize } else { 1 };
            // Asked for every PMD-sized source, so that an injected failure
            // meets the large allocation whatever the memory: without large
            // folios it is refused in any case.
            let large = if compound && may_alloc(PMD_ORDER) && T::Memory::LARGE {
                self.alloc(PMD_ORDER).ok()
            } else {
                None
            };
            // `m.src(i)` is taken again for each fill: a source borrows the
            // migration, which `set_dst()` changes.
            if let Some(mut f) = large {
                if fill(&mut f, m.src(i), 0).is_ok() {
                    let _ = m.set_dst(i, f, write);
                }
            } else {
                for j in 0..nr {
                    if !may_alloc(0) {
                        break;
                    }
                    let Ok(mut f) = self.alloc(0) else { break };
                    if fill(&mut f, m.src(i), j).is_ok() {
                        let _ = m.set_dst(i + j, f, write);
                    }
                }
            }
            i += nr;
        }
        self.commit(m, true)
    }

    /// Runs the migration (`migrate_*_pages()`) and records what moved:
    /// into the pool (`into`), its destinations now hold data; out of it,
    /// its sources no longer do. Returns how many pages moved.
    ///
    /// Both are still locked by `m` until it is finalized, and eviction
    /// reads a page's state only with the page locked, so it sees the state
    /// from before the migration or from after it, never between.
    pub(super) fn commit(&self, m: &mut Migration<'_>, into: bool) -> u64 {
        m.pages();
        let mut moved = 0;
        let mut i = 0;
        while i < m.npages() {
            let s = m.src(i);
            // After `pages()` a split source is listed page by page.
            let nr = if s.compound() { PMD_PAGES as usize } else { 1 };
            if m.migrated(i) {
                let (page, state) = if into {
                    (m.dst_pfn(i), PageState::Resident)
                } else {
                    (s.pfn(), PageState::Held)
                };
                if let Some(pfn) = page {
                    self.set_state(pfn, nr, state);
                }
                moved += nr as u64;
            }
            i += nr;
        }
        moved
    }

    /// Sets the state of the `n` pages from `pfn` on, if they are pages of
    /// this pool.
    fn set_state(&self, pfn: u64, n: usize, state: PageState) {
        if let Some(chunk) = self.chunk_of(pfn) {
            chunk.set_state(pfn, n, state);
        }
    }

    /// The data of the `n` pages from `pfn` on, if they are pages of this
    /// pool (in one chunk) and the first holds data: one chunk lookup for
    /// both.
    pub(super) fn resident_data(&self, pfn: u64, n: usize) -> Option<&[T::PageData]> {
        let chunk = self.chunk_of(pfn)?;
        let first = (pfn - chunk.first_pfn) as usize;
        (chunk.state(first) == PageState::Resident)
            .then(|| chunk.data.get(first..first.checked_add(n)?))
            .flatten()
    }
}
