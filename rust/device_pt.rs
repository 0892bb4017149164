// SPDX-License-Identifier: GPL-2.0

//! A per-mirror device page table.
//!
//! This is the table a device walks to translate a virtual address of the
//! mirrored process into a system PFN: a radix tree of eight levels
//! covering virtual addresses `[0, 2^57)` (the largest x86-64 user address
//! space, with 5-level paging). Directories hold 64 entries (512 bytes),
//! except at level 1, where they hold 8 (64 bytes), so that one level-2
//! entry spans 2 MiB, the size of a huge leaf ([`LEVEL_BITS`]). Small
//! directories keep a sparse or small mirrored range about as cheap as an
//! xarray (whose nodes also have 64 slots); a dense one costs 8 bytes per
//! page plus 1/64 of that for level 1.
//!
//! A leaf entry is `pfn << PAGE_SHIFT | flags` (see [`Entry`]). A directory
//! entry is the address of the child directory, which is aligned to its
//! size, with the number of non-empty entries of that child in the low
//! bits. Keeping the count in the parent keeps every directory a power of
//! two in size, with no header. Directories are allocated on demand and
//! freed as soon as they are empty.
//!
//! # Huge leaves
//!
//! An entry of a level-2 directory is either a directory or a *huge leaf*:
//! one entry mapping a whole aligned 2 MiB range (PMD order, like the CPU's
//! PMD) to [`HUGE_PAGES`] physically contiguous pages of one folio, with
//! one set of flags. It is told from a directory by [`Entry::HUGE`], a bit
//! a directory entry there never has (its count is at most 8). Lookups
//! hand out the entry of the page inside, with `HUGE` set. Changing part of
//! a huge leaf (an invalidation, a 4 KiB insert) first splits it into a
//! level-1 directory and its eight leaf directories, full, whose entries
//! carry its flags, dirty bit included, so no dirty bit is lost; if those
//! directories cannot be had without sleeping, an invalidation drops the
//! whole leaf instead (reporting it dirty if it was), which is always
//! correct for a mirror: the device faults again.
//! [`DevicePageTable::insert_huge_page`] over directories merges them back.
//! Device-exclusive entries are always 4 KiB.
//!
//! # Locking and safety contract
//!
//! The table has no lock of its own: it lives in the state of an
//! [`IntervalNotifier`](crate::mmu_notifier::IntervalNotifier), so every
//! access holds the notifier lock, the same lock the invalidate callback
//! takes. That is also what keeps the pages its entries name alive, so
//! [`DevicePageTable::new`] is `unsafe`: its caller promises the table
//! lives there and follows every invalidation. Pages go in only as
//! [`GuardedPages`] validated by that notifier for the address they go to
//! ([`DevicePageTable::insert_page`]), and come out only as
//! [`GuardedPages`] that borrow the table ([`DevicePageTable::lookup_page`],
//! [`DevicePageTable::run_pages`], [`DirtySink`]); PFNs never leave it.
//! Because that callback can run from reclaim, nothing here may allocate
//! with `GFP_KERNEL`: directories come from a [`DirReserve`] filled before
//! the lock is taken, or from `GFP_NOWAIT`.

use crate::guarded_page::{GuardedPages, Kind, Tie};
use kernel::alloc::flags::{__GFP_NOWARN, GFP_NOWAIT};
use kernel::prelude::*;

/// Number of levels; level 0 holds the 4 KiB leaf entries.
const LEVELS: u32 = 8;
/// Bits of virtual address each level translates, from level 0 up.
const LEVEL_BITS: [u32; LEVELS as usize] = [6, 3, 6, 6, 6, 6, 6, 6];
const PAGE_SHIFT: u32 = kernel::page::PAGE_SHIFT as u32;

/// Entries of a directory at `level`.
#[inline(always)]
const fn entries_at(level: u32) -> usize {
    ENTRIES[level as usize]
}

/// [`entries_at`] of every level. Tables rather than arithmetic: the walks
/// index them with a variable level, and each shift or multiplication
/// there would carry an overflow check.
const ENTRIES: [usize; LEVELS as usize] = {
    let mut t = [0; LEVELS as usize];
    let mut l = 0;
    while l < LEVELS as usize {
        t[l] = 1 << LEVEL_BITS[l];
        l += 1;
    }
    t
};

/// Bytes of a directory at `level`; also its alignment.
#[inline(always)]
const fn dir_size(level: u32) -> u64 {
    DIR_SIZES[level as usize]
}

/// [`dir_size`] of every level.
const DIR_SIZES: [u64; LEVELS as usize] = {
    let mut t = [0; LEVELS as usize];
    let mut l = 0;
    while l < LEVELS as usize {
        t[l] = (ENTRIES[l] * core::mem::size_of::<u64>()) as u64;
        l += 1;
    }
    t
};

/// Size of the address range one entry at `level` covers, as a shift.
#[inline(always)]
const fn level_shift(level: u32) -> u32 {
    SHIFTS[level as usize]
}

/// [`level_shift`] of every level, and of `LEVELS` (the whole table).
const SHIFTS: [u32; LEVELS as usize + 1] = {
    let mut t = [0; LEVELS as usize + 1];
    let mut shift = PAGE_SHIFT;
    let mut l = 0;
    while l < LEVELS as usize {
        t[l] = shift;
        shift += LEVEL_BITS[l];
        l += 1;
    }
    t[l] = shift;
    t
};

/// First virtual address the table cannot describe.
pub const VA_LIMIT: u64 = 1 << level_shift(LEVELS);

/// Level whose entries may be huge leaves.
const HUGE_LEVEL: u32 = 2;
/// log2 of the pages of a huge leaf: the PMD order.
pub const HUGE_ORDER: u32 = level_shift(HUGE_LEVEL) - PAGE_SHIFT;
/// Pages one huge leaf maps.
pub const HUGE_PAGES: u64 = 1 << HUGE_ORDER;
/// Bytes one huge leaf maps (2 MiB with 4 KiB pages).
pub const HUGE_SIZE: u64 = 1 << level_shift(HUGE_LEVEL);

