//! The whole-sequence engine shared by every cell.
//!
//! A cell supplies an [`EngineCell`]: its weights and the fused element-wise work of one step for
//! one batch row, forward and backward. The engine does the rest, the same way for every cell:
//!
//! * the input projections of all steps in **one GEMM** `(T·B, I) × (I, G·H)`;
//! * per step one recurrent GEMM `(B, H) × (H, G·H)` and the kernel on each row;
//! * backward walks time in chunks of about 512 gate rows (`CHUNK_ROWS / B` steps): per step only
//!   `dh_prev = d_rec_t W_hh`; per chunk one GEMM for the weight gradients (`[dW_ih | dW_hh] =
//!   d_xpᵀ [X | H_prev]` for RNN and LSTM, two for GRU) and one for `dX`. Chunks rather than the
//!   whole sequence: the gate-gradient buffer stays cache-sized and the peak memory of a training
//!   step stays close to the tape's size (tested for an LSTM at T = 100, B = 32, I = 128, H = 256),
//!   at the same GEMM efficiency;
//! * the recurrent weights (and, for `dX`, the input weights) are laid out for the GEMM once per
//!   sequence ([`crate::gemm`]); tape and scratch buffers come from a pool that dropped tapes
//!   refill ([`crate::pool`]), so a training loop does not page-fault fresh memory every step;
//! * a direction (forward or reversed time, without copying the input) and per-sequence lengths:
//!   a row is *active* at time `t` iff `t < length`; inactive rows carry their state unchanged,
//!   output zeros, and pass gradients through untouched.
//!
//! Every buffer is allocated before the time loop (tested with a counting allocator).
//!
//! States live in time-indexed *slots* so that the previous states of all steps are one
//! contiguous block in time order (for the `dW_hh` GEMM): forward, slot `t` holds the state before
//! time `t` and slot `t+1` the state after; reversed, slot `t+1` holds the state before time `t`
//! and slot `t` the state after.

use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis, Zip};

use std::fmt::Debug;

use super::weights::{CellWeights, GradSums};
use super::{Nonlinearity, State};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::gemm::{gemm, Prepared};
use crate::pool;
use crate::threads;

/// The order in which a cell walks a sequence, and where each sequence ends.
///
/// `lengths[b]` is the number of real steps of sequence `b`; steps `t ≥ lengths[b]` are padding.
/// Reversed, each sequence starts at its own last real step (PyTorch's packed-sequence semantics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Schedule<'a> {
    /// Walk time backwards, from the last step to the first.
    pub reverse: bool,
    /// The real length of each sequence (`None`: every sequence has all `T` steps).
    pub lengths: Option<&'a [usize]>,
}

impl<'a> Schedule<'a> {
    /// Forward in time over full-length sequences.
    pub const FORWARD: Schedule<'static> = Schedule {
        reverse: false,
        lengths: None,
    };

    /// Reversed time over full-length sequences.
    pub const REVERSE: Schedule<'static> = Schedule {
        reverse: true,
        lengths: None,
    };

    /// `true` if sequence `b` has a real step at time `t`.
    #[inline]
    pub fn active(&self, t: usize, b: usize) -> bool {
        self.lengths.is_none_or(|l| t < l[b])
    }

    /// The time index of processing step `s` of `steps`.
    #[inline]
    pub fn time(&self, s: usize, steps: usize) -> usize {
        if self.reverse {
            steps - 1 - s
        } else {
            s
        }
    }
}

/// What the engine's forward saves for its backward: one tape per batch shard (the shards run on
/// their own threads, see [`runtime`](crate::runtime)), in batch order.
#[derive(Debug, Clone)]
pub struct SequenceTape<F: Float> {
    shards: Vec<ShardTape<F>>,
}

impl<F: Float> SequenceTape<F> {
    /// Number of time steps.
    pub fn steps(&self) -> usize {
        self.shards[0].steps()
    }

    /// Bytes of memory the tape holds: the inputs `(T·B, I)`, the saved gates `(T·B, G·H)`, the
    /// states `(T+1, B, H)` (twice for an LSTM), per-step extras `(T, B, H)` (LSTM, GRU) and the
    /// lengths.
    pub fn nbytes(&self) -> usize {
        self.shards.iter().map(ShardTape::nbytes).sum()
    }

    /// Batch size.
    pub fn batch(&self) -> usize {
        self.shards.iter().map(ShardTape::batch).sum()
    }
}

/// The tape of one batch shard (rows `b0..b1` of the batch, `B` of them below).
#[derive(Debug, Clone)]
struct ShardTape<F: Float> {
    /// Inputs `(T·B, I)`.
    x: Array2<F>,
    /// Saved gate values `(T·B, G·H)`, time-ordered.
    g: Array2<F>,
    /// Hidden-state slots `(T+1, B, H)`.
    hs: Array3<F>,
    /// Cell-state slots `(T+1, B, H)`, or `(T+1, B, 0)`.
    cs: Array3<F>,
    /// Extra per-step vectors `(T, B, H)`, or `(T, B, 0)`.
    aux: Array3<F>,
    /// The unprojected outputs `o ∘ tanh(c')` `(T, B, H)` of a projected LSTM, or `(T, B, 0)`.
    hr: Array3<F>,
    reverse: bool,
    lengths: Option<Vec<usize>>,
}

impl<F: Float> ShardTape<F> {
    fn steps(&self) -> usize {
        self.hs.len_of(Axis(0)) - 1
    }

    fn nbytes(&self) -> usize {
        let values = self.x.len()
            + self.g.len()
            + self.hs.len()
            + self.cs.len()
            + self.aux.len()
            + self.hr.len();
        values * std::mem::size_of::<F>()
            + self.lengths.as_ref().map_or(0, |l| l.len()) * std::mem::size_of::<usize>()
    }

    fn batch(&self) -> usize {
        self.hs.len_of(Axis(1))
    }

    fn schedule(&self) -> Schedule<'_> {
        Schedule {
            reverse: self.reverse,
            lengths: self.lengths.as_deref(),
        }
    }
}

impl<F: Float> Drop for ShardTape<F> {
    /// Returns the tape's buffers to the engine's pool, for the next forward pass to reuse.
    fn drop(&mut self) {
        pool::give_array(std::mem::take(&mut self.g));
        pool::give_array(std::mem::take(&mut self.x));
        pool::give_array(std::mem::take(&mut self.hs));
        pool::give_array(std::mem::take(&mut self.cs));
        pool::give_array(std::mem::take(&mut self.aux));
        pool::give_array(std::mem::take(&mut self.hr));
    }
}

/// Slot of the state before (`prev`) and after (`next`) processing step `s` at time `t`.
#[inline]
fn slots(keep: bool, reverse: bool, s: usize, t: usize) -> (usize, usize) {
    match (keep, reverse) {
        (true, false) => (t, t + 1),
        (true, true) => (t + 1, t),
        (false, _) => (s % 2, (s + 1) % 2),
    }
}

#[inline]
pub(super) fn row<F>(a: ArrayView2<'_, F>, r: usize) -> &[F] {
    a.index_axis_move(Axis(0), r)
        .to_slice()
        .expect("engine buffers are contiguous")
}

