// SPDX-License-Identifier: GPL-2.0

//! A VMA of ours as a fault or a lookup lends it ([`PfnVma`]), and the
//! fault itself ([`VmFault`]).

use super::{
    is_cow,
    Pgprot,
    VmOps, //
};
use crate::ffi;
use core::{
    marker::PhantomData,
    ptr::NonNull, //
};
use kernel::{
    bindings,
    mm::virt::{
        flags,
        VmaRef, //
    },
    page::Page,
    prelude::*, //
};

/// Makes a lifetime invariant: a `PfnVma<'a, T>` is not a `PfnVma<'b, T>`
/// for a shorter `'b`, which would let a shorter-lived page in.
type Invariant<'a> = fn(&'a ()) -> &'a ();

/// A VMA installed by a [`VmOpsTable<T>`](super::VmOpsTable), in its mm's tree, with a lock
/// held for `'a` under which PTEs may be inserted. It dereferences to
/// [`VmaRef`] (bounds, flags, [`VmaRef::zap_vma_range`]).
///
/// # Invariants
///
/// The VMA's `vm_ops` is a [`VmOpsTable<T>`](super::VmOpsTable), its `vm_private_data` an
/// `Arc<T>` reference it holds until `close`. For `'a` it is in its mm's
/// tree, not in `mmap`, `open` or `close`, and its mmap lock is held (read
/// or write). `'a` is invariant and chosen by the lender, never by the
/// borrower (see the module documentation).
///
/// # Examples
///
/// See [`VmOpsTable::with_vma`](super::VmOpsTable::with_vma) and [`VmOps`].
///
/// ```
/// use rust_hmm::vma_ops::{PfnVma, VmFault, VmOps};
/// # use kernel::sync::Arc;
/// # use rust_hmm::{kunit_mm, vma_ops::VmOpsTable};
///
/// struct Obj;
///
/// #[vtable]
/// impl VmOps for Obj {
///     fn fault(vmf: &VmFault<'_, Self>) -> Result {
///         let vma: &PfnVma<'_, Self> = vmf.vma();
///         // The fault is inside the VMA.
///         assert!(vma.start() <= vmf.address() && vmf.address() < vma.end());
///         Err(EFAULT)
///     }
/// }
/// # static OBJ_VM_OPS: VmOpsTable<Obj> = VmOpsTable::new();
/// # let _mm = kunit_mm::attach()?;
/// # let obj = Arc::new(Obj, GFP_KERNEL)?;
/// # assert_eq!(kunit_mm::access_once(&OBJ_VM_OPS, &obj, false), Err(EFAULT));
/// # Ok::<(), Error>(())
/// ```
#[repr(transparent)]
pub struct PfnVma<'a, T> {
    vma: VmaRef,
    _p: PhantomData<(Invariant<'a>, *const T)>,
}

impl<T> core::ops::Deref for PfnVma<'_, T> {
    type Target = VmaRef;

    fn deref(&self) -> &VmaRef {
        &self.vma
    }
}

