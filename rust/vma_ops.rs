// SPDX-License-Identifier: GPL-2.0

//! The VMAs of a driver's own file: its `vm_operations_struct` as a trait,
//! the object each VMA keeps alive, and the PTEs a driver inserts there.
//!
//! A driver's `mmap` (e.g. [`MiscDevice::mmap`]) passes the new VMA and an
//! [`Arc`] of the object it maps to [`VmOpsTable::install`]. The VMA then
//! holds that reference: the core mm calls `open` on each copy of the VMA
//! (fork, split, mremap), which takes a reference of its own, and `close`
//! when a VMA goes, which drops it. The driver implements [`VmOps`]; the
//! table, a `static` of the driver's, holds the C callbacks that call it.
//! If the object has a [`VmaRegistry`] ([`VmOps::vma_registry`]), its VMAs
//! are recorded there, so that [`VmaRegistry::walk`] sees them.
//!
//! The kernel crate offers [`VmaNew`] (a VMA in `mmap`), [`VmaRef`] (a VMA
//! under its mmap or VMA read lock) and `VM_MIXEDMAP` page inserts; this
//! module adds `VM_PFNMAP` VMAs whose PTEs name pages of the object with a
//! protection chosen per insert ([`Pgprot`]), as a cache-mode-aware driver
//! needs, and whose PTEs the walker of [`crate::pfn_walk`] can read.
//!
//! # Lifetimes and locks
//!
//! [`PfnVma<'a, T>`](PfnVma) is a VMA of ours in its mm's tree, with a lock
//! held for `'a` under which PTEs may be inserted into it. It is only lent,
//! for a lifetime the borrower cannot choose (every function that lends
//! one is generic over it): to [`VmOps::fault`] and
//! [`VmOps::pfn_mkwrite`] inside a [`VmFault`], valid only during the
//! callback, and to the closure of [`VmOpsTable::with_vma`], under an
//! mmap read guard. `'a` is invariant, so the page of
//! [`PfnVma::insert_pfn_prot`] (a `&'a Page`) can only have been borrowed
//! from the object ([`PfnVma::data`] gives `&'a T`), or be `'static`. A
//! sound type that lends `&'a U` from `&'a self` keeps `U` until it is
//! dropped or borrowed mutably, which an object shared with its VMAs is
//! not before the last of them closes, after its PTEs are gone: so no PTE
//! outlives its page. `open` and `close` see a plain [`VmaRef`]: the VMA
//! is being copied or leaving its mm then, and nothing may be inserted.
//!
//! [`MiscDevice::mmap`]: kernel::miscdevice::MiscDevice::mmap

use crate::ffi;
use crate::pfn_walk::VmaRegistry;
use core::marker::PhantomData;
use kernel::{
    bindings,
    error::VTABLE_DEFAULT_ERROR,
    mm::{
        virt::{
            flags,
            vm_flags_t,
            VmaNew,
            VmaRef, //
        },
        MmapReadGuard, //
    },
    prelude::*,
    sync::{
        Arc,
        ArcBorrow, //
    }, //
};

mod tests;