/// What [`run_impl`] returns for one shard (its outputs are written in place): last `h`, last
/// `c` (`None` without a cell state) and the tape if asked for.
type RunOutput<F> = (Array2<F>, Option<Array2<F>>, Option<ShardTape<F>>);

/// Runs `cell` over `x` `(T, B, I)` from `init`; returns the outputs `(T, B, H)`, the final state
/// and, if `keep`, the tape.
///
/// The batch is split into shards ([`threads::shard_count`]) that run the whole time loop on
/// their own threads, each with its own input projection, tape and (in [`backward`]) weight
/// gradients; with one shard everything runs on the calling thread. Each shard's loop is
/// dispatched on the instruction set ([`run_dispatch`]).
pub(crate) fn run<F: Float, C: EngineCell<Elem = F>>(
    cell: &C,
    x: ArrayView3<'_, F>,
    init: &C::State,
    sched: Schedule<'_>,
    keep: bool,
) -> (Array3<F>, C::State, Option<SequenceTape<F>>) {
    let (h0, c0) = init.split();
    let (steps, batch, _) = x.dim();
    let w = cell.weights();
    if let Some(l) = sched.lengths {
        assert_eq!(l.len(), batch, "one length per sequence");
    }
    assert_eq!(h0.nrows(), batch, "h0 must be (B, H)");
    let mut out = Array3::zeros((steps, batch, w.output_size()));
    let per_row =
        w.weight_ih.len() + w.weight_hh.len() + w.weight_hr.as_ref().map_or(0, |a| a.len());
    let n = threads::shard_count(batch, steps.saturating_mul(batch).saturating_mul(per_row));
    let rows = batch.div_ceil(n);
    let prep = Prep::forward(w, rows, (n > 1).then_some(steps * rows));
    let mut jobs = Vec::with_capacity(n);
    let mut rest = out.view_mut();
    for i in 0..n {
        let rows = threads::shard_bounds(batch, n, i);
        let (mine, others) = rest.split_at(Axis(1), rows.len());
        jobs.push((rows, mine));
        rest = others;
    }
    let results = threads::map_shards(jobs, |(rows, out)| {
        let sched = Schedule {
            reverse: sched.reverse,
            lengths: sched.lengths.map(|l| &l[rows.clone()]),
        };
        run_dispatch(
            cell,
            &prep,
            x.slice(s![.., rows.clone(), ..]),
            h0.slice(s![rows.clone(), ..]),
            c0.map(|c| c.slice_move(s![rows, ..])),
            sched,
            keep,
            out,
        )
    });
    let (h, c, tapes) = join_shards(results);
    let tape = tapes.map(|shards| SequenceTape { shards });
    (out, C::State::join(h, c), tape)
}

/// The weights laid out once per pass for the products of every shard (see [`Prepared`]).
pub(super) struct Prep<'w, F: Float> {
    /// `W_hhᵀ` forward (`h_prev · W_hhᵀ`), `W_hh` backward (`d_rec · W_hh`).
    pub(super) w_hh: Prepared<'w, F>,
    /// `W_ihᵀ` forward (the input projections `x · W_ihᵀ`), `W_ih` backward (the input
    /// gradients `d_xp · W_ih`, if asked for).
    w_ih: Option<Prepared<'w, F>>,
    /// A projected LSTM's `W_hrᵀ` forward (`h = h_raw · W_hrᵀ`), `W_hr` backward
    /// (`d_h_raw = d_h · W_hr`).
    pub(super) w_hr: Option<Prepared<'w, F>>,
}

impl<'w, F: Float> Prep<'w, F> {
    /// For a forward pass whose shards have at most `rows` rows; `W_ihᵀ` laid out too for input
    /// projections of about `input_rows` rows if given (shared by the shards). Otherwise it is
    /// multiplied as it is: a single step (the per-step API) would pay as much to lay it out as to
    /// use it, and an unsharded pass keeps the column split of a big projection.
    pub(super) fn forward(w: &'w CellWeights<F>, rows: usize, input_rows: Option<usize>) -> Self {
        Prep {
            w_hh: Prepared::new(w.weight_hh.t(), rows),
            w_ih: input_rows.map(|m| Prepared::new(w.weight_ih.t(), m)),
            w_hr: w
                .weight_hr
                .as_ref()
                .map(|w_hr| Prepared::new(w_hr.t(), rows)),
        }
    }

    /// For a backward pass whose shards have at most `rows` rows, and chunks of about
    /// `chunk_rows` rows if the input gradients are wanted. (The shards share [`CHUNK_ROWS`], so
    /// their buffers together stay as small as one's.)
    fn backward(w: &'w CellWeights<F>, rows: usize, chunk_rows: Option<usize>) -> Self {
        Prep {
            w_hh: Prepared::new(w.weight_hh.view(), rows),
            w_ih: chunk_rows.map(|m| Prepared::new(w.weight_ih.view(), m)),
            w_hr: w
                .weight_hr
                .as_ref()
                .map(|w_hr| Prepared::new(w_hr.view(), rows)),
        }
    }
}

/// The shards' final states joined along the batch, and their tapes (if kept).
#[allow(clippy::type_complexity)]
fn join_shards<F: Float>(
    mut results: Vec<RunOutput<F>>,
) -> (Array2<F>, Option<Array2<F>>, Option<Vec<ShardTape<F>>>) {
    if results.len() == 1 {
        let (h, c, t) = results.pop().expect("one shard");
        return (h, c, t.map(|t| vec![t]));
    }
    let h = concat_rows(results.iter().map(|r| r.0.view()));
    let c = results[0].1.is_some().then(|| {
        concat_rows(
            results
                .iter()
                .filter_map(|r| r.1.as_ref().map(|c| c.view())),
        )
    });
    let tapes = results.into_iter().map(|r| r.2).collect();
    (h, c, tapes)
}

/// The rows of every block, one after the other.
fn concat_rows<'a, F: Float>(blocks: impl Iterator<Item = ArrayView2<'a, F>>) -> Array2<F> {
    let blocks: Vec<_> = blocks.collect();
    ndarray::concatenate(Axis(0), &blocks).expect("blocks of one width")
}

/// One shard of [`run`] on the calling thread; its tape.
fn run_single<F: Float, C: EngineCell<Elem = F>>(
    cell: &C,
    x: ArrayView3<'_, F>,
    init: &C::State,
) -> (C::State, ShardTape<F>) {
    let (h0, c0) = init.split();
    let (steps, batch, _) = x.dim();
    let mut out = Array3::zeros((steps, batch, cell.weights().output_size()));
    let prep = Prep::forward(cell.weights(), batch, None);
    let (h, c, tape) = run_dispatch(
        cell,
        &prep,
        x,
        h0,
        c0,
        Schedule::FORWARD,
        true,
        out.view_mut(),
    );
    (C::State::join(h, c), tape.expect("tape kept"))
}

