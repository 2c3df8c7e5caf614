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
//! `weight_hh (G·H, H)`, `bias_ih (G·H)`, `bias_hh (G·H)`, with `G` gates stacked along the rows
//! (1 for [`RnnCell`], 4 for [`LstmCell`] and [`LayerNormLstmCell`], 3 for [`GruCell`]). A
//! [`LayerNormLstmCell`] has no `bias_ih`/`bias_hh` but gains and biases of its own, listed by
//! [`Params`] after the five.
//!
//! # Which layers a cell gets
//!
//! | layer | built-in cells | a cell you write implementing [`Cell`] | … and [`CellInit`] |
//! |---|---|---|---|
//! | [`Recurrent`](crate::Recurrent), [`Bidirectional`](crate::Bidirectional) | yes | yes | yes |
//! | [`crate::io::save`], [`crate::io::load`] (through [`Params`]) | yes | yes | yes |
//! | [`RecurrentStack`](crate::RecurrentStack) (build, `load_safetensors`, `save_safetensors`), [`Stream`](crate::Stream) | yes | no | yes |
//!
//! [`CellInit`] is how a stack makes its cells (from sizes, or from PyTorch-layout
//! [`CellWeights`] read from a file) and streams them ([`CellInit::step_into`], with buffers of
//! the cell's own choice, [`CellInit::Scratch`]; `()` and a step that allocates will do). A cell
//! of your own gets the plain step-by-step sequence loops ([`forward_steps`],
//! [`backward_steps`]) unless it writes faster ones. The built-in cells are written against the
//! crate's private engine contract, which gives them the fused sequence path, batch sharding and
//! the instruction-set paths; a new cell kind joins the crate that way: see
//! `docs/ARCHITECTURE.md`, "Add a cell".
//!
//! A [`Schedule`] says in which direction a sequence is walked and where each sequence of a
//! padded batch ends (PyTorch's packed-sequence semantics).

mod builtin;
mod engine;
mod gru;
mod layernorm;
mod lstm;
mod rnn;
mod stream;
mod weights;

pub use builtin::CellInit;

/// The own parameters' names of every built-in cell that has any (beyond PyTorch's five), so
/// that weight files know them as cell parameters: one line per such cell.
pub(crate) const OWN_NAMES: &[&[&str]] =
    &[<LayerNormLstmCell<f32> as engine::EngineCell>::OWN_NAMES];
pub use engine::{Schedule, SequenceTape, StepCache};
pub use gru::GruCell;
pub use layernorm::{LayerNormLstmCell, LAYER_NORM_EPS};
pub use lstm::{LstmCell, LstmState};
pub use rnn::RnnCell;
pub use stream::StepScratch;
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
    /// The states of a whole stack of layers and directions, stacked on a new first axis as
    /// PyTorch returns them: `h_n` `(num_layers · num_directions, B, H)` — an [`Array3`] for an
    /// Elman RNN or GRU, [`LstmState<F, Ix3>`](LstmState) for an LSTM.
    type Stacked: Clone + Debug;

    /// Stacks states (one per layer and direction) on a new first axis.
    ///
    /// # Panics
    ///
    /// If `states` is empty or the states differ in shape.
    fn stack(states: &[Self]) -> Self::Stacked;

    /// Splits stacked states along their first axis.
    fn unstack(stacked: &Self::Stacked) -> Vec<Self>;

    /// Every part of stacked states with its name (`"h"`, `"c"`), each `(L·D, B, H)`.
    fn stacked_parts(stacked: &Self::Stacked) -> Vec<(&'static str, ArrayView3<'_, F>)>;

    /// A zero state for `batch` sequences of hidden size `hidden`.
    fn zeros(batch: usize, hidden: usize) -> Self;

    /// A zero state whose `h` is `output` wide and whose other parts are `hidden` wide (they
    /// differ only for an LSTM with a projection, whose `h` is `proj_size` wide). The default is
    /// [`State::zeros`]`(batch, hidden)`, for states without a projection.
    fn zeros_with(batch: usize, hidden: usize, output: usize) -> Self {
        let _ = output;
        Self::zeros(batch, hidden)
    }

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
    type Stacked = Array3<F>;

    fn stack(states: &[Self]) -> Array3<F> {
        let views: Vec<_> = states.iter().map(|s| s.view()).collect();
        ndarray::stack(Axis(0), &views).expect("states of one shape")
    }

    fn unstack(stacked: &Array3<F>) -> Vec<Self> {
        stacked.outer_iter().map(|h| h.to_owned()).collect()
    }

    fn stacked_parts(stacked: &Array3<F>) -> Vec<(&'static str, ArrayView3<'_, F>)> {
        vec![("h", stacked.view())]
    }

    fn zeros(batch: usize, hidden: usize) -> Self {
        Array2::zeros((batch, hidden))
    }
    fn zeros_with(batch: usize, _hidden: usize, output: usize) -> Self {
        Array2::zeros((batch, output))
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

/// The activation of an Elman RNN (PyTorch's `nonlinearity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Nonlinearity {
    /// `tanh` (PyTorch's default).
    #[default]
    Tanh,
    /// `max(0, x)`; its derivative at 0 is taken as 0, as in PyTorch.
    Relu,
}

