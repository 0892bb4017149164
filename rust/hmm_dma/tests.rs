// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the DMA maps, on a faux device (no IOMMU: addresses are
//! physical) and real mappings of the test's own address space.

use kernel::prelude::*;

#[kunit_tests(rust_hmm_hmm_dma)]
mod suite {
    use crate::hmm::{
        Fault,
        Mode,
        Range, //
    };
    use crate::hmm_dma::DmaMap;
    use crate::kunit_mm::{
        self,
        PAGE, //
    };
    use kernel::prelude::*;

    /// Windows that are empty, unaligned or wrap are refused. (A device
    /// whose mask does not reach all memory gets `EOPNOTSUPP`; dma-direct
    /// refuses such masks below 32 bits already, and the guest's memory
    /// ends below 4 GiB, so there is no such device to try here.)
    #[test]
    fn new_checks() -> Result {
        let dev = kunit_mm::dma_device()?;
        let d = dev.device();
        // SAFETY: Each map is refused, or dropped with nothing mapped.
        let new = |start, npages| unsafe { DmaMap::new(d, start, npages) };
        assert!(new(0, 0).is_err_and(|e| e == EINVAL));
        assert!(new(8, 1).is_err_and(|e| e == EINVAL));
        assert!(new(usize::MAX & !(PAGE - 1), 2).is_err_and(|e| e == EINVAL));
        assert!(new(PAGE, 4).is_ok());
        Ok(())
    }

    /// Pages map at their physical address, writable, stay mapped across
    /// requests, and each invalidation unmaps exactly its range.
    #[test]
    fn maps_until_invalidated() -> Result {
        let dev = kunit_mm::dma_device()?;
        let mm = kunit_mm::attach()?;
        let addr = kunit_mm::mmap_anon(4, true)?;
        let notifier = kunit_mm::dma_notifier(&mm, &dev, addr, 4)?;
        let mut addrs = [0u64; 4];
        {
            let mut range = Range::new(&notifier, addr, addr + 4 * PAGE, None)?;
            let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
            let (state, pages) = faulted.split();
            let map = state.as_mut().ok_or(EINVAL)?;
            assert!(!map.uses_iova());
            for (i, a) in addrs.iter_mut().enumerate() {
                let page = pages.page(i).ok_or(EFAULT)?;
                let dma = map.map(addr + i * PAGE, page)?;
                assert_eq!(dma.addr(), page.pfn() * PAGE as u64);
                assert_eq!(dma.for_write(), Some(dma.addr()));
                *a = dma.addr();
                // Not for another address.
                let other = addr + ((i + 1) % 4) * PAGE;
                assert!(map.map(other, page).is_err_and(|e| e == EINVAL));
            }
            assert_eq!(map.mapped(), 4);
        }
        // A second request finds the same mappings.
        {
            let mut range = Range::new(&notifier, addr, addr + 4 * PAGE, None)?;
            let mut faulted = range.fault(Fault::Read, Mode::Locked)?;
            let (state, pages) = faulted.split();
            let map = state.as_mut().ok_or(EINVAL)?;
            for (i, a) in addrs.iter().enumerate() {
                assert_eq!(
                    map.map(addr + i * PAGE, pages.page(i).ok_or(EFAULT)?)?
                        .addr(),
                    *a
                );
            }
        }
        kunit_mm::munmap(addr + PAGE, 1)?;
        assert_eq!(notifier.lock().as_ref().map(|m| m.mapped()), Some(3));
        kunit_mm::munmap(addr + 2 * PAGE, 2)?;
        assert_eq!(notifier.lock().as_ref().map(|m| m.mapped()), Some(1));
        kunit_mm::munmap(addr, 2)?;
        assert_eq!(notifier.lock().as_ref().map(|m| m.mapped()), Some(0));
        Ok(())
    }

    /// A page the CPU maps read-only (here the zero page) maps for the
    /// device to read only.
    #[test]
    fn read_only_pages() -> Result {
        let dev = kunit_mm::dma_device()?;
        let mm = kunit_mm::attach()?;
        let addr = kunit_mm::mmap_anon(1, false)?;
        let notifier = kunit_mm::dma_notifier(&mm, &dev, addr, 1)?;
        let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
        let mut faulted = range.fault(Fault::Read, Mode::Locked)?;
        let (state, pages) = faulted.split();
        let map = state.as_mut().ok_or(EINVAL)?;
        let dma = map.map(addr, pages.page(0).ok_or(EFAULT)?)?;
        assert_eq!(dma.for_write(), None);
        drop(faulted);
        kunit_mm::munmap(addr, 1)?;
        assert_eq!(notifier.lock().as_ref().map(|m| m.mapped()), Some(0));
        Ok(())
    }

    /// Pages validated under one notifier's lock do not go into a map that
    /// is not in that notifier's state.
    #[test]
    fn refuses_pages_of_another_state() -> Result {
        let dev = kunit_mm::dma_device()?;
        let mm = kunit_mm::attach()?;
        let addr = kunit_mm::mmap_anon(1, true)?;
        let notifier = kunit_mm::dma_notifier(&mm, &dev, addr, 1)?;
        // SAFETY: Nothing is ever mapped into it (checked).
        let mut loose = unsafe { DmaMap::new(dev.device(), addr, 1)? };
        let mut range = Range::new(&notifier, addr, addr + PAGE, None)?;
        let mut faulted = range.fault(Fault::Write, Mode::Locked)?;
        let (_, pages) = faulted.split();
        let page = pages.page(0).ok_or(EFAULT)?;
        assert!(loose.map(addr, page).is_err_and(|e| e == EINVAL));
        assert_eq!(loose.mapped(), 0);
        drop(faulted);
        kunit_mm::munmap(addr, 1)?;
        Ok(())
    }
}