/// [`run_impl`] in the best build the CPU can run.
#[allow(clippy::too_many_arguments)]
fn run_dispatch<F: Float, C: EngineCell<Elem = F>>(
    kernel: &C,
    prep: &Prep<'_, F>,
    x: ArrayView3<'_, F>,
    h0: ArrayView2<'_, F>,
    c0: Option<ArrayView2<'_, F>>,
    sched: Schedule<'_>,
    keep: bool,
    out: ArrayViewMut3<'_, F>,
) -> RunOutput<F> {
    #[cfg(target_arch = "x86_64")]
    match crate::isa::current() {
        crate::isa::Isa::Avx512 => {
            // SAFETY: `run_avx512` is compiled for AVX-512F, AVX2 and FMA; its one contract is
            // that the CPU running it has them, and `current` picks this path only on such a CPU.
            return unsafe { run_avx512(kernel, prep, x, h0, c0, sched, keep, out) };
        }
        crate::isa::Isa::Avx2 => {
            // SAFETY: `run_avx2` is compiled for AVX2 and FMA; its one contract is that the CPU
            // running it has them, and `current` picks this path only on such a CPU.
            return unsafe { run_avx2(kernel, prep, x, h0, c0, sched, keep, out) };
        }
        _ => {}
    }
    run_impl(kernel, prep, x, h0, c0, sched, keep, out)
}

/// [`run_impl`] compiled with AVX-512F, AVX2 and FMA enabled, so that the element-wise
/// kernels inlined into it use those vector instructions.
///
/// # Safety
///
/// Calling it is `unsafe` (except from code compiled with the same features): the CPU
/// running it must support AVX-512F, AVX2 and FMA; otherwise it executes instructions the CPU
/// does not have, which is undefined behaviour.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn run_avx512<F: Float, C: EngineCell<Elem = F>>(
    kernel: &C,
    prep: &Prep<'_, F>,
    x: ArrayView3<'_, F>,
    h0: ArrayView2<'_, F>,
    c0: Option<ArrayView2<'_, F>>,
    sched: Schedule<'_>,
    keep: bool,
    out: ArrayViewMut3<'_, F>,
) -> RunOutput<F> {
    run_impl(kernel, prep, x, h0, c0, sched, keep, out)
}

/// [`run_impl`] compiled with AVX2 and FMA enabled, so that the element-wise
/// kernels inlined into it use those vector instructions.
///
/// # Safety
///
/// Calling it is `unsafe` (except from code compiled with the same features): the CPU
/// running it must support AVX2 and FMA; otherwise it executes instructions the CPU
/// does not have, which is undefined behaviour.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn run_avx2<F: Float, C: EngineCell<Elem = F>>(
    kernel: &C,
    prep: &Prep<'_, F>,
    x: ArrayView3<'_, F>,
    h0: ArrayView2<'_, F>,
    c0: Option<ArrayView2<'_, F>>,
    sched: Schedule<'_>,
    keep: bool,
    out: ArrayViewMut3<'_, F>,
) -> RunOutput<F> {
    run_impl(kernel, prep, x, h0, c0, sched, keep, out)
}

/// The forward loop behind [`run`], inlined into each of its target-feature builds.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn run_impl<F: Float, C: EngineCell<Elem = F>>(
    kernel: &C,
    prep: &Prep<'_, F>,
    x: ArrayView3<'_, F>,
    h0: ArrayView2<'_, F>,
    c0: Option<ArrayView2<'_, F>>,
    sched: Schedule<'_>,
    keep: bool,
    out: ArrayViewMut3<'_, F>,
) -> RunOutput<F> {
    let w = kernel.weights();
    let (steps, batch, input) = x.dim();
    // `hidden` is H, the width of the gates and of `c`; `hout` the width of `h` (P when
    // projected, else H).
    let (hidden, hout) = (w.hidden_size(), w.output_size());
    let gh = C::GATES * hidden;
    let hc = if c0.is_some() { hidden } else { 0 };
    let ha = if C::HAS_AUX { hidden } else { 0 };
    let hp = if prep.w_hr.is_some() { hidden } else { 0 };
    assert_eq!(input, w.weight_ih.ncols(), "x must be (T, B, I)");
    assert_eq!(h0.dim(), (batch, hout), "h0 must be (B, H)");
    if let Some(c0) = c0 {
        assert_eq!(c0.dim(), (batch, hidden), "c0 must be (B, H)");
    }
    if let Some(l) = sched.lengths {
        assert_eq!(l.len(), batch, "one length per sequence");
    }

    // Kept: copied once into the tape's buffer, projected from there. Not kept: a view when `x`
    // is already contiguous, a copy when it is not (a shard of the batch).
    let (x_saved, x_view) = if keep {
        let mut saved = pool::scratch((steps * batch, input));
        saved
            .view_mut()
            .into_shape_with_order((steps, batch, input))
            .expect("contiguous")
            .assign(&x);
        (Some(saved), None)
    } else {
        (None, Some(x.as_standard_layout()))
    };
    let x2 = match (&x_saved, &x_view) {
        (Some(saved), _) => saved.view(),
        (None, Some(v)) => v
            .view()
            .into_shape_with_order((steps * batch, input))
            .expect("standard layout reshapes"),
        (None, None) => unreachable!("one of the two"),
    };
    // Buffers that every step overwrites come from the engine's pool (see `crate::pool`).
    let mut g = pool::scratch((steps * batch, gh));
    w.project_inputs(prep.w_ih.as_ref(), x2, &mut g, !C::SEPARATE_REC);

    let n_slots = if keep { steps + 1 } else { 2 };
    let init = if keep && sched.reverse { steps } else { 0 };
    // Every slot is written: the initial one here, the others by their step (for every row).
    let mut hs = pool::scratch((n_slots, batch, hout));
    hs.index_axis_mut(Axis(0), init).assign(&h0);
    let mut cs = pool::scratch((n_slots, batch, hc));
    if let Some(c0) = c0 {
        cs.index_axis_mut(Axis(0), init).assign(&c0);
    }
    // Written for the rows active at each step; backward reads no other.
    let mut aux = pool::scratch((if keep { steps } else { 1 }, batch, ha));
    // The unprojected outputs of a projected LSTM, written like `aux`.
    let mut hr = pool::scratch((if keep { steps } else { 1 }, batch, hp));
    let mut rec = Array2::zeros((batch, if C::SEPARATE_REC { gh } else { 0 }));
    let mut out = out;
    assert_eq!(out.dim(), (steps, batch, hout), "out must be (T, B, H)");
    // The recurrent weights laid out once for the per-step products `h_prev · W_hhᵀ`.
    let w_hh_t = &prep.w_hh;

    let mut last = init;
    for s in 0..steps {
        let t = sched.time(s, steps);
        let (pi, ni) = slots(keep, sched.reverse, s, t);
        last = ni;
        let (h_prev, mut h_next) = hs.multi_slice_mut((s![pi, .., ..], s![ni, .., ..]));
        let (c_prev, mut c_next) = cs.multi_slice_mut((s![pi, .., ..], s![ni, .., ..]));
        let mut gt = g.slice_mut(s![t * batch..(t + 1) * batch, ..]);
        if C::SEPARATE_REC {
            w_hh_t.mul(h_prev.view(), &mut rec.view_mut(), false);
            if let Some(b) = &w.bias_hh {
                rec.rows_mut().into_iter().for_each(|mut r| r += b);
            }
        } else {
            w_hh_t.mul(h_prev.view(), &mut gt, true);
        }
        let mut aux_t = aux.index_axis_mut(Axis(0), if keep { t } else { 0 });
        let mut hr_t = hr.index_axis_mut(Axis(0), if keep { t } else { 0 });
        let mut out_t = out.index_axis_mut(Axis(0), t);
        for r in 0..batch {
            if sched.active(t, r) {
                // A projected cell writes its unprojected output, projected below.
                let h_row = match prep.w_hr {
                    Some(_) => hr_t.row_mut(r),
                    None => h_next.row_mut(r),
                };
                kernel.forward_row(
                    gt.row_mut(r).into_slice().expect("contiguous"),
                    row(rec.view(), r),
                    row(h_prev.view(), r),
                    row(c_prev.view(), r),
                    h_row.into_slice().expect("contiguous"),
                    c_next.row_mut(r).into_slice().expect("contiguous"),
                    aux_t.row_mut(r).into_slice().expect("contiguous"),
                );
                if prep.w_hr.is_none() {
                    out_t.row_mut(r).assign(&h_next.row(r));
                }
            } else {
                // Padding: the state is carried unchanged and the output stays zero.
                h_next.row_mut(r).assign(&h_prev.row(r));
                c_next.row_mut(r).assign(&c_prev.row(r));
                aux_t.row_mut(r).fill(F::zero());
                hr_t.row_mut(r).fill(F::zero());
            }
        }
        if let Some(w_hr_t) = &prep.w_hr {
            // `h = h_raw · W_hrᵀ` for every row, then padded rows get their state back.
            w_hr_t.mul(hr_t.view(), &mut h_next, false);
            for r in 0..batch {
                if sched.active(t, r) {
                    out_t.row_mut(r).assign(&h_next.row(r));
                } else {
                    h_next.row_mut(r).assign(&h_prev.row(r));
                }
            }
        }
    }
    let h_last = hs.index_axis(Axis(0), last).to_owned();
    let c_last = c0.map(|_| cs.index_axis(Axis(0), last).to_owned());
    let Some(x) = x_saved else {
        pool::give_array(g);
        pool::give_array(aux);
        pool::give_array(hr);
        pool::give_array(hs);
        pool::give_array(cs);
        return (h_last, c_last, None);
    };
    let tape = ShardTape {
        x,
        g,
        hs,
        cs,
        aux,
        hr,
        reverse: sched.reverse,
        lengths: sched.lengths.map(<[usize]>::to_vec),
    };
    (h_last, c_last, Some(tape))
}

