//! Recurrent cells: one time step of one direction.
//!
//! A [`Cell`] knows how to advance a state by one step ([`Cell::step`]) and how to send a gradient
//! back through that step ([`Cell::backward_step`]). It also runs a whole sequence
//! ([`Cell::forward_sequence`], [`Cell::backward_sequence`]) through a fast path that computes all
//! input projections in one matrix product; [`forward_steps`] and [`backward_steps`] are the plain
//! step-by-step loops that the fast path must agree with (and that a new cell can use as its
//! sequence path until it has a faster one).
//!
//! All cells share PyTorch's parameter layout, [`CellWeights`]: `weight_ih (G·H, I)`,
//! `weight_hh (G·H, H)`, `bias_ih (G·H)`, `bias_hh (G·H)`, with `G` gates stacked along the rows.

mod lstm;
mod rnn;
mod weights;

pub use lstm::{LstmCell, LstmState, LstmStepCache, LstmTape};
pub use rnn::{Nonlinearity, RnnCell, RnnStepCache, RnnTape};
pub use weights::CellWeights;

use std::fmt::Debug;

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, Axis};

use crate::float::Float;
use crate::params::Params;

/// The recurrent state a cell carries from one step to the next; also the type of its gradient.
///
/// An Elman RNN's state is the hidden state `h`, an [`Array2`] of shape `(B, H)`; an LSTM's is
/// [`LstmState`] (`h` and `c`, both `(B, H)`).
pub trait State<F: Float>: Clone + Debug {
    /// A zero state for `batch` sequences of hidden size `hidden`.
    fn zeros(batch: usize, hidden: usize) -> Self;

    /// The hidden state `h`, `(B, H)`: what the cell outputs at this step.
    fn h(&self) -> ArrayView2<'_, F>;

    /// Mutable hidden state `h`.
    fn h_mut(&mut self) -> ArrayViewMut2<'_, F>;

    /// Every part of the state with its name (`"h"`, `"c"`), each `(B, H)`.
    fn parts(&self) -> Vec<(&'static str, ArrayView2<'_, F>)>;

    /// Every part of the state, mutable, in the order of [`State::parts`].
    fn parts_mut(&mut self) -> Vec<ArrayViewMut2<'_, F>>;
}

impl<F: Float> State<F> for Array2<F> {
    fn zeros(batch: usize, hidden: usize) -> Self {
        Array2::zeros((batch, hidden))
    }
    fn h(&self) -> ArrayView2<'_, F> {
        self.view()
    }
    fn h_mut(&mut self) -> ArrayViewMut2<'_, F> {
        self.view_mut()
    }
    fn parts(&self) -> Vec<(&'static str, ArrayView2<'_, F>)> {
        vec![("h", self.view())]
    }
    fn parts_mut(&mut self) -> Vec<ArrayViewMut2<'_, F>> {
        vec![self.view_mut()]
    }
}

/// One time step of one direction of a recurrent network.
///
/// The cell is its own parameter set ([`Params`]); **its gradient is a cell of the same type**
/// (made with [`Params::zeros_like`]), into which the backward methods *add*.
///
/// Shapes: `B` batch, `I` = [`Cell::input_size`], `H` = [`Cell::hidden_size`], `T` steps.
/// Sequences are time-major `(T, B, I)`.
///
/// The methods of this trait are the low-level interface and check shapes with assertions; the
/// layer [`Recurrent`](crate::Recurrent) checks everything a user hands in and returns
/// [`Error`](crate::Error) instead.
pub trait Cell<F: Float>: Params<F> {
    /// The recurrent state (`h`, or `h` and `c`); also the type of the state's gradient.
    type State: State<F>;
    /// What [`Cell::step`] saves for [`Cell::backward_step`].
    type StepCache: Debug;
    /// What [`Cell::forward_sequence`] saves for [`Cell::backward_sequence`].
    type Tape: Debug;

    /// Number of input features `I`.
    fn input_size(&self) -> usize;

    /// Number of hidden units `H`.
    fn hidden_size(&self) -> usize;

    /// A zero state for `batch` sequences.
    fn zero_state(&self, batch: usize) -> Self::State {
        Self::State::zeros(batch, self.hidden_size())
    }

