//! The few-rows kernel, written once over [`Lanes`], for products with few rows (at most
//! [`SMALL_M`](crate::gemm::SMALL_M)): each row of `c` is a sum of rows of `b` scaled by a row
//! of `a`, over `b` laid out once in `W`-column panels ([`RowPanels`]), `W` = eight vectors.
//!
//! Measured against the alternative of a row-major copy of `b` and the portable row loop compiled
//! for AVX2 and FMA: the panels took about 0.65 of its time on the batch-1 inference benchmark
//! (LSTM and GRU, hidden 64: 0.138 against 0.218 ms, 0.108 against 0.161 ms, best of 200).

use ndarray::{ArrayView2, ArrayViewMut2};

use super::lanes::Lanes;
use super::mat::{MatMut, MatRef};
use super::pack::Aligned;

/// Accumulators per row of a panel.
const V: usize = 8;

/// The instruction set's entry points to the kernels below, compiled with its target features
/// (written by `isa_gemm!`).
pub(crate) trait RowKernels: Lanes {
    /// [`lay_out`] compiled for this instruction set.
    fn lay_out(self, b: MatRef<'_>) -> (Aligned, (usize, usize));
    /// [`small_m`] compiled for this instruction set.
    fn few_rows(self, a: MatRef<'_>, b: &RowPanels<Self>, c: MatMut<'_>, accumulate: bool);
}

/// A right-hand side `(K, N)` in `W`-column panels, each `K × W` contiguous and
/// zero-padded: the few-rows kernel then streams it front to back.
pub(crate) struct RowPanels<L> {
    /// Proof that the CPU has the instruction set, for [`RowPanels::mul`].
    isa: L,
    data: Aligned,
    k: usize,
    n: usize,
}

impl<L: RowKernels> RowPanels<L> {
    /// Lays out `b`.
    pub(crate) fn new(isa: L, b: ArrayView2<'_, f32>) -> RowPanels<L> {
        let (data, (k, n)) = isa.lay_out(MatRef::new(b));
        RowPanels { isa, data, k, n }
    }

