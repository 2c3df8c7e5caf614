//! One step of every row ([`step`]) and its backward ([`backward_step`]): the forward time loop
//! and the BPTT body over a sequence of one step, so a step agrees with the sequence path by
//! construction.

use ndarray::{Array2, Array3, ArrayView2, Axis};

use super::forward::Forward;
use super::tape::SequenceTape;
use super::{backward, EngineCell, EngineState, Prep, Schedule};
use crate::float::Float;
use crate::isa;

/// What one step saves for its backward: the tape of a sequence of one step.
#[derive(Debug, Clone)]
pub struct StepCache<F: Float> {
    tape: SequenceTape<F>,
}

/// One step of `cell` for every row of `x` `(B, I)` from `state`: returns the new state and the
/// cache for [`backward_step`]. The forward loop over one step, on the calling thread.
pub(crate) fn step<F: Float, C: EngineCell<Elem = F>>(
    cell: &C,
    x: ArrayView2<'_, F>,
    state: &C::State,
) -> (C::State, StepCache<F>) {
    let (h0, c0) = state.split();
    let batch = x.nrows();
    let mut out = Array3::zeros((1, batch, cell.weights().output_size()));
    let prep = Prep::forward(cell.weights(), batch, None);
    let (h, c, tape) = isa::dispatch(Forward {
        cell,
        prep: &prep,
        x: x.insert_axis(Axis(0)),
        h0,
        c0,
        sched: Schedule::FORWARD,
        keep: true,
        out: out.view_mut(),
    });
    let tape = SequenceTape {
        shards: vec![tape.expect("tape kept")],
    };
    (C::State::join(h, c), StepCache { tape })
}

/// The backward of [`step`], from the gradient `d_state` of the new state: adds the parameter
/// gradients into `grads` and returns `(dx (B, I), d_previous_state)`. The BPTT body over the
/// step's one-step tape, with `d_state` as the gradient of its final state.
pub(crate) fn backward_step<F: Float, C: EngineCell<Elem = F>>(
    kernel: &C,
    cache: &StepCache<F>,
    d_state: &C::State,
    grads: &mut C,
) -> (Array2<F>, C::State) {
    let w = kernel.weights();
    let (dh, dc) = d_state.split();
    let batch = cache.tape.batch();
    let (hidden, hout) = (w.hidden_size(), w.output_size());
    assert_eq!(dh.dim(), (batch, hout), "d_state.h must be (B, H)");
    if let Some(dc) = dc {
        assert_eq!(dc.dim(), (batch, hidden), "d_state.c must be (B, H)");
    }
    let own_len = kernel.own().len();
    let (g, g_own) = grads.params_mut();
    assert!(
        g.weight_hh.dim() == w.weight_hh.dim()
            && g_own.len() == own_len
            && g.has_bias() == w.has_bias()
            && g.weight_hr.as_ref().map(Array2::dim) == w.weight_hr.as_ref().map(Array2::dim),
        "grads must be shaped like the weights"
    );
    // The step's output is its new state: all of its gradient comes in as `d_state`.
    let d_out = Array3::zeros((1, batch, hout));
    let (dx, d_prev) = backward(kernel, &cache.tape, d_out.view(), d_state, grads, true);
    (dx.index_axis_move(Axis(0), 0), d_prev)
}
