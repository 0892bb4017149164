// SPDX-License-Identifier: GPL-2.0

//! The sample's C helpers (`helpers.c`) and the one kernel function only it
//! uses (`mapping_wrprotect_range()`), as bindgen generates them at build
//! time from `bindings_helper.h`, like the library's `ffi`.

#![allow(
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    missing_docs,
    non_camel_case_types,
    non_upper_case_globals,
    improper_ctypes,
    unreachable_pub,
    dead_code
)]

use kernel::bindings::*;
use kernel::ffi;

include!("bindings_generated.rs");
