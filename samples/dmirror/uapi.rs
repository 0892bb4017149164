// SPDX-License-Identifier: GPL-2.0

//! The ioctl ABI of `lib/test_hmm_uapi.h`, number for number.

use kernel::ioctl::{_IOR, _IOWR};
use kernel::transmute::{AsBytes, FromBytes};

/// `struct hmm_dmirror_cmd`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct HmmDmirrorCmd {
    /// (in) user address the device reads or writes.
    pub(crate) addr: u64,
    /// (in) user buffer the data is copied to or from.
    pub(crate) ptr: u64,
    /// (in) number of pages.
    pub(crate) npages: u64,
    /// (out) pages copied.
    pub(crate) cpages: u64,
    /// (out) device page faults taken.
    pub(crate) faults: u64,
}

// SAFETY: Plain integers, no padding; every bit pattern is valid.
unsafe impl FromBytes for HmmDmirrorCmd {}
// SAFETY: Plain integers, no padding.
unsafe impl AsBytes for HmmDmirrorCmd {}

const fn cmd(nr: u32) -> u32 {
    _IOWR::<HmmDmirrorCmd>('H' as u32, nr)
}

pub(crate) const HMM_DMIRROR_READ: u32 = cmd(0x00);
pub(crate) const HMM_DMIRROR_WRITE: u32 = cmd(0x01);
pub(crate) const HMM_DMIRROR_MIGRATE_TO_DEV: u32 = cmd(0x02);
pub(crate) const HMM_DMIRROR_MIGRATE_TO_SYS: u32 = cmd(0x03);
pub(crate) const HMM_DMIRROR_SNAPSHOT: u32 = cmd(0x04);
pub(crate) const HMM_DMIRROR_EXCLUSIVE: u32 = cmd(0x05);
pub(crate) const HMM_DMIRROR_CHECK_EXCLUSIVE: u32 = cmd(0x06);
pub(crate) const HMM_DMIRROR_RELEASE: u32 = cmd(0x07);
pub(crate) const HMM_DMIRROR_FLAGS: u32 = cmd(0x08);
pub(crate) const HMM_DMIRROR_READ_UNLOCKED: u32 = cmd(0x09);

/// Our own: a device atomic operation on a `u64` of the mirrored process.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct HmmDmirrorAtomic {
    /// (in) user address of the `u64`, 8-byte aligned.
    pub(crate) addr: u64,
    /// (in) value to add.
    pub(crate) value: u64,
    /// (out) the value before the add.
    pub(crate) old: u64,
    /// (out) 1 if the device had to take exclusive access first, else 0.
    pub(crate) faults: u64,
}

// SAFETY: Plain integers, no padding; every bit pattern is valid.
unsafe impl FromBytes for HmmDmirrorAtomic {}
// SAFETY: Plain integers, no padding.
unsafe impl AsBytes for HmmDmirrorAtomic {}

/// Fetch-and-add by the device, atomic against the CPU and other devices.
/// Numbered apart from test_hmm's range so the two never collide.
pub(crate) const HMM_DMIRROR_ATOMIC_ADD: u32 = _IOWR::<HmmDmirrorAtomic>('H' as u32, 0x40);

/// Our own: counters of one mirror.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct HmmDmirrorStats {
    /// Invalidations the notifier handled.
    pub(crate) invalidations: u64,
    /// Nanoseconds spent in them (first pass, lock held).
    pub(crate) invalidate_ns: u64,
    /// Valid 4 KiB entries in the device page table.
    pub(crate) entries: u64,
    /// Directories below the root.
    pub(crate) dirs: u64,
    /// Bytes of directories, the root included.
    pub(crate) table_bytes: u64,
    /// Huge (2 MiB) leaves in the device page table.
    pub(crate) huge_entries: u64,
    /// Huge leaves split into 4 KiB entries so far.
    pub(crate) huge_splits: u64,
}

// SAFETY: Plain integers, no padding; every bit pattern is valid.
unsafe impl FromBytes for HmmDmirrorStats {}
// SAFETY: Plain integers, no padding.
unsafe impl AsBytes for HmmDmirrorStats {}

/// Reads the mirror's counters.
pub(crate) const HMM_DMIRROR_STATS: u32 = _IOR::<HmmDmirrorStats>('H' as u32, 0x41);
/// The same with the first, five-counter struct, for older callers: the
/// size is part of the command number, so each size gets its own.
pub(crate) const HMM_DMIRROR_STATS_V1: u32 = _IOR::<[u64; 5]>('H' as u32, 0x41);

/// SNAPSHOT values, one byte per page.
pub(crate) const HMM_DMIRROR_PROT_ERROR: u8 = 0xff;
pub(crate) const HMM_DMIRROR_PROT_NONE: u8 = 0x00;
pub(crate) const HMM_DMIRROR_PROT_READ: u8 = 0x01;
pub(crate) const HMM_DMIRROR_PROT_WRITE: u8 = 0x02;
pub(crate) const HMM_DMIRROR_PROT_PMD: u8 = 0x04;
pub(crate) const HMM_DMIRROR_PROT_PUD: u8 = 0x08;
pub(crate) const HMM_DMIRROR_PROT_ZERO: u8 = 0x10;
/// Our own: this mirror holds the page device-exclusive (the CPU view of
/// such a page is `NONE`: its PTE is a device-exclusive swap entry).
pub(crate) const HMM_DMIRROR_PROT_DEV_EXCLUSIVE: u8 = 0x80;
