// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the registry and the walker, on a real `VM_PFNMAP`
//! mapping of an anon-inode file in the test's own address space.

use kernel::prelude::*;

#[kunit_tests(rust_hmm_pfn_walk)]
mod suite {
    use crate::ffi;
    use crate::kunit_mm::{
        self,
        PAGE, //
    };
    use crate::pfn_walk::*;
    use core::sync::atomic::{
        AtomicUsize,
        Ordering, //
    };
    use kernel::{
        ffi::c_int,
        page::Page, //
    };

    /// Records come and go by VMA.
    #[test]
    fn register_unregister() -> Result {
        let reg = KBox::pin_init(VmaRegistry::new(), GFP_KERNEL)?;
        // Only the addresses and `vm_mm` of these stand-ins are read.
        let a = KBox::new(bindings::vm_area_struct::default(), GFP_KERNEL)?;
        let b = KBox::new(bindings::vm_area_struct::default(), GFP_KERNEL)?;
        let (pa, pb): (*const _, *const _) = (&*a, &*b);
        // SAFETY: Valid objects, unregistered before they are freed; the
        // registry never walks.
        unsafe {
            reg.register(pa)?;
            reg.register(pb)?;
        }
        assert_eq!(reg.count(), 2);
        reg.unregister(pa);
        reg.unregister(pa);
        assert_eq!(reg.count(), 1);
        reg.unregister(pb);
        assert_eq!(reg.count(), 0);
        Ok(())
    }

    /// File page offset of the first page of [`TestObj`].
    const BASE: usize = 16;
    const NPAGES: usize = 4;

    /// An object that maps itself: a file whose `mmap` makes `VM_PFNMAP`
    /// VMAs of ours, whose PTEs `populate` fills with pages of its own.
    #[pin_data]
    struct TestObj {
        #[pin]
        vmas: VmaRegistry,
        pages: KVec<Page>,
        populated: AtomicUsize,
    }

    impl TestObj {
        fn pfn(&self, pgoff: usize) -> usize {
            // SAFETY: The page is ours, allocated.
            unsafe { ffi::page_to_pfn(self.pages[pgoff - BASE].as_ptr()) }
        }
    }

    struct VmOps(bindings::vm_operations_struct);
    // SAFETY: Only function pointers, never written.
    unsafe impl Sync for VmOps {}
    static TEST_VM_OPS: VmOps = VmOps(bindings::vm_operations_struct {
        open: Some(test_open),
        close: Some(test_close),
        // SAFETY: All-zero is a valid `vm_operations_struct` (no callbacks).
        ..unsafe { core::mem::zeroed() }
    });

    struct FileOps(bindings::file_operations);
    // SAFETY: As for `VmOps`.
    unsafe impl Sync for FileOps {}
    static TEST_FOPS: FileOps = FileOps(bindings::file_operations {
        mmap: Some(test_mmap),
        // SAFETY: All-zero is a valid `file_operations` (no callbacks).
        ..unsafe { core::mem::zeroed() }
    });

    /// # Safety
    ///
    /// `vma` is a live VMA of a [`TestObj`] (its private data), and the
    /// object outlives it.
    unsafe fn obj<'a>(vma: *const bindings::vm_area_struct) -> &'a TestObj {
        // SAFETY: Per the contract.
        unsafe { &*(*vma).vm_private_data.cast::<TestObj>() }
    }

    /// `mmap` of the test file.
    ///
    /// # Safety
    ///
    /// Called by the core mm on a file of [`TEST_FOPS`], whose private data
    /// is a [`TestObj`] that outlives every mapping (the test unmaps them
    /// all first; if it aborts, the object is leaked, never freed).
    unsafe extern "C" fn test_mmap(
        file: *mut bindings::file,
        vma: *mut bindings::vm_area_struct,
    ) -> c_int {
        // SAFETY: Per the contract, and the VMA is being set up.
        let obj = unsafe { (*file).private_data.cast::<TestObj>() };
        // SAFETY: As above; a VMA in its `mmap` call may have its flags set.
        unsafe { ffi::rust_hmm_vma_set_pfnmap(vma) };
        // SAFETY: The object is alive (see above); `register` is called in
        // `mmap`, after which nothing fails, and `close` unregisters.
        if let Err(e) = unsafe { (*obj).vmas.register(vma) } {
            return e.to_errno();
        }
        // SAFETY: Nothing else uses the VMA during its `mmap` call.
        unsafe {
            (*vma).vm_private_data = obj.cast();
            (*vma).vm_ops = &TEST_VM_OPS.0;
        }
        0
    }

