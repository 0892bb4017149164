// SPDX-License-Identifier: GPL-2.0

//! The ioctl ABI of `lib/test_hmm_uapi.h`, number for number.

use kernel::ioctl::{
    _IOR,
    _IOWR, //
};
use kernel::prelude::*;
use kernel::transmute::{
    AsBytes,
    FromBytes, //
};
use kernel::uaccess::{
    UserPtr,
    UserSlice, //
};

/// Defines a `#[repr(C)]` struct of the ABI and implements [`FromBytes`] and
/// [`AsBytes`] for it, once the compiler has checked both conditions: every
/// field is itself `FromBytes + AsBytes`, and the struct has no padding
/// (its size is the sum of its fields').
macro_rules! uapi_struct {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[$fmeta:meta])* $fvis:vis $field:ident: $ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Default)]
        $vis struct $name {
            $($(#[$fmeta])* $fvis $field: $ty,)*
        }

        const _: () = {
            const fn fields_are_bytes<T: FromBytes + AsBytes>() {}
            $(fields_are_bytes::<$ty>();)*
            assert!(core::mem::size_of::<$name>() == 0 $(+ core::mem::size_of::<$ty>())*);
        };

        // SAFETY: `repr(C)` with no padding (asserted above), and every
        // field is `FromBytes`: every bit pattern is a valid value.
        unsafe impl FromBytes for $name {}
        // SAFETY: No padding (asserted above), and every field is `AsBytes`:
        // no byte is uninitialized.
        unsafe impl AsBytes for $name {}
    };
}

uapi_struct! {
    /// `struct hmm_dmirror_cmd`.
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
}

/// Runs `f` on the command struct at user address `arg`, with its outputs
/// zeroed, and writes the struct back if `f` succeeds (on error nothing is
/// written, as in test_hmm).
pub(crate) fn with_cmd(arg: usize, f: impl FnOnce(&mut HmmDmirrorCmd) -> Result) -> Result<isize> {
    let size = core::mem::size_of::<HmmDmirrorCmd>();
    let (mut reader, mut writer) = UserSlice::new(UserPtr::from_addr(arg), size).reader_writer();
    let mut c: HmmDmirrorCmd = reader.read()?;
    c.cpages = 0;
    c.faults = 0;
    f(&mut c)?;
    writer.write(&c)?;
    Ok(0)
}

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

uapi_struct! {
    /// Our own: a device atomic operation on a `u64` of the mirrored process.
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
}

/// Fetch-and-add by the device, atomic against the CPU and other devices.
/// Numbered apart from test_hmm's range so the two never collide.
pub(crate) const HMM_DMIRROR_ATOMIC_ADD: u32 = _IOWR::<HmmDmirrorAtomic>('H' as u32, 0x40);

uapi_struct! {
    /// Our own: counters of one mirror.
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
        /// Pages of device memory the device has registered.
        pub(crate) devmem_pages: u64,
        /// Of those, pages in use (holding migrated data).
        pub(crate) devmem_in_use: u64,
        /// Pages of device memory the device may register at most: when
        /// all are in use, migrations to it fail with `ENOMEM`.
        pub(crate) devmem_max_pages: u64,
    }
}

/// Reads the mirror's counters.
pub(crate) const HMM_DMIRROR_STATS: u32 = _IOR::<HmmDmirrorStats>('H' as u32, 0x41);
/// The same with the first, five-counter struct, for older callers: the
/// size is part of the command number, so each size gets its own.
pub(crate) const HMM_DMIRROR_STATS_V1: u32 = _IOR::<[u64; 5]>('H' as u32, 0x41);
/// The same with the nine-counter struct (before `devmem_max_pages`).
pub(crate) const HMM_DMIRROR_STATS_V2: u32 = _IOR::<[u64; 9]>('H' as u32, 0x41);

