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

// The proof that the CPU has the level's features (`crate::isa`) is also the kernel's type.
pub(crate) use crate::isa::Avx2;

super::kernel::isa_gemm!(Avx2, "avx2,fma", "AVX2 and FMA");
