// SPDX-License-Identifier: GPL-2.0

//! Where a mirror's device page table lives and what keeps it current:
//! one interval notifier over the whole address space (the `dmirror`
//! devices, as `lib/test_hmm.c`), or a [`GpuSvm`] of ranges with a
//! notifier per 2 MiB chunk (the `svm` devices, as `drm_gpusvm`).

use super::invalidate::{
    Counters,
    MirrorOps,
    MirrorState,
    PageDirtier, //
};
use crate::device_exclusive::{
    exclusive_session,
    ExclusiveSession, //
};
use crate::device_pt::{
    DevicePageTable,
    Entry, //
};
use crate::gpusvm::{
    GpuSvm,
    GpuSvmOps,
    Invalidation,
    SvmRange, //
};
use crate::hmm;
use crate::migrate::PagemapOwner;
use crate::mmu_notifier::{
    IntervalNotifier,
    SeqNotifier, //
};
use crate::DmirrorDevice;
use core::ops::Deref;
use kernel::{
    mm::{
        Mm,
        MmWithUser, //
    },
    page::PAGE_SIZE,
    prelude::*, //
};

/// What the mirror's commands need of where its page table lives.
pub(crate) trait Backend: Send + Sync + Sized + 'static {
    /// The notifier a fault validates under.
    type Notifier: SeqNotifier<State = MirrorState>;

    /// A backend mirroring `mm` for `device`, with an empty table.
    fn new(mm: &MmWithUser, device: &'static DmirrorDevice) -> Result<impl PinInit<Self, Error>>;
    /// The device.
    fn device(&self) -> &'static DmirrorDevice;
    /// Invalidation counters.
    fn counters(&self) -> &Counters;
    /// The mirrored mm.
    fn mm(&self) -> &Mm;
    /// The table, to read (see [`crate::mmu_notifier::LockedState`]).
    fn lock(&self) -> impl Deref<Target = MirrorState> + '_;
    /// Calls `f` with a request over `[addr, e)` and `e`, where `e <= end`
    /// is as far as one request of this backend reaches from `addr`.
    fn with_range<R>(
        &self,
        addr: usize,
        end: usize,
        owner: PagemapOwner,
        f: impl FnMut(&mut hmm::Range<'_, Self::Notifier>, usize) -> Result<R>,
    ) -> Result<R>;
    /// Calls `f` with a device-exclusive session that reaches from `addr`
    /// to `e`, and `e`, as [`Self::with_range`].
    fn with_exclusive<R>(
        &self,
        addr: usize,
        end: usize,
        f: impl FnMut(&mut ExclusiveSession<'_, Self::Notifier>, usize) -> Result<R>,
    ) -> Result<R>;
    /// The SVM, for its own commands (`ENOTTY` otherwise).
    fn svm(&self) -> Result<&GpuSvm<SvmOps>> {
        Err(ENOTTY)
    }
}

/// The user address space size of `mm`, which no command may reach past.
pub(super) fn task_size(mm: &Mm) -> usize {
    // SAFETY: `task_size` is set at exec and never changes afterwards; the
    // mm struct is kept alive by the caller's reference.
    unsafe { (*mm.as_raw()).__bindgen_anon_1.task_size }
}

/// An empty device page table, for a backend whose notifiers keep it.
fn new_state() -> Result<MirrorState> {
    // SAFETY: The table lives in the notifier state for good. Both backends
    // apply every invalidation to it (keeping `VALID` without `WRITE` only
    // when the event keeps read access); the interval notifier's `release`
    // empties it, and a `GpuSvm` invalidates every chunk before it removes
    // its notifiers, and only fills entries inside chunks whose notifier is
    // in use.
    let pt = unsafe { DevicePageTable::new(GFP_KERNEL)? };
    Ok(MirrorState { pt })
}

impl<const TWO_PASS: bool> Backend for IntervalNotifier<MirrorOps<TWO_PASS>> {
    type Notifier = Self;

    fn new(mm: &MmWithUser, device: &'static DmirrorDevice) -> Result<impl PinInit<Self, Error>> {
        let ops = MirrorOps {
            device,
            counters: Counters::default(),
        };
        Ok(IntervalNotifier::new(
            mm,
            0,
            !(PAGE_SIZE - 1),
            ops,
            new_state()?,
        ))
    }

    fn device(&self) -> &'static DmirrorDevice {
        self.ops().device
    }

    fn counters(&self) -> &Counters {
        &self.ops().counters
    }

    fn mm(&self) -> &Mm {
        IntervalNotifier::mm(self)
    }

    fn lock(&self) -> impl Deref<Target = MirrorState> + '_ {
        IntervalNotifier::lock(self)
    }

    fn with_range<R>(
        &self,
        addr: usize,
        end: usize,
        owner: PagemapOwner,
        mut f: impl FnMut(&mut hmm::Range<'_, Self>, usize) -> Result<R>,
    ) -> Result<R> {
        let mut range = hmm::Range::new(self, addr, end, Some(owner))?;
        f(&mut range, end)
    }

    fn with_exclusive<R>(
        &self,
        _addr: usize,
        end: usize,
        mut f: impl FnMut(&mut ExclusiveSession<'_, Self>, usize) -> Result<R>,
    ) -> Result<R> {
        exclusive_session(self, |session| f(session, end))
    }
}

/// The notifier side of an `svm` device's mirror.
pub(crate) struct SvmOps {
    device: &'static DmirrorDevice,
    counters: Counters,
}

impl GpuSvmOps for SvmOps {
    type State = MirrorState;

    fn invalidate(&self, state: &mut MirrorState, inv: &Invalidation) {
        let mask = if inv.event().keeps_read() {
            Entry::VALID
        } else {
            0
        };
        self.counters.count(|| {
            state
                .pt
                .update(inv.start(), inv.end(), mask, &mut PageDirtier)
        });
    }
}

/// Range sizes of the `svm` devices, as Xe's.
const SVM_CHUNK_SIZES: &[usize] = &[1 << 21, 1 << 16, PAGE_SIZE];
/// Bytes each notifier of an `svm` device watches.
const SVM_NOTIFIER_SIZE: usize = 1 << 21;
/// How often a request starts over when its range went out of use.
const SVM_TRIES: usize = 8;

/// Calls `f` with the range around `addr`, made if needed, and where a
/// request from `addr` ends in it (at most `end`); starts over if the
/// collector took its notifier out of use meanwhile (`EAGAIN`).
fn svm_retry<R>(
    svm: &GpuSvm<SvmOps>,
    addr: usize,
    end: usize,
    mut f: impl FnMut(&SvmRange<'_, SvmOps>, usize) -> Result<R>,
) -> Result<R> {
    for _ in 0..SVM_TRIES {
        let range = match svm.range_find_or_insert(addr) {
            Err(e) if e == EAGAIN => continue,
            r => r?,
        };
        match f(&range, end.min(range.end())) {
            Err(e) if e == EAGAIN => continue,
            r => return r,
        }
    }
    Err(EBUSY)
}

impl Backend for GpuSvm<SvmOps> {
    type Notifier = crate::gpusvm::Notifier<SvmOps>;

    fn new(mm: &MmWithUser, device: &'static DmirrorDevice) -> Result<impl PinInit<Self, Error>> {
        let ops = SvmOps {
            device,
            counters: Counters::default(),
        };
        let end = task_size(mm) & !(PAGE_SIZE - 1);
        Ok(GpuSvm::new(
            mm,
            0,
            end,
            SVM_NOTIFIER_SIZE,
            SVM_CHUNK_SIZES,
            ops,
            new_state()?,
        ))
    }

    fn device(&self) -> &'static DmirrorDevice {
        self.ops().device
    }

    fn counters(&self) -> &Counters {
        &self.ops().counters
    }

    fn mm(&self) -> &Mm {
        GpuSvm::mm(self)
    }

    fn lock(&self) -> impl Deref<Target = MirrorState> + '_ {
        SvmState(GpuSvm::lock(self))
    }

    /// Requests reach to the end of the range around `addr`, made if
    /// needed.
    fn with_range<R>(
        &self,
        addr: usize,
        end: usize,
        owner: PagemapOwner,
        mut f: impl FnMut(&mut hmm::Range<'_, Self::Notifier>, usize) -> Result<R>,
    ) -> Result<R> {
        svm_retry(self, addr, end, |range, end| {
            f(&mut range.hmm_subrange(addr, end, Some(owner))?, end)
        })
    }

    fn with_exclusive<R>(
        &self,
        addr: usize,
        end: usize,
        mut f: impl FnMut(&mut ExclusiveSession<'_, Self::Notifier>, usize) -> Result<R>,
    ) -> Result<R> {
        svm_retry(self, addr, end, |range, end| {
            exclusive_session(range.notifier(), |session| f(session, end))
        })
    }

    fn svm(&self) -> Result<&GpuSvm<SvmOps>> {
        Ok(self)
    }
}

/// The table inside an SVM's lock.
struct SvmState<'a>(crate::gpusvm::SvmGuard<'a, SvmOps>);

impl Deref for SvmState<'_> {
    type Target = MirrorState;

    fn deref(&self) -> &MirrorState {
        self.0.state()
    }
}
