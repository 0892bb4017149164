// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the device page table, on tables whose PFNs are made up
//! and never read.

use kernel::prelude::*;

#[kunit_tests(rust_hmm_device_pt)]
mod suite {
    use crate::device_pt::*;
    use crate::guarded_page::GuardedPages;
    use kernel::alloc::flags::GFP_KERNEL;

    /// Records the pages reported dirty.
    struct Recorder(KVec<u64>);

    impl DirtySink for Recorder {
        fn dirty(&mut self, pages: GuardedPages<'_>) {
            for i in 0..pages.npages() {
                self.0
                    .push(pages.pfn() + i, GFP_KERNEL)
                    .expect("record dirty pfn");
            }
        }
    }

    const P: usize = 1 << PAGE_SHIFT;
    const UPPER: u64 = dir_size(HUGE_LEVEL);
    const MID: u64 = dir_size(1);
    const LEAF: u64 = dir_size(0);

    fn table() -> (DevicePageTable, DirReserve, Recorder) {
        (
            DevicePageTable::alloc(GFP_KERNEL).expect("alloc root"),
            DirReserve::new(),
            Recorder(KVec::new()),
        )
    }

    fn put(
        pt: &mut DevicePageTable,
        r: &mut DirReserve,
        s: &mut Recorder,
        addr: usize,
        pfn: u64,
        f: u64,
    ) {
        r.fill_block(GFP_KERNEL).expect("fill reserve");
        pt.insert(addr, Entry::new(pfn, f), r, s).expect("insert");
    }

    #[test]
    fn insert_lookup() {
        let (mut pt, mut r, mut s) = table();
        assert_eq!(pt.lookup(0x1000), None);
        put(&mut pt, &mut r, &mut s, 0x1000, 42, Entry::WRITE);
        let e = pt.lookup(0x1000).expect("present");
        assert_eq!(e.pfn(), 42);
        assert!(e.has(Entry::VALID | Entry::WRITE));
        assert!(!e.has(Entry::DIRTY));
        assert_eq!(pt.lookup(0x2000), None);
        assert_eq!(pt.lookup(0x0), None);
        assert_eq!(
            pt.stats(),
            PtStats {
                entries: 1,
                dirs: 7,
                bytes: 5 * UPPER + MID + LEAF,
                ..Default::default()
            }
        );
        // Unaligned and out-of-range addresses are refused.
        assert_eq!(
            pt.insert(0x1001, Entry::new(1, 0), &mut r, &mut s),
            Err(EINVAL)
        );
        assert_eq!(
            pt.insert(VA_LIMIT, Entry::new(1, 0), &mut r, &mut s),
            Err(EFAULT)
        );
        assert_eq!(pt.lookup(0x1001), None);
    }

    #[test]
    fn range_mask_and_dir_freeing() {
        let (mut pt, mut r, mut s) = table();
        // 1024 pages: two full leaf directories.
        for i in 0..1024 {
            put(
                &mut pt,
                &mut r,
                &mut s,
                0x4000_0000 + i * P,
                1000 + i as u64,
                Entry::WRITE,
            );
        }
        assert_eq!(
            pt.stats(),
            PtStats {
                entries: 1024,
                dirs: 23,
                bytes: 5 * UPPER + 2 * MID + 16 * LEAF,
                ..Default::default()
            }
        );
        // Write-protect the second half.
        let n = pt.update(
            0x4000_0000 + 512 * P,
            0x4000_0000 + 1024 * P,
            Entry::VALID,
            &mut s,
        );
        assert_eq!(n, 512);
        assert!(pt.lookup(0x4000_0000).expect("first").has(Entry::WRITE));
        assert!(!pt
            .lookup(0x4000_0000 + 600 * P)
            .expect("second")
            .has(Entry::WRITE));
        // Unmap the first half: its leaf directory goes away.
        pt.update(0x4000_0000, 0x4000_0000 + 512 * P, 0, &mut s);
        assert_eq!(
            pt.stats(),
            PtStats {
                entries: 512,
                dirs: 14,
                bytes: 5 * UPPER + MID + 8 * LEAF,
                ..Default::default()
            }
        );
        assert_eq!(pt.lookup(0x4000_0000), None);
        // Unmap the rest: everything below the root is freed.
        pt.update(0, VA_LIMIT, 0, &mut s);
        assert_eq!(
            pt.stats(),
            PtStats {
                entries: 0,
                dirs: 0,
                ..Default::default()
            }
        );
        assert_eq!(pt.root_count, 0);
        assert!(s.0.is_empty());
    }