/// The callbacks of the VMAs that map an object of the driver's.
///
/// The object is shared with its VMAs: each holds an [`Arc`] to it from
/// [`VmOpsTable::install`] (or `open`) to `close`. `fault` and
/// `pfn_mkwrite` return `Ok` once the PTE is in place
/// (`VM_FAULT_NOPAGE`), and an error to fail the access: `ENOMEM` is
/// `VM_FAULT_OOM`, anything else `VM_FAULT_SIGBUS`.
///
/// # Examples
///
/// An object of two zeroed pages, allocated when first touched, each
/// mapped read-only until written: the first write comes to
/// `pfn_mkwrite`, which counts it and makes the PTE writable.
///
/// ```
/// use core::sync::atomic::{AtomicUsize, Ordering};
/// use kernel::{page::{Page, PAGE_SIZE}, sync::{Arc, SetOnce}};
/// use rust_hmm::vma_ops::{Pgprot, VmFault, VmOps, VmOpsTable};
/// # use rust_hmm::kunit_mm;
///
/// struct Pages {
///     pages: [SetOnce<Page>; 2],
///     writes: AtomicUsize,
/// }
///
/// impl Pages {
///     /// Maps the page of the fault, writable or not.
///     fn insert(vmf: &VmFault<'_, Self>, write: bool) -> Result {
///         let slot = vmf.data().pages.get(vmf.pgoff()).ok_or(EFAULT)?;
///         // A racing fault may populate it first: either page will do.
///         slot.populate(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?);
///         let page = slot.as_ref().ok_or(ENOMEM)?;
///         let mut f = vmf.vma().flags();
///         if !write {
///             f &= !kernel::mm::virt::flags::WRITE;
///         }
///         vmf.vma().insert_pfn_prot(vmf.address(), page, Pgprot::from_vm_flags(f))
///     }
/// }
///
/// #[vtable]
/// impl VmOps for Pages {
///     fn fault(vmf: &VmFault<'_, Self>) -> Result {
///         Self::insert(vmf, vmf.is_write())
///     }
///
///     fn pfn_mkwrite(vmf: &VmFault<'_, Self>) -> Result {
///         vmf.data().writes.fetch_add(1, Ordering::Relaxed);
///         // The read-only PTE goes first: an insert never changes a PTE.
///         vmf.vma().zap_vma_range(vmf.address(), PAGE_SIZE);
///         Self::insert(vmf, true)
///     }
/// }
///
/// static PAGES_VM_OPS: VmOpsTable<Pages> = VmOpsTable::new();
///
/// let pages = [SetOnce::new(), SetOnce::new()];
/// let obj = Arc::new(Pages { pages, writes: AtomicUsize::new(0) }, GFP_KERNEL)?;
/// # let _mm = kunit_mm::attach()?;
/// let o = obj.clone();
/// // The driver's `mmap`; here, that of a test file.
/// let addr = kunit_mm::map_with(2, &|vma| {
///     // SAFETY: The last step of the file's `mmap`, whose result is
///     // this one; `Pages` has no registry.
///     unsafe { PAGES_VM_OPS.install(vma, o.clone()) }
/// })?;
/// let mut b = [0u8; 1];
/// kunit_mm::read_user(addr, &mut b)?;
/// kunit_mm::write_user(addr, b"x")?;
/// kunit_mm::write_user(addr + PAGE_SIZE, b"y")?;
/// // Page 1 was mapped writable by its write fault.
/// assert_eq!(obj.writes.load(Ordering::Relaxed), 1);
/// kunit_mm::munmap(addr, 2)?;
/// # Ok::<(), Error>(())
/// ```
#[vtable]
pub trait VmOps: Send + Sync + Sized + 'static {
    /// A copy of one of the object's VMAs (fork, split, mremap) was made;
    /// it holds a reference of its own already. Nothing may be inserted
    /// into it yet.
    ///
    /// # Examples
    ///
    /// An munmap in the middle of a mapping splits the VMA at both ends of
    /// the hole: two copies, one for each part that stays (the middle, the
    /// original, closes).
    ///
    /// ```
    /// use core::sync::atomic::{AtomicUsize, Ordering};
    /// use kernel::{mm::virt::VmaRef, sync::Arc};
    /// use rust_hmm::vma_ops::{VmFault, VmOps, VmOpsTable};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    ///
    /// struct Counted(AtomicUsize);
    ///
    /// #[vtable]
    /// impl VmOps for Counted {
    ///     fn open(&self, _vma: &VmaRef) {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///     }
    ///
    ///     fn fault(_vmf: &VmFault<'_, Self>) -> Result {
    ///         Err(EFAULT)
    ///     }
    /// }
    ///
    /// static COUNTED_VM_OPS: VmOpsTable<Counted> = VmOpsTable::new();
    ///
    /// let obj = Arc::new(Counted(AtomicUsize::new(0)), GFP_KERNEL)?;
    /// # let _mm = kunit_mm::attach()?;
    /// let o = obj.clone();
    /// // SAFETY: The last step of the test file's `mmap`; no registry.
    /// let addr = kunit_mm::map_with(3, &|vma| unsafe { COUNTED_VM_OPS.install(vma, o.clone()) })?;
    /// kunit_mm::munmap(addr + PAGE, 1)?;
    /// assert_eq!(obj.0.load(Ordering::Relaxed), 2);
    /// kunit_mm::munmap(addr, 3)?;
    /// # Ok::<(), Error>(())
    /// ```
    fn open(&self, _vma: &VmaRef) {}

    /// A VMA of the object goes: its PTEs are gone already, and its
    /// reference is dropped right after this returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::sync::atomic::{AtomicUsize, Ordering};
    /// use kernel::{mm::virt::VmaRef, sync::Arc};
    /// use rust_hmm::vma_ops::{VmFault, VmOps, VmOpsTable};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    ///
    /// struct Counted(AtomicUsize);
    ///
    /// #[vtable]
    /// impl VmOps for Counted {
    ///     fn close(&self, _vma: &VmaRef) {
    ///         self.0.fetch_add(1, Ordering::Relaxed);
    ///     }
    ///
    ///     fn fault(_vmf: &VmFault<'_, Self>) -> Result {
    ///         Err(EFAULT)
    ///     }
    /// }
    ///
    /// static COUNTED_VM_OPS: VmOpsTable<Counted> = VmOpsTable::new();
    ///
    /// let obj = Arc::new(Counted(AtomicUsize::new(0)), GFP_KERNEL)?;
    /// # let _mm = kunit_mm::attach()?;
    /// let o = obj.clone();
    /// // SAFETY: The last step of the test file's `mmap`; no registry.
    /// let addr = kunit_mm::map_with(3, &|vma| unsafe { COUNTED_VM_OPS.install(vma, o.clone()) })?;
    /// // One part goes, two stay; then both go.
    /// kunit_mm::munmap(addr + PAGE, 1)?;
    /// assert_eq!(obj.0.load(Ordering::Relaxed), 1);
    /// kunit_mm::munmap(addr, 3)?;
    /// assert_eq!(obj.0.load(Ordering::Relaxed), 3);
    /// # Ok::<(), Error>(())
    /// ```
    fn close(&self, _vma: &VmaRef) {}

    /// A fault on a page of one of the object's VMAs with no PTE: the
    /// mmap lock is held (the table sets no `map_pages`, so the core never
    /// calls this under the VMA lock alone).
    ///
    /// # Examples
    ///
    /// A fault that fails the access: the user copy gets `EFAULT`.
    ///
    /// ```
    /// use kernel::sync::Arc;
    /// use rust_hmm::vma_ops::{VmFault, VmOps, VmOpsTable};
    /// # use rust_hmm::kunit_mm;
    ///
    /// struct Hole;
    ///
    /// #[vtable]
    /// impl VmOps for Hole {
    ///     fn fault(_vmf: &VmFault<'_, Self>) -> Result {
    ///         Err(EFAULT)
    ///     }
    /// }
    ///
    /// static HOLE_VM_OPS: VmOpsTable<Hole> = VmOpsTable::new();
    ///
    /// let obj = Arc::new(Hole, GFP_KERNEL)?;
    /// # let _mm = kunit_mm::attach()?;
    /// // SAFETY: The last step of the test file's `mmap`; no registry.
    /// let addr = kunit_mm::map_with(1, &|vma| unsafe { HOLE_VM_OPS.install(vma, obj.clone()) })?;
    /// assert_eq!(kunit_mm::read_user(addr, &mut [0u8; 1]), Err(EFAULT));
    /// kunit_mm::munmap(addr, 1)?;
    /// # Ok::<(), Error>(())
    /// ```
    fn fault(vmf: &VmFault<'_, Self>) -> Result;

    /// The first write through a read-only PTE of the object's. Called
    /// only if the driver implements it; without it, the core makes the
    /// PTE writable itself.
    ///
    /// # Examples
    ///
    /// See [`VmOps`]: its object counts first writes here.
    ///
    /// ```
    /// use rust_hmm::vma_ops::{VmFault, VmOps};
    /// # use kernel::sync::Arc;
    /// # use rust_hmm::{kunit_mm, vma_ops::VmOpsTable};
    ///
    /// struct ReadOnly;
    ///
    /// #[vtable]
    /// impl VmOps for ReadOnly {
    ///     fn fault(_vmf: &VmFault<'_, Self>) -> Result {
    ///         Err(EFAULT)
    ///     }
    ///
    ///     // Refuse every write.
    ///     fn pfn_mkwrite(_vmf: &VmFault<'_, Self>) -> Result {
    ///         Err(EFAULT)
    ///     }
    /// }
    ///
    /// assert!(ReadOnly::HAS_PFN_MKWRITE);
    /// # static READONLY_RUN_VM_OPS: VmOpsTable<ReadOnly> = VmOpsTable::new();
    /// # let _mm = kunit_mm::attach()?;
    /// # let obj = Arc::new(ReadOnly, GFP_KERNEL)?;
    /// # assert_eq!(kunit_mm::access_once(&READONLY_RUN_VM_OPS, &obj, false), Err(EFAULT));
    /// # Ok::<(), Error>(())
    /// ```
    fn pfn_mkwrite(_vmf: &VmFault<'_, Self>) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// The registry that records the object's VMAs, if any. It must be a
    /// field of the object: [`VmOpsTable::install`] requires it to be the
    /// same one at every call.
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::pfn_walk::VmaRegistry;
    /// use rust_hmm::vma_ops::{VmFault, VmOps};
    ///
    /// #[pin_data]
    /// struct Walked {
    ///     #[pin]
    ///     vmas: VmaRegistry,
    /// }
    ///
    /// #[vtable]
    /// impl VmOps for Walked {
    ///     fn fault(_vmf: &VmFault<'_, Self>) -> Result {
    ///         Err(EFAULT)
    ///     }
    ///
    ///     fn vma_registry(&self) -> Option<&VmaRegistry> {
    ///         Some(&self.vmas)
    ///     }
    /// }
    ///
    /// let obj = KBox::pin_init(pin_init!(Walked { vmas <- VmaRegistry::new() }), GFP_KERNEL)?;
    /// assert_eq!(obj.vma_registry().map(|r| r.count()), Some(0));
    /// # Ok::<(), Error>(())
    /// ```
    fn vma_registry(&self) -> Option<&VmaRegistry> {
        None
    }
}

/// The `vm_operations_struct` of the VMAs of objects of type `T`: a
/// `static` of the driver's, so that its address names these VMAs (the
/// walker compares it).
///
/// # Invariants
///
/// `ops` holds the callbacks below for `T`, and is never written.
///
/// # Examples
///
/// ```
/// use rust_hmm::vma_ops::{VmFault, VmOps, VmOpsTable};
///
/// struct Obj;
///
/// #[vtable]
/// impl VmOps for Obj {
///     fn fault(_vmf: &VmFault<'_, Self>) -> Result {
///         Err(EFAULT)
///     }
/// }
///
/// static OBJ_VM_OPS: VmOpsTable<Obj> = VmOpsTable::new();
/// assert!(!OBJ_VM_OPS.as_raw().is_null());
/// # let _ = Obj;
/// ```
pub struct VmOpsTable<T: VmOps> {
    ops: bindings::vm_operations_struct,
    _t: PhantomData<fn(T)>,
}

// SAFETY: Function pointers and nulls, never written (type invariants):
// shared between threads as the C side shares it.
unsafe impl<T: VmOps> Sync for VmOpsTable<T> {}

impl<T: VmOps> Default for VmOpsTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether a VMA with `f` is a private writable one (`is_cow_mapping()`),
/// where `VM_PFNMAP` PTEs cannot be inserted.
fn is_cow(f: vm_flags_t) -> bool {
    f & (flags::SHARED | flags::MAYWRITE) == flags::MAYWRITE
}

impl<T: VmOps> VmOpsTable<T> {
    /// The table for `T`.
    ///
    /// # Examples
    ///
    /// Tables are statics; `const` lets them be.
    ///
    /// ```
    /// use rust_hmm::vma_ops::{VmFault, VmOps, VmOpsTable};
    ///
    /// struct Obj;
    ///
    /// #[vtable]
    /// impl VmOps for Obj {
    ///     fn fault(_vmf: &VmFault<'_, Self>) -> Result {
    ///         Err(EFAULT)
    ///     }
    /// }
    ///
    /// static A: VmOpsTable<Obj> = VmOpsTable::new();
    /// static B: VmOpsTable<Obj> = VmOpsTable::new();
    /// // Each static names its own VMAs.
    /// assert_ne!(A.as_raw(), B.as_raw());
    /// # let _ = Obj;
    /// ```
    pub const fn new() -> Self {
        // INVARIANT: The callbacks of `T`.
        Self {
            ops: bindings::vm_operations_struct {
                open: Some(open_callback::<T>),
                close: Some(close_callback::<T>),
                fault: Some(fault_callback::<T>),
                pfn_mkwrite: if T::HAS_PFN_MKWRITE {
                    Some(pfn_mkwrite_callback::<T>)
                } else {
                    None
                },
                ..pin_init::zeroed()
            },
            _t: PhantomData,
        }
    }

    /// The `vm_ops` of VMAs installed with this table, for comparison
    /// (e.g. [`PfnSource::vm_ops`](crate::pfn_walk::PfnSource::vm_ops)).
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::vma_ops::{VmFault, VmOps, VmOpsTable};
    ///
    /// struct Obj;
    ///
    /// #[vtable]
    /// impl VmOps for Obj {
    ///     fn fault(_vmf: &VmFault<'_, Self>) -> Result {
    ///         Err(EFAULT)
    ///     }
    /// }
    ///
    /// static OBJ_VM_OPS: VmOpsTable<Obj> = VmOpsTable::new();
    /// assert_eq!(OBJ_VM_OPS.as_raw(), OBJ_VM_OPS.as_raw());
    /// # let _ = Obj;
    /// ```
    pub fn as_raw(&self) -> *const bindings::vm_operations_struct {
        &self.ops
    }

    /// Makes `vma` one of `data`'s: `VM_PFNMAP` (with `VM_DONTEXPAND` and
    /// `VM_DONTDUMP`), recorded in `data`'s registry if it has one, with
    /// these callbacks, and holding `data` until it closes. `EINVAL` for a
    /// VMA that is `VM_MIXEDMAP` or private and writable; on error nothing
    /// holds `data`.
    ///
    /// # Safety
    ///
    /// This is the last step of a `mmap` that then succeeds: the core mm
    /// calls no `close` for a VMA whose `mmap` failed, and the VMA must not
    /// be changed after this. [`VmOps::vma_registry`] returns, for a given
    /// object, the same registry (a field of it) at every call.
    ///
    /// # Examples
    ///
    /// A private mapping that could be made writable is refused: its
    /// PTEs would be copied on write.
    ///
    /// ```
    /// use kernel::{mm::virt::flags, sync::Arc};
    /// use rust_hmm::vma_ops::{VmFault, VmOps, VmOpsTable};
    /// # use rust_hmm::kunit_mm;
    ///
    /// struct Obj;
    ///
    /// #[vtable]
    /// impl VmOps for Obj {
    ///     fn fault(_vmf: &VmFault<'_, Self>) -> Result {
    ///         Err(EFAULT)
    ///     }
    /// }
    ///
    /// static OBJ_VM_OPS: VmOpsTable<Obj> = VmOpsTable::new();
    ///
    /// let obj = Arc::new(Obj, GFP_KERNEL)?;
    /// # let _mm = kunit_mm::attach()?;
    /// let addr = kunit_mm::map_with(1, &|vma| {
    ///     assert_ne!(vma.flags() & flags::SHARED, 0);
    ///     // SAFETY: The last step of the test file's `mmap`; no registry.
    ///     unsafe { OBJ_VM_OPS.install(vma, obj.clone()) }
    /// })?;
    /// kunit_mm::munmap(addr, 1)?;
    /// # Ok::<(), Error>(())
    /// ```
    pub unsafe fn install(&'static self, vma: &VmaNew, data: Arc<T>) -> Result {
        let f = vma.flags();
        if f & flags::MIXEDMAP != 0 || is_cow(f) {
            return Err(EINVAL);
        }
        let raw = vma.as_ptr();
        // SAFETY: A VMA in its `mmap` call may have its flags set; it is
        // not `VM_MIXEDMAP` (checked), so `VM_PFNMAP` leaves them valid.
        unsafe { ffi::rust_hmm_vma_set_pfnmap(raw) };
        if let Some(vmas) = data.vma_registry() {
            // SAFETY: In `mmap`, after which nothing fails (the caller
            // promises it); `close_callback` unregisters from the same
            // registry (the caller promises that too), which `data` owns
            // and so outlives the VMA.
            unsafe { vmas.register(raw)? };
        }
        // SAFETY: Nothing else uses the VMA during its `mmap` call. The
        // reference moves into the VMA; `close_callback` takes it back.
        // The table is `'static`.
        unsafe {
            (*raw).vm_private_data = Arc::into_raw(data).cast_mut().cast();
            (*raw).vm_ops = &self.ops;
        }
        Ok(())
    }

    /// Calls `f` with the VMA of this table at `addr` of the locked mm,
    /// if there is one; `None` otherwise. Outside the callbacks, this is
    /// how a PTE is inserted: with the mmap read lock held.
    ///
    /// # Examples
    ///
    /// The object's page, mapped ahead of any fault, and read back
    /// through the mapping.
    ///
    /// ```
    /// use kernel::{page::Page, sync::Arc};
    /// use rust_hmm::vma_ops::{Pgprot, VmFault, VmOps, VmOpsTable};
    /// # use rust_hmm::kunit_mm;
    ///
    /// struct One(Page);
    ///
    /// #[vtable]
    /// impl VmOps for One {
    ///     fn fault(_vmf: &VmFault<'_, Self>) -> Result {
    ///         Err(EFAULT)
    ///     }
    /// }
    ///
    /// static ONE_VM_OPS: VmOpsTable<One> = VmOpsTable::new();
    ///
    /// let page = Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?;
    /// let obj = Arc::new(One(page), GFP_KERNEL)?;
    /// # let mm = kunit_mm::attach()?;
    /// // SAFETY: The last step of the test file's `mmap`; no registry.
    /// let addr = kunit_mm::map_with(1, &|vma| unsafe { ONE_VM_OPS.install(vma, obj.clone()) })?;
    /// let lock = mm.mmap_read_lock();
    /// let r = ONE_VM_OPS.with_vma(&lock, addr, |vma| {
    ///     let prot = Pgprot::from_vm_flags(vma.flags());
    ///     vma.insert_pfn_prot(addr, &vma.data().0, prot)
    /// });
    /// drop(lock);
    /// assert_eq!(r, Some(Ok(())));
    /// let mut b = [1u8; 1];
    /// kunit_mm::read_user(addr, &mut b)?;
    /// assert_eq!(b, [0]);
    /// kunit_mm::munmap(addr, 1)?;
    /// # Ok::<(), Error>(())
    /// ```
    pub fn with_vma<R>(
        &self,
        mm: &MmapReadGuard<'_>,
        addr: usize,
        f: impl for<'a> FnOnce(&PfnVma<'a, T>) -> R,
    ) -> Option<R> {
        let vma = mm.vma_lookup(addr)?;
        // SAFETY: `vm_ops` is stable under the mmap lock `mm` holds.
        let ops = unsafe { (*vma.as_ptr()).vm_ops };
        if !core::ptr::eq(ops, &self.ops) {
            return None;
        }
        // SAFETY: A VMA of this table, so `install` or `open` gave it an
        // `Arc<T>` it holds until `close`; it is in the tree (just looked
        // up) and `mm` holds its mmap read lock while `f` runs, which is
        // generic over the lifetime.
        Some(f(unsafe { PfnVma::from_raw(vma.as_ptr()) }))
    }
}

