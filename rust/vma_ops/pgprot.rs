// SPDX-License-Identifier: GPL-2.0

//! [`Pgprot`]: page protections built only from `vm_get_page_prot()` and
//! the cache-mode helpers.

use crate::ffi;
use kernel::{
    bindings,
    mm::virt::vm_flags_t, //
};

/// The protection of a user PTE (`pgprot_t`): that of a set of VMA flags,
/// with a cache mode.
///
/// # Invariants
///
/// The value is `vm_get_page_prot()` of some VMA flags, with at most its
/// cache mode changed: a user protection, never global or kernel-only.
///
/// # Examples
///
/// ```
/// use kernel::mm::virt::flags;
/// use rust_hmm::vma_ops::Pgprot;
///
/// let rw = Pgprot::from_vm_flags(flags::READ | flags::WRITE | flags::SHARED);
/// let ro = Pgprot::from_vm_flags(flags::READ | flags::SHARED);
/// assert_ne!(rw, ro);
/// ```
#[derive(Clone, Copy)]
pub struct Pgprot(bindings::pgprot_t);

impl PartialEq for Pgprot {
    fn eq(&self, other: &Self) -> bool {
        self.0.pgprot == other.0.pgprot
    }
}

impl Eq for Pgprot {}

impl core::fmt::Debug for Pgprot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Pgprot({:#x})", self.0.pgprot)
    }
}

impl Pgprot {
    /// The protection of a VMA with `vm_flags` (`vm_get_page_prot()`).
    ///
    /// # Examples
    ///
    /// Flags other than access and sharing do not change it.
    ///
    /// ```
    /// use kernel::mm::virt::flags;
    /// use rust_hmm::vma_ops::Pgprot;
    ///
    /// let f = flags::READ | flags::SHARED;
    /// assert_eq!(Pgprot::from_vm_flags(f), Pgprot::from_vm_flags(f | flags::DONTDUMP));
    /// ```
    pub fn from_vm_flags(vm_flags: vm_flags_t) -> Self {
        // SAFETY: A table lookup, for any flags.
        // INVARIANT: `vm_get_page_prot()` of `vm_flags`.
        Self(unsafe { bindings::vm_get_page_prot(vm_flags) })
    }

    /// Uncached (`pgprot_noncached()`).
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::mm::virt::flags;
    /// use rust_hmm::vma_ops::Pgprot;
    ///
    /// let wb = Pgprot::from_vm_flags(flags::READ | flags::SHARED);
    /// if cfg!(CONFIG_X86) {
    ///     assert_ne!(wb.noncached(), wb);
    /// }
    /// assert_eq!(wb.noncached(), wb.noncached().noncached());
    /// ```
    pub fn noncached(self) -> Self {
        // SAFETY: A computation on a protection value.
        let pgprot = unsafe { ffi::rust_hmm_pgprot_noncached(self.0.pgprot) };
        // INVARIANT: Only the cache mode changes.
        Self(bindings::pgprot_t { pgprot })
    }

    /// Write-combining (`pgprot_writecombine()`).
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::mm::virt::flags;
    /// use rust_hmm::vma_ops::Pgprot;
    ///
    /// let wb = Pgprot::from_vm_flags(flags::READ | flags::SHARED);
    /// if cfg!(CONFIG_X86) {
    ///     assert_ne!(wb.writecombine(), wb.noncached());
    /// }
    /// ```
    pub fn writecombine(self) -> Self {
        // SAFETY: A computation on a protection value.
        let pgprot = unsafe { ffi::rust_hmm_pgprot_writecombine(self.0.pgprot) };
        // INVARIANT: Only the cache mode changes.
        Self(bindings::pgprot_t { pgprot })
    }

    /// The value, as C has it.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::mm::virt::flags;
    /// use rust_hmm::vma_ops::Pgprot;
    ///
    /// let p = Pgprot::from_vm_flags(flags::READ | flags::SHARED);
    /// assert_eq!(p.as_raw().pgprot, p.as_raw().pgprot);
    /// ```
    pub fn as_raw(self) -> bindings::pgprot_t {
        self.0
    }
}
