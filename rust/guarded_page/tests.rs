// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `rust_hmm_guarded_page`: pages of the test's own, and
//! pages going in and out of a device page table in a real mm.

#[kernel::macros::kunit_tests(rust_hmm_guarded_page)]
mod suite {
    use crate::device_pt::{
        DevicePageTable,
        DirReserve,
        DirtySink,
        Entry, //
    };
    use crate::guarded_page::*;
    use crate::hmm::{
        self,
        Fault,
        Mode, //
    };
    use crate::kunit_mm::{
        self,
        PAGE, //
    };
    use crate::mmu_notifier::{
        IntervalNotifier,
        IntervalNotifierOps,
        NotifierRange, //
    };
    use kernel::alloc::flags::{
        __GFP_ZERO,
        GFP_NOWAIT, //
    };
    use kernel::page::Page;

    /// The folio reference count and dirty bit of page `pfn`.
    fn page_state(pfn: u64) -> (i32, bool) {
        // SAFETY: The tests only ask about pages they keep allocated.
        unsafe { (kunit_mm::page_refcount(pfn), kunit_mm::page_dirty(pfn)) }
    }

    /// Data in and out of a page of our own, bounds, permissions, the
    /// dirty bit and references.
    #[test]
    fn guarded_pages() -> Result {
        let page = Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?;
        let pfn = kunit_mm::page_pfn(&page);
        let tie = 0u64;
        // SAFETY: `page` is ours and outlives every use below; writable.
        let p =
            unsafe { GuardedPages::new(pfn, 1, 0, Tie::of(&raw const tie), Kind::System, true) };
        p.write(100, b"device")?;
        let mut buf = [0u8; 6];
        p.read(100, &mut buf)?;
        assert_eq!(&buf, b"device");
        let mut uninit = [MaybeUninit::new(0xffu8); 8];
        assert_eq!(&*p.read_uninit(98, &mut uninit)?, &b"\0\0device"[..]);
        // The last byte is inside, one more is not, nor any overflow.
        assert!(p.write(PAGE_SIZE - 1, b"x").is_ok());
        assert_eq!(p.write(PAGE_SIZE - 1, b"xy"), Err(EINVAL));
        assert_eq!(p.read(usize::MAX, &mut buf), Err(EINVAL));
        assert_eq!(p.fetch_add_u64(PAGE_SIZE, 1), Err(EINVAL));
        // A device atomic: old value back, new value in the page.
        assert_eq!(p.fetch_add_u64(8, 40)?, 0);
        assert_eq!(p.fetch_add_u64(8, 2)?, 40);
        assert_eq!(p.fetch_add_u64(12, 1), Err(EINVAL));
        let mut word = [0u8; 8];
        p.read(8, &mut word)?;
        assert_eq!(u64::from_ne_bytes(word), 42);

        // Dirty and referenced, as a driver would before dropping the lock.
        assert_eq!(page_state(pfn), (1, false));
        p.mark_dirty()?;
        let refs = p.get();
        assert_eq!(page_state(pfn), (2, true));
        drop(refs);
        assert_eq!(page_state(pfn).0, 1);

        // Read-only: no writes, no atomics, no dirtying; reads are fine.
        // SAFETY: As above; not writable.
        let ro =
            unsafe { GuardedPages::new(pfn, 1, 0, Tie::of(&raw const tie), Kind::System, false) };
        assert_eq!(ro.write(0, b"x"), Err(EPERM));
        assert_eq!(ro.fetch_add_u64(8, 1), Err(EPERM));
        assert_eq!(ro.mark_dirty(), Err(EPERM));
        ro.read(8, &mut word)?;
        assert_eq!(u64::from_ne_bytes(word), 42);
        assert!(ro.get().mark_dirty().is_err());
        assert_eq!(page_state(pfn).0, 1);

        // A device-private page has nothing to read; its data page does.
        // SAFETY: As above: the "device page" is our page, never read.
        let dp = unsafe {
            GuardedPages::new(
                pfn,
                1,
                0,
                Tie::of(&raw const tie),
                Kind::DevicePrivate,
                true,
            )
        };
        assert_eq!(dp.read(0, &mut buf), Err(EINVAL));
        assert_eq!(dp.copy_to_user_nofault(UserPtr::from_addr(0)), 0);
        // SAFETY: The data page is `page`, alive for the whole test.
        let data = unsafe { dp.device_data(pfn)? };
        data.read(100, &mut buf)?;
        assert_eq!(&buf, b"device");
        // SAFETY: As above.
        assert_eq!(unsafe { data.device_data(pfn) }.err(), Some(EINVAL));
        Ok(())
    }

    /// Marks the pages a table reports dirty, and keeps references on them.
    struct Keep(KVec<PageRefs>);