    #[test]
    fn sparse_ranges() {
        let (mut pt, mut r, mut s) = table();
        let addrs = [
            0usize,
            0x20_0000,
            0x4000_0000,
            0x80_0000_0000,
            0x7fff_ffff_f000,
            0xff_ffff_ffff_f000,
        ];
        for (i, a) in addrs.iter().enumerate() {
            put(&mut pt, &mut r, &mut s, *a, i as u64 + 1, 0);
        }
        let mut seen = KVec::new();
        pt.for_each(0, VA_LIMIT, &mut |a, e| {
            seen.push((a, e.pfn()), GFP_KERNEL).expect("push")
        });
        assert_eq!(seen.len(), addrs.len());
        for (i, a) in addrs.iter().enumerate() {
            assert_eq!(seen[i], (*a, i as u64 + 1));
        }
        // A range update touches only what lies inside it.
        assert_eq!(pt.update(0x10_0000, 0x80_0000_1000, 0, &mut s), 3);
        assert_eq!(pt.stats().entries, 3);
        assert!(pt.lookup(0).is_some());
        assert!(pt.lookup(0x20_0000).is_none());
        assert!(pt.lookup(0x7fff_ffff_f000).is_some());
    }

    #[test]
    fn sparse_memory() {
        let (mut pt, mut r, mut s) = table();
        // One page every 2 MiB costs one leaf and one level-1 directory,
        // 576 bytes, plus the levels above shared by all of them.
        for i in 0..64 {
            put(
                &mut pt,
                &mut r,
                &mut s,
                0x4000_0000 + i * HUGE_SIZE,
                i as u64,
                0,
            );
        }
        assert_eq!(pt.stats().bytes, 5 * UPPER + 64 * (MID + LEAF));
        assert_eq!(pt.bytes(), 6 * UPPER + 64 * (MID + LEAF));
        // Filling one of them only adds a leaf directory per 64 pages.
        for i in 1..HUGE_PAGES {
            put(&mut pt, &mut r, &mut s, 0x4000_0000 + i as usize * P, i, 0);
        }
        assert_eq!(pt.stats().bytes, 5 * UPPER + 64 * (MID + LEAF) + 7 * LEAF);
        assert_eq!(pt.stats().entries, 64 + HUGE_PAGES - 1);
        pt.clear(&mut s);
        assert_eq!(pt.stats(), PtStats::default());
        assert_eq!(pt.bytes(), UPPER);
    }

    #[test]
    fn dirty_propagation() {
        let (mut pt, mut r, mut s) = table();
        for i in 0..4 {
            put(&mut pt, &mut r, &mut s, i * P, 10 + i as u64, Entry::WRITE);
        }
        assert!(pt.set_flags(P, Entry::DIRTY).is_some());
        assert!(pt.set_flags(2 * P, Entry::DIRTY).is_some());
        assert!(pt.set_flags(100 * P, Entry::DIRTY).is_none());
        // Write-protect keeps the entries but must hand the dirty pages over.
        pt.update(0, 4 * P, Entry::VALID, &mut s);
        assert_eq!(&s.0[..], &[11, 12]);
        assert!(pt.lookup(P).expect("kept").has(Entry::VALID));
        assert!(!pt.lookup(P).expect("kept").has(Entry::DIRTY));
        // A dirty read-only entry (dirty bit kept by the mask) still
        // reports when it is finally cleared.
        pt.set_flags(3 * P, Entry::DIRTY);
        pt.update(0, 4 * P, Entry::VALID | Entry::DIRTY, &mut s);
        assert_eq!(s.0.len(), 2);
        pt.update(0, 4 * P, 0, &mut s);
        assert_eq!(&s.0[..], &[11, 12, 13]);
        // Replacing a dirty entry with another page reports the old one.
        put(&mut pt, &mut r, &mut s, 0, 50, Entry::WRITE);
        pt.set_flags(0, Entry::DIRTY);
        put(&mut pt, &mut r, &mut s, 0, 51, Entry::WRITE);
        assert_eq!(s.0.last(), Some(&50));
        // Re-installing the same page keeps the dirty bit.
        pt.set_flags(0, Entry::DIRTY);
        put(&mut pt, &mut r, &mut s, 0, 51, Entry::WRITE);
        assert!(pt.lookup(0).expect("same").has(Entry::DIRTY));
        pt.clear(&mut s);
        assert_eq!(s.0.last(), Some(&51));
        assert_eq!(pt.stats(), PtStats::default());
    }

