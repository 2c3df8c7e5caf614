//! [`CellInit`]: what a [`RecurrentStack`](crate::RecurrentStack) needs to build and check the
//! built-in cells.

use rand::Rng;

use super::{Cell, CellWeights, GruCell, LstmCell, Nonlinearity, RnnCell};
use crate::error::{Error, Result};
use crate::float::Float;

/// A cell type a [`RecurrentStack`](crate::RecurrentStack) can build: [`RnnCell`], [`LstmCell`], [`GruCell`].
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
    /// As the cell's `from_weights`.
    fn cell_from_weights(weights: CellWeights<F>, nonlinearity: Nonlinearity) -> Result<Self>;

    /// The weights in PyTorch's layout.
    fn cell_weights(&self) -> &CellWeights<F>;

    /// The nonlinearity (tanh for LSTM and GRU, whose activations are fixed).
    fn cell_nonlinearity(&self) -> Nonlinearity {
        Nonlinearity::Tanh
    }
}

fn fixed_activation(kind: &str, nonlinearity: Nonlinearity) -> Result<()> {
    if nonlinearity != Nonlinearity::Tanh {
        return Err(Error::InvalidConfig(format!(
            "nonlinearity {nonlinearity:?} applies to Rnn only; {kind} has fixed activations"
        )));
    }
    Ok(())
}

impl<F: Float> CellInit<F> for RnnCell<F> {
    const GATES: usize = 1;
    const KIND: &'static str = "RNN";
    fn init_cell<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        nonlinearity: Nonlinearity,
        rng: &mut R,
    ) -> Result<Self> {
        RnnCell::with_bias(input_size, hidden_size, nonlinearity, bias, rng)
    }
    fn cell_from_weights(weights: CellWeights<F>, nonlinearity: Nonlinearity) -> Result<Self> {
        RnnCell::from_weights(weights, nonlinearity)
    }
    fn cell_weights(&self) -> &CellWeights<F> {
        self.weights()
    }
    fn cell_nonlinearity(&self) -> Nonlinearity {
        self.nonlinearity()
    }
}

impl<F: Float> CellInit<F> for LstmCell<F> {
    const GATES: usize = 4;
    const KIND: &'static str = "LSTM";
    fn init_cell<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        nonlinearity: Nonlinearity,
        rng: &mut R,
    ) -> Result<Self> {
        fixed_activation("Lstm", nonlinearity)?;
        LstmCell::with_bias(input_size, hidden_size, bias, rng)
    }
    fn cell_from_weights(weights: CellWeights<F>, nonlinearity: Nonlinearity) -> Result<Self> {
        fixed_activation("Lstm", nonlinearity)?;
        LstmCell::from_weights(weights)
    }
    fn cell_weights(&self) -> &CellWeights<F> {
        self.weights()
    }
}

impl<F: Float> CellInit<F> for GruCell<F> {
    const GATES: usize = 3;
    const KIND: &'static str = "GRU";
    fn init_cell<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        nonlinearity: Nonlinearity,
        rng: &mut R,
    ) -> Result<Self> {
        fixed_activation("Gru", nonlinearity)?;
        GruCell::with_bias(input_size, hidden_size, bias, rng)
    }
    fn cell_from_weights(weights: CellWeights<F>, nonlinearity: Nonlinearity) -> Result<Self> {
        fixed_activation("Gru", nonlinearity)?;
        GruCell::from_weights(weights)
    }
    fn cell_weights(&self) -> &CellWeights<F> {
        self.weights()
    }
}
