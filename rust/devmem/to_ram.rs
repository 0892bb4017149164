// SPDX-License-Identifier: GPL-2.0

//! Migrations out of a [`DevicePool`] back to system memory: the
//! CPU fault (`migrate_to_ram`), eviction, and the last eviction before
//! the memory is unregistered. The driver only copies
//! ([`DevmemOps::copy_to_ram`]); choosing and allocating destinations and
//! running the migration is the pool's, so that no driver can leave a page
//! behind.

use super::{
    DeviceFault,
    DevicePool,
    DevmemOps,
    PageState,
    PMD_PAGES, //
};
use crate::migrate::{
    DstFolio,
    Migration,
    MAX_PAGES,
    PMD_ORDER, //
};
use kernel::{
    bindings,
    mm::virt::VmaRef,
    page::PAGE_SIZE,
    prelude::*, //
};

/// Attempts of the last eviction before it stops waiting for busy pages.
const EVICT_ALL_TRIES: u32 = 1000;

impl<T: DevmemOps> DevicePool<T> {
    /// The `migrate_to_ram` callback: moves the faulting page (or, for a
    /// fault through a PMD, its whole folio) back to system memory. A page
    /// the core collected but would not move (another migration held a
    /// reference for a moment) stays, and the CPU faults on it again.
    pub(super) fn fault_to_ram(&self, fault: &DeviceFault<'_>) -> bindings::vm_fault_t {
        // A folio mapped through PTEs may be mapped only in part: move the
        // faulting page alone.
        let order = if fault.through_pte() {
            0
        } else {
            fault.folio_order()
        };
        let size = PAGE_SIZE << order;
        let start = fault.address() & !(size - 1);
        let vma = fault.vma();
        let Ok(mut m) = fault.migration(self.owner(), start, start + size, order > 0) else {
            return bindings::vm_fault_reason_VM_FAULT_SIGBUS;
        };
        let alloc = |vma: Option<&VmaRef>, addr, order| DstFolio::alloc_system(vma, addr, order);
        if self.migrate_to_ram(&mut m, Some(vma), alloc).is_err() {
            // Dropped before `pages()`: every page stays where it was.
            return bindings::vm_fault_reason_VM_FAULT_OOM;
        }
        0
    }

