// SPDX-License-Identifier: GPL-2.0

//! QEMU's `edu` PCI device (1234:11e8; `docs/specs/edu.rst` in QEMU's
//! source): a DMA engine that copies up to 4 KiB at a time between bus
//! addresses and a buffer of its own, for the mirror that reaches process
//! memory by DMA (issue 20). This is the driver's first part: it binds,
//! maps BAR0, sets a 64-bit DMA mask and proves the engine with a round
//! trip through two coherent buffers.
//!
//! The engine's limits shape what uses it:
//!
//! - one command at a time, and each takes 100 ms of the emulator's
//!   virtual clock (a timer), so a transfer is a wait, polled here;
//! - a command cannot be aborted, and the device ignores translation
//!   errors: what its DMA reads from an unmapped IOVA is not reported
//!   to the driver, only by the IOMMU (the guest log);
//! - QEMU ANDs each bus address with the device's `dma_mask` property,
//!   28 bits unless the VM sets it (`scripts/vm.py` sets all 64); and
//!   BAR0 is written 32 bits at a time, so bus addresses stay below 4 GiB
//!   (the guest's memory does, and IOVAs are allocated there first);
//! - QEMU 10.0 only logs a transfer that overruns the 4 KiB buffer, and
//!   then copies anyway (into its own heap): the driver checks bounds.

use kernel::{
    device::Core,
    dma::{
        Coherent,
        DmaAddress,
        DmaMask, //
    },
    io::{
        poll::read_poll_timeout,
        Io, //
    },
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

/// A bound `edu` device's BAR0.
pub(crate) struct Edu<'bound> {
    bar: pci::Bar<'bound, { regs::END }>,
}

impl Edu<'_> {
    /// Waits for the engine to finish the transfer it runs, if any.
    fn wait_idle(&self) -> Result {
        read_poll_timeout(
            || Ok(self.bar.read32(regs::DMA_CMD)),
            |cmd| cmd & regs::RUN == 0,
            Delta::from_millis(1),
            Delta::from_secs(5),
        )
        .map(|_| ())
    }

    /// Copies `len` bytes between bus address `bus` and the device buffer
    /// at `off`, towards memory if `to_ram`; returns once the engine is
    /// done. `EINVAL` if the bytes do not fit the buffer, or `bus` is not
    /// below 4 GiB (only 32-bit register writes reach the device).
    pub(crate) fn dma(&self, bus: DmaAddress, off: usize, len: usize, to_ram: bool) -> Result {
        let end = off.checked_add(len).ok_or(EINVAL)?;
        let bus = u32::try_from(bus).map_err(|_| EINVAL)?;
        if len == 0 || end > BUF_SIZE || bus.checked_add(len as u32 - 1).is_none() {
            return Err(EINVAL);
        }
        self.wait_idle()?;
        let buf = BUF_ADDR as u32 + off as u32;
        let (src, dst, cmd) = if to_ram {
            (buf, bus, regs::RUN | regs::TO_RAM)
        } else {
            (bus, buf, regs::RUN)
        };
        self.bar.write32(src, regs::DMA_SRC);
        self.bar.write32(dst, regs::DMA_DST);
        self.bar.write32(len as u32, regs::DMA_CNT);
        self.bar.write32(cmd, regs::DMA_CMD);
        self.wait_idle()
    }
}

/// The driver's data for a bound device.
pub(crate) struct EduData<'bound> {
    _edu: Edu<'bound>,
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
    fn self_test(pdev: &pci::Device<Core<'_>>, edu: &Edu<'_>) -> Result {
        let mut pattern = [0u8; BUF_SIZE];
        for (i, b) in pattern.iter_mut().enumerate() {
            *b = (i * 7 + 1) as u8;
        }
        let src = Coherent::<u8>::from_slice(pdev.as_ref(), &pattern, GFP_KERNEL)?;
        let dst = Coherent::<u8>::zeroed_slice(pdev.as_ref(), BUF_SIZE, GFP_KERNEL)?;
        edu.dma(src.dma_address(), 0, BUF_SIZE, false)?;
        edu.dma(dst.dma_address(), 0, BUF_SIZE, true)?;
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
    type Data<'bound> = EduData<'bound>;

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
        let bar = pdev.iomap_region_sized::<{ regs::END }>(0, c"rust_hmm_edu")?;
        if bar.read32(regs::ID) & 0xff != 0xed {
            return Err(ENODEV);
        }
        let edu = Edu { bar };
        // The device keeps its state across a rebind: let a transfer left
        // running end, and clear what interrupts it raised.
        edu.wait_idle()?;
        edu.bar.write32(u32::MAX, regs::IRQ_ACK);
        Self::self_test(pdev, &edu)?;
        dev_info!(
            pdev,
            "edu: DMA self-test passed ({} bytes there and back)\n",
            BUF_SIZE
        );
        Ok(EduData { _edu: edu })
    }
}
