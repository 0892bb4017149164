// SPDX-License-Identifier: GPL-2.0

//! Walking the PTEs of every VMA that maps a range of one of our objects,
//! without the caller holding any mmap lock.
//!
//! Upstream does this with `walk_page_mapping()` over `mapping->i_mmap`
//! (see `mm/mapping_dirty_helpers.c`). On 7.3 a module can call neither
//! that nor the `i_mmap` interval-tree iterators, so an object that maps
//! itself into processes tracks its own VMAs here, from its
//! `vm_operations_struct`: [`VmaRegistry::register`] in `mmap` and `open`,
//! [`VmaRegistry::unregister`] in `close`. [`VmaRegistry::walk`] then
//! visits them one address space at a time:
//!
//! 1. Under the registry mutex, pin (`mmgrab`) every `mm` that has a VMA of
//!    ours. Nothing else is read from the records here.
//! 2. For each of them: `mmget_not_zero()` (an exiting process is skipped:
//!    its VMAs are being torn down), then its mmap lock for read. With it
//!    held no VMA of that `mm` can be created, moved, split or freed, so
//!    the registry mutex is taken again to note the start address of each
//!    of our VMAs in that `mm`.
//! 3. Each address is looked up again with `vma_lookup()` and the VMA is
//!    checked to be ours (`vm_ops` and `vm_private_data`) before any of its
//!    page tables is read. A VMA that is not ours is never walked, and no
//!    page table is ever allocated for one.
//! 4. PTEs are read with `follow_pfnmap_start()`/`follow_pfnmap_end()`
//!    (PTE lock held only between the two); the caller's closure runs after
//!    `follow_pfnmap_end()`, with the mmap read lock held.
//!
//! Lock order: `mmap_lock` -> registry mutex. `open`/`close` run under the
//! mmap lock (write, or read in a downgraded `munmap`) and take the
//! mutex; the walker takes the mutex either with no mmap lock held (step 1)
//! or inside one mmap read lock (step 2), and never takes an mmap lock, nor
//! drops an `mm` reference, with the mutex held.
//!
//! The walker only reads. Changes to live PTEs belong to exported
//! primitives that notify and flush (`mapping_wrprotect_range()`,
//! `unmap_mapping_range()`), or to the object's fault path when asked to
//! populate.
//!
//! # Safety contract
//!
//! [`VmaRegistry::register`] is `unsafe`: the object promises to record
//! each VMA from `mmap`/`open` and forget it in `close`, before the VMA is
//! freed; that is what lets a walk dereference a record. Given that, every
//! [`PfnEntry`] a walk reports was read from a PTE of a VMA that the walk
//! found in its mm's tree, under that mm's mmap read lock and checked to be
//! the object's (`vm_ops`, `vm_private_data`), and no page table of any
//! other VMA is read or allocated. An entry is a snapshot: the PFN is not
//! referenced, and the PTE may change once the closure returns.
//!
//! # Deadlocks
//!
//! The closure and [`PfnSource::populate`] run with the mmap read lock of
//! the entry's process held, and with page faults disabled: a user access
//! there fails (`EFAULT` from the user copy helpers) instead of faulting,
//! which would take that lock again. They must not take the mmap lock or
//! the registry mutex (`register`/`unregister`, or mapping and unmapping
//! the object), nor drop the last user of an mm.

use crate::ffi;
use kernel::{
    bindings,
    ffi::c_void,
    mm::{virt::VmaRef, Mm, MmWithUser},
    new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    sync::{aref::ARef, Mutex},
};

/// Page faults disabled (`pagefault_disable()`) while it lives: a user
/// access fails at once instead of faulting, for code that runs under a
/// lock the fault path may need (the mmap lock, the notifier lock).
pub(crate) struct NoPagefaults(core::marker::PhantomData<*mut ()>);

impl NoPagefaults {
    pub(crate) fn new() -> Self {
        // SAFETY: Paired with `pagefault_enable()` in `drop`, on this task:
        // the type is neither `Send` nor `Sync`.
        unsafe { ffi::rust_hmm_pagefault_disable() };
        Self(core::marker::PhantomData)
    }
}

impl Drop for NoPagefaults {
    fn drop(&mut self) {
        // SAFETY: `new` disabled them on this task.
        unsafe { ffi::rust_hmm_pagefault_enable() };
    }
}

