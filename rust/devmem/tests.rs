// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the pool: its free lists, and a real `memremap_pages()`
//! pool handing out and taking back folios.

use kernel::prelude::*;

#[kunit_tests(rust_hmm_devmem)]
mod suite {
    use crate::devmem::allocator::FreeLists;
    use crate::devmem::*;
    use crate::migrate::DstFolio;
    use core::sync::atomic::AtomicU64;
    use kernel::alloc::VVec;

    /// Counts the pages `folio_free` saw.
    #[derive(Default)]
    struct Freed(AtomicU64);

    /// Test ops over memory of kind `M` (`Private` or `Coherent`).
    struct TestOps<M>(core::marker::PhantomData<M>);

    impl<M: MemoryType> DevmemOps for TestOps<M> {
        type PageData = Freed;
        type Memory = M;

        fn folio_free(_pool: &DevicePool<Self>, _pfn: u64, data: &[Freed]) {
            if let Some(d) = data.first() {
                d.0.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }

        fn copy_to_ram(
            _pool: &DevicePool<Self>,
            _pfn: u64,
            _data: &[Freed],
            dst: &mut DstFolio,
        ) -> Result {
            dst.zero();
            Ok(())
        }
    }

    /// The test ops of a private pool, and of a coherent one.
    const PRIVATE: TestOps<Private> = TestOps(core::marker::PhantomData);
    const COHERENT: TestOps<Coherent> = TestOps(core::marker::PhantomData);

    #[test]
    fn coalesce_rebuilds_whole_blocks() -> Result {
        let mut f = FreeLists {
            small: VVec::with_capacity(3 * PMD_PAGES as usize, GFP_KERNEL)?,
            large: VVec::with_capacity(3, GFP_KERNEL)?,
        };
        // Two whole blocks, interleaved and reversed, plus a partial one.
        for i in (0..PMD_PAGES).rev() {
            f.small.push(4 * PMD_PAGES + i, GFP_KERNEL)?;
            f.small.push(PMD_PAGES + i, GFP_KERNEL)?;
        }
        for i in 0..10 {
            f.small.push(2 * PMD_PAGES + i, GFP_KERNEL)?;
        }
        f.coalesce();
        crate::sort::heapsort(&mut f.large);
        assert_eq!(&f.large[..], &[PMD_PAGES, 4 * PMD_PAGES]);
        assert_eq!(f.small.len(), 10);
        assert!(f
            .small
            .iter()
            .all(|p| (2 * PMD_PAGES..2 * PMD_PAGES + 10).contains(p)));
        Ok(())
    }

    #[test]
    fn alloc_free_split_and_merge() -> Result {
        // One chunk of two PMD blocks (if the region is aligned; at least one).
        let pool = KBox::pin_init(
            DevicePool::new(PRIVATE, (2 * PMD_PAGES) << kernel::page::PAGE_SHIFT, 1),
            GFP_KERNEL,
        )?;
        let big = pool.alloc(PMD_ORDER)?;
        let head = big.pfn();
        assert_eq!(head % PMD_PAGES, 0);
        assert_eq!(pool.stats().in_use, PMD_PAGES);
        let last = big.subpage(PMD_PAGES as usize - 1).ok_or(EINVAL)?;
        assert!(pool.owns(big.subpage(0).ok_or(EINVAL)?) && pool.owns(last));
        drop(big);
        assert_eq!(pool.stats().in_use, 0);
        let freed = |p: u64| {
            pool.pages_data(p, 1)
                .map_or(0, |d| d[0].0.load(Ordering::Relaxed))
        };
        assert_eq!(freed(head), PMD_PAGES);

        // Small pages break blocks up; with the only chunk used up in small
        // pages, a PMD request fails rather than registering another.
        let total = pool.stats().pages as usize;
        let mut small = KVec::new();
        for _ in 0..total {
            small.push(pool.alloc(0)?, GFP_KERNEL)?;
        }
        assert!(pool.alloc(0).is_err());
        assert!(pool.alloc(PMD_ORDER).is_err());
        // Freed again, the small pages merge back into a whole block.
        drop(small);
        assert_eq!(pool.stats().in_use, 0);
        let again = pool.alloc(PMD_ORDER)?;
        assert_eq!(again.pfn() % PMD_PAGES, 0);
        Ok(())
    }

