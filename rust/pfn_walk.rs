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
//! visits them one address space at a time. (Built into the kernel,
//! `VmOpsTable::walk_mapping()` walks `i_mmap` instead, and may change
//! the PTEs.)
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
//! freed; that is what lets a walk dereference a record. An object whose
//! VMAs come from a [`VmOpsTable`](crate::vma_ops::VmOpsTable) leaves
//! these calls to it
//! ([`VmOps::vma_registry`](crate::vma_ops::VmOps::vma_registry)). Given
//! that, every
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

//!
//! # Files
//!
//! - this file: `NoPagefaults`, the registry ([`VmaRegistry`]), the
//!   object it tracks ([`PfnSource`]), and what a walk does and reports
//!   ([`Missing`], [`PfnEntry`], [`WalkStats`]);
//! - `walk.rs`: the walk ([`VmaRegistry::walk`]);
//! - `tests.rs`: the KUnit suite `rust_hmm_pfn_walk`.

use crate::ffi;
use kernel::{
    bindings,
    ffi::c_void,
    mm::{
        virt::VmaRef,
        MmapReadGuard, //
    },
    prelude::*,
    static_lock_class,
    str::CStr,
    sync::Mutex, //
};

/// The registry lock's name, as a `static`: the initialiser `new` returns
/// runs in the crate that uses it, and lockdep WARNs when one class key
/// comes with two name pointers, which a literal copied into each crate
/// would give (see `mmu_notifier`).
static VMAS_NAME: &CStr = c"VmaRegistry::vmas";

mod tests;
mod walk;

/// Page faults disabled (`pagefault_disable()`) while it lives: a user
/// access fails at once instead of faulting, for code that runs under a
/// lock the fault path may need (the mmap lock, the notifier lock).
pub(crate) struct NoPagefaults(core::marker::PhantomData<*mut ()>);

impl NoPagefaults {
    pub(crate) fn new() -> Self {
        // SAFETY: Paired with `pagefault_enable()` in `drop`, on this task:
        // the type is neither `Send` nor `Sync`.
        unsafe { ffi::pagefault_disable() };
        Self(core::marker::PhantomData)
    }
}

