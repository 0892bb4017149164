// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the SVM range layer, in a real address space.

use kernel::prelude::*;

#[kunit_tests(rust_hmm_gpusvm)]
mod suite {
    use crate::gpusvm::*;
    use crate::hmm::{
        Fault,
        Mode, //
    };
    use crate::kunit_mm::{
        self,
        PAGE, //
    };
    use crate::mmu_notifier::{
        seq::sealed::Sealed,
        Event, //
    };
    use core::sync::atomic::{
        AtomicU32,
        Ordering, //
    };
    use kernel::sync::Arc;

    const SZ_64K: usize = 1 << 16;
    const SZ_2M: usize = 1 << 21;

    /// Ranges take the largest chunk size that fits the VMA and the free
    /// space, one notifier per 2 MiB chunk.
    #[test]
    fn ranges_fit_vma_and_chunks() -> Result {
        let mm = kunit_mm::attach()?;
        // 2 MiB + 64 KiB + 1 page, from a 2 MiB boundary.
        let a = kunit_mm::mmap_aligned(512 + 16 + 1, SZ_2M)?;
        let svm = kunit_mm::svm(&mm)?;
        let r = svm.range_find_or_insert(a + 100 * PAGE)?;
        assert_eq!((r.start(), r.end()), (a, a + SZ_2M));
        let r = svm.range_find_or_insert(a + SZ_2M + 3 * PAGE)?;
        assert_eq!((r.start(), r.end()), (a + SZ_2M, a + SZ_2M + SZ_64K));
        let r = svm.range_find_or_insert(a + SZ_2M + SZ_64K)?;
        assert_eq!(r.pages(), 1);
        // Found again, not made again.
        let again = svm.range_find_or_insert(a + SZ_2M + SZ_64K)?;
        assert_eq!(again.start(), r.start());
        drop((r, again));
        let stats = svm.lock().stats();
        assert_eq!(
            (stats.ranges, stats.notifiers, stats.ranges_inserted),
            (3, 2, 3)
        );
        // Room first: nothing may allocate with `GFP_KERNEL` under the
        // notifier lock (lockdep reports it, primed against reclaim).
        let mut ranges: KVec<RangeInfo> = KVec::with_capacity(4, GFP_KERNEL)?;
        for info in svm.lock().ranges_from(a).take(4) {
            ranges.push(info, GFP_NOWAIT)?;
        }
        assert_eq!(ranges.len(), 3);
        assert!(ranges.windows(2).all(|w| w[0].end <= w[1].start));
        Ok(())
    }

    /// The size choice: the largest aligned block around the address that
    /// fits and is free (`drm_gpusvm_range_chunk_size()`).
    #[test]
    fn chunk_size_choice() {
        use crate::gpusvm::range::chunk_for;
        let sizes = kunit_mm::SVM_SIZES;
        let a = 64 * SZ_2M;
        let all = 0..usize::MAX;
        assert_eq!(
            chunk_for(a + 5, sizes, all.clone(), |_, _| true),
            Some((a, a + SZ_2M))
        );
        // A range in the 2 MiB block: the 64 KiB one around the address.
        let taken = |s: usize, e: usize| !(s <= a && a < e);
        let got = chunk_for(a + SZ_64K, sizes, all.clone(), taken);
        assert_eq!(got, Some((a + SZ_64K, a + 2 * SZ_64K)));
        // A VMA that starts mid-block.
        let got = chunk_for(a + SZ_64K + PAGE, sizes, a + PAGE..a + SZ_2M, |_, _| true);
        assert_eq!(got, Some((a + SZ_64K, a + 2 * SZ_64K)));
        let got = chunk_for(a + PAGE, sizes, a + PAGE..a + SZ_2M, |_, _| true);
        assert_eq!(got, Some((a + PAGE, a + 2 * PAGE)));
        // Nothing free, or nothing fits.
        assert_eq!(chunk_for(a, sizes, all, |_, _| false), None);
        assert_eq!(chunk_for(a, sizes, a + PAGE..a + SZ_2M, |_, _| true), None);
    }

    /// Addresses outside the SVM or the VMAs are refused.
    #[test]
    fn bad_addresses() -> Result {
        let mm = kunit_mm::attach()?;
        let a = kunit_mm::mmap_anon(2, true)?;
        let svm = kunit_mm::svm(&mm)?;
        assert_eq!(svm.range_find_or_insert(0).err(), Some(EINVAL));
        assert_eq!(svm.range_find_or_insert(usize::MAX).err(), Some(EINVAL));
        kunit_mm::munmap(a + PAGE, 1)?;
        assert_eq!(svm.range_find_or_insert(a + PAGE).err(), Some(EFAULT));
        assert!(svm.range_find_or_insert(a).is_ok());
        Ok(())
    }

    /// An invalidation in one chunk leaves a fault in another valid: the
    /// point of a notifier per chunk.
    #[test]
    fn invalidation_stays_in_its_chunk() -> Result {
        let mm = kunit_mm::attach()?;
        let a = kunit_mm::mmap_aligned(1024, SZ_2M)?;
        let svm = kunit_mm::svm(&mm)?;
        let first = svm.range_find_or_insert(a)?;
        let second = svm.range_find_or_insert(a + SZ_2M)?;
        let seq = first.notifier().read_begin_raw();
        kunit_mm::munmap(a + SZ_2M, 1)?;
        assert!(first.notifier().lock_valid(seq)?.is_some());
        kunit_mm::munmap(a + PAGE, 1)?;
        assert!(first.notifier().lock_valid(seq)?.is_none());
        drop((first, second));
        assert_eq!(svm.lock().stats().invalidations, 2);
        Ok(())
    }