    #[test]
    fn sequential_run() {
        let (mut pt, mut r, mut s) = table();
        // 600 pages across a leaf boundary, then a hole, then more.
        let base = 0x7000_0000 - 100 * P;
        for i in 0..600 {
            put(&mut pt, &mut r, &mut s, base + i * P, i as u64, 0);
        }
        put(&mut pt, &mut r, &mut s, base + 601 * P, 601, 0);
        let mut seen = 0u64;
        let stop = pt.run(base, base + 1000 * P, &mut |a, e| {
            seen += u64::from(e.pfn() == ((a - base) / P) as u64);
            true
        });
        assert_eq!(stop, base + 600 * P);
        assert_eq!(seen, 600);
        // Bounded by `end`, and by the closure.
        assert_eq!(pt.run(base, base + 10 * P, &mut |_, _| true), base + 10 * P);
        assert_eq!(
            pt.run(base, base + 10 * P, &mut |a, _| a < base + 3 * P),
            base + 3 * P
        );
        // Nothing there, or unaligned: stops at once.
        assert_eq!(pt.run(0, P, &mut |_, _| true), 0);
        assert_eq!(pt.run(base + 1, base + P, &mut |_, _| true), base + 1);
        pt.clear(&mut s);
    }

    #[test]
    fn address_space_ends_and_overflow() {
        let (mut pt, mut r, mut s) = table();
        let top = VA_LIMIT - P;
        put(&mut pt, &mut r, &mut s, top, 7, 0);
        put(&mut pt, &mut r, &mut s, 0, 8, 0);
        assert_eq!(pt.lookup(top).expect("top").pfn(), 7);
        // Ranges past the end are clipped, empty or inverted ranges do
        // nothing.
        assert_eq!(pt.update(top, usize::MAX, Entry::VALID, &mut s), 0);
        assert_eq!(pt.update(P, P, 0, &mut s), 0);
        assert_eq!(pt.update(2 * P, P, 0, &mut s), 0);
        assert_eq!(pt.update(usize::MAX - P, usize::MAX, 0, &mut s), 0);
        assert_eq!(pt.stats().entries, 2);
        assert_eq!(pt.update(top, usize::MAX, 0, &mut s), 1);
        assert_eq!(pt.lookup(top), None);
        assert_eq!(pt.lookup(!(P - 1)), None);
        assert_eq!(
            pt.stats(),
            PtStats {
                entries: 1,
                dirs: 7,
                bytes: 5 * UPPER + MID + LEAF,
                ..Default::default()
            }
        );
        // Large PFNs survive the round trip.
        let big = (1u64 << 40) - 1;
        put(&mut pt, &mut r, &mut s, P, big, Entry::WRITE);
        assert_eq!(pt.lookup(P).expect("big").pfn(), big);
    }
    /// A huge leaf at `base` for the folio at `head`.
    fn put_huge(
        pt: &mut DevicePageTable,
        r: &mut DirReserve,
        s: &mut Recorder,
        base: usize,
        head: u64,
        f: u64,
    ) {
        r.fill_block(GFP_KERNEL).expect("fill reserve");
        pt.insert_huge(base, Entry::new(head, f), r, s)
            .expect("insert huge");
    }

    /// Whether `s` reported exactly the pages `[first, first + n)`, each
    /// once.
    fn reported_once(s: &Recorder, first: u64, n: u64) -> bool {
        let mut seen = KVec::from_elem(0u8, n as usize, GFP_KERNEL).expect("alloc");
        for pfn in s.0.iter() {
            if *pfn < first || *pfn >= first + n {
                return false;
            }
            seen[(*pfn - first) as usize] += 1;
        }
        seen.iter().all(|c| *c == 1)
    }

    const BASE: usize = 0x4020_0000;
    const HEAD: u64 = 0x10_0000;

