// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the VMA callbacks, on real mappings of an anon-inode
//! file in the test's own address space.

use kernel::prelude::*;

#[kunit_tests(rust_hmm_vma_ops)]
mod suite {
    use crate::ffi;
    use crate::kunit_mm::{
        self,
        PAGE, //
    };
    use crate::pfn_walk::{
        Missing,
        PfnSource,
        VmaRegistry, //
    };
    use crate::vma_ops::*;
    use core::sync::atomic::{
        AtomicUsize,
        Ordering, //
    };
    use kernel::{
        bindings,
        ffi::c_void,
        mm::{
            virt::{
                flags,
                VmaRef, //
            },
            MmapReadGuard, //
        },
        page::Page,
        sync::{
            Arc,
            SetOnce, //
        }, //
    };

    const NPAGES: usize = 4;

    /// Counts its drops in a counter the test keeps.
    struct DropCount(Arc<AtomicUsize>);

    impl Drop for DropCount {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An object of `NPAGES` pages, allocated at first touch, that counts
    /// what reaches its callbacks.
    #[pin_data]
    struct TestObj {
        #[pin]
        vmas: VmaRegistry,
        pages: KVec<SetOnce<Page>>,
        opens: AtomicUsize,
        closes: AtomicUsize,
        faults: AtomicUsize,
        write_faults: AtomicUsize,
        mkwrites: AtomicUsize,
        _drops: DropCount,
    }

    static TEST_VM_OPS: VmOpsTable<TestObj> = VmOpsTable::new();

    impl TestObj {
        fn new(drops: &Arc<AtomicUsize>) -> Result<Arc<Self>> {
            let mut pages = KVec::with_capacity(NPAGES, GFP_KERNEL)?;
            for _ in 0..NPAGES {
                pages.push(SetOnce::new(), GFP_KERNEL)?;
            }
            Arc::pin_init(
                try_pin_init!(TestObj {
                    vmas <- VmaRegistry::new(),
                    pages,
                    opens: AtomicUsize::new(0),
                    closes: AtomicUsize::new(0),
                    faults: AtomicUsize::new(0),
                    write_faults: AtomicUsize::new(0),
                    mkwrites: AtomicUsize::new(0),
                    _drops: DropCount(drops.clone()),
                }),
                GFP_KERNEL,
            )
        }

        /// Maps `self` at a new address, `NPAGES` pages from offset 0.
        fn map(self: &Arc<Self>) -> Result<usize> {
            kunit_mm::map_with(NPAGES, &|vma| {
                // SAFETY: The last step of the test file's `mmap`; the
                // registry is a field.
                unsafe { TEST_VM_OPS.install(vma, self.clone()) }
            })
        }

        /// The object's page `pgoff`, allocated if it was not.
        fn page(&self, pgoff: usize) -> Result<&Page> {
            let slot = self.pages.get(pgoff).ok_or(EFAULT)?;
            if slot.as_ref().is_none() {
                slot.populate(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?);
            }
            slot.as_ref().ok_or(ENOMEM)
        }

        fn pfn(&self, pgoff: usize) -> Option<usize> {
            let page = self.pages.get(pgoff)?.as_ref()?;
            Some(kunit_mm::page_pfn(page) as usize)
        }

        fn insert(vma: &PfnVma<'_, Self>, addr: usize, pgoff: usize, write: bool) -> Result {
            let mut f = vma.flags();
            if !write {
                f &= !flags::WRITE;
            }
            let page = vma.data().page(pgoff)?;
            vma.insert_pfn_prot(addr, page, Pgprot::from_vm_flags(f))
        }
    }

    #[vtable]
    impl VmOps for TestObj {
        fn open(&self, _vma: &VmaRef) {
            self.opens.fetch_add(1, Ordering::Relaxed);
        }

        fn close(&self, _vma: &VmaRef) {
            self.closes.fetch_add(1, Ordering::Relaxed);
        }

