// SPDX-License-Identifier: GPL-2.0

//! In-place sorting that neither allocates nor panics on a bad order.
//!
//! Not core's `sort_unstable()`: it ends in a panic helper
//! (`panic_on_ord_violation`) that the kernel's objtool does not list as
//! noreturn, so on a kernel with the ORC unwinder every caller is reported
//! as falling through to the next function.

use kernel::prelude::*;

/// Sorts `v` in ascending order (heapsort: `O(n log n)`, no allocation, so
/// usable under a spinlock).
///
/// # Examples
///
/// ```
/// use rust_hmm::sort::heapsort;
///
/// let mut pfns = [0x1200u64, 0x1000, 0x1400, 0x1000];
/// heapsort(&mut pfns);
/// assert_eq!(pfns, [0x1000, 0x1000, 0x1200, 0x1400]);
/// ```
pub fn heapsort<T: Ord>(v: &mut [T]) {
    let n = v.len();
    for root in (0..n / 2).rev() {
        sift_down(v, root, n);
    }
    for end in (1..n).rev() {
        v.swap(0, end);
        sift_down(v, 0, end);
    }
}

/// Moves `v[root]` down the max-heap `v[..end]` to where it belongs.
fn sift_down<T: Ord>(v: &mut [T], mut root: usize, end: usize) {
    loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && v[child] < v[child + 1] {
            child += 1;
        }
        if v[root] >= v[child] {
            return;
        }
        v.swap(root, child);
        root = child;
    }
}

#[kunit_tests(rust_hmm_sort)]
mod tests {
    use super::heapsort;
    use kernel::prelude::*;

    #[test]
    fn sorts_any_order() -> Result {
        let mut v = KVec::new();
        let mut x = 12345u64;
        for _ in 0..1000 {
            // xorshift: any order, many duplicates.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(x % 300, GFP_KERNEL)?;
        }
        let sum: u64 = v.iter().sum();
        heapsort(&mut v);
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(v.iter().sum::<u64>(), sum);
        let mut one = [7u64];
        heapsort(&mut one);
        assert_eq!(one, [7]);
        let mut none: [u64; 0] = [];
        heapsort(&mut none);
        let mut rev = [5u64, 4, 3, 2, 1];
        heapsort(&mut rev);
        assert_eq!(rev, [1, 2, 3, 4, 5]);
        Ok(())
    }
}
