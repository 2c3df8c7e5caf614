//! Threading: a big product splits the columns of `b` and `c` over the calling thread's budget of
//! threads (halves, recursively, on the crate's worker pool; see [`crate::threads`]).
//!
//! The split is made on the `ndarray` views (`split_at`), before any raw handle exists: each
//! thread gets its own `ArrayViewMut2` of `c`, so the borrow checker, not an `unsafe impl Send`,
//! shows that the parts write disjoint memory. Every output value is computed the same way
//! whatever the split (the depth is walked in the same order), so the split does not change
//! results.

use ndarray::{ArrayView2, ArrayViewMut2, Axis};

/// Multiply–adds above which a product splits its columns in two (each half again, while the
/// budget allows).
/// (Lower in the crate's unit tests, so that their small products take the threaded path.)
const PARALLEL_WORK: usize = if cfg!(test) { 1 << 20 } else { 1 << 24 };

/// Runs `product(a, b, c)` for `c (m, n) (+)= a (m, k) · b (k, n)`: split in column halves (the
/// left one a multiple of `step` wide) run in parallel, as long as a half is big enough and the
/// calling thread's budget ([`crate::threads::budget`]) allows two; whole on the calling thread
/// otherwise.
pub(crate) fn split_columns<T, P>(
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    c: ArrayViewMut2<'_, T>,
    step: usize,
    product: P,
) where
    T: Send + Sync,
    P: Fn(ArrayView2<'_, T>, ArrayView2<'_, T>, ArrayViewMut2<'_, T>) + Sync,
{
    split(a, b, c, step.max(1), &product);
}

fn split<T, P>(
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    c: ArrayViewMut2<'_, T>,
    step: usize,
    product: &P,
) where
    T: Send + Sync,
    P: Fn(ArrayView2<'_, T>, ArrayView2<'_, T>, ArrayViewMut2<'_, T>) + Sync,
{
    let (m, k) = a.dim();
    let n = b.ncols();
    let work = m.saturating_mul(n).saturating_mul(k);
    if work >= PARALLEL_WORK && n >= 2 * step && crate::threads::budget() >= 2 {
        let half = (n / 2).div_ceil(step) * step;
        let (b_left, b_right) = b.split_at(Axis(1), half);
        let (c_left, c_right) = c.split_at(Axis(1), half);
        crate::threads::join(
            true,
            move || split(a, b_left, c_left, step, product),
            move || split(a, b_right, c_right, step, product),
        );
    } else {
        product(a, b, c);
    }
}
