// SPDX-License-Identifier: GPL-2.0

//! A per-mirror device page table.
//!
//! This is the table a device walks to translate a virtual address of the
//! mirrored process into a system PFN: a radix tree with 512 entries per
//! directory and five levels, covering virtual addresses `[0, 2^57)` (the
//! largest x86-64 user address space, with 5-level paging).
//!
//! A leaf entry is `pfn << PAGE_SHIFT | flags` (see [`Entry`]). A directory
//! entry is the address of the child directory, which is page aligned, with
//! the number of non-empty entries of that child in the low 12 bits. Keeping
//! the count in the parent keeps every directory exactly one page: a dense
//! table costs 8 bytes per mapped page plus 1/512 of that per level above.
//! Directories are allocated on demand and freed as soon as they are empty.
//!
//! # Locking
//!
//! The table has no lock of its own: it lives in the state of an
//! [`IntervalNotifier`](crate::mmu_notifier::IntervalNotifier), so every
//! access holds the notifier lock, the same lock the invalidate callback
//! takes. Because that callback can run from reclaim, nothing here may
//! allocate with `GFP_KERNEL`: directories come from a [`DirReserve`]
//! filled before the lock is taken, or from `GFP_NOWAIT`.

use core::mem::MaybeUninit;
use kernel::alloc::flags::{__GFP_ZERO, GFP_NOWAIT};
use kernel::prelude::*;

/// Bits of virtual address translated per level.
const DIR_SHIFT: u32 = 9;
/// Entries per directory.
const DIR_ENTRIES: usize = 1 << DIR_SHIFT;
/// Number of levels; level 0 holds the leaf entries.
const LEVELS: u32 = 5;
const PAGE_SHIFT: u32 = kernel::page::PAGE_SHIFT as u32;
/// First virtual address the table cannot describe.
pub const VA_LIMIT: u64 = 1 << (PAGE_SHIFT + LEVELS * DIR_SHIFT);

/// Size of the address range one entry at `level` covers, as a shift.
const fn level_shift(level: u32) -> u32 {
    PAGE_SHIFT + level * DIR_SHIFT
}

/// One leaf entry of the device page table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Entry(u64);

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
    const PFN_MASK: u64 = !((1 << PAGE_SHIFT) - 1);

    /// A valid entry for `pfn` with `flags` (`VALID` is implied).
    pub fn new(pfn: u64, flags: u64) -> Self {
        Self((pfn << PAGE_SHIFT) | (flags & Self::FLAGS) | Self::VALID)
    }

    /// The page frame number.
    pub fn pfn(self) -> u64 {
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
}

/// Receives the PFNs whose dirty bit the table drops.
///
/// The mirror passes the pages to `set_page_dirty`; tests record them.
pub trait DirtySink {
    /// The device wrote `pfn`, and the table no longer remembers it.
    fn dirty(&mut self, pfn: u64);
}

/// One directory: exactly one page, so that its address leaves 12 low bits
/// free in the parent entry for the count of its non-empty entries.
#[repr(C, align(4096))]
struct Dir([u64; DIR_ENTRIES]);

const _: () = assert!(core::mem::size_of::<Dir>() == 4096);
const COUNT_MASK: u64 = 0xfff;

/// Directories allocated ahead of time, outside the notifier lock.
pub struct DirReserve(KVec<KBox<Dir>>);

impl DirReserve {
    /// An empty reserve.
    pub fn new() -> Self {
        Self(KVec::new())
    }

    /// Makes sure at least `n` directories are ready, allocating with `flags`.
    pub fn fill(&mut self, n: usize, flags: kernel::alloc::Flags) -> Result {
        while self.0.len() < n {
            let dir = alloc_dir(flags)?;
            self.0.push(dir, flags)?;
        }
        Ok(())
    }

    /// Directories a single [`DevicePageTable::insert`] may need at most.
    pub const PER_INSERT: usize = (LEVELS - 1) as usize;
}

