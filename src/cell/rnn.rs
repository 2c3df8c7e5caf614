//! The Elman RNN cell (`torch.nn.RNN`), with tanh or ReLU.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, ArrayViewD, ArrayViewMutD, Axis, Zip};
use rand::Rng;

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
    #[inline]
    fn apply<F: Float>(self, v: F) -> F {
        match self {
            Nonlinearity::Tanh => v.tanh(),
            Nonlinearity::Relu => v.max(F::zero()),
        }
    }

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
/// use recurrent::{Cell, Nonlinearity, RnnCell};
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
/// let cell = RnnCell::<f32>::new(2, 3, Nonlinearity::Relu, &mut rng)?;
/// let x = Array3::<f32>::ones((5, 4, 2)); // (T, B, I)
/// let (out, h_last) = cell.infer_sequence(x.view(), &cell.zero_state(4));
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

/// What [`RnnCell::step`](Cell::step) saves for the backward step.
#[derive(Debug, Clone)]
pub struct RnnStepCache<F: Float> {
    x: Array2<F>,
    h_prev: Array2<F>,
    h: Array2<F>,
}

/// What [`RnnCell::forward_sequence`](Cell::forward_sequence) saves for BPTT.
#[derive(Debug, Clone)]
pub struct RnnTape<F: Float> {
    /// Inputs `(T·B, I)`.
    x: Array2<F>,
    /// Hidden states `(T+1, B, H)`, `h0` first.
    hs: Array3<F>,
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
        weights.check(1)?;
        Ok(Self {
            weights,
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

    /// Runs the sequence and returns all hidden states `(T+1, B, H)` (`h0` first) and the
    /// inputs as `(T·B, I)`.
    #[track_caller]
    fn run(&self, x: ArrayView3<'_, F>, init: &Array2<F>) -> (Array3<F>, Array2<F>) {
        let (steps, batch, input) = x.dim();
        assert_eq!(input, self.input_size(), "x must be (T, B, I)");
        let hidden = self.hidden_size();
        assert_eq!(init.dim(), (batch, hidden), "init must be (B, H)");
        let x2 = x
            .as_standard_layout()
            .into_shape_with_order((steps * batch, input))
            .expect("standard layout reshapes")
            .into_owned();
        let mut pre = Array2::zeros((steps * batch, hidden));
        self.weights.project_inputs(x2.view(), &mut pre);
        let mut hs = Array3::zeros((steps + 1, batch, hidden));
        hs.index_axis_mut(Axis(0), 0).assign(init);
        let act = self.nonlinearity;
        for t in 0..steps {
            let (h_prev, h_next) = hs.multi_slice_mut((s![t, .., ..], s![t + 1, .., ..]));
            let mut p = pre.slice_mut(s![t * batch..(t + 1) * batch, ..]);
            general_mat_mul(
                F::one(),
                &h_prev,
                &self.weights.weight_hh.t(),
                F::one(),
                &mut p,
            );
            Zip::from(h_next)
                .and(&p)
                .for_each(|h, &v| *h = act.apply(v));
        }
        (hs, x2)
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
    type StepCache = RnnStepCache<F>;
    type Tape = RnnTape<F>;

    fn input_size(&self) -> usize {
        self.weights.weight_ih.ncols()
    }

    fn hidden_size(&self) -> usize {
        self.weights.weight_hh.ncols()
    }

    #[track_caller]
    fn step(&self, x: ArrayView2<'_, F>, state: &Array2<F>) -> (Array2<F>, RnnStepCache<F>) {
        let (batch, input) = x.dim();
        assert_eq!(input, self.input_size(), "x must be (B, I)");
        assert_eq!(
            state.dim(),
            (batch, self.hidden_size()),
            "state must be (B, H)"
        );
        let mut h = Array2::zeros((batch, self.hidden_size()));
        self.weights.project_inputs(x, &mut h);
        general_mat_mul(
            F::one(),
            state,
            &self.weights.weight_hh.t(),
            F::one(),
            &mut h,
        );
        let act = self.nonlinearity;
        h.mapv_inplace(|v| act.apply(v));
        let cache = RnnStepCache {
            x: x.to_owned(),
            h_prev: state.clone(),
            h: h.clone(),
        };
        (h, cache)
    }

    #[track_caller]
    fn backward_step(
        &self,
        cache: &RnnStepCache<F>,
        d_state: &Array2<F>,
        grads: &mut Self,
    ) -> (Array2<F>, Array2<F>) {
        assert_eq!(d_state.dim(), cache.h.dim(), "d_state must be (B, H)");
        assert_eq!(
            grads.weights.weight_hh.dim(),
            self.weights.weight_hh.dim(),
            "grads like self"
        );
        let act = self.nonlinearity;
        let mut d_pre = Array2::zeros(cache.h.dim());
        Zip::from(&mut d_pre)
            .and(d_state)
            .and(&cache.h)
            .for_each(|d, &g, &y| *d = g * act.derivative_from_output(y));
        CellWeights::accumulate_grads(
            d_pre.view(),
            cache.x.view(),
            cache.h_prev.view(),
            &mut grads.weights,
        );
        let dx = self.weights.input_grad(d_pre.view());
        let dh_prev = d_pre.dot(&self.weights.weight_hh);
        (dx, dh_prev)
    }

    #[track_caller]
    fn forward_sequence(
        &self,
        x: ArrayView3<'_, F>,
        init: &Array2<F>,
    ) -> (Array3<F>, Array2<F>, RnnTape<F>) {
        let (hs, x2) = self.run(x, init);
        let steps = x.dim().0;
        let out = hs.slice(s![1.., .., ..]).to_owned();
        let last = hs.index_axis(Axis(0), steps).to_owned();
        (out, last, RnnTape { x: x2, hs })
    }

    #[track_caller]
    fn infer_sequence(&self, x: ArrayView3<'_, F>, init: &Array2<F>) -> (Array3<F>, Array2<F>) {
        let (out, last, _) = self.forward_sequence(x, init);
        (out, last)
    }

    #[track_caller]
    fn backward_sequence(
        &self,
        tape: &RnnTape<F>,
        d_output: ArrayView3<'_, F>,
        d_final: &Array2<F>,
        grads: &mut Self,
    ) -> (Array3<F>, Array2<F>) {
        let (steps1, batch, hidden) = tape.hs.dim();
        let steps = steps1 - 1;
        assert_eq!(
            d_output.dim(),
            (steps, batch, hidden),
            "d_output must be (T, B, H)"
        );
        assert_eq!(d_final.dim(), (batch, hidden), "d_final must be (B, H)");
        assert_eq!(
            grads.weights.weight_hh.dim(),
            self.weights.weight_hh.dim(),
            "grads like self"
        );
        let act = self.nonlinearity;
        let mut d_pre = Array2::zeros((steps * batch, hidden));
        let mut dh_next = d_final.to_owned();
        for t in (0..steps).rev() {
            let mut dp = d_pre.slice_mut(s![t * batch..(t + 1) * batch, ..]);
            Zip::from(&mut dp)
                .and(&d_output.index_axis(Axis(0), t))
                .and(&dh_next)
                .and(&tape.hs.index_axis(Axis(0), t + 1))
                .for_each(|d, &u, &v, &y| *d = (u + v) * act.derivative_from_output(y));
            general_mat_mul(
                F::one(),
                &dp,
                &self.weights.weight_hh,
                F::zero(),
                &mut dh_next,
            );
        }
        let h_prev = tape
            .hs
            .slice(s![..steps, .., ..])
            .into_shape_with_order((steps * batch, hidden))
            .expect("contiguous");
        CellWeights::accumulate_grads(d_pre.view(), tape.x.view(), h_prev, &mut grads.weights);
        let dx = self
            .weights
            .input_grad(d_pre.view())
            .into_shape_with_order((steps, batch, self.input_size()))
            .expect("contiguous");
        (dx, dh_next)
    }
}
