// SPDX-License-Identifier: GPL-2.0

//! Folios (`struct folio`): a reference-counted [`Folio`] (held as
//! `ARef<Folio>`), and its lock as a guard, borrowed ([`FolioGuard`]) or
//! owned with a reference ([`LockedFolio`]), so that a folio is unlocked
//! and released exactly once, on every path.
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h),
//! [`include/linux/pagemap.h`](srctree/include/linux/pagemap.h)

use crate::ffi;
use core::ops::Deref;
use core::ptr::NonNull;
use kernel::{
    bindings,
    sync::aref::{
        ARef,
        AlwaysRefCounted, //
    },
    types::Opaque, //
};

/// A folio: one or more physically contiguous pages managed as a unit.
///
/// Only ever reached through a reference: an `ARef<Folio>` owns one
/// reference count, a `&Folio` borrows one that someone else holds.
///
/// # Invariants
///
/// The folio is valid and its reference count is above zero for as long as
/// the `Folio` can be reached.
///
/// # Examples
///
/// A page of our own is a folio of order 0; a reference taken from it
/// keeps it alive after the page is freed by its owner.
///
/// ```
/// use kernel::sync::aref::ARef;
/// use rust_hmm::folio::Folio;
/// # use rust_hmm::kunit_mm;
/// # let page = kernel::page::Page::alloc_page(GFP_KERNEL)?;
/// # let ptr = kunit_mm::page_folio(&page);
/// // SAFETY: `page` keeps the folio referenced while we borrow it.
/// let folio: ARef<Folio> = unsafe { Folio::from_raw(ptr) }.into();
/// assert_eq!((folio.order(), folio.nr_pages()), (0, 1));
/// drop(page);
/// assert_eq!(folio.ref_count(), 1);
/// # Ok::<(), Error>(())
/// ```
#[repr(transparent)]
pub struct Folio(Opaque<bindings::folio>);

// SAFETY: A folio reference may be taken and dropped on any thread.
unsafe impl Send for Folio {}
// SAFETY: Every method takes the folio's own locks or reads it atomically.
unsafe impl Sync for Folio {}

// SAFETY: `folio_get()` and `folio_put()` keep the count that the type
// invariant relies on; the folio is freed only when it reaches zero.
unsafe impl AlwaysRefCounted for Folio {
    fn inc_ref(&self) {
        // SAFETY: The folio is referenced (type invariant).
        unsafe { ffi::folio_get(self.as_raw()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller gives up a reference it owns.
        unsafe { ffi::folio_put(obj.as_ptr().cast()) };
    }
}

impl Folio {
    /// Borrows the folio at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` is a folio that stays referenced for `'a`.
    ///
    /// # Examples
    ///
    /// A reference taken from a borrowed folio outlives the borrow.
    ///
    /// ```
    /// use kernel::sync::aref::ARef;
    /// use rust_hmm::folio::Folio;
    /// # use rust_hmm::kunit_mm;
    /// # let page = kernel::page::Page::alloc_page(GFP_KERNEL)?;
    /// # let ptr = kunit_mm::page_folio(&page);
    /// // SAFETY: `page` holds the folio's only reference until it drops.
    /// let held: ARef<Folio> = unsafe { Folio::from_raw(ptr) }.into();
    /// assert_eq!(held.ref_count(), 2);
    /// drop(page);
    /// assert_eq!(held.ref_count(), 1);
    /// # Ok::<(), Error>(())
    /// ```
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::folio) -> &'a Self {
        // SAFETY: `Folio` is a transparent wrapper of `struct folio`, and
        // the caller keeps it referenced for `'a`.
        unsafe { &*ptr.cast() }
    }