/// What [`backward_impl`] returns: `dh0 (B, H)`, `dc0 (B, H)` (`None` without a cell state), and
/// the shard's weight-gradient sums, not yet added into the gradients (see [`GradSums::finish`]).
type BackwardOutput<F> = (Array2<F>, Option<Array2<F>>, GradSums<F>);

/// Backpropagation through time over a [`SequenceTape`] of `cell`, from the gradients of the
/// outputs `d_out` `(T, B, H)` and of the final state. Adds parameter gradients into `grads`;
/// returns `(dx (T, B, I), d_init)`. Without `want_dx` the input-gradient product is skipped and
/// `dx` is `(T, B, 0)`.
///
/// Each shard of the tape runs on its own thread and sums its weight gradients apart (fused
/// `[dW_ih | dW_hh]` sums for RNN and LSTM; for GRU the first shard adds into `grads` directly,
/// the others into buffers of their own); the sums are added into `grads` in shard order, so the
/// result depends on the shard count only through the order of those sums. Each shard's loop
/// is dispatched on the instruction set like [`run`]'s.
pub(crate) fn backward<F: Float, C: EngineCell<Elem = F>>(
    cell: &C,
    tape: &SequenceTape<F>,
    d_out: ArrayView3<'_, F>,
    d_final: &C::State,
    grads: &mut CellWeights<F>,
    want_dx: bool,
) -> (Array3<F>, C::State) {
    let w = cell.weights();
    assert!(
        grads.weight_ih.dim() == w.weight_ih.dim()
            && grads.weight_hh.dim() == w.weight_hh.dim()
            && grads.has_bias() == w.has_bias()
            && grads.weight_hr.as_ref().map(Array2::dim) == w.weight_hr.as_ref().map(Array2::dim),
        "grads must be shaped like the weights"
    );
    let (dh_final, dc_final) = d_final.split();
    let (steps, batch) = (tape.steps(), tape.batch());
    assert_eq!(d_out.len_of(Axis(1)), batch, "d_output must be (T, B, H)");
    assert_eq!(dh_final.nrows(), batch, "dh_final must be (B, H)");
    if let Some(dc) = dc_final {
        assert_eq!(dc.nrows(), batch, "dc_final must be (B, H)");
    }
    let input = if want_dx { w.weight_ih.ncols() } else { 0 };
    let mut dx = Array3::zeros((steps, batch, input));
    let n = tape.shards.len();
    let chunk_rows = CHUNK_ROWS / n;
    let prep = Prep::backward(w, batch.div_ceil(n), want_dx.then_some(chunk_rows));
    if n == 1 {
        let (dh, dc, sums) = backward_dispatch(
            cell,
            &prep,
            &tape.shards[0],
            d_out,
            dh_final,
            dc_final,
            Some(&mut *grads),
            dx.view_mut(),
            chunk_rows,
        );
        sums.finish(grads);
        return (dx, C::State::join(dh, dc));
    }
    // With fused sums every shard keeps its own `[dW_ih | dW_hh]`; otherwise (GRU) the first
    // shard adds into `grads` and each other one into a buffer of its own (from the pool, zeroed
    // on its own thread), added in shard order afterwards.
    let fused = !C::SEPARATE_REC;
    let mut targets = vec![Some(&mut *grads)]
        .into_iter()
        .chain((1..n).map(|_| None));
    let mut jobs = Vec::with_capacity(n);
    let mut rest = dx.view_mut();
    let mut lo = 0;
    for shard in &tape.shards {
        let rows = lo..lo + shard.batch();
        lo = rows.end;
        let (mine, others) = rest.split_at(Axis(1), rows.len());
        rest = others;
        let target = targets.next().flatten().filter(|_| !fused);
        jobs.push((shard, rows, target, mine));
    }
    drop(targets);
    let results = threads::map_shards(jobs, |(shard, rows, target, dx)| {
        let mut own = (!fused && target.is_none()).then(|| pooled_zeros_like(w));
        let target = target.or(own.as_mut());
        let out = backward_dispatch(
            cell,
            &prep,
            shard,
            d_out.slice(s![.., rows.clone(), ..]),
            dh_final.slice(s![rows.clone(), ..]),
            dc_final.map(|c| c.slice_move(s![rows, ..])),
            target,
            dx,
            chunk_rows,
        );
        (out, own)
    });
    let mut dh = Vec::with_capacity(n);
    let mut dc = Vec::with_capacity(n);
    for ((h, c, sums), own) in results {
        sums.finish(grads);
        if let Some(own) = own {
            add_into(grads, &own);
            pool::give_array(own.weight_ih);
            pool::give_array(own.weight_hh);
            if let Some(w_hr) = own.weight_hr {
                pool::give_array(w_hr);
            }
        }
        dh.push(h);
        dc.extend(c);
    }
    let dh = concat_rows(dh.iter().map(|a| a.view()));
    let dc = dc_final.map(|_| concat_rows(dc.iter().map(|a| a.view())));
    (dx, C::State::join(dh, dc))
}

