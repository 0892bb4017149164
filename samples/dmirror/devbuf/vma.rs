// SPDX-License-Identifier: GPL-2.0

//! Mapping a buffer: `mmap`, the VMA callbacks (`open`, `close`, `fault`,
//! `pfn_mkwrite`) and the insert that makes every PTE of a buffer, with
//! the protection of its page at that fault (see "Cache modes" and "Dirty
//! tracking" in `devbuf.rs`); and the walker's view of a buffer, which
//! names the same `vm_ops`.

use super::{
    find,
    Buffers,
    DevBuffer,
    DEVBUF_MMAP_BASE,
    DEVBUF_MMAP_STRIDE, //
};
use crate::ffi;
use crate::helpers;
use crate::pfn_walk::PfnSource;
use kernel::{
    bindings,
    ffi::c_void,
    mm::virt::{
        VmaNew,
        VmaRef, //
    },
    page::{
        PAGE_SHIFT,
        PAGE_SIZE, //
    },
    prelude::*,
    sync::{
        Arc,
        ArcBorrow, //
    }, //
};

/// `vm_operations_struct` is not `Sync` (it has a raw pointer): ours is
/// immutable.
struct VmOps(bindings::vm_operations_struct);
// SAFETY: Function pointers and a null pointer, never written.
unsafe impl Sync for VmOps {}

static DEVBUF_VM_OPS: VmOps = VmOps(bindings::vm_operations_struct {
    open: Some(devbuf_open),
    close: Some(devbuf_close),
    fault: Some(devbuf_fault),
    pfn_mkwrite: Some(devbuf_pfn_mkwrite),
    // SAFETY: All-zero is a valid `vm_operations_struct` (no callbacks).
    ..unsafe { core::mem::zeroed() }
});

const VM_FAULT_OOM: bindings::vm_fault_t = bindings::vm_fault_reason_VM_FAULT_OOM;
const VM_FAULT_SIGBUS: bindings::vm_fault_t = bindings::vm_fault_reason_VM_FAULT_SIGBUS;

impl DevBuffer {
    /// The protection of page `idx` for a VMA with `vm_flags`, computed
    /// now: writable only if asked, with the page's cache mode.
    pub(super) fn prot(vm_flags: usize, write: bool, cache: u8) -> bindings::pgprot_t {
        let mut f = vm_flags
            & (bindings::VM_READ | bindings::VM_WRITE | bindings::VM_EXEC | bindings::VM_SHARED);
        if !write {
            f &= !bindings::VM_WRITE;
        }
        // SAFETY: Pure computations on flags and protection values.
        let val = unsafe {
            let base = bindings::vm_get_page_prot(f);
            helpers::dmirror_prot_with_cache(base.pgprot, cache.into())
        };
        bindings::pgprot_t { pgprot: val }
    }

    /// Maps page `idx` at `addr` of `vma`, allocating it on first use.
    ///
    /// # Safety
    ///
    /// `vma` is a VMA of this buffer and its mmap lock is held.
    unsafe fn insert(
        &self,
        vma: *mut bindings::vm_area_struct,
        addr: usize,
        idx: usize,
        write: bool,
        mkwrite: bool,
    ) -> bindings::vm_fault_t {
        let mut store = self.store.lock();
        let page = match store.page(idx) {
            Ok(p) => p.as_ptr(),
            Err(_) => return VM_FAULT_OOM,
        };
        // A new page, or one a failed SET_CACHE left behind, gets its
        // linear map changed now. We hold the store mutex and the mmap
        // lock, and may sleep: TTM's pool changes pages at fault time too.
        if store.linear[idx] != store.cache[idx] {
            let r = store.sync_linear(idx, idx + 1);
            if store.linear[idx] != store.cache[idx] {
                return if r == Err(ENOMEM) {
                    VM_FAULT_OOM
                } else {
                    VM_FAULT_SIGBUS
                };
            }
        }
        // SAFETY: `page` is a live page of ours.
        let pfn = unsafe { ffi::page_to_pfn(page) };
        // SAFETY: The caller holds the mmap lock of a valid `vma`.
        let flags = unsafe { VmaRef::from_raw(vma) }.flags();
        let prot = Self::prot(flags, write, store.cache[idx]);
        // Invariants: the hint and the dirty bit come before the PTE.
        self.mapped.set(idx);
        if write {
            self.dirty.set(idx);
        }
        let page_addr = addr & !(PAGE_SIZE - 1);
        if mkwrite {
            // The read-only PTE goes, through the primitive that notifies
            // and flushes, so that the writable one is ours, made under
            // the mutex.
            // SAFETY: `vma` is a `VM_PFNMAP` VMA, its mmap lock held.
            unsafe { bindings::zap_special_vma_range(vma, page_addr, PAGE_SIZE) };
        }
        // SAFETY: A `VM_PFNMAP`, `VM_SHARED` VMA under its mmap lock, an
        // address inside it, and a page that lives as long as the buffer,
        // which outlives every VMA (each holds a reference).
        unsafe { bindings::vmf_insert_pfn_prot(vma, page_addr, pfn, prot) }
    }
}