impl<'a, T: VmOps> PfnVma<'a, T> {
    /// # Safety
    ///
    /// `vma` satisfies the type invariants for `'a`.
    pub(super) unsafe fn from_raw(vma: *const bindings::vm_area_struct) -> &'a Self {
        // SAFETY: `Self` is a transparent `VmaRef`; the caller vouches for
        // the rest.
        unsafe { &*vma.cast() }
    }

    /// The object this VMA maps, for `'a`.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::sync::atomic::{AtomicUsize, Ordering};
    /// use rust_hmm::vma_ops::{VmFault, VmOps};
    /// # use kernel::sync::Arc;
    /// # use rust_hmm::{kunit_mm, vma_ops::VmOpsTable};
    ///
    /// struct Obj(AtomicUsize);
    ///
    /// #[vtable]
    /// impl VmOps for Obj {
    ///     fn fault(vmf: &VmFault<'_, Self>) -> Result {
    ///         vmf.vma().data().0.fetch_add(1, Ordering::Relaxed);
    ///         Err(EFAULT)
    ///     }
    /// }
    /// # static OBJ_VM_OPS: VmOpsTable<Obj> = VmOpsTable::new();
    /// # let _mm = kunit_mm::attach()?;
    /// # let obj = Arc::new(Obj(AtomicUsize::new(0)), GFP_KERNEL)?;
    /// # assert_eq!(kunit_mm::access_once(&OBJ_VM_OPS, &obj, false), Err(EFAULT));
    /// assert_eq!(obj.0.load(Ordering::Relaxed), 1);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn data(&self) -> &'a T {
        // SAFETY: By the type invariants the private data is an `Arc<T>`
        // the VMA holds throughout `'a`; it is set before the VMA is in
        // the tree and never changed.
        unsafe { &*(*self.vma.as_ptr()).vm_private_data.cast::<T>() }
    }

    /// The file page offset of the VMA's start (`vm_pgoff`).
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::page::PAGE_SHIFT;
    /// use rust_hmm::vma_ops::{VmFault, VmOps};
    /// # use kernel::sync::Arc;
    /// # use rust_hmm::{kunit_mm, vma_ops::VmOpsTable};
    ///
    /// struct Obj;
    ///
    /// #[vtable]
    /// impl VmOps for Obj {
    ///     fn fault(vmf: &VmFault<'_, Self>) -> Result {
    ///         let vma = vmf.vma();
    ///         let pgoff = vma.pgoff() + ((vmf.address() - vma.start()) >> PAGE_SHIFT);
    ///         assert_eq!(pgoff, vmf.pgoff());
    ///         Err(EFAULT)
    ///     }
    /// }
    /// # static OBJ_RUN_VM_OPS: VmOpsTable<Obj> = VmOpsTable::new();
    /// # let _mm = kunit_mm::attach()?;
    /// # let obj = Arc::new(Obj, GFP_KERNEL)?;
    /// # assert_eq!(kunit_mm::access_once(&OBJ_RUN_VM_OPS, &obj, false), Err(EFAULT));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn pgoff(&self) -> usize {
        vm_pgoff(&self.vma)
    }

    /// Maps `page` at `address` (`vmf_insert_pfn_prot()`). Nothing changes
    /// if there is a PTE there already: a PTE is replaced by zapping it
    /// first ([`VmaRef::zap_vma_range`]). `EFAULT` for an address outside
    /// the VMA, `ENOMEM` if a page table could not be allocated, `EINVAL`
    /// if the VMA's flags no longer allow it.
    ///
    /// `page` lives for `'a`, which the caller cannot choose: it is the
    /// object's (borrowed from [`Self::data`]) or `'static`, and so lives
    /// until the last VMA of the object is gone, and the PTE with it.
    ///
    /// # Examples
    ///
    /// See [`VmOps`] and [`VmOpsTable::with_vma`](super::VmOpsTable::with_vma). A page of the fault
    /// handler's own (`let page = Page::alloc_page(..)?`) does not compile:
    /// it does not live for `'a`.
    ///
    /// ```
    /// use kernel::page::Page;
    /// use rust_hmm::vma_ops::{Pgprot, VmFault, VmOps};
    /// # use kernel::sync::Arc;
    /// # use rust_hmm::{kunit_mm, vma_ops::VmOpsTable};
    ///
    /// struct Obj(Page);
    ///
    /// #[vtable]
    /// impl VmOps for Obj {
    ///     fn fault(vmf: &VmFault<'_, Self>) -> Result {
    ///         let prot = Pgprot::from_vm_flags(vmf.vma().flags());
    ///         vmf.vma().insert_pfn_prot(vmf.address(), &vmf.data().0, prot)
    ///     }
    /// }
    /// # static OBJ_RUN_VM_OPS: VmOpsTable<Obj> = VmOpsTable::new();
    /// # let _mm = kunit_mm::attach()?;
    /// # let obj = Arc::new(Obj(Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?), GFP_KERNEL)?;
    /// # assert_eq!(kunit_mm::access_once(&OBJ_RUN_VM_OPS, &obj, false), Ok(()));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn insert_pfn_prot(&self, address: usize, page: &'a Page, prot: Pgprot) -> Result {
        let f = self.flags();
        if f & (flags::PFNMAP | flags::MIXEDMAP) != flags::PFNMAP || is_cow(f) {
            return Err(EINVAL);
        }
        // SAFETY: `page` is a live page.
        let pfn = unsafe { ffi::page_to_pfn(page.as_ptr()) };
        // SAFETY: A `VM_PFNMAP`, not `VM_MIXEDMAP`, not COW VMA (checked:
        // the function's `BUG_ON()`s), in the tree with its lock held
        // (type invariants); the address is checked by the callee. The
        // page outlives the PTE (see above); `prot` is a user protection
        // (`Pgprot`'s invariants).
        let r =
            unsafe { bindings::vmf_insert_pfn_prot(self.as_ptr(), address, pfn, prot.as_raw()) };
        if r == bindings::vm_fault_reason_VM_FAULT_NOPAGE {
            Ok(())
        } else if r & bindings::vm_fault_reason_VM_FAULT_OOM != 0 {
            Err(ENOMEM)
        } else {
            Err(EFAULT)
        }
    }
}

