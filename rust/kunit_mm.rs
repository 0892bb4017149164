// SPDX-License-Identifier: GPL-2.0

//! Real address spaces for the KUnit suites of the abstractions.
//!
//! Each KUnit case runs in a kernel thread of its own. [`attach`] gives that
//! thread an mm (`kunit_attach_mm()`, `lib/kunit/user_alloc.c`), which it
//! keeps until the [`TestMm`] is dropped, so the `vm_mmap()`, `vm_munmap()`
//! and user copies below act on a process address space like any other:
//! faults, invalidations and notifiers behave as for a user process.

use crate::devmem::{
    DevicePool,
    DevmemOps, //
};
use crate::ffi;
use crate::folio::Folio;
use crate::gpusvm::{
    GpuSvm,
    GpuSvmOps,
    Invalidation, //
};
use crate::hmm_dma::DmaMap;
use crate::migrate::{
    DstFolio,
    DstPage,
    Migration,
    Select, //
};
use crate::mmu_notifier::{
    Event,
    IntervalNotifier,
    IntervalNotifierOps,
    NotifierRange, //
};
use crate::pfn_walk::{
    PfnSource,
    VmaRegistry, //
};
use crate::vma_ops::{
    VmOps,
    VmOpsTable, //
};
use core::sync::atomic::{
    AtomicU64,
    Ordering, //
};
use kernel::{
    bindings,
    error::to_result,
    ffi::c_void,
    mm::{
        virt::{
            VmaNew,
            VmaRef, //
        },
        MmWithUser,
        MmapReadGuard, //
    },
    page::{
        Page,
        PAGE_SIZE, //
    },
    prelude::*,
    str::CString,
    sync::{
        aref::ARef,
        Arc, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    }, //
};

/// Page size as an address offset.
pub(crate) const PAGE: usize = PAGE_SIZE;

/// The test thread's own mm, given by [`attach`]; dropping it takes the mm
/// away from the thread again and frees it.
///
/// `kunit_attach_mm()` leaves the mm attached until the thread exits, and
/// then `exit_mm()` takes a lazy-TLB reference of its own on top of the one
/// `kthread_use_mm()` took: one `mm_struct` (about 4 KiB of slab) was lost
/// per case, which `make check`'s unload test saw as slab growth over 100
/// module loads. Detaching with `kthread_unuse_mm()` leaves the thread one
/// lazy reference, dropped at its last context switch, as for any kthread.
///
/// # Invariants
///
/// `mm` is `current`'s mm, attached by `kunit_attach_mm()`, which holds a
/// user reference of its own that this type drops.
pub(crate) struct TestMm {
    mm: ARef<MmWithUser>,
}

impl core::ops::Deref for TestMm {
    type Target = MmWithUser;

    fn deref(&self) -> &MmWithUser {
        &self.mm
    }
}

impl Drop for TestMm {
    fn drop(&mut self) {
        let mm = self.mm.as_raw();
        // SAFETY: By the type invariant `mm` is the current kthread's mm,
        // from `kthread_use_mm()`, and the user reference `mm_alloc()` gave
        // `kunit_attach_mm()` is ours to drop; `self.mm` keeps another until
        // after this.
        unsafe {
            bindings::kthread_unuse_mm(mm);
            bindings::mmput(mm);
        }
    }
}

/// Gives the test thread an mm of its own, until the result is dropped.
/// `EBUSY` if the thread already has one.
pub(crate) fn attach() -> Result<TestMm> {
    if kernel::current!().mm().is_some() {
        return Err(EBUSY);
    }
    // SAFETY: Called from a KUnit case, whose kernel thread has no mm (just
    // checked) and may adopt one.
    to_result(unsafe { bindings::kunit_attach_mm() })?;
    let mm = kernel::current!()
        .mm()
        .ok_or(ENOMEM)?
        .mmget_not_zero()
        .ok_or(EFAULT)?;
    // INVARIANT: The mm `kunit_attach_mm()` just attached to this thread.
    Ok(TestMm { mm })
}