    /// `c = a·b` (or `c += a·b` if `accumulate`) for this `b`.
    ///
    /// # Panics
    ///
    /// If `a` is not `(m, K)` and `c` `(m, N)`.
    pub(crate) fn mul(&self, a: ArrayView2<'_, f32>, c: ArrayViewMut2<'_, f32>, accumulate: bool) {
        self.isa
            .few_rows(MatRef::new(a), self, MatMut::new(c), accumulate);
    }
}

/// The panels of `b`, and its shape.
#[inline(always)]
pub(crate) fn lay_out<L: Lanes>(l: L, b: MatRef<'_>) -> (Aligned, (usize, usize)) {
    let w = V * L::N;
    let t = L::T;
    let (k, n) = (b.rows(), b.cols());
    let mut data = Aligned::zeros(k * n.div_ceil(w) * w);
    for (jb, panel) in data
        .as_mut_slice()
        .chunks_exact_mut((k * w).max(1))
        .enumerate()
    {
        // There are ⌈n/W⌉ panels of k·W values (none if k or n is 0), so j0 < n and cols >= 1.
        let j0 = jb * w;
        let cols = w.min(n.saturating_sub(j0));
        if b.cs() == 1 {
            for p in 0..k {
                // SAFETY: `at` needs (p, j0) inside b (p < k, j0 < n), and `from_raw_parts`
                // needs `cols` readable values nobody writes meanwhile: columns j0..j0+cols <= n
                // are contiguous (unit column stride) and b is a shared borrow.
                let src = unsafe { std::slice::from_raw_parts(b.at(p, j0), cols) };
                panel[p * w..p * w + cols].copy_from_slice(src);
            }
            continue;
        }
        if t == 0 {
            // Column by column, reading down each column (contiguous for a column-major b).
            for q in 0..cols {
                for p in 0..k {
                    // SAFETY: `at` needs (p, j0+q) inside b: p < k, j0+q < j0+cols <= n.
                    panel[p * w + q] = unsafe { *b.at(p, j0 + q) };
                }
            }
            continue;
        }
        // T×T blocks at a time: turned in registers when the block is whole and the source
        // contiguous down its columns, element by element otherwise.
        for q0 in (0..cols).step_by(t) {
            for p0 in (0..k).step_by(t) {
                if b.rs() == 1 && q0 + t <= cols && p0 + t <= k {
                    // SAFETY: `at` needs (p0, j0+q0) inside b (p0 < k, j0+q0 < j0+cols <= n);
                    // columns j0+q0..j0+q0+T are cs apart, each T contiguous values of rows
                    // p0..p0+T <= k (unit row stride); the destination rows p0..p0+T of the
                    // panel hold W >= q0 + T values from column q0.
                    unsafe {
                        let dst = panel.as_mut_ptr().add(p0 * w + q0);
                        l.transpose(b.at(p0, j0 + q0), b.cs(), dst, w);
                    }
                    continue;
                }
                for q in q0..(q0 + t).min(cols) {
                    for p in p0..(p0 + t).min(k) {
                        // SAFETY: `at` needs (p, j0+q) inside b: p < k, j0+q < j0+cols <= n.
                        panel[p * w + q] = unsafe { *b.at(p, j0 + q) };
                    }
                }
            }
        }
    }
    (data, (k, n))
}

/// `c (+)= a·b` for few rows of `a` (`m`, depth `b.k`), `b` in panels: each row of `c`, `W`
/// columns at a time in `V` accumulators (element by element if `c`'s columns are strided).
///
/// # Panics
///
/// If `a` is not `(m, b.k)` and `c` `(m, b.n)`.
#[inline(always)]
pub(crate) fn small_m<L: Lanes>(
    l: L,
    a: MatRef<'_>,
    b: &RowPanels<L>,
    mut c: MatMut<'_>,
    accumulate: bool,
) {
    let lanes = L::N;
    let w = V * lanes;
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
                        unsafe { *a.at(i, p) } * b.data.as_slice()[(j / w) * k * w + p * w + j % w];
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
        for (jb, panel) in b.data.as_slice().chunks_exact((k * w).max(1)).enumerate() {
            let j0 = jb * w;
            let width = w.min(n - j0);
            // Vectors of this panel that hold columns of c, the last one possibly partial.
            let vecs = width.div_ceil(lanes);
            let tail = l.first(width - lanes * (vecs - 1));
            let mut acc = [l.zero(); V];
            if accumulate {
                for (q, acc) in acc.iter_mut().enumerate().take(vecs) {
                    // SAFETY: columns j0+N·q.. < j0+width <= n of row i (unit column stride,
                    // asserted shape): a whole vector when q < vecs-1 (j0+N·q+N <= j0+width),
                    // the lanes of `tail` (columns below j0+width) for the last; `add` stays
                    // inside the row as j0+N·q < n.
                    *acc = unsafe {
                        let p = cr.add(j0 + lanes * q);
                        if q + 1 < vecs {
                            l.load(p)
                        } else {
                            l.load_first(p, tail)
                        }
                    };
                }
            }
            let mut bp = panel.as_ptr();
            for p in 0..k {
                // SAFETY: `at` needs (i, p) inside a: i < m, p < k; the loads read values
                // p·W + N·q + N <= k·W of this panel (a chunk of k·W values).
                unsafe {
                    let s = l.splat(a.at(i, p));
                    for (q, acc) in acc.iter_mut().enumerate() {
                        let v = l.load(bp.add(lanes * q));
                        *acc = l.fmadd(s, v, *acc);
                    }
                    bp = bp.add(w);
                }
            }
            for (q, &acc) in acc.iter().enumerate().take(vecs) {
                // SAFETY: as for the loads above: whole vectors inside row i's first n columns,
                // the last one masked to columns below j0+width <= n; c is exclusively borrowed.
                unsafe {
                    let p = cr.add(j0 + lanes * q);
                    if q + 1 < vecs {
                        l.store(p, acc);
                    } else {
                        l.store_first(p, tail, acc);
                    }
                }
            }
        }
    }
}
