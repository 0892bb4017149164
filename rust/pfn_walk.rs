// SPDX-License-Identifier: GPL-2.0

//! Walking the PTEs of every VMA that maps a range of one of our objects,
//! without the caller holding any mmap lock.
//!
//! Upstream does this with `walk_page_mapping()` over `mapping->i_mmap`
//! (see `mm/mapping_dirty_helpers.c`). On 7.3 a module can call neither
//! that nor the `i_mmap` interval-tree iterators, so an object that maps
//! itself into processes tracks its own VMAs here, from its
//! `vm_operations_struct`: [`VmaRegistry::register`] in `mmap` and `open`,
//! [`VmaRegistry::unregister`] in `close`. [`VmaRegistry::walk`] then
//! visits them one address space at a time:
//!
//! 1. Under the registry mutex, pin (`mmgrab`) every `mm` that has a VMA of
//!    ours. Nothing else is read from the records here.
//! 2. For each of them: `mmget_not_zero()` (an exiting process is skipped:
//!    its VMAs are being torn down), then its mmap lock for read. With it
//!    held no VMA of that `mm` can be created, moved, split or freed, so
//!    the registry mutex is taken again to note the start address of each
//!    of our VMAs in that `mm`.
//! 3. Each address is looked up again with `vma_lookup()` and the VMA is
//!    checked to be ours (`vm_ops` and `vm_private_data`) before any of its
//!    page tables is read. A VMA that is not ours is never walked, and no
//!    page table is ever allocated for one.
//! 4. PTEs are read with `follow_pfnmap_start()`/`follow_pfnmap_end()`
//!    (PTE lock held only between the two); the caller's closure runs after
//!    `follow_pfnmap_end()`, with the mmap read lock held.
//!
//! Lock order: `mmap_lock` -> registry mutex. `open`/`close` run under the
//! mmap lock (write, or read in a downgraded `munmap`) and take the
//! mutex; the walker takes the mutex either with no mmap lock held (step 1)
//! or inside one mmap read lock (step 2), and never takes an mmap lock, nor
//! drops an `mm` reference, with the mutex held.
//!
//! The walker only reads. Changes to live PTEs belong to exported
//! primitives that notify and flush (`mapping_wrprotect_range()`,
//! `unmap_mapping_range()`), or to the object's fault path when asked to
//! populate.
//!
//! # Safety contract
//!
//! [`VmaRegistry::register`] is `unsafe`: the object promises to record
//! each VMA from `mmap`/`open` and forget it in `close`, before the VMA is
//! freed; that is what lets a walk dereference a record. Given that, every
//! [`PfnEntry`] a walk reports was read from a PTE of a VMA that the walk
//! found in its mm's tree, under that mm's mmap read lock and checked to be
//! the object's (`vm_ops`, `vm_private_data`), and no page table of any
//! other VMA is read or allocated. An entry is a snapshot: the PFN is not
//! referenced, and the PTE may change once the closure returns.
//!
//! # Deadlocks
//!
//! The closure and [`PfnSource::populate`] run with the mmap read lock of
//! the entry's process held, and with page faults disabled: a user access
//! there fails (`EFAULT` from the user copy helpers) instead of faulting,
//! which would take that lock again. They must not take the mmap lock or
//! the registry mutex (`register`/`unregister`, or mapping and unmapping
//! the object), nor drop the last user of an mm.

//!
//! # Files
//!
//! - this file: `NoPagefaults`, the registry ([`VmaRegistry`]), the
//!   object it tracks ([`PfnSource`]), and what a walk does and reports
//!   ([`Missing`], [`PfnEntry`], [`WalkStats`]);
//! - `walk.rs`: the walk ([`VmaRegistry::walk`]);
//! - `tests.rs`: the KUnit suite `rust_hmm_pfn_walk`.

use crate::ffi;
use kernel::{
    bindings,
    ffi::c_void,
    mm::virt::VmaRef,
    new_mutex,
    prelude::*,
    sync::Mutex, //
};

mod tests;
mod walk;

/// Page faults disabled (`pagefault_disable()`) while it lives: a user
/// access fails at once instead of faulting, for code that runs under a
/// lock the fault path may need (the mmap lock, the notifier lock).
pub(crate) struct NoPagefaults(core::marker::PhantomData<*mut ()>);

impl NoPagefaults {
    pub(crate) fn new() -> Self {
        // SAFETY: Paired with `pagefault_enable()` in `drop`, on this task:
        // the type is neither `Send` nor `Sync`.
        unsafe { ffi::pagefault_disable() };
        Self(core::marker::PhantomData)
    }
}

impl Drop for NoPagefaults {
    fn drop(&mut self) {
        // SAFETY: `new` disabled them on this task.
        unsafe { ffi::pagefault_enable() };
    }
}