impl Default for DirReserve {
    fn default() -> Self {
        Self::new()
    }
}

fn alloc_dir(flags: kernel::alloc::Flags) -> Result<KBox<Dir>> {
    let dir: KBox<MaybeUninit<Dir>> = KBox::new_uninit(flags | __GFP_ZERO)?;
    // SAFETY: `__GFP_ZERO` zeroed the memory, and all zeroes is a valid `Dir`
    // (every entry empty).
    Ok(unsafe { dir.assume_init() })
}

/// Counters of what the table holds.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct PtStats {
    /// Valid leaf entries.
    pub entries: u64,
    /// Directories below the root.
    pub dirs: u64,
}

/// A multi-level device page table.
///
/// # Invariants
///
/// - Every non-zero entry of a directory at level `l > 0` is the address of
///   a `KBox<Dir>` leaked with `KBox::into_raw`, owned by this table, or'ed
///   with the number (1..=512) of non-zero entries of that directory.
/// - `root_count` is the number of non-zero entries of `root`.
/// - `stats` counts the leaf entries and directories below the root.
pub struct DevicePageTable {
    root: KBox<Dir>,
    root_count: u64,
    stats: PtStats,
}

// SAFETY: The table owns its directories; nothing in it is tied to a thread.
unsafe impl Send for DevicePageTable {}

/// Decoded directory entry.
fn child(e: u64) -> *mut Dir {
    (e & !COUNT_MASK) as *mut Dir
}

impl DevicePageTable {
    /// An empty table.
    pub fn new(flags: kernel::alloc::Flags) -> Result<Self> {
        Ok(Self {
            root: alloc_dir(flags)?,
            root_count: 0,
            stats: PtStats::default(),
        })
    }

    /// What the table holds.
    pub fn stats(&self) -> PtStats {
        self.stats
    }

    /// Bytes of directories the table uses, the root included.
    pub fn bytes(&self) -> u64 {
        (self.stats.dirs + 1) * core::mem::size_of::<Dir>() as u64
    }

    fn check_addr(addr: u64) -> Result {
        if addr & ((1 << PAGE_SHIFT) - 1) != 0 {
            return Err(EINVAL);
        }
        if addr >= VA_LIMIT {
            return Err(EFAULT);
        }
        Ok(())
    }

    fn index(addr: u64, level: u32) -> usize {
        ((addr >> level_shift(level)) as usize) & (DIR_ENTRIES - 1)
    }

    /// The leaf directory covering `addr`, if one exists.
    fn leaf(&self, addr: u64) -> Option<&Dir> {
        Self::check_addr(addr).ok()?;
        let mut dir: &Dir = &self.root;
        for level in (1..LEVELS).rev() {
            let e = dir.0[Self::index(addr, level)];
            if e == 0 {
                return None;
            }
            // SAFETY: Non-zero directory entries point to live directories
            // owned by `self` (type invariant); `&self` keeps them alive.
            dir = unsafe { &*child(e) };
        }
        Some(dir)
    }

    /// The leaf entry for `addr`, if one is present.
    pub fn lookup(&self, addr: u64) -> Option<Entry> {
        let e = self.leaf(addr)?.0[Self::index(addr, 0)];
        (e != 0).then_some(Entry(e))
    }

    /// Calls `f(addr, entry)` for the present entries from `start` on, in
    /// order, up to `end`, the first missing entry, or the first `false`
    /// from `f`. Returns the address where it stopped. One descent per
    /// leaf directory: the device's sequential access path.
    pub fn run(&self, start: u64, end: u64, f: &mut impl FnMut(u64, Entry) -> bool) -> u64 {
        let mut addr = start;
        while addr < end {
            let Some(leaf) = self.leaf(addr) else {
                return addr;
            };
            for e in leaf.0[Self::index(addr, 0)..].iter() {
                if addr >= end || *e == 0 || !f(addr, Entry(*e)) {
                    return addr;
                }
                addr += 1 << PAGE_SHIFT;
            }
        }
        addr
    }