#[cfg(not(MODULE))]
mod mapping_walk;
mod pgprot;
mod vma;

#[cfg(not(MODULE))]
pub use mapping_walk::MappedPte;
pub use pgprot::Pgprot;
pub use vma::{
    vm_pgoff,
    PfnVma,
    VmFault, //
};

/// `vm_ops->open`: a copy of one of our VMAs, which inherited the private
/// data, takes a reference of its own.
///
/// # Safety
///
/// Called by the core mm, under the mmap lock, on a copy of a VMA that
/// `install` or `open` set up.
unsafe extern "C" fn open_callback<T: VmOps>(vma: *mut bindings::vm_area_struct) {
    // SAFETY: The copy's private data is the original's `Arc<T>`, which
    // the original still holds.
    let data: Arc<T> = unsafe { ArcBorrow::from_raw((*vma).vm_private_data.cast::<T>()) }.into();
    if let Some(vmas) = data.vma_registry() {
        // SAFETY: In `open`; `close_callback` unregisters from the same
        // registry (`install`'s contract).
        unsafe { vmas.register_or_poison(vma) };
    }
    // SAFETY: A valid VMA under the mmap lock.
    data.open(unsafe { VmaRef::from_raw(vma) });
    // The reference now belongs to the copy.
    let _ = Arc::into_raw(data);
}