        fn fault(vmf: &VmFault<'_, Self>) -> Result {
            let obj = vmf.data();
            obj.faults.fetch_add(1, Ordering::Relaxed);
            if vmf.is_write() {
                obj.write_faults.fetch_add(1, Ordering::Relaxed);
            }
            Self::insert(vmf.vma(), vmf.address(), vmf.pgoff(), vmf.is_write())
        }

        fn pfn_mkwrite(vmf: &VmFault<'_, Self>) -> Result {
            vmf.data().mkwrites.fetch_add(1, Ordering::Relaxed);
            vmf.vma().zap_vma_range(vmf.address(), PAGE);
            Self::insert(vmf.vma(), vmf.address(), vmf.pgoff(), true)
        }

        fn vma_registry(&self) -> Option<&VmaRegistry> {
            Some(&self.vmas)
        }
    }

    impl PfnSource for TestObj {
        fn vm_ops(&self) -> *const bindings::vm_operations_struct {
            TEST_VM_OPS.as_raw()
        }

        fn vm_private_data(&self) -> *const c_void {
            core::ptr::from_ref(self).cast()
        }

        fn next_maybe_mapped(&self, from: usize, to: usize) -> Option<usize> {
            (from < to).then_some(from)
        }

        fn populate(
            &self,
            mm: &MmapReadGuard<'_>,
            _vma: &VmaRef,
            addr: usize,
            pgoff: usize,
        ) -> Result {
            TEST_VM_OPS
                .with_vma(mm, addr, |vma| Self::insert(vma, addr, pgoff, false))
                .ok_or(EFAULT)?
        }
    }

    /// Faults map the object's own pages, read-only until written; the
    /// first write through a read-only PTE reaches `pfn_mkwrite`.
    #[test]
    fn faults_map_object_pages() -> Result {
        let drops = Arc::new(AtomicUsize::new(0), GFP_KERNEL)?;
        let obj = TestObj::new(&drops)?;
        let _mm = kunit_mm::attach()?;
        let addr = obj.map()?;
        let mut b = [0u8; 4];
        kunit_mm::read_user(addr, &mut b)?;
        kunit_mm::write_user(addr + PAGE, b"data")?;
        assert_eq!(obj.faults.load(Ordering::Relaxed), 2);
        assert_eq!(obj.write_faults.load(Ordering::Relaxed), 1);
        assert_eq!(obj.mkwrites.load(Ordering::Relaxed), 0);
        // Page 0 was mapped read-only.
        kunit_mm::write_user(addr, b"more")?;
        assert_eq!(obj.mkwrites.load(Ordering::Relaxed), 1);
        assert_eq!(obj.faults.load(Ordering::Relaxed), 2);
        // What was written is in the object's pages.
        let mut got = [0u8; 4];
        for (pgoff, want) in [(0, b"more"), (1, b"data")] {
            let pfn = obj.pfn(pgoff).ok_or(ENOENT)?;
            // SAFETY: The object holds the page.
            assert!(unsafe { kunit_mm::read_pfn(pfn as u64, &mut got) });
            assert_eq!(&got, want);
        }
        // The walker sees the same PFNs, the written page dirty.
        let mut seen = 0;
        obj.vmas.walk(&*obj, 0, NPAGES, Missing::Skip, |e| {
            assert_eq!(Some(e.pfn), obj.pfn(e.pgoff));
            assert!(e.writable && e.dirty);
            seen += 1;
            Ok(())
        })?;
        assert_eq!(seen, 2);
        kunit_mm::munmap(addr, NPAGES)?;
        Ok(())
    }