    /// Number of directories an insert at `addr` would allocate.
    fn missing_dirs(&self, addr: u64) -> usize {
        let mut dir: &Dir = &self.root;
        for level in (1..LEVELS).rev() {
            let e = dir.0[Self::index(addr, level)];
            if e == 0 {
                return level as usize;
            }
            // SAFETY: Non-zero directory entries point to live directories
            // owned by `self` (type invariant).
            dir = unsafe { &*child(e) };
        }
        0
    }

    /// The leaf directory covering `addr` and the index of `addr` in it;
    /// `None` when no leaf directory exists there.
    fn leaf_mut(&mut self, addr: u64) -> Option<(&mut [u64; DIR_ENTRIES], usize)> {
        let mut dir: *mut Dir = &mut *self.root;
        for level in (1..LEVELS).rev() {
            // SAFETY: `dir` is the root or a live directory owned by `self`.
            let e = unsafe { (*dir).0[Self::index(addr, level)] };
            if e == 0 {
                return None;
            }
            dir = child(e);
        }
        // SAFETY: `dir` is a live leaf directory owned by `self`, and `&mut
        // self` makes this the only reference into it.
        Some((unsafe { &mut (*dir).0 }, Self::index(addr, 0)))
    }

    /// Installs `entry` at `addr`, allocating directories as needed.
    ///
    /// Replacing a dirty entry of another page reports that page dirty;
    /// re-installing the same page keeps its dirty bit.
    pub fn insert(
        &mut self,
        addr: u64,
        entry: Entry,
        reserve: &mut DirReserve,
        sink: &mut impl DirtySink,
    ) -> Result {
        Self::check_addr(addr)?;
        // Get every missing directory first, so that a failed allocation
        // leaves the table as it was.
        let need = self.missing_dirs(addr);
        reserve.fill(need, GFP_NOWAIT)?;
        let mut dir: *mut Dir = &mut *self.root;
        // Pointer to the count of non-zero entries of `dir`.
        let mut count: *mut u64 = &mut self.root_count;
        for level in (1..LEVELS).rev() {
            let idx = Self::index(addr, level);
            // SAFETY: `dir` is the root or a live directory owned by `self`.
            let slot = unsafe { &mut (*dir).0[idx] };
            if *slot == 0 {
                let new = KBox::into_raw(reserve.0.pop().ok_or(ENOMEM)?);
                // INVARIANT: the new child is empty and owned by the table;
                // the parent gains one non-zero entry.
                *slot = new as u64;
                // SAFETY: `count` points to the count of `dir`.
                unsafe { *count += 1 };
                self.stats.dirs += 1;
            }
            // The child's count lives in the low bits of `slot`; it is
            // updated through `counts_add` below once the leaf is known.
            count = core::ptr::from_mut(slot);
            dir = child(*slot);
        }
        let idx = Self::index(addr, 0);
        // SAFETY: `dir` is a live leaf directory owned by `self`.
        let slot = unsafe { &mut (*dir).0[idx] };
        let old = *slot;
        let mut new = entry.0;
        if old != 0 {
            let old = Entry(old);
            if old.pfn() == entry.pfn() {
                new |= old.0 & Entry::DIRTY & if entry.has(Entry::WRITE) { !0 } else { 0 };
                if old.has(Entry::DIRTY) && new & Entry::DIRTY == 0 {
                    sink.dirty(old.pfn());
                }
            } else if old.has(Entry::DIRTY) {
                sink.dirty(old.pfn());
            }
            *slot = new;
            return Ok(());
        }
        *slot = new;
        self.stats.entries += 1;
        // The leaf gained an entry: bump the count packed in its parent.
        // SAFETY: `count` points to the parent's entry for this leaf.
        unsafe { *count += 1 };
        Ok(())
    }

