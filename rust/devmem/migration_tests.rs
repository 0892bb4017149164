// SPDX-License-Identifier: GPL-2.0

//! KUnit: migrations into and out of a real pool, in a real address space
//! (suite `rust_hmm_migrate`). Here rather than in `migrate.rs`, which does
//! not know pools.

#[kernel::macros::kunit_tests(rust_hmm_migrate)]
mod suite {
    use crate::devmem::{
        DevicePool,
        DevmemOps, //
    };
    use crate::ffi;
    use crate::kunit_mm::{
        self,
        PAGE, //
    };
    use crate::migrate::{
        DstFolio,
        Migration,
        Select, //
    };
    use core::sync::atomic::{
        AtomicU64,
        Ordering, //
    };
    use kernel::{
        bindings,
        mm::virt::VmaRef,
        prelude::*, //
    };

    /// A device that keeps the first word of each page it holds, and the
    /// test's tag for who put it there.
    #[derive(Default)]
    struct Word {
        value: AtomicU64,
        tag: AtomicU64,
    }

    /// Pages `copy_to_ram` copied out, in all tests.
    static COPIED: AtomicU64 = AtomicU64::new(0);

    struct WordDevice;

    impl DevmemOps for WordDevice {
        type PageData = Word;
        type Memory = crate::devmem::Private;

        fn folio_free(_pool: &DevicePool<Self>, _pfn: u64, data: &[Word]) {
            for d in data {
                d.tag.store(0, Ordering::Relaxed);
            }
        }

        fn copy_to_ram(
            _pool: &DevicePool<Self>,
            _pfn: u64,
            data: &[Word],
            dst: &mut DstFolio,
        ) -> Result {
            dst.zero();
            for (i, d) in data.iter().enumerate() {
                COPIED.fetch_add(1, Ordering::Relaxed);
                let v = d.value.load(Ordering::Relaxed).to_ne_bytes();
                // SAFETY: Page `i` of the locked destination; the copy stays
                // inside it.
                unsafe {
                    let va = bindings::kmap_local_page(dst.page(i));
                    core::ptr::copy_nonoverlapping(v.as_ptr(), va.cast::<u8>(), v.len());
                    bindings::kunmap_local(va);
                }
            }
            Ok(())
        }
    }

    type Pool = DevicePool<WordDevice>;

    /// A pool of one chunk of 2 MiB.
    fn pool() -> Result<Pin<KBox<Pool>>> {
        KBox::pin_init(DevicePool::new(WordDevice, 2 << 20, 1), GFP_KERNEL)
    }

    /// Writes `v + i` as the first word of each of the `n` pages at `addr`.
    fn stamp(addr: usize, n: usize, v: u64) -> Result {
        for i in 0..n {
            kunit_mm::write_user(addr + i * PAGE, &(v + i as u64).to_ne_bytes())?;
        }
        Ok(())
    }

