//! What the built-in cells share: the [`EngineCell`] trait each of them implements (its gate
//! kernel, its weights, its state), and from it, once for all, their [`Cell`], [`Params`] and
//! [`CellInit`] implementations.

use std::fmt::Debug;

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayViewD, ArrayViewMutD};
use rand::Rng;

use super::engine::{self, Schedule, SequenceTape, StepCache};
use super::{Cell, CellWeights, Nonlinearity, State};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::params::Params;

/// A cell that the sequence engine runs: what differs between an Elman RNN, an LSTM and a GRU.
///
/// The engine ([`super::engine`]) does the matrix products, the time loop, padding and the tape;
/// the cell supplies its gate count, its weights in PyTorch's layout, and the fused element-wise
/// kernel of one step for one batch row, forward and backward. Every implementor gets [`Cell`],
/// [`Params`] and [`CellInit`] from the blanket implementations below.
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
}

/// The state of an Elman RNN and a GRU: `h` alone.
impl<F: Float> EngineState<F> for Array2<F> {
    fn split(&self) -> (ArrayView2<'_, F>, Option<ArrayView2<'_, F>>) {
        (self.view(), None)
    }

    fn join(h: Array2<F>, _: Option<Array2<F>>) -> Self {
        h
    }
}

impl<F: Float, C: EngineCell<Elem = F>> Params<F> for C {
    fn named_arrays(&self) -> Vec<(String, ArrayViewD<'_, F>)> {
        self.weights().named_arrays()
    }
    fn arrays_mut(&mut self) -> Vec<ArrayViewMutD<'_, F>> {
        self.weights_mut().arrays_mut()
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
        self.weights().weight_hh.ncols()
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
        engine::backward_step(self, cache, d_state, grads.weights_mut())
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
        engine::backward(self, tape, d_output, d_final, grads.weights_mut(), true)
    }

    #[track_caller]
    fn backward_sequence_params(
        &self,
        tape: &SequenceTape<F>,
        d_output: ArrayView3<'_, F>,
        d_final: &C::State,
        grads: &mut Self,
    ) -> C::State {
        engine::backward(self, tape, d_output, d_final, grads.weights_mut(), false).1
    }
}

/// A cell type a [`RecurrentStack`](crate::RecurrentStack) can build: [`RnnCell`](super::RnnCell),
/// [`LstmCell`](super::LstmCell), [`GruCell`](super::GruCell).
pub trait CellInit<F: Float>: Cell<F> + Sized {
    /// Gates stacked in the weights (1 RNN, 4 LSTM, 3 GRU).
    const GATES: usize;
    /// PyTorch's module name (`"RNN"`, `"LSTM"`, `"GRU"`), for messages.
    const KIND: &'static str;

    /// A cell with PyTorch's default initialisation.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if a size is zero or the nonlinearity does not apply.
    fn init_cell<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        nonlinearity: Nonlinearity,
        rng: &mut R,
    ) -> Result<Self>;

    /// A cell from weights in PyTorch's layout.
    ///
    /// # Errors
    ///
    /// As the cell's `from_weights`; [`Error::InvalidConfig`] if the nonlinearity does not apply.
    fn cell_from_weights(weights: CellWeights<F>, nonlinearity: Nonlinearity) -> Result<Self>;

    /// The weights in PyTorch's layout.
    fn cell_weights(&self) -> &CellWeights<F>;

    /// The nonlinearity (tanh for LSTM and GRU, whose activations are fixed).
    fn cell_nonlinearity(&self) -> Nonlinearity {
        Nonlinearity::Tanh
    }
}

/// The one place where a built-in cell is made, from sizes or from weights.
impl<F: Float, C: EngineCell<Elem = F>> CellInit<F> for C {
    const GATES: usize = <C as EngineCell>::GATES;
    const KIND: &'static str = <C as EngineCell>::KIND;

    fn init_cell<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        nonlinearity: Nonlinearity,
        rng: &mut R,
    ) -> Result<Self> {
        C::check_nonlinearity(nonlinearity)?;
        let gates = <C as EngineCell>::GATES;
        let weights = CellWeights::init(gates, input_size, hidden_size, bias, rng)?;
        Ok(C::assemble(weights, nonlinearity))
    }

    fn cell_from_weights(weights: CellWeights<F>, nonlinearity: Nonlinearity) -> Result<Self> {
        C::check_nonlinearity(nonlinearity)?;
        let weights = weights.checked(<C as EngineCell>::GATES)?;
        Ok(C::assemble(weights, nonlinearity))
    }

    fn cell_weights(&self) -> &CellWeights<F> {
        self.weights()
    }

    fn cell_nonlinearity(&self) -> Nonlinearity {
        self.nonlinearity()
    }
}