    /// Sets `flags` on the present entry at `addr` (for example `DIRTY`
    /// after a device write). Returns the updated entry.
    pub fn set_flags(&mut self, addr: u64, flags: u64) -> Option<Entry> {
        Self::check_addr(addr).ok()?;
        let (leaf, idx) = self.leaf_mut(addr)?;
        if leaf[idx] == 0 {
            return None;
        }
        leaf[idx] |= flags & Entry::FLAGS;
        Some(Entry(leaf[idx]))
    }

    /// Applies `new = old & mask` to every present entry in `[start, end)`.
    ///
    /// Entries that lose `VALID` are removed, and directories left empty are
    /// freed. Whenever a `DIRTY` bit is dropped, whether or not the entry
    /// stays valid or writable, the page goes to `sink`. The cost is
    /// proportional to the directories present in the range, not to its
    /// size. Returns the number of entries changed.
    pub fn update(&mut self, start: u64, end: u64, mask: u64, sink: &mut impl DirtySink) -> u64 {
        let end = end.min(VA_LIMIT);
        if start >= end {
            return 0;
        }
        // Removing VALID removes the entry whatever else the mask keeps;
        // an entry that stays keeps its page and where that page lives.
        let mask = if mask & Entry::VALID == 0 {
            0
        } else {
            mask | Entry::PFN_MASK | Entry::DEVICE
        };
        let root: *mut Dir = &mut *self.root;
        let mut removed_children = 0;
        // SAFETY: `root` is the live root directory, exclusively borrowed.
        let changed = unsafe {
            Self::update_dir(
                root,
                LEVELS - 1,
                0,
                start,
                end,
                mask,
                sink,
                &mut self.stats,
                &mut removed_children,
            )
        };
        self.root_count -= removed_children;
        changed
    }

    /// Recursive part of [`Self::update`] for the directory `dir` at `level`
    /// whose first address is `base`. Adds to `emptied` the number of
    /// entries of `dir` that became zero.
    ///
    /// # Safety
    ///
    /// `dir` is a live directory of this table at `level`, not otherwise
    /// borrowed.
    #[allow(clippy::too_many_arguments)]
    unsafe fn update_dir(
        dir: *mut Dir,
        level: u32,
        base: u64,
        start: u64,
        end: u64,
        mask: u64,
        sink: &mut impl DirtySink,
        stats: &mut PtStats,
        emptied: &mut u64,
    ) -> u64 {
        let shift = level_shift(level);
        let first = (start.max(base) - base) >> shift;
        let last = (end - 1 - base) >> shift;
        let last = last.min(DIR_ENTRIES as u64 - 1);
        let mut changed = 0;
        // SAFETY: Per the function's safety requirements.
        let entries = unsafe { &mut (*dir).0 };
        for (i, slot) in entries
            .iter_mut()
            .enumerate()
            .take(last as usize + 1)
            .skip(first as usize)
        {
            let e = *slot;
            if e == 0 {
                continue;
            }
            if level == 0 {
                let new = e & mask;
                if new == e {
                    continue;
                }
                let old = Entry(e);
                if old.has(Entry::DIRTY) && new & Entry::DIRTY == 0 {
                    sink.dirty(old.pfn());
                }
                *slot = new;
                changed += 1;
                if new == 0 {
                    stats.entries -= 1;
                    *emptied += 1;
                }
                continue;
            }
            let cbase = base + ((i as u64) << shift);
            let sub = child(e);
            let mut sub_emptied = 0;
            // SAFETY: `sub` is a live child directory owned by the table
            // (type invariant), one level down.
            changed += unsafe {
                Self::update_dir(
                    sub,
                    level - 1,
                    cbase,
                    start,
                    end,
                    mask,
                    sink,
                    stats,
                    &mut sub_emptied,
                )
            };
            let count = (e & COUNT_MASK) - sub_emptied;
            if count == 0 {
                // SAFETY: `sub` came from `KBox::into_raw` and nothing else
                // refers to it once its parent entry is cleared.
                drop(unsafe { KBox::from_raw(sub) });
                *slot = 0;
                stats.dirs -= 1;
                *emptied += 1;
            } else {
                *slot = sub as u64 | count;
            }
        }
        changed
    }

