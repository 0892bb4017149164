// SPDX-License-Identifier: GPL-2.0

//! Ranges of a [`GpuSvm`] (`drm_gpusvm_range`): how they are sized, what
//! the lock keeps of each, and the handle a fault holds ([`SvmRange`]).

use super::{
    GpuSvm,
    GpuSvmOps,
    Notifier, //
};
use crate::hmm;
use crate::migrate::PagemapOwner;
use kernel::{
    prelude::*,
    rbtree::RBTreeNodeReservation,
    sync::Arc, //
};

/// The largest of `sizes` (descending) whose naturally aligned block
/// around `addr` lies inside `fit` and passes `free`
/// (`drm_gpusvm_range_chunk_size()`).
pub(crate) fn chunk_for(
    addr: usize,
    sizes: &[usize],
    fit: core::ops::Range<usize>,
    free: impl Fn(usize, usize) -> bool,
) -> Option<(usize, usize)> {
    sizes.iter().find_map(|&size| {
        let start = addr & !(size - 1);
        let end = start.checked_add(size)?;
        (start >= fit.start && end <= fit.end && free(start, end)).then_some((start, end))
    })
}

/// What the notifier lock keeps of a range.
pub(crate) struct RangeEntry {
    pub(super) start: usize,
    pub(super) end: usize,
    /// An unmap reached it: it waits for the garbage collector.
    pub(super) unmapped: bool,
    /// That unmap did not cover all of it.
    pub(super) partial: bool,
    /// The node that puts it on the garbage list, allocated with the range
    /// so that the callback need not allocate.
    pub(super) gc: Option<RBTreeNodeReservation<usize, ()>>,
}

impl RangeEntry {
    pub(super) fn new(start: usize, end: usize, gc: RBTreeNodeReservation<usize, ()>) -> Self {
        Self {
            start,
            end,
            unmapped: false,
            partial: false,
            gc: Some(gc),
        }
    }

    pub(super) fn info(&self) -> RangeInfo {
        RangeInfo {
            start: self.start,
            end: self.end,
            unmapped: self.unmapped,
            partial: self.partial,
        }
    }
}

/// What a range is, as seen under the lock.
///
/// # Examples
///
/// ```
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// let addr = kunit_mm::mmap_aligned(16, 64 * 1024)?;
/// let svm = kunit_mm::svm(&mm)?;
/// drop(svm.range_find_or_insert(addr)?);
/// kunit_mm::munmap(addr + 15 * PAGE, 1)?;
/// let info = svm.lock().range_at(addr).ok_or(EINVAL)?;
/// assert_eq!((info.start, info.end), (addr, addr + 16 * PAGE));
/// assert!(info.unmapped && info.partial);
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeInfo {
    /// First address.
    pub start: usize,
    /// End (exclusive).
    pub end: usize,
    /// An unmap reached it; the garbage collector will remove it.
    pub unmapped: bool,
    /// That unmap covered only part of it.
    pub partial: bool,
}

/// A range of a [`GpuSvm`] to fault, with its chunk's notifier held.
///
/// The notifier stays inserted while this lives, but may go out of use
/// (the collector removed the range and then the notifier): a fault
/// through it then fails with `EAGAIN`, and the driver asks
/// [`GpuSvm::range_find_or_insert`] again.
///
/// # Examples
///
/// A device fault: find the range, fault its pages, install them under the
/// lock that validated them.
///
/// ```
/// use rust_hmm::hmm::{Fault, Mode};
/// # use rust_hmm::kunit_mm::{self, PAGE};
/// # let mm = kunit_mm::attach()?;
/// let addr = kunit_mm::mmap_aligned(16, 64 * 1024)?;
/// kunit_mm::write_user(addr, b"svm")?;
/// let svm = kunit_mm::svm(&mm)?;
/// let range = svm.range_find_or_insert(addr)?;
/// assert_eq!(range.pages(), 16);
/// let mut pages = range.hmm_range(None)?;
/// let mut faulted = pages.fault(Fault::Read, Mode::Locked)?;
/// let (_state, pfns) = faulted.split();
/// let mut buf = [0u8; 3];
/// pfns.page(0).ok_or(EFAULT)?.read(0, &mut buf)?;
/// assert_eq!(&buf, b"svm");
/// # Ok::<(), Error>(())
/// ```
pub struct SvmRange<'a, T: GpuSvmOps> {
    svm: &'a GpuSvm<T>,
    notifier: Arc<Notifier<T>>,
    start: usize,
    end: usize,
}

