//! The `f32` GEMM for CPUs with AVX2 and FMA: its vector operations ([`Lanes`] over `__m256`),
//! its tile sizes (matrixmultiply's `archparam`) and its entry points (written by `isa_gemm!`).
//!
//! [`Avx2`] is a zero-sized proof that the CPU has AVX2 and FMA: it is made only by
//! [`Avx2::detect`], so the entry points that take it are safe functions. Blocking, packing,
//! threading and the kernels are shared ([`super::driver`], [`super::pack`],
//! [`super::threading`], [`super::tile`], [`super::row`]); only the vector operations and the
//! tile sizes are this file's (as in [`super::avx512`]).

use std::arch::x86_64::*;

use ndarray::{ArrayView2, ArrayViewMut2};

use super::driver::{self, Kernel, Rhs};
use super::lanes::Lanes;
use super::mat::{MatMut, MatRef};
use super::pack::{self, Aligned};
use super::{row, threading, tile};

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

// Every method: the intrinsic needs AVX2 and FMA, which `self` proves; the pointer methods add
// their own contract (`Lanes`).
impl Lanes for Avx2 {
    type V = __m256;
    type Mask = __m256i;
    const N: usize = 8;

    #[inline(always)]
    fn zero(self) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    fn fmadd(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn first(self, lanes: usize) -> __m256i {
        // SAFETY: see the impl.
        unsafe {
            let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes as i32), idx)
        }
    }
    #[inline(always)]
    unsafe fn splat(self, p: *const f32) -> __m256 {
        // SAFETY: see the impl; `p` readable (the caller's contract).
        unsafe { _mm256_broadcast_ss(&*p) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m256 {
        // SAFETY: see the impl; 8 values readable at `p` (the caller's contract).
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m256) {
        // SAFETY: see the impl; 8 values writable at `p` (the caller's contract).
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_first(self, p: *const f32, mask: __m256i) -> __m256 {
        // SAFETY: see the impl; the mask's lanes readable at `p` (the caller's contract).
        unsafe { _mm256_maskload_ps(p, mask) }
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, mask: __m256i, v: __m256) {
        // SAFETY: see the impl; the mask's lanes writable at `p` (the caller's contract).
        unsafe { _mm256_maskstore_ps(p, mask, v) }
    }
    #[inline(always)]
    fn prefetch(self, p: *const u8) {
        // SAFETY: see the impl; a prefetch is a hint, valid for any address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
    }
}

super::kernel::isa_gemm!(Avx2, "avx2,fma", "AVX2 and FMA");
