// SPDX-License-Identifier: GPL-2.0

//! Device-coherent memory: the soft-reserved physical ranges it lies in,
//! and the pools over them.
//!
//! Firmware hands memory to a driver rather than to the page allocator by
//! marking it soft-reserved (`EFI_MEMORY_SP`, or `memmap=nn%ss-1+0xefffffff`
//! on x86): the kernel keeps it out of RAM and lists it in its own resource
//! tree (`walk_soft_reserve_res()`; `/proc/iomem` does not show it). A pool
//! claims each chunk it registers with `request_mem_region()`, so that no
//! second pool, and no dax driver, registers the same memory.

use super::{
    Coherent,
    DevicePool,
    DevmemOps, //
};
use kernel::{
    bindings,
    prelude::*, //
};

/// `memremap_pages()` registers whole memory subsections (2 MiB).
const SUBSECTION: u64 = 2 << 20;

/// A physical range inside soft-reserved memory.
///
/// # Invariants
///
/// `start` and `size` are multiples of 2 MiB, `size` is not 0, the range
/// does not wrap, and it lay inside one soft-reserved range when this
/// value was made (such ranges are set at boot and never go).
///
/// # Examples
///
/// The soft-reserved memory of this machine, if any, split in two.
///
/// ```
/// use rust_hmm::devmem::SoftReserved;
///
/// for range in SoftReserved::find()? {
///     assert!(range.size() > 0 && range.start() % (2 << 20) == 0);
///     if range.size() >= 4 << 20 {
///         let half = (range.size() / 2) & !((2 << 20) - 1);
///         let (a, b) = range.split_at(half)?;
///         assert_eq!(a.start() + a.size(), b.start());
///         assert_eq!(SoftReserved::new(b.start(), b.size())?, b);
///     }
/// }
/// // Low memory is RAM, not soft-reserved.
/// assert_eq!(SoftReserved::new(0, 2 << 20).err(), Some(ENXIO));
/// assert_eq!(SoftReserved::new(4096, 2 << 20).err(), Some(EINVAL));
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SoftReserved {
    start: u64,
    size: u64,
}

/// `walk_soft_reserve_res()`'s callback: appends the range, trimmed inward
/// to whole subsections, to the `KVec` at `arg`.
///
/// # Safety
///
/// `res` is a valid resource and `arg` a `KVec<SoftReserved>` the caller
/// lends for the walk.
unsafe extern "C" fn collect(res: *mut bindings::resource, arg: *mut c_void) -> c_int {
    // SAFETY: As the caller promises.
    let (start, end, out) = unsafe {
        (
            (*res).start,
            (*res).end,
            &mut *arg.cast::<KVec<SoftReserved>>(),
        )
    };
    let first = start.next_multiple_of(SUBSECTION);
    let last = end.saturating_add(1) & !(SUBSECTION - 1);
    if first < last {
        // INVARIANT: Aligned, not empty, inside the range just found.
        let r = SoftReserved {
            start: first,
            size: last - first,
        };
        if out.push(r, GFP_KERNEL).is_err() {
            return ENOMEM.to_errno();
        }
    }
    0
}

impl SoftReserved {
    /// Every soft-reserved range of the machine, trimmed to whole 2 MiB
    /// subsections, in address order; empty if there is none.
    pub fn find() -> Result<KVec<SoftReserved>> {
        let mut out = KVec::new();
        // SAFETY: `collect` matches the callback type and gets `out`, which
        // outlives the walk; the walk copies each resource it passes.
        let ret = unsafe {
            bindings::walk_soft_reserve_res(0, u64::MAX, (&raw mut out).cast(), Some(collect))
        };
        // `EINVAL` means no range at all (`walk_res_desc()` starts with
        // it); anything else non-zero is the callback's `ENOMEM`.
        if ret != 0 && ret != EINVAL.to_errno() {
            return Err(Error::from_errno(ret));
        }
        Ok(out)
    }

    /// The range of `size` bytes at physical address `start`: `EINVAL`
    /// unless `start` and `size` are multiples of 2 MiB, `size` is not 0
    /// and the range does not wrap; `ENXIO` unless it lies inside one
    /// soft-reserved range.
    pub fn new(start: u64, size: u64) -> Result<Self> {
        let end = start.checked_add(size).ok_or(EINVAL)?;
        if size == 0 || (start | size) % SUBSECTION != 0 {
            return Err(EINVAL);
        }
        Self::find()?
            .iter()
            .find(|r| r.start <= start && end <= r.start + r.size)
            .ok_or(ENXIO)?;
        // INVARIANT: Checked above.
        Ok(Self { start, size })
    }

