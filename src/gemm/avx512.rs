//! The `f32` GEMM for CPUs with AVX-512F: tile sizes (matrixmultiply's `archparam`), the
//! register-tile kernel ([`kernel`]), the few-rows kernels with the 16×16 transpose ([`row`])
//! and the entry points (written by `isa_gemm!` of [`super::kernel`]).
//!
//! [`Avx512`] is the zero-sized proof of [`crate::isa`] that the CPU has AVX-512F, AVX2 and FMA:
//! it is made only by [`Avx512::detect`], so the entry points that take it are safe functions.
//! Blocking, packing and threading are the shared [`super::driver`], [`super::pack`] and
//! [`super::threading`]; only the kernels and the tile sizes are this folder's (as in
//! [`super::avx2`], its sibling of the same shape).

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

// The proof that the CPU has the level's features (`crate::isa`) is also the kernel's type.
pub(crate) use crate::isa::Avx512;

super::kernel::isa_gemm!(Avx512, "avx512f", "AVX-512F");