/// SNAPSHOT values, one byte per page.
pub(crate) const HMM_DMIRROR_PROT_ERROR: u8 = 0xff;
pub(crate) const HMM_DMIRROR_PROT_NONE: u8 = 0x00;
pub(crate) const HMM_DMIRROR_PROT_READ: u8 = 0x01;
pub(crate) const HMM_DMIRROR_PROT_WRITE: u8 = 0x02;
pub(crate) const HMM_DMIRROR_PROT_PMD: u8 = 0x04;
pub(crate) const HMM_DMIRROR_PROT_PUD: u8 = 0x08;
pub(crate) const HMM_DMIRROR_PROT_ZERO: u8 = 0x10;
pub(crate) const HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL: u8 = 0x20;
pub(crate) const HMM_DMIRROR_PROT_DEV_COHERENT_LOCAL: u8 = 0x40;
pub(crate) const HMM_DMIRROR_PROT_DEV_COHERENT_REMOTE: u8 = 0x50;
/// `HMM_DMIRROR_FLAGS` bit: fail an allocation of a migration, the next
/// one, or the one that bits 32 to 47 count (1: the next).
pub(crate) const HMM_DMIRROR_FLAG_FAIL_ALLOC: u64 = 1 << 0;
/// Our own: where in `HMM_DMIRROR_FLAGS` the count of the failing
/// allocation goes.
pub(crate) const HMM_DMIRROR_FLAG_FAIL_NTH_SHIFT: u32 = 32;
/// Our own `HMM_DMIRROR_FLAGS` bit: pages this file migrated stay in
/// device memory when it is closed.
pub(crate) const HMM_DMIRROR_FLAG_KEEP_ON_CLOSE: u64 = 1 << 1;
/// Our own: this mirror holds the page device-exclusive (the CPU view of
/// such a page is `NONE`: its PTE is a device-exclusive swap entry).
pub(crate) const HMM_DMIRROR_PROT_DEV_EXCLUSIVE: u8 = 0x80;

uapi_struct! {
    /// Our own: device buffers mapped through the device file (`devbuf.rs`).
    /// `HMM_DEVBUF_CREATE`: allocate a buffer of `npages` pages.
    pub(crate) struct HmmDevbufCreate {
        /// (in) size in pages, 1 to [`HMM_DEVBUF_MAX_PAGES`].
        pub(crate) npages: u64,
        /// (out) file offset to pass to `mmap`; also names the buffer.
        pub(crate) offset: u64,
    }
}

uapi_struct! {
    /// A page range of a device buffer, for CLEAN, ZAP and SET_CACHE.
    pub(crate) struct HmmDevbufRange {
        /// (in) the buffer's mmap offset.
        pub(crate) offset: u64,
        /// (in) first page of the range.
        pub(crate) first: u64,
        /// (in) pages in the range, at least 1.
        pub(crate) npages: u64,
        /// (in) CLEAN: user address of a bitmap of `ceil(npages / 64)` `u64`
        /// words; SET_CACHE: the cache mode; ZAP: 0.
        pub(crate) arg: u64,
        /// (out) CLEAN: pages found dirty; ZAP and SET_CACHE: pages in range.
        pub(crate) count: u64,
    }
}

uapi_struct! {
    /// `HMM_DEVBUF_WALK`: visit the PTEs that map a range of a buffer in every
    /// process.
    pub(crate) struct HmmDevbufWalk {
        /// (in) the buffer's mmap offset.
        pub(crate) offset: u64,
        /// (in) first page of the range.
        pub(crate) first: u64,
        /// (in) pages in the range, at least 1.
        pub(crate) npages: u64,
        /// (in) `HMM_DEVBUF_WALK_*` flags.
        pub(crate) flags: u64,
        /// (in) user address of `max_entries` [`HmmDevbufEntry`], or 0.
        pub(crate) entries: u64,
        /// (in) capacity of `entries`, at most [`HMM_DEVBUF_WALK_MAX_ENTRIES`].
        pub(crate) max_entries: u64,
        /// (out) entries visited (may exceed `max_entries`; only the first
        /// `max_entries` are stored).
        pub(crate) nentries: u64,
        /// (out) VMAs visited.
        pub(crate) nvmas: u64,
        /// (out) processes (address spaces) visited.
        pub(crate) nmms: u64,
    }
}

