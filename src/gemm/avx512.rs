//! The `f32` GEMM for CPUs with AVX-512F: its vector operations ([`Lanes`] over `__m512`, with
//! a 16×16 register transpose for laying out a column-major `b`), its tile sizes
//! (matrixmultiply's `archparam`) and its entry points (written by `isa_gemm!`).
//!
//! [`Avx512`] is the zero-sized proof of [`crate::isa`] that the CPU has AVX-512F, AVX2 and FMA:
//! it is made only by [`Avx512::detect`], so the entry points that take it are safe functions.
//! Blocking, packing, threading and the kernels are shared ([`super::driver`], [`super::pack`],
//! [`super::threading`], [`super::tile`], [`super::row`]); only the vector operations and the
//! tile sizes are this file's (as in [`super::avx2`], its sibling of the same shape).

use std::arch::x86_64::*;

use ndarray::{ArrayView2, ArrayViewMut2};

use super::driver::{self, Kernel, Rhs};
use super::lanes::Lanes;
use super::mat::{MatMut, MatRef};
use super::pack::{self, Aligned};
use super::{row, threading, tile};

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

// Every method: the intrinsic needs AVX-512F, which `self` proves; the pointer methods add their
// own contract (`Lanes`).
impl Lanes for Avx512 {
    type V = __m512;
    type Mask = __mmask16;
    const N: usize = 16;
    const T: usize = 16;

    #[inline(always)]
    fn zero(self) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    fn fmadd(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        // SAFETY: see the impl.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn first(self, lanes: usize) -> __mmask16 {
        ((1u32 << lanes) - 1) as __mmask16
    }
    #[inline(always)]
    unsafe fn splat(self, p: *const f32) -> __m512 {
        // SAFETY: see the impl; `p` readable (the caller's contract).
        unsafe { _mm512_set1_ps(*p) }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> __m512 {
        // SAFETY: see the impl; 16 values readable at `p` (the caller's contract).
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: __m512) {
        // SAFETY: see the impl; 16 values writable at `p` (the caller's contract).
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn load_first(self, p: *const f32, mask: __mmask16) -> __m512 {
        // SAFETY: see the impl; the mask's lanes readable at `p` (the caller's contract; a
        // masked load touches no other lane).
        unsafe { _mm512_maskz_loadu_ps(mask, p) }
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, mask: __mmask16, v: __m512) {
        // SAFETY: see the impl; the mask's lanes writable at `p` (the caller's contract).
        unsafe { _mm512_mask_storeu_ps(p, mask, v) }
    }
    #[inline(always)]
    fn prefetch(self, p: *const u8) {
        // SAFETY: see the impl; a prefetch is a hint, valid for any address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
    }
    #[inline(always)]
    unsafe fn transpose(self, src: *const f32, cs: isize, dst: *mut f32, ld: usize) {
        // SAFETY: see the impl; the loads read 16 values down each of the 16 columns, the stores
        // write 16 values of each of the 16 rows (the caller's contract).
        unsafe {
            let cols = std::array::from_fn(|q| _mm512_loadu_ps(src.offset(q as isize * cs)));
            for (r, row) in transpose16(cols).iter().enumerate() {
                _mm512_storeu_ps(dst.add(r * ld), *row);
            }
        }
    }
}

/// The transpose of a 16×16 block given as 16 rows: returns its 16 columns.
#[inline(always)]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // SAFETY: only called from `Lanes::transpose` of `Avx512`, whose value proves AVX-512F.
    unsafe {
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
}

super::kernel::isa_gemm!(Avx512, "avx512f", "AVX-512F");
