//! The Elman RNN cell (`torch.nn.RNN`), with tanh or ReLU.

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayViewD, ArrayViewMutD};
use rand::Rng;

use super::engine::{self, Kernel, Schedule, SequenceTape, StepCache};
use super::weights::CellWeights;
use super::Cell;
use crate::error::Result;
use crate::float::Float;
use crate::params::Params;

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
    fn derivative_from_output<F: Float>(self, y: F) -> F {
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

/// Elman RNN cell, exactly `torch.nn.RNN`'s step:
///
/// ```text
/// h' = act(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh),   act = tanh (default) or relu
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

/// The Elman RNN's element-wise kernel.
struct RnnKernel(Nonlinearity);

impl<F: Float> Kernel<F> for RnnKernel {
    const GATES: usize = 1;
    const HAS_C: bool = false;
    const HAS_AUX: bool = false;
    const SEPARATE_REC: bool = false;

    #[inline(always)]
    fn forward_row(
        &self,
        g: &mut [F],
        _: &[F],
        _: &[F],
        _: &[F],
        h: &mut [F],
        _: &mut [F],
        _: &mut [F],
    ) {
        // One loop per activation, so each vectorises.
        match self.0 {
            Nonlinearity::Tanh => g.iter_mut().zip(h).for_each(|(g, h)| {
                *g = g.activation_tanh();
                *h = *g;
            }),
            Nonlinearity::Relu => g.iter_mut().zip(h).for_each(|(g, h)| {
                *g = g.max(F::zero());
                *h = *g;
            }),
        }
    }

    #[inline(always)]
    fn backward_row(
        &self,
        g: &[F],
        _aux: &[F],
        _h_prev: &[F],
        _c_prev: &[F],
        dh: &[F],
        _dc: &mut [F],
        d_pre: &mut [F],
        _d_rec: &mut [F],
        dh_direct: &mut [F],
    ) {
        for j in 0..g.len() {
            d_pre[j] = dh[j] * self.0.derivative_from_output(g[j]);
            dh_direct[j] = F::zero();
        }
    }
}

impl<F: Float> RnnCell<F> {
    /// The engine's backward; `dx` is `(T, B, 0)` without `input_grad`.
    #[track_caller]
    fn backward_engine(
        &self,
        tape: &SequenceTape<F>,
        d_output: ArrayView3<'_, F>,
        d_final: &Array2<F>,
        grads: &mut Self,
        input_grad: bool,
    ) -> (Array3<F>, Array2<F>) {
        let none = Array2::zeros((d_final.nrows(), 0));
        let (dx, dh, _) = engine::backward(
            &self.kernel(),
            &self.weights,
            tape,
            d_output,
            d_final.view(),
            none.view(),
            &mut grads.weights,
            input_grad,
        );
        (dx, dh)
    }

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
        let weights = CellWeights::init(1, input_size, hidden_size, bias, rng)?;
        Ok(Self {
            weights,
            nonlinearity,
        })
    }

    /// A cell from given weights in PyTorch's layout.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`](crate::Error::Shape) naming the first array whose shape does not fit
    /// (`weight_hh` must be `(H, H)`, `weight_ih` `(H, I)`, biases `(H)`), and
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if only one bias is given.
    pub fn from_weights(weights: CellWeights<F>, nonlinearity: Nonlinearity) -> Result<Self> {
        Ok(Self {
            weights: weights.checked(1)?,
            nonlinearity,
        })
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

    fn kernel(&self) -> RnnKernel {
        RnnKernel(self.nonlinearity)
    }
}

impl<F: Float> Params<F> for RnnCell<F> {
    fn named_arrays(&self) -> Vec<(String, ArrayViewD<'_, F>)> {
        self.weights.named_arrays()
    }
    fn arrays_mut(&mut self) -> Vec<ArrayViewMutD<'_, F>> {
        self.weights.arrays_mut()
    }
}

impl<F: Float> Cell<F> for RnnCell<F> {
    type State = Array2<F>;
    type StepCache = StepCache<F>;
    type Tape = SequenceTape<F>;

    fn input_size(&self) -> usize {
        self.weights.weight_ih.ncols()
    }

    fn hidden_size(&self) -> usize {
        self.weights.weight_hh.ncols()
    }

    #[track_caller]
    fn step(&self, x: ArrayView2<'_, F>, state: &Array2<F>) -> (Array2<F>, StepCache<F>) {
        let none = Array2::zeros((state.nrows(), 0));
        let (h, _, cache) =
            engine::step(&self.kernel(), &self.weights, x, state.view(), none.view());
        (h, cache)
    }

    #[track_caller]
    fn backward_step(
        &self,
        cache: &StepCache<F>,
        d_state: &Array2<F>,
        grads: &mut Self,
    ) -> (Array2<F>, Array2<F>) {
        let none = Array2::zeros((d_state.nrows(), 0));
        let (dx, dh, _) = engine::backward_step(
            &self.kernel(),
            &self.weights,
            cache,
            d_state.view(),
            none.view(),
            &mut grads.weights,
        );
        (dx, dh)
    }

    #[track_caller]
    fn forward_sequence(
        &self,
        x: ArrayView3<'_, F>,
        init: &Array2<F>,
        schedule: Schedule<'_>,
    ) -> (Array3<F>, Array2<F>, SequenceTape<F>) {
        let none = Array2::zeros((init.nrows(), 0));
        let (out, h, _, tape) = engine::run(
            &self.kernel(),
            &self.weights,
            x,
            init.view(),
            none.view(),
            schedule,
            true,
        );
        (out, h, tape.expect("tape kept"))
    }

    #[track_caller]
    fn infer_sequence(
        &self,
        x: ArrayView3<'_, F>,
        init: &Array2<F>,
        schedule: Schedule<'_>,
    ) -> (Array3<F>, Array2<F>) {
        let none = Array2::zeros((init.nrows(), 0));
        let (out, h, _, _) = engine::run(
            &self.kernel(),
            &self.weights,
            x,
            init.view(),
            none.view(),
            schedule,
            false,
        );
        (out, h)
    }

    #[track_caller]
    fn backward_sequence(
        &self,
        tape: &SequenceTape<F>,
        d_output: ArrayView3<'_, F>,
        d_final: &Array2<F>,
        grads: &mut Self,
    ) -> (Array3<F>, Array2<F>) {
        self.backward_engine(tape, d_output, d_final, grads, true)
    }

    #[track_caller]
    fn backward_sequence_params(
        &self,
        tape: &SequenceTape<F>,
        d_output: ArrayView3<'_, F>,
        d_final: &Array2<F>,
        grads: &mut Self,
    ) -> Array2<F> {
        self.backward_engine(tape, d_output, d_final, grads, false)
            .1
    }
}
