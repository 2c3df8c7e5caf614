//! The `f32` GEMM for CPUs with AVX-512F: tile sizes (matrixmultiply's `archparam`), the
//! register-tile kernel ([`kernel`]), the few-rows kernels ([`row`]) and the entry points.
//!
//! [`Avx512`] is a zero-sized proof that the CPU has AVX-512F: it is made only by
//! [`Avx512::detect`], so the entry points that take it are safe functions.
//!
//! A second instruction set (AVX2, say) is a sibling folder with the same shape: a proof type
//! with `detect`, its tile sizes and a `kernel.rs`, and an `impl Kernel` that hands both to the
//! shared [`super::driver`]; packing and threading are shared. [`super::isa`] then tries it after
//! AVX-512.

mod kernel;
mod row;

use ndarray::{ArrayView2, ArrayViewMut2};

use super::driver::{self, Kernel, Rhs};
use super::mat::MatMut;
use super::{pack, threading};

pub(crate) use row::RowPanels;

/// Rows of the register tile.
pub(crate) const MR: usize = 6;
/// Columns of the register tile (`NV` 16-lane vectors). 6×64 (24 accumulators, 4 vector loads
/// and 6 broadcasts per 24 multiply–adds) measured faster here than 8×32, 12×32 and 8×48.
pub(crate) const NR: usize = 16 * NV;
/// 16-lane vectors per row of the register tile.
const NV: usize = 4;
/// Depth of a packed block (a `KC × NR` panel of `b` is 64 KiB; 128 and 192 measured no
/// better).
const KC: usize = 256;
/// Rows of a block of `a` (`MC × KC`, about 256 KiB) kept in L2, a multiple of `MR`.
const MC: usize = 42 * MR;
/// Columns of a packed block of `b`.
const NC: usize = 2048;

/// Proof that the CPU has AVX-512F (made only by [`Avx512::detect`]), and the AVX-512
/// [`Kernel`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512(());

impl Avx512 {
    /// `Some` if the CPU has AVX-512F.
    #[inline]
    pub(crate) fn detect() -> Option<Avx512> {
        std::is_x86_feature_detected!("avx512f").then_some(Avx512(()))
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
        b: Rhs<'_, Avx512>,
        c: ArrayViewMut2<'_, f32>,
        accumulate: bool,
    ) {
        match b {
            Rhs::Raw(b) => threading::split_columns(a, b, c, NR, |a, b, c| {
                // SAFETY: calling an AVX-512F function needs a CPU with AVX-512F, which `self`
                // proves.
                unsafe { gemm_on_this_thread(a, Rhs::Raw(b), c, accumulate) }
            }),
            // SAFETY: as above.
            Rhs::Packed(p) => unsafe { gemm_on_this_thread(a, Rhs::Packed(p), c, accumulate) },
        }
    }
}

/// A right-hand side packed once in this kernel's panels.
pub(crate) type PackedB = pack::PackedB<Avx512>;

impl Kernel for Avx512 {
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

/// The whole product on the calling thread, the driver compiled for AVX-512F.
///
/// # Panics
///
/// If the shapes do not fit together.
#[target_feature(enable = "avx512f")]
fn gemm_on_this_thread(
    a: ArrayView2<'_, f32>,
    b: Rhs<'_, Avx512>,
    c: ArrayViewMut2<'_, f32>,
    accumulate: bool,
) {
    // The closure inherits this function's target feature, so `run` and the kernel compile
    // (and inline) for AVX-512F.
    driver::with_buffers(|bufs| {
        // SAFETY: `run` needs a CPU with AVX-512F (the `Avx512` kernel's instructions); this
        // function is compiled for AVX-512F, so it only runs on such a CPU.
        unsafe { driver::run::<Avx512>(a, b, c, accumulate, bufs) }
    })
}