impl PfnSource for DevBuffer {
    fn vm_ops(&self) -> *const bindings::vm_operations_struct {
        &DEVBUF_VM_OPS.0
    }

    fn vm_private_data(&self) -> *const c_void {
        core::ptr::from_ref(self).cast()
    }

    fn next_maybe_mapped(&self, from: usize, to: usize) -> Option<usize> {
        let base = self.base_pgoff();
        let (from, to) = (from.checked_sub(base)?, to.checked_sub(base)?);
        self.mapped.next_set(from, to).map(|i| i + base)
    }

    fn populate(&self, vma: &VmaRef, addr: usize, pgoff: usize) -> Result {
        let idx = self.index(pgoff).ok_or(EFAULT)?;
        // SAFETY: The walker checked that `vma` is ours, and the borrow
        // proves its mmap lock is held.
        let r = unsafe { self.insert(vma.as_ptr(), addr, idx, false, false) };
        if r & VM_FAULT_OOM != 0 {
            Err(ENOMEM)
        } else if r & VM_FAULT_SIGBUS != 0 {
            Err(EFAULT)
        } else {
            Ok(())
        }
    }
}

/// The buffer of a VMA of ours.
///
/// # Safety
///
/// `vma` is a live VMA with our `vm_ops`: its `vm_private_data` holds a
/// reference to the buffer for as long as the VMA lives.
unsafe fn vma_buffer<'a>(vma: *const bindings::vm_area_struct) -> ArcBorrow<'a, DevBuffer> {
    // SAFETY: Per the function's contract, `vm_private_data` came from
    // `Arc::into_raw` and that reference is still held.
    unsafe { ArcBorrow::from_raw((*vma).vm_private_data.cast_const().cast()) }
}

/// `vm_ops->open`: a copy of one of our VMAs (fork, split, mremap). It
/// inherited `vm_private_data`, so it takes its own reference.
///
/// # Safety
///
/// Called by the core mm on a VMA copied from one with our `vm_ops`.
unsafe extern "C" fn devbuf_open(vma: *mut bindings::vm_area_struct) {
    // SAFETY: `vma` was copied from one of ours, so it has our private data.
    let buf: Arc<DevBuffer> = unsafe { vma_buffer(vma) }.into();
    // SAFETY: `open` is one of the places `register` may be called from;
    // `close` unregisters.
    unsafe { buf.vmas.register_or_poison(vma) };
    // The reference now belongs to the VMA.
    let _ = Arc::into_raw(buf);
}

/// `vm_ops->close`: the VMA goes; its PTEs are already gone.
///
/// # Safety
///
/// Called by the core mm, once, on a VMA with our `vm_ops`.
unsafe extern "C" fn devbuf_close(vma: *mut bindings::vm_area_struct) {
    // SAFETY: One of our VMAs, whose reference we take back here.
    let buf = unsafe { Arc::from_raw((*vma).vm_private_data.cast_const().cast::<DevBuffer>()) };
    buf.vmas.unregister(vma);
}

