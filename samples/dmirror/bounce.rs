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

use crate::guarded_page::GuardedPages;
use core::mem::MaybeUninit;
use kernel::{
    page::PAGE_SIZE,
    prelude::*,
    uaccess::{
        UserPtr,
        UserSlice, //
    }, //
};

/// `pages` pages of vmalloc memory, left uninitialised.
fn vmalloc_pages(pages: usize) -> Result<VVec<MaybeUninit<u8>>> {
    let len = pages * PAGE_SIZE;
    let mut buf = VVec::with_capacity(len, GFP_KERNEL)?;
    // SAFETY: The capacity is at least `len`, and a `MaybeUninit<u8>` needs
    // no initialisation.
    unsafe { buf.inc_len(len) };
    Ok(buf)
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

    /// Appends a copy of as many of `pages` as fit (one `memcpy` per
    /// folio); returns how many.
    pub(crate) fn push_pages(&mut self, pages: &GuardedPages<'_>) -> u64 {
        let room = ((self.buf.len() - self.filled) / PAGE_SIZE) as u64;
        let n = pages.npages().min(room);
        if n == 0 {
            return 0;
        }
        let len = n as usize * PAGE_SIZE;
        let dst = &mut self.buf[self.filled..self.filled + len];
        if pages.read_uninit(0, dst).is_err() {
            return 0;
        }
        // INVARIANT: the copy initialised these bytes.
        self.filled += len;
        n
    }

    /// Replaces the contents with `len` bytes read from user address `uptr`.
    pub(crate) fn fill_from_user(&mut self, uptr: usize, len: usize) -> Result {
        self.filled = 0;
        let dst = self.buf.get_mut(..len).ok_or(ENOSPC)?;
        UserSlice::new(UserPtr::from_addr(uptr), len)
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

    /// Copies `PAGE_SIZE` filled bytes at `off` into `page`; `EPERM` if
    /// the device may not write it.
    pub(crate) fn copy_to_page(&self, off: usize, page: &GuardedPages<'_>) -> Result {
        let src = self.filled().get(off..off + PAGE_SIZE).ok_or(EINVAL)?;
        page.write(0, src)
    }

    /// Writes the filled bytes to user address `uptr`.
    pub(crate) fn copy_to_user(&self, uptr: usize) -> Result {
        let data = self.filled();
        UserSlice::new(UserPtr::from_addr(uptr), data.len())
            .writer()
            .write_slice(data)
    }
}