    /// Each VMA holds a reference from `install` or `open` to `close`, and
    /// is in the registry as long: the object goes with the last of them.
    #[test]
    fn references_follow_vmas() -> Result {
        let drops = Arc::new(AtomicUsize::new(0), GFP_KERNEL)?;
        let obj = TestObj::new(&drops)?;
        let _mm = kunit_mm::attach()?;
        let addr = obj.map()?;
        assert_eq!(obj.vmas.count(), 1);
        kunit_mm::munmap(addr + PAGE, 1)?;
        // Split at both ends of the hole: two copies, and the middle goes.
        assert_eq!(obj.vmas.count(), 2);
        assert_eq!(obj.opens.load(Ordering::Relaxed), 2);
        assert_eq!(obj.closes.load(Ordering::Relaxed), 1);
        kunit_mm::munmap(addr + 2 * PAGE, 2)?;
        assert_eq!(obj.vmas.count(), 1);
        assert_eq!(obj.closes.load(Ordering::Relaxed), 2);
        // The VMA left holds the object.
        drop(obj);
        assert_eq!(drops.load(Ordering::Relaxed), 0);
        kunit_mm::munmap(addr, 1)?;
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        Ok(())
    }

    /// A walk populates through `with_vma`, without any fault; `with_vma`
    /// finds only VMAs of its table.
    #[test]
    fn walker_populates_through_with_vma() -> Result {
        let drops = Arc::new(AtomicUsize::new(0), GFP_KERNEL)?;
        let obj = TestObj::new(&drops)?;
        let mm = kunit_mm::attach()?;
        let addr = obj.map()?;
        let stats = obj.vmas.walk(&*obj, 0, NPAGES, Missing::Populate, |e| {
            assert!(!e.writable);
            Ok(())
        })?;
        assert_eq!(stats.entries, NPAGES as u64);
        assert_eq!(obj.faults.load(Ordering::Relaxed), 0);
        let anon = kunit_mm::mmap_anon(1, true)?;
        let lock = mm.mmap_read_lock();
        assert!(TEST_VM_OPS.with_vma(&lock, anon, |_| ()).is_none());
        assert!(TEST_VM_OPS
            .with_vma(&lock, addr + NPAGES * PAGE, |_| ())
            .is_none());
        let pgoff = TEST_VM_OPS.with_vma(&lock, addr + PAGE, |vma| vma.pgoff());
        assert_eq!(pgoff, Some(0));
        // Outside the VMA: refused, not inserted elsewhere.
        let r = TEST_VM_OPS.with_vma(&lock, addr, |vma| {
            let page = vma.data().page(0)?;
            let prot = Pgprot::from_vm_flags(vma.flags());
            vma.insert_pfn_prot(vma.end(), page, prot)
        });
        assert_eq!(r, Some(Err(EFAULT)));
        drop(lock);
        kunit_mm::munmap(anon, 1)?;
        kunit_mm::munmap(addr, NPAGES)?;
        Ok(())
    }

