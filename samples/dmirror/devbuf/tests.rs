// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of device buffers: the bitmap, range checks, per-page
//! protections, and the linear map following the cache modes.

use kernel::prelude::*;

#[kunit_tests(rust_hmm_devbuf)]
mod suite {
    use crate::devbuf::cache::*;
    use crate::devbuf::*;
    use crate::ffi;
    use crate::helpers;
    use crate::vma_ops::Pgprot;
    use core::sync::atomic::Ordering;
    use kernel::bindings;

    #[test]
    fn bits_next_set() -> Result {
        let b = Bits::new(200)?;
        assert_eq!(b.next_set(0, 200), None);
        for i in [0, 63, 64, 130, 199] {
            b.set(i);
        }
        assert_eq!(b.next_set(0, 200), Some(0));
        assert_eq!(b.next_set(1, 200), Some(63));
        assert_eq!(b.next_set(64, 200), Some(64));
        assert_eq!(b.next_set(65, 130), None);
        assert_eq!(b.next_set(65, 131), Some(130));
        assert_eq!(b.next_set(131, 200), Some(199));
        b.clear(199);
        assert_eq!(b.next_set(131, 200), None);
        assert_eq!(b.next_set(5, 5), None);
        Ok(())
    }

    #[test]
    fn ranges() {
        assert_eq!(page_range(64, 0, 64).ok(), Some((0, 64)));
        assert_eq!(page_range(64, 63, 1).ok(), Some((63, 64)));
        assert!(page_range(64, 0, 0).is_err());
        assert!(page_range(64, 1, 64).is_err());
        assert!(page_range(64, u64::MAX, 2).is_err());
        assert!(page_range(64, 64, 1).is_err());
    }

    /// Per-page protections: write only when asked, cache bits only for
    /// the non-write-back modes, never dirty.
    #[test]
    fn protections() {
        let shared_rw = bindings::VM_READ | bindings::VM_WRITE | bindings::VM_SHARED;
        let bits = |p: Pgprot| {
            // SAFETY: Pure computations on protection values.
            unsafe {
                (
                    ffi::rust_hmm_prot_cache_bits(p.as_raw().pgprot),
                    ffi::rust_hmm_prot_dirty(p.as_raw().pgprot),
                )
            }
        };
        let wb = DevBuffer::prot(shared_rw, false, 0);
        let uc = DevBuffer::prot(shared_rw, false, 1);
        let wc = DevBuffer::prot(shared_rw, true, 2);
        assert_eq!(bits(wb), (0, false));
        assert_ne!(bits(uc).0, 0);
        assert_ne!(bits(wc).0, 0);
        assert!(!bits(wc).1);
        // Read and write protections of one VMA differ, in the write bit.
        assert_ne!(
            DevBuffer::prot(shared_rw, true, 0),
            DevBuffer::prot(shared_rw, false, 0)
        );
        assert_eq!(
            DevBuffer::prot(shared_rw & !bindings::VM_WRITE, true, 0),
            wb
        );
    }

