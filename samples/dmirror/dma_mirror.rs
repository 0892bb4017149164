// SPDX-License-Identifier: GPL-2.0

//! The DMA mirror: `/dev/rust_hmm_dmirror_dma`, present while an `edu`
//! device is bound. It speaks the READ and WRITE of `lib/test_hmm_uapi.h`,
//! but the data moves by the device's DMA engine, not the CPU:
//!
//! - READ: each page at `addr` goes into the device buffer, and from there
//!   to the bytes at `ptr` (one or two transfers, as `ptr` need not be page
//!   aligned);
//! - WRITE: the other way round.
//!
//! Both ends are process memory that the device reaches through
//! `hmm_range_fault()` and a [`DmaMap`]: `addr` in the address space of
//! the process that opened the file (the mirrored one), `ptr` in that of
//! the caller, as `copy_to_user()` would. Each request maps windows of at
//! most [`WINDOW_PAGES`] pages under notifiers of their own
//! (`dma_mirror/window.rs`, which states the ordering argument), and
//! unmaps them when it ends: the device keeps no mapping between requests,
//! so every page is a device fault, counted in `faults`.
//!
//! One transfer runs at a time (the engine has one buffer), 100 ms of
//! virtual time each. `HMM_DMA_STATS` returns the file's counters.

use crate::edu::{
    self,
    EduBar, //
};
use crate::hmm::{
    resched_or_killed,
    Fault,
    Mode,
    Range, //
};
use crate::hmm_dma::DmaMap;
use crate::mmu_notifier::IntervalNotifier;
use crate::uapi::*;
use core::sync::atomic::{
    AtomicBool,
    AtomicU64,
    Ordering, //
};
use kernel::{
    device::{
        Bound,
        Core,
        Device, //
    },
    fs::File,
    miscdevice::{
        MiscDevice,
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    mm::{
        Mm,
        MmWithUser, //
    },
    new_condvar, new_mutex,
    page::PAGE_SIZE,
    pci,
    prelude::*,
    sync::{
        aref::ARef,
        Arc,
        CondVar,
        Mutex, //
    },
    uaccess::{
        UserPtr,
        UserSlice, //
    },
};

mod window;

use window::{
    InFlight,
    Window,
    WindowOps, //
};

/// Pages a request maps at a time (bounds the memory a request takes).
const WINDOW_PAGES: usize = 64;

/// The bound device, for a request holding [`Shared::engine`].
///
/// # Invariants
///
/// Made in probe and moved straight into [`Shared::engine`], where it is
/// reached only under the lock; [`DmaDevice::unbind`] takes it out, under
/// the lock, while the driver unbinds `dev`: so whoever finds it there
/// finds `dev` bound, until they drop the lock.
struct Engine {
    dev: ARef<Device>,
    bar: pci::DevresBar<{ edu::BAR_SIZE }>,
    /// Tickets handed out: the last transfer started.
    started: u64,
}

impl Engine {
    /// The device, bound.
    fn bound(&self) -> &Device<Bound> {
        // SAFETY: `self` is borrowed from the guard of `Shared::engine`
        // (type invariants), so `dev` is bound until that guard drops, and
        // the reference cannot outlive the borrow of `self`.
        unsafe { self.dev.as_bound() }
    }

    fn bar(&self) -> Result<&EduBar<'_>> {
        self.bar.access(self.bound())
    }
}

/// What the device file and the driver share.
#[pin_data]
pub(crate) struct Shared {
    /// `None` once the device unbound. A request holds the lock from start
    /// to end: transfers run one at a time, and the device stays bound.
    #[pin]
    engine: Mutex<Option<Engine>>,
    /// Set when unbinding starts, so that a request stops early.
    gone: AtomicBool,
    /// The last ticket the engine completed; written under `done_lock`.
    done: AtomicU64,
    #[pin]
    done_lock: Mutex<()>,
    #[pin]
    done_wait: CondVar,
}

impl Shared {
    /// Whether the transfer with `ticket` is done.
    fn is_done(&self, ticket: u64) -> bool {
        self.done.load(Ordering::Acquire) >= ticket
    }

    /// Waits until the transfer with `ticket` is done.
    fn wait_done(&self, ticket: u64) {
        let mut guard = self.done_lock.lock();
        while !self.is_done(ticket) {
            self.done_wait.wait(&mut guard);
        }
    }

    /// Publishes that the transfer with `ticket` is done.
    fn complete(&self, ticket: u64) {
        let _guard = self.done_lock.lock();
        self.done.store(ticket, Ordering::Release);
        self.done_wait.notify_all();
    }
}

