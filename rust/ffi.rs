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

/// `struct migrate_vma` from `include/linux/migrate.h`.
#[repr(C)]
pub(crate) struct migrate_vma {
    pub(crate) vma: *mut bindings::vm_area_struct,
    pub(crate) dst: *mut c_ulong,
    pub(crate) src: *mut c_ulong,
    pub(crate) cpages: c_ulong,
    pub(crate) npages: c_ulong,
    pub(crate) start: c_ulong,
    pub(crate) end: c_ulong,
    pub(crate) pgmap_owner: *mut c_void,
    pub(crate) flags: c_ulong,
    pub(crate) fault_page: *mut bindings::page,
}

const _: () = assert!(core::mem::size_of::<migrate_vma>() == 80);
const _: () = assert!(core::mem::offset_of!(migrate_vma, fault_page) == 72);

/// `MIGRATE_PFN_*` and `enum migrate_vma_direction`.
pub(crate) const MIGRATE_PFN_VALID: u64 = 1 << 0;
pub(crate) const MIGRATE_PFN_MIGRATE: u64 = 1 << 1;
pub(crate) const MIGRATE_PFN_WRITE: u64 = 1 << 3;
pub(crate) const MIGRATE_PFN_COMPOUND: u64 = 1 << 4;
pub(crate) const MIGRATE_PFN_SHIFT: u32 = 6;
pub(crate) const MIGRATE_VMA_SELECT_SYSTEM: u64 = 1 << 0;
pub(crate) const MIGRATE_VMA_SELECT_DEVICE_PRIVATE: u64 = 1 << 1;
pub(crate) const MIGRATE_VMA_SELECT_COMPOUND: u64 = 1 << 3;

pub(crate) const RUST_HMM_PFN_ZERO: u8 = 1;
pub(crate) const RUST_HMM_PFN_DEVICE_PRIVATE: u8 = 2;

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
    pub(crate) fn rust_hmm_pfn_to_page(pfn: c_ulong) -> *mut bindings::page;
    pub(crate) fn rust_hmm_zero_pfn() -> c_ulong;
    pub(crate) fn rust_hmm_is_zero_pfn(pfn: c_ulong) -> bool;
    pub(crate) fn rust_hmm_device_private_pgmap(pfn: c_ulong) -> *mut bindings::dev_pagemap;
    pub(crate) fn rust_hmm_pfn_kinds(hmm_pfns: *const c_ulong, kinds: *mut u8, n: c_ulong);
    pub(crate) fn rust_hmm_msecs_to_jiffies(ms: c_uint) -> c_ulong;
    pub(crate) fn rust_hmm_page_to_pfn(page: *mut bindings::page) -> c_ulong;
    pub(crate) fn rust_hmm_folio_put(folio: *mut bindings::folio);
    pub(crate) fn rust_hmm_copy_from_folio(to: *mut c_void, pfn: c_ulong, len: usize) -> bool;
    pub(crate) fn rust_hmm_copy_pages_to_user_nofault(
        to: *mut c_void,
        pfn: c_ulong,
        len: c_ulong,
    ) -> c_ulong;
    pub(crate) fn rust_hmm_pages_read(pfn: c_ulong, offset: usize, to: *mut c_void, len: usize);
    pub(crate) fn rust_hmm_pages_write(
        pfn: c_ulong,
        offset: usize,
        from: *const c_void,
        len: usize,
    );
    pub(crate) fn rust_hmm_pages_fetch_add_u64(pfn: c_ulong, offset: usize, value: u64) -> u64;
    pub(crate) fn rust_hmm_set_pages_dirty(pfn: c_ulong, npages: c_ulong);
    pub(crate) fn rust_hmm_get_pages(pfn: c_ulong, npages: c_ulong);
    pub(crate) fn rust_hmm_put_pages(pfn: c_ulong, npages: c_ulong);

    pub(crate) fn rust_hmm_page_pgmap(page: *mut bindings::page) -> *mut bindings::dev_pagemap;
    pub(crate) fn rust_hmm_page_order(page: *mut bindings::page) -> c_uint;
    pub(crate) fn rust_hmm_zone_device_folio_init(
        page: *mut bindings::page,
        pgmap: *mut bindings::dev_pagemap,
        order: c_uint,
    );
    pub(crate) fn rust_hmm_alloc_data_page() -> *mut bindings::page;
    pub(crate) fn rust_hmm_free_data_pfn(pfn: c_ulong);
    pub(crate) fn rust_hmm_alloc_migrate_folio(
        vma: *mut bindings::vm_area_struct,
        addr: c_ulong,
        order: c_uint,
    ) -> *mut bindings::page;
    pub(crate) fn rust_hmm_unlock_put_page(page: *mut bindings::page);
    pub(crate) fn rust_hmm_copy_from_pfn(to: *mut bindings::page, from_pfn: c_ulong);
    pub(crate) fn rust_hmm_clear_highpage(page: *mut bindings::page);
    pub(crate) fn rust_hmm_request_free_mem_region(
        size: c_ulong,
        name: *const kernel::ffi::c_char,
    ) -> *mut bindings::resource;
    pub(crate) fn rust_hmm_release_mem_region(start: u64, n: u64);
    pub(crate) fn rust_hmm_numa_node_id() -> kernel::ffi::c_int;
    pub(crate) fn rust_hmm_resched_killed() -> bool;

    /// `include/linux/migrate.h`.
    pub(crate) fn migrate_vma_setup(args: *mut migrate_vma) -> kernel::ffi::c_int;
    pub(crate) fn migrate_vma_pages(migrate: *mut migrate_vma);
    pub(crate) fn migrate_vma_finalize(migrate: *mut migrate_vma);
    pub(crate) fn migrate_device_pfns(
        src_pfns: *mut c_ulong,
        npages: c_ulong,
    ) -> kernel::ffi::c_int;
    pub(crate) fn migrate_device_pages(
        src_pfns: *mut c_ulong,
        dst_pfns: *mut c_ulong,
        npages: c_ulong,
    );
    pub(crate) fn migrate_device_finalize(
        src_pfns: *mut c_ulong,
        dst_pfns: *mut c_ulong,
        npages: c_ulong,
    );

    pub(crate) fn rust_hmm_vma_set_pfnmap(vma: *mut bindings::vm_area_struct);
    pub(crate) fn rust_hmm_prot_with_cache(protval: c_ulong, mode: c_uint) -> c_ulong;
    pub(crate) fn rust_hmm_prot_cache_bits(protval: c_ulong) -> c_ulong;
    pub(crate) fn rust_hmm_prot_dirty(protval: c_ulong) -> bool;

    /// `include/linux/rmap.h`.
    pub(crate) fn mapping_wrprotect_range(
        mapping: *mut bindings::address_space,
        pgoff: c_ulong,
        pfn: c_ulong,
        nr_pages: c_ulong,
    ) -> kernel::ffi::c_int;

    /// `include/linux/rmap.h`.
    pub(crate) fn make_device_exclusive(
        mm: *mut bindings::mm_struct,
        addr: c_ulong,
        owner: *mut c_void,
        foliop: *mut *mut bindings::folio,
    ) -> *mut bindings::page;
}