    /// # Safety
    ///
    /// Called by the core mm on a VMA copied from one of ours.
    unsafe extern "C" fn test_open(vma: *mut bindings::vm_area_struct) {
        // SAFETY: The copy has the object as its private data; `close`
        // unregisters.
        unsafe { obj(vma).vmas.register_or_poison(vma) };
    }

    /// # Safety
    ///
    /// Called by the core mm, once, on a VMA of ours.
    unsafe extern "C" fn test_close(vma: *mut bindings::vm_area_struct) {
        // SAFETY: One of our VMAs.
        unsafe { obj(vma).vmas.unregister(vma) };
    }

    impl PfnSource for TestObj {
        fn vm_ops(&self) -> *const bindings::vm_operations_struct {
            &TEST_VM_OPS.0
        }

        fn vm_private_data(&self) -> *const c_void {
            core::ptr::from_ref(self).cast()
        }

        fn next_maybe_mapped(&self, from: usize, to: usize) -> Option<usize> {
            (from < to).then_some(from)
        }

        fn populate(
            &self,
            _mm: &MmapReadGuard<'_>,
            vma: &VmaRef,
            addr: usize,
            pgoff: usize,
        ) -> Result {
            self.populated.fetch_add(1, Ordering::Relaxed);
            // SAFETY: The walker checked that `vma` is ours (`VM_PFNMAP`,
            // shared) and holds its mmap lock; the page is ours and outlives
            // the mapping.
            let r = unsafe { bindings::vmf_insert_pfn(vma.as_ptr(), addr, self.pfn(pgoff)) };
            if r == bindings::vm_fault_reason_VM_FAULT_NOPAGE {
                Ok(())
            } else {
                Err(EFAULT)
            }
        }
    }

    /// The entries of a walk of `first..end`, and its counts.
    fn walk(
        obj: &TestObj,
        first: usize,
        end: usize,
        missing: Missing,
    ) -> Result<(KVec<PfnEntry>, (u64, u64, u64))> {
        let mut seen = KVec::new();
        let s = obj
            .vmas
            .walk(obj, first, end, missing, |e| Ok(seen.push(*e, GFP_KERNEL)?))?;
        Ok((seen, (s.entries, s.vmas, s.mms)))
    }