/// One VMA of ours.
///
/// # Invariants
///
/// While the record is in a [`VmaRegistry`], `vma` points to a live VMA of
/// `mm` (it is removed in `close`, before the VMA is freed), so both may be
/// dereferenced under the registry mutex.
struct Record {
    vma: *const bindings::vm_area_struct,
    mm: *mut bindings::mm_struct,
}

// SAFETY: A record is only two addresses; it is dereferenced under the
// registry mutex only (see the type invariants), from any thread.
unsafe impl Send for Record {}

/// The VMAs that map one object.
#[pin_data]
pub struct VmaRegistry {
    #[pin]
    vmas: Mutex<Tracked>,
}

struct Tracked {
    records: KVVec<Record>,
    /// A VMA could not be recorded (allocation failure in `open`, which
    /// cannot fail): walks are refused from then on, never silently short.
    lost: bool,
}

/// What a walk does where a page of the range has no PTE in a VMA.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Missing {
    /// Visit only present entries; cost follows the populated part.
    Skip,
    /// Install the entry through [`PfnSource::populate`] first; visits
    /// every page of the range in every VMA.
    Populate,
}

/// One present PTE, as the walker read it under the PTE lock.
#[derive(Clone, Copy, Debug)]
pub struct PfnEntry {
    /// User address.
    pub addr: usize,
    /// File page offset it maps.
    pub pgoff: usize,
    /// The PFN in the PTE.
    pub pfn: usize,
    /// The PTE allows writes.
    pub writable: bool,
    /// The PTE's dirty bit.
    pub dirty: bool,
    /// The architecture's cache-mode bits of the PTE (x86: PWT, PCD, PAT);
    /// 0 is write-back.
    pub cache_bits: u64,
    /// Index of the address space in this walk, in visiting order.
    pub mm_index: usize,
}

/// Counts of one walk.
#[derive(Clone, Copy, Default, Debug)]
pub struct WalkStats {
    /// Entries passed to the closure.
    pub entries: u64,
    /// VMAs visited.
    pub vmas: u64,
    /// Address spaces visited.
    pub mms: u64,
}

/// The object whose VMAs a [`VmaRegistry`] tracks.
pub trait PfnSource {
    /// The `vm_ops` every VMA of the object has.
    fn vm_ops(&self) -> *const bindings::vm_operations_struct;

    /// The `vm_private_data` every VMA of the object has.
    fn vm_private_data(&self) -> *const c_void;

    /// The first file page offset in `from..to` that may have a PTE in
    /// some VMA, or `None`. Must not miss a page whose PTE was installed
    /// before the walk began (a superset is fine): [`Missing::Skip`] only
    /// reads the offsets this returns.
    fn next_maybe_mapped(&self, from: usize, to: usize) -> Option<usize>;

    /// Installs the entry for `pgoff` at `addr` of `vma`, as a read fault
    /// would. Called with the mmap read lock held (the borrow of `vma`
    /// proves it).
    fn populate(&self, vma: &VmaRef, addr: usize, pgoff: usize) -> Result;
}

