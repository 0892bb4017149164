// SPDX-License-Identifier: GPL-2.0

//! One mirror: a process address space seen by the device through its own
//! device page table.
//!
//! The device reads and writes only through that table. A miss is a device
//! page fault, served by `hmm_range_fault()` for the rest of the request and
//! counted in `faults`, as `lib/test_hmm.c` does. Pages are copied under
//! the notifier lock, and a user copy that faults could recurse into
//! reclaim, which takes that lock: READ copies to user memory with page
//! faults disabled and falls back to a bounce buffer where that stops short;
//! WRITE always goes through the bounce buffer.

use super::bounce::Bounce;
use super::memory::{self as sim, Devmem};
use super::uapi::*;
use super::DmirrorDevice;
use crate::device_exclusive::{exclusive_session, ExclusiveSession};
use crate::device_pt::{
    DevicePageTable, DirReserve, DirtySink, Entry, HUGE_ORDER, HUGE_PAGES, HUGE_SIZE,
};
use crate::guarded_page::{GuardedPages, PageRefs};
use crate::hmm::{
    self, next_vma, page_kinds, resched_or_killed, Fault, Mode, PageKind, MAX_RANGE_PAGES,
};
use crate::migrate::{Migration, Select};
use crate::mmu_notifier::{IntervalNotifier, IntervalNotifierOps, NotifierRange};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use kernel::time::{Instant, Monotonic};
use kernel::{
    alloc::flags::GFP_NOWAIT,
    mm::{virt::flags::READ as VM_READ, MmWithUser},
    page::{PAGE_SHIFT, PAGE_SIZE},
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

/// Pages moved through the bounce buffer at a time.
const CHUNK_PAGES: usize = MAX_RANGE_PAGES;

/// Hands pages the device wrote back to the mm, at once.
struct PageDirtier;

impl DirtySink for PageDirtier {
    fn dirty(&mut self, pages: GuardedPages<'_>) {
        // Cannot fail: the table reports only pages the device wrote.
        let _ = pages.mark_dirty();
    }
}

/// Dirty pages handed from the first pass of a two-pass invalidation to
/// the second, which calls `set_page_dirty()` without the notifier lock.
/// The first pass has removed the entries by then, so an unmap racing with
/// the second pass no longer waits for the lock: only the references kept
/// here stop the pages from being freed under `set_page_dirty()`.
pub(crate) struct DeferredDirty(KVec<PageRefs>);

impl DeferredDirty {
    fn set_dirty(self) {
        for refs in self.0.iter() {
            let _ = refs.mark_dirty();
        }
    }
}

impl DirtySink for DeferredDirty {
    /// Falls back to dirtying at once when the list cannot grow without
    /// sleeping.
    fn dirty(&mut self, pages: GuardedPages<'_>) {
        if self.0.reserve(1, GFP_NOWAIT).is_err() {
            PageDirtier.dirty(pages);
            return;
        }
        // Cannot fail: there is room.
        let _ = self.0.push(pages.get(), GFP_NOWAIT);
    }
}

/// The notifier side of a mirror. `TWO_PASS` picks the kernel interface:
/// device 0 uses the single-pass `invalidate`, device 1 the two-pass
/// `invalidate_start`/`invalidate_finish`, so both stay exercised.
pub(crate) struct MirrorOps<const TWO_PASS: bool> {
    device: &'static DmirrorDevice,
    /// Invalidations handled, and nanoseconds spent in them (first pass).
    invalidations: AtomicU64,
    invalidate_ns: AtomicU64,
}

/// What the notifier lock protects.
pub(crate) struct MirrorState {
    pt: DevicePageTable,
}

impl<const TWO_PASS: bool> IntervalNotifierOps for MirrorOps<TWO_PASS> {
    type State = MirrorState;
    /// Pages to dirty in the second pass.
    type Finish = DeferredDirty;
    const TWO_PASS: bool = TWO_PASS;

    fn invalidate(&self, state: &mut MirrorState, range: &NotifierRange<'_>) -> DeferredDirty {
        let start = Instant::<Monotonic>::now();
        // Write-protection keeps read access; everything else drops it.
        let mask = if range.event().keeps_read() {
            Entry::VALID
        } else {
            0
        };
        let mut dirty = DeferredDirty(KVec::new());
        if TWO_PASS {
            state
                .pt
                .update(range.start(), range.end(), mask, &mut dirty);
        } else {
            state
                .pt
                .update(range.start(), range.end(), mask, &mut PageDirtier);
        }
        self.invalidations.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(0);
        self.invalidate_ns.fetch_add(ns, Ordering::Relaxed);
        dirty
    }

    /// `set_page_dirty()` and dropping references never sleep, so this
    /// runs whether or not the range is blockable.
    fn invalidate_finish(&self, dirty: DeferredDirty, _blockable: bool) {
        dirty.set_dirty();
    }

    fn release(&self, state: &mut MirrorState) {
        state.pt.clear(&mut PageDirtier);
    }
}

/// A mirror of one process.
#[pin_data(PinnedDrop)]
pub(crate) struct Mirror<const TWO_PASS: bool> {
    #[pin]
    notifier: IntervalNotifier<MirrorOps<TWO_PASS>>,
    /// Names this mirror as the owner of the device pages it migrated.
    id: u64,
    /// `HMM_DMIRROR_FLAG_FAIL_ALLOC`: destination allocations of this
    /// file's migrations left until the one that fails (0: none armed).
    fail_alloc: AtomicU32,
    /// `HMM_DMIRROR_FLAG_KEEP_ON_CLOSE`.
    keep_on_close: AtomicBool,
}

/// Source of [`Mirror::id`]s; 0 means "no owner".
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[pinned_drop]
impl<const TWO_PASS: bool> PinnedDrop for Mirror<TWO_PASS> {
    fn drop(self: Pin<&mut Self>) {
        // Pages this file moved to the device go back with it. What cannot
        // move now (busy for a moment) goes at the latest on unload.
        if !self.keep_on_close.load(Ordering::Relaxed) {
            let _ = sim::evict(self.devmem(), Some(self.id));
        }
    }
}

/// Writes the items of `it` to the start of `buf`, as many as fit, and
/// returns that part, now initialised.
fn fill<T>(buf: &mut [MaybeUninit<T>], it: impl Iterator<Item = T>) -> &mut [T] {
    let mut n = 0;
    for (slot, v) in buf.iter_mut().zip(it) {
        slot.write(v);
        n += 1;
    }
    // SAFETY: The loop wrote the first `n` elements, and `MaybeUninit<T>`
    // has the layout of `T`.
    unsafe { &mut *(core::ptr::from_mut(&mut buf[..n]) as *mut [T]) }
}

/// What SNAPSHOT says of a page the CPU maps as `p`, which names a page of
/// `kind`: the CPU's side only.
fn snapshot_perm(p: &hmm::Pfn, kind: PageKind) -> u8 {
    if p.is_error() {
        return HMM_DMIRROR_PROT_ERROR;
    }
    if !p.is_valid() {
        return HMM_DMIRROR_PROT_NONE;
    }
    // HMM reports only our own device-private pages; another device's show
    // as not present.
    let mut v = match kind {
        PageKind::DevicePrivate => HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL,
        PageKind::Zero => HMM_DMIRROR_PROT_ZERO,
        PageKind::Other => HMM_DMIRROR_PROT_NONE,
    };
    v |= if p.is_write() {
        HMM_DMIRROR_PROT_WRITE
    } else {
        HMM_DMIRROR_PROT_READ
    };
    match p.order() + PAGE_SHIFT as u32 {
        21 => v | HMM_DMIRROR_PROT_PMD,
        30 => v | HMM_DMIRROR_PROT_PUD,
        _ => v,
    }
}

/// A bounce buffer for up to `CHUNK_PAGES` of a request of `npages`.
fn bounce_for(npages: u64) -> Result<Bounce> {
    Bounce::new(npages.min(CHUNK_PAGES as u64) as usize)
}

impl<const TWO_PASS: bool> Mirror<TWO_PASS> {
    /// Mirrors `mm` for `device`.
    pub(crate) fn new(
        mm: &MmWithUser,
        device: &'static DmirrorDevice,
    ) -> Result<impl PinInit<Self, Error>> {
        // SAFETY: The table lives in the notifier's state for good;
        // `invalidate` applies every invalidation to it, keeping `VALID`
        // (without `WRITE`) only when the event keeps read access, and
        // `release` empties it.
        let pt = unsafe { DevicePageTable::new(GFP_KERNEL)? };
        let state = MirrorState { pt };
        let ops = MirrorOps {
            device,
            invalidations: AtomicU64::new(0),
            invalidate_ns: AtomicU64::new(0),
        };
        let notifier = IntervalNotifier::new(mm, 0, !(PAGE_SIZE as u64 - 1), ops, state);
        Ok(try_pin_init!(Self {
            notifier <- notifier,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            fail_alloc: AtomicU32::new(0),
            keep_on_close: AtomicBool::new(false),
        }))
    }

    fn owner(&self) -> crate::migrate::PagemapOwner {
        self.notifier.ops().device.owner()
    }

    fn devmem(&self) -> &Devmem {
        &self.notifier.ops().device.devmem
    }

    /// HMM_DMIRROR_FLAGS.
    pub(crate) fn set_flags(&self, flags: u64) {
        let nth = if flags & HMM_DMIRROR_FLAG_FAIL_ALLOC == 0 {
            0
        } else {
            ((flags >> HMM_DMIRROR_FLAG_FAIL_NTH_SHIFT) as u32 & 0xffff).max(1)
        };
        self.fail_alloc.store(nth, Ordering::Relaxed);
        self.keep_on_close.store(
            flags & HMM_DMIRROR_FLAG_KEEP_ON_CLOSE != 0,
            Ordering::Relaxed,
        );
    }

    /// Checks a command's range: page aligned, non-empty, no overflow
    /// (`EINVAL`), and inside the user address space (`EFAULT`).
    fn range(&self, c: &HmmDmirrorCmd) -> Result<(u64, u64)> {
        if c.addr & (PAGE_SIZE as u64 - 1) != 0 || c.npages == 0 {
            return Err(EINVAL);
        }
        let size = c.npages.checked_mul(PAGE_SIZE as u64).ok_or(EINVAL)?;
        let end = c.addr.checked_add(size).ok_or(EINVAL)?;
        // SAFETY: `task_size` is set at exec and never changes afterwards;
        // the mm struct is kept alive by the notifier's `mmgrab`.
        let task_size = unsafe { (*self.notifier.mm().as_raw()).__bindgen_anon_1.task_size } as u64;
        if end > task_size {
            return Err(EFAULT);
        }
        Ok((c.addr, end))
    }

    /// Device page fault: fills the device page table for `[start, end)`.
    ///
    /// A page the CPU maps with a PMD gets a huge leaf for that whole PMD,
    /// even where it reaches past the range (see [`crate::hmm::block_head`]).
    fn fault(&self, start: u64, end: u64, fault: Fault, mode: Mode) -> Result {
        // Directories come from GFP_NOWAIT under the lock; only when that
        // fails is the reserve filled with GFP_KERNEL, outside the lock, and
        // the chunk faulted again.
        let mut reserve = DirReserve::new();
        let mut moved_back = 0;
        let mut addr = start;
        while addr < end {
            resched_or_killed()?;
            // Chunks never cross a huge leaf boundary.
            const _: () = assert!(CHUNK_PAGES as u64 >= HUGE_PAGES);
            let next = end.min((addr & !(HUGE_SIZE - 1)) + HUGE_SIZE);
            let mut range = hmm::Range::new(&self.notifier, addr, next, self.owner().as_ptr())?;
            let mut f = range.fault(fault, mode)?;
            let (st, pfns) = f.split();
            let mut res = Ok(next);
            let mut i = 0;
            while i < pfns.pfns().len() {
                let va = addr + ((i as u64) << PAGE_SHIFT);
                let Some(page) = pfns.page(i) else {
                    // Only device pages are asked for without faulting.
                    return Err(if fault == Fault::None { ENOENT } else { EFAULT });
                };
                // HMM reports our own device pages as they are, without
                // faulting them for write: one the CPU maps read-only
                // (shared with a forked child, or write-protected) must go
                // back to system memory, where a write fault breaks COW or
                // finds the VMA read-only.
                if fault == Fault::Write && page.is_device_private() && !page.is_writable() {
                    res = Err((va, ENOENT));
                    break;
                }
                let flags = if page.is_writable() { Entry::WRITE } else { 0 };
                let inserted = if page.is_device_private() {
                    // HMM reports device-private pages of our owner only, so
                    // they are ours; the device reads them through their
                    // data (4 KiB entries: see `block_head`).
                    let data = sim::data_pfn(self.devmem(), &pfns.pfns()[i]).ok_or(EFAULT)?;
                    // SAFETY: The data page of one of our device pages is
                    // freed only in its `folio_free`, once the device page
                    // itself is.
                    let data = unsafe { page.device_data(data)? };
                    i += 1;
                    st.pt
                        .insert_page(va, &data, flags, &mut reserve, &mut PageDirtier)
                } else if fault == Fault::None {
                    return Err(ENOENT);
                } else if let Some(block) = pfns.block(i, HUGE_ORDER) {
                    let base = va & !(HUGE_SIZE - 1);
                    i = pfns.pfns().len();
                    st.pt
                        .insert_huge_page(base, &block, flags, &mut reserve, &mut PageDirtier)
                } else {
                    i += 1;
                    st.pt
                        .insert_page(va, &page, flags, &mut reserve, &mut PageDirtier)
                };
                if let Err(e) = inserted {
                    res = Err((va, e));
                    break;
                }
            }
            drop(f);
            match res {
                Ok(next) => addr = next,
                Err((_, e)) if e == ENOMEM => reserve.fill_block(GFP_KERNEL)?,
                Err((va, e)) if e == ENOENT => {
                    // Bounded: the page may be migrated here again meanwhile.
                    moved_back += 1;
                    if moved_back > 16 {
                        return Err(EBUSY);
                    }
                    // A racing munmap or mprotect may have taken the VMA:
                    // that is an unmapped page here, as anywhere in a fault.
                    self.migrate(va, va + PAGE_SIZE as u64, Select::DevicePrivate)
                        .map_err(|e| if e == EINVAL { EFAULT } else { e })?;
                    addr = va;
                }
                Err((_, e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// HMM_DMIRROR_READ and HMM_DMIRROR_READ_UNLOCKED.
    ///
    /// Each span of valid entries is copied straight to user memory under
    /// the notifier lock, one copy per huge leaf. Where a user page is not
    /// there to take it without a fault, the rest of the chunk goes through
    /// the bounce buffer, whose copy to user memory runs unlocked and may
    /// fault.
    pub(crate) fn read(&self, c: &mut HmmDmirrorCmd, unlocked: bool) -> Result {
        let (start, end) = self.range(c)?;
        let mode = if unlocked {
            // Bounded, unlike test_hmm's 0 (retry for ever): with two CPUs
            // a thread invalidating elsewhere in the mm could keep the
            // kernel's retry loop going; this gives up with EBUSY as READ
            // does. A fault that drops the mmap lock (userfaultfd) made
            // progress and restarts the clock.
            Mode::Unlocked {
                timeout_ms: hmm::DEFAULT_TIMEOUT_MS,
            }
        } else {
            Mode::Locked
        };
        // A destination overlapping the source would read back its own
        // writes: such a READ copies each chunk whole before writing it.
        let overlaps = c.ptr < end && start < c.ptr.saturating_add(end - start);
        let uptr = |va: u64| c.ptr.wrapping_add(va - start);
        let mut bounce = None;
        let mut addr = start;
        while addr < end {
            resched_or_killed()?;
            let chunk_end = end.min(addr + ((CHUNK_PAGES as u64) << PAGE_SHIFT));
            let mut short = overlaps;
            if !overlaps {
                let guard = self.notifier.lock();
                let mut va = addr;
                let reached = guard.pt.run_pages(addr, chunk_end, &mut |pages| {
                    let done = pages.copy_to_user_nofault(UserPtr::from_addr(uptr(va) as usize));
                    short = done < pages.npages();
                    va += done << PAGE_SHIFT;
                    done
                });
                drop(guard);
                c.cpages += (reached - addr) >> PAGE_SHIFT;
                addr = reached;
            }
            if short {
                let bounce = match &mut bounce {
                    Some(b) => b,
                    None => bounce.insert(bounce_for(c.npages)?),
                };
                bounce.clear();
                self.notifier
                    .lock()
                    .pt
                    .run_pages(addr, chunk_end, &mut |pages| bounce.push_pages(&pages));
                let n = bounce.filled().len() / PAGE_SIZE;
                if n > 0 {
                    bounce.copy_to_user(uptr(addr))?;
                    c.cpages += n as u64;
                    addr += (n as u64) << PAGE_SHIFT;
                }
            }
            if addr < chunk_end {
                self.fault(addr, end, Fault::Read, mode)?;
                c.faults += 1;
            }
        }
        Ok(())
    }

    /// HMM_DMIRROR_WRITE.
    pub(crate) fn write(&self, c: &mut HmmDmirrorCmd) -> Result {
        let (start, end) = self.range(c)?;
        let mut bounce = bounce_for(c.npages)?;
        let mut addr = start;
        while addr < end {
            resched_or_killed()?;
            let chunk_start = addr;
            let chunk_end = end.min(addr + ((CHUNK_PAGES as u64) << PAGE_SHIFT));
            bounce.fill_from_user(
                c.ptr.wrapping_add(addr - start),
                (chunk_end - addr) as usize,
            )?;
            while addr < chunk_end {
                let mut n = 0;
                {
                    let st = self.notifier.lock();
                    let mut va = addr;
                    while va < chunk_end {
                        let Some(page) = st.pt.lookup_page(va) else {
                            break;
                        };
                        if !page.is_writable() {
                            break;
                        }
                        let off = (va - chunk_start) as usize;
                        bounce.copy_to_page(off, &page)?;
                        // Dirty the page now, as a CPU write would, while
                        // the lock keeps it mapped (`lock()` only reads the
                        // table). Device memory has no CPU mapping to dirty.
                        page.mark_dirty()?;
                        n += 1;
                        va += PAGE_SIZE as u64;
                    }
                }
                c.cpages += n as u64;
                addr += (n as u64) << PAGE_SHIFT;
                if addr < chunk_end {
                    self.fault(addr, end, Fault::Write, Mode::Locked)?;
                    c.faults += 1;
                }
            }
        }
        Ok(())
    }

    /// Takes device-exclusive access to the page at `addr` in `session`
    /// and runs `op` on it with the notifier lock held and the entry
    /// installed with `extra` flags (`DIRTY` when `op` writes the page).
    ///
    /// Directories come from `reserve` or `GFP_NOWAIT` under the lock; only
    /// if both fail is `reserve` filled with `GFP_KERNEL` and the page taken
    /// again, so a run of pages allocates only what it needs.
    fn take_exclusive<R>(
        session: &mut ExclusiveSession<'_, MirrorOps<TWO_PASS>>,
        addr: u64,
        extra: u64,
        reserve: &mut DirReserve,
        op: impl FnOnce(&GuardedPages<'_>) -> Result<R>,
    ) -> Result<R> {
        let mut op = Some(op);
        let mut filled = false;
        loop {
            let res = session.map(addr, |st, page| {
                let flags = Entry::WRITE | Entry::EXCLUSIVE | extra;
                st.pt
                    .insert_page(addr, &page, flags, reserve, &mut PageDirtier)?;
                let op = op.take().ok_or(EINVAL)?;
                op(&page)
            });
            match res {
                Err(e) if e == ENOMEM && !filled => {
                    reserve.fill_block(GFP_KERNEL)?;
                    filled = true;
                }
                r => return r,
            }
        }
    }

    /// HMM_DMIRROR_EXCLUSIVE: make every page of the range exclusive to
    /// this mirror, then read it back through the device. The mmap lock is
    /// taken once per 2 MiB of the range, not per page.
    pub(crate) fn exclusive(&self, c: &mut HmmDmirrorCmd) -> Result {
        let (start, end) = self.range(c)?;
        let mut reserve = DirReserve::new();
        exclusive_session(&self.notifier, |session| {
            let mut addr = start;
            while addr < end {
                if addr != start && addr % HUGE_SIZE == 0 {
                    session.relax()?;
                }
                Self::take_exclusive(session, addr, 0, &mut reserve, |_| Ok(()))?;
                addr += PAGE_SIZE as u64;
            }
            Ok(())
        })?;
        self.read(c, false)
    }

    /// HMM_DMIRROR_CHECK_EXCLUSIVE: `EPERM` while any page of the range is
    /// still exclusive to this mirror.
    pub(crate) fn check_exclusive(&self, c: &HmmDmirrorCmd) -> Result {
        let (start, end) = self.range(c)?;
        let mut held = false;
        self.notifier
            .lock()
            .pt
            .for_each(start, end, &mut |_, e| held |= e.has(Entry::EXCLUSIVE));
        if held {
            return Err(EPERM);
        }
        Ok(())
    }

    /// HMM_DMIRROR_ATOMIC_ADD: fetch-and-add on a `u64` by the device. It
    /// runs only on a device-exclusive entry, taking one first if the CPU
    /// (or another device) revoked it, so no update is ever lost.
    pub(crate) fn atomic_add(&self, a: &mut HmmDmirrorAtomic) -> Result {
        if a.addr % 8 != 0 {
            return Err(EINVAL);
        }
        let page = a.addr & !(PAGE_SIZE as u64 - 1);
        self.range(&HmmDmirrorCmd {
            addr: page,
            npages: 1,
            ..Default::default()
        })?;
        let off = (a.addr - page) as usize;
        a.faults = 0;
        {
            let st = self.notifier.lock();
            if st.pt.lookup(page).is_some_and(|e| e.has(Entry::EXCLUSIVE)) {
                let p = st.pt.lookup_page(page).ok_or(EFAULT)?;
                a.old = p.fetch_add_u64(off, a.value)?;
                // Core mm considers device-exclusive entries clean.
                p.mark_dirty()?;
                return Ok(());
            }
        }
        a.faults = 1;
        let value = a.value;
        let mut reserve = DirReserve::new();
        a.old = exclusive_session(&self.notifier, |session| {
            Self::take_exclusive(session, page, Entry::DIRTY, &mut reserve, |p| {
                p.fetch_add_u64(off, value)
            })
        })?;
        Ok(())
    }

    /// HMM_DMIRROR_MIGRATE_TO_DEV: moves the range into device memory,
    /// then reads it back through the device. `ENOENT` if a page did not
    /// end up in this device's memory (for example, it is in another's).
    pub(crate) fn migrate_to_device(&self, c: &mut HmmDmirrorCmd) -> Result {
        let (start, end) = self.range(c)?;
        self.migrate(start, end, Select::System)?;
        self.fault(start, end, Fault::None, Mode::Locked)?;
        self.read(c, false)?;
        c.faults = 0;
        Ok(())
    }

    /// HMM_DMIRROR_MIGRATE_TO_SYS: moves this device's pages of the range
    /// back to system memory. `cpages` counts the pages moved.
    pub(crate) fn migrate_to_system(&self, c: &mut HmmDmirrorCmd) -> Result {
        let (start, end) = self.range(c)?;
        c.cpages = self.migrate(start, end, Select::DevicePrivate)?;
        Ok(())
    }

    /// Migrates `[start, end)` one PMD-aligned window at a time, each inside
    /// one VMA. `EINVAL` for a hole or an unreadable VMA, as test_hmm.
    fn migrate(&self, start: u64, end: u64, select: Select) -> Result<u64> {
        let pool = self.devmem();
        let mm = self.notifier.mm().mmget_not_zero().ok_or(EINVAL)?;
        let lock = mm.mmap_read_lock();
        // Check the whole range before moving anything.
        let mut addr = start;
        while addr < end {
            let vma = lock.vma_lookup(addr as usize).ok_or(EINVAL)?;
            if vma.flags() & VM_READ == 0 {
                return Err(EINVAL);
            }
            addr = vma.end() as u64;
        }
        let mut moved = 0;
        let mut addr = start;
        while addr < end {
            resched_or_killed()?;
            let vma = lock.vma_lookup(addr as usize).ok_or(EINVAL)?;
            let pmd = 1u64 << (PAGE_SHIFT + crate::migrate::PMD_ORDER as usize);
            let next = end.min(vma.end() as u64).min((addr & !(pmd - 1)) + pmd);
            let mut m = Migration::vma(vma, addr, next, self.owner(), select, true)?;
            moved += match select {
                Select::System => sim::migrate_to_device(pool, &mut m, self.id, &self.fail_alloc),
                Select::DevicePrivate => {
                    sim::migrate_to_system(pool, &mut m, vma, &self.fail_alloc)?
                }
            };
            drop(m);
            addr = next;
        }
        Ok(moved)
    }

    /// HMM_DMIRROR_RELEASE: moves every page of the device, whoever
    /// migrated it, back to system memory.
    pub(crate) fn release(&self) -> Result {
        sim::evict(self.devmem(), None)?;
        Ok(())
    }

    /// HMM_DMIRROR_STATS.
    pub(crate) fn stats(&self) -> HmmDmirrorStats {
        let ops = self.notifier.ops();
        let pt = {
            let st = self.notifier.lock();
            (st.pt.stats(), st.pt.bytes())
        };
        let dev = self.devmem().stats();
        HmmDmirrorStats {
            invalidations: ops.invalidations.load(Ordering::Relaxed),
            invalidate_ns: ops.invalidate_ns.load(Ordering::Relaxed),
            entries: pt.0.entries,
            dirs: pt.0.dirs,
            table_bytes: pt.1,
            huge_entries: pt.0.huge,
            huge_splits: pt.0.splits,
            devmem_pages: dev.pages,
            devmem_in_use: dev.in_use,
        }
    }

    /// HMM_DMIRROR_SNAPSHOT: the CPU's view of each page, one byte each.
    pub(crate) fn snapshot(&self, c: &mut HmmDmirrorCmd) -> Result {
        let (start, end) = self.range(c)?;
        // On the stack and not zeroed first, as in test_hmm: an allocation,
        // or zeroing 1 KiB, costs as much as a small SNAPSHOT.
        let mut perm_buf = [const { MaybeUninit::uninit() }; CHUNK_PAGES];
        let mut kinds = [const { MaybeUninit::uninit() }; CHUNK_PAGES];
        let mut addr = start;
        // A hole in the address space is all errors to `hmm_range_fault()`
        // and can span up to 2^56 bytes with 5-level paging: once a chunk
        // comes back all errors, the hole after it, up to `hole_end`, is
        // answered without walking it.
        let mut hole_end = 0;
        while addr < end {
            resched_or_killed()?;
            let mut next = end.min(addr + ((CHUNK_PAGES as u64) << PAGE_SHIFT));
            let walk = addr >= hole_end;
            let perm = if !walk {
                next = next.min(hole_end);
                let n = ((next - addr) >> PAGE_SHIFT) as usize;
                fill(&mut perm_buf, (0..n).map(|_| HMM_DMIRROR_PROT_ERROR))
            } else {
                let mut range = hmm::Range::new(&self.notifier, addr, next, self.owner().as_ptr())?;
                let f = range.fault(Fault::None, Mode::Locked)?;
                let kinds = page_kinds(f.pfns(), &mut kinds)?;
                let perm = fill(
                    &mut perm_buf,
                    f.pfns()
                        .iter()
                        .zip(kinds)
                        .map(|(p, kind)| snapshot_perm(p, *kind)),
                );
                // The CPU sees a device-exclusive page as not present; say
                // which of them this mirror holds, and which it maps with a
                // huge leaf.
                f.state().pt.for_each(addr, next, &mut |va, e| {
                    let v = &mut perm[((va - addr) >> PAGE_SHIFT) as usize];
                    if e.has(Entry::EXCLUSIVE) {
                        *v |= HMM_DMIRROR_PROT_DEV_EXCLUSIVE;
                    }
                    if e.is_huge() {
                        *v |= HMM_DMIRROR_PROT_PMD;
                    }
                });
                perm
            };
            let n = perm.len();
            // With the notifier lock dropped: the mmap lock nests outside it.
            if walk && next < end && perm.iter().all(|&v| v == HMM_DMIRROR_PROT_ERROR) {
                let mm = self.notifier.mm().mmget_not_zero().ok_or(EFAULT)?;
                hole_end = next_vma(&mm, next).map_or(u64::MAX, |vma| vma.start);
            }
            let uptr = UserPtr::from_addr(c.ptr.wrapping_add(c.cpages) as usize);
            UserSlice::new(uptr, n).writer().write_slice(perm)?;
            c.cpages += n as u64;
            addr = next;
        }
        Ok(())
    }
}

/// A mirror of either notifier form.
pub(crate) enum AnyMirror {
    /// Single-pass `invalidate`.
    Single(Pin<KBox<Mirror<false>>>),
    /// Two-pass `invalidate_start`/`invalidate_finish`.
    TwoPass(Pin<KBox<Mirror<true>>>),
}

impl AnyMirror {
    /// Mirrors `mm` for `device`; odd devices use the two-pass form.
    pub(crate) fn new(mm: &MmWithUser, device: &'static DmirrorDevice) -> Result<Self> {
        Ok(if device.index % 2 == 1 {
            Self::TwoPass(KBox::pin_init(Mirror::new(mm, device)?, GFP_KERNEL)?)
        } else {
            Self::Single(KBox::pin_init(Mirror::new(mm, device)?, GFP_KERNEL)?)
        })
    }

    /// HMM_DMIRROR_READ and HMM_DMIRROR_READ_UNLOCKED.
    pub(crate) fn read(&self, c: &mut HmmDmirrorCmd, unlocked: bool) -> Result {
        match self {
            Self::Single(m) => m.read(c, unlocked),
            Self::TwoPass(m) => m.read(c, unlocked),
        }
    }

    /// HMM_DMIRROR_WRITE.
    pub(crate) fn write(&self, c: &mut HmmDmirrorCmd) -> Result {
        match self {
            Self::Single(m) => m.write(c),
            Self::TwoPass(m) => m.write(c),
        }
    }

    /// HMM_DMIRROR_EXCLUSIVE.
    pub(crate) fn exclusive(&self, c: &mut HmmDmirrorCmd) -> Result {
        match self {
            Self::Single(m) => m.exclusive(c),
            Self::TwoPass(m) => m.exclusive(c),
        }
    }

    /// HMM_DMIRROR_CHECK_EXCLUSIVE.
    pub(crate) fn check_exclusive(&self, c: &HmmDmirrorCmd) -> Result {
        match self {
            Self::Single(m) => m.check_exclusive(c),
            Self::TwoPass(m) => m.check_exclusive(c),
        }
    }

    /// HMM_DMIRROR_ATOMIC_ADD.
    pub(crate) fn atomic_add(&self, a: &mut HmmDmirrorAtomic) -> Result {
        match self {
            Self::Single(m) => m.atomic_add(a),
            Self::TwoPass(m) => m.atomic_add(a),
        }
    }

    /// HMM_DMIRROR_STATS.
    pub(crate) fn stats(&self) -> HmmDmirrorStats {
        match self {
            Self::Single(m) => m.stats(),
            Self::TwoPass(m) => m.stats(),
        }
    }

    /// HMM_DMIRROR_SNAPSHOT.
    pub(crate) fn snapshot(&self, c: &mut HmmDmirrorCmd) -> Result {
        match self {
            Self::Single(m) => m.snapshot(c),
            Self::TwoPass(m) => m.snapshot(c),
        }
    }

    /// HMM_DMIRROR_MIGRATE_TO_DEV.
    pub(crate) fn migrate_to_device(&self, c: &mut HmmDmirrorCmd) -> Result {
        match self {
            Self::Single(m) => m.migrate_to_device(c),
            Self::TwoPass(m) => m.migrate_to_device(c),
        }
    }

    /// HMM_DMIRROR_MIGRATE_TO_SYS.
    pub(crate) fn migrate_to_system(&self, c: &mut HmmDmirrorCmd) -> Result {
        match self {
            Self::Single(m) => m.migrate_to_system(c),
            Self::TwoPass(m) => m.migrate_to_system(c),
        }
    }

    /// HMM_DMIRROR_RELEASE.
    pub(crate) fn release(&self) -> Result {
        match self {
            Self::Single(m) => m.release(),
            Self::TwoPass(m) => m.release(),
        }
    }

    /// HMM_DMIRROR_FLAGS.
    pub(crate) fn set_flags(&self, flags: u64) {
        match self {
            Self::Single(m) => m.set_flags(flags),
            Self::TwoPass(m) => m.set_flags(flags),
        }
    }
}