    /// Calls `f(addr, entry)` for every present entry in `[start, end)`, in
    /// address order, skipping empty directories.
    pub fn for_each(&self, start: u64, end: u64, f: &mut impl FnMut(u64, Entry)) {
        let end = end.min(VA_LIMIT);
        if start < end {
            Self::walk_dir(&self.root, LEVELS - 1, 0, start, end, f);
        }
    }

    fn walk_dir(
        dir: &Dir,
        level: u32,
        base: u64,
        start: u64,
        end: u64,
        f: &mut impl FnMut(u64, Entry),
    ) {
        let shift = level_shift(level);
        let first = (start.max(base) - base) >> shift;
        let last = ((end - 1 - base) >> shift).min(DIR_ENTRIES as u64 - 1);
        for i in first as usize..=last as usize {
            let e = dir.0[i];
            if e == 0 {
                continue;
            }
            let addr = base + ((i as u64) << shift);
            if level == 0 {
                f(addr, Entry(e));
            } else {
                // SAFETY: Non-zero directory entries point to live
                // directories owned by the table, kept alive by `&self`.
                Self::walk_dir(unsafe { &*child(e) }, level - 1, addr, start, end, f);
            }
        }
    }

    /// Removes every entry, reporting dirty pages to `sink`.
    pub fn clear(&mut self, sink: &mut impl DirtySink) {
        self.update(0, VA_LIMIT, 0, sink);
    }
}

/// Drops dirty bits on the floor; only for tables known to hold none.
struct NoDirty;

impl DirtySink for NoDirty {
    fn dirty(&mut self, _pfn: u64) {}
}

impl Drop for DevicePageTable {
    fn drop(&mut self) {
        // Owners clear the table with their own sink first; this only frees
        // what is left.
        self.clear(&mut NoDirty);
    }
}

#[kunit_tests(rust_hmm_device_pt)]
mod tests {
    use super::*;
    use kernel::alloc::flags::GFP_KERNEL;

    /// Records the pages reported dirty.
    struct Recorder(KVec<u64>);

    impl DirtySink for Recorder {
        fn dirty(&mut self, pfn: u64) {
            self.0.push(pfn, GFP_KERNEL).expect("record dirty pfn");
        }
    }

    const P: u64 = 1 << PAGE_SHIFT;

    fn table() -> (DevicePageTable, DirReserve, Recorder) {
        (
            DevicePageTable::new(GFP_KERNEL).expect("alloc root"),
            DirReserve::new(),
            Recorder(KVec::new()),
        )
    }

    fn put(
        pt: &mut DevicePageTable,
        r: &mut DirReserve,
        s: &mut Recorder,
        addr: u64,
        pfn: u64,
        f: u64,
    ) {
        r.fill(DirReserve::PER_INSERT, GFP_KERNEL)
            .expect("fill reserve");
        pt.insert(addr, Entry::new(pfn, f), r, s).expect("insert");
    }

    #[test]
    fn insert_lookup() {
        let (mut pt, mut r, mut s) = table();
        assert_eq!(pt.lookup(0x1000), None);
        put(&mut pt, &mut r, &mut s, 0x1000, 42, Entry::WRITE);
        let e = pt.lookup(0x1000).expect("present");
        assert_eq!(e.pfn(), 42);
        assert!(e.has(Entry::VALID | Entry::WRITE));
        assert!(!e.has(Entry::DIRTY));
        assert_eq!(pt.lookup(0x2000), None);
        assert_eq!(pt.lookup(0x0), None);
        assert_eq!(
            pt.stats(),
            PtStats {
                entries: 1,
                dirs: 4
            }
        );
        // Unaligned and out-of-range addresses are refused.
        assert_eq!(
            pt.insert(0x1001, Entry::new(1, 0), &mut r, &mut s),
            Err(EINVAL)
        );
        assert_eq!(
            pt.insert(VA_LIMIT, Entry::new(1, 0), &mut r, &mut s),
            Err(EFAULT)
        );
        assert_eq!(pt.lookup(0x1001), None);
    }