/// One VMA of ours.
///
/// # Invariants
///
/// While the record is in a [`VmaRegistry`], `vma` points to a live VMA of
/// `mm` (it is removed in `close`, before the VMA is freed), so both may be
/// dereferenced under the registry mutex.
struct Record {
    vma: *const bindings::vm_area_struct,
    mm: *mut bindings::mm_struct,
}

// SAFETY: A record is only two addresses; it is dereferenced under the
// registry mutex only (see the type invariants), from any thread.
unsafe impl Send for Record {}

/// The VMAs that map one object.
#[pin_data]
pub struct VmaRegistry {
    #[pin]
    vmas: Mutex<Tracked>,
}

struct Tracked {
    records: KVVec<Record>,
    /// A VMA could not be recorded (allocation failure in `open`, which
    /// cannot fail): walks are refused from then on, never silently short.
    lost: bool,
}

/// What a walk does where a page of the range has no PTE in a VMA.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Missing {
    /// Visit only present entries; cost follows the populated part.
    Skip,
    /// Install the entry through [`PfnSource::populate`] first; visits
    /// every page of the range in every VMA.
    Populate,
}

/// One present PTE, as the walker read it under the PTE lock.
#[derive(Clone, Copy, Debug)]
pub struct PfnEntry {
    /// User address.
    pub addr: usize,
    /// File page offset it maps.
    pub pgoff: usize,
    /// The PFN in the PTE.
    pub pfn: usize,
    /// The PTE allows writes.
    pub writable: bool,
    /// The PTE's dirty bit.
    pub dirty: bool,
    /// The architecture's cache-mode bits of the PTE (x86: PWT, PCD, PAT);
    /// 0 is write-back.
    pub cache_bits: u64,
    /// Index of the address space in this walk, in visiting order.
    pub mm_index: usize,
}

/// Counts of one walk.
#[derive(Clone, Copy, Default, Debug)]
pub struct WalkStats {
    /// Entries passed to the closure.
    pub entries: u64,
    /// VMAs visited.
    pub vmas: u64,
    /// Address spaces visited.
    pub mms: u64,
}

/// The object whose VMAs a [`VmaRegistry`] tracks.
pub trait PfnSource {
    /// The `vm_ops` every VMA of the object has.
    fn vm_ops(&self) -> *const bindings::vm_operations_struct;

    /// The `vm_private_data` every VMA of the object has.
    fn vm_private_data(&self) -> *const c_void;

    /// The first file page offset in `from..to` that may have a PTE in
    /// some VMA, or `None`. Must not miss a page whose PTE was installed
    /// before the walk began (a superset is fine): [`Missing::Skip`] only
    /// reads the offsets this returns.
    fn next_maybe_mapped(&self, from: usize, to: usize) -> Option<usize>;

    /// Installs the entry for `pgoff` at `addr` of `vma`, as a read fault
    /// would. Called with the mmap read lock held (the borrow of `vma`
    /// proves it).
    fn populate(&self, vma: &VmaRef, addr: usize, pgoff: usize) -> Result;
}

impl VmaRegistry {
    /// An empty registry.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            vmas <- new_mutex!(
                Tracked {
                    records: KVVec::new(),
                    lost: false,
                },
                "VmaRegistry::vmas"
            ),
        })
    }

    /// Records `vma`. On failure nothing is recorded.
    ///
    /// # Safety
    ///
    /// `vma` is a valid VMA, in the `mmap` file operation (after which
    /// nothing fails) or in `vm_ops->open`, and [`Self::unregister`] is
    /// called for it in `vm_ops->close` before it is freed.
    pub unsafe fn register(&self, vma: *const bindings::vm_area_struct) -> Result {
        // SAFETY: The caller passes a valid VMA.
        let mm = unsafe { (*vma).vm_mm };
        let mut t = self.vmas.lock();
        // Allocating under the mutex is fine: reclaim never takes it.
        t.records.push(Record { vma, mm }, GFP_KERNEL)?;
        Ok(())
    }

    /// [`Self::register`] for `vm_ops->open`, which cannot fail: if the
    /// record cannot be allocated, walks of this registry fail with `EIO`
    /// from then on.
    ///
    /// # Safety
    ///
    /// As for [`Self::register`].
    pub unsafe fn register_or_poison(&self, vma: *const bindings::vm_area_struct) {
        // SAFETY: Same contract.
        if unsafe { self.register(vma) }.is_err() {
            self.vmas.lock().lost = true;
        }
    }

    /// Forgets `vma`; nothing happens if it was never recorded.
    pub fn unregister(&self, vma: *const bindings::vm_area_struct) {
        let mut t = self.vmas.lock();
        if let Some(i) = t.records.iter().position(|r| r.vma == vma) {
            let last = t.records.len() - 1;
            t.records.swap(i, last);
            t.records.truncate(last);
        }
    }

    /// Number of VMAs recorded now.
    pub fn count(&self) -> usize {
        self.vmas.lock().records.len()
    }
}