/// Counters of one open file (`HMM_DMA_STATS`).
#[derive(Default)]
pub(crate) struct DmaStats {
    to_device: AtomicU64,
    to_ram: AtomicU64,
    invalidations: AtomicU64,
    invalidate_waits: AtomicU64,
    invalidate_ns: AtomicU64,
    unmapped: AtomicU64,
    iova: AtomicU64,
}

/// The DMA mirror device of a bound `edu` device.
#[pin_data]
pub(crate) struct DmaDevice {
    shared: Arc<Shared>,
    #[pin]
    misc: MiscDeviceRegistration<DmaFile>,
}

impl DmaDevice {
    /// The device file of `pdev`, whose BAR0 is `bar`.
    pub(crate) fn new(
        pdev: &pci::Device<Core<'_>>,
        bar: pci::DevresBar<{ edu::BAR_SIZE }>,
    ) -> impl PinInit<Self, Error> {
        let engine = Engine {
            dev: ARef::from(pdev.as_ref()),
            bar,
            started: 0,
        };
        let shared = Arc::pin_init(
            pin_init!(Shared {
                engine <- new_mutex!(Some(engine), "DmaDevice::engine"),
                gone: AtomicBool::new(false),
                done: AtomicU64::new(0),
                done_lock <- new_mutex!((), "DmaDevice::done"),
                done_wait <- new_condvar!("DmaDevice::done_wait"),
            }),
            GFP_KERNEL,
        );
        try_pin_init!(Self {
            shared: shared?,
            misc <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"rust_hmm_dmirror_dma",
            }),
        })
    }

    /// Called while the device unbinds: waits for the request in progress
    /// (which stops at its next page) and lets no other reach the device.
    pub(crate) fn unbind(&self) {
        self.shared.gone.store(true, Ordering::Relaxed);
        *self.shared.engine.lock() = None;
    }
}

/// An open DMA mirror file.
pub(crate) struct DmaFile {
    shared: Arc<Shared>,
    stats: Arc<DmaStats>,
    /// The mirrored address space: the opener's.
    mm: ARef<Mm>,
}

/// A notifier over a window.
type WindowNotifier = Pin<KBox<IntervalNotifier<WindowOps>>>;

impl DmaFile {
    /// A window of `npages` pages from `start` in `mm`.
    fn window(
        &self,
        engine: &Engine,
        mm: &MmWithUser,
        start: usize,
        npages: usize,
    ) -> Result<WindowNotifier> {
        // SAFETY: The map goes into the state of a notifier over its
        // window, whose ops unmap every invalidated range once the device
        // is done with it, and everything on release.
        let map = unsafe { DmaMap::new(engine.bound(), start, npages)? };
        self.stats
            .iova
            .store(u64::from(map.uses_iova()), Ordering::Relaxed);
        let ops = WindowOps {
            shared: self.shared.clone(),
            stats: self.stats.clone(),
        };
        let state = Window {
            map,
            inflight: None,
        };
        let len = npages * PAGE_SIZE;
        KBox::pin_init(
            IntervalNotifier::new(mm, start, len, ops, state),
            GFP_KERNEL,
        )
    }

    /// One transfer of `len` bytes between `addr` (inside one page of the
    /// window) and the device buffer at `off`, towards memory if `to_ram`.
    /// Returns once the device is done.
    fn transfer(
        &self,
        engine: &mut Engine,
        win: &IntervalNotifier<WindowOps>,
        addr: usize,
        off: usize,
        len: usize,
        to_ram: bool,
    ) -> Result {
        let page = addr & !(PAGE_SIZE - 1);
        let mut range = Range::new(win, page, page + PAGE_SIZE, None)?;
        let fault = if to_ram { Fault::Write } else { Fault::Read };
        let mut faulted = range.fault(fault, Mode::Locked)?;
        let (state, pages) = faulted.split();
        let dma = state.map.map(page, pages.page(0).ok_or(EFAULT)?)?;
        let bus = if to_ram {
            dma.for_write().ok_or(EFAULT)?
        } else {
            dma.addr()
        };
        edu::start(engine.bar()?, bus + (addr - page) as u64, off, len, to_ram)?;
        engine.started += 1;
        let ticket = engine.started;
        // Under the same lock hold as the start: see `window.rs`.
        state.inflight = Some(InFlight { addr: page, ticket });
        drop(faulted);
        edu::wait_idle(engine.bar()?);
        self.shared.complete(ticket);
        let counter = if to_ram {
            &self.stats.to_ram
        } else {
            &self.stats.to_device
        };
        counter.fetch_add(1, Ordering::Relaxed);
        // The record stays until the next transfer on the window replaces
        // it: done, it holds up no invalidation.
        Ok(())
    }

