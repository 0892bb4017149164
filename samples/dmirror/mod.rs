// SPDX-License-Identifier: GPL-2.0

//! The sample "device": misc devices `/dev/rust_hmm_dmirrorN` that speak
//! the ioctl ABI of `lib/test_hmm_uapi.h`. Each open file mirrors the
//! opening process through its own [`Mirror`].

mod bounce;
mod mirror;
pub(crate) mod uapi;

use core::sync::atomic::{AtomicU64, Ordering};
use kernel::transmute::AsBytes;
use kernel::{
    alloc::flags::__GFP_ZERO,
    fs::File,
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    mm::virt::VmaNew,
    page::{Page, PAGE_SIZE},
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};
use mirror::AnyMirror;
use uapi::*;

/// Number of device instances (the private-memory pair of test_hmm).
pub(crate) const NDEVICES: usize = 2;
const NAMES: [&CStr; NDEVICES] = [c"rust_hmm_dmirror0", c"rust_hmm_dmirror1"];

/// Largest mapping of the device file: its pages are allocated at mmap time.
const MMAP_MAX: usize = 1 << 30;

/// One device instance.
#[pin_data]
pub(crate) struct DmirrorDevice {
    index: usize,
    #[pin]
    misc: MiscDeviceRegistration<DmirrorFile>,
}

impl DmirrorDevice {
    /// Registers device `index`.
    pub(crate) fn new(index: usize) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            index,
            misc <- MiscDeviceRegistration::register(MiscDeviceOptions { name: NAMES[*index] }),
        })
    }

    /// The owner cookie for HMM: identifies this device's private pages and
    /// its own migrations in notifier callbacks.
    pub(crate) fn owner(&self) -> *const core::ffi::c_void {
        core::ptr::from_ref(self).cast()
    }
}

/// An open file: one mirror of the opening process.
pub(crate) struct DmirrorFile {
    mirror: AnyMirror,
    flags: AtomicU64,
}

#[vtable]
impl MiscDevice for DmirrorFile {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        let misc: *const MiscDeviceRegistration<Self> = misc;
        // Every registration of ours is the `misc` field of a pinned
        // `DmirrorDevice` that lives until the module unloads.
        let device: &'static DmirrorDevice =
            // SAFETY: See above; an open file holds a module reference.
            unsafe { &*kernel::container_of!(misc, DmirrorDevice, misc) };
        let task = kernel::current!();
        let mm = task.mm().ok_or(EINVAL)?;
        let mirror = AnyMirror::new(mm, device)?;
        Ok(KBox::pin(
            Self {
                mirror,
                flags: AtomicU64::new(0),
            },
            GFP_KERNEL,
        )?)
    }

    /// Maps fresh zeroed pages, as test_hmm does: a VM_MIXEDMAP mapping of
    /// ordinary pages, for the upstream `mixedmap` case. `ENOMEM` past
    /// [`MMAP_MAX`].
    fn mmap(_me: Pin<&DmirrorFile>, _file: &File, vma: &VmaNew) -> Result {
        let (start, end) = (vma.start(), vma.end());
        if end - start > MMAP_MAX {
            return Err(ENOMEM);
        }
        let vma = vma.set_mixedmap();
        for addr in (start..end).step_by(PAGE_SIZE) {
            let page = Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?;
            // The mapping takes its own reference; ours drops here.
            vma.vm_insert_page(addr, &page)?;
        }
        Ok(())
    }

    fn ioctl(me: Pin<&DmirrorFile>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        if cmd == HMM_DMIRROR_STATS || cmd == HMM_DMIRROR_STATS_V1 {
            // Each version gets the leading fields its size covers.
            let len = kernel::ioctl::_IOC_SIZE(cmd);
            let stats = me.mirror.stats();
            let bytes = stats.as_bytes().get(..len).ok_or(EINVAL)?;
            UserSlice::new(UserPtr::from_addr(arg), len)
                .writer()
                .write_slice(bytes)?;
            return Ok(0);
        }
        if cmd == HMM_DMIRROR_ATOMIC_ADD {
            let (mut reader, mut writer) = UserSlice::new(
                UserPtr::from_addr(arg),
                core::mem::size_of::<HmmDmirrorAtomic>(),
            )
            .reader_writer();
            let mut a: HmmDmirrorAtomic = reader.read()?;
            me.mirror.atomic_add(&mut a)?;
            writer.write(&a)?;
            return Ok(0);
        }
        let known = matches!(
            cmd,
            HMM_DMIRROR_READ
                | HMM_DMIRROR_WRITE
                | HMM_DMIRROR_MIGRATE_TO_DEV
                | HMM_DMIRROR_MIGRATE_TO_SYS
                | HMM_DMIRROR_SNAPSHOT
                | HMM_DMIRROR_EXCLUSIVE
                | HMM_DMIRROR_CHECK_EXCLUSIVE
                | HMM_DMIRROR_RELEASE
                | HMM_DMIRROR_FLAGS
                | HMM_DMIRROR_READ_UNLOCKED
        );
        if !known {
            return Err(ENOTTY);
        }
        let (mut reader, mut writer) = UserSlice::new(
            UserPtr::from_addr(arg),
            core::mem::size_of::<HmmDmirrorCmd>(),
        )
        .reader_writer();
        let mut c: HmmDmirrorCmd = reader.read()?;
        c.cpages = 0;
        c.faults = 0;
        let m = &me.mirror;
        match cmd {
            HMM_DMIRROR_READ => m.read(&mut c, false)?,
            HMM_DMIRROR_READ_UNLOCKED => m.read(&mut c, true)?,
            HMM_DMIRROR_WRITE => m.write(&mut c)?,
            HMM_DMIRROR_SNAPSHOT => m.snapshot(&mut c)?,
            HMM_DMIRROR_EXCLUSIVE => m.exclusive(&mut c)?,
            HMM_DMIRROR_CHECK_EXCLUSIVE => m.check_exclusive(&c)?,
            HMM_DMIRROR_FLAGS => me.flags.store(c.npages, Ordering::Relaxed),
            // No device memory yet, so there is nothing to release.
            HMM_DMIRROR_RELEASE => (),
            _ => return Err(EOPNOTSUPP),
        }
        writer.write(&c)?;
        Ok(0)
    }
}