/// Maps `pages` pages of `file` (shared, from file page `pgoff`) or, with a
/// null `file`, anonymous private memory, in the thread's mm.
pub(crate) fn mmap(
    file: *mut bindings::file,
    pages: usize,
    writable: bool,
    pgoff: usize,
) -> Result<usize> {
    let len = pages * PAGE_SIZE;
    // SAFETY: `file` is null or a file the caller holds a reference to;
    // `vm_mmap()` takes its own for the mapping.
    let addr = unsafe { ffi::rust_hmm_vm_mmap(file, len, writable, pgoff) };
    if addr > usize::MAX - 4095 {
        // `IS_ERR_VALUE()`: a negative errno.
        return Err(Error::from_errno(addr as i32));
    }
    Ok(addr)
}

/// Anonymous private memory: [`mmap`] with no file.
pub(crate) fn mmap_anon(pages: usize, writable: bool) -> Result<usize> {
    mmap(core::ptr::null_mut(), pages, writable, 0)
}

/// Writable anonymous memory whose start is aligned to `align` bytes (a
/// power of two): a larger mapping trimmed at both ends.
pub(crate) fn mmap_aligned(pages: usize, align: usize) -> Result<usize> {
    let extra = align / PAGE;
    let addr = mmap_anon(pages + extra, true)?;
    let start = (addr + align - 1) & !(align - 1);
    let head = (start - addr) / PAGE;
    if head > 0 {
        munmap(addr, head)?;
    }
    if extra > head {
        munmap(start + pages * PAGE, extra - head)?;
    }
    Ok(start)
}

/// What [`SvmRecorder`] keeps: the invalidations it saw and the ranges
/// "mapped" (first, end) by tests.
#[derive(Default)]
pub(crate) struct SvmSeen {
    pub(crate) calls: u32,
    pub(crate) last: Option<Invalidation>,
    pub(crate) mapped: KVec<(usize, usize)>,
}

/// [`GpuSvmOps`] that record into [`SvmSeen`] and drop the mapped ranges
/// an invalidation overlaps.
pub(crate) struct SvmRecorder;

impl GpuSvmOps for SvmRecorder {
    type State = SvmSeen;

    fn invalidate(&self, seen: &mut SvmSeen, inv: &Invalidation) {
        seen.calls += 1;
        seen.last = Some(*inv);
        seen.mapped
            .retain(|&mut (s, e)| e <= inv.start() || s >= inv.end());
    }
}

/// Chunk sizes of the test SVMs, as Xe's.
pub(crate) const SVM_SIZES: &[usize] = &[1 << 21, 1 << 16, PAGE];

/// A test SVM over the whole user address space of `mm`, with 2 MiB
/// notifier chunks and [`SVM_SIZES`].
pub(crate) fn svm(mm: &MmWithUser) -> Result<Pin<KBox<GpuSvm<SvmRecorder>>>> {
    svm_with(mm, 1 << 21)
}

/// As [`svm`], with notifier chunks of `notifier_size` bytes.
pub(crate) fn svm_with(
    mm: &MmWithUser,
    notifier_size: usize,
) -> Result<Pin<KBox<GpuSvm<SvmRecorder>>>> {
    let sizes = if notifier_size < 1 << 21 {
        &SVM_SIZES[1..]
    } else {
        SVM_SIZES
    };
    let svm = GpuSvm::new(
        mm,
        PAGE,
        (1 << 47) - PAGE,
        notifier_size,
        sizes,
        SvmRecorder,
        SvmSeen::default(),
    );
    KBox::pin_init(svm, GFP_KERNEL)
}

/// Maps `pages` pages of a new anon-inode file with `fops` and private
/// data `private`, shared and writable, in the thread's mm: an object's
/// file, as a driver's `mmap` would see it.
///
/// # Safety
///
/// `private` is what `fops` expect as the file's private data, and it
/// outlives every mapping of the file.
pub(crate) unsafe fn map_file(
    fops: &'static bindings::file_operations,
    private: *const c_void,
    pages: usize,
) -> Result<usize> {
    // SAFETY: The fops are static; the caller vouches for `private`.
    let file = unsafe { ffi::rust_hmm_anon_file(fops, private.cast_mut()) };
    kernel::error::from_err_ptr(file)?;
    let addr = mmap(file, pages, true, 0);
    // SAFETY: Our reference from `rust_hmm_anon_file`; the mapping, if
    // any, holds its own.
    unsafe { bindings::fput(file) };
    addr
}