    /// Moves the bytes of page `addr` of `mirror` to or from the
    /// `PAGE_SIZE` bytes at `ptr` of `user`, through the device buffer.
    fn copy_page(
        &self,
        engine: &mut Engine,
        mirror: &IntervalNotifier<WindowOps>,
        addr: usize,
        user: &IntervalNotifier<WindowOps>,
        ptr: usize,
        read: bool,
    ) -> Result {
        if read {
            self.transfer(engine, mirror, addr, 0, PAGE_SIZE, false)?;
        }
        // `ptr` need not be aligned: a part in each of two pages.
        let mut done = 0;
        while done < PAGE_SIZE {
            let at = ptr + done;
            let len = (PAGE_SIZE - at % PAGE_SIZE).min(PAGE_SIZE - done);
            self.transfer(engine, user, at, done, len, read)?;
            done += len;
        }
        if !read {
            self.transfer(engine, mirror, addr, 0, PAGE_SIZE, true)?;
        }
        Ok(())
    }

    /// HMM_DMIRROR_READ (`read`) and HMM_DMIRROR_WRITE.
    fn read_write(&self, c: &mut HmmDmirrorCmd, read: bool) -> Result {
        let addr = usize::try_from(c.addr).map_err(|_| EINVAL)?;
        let ptr = usize::try_from(c.ptr).map_err(|_| EINVAL)?;
        let npages = usize::try_from(c.npages).map_err(|_| EINVAL)?;
        let size = npages.checked_mul(PAGE_SIZE).ok_or(EINVAL)?;
        if addr % PAGE_SIZE != 0
            || npages == 0
            || addr.checked_add(size).is_none()
            || ptr
                .checked_add(size)
                .is_none_or(|e| e > usize::MAX - PAGE_SIZE)
        {
            return Err(EINVAL);
        }
        let task = kernel::current!();
        let user_mm = task.mm().ok_or(EINVAL)?;
        let mirror_mm = self.mm.mmget_not_zero().ok_or(EFAULT)?;
        let mut guard = self.shared.engine.lock();
        let Some(engine) = &mut *guard else {
            return Err(ENODEV);
        };
        for first in (0..npages).step_by(WINDOW_PAGES) {
            let n = (npages - first).min(WINDOW_PAGES);
            let (a, p) = (addr + first * PAGE_SIZE, ptr + first * PAGE_SIZE);
            let mirror = self.window(engine, &mirror_mm, a, n)?;
            let p0 = p & !(PAGE_SIZE - 1);
            let user_pages = (p + n * PAGE_SIZE).div_ceil(PAGE_SIZE) - p0 / PAGE_SIZE;
            let user = self.window(engine, user_mm, p0, user_pages)?;
            for i in 0..n {
                if self.shared.gone.load(Ordering::Relaxed) {
                    return Err(ENODEV);
                }
                let off = i * PAGE_SIZE;
                self.copy_page(engine, &mirror, a + off, &user, p + off, read)?;
                c.cpages += 1;
                c.faults += 1;
                resched_or_killed()?;
            }
        }
        Ok(())
    }

    /// HMM_DMA_STATS.
    fn stats(&self) -> HmmDmaStats {
        let s = &self.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HmmDmaStats {
            to_device: get(&s.to_device),
            to_ram: get(&s.to_ram),
            invalidations: get(&s.invalidations),
            invalidate_waits: get(&s.invalidate_waits),
            invalidate_ns: get(&s.invalidate_ns),
            unmapped: get(&s.unmapped),
            iova: get(&s.iova),
        }
    }
}

#[vtable]
impl MiscDevice for DmaFile {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        let misc: *const MiscDeviceRegistration<Self> = misc;
        // SAFETY: Our only registration is the `misc` field of a pinned
        // `DmaDevice`, which deregisters it before it goes, and
        // `misc_deregister()` waits for opens in progress.
        let device = unsafe { &*kernel::container_of!(misc, DmaDevice, misc) };
        let task = kernel::current!();
        let mm = task.mm().ok_or(EINVAL)?;
        Ok(KBox::pin(
            Self {
                shared: device.shared.clone(),
                stats: Arc::new(DmaStats::default(), GFP_KERNEL)?,
                mm: ARef::from(&**mm),
            },
            GFP_KERNEL,
        )?)
    }

    fn ioctl(me: Pin<&DmaFile>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        if cmd == HMM_DMA_STATS {
            let stats = me.stats();
            UserSlice::new(UserPtr::from_addr(arg), core::mem::size_of::<HmmDmaStats>())
                .writer()
                .write(&stats)?;
            return Ok(0);
        }
        let read = match cmd {
            HMM_DMIRROR_READ => true,
            HMM_DMIRROR_WRITE => false,
            _ => return Err(ENOTTY),
        };
        with_cmd(arg, |c| me.read_write(c, read))
    }
}
