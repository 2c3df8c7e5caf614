//! What the built-in cells share: the [`EngineCell`] trait each of them implements (its gate
//! kernel, its weights, its state), and from it, once for all, their [`Cell`], [`Params`] and
//! [`CellInit`] implementations.

use ndarray::{
    Array2, Array3, ArrayView1, ArrayView2, ArrayView3, ArrayViewD, ArrayViewMut1, ArrayViewMutD,
};
use rand::Rng;

use super::engine::{self, EngineCell, EngineState, Schedule, SequenceTape, StepCache};
use super::stream::{self, StepScratch};
use super::{Cell, CellWeights, Nonlinearity};
use crate::error::Result;
use crate::float::Float;
use crate::params::Params;

/// PyTorch's arrays ([`CellWeights`]) first, then the cell's own parameters (a layer-normalised
/// LSTM's gains and biases) in the cell's order.
impl<F: Float, C: EngineCell<Elem = F>> Params<F> for C {
    fn named_arrays(&self) -> Vec<(String, ArrayViewD<'_, F>)> {
        let mut v = self.weights().named_arrays();
        let mut rest = self.own();
        for (name, len) in self.own_layout() {
            let (part, tail) = rest.split_at(len);
            v.push((name.to_string(), ArrayView1::from(part).into_dyn()));
            rest = tail;
        }
        v
    }
    fn arrays_mut(&mut self) -> Vec<ArrayViewMutD<'_, F>> {
        let layout = self.own_layout();
        let (weights, mut rest) = self.params_mut();
        let mut v = weights.arrays_mut();
        for (_, len) in layout {
            let (part, tail) = std::mem::take(&mut rest).split_at_mut(len);
            v.push(ArrayViewMut1::from(part).into_dyn());
            rest = tail;
        }
        v
    }
}

impl<F: Float, C: EngineCell<Elem = F>> Cell<F> for C {
    type State = C::State;
    type StepCache = StepCache<F>;
    type Tape = SequenceTape<F>;

    fn input_size(&self) -> usize {
        self.weights().weight_ih.ncols()
    }

    fn hidden_size(&self) -> usize {
        self.weights().hidden_size()
    }

    fn output_size(&self) -> usize {
        self.weights().output_size()
    }

    #[track_caller]
    fn step(&self, x: ArrayView2<'_, F>, state: &C::State) -> (C::State, StepCache<F>) {
        engine::step(self, x, state)
    }

    #[track_caller]
    fn backward_step(
        &self,
        cache: &StepCache<F>,
        d_state: &C::State,
        grads: &mut Self,
    ) -> (Array2<F>, C::State) {
        engine::backward_step(self, cache, d_state, grads)
    }

    #[track_caller]
    fn forward_sequence(
        &self,
        x: ArrayView3<'_, F>,
        init: &C::State,
        schedule: Schedule<'_>,
    ) -> (Array3<F>, C::State, SequenceTape<F>) {
        let (out, last, tape) = engine::run(self, x, init, schedule, true);
        (out, last, tape.expect("tape kept"))
    }

    #[track_caller]
    fn infer_sequence(
        &self,
        x: ArrayView3<'_, F>,
        init: &C::State,
        schedule: Schedule<'_>,
    ) -> (Array3<F>, C::State) {
        let (out, last, _) = engine::run(self, x, init, schedule, false);
        (out, last)
    }

    #[track_caller]
    fn backward_sequence(
        &self,
        tape: &SequenceTape<F>,
        d_output: ArrayView3<'_, F>,
        d_final: &C::State,
        grads: &mut Self,
    ) -> (Array3<F>, C::State) {
        engine::backward(self, tape, d_output, d_final, grads, true)
    }

    #[track_caller]
    fn backward_sequence_params(
        &self,
        tape: &SequenceTape<F>,
        d_output: ArrayView3<'_, F>,
        d_final: &C::State,
        grads: &mut Self,
    ) -> C::State {
        engine::backward(self, tape, d_output, d_final, grads, false).1
    }
}

/// A cell type a [`RecurrentStack`](crate::RecurrentStack) can build, load, save and stream: the
/// built-in cells, and a cell of your own that implements it (see the module's table, "Which
/// layers a cell gets", and `tests/it/user_cell.rs` in the repository for a whole example).
pub trait CellInit<F: Float>: Cell<F> + Sized {
    /// Gates stacked in the weights (1 RNN, 4 LSTM, 3 GRU).
    const GATES: usize;
    /// PyTorch's module name (`"RNN"`, `"LSTM"`, `"GRU"`), for messages.
    const KIND: &'static str;