    /// The `struct folio` pointer, for C calls.
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::folio::Folio;
    /// # use rust_hmm::kunit_mm;
    /// # let page = kernel::page::Page::alloc_page(GFP_KERNEL)?;
    /// # let ptr = kunit_mm::page_folio(&page);
    /// // SAFETY: `page` keeps the folio referenced.
    /// let folio = unsafe { Folio::from_raw(ptr) };
    /// assert_eq!(folio.as_raw(), ptr);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn as_raw(&self) -> *mut bindings::folio {
        self.0.get()
    }

    /// The page frame number of the folio's first page.
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::folio::Folio;
    /// # use rust_hmm::kunit_mm;
    /// # let page = kernel::page::Page::alloc_page(GFP_KERNEL)?;
    /// # let ptr = kunit_mm::page_folio(&page);
    /// // SAFETY: `page` keeps the folio referenced.
    /// let folio = unsafe { Folio::from_raw(ptr) };
    /// assert_eq!(folio.pfn(), kunit_mm::page_pfn(&page) as usize);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn pfn(&self) -> usize {
        // SAFETY: The folio is referenced (type invariant).
        unsafe { ffi::folio_pfn(self.as_raw()) }
    }

    /// log2 of the number of pages: 0 for a single page.
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::folio::Folio;
    /// # use rust_hmm::kunit_mm;
    /// # let page = kernel::page::Page::alloc_page(GFP_KERNEL)?;
    /// # let ptr = kunit_mm::page_folio(&page);
    /// // SAFETY: `page` keeps the folio referenced.
    /// assert_eq!(unsafe { Folio::from_raw(ptr) }.order(), 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn order(&self) -> u32 {
        // SAFETY: The folio is referenced (type invariant).
        unsafe { ffi::folio_order(self.as_raw()) }
    }

    /// The number of pages, `1 << order()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::folio::Folio;
    /// # use rust_hmm::kunit_mm;
    /// # let page = kernel::page::Page::alloc_page(GFP_KERNEL)?;
    /// # let ptr = kunit_mm::page_folio(&page);
    /// // SAFETY: `page` keeps the folio referenced.
    /// let folio = unsafe { Folio::from_raw(ptr) };
    /// assert_eq!(folio.nr_pages(), 1 << folio.order());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn nr_pages(&self) -> usize {
        1 << self.order()
    }

    /// The reference count (`folio_ref_count()`): a snapshot, for checks
    /// and statistics only, since other holders may change it at any time.
    ///
    /// # Examples
    ///
    /// ```
    /// use kernel::sync::aref::ARef;
    /// use rust_hmm::folio::Folio;
    /// # use rust_hmm::kunit_mm;
    /// # let page = kernel::page::Page::alloc_page(GFP_KERNEL)?;
    /// # let ptr = kunit_mm::page_folio(&page);
    /// // SAFETY: `page` keeps the folio referenced.
    /// let folio = unsafe { Folio::from_raw(ptr) };
    /// assert_eq!(folio.ref_count(), 1);
    /// let extra: ARef<Folio> = folio.into();
    /// assert_eq!(folio.ref_count(), 2);
    /// drop(extra);
    /// assert_eq!(folio.ref_count(), 1);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn ref_count(&self) -> i32 {
        // SAFETY: The folio is referenced (type invariant).
        unsafe { ffi::folio_ref_count(self.as_raw()) }
    }

    /// Takes the folio lock, sleeping until it is free.
    ///
    /// # Examples
    ///
    /// While the guard lives, nobody else gets the lock.
    ///
    /// ```
    /// use rust_hmm::folio::Folio;
    /// # use rust_hmm::kunit_mm;
    /// # let page = kernel::page::Page::alloc_page(GFP_KERNEL)?;
    /// # let ptr = kunit_mm::page_folio(&page);
    /// // SAFETY: `page` keeps the folio referenced.
    /// let folio = unsafe { Folio::from_raw(ptr) };
    /// let guard = folio.lock();
    /// assert!(folio.try_lock().is_none());
    /// drop(guard);
    /// assert!(folio.try_lock().is_some());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn lock(&self) -> FolioGuard<'_> {
        // SAFETY: The folio is referenced (type invariant); sleeping is
        // allowed wherever a `&self` can be had without a spinlock, which
        // `might_sleep()` in `folio_lock()` checks.
        unsafe { ffi::folio_lock(self.as_raw()) };
        // INVARIANT: We took the lock just now.
        FolioGuard(self)
    }

    /// Takes the folio lock if it is free, without sleeping.
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::folio::Folio;
    /// # use rust_hmm::kunit_mm;
    /// # let page = kernel::page::Page::alloc_page(GFP_KERNEL)?;
    /// # let ptr = kunit_mm::page_folio(&page);
    /// // SAFETY: `page` keeps the folio referenced.
    /// let folio = unsafe { Folio::from_raw(ptr) };
    /// let first = folio.try_lock();
    /// assert!(first.is_some() && folio.try_lock().is_none());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn try_lock(&self) -> Option<FolioGuard<'_>> {
        // SAFETY: The folio is referenced (type invariant).
        let locked = unsafe { ffi::folio_trylock(self.as_raw()) };
        // INVARIANT: Made only when `folio_trylock()` returned true: the
        // lock is ours. (Not `then_some()`, which would build, and drop, a
        // guard of a lock someone else holds.)
        if locked {
            Some(FolioGuard(self))
        } else {
            None
        }
    }
}

