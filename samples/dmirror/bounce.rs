// SPDX-License-Identifier: GPL-2.0

//! Copies between user memory and mirrored pages.
//!
//! The device copies pages while holding the notifier lock. A device READ
//! copies straight to user memory with page faults disabled; a user copy
//! that may fault (a READ whose destination is not present, every WRITE)
//! goes through a bounce buffer instead, filled or drained under the lock
//! and copied to or from user memory without it. The buffer is written
//! before it is read, so it is never zeroed: it tracks how much of it holds
//! data, and only that part can be read.

use crate::ffi;
use core::mem::MaybeUninit;
use kernel::{
    bindings,
    page::PAGE_SIZE,
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

/// Runs `f` on the kernel address of page `pfn`, mapped for `PAGE_SIZE`
/// bytes for the duration of the call.
///
/// # Safety
///
/// `pfn` must be a page kept alive by the caller (a device page table entry
/// under the notifier lock), and `f` must stay inside the page.
pub(crate) unsafe fn with_page<R>(pfn: u64, f: impl FnOnce(*mut u8) -> R) -> R {
    // SAFETY: The page is alive (caller); `kmap_local_page` maps it until
    // `kunmap_local`, which gets the address it returned.
    unsafe {
        let va = bindings::kmap_local_page(ffi::rust_hmm_pfn_to_page(pfn as usize));
        let r = f(va.cast());
        bindings::kunmap_local(va);
        r
    }
}

/// `pages` pages of vmalloc memory, left uninitialised.
fn vmalloc_pages(pages: usize) -> Result<VVec<MaybeUninit<u8>>> {
    let len = pages * PAGE_SIZE;
    let mut buf = VVec::with_capacity(len, GFP_KERNEL)?;
    // SAFETY: The capacity is at least `len`, and a `MaybeUninit<u8>` needs
    // no initialisation.
    unsafe { buf.inc_len(len) };
    Ok(buf)
}

/// Copies the `n` pages from `pfn` on straight to user address `uptr`, with
/// page faults disabled: a user page that is not present and writable ends
/// the copy there. Returns how many whole pages were copied.
///
/// This is what lets the device copy to user memory under the notifier
/// lock: the copy never enters the fault path, so it can neither take the
/// mmap lock nor allocate memory and recurse through reclaim into our
/// invalidate callback, which takes that lock.
///
/// # Safety
///
/// The `n` pages from `pfn` must be kept alive by the caller, as for
/// [`with_page`].
pub(crate) unsafe fn copy_to_user_nofault(uptr: u64, pfn: u64, n: u64) -> u64 {
    let len = n as usize * PAGE_SIZE;
    // The helper checks `access_ok()` and copies with `pagefault_disable()`:
    // a fault on the user address finds `faulthandler_disabled()` in the
    // fault handler, which goes to the exception fixup before it takes a
    // lock or allocates (arch/x86/mm/fault.c), so the copy cannot sleep,
    // take the mmap lock or recurse into the notifier lock the caller holds.
    // SAFETY: The caller keeps the pages alive; the copy cannot fault.
    let left = unsafe {
        ffi::rust_hmm_copy_pages_to_user_nofault(
            UserPtr::from_addr(uptr as usize).as_mut_ptr(),
            pfn as usize,
            len,
        )
    };
    (len.saturating_sub(left) / PAGE_SIZE) as u64
}

/// A bounce buffer of up to `pages` pages.
///
/// # Invariants
///
/// The first `filled` bytes of `buf` are initialised, and `filled <=
/// buf.len()`.
pub(crate) struct Bounce {
    buf: VVec<MaybeUninit<u8>>,
    filled: usize,
}

impl Bounce {
    /// A buffer for `pages` pages.
    ///
    /// vmalloc, as test_hmm's: up to 2 MiB that need not be physically
    /// contiguous, so no high-order allocation that could fail on a
    /// fragmented machine.
    pub(crate) fn new(pages: usize) -> Result<Self> {
        // INVARIANT: nothing is filled yet.
        Ok(Self {
            buf: vmalloc_pages(pages)?,
            filled: 0,
        })
    }

    /// Forgets the contents.
    pub(crate) fn clear(&mut self) {
        self.filled = 0;
    }

    /// Appends a copy of page `pfn`; `ENOSPC` if the buffer is full.
    ///
    /// # Safety
    ///
    /// `pfn` must be kept alive by the caller, as for [`with_page`].
    pub(crate) unsafe fn push_page(&mut self, pfn: u64) -> Result {
        let dst = self
            .buf
            .get_mut(self.filled..self.filled + PAGE_SIZE)
            .ok_or(ENOSPC)?;
        // SAFETY: The caller keeps the page alive; `dst` is `PAGE_SIZE`
        // bytes of our buffer.
        unsafe {
            with_page(pfn, |va| {
                core::ptr::copy_nonoverlapping(va, dst.as_mut_ptr().cast(), PAGE_SIZE)
            })
        };
        // INVARIANT: the page just copied initialised these bytes.
        self.filled += PAGE_SIZE;
        Ok(())
    }

    /// Appends a copy of up to `n` pages from `pfn` on, as many as fit;
    /// returns how many. The pages lie in one folio (a huge leaf), so the
    /// copy is a single `memcpy` where the folio is mapped contiguously.
    ///
    /// # Safety
    ///
    /// The `n` pages from `pfn` must be kept alive by the caller, as for
    /// [`with_page`].
    pub(crate) unsafe fn push_pages(&mut self, pfn: u64, n: u64) -> u64 {
        let room = ((self.buf.len() - self.filled) / PAGE_SIZE) as u64;
        let n = n.min(room);
        if n > 1 {
            let len = n as usize * PAGE_SIZE;
            let dst = &mut self.buf[self.filled..self.filled + len];
            // SAFETY: The caller keeps the pages alive; `dst` is `len`
            // bytes of our buffer; the helper copies nothing unless all
            // `len` bytes lie in the folio of `pfn`.
            if unsafe { ffi::rust_hmm_copy_from_folio(dst.as_mut_ptr().cast(), pfn as usize, len) }
            {
                // INVARIANT: the copy initialised these bytes.
                self.filled += len;
                return n;
            }
        }
        for i in 0..n {
            // SAFETY: As above, page by page.
            if unsafe { self.push_page(pfn + i) }.is_err() {
                return i;
            }
        }
        n
    }

    /// Replaces the contents with `len` bytes read from user address `uptr`.
    pub(crate) fn fill_from_user(&mut self, uptr: u64, len: usize) -> Result {
        self.filled = 0;
        let dst = self.buf.get_mut(..len).ok_or(ENOSPC)?;
        UserSlice::new(UserPtr::from_addr(uptr as usize), len)
            .reader()
            .read_raw(dst)?;
        // INVARIANT: `read_raw` initialised all `len` bytes on success.
        self.filled = len;
        Ok(())
    }

    /// The bytes filled so far.
    pub(crate) fn filled(&self) -> &[u8] {
        // SAFETY: The first `filled` bytes are initialised (type invariant).
        unsafe { core::slice::from_raw_parts(self.buf.as_ptr().cast::<u8>(), self.filled) }
    }

    /// Copies `PAGE_SIZE` filled bytes at `off` into page `pfn`.
    ///
    /// # Safety
    ///
    /// As for [`Self::push_page`]; the page must be writable by the device.
    pub(crate) unsafe fn copy_to_page(&self, off: usize, pfn: u64) -> Result {
        let src = self.filled().get(off..off + PAGE_SIZE).ok_or(EINVAL)?;
        // SAFETY: Per the requirements; `src` is `PAGE_SIZE` long.
        unsafe {
            with_page(pfn, |va| {
                core::ptr::copy_nonoverlapping(src.as_ptr(), va, PAGE_SIZE)
            })
        };
        Ok(())
    }

    /// Writes the filled bytes to user address `uptr`.
    pub(crate) fn copy_to_user(&self, uptr: u64) -> Result {
        let data = self.filled();
        UserSlice::new(UserPtr::from_addr(uptr as usize), data.len())
            .writer()
            .write_slice(data)
    }
}