/// Zeros shaped like `w`, the big arrays from the pool.
fn pooled_zeros_like<F: Float>(w: &CellWeights<F>) -> CellWeights<F> {
    let zeros = |a: &Array2<F>| {
        let mut z: Array2<F> = pool::scratch(a.raw_dim());
        z.fill(F::zero());
        z
    };
    CellWeights {
        weight_ih: zeros(&w.weight_ih),
        weight_hh: zeros(&w.weight_hh),
        bias_ih: w.bias_ih.as_ref().map(|b| ndarray::Array1::zeros(b.len())),
        bias_hh: w.bias_hh.as_ref().map(|b| ndarray::Array1::zeros(b.len())),
        weight_hr: w.weight_hr.as_ref().map(zeros),
    }
}

/// `acc += g`, array by array.
fn add_into<F: Float>(acc: &mut CellWeights<F>, g: &CellWeights<F>) {
    acc.weight_ih += &g.weight_ih;
    acc.weight_hh += &g.weight_hh;
    if let (Some(a), Some(b)) = (&mut acc.bias_ih, &g.bias_ih) {
        *a += b;
    }
    if let (Some(a), Some(b)) = (&mut acc.bias_hh, &g.bias_hh) {
        *a += b;
    }
    if let (Some(a), Some(b)) = (&mut acc.weight_hr, &g.weight_hr) {
        *a += b;
    }
}

/// [`backward_impl`] in the best build the CPU can run.
#[allow(clippy::too_many_arguments)]
fn backward_dispatch<F: Float, C: EngineCell<Elem = F>>(
    kernel: &C,
    prep: &Prep<'_, F>,
    tape: &ShardTape<F>,
    d_out: ArrayView3<'_, F>,
    dh_final: ArrayView2<'_, F>,
    dc_final: Option<ArrayView2<'_, F>>,
    grads: Option<&mut CellWeights<F>>,
    dx: ArrayViewMut3<'_, F>,
    chunk_rows: usize,
) -> BackwardOutput<F> {
    #[cfg(target_arch = "x86_64")]
    match crate::isa::current() {
        crate::isa::Isa::Avx512 => {
            // SAFETY: `backward_avx512` is compiled for AVX-512F, AVX2 and FMA; its one contract
            // is that the CPU running it has them, and `current` picks this path only on such a
            // CPU.
            return unsafe {
                backward_avx512(
                    kernel, prep, tape, d_out, dh_final, dc_final, grads, dx, chunk_rows,
                )
            };
        }
        crate::isa::Isa::Avx2 => {
            // SAFETY: `backward_avx2` is compiled for AVX2 and FMA; its one contract is that the
            // CPU running it has them, and `current` picks this path only on such a CPU.
            return unsafe {
                backward_avx2(
                    kernel, prep, tape, d_out, dh_final, dc_final, grads, dx, chunk_rows,
                )
            };
        }
        _ => {}
    }
    backward_impl(
        kernel, prep, tape, d_out, dh_final, dc_final, grads, dx, chunk_rows,
    )
}

/// [`backward_impl`] compiled with AVX-512F, AVX2 and FMA enabled, so that the element-wise
/// kernels inlined into it use those vector instructions.
///
/// # Safety
///
/// Calling it is `unsafe` (except from code compiled with the same features): the CPU
/// running it must support AVX-512F, AVX2 and FMA; otherwise it executes instructions the CPU
/// does not have, which is undefined behaviour.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn backward_avx512<F: Float, C: EngineCell<Elem = F>>(
    kernel: &C,
    prep: &Prep<'_, F>,
    tape: &ShardTape<F>,
    d_out: ArrayView3<'_, F>,
    dh_final: ArrayView2<'_, F>,
    dc_final: Option<ArrayView2<'_, F>>,
    grads: Option<&mut CellWeights<F>>,
    dx: ArrayViewMut3<'_, F>,
    chunk_rows: usize,
) -> BackwardOutput<F> {
    backward_impl(
        kernel, prep, tape, d_out, dh_final, dc_final, grads, dx, chunk_rows,
    )
}

/// [`backward_impl`] compiled with AVX2 and FMA enabled, so that the element-wise
/// kernels inlined into it use those vector instructions.
///
/// # Safety
///
/// Calling it is `unsafe` (except from code compiled with the same features): the CPU
/// running it must support AVX2 and FMA; otherwise it executes instructions the CPU
/// does not have, which is undefined behaviour.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn backward_avx2<F: Float, C: EngineCell<Elem = F>>(
    kernel: &C,
    prep: &Prep<'_, F>,
    tape: &ShardTape<F>,
    d_out: ArrayView3<'_, F>,
    dh_final: ArrayView2<'_, F>,
    dc_final: Option<ArrayView2<'_, F>>,
    grads: Option<&mut CellWeights<F>>,
    dx: ArrayViewMut3<'_, F>,
    chunk_rows: usize,
) -> BackwardOutput<F> {
    backward_impl(
        kernel, prep, tape, d_out, dh_final, dc_final, grads, dx, chunk_rows,
    )
}

