// SPDX-License-Identifier: GPL-2.0

//! Kernel declarations the generated `kernel::bindings` lack.
//!
//! `linux/hmm.h` is not part of the kernel's Rust bindings, so its struct
//! and functions are declared here by hand. `helpers.c` asserts at compile
//! time that this layout matches the kernel's; `rust_hmm_*` are the C
//! helpers for static inline functions.

use kernel::bindings;
use kernel::ffi::{c_uint, c_ulong, c_void};

/// `struct hmm_range` from `include/linux/hmm.h`.
#[repr(C)]
pub(crate) struct hmm_range {
    pub(crate) notifier: *mut bindings::mmu_interval_notifier,
    pub(crate) notifier_seq: c_ulong,
    pub(crate) start: c_ulong,
    pub(crate) end: c_ulong,
    pub(crate) hmm_pfns: *mut c_ulong,
    pub(crate) default_flags: c_ulong,
    pub(crate) pfn_flags_mask: c_ulong,
    pub(crate) dev_private_owner: *mut c_void,
}

const _: () = assert!(core::mem::size_of::<hmm_range>() == 64);
const _: () = assert!(core::mem::offset_of!(hmm_range, dev_private_owner) == 56);

/// `enum hmm_pfn_flags` (64-bit).
pub(crate) const HMM_PFN_VALID: u64 = 1 << 63;
pub(crate) const HMM_PFN_WRITE: u64 = 1 << 62;
pub(crate) const HMM_PFN_ERROR: u64 = 1 << 61;
pub(crate) const HMM_PFN_ORDER_SHIFT: u32 = 53;
pub(crate) const HMM_PFN_FLAGS: u64 = !((1 << HMM_PFN_ORDER_SHIFT) - 1);
pub(crate) const HMM_PFN_REQ_FAULT: u64 = HMM_PFN_VALID;
pub(crate) const HMM_PFN_REQ_WRITE: u64 = HMM_PFN_WRITE;
/// `HMM_RANGE_DEFAULT_TIMEOUT`, in milliseconds.
pub(crate) const HMM_RANGE_DEFAULT_TIMEOUT: c_uint = 1000;

// The pointee types are opaque bindgen structs, only ever used behind
// pointers; the generated `kernel::bindings` allows this lint for the same
// reason.
#[allow(improper_ctypes)]
extern "C" {
    pub(crate) fn hmm_range_fault(range: *mut hmm_range) -> kernel::ffi::c_int;
    pub(crate) fn hmm_range_fault_unlocked_timeout(
        range: *mut hmm_range,
        timeout: c_ulong,
    ) -> kernel::ffi::c_int;

    pub(crate) fn rust_hmm_interval_read_retry(
        sub: *mut bindings::mmu_interval_notifier,
        seq: c_ulong,
    ) -> bool;
    pub(crate) fn rust_hmm_interval_set_seq(
        sub: *mut bindings::mmu_interval_notifier,
        cur_seq: c_ulong,
    );
    pub(crate) fn rust_hmm_range_blockable(range: *const bindings::mmu_notifier_range) -> bool;
    pub(crate) fn rust_hmm_pfn_to_page(pfn: c_ulong) -> *mut bindings::page;
    pub(crate) fn rust_hmm_zero_pfn() -> c_ulong;
    pub(crate) fn rust_hmm_is_zero_pfn(pfn: c_ulong) -> bool;
    pub(crate) fn rust_hmm_is_device_private_pfn(pfn: c_ulong) -> bool;
    pub(crate) fn rust_hmm_msecs_to_jiffies(ms: c_uint) -> c_ulong;
    pub(crate) fn rust_hmm_page_to_pfn(page: *mut bindings::page) -> c_ulong;
    pub(crate) fn rust_hmm_folio_put(folio: *mut bindings::folio);
    pub(crate) fn rust_hmm_copy_from_folio(to: *mut c_void, pfn: c_ulong, len: usize) -> bool;
    pub(crate) fn rust_hmm_set_pages_dirty(pfn: c_ulong, npages: c_ulong);

    /// `include/linux/rmap.h`.
    pub(crate) fn make_device_exclusive(
        mm: *mut bindings::mm_struct,
        addr: c_ulong,
        owner: *mut c_void,
        foliop: *mut *mut bindings::folio,
    ) -> *mut bindings::page;
}