impl Drop for NoPagefaults {
    fn drop(&mut self) {
        // SAFETY: `new` disabled them on this task.
        unsafe { ffi::pagefault_enable() };
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
///
/// # Examples
///
/// A test object (an object that maps itself, as a driver's would) keeps
/// its VMAs in `obj.vmas`. An munmap in the middle of its mapping splits
/// the VMA in two, and a walk visits both.
///
/// ```
/// use rust_hmm::pfn_walk::Missing;
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let _mm = kunit_mm::attach()?;
/// let obj = kunit_mm::pfn_mapping(3)?;
/// assert_eq!(obj.vmas.count(), 1);
/// kunit_mm::munmap(obj.addr + PAGE, 1)?;
/// assert_eq!(obj.vmas.count(), 2);
/// let stats = obj.vmas.walk(&*obj, 0, 3, Missing::Populate, |_| Ok(()))?;
/// assert_eq!((stats.entries, stats.vmas), (2, 2));
/// # Ok::<(), Error>(())
/// ```
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
///
/// # Examples
///
/// A new mapping has no PTE: `Skip` finds nothing, `Populate` installs
/// them, and then `Skip` finds them too.
///
/// ```
/// use rust_hmm::pfn_walk::Missing;
/// # use rust_hmm::kunit_mm;
/// # let _mm = kunit_mm::attach()?;
/// let obj = kunit_mm::pfn_mapping(4)?;
/// let entries = |missing| {
///     let stats = obj.vmas.walk(&*obj, 0, 4, missing, |_| Ok(()))?;
///     Ok::<_, Error>(stats.entries)
/// };
/// assert_eq!(entries(Missing::Skip)?, 0);
/// assert_eq!(entries(Missing::Populate)?, 4);
/// assert_eq!(entries(Missing::Skip)?, 4);
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Missing {
    /// Visit only present entries; cost follows the populated part.
    Skip,
    /// Install the entry through [`PfnSource::populate`] first; visits
    /// every page of the range in every VMA.
    Populate,
}

/// One present PTE, as the walker read it under the PTE lock.
///
/// # Examples
///
/// A CPU write through the mapping dirties the PTE of the page it lands in.
///
/// ```
/// use rust_hmm::pfn_walk::{Missing, PfnEntry};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let _mm = kunit_mm::attach()?;
/// let obj = kunit_mm::pfn_mapping(2)?;
/// obj.vmas.walk(&*obj, 0, 2, Missing::Populate, |_| Ok(()))?;
/// kunit_mm::write_user(obj.addr + PAGE, b"cpu")?;
/// let mut seen: [Option<PfnEntry>; 2] = [None; 2];
/// obj.vmas.walk(&*obj, 0, 2, Missing::Skip, |e| {
///     *seen.get_mut(e.pgoff).ok_or(EINVAL)? = Some(*e);
///     Ok(())
/// })?;
/// let (clean, dirty) = (seen[0].ok_or(ENOENT)?, seen[1].ok_or(ENOENT)?);
/// assert_eq!((dirty.addr, dirty.pfn), (obj.addr + PAGE, obj.pfn(1)));
/// assert!(dirty.dirty && dirty.writable && !clean.dirty);
/// // Write-back, in the only address space of the walk.
/// assert_eq!((dirty.cache_bits, dirty.mm_index), (0, 0));
/// # Ok::<(), Error>(())
/// ```
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
///
/// # Examples
///
/// A walk visits every VMA that maps the object, even where the range
/// has no page of it.
///
/// ```
/// use rust_hmm::pfn_walk::Missing;
/// # use rust_hmm::kunit_mm;
/// # let _mm = kunit_mm::attach()?;
/// let obj = kunit_mm::pfn_mapping(2)?;
/// let stats = obj.vmas.walk(&*obj, 0, 2, Missing::Populate, |_| Ok(()))?;
/// assert_eq!((stats.entries, stats.vmas, stats.mms), (2, 1, 1));
/// // Past the end of the mapping.
/// let stats = obj.vmas.walk(&*obj, 2, 10, Missing::Skip, |_| Ok(()))?;
/// assert_eq!((stats.entries, stats.vmas, stats.mms), (0, 1, 1));
/// # Ok::<(), Error>(())
/// ```
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
///
/// # Examples
///
/// A source that knows which of its pages it has ever mapped (here, only
/// page 2 of the test object) lets a [`Missing::Skip`] walk read just
/// those PTEs.
///
/// ```
/// use kernel::{bindings, ffi::c_void, mm::{virt::VmaRef, MmapReadGuard}};
/// use rust_hmm::pfn_walk::{Missing, PfnSource};
/// # use rust_hmm::kunit_mm::{self, PfnObj};
///
/// struct Tracked<'a> {
///     obj: &'a PfnObj,
///     mapped: usize,
/// }
///
/// impl PfnSource for Tracked<'_> {
///     // The VMAs are the test object's.
///     fn vm_ops(&self) -> *const bindings::vm_operations_struct {
///         self.obj.vm_ops()
///     }
///
///     fn vm_private_data(&self) -> *const c_void {
///         self.obj.vm_private_data()
///     }
///
///     fn next_maybe_mapped(&self, from: usize, to: usize) -> Option<usize> {
///         (from..to).contains(&self.mapped).then_some(self.mapped)
///     }
///
///     fn populate(
///         &self,
///         mm: &MmapReadGuard<'_>,
///         vma: &VmaRef,
///         addr: usize,
///         pgoff: usize,
///     ) -> Result {
///         self.obj.populate(mm, vma, addr, pgoff)
///     }
/// }
///
/// # let _mm = kunit_mm::attach()?;
/// let obj = kunit_mm::pfn_mapping(4)?;
/// let src = Tracked { obj: &obj, mapped: 2 };
/// obj.vmas.walk(&src, 2, 3, Missing::Populate, |_| Ok(()))?;
/// let mut last = None;
/// let stats = obj.vmas.walk(&src, 0, 4, Missing::Skip, |e| {
///     last = Some(e.pgoff);
///     Ok(())
/// })?;
/// assert_eq!((stats.entries, last), (1, Some(2)));
/// # Ok::<(), Error>(())
/// ```
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
    /// would. Called with the mmap read lock held: `mm` is its guard, and
    /// `vma` is borrowed from it. An object mapped with a
    /// [`VmOpsTable`](crate::vma_ops::VmOpsTable) inserts through
    /// [`VmOpsTable::with_vma`](crate::vma_ops::VmOpsTable::with_vma) on
    /// `mm`.
    fn populate(&self, mm: &MmapReadGuard<'_>, vma: &VmaRef, addr: usize, pgoff: usize) -> Result;
}

impl VmaRegistry {
    /// An empty registry.
    ///
    /// # Examples
    ///
    /// An object embeds its registry, pinned with it. Until the object is
    /// mapped, a walk has nothing to visit.
    ///
    /// ```
    /// use rust_hmm::pfn_walk::{Missing, VmaRegistry};
    /// # use rust_hmm::kunit_mm;
    ///
    /// #[pin_data]
    /// struct Object {
    ///     #[pin]
    ///     vmas: VmaRegistry,
    /// }
    ///
    /// let obj = KBox::pin_init(pin_init!(Object { vmas <- VmaRegistry::new() }), GFP_KERNEL)?;
    /// assert_eq!(obj.vmas.count(), 0);
    /// # let _mm = kunit_mm::attach()?;
    /// // The walk needs a source: that of a test object, mapped elsewhere.
    /// let src = kunit_mm::pfn_mapping(1)?;
    /// let stats = obj.vmas.walk(&*src, 0, 1, Missing::Populate, |_| Ok(()))?;
    /// assert_eq!((stats.entries, stats.vmas, stats.mms), (0, 0, 0));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            vmas <- Mutex::new(
                Tracked {
                    records: KVVec::new(),
                    lost: false,
                },
                VMAS_NAME,
                static_lock_class!()
            ),
        })
    }

    /// Records `vma`. On failure nothing is recorded.
    ///
    /// # Safety
    ///
    /// `vma` is a valid VMA, in the `mmap` file operation (after which
    /// nothing fails) or in `vm_ops->open`, and [`Self::unregister`] is
    /// called for it in `vm_ops->close` before it is freed.
    ///
    /// # Examples
    ///
    /// An object's `mmap` records each new VMA (its `close` forgets it).
    ///
    /// ```
    /// use kernel::bindings;
    /// use rust_hmm::pfn_walk::VmaRegistry;
    /// # use rust_hmm::kunit_mm;
    /// # struct VmOps(bindings::vm_operations_struct);
    /// # // SAFETY: Only function pointers, never written.
    /// # unsafe impl Sync for VmOps {}
    /// # static VM_OPS: VmOps = VmOps(bindings::vm_operations_struct {
    /// #     open: Some(open),
    /// #     close: Some(close),
    /// #     // SAFETY: All-zero is a valid `vm_operations_struct` (no callbacks).
    /// #     ..unsafe { core::mem::zeroed() }
    /// # });
    /// # struct FileOps(bindings::file_operations);
    /// # // SAFETY: As for `VmOps`.
    /// # unsafe impl Sync for FileOps {}
    /// # static FOPS: FileOps = FileOps(bindings::file_operations {
    /// #     mmap: Some(mmap),
    /// #     // SAFETY: All-zero is a valid `file_operations` (no callbacks).
    /// #     ..unsafe { core::mem::zeroed() }
    /// # });
    /// # /// `vm_ops->open`, for a VMA copied from one of the object's (a split,
    /// # /// or `fork()`).
    /// # ///
    /// # /// # Safety
    /// # ///
    /// # /// Called by the core mm on a copy of a VMA that `mmap` set up.
    /// # unsafe extern "C" fn open(vma: *mut bindings::vm_area_struct) {
    /// #     // SAFETY: The copy has the registry as its private data, and
    /// #     // `close` unregisters it.
    /// #     unsafe { (*(*vma).vm_private_data.cast::<VmaRegistry>()).register_or_poison(vma) };
    /// # }
    /// # /// `vm_ops->close`.
    /// # ///
    /// # /// # Safety
    /// # ///
    /// # /// Called by the core mm, once, on a VMA that `mmap` or `open` set up.
    /// # unsafe extern "C" fn close(vma: *mut bindings::vm_area_struct) {
    /// #     // SAFETY: `mmap` made the registry the VMA's private data.
    /// #     unsafe { (*(*vma).vm_private_data.cast::<VmaRegistry>()).unregister(vma) };
    /// # }
    ///
    /// /// `mmap` of the object's file, whose private data is the object's
    /// /// registry.
    /// ///
    /// /// # Safety
    /// ///
    /// /// Called by the core mm on a file whose registry outlives its mappings.
    /// unsafe extern "C" fn mmap(
    ///     file: *mut bindings::file,
    ///     vma: *mut bindings::vm_area_struct,
    /// ) -> i32 {
    ///     // SAFETY: Per the contract.
    ///     let vmas = unsafe { (*file).private_data.cast::<VmaRegistry>() };
    ///     // SAFETY: `vma` is in its `mmap` call, after which nothing fails,
    ///     // and `close` unregisters it.
    ///     if let Err(e) = unsafe { (*vmas).register(vma) } {
    ///         return e.to_errno();
    ///     }
    ///     // SAFETY: Nothing else uses the VMA during its `mmap` call.
    ///     unsafe {
    ///         (*vma).vm_private_data = vmas.cast();
    ///         (*vma).vm_ops = &VM_OPS.0;
    ///     }
    ///     0
    /// }
    ///
    /// // First, so that it outlives the test's mm and every mapping in it.
    /// let vmas = KBox::pin_init(VmaRegistry::new(), GFP_KERNEL)?;
    /// # let _mm = kunit_mm::attach()?;
    /// let private: *const VmaRegistry = &*vmas;
    /// // SAFETY: `FOPS` take the registry as the file's private data, and it
    /// // outlives the mapping.
    /// let addr = unsafe { kunit_mm::map_file(&FOPS.0, private.cast(), 3)? };
    /// assert_eq!(vmas.count(), 1);
    /// kunit_mm::munmap(addr, 3)?;
    /// assert_eq!(vmas.count(), 0);
    /// # Ok::<(), Error>(())
    /// ```
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
    ///
    /// # Examples
    ///
    /// An munmap in the middle of a mapping splits its VMA: the core copies
    /// it with `open` for each part that stays, and closes the one that
    /// goes.
    ///
    /// ```
    /// use kernel::bindings;
    /// use rust_hmm::pfn_walk::VmaRegistry;
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # struct VmOps(bindings::vm_operations_struct);
    /// # // SAFETY: Only function pointers, never written.
    /// # unsafe impl Sync for VmOps {}
    /// # static VM_OPS: VmOps = VmOps(bindings::vm_operations_struct {
    /// #     open: Some(open),
    /// #     close: Some(close),
    /// #     // SAFETY: All-zero is a valid `vm_operations_struct` (no callbacks).
    /// #     ..unsafe { core::mem::zeroed() }
    /// # });
    /// # struct FileOps(bindings::file_operations);
    /// # // SAFETY: As for `VmOps`.
    /// # unsafe impl Sync for FileOps {}
    /// # static FOPS: FileOps = FileOps(bindings::file_operations {
    /// #     mmap: Some(mmap),
    /// #     // SAFETY: All-zero is a valid `file_operations` (no callbacks).
    /// #     ..unsafe { core::mem::zeroed() }
    /// # });
    /// # /// `mmap` of the object's file, whose private data is the object's
    /// # /// registry.
    /// # ///
    /// # /// # Safety
    /// # ///
    /// # /// Called by the core mm on a file whose registry outlives its mappings.
    /// # unsafe extern "C" fn mmap(
    /// #     file: *mut bindings::file,
    /// #     vma: *mut bindings::vm_area_struct,
    /// # ) -> i32 {
    /// #     // SAFETY: Per the contract.
    /// #     let vmas = unsafe { (*file).private_data.cast::<VmaRegistry>() };
    /// #     // SAFETY: `vma` is in its `mmap` call, after which nothing fails,
    /// #     // and `close` unregisters it.
    /// #     if let Err(e) = unsafe { (*vmas).register(vma) } {
    /// #         return e.to_errno();
    /// #     }
    /// #     // SAFETY: Nothing else uses the VMA during its `mmap` call.
    /// #     unsafe {
    /// #         (*vma).vm_private_data = vmas.cast();
    /// #         (*vma).vm_ops = &VM_OPS.0;
    /// #     }
    /// #     0
    /// # }
    /// # /// `vm_ops->close`.
    /// # ///
    /// # /// # Safety
    /// # ///
    /// # /// Called by the core mm, once, on a VMA that `mmap` or `open` set up.
    /// # unsafe extern "C" fn close(vma: *mut bindings::vm_area_struct) {
    /// #     // SAFETY: `mmap` made the registry the VMA's private data.
    /// #     unsafe { (*(*vma).vm_private_data.cast::<VmaRegistry>()).unregister(vma) };
    /// # }
    ///
    /// /// `vm_ops->open`, for a VMA copied from one of the object's (a split,
    /// /// or `fork()`).
    /// ///
    /// /// # Safety
    /// ///
    /// /// Called by the core mm on a copy of a VMA that `mmap` set up.
    /// unsafe extern "C" fn open(vma: *mut bindings::vm_area_struct) {
    ///     // SAFETY: The copy has the registry as its private data, and
    ///     // `close` unregisters it.
    ///     unsafe { (*(*vma).vm_private_data.cast::<VmaRegistry>()).register_or_poison(vma) };
    /// }
    ///
    /// // First, so that it outlives the test's mm and every mapping in it.
    /// let vmas = KBox::pin_init(VmaRegistry::new(), GFP_KERNEL)?;
    /// # let _mm = kunit_mm::attach()?;
    /// let private: *const VmaRegistry = &*vmas;
    /// // SAFETY: `FOPS` take the registry as the file's private data, and it
    /// // outlives the mapping.
    /// let addr = unsafe { kunit_mm::map_file(&FOPS.0, private.cast(), 3)? };
    /// kunit_mm::munmap(addr + PAGE, 1)?;
    /// assert_eq!(vmas.count(), 2);
    /// kunit_mm::munmap(addr, 3)?;
    /// assert_eq!(vmas.count(), 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub unsafe fn register_or_poison(&self, vma: *const bindings::vm_area_struct) {
        // SAFETY: Same contract.
        if unsafe { self.register(vma) }.is_err() {
            self.vmas.lock().lost = true;
        }
    }

    /// Forgets `vma`; nothing happens if it was never recorded.
    ///
    /// # Examples
    ///
    /// An object's `close` forgets the VMA; a VMA never recorded is no
    /// error.
    ///
    /// ```
    /// use kernel::bindings;
    /// use rust_hmm::pfn_walk::VmaRegistry;
    /// # use rust_hmm::kunit_mm;
    /// # struct VmOps(bindings::vm_operations_struct);
    /// # // SAFETY: Only function pointers, never written.
    /// # unsafe impl Sync for VmOps {}
    /// # static VM_OPS: VmOps = VmOps(bindings::vm_operations_struct {
    /// #     open: Some(open),
    /// #     close: Some(close),
    /// #     // SAFETY: All-zero is a valid `vm_operations_struct` (no callbacks).
    /// #     ..unsafe { core::mem::zeroed() }
    /// # });
    /// # struct FileOps(bindings::file_operations);
    /// # // SAFETY: As for `VmOps`.
    /// # unsafe impl Sync for FileOps {}
    /// # static FOPS: FileOps = FileOps(bindings::file_operations {
    /// #     mmap: Some(mmap),
    /// #     // SAFETY: All-zero is a valid `file_operations` (no callbacks).
    /// #     ..unsafe { core::mem::zeroed() }
    /// # });
    /// # /// `mmap` of the object's file, whose private data is the object's
    /// # /// registry.
    /// # ///
    /// # /// # Safety
    /// # ///
    /// # /// Called by the core mm on a file whose registry outlives its mappings.
    /// # unsafe extern "C" fn mmap(
    /// #     file: *mut bindings::file,
    /// #     vma: *mut bindings::vm_area_struct,
    /// # ) -> i32 {
    /// #     // SAFETY: Per the contract.
    /// #     let vmas = unsafe { (*file).private_data.cast::<VmaRegistry>() };
    /// #     // SAFETY: `vma` is in its `mmap` call, after which nothing fails,
    /// #     // and `close` unregisters it.
    /// #     if let Err(e) = unsafe { (*vmas).register(vma) } {
    /// #         return e.to_errno();
    /// #     }
    /// #     // SAFETY: Nothing else uses the VMA during its `mmap` call.
    /// #     unsafe {
    /// #         (*vma).vm_private_data = vmas.cast();
    /// #         (*vma).vm_ops = &VM_OPS.0;
    /// #     }
    /// #     0
    /// # }
    /// # /// `vm_ops->open`, for a VMA copied from one of the object's (a split,
    /// # /// or `fork()`).
    /// # ///
    /// # /// # Safety
    /// # ///
    /// # /// Called by the core mm on a copy of a VMA that `mmap` set up.
    /// # unsafe extern "C" fn open(vma: *mut bindings::vm_area_struct) {
    /// #     // SAFETY: The copy has the registry as its private data, and
    /// #     // `close` unregisters it.
    /// #     unsafe { (*(*vma).vm_private_data.cast::<VmaRegistry>()).register_or_poison(vma) };
    /// # }
    ///
    /// /// `vm_ops->close`.
    /// ///
    /// /// # Safety
    /// ///
    /// /// Called by the core mm, once, on a VMA that `mmap` or `open` set up.
    /// unsafe extern "C" fn close(vma: *mut bindings::vm_area_struct) {
    ///     // SAFETY: `mmap` made the registry the VMA's private data.
    ///     unsafe { (*(*vma).vm_private_data.cast::<VmaRegistry>()).unregister(vma) };
    /// }
    ///
    /// // First, so that it outlives the test's mm and every mapping in it.
    /// let vmas = KBox::pin_init(VmaRegistry::new(), GFP_KERNEL)?;
    /// # let _mm = kunit_mm::attach()?;
    /// let private: *const VmaRegistry = &*vmas;
    /// // SAFETY: `FOPS` take the registry as the file's private data, and it
    /// // outlives the mapping.
    /// let addr = unsafe { kunit_mm::map_file(&FOPS.0, private.cast(), 3)? };
    /// assert_eq!(vmas.count(), 1);
    /// vmas.unregister(core::ptr::null());
    /// assert_eq!(vmas.count(), 1);
    /// kunit_mm::munmap(addr, 3)?;
    /// assert_eq!(vmas.count(), 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn unregister(&self, vma: *const bindings::vm_area_struct) {
        let mut t = self.vmas.lock();
        if let Some(i) = t.records.iter().position(|r| r.vma == vma) {
            let last = t.records.len() - 1;
            t.records.swap(i, last);
            t.records.truncate(last);
        }
    }

    /// Number of VMAs recorded now.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm;
    /// # let _mm = kunit_mm::attach()?;
    /// // A test object that maps itself; `obj.vmas` is its registry.
    /// let obj = kunit_mm::pfn_mapping(2)?;
    /// assert_eq!(obj.vmas.count(), 1);
    /// kunit_mm::munmap(obj.addr, 2)?;
    /// assert_eq!(obj.vmas.count(), 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn count(&self) -> usize {
        self.vmas.lock().records.len()
    }
}
