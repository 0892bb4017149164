// SPDX-License-Identifier: GPL-2.0

//! Mapping a buffer: `mmap`, the VMA callbacks (`fault`, `pfn_mkwrite`;
//! `open` and `close` are `crate::vma_ops`'s, which keep each VMA's
//! reference to the buffer and its record in `vmas`) and the insert that
//! makes every PTE of a buffer, with the protection of its page at that
//! fault (see "Cache modes" and "Dirty tracking" in `devbuf.rs`); and the
//! walker's view of a buffer, which names the same `vm_ops`.

use super::{
    cache::{
        UC,
        WC, //
    },
    find,
    Buffers,
    DevBuffer,
    DEVBUF_MMAP_BASE,
    DEVBUF_MMAP_STRIDE, //
};
use crate::pfn_walk::{
    PfnSource,
    VmaRegistry, //
};
use crate::vma_ops::{
    vm_pgoff,
    PfnVma,
    Pgprot,
    VmFault,
    VmOps,
    VmOpsTable, //
};
use kernel::{
    bindings,
    ffi::c_void,
    mm::{
        virt::{
            flags,
            VmaNew,
            VmaRef, //
        },
        MmapReadGuard, //
    },
    page::{
        PAGE_SHIFT,
        PAGE_SIZE, //
    },
    prelude::*,
};

/// The `vm_ops` of every buffer VMA.
static DEVBUF_VM_OPS: VmOpsTable<DevBuffer> = VmOpsTable::new();

impl DevBuffer {
    /// The protection of a page for a VMA with `vm_flags`, computed now:
    /// writable only if asked, with the page's cache mode.
    pub(super) fn prot(vm_flags: usize, write: bool, cache: u8) -> Pgprot {
        let mut f = vm_flags & (flags::READ | flags::WRITE | flags::EXEC | flags::SHARED);
        if !write {
            f &= !flags::WRITE;
        }
        let prot = Pgprot::from_vm_flags(f);
        match cache {
            UC => prot.noncached(),
            WC => prot.writecombine(),
            _ => prot,
        }
    }

    /// Maps page `idx` of the buffer of `vma` at `addr`, allocating it on
    /// first use.
    fn insert(
        vma: &PfnVma<'_, Self>,
        addr: usize,
        idx: usize,
        write: bool,
        mkwrite: bool,
    ) -> Result {
        let buf = vma.data();
        let mut store = buf.store.lock();
        if store.page(idx).is_err() {
            return Err(ENOMEM);
        }
        // A new page, or one a failed SET_CACHE left behind, gets its
        // linear map changed now. We hold the store mutex and the mmap
        // lock, and may sleep: TTM's pool changes pages at fault time too.
        if store.linear[idx] != store.cache[idx] {
            let r = store.sync_linear(idx, idx + 1);
            if store.linear[idx] != store.cache[idx] {
                return Err(if r == Err(ENOMEM) { ENOMEM } else { EFAULT });
            }
        }
        // Allocated above; borrowed from the buffer, which outlives the PTE.
        let page = buf.pages[idx].as_ref().ok_or(ENOMEM)?;
        let prot = Self::prot(vma.flags(), write, store.cache[idx]);
        // Invariants: the hint and the dirty bit come before the PTE.
        buf.mapped.set(idx);
        if write {
            buf.dirty.set(idx);
        }
        let page_addr = addr & !(PAGE_SIZE - 1);
        if mkwrite {
            // The read-only PTE goes, through the primitive that notifies
            // and flushes, so that the writable one is ours, made under
            // the mutex.
            vma.zap_vma_range(page_addr, PAGE_SIZE);
        }
        vma.insert_pfn_prot(page_addr, page, prot)
    }
}

#[vtable]
impl VmOps for DevBuffer {
    /// Inserts the page, read-only unless this is a write.
    fn fault(vmf: &VmFault<'_, Self>) -> Result {
        let idx = vmf.data().index(vmf.pgoff()).ok_or(EFAULT)?;
        Self::insert(vmf.vma(), vmf.address(), idx, vmf.is_write(), false)
    }

    /// The first write through a read-only PTE: we make the writable PTE
    /// ourselves, so the core never does it behind our back.
    fn pfn_mkwrite(vmf: &VmFault<'_, Self>) -> Result {
        let idx = vmf.data().index(vmf.pgoff()).ok_or(EFAULT)?;
        Self::insert(vmf.vma(), vmf.address(), idx, true, true)
    }

    fn vma_registry(&self) -> Option<&VmaRegistry> {
        Some(&self.vmas)
    }
}

impl PfnSource for DevBuffer {
    fn vm_ops(&self) -> *const bindings::vm_operations_struct {
        DEVBUF_VM_OPS.as_raw()
    }

    fn vm_private_data(&self) -> *const c_void {
        core::ptr::from_ref(self).cast()
    }

    fn next_maybe_mapped(&self, from: usize, to: usize) -> Option<usize> {
        let base = self.base_pgoff();
        let (from, to) = (from.checked_sub(base)?, to.checked_sub(base)?);
        self.mapped.next_set(from, to).map(|i| i + base)
    }

    fn populate(&self, mm: &MmapReadGuard<'_>, _vma: &VmaRef, addr: usize, pgoff: usize) -> Result {
        let idx = self.index(pgoff).ok_or(EFAULT)?;
        // The walker checked that the VMA at `addr` is one of ours.
        DEVBUF_VM_OPS
            .with_vma(mm, addr, |vma| Self::insert(vma, addr, idx, false, false))
            .ok_or(EFAULT)?
    }
}

/// `mmap` at a buffer's offset: `MAP_SHARED`, inside the buffer.
pub(crate) fn mmap(bufs: &Buffers, vma: &VmaNew) -> Result {
    if vma.flags() & flags::SHARED == 0 {
        return Err(EINVAL);
    }
    let off = (vm_pgoff(vma) as u64)
        .checked_mul(PAGE_SIZE as u64)
        .ok_or(EINVAL)?;
    let rel = off.checked_sub(DEVBUF_MMAP_BASE).ok_or(EINVAL)?;
    let buf = find(bufs, off - rel % DEVBUF_MMAP_STRIDE)?;
    let first = (rel % DEVBUF_MMAP_STRIDE) >> PAGE_SHIFT;
    let pages = ((vma.end() - vma.start()) >> PAGE_SHIFT) as u64;
    buf.range(first, pages)?;
    // SAFETY: The last step of the device file's `mmap`, which returns
    // this result (`rust_dmirror.rs`); `vma_registry` is a field.
    unsafe { DEVBUF_VM_OPS.install(vma, buf) }
}
