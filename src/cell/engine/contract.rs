//! What a cell supplies to the engine ([`EngineCell`]) and the state it carries ([`EngineState`]).

use std::fmt::Debug;

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use super::super::{Nonlinearity, State};
use super::CellWeights;
use crate::error::{Error, Result};
use crate::float::Float;

/// A cell that the sequence engine runs: what differs between an Elman RNN, an LSTM, a GRU and a
/// layer-normalised LSTM.
///
/// The engine (this module) does the matrix products, the time loop, padding, the tape and the
/// sums of gradients over batch shards; the cell declares its widths and supplies its parameters
/// and the fused element-wise kernel of one step for one batch row, forward ([`ForwardRow`]) and
/// backward ([`BackwardRow`]). Every implementor gets [`Cell`](super::super::Cell),
/// [`Params`](crate::Params) and [`CellInit`](super::super::CellInit) from the blanket
/// implementations in `builtin.rs`, and with them every layer: `Recurrent`, `Bidirectional`,
/// `RecurrentStack`, streaming and loading.
///
/// What a cell declares:
///
/// | item | meaning | RNN | LSTM | GRU | LN-LSTM |
/// |---|---|---|---|---|---|
/// | [`GATES`](EngineCell::GATES) | `G`: row blocks of `weight_ih`, `weight_hh` | 1 | 4 | 3 | 4 |
/// | [`aux_width`](EngineCell::aux_width) | numbers saved per step and row | 0 | `H` | `H` | `10H + 3` |
/// | [`SEPARATE_REC`](EngineCell::SEPARATE_REC) | `h W_hhᵀ (+ b_hh)` kept apart from `x W_ihᵀ` | no | no | yes | yes |
/// | [`own`](EngineCell::own) | parameters beyond [`CellWeights`] | — | — | — | LN gains, biases |
///
/// Biases: the engine adds `b_ih` (and `b_hh`, unless `SEPARATE_REC`, where it goes into the
/// recurrent product) *before* the kernel; a cell that adds its biases elsewhere (after a
/// normalisation) keeps `CellWeights`' biases `None` and owns its own ([`EngineCell::own`]), whose
/// gradients the kernel writes itself ([`BackwardRow::d_own`]).
///
/// Crate-private: declared `pub` (so the blanket `Cell` implementation may name its associated
/// types) in this private module, and not re-exported, so no user crate can name or implement it.
pub trait EngineCell: Clone + Debug + Send + Sync {
    /// The float type of the weights.
    type Elem: Float;
    /// The recurrent state (`h`, or `h` and `c`).
    type State: EngineState<Self::Elem>;
    /// Gates stacked in the weights (1 RNN, 4 LSTM, 3 GRU).
    const GATES: usize;
    /// PyTorch's module name (`"RNN"`, `"LSTM"`, `"GRU"`), for messages.
    const KIND: &'static str;
    /// The names of the cell's own parameters beyond PyTorch's five, in [`EngineCell::own`]'s
    /// order, every one the cell can have (with biases).
    const OWN_NAMES: &'static [&'static str] = &[];
    /// The crate's name of a stack of these cells (`"Rnn"`, `"Lstm"`, `"LayerNormLstm"`), for
    /// messages.
    const TYPE_NAME: &'static str;
    /// Needs the recurrent product `h W_hhᵀ + b_hh` apart from the input projection (GRU): the
    /// kernel then reads it in [`ForwardRow::rec`] and writes its gradient into
    /// [`BackwardRow::d_rec`].
    const SEPARATE_REC: bool;
    /// May have an output projection `weight_hr` (LSTM): the kernel's `h` is then the
    /// unprojected output, and the engine multiplies it by `W_hrᵀ`.
    const PROJECTION: bool = false;
    /// The parameter whose presence in a weight file says the cell has biases (PyTorch's
    /// `bias_ih`; a cell with its own biases names one of those).
    const BIAS_KEY: &'static str = "bias_ih";

    /// How many numbers the kernel saves per step and row for its backward
    /// ([`ForwardRow::aux`]), for `hidden` = `H` (LSTM: `tanh(c')`, `H`; GRU: `h W_hnᵀ + b_hn`,
    /// `H`; RNN: none).
    fn aux_width(hidden: usize) -> usize;

    /// The cell made of `weights`, already checked for [`Self::GATES`] gates, and a nonlinearity
    /// that [`EngineCell::check_nonlinearity`] accepted; its own parameters (if any) at their
    /// initial values.
    fn assemble(weights: CellWeights<Self::Elem>, nonlinearity: Nonlinearity) -> Self;

    /// [`EngineCell::assemble`] for a cell whose biases are its own (not `weights`' `bias_ih`,
    /// `bias_hh`): with them if `bias`. By default the biases are `weights`'.
    fn assemble_with_bias(
        weights: CellWeights<Self::Elem>,
        nonlinearity: Nonlinearity,
        bias: bool,
    ) -> Self {
        let _ = bias;
        Self::assemble(weights, nonlinearity)
    }

    /// `Ok` if the cell can use `nonlinearity`: only tanh, by default (fixed activations).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] otherwise.
    fn check_nonlinearity(nonlinearity: Nonlinearity) -> Result<()> {
        if nonlinearity != Nonlinearity::Tanh {
            return Err(Error::InvalidConfig(format!(
                "nonlinearity {nonlinearity:?} applies to Rnn only; {} has fixed activations",
                Self::TYPE_NAME
            )));
        }
        Ok(())
    }

    /// The weights, in PyTorch's layout.
    fn weights(&self) -> &CellWeights<Self::Elem>;

    /// The weights and the cell's own parameters, mutable.
    fn params_mut(&mut self) -> (&mut CellWeights<Self::Elem>, &mut [Self::Elem]);

    /// The weights, mutable.
    fn weights_mut(&mut self) -> &mut CellWeights<Self::Elem> {
        self.params_mut().0
    }

    /// The cell's own parameters beyond [`CellWeights`], one flat vector laid out as
    /// [`EngineCell::own_layout`] says (empty by default).
    fn own(&self) -> &[Self::Elem] {
        &[]
    }

    /// The names (PyTorch's, without the `_l{k}` suffix) and lengths of the parts of
    /// [`EngineCell::own`], in order.
    fn own_layout(&self) -> Vec<(&'static str, usize)> {
        Vec::new()
    }

    /// `true` if the cell has biases (for a cell with its own biases, those).
    fn has_bias(&self) -> bool {
        self.weights().has_bias()
    }

    /// The nonlinearity (tanh for cells with fixed activations).
    fn nonlinearity(&self) -> Nonlinearity {
        Nonlinearity::Tanh
    }

    /// Forward for one row of one step (see [`ForwardRow`]).
    fn forward_row(&self, row: ForwardRow<'_, Self::Elem>);

    /// Backward for one row of one step (see [`BackwardRow`]).
    fn backward_row(&self, row: BackwardRow<'_, Self::Elem>);
}

/// One row of one step forward: what [`EngineCell::forward_row`] reads and writes. `G·H` wide:
/// `g`, `rec`; `H` wide: `c_prev`, `c` (0 without a cell state), `h` (the unprojected output);
/// the output width: `h_prev`; [`EngineCell::aux_width`]: `aux`.
pub struct ForwardRow<'a, F> {
    /// The input projection `x W_ihᵀ + b_ih` (plus the recurrent product `h W_hhᵀ + b_hh` unless
    /// `SEPARATE_REC`); the kernel overwrites it with what backward needs (activated gates).
    pub g: &'a mut [F],
    /// The recurrent product `h W_hhᵀ + b_hh` if `SEPARATE_REC`, else empty.
    pub rec: &'a [F],
    /// The state before the step.
    pub h_prev: &'a [F],
    /// The cell state before the step.
    pub c_prev: &'a [F],
    /// The new `h`, written by the kernel.
    pub h: &'a mut [F],
    /// The new `c`, written by the kernel.
    pub c: &'a mut [F],
    /// What the kernel saves for backward, written by it.
    pub aux: &'a mut [F],
}

