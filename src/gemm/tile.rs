//! The register-tile kernel, written once over [`Lanes`]: `MR` rows of `NV` vectors of
//! accumulators (AVX2 6×2 vectors of 8 lanes, AVX-512 6×4 of 16).

use super::lanes::Lanes;
use super::mat::MatMut;

/// The most values a register tile holds (`MR · NV · N`), the size of the buffer its edge tiles
/// are stored through.
const MAX_TILE: usize = 6 * 64;

/// `c[0..mr, 0..nr] (+)= a_panel · b_panel` over depth `kc`, the tile `MR × NR` with
/// `NR = NV · L::N`.
///
/// `PACKED`: `a[0]` is a packed panel (`kc · MR` values, `MR` per depth step); otherwise
/// `a[i]` points at row `i` of `a`, contiguous along the depth (rows past `mr` may repeat a
/// valid row: their results are not stored). `ROWS` rows are computed: `MR`, or 1 for a tile of
/// one row (the same operations on that row, without the work of the other rows).
///
/// # Safety
///
/// `a` as above, each pointer valid for reading the values it stands for; `b` valid for reading
/// `kc · NR` values; `1 <= mr <= ROWS <= MR`, `1 <= nr <= NR`, and `c` has at least `mr` rows
/// and `nr` columns.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tile<
    L: Lanes,
    const MR: usize,
    const NV: usize,
    const PACKED: bool,
    const ROWS: usize,
>(
    l: L,
    kc: usize,
    a: [*const f32; MR],
    b: *const f32,
    mut c: MatMut<'_>,
    mr: usize,
    nr: usize,
    accumulate: bool,
) {
    let n = L::N;
    let nr_full = NV * n;
    let whole = ROWS == MR && mr == MR && nr == nr_full && c.cs() == 1;
    if whole {
        // The tile is read (or written) after the loop: start fetching it now.
        for i in 0..MR {
            // SAFETY: `at` needs (i, 0) inside c: i < MR = mr <= c's rows. Prefetching has no
            // precondition; the addresses are row i's NR contiguous values (4·NR bytes): each
            // 64-byte line from the first byte, and the last byte.
            let p = unsafe { c.at(i, 0) } as *const u8;
            for off in (0..4 * nr_full).step_by(64) {
                l.prefetch(p.wrapping_add(off));
            }
            l.prefetch(p.wrapping_add(4 * nr_full - 1));
        }
    }
    let mut acc = [[l.zero(); NV]; ROWS];
    let mut b = b;
    for p in 0..kc {
        // SAFETY: the loads need readable memory: b at step p points at values p·NR..(p+1)·NR
        // of its `kc · NR` (the caller's contract); a packed a[0] is read at p·MR + i < kc·MR,
        // a row a[i] at p < kc (the caller's contract).
        unsafe {
            let mut bv = [l.zero(); NV];
            for (v, bv) in bv.iter_mut().enumerate() {
                *bv = l.load(b.add(n * v));
            }
            for (i, acc) in acc.iter_mut().enumerate() {
                let ai = if PACKED {
                    l.splat(a[0].add(p * MR + i))
                } else {
                    l.splat(a[i].add(p))
                };
                for (acc, &bv) in acc.iter_mut().zip(&bv) {
                    *acc = l.fmadd(ai, bv, *acc);
                }
            }
            b = b.add(nr_full);
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
                        l.add(x, l.load(p.add(n * v)))
                    } else {
                        x
                    };
                    l.store(p.add(n * v), x);
                }
            }
        }
    } else {
        assert!(
            ROWS * nr_full <= MAX_TILE,
            "gemm: register tile larger than MAX_TILE"
        );
        // Not zeroed: every value read below is stored first.
        let mut buf = [std::mem::MaybeUninit::<f32>::uninit(); MAX_TILE];
        for (i, acc) in acc.iter().enumerate() {
            for (v, &x) in acc.iter().enumerate() {
                // SAFETY: the store needs N writable values: i·NR + N·v + N <= ROWS·NR <=
                // MAX_TILE (asserted), the length of buf.
                unsafe { l.store(buf.as_mut_ptr().cast::<f32>().add(i * nr_full + n * v), x) };
            }
        }
        for i in 0..mr {
            for j in 0..nr {
                // SAFETY: `at` needs (i, j) inside c: i < mr and j < nr, which c holds (the
                // caller's contract); c is exclusively borrowed, so the write is ours.
                // The value of buf was stored above (i < mr <= ROWS, j < nr <= NR).
                unsafe {
                    let x = buf[i * nr_full + j].assume_init();
                    let p = c.at(i, j);
                    *p = if accumulate { *p + x } else { x };
                }
            }
        }
    }
}