/// Where a fault lands: the buffer and page index, or `None` (`SIGBUS`).
///
/// # Safety
///
/// `vmf` is a fault on one of our VMAs.
unsafe fn fault_target<'a>(
    vmf: *mut bindings::vm_fault,
) -> Option<(
    ArcBorrow<'a, DevBuffer>,
    *mut bindings::vm_area_struct,
    usize,
    usize,
)> {
    // SAFETY: The caller passes a valid fault.
    let v = unsafe { &(*vmf).__bindgen_anon_1 };
    // SAFETY: The VMA is ours and alive during the fault.
    let buf = unsafe { vma_buffer(v.vma) };
    let idx = buf.index(v.pgoff)?;
    Some((buf, v.vma, v.address, idx))
}

/// `vm_ops->fault`: inserts the page, read-only unless this is a write.
///
/// # Safety
///
/// Called by the core mm for a fault on a VMA with our `vm_ops`.
unsafe extern "C" fn devbuf_fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
    // SAFETY: A fault on one of our VMAs.
    let Some((buf, vma, addr, idx)) = (unsafe { fault_target(vmf) }) else {
        return VM_FAULT_SIGBUS;
    };
    // SAFETY: As above.
    let write = unsafe { (*vmf).flags } & bindings::fault_flag_FAULT_FLAG_WRITE != 0;
    // SAFETY: Faults on VMAs without `map_pages` run under the mmap lock.
    unsafe { buf.insert(vma, addr, idx, write, false) }
}

/// `vm_ops->pfn_mkwrite`: the first write through a read-only PTE.
///
/// # Safety
///
/// Called by the core mm for a fault on a VMA with our `vm_ops`.
unsafe extern "C" fn devbuf_pfn_mkwrite(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
    // SAFETY: A fault on one of our VMAs.
    let Some((buf, vma, addr, idx)) = (unsafe { fault_target(vmf) }) else {
        return VM_FAULT_SIGBUS;
    };
    // SAFETY: `pfn_mkwrite` runs under the mmap lock (see
    // `vmf_can_call_fault()`). Returning `VM_FAULT_NOPAGE` (or an error)
    // tells the core we made the PTE writable ourselves.
    unsafe { buf.insert(vma, addr, idx, true, true) }
}

/// `mmap` at a buffer's offset: `MAP_SHARED`, inside the buffer.
pub(crate) fn mmap(bufs: &Buffers, vma: &VmaNew) -> Result {
    if vma.flags() & bindings::VM_SHARED == 0 {
        return Err(EINVAL);
    }
    let raw = vma.as_ptr();
    // SAFETY: The VMA being set up is valid.
    let pgoff = unsafe { (*raw).vm_pgoff } as u64;
    let off = pgoff.checked_mul(PAGE_SIZE as u64).ok_or(EINVAL)?;
    let rel = off.checked_sub(DEVBUF_MMAP_BASE).ok_or(EINVAL)?;
    let buf = find(bufs, off - rel % DEVBUF_MMAP_STRIDE)?;
    let first = (rel % DEVBUF_MMAP_STRIDE) >> PAGE_SHIFT;
    let pages = ((vma.end() - vma.start()) >> PAGE_SHIFT) as u64;
    buf.range(first, pages)?;
    // SAFETY: A VMA in its `mmap` call may have its flags set.
    unsafe { ffi::rust_hmm_vma_set_pfnmap(raw) };
    // SAFETY: Called in `mmap` after the last check that can fail; our
    // `close` unregisters.
    unsafe { buf.vmas.register(raw)? };
    // SAFETY: Nothing else uses the VMA during its `mmap` call. The
    // reference moves into the VMA and comes back in `close`.
    unsafe {
        (*raw).vm_private_data = Arc::into_raw(buf).cast_mut().cast();
        (*raw).vm_ops = &DEVBUF_VM_OPS.0;
    }
    Ok(())
}
