//! The matrix products of the crate.
//!
//! Every product goes through [`gemm`] (`c = a·b` or `c += a·b`) or, when one right-hand side is
//! multiplied many times (the recurrent weights, once per time step), through a [`Prepared`]
//! operand that is laid out once per sequence.
//!
//! On x86-64 CPUs with AVX-512 or with AVX2 and FMA, `f32` products use the crate's own GEMM
//! ([`avx512`], [`avx2`]): the classic Goto/BLIS blocking (panels of `b` sized for the L1 cache,
//! blocks of `a` for L2) around a register-tile kernel of fused multiply–adds (6×64 on
//! AVX-512, 6×16 on AVX2), and for products with at most [`SMALL_M`] rows a row-times-matrix
//! kernel over `b` laid out once in column panels, which needs no packing of `a`.
//! Big products split their columns over the calling thread's share of
//! [`num_threads`](crate::runtime::num_threads) ([`threading`]).
//! Everything else (`f64`, other CPUs, the `portable` path of [`crate::runtime::Isa`]) uses
//! `ndarray`'s `general_mat_mul` (the `matrixmultiply` crate), with the crate's own row-by-row
//! loops for small row counts.
//!
//! Buffers for packing live in thread-local storage and only grow, so after the first call of a
//! given size no product allocates.
//!
//! # Layout (after `matrixmultiply`)
//!
//! - this file: the safe crate API ([`matmul`], [`gemm`], [`Prepared`]), the portable path, and
//!   the one place that picks the path ([`isa`]) and the one checked cast from `F` to `f32`
//!   ([`f32_view`], [`f32_view_mut`]);
//! - [`mat`]: `MatRef<'a>` / `MatMut<'a>`, the lifetime-carrying `f32` handles the raw code uses;
//! - [`driver`]: the five blocking loops, generic over a [`driver::Kernel`] (an instruction set's
//!   tile sizes and register-tile kernel);
//! - [`pack`]: packing of `a` and `b` into panels, and the aligned buffers;
//! - [`threading`]: the column split of big products over the thread budget, made on `ndarray`
//!   views (for every path);
//! - [`avx512`]: the AVX-512F tile sizes, kernel (`kernel.rs`) and few-rows kernels with the
//!   16×16 transpose (`row.rs`);
//! - [`avx2`]: the same for AVX2 with FMA (6×16 tiles, 64-column row panels): only its kernels
//!   and tile sizes, and one more arm in [`isa`].
//!
//! # The unsafe boundary
//!
//! The safe API turns `F` views into `f32` views only through [`f32_view`] / [`f32_view_mut`]
//! (a `TypeId` check); handles are made only from `f32` views, so they cannot outlive or alias
//! what they borrow; the instruction set is proved by a zero-sized token ([`avx512::Avx512`], [`avx2::Avx2`])
//! made only by feature detection, so the entry points are safe functions. `unsafe` remains
//! inside the kernels, packing and the driver, each block with the callee's precondition argued.

use std::any::TypeId;

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use crate::float::Float;

// The driver, handles, packing and threading serve the instruction sets' kernels; the only
// ones so far are x86-64's, so elsewhere they are left out (not dead code).
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod driver;
#[cfg(target_arch = "x86_64")]
mod kernel;
#[cfg(target_arch = "x86_64")]
mod lanes;
#[cfg(target_arch = "x86_64")]
mod mat;
#[cfg(target_arch = "x86_64")]
mod pack;
#[cfg(target_arch = "x86_64")]
mod row;
#[cfg(test)]
mod tests;
mod threading;
#[cfg(target_arch = "x86_64")]
mod tile;

#[cfg(target_arch = "x86_64")]
use driver::Rhs;

/// Products with at most this many rows and a [`Prepared`] right-hand side use row-by-row
/// kernels: packing costs more than it saves on so few rows.
pub(crate) const SMALL_M: usize = 4;

// The path the crate's own `f32` kernels take, with the proof token of its instruction set
// (the crate's one CPU-feature dispatch, `crate::isa::detected`).
use crate::isa::Detected as Isa;

/// The kernels of the path [`crate::isa::current`] chose, with the proof of its level.
#[inline]
fn isa() -> Isa {
    crate::isa::detected()
}