/// The file page offset of `vma`'s start (`vm_pgoff`), e.g. of a
/// [`VmaNew`](kernel::mm::virt::VmaNew) in `mmap`.
///
/// # Examples
///
/// ```
/// use rust_hmm::vma_ops::vm_pgoff;
/// # use rust_hmm::kunit_mm;
/// # let _mm = kunit_mm::attach()?;
/// // The test file is mapped from offset 0.
/// let addr = kunit_mm::map_with(1, &|vma| {
///     assert_eq!(vm_pgoff(vma), 0);
///     Err(ENODEV)
/// });
/// assert_eq!(addr, Err(ENODEV));
/// # Ok::<(), Error>(())
/// ```
pub fn vm_pgoff(vma: &VmaRef) -> usize {
    // SAFETY: By `VmaRef`'s invariants the VMA is valid and its lock is
    // held, which keeps `vm_pgoff` stable.
    unsafe { (*vma.as_ptr()).vm_pgoff }
}

/// A page fault on a VMA of a [`VmOpsTable<T>`](super::VmOpsTable), valid during the
/// callback it is passed to.
///
/// # Invariants
///
/// `vmf` is the fault the callback was called for, on a VMA that
/// satisfies the invariants of [`PfnVma<'a, T>`] for `'a`.
///
/// # Examples
///
/// ```
/// use rust_hmm::vma_ops::{VmFault, VmOps};
/// # use kernel::sync::Arc;
/// # use rust_hmm::{kunit_mm, vma_ops::VmOpsTable};
///
/// struct Obj;
///
/// #[vtable]
/// impl VmOps for Obj {
///     fn fault(vmf: &VmFault<'_, Self>) -> Result {
///         pr_info!("fault at {:#x}, write {}\n", vmf.address(), vmf.is_write());
///         Err(EFAULT)
///     }
/// }
/// # static OBJ_RUN_VM_OPS: VmOpsTable<Obj> = VmOpsTable::new();
/// # let _mm = kunit_mm::attach()?;
/// # let obj = Arc::new(Obj, GFP_KERNEL)?;
/// # assert_eq!(kunit_mm::access_once(&OBJ_RUN_VM_OPS, &obj, false), Err(EFAULT));
/// # Ok::<(), Error>(())
/// ```
pub struct VmFault<'a, T> {
    vmf: NonNull<bindings::vm_fault>,
    _p: PhantomData<(Invariant<'a>, *const T)>,
}

impl<'a, T: VmOps> VmFault<'a, T> {
    /// # Safety
    ///
    /// `vmf` is a fault on a VMA of `T`'s table, in its mm's tree, whose
    /// lock the core holds for `'a`, until the callback returns.
    pub(super) unsafe fn from_raw(vmf: *mut bindings::vm_fault) -> Self {
        // INVARIANT: As the caller promises.
        Self {
            // SAFETY: The core passes a valid fault.
            vmf: unsafe { NonNull::new_unchecked(vmf) },
            _p: PhantomData,
        }
    }

    fn raw(&self) -> &bindings::vm_fault {
        // SAFETY: The fault is valid during the callback (type invariants),
        // which `self` does not outlive; the core does not change the
        // fields read here during the callback.
        unsafe { self.vmf.as_ref() }
    }