    #[test]
    fn whole_subtree_removal_reports_dirty() {
        let (mut pt, mut r, mut s) = table();
        // A huge leaf, then 600 pages from the next 2 MiB on: its eight
        // leaf directories full, then two more in the block after, the
        // last one partly filled.
        put_huge(&mut pt, &mut r, &mut s, BASE, HEAD, Entry::WRITE);
        for i in 0..600 {
            put(
                &mut pt,
                &mut r,
                &mut s,
                BASE + HUGE_SIZE + i * P,
                5000 + i as u64,
                Entry::WRITE,
            );
        }
        // Device writes: the huge leaf, two pages in the first leaf
        // directory, one in a leaf directory freed whole below (520), and
        // one the range leaves behind (599).
        assert!(pt.set_flags(BASE + 7 * P, Entry::DIRTY).is_some());
        for i in [3, 63, 520, 599] {
            assert!(pt
                .set_flags(BASE + HUGE_SIZE + i * P, Entry::DIRTY)
                .is_some());
        }
        // Everything up to page 590 of the second block goes: whole
        // directories are freed at once, the last one entry by entry.
        let n = pt.update(BASE, BASE + HUGE_SIZE + 590 * P, 0, &mut s);
        assert_eq!(n, 1 + 590);
        crate::sort::heapsort(&mut s.0);
        let mut want = KVec::new();
        want.extend_from_slice(&[5003, 5063, 5520], GFP_KERNEL)
            .expect("vec");
        for p in HEAD..HEAD + HUGE_PAGES {
            want.push(p, GFP_KERNEL).expect("vec");
        }
        crate::sort::heapsort(&mut want);
        assert_eq!(&s.0[..], &want[..]);
        assert_eq!(
            pt.stats(),
            PtStats {
                entries: 10,
                dirs: 7,
                bytes: 5 * UPPER + MID + LEAF,
                ..Default::default()
            }
        );
        assert!(pt
            .lookup(BASE + HUGE_SIZE + 599 * P)
            .expect("left")
            .has(Entry::DIRTY));
        s.0.clear();
        pt.clear(&mut s);
        assert_eq!(&s.0[..], &[5599]);
        assert_eq!(pt.stats(), PtStats::default());
    }

    #[test]
    fn huge_install_lookup() {
        let (mut pt, mut r, mut s) = table();
        put_huge(&mut pt, &mut r, &mut s, BASE, HEAD, Entry::WRITE);
        assert_eq!(
            pt.stats(),
            PtStats {
                huge: 1,
                dirs: 5,
                bytes: 5 * UPPER,
                ..Default::default()
            }
        );
        let e = pt.lookup(BASE + 5 * P).expect("inside");
        assert_eq!(e.pfn(), HEAD + 5);
        assert!(e.is_huge() && e.has(Entry::VALID | Entry::WRITE));
        assert_eq!(pt.lookup(BASE).expect("first").pfn(), HEAD);
        assert_eq!(
            pt.lookup(BASE + HUGE_SIZE - P).expect("last").pfn(),
            HEAD + 511
        );
        assert_eq!(pt.lookup(BASE + HUGE_SIZE), None);
        assert_eq!(pt.lookup(BASE - P), None);
        // Sequential access: one span for the leaf, pages in order.
        let mut spans = 0;
        let stop = pt.run_spans(BASE + 2 * P, BASE + 2 * HUGE_SIZE, &mut |a, e, n| {
            spans += 1;
            assert_eq!((a, e.pfn(), n), (BASE + 2 * P, HEAD + 2, 510));
            n
        });
        assert_eq!((stop, spans), (BASE + HUGE_SIZE, 1));
        let mut good = 0;
        pt.run(BASE, BASE + 10 * P, &mut |a, e| {
            good += u64::from(e.pfn() == HEAD + ((a - BASE) / P) as u64 && e.is_huge());
            true
        });
        assert_eq!(good, 10);
        // A span taken in part stops the run there.
        assert_eq!(
            pt.run_spans(BASE, BASE + HUGE_SIZE, &mut |_, _, _| 3),
            BASE + 3 * P
        );
        let mut pages = 0;
        pt.for_each(BASE + HUGE_SIZE - 4 * P, VA_LIMIT, &mut |_, e| {
            pages += u64::from(e.is_huge())
        });
        assert_eq!(pages, 4);
        // Misaligned addresses or PFNs, and exclusive leaves, are refused.
        r.fill_block(GFP_KERNEL).expect("fill");
        let bad = [
            (BASE + P, Entry::new(HEAD, 0)),
            (BASE, Entry::new(HEAD + 1, 0)),
            (BASE, Entry::new(HEAD, Entry::EXCLUSIVE)),
        ];
        for (a, e) in bad {
            assert_eq!(pt.insert_huge(a, e, &mut r, &mut s), Err(EINVAL));
        }
        assert_eq!(
            pt.insert_huge(VA_LIMIT, Entry::new(HEAD, 0), &mut r, &mut s),
            Err(EFAULT)
        );
        // A device write dirties the whole leaf; re-installing the same
        // folio keeps it, another folio reports every page of the old one.
        assert!(pt
            .set_flags(BASE + 9 * P, Entry::DIRTY)
            .expect("set")
            .is_huge());
        assert!(pt.set_flags(BASE, Entry::EXCLUSIVE).expect("set").flags() & Entry::EXCLUSIVE == 0);
        put_huge(&mut pt, &mut r, &mut s, BASE, HEAD, Entry::WRITE);
        assert!(pt.lookup(BASE).expect("same").has(Entry::DIRTY));
        assert!(s.0.is_empty());
        put_huge(&mut pt, &mut r, &mut s, BASE, HEAD + 512, Entry::WRITE);
        assert!(reported_once(&s, HEAD, 512));
        assert!(!pt.lookup(BASE).expect("new").has(Entry::DIRTY));
        assert_eq!(pt.stats().huge, 1);
        pt.clear(&mut s);
        assert_eq!(pt.stats(), PtStats::default());
        assert_eq!(pt.root_count, 0);
    }

