// SPDX-License-Identifier: GPL-2.0

//! Built in only: the PTEs that map a range of a file, in every VMA of a
//! table's, seen and changed under their PTE lock in one
//! `walk_page_mapping()`: for a driver that tracks writes to its pages,
//! cleaning and write-protecting a page is one step, not two walks
//! (`clean_record_shared_mapping_range()` then
//! `wp_shared_mapping_range()`).
//!
//! `walk_page_mapping()` is not exported to modules, so a module build
//! has none of this; it uses `mapping_wrprotect_range()` per page instead
//! (see [`crate::pfn_walk`]).
//!
//! A PTE is cleaned as `page_vma_mkclean_one()` in `mm/rmap.c` does it:
//! cleared and flushed from the TLB (`ptep_clear_flush()`), so that no CPU
//! can set its dirty bit any more, then set again clean and read-only, and
//! each VMA walked has an mmu-notifier range (`MMU_NOTIFY_PROTECTION_PAGE`)
//! open meanwhile, so that no secondary MMU keeps write access either. The
//! flush is per page, as rmap's: the x86 ranged flush is hidden from
//! modules, and so from the kernel's bindings. VMAs of the mapping that are
//! not the table's are not entered: `walk_page_mapping()` stops the whole
//! walk when `test_walk` skips a VMA, so they are skipped one level down,
//! at each PUD, with no notifier called for them.

use super::{
    VmOps,
    VmOpsTable, //
};
use core::marker::PhantomData;
use kernel::{
    bindings,
    error::to_result,
    fs::File,
    page::PAGE_SHIFT,
    prelude::*, //
};

/// What the walk's callbacks share (`mm_walk::private`).
struct Walk<'a> {
    vm_ops: *const bindings::vm_operations_struct,
    /// The current VMA is not the table's.
    skip: bool,
    range: bindings::mmu_notifier_range,
    /// PTEs cleaned so far.
    changed: usize,
    f: &'a mut dyn FnMut(RawPte<'_>),
}

/// A present PTE of one of the table's VMAs, with its PTE lock held.
///
/// # Invariants
///
/// `ptep` is that PTE, of `vma` at `addr`, locked for `'a`; `vma` is the
/// table's and in its file's `i_mmap` tree for `'a`.
struct RawPte<'a> {
    vma: *mut bindings::vm_area_struct,
    addr: usize,
    ptep: *mut bindings::pte_t,
    pte: bindings::pte_t,
    changed: &'a mut usize,
}

impl RawPte<'_> {
    fn pgoff(&self) -> usize {
        // SAFETY: The VMA is valid, and in the `i_mmap` tree, whose lock
        // the walk holds, so neither field changes (type invariants).
        let (start, pgoff) = unsafe {
            let vma = &*self.vma;
            (vma.__bindgen_anon_1.__bindgen_anon_1.vm_start, vma.vm_pgoff)
        };
        pgoff + ((self.addr - start) >> PAGE_SHIFT)
    }

    fn pfn(&self) -> usize {
        // SAFETY: Reads a value.
        unsafe { bindings::pte_pfn(self.pte) }
    }

    fn is_dirty(&self) -> bool {
        // SAFETY: Reads a value.
        unsafe { bindings::pte_dirty(self.pte) != 0 }
    }

    fn is_writable(&self) -> bool {
        // SAFETY: Reads a value.
        unsafe { bindings::pte_write(self.pte) != 0 }
    }

    fn clean_wrprotect(&mut self) -> bool {
        if !self.is_dirty() && !self.is_writable() {
            return false;
        }
        // SAFETY: `ptep` is a present PTE of `vma` at `addr`, locked
        // (type invariants), and a notifier range is open over the VMA.
        // Cleared and flushed first, it can gain no dirty bit between the
        // read and the write back, as in `page_vma_mkclean_one()`.
        let old = unsafe {
            bindings::flush_cache_page(self.vma, self.addr, self.pfn());
            let old = bindings::ptep_clear_flush(self.vma, self.addr, self.ptep);
            self.pte = bindings::pte_wrprotect(bindings::pte_mkclean(old));
            bindings::set_pte_at((*self.vma).vm_mm, self.addr, self.ptep, self.pte);
            old
        };
        *self.changed += 1;
        // SAFETY: Reads a value.
        unsafe { bindings::pte_dirty(old) != 0 }
    }
}