impl VmaRegistry {
    /// An empty registry.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            vmas <- new_mutex!(Tracked {
                records: KVVec::new(),
                lost: false,
            }),
        })
    }

    /// Records `vma`. On failure nothing is recorded.
    ///
    /// # Safety
    ///
    /// `vma` is a valid VMA, in the `mmap` file operation (after which
    /// nothing fails) or in `vm_ops->open`, and [`Self::unregister`] is
    /// called for it in `vm_ops->close` before it is freed.
    pub unsafe fn register(&self, vma: *const bindings::vm_area_struct) -> Result {
        // SAFETY: The caller passes a valid VMA.
        let mm = unsafe { (*vma).vm_mm };
        let mut t = self.vmas.lock();
        // Allocating under the mutex is fine: reclaim never takes it.
        t.records.push(Record { vma, mm }, GFP_KERNEL)?;
        Ok(())
    }

    /// [`Self::register`] for `vm_ops->open`, which cannot fail: if the
    /// record cannot be allocated, walks of this registry fail with `EIO`
    /// from then on.
    ///
    /// # Safety
    ///
    /// As for [`Self::register`].
    pub unsafe fn register_or_poison(&self, vma: *const bindings::vm_area_struct) {
        // SAFETY: Same contract.
        if unsafe { self.register(vma) }.is_err() {
            self.vmas.lock().lost = true;
        }
    }

    /// Forgets `vma`; nothing happens if it was never recorded.
    pub fn unregister(&self, vma: *const bindings::vm_area_struct) {
        let mut t = self.vmas.lock();
        if let Some(i) = t.records.iter().position(|r| r.vma == vma) {
            let last = t.records.len() - 1;
            t.records.swap(i, last);
            t.records.truncate(last);
        }
    }

    /// Number of VMAs recorded now.
    pub fn count(&self) -> usize {
        self.vmas.lock().records.len()
    }

    /// Calls `f` for every PTE that maps a file page offset in `first..end`
    /// in every VMA of `src` (see the module documentation for the locking).
    ///
    /// `f` runs with the mmap read lock of the entry's process held and
    /// page faults disabled (see the module documentation, "Deadlocks"). A
    /// walk is not a snapshot: it sees every entry present for its whole
    /// duration; an entry installed or removed meanwhile may or may not be
    /// seen.
    /// Returns `EIO` if the registry lost track of a VMA, `ERESTARTSYS` if
    /// a signal is pending (a walk changes nothing but what populating
    /// adds, so it can restart), or the first error of `f` or of
    /// populating.
    pub fn walk<S, F>(
        &self,
        src: &S,
        first: usize,
        end: usize,
        missing: Missing,
        mut f: F,
    ) -> Result<WalkStats>
    where
        S: PfnSource,
        F: FnMut(&PfnEntry) -> Result,
    {
        let mut stats = WalkStats::default();
        let mms = self.pin_mms()?;
        for mm in mms.iter() {
            // An exiting process is skipped: its VMAs are going away, and
            // exit_mmap() cannot start while we hold the reference.
            let Some(mm) = mm.mmget_not_zero() else {
                continue;
            };
            let done = self.walk_mm(&mm, src, first, end, missing, stats.mms as usize, &mut f);
            // `mm` is dropped (mmput, which may run exit_mmap() and so our
            // `close`) with no lock of ours held.
            drop(mm);
            let n = done?;
            if n.vmas > 0 {
                stats.mms += 1;
            }
            stats.vmas += n.vmas;
            stats.entries += n.entries;
        }
        Ok(stats)
    }

    /// Step 1: an `mmgrab` reference to each distinct `mm` with a VMA here.
    fn pin_mms(&self) -> Result<KVVec<ARef<Mm>>> {
        let mut out: KVVec<ARef<Mm>> = KVVec::new();
        let t = self.vmas.lock();
        if t.lost {
            return Err(EIO);
        }
        out.reserve(t.records.len(), GFP_KERNEL)?;
        for r in t.records.iter() {
            if out.iter().any(|m| m.as_raw() == r.mm) {
                continue;
            }
            // SAFETY: By the type invariants of `Record`, its VMA is alive
            // and so is the `mm` it belongs to.
            let mm = unsafe { Mm::from_raw(r.mm) };
            // Capacity was reserved for every record.
            if out.push_within_capacity(ARef::from(mm)).is_err() {
                return Err(ENOMEM);
            }
        }
        drop(t);
        Ok(out)
    }

    /// Steps 2 to 4 for one address space.
    #[expect(clippy::too_many_arguments)]
    fn walk_mm<S, F>(
        &self,
        mm: &MmWithUser,
        src: &S,
        first: usize,
        end: usize,
        missing: Missing,
        mm_index: usize,
        f: &mut F,
    ) -> Result<WalkStats>
    where
        S: PfnSource,
        F: FnMut(&PfnEntry) -> Result,
    {
        let mut stats = WalkStats::default();
        let guard = mm.mmap_read_lock();
        // Dropped before `guard`: a fault needs the lock this holds.
        let nofault = NoPagefaults::new();
        let mut starts: KVVec<usize> = KVVec::new();
        {
            let t = self.vmas.lock();
            if t.lost {
                return Err(EIO);
            }
            starts.reserve(t.records.len(), GFP_KERNEL)?;
            for r in t.records.iter().filter(|r| r.mm == mm.as_raw()) {
                // SAFETY: The record's VMA is alive (type invariants), and
                // with the mmap lock of its `mm` held its bounds are stable.
                let start = unsafe { (*r.vma).__bindgen_anon_1.__bindgen_anon_1.vm_start };
                if starts.push_within_capacity(start).is_err() {
                    return Err(ENOMEM);
                }
            }
        }
        crate::sort::heapsort(&mut starts);
        let mut prev = None;
        for &start in starts.iter() {
            if prev == Some(start) {
                continue;
            }
            prev = Some(start);
            // A record may name a VMA already detached by a munmap that
            // downgraded to the read lock; looking the address up again
            // finds only VMAs that are in the tree now.
            let Some(vma) = guard.vma_lookup(start) else {
                continue;
            };
            let raw = vma.as_ptr();
            // SAFETY: `vma` is valid while `guard` is held.
            let (ops, private, pgoff) =
                unsafe { ((*raw).vm_ops, (*raw).vm_private_data, (*raw).vm_pgoff) };
            if ops != src.vm_ops() || private.cast_const() != src.vm_private_data() {
                continue;
            }
            stats.vmas += 1;
            stats.entries += walk_vma(vma, pgoff, src, first, end, missing, mm_index, f)?;
        }
        drop(nofault);
        drop(guard);
        Ok(stats)
    }
}