    /// Whether the `n` pages at `addr` start with `v + i`, read by the CPU
    /// (which faults device pages back).
    fn stamped(addr: usize, n: usize, v: u64) -> Result<bool> {
        for i in 0..n {
            let mut w = [0u8; 8];
            kunit_mm::read_user(addr + i * PAGE, &mut w)?;
            if u64::from_ne_bytes(w) != v + i as u64 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Migrates the `n` pages at `addr` into `pool`, tagging them `tag`;
    /// with `pages` false, drops the migration before `pages()`. Returns
    /// how many pages moved.
    fn to_device(
        mm: &kernel::mm::MmWithUser,
        pool: &Pool,
        addr: usize,
        n: usize,
        tag: u64,
        pages: bool,
    ) -> Result<usize> {
        let lock = mm.mmap_read_lock();
        let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
        let end = addr + n * PAGE;
        let mut m = Migration::vma(vma, addr, end, pool.owner(), Select::System, false)?;
        if !pages {
            // Destinations as the pool gives them, then dropped unmigrated.
            for i in 0..m.npages() {
                if m.src(i).migrate() {
                    let f = pool.alloc(0)?;
                    m.set_dst(i, f, true)?;
                }
            }
            return Ok(0);
        }
        let moved = pool.migrate_to_device(
            &mut m,
            |_| true,
            |f, s, _| {
                let pfn = s.pfn().ok_or(EINVAL)?;
                let mut w = [0u8; 8];
                // SAFETY: The source page is locked and referenced by `m`.
                if !unsafe { kunit_mm::read_pfn(pfn, &mut w) } {
                    return Err(EINVAL);
                }
                let d = f.subpage(0).and_then(|p| pool.page_data(p)).ok_or(EINVAL)?;
                d.value.store(u64::from_ne_bytes(w), Ordering::Relaxed);
                d.tag.store(tag, Ordering::Relaxed);
                Ok(())
            },
        );
        Ok(moved as usize)
    }

    /// A test mm with `n` pages stamped from `v` at the returned address,
    /// moved into a new pool. The pool goes before the mm.
    fn in_device(n: usize, v: u64) -> Result<(kunit_mm::TestMm, Pin<KBox<Pool>>, usize)> {
        let mm = kunit_mm::attach()?;
        let pool = pool()?;
        let addr = kunit_mm::mmap_anon(n, true)?;
        stamp(addr, n, v)?;
        assert_eq!(to_device(&mm, &pool, addr, n, 1, true)?, n);
        Ok((mm, pool, addr))
    }

    /// Runs `f` on a migration of the device page at `addr` back to system
    /// memory, by address, under the mmap lock.
    fn with_migration_back<R>(
        mm: &kernel::mm::MmWithUser,
        pool: &Pool,
        addr: usize,
        f: impl FnOnce(&VmaRef, &mut Migration<'_>) -> Result<R>,
    ) -> Result<R> {
        let lock = mm.mmap_read_lock();
        let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
        let (end, owner) = (addr + PAGE, pool.owner());
        let mut m = Migration::vma(vma, addr, end, owner, Select::DevicePrivate, false)?;
        assert!(m.src(0).migrate());
        f(vma, &mut m)
    }

    /// Pages go to device memory and come back on a CPU access, data and
    /// all; the pool's fault handler does the move back.
    #[test]
    fn to_device_and_back_by_cpu() -> Result {
        let (_mm, pool, addr) = in_device(4, 0x1000)?;
        assert_eq!(pool.stats().in_use, 4);
        assert!(stamped(addr, 4, 0x1000)?);
        assert_eq!(pool.stats().in_use, 0);
        kunit_mm::munmap(addr, 4)?;
        Ok(())
    }

    /// A migration dropped before `pages()` with destinations given leaves
    /// every page where it was, mapped and usable, and frees the
    /// destinations (the stale-migration-entry hang, fixed).
    #[test]
    fn dropped_before_pages_restores() -> Result {
        let mm = kunit_mm::attach()?;
        let pool = pool()?;
        let addr = kunit_mm::mmap_anon(4, true)?;
        stamp(addr, 4, 0x2000)?;
        to_device(&mm, &pool, addr, 4, 1, false)?;
        assert_eq!(pool.stats().in_use, 0);
        assert!(stamped(addr, 4, 0x2000)?);
        // Still ordinary memory: a second migration takes every page.
        assert_eq!(to_device(&mm, &pool, addr, 4, 1, true)?, 4);
        assert!(stamped(addr, 4, 0x2000)?);
        kunit_mm::munmap(addr, 4)?;
        Ok(())
    }

    /// A system destination must be filled before the migration takes it.
    #[test]
    fn unfilled_destination_refused() -> Result {
        let (mm, pool, addr) = in_device(1, 0x3000)?;
        with_migration_back(&mm, &pool, addr, |vma, m| {
            let f = DstFolio::alloc_system(Some(vma), addr, 0).ok_or(ENOMEM)?;
            assert!(!f.is_filled());
            assert_eq!(m.set_dst(0, f, true), Err(EINVAL));
            let mut f = DstFolio::alloc_system(Some(vma), addr, 0).ok_or(ENOMEM)?;
            f.zero();
            assert!(f.is_filled());
            m.set_dst(0, f, true)?;
            m.pages();
            assert!(m.migrated(0));
            Ok(())
        })?;
        // Zeroed, as the destination was.
        assert!(stamped(addr, 1, 0)?);
        assert_eq!(pool.stats().in_use, 0);
        kunit_mm::munmap(addr, 1)?;
        Ok(())
    }

    /// `evict` moves back only the pages its selector takes, wherever they
    /// are mapped, and the rest on a second call.
    #[test]
    fn evict_selected_then_all() -> Result {
        let mm = kunit_mm::attach()?;
        let pool = pool()?;
        let a = kunit_mm::mmap_anon(3, true)?;
        let b = kunit_mm::mmap_anon(2, true)?;
        stamp(a, 3, 0x4000)?;
        stamp(b, 2, 0x5000)?;
        assert_eq!(to_device(&mm, &pool, a, 3, 1, true)?, 3);
        assert_eq!(to_device(&mm, &pool, b, 2, 2, true)?, 2);
        assert_eq!(pool.stats().in_use, 5);
        assert_eq!(pool.evict(|d| d.tag.load(Ordering::Relaxed) == 1)?, 0);
        assert_eq!(pool.stats().in_use, 2);
        assert_eq!(pool.evict(|_| true)?, 0);
        assert_eq!(pool.stats().in_use, 0);
        assert!(stamped(a, 3, 0x4000)?);
        assert!(stamped(b, 2, 0x5000)?);
        kunit_mm::munmap(a, 3)?;
        kunit_mm::munmap(b, 2)?;
        Ok(())
    }

    /// A page whose data has moved out, but which its migration has not
    /// released yet, is not evicted again. The page is caught in that state
    /// with a reference of the test's own, as eviction's
    /// `migrate_device_pfns()` catches one between finalize's unlock and
    /// put; moving it again warned on DEBUG_VM kernels (the page had handed
    /// its memory cgroup charge to its copy), copying stale data.
    #[test]
    fn evict_skips_page_moving_out() -> Result {
        let (mm, pool, addr) = in_device(1, 0x7000)?;
        let pfn = with_migration_back(&mm, &pool, addr, |vma, m| {
            let pfn = m.src(0).pfn().ok_or(EINVAL)?;
            let alloc = |vma: Option<&VmaRef>, a, o| DstFolio::alloc_system(vma, a, o);
            assert_eq!(pool.migrate_to_ram(m, Some(vma), alloc)?, 1);
            // Taken after the move (an extra reference would have refused
            // it) and before finalize.
            // SAFETY: The page is locked and referenced by `m`; the extra
            // reference is dropped below.
            unsafe { ffi::rust_hmm_get_pages(pfn as usize, 1) };
            Ok(pfn)
        })?;
        // Finalized: unlocked, unmapped, alive only through our reference.
        let copied = COPIED.load(Ordering::Relaxed);
        assert_eq!(pool.stats().in_use, 1);
        assert_eq!(pool.evict(|_| true)?, 0);
        assert_eq!(COPIED.load(Ordering::Relaxed), copied);
        // SAFETY: The reference taken above.
        unsafe { ffi::rust_hmm_put_pages(pfn as usize, 1) };
        assert_eq!(pool.stats().in_use, 0);
        assert!(stamped(addr, 1, 0x7000)?);
        kunit_mm::munmap(addr, 1)?;
        Ok(())
    }

    /// A pool dropped with pages still in device memory moves them back
    /// first (and only then unregisters its memory).
    #[test]
    fn drop_evicts() -> Result {
        let (_mm, pool, addr) = in_device(2, 0x6000)?;
        drop(pool);
        assert!(stamped(addr, 2, 0x6000)?);
        kunit_mm::munmap(addr, 2)?;
        Ok(())
    }
}