/// The backward loop behind [`backward`], inlined into each of its target-feature builds.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_impl<F: Float, C: EngineCell<Elem = F>>(
    kernel: &C,
    prep: &Prep<'_, F>,
    tape: &ShardTape<F>,
    d_out: ArrayView3<'_, F>,
    dh_final: ArrayView2<'_, F>,
    dc_final: Option<ArrayView2<'_, F>>,
    grads: Option<&mut CellWeights<F>>,
    dx: ArrayViewMut3<'_, F>,
    chunk_rows: usize,
) -> BackwardOutput<F> {
    let w = kernel.weights();
    let (steps, batch) = (tape.steps(), tape.batch());
    // H (gates, `c`) and the width of `h` (P when projected), as in `run_impl`.
    let (hidden, hout) = (w.hidden_size(), w.output_size());
    let gh = C::GATES * hidden;
    assert_eq!(
        d_out.dim(),
        (steps, batch, hout),
        "d_output must be (T, B, H)"
    );
    assert_eq!(dh_final.dim(), (batch, hout), "dh_final must be (B, H)");
    if let Some(dc_final) = dc_final {
        assert_eq!(dc_final.dim(), (batch, hidden), "dc_final must be (B, H)");
    }
    let mut grads = grads;
    let mut dx = dx;
    let sched = tape.schedule();
    let input = dx.len_of(Axis(2));
    assert_eq!(
        dx.dim(),
        (steps, batch, input),
        "dx must be (T, B, I) or (T, B, 0)"
    );
    let want_dx = input > 0;

    // The gate gradients of a chunk of steps at a time: the weight-gradient and input-gradient
    // products run per chunk, so the work buffer stays small (cache-resident, no page faults)
    // whatever the sequence length.
    let chunk = (chunk_rows / batch.max(1)).clamp(1, steps.max(1));
    // Every row of a chunk is written before it is read (padding rows with zeros).
    let mut d_xp = pool::scratch((chunk * batch, gh));
    let mut d_rec_sep = pool::scratch((if C::SEPARATE_REC { chunk * batch } else { 0 }, gh));
    // A projected LSTM: the gradients of the projected outputs of the chunk's steps
    // `(rows, P)`, for `dW_hr`, and the direct part of `dh_prev` the kernel writes `(B, H)`.
    let w_hr = prep.w_hr.as_ref();
    let mut d_hp = pool::scratch((if w_hr.is_some() { chunk * batch } else { 0 }, hout));
    let mut direct_raw = Array2::zeros((batch, if w_hr.is_some() { hidden } else { 0 }));
    // A shard's `dx` is a strided part of the whole: its chunks are formed here and copied.
    let mut dx_scratch =
        (want_dx && !dx.is_standard_layout()).then(|| Array2::zeros((chunk * batch, input)));
    let mut dh_next = dh_final.as_standard_layout().into_owned();
    // Without a cell state, `(B, 0)`: the kernel gets empty rows.
    let mut dc = match dc_final {
        Some(dc) => dc.as_standard_layout().into_owned(),
        None => Array2::zeros((batch, 0)),
    };
    // The gradient reaching the kernel's `h` (`h_raw`, H wide, when projected).
    let mut dh = Array2::zeros((batch, hidden));
    let mut direct = Array2::zeros((batch, hout));
    // The recurrent weights laid out once for the per-step products `d_rec · W_hh`.
    let w_hh = &prep.w_hh;
    let first = if sched.reverse { 1 } else { 0 };

    let mut sums = GradSums::new(w, !C::SEPARATE_REC, chunk * batch);
    // The input weights laid out once for the per-chunk input gradients `d_xp · W_ih`.
    let w_ih = prep.w_ih.as_ref().filter(|_| want_dx);
    let mut s_hi = steps;
    while s_hi > 0 {
        let s_lo = s_hi.saturating_sub(chunk);
        let n = s_hi - s_lo;
        // The chunk's times form one range, whichever way time runs.
        let t_lo = if sched.reverse { steps - s_hi } else { s_lo };
        for s in (s_lo..s_hi).rev() {
            let t = sched.time(s, steps);
            let (pi, _) = slots(true, sched.reverse, s, t);
            let rows = (t - t_lo) * batch..(t - t_lo + 1) * batch;
            let gt = tape.g.slice(s![t * batch..(t + 1) * batch, ..]);
            let h_prev = tape.hs.index_axis(Axis(0), pi);
            let c_prev = tape.cs.index_axis(Axis(0), pi);
            let aux_t = tape.aux.index_axis(Axis(0), t);
            let d_out_t = d_out.index_axis(Axis(0), t);
            let mut dxp_t = d_xp.slice_mut(s![rows.clone(), ..]);
            let mut drec_t = if C::SEPARATE_REC {
                d_rec_sep.slice_mut(s![rows.clone(), ..])
            } else {
                d_rec_sep.slice_mut(s![.., ..])
            };
            if let Some(w_hr) = w_hr {
                // Projected: the gradient of `h` (zero on padded rows), kept for `dW_hr`, and
                // through `W_hr` the gradient of the unprojected output, for every row at once.
                let mut dhp_t = d_hp.slice_mut(s![rows, ..]);
                for r in 0..batch {
                    if sched.active(t, r) {
                        Zip::from(dhp_t.row_mut(r))
                            .and(d_out_t.row(r))
                            .and(dh_next.row(r))
                            .for_each(|a, &u, &v| *a = u + v);
                    } else {
                        dhp_t.row_mut(r).fill(F::zero());
                    }
                }
                w_hr.mul(dhp_t.view(), &mut dh.view_mut(), false);
            }
            for r in 0..batch {
                if sched.active(t, r) {
                    if w_hr.is_none() {
                        Zip::from(dh.row_mut(r))
                            .and(d_out_t.row(r))
                            .and(dh_next.row(r))
                            .for_each(|a, &u, &v| *a = u + v);
                    }
                    let d_rec_row = if C::SEPARATE_REC {
                        drec_t.row_mut(r).into_slice().expect("contiguous")
                    } else {
                        &mut []
                    };
                    // Projected, the direct part is that of `h_raw`'s inputs: an LSTM has none.
                    let direct_row = match w_hr {
                        Some(_) => {
                            direct.row_mut(r).fill(F::zero());
                            direct_raw.row_mut(r)
                        }
                        None => direct.row_mut(r),
                    };
                    kernel.backward_row(
                        row(gt, r),
                        row(aux_t, r),
                        row(h_prev, r),
                        row(c_prev, r),
                        row(dh.view(), r),
                        dc.row_mut(r).into_slice().expect("contiguous"),
                        dxp_t.row_mut(r).into_slice().expect("contiguous"),
                        d_rec_row,
                        direct_row.into_slice().expect("contiguous"),
                    );
                } else {
                    // Padding: gradients pass through; the gradient reaching the zero output is
                    // ignored, and dc is carried unchanged. The step's gate gradients are zero.
                    direct.row_mut(r).assign(&dh_next.row(r));
                    dxp_t.row_mut(r).fill(F::zero());
                    if C::SEPARATE_REC {
                        drec_t.row_mut(r).fill(F::zero());
                    }
                }
            }
            // Every row of `direct` was just written: it becomes `dh_next` without a copy.
            std::mem::swap(&mut dh_next, &mut direct);
            let d_rec_t = if C::SEPARATE_REC {
                drec_t.view()
            } else {
                dxp_t.view()
            };
            w_hh.mul(d_rec_t, &mut dh_next.view_mut(), true);
        }

        // Weight and input gradients of the chunk's steps, one product each.
        let rows = n * batch;
        let d_xp_c = d_xp.slice(s![..rows, ..]);
        let d_rec_c = if C::SEPARATE_REC {
            d_rec_sep.slice(s![..rows, ..])
        } else {
            d_xp_c
        };
        let x_c = tape.x.slice(s![t_lo * batch..t_lo * batch + rows, ..]);
        let h_prev_c = tape
            .hs
            .slice(s![first + t_lo..first + t_lo + n, .., ..])
            .into_shape_with_order((rows, hout))
            .expect("contiguous");
        sums.add_chunk(d_xp_c, d_rec_c, x_c, h_prev_c, grads.as_deref_mut());
        if w_hr.is_some() {
            let h_raw_c = tape
                .hr
                .slice(s![t_lo..t_lo + n, .., ..])
                .into_shape_with_order((rows, hidden))
                .expect("contiguous");
            sums.add_projection(d_hp.slice(s![..rows, ..]), h_raw_c);
        }
        if let Some(w_ih) = w_ih {
            let mut dx_c = dx.slice_mut(s![t_lo..t_lo + n, .., ..]);
            match (
                &mut dx_scratch,
                dx_c.view_mut().into_shape_with_order((rows, input)),
            ) {
                (None, Ok(mut dx_c)) => w_ih.mul(d_xp_c, &mut dx_c, false),
                (scratch, _) => {
                    let scratch = scratch.as_mut().expect("made for a strided dx");
                    let mut part = scratch.slice_mut(s![..rows, ..]);
                    w_ih.mul(d_xp_c, &mut part, false);
                    dx_c.assign(
                        &part
                            .view()
                            .into_shape_with_order((n, batch, input))
                            .expect("contiguous"),
                    );
                }
            }
        }
        s_hi = s_lo;
    }

    pool::give_array(d_xp);
    pool::give_array(d_rec_sep);
    pool::give_array(d_hp);
    (dh_next, dc_final.map(|_| dc), sums)
}

