//! The Elman RNN cell (`torch.nn.RNN`), with tanh or ReLU.

use ndarray::Array2;
use rand::Rng;

use super::engine::{BackwardRow, EngineCell, ForwardRow};
use super::weights::CellWeights;
use super::{CellInit, Nonlinearity};
use crate::error::Result;
use crate::float::Float;

/// Elman RNN cell, exactly `torch.nn.RNN`'s step:
///
/// ```text
/// h' = act(v),   v = x W_ihᵀ + b_ih + h W_hhᵀ + b_hh,   act = tanh (default) or relu
/// ```
///
/// and its backward, from the gradient `dh'` reaching `h'` (`act'` from the saved output: tanh'
/// = 1 − h'², relu' = [h' > 0]):
///
/// ```text
/// dv = dh' ∘ act'(v)
/// dx = dv W_ih,   dh = dv W_hh,   dW_ih += dvᵀ x,   dW_hh += dvᵀ h,   db_ih, db_hh += Σ_batch dv
/// ```
///
/// Weights in PyTorch's layout ([`CellWeights`] with one gate): `weight_ih (H, I)`,
/// `weight_hh (H, H)`, `bias_ih (H)`, `bias_hh (H)`. The state is `h`, an [`Array2`] `(B, H)`.
///
/// # Examples
///
/// ```
/// use ndarray::Array3;
/// use rand::SeedableRng;
/// use recurrent::cell::Schedule;
/// use recurrent::{Cell, Nonlinearity, RnnCell};
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
/// let cell = RnnCell::<f32>::new(2, 3, Nonlinearity::Relu, &mut rng)?;
/// let x = Array3::<f32>::ones((5, 4, 2)); // (T, B, I)
/// let (out, h_last) = cell.infer_sequence(x.view(), &cell.zero_state(4), Schedule::FORWARD);
/// assert_eq!(out.dim(), (5, 4, 3));
/// assert!(out.iter().all(|&v| v >= 0.0));
/// assert_eq!(h_last, out.index_axis(ndarray::Axis(0), 4));
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RnnCell<F: Float> {
    weights: CellWeights<F>,
    nonlinearity: Nonlinearity,
}

impl<F: Float> EngineCell for RnnCell<F> {
    type Elem = F;
    type State = Array2<F>;
    const GATES: usize = 1;
    const KIND: &'static str = "RNN";
    const TYPE_NAME: &'static str = "Rnn";
    const SEPARATE_REC: bool = false;

    fn aux_width(_: usize) -> usize {
        0
    }

    fn assemble(weights: CellWeights<F>, nonlinearity: Nonlinearity) -> Self {
        Self {
            weights,
            nonlinearity,
        }
    }
    fn check_nonlinearity(_: Nonlinearity) -> Result<()> {
        Ok(())
    }
    fn weights(&self) -> &CellWeights<F> {
        &self.weights
    }
    fn params_mut(&mut self) -> (&mut CellWeights<F>, &mut [F]) {
        (&mut self.weights, &mut [])
    }
    fn nonlinearity(&self) -> Nonlinearity {
        self.nonlinearity
    }

    /// `g = v` in, `g = h' = act(v)` out.
    #[inline(always)]
    fn forward_row(&self, row: ForwardRow<'_, F>) {
        let ForwardRow { g, h, .. } = row;
        // One loop per activation, so each vectorises.
        match self.nonlinearity {
            Nonlinearity::Tanh => g.iter_mut().zip(h).for_each(|(g, h)| {
                *g = g.activation_tanh();
                *h = *g;
            }),
            // `v ≤ 0 → 0`, else `v`: a NaN stays NaN, as in PyTorch (`max(v, 0)` would make it 0).
            Nonlinearity::Relu => g.iter_mut().zip(h).for_each(|(g, h)| {
                if *g <= F::zero() {
                    *g = F::zero();
                }
                *h = *g;
            }),
        }
    }

    /// `dv = dh' ∘ act'(v)` into `d_pre`; `h` reaches `h'` only through `W_hh`.
    #[inline(always)]
    fn backward_row(&self, row: BackwardRow<'_, F>) {
        let BackwardRow {
            g,
            dh,
            d_xp: d_pre,
            dh_direct,
            ..
        } = row;
        for j in 0..g.len() {
            d_pre[j] = dh[j] * self.nonlinearity.derivative_from_output(g[j]);
            dh_direct[j] = F::zero();
        }
    }
}

impl<F: Float> RnnCell<F> {
    /// A cell with biases and PyTorch's default initialisation, `uniform(−1/√H, 1/√H)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if a size is zero.
    pub fn new<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        nonlinearity: Nonlinearity,
        rng: &mut R,
    ) -> Result<Self> {
        Self::with_bias(input_size, hidden_size, nonlinearity, true, rng)
    }

    /// Like [`RnnCell::new`], with or without the two bias vectors (PyTorch's `bias` argument).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if a size is zero.
    pub fn with_bias<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        nonlinearity: Nonlinearity,
        bias: bool,
        rng: &mut R,
    ) -> Result<Self> {
        Self::init_cell(input_size, hidden_size, 0, bias, nonlinearity, rng)
    }

    /// A cell from given weights in PyTorch's layout.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`](crate::Error::Shape) naming the first array whose shape does not fit
    /// (`weight_hh` must be `(H, H)`, `weight_ih` `(H, I)`, biases `(H)`), and
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if only one bias is given.
    pub fn from_weights(weights: CellWeights<F>, nonlinearity: Nonlinearity) -> Result<Self> {
        Self::cell_from_weights(weights, nonlinearity)
    }

    /// The weights, in PyTorch's layout.
    pub fn weights(&self) -> &CellWeights<F> {
        &self.weights
    }

    /// Consumes the cell and returns its weights.
    pub fn into_weights(self) -> CellWeights<F> {
        self.weights
    }

    /// The activation.
    pub fn nonlinearity(&self) -> Nonlinearity {
        self.nonlinearity
    }
}