/// `v` as an `f32` view if `F` is `f32`: with [`f32_view_mut`], the one cast from `F` to `f32`.
#[inline]
fn f32_view<'a, F: 'static>(v: ArrayView2<'a, F>) -> Option<ArrayView2<'a, f32>> {
    if TypeId::of::<F>() != TypeId::of::<f32>() {
        return None;
    }
    let raw = v.raw_view().cast::<f32>();
    // SAFETY: `deref_into_view` needs the raw view's elements valid, initialised values of its
    // type, not written through any other pointer for 'a: they are `v`'s elements, which `v`
    // borrows shared for 'a, and their type F is f32 (same `TypeId`).
    Some(unsafe { raw.deref_into_view::<'a>() })
}

/// `v` as an `f32` view if `F` is `f32` (see [`f32_view`]).
#[cfg(target_arch = "x86_64")]
#[inline]
fn f32_view_mut<'a, F: 'static>(mut v: ArrayViewMut2<'a, F>) -> Option<ArrayViewMut2<'a, f32>> {
    if TypeId::of::<F>() != TypeId::of::<f32>() {
        return None;
    }
    let raw = v.raw_view_mut().cast::<f32>();
    // SAFETY: `deref_into_view_mut` needs the raw view's elements valid, initialised values of
    // its type, not accessed through any other pointer for 'a: they are `v`'s elements, which
    // `v` borrows exclusively for 'a and which `v` (consumed here) no longer reaches, and their
    // type F is f32 (same `TypeId`).
    Some(unsafe { raw.deref_into_view_mut::<'a>() })
}

/// The matrix product the crate uses: `c = a·b`, or `c += a·b` if `accumulate`.
///
/// Shapes: `a (M, K)`, `b (K, N)`, `c (M, N)`, any memory layout. For `f32` on x86-64 CPUs with
/// AVX-512 or AVX2 this is the crate's own GEMM (big products split over the threads, see
/// [`set_num_threads`](crate::runtime::set_num_threads)) unless the
/// [`portable`](crate::runtime::Isa::Portable) path is chosen; otherwise `ndarray`'s
/// `general_mat_mul`.
///
/// # Errors
///
/// [`Error::Shape`](crate::Error::Shape) if the shapes do not fit together.
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// let a = array![[1.0f32, 2.0], [3.0, 4.0]];
/// let b = array![[1.0f32, 0.0, 1.0], [0.0, 1.0, 1.0]];
/// let mut c = ndarray::Array2::zeros((2, 3));
/// recurrent::runtime::matmul(a.view(), b.view(), &mut c.view_mut(), false)?;
/// assert_eq!(c, array![[1.0, 2.0, 3.0], [3.0, 4.0, 7.0]]);
/// # Ok::<(), recurrent::Error>(())
/// ```
pub fn matmul<F: Float>(
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    c: &mut ArrayViewMut2<'_, F>,
    accumulate: bool,
) -> crate::Result<()> {
    let (m, k) = a.dim();
    if b.nrows() != k {
        return Err(crate::error::shape_err(
            "b",
            format!("({k}, N) to match a's {k} columns"),
            b.shape(),
        ));
    }
    if c.dim() != (m, b.ncols()) {
        return Err(crate::error::shape_err(
            "c",
            format!("({m}, {})", b.ncols()),
            c.shape(),
        ));
    }
    gemm(a, b, c, accumulate);
    Ok(())
}

/// `c = a·b` (or `c += a·b` if `accumulate`): `a (M, K)`, `b (K, N)`, `c (M, N)`, any strides.
pub(crate) fn gemm<F: Float>(
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    c: &mut ArrayViewMut2<'_, F>,
    accumulate: bool,
) {
    gemm_on(isa(), a, b, c, accumulate);
}

/// [`gemm`] on the path `isa`.
fn gemm_on<F: Float>(
    isa: Isa,
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    c: &mut ArrayViewMut2<'_, F>,
    accumulate: bool,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert_eq!(b.nrows(), k, "gemm: inner dimensions differ");
    assert_eq!(c.dim(), (m, n), "gemm: output has the wrong shape");
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512(isa) => {
            if let (Some(a), Some(b), Some(c)) =
                (f32_view(a), f32_view(b), f32_view_mut(c.view_mut()))
            {
                isa.gemm(a, Rhs::Raw(b), c, accumulate);
                return;
            }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2(isa) => {
            if let (Some(a), Some(b), Some(c)) =
                (f32_view(a), f32_view(b), f32_view_mut(c.view_mut()))
            {
                isa.gemm(a, Rhs::Raw(b), c, accumulate);
                return;
            }
        }
        Isa::Portable => {}
    }
    // `matrixmultiply` (single-threaded: the crate's budget of threads rules here too).
    let beta = if accumulate { F::one() } else { F::zero() };
    threading::split_columns(a, b, c.view_mut(), 8, |a, b, mut c| {
        general_mat_mul(F::one(), &a, &b, beta, &mut c);
    });
}

/// A right-hand side `b (K, N)` laid out once for many products `a·b` with `a` of about `m`
/// rows: the recurrent weights, multiplied once per time step.
pub(crate) struct Prepared<'a, F: Float> {
    /// The right-hand side as given.
    b: ArrayView2<'a, F>,
    /// The path it was prepared for (a [`Form::Plain`] product uses it too, so one `Prepared`
    /// stays on one path even if [`crate::runtime::set_isa`] changes it meanwhile).
    isa: Isa,
    /// How it is laid out.
    form: Form<F>,
}

/// The layouts of a [`Prepared`] right-hand side.
enum Form<F> {
    /// Multiply `b` as it is.
    Plain,
    /// A row-major copy of `b`, for row-by-row products.
    Dense(Array2<F>),
    /// `b` packed into the AVX-512 kernel's panels (only for `F` = `f32`).
    #[cfg(target_arch = "x86_64")]
    Packed(avx512::Avx512, avx512::PackedB),
    /// `b` in 128-column panels for the AVX-512 few-rows kernel (only for `F` = `f32`).
    #[cfg(target_arch = "x86_64")]
    Panels(avx512::RowPanels),
    /// `b` packed into the AVX2 kernel's panels (only for `F` = `f32`).
    #[cfg(target_arch = "x86_64")]
    Avx2Packed(avx2::Avx2, avx2::PackedB),
    /// `b` in 64-column panels for the AVX2 few-rows kernel (only for `F` = `f32`).
    #[cfg(target_arch = "x86_64")]
    Avx2Panels(avx2::RowPanels),
}

impl<'a, F: Float> Prepared<'a, F> {
    /// Prepares `b` for products with `m` rows.
    pub(crate) fn new(b: ArrayView2<'a, F>, m: usize) -> Self {
        Self::new_on(isa(), b, m)
    }

    /// [`Prepared::new`] for the path `isa`.
    fn new_on(isa: Isa, b: ArrayView2<'a, F>, m: usize) -> Self {
        let form = match (isa, f32_view(b)) {
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512(isa), Some(b32)) => {
                if m <= SMALL_M {
                    Form::Panels(avx512::RowPanels::new(isa, b32))
                } else {
                    Form::Packed(isa, avx512::PackedB::new(b32))
                }
            }
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx2(isa), Some(b32)) => {
                if m <= SMALL_M {
                    Form::Avx2Panels(avx2::RowPanels::new(isa, b32))
                } else {
                    Form::Avx2Packed(isa, avx2::PackedB::new(b32))
                }
            }
            // `Isa::Portable`, or an element type other than f32.
            _ => {
                if m <= SMALL_M {
                    Form::Dense(b.as_standard_layout().into_owned())
                } else {
                    Form::Plain
                }
            }
        };
        Prepared { b, isa, form }
    }

    /// `c = a·b` (or `c += a·b` if `accumulate`).
    pub(crate) fn mul(&self, a: ArrayView2<'_, F>, c: &mut ArrayViewMut2<'_, F>, accumulate: bool) {
        let (m, k) = a.dim();
        let n = self.b.ncols();
        assert_eq!(self.b.nrows(), k, "gemm: inner dimensions differ");
        assert_eq!(c.dim(), (m, n), "gemm: output has the wrong shape");
        match &self.form {
            Form::Plain => gemm_on(self.isa, a, self.b, c, accumulate),
            Form::Dense(dense) => small_m_generic(a, dense, c, accumulate),
            #[cfg(target_arch = "x86_64")]
            Form::Panels(panels) => {
                let (Some(a), Some(c)) = (f32_view(a), f32_view_mut(c.view_mut())) else {
                    unreachable!("a Panels form is only made for f32");
                };
                panels.mul(a, c, accumulate);
            }
            #[cfg(target_arch = "x86_64")]
            Form::Packed(isa, packed) => {
                let (Some(a), Some(c)) = (f32_view(a), f32_view_mut(c.view_mut())) else {
                    unreachable!("a Packed form is only made for f32");
                };
                isa.gemm(a, Rhs::Packed(packed), c, accumulate);
            }
            #[cfg(target_arch = "x86_64")]
            Form::Avx2Panels(panels) => {
                let (Some(a), Some(c)) = (f32_view(a), f32_view_mut(c.view_mut())) else {
                    unreachable!("a Panels form is only made for f32");
                };
                panels.mul(a, c, accumulate);
            }
            #[cfg(target_arch = "x86_64")]
            Form::Avx2Packed(isa, packed) => {
                let (Some(a), Some(c)) = (f32_view(a), f32_view_mut(c.view_mut())) else {
                    unreachable!("a Packed form is only made for f32");
                };
                isa.gemm(a, Rhs::Packed(packed), c, accumulate);
            }
        }
    }
}

/// Row-by-row `c (+)= a·b` for a standard-layout `b`: each output row is a sum of rows of `b`
/// scaled by the entries of a row of `a` (contiguous, so it vectorises without reductions).
fn small_m_generic<F: Float>(
    a: ArrayView2<'_, F>,
    b: &Array2<F>,
    c: &mut ArrayViewMut2<'_, F>,
    accumulate: bool,
) {
    let bs = b.as_slice().expect("a dense operand is standard layout");
    let n = b.ncols();
    for (ar, mut cr) in a.rows().into_iter().zip(c.rows_mut()) {
        if !accumulate {
            cr.fill(F::zero());
        }
        if let Some(cs) = cr.as_slice_mut() {
            for (&ak, br) in ar.iter().zip(bs.chunks_exact(n.max(1))) {
                for (o, &x) in cs.iter_mut().zip(br) {
                    *o += ak * x;
                }
            }
        } else {
            for (&ak, br) in ar.iter().zip(bs.chunks_exact(n.max(1))) {
                cr.iter_mut().zip(br).for_each(|(o, &x)| *o += ak * x);
            }
        }
    }
}