    /// The first physical address.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The first `offset` bytes and the rest: `EINVAL` unless `offset` is
    /// a multiple of 2 MiB strictly inside the range.
    pub fn split_at(self, offset: u64) -> Result<(Self, Self)> {
        if offset == 0 || offset >= self.size || offset % SUBSECTION != 0 {
            return Err(EINVAL);
        }
        // INVARIANT: Both parts are aligned, non-empty parts of `self`.
        Ok((
            Self {
                start: self.start,
                size: offset,
            },
            Self {
                start: self.start + offset,
                size: self.size - offset,
            },
        ))
    }

    /// The physical address of chunk `n` of `chunk_bytes`, and its size
    /// (the last may be smaller); `None` past the end.
    pub(super) fn chunk(&self, n: usize, chunk_bytes: u64) -> Option<(u64, u64)> {
        let off = (n as u64).checked_mul(chunk_bytes)?;
        (off < self.size).then(|| (self.start + off, chunk_bytes.min(self.size - off)))
    }
}

impl<T: DevmemOps<Memory = Coherent>> DevicePool<T> {
    /// A pool of device-coherent memory over `range`, in chunks of
    /// `chunk_bytes` (a non-zero multiple of 2 MiB; the last may be
    /// smaller), each registered on first use. `EINVAL` for a bad chunk
    /// size. When every chunk is in use, allocations fail with `ENOMEM`;
    /// a chunk another pool or driver claimed fails with `EBUSY`.
    ///
    /// # Examples
    ///
    /// A device with the first 2 MiB of this machine's soft-reserved
    /// memory, if it has any: a page moves in, and the CPU reads it where
    /// it is, with no fault to bring it back.
    ///
    /// ```
    /// use rust_hmm::devmem::{Coherent, DevicePool, DevmemOps, SoftReserved};
    /// use rust_hmm::migrate::{DstFolio, Migration, Select};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    ///
    /// struct Accelerator;
    ///
    /// impl DevmemOps for Accelerator {
    ///     type PageData = ();
    ///     type Memory = Coherent;
    ///
    ///     fn folio_free(_: &DevicePool<Self>, _: u64, _: &[()]) {}
    ///
    ///     fn copy_to_ram(_: &DevicePool<Self>, _: u64, _: &[()], dst: &mut DstFolio) -> Result {
    ///         dst.zero();
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let Some(range) = SoftReserved::find()?.first().copied() else {
    ///     return Ok(()); // No coherent memory here.
    /// };
    /// let range = SoftReserved::new(range.start(), 2 << 20)?;
    /// assert_eq!(DevicePool::new_coherent(Accelerator, range, 4096).err(), Some(EINVAL));
    /// let pool = DevicePool::new_coherent(Accelerator, range, 2 << 20)?;
    /// let pool = KBox::pin_init(pool, GFP_KERNEL)?;
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// {
    ///     let lock = mm.mmap_read_lock();
    ///     let vma = lock.vma_lookup(addr).ok_or(EFAULT)?;
    ///     let (end, owner) = (addr + PAGE, pool.owner());
    ///     let mut m = Migration::vma(vma, addr, end, owner, Select::System, false)?;
    ///     // The CPU will map the device page as it is, so it comes unfilled:
    ///     // the source is untouched, so zeroes.
    ///     let moved = pool.migrate_to_device(&mut m, |_| true, |dst, _src, _first| {
    ///         dst.zero();
    ///         Ok(())
    ///     });
    ///     assert_eq!(moved, 1);
    /// }
    /// let mut word = [1u8; 8];
    /// kunit_mm::read_user(addr, &mut word)?;
    /// assert_eq!(word, [0; 8]);
    /// assert_eq!(pool.stats().in_use, 1); // Still on the device.
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new_coherent(
        ops: T,
        range: SoftReserved,
        chunk_bytes: u64,
    ) -> Result<impl PinInit<Self, Error>> {
        if chunk_bytes == 0 || chunk_bytes % SUBSECTION != 0 {
            return Err(EINVAL);
        }
        let max_chunks = range.size.div_ceil(chunk_bytes) as usize;
        Ok(Self::init(ops, chunk_bytes, max_chunks, Some(range)))
    }
}