/// Rows of gate gradients the backward pass collects before forming the weight gradients of
/// those steps.
const CHUNK_ROWS: usize = 512;

/// What one step saves for its backward.
#[derive(Debug, Clone)]
pub struct StepCache<F: Float> {
    x: Array2<F>,
    h_prev: Array2<F>,
    c_prev: Array2<F>,
    g: Array2<F>,
    aux: Array2<F>,
    /// The unprojected output of a projected LSTM `(B, H)`, or `(B, 0)`.
    hr: Array2<F>,
}

/// One step of `cell` for every row of `x` `(B, I)` from `state`: returns the new state and the
/// cache for [`backward_step`].
pub(crate) fn step<F: Float, C: EngineCell<Elem = F>>(
    cell: &C,
    x: ArrayView2<'_, F>,
    state: &C::State,
) -> (C::State, StepCache<F>) {
    let x3 = x.insert_axis(Axis(0));
    let (next, mut tape) = run_single(cell, x3, state);
    let cache = StepCache {
        x: std::mem::take(&mut tape.x),
        h_prev: std::mem::take(&mut tape.hs).index_axis_move(Axis(0), 0),
        c_prev: std::mem::take(&mut tape.cs).index_axis_move(Axis(0), 0),
        g: std::mem::take(&mut tape.g),
        aux: std::mem::take(&mut tape.aux).index_axis_move(Axis(0), 0),
        hr: std::mem::take(&mut tape.hr).index_axis_move(Axis(0), 0),
    };
    (next, cache)
}

/// The backward of [`step`], from the gradient `d_state` of the new state: adds the parameter
/// gradients into `grads` and returns `(dx (B, I), d_previous_state)`.
pub(crate) fn backward_step<F: Float, C: EngineCell<Elem = F>>(
    kernel: &C,
    cache: &StepCache<F>,
    d_state: &C::State,
    grads: &mut CellWeights<F>,
) -> (Array2<F>, C::State) {
    let w = kernel.weights();
    let (dh, dc) = d_state.split();
    let batch = cache.x.nrows();
    let (hidden, hout) = (w.hidden_size(), w.output_size());
    assert_eq!(dh.dim(), (batch, hout), "d_state.h must be (B, H)");
    if let Some(dc) = dc {
        assert_eq!(dc.dim(), (batch, hidden), "d_state.c must be (B, H)");
    }
    assert_eq!(
        grads.weight_hh.dim(),
        w.weight_hh.dim(),
        "grads must be shaped like the weights"
    );
    assert_eq!(
        grads.has_bias(),
        w.has_bias(),
        "grads must be shaped like the weights"
    );
    assert_eq!(
        grads.weight_hr.as_ref().map(Array2::dim),
        w.weight_hr.as_ref().map(Array2::dim),
        "grads must be shaped like the weights"
    );
    let gh = C::GATES * hidden;
    // Projected: `dW_hr += dhᵀ h_raw`, and the kernel gets the gradient of `h_raw`, `dh W_hr`.
    let dh = match (&w.weight_hr, &mut grads.weight_hr) {
        (Some(w_hr), Some(g_hr)) => {
            gemm(dh.t(), cache.hr.view(), &mut g_hr.view_mut(), true);
            let mut d_raw = Array2::zeros((batch, hidden));
            gemm(dh, w_hr.view(), &mut d_raw.view_mut(), false);
            ndarray::CowArray::from(d_raw)
        }
        _ => dh.as_standard_layout(),
    };
    // Without a cell state, `(B, 0)`: the kernel gets empty rows.
    let mut dc_prev = match dc {
        Some(dc) => dc.as_standard_layout().into_owned(),
        None => Array2::zeros((batch, 0)),
    };
    let mut d_xp = Array2::zeros((batch, gh));
    let mut d_rec = Array2::zeros((batch, if C::SEPARATE_REC { gh } else { 0 }));
    let mut dh_prev = Array2::zeros((batch, hout));
    // The kernel's direct part of `dh_prev`: that of `h_raw`'s inputs when projected (an LSTM
    // has none, so `dh_prev` is the recurrent product alone).
    let mut direct_raw = Array2::zeros((batch, if w.weight_hr.is_some() { hidden } else { 0 }));
    for r in 0..batch {
        let direct = match w.weight_hr {
            Some(_) => direct_raw.row_mut(r),
            None => dh_prev.row_mut(r),
        };
        kernel.backward_row(
            row(cache.g.view(), r),
            row(cache.aux.view(), r),
            row(cache.h_prev.view(), r),
            row(cache.c_prev.view(), r),
            row(dh.view(), r),
            dc_prev.row_mut(r).into_slice().expect("contiguous"),
            d_xp.row_mut(r).into_slice().expect("contiguous"),
            d_rec.row_mut(r).into_slice().expect("contiguous"),
            direct.into_slice().expect("contiguous"),
        );
    }
    let d_rec = if C::SEPARATE_REC {
        d_rec.view()
    } else {
        d_xp.view()
    };
    CellWeights::accumulate_grads(
        d_xp.view(),
        d_rec,
        cache.x.view(),
        cache.h_prev.view(),
        grads,
    );
    Prepared::new(w.weight_hh.view(), batch).mul(d_rec, &mut dh_prev.view_mut(), true);
    let dx = w.input_grad(d_xp.view());
    (dx, C::State::join(dh_prev, dc.map(|_| dc_prev)))
}

/// A cell that the sequence engine runs: what differs between an Elman RNN, an LSTM and a GRU.
///
/// The engine (this module) does the matrix products, the time loop, padding and the tape;
/// the cell supplies its gate count, its weights in PyTorch's layout, and the fused element-wise
/// kernel of one step for one batch row, forward and backward. Every implementor gets [`Cell`],
/// [`Params`] and [`CellInit`](super::CellInit) from the blanket implementations in `builtin.rs`.
///
/// Crate-private: declared `pub` (so the blanket [`Cell`] implementation may name its associated
/// types) in this private module, and not re-exported, so no user crate can name or implement it.
///
/// Kernel slices: `g` has `G·H` entries, the others `H`, or 0 when the cell has no such part: `c`
/// without a cell state, `aux` without `HAS_AUX`, `rec` and `d_rec` without `SEPARATE_REC`.
pub trait EngineCell: Clone + Debug + Send + Sync {
    /// The float type of the weights.
    type Elem: Float;
    /// The recurrent state (`h`, or `h` and `c`).
    type State: EngineState<Self::Elem>;
    /// Gates stacked in the weights (1 RNN, 4 LSTM, 3 GRU).
    const GATES: usize;
    /// PyTorch's module name (`"RNN"`, `"LSTM"`, `"GRU"`), for messages.
    const KIND: &'static str;
    /// Saves one extra `H`-vector per step in `aux` (LSTM: `tanh(c')`; GRU: `h W_hnᵀ + b_hn`).
    const HAS_AUX: bool;
    /// Needs the recurrent product `h W_hhᵀ + b_hh` apart from the input projection (GRU).
    const SEPARATE_REC: bool;
    /// May have an output projection `weight_hr` (LSTM): the kernel's `h` is then the
    /// unprojected output, and the engine multiplies it by `W_hrᵀ`.
    const PROJECTION: bool = false;

