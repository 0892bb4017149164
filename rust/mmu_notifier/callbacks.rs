// SPDX-License-Identifier: GPL-2.0

//! The C side: the `mmu_interval_notifier_ops` of an
//! [`IntervalNotifier`], in the single-pass or the two-pass form, and
//! the box that carries the first pass's result to the second.

use super::{
    IntervalNotifier,
    IntervalNotifierOps,
    NotifierRange, //
};
use core::marker::PhantomData;
use kernel::{
    alloc::flags::GFP_NOWAIT,
    bindings,
    prelude::*, //
};

/// The two-pass hand-over: the kernel's link plus the driver's data.
#[repr(C)]
struct FinishBox<T: IntervalNotifierOps> {
    raw: bindings::mmu_interval_notifier_finish,
    data: T::Finish,
    /// The range's: the second pass runs in the same context as the first.
    blockable: bool,
}

pub(super) struct OpsTable<T>(PhantomData<T>);

impl<T: IntervalNotifierOps> OpsTable<T> {
    const OPS: bindings::mmu_interval_notifier_ops = bindings::mmu_interval_notifier_ops {
        invalidate: if T::TWO_PASS {
            None
        } else {
            Some(Self::invalidate)
        },
        invalidate_start: if T::TWO_PASS {
            Some(Self::invalidate_start)
        } else {
            None
        },
        invalidate_finish: if T::TWO_PASS {
            Some(Self::invalidate_finish)
        } else {
            None
        },
    };

    pub(super) const fn build() -> &'static bindings::mmu_interval_notifier_ops {
        &Self::OPS
    }

    /// # Safety
    ///
    /// Called by the kernel for a notifier inserted by `IntervalNotifier<T>`.
    unsafe extern "C" fn invalidate(
        sub: *mut bindings::mmu_interval_notifier,
        range: *const bindings::mmu_notifier_range,
        cur_seq: kernel::ffi::c_ulong,
    ) -> bool {
        // SAFETY: The kernel passes our live notifier and a valid range.
        let (this, range) = unsafe { (IntervalNotifier::<T>::from_raw(sub), &*range) };
        let range = NotifierRange { raw: range };
        match this.start(&range, cur_seq as u64) {
            None => false,
            Some(None) => true,
            Some(Some(finish)) => {
                this.ops.invalidate_finish(finish, range.blockable());
                true
            }
        }
    }

    /// # Safety
    ///
    /// As for `invalidate`; `finish` is valid and `*finish` is null.
    unsafe extern "C" fn invalidate_start(
        sub: *mut bindings::mmu_interval_notifier,
        range: *const bindings::mmu_notifier_range,
        cur_seq: kernel::ffi::c_ulong,
        finish: *mut *mut bindings::mmu_interval_notifier_finish,
    ) -> bool {
        // SAFETY: The kernel passes our live notifier and a valid range.
        let (this, range) = unsafe { (IntervalNotifier::<T>::from_raw(sub), &*range) };
        let range = NotifierRange { raw: range };
        let data = match this.start(&range, cur_seq as u64) {
            None => return false,
            Some(None) => return true,
            Some(Some(data)) => data,
        };
        let blockable = range.blockable();
        let Ok(slot) = KBox::<FinishBox<T>>::new_uninit(GFP_NOWAIT) else {
            // No memory for a second pass: finish now, as the API allows.
            this.ops.invalidate_finish(data, blockable);
            return true;
        };
        let b = KBox::write(
            slot,
            FinishBox::<T> {
                raw: bindings::mmu_interval_notifier_finish {
                    link: bindings::llist_node {
                        next: core::ptr::null_mut(),
                    },
                    notifier: sub,
                },
                data,
                blockable,
            },
        );
        // SAFETY: `finish` is valid for writes; the kernel hands the pointer
        // back to `invalidate_finish` exactly once.
        unsafe { *finish = KBox::into_raw(b).cast() };
        true
    }

    /// # Safety
    ///
    /// `finish` was returned by `invalidate_start` of an `IntervalNotifier<T>`.
    unsafe extern "C" fn invalidate_finish(finish: *mut bindings::mmu_interval_notifier_finish) {
        // SAFETY: `finish` is the first field of a `FinishBox<T>` leaked in
        // `invalidate_start`, handed back once.
        let b = unsafe { KBox::from_raw(finish.cast::<FinishBox<T>>()) };
        // SAFETY: The kernel set `notifier` to our live notifier.
        let this = unsafe { IntervalNotifier::<T>::from_raw(b.raw.notifier) };
        let b = KBox::into_inner(b);
        this.ops.invalidate_finish(b.data, b.blockable);
    }
}