/// The lock of a borrowed folio, released on drop (`folio_unlock()`).
///
/// # Invariants
///
/// We hold the lock of the folio.
///
/// # Examples
///
/// See [`Folio::lock`]; the guard derefs to the folio.
///
/// ```
/// use rust_hmm::folio::Folio;
/// # use rust_hmm::kunit_mm;
/// # let page = kernel::page::Page::alloc_page(GFP_KERNEL)?;
/// # let ptr = kunit_mm::page_folio(&page);
/// // SAFETY: `page` keeps the folio referenced.
/// let guard = unsafe { Folio::from_raw(ptr) }.lock();
/// assert_eq!(guard.pfn(), kunit_mm::page_pfn(&page) as usize);
/// # Ok::<(), Error>(())
/// ```
pub struct FolioGuard<'a>(&'a Folio);

impl Deref for FolioGuard<'_> {
    type Target = Folio;

    fn deref(&self) -> &Folio {
        self.0
    }
}

impl Drop for FolioGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: We hold the lock (type invariant).
        unsafe { bindings::folio_unlock(self.0.as_raw()) };
    }
}

/// A locked folio and a reference to it, both ours: dropping it unlocks
/// the folio, then drops the reference. What C hands over as "returned
/// locked and referenced" (`make_device_exclusive()`, the `pages` of a
/// migration).
///
/// # Invariants
///
/// We hold the folio's lock and one of its references.
///
/// # Examples
///
/// ```
/// use rust_hmm::folio::{Folio, LockedFolio};
/// # use rust_hmm::kunit_mm;
/// # let page = kernel::page::Page::alloc_page(GFP_KERNEL)?;
/// # let ptr = kunit_mm::page_folio(&page);
/// // SAFETY: `page` keeps the folio referenced.
/// let folio = unsafe { Folio::from_raw(ptr) };
/// let locked = LockedFolio::new(folio.into());
/// assert!(folio.try_lock().is_none());
/// assert_eq!(locked.ref_count(), 2);
/// drop(locked);
/// assert!(folio.try_lock().is_some());
/// assert_eq!(folio.ref_count(), 1);
/// # Ok::<(), Error>(())
/// ```
pub struct LockedFolio(ARef<Folio>);

impl LockedFolio {
    /// Locks `folio`, sleeping until the lock is free.
    ///
    /// # Examples
    ///
    /// See [`LockedFolio`].
    ///
    /// ```
    /// use rust_hmm::folio::{Folio, LockedFolio};
    /// # use rust_hmm::kunit_mm;
    /// # let page = kernel::page::Page::alloc_page(GFP_KERNEL)?;
    /// # let ptr = kunit_mm::page_folio(&page);
    /// // SAFETY: `page` keeps the folio referenced.
    /// let locked = LockedFolio::new(unsafe { Folio::from_raw(ptr) }.into());
    /// assert_eq!(locked.order(), 0);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(folio: ARef<Folio>) -> Self {
        core::mem::forget(folio.lock());
        // INVARIANT: We took the lock, and `folio` is our reference.
        Self(folio)
    }

    /// Takes over a folio that C returned locked and referenced.
    ///
    /// # Safety
    ///
    /// `ptr` is a folio whose lock and one of whose references the caller
    /// owns and hands over.
    ///
    /// # Examples
    ///
    /// ```
    /// use rust_hmm::folio::{Folio, LockedFolio};
    /// # use rust_hmm::kunit_mm;
    /// # let page = kernel::page::Page::alloc_page(GFP_KERNEL)?;
    /// # let ptr = kunit_mm::page_folio(&page);
    /// // SAFETY: `page` keeps the folio referenced.
    /// let folio = unsafe { Folio::from_raw(ptr) };
    /// let (raw, guard) = (folio.as_raw(), folio.lock());
    /// core::mem::forget((guard, kernel::sync::aref::ARef::from(folio)));
    /// // SAFETY: The lock and the reference just leaked are handed over.
    /// let locked = unsafe { LockedFolio::from_raw(raw) };
    /// assert_eq!(locked.ref_count(), 2);
    /// # Ok::<(), Error>(())
    /// ```
    pub unsafe fn from_raw(ptr: *mut bindings::folio) -> Self {
        // SAFETY: The caller hands over a reference of the folio at `ptr`.
        let folio = unsafe { ARef::from_raw(NonNull::new_unchecked(ptr.cast::<Folio>())) };
        // INVARIANT: The caller hands over the lock as well.
        Self(folio)
    }
}

impl Deref for LockedFolio {
    type Target = Folio;

    fn deref(&self) -> &Folio {
        &self.0
    }
}

impl Drop for LockedFolio {
    fn drop(&mut self) {
        // SAFETY: We hold the lock (type invariant); our reference, dropped
        // after this, keeps the folio alive across the unlock.
        unsafe { bindings::folio_unlock(self.0.as_raw()) };
    }
}
