// SPDX-License-Identifier: GPL-2.0

//! What an invalidation tells the driver: its range, and why it happens.

use kernel::bindings;

/// Why an invalidation happens (`enum mmu_notifier_event`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Event {
    /// The range is being unmapped (munmap, mremap, zap).
    Unmap,
    /// The mapping is being cleared, for example on COW or reclaim.
    Clear,
    /// The protection of the whole VMA changes (mprotect).
    ProtectionVma,
    /// Pages are write-protected (fork COW, writeback, `folio_mkclean`).
    ProtectionPage,
    /// Soft-dirty tracking write-protects the range.
    SoftDirty,
    /// The process address space is torn down.
    Release,
    /// Pages are migrated.
    Migrate,
    /// Pages are made device exclusive.
    Exclusive,
}

impl Event {
    fn from_raw(e: bindings::mmu_notifier_event) -> Self {
        match e {
            bindings::mmu_notifier_event_MMU_NOTIFY_UNMAP => Self::Unmap,
            bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_VMA => Self::ProtectionVma,
            bindings::mmu_notifier_event_MMU_NOTIFY_PROTECTION_PAGE => Self::ProtectionPage,
            bindings::mmu_notifier_event_MMU_NOTIFY_SOFT_DIRTY => Self::SoftDirty,
            bindings::mmu_notifier_event_MMU_NOTIFY_RELEASE => Self::Release,
            bindings::mmu_notifier_event_MMU_NOTIFY_MIGRATE => Self::Migrate,
            bindings::mmu_notifier_event_MMU_NOTIFY_EXCLUSIVE => Self::Exclusive,
            // CLEAR, and anything newer: assume the worst.
            _ => Self::Clear,
        }
    }

    /// Whether the CPU keeps read access to the pages after the event, so
    /// that a mirror may keep its entries read-only instead of dropping them.
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::mmu_notifier::Event;
    ///
    /// // fork() write-protects the parent's pages: they stay readable.
    /// assert!(Event::ProtectionPage.keeps_read());
    /// // mprotect() may take read access away too; munmap() takes all.
    /// assert!(!Event::ProtectionVma.keeps_read());
    /// assert!(!Event::Unmap.keeps_read());
    /// ```
    pub fn keeps_read(self) -> bool {
        matches!(self, Self::ProtectionPage | Self::SoftDirty)
    }
}

/// The range of one invalidation (`struct mmu_notifier_range`).
pub struct NotifierRange<'a> {
    pub(super) raw: &'a bindings::mmu_notifier_range,
}

impl NotifierRange<'_> {
    /// First address of the range.
    pub fn start(&self) -> usize {
        self.raw.start
    }

    /// End of the range (exclusive).
    pub fn end(&self) -> usize {
        self.raw.end
    }

    /// Why the range is invalidated.
    pub fn event(&self) -> Event {
        Event::from_raw(self.raw.event)
    }

    /// The owner cookie that the initiator passed (migration, exclusive).
    pub fn owner(&self) -> *const core::ffi::c_void {
        self.raw.owner
    }

    /// Whether the callback may sleep (`mmu_notifier_range_blockable()`).
    pub fn blockable(&self) -> bool {
        self.raw.flags & bindings::MMU_NOTIFIER_RANGE_BLOCKABLE != 0
    }
}