    #[test]
    fn huge_partial_invalidation_splits() {
        let (mut pt, mut r, mut s) = table();
        put_huge(&mut pt, &mut r, &mut s, BASE, HEAD, Entry::WRITE);
        pt.set_flags(BASE, Entry::DIRTY);
        // Unmap 10 pages in the middle: the leaf splits, and only those
        // pages are reported.
        assert_eq!(pt.update(BASE + 10 * P, BASE + 20 * P, 0, &mut s), 10);
        assert!(reported_once(&s, HEAD + 10, 10));
        assert_eq!(
            pt.stats(),
            PtStats {
                entries: 502,
                huge: 0,
                dirs: 14,
                bytes: 5 * UPPER + MID + 8 * LEAF,
                splits: 1
            }
        );
        assert_eq!(pt.lookup(BASE + 10 * P), None);
        let e = pt.lookup(BASE + 9 * P).expect("kept");
        assert_eq!(e.pfn(), HEAD + 9);
        assert!(!e.is_huge() && e.has(Entry::WRITE | Entry::DIRTY));
        // Write-protect one page: it stays, clean and read-only.
        assert_eq!(
            pt.update(BASE + 100 * P, BASE + 101 * P, Entry::VALID, &mut s),
            1
        );
        let e = pt.lookup(BASE + 100 * P).expect("kept");
        assert!(!e.has(Entry::WRITE) && !e.has(Entry::DIRTY));
        // Dropping the rest reports every page but those already handed
        // over: no dirty bit is lost, none is reported twice.
        pt.clear(&mut s);
        assert!(reported_once(&s, HEAD, 512));
        assert_eq!(
            pt.stats(),
            PtStats {
                splits: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn huge_whole_update_and_split_fallback() {
        let (mut pt, mut r, mut s) = table();
        put_huge(
            &mut pt,
            &mut r,
            &mut s,
            BASE,
            HEAD,
            Entry::WRITE | Entry::DIRTY,
        );
        // Write-protecting the whole leaf keeps it huge.
        assert_eq!(pt.update(BASE, BASE + HUGE_SIZE, Entry::VALID, &mut s), 1);
        assert!(reported_once(&s, HEAD, 512));
        let e = pt.lookup(BASE + P).expect("kept");
        assert!(e.is_huge() && !e.has(Entry::WRITE) && !e.has(Entry::DIRTY));
        assert_eq!(pt.stats().splits, 0);
        // Nothing to change: nothing happens, not even a split.
        assert_eq!(pt.update(BASE + P, BASE + 2 * P, Entry::VALID, &mut s), 0);
        assert_eq!(pt.stats().huge, 1);
        // Without a directory to split into, a partial change drops the
        // whole leaf, dirty pages reported.
        s.0.clear();
        pt.set_flags(BASE, Entry::DIRTY);
        assert_eq!(pt.update_split(BASE + P, BASE + 2 * P, 0, &mut s, None), 1);
        assert!(reported_once(&s, HEAD, 512));
        assert_eq!(pt.stats(), PtStats::default());
        assert_eq!(pt.root_count, 0);
    }

    #[test]
    fn huge_dirty_across_split_by_insert() {
        let (mut pt, mut r, mut s) = table();
        put_huge(
            &mut pt,
            &mut r,
            &mut s,
            BASE,
            HEAD,
            Entry::WRITE | Entry::DIRTY,
        );
        // A 4 KiB device-exclusive entry inside splits the leaf; the page
        // it replaces was dirty.
        put(
            &mut pt,
            &mut r,
            &mut s,
            BASE + 5 * P,
            999,
            Entry::WRITE | Entry::EXCLUSIVE,
        );
        assert_eq!(&s.0[..], &[HEAD + 5]);
        let e = pt.lookup(BASE + 5 * P).expect("exclusive");
        assert!(e.has(Entry::EXCLUSIVE) && !e.is_huge() && e.pfn() == 999);
        assert!(pt.lookup(BASE + 6 * P).expect("split").has(Entry::DIRTY));
        assert_eq!(
            pt.stats(),
            PtStats {
                entries: 512,
                huge: 0,
                dirs: 14,
                bytes: 5 * UPPER + MID + 8 * LEAF,
                splits: 1
            }
        );
        s.0.clear();
        pt.update(BASE + 5 * P, BASE + 6 * P, 0, &mut s);
        pt.update(0, VA_LIMIT, 0, &mut s);
        // The exclusive page was never written: all but HEAD + 5 reported.
        assert_eq!(s.0.len(), 511);
        assert!(!s.0.iter().any(|p| *p == HEAD + 5 || *p == 999));
    }

    #[test]
    fn huge_remerge_after_refault() {
        let (mut pt, mut r, mut s) = table();
        put_huge(&mut pt, &mut r, &mut s, BASE, HEAD, Entry::WRITE);
        pt.update(BASE + 10 * P, BASE + 20 * P, 0, &mut s);
        pt.set_flags(BASE + 3 * P, Entry::DIRTY);
        assert_eq!(pt.stats().entries, 502);
        // The CPU maps the folio with a PMD again: the device refaults and
        // merges; the dirty page is remembered by the huge leaf.
        put_huge(&mut pt, &mut r, &mut s, BASE, HEAD, Entry::WRITE);
        assert!(s.0.is_empty());
        assert_eq!(
            pt.stats(),
            PtStats {
                huge: 1,
                dirs: 5,
                bytes: 5 * UPPER,
                splits: 1,
                ..Default::default()
            }
        );
        assert!(pt.lookup(BASE + 15 * P).expect("merged").has(Entry::DIRTY));
        // Merging into a read-only leaf, or over other pages, hands the
        // dirty pages over instead.
        pt.update(BASE, BASE + P, 0, &mut s);
        assert_eq!(s.0.len(), 1);
        pt.set_flags(BASE + 7 * P, Entry::DIRTY);
        put(&mut pt, &mut r, &mut s, BASE + 8 * P, 77, Entry::WRITE);
        pt.set_flags(BASE + 8 * P, Entry::DIRTY);
        s.0.clear();
        put_huge(&mut pt, &mut r, &mut s, BASE, HEAD, 0);
        let mut got = KVec::new();
        got.extend_from_slice(&s.0, GFP_KERNEL).expect("copy");
        crate::sort::heapsort(&mut got);
        assert_eq!(&got[..2], &[77, HEAD + 1]);
        assert_eq!(got.len(), 511);
        assert!(!pt.lookup(BASE).expect("ro").has(Entry::DIRTY));
        assert_eq!(pt.stats().entries, 0);
        pt.clear(&mut s);
        assert_eq!(pt.stats().dirs, 0);
    }
}