    /// Built in: one walk of the file's mapping sees the PTEs of every VMA
    /// of the table, across objects, and cleans and write-protects them:
    /// the next write reaches `pfn_mkwrite` and is seen dirty again.
    #[cfg(not(MODULE))]
    #[test]
    fn mapping_walk_cleans_and_wrprotects() -> Result {
        let drops = Arc::new(AtomicUsize::new(0), GFP_KERNEL)?;
        let (obj, other) = (TestObj::new(&drops)?, TestObj::new(&drops)?);
        let mm = kunit_mm::attach()?;
        let (addr, addr2) = (obj.map()?, other.map()?);
        kunit_mm::write_user(addr, b"zero")?;
        kunit_mm::read_user(addr + PAGE, &mut [0u8; 1])?;
        kunit_mm::write_user(addr + 2 * PAGE, b"two")?;
        kunit_mm::write_user(addr2 + 3 * PAGE, b"three")?;
        let file = kunit_mm::file_at(&mm, addr)?;
        // Per page offset: (present, dirty, writable) bits, ours and other's.
        // The closure runs under a spinlock, where a failed assertion would
        // leave the lock held: it counts what is wrong, checked after.
        let scan = |clean: bool, first: usize, nr: usize| -> Result<([u8; 3], [u8; 3], usize)> {
            let (mut mine, mut theirs, mut wrong) = ([0u8; 3], [0u8; 3], 0);
            let n = TEST_VM_OPS.walk_mapping(&file, first, nr, |pte| {
                let ours = core::ptr::eq(pte.data(), &*obj);
                let bits = if ours { &mut mine } else { &mut theirs };
                let (data, base) = if ours { (&obj, addr) } else { (&other, addr2) };
                wrong += usize::from(Some(pte.pfn()) != data.pfn(pte.pgoff()));
                wrong += usize::from(pte.address() != base + pte.pgoff() * PAGE);
                let bit = 1 << pte.pgoff();
                bits[0] |= bit;
                bits[1] |= if pte.is_dirty() { bit } else { 0 };
                bits[2] |= if pte.is_writable() { bit } else { 0 };
                if clean {
                    wrong += usize::from(pte.clean_wrprotect() != (bits[1] & bit != 0));
                    wrong += usize::from(pte.is_dirty() || pte.is_writable());
                }
            })?;
            assert_eq!(wrong, 0);
            Ok((mine, theirs, n))
        };
        assert_eq!(
            scan(false, 0, NPAGES)?,
            ([0b111, 0b101, 0b101], [0b1000; 3], 0)
        );
        // The range limits the walk; a clean changes the written PTEs only.
        assert_eq!(scan(true, 2, 2)?, ([0b100; 3], [0b1000; 3], 2));
        assert_eq!(
            scan(true, 0, NPAGES)?,
            ([0b111, 0b1, 0b1], [0b1000, 0, 0], 1)
        );
        assert_eq!(scan(false, 0, NPAGES)?, ([0b111, 0, 0], [0b1000, 0, 0], 0));
        // Write-protected: the next write goes through `pfn_mkwrite`.
        kunit_mm::write_user(addr + 2 * PAGE, b"again")?;
        assert_eq!(obj.mkwrites.load(Ordering::Relaxed), 1);
        assert_eq!(
            scan(false, 0, NPAGES)?,
            ([0b111, 0b100, 0b100], [0b1000, 0, 0], 0)
        );
        assert_eq!(scan(false, 0, 0), Err(EINVAL));
        assert_eq!(scan(false, usize::MAX, 2), Err(EINVAL));
        kunit_mm::munmap(addr, NPAGES)?;
        kunit_mm::munmap(addr2, NPAGES)?;
        // Unmapped: nothing left to see.
        assert_eq!(scan(false, 0, NPAGES)?, ([0; 3], [0; 3], 0));
        Ok(())
    }

    /// `install` refuses a `VM_MIXEDMAP` VMA, and leaves it alone.
    #[test]
    fn install_refuses_mixedmap() -> Result {
        let drops = Arc::new(AtomicUsize::new(0), GFP_KERNEL)?;
        let obj = TestObj::new(&drops)?;
        let _mm = kunit_mm::attach()?;
        let r = kunit_mm::map_with(1, &|vma| {
            vma.set_mixedmap();
            // SAFETY: The last step of the test file's `mmap`.
            unsafe { TEST_VM_OPS.install(vma, obj.clone()) }
        });
        assert_eq!(r, Err(EINVAL));
        assert_eq!(obj.vmas.count(), 0);
        drop(obj);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        Ok(())
    }

    /// Protections: write only with `VM_WRITE`, cache bits only when asked.
    #[test]
    fn protections() {
        let rw = Pgprot::from_vm_flags(flags::READ | flags::WRITE | flags::SHARED);
        let ro = Pgprot::from_vm_flags(flags::READ | flags::SHARED);
        assert_ne!(rw, ro);
        // SAFETY: Pure computations on protection values.
        let bits = |p: Pgprot| unsafe { ffi::rust_hmm_prot_cache_bits(p.as_raw().pgprot) };
        assert_eq!(bits(ro), 0);
        if cfg!(CONFIG_X86) {
            assert_ne!(bits(ro.noncached()), 0);
            assert_ne!(bits(ro.writecombine()), 0);
            assert_ne!(ro.noncached(), ro.writecombine());
        }
        assert_eq!(bits(ro.noncached().writecombine()), bits(ro.writecombine()));
    }
}