/// A present PTE that maps a page of the walked range in a VMA of a
/// table's, as [`VmOpsTable::walk_mapping`] lends it: the PTE lock is
/// held for `'a`.
///
/// # Examples
///
/// What a walk reports of each page a process touched.
///
/// ```
/// # use rust_hmm::kunit_mm::{self, PAGES_VM_OPS};
/// # let mm = kunit_mm::attach()?;
/// let (obj, addr, file) = kunit_mm::map_pages(&mm, 2)?;
/// kunit_mm::write_user(addr + kunit_mm::PAGE, b"x")?;
/// let mut seen = None;
/// PAGES_VM_OPS.walk_mapping(&file, 0, 2, |pte| {
///     seen = Some((pte.pgoff(), pte.pfn(), pte.is_dirty(), pte.is_writable()));
/// })?;
/// assert_eq!(seen, Some((1, obj.pfn(1), true, true)));
/// # kunit_mm::munmap(addr, 2)?;
/// # Ok::<(), Error>(())
/// ```
pub struct MappedPte<'a, T> {
    raw: RawPte<'a>,
    _t: PhantomData<&'a T>,
}

impl<'a, T: VmOps> MappedPte<'a, T> {
    /// The object this VMA maps.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGES_VM_OPS};
    /// # let mm = kunit_mm::attach()?;
    /// let (obj, addr, file) = kunit_mm::map_pages(&mm, 2)?;
    /// kunit_mm::read_user(addr, &mut [0u8; 1])?;
    /// let mut ours = false;
    /// PAGES_VM_OPS.walk_mapping(&file, 0, 2, |pte| ours = core::ptr::eq(pte.data(), &*obj))?;
    /// assert!(ours);
    /// # kunit_mm::munmap(addr, 2)?;
    /// # Ok::<(), Error>(())
    /// ```
    pub fn data(&self) -> &'a T {
        // SAFETY: A VMA of the table (type invariants of `RawPte`), so
        // `install` or `open` gave it an `Arc<T>` that `close` drops after
        // the VMA left the `i_mmap` tree, where it is for `'a`.
        unsafe { &*(*self.raw.vma).vm_private_data.cast::<T>() }
    }

    /// The user address this PTE maps.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGES_VM_OPS};
    /// # let mm = kunit_mm::attach()?;
    /// let (obj, addr, file) = kunit_mm::map_pages(&mm, 2)?;
    /// # let _ = obj;
    /// kunit_mm::read_user(addr + kunit_mm::PAGE, &mut [0u8; 1])?;
    /// let mut at = 0;
    /// PAGES_VM_OPS.walk_mapping(&file, 0, 2, |pte| at = pte.address())?;
    /// assert_eq!(at, addr + kunit_mm::PAGE);
    /// # kunit_mm::munmap(addr, 2)?;
    /// # Ok::<(), Error>(())
    /// ```
    pub fn address(&self) -> usize {
        self.raw.addr
    }

    /// The page offset in the file this PTE maps.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGES_VM_OPS};
    /// # let mm = kunit_mm::attach()?;
    /// let (obj, addr, file) = kunit_mm::map_pages(&mm, 2)?;
    /// # let _ = obj;
    /// kunit_mm::read_user(addr + kunit_mm::PAGE, &mut [0u8; 1])?;
    /// let mut pgoff = 0;
    /// PAGES_VM_OPS.walk_mapping(&file, 0, 2, |pte| pgoff = pte.pgoff())?;
    /// assert_eq!(pgoff, 1);
    /// # kunit_mm::munmap(addr, 2)?;
    /// # Ok::<(), Error>(())
    /// ```
    pub fn pgoff(&self) -> usize {
        self.raw.pgoff()
    }

    /// The page frame the PTE names.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGES_VM_OPS};
    /// # let mm = kunit_mm::attach()?;
    /// let (obj, addr, file) = kunit_mm::map_pages(&mm, 2)?;
    /// kunit_mm::read_user(addr, &mut [0u8; 1])?;
    /// let mut pfn = 0;
    /// PAGES_VM_OPS.walk_mapping(&file, 0, 2, |pte| pfn = pte.pfn())?;
    /// assert_eq!(pfn, obj.pfn(0));
    /// # kunit_mm::munmap(addr, 2)?;
    /// # Ok::<(), Error>(())
    /// ```
    pub fn pfn(&self) -> usize {
        self.raw.pfn()
    }

    /// Whether the page was written through this PTE since it was last
    /// cleaned (the hardware dirty bit).
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGES_VM_OPS};
    /// # let mm = kunit_mm::attach()?;
    /// let (obj, addr, file) = kunit_mm::map_pages(&mm, 2)?;
    /// # let _ = obj;
    /// kunit_mm::read_user(addr, &mut [0u8; 1])?;
    /// kunit_mm::write_user(addr + kunit_mm::PAGE, b"x")?;
    /// let mut dirty = [true; 2];
    /// PAGES_VM_OPS.walk_mapping(&file, 0, 2, |pte| dirty[pte.pgoff()] = pte.is_dirty())?;
    /// assert_eq!(dirty, [false, true]);
    /// # kunit_mm::munmap(addr, 2)?;
    /// # Ok::<(), Error>(())
    /// ```
    pub fn is_dirty(&self) -> bool {
        self.raw.is_dirty()
    }

    /// Whether a write through this PTE would not fault.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGES_VM_OPS};
    /// # let mm = kunit_mm::attach()?;
    /// let (obj, addr, file) = kunit_mm::map_pages(&mm, 2)?;
    /// # let _ = obj;
    /// // Read first: mapped read-only.
    /// kunit_mm::read_user(addr, &mut [0u8; 1])?;
    /// let mut writable = true;
    /// PAGES_VM_OPS.walk_mapping(&file, 0, 1, |pte| writable = pte.is_writable())?;
    /// assert!(!writable);
    /// kunit_mm::write_user(addr, b"x")?;
    /// PAGES_VM_OPS.walk_mapping(&file, 0, 1, |pte| writable = pte.is_writable())?;
    /// assert!(writable);
    /// # kunit_mm::munmap(addr, 2)?;
    /// # Ok::<(), Error>(())
    /// ```
    pub fn is_writable(&self) -> bool {
        self.raw.is_writable()
    }

    /// Clears the dirty bit and write access: the next write through this
    /// PTE faults (`pfn_mkwrite`). Returns whether the PTE was dirty when
    /// it changed (a CPU may have written since it was read).
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGES_VM_OPS};
    /// # let mm = kunit_mm::attach()?;
    /// let (obj, addr, file) = kunit_mm::map_pages(&mm, 2)?;
    /// # let _ = obj;
    /// kunit_mm::write_user(addr, b"x")?;
    /// let mut was_dirty = false;
    /// let n = PAGES_VM_OPS.walk_mapping(&file, 0, 2, |pte| was_dirty = pte.clean_wrprotect())?;
    /// assert!(was_dirty && n == 1);
    /// // Now clean and read-only.
    /// let mut bits = (true, true);
    /// PAGES_VM_OPS.walk_mapping(&file, 0, 2, |pte| bits = (pte.is_dirty(), pte.is_writable()))?;
    /// assert_eq!(bits, (false, false));
    /// # kunit_mm::munmap(addr, 2)?;
    /// # Ok::<(), Error>(())
    /// ```
    pub fn clean_wrprotect(&mut self) -> bool {
        self.raw.clean_wrprotect()
    }
}

