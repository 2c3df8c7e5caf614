//! The `f32` GEMM for CPUs with AVX2 and FMA: tile sizes (matrixmultiply's `archparam`), the
//! register-tile kernel ([`kernel`]), the few-rows kernel ([`row`]) and the entry points.
//!
//! [`Avx2`] is a zero-sized proof that the CPU has AVX2 and FMA: it is made only by
//! [`Avx2::detect`], so the entry points that take it are safe functions. Blocking, packing and
//! threading are the shared [`super::driver`], [`super::pack`] and [`super::threading`]; only
//! the kernels and the tile sizes are this folder's (as in [`super::avx512`]).

mod kernel;
mod row;

use ndarray::{ArrayView2, ArrayViewMut2};

use super::driver::{self, Kernel, Rhs};
use super::mat::MatMut;
use super::{pack, threading};

pub(crate) use row::RowPanels;

/// Rows of the register tile.
pub(crate) const MR: usize = 6;
/// Columns of the register tile (`NV` 8-lane vectors). 6×16 (12 accumulators, 2 vector loads
/// and 6 broadcasts per 12 multiply–adds) measured fastest here, on one core of a Zen 4 (whose
/// AVX-512 runs on 256-bit units): a 2048³ product at 87–95 GFLOP/s, about 0.95 of the AVX-512
/// 6×64 kernel beside it, against 55 for 8×8 (8 accumulators do not cover the multiply–add
/// latency) and 41 for 4×24 (this kernel at 3 vectors per row; the cause was not looked into).
pub(crate) const NR: usize = 8 * NV;
/// 8-lane vectors per row of the register tile.
const NV: usize = 2;
/// Depth of a packed block (a `KC × NR` panel of `b` is 16 KiB, half of L1).
const KC: usize = 256;
/// Rows of a block of `a` (`MC × KC`, about 256 KiB) kept in L2, a multiple of `MR`.
const MC: usize = 42 * MR;
/// Columns of a packed block of `b`.
const NC: usize = 2048;

/// Proof that the CPU has AVX2 and FMA (made only by [`Avx2::detect`]), and the AVX2
/// [`Kernel`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// `Some` if the CPU has AVX2 and FMA.
    #[inline]
    pub(crate) fn detect() -> Option<Avx2> {
        (std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"))
            .then_some(Avx2(()))
    }

    /// `c = a·b` (or `c += a·b` if `accumulate`): `a (m, k)`, `b (k, n)`, `c (m, n)`, any
    /// strides. A big product with an unpacked `b` splits its columns over the
    /// calling thread's budget of threads.
    ///
    /// # Panics
    ///
    /// If the shapes do not fit together.
    pub(crate) fn gemm(
        self,
        a: ArrayView2<'_, f32>,
        b: Rhs<'_, Avx2>,
        c: ArrayViewMut2<'_, f32>,
        accumulate: bool,
    ) {
        match b {
            Rhs::Raw(b) => threading::split_columns(a, b, c, NR, |a, b, c| {
                // SAFETY: calling an AVX2+FMA function needs a CPU with AVX2 and FMA, which
                // `self` proves.
                unsafe { gemm_on_this_thread(a, Rhs::Raw(b), c, accumulate) }
            }),
            // SAFETY: as above.
            Rhs::Packed(p) => unsafe { gemm_on_this_thread(a, Rhs::Packed(p), c, accumulate) },
        }
    }
}

/// A right-hand side packed once in this kernel's panels.
pub(crate) type PackedB = pack::PackedB<Avx2>;

impl Kernel for Avx2 {
    const MR: usize = MR;
    const NR: usize = NR;
    const KC: usize = KC;
    const MC: usize = MC;
    const NC: usize = NC;

    type Rows = [*const f32; MR];

    #[inline(always)]
    fn rows(f: impl FnMut(usize) -> *const f32) -> Self::Rows {
        std::array::from_fn(f)
    }

    #[inline(always)]
    unsafe fn tile<const PACKED: bool>(
        kc: usize,
        a: Self::Rows,
        b: *const f32,
        c: MatMut<'_>,
        mr: usize,
        nr: usize,
        accumulate: bool,
    ) {
        // SAFETY: `kernel` has the same contract as `tile`, which our caller meets.
        unsafe { kernel::kernel::<PACKED>(kc, a, b, c, mr, nr, accumulate) }
    }
}

/// The whole product on the calling thread, the driver compiled for AVX2 and FMA.
///
/// # Panics
///
/// If the shapes do not fit together.
#[target_feature(enable = "avx2,fma")]
fn gemm_on_this_thread(
    a: ArrayView2<'_, f32>,
    b: Rhs<'_, Avx2>,
    c: ArrayViewMut2<'_, f32>,
    accumulate: bool,
) {
    // The closure inherits this function's target features, so `run` and the kernel compile
    // (and inline) for AVX2 and FMA.
    driver::with_buffers(|bufs| {
        // SAFETY: `run` needs a CPU with AVX2 and FMA (the `Avx2` kernel's instructions); this
        // function is compiled for them, so it only runs on such a CPU.
        unsafe { driver::run::<Avx2>(a, b, c, accumulate, bufs) }
    })
}