impl Nonlinearity {
    /// The derivative expressed through the output `y = act(v)`.
    #[inline]
    pub(crate) fn derivative_from_output<F: Float>(self, y: F) -> F {
        match self {
            Nonlinearity::Tanh => F::one() - y * y,
            Nonlinearity::Relu => {
                if y > F::zero() {
                    F::one()
                } else {
                    F::zero()
                }
            }
        }
    }
}

/// The stacked state type of a stack of `C` cells: `(L·D, B, H)` per part ([`State::Stacked`]).
pub type Stacked<F, C> = <<C as Cell<F>>::State as State<F>>::Stacked;

/// One time step of one direction of a recurrent network.
///
/// The cell is its own parameter set ([`Params`]); **its gradient is a cell of the same type**
/// (made with [`Params::zeros_like`]), into which the backward methods *add*.
///
/// Shapes: `B` batch, `I` = [`Cell::input_size`], `H` = [`Cell::hidden_size`], `T` steps.
/// Sequences are time-major `(T, B, I)`.
///
/// The methods of this trait are the low-level interface and check shapes with assertions; the
/// layers ([`Recurrent`](crate::Recurrent), [`Lstm`](crate::Lstm), …) check everything a user
/// hands in and return [`Error`](crate::Error) instead.
///
/// Every built-in cell implements the whole-sequence methods with one shared engine (input
/// projections of all steps in one GEMM, one recurrent GEMM per step, a fused element-wise kernel,
/// batched weight-gradient GEMMs). A new cell type implements them too — [`forward_steps`] and
/// [`backward_steps`] are the reference it must agree with, and the simplest correct
/// implementation (see the example below). They are required methods rather than provided
/// step-by-step defaults because the tape type differs between the two paths and stable Rust has
/// no defaults for associated types.
///
/// # Examples
///
/// One step forward and back by hand (loss `L = Σ h'`):
///
/// ```
/// use ndarray::Array2;
/// use rand::SeedableRng;
/// use recurrent::{Cell, Nonlinearity, Params, RnnCell};
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let cell = RnnCell::<f64>::new(3, 2, Nonlinearity::Tanh, &mut rng)?;
/// let x = Array2::from_elem((4, 3), 0.5); // (B, I)
/// let h = cell.zero_state(4); // (B, H)
/// let (h_next, cache) = cell.step(x.view(), &h);
///
/// let mut grads = cell.zeros_like();
/// let d_h_next = Array2::ones((4, 2)); // ∂L/∂h'
/// let (dx, dh) = cell.backward_step(&cache, &d_h_next, &mut grads);
/// assert_eq!((dx.dim(), dh.dim(), h_next.dim()), ((4, 3), (4, 2), (4, 2)));
/// assert!(grads.global_norm() > 0.0);
/// # Ok::<(), recurrent::Error>(())
/// ```
///
/// A cell type of your own (here one that runs an [`RnnCell`] and doubles its input), with the
/// reference loops as its sequence path:
///
/// ```
/// use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayViewD, ArrayViewMutD};
/// use rand::SeedableRng;
/// use recurrent::cell::{backward_steps, forward_steps, Schedule, StepCache};
/// use recurrent::{Cell, Nonlinearity, Params, RnnCell};
///
/// #[derive(Debug, Clone)]
/// struct Doubled(RnnCell<f64>);
///
/// impl Params<f64> for Doubled {
///     fn named_arrays(&self) -> Vec<(String, ArrayViewD<'_, f64>)> {
///         self.0.named_arrays()
///     }
///     fn arrays_mut(&mut self) -> Vec<ArrayViewMutD<'_, f64>> {
///         self.0.arrays_mut()
///     }
/// }
///
/// /// What a sequence forward keeps: the caches of its steps and the schedule it ran in.
/// #[derive(Debug)]
/// struct Steps(Vec<StepCache<f64>>, bool, Option<Vec<usize>>);
///
/// impl Cell<f64> for Doubled {
///     type State = Array2<f64>;
///     type StepCache = StepCache<f64>;
///     type Tape = Steps;
///     fn input_size(&self) -> usize {
///         self.0.input_size()
///     }
///     fn hidden_size(&self) -> usize {
///         self.0.hidden_size()
///     }
///     fn step(&self, x: ArrayView2<'_, f64>, h: &Array2<f64>) -> (Array2<f64>, StepCache<f64>) {
///         self.0.step((&x * 2.0).view(), h)
///     }
///     fn backward_step(
///         &self,
///         cache: &StepCache<f64>,
///         dh: &Array2<f64>,
///         grads: &mut Self,
///     ) -> (Array2<f64>, Array2<f64>) {
///         let (dx, dh_prev) = self.0.backward_step(cache, dh, &mut grads.0);
///         (dx * 2.0, dh_prev)
///     }
///     fn forward_sequence(
///         &self,
///         x: ArrayView3<'_, f64>,
///         init: &Array2<f64>,
///         schedule: Schedule<'_>,
///     ) -> (Array3<f64>, Array2<f64>, Steps) {
///         let (out, last, caches) = forward_steps(self, x, init, schedule);
///         let lengths = schedule.lengths.map(<[usize]>::to_vec);
///         (out, last, Steps(caches, schedule.reverse, lengths))
///     }
///     fn infer_sequence(
///         &self,
///         x: ArrayView3<'_, f64>,
///         init: &Array2<f64>,
///         schedule: Schedule<'_>,
///     ) -> (Array3<f64>, Array2<f64>) {
///         let (out, last, _) = forward_steps(self, x, init, schedule);
///         (out, last)
///     }
///     fn backward_sequence(
///         &self,
///         tape: &Steps,
///         d_output: ArrayView3<'_, f64>,
///         d_final: &Array2<f64>,
///         grads: &mut Self,
///     ) -> (Array3<f64>, Array2<f64>) {
///         let schedule = Schedule { reverse: tape.1, lengths: tape.2.as_deref() };
///         backward_steps(self, &tape.0, d_output, d_final, schedule, grads)
///     }
/// }
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let inner = RnnCell::<f64>::new(3, 2, Nonlinearity::Tanh, &mut rng)?;
/// let cell = Doubled(inner.clone());
/// let x = Array3::from_elem((4, 1, 3), 0.25); // (T, B, I)
/// let h0 = cell.zero_state(1);
/// let (out, _, tape) = cell.forward_sequence(x.view(), &h0, Schedule::FORWARD);
/// let (expected, _) = inner.infer_sequence((&x * 2.0).view(), &h0, Schedule::FORWARD);
/// assert!((&out - &expected).iter().all(|d| d.abs() < 1e-12));
///
/// let mut grads = cell.zeros_like();
/// let (dx, _) = cell.backward_sequence(&tape, out.view(), &h0, &mut grads);
/// assert_eq!(dx.dim(), (4, 1, 3));
/// # Ok::<(), recurrent::Error>(())
/// ```
pub trait Cell<F: Float>: Params<F> + Send + Sync {
    /// The recurrent state (`h`, or `h` and `c`); also the type of the state's gradient.
    type State: State<F> + Send + Sync;
    /// What [`Cell::step`] saves for [`Cell::backward_step`].
    type StepCache: Debug + Send + Sync;
    /// What [`Cell::forward_sequence`] saves for [`Cell::backward_sequence`].
    type Tape: Debug + Send + Sync;