    /// A cell with PyTorch's default initialisation; `proj_size > 0` adds an output projection
    /// (LSTM only).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if a size is zero, the
    /// nonlinearity or the projection does not apply, or `proj_size ≥ hidden_size`.
    fn init_cell<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        proj_size: usize,
        bias: bool,
        nonlinearity: Nonlinearity,
        rng: &mut R,
    ) -> Result<Self>;

    /// A cell from weights in PyTorch's layout.
    ///
    /// # Errors
    ///
    /// As the cell's `from_weights`; [`Error::InvalidConfig`](crate::Error::InvalidConfig) if the nonlinearity does not apply.
    fn cell_from_weights(weights: CellWeights<F>, nonlinearity: Nonlinearity) -> Result<Self>;

    /// The weights in PyTorch's layout.
    fn cell_weights(&self) -> &CellWeights<F>;

    /// The nonlinearity (tanh for LSTM and GRU, whose activations are fixed).
    fn cell_nonlinearity(&self) -> Nonlinearity {
        Nonlinearity::Tanh
    }

    /// `true` if the cell has biases (PyTorch's `bias`; a layer-normalised LSTM's are its
    /// normalisations' biases).
    fn cell_has_bias(&self) -> bool {
        self.cell_weights().has_bias()
    }

    /// The parameter (without the `_l{k}` suffix) whose presence in a weight file says the cells
    /// have biases: `bias_ih`, or for a cell whose biases are its own, one of those
    /// (`ln_ih_bias` for [`LayerNormLstmCell`](super::LayerNormLstmCell)).
    const BIAS_KEY: &'static str = "bias_ih";

    /// A cell from weights read from a file, with biases if `bias`, for a cell whose biases are
    /// not [`CellWeights`]' (otherwise as [`CellInit::cell_from_weights`]); its parameters beyond
    /// `weights` start at their initial values and are read next, by name, through
    /// [`Params::arrays_mut`].
    ///
    /// # Errors
    ///
    /// As [`CellInit::cell_from_weights`].
    fn cell_from_file_weights(weights: CellWeights<F>, bias: bool) -> Result<Self> {
        let _ = bias;
        Self::cell_from_weights(weights, Nonlinearity::Tanh)
    }

    /// What [`CellInit::step_into`] keeps between steps (buffers, weights laid out once): the
    /// built-in cells' [`StepScratch`]; a cell of your own may use `()` and allocate in
    /// `step_into`, or keep buffers of its own.
    type Scratch<'w>: Send
    where
        Self: 'w;

    /// Buffers for [`CellInit::step_into`] over `batch` rows, with the recurrent weights laid
    /// out once. [`Stream`](crate::layer::Stream) keeps one per layer.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfMemory`](crate::Error::OutOfMemory) if the buffers cannot be allocated.
    fn step_scratch(&self, batch: usize) -> Result<Self::Scratch<'_>>;

    /// One step of every row of `state` by the input `x` `(B, I)`, written into `next` (shaped
    /// like `state`: `h` `(B, output_size)`, `c` `(B, H)`), with `scratch`'s buffers: the same
    /// numbers as [`Cell::infer_sequence`] over one step, and no allocation where the products use
    /// the crate's own kernels.
    ///
    /// # Panics
    ///
    /// If `scratch` was made for another batch size, or `x`, `state` or `next` do not have the
    /// shapes above.
    fn step_into(
        &self,
        scratch: &mut Self::Scratch<'_>,
        x: ArrayView2<'_, F>,
        state: &Self::State,
        next: &mut Self::State,
    );
}

/// The one place where a built-in cell is made, from sizes or from weights.
impl<F: Float, C: EngineCell<Elem = F>> CellInit<F> for C {
    const GATES: usize = <C as EngineCell>::GATES;
    const KIND: &'static str = <C as EngineCell>::KIND;

    fn init_cell<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        proj_size: usize,
        bias: bool,
        nonlinearity: Nonlinearity,
        rng: &mut R,
    ) -> Result<Self> {
        C::check_nonlinearity(nonlinearity)?;
        check_projection::<C>(proj_size > 0)?;
        let gates = <C as EngineCell>::GATES;
        let weights =
            CellWeights::init_projected(gates, input_size, hidden_size, proj_size, bias, rng)?;
        Ok(C::assemble(weights, nonlinearity))
    }

    fn cell_from_weights(weights: CellWeights<F>, nonlinearity: Nonlinearity) -> Result<Self> {
        C::check_nonlinearity(nonlinearity)?;
        check_projection::<C>(weights.weight_hr.is_some())?;
        let weights = weights.checked(<C as EngineCell>::GATES)?;
        Ok(C::assemble(weights, nonlinearity))
    }

    fn cell_weights(&self) -> &CellWeights<F> {
        self.weights()
    }

    fn cell_nonlinearity(&self) -> Nonlinearity {
        self.nonlinearity()
    }

    fn cell_has_bias(&self) -> bool {
        EngineCell::has_bias(self)
    }

    const BIAS_KEY: &'static str = <C as EngineCell>::BIAS_KEY;

    fn cell_from_file_weights(weights: CellWeights<F>, bias: bool) -> Result<Self> {
        check_projection::<C>(weights.weight_hr.is_some())?;
        let weights = weights.checked(<C as EngineCell>::GATES)?;
        Ok(C::assemble_with_bias(weights, Nonlinearity::Tanh, bias))
    }

    type Scratch<'w>
        = StepScratch<'w, F>
    where
        C: 'w;

    fn step_scratch(&self, batch: usize) -> Result<StepScratch<'_, F>> {
        StepScratch::new::<C>(self.weights(), batch)
    }

    #[track_caller]
    fn step_into(
        &self,
        scratch: &mut StepScratch<'_, F>,
        x: ArrayView2<'_, F>,
        state: &C::State,
        next: &mut C::State,
    ) {
        let batch = scratch.batch();
        assert_eq!(
            x.dim(),
            (batch, self.input_size()),
            "x must be (B, I) for the scratch's batch"
        );
        let (hidden, out) = (self.hidden_size(), self.output_size());
        // `split`, not `State::parts`: no allocation.
        for s in [state.split(), next.split()] {
            assert_eq!(s.0.dim(), (batch, out), "state.h must be (B, {out})");
            if let Some(c) = s.1 {
                assert_eq!(c.dim(), (batch, hidden), "state.c must be (B, {hidden})");
            }
        }
        stream::step_into(self, scratch, x, state, next);
    }
}

/// `Ok` unless a projection is asked of a cell without one (only an LSTM has `proj_size`).
fn check_projection<C: EngineCell>(projected: bool) -> Result<()> {
    if projected && !C::PROJECTION {
        let name = C::TYPE_NAME;
        return Err(crate::Error::InvalidConfig(format!(
            "proj_size (weight_hr) applies to Lstm only; {name} has no output projection"
        )));
    }
    Ok(())
}