    #[test]
    fn range_mask_and_dir_freeing() {
        let (mut pt, mut r, mut s) = table();
        // 1024 pages: two full leaf directories.
        for i in 0..1024u64 {
            put(
                &mut pt,
                &mut r,
                &mut s,
                0x4000_0000 + i * P,
                1000 + i,
                Entry::WRITE,
            );
        }
        assert_eq!(
            pt.stats(),
            PtStats {
                entries: 1024,
                dirs: 5
            }
        );
        // Write-protect the second half.
        let n = pt.update(
            0x4000_0000 + 512 * P,
            0x4000_0000 + 1024 * P,
            Entry::VALID,
            &mut s,
        );
        assert_eq!(n, 512);
        assert!(pt.lookup(0x4000_0000).expect("first").has(Entry::WRITE));
        assert!(!pt
            .lookup(0x4000_0000 + 600 * P)
            .expect("second")
            .has(Entry::WRITE));
        // Unmap the first half: its leaf directory goes away.
        pt.update(0x4000_0000, 0x4000_0000 + 512 * P, 0, &mut s);
        assert_eq!(
            pt.stats(),
            PtStats {
                entries: 512,
                dirs: 4
            }
        );
        assert_eq!(pt.lookup(0x4000_0000), None);
        // Unmap the rest: everything below the root is freed.
        pt.update(0, VA_LIMIT, 0, &mut s);
        assert_eq!(
            pt.stats(),
            PtStats {
                entries: 0,
                dirs: 0
            }
        );
        assert_eq!(pt.root_count, 0);
        assert!(s.0.is_empty());
    }

    #[test]
    fn sparse_ranges() {
        let (mut pt, mut r, mut s) = table();
        let addrs = [
            0u64,
            0x20_0000,
            0x4000_0000,
            0x80_0000_0000,
            0x7fff_ffff_f000,
            0xff_ffff_ffff_f000,
        ];
        for (i, a) in addrs.iter().enumerate() {
            put(&mut pt, &mut r, &mut s, *a, i as u64 + 1, 0);
        }
        let mut seen = KVec::new();
        pt.for_each(0, VA_LIMIT, &mut |a, e| {
            seen.push((a, e.pfn()), GFP_KERNEL).expect("push")
        });
        assert_eq!(seen.len(), addrs.len());
        for (i, a) in addrs.iter().enumerate() {
            assert_eq!(seen[i], (*a, i as u64 + 1));
        }
        // A range update touches only what lies inside it.
        assert_eq!(pt.update(0x10_0000, 0x80_0000_1000, 0, &mut s), 3);
        assert_eq!(pt.stats().entries, 3);
        assert!(pt.lookup(0).is_some());
        assert!(pt.lookup(0x20_0000).is_none());
        assert!(pt.lookup(0x7fff_ffff_f000).is_some());
    }