const _: () = assert!(VA_LIMIT == 1 << 57 && HUGE_ORDER == 9);

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
    /// The page is part of a huge leaf. Set by the table in the entries it
    /// hands out and in huge leaves, never by a caller. Directory
    /// entries of level 2 never have this bit: their count is at most 8.
    pub const HUGE: u64 = 1 << 4;
    const PFN_MASK: u64 = !((1 << PAGE_SHIFT) - 1);

    /// A valid entry for `pfn` with `flags` (`VALID` is implied). Private:
    /// entries come from [`GuardedPages`], through
    /// [`DevicePageTable::insert_page`].
    fn new(pfn: u64, flags: u64) -> Self {
        Self((pfn << PAGE_SHIFT) | (flags & Self::FLAGS) | Self::VALID)
    }

    /// The entry belongs to a huge leaf.
    pub fn is_huge(self) -> bool {
        self.0 & Self::HUGE != 0
    }

    /// The page frame number. Private: pages leave the table only as
    /// [`GuardedPages`] that borrow it ([`DevicePageTable::lookup_page`]).
    fn pfn(self) -> u64 {
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
    fn kind(self) -> Kind {
        if self.has(Self::DEVICE) {
            Kind::DeviceData
        } else {
            Kind::System
        }
    }

    /// Hands the `npages` pages of this dirty entry, which the table is
    /// dropping or cleaning, to `sink`.
    fn report(self, npages: u64, sink: &mut impl DirtySink) {
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
fn is_huge_slot(e: u64) -> bool {
    e & Entry::HUGE != 0
}

/// The entry of the page at `addr` inside the huge leaf `e`.
#[inline(always)]
fn huge_page(e: u64, addr: u64) -> Entry {
    let i = (addr >> PAGE_SHIFT) & (HUGE_PAGES - 1);
    // The head PFN is HUGE_PAGES aligned, so this only adds to the PFN.
    Entry(e + (i << PAGE_SHIFT))
}

/// Bits of a directory entry that hold the count of the child at
/// `child_level`: the child's alignment leaves them free in its address.
#[inline(always)]
fn count_mask(child_level: u32) -> u64 {
    dir_size(child_level).wrapping_sub(1)
}

/// The child directory (at `child_level`) named by a directory entry.
#[inline(always)]
fn child(e: u64, child_level: u32) -> *mut u64 {
    (e & !count_mask(child_level)) as *mut u64
}

/// A directory of any level but 1.
#[derive(Zeroable)]
#[repr(C, align(512))]
struct Dir([u64; entries_at(0)]);
/// A level-1 directory.
#[derive(Zeroable)]
#[repr(C, align(64))]
struct MidDir([u64; entries_at(1)]);

const _: () = {
    assert!(core::mem::size_of::<Dir>() as u64 == dir_size(0));
    assert!(core::mem::size_of::<MidDir>() as u64 == dir_size(1));
    let mut l = HUGE_LEVEL;
    while l < LEVELS {
        assert!(entries_at(l) == entries_at(0));
        l += 1;
    }
};

/// Which of the two directory types a level uses, as an index.
const fn kind(level: u32) -> usize {
    (level == 1) as usize
}

/// An owned directory, of the type its level uses.
enum DirBox {
    Dir(KBox<Dir>),
    Mid(KBox<MidDir>),
}

impl DirBox {
    /// A zeroed (empty) directory for `level`.
    fn alloc(level: u32, flags: kernel::alloc::Flags) -> Result<Self> {
        use pin_init::init_zeroed;
        Ok(match kind(level) {
            0 => Self::Dir(KBox::init(init_zeroed(), flags)?),
            _ => Self::Mid(KBox::init(init_zeroed(), flags)?),
        })
    }

    /// Leaks the directory, for a parent entry to own.
    fn into_raw(self) -> *mut u64 {
        match self {
            Self::Dir(b) => KBox::into_raw(b).cast(),
            Self::Mid(b) => KBox::into_raw(b).cast(),
        }
    }
}

/// Frees a directory leaked with [`DirBox::into_raw`].
///
/// # Safety
///
/// `dir` came from [`DirBox::into_raw`] of a directory of `level`, and
/// nothing refers to it any more.
unsafe fn free_dir(dir: *mut u64, level: u32) {
    match kind(level) {
        // SAFETY: Per the function's safety requirements, `dir` is a leaked
        // box of the type `level` uses; likewise below.
        0 => drop(unsafe { KBox::from_raw(dir.cast::<Dir>()) }),
        // SAFETY: As above.
        _ => drop(unsafe { KBox::from_raw(dir.cast::<MidDir>()) }),
    }
}

/// The entries of the directory `dir` at `level`.
///
/// # Safety
///
/// `dir` is a live directory of `level`, not written to for `'a`.
unsafe fn entries<'a>(dir: *const u64, level: u32) -> &'a [u64] {
    // SAFETY: Per the function's safety requirements.
    unsafe { core::slice::from_raw_parts(dir, entries_at(level)) }
}

/// Directories of each type ([`kind`]), as counts.
type Need = [usize; 2];

/// What splitting a huge leaf takes: a level-1 directory and its leaves.
const SPLIT_NEED: Need = [entries_at(1), 1];

/// What inserts anywhere inside one aligned [`HUGE_SIZE`] block may need:
/// the directories from below the root down to the leaves.
const BLOCK_NEED: Need = [entries_at(1) + (LEVELS - 1 - HUGE_LEVEL) as usize, 1];

/// Directories allocated ahead of time, outside the notifier lock.
pub struct DirReserve([KVec<DirBox>; 2]);

impl DirReserve {
    /// An empty reserve.
    pub fn new() -> Self {
        Self([KVec::new(), KVec::new()])
    }

    fn fill_need(&mut self, need: Need, flags: kernel::alloc::Flags) -> Result {
        for (k, dirs) in self.0.iter_mut().enumerate() {
            while dirs.len() < need[k] {
                dirs.push(DirBox::alloc(k as u32, flags)?, flags)?;
            }
        }
        Ok(())
    }

    /// Makes sure the reserve holds every directory that inserts anywhere
    /// inside one aligned [`HUGE_SIZE`] block may need, allocating with
    /// `flags`. One [`DevicePageTable::insert_page`] or
    /// [`DevicePageTable::insert_huge_page`] never needs more.
    pub fn fill_block(&mut self, flags: kernel::alloc::Flags) -> Result {
        self.fill_need(BLOCK_NEED, flags)
    }

    /// A directory for `level`, leaked for a parent entry to own.
    fn pop(&mut self, level: u32) -> Option<*mut u64> {
        self.0[kind(level)].pop().map(DirBox::into_raw)
    }

    /// The directories of one split, or `None` if the reserve lacks any.
    fn pop_split(&mut self) -> Option<(*mut u64, [*mut u64; entries_at(1)])> {
        if self.0[0].len() < SPLIT_NEED[0] || self.0[1].len() < SPLIT_NEED[1] {
            return None;
        }
        let mut leaves = [core::ptr::null_mut(); entries_at(1)];
        for leaf in leaves.iter_mut() {
            // Cannot fail: there are enough, checked above.
            *leaf = self.pop(0)?;
        }
        Some((self.pop(1)?, leaves))
    }
}

impl Default for DirReserve {
    fn default() -> Self {
        Self::new()
    }
}

/// Counters of what the table holds.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct PtStats {
    /// Valid 4 KiB leaf entries.
    pub entries: u64,
    /// Huge (2 MiB) leaves.
    pub huge: u64,
    /// Directories below the root.
    pub dirs: u64,
    /// Bytes of the directories below the root.
    pub bytes: u64,
    /// Huge leaves split into 4 KiB entries, ever.
    pub splits: u64,
}

impl PtStats {
    fn dir_added(&mut self, level: u32) {
        self.dirs += 1;
        self.bytes += dir_size(level);
    }

    fn dir_freed(&mut self, level: u32) {
        self.dirs -= 1;
        self.bytes -= dir_size(level);
    }
}

/// A multi-level device page table.
///
/// # Invariants
///
/// - Every non-zero entry of a directory at level `l > 0` is the address of
///   a directory of level `l - 1` leaked with [`DirBox::into_raw`], owned by
///   this table, or'ed with the number (at least 1) of non-zero entries of
///   that directory.
/// - `root` is the directory of level `LEVELS - 1`, and `root_count` is the
///   number of its non-zero entries.
/// - A non-zero entry of a level-2 directory with [`Entry::HUGE`] set is a
///   huge leaf, not a directory: its PFN is `HUGE_PAGES` aligned and it
///   never has `EXCLUSIVE`.
/// - `stats` counts the 4 KiB and huge leaves and the directories below
///   the root, and their bytes.
pub struct DevicePageTable {
    root: KBox<Dir>,
    root_count: u64,
    stats: PtStats,
}

// SAFETY: The table owns its directories; nothing in it is tied to a thread.
unsafe impl Send for DevicePageTable {}

/// What covers an address.
enum Leaf<'a> {
    /// The entries of a leaf directory.
    Dir(&'a [u64]),
    /// A huge leaf (raw entry).
    Huge(u64),
}

impl DevicePageTable {
    /// An empty table.
    ///
    /// # Safety
    ///
    /// The table hands out the pages its entries name ([`Self::lookup_page`],
    /// [`Self::run_pages`], the dirty reports), which is only sound while
    /// each entry is current. So the table must live in the state of an
    /// [`IntervalNotifier`](crate::mmu_notifier::IntervalNotifier), and not
    /// be moved out of it while it holds entries; that notifier's
    /// `invalidate` must apply every invalidation to it with
    /// [`Self::update`] over the invalidated range, with a mask that keeps
    /// `VALID` only for events that keep the pages mapped
    /// ([`Event::keeps_read`](crate::mmu_notifier::Event::keeps_read)) and
    /// never keeps `WRITE`; and its `release` must empty it
    /// ([`Self::clear`]). [`Self::insert_page`] then only takes pages that
    /// notifier validated, for the address they are inserted at.
    pub unsafe fn new(flags: kernel::alloc::Flags) -> Result<Self> {
        Self::alloc(flags)
    }

    /// [`Self::new`], for tables whose PFNs are made up and never read
    /// (the tests below).
    fn alloc(flags: kernel::alloc::Flags) -> Result<Self> {
        let root = KBox::init(pin_init::init_zeroed(), flags)?;
        Ok(Self {
            root,
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
        self.stats.bytes + dir_size(LEVELS - 1)
    }

    #[inline(always)]
    fn check_addr(addr: u64) -> Result {
        if addr & ((1 << PAGE_SHIFT) - 1) != 0 {
            return Err(EINVAL);
        }
        if addr >= VA_LIMIT {
            return Err(EFAULT);
        }
        Ok(())
    }

    #[inline(always)]
    fn index(addr: u64, level: u32) -> usize {
        (addr.wrapping_shr(level_shift(level)) as usize) & entries_at(level).wrapping_sub(1)
    }

    /// What covers `addr`: a leaf directory or a huge leaf, if either.
    fn leaf(&self, addr: u64) -> Option<Leaf<'_>> {
        Self::check_addr(addr).ok()?;
        let mut dir: *const u64 = self.root.0.as_ptr();
        for level in (1..LEVELS).rev() {
            // SAFETY: `dir` is the root or, through non-zero entries (type
            // invariant), a live directory of `level` owned by `self`; the
            // index is below its size.
            let e = unsafe { *dir.add(Self::index(addr, level)) };
            if e == 0 {
                return None;
            }
            if level == HUGE_LEVEL && is_huge_slot(e) {
                return Some(Leaf::Huge(e));
            }
            dir = child(e, level - 1);
        }
        // SAFETY: `dir` is a live leaf directory owned by `self`; `&self`
        // keeps it alive and unchanged.
        Some(Leaf::Dir(unsafe { entries(dir, 0) }))
    }

    /// The leaf entry for `addr`, if one is present. Inside a huge leaf it
    /// is the entry of that page, with [`Entry::HUGE`] set.
    pub fn lookup(&self, addr: u64) -> Option<Entry> {
        match self.leaf(addr)? {
            Leaf::Dir(dir) => {
                let e = dir[Self::index(addr, 0)];
                (e != 0).then_some(Entry(e))
            }
            Leaf::Huge(e) => Some(huge_page(e, addr)),
        }
    }

    /// Calls `f(addr, entry)` for the present entries from `start` on, in
    /// order, up to `end`, the first missing entry, or the first `false`
    /// from `f`. Returns the address where it stopped. One descent per
    /// leaf directory or huge leaf: the device's sequential access path.
    pub fn run(&self, start: u64, end: u64, f: &mut impl FnMut(u64, Entry) -> bool) -> u64 {
        self.run_spans(start, end, &mut |addr, e, n| {
            let mut i = 0;
            while i < n && f(addr + (i << PAGE_SHIFT), Entry(e.0 + (i << PAGE_SHIFT))) {
                i += 1;
            }
            i
        })
    }

    /// Like [`Self::run`], but hands over physically contiguous spans:
    /// `f(addr, entry, n)` gets `n` pages from `addr`, whose PFNs follow
    /// `entry`'s and share its flags. That is the part in range of a huge
    /// leaf (one folio), or a single 4 KiB entry. `f` returns how many of
    /// the `n` pages it took; fewer stops the run there.
    pub fn run_spans(
        &self,
        start: u64,
        end: u64,
        f: &mut impl FnMut(u64, Entry, u64) -> u64,
    ) -> u64 {
        let mut addr = start;
        while addr < end {
            match self.leaf(addr) {
                None => return addr,
                Some(Leaf::Huge(e)) => {
                    // `addr < VA_LIMIT`, so this cannot overflow.
                    let leaf_end = (addr | (HUGE_SIZE - 1)) + 1;
                    let n = (leaf_end.min(end) - addr).div_ceil(1 << PAGE_SHIFT);
                    let took = f(addr, huge_page(e, addr), n).min(n);
                    addr += took << PAGE_SHIFT;
                    if took < n {
                        return addr;
                    }
                }
                Some(Leaf::Dir(dir)) => {
                    for e in dir[Self::index(addr, 0)..].iter() {
                        if addr >= end || *e == 0 || f(addr, Entry(*e), 1) == 0 {
                            return addr;
                        }
                        addr += 1 << PAGE_SHIFT;
                    }
                }
            }
        }
        addr
    }

    /// The directories a descent to the directory of `level` covering
    /// `addr` would allocate; splitting a huge leaf in the way takes
    /// [`SPLIT_NEED`].
    fn missing_dirs(&self, addr: u64, level: u32) -> Need {
        let mut need = [0; 2];
        let mut dir: &[u64] = &self.root.0;
        for l in (level + 1..LEVELS).rev() {
            let e = dir[Self::index(addr, l)];
            if e == 0 {
                for m in level..l {
                    need[kind(m)] += 1;
                }
                return need;
            }
            if l == HUGE_LEVEL && is_huge_slot(e) {
                return SPLIT_NEED;
            }
            // SAFETY: Non-zero directory entries point to live directories
            // one level down, owned by `self` (type invariant).
            dir = unsafe { entries(child(e, l - 1), l - 1) };
        }
        need
    }

    /// The entry slot for `addr`: a 4 KiB entry in its leaf directory, or
    /// the huge leaf covering it; `None` when neither exists there.
    fn slot_mut(&mut self, addr: u64) -> Option<&mut u64> {
        let mut dir: *mut u64 = self.root.0.as_mut_ptr();
        for level in (1..LEVELS).rev() {
            // SAFETY: `dir` is the root or a live directory of `level` owned
            // by `self`, and `&mut self` makes this the only reference into
            // it.
            let slot = unsafe { &mut *dir.add(Self::index(addr, level)) };
            if *slot == 0 {
                return None;
            }
            if level == HUGE_LEVEL && is_huge_slot(*slot) {
                return Some(slot);
            }
            dir = child(*slot, level - 1);
        }
        // SAFETY: `dir` is a live leaf directory owned by `self`, and `&mut
        // self` makes this the only reference into it.
        Some(unsafe { &mut *dir.add(Self::index(addr, 0)) })
    }

    /// Replaces the huge leaf in `slot` with a level-1 directory and its
    /// leaf directories from `reserve`, full, whose entries carry the
    /// leaf's flags, dirty bit included. The slot stays non-zero, so the
    /// parent's count does not change. `ENOMEM` (and no change) if the
    /// reserve lacks [`SPLIT_NEED`].
    fn split_into(slot: &mut u64, reserve: &mut DirReserve, stats: &mut PtStats) -> Result {
        let (mid, leaves) = reserve.pop_split().ok_or(ENOMEM)?;
        let e = *slot;
        let head = e & Entry::PFN_MASK;
        let flags = e & Entry::FLAGS;
        let per_leaf = entries_at(0);
        for (j, leaf) in leaves.iter().enumerate() {
            for i in 0..per_leaf {
                let page = (j * per_leaf + i) as u64;
                // SAFETY: `leaf` and `mid` are directories just taken out of
                // the reserve, not yet shared, of `per_leaf` and
                // `leaves.len()` entries.
                unsafe { *leaf.add(i) = (head + (page << PAGE_SHIFT)) | flags };
            }
            // SAFETY: As above.
            unsafe { *mid.add(j) = *leaf as u64 | per_leaf as u64 };
            stats.dir_added(0);
        }
        // INVARIANT: the slot now points to an owned level-1 directory of
        // full leaf directories; the huge leaf became 512 4 KiB entries.
        *slot = mid as u64 | leaves.len() as u64;
        stats.dir_added(1);
        stats.huge -= 1;
        stats.entries += HUGE_PAGES;
        stats.splits += 1;
        Ok(())
    }

    /// Walks from the root to the directory at `level` that covers `addr`,
    /// creating missing directories from `reserve` and splitting a huge leaf
    /// met on the way. Returns that directory and a pointer to its count of
    /// non-zero entries (packed in the parent's entry, or the root's count).
    fn descend(
        &mut self,
        addr: u64,
        level: u32,
        reserve: &mut DirReserve,
    ) -> Result<(*mut u64, *mut u64)> {
        let mut dir: *mut u64 = self.root.0.as_mut_ptr();
        let mut count: *mut u64 = &mut self.root_count;
        for l in (level + 1..LEVELS).rev() {
            // SAFETY: `dir` is the root or a live directory of level `l`
            // owned by `self`.
            let slot = unsafe { &mut *dir.add(Self::index(addr, l)) };
            if l == HUGE_LEVEL && is_huge_slot(*slot) {
                // A 4 KiB entry inside a huge leaf: split it first.
                Self::split_into(slot, reserve, &mut self.stats)?;
            }
            if *slot == 0 {
                let new = reserve.pop(l - 1).ok_or(ENOMEM)?;
                // INVARIANT: the new child is empty and owned by the table;
                // the parent gains one non-zero entry.
                *slot = new as u64;
                // SAFETY: `count` points to the count of `dir`.
                unsafe { *count += 1 };
                self.stats.dir_added(l - 1);
            }
            // The child's count lives in the low bits of `slot`.
            count = core::ptr::from_mut(slot);
            dir = child(*slot, l - 1);
        }
        Ok((dir, count))
    }

    /// The entry for `pages` at `addr` with `flags` (of `WRITE`, `DIRTY`
    /// and `EXCLUSIVE`), if they are `npages` pages this table's notifier
    /// validated for `addr` (`EINVAL` otherwise), writable if `flags` ask
    /// for `WRITE` (`EPERM`; `DIRTY` needs `WRITE`). Device data gets
    /// `DEVICE`; a device-private page has nothing the device could read
    /// through the table (`EINVAL`).
    fn entry_for(
        &self,
        addr: u64,
        pages: &GuardedPages<'_>,
        flags: u64,
        npages: u64,
    ) -> Result<Entry> {
        let allowed = Entry::WRITE | Entry::DIRTY | Entry::EXCLUSIVE;
        if pages.npages() != npages
            || !pages.tied_to(core::ptr::from_ref(self), addr)
            || flags & !allowed != 0
            || (flags & Entry::DIRTY != 0 && flags & Entry::WRITE == 0)
        {
            return Err(EINVAL);
        }
        if flags & Entry::WRITE != 0 && !pages.is_writable() {
            return Err(EPERM);
        }
        match pages.kind() {
            Kind::System => Ok(Entry::new(pages.pfn(), flags)),
            Kind::DeviceData => Ok(Entry::new(pages.pfn(), flags | Entry::DEVICE)),
            Kind::DevicePrivate => Err(EINVAL),
        }
    }

    /// Installs the page `page` at `addr` with `flags` (of `WRITE`, `DIRTY`,
    /// `EXCLUSIVE`), allocating directories as needed. The page must have
    /// been validated for `addr` under the lock of the notifier state this
    /// table lives in, and be writable for `WRITE` (errors: see
    /// `entry_for`).
    ///
    /// Replacing a dirty entry of another page reports that page dirty;
    /// re-installing the same page keeps its dirty bit.
    pub fn insert_page(
        &mut self,
        addr: u64,
        page: &GuardedPages<'_>,
        flags: u64,
        reserve: &mut DirReserve,
        sink: &mut impl DirtySink,
    ) -> Result {
        let entry = self.entry_for(addr, page, flags, 1)?;
        self.insert(addr, entry, reserve, sink)
    }

    /// Installs a huge leaf at `addr` for the [`HUGE_PAGES`] pages `pages`
    /// (one folio, as [`crate::hmm::FaultedPfns::block`] gives them),
    /// validated for `addr`; otherwise as [`Self::insert_page`]. Whatever
    /// was there is replaced (see the module documentation); `EINVAL` for
    /// `EXCLUSIVE`, or a misaligned address or folio.
    pub fn insert_huge_page(
        &mut self,
        addr: u64,
        pages: &GuardedPages<'_>,
        flags: u64,
        reserve: &mut DirReserve,
        sink: &mut impl DirtySink,
    ) -> Result {
        let entry = self.entry_for(addr, pages, flags, HUGE_PAGES)?;
        self.insert_huge(addr, entry, reserve, sink)
    }

    /// The `n` pages from the entry `e` at `addr`, borrowing the table.
    fn guarded(&self, addr: u64, e: Entry, n: u64) -> GuardedPages<'_> {
        let tie = Tie::of(core::ptr::from_ref(self));
        // SAFETY: The entries are present, and the table is only reachable
        // under its notifier's lock, which every invalidation of them waits
        // for (the contract of `new`), for as long as `self` is borrowed.
        // `WRITE` was only set for writable pages (`entry_for`), and
        // write-protection drops it.
        unsafe { GuardedPages::new(e.pfn(), n, addr, tie, e.kind(), e.has(Entry::WRITE)) }
    }

    /// The page at `addr`, if an entry is present, valid while the table
    /// is borrowed: to read, to write (if the entry is writable), to dirty.
    pub fn lookup_page(&self, addr: u64) -> Option<GuardedPages<'_>> {
        let e = self.lookup(addr)?;
        Some(self.guarded(addr, e, 1))
    }

    /// [`Self::run_spans`] handing out the pages of each span: the device's
    /// sequential access path. `f` returns how many of them it took.
    pub fn run_pages(
        &self,
        start: u64,
        end: u64,
        f: &mut impl FnMut(GuardedPages<'_>) -> u64,
    ) -> u64 {
        self.run_spans(start, end, &mut |addr, e, n| f(self.guarded(addr, e, n)))
    }

    /// Installs `entry` at `addr`, allocating directories as needed.
    ///
    /// Replacing a dirty entry of another page reports that page dirty;
    /// re-installing the same page keeps its dirty bit.
    fn insert(
        &mut self,
        addr: u64,
        entry: Entry,
        reserve: &mut DirReserve,
        sink: &mut impl DirtySink,
    ) -> Result {
        Self::check_addr(addr)?;
        // Get every missing directory first, so that a failed allocation
        // leaves the table as it was.
        reserve.fill_need(self.missing_dirs(addr, 0), GFP_NOWAIT)?;
        let (dir, count) = self.descend(addr, 0, reserve)?;
        // SAFETY: `dir` is a live leaf directory owned by `self`.
        let slot = unsafe { &mut *dir.add(Self::index(addr, 0)) };
        let old = *slot;
        let mut new = entry.0;
        if old != 0 {
            let old = Entry(old);
            if old.pfn() == entry.pfn() {
                new |= old.0 & Entry::DIRTY & if entry.has(Entry::WRITE) { !0 } else { 0 };
                if old.has(Entry::DIRTY) && new & Entry::DIRTY == 0 {
                    old.report(1, sink);
                }
            } else if old.has(Entry::DIRTY) {
                old.report(1, sink);
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
    /// after a device write). Returns the updated entry. On a huge leaf the
    /// flags apply to the whole leaf, except `EXCLUSIVE`, which never does.
    /// Private (tests): `WRITE` here could make a read-only page writable.
    fn set_flags(&mut self, addr: u64, flags: u64) -> Option<Entry> {
        Self::check_addr(addr).ok()?;
        let slot = self.slot_mut(addr)?;
        if *slot == 0 {
            return None;
        }
        if is_huge_slot(*slot) {
            *slot |= flags & Entry::FLAGS & !Entry::EXCLUSIVE;
            return Some(huge_page(*slot, addr));
        }
        *slot |= flags & Entry::FLAGS;
        Some(Entry(*slot))
    }

    /// Installs a huge leaf mapping the [`HUGE_SIZE`] bytes at `addr` to
    /// the [`HUGE_PAGES`] pages of one folio from `entry`'s PFN, allocating
    /// directories as needed.
    ///
    /// `addr` and the PFN must be aligned to the leaf size, and `entry`
    /// must not be `EXCLUSIVE` (`EINVAL`). Whatever was there is replaced:
    /// directories of 4 KiB entries are merged into the huge leaf and
    /// freed. Dirty bits of the same pages carry over when the leaf is
    /// writable; any other dirty page replaced is reported to `sink`.
    fn insert_huge(
        &mut self,
        addr: u64,
        entry: Entry,
        reserve: &mut DirReserve,
        sink: &mut impl DirtySink,
    ) -> Result {
        Self::check_addr(addr)?;
        if addr & (HUGE_SIZE - 1) != 0
            || entry.pfn() & (HUGE_PAGES - 1) != 0
            || entry.has(Entry::EXCLUSIVE)
        {
            return Err(EINVAL);
        }
        reserve.fill_need(self.missing_dirs(addr, HUGE_LEVEL), GFP_NOWAIT)?;
        let (dir, count) = self.descend(addr, HUGE_LEVEL, reserve)?;
        // SAFETY: `dir` is a live level-2 directory owned by `self`.
        let slot = unsafe { &mut *dir.add(Self::index(addr, HUGE_LEVEL)) };
        let head = entry.pfn();
        let keep_dirty = entry.has(Entry::WRITE);
        let mut new = entry.0 | Entry::HUGE;
        let old = *slot;
        if old == 0 {
            // SAFETY: `count` points to the parent's entry for `dir`.
            unsafe { *count += 1 };
        } else if is_huge_slot(old) {
            let old = Entry(old);
            if old.has(Entry::DIRTY) {
                if old.pfn() == head && keep_dirty {
                    new |= Entry::DIRTY;
                } else {
                    old.report(HUGE_PAGES, sink);
                }
            }
            self.stats.huge -= 1;
        } else {
            // Merge: first hand over the dirty bits, then free the
            // directories below.
            let sub = child(old, HUGE_LEVEL - 1);
            let end = addr + HUGE_SIZE;
            // SAFETY: `sub` is a live level-1 directory owned by the table.
            let sub_entries = unsafe { entries(sub, HUGE_LEVEL - 1) };
            Self::walk_dir(sub_entries, HUGE_LEVEL - 1, addr, addr, end, &mut |a, e| {
                if !e.has(Entry::DIRTY) {
                    return;
                }
                if keep_dirty && e.pfn() == head + ((a - addr) >> PAGE_SHIFT) {
                    new |= Entry::DIRTY;
                } else {
                    e.report(1, sink);
                }
            });
            let mut emptied = 0;
            // SAFETY: `sub` is a live level-1 directory of this table, not
            // otherwise borrowed.
            unsafe {
                Self::update_dir(
                    sub,
                    HUGE_LEVEL - 1,
                    addr,
                    (addr, end),
                    0,
                    &mut NoDirty,
                    None,
                    &mut self.stats,
                    &mut emptied,
                )
            };
            // SAFETY: `sub` came from `DirBox::into_raw`; the slot that
            // referred to it is overwritten below.
            unsafe { free_dir(sub, HUGE_LEVEL - 1) };
            self.stats.dir_freed(HUGE_LEVEL - 1);
        }
        // INVARIANT: an aligned, non-exclusive huge leaf.
        *slot = new;
        self.stats.huge += 1;
        Ok(())
    }

    /// Applies `new = old & mask` to every present entry in `[start, end)`.
    ///
    /// Entries that lose `VALID` are removed, and directories left empty are
    /// freed. Whenever a `DIRTY` bit is dropped, whether or not the entry
    /// stays valid or writable, the page goes to `sink`. The cost is
    /// proportional to the directories present in the range, not to its
    /// size. Returns the number of entries changed.
    ///
    /// A huge leaf wholly inside the range is changed as one entry (and
    /// counts as one). One only partly inside is split first, with
    /// directories from `GFP_NOWAIT`; if there are none, it is removed
    /// whole.
    pub fn update(&mut self, start: u64, end: u64, mask: u64, sink: &mut impl DirtySink) -> u64 {
        self.update_split(start, end, mask, sink, Some(GFP_NOWAIT | __GFP_NOWARN))
    }

    /// [`Self::update`], splitting huge leaves with directories allocated
    /// with `split`, or never (removing them whole) if `None`.
    fn update_split(
        &mut self,
        start: u64,
        end: u64,
        mask: u64,
        sink: &mut impl DirtySink,
        split: Option<kernel::alloc::Flags>,
    ) -> u64 {
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
        // A range inside one leaf directory (a CPU fault, one page of a
        // migration) goes without recursion: every call costs, and most
        // under emulation, where a return is an indirect jump.
        if start >> level_shift(1) == (end - 1) >> level_shift(1) {
            if let Some(changed) = self.update_leaf(start, end, mask, sink) {
                return changed;
            }
        }
        let root = self.root.0.as_mut_ptr();
        let mut removed_children = 0;
        // SAFETY: `root` is the live root directory, exclusively borrowed.
        let changed = unsafe {
            Self::update_dir(
                root,
                LEVELS - 1,
                0,
                (start, end),
                mask,
                sink,
                split,
                &mut self.stats,
                &mut removed_children,
            )
        };
        self.root_count -= removed_children;
        changed
    }

    /// Applies `mask` to the 4 KiB entry in `slot`, handing a lost dirty bit
    /// to `sink`. Returns whether the entry changed, and whether it went.
    #[inline(always)]
    fn update_entry(
        slot: &mut u64,
        mask: u64,
        sink: &mut impl DirtySink,
        stats: &mut PtStats,
    ) -> (bool, bool) {
        let e = *slot;
        let new = e & mask;
        if new == e {
            return (false, false);
        }
        let old = Entry(e);
        if old.has(Entry::DIRTY) && new & Entry::DIRTY == 0 {
            old.report(1, sink);
        }
        *slot = new;
        if new == 0 {
            stats.entries -= 1;
        }
        (true, new == 0)
    }

    /// [`Self::update_split`] of `[start, end)`, inside one leaf directory's
    /// span, with the mask already widened. `None` (and no change) if a huge
    /// leaf covers the range: the general path splits it.
    fn update_leaf(
        &mut self,
        start: u64,
        end: u64,
        mask: u64,
        sink: &mut impl DirtySink,
    ) -> Option<u64> {
        // `dirs[l]` is the directory at level `l` on the way down.
        let mut dirs = [core::ptr::null_mut::<u64>(); LEVELS as usize];
        dirs[LEVELS as usize - 1] = self.root.0.as_mut_ptr();
        for level in (1..LEVELS).rev() {
            // SAFETY: `dirs[level]` is the root or a live directory of
            // `level` owned by `self`, and `&mut self` makes this the only
            // reference into it.
            let e = unsafe { *dirs[level as usize].add(Self::index(start, level)) };
            if e == 0 {
                return Some(0);
            }
            if level == HUGE_LEVEL && is_huge_slot(e) {
                return None;
            }
            dirs[level as usize - 1] = child(e, level - 1);
        }
        let (first, last) = (Self::index(start, 0), Self::index(end - 1, 0));
        let mut changed = 0;
        let mut emptied = 0;
        for i in first..=last {
            // SAFETY: `dirs[0]` is a live leaf directory owned by `self`,
            // and `i` one of its indices.
            let slot = unsafe { &mut *dirs[0].add(i) };
            let (c, gone) = Self::update_entry(slot, mask, sink, &mut self.stats);
            changed += u64::from(c);
            emptied += u64::from(gone);
        }
        // Lower the counts on the way up, freeing what became empty.
        let mut level = 1;
        while emptied > 0 {
            if level == LEVELS {
                self.root_count -= emptied;
                break;
            }
            // SAFETY: As above, for the directory at `level`.
            let slot = unsafe { &mut *dirs[level as usize].add(Self::index(start, level)) };
            if *slot & count_mask(level - 1) == emptied {
                // SAFETY: The child came from `DirBox::into_raw` and nothing
                // refers to it once its parent entry is cleared.
                unsafe { free_dir(dirs[level as usize - 1], level - 1) };
                *slot = 0;
                self.stats.dir_freed(level - 1);
                emptied = 1;
            } else {
                // The count is in the low bits.
                *slot -= emptied;
                emptied = 0;
            }
            level += 1;
        }
        Some(changed)
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
        dir: *mut u64,
        level: u32,
        base: u64,
        (start, end): (u64, u64),
        mask: u64,
        sink: &mut impl DirtySink,
        split: Option<kernel::alloc::Flags>,
        stats: &mut PtStats,
        emptied: &mut u64,
    ) -> u64 {
        let shift = level_shift(level);
        let first = (start.max(base) - base) >> shift;
        let last = ((end - 1 - base) >> shift).min(entries_at(level) as u64 - 1);
        let mut changed = 0;
        // SAFETY: Per the function's safety requirements.
        let entries = unsafe { core::slice::from_raw_parts_mut(dir, entries_at(level)) };
        for (i, slot) in entries
            .iter_mut()
            .enumerate()
            .take(last as usize + 1)
            .skip(first as usize)
        {
            let mut e = *slot;
            if e == 0 {
                continue;
            }
            let cbase = base + ((i as u64) << shift);
            if level == HUGE_LEVEL && is_huge_slot(e) {
                let new = e & (mask | Entry::HUGE);
                let new = if new & Entry::VALID == 0 { 0 } else { new };
                if new == e {
                    continue;
                }
                let whole = start <= cbase && end - cbase >= HUGE_SIZE;
                let mut dirs = DirReserve::new();
                let can_split =
                    !whole && split.is_some_and(|flags| dirs.fill_need(SPLIT_NEED, flags).is_ok());
                if can_split && Self::split_into(slot, &mut dirs, stats).is_ok() {
                    e = *slot;
                    // Fall through to the new level-1 directory.
                } else {
                    // The whole leaf changes, or goes if it cannot be split.
                    let new = if whole { new } else { 0 };
                    let old = Entry(e);
                    if old.has(Entry::DIRTY) && new & Entry::DIRTY == 0 {
                        old.report(HUGE_PAGES, sink);
                    }
                    *slot = new;
                    changed += 1;
                    if new == 0 {
                        stats.huge -= 1;
                        *emptied += 1;
                    }
                    continue;
                }
            }
            if level == 0 {
                let (c, gone) = Self::update_entry(slot, mask, sink, stats);
                changed += u64::from(c);
                *emptied += u64::from(gone);
                continue;
            }
            let sub = child(e, level - 1);
            if mask == 0 && start <= cbase && end - cbase >= 1 << shift {
                // Removing everything below: free the subtree whole,
                // without clearing its entries one by one first.
                // SAFETY: `sub` is a live child directory owned by the
                // table, one level down, and its slot is cleared next.
                changed += unsafe { Self::drop_dir(sub, level - 1, sink, stats) };
                *slot = 0;
                *emptied += 1;
                continue;
            }
            let mut sub_emptied = 0;
            // SAFETY: `sub` is a live child directory owned by the table
            // (type invariant), one level down.
            changed += unsafe {
                Self::update_dir(
                    sub,
                    level - 1,
                    cbase,
                    (start, end),
                    mask,
                    sink,
                    split,
                    stats,
                    &mut sub_emptied,
                )
            };
            let count = (e & count_mask(level - 1)) - sub_emptied;
            if count == 0 {
                // SAFETY: `sub` came from `DirBox::into_raw` and nothing
                // else refers to it once its parent entry is cleared.
                unsafe { free_dir(sub, level - 1) };
                *slot = 0;
                stats.dir_freed(level - 1);
                *emptied += 1;
            } else {
                *slot = sub as u64 | count;
            }
        }
        changed
    }

    /// Frees the directory `dir` at `level` and everything below it, handing
    /// the dirty pages of its leaves to `sink`. Returns the number of leaves
    /// (4 KiB entries and huge leaves) it held.
    ///
    /// # Safety
    ///
    /// `dir` is a live directory of this table at `level`, not otherwise
    /// borrowed, and the caller clears the entry that names it.
    unsafe fn drop_dir(
        dir: *mut u64,
        level: u32,
        sink: &mut impl DirtySink,
        stats: &mut PtStats,
    ) -> u64 {
        // SAFETY: Per the function's safety requirements.
        let entries = unsafe { entries(dir, level) };
        let mut removed = 0;
        for &e in entries {
            if e == 0 {
                continue;
            }
            if level == 0 {
                removed += 1;
                if e & Entry::DIRTY != 0 {
                    Entry(e).report(1, sink);
                }
            } else if level == HUGE_LEVEL && is_huge_slot(e) {
                removed += 1;
                stats.huge -= 1;
                if e & Entry::DIRTY != 0 {
                    Entry(e).report(HUGE_PAGES, sink);
                }
            } else {
                // SAFETY: A directory entry names a live child directory
                // owned by the table (type invariant), dropped with `dir`.
                removed += unsafe { Self::drop_dir(child(e, level - 1), level - 1, sink, stats) };
            }
        }
        if level == 0 {
            stats.entries -= removed;
        }
        // SAFETY: `dir` came from `DirBox::into_raw`, and nothing refers to
        // it once the caller clears its entry.
        unsafe { free_dir(dir, level) };
        stats.dir_freed(level);
        removed
    }

    /// Calls `f(addr, entry)` for every present entry in `[start, end)`, in
    /// address order, skipping empty directories; for each page in range
    /// of a huge leaf, with [`Entry::HUGE`] set.
    pub fn for_each(&self, start: u64, end: u64, f: &mut impl FnMut(u64, Entry)) {
        let end = end.min(VA_LIMIT);
        if start < end {
            Self::walk_dir(&self.root.0, LEVELS - 1, 0, start, end, f);
        }
    }

    /// Recursive part of [`Self::for_each`] for the entries `dir` of a
    /// directory at `level` whose first address is `base`.
    fn walk_dir(
        dir: &[u64],
        level: u32,
        base: u64,
        start: u64,
        end: u64,
        f: &mut impl FnMut(u64, Entry),
    ) {
        let shift = level_shift(level);
        let first = (start.max(base) - base) >> shift;
        let last = ((end - 1 - base) >> shift).min(dir.len() as u64 - 1);
        for (i, &e) in dir
            .iter()
            .enumerate()
            .take(last as usize + 1)
            .skip(first as usize)
        {
            if e == 0 {
                continue;
            }
            let addr = base + ((i as u64) << shift);
            if level == 0 {
                f(addr, Entry(e));
            } else if level == HUGE_LEVEL && is_huge_slot(e) {
                let mut a = addr.max(start) & !((1 << PAGE_SHIFT) - 1);
                while a < end && a < addr + HUGE_SIZE {
                    f(a, huge_page(e, a));
                    a += 1 << PAGE_SHIFT;
                }
            } else {
                // SAFETY: Non-zero directory entries point to live
                // directories one level down, owned by the table and kept
                // alive and unchanged while `dir` is borrowed.
                let sub = unsafe { entries(child(e, level - 1), level - 1) };
                Self::walk_dir(sub, level - 1, addr, start, end, f);
            }
        }
    }

    /// Removes every entry, reporting dirty pages to `sink`.
    pub fn clear(&mut self, sink: &mut impl DirtySink) {
        self.update(0, VA_LIMIT, 0, sink);
    }
}

/// Drops dirty bits on the floor; only for tables known to hold none, or
/// entries whose dirty bits were handed over already.
struct NoDirty;

impl DirtySink for NoDirty {
    fn dirty(&mut self, _pages: GuardedPages<'_>) {}
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
        fn dirty(&mut self, pages: GuardedPages<'_>) {
            for i in 0..pages.npages() {
                self.0
                    .push(pages.pfn() + i, GFP_KERNEL)
                    .expect("record dirty pfn");
            }
        }
    }

    const P: u64 = 1 << PAGE_SHIFT;
    const UPPER: u64 = dir_size(HUGE_LEVEL);
    const MID: u64 = dir_size(1);
    const LEAF: u64 = dir_size(0);

    fn table() -> (DevicePageTable, DirReserve, Recorder) {
        (
            DevicePageTable::alloc(GFP_KERNEL).expect("alloc root"),
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
        r.fill_block(GFP_KERNEL).expect("fill reserve");
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
                dirs: 7,
                bytes: 5 * UPPER + MID + LEAF,
                ..Default::default()
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
                dirs: 23,
                bytes: 5 * UPPER + 2 * MID + 16 * LEAF,
                ..Default::default()
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
                dirs: 14,
                bytes: 5 * UPPER + MID + 8 * LEAF,
                ..Default::default()
            }
        );
        assert_eq!(pt.lookup(0x4000_0000), None);
        // Unmap the rest: everything below the root is freed.
        pt.update(0, VA_LIMIT, 0, &mut s);
        assert_eq!(
            pt.stats(),
            PtStats {
                entries: 0,
                dirs: 0,
                ..Default::default()
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
    fn sparse_memory() {
        let (mut pt, mut r, mut s) = table();
        // One page every 2 MiB costs one leaf and one level-1 directory,
        // 576 bytes, plus the levels above shared by all of them.
        for i in 0..64u64 {
            put(&mut pt, &mut r, &mut s, 0x4000_0000 + i * HUGE_SIZE, i, 0);
        }
        assert_eq!(pt.stats().bytes, 5 * UPPER + 64 * (MID + LEAF));
        assert_eq!(pt.bytes(), 6 * UPPER + 64 * (MID + LEAF));
        // Filling one of them only adds a leaf directory per 64 pages.
        for i in 1..HUGE_PAGES {
            put(&mut pt, &mut r, &mut s, 0x4000_0000 + i * P, i, 0);
        }
        assert_eq!(pt.stats().bytes, 5 * UPPER + 64 * (MID + LEAF) + 7 * LEAF);
        assert_eq!(pt.stats().entries, 64 + HUGE_PAGES - 1);
        pt.clear(&mut s);
        assert_eq!(pt.stats(), PtStats::default());
        assert_eq!(pt.bytes(), UPPER);
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
                dirs: 7,
                bytes: 5 * UPPER + MID + LEAF,
                ..Default::default()
            }
        );
        // Large PFNs survive the round trip.
        let big = (1u64 << 40) - 1;
        put(&mut pt, &mut r, &mut s, P, big, Entry::WRITE);
        assert_eq!(pt.lookup(P).expect("big").pfn(), big);
    }
    /// A huge leaf at `base` for the folio at `head`.
    fn put_huge(
        pt: &mut DevicePageTable,
        r: &mut DirReserve,
        s: &mut Recorder,
        base: u64,
        head: u64,
        f: u64,
    ) {
        r.fill_block(GFP_KERNEL).expect("fill reserve");
        pt.insert_huge(base, Entry::new(head, f), r, s)
            .expect("insert huge");
    }

    /// Whether `s` reported exactly the pages `[first, first + n)`, each
    /// once.
    fn reported_once(s: &Recorder, first: u64, n: u64) -> bool {
        let mut seen = KVec::from_elem(0u8, n as usize, GFP_KERNEL).expect("alloc");
        for pfn in s.0.iter() {
            if *pfn < first || *pfn >= first + n {
                return false;
            }
            seen[(*pfn - first) as usize] += 1;
        }
        seen.iter().all(|c| *c == 1)
    }

    const BASE: u64 = 0x4020_0000;
    const HEAD: u64 = 0x10_0000;

    #[test]
    fn whole_subtree_removal_reports_dirty() {
        let (mut pt, mut r, mut s) = table();
        // A huge leaf, then 600 pages from the next 2 MiB on: its eight
        // leaf directories full, then two more in the block after, the
        // last one partly filled.
        put_huge(&mut pt, &mut r, &mut s, BASE, HEAD, Entry::WRITE);
        for i in 0..600u64 {
            put(
                &mut pt,
                &mut r,
                &mut s,
                BASE + HUGE_SIZE + i * P,
                5000 + i,
                Entry::WRITE,
            );
        }
        // Device writes: the huge leaf, two pages in the first leaf
        // directory, one in a leaf directory freed whole below (520), and
        // one the range leaves behind (599).
        assert!(pt.set_flags(BASE + 7 * P, Entry::DIRTY).is_some());
        for i in [3u64, 63, 520, 599] {
            assert!(pt
                .set_flags(BASE + HUGE_SIZE + i * P, Entry::DIRTY)
                .is_some());
        }
        // Everything up to page 590 of the second block goes: whole
        // directories are freed at once, the last one entry by entry.
        let n = pt.update(BASE, BASE + HUGE_SIZE + 590 * P, 0, &mut s);
        assert_eq!(n, 1 + 590);
        crate::sort::heapsort(&mut s.0);
        let mut want = KVec::new();
        want.extend_from_slice(&[5003, 5063, 5520], GFP_KERNEL)
            .expect("vec");
        for p in HEAD..HEAD + HUGE_PAGES {
            want.push(p, GFP_KERNEL).expect("vec");
        }
        crate::sort::heapsort(&mut want);
        assert_eq!(&s.0[..], &want[..]);
        assert_eq!(
            pt.stats(),
            PtStats {
                entries: 10,
                dirs: 7,
                bytes: 5 * UPPER + MID + LEAF,
                ..Default::default()
            }
        );
        assert!(pt
            .lookup(BASE + HUGE_SIZE + 599 * P)
            .expect("left")
            .has(Entry::DIRTY));
        s.0.clear();
        pt.clear(&mut s);
        assert_eq!(&s.0[..], &[5599]);
        assert_eq!(pt.stats(), PtStats::default());
    }

    #[test]
    fn huge_install_lookup() {
        let (mut pt, mut r, mut s) = table();
        put_huge(&mut pt, &mut r, &mut s, BASE, HEAD, Entry::WRITE);
        assert_eq!(
            pt.stats(),
            PtStats {
                huge: 1,
                dirs: 5,
                bytes: 5 * UPPER,
                ..Default::default()
            }
        );
        let e = pt.lookup(BASE + 5 * P).expect("inside");
        assert_eq!(e.pfn(), HEAD + 5);
        assert!(e.is_huge() && e.has(Entry::VALID | Entry::WRITE));
        assert_eq!(pt.lookup(BASE).expect("first").pfn(), HEAD);
        assert_eq!(
            pt.lookup(BASE + HUGE_SIZE - P).expect("last").pfn(),
            HEAD + 511
        );
        assert_eq!(pt.lookup(BASE + HUGE_SIZE), None);
        assert_eq!(pt.lookup(BASE - P), None);
        // Sequential access: one span for the leaf, pages in order.
        let mut spans = 0;
        let stop = pt.run_spans(BASE + 2 * P, BASE + 2 * HUGE_SIZE, &mut |a, e, n| {
            spans += 1;
            assert_eq!((a, e.pfn(), n), (BASE + 2 * P, HEAD + 2, 510));
            n
        });
        assert_eq!((stop, spans), (BASE + HUGE_SIZE, 1));
        let mut good = 0;
        pt.run(BASE, BASE + 10 * P, &mut |a, e| {
            good += u64::from(e.pfn() == HEAD + (a - BASE) / P && e.is_huge());
            true
        });
        assert_eq!(good, 10);
        // A span taken in part stops the run there.
        assert_eq!(
            pt.run_spans(BASE, BASE + HUGE_SIZE, &mut |_, _, _| 3),
            BASE + 3 * P
        );
        let mut pages = 0;
        pt.for_each(BASE + HUGE_SIZE - 4 * P, VA_LIMIT, &mut |_, e| {
            pages += u64::from(e.is_huge())
        });
        assert_eq!(pages, 4);
        // Misaligned addresses or PFNs, and exclusive leaves, are refused.
        r.fill_block(GFP_KERNEL).expect("fill");
        let bad = [
            (BASE + P, Entry::new(HEAD, 0)),
            (BASE, Entry::new(HEAD + 1, 0)),
            (BASE, Entry::new(HEAD, Entry::EXCLUSIVE)),
        ];
        for (a, e) in bad {
            assert_eq!(pt.insert_huge(a, e, &mut r, &mut s), Err(EINVAL));
        }
        assert_eq!(
            pt.insert_huge(VA_LIMIT, Entry::new(HEAD, 0), &mut r, &mut s),
            Err(EFAULT)
        );
        // A device write dirties the whole leaf; re-installing the same
        // folio keeps it, another folio reports every page of the old one.
        assert!(pt
            .set_flags(BASE + 9 * P, Entry::DIRTY)
            .expect("set")
            .is_huge());
        assert!(pt.set_flags(BASE, Entry::EXCLUSIVE).expect("set").flags() & Entry::EXCLUSIVE == 0);
        put_huge(&mut pt, &mut r, &mut s, BASE, HEAD, Entry::WRITE);
        assert!(pt.lookup(BASE).expect("same").has(Entry::DIRTY));
        assert!(s.0.is_empty());
        put_huge(&mut pt, &mut r, &mut s, BASE, HEAD + 512, Entry::WRITE);
        assert!(reported_once(&s, HEAD, 512));
        assert!(!pt.lookup(BASE).expect("new").has(Entry::DIRTY));
        assert_eq!(pt.stats().huge, 1);
        pt.clear(&mut s);
        assert_eq!(pt.stats(), PtStats::default());
        assert_eq!(pt.root_count, 0);
    }

    #[test]
    fn huge_partial_invalidation_splits() {
        let (mut pt, mut r, mut s) = table();
        put_huge(&mut pt, &mut r, &mut s, BASE, HEAD, Entry::WRITE);
        pt.set_flags(BASE, Entry::DIRTY);
        // Unmap 10 pages in the middle: the leaf splits, and only those
        // pages are reported.
        assert_eq!(pt.update(BASE + 10 * P, BASE + 20 * P, 0, &mut s), 10);
        assert!(reported_once(&s, HEAD + 10, 10));
        assert_eq!(
            pt.stats(),
            PtStats {
                entries: 502,
                huge: 0,
                dirs: 14,
                bytes: 5 * UPPER + MID + 8 * LEAF,
                splits: 1
            }
        );
        assert_eq!(pt.lookup(BASE + 10 * P), None);
        let e = pt.lookup(BASE + 9 * P).expect("kept");
        assert_eq!(e.pfn(), HEAD + 9);
        assert!(!e.is_huge() && e.has(Entry::WRITE | Entry::DIRTY));
        // Write-protect one page: it stays, clean and read-only.
        assert_eq!(
            pt.update(BASE + 100 * P, BASE + 101 * P, Entry::VALID, &mut s),
            1
        );
        let e = pt.lookup(BASE + 100 * P).expect("kept");
        assert!(!e.has(Entry::WRITE) && !e.has(Entry::DIRTY));
        // Dropping the rest reports every page but those already handed
        // over: no dirty bit is lost, none is reported twice.
        pt.clear(&mut s);
        assert!(reported_once(&s, HEAD, 512));
        assert_eq!(
            pt.stats(),
            PtStats {
                splits: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn huge_whole_update_and_split_fallback() {
        let (mut pt, mut r, mut s) = table();
        put_huge(
            &mut pt,
            &mut r,
            &mut s,
            BASE,
            HEAD,
            Entry::WRITE | Entry::DIRTY,
        );
        // Write-protecting the whole leaf keeps it huge.
        assert_eq!(pt.update(BASE, BASE + HUGE_SIZE, Entry::VALID, &mut s), 1);
        assert!(reported_once(&s, HEAD, 512));
        let e = pt.lookup(BASE + P).expect("kept");
        assert!(e.is_huge() && !e.has(Entry::WRITE) && !e.has(Entry::DIRTY));
        assert_eq!(pt.stats().splits, 0);
        // Nothing to change: nothing happens, not even a split.
        assert_eq!(pt.update(BASE + P, BASE + 2 * P, Entry::VALID, &mut s), 0);
        assert_eq!(pt.stats().huge, 1);
        // Without a directory to split into, a partial change drops the
        // whole leaf, dirty pages reported.
        s.0.clear();
        pt.set_flags(BASE, Entry::DIRTY);
        assert_eq!(pt.update_split(BASE + P, BASE + 2 * P, 0, &mut s, None), 1);
        assert!(reported_once(&s, HEAD, 512));
        assert_eq!(pt.stats(), PtStats::default());
        assert_eq!(pt.root_count, 0);
    }

    #[test]
    fn huge_dirty_across_split_by_insert() {
        let (mut pt, mut r, mut s) = table();
        put_huge(
            &mut pt,
            &mut r,
            &mut s,
            BASE,
            HEAD,
            Entry::WRITE | Entry::DIRTY,
        );
        // A 4 KiB device-exclusive entry inside splits the leaf; the page
        // it replaces was dirty.
        put(
            &mut pt,
            &mut r,
            &mut s,
            BASE + 5 * P,
            999,
            Entry::WRITE | Entry::EXCLUSIVE,
        );
        assert_eq!(&s.0[..], &[HEAD + 5]);
        let e = pt.lookup(BASE + 5 * P).expect("exclusive");
        assert!(e.has(Entry::EXCLUSIVE) && !e.is_huge() && e.pfn() == 999);
        assert!(pt.lookup(BASE + 6 * P).expect("split").has(Entry::DIRTY));
        assert_eq!(
            pt.stats(),
            PtStats {
                entries: 512,
                huge: 0,
                dirs: 14,
                bytes: 5 * UPPER + MID + 8 * LEAF,
                splits: 1
            }
        );
        s.0.clear();
        pt.update(BASE + 5 * P, BASE + 6 * P, 0, &mut s);
        pt.update(0, VA_LIMIT, 0, &mut s);
        // The exclusive page was never written: all but HEAD + 5 reported.
        assert_eq!(s.0.len(), 511);
        assert!(!s.0.iter().any(|p| *p == HEAD + 5 || *p == 999));
    }

    #[test]
    fn huge_remerge_after_refault() {
        let (mut pt, mut r, mut s) = table();
        put_huge(&mut pt, &mut r, &mut s, BASE, HEAD, Entry::WRITE);
        pt.update(BASE + 10 * P, BASE + 20 * P, 0, &mut s);
        pt.set_flags(BASE + 3 * P, Entry::DIRTY);
        assert_eq!(pt.stats().entries, 502);
        // The CPU maps the folio with a PMD again: the device refaults and
        // merges; the dirty page is remembered by the huge leaf.
        put_huge(&mut pt, &mut r, &mut s, BASE, HEAD, Entry::WRITE);
        assert!(s.0.is_empty());
        assert_eq!(
            pt.stats(),
            PtStats {
                huge: 1,
                dirs: 5,
                bytes: 5 * UPPER,
                splits: 1,
                ..Default::default()
            }
        );
        assert!(pt.lookup(BASE + 15 * P).expect("merged").has(Entry::DIRTY));
        // Merging into a read-only leaf, or over other pages, hands the
        // dirty pages over instead.
        pt.update(BASE, BASE + P, 0, &mut s);
        assert_eq!(s.0.len(), 1);
        pt.set_flags(BASE + 7 * P, Entry::DIRTY);
        put(&mut pt, &mut r, &mut s, BASE + 8 * P, 77, Entry::WRITE);
        pt.set_flags(BASE + 8 * P, Entry::DIRTY);
        s.0.clear();
        put_huge(&mut pt, &mut r, &mut s, BASE, HEAD, 0);
        let mut got = KVec::new();
        got.extend_from_slice(&s.0, GFP_KERNEL).expect("copy");
        crate::sort::heapsort(&mut got);
        assert_eq!(&got[..2], &[77, HEAD + 1]);
        assert_eq!(got.len(), 511);
        assert!(!pt.lookup(BASE).expect("ro").has(Entry::DIRTY));
        assert_eq!(pt.stats().entries, 0);
        pt.clear(&mut s);
        assert_eq!(pt.stats().dirs, 0);
    }
}
