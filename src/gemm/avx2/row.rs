//! The row kernel for products with few rows (at most [`SMALL_M`](crate::gemm::SMALL_M)): each
//! row of `c` is a sum of rows of `b` scaled by a row of `a`, over `b` laid out once in
//! `W`-column panels ([`RowPanels`]).
//!
//! Measured against the alternative of a row-major copy of `b` and the portable row loop compiled
//! for AVX2 and FMA: the panels took about 0.65 of its time on the batch-1 inference benchmark
//! (LSTM and GRU, hidden 64: 0.138 against 0.218 ms, 0.108 against 0.161 ms, best of 200).

use std::arch::x86_64::*;

use ndarray::{ArrayView2, ArrayViewMut2};

use super::Avx2;
use crate::gemm::mat::{MatMut, MatRef};
use crate::gemm::pack::Aligned;

/// 8-lane accumulators per row of a panel.
const V: usize = 8;
/// Width of the panels of [`RowPanels`]: `V` 8-lane accumulators.
const W: usize = 8 * V;

/// A right-hand side `(K, N)` in `W`-column panels, each `K × W` contiguous and
/// zero-padded: the few-rows kernel then streams it front to back.
pub(crate) struct RowPanels {
    /// Proof that the CPU has AVX2 and FMA, for [`RowPanels::mul`].
    isa: Avx2,
    data: Aligned,
    k: usize,
    n: usize,
}

impl RowPanels {
    /// Lays out `b`.
    pub(crate) fn new(isa: Avx2, b: ArrayView2<'_, f32>) -> RowPanels {
        let (data, (k, n)) = layout(MatRef::new(b));
        RowPanels { isa, data, k, n }
    }

    /// `c = a·b` (or `c += a·b` if `accumulate`) for this `b`.
    ///
    /// # Panics
    ///
    /// If `a` is not `(m, K)` and `c` `(m, N)`.
    pub(crate) fn mul(&self, a: ArrayView2<'_, f32>, c: ArrayViewMut2<'_, f32>, accumulate: bool) {
        self.isa.few_rows(a, self, c, accumulate);
    }
}

impl Avx2 {
    /// `c (+)= a·b` with [`small_m`].
    ///
    /// # Panics
    ///
    /// If `a` is not `(m, b.k)` and `c` `(m, b.n)`.
    fn few_rows(
        self,
        a: ArrayView2<'_, f32>,
        b: &RowPanels,
        c: ArrayViewMut2<'_, f32>,
        accumulate: bool,
    ) {
        // SAFETY: calling an AVX2+FMA function needs a CPU with AVX2 and FMA, which `self`
        // proves.
        unsafe { small_m(MatRef::new(a), b, MatMut::new(c), accumulate) }
    }
}

/// The panels of `b`, and its shape.
fn layout(b: MatRef<'_>) -> (Aligned, (usize, usize)) {
    let (k, n) = (b.rows(), b.cols());
    let mut data = Aligned::zeros(k * n.div_ceil(W) * W);
    for (jb, panel) in data
        .as_mut_slice()
        .chunks_exact_mut((k * W).max(1))
        .enumerate()
    {
        // There are ⌈n/W⌉ panels of k·W values (none if k or n is 0), so j0 < n and w >= 1.
        let j0 = jb * W;
        let w = W.min(n.saturating_sub(j0));
        if b.cs() == 1 {
            for p in 0..k {
                // SAFETY: `at` needs (p, j0) inside b (p < k, j0 < n), and `from_raw_parts`
                // needs `w` readable values nobody writes meanwhile: columns j0..j0+w <= n are
                // contiguous (unit column stride) and b is a shared borrow.
                let src = unsafe { std::slice::from_raw_parts(b.at(p, j0), w) };
                panel[p * W..p * W + w].copy_from_slice(src);
            }
        } else {
            // Column by column, reading down each column (contiguous for a column-major b).
            for q in 0..w {
                for p in 0..k {
                    // SAFETY: `at` needs (p, j0+q) inside b: p < k, j0+q < j0+w <= n.
                    panel[p * W + q] = unsafe { *b.at(p, j0 + q) };
                }
            }
        }
    }
    (data, (k, n))
}