    #[test]
    fn dirty_propagation() {
        let (mut pt, mut r, mut s) = table();
        for i in 0..4u64 {
            put(&mut pt, &mut r, &mut s, i * P, 10 + i, Entry::WRITE);
        }
        assert!(pt.set_flags(P, Entry::DIRTY).is_some());
        assert!(pt.set_flags(2 * P, Entry::DIRTY).is_some());
        assert!(pt.set_flags(100 * P, Entry::DIRTY).is_none());
        // Write-protect keeps the entries but must hand the dirty pages over.
        pt.update(0, 4 * P, Entry::VALID, &mut s);
        assert_eq!(&s.0[..], &[11, 12]);
        assert!(pt.lookup(P).expect("kept").has(Entry::VALID));
        assert!(!pt.lookup(P).expect("kept").has(Entry::DIRTY));
        // A dirty read-only entry (dirty bit kept by the mask) still
        // reports when it is finally cleared.
        pt.set_flags(3 * P, Entry::DIRTY);
        pt.update(0, 4 * P, Entry::VALID | Entry::DIRTY, &mut s);
        assert_eq!(s.0.len(), 2);
        pt.update(0, 4 * P, 0, &mut s);
        assert_eq!(&s.0[..], &[11, 12, 13]);
        // Replacing a dirty entry with another page reports the old one.
        put(&mut pt, &mut r, &mut s, 0, 50, Entry::WRITE);
        pt.set_flags(0, Entry::DIRTY);
        put(&mut pt, &mut r, &mut s, 0, 51, Entry::WRITE);
        assert_eq!(s.0.last(), Some(&50));
        // Re-installing the same page keeps the dirty bit.
        pt.set_flags(0, Entry::DIRTY);
        put(&mut pt, &mut r, &mut s, 0, 51, Entry::WRITE);
        assert!(pt.lookup(0).expect("same").has(Entry::DIRTY));
        pt.clear(&mut s);
        assert_eq!(s.0.last(), Some(&51));
        assert_eq!(pt.stats(), PtStats::default());
    }

    #[test]
    fn sequential_run() {
        let (mut pt, mut r, mut s) = table();
        // 600 pages across a leaf boundary, then a hole, then more.
        let base = 0x7000_0000 - 100 * P;
        for i in 0..600u64 {
            put(&mut pt, &mut r, &mut s, base + i * P, i, 0);
        }
        put(&mut pt, &mut r, &mut s, base + 601 * P, 601, 0);
        let mut seen = 0u64;
        let stop = pt.run(base, base + 1000 * P, &mut |a, e| {
            seen += u64::from(e.pfn() == (a - base) / P);
            true
        });
        assert_eq!(stop, base + 600 * P);
        assert_eq!(seen, 600);
        // Bounded by `end`, and by the closure.
        assert_eq!(pt.run(base, base + 10 * P, &mut |_, _| true), base + 10 * P);
        assert_eq!(
            pt.run(base, base + 10 * P, &mut |a, _| a < base + 3 * P),
            base + 3 * P
        );
        // Nothing there, or unaligned: stops at once.
        assert_eq!(pt.run(0, P, &mut |_, _| true), 0);
        assert_eq!(pt.run(base + 1, base + P, &mut |_, _| true), base + 1);
        pt.clear(&mut s);
    }

    #[test]
    fn address_space_ends_and_overflow() {
        let (mut pt, mut r, mut s) = table();
        let top = VA_LIMIT - P;
        put(&mut pt, &mut r, &mut s, top, 7, 0);
        put(&mut pt, &mut r, &mut s, 0, 8, 0);
        assert_eq!(pt.lookup(top).expect("top").pfn(), 7);
        // Ranges past the end are clipped, empty or inverted ranges do
        // nothing.
        assert_eq!(pt.update(top, u64::MAX, Entry::VALID, &mut s), 0);
        assert_eq!(pt.update(P, P, 0, &mut s), 0);
        assert_eq!(pt.update(2 * P, P, 0, &mut s), 0);
        assert_eq!(pt.update(u64::MAX - P, u64::MAX, 0, &mut s), 0);
        assert_eq!(pt.stats().entries, 2);
        assert_eq!(pt.update(top, u64::MAX, 0, &mut s), 1);
        assert_eq!(pt.lookup(top), None);
        assert_eq!(pt.lookup(!(P - 1)), None);
        assert_eq!(
            pt.stats(),
            PtStats {
                entries: 1,
                dirs: 4
            }
        );
        // Large PFNs survive the round trip.
        let big = (1u64 << 40) - 1;
        put(&mut pt, &mut r, &mut s, P, big, Entry::WRITE);
        assert_eq!(pt.lookup(P).expect("big").pfn(), big);
    }
}