    impl DirtySink for Keep {
        fn dirty(&mut self, pages: GuardedPages<'_>) {
            assert!(pages.mark_dirty().is_ok());
            assert_eq!(pages.write(0, b"x"), Err(EPERM));
            self.0.push(pages.get(), GFP_NOWAIT).expect("keep");
        }
    }

    /// A mirror in miniature: a device page table that every invalidation
    /// empties over its range.
    struct TableOps;

    impl IntervalNotifierOps for TableOps {
        type State = (DevicePageTable, Keep);
        type Finish = ();

        fn invalidate(&self, st: &mut Self::State, range: &NotifierRange<'_>) {
            st.0.update(range.start(), range.end(), 0, &mut st.1);
        }

        fn release(&self, st: &mut Self::State) {
            st.0.clear(&mut st.1);
        }
    }

    /// Pages faulted in a real mm go into a device page table, are read
    /// and written through it as the CPU sees them, copied to user memory,
    /// and reported dirty when the CPU unmaps them.
    #[test]
    fn pages_in_and_out() -> Result {
        let mm = kunit_mm::attach()?;
        let a = kunit_mm::mmap_anon(2, true)?;
        let dst = kunit_mm::mmap_anon(2, true)?;
        kunit_mm::write_user(a, b"from the cpu")?;
        kunit_mm::write_user(dst, &[0])?;
        // SAFETY: The table lives in the notifier's state, every
        // invalidation removes its range, and `release` empties it.
        let pt = unsafe { DevicePageTable::new(GFP_KERNEL)? };
        let n = KBox::pin_init(
            IntervalNotifier::new(&mm, a, 2 * PAGE, TableOps, (pt, Keep(KVec::new()))),
            GFP_KERNEL,
        )?;
        let mut reserve = DirReserve::new();
        reserve.fill_block(GFP_KERNEL)?;
        // SAFETY: Outside any notifier, but it never holds an entry: it is
        // only there to refuse one.
        let mut stray = unsafe { DevicePageTable::new(GFP_KERNEL)? };
        let pfn = {
            let mut r = hmm::Range::new(&n, a, a + 2 * PAGE, None)?;
            let mut f = r.fault(Fault::Write, Mode::Locked)?;
            let (st, pfns) = f.split();
            let p = pfns.page(0).ok_or(EFAULT)?;
            let mut buf = [0u8; 12];
            p.read(0, &mut buf)?;
            assert_eq!(&buf, b"from the cpu");
            // Only at the address it was faulted for, only in a table
            // inside the notifier's state.
            let mut sink = Keep(KVec::new());
            assert_eq!(
                st.0.insert_page(a + PAGE, &p, 0, &mut reserve, &mut sink),
                Err(EINVAL)
            );
            assert_eq!(
                stray.insert_page(a, &p, 0, &mut reserve, &mut sink),
                Err(EINVAL)
            );
            st.0.insert_page(a, &p, Entry::WRITE, &mut reserve, &mut sink)?;
            assert!(pfns.page(2).is_none());
            p.pfn()
        };
        {
            let st = n.lock();
            let p = st.0.lookup_page(a).ok_or(EFAULT)?;
            assert_eq!(p.pfn(), pfn);
            p.write(0, b"from the dev")?;
            assert!(st.0.lookup_page(a + PAGE).is_none());
            // Straight to a present user page, not to an absent one.
            assert_eq!(p.copy_to_user_nofault(UserPtr::from_addr(dst)), 1);
            assert_eq!(p.copy_to_user_nofault(UserPtr::from_addr(dst + PAGE)), 0);
        }
        let mut buf = [0u8; 12];
        kunit_mm::read_user(a, &mut buf)?;
        assert_eq!(&buf, b"from the dev");
        kunit_mm::read_user(dst, &mut buf)?;
        assert_eq!(&buf, b"from the dev");

        // A dirty entry, then the CPU unmaps the page: the invalidation
        // hands it to the sink, which keeps a reference past the unmap.
        {
            let mut r = hmm::Range::new(&n, a, a + PAGE, None)?;
            let mut f = r.fault(Fault::Write, Mode::Locked)?;
            let (st, pfns) = f.split();
            let p = pfns.page(0).ok_or(EFAULT)?;
            let (pt, sink) = (&mut st.0, &mut st.1);
            pt.insert_page(a, &p, Entry::WRITE | Entry::DIRTY, &mut reserve, sink)?;
        }
        kunit_mm::munmap(a, 2)?;
        let kept = {
            let mut st = n.lock_valid(n.read_begin()).ok_or(EBUSY)?;
            assert!(st.0.lookup_page(a).is_none());
            core::mem::replace(&mut st.1, Keep(KVec::new()))
        };
        assert_eq!(kept.0.len(), 1);
        assert_eq!(kept.0[0].pfn(), pfn);
        // Unmapped, but alive and dirty: the sink's reference holds it.
        let (refs, dirty) = page_state(pfn);
        assert!(refs >= 1 && dirty);
        drop(kept);
        Ok(())
    }
}
