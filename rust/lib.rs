// SPDX-License-Identifier: GPL-2.0

//! Rust HMM: heterogeneous memory management for device drivers, as a
//! library.
//!
//! The safe abstractions a driver builds on: [`mmu_notifier`] (interval
//! notifiers and the sequence protocol), [`hmm`] (`hmm_range_fault()`),
//! [`hmm_dma`] (DMA mappings of mirrored pages, `hmm_dma_map`),
//! [`folio`] (reference-counted folios and their lock),
//! [`gpusvm`] (shared virtual memory: ranges, chunk notifiers and one
//! notifier lock, as `drm_gpusvm`),
//! [`guarded_page`] (pages read under the notifier lock), [`device_pt`] (a
//! multi-level device page table), [`device_exclusive`] (device-exclusive
//! access), [`devmem`] (device-private memory pools), [`migrate`] (page
//! migration), [`pfn_walk`] (the PTEs of every VMA that maps an object of
//! ours), [`vma_ops`] (the VMAs of a driver's own file: their callbacks,
//! the object they keep alive, and the PTEs inserted into them; built in,
//! also a walk of a file's mapping that cleans and write-protects PTEs),
//! [`sort`]
//! (an in-place sort for atomic context). `ffi` holds the
//! bindings the kernel crate lacks, generated at build time.
//!
//! Nothing here knows about any driver. A driver mounts this file as a
//! module of its crate and re-exports its modules at the crate root (the
//! library refers to itself as `crate::hmm`, and so on): out of tree,
//! kbuild builds one crate per kernel module. The sample device,
//! `samples/dmirror/rust_dmirror.rs`, is such a driver; in tree, these
//! modules would live in the kernel crate.

use kernel::prelude::*;

pub mod device_exclusive;
pub mod device_pt;
pub mod devmem;
pub(crate) mod ffi;
pub mod folio;
pub mod gpusvm;
pub mod guarded_page;
pub mod hmm;
pub mod hmm_dma;
#[cfg(CONFIG_KUNIT = "y")]
pub(crate) mod kunit_mm;
pub mod migrate;
pub mod mmu_notifier;
pub mod pfn_walk;
pub mod sort;
pub mod vma_ops;

/// The module, for `#[vtable]` impls (`type OwnerModule = crate::LocalModule`)
/// when rustdoc expands this file as a crate of its own; in the driver's
/// crate, `module!` defines it.
#[cfg(any(doc, doctest))]
struct LocalModule;

#[cfg(any(doc, doctest))]
impl kernel::ModuleMetadata for LocalModule {
    const NAME: &'static kernel::str::CStr = c"rust_hmm";

    // SAFETY: Never used: rustdoc only expands and documents this crate.
    const THIS_MODULE: kernel::ThisModule =
        unsafe { kernel::ThisModule::from_ptr(core::ptr::null_mut()) };
}

#[kunit_tests(rust_hmm_helpers)]
mod tests {
    use crate::ffi;

    /// The C helper object is linked in and answers like the kernel does.
    #[test]
    fn zero_pfn_helpers() {
        // SAFETY: These helpers only compute with PFNs.
        let (zero, is_zero, is_next) = unsafe {
            let z = ffi::rust_hmm_zero_pfn();
            (z, ffi::is_zero_pfn(z), ffi::is_zero_pfn(z + 1))
        };
        assert_ne!(zero, 0);
        assert!(is_zero);
        assert!(!is_next);
    }

    /// `Mode::Unlocked` passes its timeout through
    /// `kernel::time::msecs_to_jiffies()`: a second is `HZ` jiffies,
    /// computed here from the kernel's own `HZ_TO_MSEC_*` (the `HZ` of the
    /// bindings is the user-space 100), and no non-zero timeout may round
    /// down to 0, which `hmm_range_fault_unlocked_timeout()` takes as
    /// "retry for ever".
    #[test]
    fn jiffies_conversion() {
        use kernel::bindings::{
            HZ_TO_MSEC_DEN,
            HZ_TO_MSEC_NUM, //
        };
        use kernel::time::msecs_to_jiffies as to_jiffies;
        let hz = (1000 * HZ_TO_MSEC_DEN / HZ_TO_MSEC_NUM) as usize;
        assert_eq!(to_jiffies(1000), hz);
        assert_eq!(to_jiffies(ffi::HMM_RANGE_DEFAULT_TIMEOUT), hz);
        assert_eq!(to_jiffies(10_000), 10 * hz);
        assert_eq!(to_jiffies(0), 0);
        assert_eq!(to_jiffies(1), 1);
    }
}
