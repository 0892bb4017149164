// SPDX-License-Identifier: GPL-2.0

//! Rust HMM: heterogeneous memory management for device drivers.
//!
//! The crate has two halves. The safe abstractions a driver builds on live
//! in this directory: [`mmu_notifier`] (interval notifiers and the sequence
//! protocol), [`hmm`] (`hmm_range_fault()`), [`guarded_page`] (pages read
//! under the notifier lock), [`device_pt`] (a multi-level device page
//! table), [`pfn_walk`] (the PTEs of every VMA that maps an object of
//! ours). The sample device that drives them from
//! user space lives in `samples/dmirror`.

use kernel::prelude::*;

pub mod device_exclusive;
pub mod device_pt;
pub mod devmem;
#[path = "../samples/dmirror/mod.rs"]
mod dmirror;
pub(crate) mod ffi;
pub mod guarded_page;
pub mod hmm;
#[cfg(CONFIG_KUNIT = "y")]
mod kunit_mm;
pub mod migrate;
pub mod mmu_notifier;
pub mod pfn_walk;
pub mod sort;

module! {
    type: RustHmm,
    name: "rust_hmm",
    authors: ["The Rust HMM developers"],
    description: "HMM mirroring for device drivers, with a test_hmm-compatible sample device",
    license: "GPL",
}

struct RustHmm {
    _devices: KVec<Pin<KBox<dmirror::DmirrorDevice>>>,
}

impl kernel::Module for RustHmm {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mut devices = KVec::with_capacity(dmirror::NDEVICES, GFP_KERNEL)?;
        for i in 0..dmirror::NDEVICES {
            devices.push(
                KBox::pin_init(dmirror::DmirrorDevice::new(i), GFP_KERNEL)?,
                GFP_KERNEL,
            )?;
        }
        pr_info!("rust_hmm: {} mirror devices ready\n", dmirror::NDEVICES);
        Ok(Self { _devices: devices })
    }
}

impl Drop for RustHmm {
    fn drop(&mut self) {
        // No file of ours is open (each holds the module): nothing of the
        // devices' may be left.
        dmirror::unload_check();
    }
}

#[kunit_tests(rust_hmm_helpers)]
mod tests {
    use crate::ffi;

    /// The C helper object is linked in and answers like the kernel does.
    #[test]
    fn zero_pfn_helpers() {
        // SAFETY: These helpers only compute with PFNs.
        let (zero, is_zero, is_next) = unsafe {
            let z = ffi::rust_hmm_zero_pfn();
            (
                z,
                ffi::rust_hmm_is_zero_pfn(z),
                ffi::rust_hmm_is_zero_pfn(z + 1),
            )
        };
        assert_ne!(zero, 0);
        assert!(is_zero);
        assert!(!is_next);
    }

    /// `Mode::Unlocked` passes its timeout through
    /// `kernel::time::msecs_to_jiffies()`: a second is `HZ` jiffies,
    /// computed here from the kernel's own `HZ_TO_MSEC_*` (the `HZ` of the
    /// bindings is the user-space 100), and no non-zero timeout may round
    /// down to 0, which `hmm_range_fault_unlocked_timeout()` takes as
    /// "retry for ever".
    #[test]
    fn jiffies_conversion() {
        use kernel::bindings::{HZ_TO_MSEC_DEN, HZ_TO_MSEC_NUM};
        use kernel::time::msecs_to_jiffies as to_jiffies;
        let hz = (1000 * HZ_TO_MSEC_DEN / HZ_TO_MSEC_NUM) as usize;
        assert_eq!(to_jiffies(1000), hz);
        assert_eq!(to_jiffies(ffi::HMM_RANGE_DEFAULT_TIMEOUT), hz);
        assert_eq!(to_jiffies(10_000), 10 * hz);
        assert_eq!(to_jiffies(0), 0);
        assert_eq!(to_jiffies(1), 1);
    }
}
