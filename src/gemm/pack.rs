//! Packing: copies of blocks of `a` and `b` in the order a register-tile kernel reads them.
//!
//! Generic over the [`Kernel`] whose tile sizes (`MR`, `NR`, `KC`, `NC`) fix the layout, so a
//! second instruction set reuses this file unchanged.

use std::marker::PhantomData;

use ndarray::ArrayView2;

use super::kernel::Kernel;
use super::mat::MatRef;

/// A zeroed `f32` buffer whose first element sits on a 64-byte boundary, so that 16-lane
/// loads from panels never straddle two cache lines.
pub(crate) struct Aligned {
    buf: Vec<f32>,
    off: usize,
    len: usize,
}

impl Aligned {
    /// `len` zeros, aligned.
    pub(crate) fn zeros(len: usize) -> Aligned {
        let buf = vec![0.0f32; len + 15];
        let off = buf.as_ptr().align_offset(64).min(15);
        Aligned { buf, off, len }
    }

    /// Number of values.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The values.
    pub(crate) fn as_slice(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.len]
    }

    /// The values, writable.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

/// A whole right-hand side `(K, N)` in `Ke`'s panel layout, block by block: packed once, used for
/// many products (the recurrent weights).
pub(crate) struct PackedB<Ke> {
    data: Aligned,
    k: usize,
    n: usize,
    _kernel: PhantomData<Ke>,
}

impl<Ke: Kernel> PackedB<Ke> {
    /// Packs `b`.
    pub(crate) fn new(b: ArrayView2<'_, f32>) -> PackedB<Ke> {
        let (k, n) = b.dim();
        let b = MatRef::new(b);
        let mut data = Aligned::zeros(packed_b_len::<Ke>(k, n));
        let mut off = 0;
        for jc in (0..n).step_by(Ke::NC) {
            let nc = Ke::NC.min(n - jc);
            for pc in (0..k).step_by(Ke::KC) {
                let kc = Ke::KC.min(k - pc);
                let len = kc * nc.div_ceil(Ke::NR) * Ke::NR;
                pack_b::<Ke>(kc, nc, b, pc, jc, &mut data.as_mut_slice()[off..off + len]);
                off += len;
            }
        }
        PackedB {
            data,
            k,
            n,
            _kernel: PhantomData,
        }
    }

    /// The shape `(K, N)` of the packed matrix.
    pub(crate) fn dim(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    /// The packed block at column `jc` and depth `pc` (both block starts): `kc · ⌈nc/NR⌉ · NR`
    /// values for the block's depth `kc` and width `nc`.
    pub(crate) fn block(&self, jc: usize, pc: usize) -> &[f32] {
        // Column blocks before `jc` are NC wide (a multiple of NR) and span all of K; within
        // a column block, KC-deep blocks follow each other.
        let nc = Ke::NC.min(self.n - jc);
        let kc = Ke::KC.min(self.k - pc);
        let off = jc * self.k + pc * nc.div_ceil(Ke::NR) * Ke::NR;
        &self.data.as_slice()[off..off + kc * nc.div_ceil(Ke::NR) * Ke::NR]
    }
}

/// Values in a packed `(k, n)` right-hand side.
fn packed_b_len<Ke: Kernel>(k: usize, n: usize) -> usize {
    k * n.div_ceil(Ke::NR) * Ke::NR
}

/// Packs `kc × nc` of `b` from `(pc, jc)` into `NR`-wide panels, zero-padded.
///
/// # Panics
///
/// If the block does not lie inside `b` or `out` holds fewer than `kc · ⌈nc/NR⌉ · NR` values.
pub(crate) fn pack_b<Ke: Kernel>(
    kc: usize,
    nc: usize,
    b: MatRef<'_>,
    pc: usize,
    jc: usize,
    out: &mut [f32],
) {
    let nr_tile = Ke::NR;
    assert!(
        kc <= b.rows().saturating_sub(pc) && nc <= b.cols().saturating_sub(jc),
        "pack_b: block outside b"
    );
    for (panel, jr) in (0..nc).step_by(nr_tile).enumerate() {
        let nr = nr_tile.min(nc - jr);
        let dst = &mut out[panel * kc * nr_tile..(panel + 1) * kc * nr_tile];
        if b.cs() == 1 {
            for p in 0..kc {
                // SAFETY: `at` needs (pc+p, jc+jr) inside b, and `from_raw_parts` needs `nr`
                // readable f32 values nobody writes meanwhile: pc+p < pc+kc and
                // jc+jr+nr <= jc+nc lie inside b (asserted above), the columns are contiguous
                // (unit column stride) and b is a shared borrow.
                let src = unsafe { std::slice::from_raw_parts(b.at(pc + p, jc + jr), nr) };
                dst[p * nr_tile..p * nr_tile + nr].copy_from_slice(src);
                dst[p * nr_tile + nr..(p + 1) * nr_tile].fill(0.0);
            }
        } else {
            for j in 0..nr_tile {
                if j < nr {
                    for p in 0..kc {
                        // SAFETY: `at` needs the element inside b: pc+p < pc+kc and
                        // jc+jr+j < jc+nc, inside b (asserted above).
                        dst[p * nr_tile + j] = unsafe { *b.at(pc + p, jc + jr + j) };
                    }
                } else {
                    for p in 0..kc {
                        dst[p * nr_tile + j] = 0.0;
                    }
                }
            }
        }
    }
}

/// Packs `mc × kc` of `a` from `(ic, pc)` into `MR`-tall panels, zero-padded.
///
/// # Panics
///
/// If the block does not lie inside `a` or `out` holds fewer than `⌈mc/MR⌉ · MR · kc` values.
pub(crate) fn pack_a<Ke: Kernel>(
    mc: usize,
    kc: usize,
    a: MatRef<'_>,
    ic: usize,
    pc: usize,
    out: &mut [f32],
) {
    let mr_tile = Ke::MR;
    assert!(
        mc <= a.rows().saturating_sub(ic) && kc <= a.cols().saturating_sub(pc),
        "pack_a: block outside a"
    );
    for (panel, ir) in (0..mc).step_by(mr_tile).enumerate() {
        let mr = mr_tile.min(mc - ir);
        let dst = &mut out[panel * kc * mr_tile..(panel + 1) * kc * mr_tile];
        if a.rs() == 1 && mr == mr_tile {
            for p in 0..kc {
                // SAFETY: `at` needs (ic+ir, pc+p) inside a, and `from_raw_parts` needs `MR`
                // readable f32 values nobody writes meanwhile: rows ic+ir..ic+ir+MR (mr == MR)
                // and column pc+p lie inside a (asserted above), the rows are contiguous (unit
                // row stride) and a is a shared borrow.
                let src = unsafe { std::slice::from_raw_parts(a.at(ic + ir, pc + p), mr_tile) };
                dst[p * mr_tile..(p + 1) * mr_tile].copy_from_slice(src);
            }
        } else {
            for i in 0..mr_tile {
                if i < mr {
                    for p in 0..kc {
                        // SAFETY: `at` needs the element inside a: ic+ir+i < ic+mc and
                        // pc+p < pc+kc, inside a (asserted above).
                        dst[p * mr_tile + i] = unsafe { *a.at(ic + ir + i, pc + p) };
                    }
                } else {
                    for p in 0..kc {
                        dst[p * mr_tile + i] = 0.0;
                    }
                }
            }
        }
    }
}