/// Reads the PTE at `addr` of `vma` (a `VM_PFNMAP` VMA), if present.
fn read_pte(vma: &VmaRef, addr: usize) -> Option<(usize, bindings::pgprotval_t, bool)> {
    let mut args = bindings::follow_pfnmap_args {
        vma: vma.as_ptr(),
        address: addr,
        ..Default::default()
    };
    // SAFETY: `vma` is borrowed from an mmap read guard, which
    // follow_pfnmap_start() requires to be held until follow_pfnmap_end().
    if unsafe { bindings::follow_pfnmap_start(&mut args) } != 0 {
        return None;
    }
    let out = (args.pfn, args.pgprot.pgprot, args.writable);
    // SAFETY: Paired with the successful follow_pfnmap_start() above.
    unsafe { bindings::follow_pfnmap_end(&mut args) };
    Some(out)
}

/// Step 4 for one VMA; returns the number of entries visited.
#[expect(clippy::too_many_arguments)]
fn walk_vma<S, F>(
    vma: &VmaRef,
    vm_pgoff: usize,
    src: &S,
    first: usize,
    end: usize,
    missing: Missing,
    mm_index: usize,
    f: &mut F,
) -> Result<u64>
where
    S: PfnSource,
    F: FnMut(&PfnEntry) -> Result,
{
    let pages = (vma.end() - vma.start()) / PAGE_SIZE;
    let lo = first.max(vm_pgoff);
    let hi = end.min(vm_pgoff.saturating_add(pages));
    let mut n = 0u64;
    let mut visit = |pgoff: usize| -> Result {
        let addr = vma.start() + (pgoff - vm_pgoff) * PAGE_SIZE;
        let mut pte = read_pte(vma, addr);
        if pte.is_none() && missing == Missing::Populate {
            src.populate(vma, addr, pgoff)?;
            pte = read_pte(vma, addr);
        }
        let Some((pfn, prot, writable)) = pte else {
            return Ok(());
        };
        // SAFETY: Pure computations on a protection value.
        let (dirty, cache_bits) = unsafe {
            (
                ffi::rust_hmm_prot_dirty(prot),
                ffi::rust_hmm_prot_cache_bits(prot),
            )
        };
        n += 1;
        if n % 4096 == 0 && kernel::current!().signal_pending() {
            return Err(ERESTARTSYS);
        }
        f(&PfnEntry {
            addr,
            pgoff,
            pfn,
            writable,
            dirty,
            cache_bits: cache_bits as u64,
            mm_index,
        })
    };
    if lo < hi {
        match missing {
            Missing::Populate => {
                for pgoff in lo..hi {
                    visit(pgoff)?;
                }
            }
            Missing::Skip => {
                let mut pgoff = lo;
                while let Some(p) = src.next_maybe_mapped(pgoff, hi) {
                    // A source answering outside the range ends the VMA.
                    if p < pgoff || p >= hi {
                        break;
                    }
                    visit(p)?;
                    pgoff = p + 1;
                }
            }
        }
    }
    Ok(n)
}

#[kunit_tests(rust_hmm_pfn_walk)]
mod tests {
    use super::*;
    use crate::kunit_mm::{self, PAGE};
    use core::sync::atomic::{AtomicUsize, Ordering};
    use kernel::{ffi::c_int, page::Page};

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
            unsafe { ffi::rust_hmm_page_to_pfn(self.pages[pgoff - BASE].as_ptr()) }
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

        fn populate(&self, vma: &VmaRef, addr: usize, pgoff: usize) -> Result {
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
            assert_eq!(e.addr as u64, a + (1 + i as u64) * PAGE);
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
            assert_eq!(e.addr as u64, a + i as u64 * PAGE);
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
