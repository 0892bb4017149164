// SPDX-License-Identifier: GPL-2.0

//! The sample "device", and the module: misc devices
//! `/dev/rust_hmm_dmirrorN` that speak the ioctl ABI of
//! `lib/test_hmm_uapi.h`, built on the Rust HMM library in `rust/`. Each
//! open file mirrors the opening process through its own [`Mirror`].
//!
//! [`Mirror`]: mirror::Mirror

// The library, mounted here and re-exported at the crate root, where its
// modules refer to each other (`crate::hmm`, ...): out of tree, kbuild
// builds one crate per kernel module, so the library cannot be a crate of
// its own. Public, so that its API stays public.
#[path = "../../rust/lib.rs"]
pub mod rust_hmm;
pub use rust_hmm::*;

// The library's `# Examples`, as the KUnit suite `rust_hmm_doctests`
// (generated at build time by `scripts/doctests.py`).
#[cfg(CONFIG_KUNIT = "y")]
mod doctests {
    include!("../../rust/doctests_generated.rs");
}

mod bounce;
mod devbuf;
mod dma_mirror;
mod edu;
mod helpers;
mod memory;
mod mirror;
mod svm;
pub(crate) mod uapi;

use crate::devmem::SoftReserved;
use kernel::transmute::AsBytes;
use kernel::{
    alloc::flags::__GFP_ZERO,
    driver,
    fs::File,
    miscdevice::{
        MiscDevice,
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    mm::virt::VmaNew,
    page::{
        Page,
        PAGE_SIZE, //
    },
    pci,
    prelude::*,
    uaccess::{
        UserPtr,
        UserSlice, //
    }, //
};
use mirror::AnyMirror;
use uapi::*;

/// Device instances, as test_hmm's: two with device-private memory, and
/// two with device-coherent memory if the machine has soft-reserved memory
/// to give them.
const NAMES: [&CStr; 4] = [
    c"rust_hmm_dmirror0",
    c"rust_hmm_dmirror1",
    c"rust_hmm_dmirror2",
    c"rust_hmm_dmirror3",
];

/// Devices whose mirrors are shared virtual memory (`crate::gpusvm`), each
/// with device-private memory of its own: `svm0` and `svm1` are to
/// `dmirror0` and `dmirror1` what an SVM driver is to test_hmm.
const SVM_NAMES: [&CStr; 2] = [c"rust_hmm_svm0", c"rust_hmm_svm1"];

/// Largest mapping of the device file: its pages are allocated at mmap time.
const MMAP_MAX: usize = 1 << 30;

/// Checks at unload that the device left the kernel as it found it.
pub(crate) fn unload_check() {
    devbuf::unload_check();
}

/// One device instance.
#[pin_data]
pub(crate) struct DmirrorDevice {
    index: usize,
    /// Mirrors of this device are SVMs.
    svm: bool,
    #[pin]
    misc: MiscDeviceRegistration<DmirrorFile>,
    /// Dropped after `misc`: no file can be open by then.
    memory: memory::Memory,
}

impl DmirrorDevice {
    /// Registers device `index` (of the `svm` devices if `svm`) with
    /// `memory`.
    pub(crate) fn new(
        index: usize,
        svm: bool,
        memory: memory::Memory,
    ) -> impl PinInit<Self, Error> {
        let name = if svm { SVM_NAMES[index] } else { NAMES[index] };
        try_pin_init!(Self {
            index,
            svm,
            misc <- MiscDeviceRegistration::register(MiscDeviceOptions { name }),
            memory,
        })
    }

    /// The owner cookie for HMM and migration: that of the device memory.
    pub(crate) fn owner(&self) -> crate::migrate::PagemapOwner {
        self.memory.owner()
    }
}

/// An open file: one mirror of the opening process, and the device
/// buffers it created.
pub(crate) struct DmirrorFile {
    mirror: AnyMirror,
    buffers: Pin<KBox<devbuf::Buffers>>,
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
                buffers: KBox::pin_init(devbuf::new_buffers(), GFP_KERNEL)?,
            },
            GFP_KERNEL,
        )?)
    }

    /// At offset 0, maps fresh zeroed pages, as test_hmm does: a
    /// VM_MIXEDMAP mapping of ordinary pages, for the upstream `mixedmap`
    /// case. `ENOMEM` past [`MMAP_MAX`]. Elsewhere, maps a device buffer
    /// (`devbuf.rs`).
    fn mmap(me: Pin<&DmirrorFile>, _file: &File, vma: &VmaNew) -> Result {
        if crate::vma_ops::vm_pgoff(vma) != 0 {
            return devbuf::mmap(&me.buffers, vma);
        }
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

    fn ioctl(me: Pin<&DmirrorFile>, file: &File, cmd: u32, arg: usize) -> Result<isize> {
        if let Some(r) = devbuf::ioctl(&me.buffers, file, cmd, arg) {
            return r;
        }
        if let Some(r) = svm::ioctl(&me.mirror, cmd, arg) {
            return r;
        }
        if matches!(
            cmd,
            HMM_DMIRROR_STATS | HMM_DMIRROR_STATS_V1 | HMM_DMIRROR_STATS_V2
        ) {
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
        let m = &me.mirror;
        with_cmd(arg, |c| {
            match cmd {
                HMM_DMIRROR_READ => m.read(c, false)?,
                HMM_DMIRROR_READ_UNLOCKED => m.read(c, true)?,
                HMM_DMIRROR_WRITE => m.write(c)?,
                HMM_DMIRROR_SNAPSHOT => m.snapshot(c)?,
                HMM_DMIRROR_EXCLUSIVE => m.exclusive(c)?,
                HMM_DMIRROR_CHECK_EXCLUSIVE => m.check_exclusive(c)?,
                HMM_DMIRROR_MIGRATE_TO_DEV => m.migrate_to_device(c)?,
                HMM_DMIRROR_MIGRATE_TO_SYS => m.migrate_to_system(c)?,
                HMM_DMIRROR_RELEASE => m.release()?,
                HMM_DMIRROR_FLAGS => m.set_flags(c.npages),
                _ => return Err(ENOTTY),
            }
            Ok(())
        })
    }
}

module! {
    type: RustHmm,
    name: "rust_hmm",
    authors: ["The Rust HMM developers"],
    description: "HMM mirroring for device drivers, with a test_hmm-compatible sample device",
    license: "GPL",
    params: {
        coherent_base: u64 {
            default: 0,
            description: "Physical address of the coherent devices' memory (soft-reserved)",
        },
        coherent_size: u64 {
            default: 0,
            description: "Its size in bytes, split between the two; 0: find soft-reserved memory",
        },
    },
}

struct RustHmm {
    /// The `edu` PCI driver; dropped first, so a bound device unbinds
    /// before the mirror devices go.
    _edu: Pin<KBox<driver::Registration<pci::Adapter<edu::EduDriver>>>>,
    _devices: KVec<Pin<KBox<DmirrorDevice>>>,
}

impl kernel::Module for RustHmm {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let mut memories = KVec::with_capacity(NAMES.len(), GFP_KERNEL)?;
        memories.push(memory::Memory::private()?, GFP_KERNEL)?;
        memories.push(memory::Memory::private()?, GFP_KERNEL)?;
        if let Some((a, b)) = coherent_ranges()? {
            memories.push(memory::Memory::coherent(a)?, GFP_KERNEL)?;
            memories.push(memory::Memory::coherent(b)?, GFP_KERNEL)?;
        }
        let mut devices = KVec::with_capacity(memories.len() + SVM_NAMES.len(), GFP_KERNEL)?;
        for (i, m) in memories.into_iter().enumerate() {
            devices.push(
                KBox::pin_init(DmirrorDevice::new(i, false, m), GFP_KERNEL)?,
                GFP_KERNEL,
            )?;
        }
        for i in 0..SVM_NAMES.len() {
            let m = memory::Memory::private()?;
            devices.push(
                KBox::pin_init(DmirrorDevice::new(i, true, m), GFP_KERNEL)?,
                GFP_KERNEL,
            )?;
        }
        pr_info!("{} mirror devices ready\n", devices.len());
        let edu = KBox::pin_init(
            driver::Registration::new(c"rust_hmm_edu", module),
            GFP_KERNEL,
        )?;
        Ok(Self {
            _edu: edu,
            _devices: devices,
        })
    }
}

/// The soft-reserved memory of the coherent devices: the largest range of
/// the machine, split in two halves, or what the `coherent_base` and
/// `coherent_size` parameters give (one half each). `None`, with a note
/// in the log, if there is none.
fn coherent_ranges() -> Result<Option<(SoftReserved, SoftReserved)>> {
    let base = module_parameters::coherent_base.value();
    let size = module_parameters::coherent_size.value();
    let range = if size != 0 {
        Some(SoftReserved::new(base, size)?)
    } else {
        SoftReserved::find()?.into_iter().max_by_key(|r| r.size())
    };
    let half = range.map_or(0, |r| (r.size() / 2) & !((2 << 20) - 1));
    match range {
        Some(r) if half > 0 => Ok(Some(r.split_at(half)?)),
        _ => {
            pr_info!("no soft-reserved memory (4 MiB at least): no coherent devices\n");
            Ok(None)
        }
    }
}

impl Drop for RustHmm {
    fn drop(&mut self) {
        // No file of ours is open (each holds the module): nothing of the
        // devices' may be left.
        unload_check();
    }
}