uapi_struct! {
    /// One PTE seen by `HMM_DEVBUF_WALK`.
    pub(crate) struct HmmDevbufEntry {
        /// User address in its process.
        pub(crate) addr: u64,
        /// Page of the buffer it maps.
        pub(crate) page: u64,
        /// `HMM_DEVBUF_PTE_*` bits.
        pub(crate) flags: u32,
        /// Architecture cache-mode bits of the PTE (x86: PWT, PCD, PAT); 0 is
        /// write-back.
        pub(crate) cache: u32,
        /// Index of its process among the `nmms` of this walk.
        pub(crate) mm: u64,
    }
}

uapi_struct! {
    /// `HMM_DEVBUF_STATS`: module-wide counters of device-buffer pages.
    pub(crate) struct HmmDevbufStats {
        /// Buffer pages allocated now, in every buffer.
        pub(crate) pages: u64,
        /// Of those, pages whose linear map is not write-back (UC or WC).
        pub(crate) pages_not_wb: u64,
        /// Linear-map changes made since load (`set_pages_array_*()` calls,
        /// each a TLB flush on every CPU).
        pub(crate) cache_calls: u64,
        /// `HMM_DEVBUF_STATS_*` flags.
        pub(crate) flags: u64,
    }
}

pub(crate) const HMM_DEVBUF_CREATE: u32 = _IOWR::<HmmDevbufCreate>('H' as u32, 0x50);
pub(crate) const HMM_DEVBUF_WALK: u32 = _IOWR::<HmmDevbufWalk>('H' as u32, 0x51);
pub(crate) const HMM_DEVBUF_CLEAN: u32 = _IOWR::<HmmDevbufRange>('H' as u32, 0x52);
pub(crate) const HMM_DEVBUF_ZAP: u32 = _IOWR::<HmmDevbufRange>('H' as u32, 0x53);
pub(crate) const HMM_DEVBUF_SET_CACHE: u32 = _IOWR::<HmmDevbufRange>('H' as u32, 0x54);
pub(crate) const HMM_DEVBUF_STATS: u32 = _IOR::<HmmDevbufStats>('H' as u32, 0x55);

/// Largest buffer: 1 GiB.
pub(crate) const HMM_DEVBUF_MAX_PAGES: u64 = 1 << 18;
/// Most entries one WALK stores.
pub(crate) const HMM_DEVBUF_WALK_MAX_ENTRIES: u64 = 1 << 20;
/// WALK: install missing entries (as read faults would) before visiting.
pub(crate) const HMM_DEVBUF_WALK_POPULATE: u64 = 1;
/// Entry flags.
pub(crate) const HMM_DEVBUF_PTE_WRITE: u32 = 1;
pub(crate) const HMM_DEVBUF_PTE_DIRTY: u32 = 2;
/// Cache modes of SET_CACHE.
pub(crate) const HMM_DEVBUF_CACHE_WB: u64 = 0;
pub(crate) const HMM_DEVBUF_CACHE_UC: u64 = 1;
pub(crate) const HMM_DEVBUF_CACHE_WC: u64 = 2;
/// `HMM_DEVBUF_STATS` flag: x86 PAT is enabled, so UC, WC and WB pages
/// have three different PTE memory types.
pub(crate) const HMM_DEVBUF_STATS_PAT: u64 = 1;

/// A user buffer address from a `u64` field of the ABI, converted at the
/// ioctl boundary: `EFAULT` if it does not fit a `usize` (a 32-bit
/// kernel), as for any other address no user copy can reach.
pub(crate) fn user_addr(addr: u64) -> kernel::error::Result<usize> {
    usize::try_from(addr).map_err(|_| kernel::error::code::EFAULT)
}

uapi_struct! {
    /// Our own: counters of one open DMA mirror file.
    pub(crate) struct HmmDmaStats {
        /// Transfers from process memory into the device buffer.
        pub(crate) to_device: u64,
        /// Transfers from the device buffer into process memory.
        pub(crate) to_ram: u64,
        /// Invalidations of the file's windows.
        pub(crate) invalidations: u64,
        /// Of those, how many waited for a transfer in flight.
        pub(crate) invalidate_waits: u64,
        /// Nanoseconds spent in them (lock held, waits included).
        pub(crate) invalidate_ns: u64,
        /// DMA mappings the invalidations removed.
        pub(crate) unmapped: u64,
        /// 1 if the last window was one IOVA range (an IOMMU), else 0.
        pub(crate) iova: u64,
    }
}

