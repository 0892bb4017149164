// SPDX-License-Identifier: GPL-2.0

//! The commands of the `svm` devices' own: the ranges of the file's SVM
//! (`HMM_SVM_RANGES`), its counts (`HMM_SVM_STATS`), and prefetch
//! (`HMM_SVM_PREFETCH`). Every other command goes to the mirror, as on the
//! `dmirror` devices.

use crate::mirror::AnyMirror;
use crate::uapi::*;
use kernel::{
    prelude::*,
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};

/// Handles `cmd` if it is one of ours: `None` otherwise.
pub(crate) fn ioctl(mirror: &AnyMirror, cmd: u32, arg: usize) -> Option<Result<isize>> {
    match cmd {
        HMM_SVM_RANGES => Some(ranges(mirror, arg)),
        HMM_SVM_STATS => Some(stats(mirror, arg)),
        HMM_SVM_PREFETCH => Some(prefetch(mirror, arg)),
        _ => None,
    }
}

/// HMM_SVM_RANGES: up to `count` ranges from the one that contains or
/// follows `addr`, copied out after the lock is dropped.
fn ranges(mirror: &AnyMirror, arg: usize) -> Result<isize> {
    let svm = mirror.svm()?;
    let size = core::mem::size_of::<HmmSvmRanges>();
    let (mut reader, mut writer) = UserSlice::new(UserPtr::from_addr(arg), size).reader_writer();
    let mut req: HmmSvmRanges = reader.read()?;
    let max = usize::try_from(req.count).map_err(|_| EINVAL)?;
    if max > HMM_SVM_RANGES_MAX {
        return Err(EINVAL);
    }
    let addr = usize::try_from(req.addr).unwrap_or(usize::MAX);
    let ptr = user_addr(req.ptr)?;
    let mut out = KVec::with_capacity(max, GFP_KERNEL)?;
    {
        let l = svm.lock();
        for info in l.ranges_from(addr).take(max) {
            let mut flags = 0;
            if info.unmapped {
                flags |= HMM_SVM_RANGE_UNMAPPED;
            }
            if info.partial {
                flags |= HMM_SVM_RANGE_PARTIAL;
            }
            // Cannot fail: the capacity is `max`.
            out.push(
                HmmSvmRange {
                    start: info.start as u64,
                    end: info.end as u64,
                    flags,
                },
                GFP_NOWAIT,
            )?;
        }
    }
    let bytes = out.len() * core::mem::size_of::<HmmSvmRange>();
    let mut w = UserSlice::new(UserPtr::from_addr(ptr), bytes).writer();
    for r in out.iter() {
        w.write(r)?;
    }
    req.count = out.len() as u64;
    writer.write(&req)?;
    Ok(0)
}

/// HMM_SVM_STATS.
fn stats(mirror: &AnyMirror, arg: usize) -> Result<isize> {
    let s = mirror.svm()?.lock().stats();
    let out = HmmSvmStats {
        ranges: s.ranges as u64,
        notifiers: s.notifiers as u64,
        ranges_inserted: s.ranges_inserted,
        ranges_removed: s.ranges_removed,
        notifiers_removed: s.notifiers_removed,
        invalidations: s.invalidations,
        partial_unmaps: s.partial_unmaps,
    };
    UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of::<HmmSvmStats>())
        .writer()
        .write(&out)?;
    Ok(0)
}

/// HMM_SVM_PREFETCH: `EINVAL` for an unknown location, else as
/// MIGRATE_TO_DEV (a hole or an unreadable VMA is `EINVAL`).
fn prefetch(mirror: &AnyMirror, arg: usize) -> Result<isize> {
    mirror.svm()?;
    let size = core::mem::size_of::<HmmSvmPrefetch>();
    let (mut reader, mut writer) = UserSlice::new(UserPtr::from_addr(arg), size).reader_writer();
    let mut p: HmmSvmPrefetch = reader.read()?;
    let to_device = match p.location {
        HMM_SVM_LOCATION_SYSTEM => false,
        HMM_SVM_LOCATION_DEVICE => true,
        _ => return Err(EINVAL),
    };
    let addr = usize::try_from(p.addr).map_err(|_| EINVAL)?;
    let npages = usize::try_from(p.npages).map_err(|_| EINVAL)?;
    p.moved = mirror.prefetch(addr, npages, to_device)?;
    writer.write(&p)?;
    Ok(0)
}