// ---- Device-buffer cache modes (samples/dmirror/devbuf.rs) ----

// The pointee types are opaque bindgen structs, as above.
#[allow(improper_ctypes)]
extern "C" {
    /// Sets the linear-map memory type of `n` pages to `mode` (0 WB, 1 UC-,
    /// 2 WC) in one call; may sleep.
    pub(crate) fn rust_hmm_set_pages_cache(
        pages: *mut *mut bindings::page,
        n: kernel::ffi::c_int,
        mode: c_uint,
    ) -> kernel::ffi::c_int;
    pub(crate) fn rust_hmm_pat_enabled() -> bool;
    pub(crate) fn rust_hmm_linear_cache_bits(page: *mut bindings::page) -> c_ulong;
    pub(crate) fn rust_hmm_cache_mode_bits(mode: c_uint) -> c_ulong;
    pub(crate) fn rust_hmm_pat_memtype(bits: c_ulong) -> kernel::ffi::c_int;
}

// ---- Lock checking and KUnit support (mmu_notifier.rs, pfn_walk.rs) ----

// The pointee types are opaque bindgen structs, as above.
#[allow(improper_ctypes)]
extern "C" {
    /// `fs_reclaim_acquire()`, `might_lock()`, `fs_reclaim_release()`.
    pub(crate) fn rust_hmm_prime_reclaim(lock: *mut bindings::mutex);
    /// `lockdep_assert_not_held()`.
    pub(crate) fn rust_hmm_lock_assert_not_held(lock: *mut bindings::mutex);
    pub(crate) fn rust_hmm_pagefault_disable();
    pub(crate) fn rust_hmm_pagefault_enable();
    /// `vm_mmap()` in the current mm: `file` shared, or anonymous private.
    #[cfg(CONFIG_KUNIT = "y")]
    pub(crate) fn rust_hmm_vm_mmap(
        file: *mut bindings::file,
        len: c_ulong,
        writable: bool,
        pgoff: c_ulong,
    ) -> c_ulong;
    /// `folio_ref_count()` and `folio_test_dirty()` of a page's folio.
    #[cfg(CONFIG_KUNIT = "y")]
    pub(crate) fn rust_hmm_page_refcount(pfn: c_ulong) -> kernel::ffi::c_int;
    #[cfg(CONFIG_KUNIT = "y")]
    pub(crate) fn rust_hmm_page_dirty(pfn: c_ulong) -> bool;
    /// `anon_inode_getfile()`.
    #[cfg(CONFIG_KUNIT = "y")]
    pub(crate) fn rust_hmm_anon_file(
        fops: *const bindings::file_operations,
        private: *mut c_void,
    ) -> *mut bindings::file;
}