/// `vm_ops->close`: the VMA goes (its PTEs are gone) and drops its
/// reference.
///
/// # Safety
///
/// Called by the core mm, under the mmap lock, once, on a VMA that
/// `install` or `open` set up.
unsafe extern "C" fn close_callback<T: VmOps>(vma: *mut bindings::vm_area_struct) {
    // SAFETY: The VMA's reference, taken back once.
    let data = unsafe { Arc::from_raw((*vma).vm_private_data.cast_const().cast::<T>()) };
    // SAFETY: A valid VMA under the mmap lock.
    data.close(unsafe { VmaRef::from_raw(vma) });
    if let Some(vmas) = data.vma_registry() {
        vmas.unregister(vma);
    }
}

/// The `vm_fault_t` of a callback's result.
fn vm_fault_result(r: Result) -> bindings::vm_fault_t {
    match r {
        Ok(()) => bindings::vm_fault_reason_VM_FAULT_NOPAGE,
        Err(e) if e == ENOMEM => bindings::vm_fault_reason_VM_FAULT_OOM,
        Err(_) => bindings::vm_fault_reason_VM_FAULT_SIGBUS,
    }
}

/// `vm_ops->fault`.
///
/// # Safety
///
/// Called by the core mm for a fault on a VMA with `T`'s table.
unsafe extern "C" fn fault_callback<T: VmOps>(
    vmf: *mut bindings::vm_fault,
) -> bindings::vm_fault_t {
    // SAFETY: A fault on a VMA of ours, in the tree; without `map_pages`
    // the core calls `fault` with the mmap lock held (see
    // `vmf_can_call_fault()`), until we return.
    let vmf = unsafe { VmFault::from_raw(vmf) };
    vm_fault_result(T::fault(&vmf))
}

/// `vm_ops->pfn_mkwrite`.
///
/// # Safety
///
/// As for [`fault_callback`].
unsafe extern "C" fn pfn_mkwrite_callback<T: VmOps>(
    vmf: *mut bindings::vm_fault,
) -> bindings::vm_fault_t {
    // SAFETY: As in `fault_callback`: `wp_pfn_shared()` calls this after
    // `vmf_can_call_fault()`, with the mmap lock held and the PTE lock
    // dropped.
    let vmf = unsafe { VmFault::from_raw(vmf) };
    vm_fault_result(T::pfn_mkwrite(&vmf))
}