    /// The linear map follows the modes: one call per target type for the
    /// allocated pages of a range, none for pages already there, one for a
    /// page allocated later; dropping the store puts every page back to
    /// write-back, in one call, before freeing it.
    #[test]
    fn linear_map_follows_mode() -> Result {
        // SAFETY: Reads the kernel's page table entry for the linear
        // address of a page, which the test holds.
        let bits = |p: *mut bindings::page| unsafe { helpers::dmirror_linear_cache_bits(p) };
        // SAFETY: A pure computation.
        let want = |m: u8| unsafe { helpers::dmirror_cache_mode_bits(m.into()) };
        let calls = || CACHE_CALLS.load(Ordering::Relaxed);
        let not_wb = || PAGES_NOT_WB.load(Ordering::Relaxed);
        // SAFETY: Reads a boot-time setting.
        if unsafe { helpers::dmirror_pat_enabled() } {
            // SAFETY: Reads the PAT MSR of each CPU.
            let hw = |m: u8| unsafe { helpers::dmirror_pat_memtype(want(m)) };
            // What the CPUs make of the bits: `X86_MEMTYPE_WB`, `_UC_MINUS`
            // and `_WC`.
            assert_eq!((hw(WB), hw(UC), hw(WC)), (6, 7, 1));
        }
        let (c0, n0, pages0) = (calls(), not_wb(), PAGES.load(Ordering::Relaxed));
        let mut s = Store::new(4)?;
        let p = [
            s.page(0)?.as_ptr(),
            s.page(1)?.as_ptr(),
            s.page(2)?.as_ptr(),
        ];
        assert_eq!(PAGES.load(Ordering::Relaxed), pages0 + 3);
        for &pg in &p {
            assert_eq!(bits(pg), want(WB));
        }
        s.cache.iter_mut().for_each(|m| *m = UC);
        s.sync_linear(0, 4)?;
        assert_eq!(calls() - c0, 1);
        assert_eq!(not_wb() - n0, 3);
        for &pg in &p {
            assert_eq!(bits(pg), want(UC));
        }
        s.sync_linear(0, 4)?;
        assert_eq!(calls() - c0, 1);
        // UC to WC goes through write-back: two calls.
        s.cache.iter_mut().for_each(|m| *m = WC);
        s.sync_linear(0, 4)?;
        assert_eq!(calls() - c0, 3);
        assert_eq!(not_wb() - n0, 3);
        for &pg in &p {
            assert_eq!(bits(pg), want(WC));
        }
        let p3 = s.page(3)?.as_ptr();
        assert_eq!(bits(p3), want(WB));
        // A reference of our own on the pages we check after the store
        // frees them: a free page may be unmapped from the linear map
        // (DEBUG_PAGEALLOC), and must be checked while still ours.
        let kept = [p[0], p[2], p3];
        for &pg in &kept {
            // SAFETY: The store holds the page, so it is alive to take a
            // reference on; `rust_hmm_put_pages` below drops it.
            unsafe { ffi::rust_hmm_get_pages(ffi::page_to_pfn(pg), 1) };
        }
        s.sync_linear(3, 4)?;
        assert_eq!(calls() - c0, 4);
        assert_eq!(bits(p3), want(WC));
        s.cache[1] = WB;
        s.sync_linear(0, 4)?;
        assert_eq!(calls() - c0, 5);
        assert_eq!(bits(p[1]), want(WB));
        assert_eq!(not_wb() - n0, 3);
        drop(s);
        assert_eq!(calls() - c0, 6);
        assert_eq!(not_wb(), n0);
        assert_eq!(PAGES.load(Ordering::Relaxed), pages0);
        for &pg in &kept {
            assert_eq!(bits(pg), want(WB));
            // SAFETY: The reference taken above.
            unsafe { ffi::rust_hmm_put_pages(ffi::page_to_pfn(pg), 1) };
        }
        Ok(())
    }

    /// A change that fails (here PAT refuses WC for a page it records as
    /// UC behind the store's back) leaves its whole batch write-back and
    /// counted as such; the next sync makes it.
    #[test]
    fn failed_change_leaves_write_back() -> Result {
        // SAFETY: Reads a boot-time setting.
        if !unsafe { helpers::dmirror_pat_enabled() } {
            // Without PAT nothing refuses a change.
            return Ok(());
        }
        // SAFETY: As in `linear_map_follows_mode`.
        let bits = |p: *mut bindings::page| unsafe { helpers::dmirror_linear_cache_bits(p) };
        // SAFETY: A pure computation.
        let want = |m: u8| unsafe { helpers::dmirror_cache_mode_bits(m.into()) };
        let not_wb = || PAGES_NOT_WB.load(Ordering::Relaxed);
        let n0 = not_wb();
        let mut s = Store::new(2)?;
        let (a, b) = (s.page(0)?.as_ptr(), s.page(1)?.as_ptr());
        // SAFETY: A live page of `s`.
        unsafe { set_pages_cache(&[b], UC)? };
        s.cache.iter_mut().for_each(|m| *m = WC);
        assert_eq!(s.sync_linear(0, 2), Err(EINVAL));
        assert_eq!((s.linear[0], s.linear[1]), (WB, WB));
        assert_eq!((bits(a), bits(b)), (want(WB), want(WB)));
        assert_eq!(not_wb(), n0);
        s.sync_linear(0, 2)?;
        assert_eq!((bits(a), bits(b)), (want(WC), want(WC)));
        assert_eq!(not_wb() - n0, 2);
        drop(s);
        assert_eq!(not_wb(), n0);
        Ok(())
    }
}