    /// A real `VM_PFNMAP` mapping of an object in the test thread's mm:
    /// populating, the entries' addresses, offsets and PFNs, CPU writes
    /// seen as dirty, ranges, a VMA split by munmap, errors of the closure,
    /// and page faults disabled around it.
    #[test]
    fn walk_real_vmas() -> Result {
        let _mm = kunit_mm::attach()?;
        let mut pages = KVec::new();
        for _ in 0..NPAGES {
            pages.push(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?, GFP_KERNEL)?;
        }
        let obj = KBox::pin_init(
            try_pin_init!(TestObj {
                vmas <- VmaRegistry::new(),
                pages,
                populated: AtomicUsize::new(0),
            }),
            GFP_KERNEL,
        )?;
        let priv_: *const TestObj = &*obj;
        // SAFETY: The fops are static; the object outlives the file's use.
        let file = unsafe { ffi::rust_hmm_anon_file(&TEST_FOPS.0, priv_.cast_mut().cast()) };
        kernel::error::from_err_ptr(file)?;
        let a = kunit_mm::mmap(file, NPAGES, true, BASE);
        // SAFETY: Our reference from `rust_hmm_anon_file`; the mapping, if
        // any, holds its own.
        unsafe { bindings::fput(file) };
        let a = a?;
        assert_eq!(obj.vmas.count(), 1);
        let all = (BASE, BASE + NPAGES);

        // Nothing is there yet.
        let (seen, counts) = walk(&obj, all.0, all.1, Missing::Skip)?;
        assert_eq!((seen.len(), counts), (0, (0, 1, 1)));

        // Populate the middle two pages.
        let (seen, counts) = walk(&obj, BASE + 1, BASE + 3, Missing::Populate)?;
        assert_eq!(counts, (2, 1, 1));
        assert_eq!(obj.populated.load(Ordering::Relaxed), 2);
        for (i, e) in seen.iter().enumerate() {
            let pgoff = BASE + 1 + i;
            assert_eq!(e.pgoff, pgoff);
            assert_eq!(e.addr, a + (1 + i) * PAGE);
            assert_eq!(e.pfn, obj.pfn(pgoff));
            assert!(e.writable && !e.dirty);
            assert_eq!((e.cache_bits, e.mm_index), (0, 0));
        }
        // Present entries are not populated again.
        walk(&obj, all.0, all.1, Missing::Populate)?;
        assert_eq!(obj.populated.load(Ordering::Relaxed), 4);

        // A CPU write through the mapping lands in our page and dirties
        // its PTE.
        kunit_mm::write_user(a + PAGE, b"cpu")?;
        let mut buf = [0u8; 3];
        // SAFETY: Our page, allocated.
        assert!(unsafe { kunit_mm::read_pfn(obj.pfn(BASE + 1) as u64, &mut buf) });
        assert_eq!(&buf, b"cpu");
        let (seen, counts) = walk(&obj, BASE + 1, BASE + 3, Missing::Skip)?;
        assert_eq!(counts.0, 2);
        assert!(seen[0].dirty && !seen[1].dirty);
        // Past the mapping: the VMA is visited, no entry.
        let (_, counts) = walk(&obj, BASE + NPAGES, BASE + 100, Missing::Skip)?;
        assert_eq!(counts, (0, 1, 1));

        // The closure runs with page faults disabled: a user copy that would
        // fault fails at once instead of taking the mmap lock again.
        let anon = kunit_mm::mmap_anon(1, true)?;
        let mut copies = 0;
        obj.vmas.walk(&*obj, all.0, all.1, Missing::Skip, |_| {
            assert_eq!(kunit_mm::write_user(anon, &[1]).err(), Some(EFAULT));
            copies += 1;
            Ok(())
        })?;
        assert_eq!(copies, 4);
        kunit_mm::write_user(anon, &[1])?;

        // The first error of the closure ends the walk.
        let mut calls = 0;
        let r = obj.vmas.walk(&*obj, all.0, all.1, Missing::Skip, |_| {
            calls += 1;
            Err(ENOSPC)
        });
        assert_eq!((r.err(), calls), (Some(ENOSPC), 1));

        // munmap of page 1 splits the VMA: two of ours, in address order,
        // with the other three entries at their addresses.
        kunit_mm::munmap(a + PAGE, 1)?;
        assert_eq!(obj.vmas.count(), 2);
        let (seen, counts) = walk(&obj, all.0, all.1, Missing::Skip)?;
        assert_eq!(counts, (3, 2, 1));
        for (e, i) in seen.iter().zip([0, 2, 3]) {
            assert_eq!(e.pgoff, BASE + i);
            assert_eq!(e.addr, a + i * PAGE);
            assert_eq!(e.pfn, obj.pfn(BASE + i));
        }

        // Unmapped, the object has no VMA left to visit.
        kunit_mm::munmap(a, NPAGES)?;
        assert_eq!(obj.vmas.count(), 0);
        let (_, counts) = walk(&obj, all.0, all.1, Missing::Populate)?;
        assert_eq!(counts, (0, 0, 0));
        Ok(())
    }
}