    /// A partial unmap drops the device's mappings of the whole range and
    /// marks it; the collector removes it and then its idle notifier, and
    /// the next fault makes a range that fits what is left.
    #[test]
    fn partial_unmap_is_collected() -> Result {
        let mm = kunit_mm::attach()?;
        let a = kunit_mm::mmap_aligned(16, SZ_64K)?;
        let svm = kunit_mm::svm(&mm)?;
        let range = svm.range_find_or_insert(a)?;
        let mut hmm_range = range.hmm_range(None)?;
        let mut faulted = hmm_range.fault(Fault::Write, Mode::Locked)?;
        faulted
            .state_mut()
            .mapped
            .push((a, a + 16 * PAGE), GFP_NOWAIT)?;
        drop(faulted);
        drop(hmm_range);
        drop(range);

        kunit_mm::munmap(a + 4 * PAGE, 1)?;
        {
            let l = svm.lock();
            assert!(l.state().mapped.is_empty());
            let last = l.state().last.ok_or(EINVAL)?;
            // Widened from the page to the range.
            assert_eq!((last.start(), last.end()), (a, a + 16 * PAGE));
            assert_eq!(last.event(), Event::Unmap);
            let info = l.range_at(a).ok_or(EINVAL)?;
            assert!(info.unmapped && info.partial);
            assert_eq!(l.stats().partial_unmaps, 1);
        }
        assert_eq!(svm.garbage_collect(), 1);
        let stats = svm.lock().stats();
        assert_eq!((stats.ranges, stats.notifiers), (0, 0));
        assert_eq!((stats.ranges_removed, stats.notifiers_removed), (1, 1));
        // What is left: four pages below the hole, eleven above.
        let r = svm.range_find_or_insert(a + 5 * PAGE)?;
        assert_eq!((r.start(), r.end()), (a + 5 * PAGE, a + 6 * PAGE));
        assert_eq!(svm.lock().stats().notifiers, 1);
        Ok(())
    }

    /// A range whose notifier went out of use cannot validate anything:
    /// nothing would keep what it validated current.
    #[test]
    fn stale_notifier_refuses() -> Result {
        let mm = kunit_mm::attach()?;
        let a = kunit_mm::mmap_anon(1, true)?;
        let svm = kunit_mm::svm(&mm)?;
        let range = svm.range_find_or_insert(a)?;
        let seq = range.notifier().read_begin_raw();
        kunit_mm::munmap(a, 1)?;
        assert_eq!(svm.garbage_collect(), 1);
        assert_eq!(svm.lock().stats().notifiers, 0);
        // The range still holds its notifier, which is inserted but out of use.
        assert_eq!(range.notifier().lock_valid(seq).err(), Some(EAGAIN));
        let b = kunit_mm::mmap_anon(1, true)?;
        let fresh = svm.range_find_or_insert(b)?;
        let seq = fresh.notifier().read_begin_raw();
        assert!(fresh.notifier().lock_valid(seq)?.is_some());
        Ok(())
    }

    /// Counts what its `invalidate` is told, for the teardown test.
    struct Releases(Arc<AtomicU32>);

    impl GpuSvmOps for Releases {
        type State = ();

        fn invalidate(&self, _state: &mut (), inv: &Invalidation) {
            if inv.event() == Event::Release {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Dropping the SVM tells the driver to drop every chunk, once each,
    /// while the notifiers still keep it current, then removes them.
    #[test]
    fn teardown_releases_each_chunk() -> Result {
        let mm = kunit_mm::attach()?;
        let a = kunit_mm::mmap_aligned(1024, SZ_2M)?;
        let count = Arc::new(AtomicU32::new(0), GFP_KERNEL)?;
        let svm = GpuSvm::new(
            &mm,
            PAGE,
            1 << 47,
            SZ_2M,
            kunit_mm::SVM_SIZES,
            Releases(count.clone()),
            (),
        );
        let svm = KBox::pin_init(svm, GFP_KERNEL)?;
        drop(svm.range_find_or_insert(a)?);
        drop(svm.range_find_or_insert(a + SZ_2M)?);
        assert_eq!(svm.lock().stats().notifiers, 2);
        drop(svm);
        assert_eq!(count.load(Ordering::Relaxed), 2);
        // The notifiers are gone: an unmap reaches nothing.
        kunit_mm::munmap(a, 1024)?;
        assert_eq!(count.load(Ordering::Relaxed), 2);
        Ok(())
    }

    /// Smaller notifier chunks bound the ranges: no range crosses a chunk.
    #[test]
    fn ranges_stay_inside_notifier_chunks() -> Result {
        let mm = kunit_mm::attach()?;
        let a = kunit_mm::mmap_aligned(64, SZ_64K)?;
        let svm = kunit_mm::svm_with(&mm, SZ_64K)?;
        for i in 0..4 {
            let r = svm.range_find_or_insert(a + i * SZ_64K)?;
            assert_eq!((r.start(), r.end()), (a + i * SZ_64K, a + (i + 1) * SZ_64K));
        }
        assert_eq!(svm.lock().stats().notifiers, 4);
        Ok(())
    }
}