impl<T: VmOps> VmOpsTable<T> {
    /// Calls `f` with each present PTE that maps file pages `first` to
    /// `first + nr - 1` of `file`'s mapping in a VMA of this table, in any
    /// process, under the PTE lock; `f` may clean and write-protect it.
    /// Returns how many PTEs `f` changed. `EINVAL` if the range is empty
    /// or wraps.
    ///
    /// `f` runs in atomic context (a spinlock is held) and must not
    /// sleep. A PTE of a page that is not mapped at the time is not seen,
    /// nor is a huge leaf (the table's VMAs have none).
    ///
    /// # Examples
    ///
    /// Dirty tracking: the pages written since the last look, in any
    /// process, each write-protected again in the same walk so that the
    /// next write faults (`pfn_mkwrite`) and is seen.
    ///
    /// ```
    /// use rust_hmm::kunit_mm::{self, PAGE, PAGES_VM_OPS};
    ///
    /// # let mm = kunit_mm::attach()?;
    /// let (_obj, addr, file) = kunit_mm::map_pages(&mm, 4)?;
    /// kunit_mm::write_user(addr + 2 * PAGE, b"x")?;
    /// let mut written = 0u32;
    /// let cleaned = PAGES_VM_OPS.walk_mapping(&file, 0, 4, |pte| {
    ///     if pte.clean_wrprotect() {
    ///         written |= 1 << pte.pgoff();
    ///     }
    /// })?;
    /// assert_eq!((written, cleaned), (0b100, 1));
    /// // Nothing was written since.
    /// let again = PAGES_VM_OPS.walk_mapping(&file, 0, 4, |pte| {
    ///     pte.clean_wrprotect();
    /// })?;
    /// assert_eq!(again, 0);
    /// kunit_mm::write_user(addr + 2 * PAGE, b"y")?;
    /// written = 0;
    /// PAGES_VM_OPS.walk_mapping(&file, 0, 4, |pte| {
    ///     if pte.clean_wrprotect() {
    ///         written |= 1 << pte.pgoff();
    ///     }
    /// })?;
    /// assert_eq!(written, 0b100);
    /// // An empty range is refused.
    /// assert_eq!(PAGES_VM_OPS.walk_mapping(&file, 0, 0, |_| ()), Err(EINVAL));
    /// kunit_mm::munmap(addr, 4)?;
    /// # Ok::<(), Error>(())
    /// ```
    pub fn walk_mapping(
        &self,
        file: &File,
        first: usize,
        nr: usize,
        mut f: impl FnMut(&mut MappedPte<'_, T>),
    ) -> Result<usize> {
        let mut each = |raw: RawPte<'_>| {
            f(&mut MappedPte {
                raw,
                _t: PhantomData,
            })
        };
        walk_mapping(file, self.as_raw(), first, nr, &mut each)
    }
}

