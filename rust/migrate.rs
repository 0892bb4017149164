// SPDX-License-Identifier: GPL-2.0

//! Page migration between system and device memory
//! (`include/linux/migrate.h`).
//!
//! A [`Migration`] is one round of `migrate_vma_setup()` (pages found by
//! virtual address, under the mmap lock) or `migrate_device_pfns()` (pages
//! found by device PFN, for eviction), followed by the driver choosing a
//! destination for each collected page, `migrate_*_pages()`, and always
//! `migrate_*_finalize()`, which [`Drop`] runs. The source pages stay
//! locked and referenced by the migration until then, so they may be read
//! for as long as the [`Migration`] lives; destinations are handed over as
//! [`DstFolio`]s, whose ownership passes to the migration core.
//!
//! Pages the driver gives no destination, or that the core cannot move, are
//! restored where they were: a failure is per page, never for the range.
//! A [`Migration`] dropped before [`Migration::pages`] (a driver's error
//! path) releases the destinations it was given and restores every page.
//!
//! - this file: the constants, [`PagemapOwner`], [`Select`];
//! - `src.rs`: [`SrcPfn`], a page the core collected;
//! - `dst.rs`: [`DstFolio`] and [`DstPage`], destinations;
//! - `migration.rs`: [`Migration`] itself.

use crate::ffi;

// The `MIGRATE_PFN_*` bits of the `u64` entries of `src` and `dst` (bindgen
// types a `#define` as `u32`).
const MIGRATE_PFN_VALID: u64 = ffi::MIGRATE_PFN_VALID as u64;
const MIGRATE_PFN_MIGRATE: u64 = ffi::MIGRATE_PFN_MIGRATE as u64;
const MIGRATE_PFN_WRITE: u64 = ffi::MIGRATE_PFN_WRITE as u64;
const MIGRATE_PFN_COMPOUND: u64 = ffi::MIGRATE_PFN_COMPOUND as u64;
const MIGRATE_PFN_SHIFT: u32 = ffi::MIGRATE_PFN_SHIFT;

/// Most pages one [`Migration`] handles: one PMD, as `lib/test_hmm.c`.
///
/// # Examples
///
/// A range of one page more is refused before anything is collected.
///
/// ```
/// use rust_hmm::migrate::{Migration, PagemapOwner, Select, MAX_PAGES};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// let addr = kunit_mm::mmap_anon(MAX_PAGES + 1, true)?;
/// let lock = mm.mmap_read_lock();
/// let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
/// let owner = PagemapOwner::of(&*mm);
/// let end = addr + MAX_PAGES * PAGE;
/// let m = Migration::vma(vma, addr, end + PAGE, owner, Select::System, false);
/// assert_eq!(m.err(), Some(EINVAL));
/// let m = Migration::vma(vma, addr, end, owner, Select::System, false)?;
/// assert_eq!(m.npages(), MAX_PAGES);
/// # Ok::<(), Error>(())
/// ```
pub const MAX_PAGES: usize = 512;

/// Order of a PMD-sized folio, the largest a migration moves whole
/// (`HPAGE_PMD_ORDER`).
///
/// # Examples
///
/// A PMD-sized folio is 2 MiB with 4 KiB pages: the most one migration moves.
///
/// ```
/// use rust_hmm::migrate::{MAX_PAGES, PMD_ORDER};
///
/// assert_eq!(1 << PMD_ORDER, MAX_PAGES);
/// assert_eq!(kernel::page::PAGE_SIZE << PMD_ORDER, 2 << 20);
/// ```
pub const PMD_ORDER: u32 = ffi::HPAGE_PMD_ORDER;

/// The owner cookie of device-private memory (`dev_pagemap::owner`): HMM
/// reports, and migration collects, only the device pages whose pagemap
/// carries the cookie asked for. Compared by address, never dereferenced.
///
/// # Examples
///
/// ```
/// use rust_hmm::migrate::PagemapOwner;
///
/// struct Device {
///     id: u32,
/// }
/// let (a, b) = (Device { id: 0 }, Device { id: 1 });
/// assert_eq!(PagemapOwner::of(&a), PagemapOwner::of(&a));
/// assert_ne!(PagemapOwner::of(&a), PagemapOwner::of(&b));
/// # let _ = (a.id, b.id);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PagemapOwner(*const core::ffi::c_void);

// SAFETY: A cookie compared by address; nothing is reached through it.
unsafe impl Send for PagemapOwner {}
// SAFETY: As above.
unsafe impl Sync for PagemapOwner {}

impl PagemapOwner {
    /// The cookie of the object at `owner` (a pool, a device).
    ///
    /// # Examples
    ///
    /// The cookie is the object's address: the same object always gives the same
    /// cookie, and an equal copy elsewhere is another owner.
    ///
    /// ```
    /// use rust_hmm::migrate::PagemapOwner;
    ///
    /// let device = [0u8; 16];
    /// assert_eq!(PagemapOwner::of(&device), PagemapOwner::of(&device));
    /// let copy = device;
    /// assert_ne!(PagemapOwner::of(&copy), PagemapOwner::of(&device));
    /// ```
    pub fn of<T>(owner: &T) -> Self {
        Self(core::ptr::from_ref(owner).cast())
    }

    /// The raw cookie, for the kernel's structures.
    ///
    /// # Examples
    ///
    /// What `dev_pagemap::owner` and `hmm_range::dev_private_owner` hold: the
    /// owner's address.
    ///
    /// ```
    /// use rust_hmm::migrate::PagemapOwner;
    ///
    /// let device = 0u64;
    /// let cookie = PagemapOwner::of(&device).as_ptr();
    /// assert_eq!(cookie.cast_const(), core::ptr::from_ref(&device).cast());
    /// ```
    pub fn as_ptr(self) -> *mut core::ffi::c_void {
        self.0.cast_mut()
    }
}

/// Which pages `migrate_vma_setup()` collects.
///
/// # Examples
///
/// A page of system memory is collected to move into the device, never to
/// move out of it.
///
/// ```
/// use rust_hmm::migrate::{Migration, PagemapOwner, Select};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// # let addr = kunit_mm::mmap_anon(1, true)?;
/// kunit_mm::write_user(addr, b"data")?;
/// let lock = mm.mmap_read_lock();
/// let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
/// let owner = PagemapOwner::of(&*mm);
/// for (select, collected) in [(Select::System, true), (Select::DevicePrivate, false)] {
///     let m = Migration::vma(vma, addr, addr + PAGE, owner, select, false)?;
///     assert_eq!(m.src(0).migrate(), collected);
/// }
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Select {
    /// System memory, to move it into the device.
    System,
    /// The caller's device-private pages (matched by owner), to move them
    /// back to system memory. Those of a `devmem::DevicePool` go
    /// through its `migrate_to_ram()`, which records that they no longer
    /// hold data; moved without it, eviction may take one again before it
    /// is freed.
    DevicePrivate,
    /// The caller's device-coherent pages (matched by owner), to move them
    /// back to system memory; as for [`Select::DevicePrivate`], those of a
    /// pool go through its `migrate_to_ram()`.
    DeviceCoherent,
}

mod dst;
mod migration;
mod src;

pub use dst::{
    DstFolio,
    DstPage, //
};
pub use migration::Migration;
pub use src::SrcPfn;