    /// The VMA of the fault.
    ///
    /// # Examples
    ///
    /// See [`PfnVma`].
    ///
    /// ```
    /// use rust_hmm::vma_ops::{VmFault, VmOps};
    /// # use kernel::sync::Arc;
    /// # use rust_hmm::{kunit_mm, vma_ops::VmOpsTable};
    ///
    /// struct Obj;
    ///
    /// #[vtable]
    /// impl VmOps for Obj {
    ///     fn fault(vmf: &VmFault<'_, Self>) -> Result {
    ///         let _ = vmf.vma().flags();
    ///         Err(EFAULT)
    ///     }
    /// }
    /// # static OBJ_RUN_VM_OPS: VmOpsTable<Obj> = VmOpsTable::new();
    /// # let _mm = kunit_mm::attach()?;
    /// # let obj = Arc::new(Obj, GFP_KERNEL)?;
    /// # assert_eq!(kunit_mm::access_once(&OBJ_RUN_VM_OPS, &obj, false), Err(EFAULT));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn vma(&self) -> &'a PfnVma<'a, T> {
        // SAFETY: By the type invariants.
        unsafe { PfnVma::from_raw(self.raw().__bindgen_anon_1.vma) }
    }

    /// The object of the faulting VMA: [`PfnVma::data`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::vma_ops::{VmFault, VmOps};
    /// # use kernel::sync::Arc;
    /// # use rust_hmm::{kunit_mm, vma_ops::VmOpsTable};
    ///
    /// struct Obj(usize);
    ///
    /// #[vtable]
    /// impl VmOps for Obj {
    ///     fn fault(vmf: &VmFault<'_, Self>) -> Result {
    ///         // Past the object, or not mapped by it.
    ///         if vmf.pgoff() >= vmf.data().0 {
    ///             return Err(EFAULT);
    ///         }
    ///         Err(EINVAL)
    ///     }
    /// }
    /// # static OBJ_RUN_VM_OPS: VmOpsTable<Obj> = VmOpsTable::new();
    /// # let _mm = kunit_mm::attach()?;
    /// # let obj = Arc::new(Obj(1), GFP_KERNEL)?;
    /// # assert_eq!(kunit_mm::access_once(&OBJ_RUN_VM_OPS, &obj, false), Err(EFAULT));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn data(&self) -> &'a T {
        self.vma().data()
    }

    /// The faulting address, rounded down to its page.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::page::PAGE_SIZE;
    /// use rust_hmm::vma_ops::{VmFault, VmOps};
    /// # use kernel::sync::Arc;
    /// # use rust_hmm::{kunit_mm, vma_ops::VmOpsTable};
    ///
    /// struct Obj;
    ///
    /// #[vtable]
    /// impl VmOps for Obj {
    ///     fn fault(vmf: &VmFault<'_, Self>) -> Result {
    ///         assert_eq!(vmf.address() % PAGE_SIZE, 0);
    ///         Err(EFAULT)
    ///     }
    /// }
    /// # static OBJ_RUN_VM_OPS: VmOpsTable<Obj> = VmOpsTable::new();
    /// # let _mm = kunit_mm::attach()?;
    /// # let obj = Arc::new(Obj, GFP_KERNEL)?;
    /// # assert_eq!(kunit_mm::access_once(&OBJ_RUN_VM_OPS, &obj, false), Err(EFAULT));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn address(&self) -> usize {
        self.raw().__bindgen_anon_1.address
    }

    /// The file page offset of the faulting page.
    ///
    /// # Examples
    ///
    /// See [`PfnVma::pgoff`].
    ///
    /// ```
    /// use rust_hmm::vma_ops::{VmFault, VmOps};
    /// # use kernel::sync::Arc;
    /// # use rust_hmm::{kunit_mm, vma_ops::VmOpsTable};
    ///
    /// struct Obj;
    ///
    /// #[vtable]
    /// impl VmOps for Obj {
    ///     fn fault(vmf: &VmFault<'_, Self>) -> Result {
    ///         assert!(vmf.pgoff() >= vmf.vma().pgoff());
    ///         Err(EFAULT)
    ///     }
    /// }
    /// # static OBJ_RUN_VM_OPS: VmOpsTable<Obj> = VmOpsTable::new();
    /// # let _mm = kunit_mm::attach()?;
    /// # let obj = Arc::new(Obj, GFP_KERNEL)?;
    /// # assert_eq!(kunit_mm::access_once(&OBJ_RUN_VM_OPS, &obj, false), Err(EFAULT));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn pgoff(&self) -> usize {
        self.raw().__bindgen_anon_1.pgoff
    }

    /// Whether the access is a write (`FAULT_FLAG_WRITE`).
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::{mm::virt::flags, page::Page};
    /// use rust_hmm::vma_ops::{Pgprot, VmFault, VmOps};
    /// # use kernel::sync::Arc;
    /// # use rust_hmm::{kunit_mm, vma_ops::VmOpsTable};
    ///
    /// struct Obj(Page);
    ///
    /// #[vtable]
    /// impl VmOps for Obj {
    ///     // Read-only PTEs: a write comes to `pfn_mkwrite`.
    ///     fn fault(vmf: &VmFault<'_, Self>) -> Result {
    ///         let prot = Pgprot::from_vm_flags(vmf.vma().flags() & !flags::WRITE);
    ///         vmf.vma().insert_pfn_prot(vmf.address(), &vmf.data().0, prot)
    ///     }
    ///
    ///     fn pfn_mkwrite(vmf: &VmFault<'_, Self>) -> Result {
    ///         assert!(vmf.is_write());
    ///         Err(EFAULT)
    ///     }
    /// }
    /// # static OBJ_RUN_VM_OPS: VmOpsTable<Obj> = VmOpsTable::new();
    /// # let _mm = kunit_mm::attach()?;
    /// # let obj = Arc::new(Obj(Page::alloc_page(GFP_KERNEL)?), GFP_KERNEL)?;
    /// # assert_eq!(kunit_mm::access_once(&OBJ_RUN_VM_OPS, &obj, true), Err(EFAULT));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn is_write(&self) -> bool {
        self.raw().flags & bindings::fault_flag_FAULT_FLAG_WRITE != 0
    }
}
