// SPDX-License-Identifier: GPL-2.0

//! The kinds of device memory a pool can hold, as types: a driver names
//! one in [`DevmemOps::Memory`](super::DevmemOps::Memory), and the pool's
//! constructor and behaviour follow from it.

use crate::migrate::Select;
use kernel::bindings;

mod private {
    /// Seals [`super::MemoryType`]: the core knows these two kinds only.
    pub trait Sealed {}
}

/// A kind of device memory (`enum memory_type`); sealed.
///
/// # Examples
///
/// What each kind collects when its pages move back to system memory.
///
/// ```
/// use rust_hmm::devmem::{Coherent, MemoryType, Private};
/// use rust_hmm::migrate::Select;
///
/// assert_eq!(Private::SELECT, Select::DevicePrivate);
/// assert_eq!(Coherent::SELECT, Select::DeviceCoherent);
/// assert!(Private::CPU_FAULTS && !Coherent::CPU_FAULTS);
/// ```
pub trait MemoryType: private::Sealed + Send + Sync + 'static {
    /// The `dev_pagemap::type` of its chunks.
    const TYPE: bindings::memory_type;
    /// What a migration selects to collect its pages.
    const SELECT: Select;
    /// Whether the CPU faults on its pages (and the pool moves them back
    /// in `migrate_to_ram`), rather than mapping them.
    const CPU_FAULTS: bool;
    /// Whether the pool hands out PMD-sized folios as well as pages.
    const LARGE: bool;
}

/// Device-private memory (`MEMORY_DEVICE_PRIVATE`): the CPU cannot address
/// it, and faults on its pages.
///
/// # Examples
///
/// ```
/// use rust_hmm::devmem::{MemoryType, Private};
/// assert!(Private::LARGE);
/// ```
pub enum Private {}

impl private::Sealed for Private {}
impl MemoryType for Private {
    const TYPE: bindings::memory_type = bindings::memory_type_MEMORY_DEVICE_PRIVATE;
    const SELECT: Select = Select::DevicePrivate;
    const CPU_FAULTS: bool = true;
    const LARGE: bool = true;
}

/// Device-coherent memory (`MEMORY_DEVICE_COHERENT`): the CPU maps its
/// pages as it maps RAM.
///
/// Its pages are handed out one at a time: the core would collect a
/// PMD-mapped coherent folio neither to migrate it back
/// (`migrate_vma_collect_huge_pmd()` only looks at system memory) nor for
/// a long-term pin (`migrate_device_coherent_folio()` takes small folios
/// only), so such a folio could be moved only by eviction.
///
/// # Examples
///
/// ```
/// use rust_hmm::devmem::{Coherent, MemoryType};
/// assert!(!Coherent::LARGE);
/// ```
pub enum Coherent {}

impl private::Sealed for Coherent {}
impl MemoryType for Coherent {
    const TYPE: bindings::memory_type = bindings::memory_type_MEMORY_DEVICE_COHERENT;
    const SELECT: Select = Select::DeviceCoherent;
    const CPU_FAULTS: bool = false;
    const LARGE: bool = false;
}
