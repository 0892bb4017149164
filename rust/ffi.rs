// SPDX-License-Identifier: GPL-2.0

//! Kernel declarations the kernel crate's `bindings` lacks, generated at
//! build time: `scripts/bindgen.sh` runs bindgen over
//! `rust/bindings/bindings_helper.h` with the options and compiler flags
//! the kernel used for its own `rust/bindings`, so prototypes, layouts and
//! constants come from the headers and cannot drift. That is
//! `struct hmm_range` and `hmm_range_fault()` (`linux/hmm.h`),
//! `struct migrate_vma` and the migration calls (`linux/migrate.h`),
//! `make_device_exclusive()` (`linux/rmap.h`), the `MIGRATE_PFN_*`,
//! `MIGRATE_VMA_SELECT_*` and `HMM_PFN_*` constants, and our C helpers
//! (`rust_hmm_*`, `helpers.h`).
//! The types they name come from `kernel::bindings`.

// As the kernel's own `bindings` crate: generated code, not ours to lint.
#![allow(
    clippy::all,
    clippy::as_underscore,
    clippy::cast_lossless,
    clippy::ptr_as_ptr,
    clippy::ref_as_ptr,
    clippy::undocumented_unsafe_blocks,
    missing_docs,
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    improper_ctypes,
    unreachable_pub,
    unsafe_op_in_unsafe_fn,
    dead_code
)]

use kernel::bindings::*;
use kernel::ffi;
use pin_init::MaybeZeroable;

include!("bindings_generated.rs");