    /// Number of input features `I`.
    fn input_size(&self) -> usize;

    /// Number of hidden units `H`.
    fn hidden_size(&self) -> usize;

    /// Features of the output `h` at each step: `H`, or `P` for an LSTM with a projection
    /// (PyTorch's `proj_size`). The default is [`Cell::hidden_size`].
    fn output_size(&self) -> usize {
        self.hidden_size()
    }

    /// A zero state for `batch` sequences: `h` `(B, output_size)`, other parts `(B, H)`.
    fn zero_state(&self, batch: usize) -> Self::State {
        Self::State::zeros_with(batch, self.hidden_size(), self.output_size())
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

    /// Runs the whole sequence `x` `(T, B, I)` from `init` in the order `schedule` gives; returns
    /// the outputs `(T, B, H)` (the hidden state after every step, in time order, zero at padded
    /// steps), the final state (each sequence's state after its last processed real step) and the
    /// tape for [`Cell::backward_sequence`].
    ///
    /// # Panics
    ///
    /// If `x` is not `(T, B, I)`, a part of `init` is not `(B, H)`, or `schedule.lengths` does not
    /// hold `B` lengths in `1..=T`.
    fn forward_sequence(
        &self,
        x: ArrayView3<'_, F>,
        init: &Self::State,
        schedule: Schedule<'_>,
    ) -> (Array3<F>, Self::State, Self::Tape);

    /// Like [`Cell::forward_sequence`] but keeps no tape (inference).
    ///
    /// # Panics
    ///
    /// As [`Cell::forward_sequence`].
    fn infer_sequence(
        &self,
        x: ArrayView3<'_, F>,
        init: &Self::State,
        schedule: Schedule<'_>,
    ) -> (Array3<F>, Self::State);

    /// Backpropagation through time over the sequence recorded in `tape`.
    ///
    /// `d_output` `(T, B, H)` is the gradient of the loss with respect to the outputs (ignored at
    /// padded steps) and `d_final` with respect to the final state (zeros if the loss does not use
    /// it). Adds the parameter gradients into `grads`; returns `(dx (T, B, I), d_init)`; `dx` is
    /// zero at padded steps.
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

    /// [`Cell::backward_sequence`] without the input gradient: adds the parameter gradients into
    /// `grads` and returns only the gradient of the initial state.
    ///
    /// For a first layer whose input needs no gradient (PyTorch skips it when the input does not
    /// require grad). The built-in cells then skip the `dX = dGates · W_ih` product; the default
    /// calls [`Cell::backward_sequence`] and drops `dx`.
    ///
    /// # Panics
    ///
    /// As [`Cell::backward_sequence`].
    fn backward_sequence_params(
        &self,
        tape: &Self::Tape,
        d_output: ArrayView3<'_, F>,
        d_final: &Self::State,
        grads: &mut Self,
    ) -> Self::State {
        self.backward_sequence(tape, d_output, d_final, grads).1
    }
}

/// [`Cell::backward_sequence`] if `input_grad`, else [`Cell::backward_sequence_params`] (no `dx`).
pub(crate) fn backward_sequence_with<F: Float, C: Cell<F>>(
    cell: &C,
    tape: &C::Tape,
    d_output: ArrayView3<'_, F>,
    d_final: &C::State,
    grads: &mut C,
    input_grad: bool,
) -> (Option<Array3<F>>, C::State) {
    if input_grad {
        let (dx, d0) = cell.backward_sequence(tape, d_output, d_final, grads);
        (Some(dx), d0)
    } else {
        (
            None,
            cell.backward_sequence_params(tape, d_output, d_final, grads),
        )
    }
}

/// `dst[r] = src[r]` for every part of the state and every row `r` with `rows(r)`.
fn copy_rows<F: Float, S: State<F>>(dst: &mut S, src: &S, rows: impl Fn(usize) -> bool) {
    for (mut d, (_, s)) in dst.parts_mut().into_iter().zip(src.parts()) {
        for r in 0..d.nrows() {
            if rows(r) {
                d.row_mut(r).assign(&s.row(r));
            }
        }
    }
}

/// The reference sequence loop: calls [`Cell::step`] once per time step, in the order of
/// `schedule`, and applies the padding rule row by row (a padded row keeps its state and outputs
/// zero).
///
/// Returns the outputs `(T, B, H)`, the final state and the per-step caches (in processing order)
/// for [`backward_steps`]. Gives the same numbers as [`Cell::forward_sequence`] (up to rounding).
///
/// # Panics
///
/// As [`Cell::step`].
pub fn forward_steps<F: Float, C: Cell<F>>(
    cell: &C,
    x: ArrayView3<'_, F>,
    init: &C::State,
    schedule: Schedule<'_>,
) -> (Array3<F>, C::State, Vec<C::StepCache>) {
    let (steps, batch, _) = x.dim();
    let mut out = Array3::zeros((steps, batch, cell.output_size()));
    let mut caches = Vec::with_capacity(steps);
    let mut state = init.clone();
    for s in 0..steps {
        let t = schedule.time(s, steps);
        let (mut next, cache) = cell.step(x.index_axis(Axis(0), t), &state);
        copy_rows(&mut next, &state, |r| !schedule.active(t, r));
        let mut out_t = out.index_axis_mut(Axis(0), t);
        for r in (0..batch).filter(|&r| schedule.active(t, r)) {
            out_t.row_mut(r).assign(&next.h().row(r));
        }
        caches.push(cache);
        state = next;
    }
    (out, state, caches)
}

/// The reference backward loop: calls [`Cell::backward_step`] from the last processed step to the
/// first, with the padding rule applied row by row (gradients pass a padded row unchanged).
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
    schedule: Schedule<'_>,
    grads: &mut C,
) -> (Array3<F>, C::State) {
    let (steps, batch, _) = d_output.dim();
    assert_eq!(caches.len(), steps, "one cache per time step");
    let mut dx = Array3::zeros((steps, batch, cell.input_size()));
    let mut d_state = d_final.clone();
    let zero = cell.zero_state(batch);
    for s in (0..steps).rev() {
        let t = schedule.time(s, steps);
        let active = |r: usize| schedule.active(t, r);
        let mut d_in = d_state.clone();
        copy_rows(&mut d_in, &zero, |r| !active(r));
        {
            let mut dh = d_in.h_mut();
            for r in (0..batch).filter(|&r| active(r)) {
                let mut row = dh.row_mut(r);
                row += &d_output.index_axis(Axis(0), t).row(r);
            }
        }
        let (dxt, mut d_prev) = cell.backward_step(&caches[s], &d_in, grads);
        copy_rows(&mut d_prev, &d_state, |r| !active(r));
        dx.index_axis_mut(Axis(0), t).assign(&dxt);
        d_state = d_prev;
    }
    (dx, d_state)
}
