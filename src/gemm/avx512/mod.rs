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
}

super::kernel::isa_gemm!(Avx512, "avx512f", "AVX-512F");