/// One row of one step backward: what [`EngineCell::backward_row`] reads and writes.
///
/// From the saved `g` and `aux`, the previous state and the gradient `dh` reaching the new `h`
/// and `dc` reaching the new `c` (replaced by the gradient of `c_prev`), the kernel writes the
/// gradient `d_xp` of the input projection, `d_rec` of the recurrent product (if
/// `SEPARATE_REC`), the direct part `dh_direct` of the gradient of `h_prev` that does not go
/// through `W_hh`, and *adds* the gradients of its own parameters into `d_own`.
pub struct BackwardRow<'a, F> {
    /// What forward left in [`ForwardRow::g`].
    pub g: &'a [F],
    /// What forward saved in [`ForwardRow::aux`].
    pub aux: &'a [F],
    /// The state before the step.
    pub h_prev: &'a [F],
    /// The cell state before the step (empty without one).
    pub c_prev: &'a [F],
    /// The gradient reaching the new (unprojected) `h`.
    pub dh: &'a [F],
    /// The gradient reaching the new `c`; replaced by that of `c_prev`.
    pub dc: &'a mut [F],
    /// Written: the gradient of the input projection, `G·H`.
    pub d_xp: &'a mut [F],
    /// Written: the gradient of the recurrent product (`SEPARATE_REC`), else empty.
    pub d_rec: &'a mut [F],
    /// Written: the gradient of `h_prev` that does not go through `W_hh`.
    pub dh_direct: &'a mut [F],
    /// Added into: the gradients of [`EngineCell::own`], same layout.
    pub d_own: &'a mut [F],
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