/// The lane mask of the first `lanes` of 8 (`lanes <= 8`), for `maskload` / `maskstore`.
#[target_feature(enable = "avx2,fma")]
fn lane_mask(lanes: usize) -> __m256i {
    let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes as i32), idx)
}

/// `c (+)= a·b` for few rows of `a` (`m`, depth `b.k`), `b` in panels: each row of `c`, `W`
/// columns at a time in `V` accumulators (element by element if `c`'s columns are strided).
///
/// # Panics
///
/// If `a` is not `(m, b.k)` and `c` `(m, b.n)`.
#[target_feature(enable = "avx2,fma")]
fn small_m(a: MatRef<'_>, b: &RowPanels, mut c: MatMut<'_>, accumulate: bool) {
    let (n, k) = (b.n, b.k);
    let m = a.rows();
    assert_eq!(a.cols(), k, "gemm: inner dimensions differ");
    assert_eq!(
        (c.rows(), c.cols()),
        (m, n),
        "gemm: output has the wrong shape"
    );
    if n == 0 {
        return;
    }
    if c.cs() != 1 || k == 0 {
        for i in 0..m {
            for j in 0..n {
                let mut sum = 0.0;
                for p in 0..k {
                    // SAFETY: `at` needs (i, p) inside a: i < m, p < k (asserted shapes).
                    sum +=
                        unsafe { *a.at(i, p) } * b.data.as_slice()[(j / W) * k * W + p * W + j % W];
                }
                // SAFETY: `at` needs (i, j) inside c: i < m, j < n (asserted shape); c is
                // exclusively borrowed, so the write is ours.
                unsafe {
                    let o = c.at(i, j);
                    *o = if accumulate { *o + sum } else { sum };
                }
            }
        }
        return;
    }
    for i in 0..m {
        // SAFETY: `at` needs (i, 0) inside c: i < m, 0 < n.
        let cr = unsafe { c.at(i, 0) };
        for (jb, panel) in b.data.as_slice().chunks_exact((k * W).max(1)).enumerate() {
            let j0 = jb * W;
            let width = W.min(n - j0);
            // Vectors of this panel that hold columns of c, the last one possibly partial.
            let vecs = width.div_ceil(8);
            let tail = lane_mask(width - 8 * (vecs - 1));
            let mut acc = [_mm256_setzero_ps(); V];
            if accumulate {
                for (q, acc) in acc.iter_mut().enumerate().take(vecs) {
                    // SAFETY: columns j0+8q.. < j0+width <= n of row i (unit column stride,
                    // asserted shape): a whole vector when q < vecs-1 (j0+8q+8 <= j0+width), the
                    // lanes of `tail` (columns below j0+width) for the last; `add` stays inside
                    // the row as j0+8q < n.
                    *acc = unsafe {
                        let p = cr.add(j0 + 8 * q);
                        if q + 1 < vecs {
                            _mm256_loadu_ps(p)
                        } else {
                            _mm256_maskload_ps(p, tail)
                        }
                    };
                }
            }
            let mut bp = panel.as_ptr();
            for p in 0..k {
                // SAFETY: `at` needs (i, p) inside a: i < m, p < k; the loads read values
                // p·W + 8q + 8 <= k·W of this panel (a chunk of k·W values).
                unsafe {
                    let s = _mm256_broadcast_ss(&*a.at(i, p));
                    for (q, acc) in acc.iter_mut().enumerate() {
                        let v = _mm256_loadu_ps(bp.add(8 * q));
                        *acc = _mm256_fmadd_ps(s, v, *acc);
                    }
                    bp = bp.add(W);
                }
            }
            for (q, &acc) in acc.iter().enumerate().take(vecs) {
                // SAFETY: as for the loads above: whole vectors inside row i's first n columns,
                // the last one masked to columns below j0+width <= n; c is exclusively borrowed.
                unsafe {
                    let p = cr.add(j0 + 8 * q);
                    if q + 1 < vecs {
                        _mm256_storeu_ps(p, acc);
                    } else {
                        _mm256_maskstore_ps(p, tail, acc);
                    }
                }
            }
        }
    }
}