/// The walk of [`VmOpsTable::walk_mapping`], not generic, so that it is
/// built in, where `walk_page_mapping()` is, for every table's use.
fn walk_mapping(
    file: &File,
    vm_ops: *const bindings::vm_operations_struct,
    first: usize,
    nr: usize,
    f: &mut dyn FnMut(RawPte<'_>),
) -> Result<usize> {
    if nr == 0 || first.checked_add(nr - 1).is_none() {
        return Err(EINVAL);
    }
    let ops = bindings::mm_walk_ops {
        pud_entry: Some(pud_entry),
        pmd_entry: Some(pmd_entry),
        pte_entry: Some(pte_entry),
        test_walk: Some(test_walk),
        pre_vma: Some(pre_vma),
        post_vma: Some(post_vma),
        ..pin_init::zeroed()
    };
    let mut walk = Walk {
        vm_ops,
        skip: true,
        range: pin_init::zeroed(),
        changed: 0,
        f,
    };
    // SAFETY: `file` is alive, so is the inode that owns its mapping.
    let mapping = unsafe { (*file.as_ptr()).f_mapping };
    // SAFETY: `mapping` is valid; `walk_page_mapping()` wants
    // `i_mmap_rwsem` held, and the callbacks get `walk` through `private`
    // only during the call.
    let r = unsafe {
        bindings::i_mmap_lock_read(mapping);
        let r = bindings::walk_page_mapping(
            mapping,
            first,
            nr,
            &ops,
            core::ptr::from_mut(&mut walk).cast(),
        );
        bindings::i_mmap_unlock_read(mapping);
        r
    };
    to_result(r)?;
    Ok(walk.changed)
}

/// The `Walk` of a callback's `mm_walk`.
///
/// # Safety
///
/// `w` is the `mm_walk` of a `walk_mapping()` in progress.
unsafe fn walk_of<'a>(w: *mut bindings::mm_walk) -> &'a mut Walk<'a> {
    // SAFETY: Per the contract, `private` is `walk_mapping()`'s `Walk`,
    // used by one callback at a time.
    unsafe { &mut *(*w).private.cast::<Walk<'a>>() }
}

/// `test_walk`: notes whether the VMA is the table's, and walks it either
/// way (a positive return would end the whole walk).
///
/// # Safety
///
/// Called by `walk_page_mapping()` for `walk_mapping()`.
unsafe extern "C" fn test_walk(_start: usize, _end: usize, w: *mut bindings::mm_walk) -> i32 {
    // SAFETY: Per the contract; `vma` is in the `i_mmap` tree, whose lock
    // `walk_mapping()` holds, and `vm_ops` does not change after `mmap`.
    unsafe {
        let walk = walk_of(w);
        walk.skip = !core::ptr::eq((*(*w).vma).vm_ops, walk.vm_ops);
    }
    0
}

/// `pre_vma`: opens the notifier range over the VMA's part of the walk.
///
/// # Safety
///
/// Called by `walk_page_mapping()` for `walk_mapping()`, after
/// `test_walk`.
unsafe extern "C" fn pre_vma(start: usize, end: usize, w: *mut bindings::mm_walk) -> i32 {
    // SAFETY: Per the contract.
    let walk = unsafe { walk_of(w) };
    if !walk.skip {
        // SAFETY: `mm` is the walk's, valid during it; the range ends in
        // `post_vma`, which the core calls after every `pre_vma` that
        // returned 0.
        unsafe {
            bindings::mmu_notifier_range_init(
                &mut walk.range,
                bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_PAGE,
                0,
                (*w).mm,
                start,
                end,
            );
            bindings::mmu_notifier_invalidate_range_start(&mut walk.range);
        }
    }
    0
}

/// `post_vma`: closes the notifier range; the PTEs were flushed one by one.
///
/// # Safety
///
/// Called by `walk_page_mapping()` for `walk_mapping()`, after
/// `pre_vma`.
unsafe extern "C" fn post_vma(w: *mut bindings::mm_walk) {
    // SAFETY: Per the contract.
    let walk = unsafe { walk_of(w) };
    if !walk.skip {
        // SAFETY: The range `pre_vma` opened.
        unsafe { bindings::mmu_notifier_invalidate_range_end(&mut walk.range) };
    }
}

/// `pud_entry`: does not go below a PUD of another VMA, nor split a huge
/// one of ours.
///
/// # Safety
///
/// Called by `walk_page_mapping()` for `walk_mapping()`, with `pud` an
/// entry of the walk's VMA.
unsafe extern "C" fn pud_entry(
    pud: *mut bindings::pud_t,
    _addr: usize,
    _next: usize,
    w: *mut bindings::mm_walk,
) -> i32 {
    // SAFETY: Per the contract.
    unsafe {
        if walk_of(w).skip || bindings::pud_leaf(bindings::pudp_get(pud)) {
            (*w).action = bindings::page_walk_action_ACTION_CONTINUE;
        }
    }
    0
}

/// `pmd_entry`: does not split a huge PMD (the walker would otherwise).
///
/// # Safety
///
/// As for `pud_entry`.
unsafe extern "C" fn pmd_entry(
    pmd: *mut bindings::pmd_t,
    _addr: usize,
    _next: usize,
    w: *mut bindings::mm_walk,
) -> i32 {
    // SAFETY: Per the contract; the PMD may change under us, so it is
    // read once, as the core reads it.
    unsafe {
        if bindings::pmd_leaf(bindings::pmdp_get_lockless(pmd)) {
            (*w).action = bindings::page_walk_action_ACTION_CONTINUE;
        }
    }
    0
}

/// `pte_entry`: the closure, for a present PTE of one of the table's VMAs.
///
/// # Safety
///
/// Called by `walk_page_mapping()` for `walk_mapping()`, with `ptep` the
/// PTE at `addr` of the walk's VMA, locked.
unsafe extern "C" fn pte_entry(
    ptep: *mut bindings::pte_t,
    addr: usize,
    _next: usize,
    w: *mut bindings::mm_walk,
) -> i32 {
    // SAFETY: Per the contract.
    let (walk, vma) = unsafe { (walk_of(w), (*w).vma) };
    // SAFETY: `ptep` is locked (the contract).
    let pte = unsafe { bindings::ptep_get(ptep) };
    // SAFETY: Reads a value.
    if walk.skip || unsafe { bindings::pte_present(pte) } == 0 {
        return 0;
    }
    // INVARIANT: A present PTE, locked during the call, of a VMA of the
    // table (not skipped) in the `i_mmap` tree, whose lock is held.
    (walk.f)(RawPte {
        vma,
        addr,
        ptep,
        pte,
        changed: &mut walk.changed,
    });
    0
}