    /// Advances `state` by one step of input `x` `(B, I)`; returns the new state and what backward
    /// needs.
    ///
    /// # Panics
    ///
    /// If `x` is not `(B, I)` or a part of `state` is not `(B, H)`.
    fn step(&self, x: ArrayView2<'_, F>, state: &Self::State) -> (Self::State, Self::StepCache);

    /// Sends `d_state` — the gradient of the loss with respect to the state that `step` returned,
    /// including the gradient reaching its output `h` — back through the step. Adds the parameter
    /// gradients into `grads` and returns `(dx (B, I), d_previous_state)`.
    ///
    /// # Panics
    ///
    /// If `d_state` does not have the shapes of the step's state, or `grads` is not shaped like
    /// `self`.
    fn backward_step(
        &self,
        cache: &Self::StepCache,
        d_state: &Self::State,
        grads: &mut Self,
    ) -> (Array2<F>, Self::State);

    /// Runs the whole sequence `x` `(T, B, I)` from `init`; returns the outputs `(T, B, H)` (the
    /// hidden state after every step), the final state and the tape for
    /// [`Cell::backward_sequence`].
    ///
    /// # Panics
    ///
    /// If `x` is not `(T, B, I)` or a part of `init` is not `(B, H)`.
    fn forward_sequence(
        &self,
        x: ArrayView3<'_, F>,
        init: &Self::State,
    ) -> (Array3<F>, Self::State, Self::Tape);

    /// Like [`Cell::forward_sequence`] but keeps no tape (inference).
    ///
    /// # Panics
    ///
    /// As [`Cell::forward_sequence`].
    fn infer_sequence(&self, x: ArrayView3<'_, F>, init: &Self::State) -> (Array3<F>, Self::State);

    /// Backpropagation through time over the sequence recorded in `tape`.
    ///
    /// `d_output` `(T, B, H)` is the gradient of the loss with respect to the outputs and `d_final`
    /// with respect to the final state (zeros if the loss does not use it). Adds the parameter
    /// gradients into `grads`; returns `(dx (T, B, I), d_init)`.
    ///
    /// # Panics
    ///
    /// If the shapes do not match the tape.
    fn backward_sequence(
        &self,
        tape: &Self::Tape,
        d_output: ArrayView3<'_, F>,
        d_final: &Self::State,
        grads: &mut Self,
    ) -> (Array3<F>, Self::State);
}

/// The reference sequence loop: calls [`Cell::step`] once per time step.
///
/// Returns the outputs `(T, B, H)`, the final state and the per-step caches for
/// [`backward_steps`]. Gives the same numbers as [`Cell::forward_sequence`] (up to rounding).
///
/// # Panics
///
/// As [`Cell::step`].
pub fn forward_steps<F: Float, C: Cell<F>>(
    cell: &C,
    x: ArrayView3<'_, F>,
    init: &C::State,
) -> (Array3<F>, C::State, Vec<C::StepCache>) {
    let (steps, batch, _) = x.dim();
    let mut out = Array3::zeros((steps, batch, cell.hidden_size()));
    let mut caches = Vec::with_capacity(steps);
    let mut state = init.clone();
    for (t, xt) in x.axis_iter(Axis(0)).enumerate() {
        let (next, cache) = cell.step(xt, &state);
        out.index_axis_mut(Axis(0), t).assign(&next.h());
        caches.push(cache);
        state = next;
    }
    (out, state, caches)
}

/// The reference backward loop: calls [`Cell::backward_step`] from the last step to the first.
///
/// `d_output` is `(T, B, H)`, `d_final` the gradient of the final state. Adds parameter gradients
/// into `grads`; returns `(dx (T, B, I), d_init)`.
///
/// # Panics
///
/// If `caches.len()` is not `T`, or as [`Cell::backward_step`].
pub fn backward_steps<F: Float, C: Cell<F>>(
    cell: &C,
    caches: &[C::StepCache],
    d_output: ArrayView3<'_, F>,
    d_final: &C::State,
    grads: &mut C,
) -> (Array3<F>, C::State) {
    let (steps, batch, _) = d_output.dim();
    assert_eq!(caches.len(), steps, "one cache per time step");
    let mut dx = Array3::zeros((steps, batch, cell.input_size()));
    let mut d_state = d_final.clone();
    for t in (0..steps).rev() {
        {
            let mut dh = d_state.h_mut();
            dh += &d_output.index_axis(Axis(0), t);
        }
        let (dxt, d_prev) = cell.backward_step(&caches[t], &d_state, grads);
        dx.index_axis_mut(Axis(0), t).assign(&dxt);
        d_state = d_prev;
    }
    (dx, d_state)
}
