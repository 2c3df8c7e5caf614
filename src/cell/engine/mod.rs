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
//! # Layout
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the entry points [`run`] and [`backward`]: shape checks, the split into batch shards |
//! | `contract.rs` | [`EngineCell`] and [`EngineState`]: what a cell supplies |
//! | `schedule.rs` | [`Schedule`] (direction, lengths) and the state slots |
//! | `tape.rs` | [`SequenceTape`]: what forward saves for backward |
//! | `prep.rs` | `Prep`: the weights laid out once per pass |
//! | `shards.rs` | joining the shards' states and summing their gradients |
//! | `forward.rs` | the forward time loop, one job per shard |
//! | `bptt.rs` | the one BPTT body: chunks of steps backward |
//! | `single.rs` | the single step ([`step`], [`backward_step`]) over the same loops |
//!
//! Each shard's loop runs as an [`isa::Job`](crate::isa::Job) through the crate's one CPU
//! dispatch ([`crate::isa::dispatch`]), compiled once per instruction-set level.
//!
//! States live in time-indexed *slots* so that the previous states of all steps are one
//! contiguous block in time order (for the `dW_hh` GEMM): forward, slot `t` holds the state before
//! time `t` and slot `t+1` the state after; reversed, slot `t+1` holds the state before time `t`
//! and slot `t` the state after.

mod bptt;
mod contract;
mod forward;
mod prep;
mod schedule;
mod shards;
mod single;
mod tape;
#[cfg(test)]
mod tests;

use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, Axis};

pub use contract::{BackwardRow, EngineCell, EngineState, ForwardRow};
pub(crate) use prep::Prep;
pub use schedule::Schedule;
pub use single::StepCache;
pub(crate) use single::{backward_step, step};
pub use tape::SequenceTape;

use super::weights::CellWeights;
use crate::float::Float;
use crate::isa;
use crate::pool;
use crate::threads;
use bptt::{Bptt, CHUNK_ROWS};
use forward::Forward;
pub(crate) use forward::{step_rows, StepRows};
use shards::{add_into, concat_rows, join_shards, pooled_zeros_like};

#[inline]
pub(crate) fn row<F>(a: ArrayView2<'_, F>, r: usize) -> &[F] {
    a.index_axis_move(Axis(0), r)
        .to_slice()
        .expect("engine buffers are contiguous")
}

/// Runs `cell` over `x` `(T, B, I)` from `init`; returns the outputs `(T, B, H)`, the final state
/// and, if `keep`, the tape.
///
/// The batch is split into shards ([`threads::shard_count`]) that run the whole time loop on
/// their own threads, each with its own input projection, tape and (in [`backward`]) weight
/// gradients; with one shard everything runs on the calling thread. Each shard's loop is
/// dispatched on the instruction set ([`isa::dispatch`]).
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
        assert!(
            l.iter().all(|&n| (1..=steps).contains(&n)),
            "every length must be in 1..=T (T = {steps}), got {l:?}"
        );
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
        isa::dispatch(Forward {
            cell,
            prep: &prep,
            x: x.slice(s![.., rows.clone(), ..]),
            h0: h0.slice(s![rows.clone(), ..]),
            c0: c0.map(|c| c.slice_move(s![rows, ..])),
            sched,
            keep,
            out,
        })
    });
    let (h, c, tapes) = join_shards(results);
    let tape = tapes.map(|shards| SequenceTape { shards });
    (out, C::State::join(h, c), tape)
}

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
    grads: &mut C,
    want_dx: bool,
) -> (Array3<F>, C::State) {
    let w = cell.weights();
    let own_len = cell.own().len();
    let (grads, g_own) = grads.params_mut();
    assert!(
        g_own.len() == own_len
            && grads.weight_ih.dim() == w.weight_ih.dim()
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
        let (dh, dc, sums) = isa::dispatch(Bptt {
            cell,
            prep: &prep,
            tape: &tape.shards[0],
            d_out,
            dh_final,
            dc_final,
            grads: Some(&mut *grads),
            dx: dx.view_mut(),
            d_own: g_own,
            chunk_rows,
        });
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
        // The shard's sums of the gradients of the cell's own parameters.
        let mut d_own = vec![F::zero(); own_len];
        let out = isa::dispatch(Bptt {
            cell,
            prep: &prep,
            tape: shard,
            d_out: d_out.slice(s![.., rows.clone(), ..]),
            dh_final: dh_final.slice(s![rows.clone(), ..]),
            dc_final: dc_final.map(|c| c.slice_move(s![rows, ..])),
            grads: target,
            dx,
            d_own: &mut d_own,
            chunk_rows,
        });
        (out, own, d_own)
    });
    let mut dh = Vec::with_capacity(n);
    let mut dc = Vec::with_capacity(n);
    for ((h, c, sums), own, d_own) in results {
        sums.finish(grads);
        g_own.iter_mut().zip(&d_own).for_each(|(a, &b)| *a += b);
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