    /// A coherent pool over the first 4 MiB of soft-reserved memory, in
    /// two chunks: single pages only, handed out unfilled, registered one
    /// chunk at a time, claimed against a second pool, `ENOMEM` when all
    /// are in use; the CPU uses its pages in place, and eviction and a
    /// migration by address move them back.
    #[test]
    fn coherent_pool() -> Result {
        use crate::kunit_mm;
        use crate::migrate::{
            Migration,
            Select, //
        };
        let Some(found) = SoftReserved::find()?
            .into_iter()
            .find(|r| r.size() >= 4 << 20)
        else {
            pr_info!("no soft-reserved memory: coherent_pool not run\n");
            return Ok(());
        };
        let range = SoftReserved::new(found.start(), 4 << 20)?;
        assert_eq!(
            SoftReserved::new(found.start() + 4096, 2 << 20).err(),
            Some(EINVAL)
        );
        assert_eq!(SoftReserved::new(found.start(), 0).err(), Some(EINVAL));
        assert_eq!(
            SoftReserved::new(u64::MAX - (2 << 20) + 1, 4 << 20).err(),
            Some(EINVAL)
        );
        assert_eq!(range.split_at(4 << 20).err(), Some(EINVAL));
        let pool = KBox::pin_init(
            DevicePool::new_coherent(COHERENT, range, 2 << 20)?,
            GFP_KERNEL,
        )?;
        let per_chunk = (2 << 20) >> kernel::page::PAGE_SHIFT;
        assert_eq!(pool.stats().max_pages, 2 * per_chunk);
        assert_eq!(pool.alloc(PMD_ORDER).err(), Some(EINVAL));
        let first = pool.alloc(0)?;
        assert!(!first.is_filled());
        assert!(pool.owns(first.subpage(0).ok_or(EINVAL)?));
        assert_eq!(pool.stats().pages, per_chunk);
        // Another pool cannot register the same memory.
        let other = KBox::pin_init(
            DevicePool::new_coherent(COHERENT, range, 2 << 20)?,
            GFP_KERNEL,
        )?;
        assert_eq!(other.alloc(0).err(), Some(EBUSY));
        drop(first);
        let mut all = KVec::new();
        for _ in 0..2 * per_chunk {
            all.push(pool.alloc(0)?, GFP_KERNEL)?;
        }
        assert_eq!(pool.stats().pages, 2 * per_chunk);
        assert_eq!(pool.alloc(0).err(), Some(ENOMEM));
        drop(all);
        assert_eq!(pool.stats().in_use, 0);

        // Two pages of a process move in; the CPU uses them in place.
        let mm = kunit_mm::attach()?;
        let addr = kunit_mm::mmap_anon(2, true)?;
        assert_eq!(kunit_mm::move_to(&mm, &pool, addr, 2, |_| Ok(()))?, 2);
        kunit_mm::write_user(addr, b"cpu")?;
        let mut word = [0u8; 3];
        kunit_mm::read_user(addr, &mut word)?;
        assert_eq!(&word, b"cpu");
        assert_eq!(pool.stats().in_use, 2);
        // By address: the CPU's write moves with the page.
        {
            let lock = mm.mmap_read_lock();
            let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
            let end = addr + kernel::page::PAGE_SIZE;
            let mut m =
                Migration::vma(vma, addr, end, pool.owner(), Select::DeviceCoherent, false)?;
            assert!(pool.owns(m.src(0)));
            let mut copied = None;
            let moved = pool.migrate_to_ram(&mut m, Some(vma), |vma, a, order| {
                let f = DstFolio::alloc_system(vma, a, order)?;
                copied = Some(f.pfn());
                Some(f)
            });
            // The test's copy zeroes (it keeps no data): moved all the same.
            assert_eq!(moved?, 1);
            assert!(copied.is_some());
        }
        assert_eq!(pool.stats().in_use, 1);
        // Eviction takes the other one.
        assert_eq!(pool.evict(|_| true)?, 0);
        assert_eq!(pool.stats().in_use, 0);
        Ok(())
    }
}