/// Reads the DMA mirror file's counters.
pub(crate) const HMM_DMA_STATS: u32 = _IOR::<HmmDmaStats>('H' as u32, 0x60);

uapi_struct! {
    /// Our own: one range of an `svm` device's mirror.
    pub(crate) struct HmmSvmRange {
        /// First address.
        pub(crate) start: u64,
        /// End (exclusive).
        pub(crate) end: u64,
        /// `HMM_SVM_RANGE_*`.
        pub(crate) flags: u64,
    }
}

/// `HmmSvmRange::flags`: an unmap reached the range; the collector
/// removes it at the next fault.
pub(crate) const HMM_SVM_RANGE_UNMAPPED: u64 = 1;
/// `HmmSvmRange::flags`: that unmap covered only part of it.
pub(crate) const HMM_SVM_RANGE_PARTIAL: u64 = 2;

uapi_struct! {
    /// Our own: a request for the ranges of an `svm` device's mirror.
    pub(crate) struct HmmSvmRanges {
        /// (in) the ranges from the one that contains or follows this.
        pub(crate) addr: u64,
        /// (in) user array of `HmmSvmRange`.
        pub(crate) ptr: u64,
        /// (in) its length, at most `HMM_SVM_RANGES_MAX`; (out) entries
        /// filled.
        pub(crate) count: u64,
    }
}

/// Ranges one `HMM_SVM_RANGES` returns at most.
pub(crate) const HMM_SVM_RANGES_MAX: usize = 1024;

uapi_struct! {
    /// Our own: the counts of an `svm` device's mirror
    /// (`crate::gpusvm::SvmStats`).
    pub(crate) struct HmmSvmStats {
        /// Ranges now.
        pub(crate) ranges: u64,
        /// Notifiers now.
        pub(crate) notifiers: u64,
        /// Ranges made.
        pub(crate) ranges_inserted: u64,
        /// Ranges the garbage collector removed.
        pub(crate) ranges_removed: u64,
        /// Notifiers removed.
        pub(crate) notifiers_removed: u64,
        /// CPU invalidations that reached a notifier.
        pub(crate) invalidations: u64,
        /// Unmaps that covered part of a range.
        pub(crate) partial_unmaps: u64,
    }
}

/// Lists ranges of an `svm` device's mirror (`ENOTTY` on other devices).
pub(crate) const HMM_SVM_RANGES: u32 = _IOWR::<HmmSvmRanges>('H' as u32, 0x70);
/// Reads the counts of an `svm` device's mirror (`ENOTTY` elsewhere).
pub(crate) const HMM_SVM_STATS: u32 = _IOR::<HmmSvmStats>('H' as u32, 0x71);

uapi_struct! {
    /// Our own: `HMM_SVM_PREFETCH`.
    pub(crate) struct HmmSvmPrefetch {
        /// (in) first address, page aligned.
        pub(crate) addr: u64,
        /// (in) pages.
        pub(crate) npages: u64,
        /// (in) `HMM_SVM_LOCATION_*`.
        pub(crate) location: u64,
        /// (out) pages moved.
        pub(crate) moved: u64,
    }
}

/// `HmmSvmPrefetch::location`: system memory.
pub(crate) const HMM_SVM_LOCATION_SYSTEM: u64 = 0;
/// `HmmSvmPrefetch::location`: this device's memory.
pub(crate) const HMM_SVM_LOCATION_DEVICE: u64 = 1;

/// Moves a range and maps it in the device before the device touches it
/// (`ENOTTY` on other devices than the svm ones).
pub(crate) const HMM_SVM_PREFETCH: u32 = _IOWR::<HmmSvmPrefetch>('H' as u32, 0x72);
