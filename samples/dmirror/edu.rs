// SPDX-License-Identifier: GPL-2.0

//! QEMU's `edu` PCI device (1234:11e8; `docs/specs/edu.rst` in QEMU's
//! source): a DMA engine that copies up to 4 KiB at a time between bus
//! addresses and a buffer of its own, for the mirror that reaches process
//! memory by DMA. The driver binds, maps BAR0, sets a 64-bit DMA mask,
//! proves the engine with a round trip through two coherent buffers, and
//! registers the DMA mirror device file (`dma_mirror.rs`) that drives it.
//!
//! The engine's limits shape what uses it:
//!
//! - one command at a time, and each takes 100 ms of the emulator's
//!   virtual clock (a timer), so a transfer is a wait, polled here (see
//!   `Documentation/design.rst` for why not by interrupt);
//! - a command cannot be aborted, and the device ignores translation
//!   errors: what its DMA reads from an unmapped IOVA is not reported
//!   to the driver, only by the IOMMU (the guest log);
//! - QEMU ANDs each bus address with the device's `dma_mask` property,
//!   28 bits unless the VM sets it (`scripts/vm.py` sets all 64); and
//!   BAR0 is written 32 bits at a time, so bus addresses stay below 4 GiB
//!   (the test guest's 2 GiB of memory do, and IOVAs are allocated there
//!   first); a transfer above is refused with `EINVAL`;
//! - QEMU 10.0 only logs a transfer that overruns the 4 KiB buffer, and
//!   then copies anyway (into its own heap): the driver checks bounds.

use crate::dma_mirror::DmaDevice;
use kernel::{
    device::Core,
    dma::{
        Coherent,
        DmaAddress,
        DmaMask, //
    },
    io::Io,
    pci,
    prelude::*,
    time::Delta, //
};

/// BAR0 registers (QEMU's `hw/misc/edu.c`).
mod regs {
    /// Identification: `0xRRrr00ed`.
    pub(super) const ID: usize = 0x00;
    /// Interrupt status, and its acknowledgment (write to clear).
    pub(super) const IRQ_ACK: usize = 0x64;
    /// DMA source, destination and byte count. 64-bit registers, written
    /// 32 bits at a time (the kernel's BAR accessors are 32-bit aligned):
    /// a 32-bit write sets the whole register, zero-extended.
    pub(super) const DMA_SRC: usize = 0x80;
    pub(super) const DMA_DST: usize = 0x88;
    pub(super) const DMA_CNT: usize = 0x90;
    /// DMA command: [`RUN`], [`TO_RAM`].
    pub(super) const DMA_CMD: usize = 0x98;
    /// What the driver maps.
    pub(super) const END: usize = 0xa0;

    /// Starts a transfer; reads back set until it is done.
    pub(super) const RUN: u32 = 1;
    /// From the device buffer to the bus address (else the other way).
    pub(super) const TO_RAM: u32 = 2;
}

/// Where the device buffer sits in the engine's address space.
const BUF_ADDR: u64 = 0x40000;
/// The device buffer's size: the most one transfer moves.
pub(crate) const BUF_SIZE: usize = 4096;

/// The bytes of BAR0 the driver maps.
pub(crate) const BAR_SIZE: usize = regs::END;

/// The mapped registers of an `edu` device.
pub(crate) type EduBar<'a> = pci::Bar<'a, BAR_SIZE>;

/// Whether the engine is done with the transfer it ran, if any.
pub(crate) fn idle(bar: &EduBar<'_>) -> bool {
    bar.read32(regs::DMA_CMD) & regs::RUN == 0
}

/// Waits, polling every millisecond, until the engine is idle. There is
/// no limit: a transfer cannot be aborted, and an address it may still use
/// cannot be given back before it ends (edu always ends one in 100 ms of
/// virtual time; a device without a reset that never did would hold its
/// invalidations, as a hung GPU holds fence waits).
pub(crate) fn wait_idle(bar: &EduBar<'_>) {
    while !idle(bar) {
        kernel::time::delay::fsleep(Delta::from_millis(1));
    }
}

