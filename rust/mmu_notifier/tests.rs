// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of interval notifiers, in a real address space.

use kernel::prelude::*;

#[kunit_tests(rust_hmm_mmu_notifier)]
mod suite {
    use crate::kunit_mm::{
        self,
        Recorder,
        PAGE, //
    };
    use crate::mmu_notifier::*;
    use core::sync::atomic::Ordering;
    use kernel::page::PAGE_SIZE;

    /// The sequence against invalidations inside, outside and at the edges
    /// of the interval, in a real mm, for either callback form.
    fn sequence_follows_invalidations<const TWO_PASS: bool>() -> Result {
        let mm = kunit_mm::attach()?;
        let a = kunit_mm::mmap_anon(8, true)?;
        for i in 0..8 {
            kunit_mm::write_user(a + i * PAGE, &[1])?;
        }
        let (ops, counters) = Recorder::<TWO_PASS>::new()?;
        // Pages 2 to 5 of the 8.
        let n = KBox::pin_init(
            IntervalNotifier::new(&mm, a + 2 * PAGE, 4 * PAGE, ops, Default::default()),
            GFP_KERNEL,
        )?;
        assert_eq!(n.interval(), (a + 2 * PAGE, a + 6 * PAGE - 1));
        assert!(n.covers(a + 2 * PAGE, a + 6 * PAGE));
        assert!(!n.covers(a + PAGE, a + 3 * PAGE));
        assert!(!n.covers(a + 5 * PAGE, a + 7 * PAGE));
        assert!(!n.covers(a + 3 * PAGE, a + 3 * PAGE));

        // Nothing happened: the section is valid.
        let seq = n.read_begin();
        assert!(n.lock_valid(seq).is_some());

        // Unmaps next to the interval never reach the notifier, and the
        // sequence does not move: what it says holds only inside.
        let seq = n.read_begin();
        kunit_mm::munmap(a + 6 * PAGE, 1)?;
        kunit_mm::munmap(a + PAGE, 1)?;
        assert_eq!(n.lock().calls, 0);
        assert!(n.lock_valid(seq).is_some());

        // One inside ends the section, and a new one is valid again.
        let seq = n.read_begin();
        kunit_mm::munmap(a + 3 * PAGE, 1)?;
        {
            let st = n.lock();
            assert_eq!(st.calls, 1);
            assert_eq!(st.last, Some((a + 3 * PAGE, a + 4 * PAGE, Event::Unmap)));
        }
        assert!(n.lock_valid(seq).is_none());
        let seq = n.read_begin();
        assert!(n.lock_valid(seq).is_some());

        // A zap (no unmap) of the last page inside: `MMU_NOTIFY_CLEAR`.
        let seq = n.read_begin();
        {
            let lock = mm.mmap_read_lock();
            let vma = lock.vma_lookup(a + 5 * PAGE).ok_or(EFAULT)?;
            vma.zap_vma_range(a + 5 * PAGE, PAGE_SIZE);
        }
        assert!(n.lock_valid(seq).is_none());
        {
            let st = n.lock();
            assert_eq!(st.calls, 2);
            assert_eq!(st.last, Some((a + 5 * PAGE, a + 6 * PAGE, Event::Clear)));
        }
        // Every first pass got its second, told that it may block.
        assert_eq!(counters.finishes.load(Ordering::Relaxed), 2);
        assert_eq!(counters.blockable.load(Ordering::Relaxed), 2);

        // A sequence of another notifier is refused, even a current one.
        let (ops2, counters2) = Recorder::<TWO_PASS>::new()?;
        let n2 = KBox::pin_init(
            IntervalNotifier::new(&mm, a, 8 * PAGE, ops2, Default::default()),
            GFP_KERNEL,
        )?;
        assert!(n.lock_valid(n2.read_begin()).is_none());
        assert!(n2.lock_valid(n2.read_begin()).is_some());

        // Unmapping everything reaches both; `release` runs once on drop.
        kunit_mm::munmap(a, 8)?;
        assert_eq!(n.lock().calls, 3);
        assert_eq!(n2.lock().calls, 1);
        drop(n);
        drop(n2);
        assert_eq!(counters.releases.load(Ordering::Relaxed), 1);
        assert_eq!(counters2.releases.load(Ordering::Relaxed), 1);
        Ok(())
    }

    #[test]
    fn single_pass_sequence() -> Result {
        sequence_follows_invalidations::<false>()
    }

    #[test]
    fn two_pass_sequence() -> Result {
        sequence_follows_invalidations::<true>()
    }

    /// Empty intervals and intervals that wrap around are refused before
    /// anything is inserted.
    #[test]
    fn bad_intervals() -> Result {
        let mm = kunit_mm::attach()?;
        for (start, length) in [(0x10000, 0), (usize::MAX - PAGE + 1, 2 * PAGE)] {
            let (ops, counters) = Recorder::<false>::new()?;
            let r = KBox::pin_init(
                IntervalNotifier::new(&mm, start, length, ops, Default::default()),
                GFP_KERNEL,
            );
            assert_eq!(r.err(), Some(EOVERFLOW));
            // Never inserted, so never released.
            assert_eq!(counters.releases.load(Ordering::Relaxed), 0);
        }
        Ok(())
    }
}