/// What [`map_with`] calls as the file's `mmap`.
type MmapHook<'a> = &'a dyn Fn(&VmaNew) -> Result;

struct HookFileOps(bindings::file_operations);
// SAFETY: As for `PfnVmOps`.
unsafe impl Sync for HookFileOps {}
static HOOK_FOPS: HookFileOps = HookFileOps(bindings::file_operations {
    mmap: Some(hook_mmap),
    // SAFETY: All-zero is a valid `file_operations` (no callbacks).
    ..unsafe { core::mem::zeroed() }
});

/// `mmap` of a [`map_with`] file: its hook.
///
/// # Safety
///
/// Called by the core mm on a file of [`HOOK_FOPS`], within `map_with`,
/// whose private data points to a live [`MmapHook`].
unsafe extern "C" fn hook_mmap(
    file: *mut bindings::file,
    vma: *mut bindings::vm_area_struct,
) -> i32 {
    // SAFETY: Per the contract.
    let hook = unsafe { *(*file).private_data.cast::<MmapHook<'_>>() };
    // SAFETY: A VMA in its `mmap` call.
    match hook(unsafe { VmaNew::from_raw(vma) }) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Maps `pages` pages of a new anon-inode file, shared and writable, in
/// the thread's mm, with `mmap` as the file's `mmap`: a driver's, for
/// the VMA it is given.
pub(crate) fn map_with(pages: usize, mmap: &dyn Fn(&VmaNew) -> Result) -> Result<usize> {
    let private: *const MmapHook<'_> = &mmap;
    // SAFETY: `HOOK_FOPS` read the private data only in `mmap`, which the
    // file gets only from the `vm_mmap()` inside `map_file`, while `mmap`
    // lives (nothing else holds the file to map it again).
    unsafe { map_file(&HOOK_FOPS.0, private.cast(), pages) }
}

/// Maps one page of `obj` with `table`, reads it through the mapping and,
/// if `write`, writes it, then unmaps it: the first error of the accesses.
/// For objects with no registry; `EINVAL` otherwise.
pub(crate) fn access_once<T: VmOps>(
    table: &'static VmOpsTable<T>,
    obj: &Arc<T>,
    write: bool,
) -> Result {
    if obj.vma_registry().is_some() {
        return Err(EINVAL);
    }
    let addr = map_with(1, &|vma| {
        // SAFETY: The last step of the file's `mmap`, which returns this
        // result; the object has no registry (checked).
        unsafe { table.install(vma, obj.clone()) }
    })?;
    let mut b = [0u8; 1];
    let r = read_user(addr, &mut b).and_then(|()| match write {
        true => write_user(addr, b"w"),
        false => Ok(()),
    });
    munmap(addr, 1)?;
    r
}

/// `vm_munmap()` of `pages` pages at `addr` in the thread's mm.
pub(crate) fn munmap(addr: usize, pages: usize) -> Result {
    // SAFETY: Only the test's own mappings are passed, and nothing of the
    // kernel's lives in the thread's user address space.
    to_result(unsafe { bindings::vm_munmap(addr, pages * PAGE_SIZE) })
}

/// Writes `data` to user address `addr` as the CPU would (faults included).
pub(crate) fn write_user(addr: usize, data: &[u8]) -> Result {
    UserSlice::new(UserPtr::from_addr(addr), data.len())
        .writer()
        .write_slice(data)
}

/// Reads `out.len()` bytes at user address `addr`, as the CPU would.
pub(crate) fn read_user(addr: usize, out: &mut [u8]) -> Result {
    UserSlice::new(UserPtr::from_addr(addr), out.len())
        .reader()
        .read_slice(out)
}

/// The first `out.len()` bytes of page `pfn`, read through the kernel's
/// mapping of it.
///
/// # Safety
///
/// `pfn` is a page that stays allocated during the call.
pub(crate) unsafe fn read_pfn(pfn: u64, out: &mut [u8]) -> bool {
    // SAFETY: The caller keeps the page alive; `out` has room for the bytes.
    unsafe { ffi::rust_hmm_copy_from_folio(out.as_mut_ptr().cast(), pfn as usize, out.len()) }
}

/// What a [`Recorder`] saw, under the notifier lock.
#[derive(Default)]
pub(crate) struct Seen {
    /// Invalidations that reached the callback.
    pub(crate) calls: u64,
    /// The last one's range and event.
    pub(crate) last: Option<(usize, usize, Event)>,
    /// A device mapping of one page (`(address, pfn)`), dropped by any
    /// invalidation that covers it.
    pub(crate) mapped: Option<(usize, u64)>,
}

/// Counters shared with the test, outside the notifier.
#[derive(Default)]
pub(crate) struct Counters {
    /// Second passes run, and how many of them were told they may block.
    pub(crate) finishes: AtomicU64,
    pub(crate) blockable: AtomicU64,
    /// `release` calls.
    pub(crate) releases: AtomicU64,
}

/// Notifier callbacks that record what reaches them.
pub(crate) struct Recorder<const TWO_PASS: bool> {
    pub(crate) counters: Arc<Counters>,
}

impl<const TWO_PASS: bool> Recorder<TWO_PASS> {
    /// Callbacks and the counters they update.
    pub(crate) fn new() -> Result<(Self, Arc<Counters>)> {
        let counters = Arc::new(Counters::default(), GFP_KERNEL)?;
        Ok((
            Self {
                counters: counters.clone(),
            },
            counters,
        ))
    }
}

impl<const TWO_PASS: bool> IntervalNotifierOps for Recorder<TWO_PASS> {
    type State = Seen;
    type Finish = ();
    const TWO_PASS: bool = TWO_PASS;

    fn invalidate(&self, state: &mut Seen, range: &NotifierRange<'_>) {
        state.calls += 1;
        state.last = Some((range.start(), range.end(), range.event()));
        if let Some((addr, _)) = state.mapped {
            if range.start() <= addr && addr < range.end() {
                state.mapped = None;
            }
        }
    }

    fn invalidate_finish(&self, _finish: (), blockable: bool) {
        self.counters.finishes.fetch_add(1, Ordering::Relaxed);
        if blockable {
            self.counters.blockable.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn release(&self, _state: &mut Seen) {
        self.counters.releases.fetch_add(1, Ordering::Relaxed);
    }
}

/// A single-pass [`Recorder`] notifier, as most suites use.
pub(crate) type Notifier = Pin<KBox<IntervalNotifier<Recorder<false>>>>;

/// A [`Notifier`] over `[start, start + len)` of `mm`.
pub(crate) fn notifier(mm: &MmWithUser, start: usize, len: usize) -> Result<Notifier> {
    let (ops, _) = Recorder::new()?;
    KBox::pin_init(
        IntervalNotifier::new(mm, start, len, ops, Default::default()),
        GFP_KERNEL,
    )
}

/// A device whose memory keeps nothing of its own: its pages read back as
/// zeros when they return to system memory.
pub(crate) struct ZeroDevice;

impl DevmemOps for ZeroDevice {
    type PageData = ();
    type Memory = crate::devmem::Private;

    fn folio_free(_pool: &DevicePool<Self>, _pfn: u64, _data: &[()]) {}

    fn copy_to_ram(
        _pool: &DevicePool<Self>,
        _pfn: u64,
        _data: &[()],
        dst: &mut DstFolio,
    ) -> Result {
        dst.zero();
        Ok(())
    }
}

/// Moves the `pages` untouched pages at `addr` of `mm` into `pool` and
/// returns how many moved; `fill` sees each destination page first (an
/// error leaves that page where it is). A page that holds data is refused:
/// nothing here copies it.
pub(crate) fn move_to<T: DevmemOps>(
    mm: &MmWithUser,
    pool: &DevicePool<T>,
    addr: usize,
    pages: usize,
    mut fill: impl FnMut(DstPage<'_>) -> Result,
) -> Result<u64> {
    let lock = mm.mmap_read_lock();
    let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    let end = addr + pages * PAGE_SIZE;
    let mut m = Migration::vma(vma, addr, end, pool.owner(), Select::System, false)?;
    // Untouched pages have no source page, so nothing to copy.
    Ok(pool.migrate_to_device(
        &mut m,
        |_order| true,
        |dst, src, _first| match src.pfn() {
            Some(_) => Err(EINVAL),
            None => {
                // Coherent memory comes as it is: the CPU will map it.
                if !dst.is_filled() {
                    dst.zero();
                }
                fill(dst.subpage(0).ok_or(EINVAL)?)
            }
        },
    ))
}

/// A pool of [`ZeroDevice`] memory that holds the `pages` untouched pages
/// at `addr` of `mm`, moved there: they are device-private pages of the
/// pool's owner until the CPU touches them or the pool is dropped. `EBUSY`
/// if not all of them moved.
pub(crate) fn to_device(
    mm: &MmWithUser,
    addr: usize,
    pages: usize,
) -> Result<Pin<KBox<DevicePool<ZeroDevice>>>> {
    let pool = KBox::pin_init(DevicePool::new(ZeroDevice, 2 << 20, 1), GFP_KERNEL)?;
    if move_to(mm, &pool, addr, pages, |_| Ok(()))? != pages as u64 {
        return Err(EBUSY);
    }
    Ok(pool)
}

/// The page frame number of `page`.
pub(crate) fn page_pfn(page: &Page) -> u64 {
    // SAFETY: `page` is a live page.
    unsafe { ffi::page_to_pfn(page.as_ptr()) as u64 }
}

/// The folio of `page`, for examples of [`crate::folio`].
pub(crate) fn page_folio(page: &Page) -> *mut bindings::folio {
    // SAFETY: `page` is a live page.
    unsafe { ffi::page_folio(page.as_ptr()) }
}

/// Whether the folio of page `pfn` is dirty (`folio_test_dirty()`).
///
/// # Safety
///
/// `pfn` is a page that stays allocated during the call.
pub(crate) unsafe fn page_dirty(pfn: u64) -> bool {
    // SAFETY: The caller keeps the page alive.
    unsafe { ffi::rust_hmm_page_dirty(pfn as usize) }
}

/// The reference count of the folio of page `pfn` (`folio_ref_count()`).
///
/// # Safety
///
/// `pfn` is a page that stays allocated during the call.
pub(crate) unsafe fn page_refcount(pfn: u64) -> i32 {
    // SAFETY: The caller keeps the page, and so a reference to its folio,
    // alive for the call.
    unsafe { Folio::from_raw(ffi::page_folio(ffi::pfn_to_page(pfn as usize))) }.ref_count()
}

/// Notifier callbacks whose `invalidate` is one function of the state and
/// the range: what a test wants to learn from each invalidation.
pub(crate) struct OnInvalidate<S>(fn(&mut S, &NotifierRange<'_>));

impl<S: Send + Unpin + 'static> IntervalNotifierOps for OnInvalidate<S> {
    type State = S;
    type Finish = ();

    fn invalidate(&self, state: &mut S, range: &NotifierRange<'_>) {
        (self.0)(state, range)
    }
}

/// A notifier over `[start, start + len)` of `mm`, its state
/// `S::default()`, whose `invalidate` calls `f`.
pub(crate) fn notifier_with<S: Send + Unpin + Default + 'static>(
    mm: &MmWithUser,
    start: usize,
    len: usize,
    f: fn(&mut S, &NotifierRange<'_>),
) -> Result<Pin<KBox<IntervalNotifier<OnInvalidate<S>>>>> {
    KBox::pin_init(
        IntervalNotifier::new(mm, start, len, OnInvalidate(f), S::default()),
        GFP_KERNEL,
    )
}

/// An object that maps itself, as a driver's would: `VM_PFNMAP` VMAs of an
/// anon-inode file, recorded in `vmas`, whose PTEs `populate` fills with
/// the object's own pages (file page offset `i` maps page `i`).
#[pin_data]
pub(crate) struct PfnObj {
    #[pin]
    pub(crate) vmas: VmaRegistry,
    pages: KVec<Page>,
}

impl PfnObj {
    /// The PFN of the object's page `pgoff`.
    pub(crate) fn pfn(&self, pgoff: usize) -> usize {
        page_pfn(&self.pages[pgoff]) as usize
    }
}

struct PfnVmOps(bindings::vm_operations_struct);
// SAFETY: Only function pointers, never written.
unsafe impl Sync for PfnVmOps {}
static PFN_VM_OPS: PfnVmOps = PfnVmOps(bindings::vm_operations_struct {
    open: Some(pfn_open),
    close: Some(pfn_close),
    // SAFETY: All-zero is a valid `vm_operations_struct` (no callbacks).
    ..unsafe { core::mem::zeroed() }
});

struct PfnFileOps(bindings::file_operations);
// SAFETY: As for `PfnVmOps`.
unsafe impl Sync for PfnFileOps {}
static PFN_FOPS: PfnFileOps = PfnFileOps(bindings::file_operations {
    mmap: Some(pfn_mmap),
    // SAFETY: All-zero is a valid `file_operations` (no callbacks).
    ..unsafe { core::mem::zeroed() }
});

/// `mmap` of a [`PfnObj`]'s file.
///
/// # Safety
///
/// Called by the core mm on a file of [`PFN_FOPS`], whose private data is
/// a [`PfnObj`] that outlives every mapping ([`PfnMapping`] unmaps them
/// before it frees the object).
unsafe extern "C" fn pfn_mmap(
    file: *mut bindings::file,
    vma: *mut bindings::vm_area_struct,
) -> i32 {
    // SAFETY: Per the contract; the VMA is being set up.
    let obj = unsafe { (*file).private_data.cast::<PfnObj>() };
    // SAFETY: A VMA in its `mmap` call may have its flags set.
    unsafe { ffi::rust_hmm_vma_set_pfnmap(vma) };
    // SAFETY: The object is alive; `register` is called in `mmap`, after
    // which nothing fails, and `close` unregisters.
    if let Err(e) = unsafe { (*obj).vmas.register(vma) } {
        return e.to_errno();
    }
    // SAFETY: Nothing else uses the VMA during its `mmap` call.
    unsafe {
        (*vma).vm_private_data = obj.cast();
        (*vma).vm_ops = &PFN_VM_OPS.0;
    }
    0
}

/// The [`PfnObj`] of `vma`.
///
/// # Safety
///
/// `vma` is a live VMA of a [`PfnObj`] (its private data), which outlives
/// it.
unsafe fn pfn_obj<'a>(vma: *const bindings::vm_area_struct) -> &'a PfnObj {
    // SAFETY: Per the contract.
    unsafe { &*(*vma).vm_private_data.cast::<PfnObj>() }
}

/// # Safety
///
/// Called by the core mm on a VMA copied from one of a [`PfnObj`]'s.
unsafe extern "C" fn pfn_open(vma: *mut bindings::vm_area_struct) {
    // SAFETY: The copy has the live object as its private data; `close`
    // unregisters.
    unsafe { pfn_obj(vma).vmas.register_or_poison(vma) };
}

/// # Safety
///
/// Called by the core mm, once, on a VMA of a [`PfnObj`].
unsafe extern "C" fn pfn_close(vma: *mut bindings::vm_area_struct) {
    // SAFETY: One of the object's VMAs.
    unsafe { pfn_obj(vma).vmas.unregister(vma) };
}

impl PfnSource for PfnObj {
    fn vm_ops(&self) -> *const bindings::vm_operations_struct {
        &PFN_VM_OPS.0
    }

    fn vm_private_data(&self) -> *const c_void {
        core::ptr::from_ref(self).cast()
    }

    fn next_maybe_mapped(&self, from: usize, to: usize) -> Option<usize> {
        (from < to).then_some(from)
    }

    fn populate(&self, _mm: &MmapReadGuard<'_>, vma: &VmaRef, addr: usize, pgoff: usize) -> Result {
        let pfn = self.pfn(pgoff);
        // SAFETY: The walker checked that `vma` is ours (`VM_PFNMAP`) and
        // holds its mmap lock; the page is ours and outlives the mapping.
        let r = unsafe { bindings::vmf_insert_pfn(vma.as_ptr(), addr, pfn) };
        if r == bindings::vm_fault_reason_VM_FAULT_NOPAGE {
            Ok(())
        } else {
            Err(EFAULT)
        }
    }
}

/// A [`PfnObj`] mapped shared and writable at `addr` of the thread's mm,
/// from file page offset 0; dropping it unmaps it before the object goes.
pub(crate) struct PfnMapping {
    obj: Option<Pin<KBox<PfnObj>>>,
    /// Where the object is mapped.
    pub(crate) addr: usize,
    pages: usize,
}

impl core::ops::Deref for PfnMapping {
    type Target = PfnObj;

    fn deref(&self) -> &PfnObj {
        // `obj` is only taken in `drop`.
        self.obj.as_deref().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for PfnMapping {
    fn drop(&mut self) {
        if munmap(self.addr, self.pages).is_err() {
            // A VMA may still point to the object: leak it, never free it.
            core::mem::forget(self.obj.take());
        }
    }
}

/// A [`PfnObj`] of `pages` zeroed pages, mapped in the thread's mm.
pub(crate) fn pfn_mapping(pages: usize) -> Result<PfnMapping> {
    let mut v = KVec::with_capacity(pages, GFP_KERNEL)?;
    for _ in 0..pages {
        v.push(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?, GFP_KERNEL)?;
    }
    let obj = KBox::pin_init(
        try_pin_init!(PfnObj {
            vmas <- VmaRegistry::new(),
            pages: v,
        }),
        GFP_KERNEL,
    )?;
    let private: *const PfnObj = &*obj;
    // SAFETY: The fops take a `PfnObj` as private data, and the object
    // outlives the file's mappings (see `PfnMapping`).
    let addr = unsafe { map_file(&PFN_FOPS.0, private.cast(), pages)? };
    Ok(PfnMapping {
        obj: Some(obj),
        addr,
        pages,
    })
}

/// Built in: an object for the examples of
/// [`VmOpsTable::walk_mapping`](crate::vma_ops::VmOpsTable::walk_mapping).
#[cfg(not(MODULE))]
mod pages {
    use super::*;
    use crate::vma_ops::{
        PfnVma,
        Pgprot,
        VmFault, //
    };
    use kernel::{
        fs::File,
        mm::virt::flags, //
    };

    /// Zeroed pages that a file maps, page offset `i` to page `i`,
    /// read-only until written: a write through a read-only PTE reaches
    /// `pfn_mkwrite`, as in a driver that tracks writes.
    pub(crate) struct Pages(KVec<Page>);

    /// The table of [`Pages`]' VMAs.
    pub(crate) static PAGES_VM_OPS: VmOpsTable<Pages> = VmOpsTable::new();

    impl Pages {
        /// The PFN of page `pgoff`.
        pub(crate) fn pfn(&self, pgoff: usize) -> usize {
            page_pfn(&self.0[pgoff]) as usize
        }

        fn insert(vma: &PfnVma<'_, Self>, addr: usize, pgoff: usize, write: bool) -> Result {
            let mut f = vma.flags();
            if !write {
                f &= !flags::WRITE;
            }
            let page = vma.data().0.get(pgoff).ok_or(EFAULT)?;
            vma.insert_pfn_prot(addr, page, Pgprot::from_vm_flags(f))
        }
    }

    /// What owns [`Pages`]' callbacks: the kernel itself. (`#[vtable]`
    /// would name the crate's `LocalModule`, which the kernel crate keeps
    /// private, and `Pages` is public for the examples.)
    pub(crate) struct BuiltIn;

    impl kernel::ModuleMetadata for BuiltIn {
        const NAME: &'static kernel::str::CStr = c"rust_kernel";
        // SAFETY: A null module is the kernel's own, which
        // `try_module_get()` and `module_put()` accept.
        const THIS_MODULE: kernel::ThisModule =
            unsafe { kernel::ThisModule::from_ptr(core::ptr::null_mut()) };
    }

    #[vtable]
    impl VmOps for Pages {
        type OwnerModule = BuiltIn;

        fn fault(vmf: &VmFault<'_, Self>) -> Result {
            Self::insert(vmf.vma(), vmf.address(), vmf.pgoff(), vmf.is_write())
        }

        fn pfn_mkwrite(vmf: &VmFault<'_, Self>) -> Result {
            vmf.vma().zap_vma_range(vmf.address(), PAGE);
            Self::insert(vmf.vma(), vmf.address(), vmf.pgoff(), true)
        }
    }

    /// `n` new [`Pages`], mapped shared and writable in the thread's mm:
    /// the object, the address and the file.
    pub(crate) fn map_pages(mm: &MmWithUser, n: usize) -> Result<(Arc<Pages>, usize, ARef<File>)> {
        let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            v.push(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?, GFP_KERNEL)?;
        }
        let obj = Arc::new(Pages(v), GFP_KERNEL)?;
        // SAFETY: The last step of the test file's `mmap`; no registry.
        let addr = map_with(n, &|vma| unsafe { PAGES_VM_OPS.install(vma, obj.clone()) })?;
        let file = file_at(mm, addr)?;
        Ok((obj, addr, file))
    }

    /// The file mapped at `addr` in `mm`; `EFAULT` if none is.
    pub(crate) fn file_at(mm: &MmWithUser, addr: usize) -> Result<ARef<File>> {
        let lock = mm.mmap_read_lock();
        let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
        // SAFETY: The VMA is in the tree of the mm whose lock is held, so
        // is the file it holds, if any.
        let file = unsafe { (*vma.as_ptr()).vm_file };
        if file.is_null() {
            return Err(EFAULT);
        }
        // SAFETY: A live file (above); `ARef` takes a reference of its own.
        Ok(unsafe { File::from_raw_file(file) }.into())
    }
}

#[cfg(not(MODULE))]
pub(crate) use pages::{
    file_at,
    map_pages,
    Pages,
    PAGES_VM_OPS, //
};

/// A faux device that can DMA to all of memory, for the suites and
/// examples of `hmm_dma`; unregistered when dropped.
pub(crate) struct DmaDevice(kernel::faux::Registration);

impl DmaDevice {
    /// The device, bound.
    pub(crate) fn device(&self) -> &kernel::device::Device<kernel::device::Bound> {
        let faux: &kernel::faux::Device<kernel::device::Bound> = self.0.as_ref();
        faux.as_ref()
    }
}

/// A [`DmaDevice`] that reaches all of memory (a 64-bit mask).
pub(crate) fn dma_device() -> Result<DmaDevice> {
    // A name of its own: a case that failed an assertion leaves its device.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = CString::try_from_fmt(fmt!(
        "rust_hmm_kunit_dma{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))?;
    let reg = kernel::faux::Registration::new(&name, None)?;
    let dev = DmaDevice(reg);
    let raw = crate::hmm_dma::raw_dev(dev.device());
    // SAFETY: A device just registered, that nothing maps for yet. The faux bus gives it no
    // storage for a streaming mask: it uses its coherent mask's, as
    // platform devices do.
    to_result(unsafe {
        (*raw).dma_mask = &raw mut (*raw).coherent_dma_mask;
        bindings::dma_set_mask_and_coherent(raw, u64::MAX)
    })?;
    Ok(dev)
}

/// Notifier callbacks for a state that is a [`DmaMap`], as a DMA device
/// has it: every invalidation unmaps the range (the device's DMA to it
/// being over), release unmaps everything.
pub(crate) struct DmaOps;

impl IntervalNotifierOps for DmaOps {
    type State = Option<DmaMap>;
    type Finish = ();

    fn invalidate(&self, map: &mut Option<DmaMap>, range: &NotifierRange<'_>) {
        if let Some(map) = map {
            map.unmap_range(range.start(), range.end());
        }
    }

    fn release(&self, map: &mut Option<DmaMap>) {
        if let Some(map) = map {
            map.unmap_range(0, usize::MAX);
        }
    }
}

/// A notifier over `[start, start + npages pages)` of `mm` whose state is
/// a [`DmaMap`] of that window for `dev`.
pub(crate) fn dma_notifier(
    mm: &MmWithUser,
    dev: &DmaDevice,
    start: usize,
    npages: usize,
) -> Result<Pin<KBox<IntervalNotifier<DmaOps>>>> {
    let notifier = KBox::pin_init(
        IntervalNotifier::new(mm, start, npages * PAGE, DmaOps, None),
        GFP_KERNEL,
    )?;
    // SAFETY: The map goes into the state of a notifier over its window
    // whose ops unmap every invalidated range and everything on release.
    let map = unsafe { DmaMap::new(dev.device(), start, npages)? };
    let seq = notifier.read_begin();
    *notifier.lock_valid(seq).ok_or(EAGAIN)? = Some(map);
    Ok(notifier)
}
