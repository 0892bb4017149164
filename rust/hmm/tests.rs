// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `rust_hmm_hmm`: range checks, and faults of every kind of
//! page in a real mm.

#[kernel::macros::kunit_tests(rust_hmm_hmm)]
mod suite {
    use crate::hmm::*;
    use crate::kunit_mm::{
        self,
        notifier,
        PAGE, //
    };

    /// Ranges must be aligned, non-empty, small enough and inside the
    /// notifier's interval.
    #[test]
    fn range_checks() -> Result {
        let mm = kunit_mm::attach()?;
        let a = kunit_mm::mmap_anon(4, true)?;
        let n = notifier(&mm, a, 4 * PAGE)?;
        for (s, e) in [
            (a - PAGE, a + PAGE),
            (a + 3 * PAGE, a + 5 * PAGE),
            (a + 4 * PAGE, a + 5 * PAGE),
            (a, a),
            (a + PAGE, a),
            (a + 8, a + PAGE),
            (a, a + PAGE + 8),
        ] {
            assert_eq!(Range::new(&n, s, e, None).err(), Some(EINVAL));
        }
        assert!(Range::new(&n, a, a + 4 * PAGE, None).is_ok());
        let big = notifier(&mm, a, 1024 * PAGE)?;
        let max = MAX_RANGE_PAGES;
        assert!(Range::new(&big, a, a + max * PAGE, None).is_ok());
        let err = Range::new(&big, a, a + (max + 1) * PAGE, None).err();
        assert_eq!(err, Some(EINVAL));
        Ok(())
    }

    /// Populated, untouched, read-only and unmapped pages, as a snapshot,
    /// with read and write faults and per-page demands.
    #[test]
    fn fault_kinds_of_pages() -> Result {
        let mm = kunit_mm::attach()?;
        let a = kunit_mm::mmap_anon(4, true)?;
        let ro = kunit_mm::mmap_anon(2, false)?;
        kunit_mm::write_user(a, b"populated")?;
        let lo = a.min(ro);
        let hi = (a + 4 * PAGE).max(ro + 2 * PAGE);
        let n = notifier(&mm, lo, hi - lo)?;
        let mut buf = [0u8; 9];

        // Snapshot: only the written page is there, writable, with the data.
        let pfn0 = {
            let mut r = Range::new(&n, a, a + 4 * PAGE, None)?;
            let mut f = r.fault(Fault::None, Mode::Locked)?;
            let p = &f.pfns()[0];
            assert!(p.is_valid() && p.is_write() && !p.is_zero() && !p.is_error());
            let pfn = p.pfn();
            let (_, pages) = f.split();
            pages.page(0).ok_or(EFAULT)?.read(0, &mut buf)?;
            assert_eq!(&buf, b"populated");
            assert!(pages.page(1).is_none());
            for q in &f.pfns()[1..] {
                assert!(!q.is_valid() && !q.is_error());
            }
            pfn
        };

        // Read faults map the shared zero page, read-only.
        {
            let mut r = Range::new(&n, a, a + 4 * PAGE, None)?;
            let mut f = r.fault(Fault::Read, Mode::Locked)?;
            assert_eq!(f.pfns()[0].pfn(), pfn0);
            for q in &f.pfns()[1..] {
                assert!(q.is_valid() && q.is_zero() && !q.is_write());
            }
            assert_eq!(f.state().calls, 0);
            // The zero page reads as zeros and cannot be written.
            let (_, pages) = f.split();
            let zero = pages.page(1).ok_or(EFAULT)?;
            zero.read(0, &mut buf)?;
            assert_eq!(buf, [0; 9]);
            assert_eq!(zero.write(0, b"x"), Err(EPERM));
        }

        // A write fault breaks COW of the zero page: the PTE change
        // invalidates the page, `hmm_range_fault()` sees the sequence move
        // and the request is retried to a writable private page.
        let pfn1 = {
            let mut r = Range::new(&n, a + PAGE, a + 2 * PAGE, None)?;
            let f = r.fault(Fault::Write, Mode::Locked)?;
            let p = &f.pfns()[0];
            assert!(p.is_valid() && p.is_write() && !p.is_zero());
            assert_eq!(f.state().calls, 1);
            p.pfn()
        };
        // The CPU's writes land in the page the device was given.
        kunit_mm::write_user(a + PAGE, b"cpu write")?;
        {
            let mut r = Range::new(&n, a + PAGE, a + 2 * PAGE, None)?;
            let mut f = r.fault(Fault::None, Mode::Locked)?;
            assert_eq!(f.pfns()[0].pfn(), pfn1);
            f.split().1.page(0).ok_or(EFAULT)?.read(0, &mut buf)?;
            assert_eq!(&buf, b"cpu write");
        }

        // A per-page demand over a default of none.
        {
            let mut r = Range::new(&n, a + 2 * PAGE, a + 4 * PAGE, None)?;
            assert_eq!(r.set_page_fault(2, Fault::Write).err(), Some(EINVAL));
            r.set_page_fault(1, Fault::Write)?;
            let f = r.fault(Fault::None, Mode::Locked)?;
            let p = f.pfns();
            assert!(p[0].is_zero());
            assert!(p[1].is_valid() && p[1].is_write() && !p[1].is_zero());
        }

        // Read-only memory: reads see the zero page, writes are refused.
        {
            let mut r = Range::new(&n, ro, ro + 2 * PAGE, None)?;
            assert_eq!(r.fault(Fault::Write, Mode::Locked).err(), Some(EPERM));
            let f = r.fault(Fault::Read, Mode::Unlocked { timeout_ms: 1000 })?;
            for q in f.pfns() {
                assert!(q.is_valid() && q.is_zero() && !q.is_write());
            }
        }

        // A hole: a snapshot says error there, a fault fails with EFAULT.
        kunit_mm::munmap(a + 3 * PAGE, 1)?;
        {
            let mut r = Range::new(&n, a, a + 4 * PAGE, None)?;
            assert_eq!(r.fault(Fault::Read, Mode::Locked).err(), Some(EFAULT));
            let mut f = r.fault(Fault::None, Mode::Locked)?;
            assert!(f.pfns()[3].is_error());
            assert_eq!(f.pfns()[0].pfn(), pfn0);
            // Errors and holes are no pages.
            assert!(f.split().1.page(3).is_none());
        }
        Ok(())
    }
}
