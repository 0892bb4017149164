// SPDX-License-Identifier: GPL-2.0

//! The device-buffer ioctls: `HMM_DEVBUF_CREATE`, `HMM_DEVBUF_WALK`,
//! `HMM_DEVBUF_CLEAN`, `HMM_DEVBUF_ZAP`, `HMM_DEVBUF_SET_CACHE` and
//! `HMM_DEVBUF_STATS` (`Documentation/uapi.rst`).

use super::cache::{
    stats,
    Store, //
};
use super::{
    find,
    Bits,
    Buffers,
    DevBuffer,
    DEVBUF_MAX_IDS,
    DEVBUF_MAX_PER_FILE,
    DEVBUF_MMAP_BASE,
    DEVBUF_MMAP_STRIDE,
    NEXT_ID, //
};
use crate::pfn_walk::{
    Missing,
    PfnEntry,
    VmaRegistry, //
};
use crate::uapi::*;
use core::sync::atomic::Ordering;
use kernel::{
    fs::File,
    new_mutex,
    prelude::*,
    sync::Arc,
    uaccess::{
        UserPtr,
        UserSlice, //
    }, //
};

fn create(bufs: &Buffers, file: &File, c: &mut HmmDevbufCreate) -> Result {
    if c.npages == 0 || c.npages > HMM_DEVBUF_MAX_PAGES {
        return Err(EINVAL);
    }
    let npages = c.npages as usize;
    if bufs.lock().len() >= DEVBUF_MAX_PER_FILE {
        return Err(ENOSPC);
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if id >= DEVBUF_MAX_IDS {
        return Err(ENOSPC);
    }
    let offset = DEVBUF_MMAP_BASE + id * DEVBUF_MMAP_STRIDE;
    let store = Store::new(npages)?;
    let pages = store.pages.clone();
    // SAFETY: The file is valid during the ioctl.
    let mapping = unsafe { (*file.as_ptr()).f_mapping };
    let (dirty, mapped) = (Bits::new(npages)?, Bits::new(npages)?);
    let buf = Arc::pin_init(
        try_pin_init!(DevBuffer {
            offset,
            npages,
            mapping,
            pages,
            store <- new_mutex!(store, "DevBuffer::store"),
            dirty,
            mapped,
            vmas <- VmaRegistry::new(),
        }),
        GFP_KERNEL,
    )?;
    let mut b = bufs.lock();
    if b.len() >= DEVBUF_MAX_PER_FILE {
        return Err(ENOSPC);
    }
    b.push(buf, GFP_KERNEL)?;
    c.offset = offset;
    Ok(())
}

fn walk(bufs: &Buffers, w: &mut HmmDevbufWalk) -> Result {
    if w.flags & !HMM_DEVBUF_WALK_POPULATE != 0 || w.max_entries > HMM_DEVBUF_WALK_MAX_ENTRIES {
        return Err(EINVAL);
    }
    if w.max_entries > 0 && w.entries == 0 {
        return Err(EINVAL);
    }
    let entries = user_addr(w.entries)?;
    let buf = find(bufs, w.offset)?;
    let (first, end) = buf.range(w.first, w.npages)?;
    let missing = if w.flags & HMM_DEVBUF_WALK_POPULATE != 0 {
        Missing::Populate
    } else {
        Missing::Skip
    };
    // Entries are gathered first: user memory cannot be written with an
    // mmap lock held.
    let max = w.max_entries as usize;
    let mut out: KVVec<HmmDevbufEntry> = KVVec::new();
    let base = buf.base_pgoff();
    // Publishes the `mapped` bits of every fault that completed before.
    drop(buf.store.lock());
    let stats = buf
        .vmas
        .walk(&*buf, base + first, base + end, missing, |e: &PfnEntry| {
            if out.len() < max {
                let mut flags = 0;
                if e.writable {
                    flags |= HMM_DEVBUF_PTE_WRITE;
                }
                if e.dirty {
                    flags |= HMM_DEVBUF_PTE_DIRTY;
                }
                out.push(
                    HmmDevbufEntry {
                        addr: e.addr as u64,
                        page: (e.pgoff - base) as u64,
                        flags,
                        cache: e.cache_bits as u32,
                        mm: e.mm_index as u64,
                    },
                    GFP_KERNEL,
                )?;
            }
            Ok(())
        })?;
    if !out.is_empty() {
        let bytes = out.len() * size_of::<HmmDevbufEntry>();
        let mut writer = UserSlice::new(UserPtr::from_addr(entries), bytes).writer();
        for e in out.iter() {
            writer.write(e)?;
        }
    }
    w.nentries = stats.entries;
    w.nvmas = stats.vmas;
    w.nmms = stats.mms;
    Ok(())
}

fn range_cmd(bufs: &Buffers, cmd: u32, r: &mut HmmDevbufRange) -> Result {
    let buf = find(bufs, r.offset)?;
    let (first, end) = buf.range(r.first, r.npages)?;
    match cmd {
        HMM_DEVBUF_CLEAN => {
            // Before anything is cleaned: the report must have somewhere
            // to go.
            let uptr = UserPtr::from_addr(user_addr(r.arg)?);
            let words = (end - first).div_ceil(64);
            let mut bits = KVVec::from_elem(0u64, words, GFP_KERNEL)?;
            r.count = buf.clean(first, end, &mut bits)?;
            let mut writer = UserSlice::new(uptr, words * 8).writer();
            if let Err(e) = bits.iter().try_for_each(|w| writer.write(w)) {
                // The report is lost: keep the pages dirty (they are
                // write-protected now, which only costs a fault).
                for (i, w) in bits.iter().enumerate() {
                    for b in 0..64 {
                        if w & (1 << b) != 0 {
                            buf.dirty.set(first + i * 64 + b);
                        }
                    }
                }
                return Err(e);
            }
        }
        HMM_DEVBUF_ZAP => {
            if r.arg != 0 {
                return Err(EINVAL);
            }
            buf.zap(first, end);
            r.count = (end - first) as u64;
        }
        HMM_DEVBUF_SET_CACHE => {
            let mode = match r.arg {
                HMM_DEVBUF_CACHE_WB | HMM_DEVBUF_CACHE_UC | HMM_DEVBUF_CACHE_WC => r.arg as u8,
                _ => return Err(EINVAL),
            };
            buf.set_cache(first, end, mode)?;
            r.count = (end - first) as u64;
        }
        _ => return Err(ENOTTY),
    }
    Ok(())
}

/// The device-buffer ioctls, or `None` if `cmd` is not one of them.
pub(crate) fn ioctl(bufs: &Buffers, file: &File, cmd: u32, arg: usize) -> Option<Result<isize>> {
    fn rw<T: kernel::transmute::FromBytes + kernel::transmute::AsBytes>(
        arg: usize,
        f: impl FnOnce(&mut T) -> Result,
    ) -> Result<isize> {
        let (mut reader, mut writer) =
            UserSlice::new(UserPtr::from_addr(arg), size_of::<T>()).reader_writer();
        let mut v: T = reader.read()?;
        f(&mut v)?;
        writer.write(&v)?;
        Ok(0)
    }
    Some(match cmd {
        HMM_DEVBUF_CREATE => rw(arg, |c: &mut HmmDevbufCreate| create(bufs, file, c)),
        HMM_DEVBUF_WALK => rw(arg, |w: &mut HmmDevbufWalk| walk(bufs, w)),
        HMM_DEVBUF_CLEAN | HMM_DEVBUF_ZAP | HMM_DEVBUF_SET_CACHE => {
            rw(arg, |r: &mut HmmDevbufRange| range_cmd(bufs, cmd, r))
        }
        HMM_DEVBUF_STATS => UserSlice::new(UserPtr::from_addr(arg), size_of::<HmmDevbufStats>())
            .writer()
            .write(&stats())
            .map(|()| 0),
        _ => return None,
    })
}
