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

    struct TestOps;

    impl DevmemOps for TestOps {
        type PageData = Freed;

        fn folio_free(_pool: &DevicePrivatePool<Self>, _pfn: u64, data: &[Freed]) {
            if let Some(d) = data.first() {
                d.0.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }

        fn copy_to_ram(
            _pool: &DevicePrivatePool<Self>,
            _data: &[Freed],
            dst: &mut DstFolio,
        ) -> Result {
            dst.zero();
            Ok(())
        }
    }

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
            DevicePrivatePool::new(TestOps, (2 * PMD_PAGES) << kernel::page::PAGE_SHIFT, 1),
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
}