    /// Gives every collected source of `m` that is a page of this pool a
    /// system destination filled by [`DevmemOps::copy_to_ram`], and runs
    /// the migration; returns how many pages moved. A destination is a
    /// folio of the source's size from `alloc(vma, addr, order)`, or, for a
    /// PMD source migrated by address (`vma` given), 512 small pages when
    /// that allocation fails (the core then splits the source). `ENOMEM` if
    /// a page got no memory, and nothing has moved: a [`Migration`] dropped
    /// without `pages()` restores every page.
    ///
    /// # Examples
    ///
    /// Two pages of a pool brought back by address, before the CPU needs them.
    /// With no memory for a page nothing moves (`ENOMEM`); then each gets a
    /// page of its own.
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
    /// # let addr = kunit_mm::mmap_anon(2, true)?;
    /// let (end, owner) = (addr + 2 * PAGE, pool.owner());
    /// let lock = mm.mmap_read_lock();
    /// let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    /// let mut m = Migration::vma(vma, addr, end, owner, Select::System, false)?;
    /// assert_eq!(pool.migrate_to_device(&mut m, |_| true, |_, _, _| Ok(())), 2);
    /// drop(m);
    ///
    /// let mut m = Migration::vma(vma, addr, end, owner, Select::DevicePrivate, false)?;
    /// assert!(pool.owns(m.src(0)) && pool.owns(m.src(1)));
    /// let none = pool.migrate_to_ram(&mut m, Some(vma), |_, _, _| None);
    /// assert_eq!(none.err(), Some(ENOMEM));
    /// drop(m);
    /// assert_eq!(pool.stats().in_use, 2);
    ///
    /// let mut m = Migration::vma(vma, addr, end, owner, Select::DevicePrivate, false)?;
    /// assert_eq!(pool.migrate_to_ram(&mut m, Some(vma), DstFolio::alloc_system)?, 2);
    /// drop(m);
    /// assert_eq!(pool.stats().in_use, 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn migrate_to_ram(
        &self,
        m: &mut Migration<'_>,
        vma: Option<&VmaRef>,
        mut alloc: impl FnMut(Option<&VmaRef>, usize, u32) -> Option<DstFolio>,
    ) -> Result<u64> {
        let mut i = 0;
        while i < m.npages() {
            let s = m.src(i);
            let (order, write) = (if s.compound() { PMD_ORDER } else { 0 }, s.write());
            let nr = 1usize << order;
            // One lookup: it also tells the page is ours.
            let data = s
                .pfn()
                .filter(|_| s.migrate())
                .and_then(|pfn| Some((pfn, self.pages_data(pfn, nr)?)));
            let Some((pfn, data)) = data else {
                i += 1;
                continue;
            };
            let addr = m.start() + i * PAGE_SIZE;
            match alloc(vma, addr, order) {
                Some(mut f) => {
                    T::copy_to_ram(self, pfn, data, &mut f)?;
                    m.set_dst(i, f, write)?;
                }
                // The core splits a device folio for small destinations,
                // but only when it migrates by address.
                None if order > 0 && vma.is_some() => {
                    for (j, d) in data.chunks(1).enumerate() {
                        let page_addr = addr + j * PAGE_SIZE;
                        let mut f = alloc(vma, page_addr, 0).ok_or(ENOMEM)?;
                        T::copy_to_ram(self, pfn + j as u64, d, &mut f)?;
                        m.set_dst(i + j, f, write)?;
                    }
                }
                None => return Err(ENOMEM),
            }
            i += nr;
        }
        Ok(self.commit(m, false))
    }

    /// Moves the pages holding data whose data `select` accepts back to
    /// system memory, wherever they are mapped (`migrate_device_pfns()`).
    /// A page whose data is moving out already, or a destination still
    /// being migrated into, is not one of them. Returns
    /// how many selected pages are still in device memory afterwards:
    /// busy for a moment (a fault holds them), or left by the driver's copy.
    ///
    /// The core wants every page of a large folio listed, in order, so
    /// pages are collected a whole PMD block at a time, every block with a
    /// selected page in it; the unselected pages of those blocks are given
    /// no destination and stay.
    ///
    /// # Examples
    ///
    /// A device that remembers which client moved each page in gives one
    /// client's pages back, then the rest.
    ///
    /// ```
    /// use core::sync::atomic::{AtomicU32, Ordering};
    /// use rust_hmm::devmem::{DevicePool, DevmemOps, Private};
    /// use rust_hmm::migrate::{DstFolio, Migration, Select};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    ///
    /// struct Device;
    ///
    /// impl DevmemOps for Device {
    ///     /// The client that moved the page in; its data is all zeros.
    ///     type PageData = AtomicU32;
    ///     type Memory = Private;
    ///
    ///     fn folio_free(_pool: &DevicePool<Self>, _pfn: u64, _data: &[AtomicU32]) {}
    ///
    ///     fn copy_to_ram(
    ///         _: &DevicePool<Self>,
    ///         _pfn: u64,
    ///         _: &[AtomicU32],
    ///         dst: &mut DstFolio,
    ///     ) -> Result {
    ///         dst.zero();
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let pool = KBox::pin_init(DevicePool::new(Device, 2 << 20, 1), GFP_KERNEL)?;
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(3, true)?;
    /// // Untouched pages `addr` (client 1) and the next two (client 2).
    /// for (start, n, client) in [(addr, 1, 1), (addr + PAGE, 2, 2)] {
    ///     let lock = mm.mmap_read_lock();
    ///     let vma = lock.vma_lookup(start).ok_or(EFAULT)?;
    ///     let end = start + n * PAGE;
    ///     let mut m = Migration::vma(vma, start, end, pool.owner(), Select::System, false)?;
    ///     pool.migrate_to_device(&mut m, |_| true, |dst, _src, _first| {
    ///         let page = dst.subpage(0).ok_or(EINVAL)?;
    ///         pool.page_data(page).ok_or(EINVAL)?.store(client, Ordering::Relaxed);
    ///         Ok(())
    ///     });
    /// }
    /// assert_eq!(pool.stats().in_use, 3);
    ///
    /// assert_eq!(pool.evict(|c| c.load(Ordering::Relaxed) == 2)?, 0);
    /// assert_eq!(pool.stats().in_use, 1);
    /// assert_eq!(pool.evict(|_| true)?, 0);
    /// assert_eq!(pool.stats().in_use, 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn evict(&self, select: impl Fn(&T::PageData) -> bool) -> Result<u64> {
        self.evict_with(&select, |pfn, data, f| T::copy_to_ram(self, pfn, data, f))
    }

    fn evict_with(
        &self,
        select: &dyn Fn(&T::PageData) -> bool,
        copy: impl Fn(u64, &[T::PageData], &mut DstFolio) -> Result,
    ) -> Result<u64> {
        if self.stats().in_use == 0 {
            return Ok(0);
        }
        // The blocks to visit, found under the chunks' mutex (growth only
        // appends), migrated without it.
        let mut blocks = KVec::new();
        {
            let chunks = self.chunks.lock();
            for c in chunks.iter() {
                let end = c.first_pfn + c.npages;
                let mut b = c.first_pfn;
                while b < end {
                    let next = end.min((b / PMD_PAGES + 1) * PMD_PAGES);
                    let first = (b - c.first_pfn) as usize;
                    let last = (next - c.first_pfn) as usize;
                    let resident = |i| c.state(i) == PageState::Resident;
                    if (first..last).any(|i| resident(i) && select(&c.data[i])) {
                        blocks.push((b, next), GFP_KERNEL)?;
                    }
                    b = next;
                }
            }
        }
        const _: () = assert!(PMD_PAGES as usize <= MAX_PAGES);
        for &(b, next) in blocks.iter() {
            let mut pfns = KVec::with_capacity((next - b) as usize, GFP_KERNEL)?;
            for pfn in b..next {
                pfns.push(pfn, GFP_KERNEL)?;
            }
            // SAFETY: Every PFN is a page of one of our chunks, and the list
            // is a whole aligned block (or a chunk's edge), so a large folio
            // in it is listed whole and in order.
            let mut m = unsafe { Migration::device_pfns(pfns)? };
            let mut i = 0;
            while i < m.npages() {
                let s = m.src(i);
                let (order, write) = (if s.compound() { PMD_ORDER } else { 0 }, s.write());
                let nr = 1usize << order;
                // Decided now that `m` holds the page locked: see
                // `PageState::Held` for the pages this leaves alone.
                let data = s
                    .pfn()
                    .filter(|_| s.migrate())
                    .and_then(|pfn| Some((pfn, self.resident_data(pfn, nr)?)))
                    .filter(|(_, d)| d.first().is_some_and(select));
                if let Some((pfn, data)) = data {
                    // Best effort: a page left without a destination stays.
                    if let Some(mut f) = DstFolio::alloc_system(None, 0, order) {
                        if copy(pfn, data, &mut f).is_ok() {
                            let _ = m.set_dst(i, f, write);
                        }
                    }
                }
                i += nr;
            }
            self.commit(&mut m, false);
        }
        let mut left = 0;
        let chunks = self.chunks.lock();
        for c in chunks.iter() {
            left += (0..c.npages as usize)
                .filter(|&i| c.state(i) == PageState::Resident && select(&c.data[i]))
                .count() as u64;
        }
        Ok(left)
    }

    /// Moves every page in use back to system memory, before the memory is
    /// unregistered (which waits until every page is free). A page can be
    /// busy for a moment (a concurrent fault holds it): try again. If the
    /// driver's copy keeps failing, the pages go back zeroed, with a
    /// warning: their data is lost, but the unload does not hang.
    pub(super) fn evict_all(&self) {
        for _ in 0..EVICT_ALL_TRIES {
            match self.evict(|_| true) {
                Ok(0) => return,
                _ => kernel::time::delay::fsleep(kernel::time::Delta::from_millis(1)),
            }
        }
        kernel::warn_on!(true);
        pr_warn!("rust_hmm: device pages the driver would not copy back go back zeroed\n");
        while !matches!(
            self.evict_with(&|_| true, |_, _, f| {
                f.zero();
                Ok(())
            }),
            Ok(0)
        ) {
            kernel::time::delay::fsleep(kernel::time::Delta::from_millis(1));
        }
    }
}
