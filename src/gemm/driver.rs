//! The blocking driver: the five loops of the Goto/BLIS GEMM around a register-tile kernel.
//!
//! `c (+)= a·b` is cut into column blocks of `b` (`NC` wide), depth blocks (`KC` deep, the packed
//! `KC × NC` block of `b` sits in L2/L3), row blocks of `a` (`MC` tall, packed into `MR`-tall
//! panels kept in L2), then `NR`-wide panels of `b` and `MR`-tall panels of `a` for the
//! `MR × NR` kernel, whose accumulators live in registers. Rows of `a` contiguous along the depth
//! are read in place instead of packed.
//!
//! The driver is generic over a [`Kernel`]: an instruction set supplies its tile sizes and its
//! register-tile kernel, nothing else (see [`super::avx512`], [`super::avx2`]). [`run`] is `#[inline(always)]` so
//! it compiles inside the instruction set's `#[target_feature]` entry and the kernel inlines
//! into the loops.

use std::cell::RefCell;

use ndarray::{ArrayView2, ArrayViewMut2};

pub(crate) use super::kernel::Kernel;
use super::mat::{MatMut, MatRef};
use super::pack::{pack_a, pack_b, Aligned, PackedB};

/// Where the right-hand side comes from.
pub(crate) enum Rhs<'b, Ke> {
    /// A matrix, packed block by block during the product.
    Raw(ArrayView2<'b, f32>),
    /// Packed once ahead.
    Packed(&'b PackedB<Ke>),
}

/// The packing buffers of one thread: a block of `a` and a block of `b`.
pub(crate) struct Buffers {
    /// Packed `MC × KC` block of `a`.
    a: Aligned,
    /// Packed `KC × NC` block of `b`.
    b: Aligned,
}

thread_local! {
    /// Each thread's packing buffers; they only grow, so after the first product of a given
    /// size no product allocates.
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers {
        a: Aligned::zeros(0),
        b: Aligned::zeros(0),
    });
}

/// Runs `f` with this thread's packing buffers.
///
/// # Panics
///
/// If called again from inside `f` (the buffers are borrowed).
pub(crate) fn with_buffers<R>(f: impl FnOnce(&mut Buffers) -> R) -> R {
    BUFFERS.with_borrow_mut(f)
}

/// `c (+)= a·b`: `a (m, k)`, `b (k, n)`, `c (m, n)`, any strides, on the calling thread, with
/// the kernel of `ke` (whose value proves that the CPU has its instructions). Compiled where it
/// is called (`#[inline(always)]`): inside the instruction set's `#[target_feature]` function.
///
/// # Panics
///
/// If the shapes do not fit together.
#[inline(always)]
pub(crate) fn run<Ke: Kernel>(
    ke: Ke,
    a: ArrayView2<'_, f32>,
    b: Rhs<'_, Ke>,
    c: ArrayViewMut2<'_, f32>,
    accumulate: bool,
    bufs: &mut Buffers,
) {
    let (m, k) = a.dim();
    let n = c.ncols();
    let b_dim = match &b {
        Rhs::Raw(b) => b.dim(),
        Rhs::Packed(p) => p.dim(),
    };
    assert_eq!(b_dim, (k, n), "gemm: b does not fit a and c");
    assert_eq!(c.nrows(), m, "gemm: output has the wrong shape");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            let mut c = c;
            c.fill(0.0);
        }
        return;
    }
    let a = MatRef::new(a);
    let mut c = MatMut::new(c);
    let b = match b {
        Rhs::Raw(b) => Source::Raw(MatRef::new(b)),
        Rhs::Packed(p) => Source::Packed(p),
    };
    let (mr_tile, nr_tile) = (Ke::MR, Ke::NR);
    // Rows of `a` contiguous along the depth are read in place; other layouts are packed.
    let direct = a.cs() == 1;
    let Buffers { a: abuf, b: bbuf } = bufs;
    let a_len = Ke::MC.min(m).div_ceil(mr_tile) * mr_tile * Ke::KC.min(k);
    if abuf.len() < a_len {
        *abuf = Aligned::zeros(a_len);
    }
    if matches!(b, Source::Raw(_)) {
        let b_len = Ke::KC.min(k) * Ke::NC.min(n).div_ceil(nr_tile) * nr_tile;
        if bbuf.len() < b_len {
            *bbuf = Aligned::zeros(b_len);
        }
    }
    for jc in (0..n).step_by(Ke::NC) {
        let nc = Ke::NC.min(n - jc);
        for pc in (0..k).step_by(Ke::KC) {
            let kc = Ke::KC.min(k - pc);
            // `kc · ⌈nc/NR⌉ · NR` values: the block's NR-wide panels, each `kc · NR`.
            let bblock: &[f32] = match &b {
                Source::Raw(braw) => {
                    pack_b::<Ke>(kc, nc, *braw, pc, jc, bbuf.as_mut_slice());
                    bbuf.as_slice()
                }
                Source::Packed(p) => p.block(jc, pc),
            };
            let acc = accumulate || pc > 0;
            for ic in (0..m).step_by(Ke::MC) {
                let mc = Ke::MC.min(m - ic);
                if !direct {
                    pack_a::<Ke>(mc, kc, a, ic, pc, abuf.as_mut_slice());
                }
                for jr in (0..nc).step_by(nr_tile) {
                    let nr = nr_tile.min(nc - jr);
                    let bpanel = bblock[jr * kc..(jr + nr_tile) * kc].as_ptr();
                    for ir in (0..mc).step_by(mr_tile) {
                        let mr = mr_tile.min(mc - ir);
                        let tile = c.block(ic + ir, jc + jr, mr, nr);
                        if direct {
                            let rows = Ke::rows(|i| {
                                // SAFETY: `at` needs the element inside a: row
                                // ic+ir+min(i, mr-1) < ic+mc <= m, column pc < k.
                                unsafe { a.at(ic + ir + i.min(mr - 1), pc) }
                            });
                            // SAFETY: row pointer i is row ic+ir+min(i, mr-1) of a from column pc, whose
                            // kc values are contiguous (unit column stride) and inside a
                            // (pc+kc <= k); bpanel is a `kc · NR` slice; the tile is `mr × nr`
                            // with 1 <= mr <= MR and 1 <= nr <= NR.
                            unsafe { ke.tile::<false>(kc, rows, bpanel, tile, mr, nr, acc) };
                        } else {
                            let apanel = abuf.as_slice()[ir * kc..(ir + mr_tile) * kc].as_ptr();
                            let rows = Ke::rows(|_| apanel);
                            // SAFETY: apanel and bpanel are packed panels of `kc · MR` and `kc · NR`
                            // values (slices of the buffers); the tile is `mr × nr` with
                            // 1 <= mr <= MR and 1 <= nr <= NR.
                            unsafe { ke.tile::<true>(kc, rows, bpanel, tile, mr, nr, acc) };
                        }
                    }
                }
            }
        }
    }
}

/// The right-hand side inside [`run`]: a handle to pack from, or the blocks packed ahead.
enum Source<'b, Ke> {
    /// Packed block by block into the thread's buffer.
    Raw(MatRef<'b>),
    /// Packed once ahead.
    Packed(&'b PackedB<Ke>),
}
