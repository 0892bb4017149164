// SPDX-License-Identifier: GPL-2.0

//! Leaf entries ([`Entry`]) and what a raw directory entry holds: a huge
//! leaf, or a child directory with its count in the low bits. Dirty pages
//! leave the table through a [`DirtySink`].

use super::{
    dir_size,
    entries_at,
    HUGE_LEVEL,
    HUGE_PAGES,
    PAGE_SHIFT, //
};
use crate::guarded_page::{
    GuardedPages,
    Kind, //
};

/// One leaf entry of the device page table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Entry(pub(super) u64);

impl Entry {
    /// The entry maps a page.
    pub const VALID: u64 = 1 << 0;
    /// The device may write the page.
    pub const WRITE: u64 = 1 << 1;
    /// The device has written the page since the entry was made.
    pub const DIRTY: u64 = 1 << 2;
    /// The CPU cannot access the page: it is device-exclusive for atomics.
    pub const EXCLUSIVE: u64 = 1 << 3;
    /// The page is in device memory: the PFN names where the device keeps
    /// its data, a page the CPU never maps, so it is never passed to
    /// `set_page_dirty()`.
    pub const DEVICE: u64 = 1 << 5;
    /// All flag bits.
    pub const FLAGS: u64 = Self::VALID | Self::WRITE | Self::DIRTY | Self::EXCLUSIVE | Self::DEVICE;
    /// The page is part of a huge leaf. Set by the table in the entries it
    /// hands out and in huge leaves, never by a caller. Directory
    /// entries of level 2 never have this bit: their count is at most 8.
    pub const HUGE: u64 = 1 << 4;
    pub(super) const PFN_MASK: u64 = !((1 << PAGE_SHIFT) - 1);

    /// A valid entry for `pfn` with `flags` (`VALID` is implied). Private:
    /// entries come from [`GuardedPages`], through
    /// [`DevicePageTable::insert_page`].
    ///
    /// [`DevicePageTable::insert_page`]: super::DevicePageTable::insert_page
    pub(super) fn new(pfn: u64, flags: u64) -> Self {
        Self((pfn << PAGE_SHIFT) | (flags & Self::FLAGS) | Self::VALID)
    }

    /// The entry belongs to a huge leaf.
    pub fn is_huge(self) -> bool {
        self.0 & Self::HUGE != 0
    }

    /// The page frame number. Private: pages leave the table only as
    /// [`GuardedPages`] that borrow it ([`DevicePageTable::lookup_page`]).
    ///
    /// [`DevicePageTable::lookup_page`]: super::DevicePageTable::lookup_page
    pub(super) fn pfn(self) -> u64 {
        (self.0 & Self::PFN_MASK) >> PAGE_SHIFT
    }

    /// Whether every bit of `flags` is set.
    pub fn has(self, flags: u64) -> bool {
        self.0 & flags == flags
    }

    /// Raw flag bits.
    pub fn flags(self) -> u64 {
        self.0 & Self::FLAGS
    }

    /// The kind of memory the entry names.
    pub(super) fn kind(self) -> Kind {
        if self.has(Self::DEVICE) {
            Kind::DeviceData
        } else {
            Kind::System
        }
    }

    /// Hands the `npages` pages of this dirty entry, which the table is
    /// dropping or cleaning, to `sink`.
    pub(super) fn report(self, npages: u64, sink: &mut impl DirtySink) {
        // SAFETY: The entry was valid until now, and whoever changes the
        // table holds the notifier lock (the contract of
        // `DevicePageTable::new`), which every way to free its pages waits
        // for; the sink gets them only for the call. A dirty entry was
        // writable when the device wrote it (`entry_for`).
        sink.dirty(unsafe { GuardedPages::written(self.pfn(), npages, self.kind()) });
    }
}

// A level-2 directory entry's count stays below `HUGE`.
const _: () = assert!((entries_at(HUGE_LEVEL - 1) as u64) < Entry::HUGE);
const _: () = assert!(dir_size(HUGE_LEVEL - 1) > Entry::HUGE);

/// Receives the pages whose dirty bit the table drops.
///
/// The mirror marks them dirty ([`GuardedPages::mark_dirty`]) or takes
/// references to do so later ([`GuardedPages::get`]); tests record them.
pub trait DirtySink {
    /// The device wrote `pages` (one page, or every page of a huge leaf),
    /// and the table no longer remembers it. They are valid for the call.
    fn dirty(&mut self, pages: GuardedPages<'_>);
}

/// Whether a non-zero entry of a level-2 directory is a huge leaf.
#[inline(always)]
pub(super) fn is_huge_slot(e: u64) -> bool {
    e & Entry::HUGE != 0
}

/// The entry of the page at `addr` inside the huge leaf `e`.
#[inline(always)]
pub(super) fn huge_page(e: u64, addr: usize) -> Entry {
    let i = (addr >> PAGE_SHIFT) as u64 & (HUGE_PAGES - 1);
    // The head PFN is HUGE_PAGES aligned, so this only adds to the PFN.
    Entry(e + (i << PAGE_SHIFT))
}

/// Bits of a directory entry that hold the count of the child at
/// `child_level`: the child's alignment leaves them free in its address.
#[inline(always)]
pub(super) fn count_mask(child_level: u32) -> u64 {
    dir_size(child_level).wrapping_sub(1)
}

/// The child directory (at `child_level`) named by a directory entry.
#[inline(always)]
pub(super) fn child(e: u64, child_level: u32) -> *mut u64 {
    (e & !count_mask(child_level)) as *mut u64
}
