//! Threading: a big product splits the columns of `b` and `c` over two threads.
//!
//! The split is made on the `ndarray` views (`split_at`), before any raw handle exists: each
//! thread gets its own `ArrayViewMut2` of `c`, so the borrow checker, not an `unsafe impl Send`,
//! shows that the two halves write disjoint memory.

use ndarray::{ArrayView2, ArrayViewMut2, Axis};

/// Multiply–adds above which a product splits its columns over two threads.
/// (Lower in the crate's unit tests, so that their small products take the threaded path.)
const PARALLEL_WORK: usize = if cfg!(test) { 1 << 20 } else { 1 << 24 };

/// Runs `product(a, b, c)` for `c (m, n) (+)= a (m, k) · b (k, n)`: on two threads, each on a
/// share of the columns (the left one a multiple of `step` wide), if the product is big enough
/// and the calling thread's budget ([`crate::threads::budget`]) allows two; whole on the calling thread otherwise.
pub(crate) fn split_columns<P>(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    c: ArrayViewMut2<'_, f32>,
    step: usize,
    product: P,
) where
    P: Fn(ArrayView2<'_, f32>, ArrayView2<'_, f32>, ArrayViewMut2<'_, f32>) + Sync,
{
    let (m, k) = a.dim();
    let n = b.ncols();
    let work = m.saturating_mul(n).saturating_mul(k);
    if work >= PARALLEL_WORK && n >= 2 * step && crate::threads::budget() >= 2 {
        let half = (n / 2).div_ceil(step) * step;
        let (b_left, b_right) = b.split_at(Axis(1), half);
        let (c_left, c_right) = c.split_at(Axis(1), half);
        let product = &product;
        crate::threads::join(
            true,
            move || product(a, b_left, c_left),
            move || product(a, b_right, c_right),
        );
    } else {
        product(a, b, c);
    }
}