impl<'a, T: GpuSvmOps> SvmRange<'a, T> {
    pub(super) fn new(
        svm: &'a GpuSvm<T>,
        notifier: Arc<Notifier<T>>,
        start: usize,
        end: usize,
    ) -> Self {
        Self {
            svm,
            notifier,
            start,
            end,
        }
    }

    /// First address.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// let addr = kunit_mm::mmap_aligned(16, 64 * 1024)?;
    /// let svm = kunit_mm::svm(&mm)?;
    /// assert_eq!(svm.range_find_or_insert(addr + 9 * PAGE)?.start(), addr);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn start(&self) -> usize {
        self.start
    }

    /// End (exclusive).
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// let addr = kunit_mm::mmap_aligned(16, 64 * 1024)?;
    /// let svm = kunit_mm::svm(&mm)?;
    /// assert_eq!(svm.range_find_or_insert(addr)?.end(), addr + 16 * PAGE);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn end(&self) -> usize {
        self.end
    }

    /// Pages in the range.
    ///
    /// # Examples
    ///
    /// A mapping of three pages holds no 64 KiB block: single pages.
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// let addr = kunit_mm::mmap_anon(3, true)?;
    /// let svm = kunit_mm::svm(&mm)?;
    /// assert_eq!(svm.range_find_or_insert(addr + PAGE)?.pages(), 1);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn pages(&self) -> usize {
        (self.end - self.start) >> kernel::page::PAGE_SHIFT
    }

    /// The SVM.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// let svm = kunit_mm::svm(&mm)?;
    /// let range = svm.range_find_or_insert(addr)?;
    /// assert!(core::ptr::eq(range.svm(), &*svm));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn svm(&self) -> &'a GpuSvm<T> {
        self.svm
    }

    /// The notifier of the range's chunk: for
    /// [`crate::device_exclusive::exclusive_session`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// # let addr = kunit_mm::mmap_anon(1, true)?;
    /// let svm = kunit_mm::svm(&mm)?;
    /// let range = svm.range_find_or_insert(addr)?;
    /// let (first, last) = range.notifier().interval();
    /// assert!(first <= range.start() && range.end() - 1 <= last);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn notifier(&self) -> &Notifier<T> {
        &self.notifier
    }

    /// A [`hmm::Range`] over the whole range, validated by its chunk's
    /// notifier under the SVM's lock (`drm_gpusvm_range_get_pages()`).
    /// `owner` names the device-private memory to report rather than
    /// fault back.
    ///
    /// # Examples
    ///
    /// An unmap of the range between the request and its fault: the fault
    /// fails (nothing is mapped there any more).
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// let addr = kunit_mm::mmap_anon(1, true)?;
    /// let svm = kunit_mm::svm(&mm)?;
    /// let range = svm.range_find_or_insert(addr)?;
    /// let mut request = range.hmm_range(None)?;
    /// kunit_mm::munmap(addr, 1)?;
    /// assert_eq!(request.fault(Fault::Read, Mode::Locked).err(), Some(EFAULT));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn hmm_range(&self, owner: Option<PagemapOwner>) -> Result<hmm::Range<'_, Notifier<T>>> {
        hmm::Range::new(&*self.notifier, self.start, self.end, owner)
    }

    /// A [`hmm::Range`] over `[start, end)`, which must lie inside the
    /// range (`EINVAL` otherwise): for a device that faults less than the
    /// whole range at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::hmm::{Fault, Mode};
    /// # use rust_hmm::kunit_mm::{self, PAGE};
    /// # let mm = kunit_mm::attach()?;
    /// let addr = kunit_mm::mmap_aligned(16, 64 * 1024)?;
    /// let svm = kunit_mm::svm(&mm)?;
    /// let range = svm.range_find_or_insert(addr)?;
    /// let mut two = range.hmm_subrange(addr + PAGE, addr + 3 * PAGE, None)?;
    /// assert_eq!(two.fault(Fault::Write, Mode::Locked)?.pfns().len(), 2);
    /// assert!(range.hmm_subrange(addr, addr + 17 * PAGE, None).is_err());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn hmm_subrange(
        &self,
        start: usize,
        end: usize,
        owner: Option<PagemapOwner>,
    ) -> Result<hmm::Range<'_, Notifier<T>>> {
        if start < self.start || end > self.end {
            return Err(EINVAL);
        }
        hmm::Range::new(&*self.notifier, start, end, owner)
    }
}