    /// The cell made of `weights`, already checked for [`Self::GATES`] gates, and a nonlinearity
    /// that [`EngineCell::check_nonlinearity`] accepted.
    fn assemble(weights: CellWeights<Self::Elem>, nonlinearity: Nonlinearity) -> Self;

    /// `Ok` if the cell can use `nonlinearity`: only tanh, by default (fixed activations).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] otherwise.
    fn check_nonlinearity(nonlinearity: Nonlinearity) -> Result<()> {
        if nonlinearity != Nonlinearity::Tanh {
            // "LSTM" → "Lstm": the name of the convenience type.
            let name = format!("{}{}", &Self::KIND[..1], Self::KIND[1..].to_lowercase());
            return Err(Error::InvalidConfig(format!(
                "nonlinearity {nonlinearity:?} applies to Rnn only; {name} has fixed activations"
            )));
        }
        Ok(())
    }

    /// The weights, in PyTorch's layout.
    fn weights(&self) -> &CellWeights<Self::Elem>;

    /// The weights, mutable.
    fn weights_mut(&mut self) -> &mut CellWeights<Self::Elem>;

    /// The nonlinearity (tanh for cells with fixed activations).
    fn nonlinearity(&self) -> Nonlinearity {
        Nonlinearity::Tanh
    }

    /// Forward: `g` holds the input projection (plus the recurrent product unless
    /// `SEPARATE_REC`) and is overwritten with what backward needs (activated gates); writes the
    /// new `h`, `c` and `aux`.
    #[allow(clippy::too_many_arguments)]
    fn forward_row(
        &self,
        g: &mut [Self::Elem],
        rec: &[Self::Elem],
        h_prev: &[Self::Elem],
        c_prev: &[Self::Elem],
        h: &mut [Self::Elem],
        c: &mut [Self::Elem],
        aux: &mut [Self::Elem],
    );

    /// Backward: from the saved `g`, `aux`, previous state and the gradient `dh` reaching the new
    /// `h` and `dc` reaching the new `c` (replaced by the gradient of `c_prev`), writes the gradient
    /// of the input projection `d_xp`, of the recurrent product `d_rec` (if `SEPARATE_REC`) and the
    /// direct part of the gradient of `h_prev` that does not go through `W_hh` (`dh_direct`).
    #[allow(clippy::too_many_arguments)]
    fn backward_row(
        &self,
        g: &[Self::Elem],
        aux: &[Self::Elem],
        h_prev: &[Self::Elem],
        c_prev: &[Self::Elem],
        dh: &[Self::Elem],
        dc: &mut [Self::Elem],
        d_xp: &mut [Self::Elem],
        d_rec: &mut [Self::Elem],
        dh_direct: &mut [Self::Elem],
    );
}

/// A state the engine carries: the hidden state `h` and, for an LSTM, the cell state `c`.
///
/// Crate-private like [`EngineCell`].
pub trait EngineState<F: Float>: State<F> + Send + Sync {
    /// `h` `(B, H)` and `c` `(B, H)` (`None` for a state without a cell state).
    fn split(&self) -> (ArrayView2<'_, F>, Option<ArrayView2<'_, F>>);

    /// The state made of `h` and `c`, as [`EngineState::split`] returns them.
    fn join(h: Array2<F>, c: Option<Array2<F>>) -> Self;

    /// `h` and `c`, mutable, as [`EngineState::split`] returns them.
    fn split_mut(&mut self) -> (ArrayViewMut2<'_, F>, Option<ArrayViewMut2<'_, F>>);
}

/// The state of an Elman RNN and a GRU: `h` alone.
impl<F: Float> EngineState<F> for Array2<F> {
    fn split(&self) -> (ArrayView2<'_, F>, Option<ArrayView2<'_, F>>) {
        (self.view(), None)
    }

    fn split_mut(&mut self) -> (ArrayViewMut2<'_, F>, Option<ArrayViewMut2<'_, F>>) {
        (self.view_mut(), None)
    }

    fn join(h: Array2<F>, _: Option<Array2<F>>) -> Self {
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::{Cell, LstmCell, LstmState};
    use ndarray::Array3;
    use rand::SeedableRng;

    /// A pass at a budget of 3 threads really splits the batch (so `tests/threads.rs` compares
    /// sharded with unsharded runs), forward and reversed with lengths, and equals the unsharded
    /// pass up to summation order.
    #[test]
    fn shards_split_the_batch_and_agree_with_one_shard() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let cell = LstmCell::<f64>::new(32, 32, &mut rng).unwrap();
        let (steps, batch) = (16, 12);
        let x = Array3::from_shape_fn((steps, batch, 32), |(t, b, i)| {
            ((t * 31 + b * 17 + i * 7) % 23) as f64 / 23.0 - 0.5
        });
        let d = Array3::from_shape_fn((steps, batch, 32), |(t, b, i)| {
            ((t * 5 + b * 3 + i) % 13) as f64 / 13.0 - 0.5
        });
        let lengths: Vec<usize> = (0..batch).map(|b| steps - (b * 5) % 9).collect();
        let init = LstmState::zeros(batch, 32);
        for reverse in [false, true] {
            let sched = Schedule {
                reverse,
                lengths: Some(&lengths),
            };
            let pass = |threads: usize| {
                threads::with_budget(threads, || {
                    let (out, last, tape) = cell.forward_sequence(x.view(), &init, sched);
                    let mut grads = cell.clone();
                    grads.weights_mut().weight_ih.fill(0.0);
                    grads.weights_mut().weight_hh.fill(0.0);
                    let (dx, d_init) = cell.backward_sequence(&tape, d.view(), &init, &mut grads);
                    (tape.shards.len(), out, last, dx, d_init, grads)
                })
            };
            let one = pass(1);
            let three = pass(3);
            assert_eq!((one.0, three.0), (1, 3), "shards at 1 and 3 threads");
            let close = |a: &ndarray::ArrayViewD<'_, f64>, b: &ndarray::ArrayViewD<'_, f64>| {
                a.iter()
                    .zip(b)
                    .all(|(u, v)| (u - v).abs() <= 1e-12 * (1.0 + u.abs()))
            };
            assert!(
                close(&one.1.view().into_dyn(), &three.1.view().into_dyn()),
                "outputs"
            );
            assert!(
                close(&one.2.h.view().into_dyn(), &three.2.h.view().into_dyn()),
                "h"
            );
            assert!(
                close(&one.2.c.view().into_dyn(), &three.2.c.view().into_dyn()),
                "c"
            );
            assert!(
                close(&one.3.view().into_dyn(), &three.3.view().into_dyn()),
                "dx"
            );
            assert!(
                close(&one.4.c.view().into_dyn(), &three.4.c.view().into_dyn()),
                "dc0"
            );
            let w1 = one.5.weights();
            let w3 = three.5.weights();
            assert!(close(
                &w1.weight_ih.view().into_dyn(),
                &w3.weight_ih.view().into_dyn()
            ));
            assert!(close(
                &w1.weight_hh.view().into_dyn(),
                &w3.weight_hh.view().into_dyn()
            ));
        }
    }
}
