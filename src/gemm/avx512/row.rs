//! Row kernels for products with few rows (at most [`SMALL_M`](crate::gemm::SMALL_M)): each row
//! of `c` is a sum of rows of `b` scaled by a row of `a`, over `b` laid out once in `W`-column
//! panels ([`RowPanels`]); and the 16×16 register transpose that lays out a column-major `b`.

use std::arch::x86_64::*;

use ndarray::{ArrayView2, ArrayViewMut2};

use super::Avx512;
use crate::gemm::mat::{MatMut, MatRef};
use crate::gemm::pack::Aligned;

/// Width of the panels of [`RowPanels`]: eight 16-lane accumulators.
const W: usize = 8 * 16;

/// A right-hand side `(K, N)` in `W`-column panels, each `K × W` contiguous and
/// zero-padded: the few-rows kernel then streams it front to back.
pub(crate) struct RowPanels {
    /// Proof that the CPU has AVX-512F, for [`RowPanels::mul`].
    isa: Avx512,
    data: Aligned,
    k: usize,
    n: usize,
}

impl RowPanels {
    /// Lays out `b`.
    pub(crate) fn new(isa: Avx512, b: ArrayView2<'_, f32>) -> RowPanels {
        // SAFETY: calling an AVX-512F function needs a CPU with AVX-512F, which `isa` proves.
        let (data, (k, n)) = unsafe { layout(MatRef::new(b)) };
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

impl Avx512 {
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
        // SAFETY: calling an AVX-512F function needs a CPU with AVX-512F, which `self` proves.
        unsafe { small_m(MatRef::new(a), b, MatMut::new(c), accumulate) }
    }
}

/// The panels of `b`, and its shape.
#[target_feature(enable = "avx512f")]
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
            // Transposing, 16×16 tiles at a time: in registers when the tile is whole and
            // the source contiguous along p, element by element otherwise.
            for q0 in (0..w).step_by(16) {
                for p0 in (0..k).step_by(16) {
                    if b.rs() == 1 && q0 + 16 <= w && p0 + 16 <= k {
                        // SAFETY: `at` needs (p0, j0+q0+i) inside b (p0 < k, j0+q0+i <
                        // j0+w <= n); each load reads 16 values down column j0+q0+i, rows
                        // p0..p0+16 <= k, contiguous (unit row stride); each store writes 16
                        // values at (p0+c)·W + q0 + 16 <= k·W of the panel (q0 + 16 <= w <= W).
                        unsafe {
                            let rows =
                                std::array::from_fn(|i| _mm512_loadu_ps(b.at(p0, j0 + q0 + i)));
                            let cols = transpose16(rows);
                            for (c, col) in cols.iter().enumerate() {
                                let dst = panel.as_mut_ptr().add((p0 + c) * W + q0);
                                _mm512_storeu_ps(dst, *col);
                            }
                        }
                        continue;
                    }
                    for q in q0..(q0 + 16).min(w) {
                        for p in p0..(p0 + 16).min(k) {
                            // SAFETY: `at` needs (p, j0+q) inside b: p < k, j0+q < j0+w <= n.
                            panel[p * W + q] = unsafe { *b.at(p, j0 + q) };
                        }
                    }
                }
            }
        }
    }
    (data, (k, n))
}

/// The transpose of a 16×16 block given as 16 rows: returns its 16 columns.
#[target_feature(enable = "avx512f")]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    let ps = _mm512_castpd_ps;
    let pd = _mm512_castps_pd;
    // Interleave 32-bit elements of row pairs, then 64-bit pairs: u[4g + j] holds, in each
    // 128-bit lane l, column 4l + j of rows 4g..4g+4.
    let t: [__m512; 16] = std::array::from_fn(|i| {
        let (a, b) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_ps(a, b)
        } else {
            _mm512_unpackhi_ps(a, b)
        }
    });
    let u: [__m512; 16] = std::array::from_fn(|i| {
        let g = i / 4;
        let (x, y) = match i % 4 {
            0 | 1 => (t[4 * g], t[4 * g + 2]),
            _ => (t[4 * g + 1], t[4 * g + 3]),
        };
        if i % 2 == 0 {
            ps(_mm512_unpacklo_pd(pd(x), pd(y)))
        } else {
            ps(_mm512_unpackhi_pd(pd(x), pd(y)))
        }
    });
    // Gather the 128-bit lanes: column j + 4l comes from lane l of u[j], u[4 + j], u[8 + j],
    // u[12 + j].
    let mut out = [_mm512_setzero_ps(); 16];
    for j in 0..4 {
        let v0 = _mm512_shuffle_f32x4::<0x88>(u[j], u[4 + j]);
        let v1 = _mm512_shuffle_f32x4::<0xDD>(u[j], u[4 + j]);
        let v2 = _mm512_shuffle_f32x4::<0x88>(u[8 + j], u[12 + j]);
        let v3 = _mm512_shuffle_f32x4::<0xDD>(u[8 + j], u[12 + j]);
        out[j] = _mm512_shuffle_f32x4::<0x88>(v0, v2);
        out[j + 8] = _mm512_shuffle_f32x4::<0xDD>(v0, v2);
        out[j + 4] = _mm512_shuffle_f32x4::<0x88>(v1, v3);
        out[j + 12] = _mm512_shuffle_f32x4::<0xDD>(v1, v3);
    }
    out
}

/// `c (+)= a·b` for few rows of `a` (`m`, depth `b.k`), `b` in panels: each row of `c`, `W`
/// columns at a time in eight accumulators (element by element if `c`'s columns are strided).
///
/// # Panics
///
/// If `a` is not `(m, b.k)` and `c` `(m, b.n)`.
#[target_feature(enable = "avx512f")]
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
            let mut masks = [0u16; 8];
            for (q, mask) in masks.iter_mut().enumerate() {
                let lanes = width.saturating_sub(q * 16).min(16);
                *mask = ((1u32 << lanes) - 1) as u16;
            }
            let mut acc = [_mm512_setzero_ps(); 8];
            if accumulate {
                for q in (0..8).filter(|&q| masks[q] != 0) {
                    // SAFETY: the masked load reads only the lanes of `masks[q]`, columns
                    // j0+16q.. < j0+width <= n of row i (unit column stride, asserted shape);
                    // `add` stays inside the row as j0+16q < n.
                    acc[q] = unsafe { _mm512_maskz_loadu_ps(masks[q], cr.add(j0 + 16 * q)) };
                }
            }
            let mut bp = panel.as_ptr();
            for p in 0..k {
                // SAFETY: `at` needs (i, p) inside a: i < m, p < k; the loads read values
                // p·W + 16q + 16 <= k·W of this panel (a chunk of k·W values).
                unsafe {
                    let s = _mm512_set1_ps(*a.at(i, p));
                    for (q, acc) in acc.iter_mut().enumerate() {
                        let v = _mm512_loadu_ps(bp.add(16 * q));
                        *acc = _mm512_fmadd_ps(s, v, *acc);
                    }
                    bp = bp.add(W);
                }
            }
            for q in (0..8).filter(|&q| masks[q] != 0) {
                // SAFETY: the masked store writes only the lanes of `masks[q]`, columns
                // j0+16q.. < j0+width <= n of row i (unit column stride, exclusively borrowed);
                // `add` stays inside the row as j0+16q < n.
                unsafe { _mm512_mask_storeu_ps(cr.add(j0 + 16 * q), masks[q], acc[q]) };
            }
        }
    }
}