/// Starts copying `len` bytes between bus address `bus` and the device
/// buffer at `off`, towards memory if `to_ram`, on an idle engine. `EINVAL`
/// if the bytes do not fit the buffer, or do not lie below 4 GiB of the
/// bus (only 32-bit register writes reach the device); `EBUSY` if a
/// transfer runs.
pub(crate) fn start(
    bar: &EduBar<'_>,
    bus: DmaAddress,
    off: usize,
    len: usize,
    to_ram: bool,
) -> Result {
    let end = off.checked_add(len).ok_or(EINVAL)?;
    let bus = u32::try_from(bus).map_err(|_| EINVAL)?;
    if len == 0 || end > BUF_SIZE || bus.checked_add(len as u32 - 1).is_none() {
        return Err(EINVAL);
    }
    if !idle(bar) {
        return Err(EBUSY);
    }
    let buf = BUF_ADDR as u32 + off as u32;
    let (src, dst, cmd) = if to_ram {
        (buf, bus, regs::RUN | regs::TO_RAM)
    } else {
        (bus, buf, regs::RUN)
    };
    bar.write32(src, regs::DMA_SRC);
    bar.write32(dst, regs::DMA_DST);
    bar.write32(len as u32, regs::DMA_CNT);
    bar.write32(cmd, regs::DMA_CMD);
    Ok(())
}

/// One transfer from start to end (see [`start`]).
fn dma(bar: &EduBar<'_>, bus: DmaAddress, off: usize, len: usize, to_ram: bool) -> Result {
    wait_idle(bar);
    start(bar, bus, off, len, to_ram)?;
    wait_idle(bar);
    Ok(())
}

/// The driver's data for a bound device: its DMA mirror device file.
pub(crate) struct EduData {
    dma: Pin<KBox<DmaDevice>>,
}

impl Drop for EduData {
    fn drop(&mut self) {
        // Still bound: wait for a request in progress, then let no other
        // reach the device. The device file goes with `dma`; files left
        // open answer `ENODEV`.
        self.dma.unbind();
    }
}

/// The `edu` PCI driver.
pub(crate) struct EduDriver;

// QEMU has no vendor constant in the kernel: match edu's class (base 0x00,
// sub-class 0xff) and check the IDs in `probe`.
kernel::pci_device_table!(
    EDU_TABLE,
    <EduDriver as pci::Driver>::IdInfo,
    [(pci::DeviceId::from_class(0x00ff00, 0xffff00), ())]
);

/// PCI IDs of the device.
const EDU_VENDOR: u16 = 0x1234;
const EDU_DEVICE: u16 = 0x11e8;

impl EduDriver {
    /// A transfer there and back through the device buffer, checked.
    fn self_test(pdev: &pci::Device<Core<'_>>, bar: &EduBar<'_>) -> Result {
        let mut pattern = [0u8; BUF_SIZE];
        for (i, b) in pattern.iter_mut().enumerate() {
            *b = (i * 7 + 1) as u8;
        }
        let src = Coherent::<u8>::from_slice(pdev.as_ref(), &pattern, GFP_KERNEL)?;
        let dst = Coherent::<u8>::zeroed_slice(pdev.as_ref(), BUF_SIZE, GFP_KERNEL)?;
        dma(bar, src.dma_address(), 0, BUF_SIZE, false)?;
        dma(bar, dst.dma_address(), 0, BUF_SIZE, true)?;
        // SAFETY: The device is idle (`dma` waited), and nothing else
        // knows the buffer.
        if unsafe { dst.as_ref() } != &pattern[..] {
            return Err(EIO);
        }
        Ok(())
    }
}

impl pci::Driver for EduDriver {
    type IdInfo = ();
    type Data<'bound> = EduData;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &EDU_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        if pdev.vendor_id().as_raw() != EDU_VENDOR || pdev.device_id() != EDU_DEVICE {
            return Err(ENODEV);
        }
        pdev.enable_device_mem()?;
        pdev.set_master();
        // SAFETY: No DMA is mapped or allocated for the device yet.
        unsafe { kernel::dma::Device::dma_set_mask_and_coherent(pdev, DmaMask::new::<64>())? };
        let bar = pdev.iomap_region_sized::<BAR_SIZE>(0, c"rust_hmm_edu")?;
        if bar.read32(regs::ID) & 0xff != 0xed {
            return Err(ENODEV);
        }
        // The device keeps its state across a rebind: let a transfer left
        // running end, and clear what interrupts it raised.
        wait_idle(&bar);
        bar.write32(u32::MAX, regs::IRQ_ACK);
        Self::self_test(pdev, &bar)?;
        dev_info!(
            pdev,
            "edu: DMA self-test passed ({} bytes there and back)\n",
            BUF_SIZE
        );
        let dma = KBox::pin_init(DmaDevice::new(pdev, bar.into_devres()?), GFP_KERNEL)?;
        Ok(EduData { dma })
    }
}
