// SPDX-License-Identifier: GPL-2.0

//! Migration between system memory and the device's: MIGRATE_TO_DEV,
//! MIGRATE_TO_SYS and RELEASE.

use super::{
    Backend,
    Mirror, //
};
use crate::hmm::{
    resched_or_killed,
    Fault,
    Mode, //
};
use crate::migrate::{
    Migration,
    Select, //
};
use crate::uapi::*;
use kernel::{
    mm::virt::flags::READ as VM_READ,
    page::PAGE_SHIFT,
    prelude::*, //
};

impl<B: Backend> Mirror<B> {
    /// HMM_DMIRROR_MIGRATE_TO_DEV: moves the range into device memory,
    /// then reads it back through the device. `ENOENT` if a page did not
    /// end up in this device's memory (for example, it is in another's),
    /// `ENOMEM` if that is because the device's memory is all in use.
    pub(crate) fn migrate_to_device(&self, c: &mut HmmDmirrorCmd) -> Result {
        let (start, end) = self.range(c)?;
        self.migrate(start, end, Select::System)?;
        self.fault(start, end, Fault::None, Mode::Locked)
            .map_err(|e| {
                let stats = self.memory().stats();
                if e == ENOENT && stats.in_use >= stats.max_pages {
                    ENOMEM
                } else {
                    e
                }
            })?;
        self.read(c, false)?;
        c.faults = 0;
        Ok(())
    }

    /// HMM_DMIRROR_MIGRATE_TO_SYS: moves this device's pages of the range
    /// back to system memory. `cpages` counts the pages moved.
    pub(crate) fn migrate_to_system(&self, c: &mut HmmDmirrorCmd) -> Result {
        let (start, end) = self.range(c)?;
        c.cpages = self.migrate(start, end, self.memory().select())?;
        Ok(())
    }

    /// HMM_SVM_PREFETCH: moves the `npages` pages at `addr` to this
    /// device's memory (`to_device`) or to system memory, and maps them in
    /// the device, writable where the CPU may write, so that the device
    /// takes no fault on them. Returns the pages moved.
    pub(crate) fn prefetch(&self, addr: usize, npages: usize, to_device: bool) -> Result<u64> {
        let (start, end) = self.pages(addr, npages)?;
        let select = if to_device {
            Select::System
        } else {
            self.memory().select()
        };
        let moved = self.migrate(start, end, select)?;
        match self.fault(start, end, Fault::Write, Mode::Locked) {
            // Read-only memory: mapped read-only.
            Err(e) if e == EPERM || e == EFAULT => {
                self.fault(start, end, Fault::Read, Mode::Locked)?
            }
            r => r?,
        }
        Ok(moved)
    }

    /// Migrates `[start, end)` one PMD-aligned window at a time, each inside
    /// one VMA. `EINVAL` for a hole or an unreadable VMA, as test_hmm.
    pub(super) fn migrate(&self, start: usize, end: usize, select: Select) -> Result<u64> {
        let memory = self.memory();
        let mm = self.backend.mm().mmget_not_zero().ok_or(EINVAL)?;
        let lock = mm.mmap_read_lock();
        // Check the whole range before moving anything.
        let mut addr = start;
        while addr < end {
            let vma = lock.vma_lookup(addr).ok_or(EINVAL)?;
            if vma.flags() & VM_READ == 0 {
                return Err(EINVAL);
            }
            addr = vma.end();
        }
        let mut moved = 0;
        let mut addr = start;
        while addr < end {
            resched_or_killed()?;
            let vma = lock.vma_lookup(addr).ok_or(EINVAL)?;
            let pmd = 1usize << (PAGE_SHIFT + crate::migrate::PMD_ORDER as usize);
            let next = end.min(vma.end()).min((addr & !(pmd - 1)) + pmd);
            let mut m = Migration::vma(vma, addr, next, self.owner(), select, true)?;
            moved += match select {
                Select::System => memory.migrate_to_device(&mut m, self.id, &self.fail_alloc),
                _ => memory.migrate_to_system(&mut m, vma, &self.fail_alloc)?,
            };
            drop(m);
            addr = next;
        }
        Ok(moved)
    }

    /// HMM_DMIRROR_RELEASE: moves every page of the device, whoever
    /// migrated it, back to system memory.
    pub(crate) fn release(&self) -> Result {
        self.memory().evict(None)?;
        Ok(())
    }
}
