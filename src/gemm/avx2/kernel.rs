//! The AVX2+FMA register-tile kernel: `MR × NR` = 6×16, 12 accumulators of 8 lanes.

use std::arch::x86_64::*;

use super::{MR, NR, NV};
use crate::gemm::mat::MatMut;

/// The register-tile kernel: `c[0..mr, 0..nr] (+)= a_panel · b_panel` over depth `kc`.
///
/// `PACKED`: `a[0]` is a packed panel (`kc · MR` values, `MR` per depth step); otherwise
/// `a[i]` points at row `i` of `a`, contiguous along the depth (rows past `mr` may repeat a
/// valid row: their results are not stored). `ROWS` rows are computed: `MR`, or 1 for a tile of
/// one row (the same operations on that row, without the work of the other five).
///
/// # Safety
///
/// The CPU must have AVX2 and FMA. `a` as above, each pointer valid for reading the values it
/// stands for; `b` valid for reading `kc · NR` values; `1 <= mr <= ROWS <= MR`, `1 <= nr <= NR`, and `c`
/// has at least `mr` rows and `nr` columns.
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn kernel<const PACKED: bool, const ROWS: usize>(
    kc: usize,
    a: [*const f32; MR],
    b: *const f32,
    mut c: MatMut<'_>,
    mr: usize,
    nr: usize,
    accumulate: bool,
) {
    let whole = ROWS == MR && mr == MR && nr == NR && c.cs() == 1;
    if whole {
        // The tile is read (or written) after the loop: start fetching it now.
        for i in 0..MR {
            // SAFETY: `at` needs (i, 0) inside c: i < MR = mr <= c's rows. Prefetching itself
            // has no precondition (a hint; the addresses are row i's NR = 8·NV contiguous
            // values, at most two cache lines).
            unsafe {
                let p = c.at(i, 0) as *const i8;
                _mm_prefetch::<_MM_HINT_T0>(p);
                _mm_prefetch::<_MM_HINT_T0>(p.add(4 * NR - 1));
            }
        }
    }
    let mut acc = [[_mm256_setzero_ps(); NV]; ROWS];
    let mut b = b;
    for p in 0..kc {
        // SAFETY: the loads need readable memory: b at step p points at values p·NR..(p+1)·NR
        // of its `kc · NR` (the caller's contract); a packed a[0] is read at p·MR + i < kc·MR,
        // a row a[i] at p < kc (the caller's contract).
        unsafe {
            let mut bv = [_mm256_setzero_ps(); NV];
            for (v, bv) in bv.iter_mut().enumerate() {
                *bv = _mm256_loadu_ps(b.add(8 * v));
            }
            for (i, acc) in acc.iter_mut().enumerate() {
                let ai = if PACKED {
                    _mm256_broadcast_ss(&*a[0].add(p * MR + i))
                } else {
                    _mm256_broadcast_ss(&*a[i].add(p))
                };
                for (acc, &bv) in acc.iter_mut().zip(&bv) {
                    *acc = _mm256_fmadd_ps(ai, bv, *acc);
                }
            }
            b = b.add(NR);
        }
    }
    if whole {
        for (i, acc) in acc.iter().enumerate() {
            // SAFETY: `at` needs (i, 0) inside c (i < MR = mr); the loads and stores need row i's
            // NR values readable and writable: c has at least nr = NR columns with unit stride,
            // exclusively borrowed.
            unsafe {
                let p = c.at(i, 0);
                for (v, &x) in acc.iter().enumerate() {
                    let x = if accumulate {
                        _mm256_add_ps(x, _mm256_loadu_ps(p.add(8 * v)))
                    } else {
                        x
                    };
                    _mm256_storeu_ps(p.add(8 * v), x);
                }
            }
        }
    } else {
        let mut buf = [0.0f32; MR * NR];
        for (i, acc) in acc.iter().enumerate() {
            for (v, &x) in acc.iter().enumerate() {
                // SAFETY: the store needs 8 writable values: i·NR + 8·v + 8 <= MR·NR, the
                // length of buf.
                unsafe { _mm256_storeu_ps(buf.as_mut_ptr().add(i * NR + 8 * v), x) };
            }
        }
        for i in 0..mr {
            for j in 0..nr {
                // SAFETY: `at` needs (i, j) inside c: i < mr and j < nr, which c holds (the
                // caller's contract); c is exclusively borrowed, so the write is ours.
                unsafe {
                    let p = c.at(i, j);
                    *p = if accumulate {
                        *p + buf[i * NR + j]
                    } else {
                        buf[i * NR + j]
                    };
                }
            }
        }
    }
}
