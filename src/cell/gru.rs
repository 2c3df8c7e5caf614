//! The GRU cell (PyTorch's equations and gate order r, z, n).

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayViewD, ArrayViewMutD};
use rand::Rng;

use super::engine::{self, Kernel, Schedule, SequenceTape, StepCache};
use super::weights::CellWeights;
use super::Cell;
use crate::error::Result;
use crate::float::Float;
use crate::params::Params;

/// Gated recurrent unit, exactly `torch.nn.GRU`'s step:
///
/// ```text
/// r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr)
/// z = σ(x W_izᵀ + b_iz + h W_hzᵀ + b_hz)
/// n = tanh(x W_inᵀ + b_in + r ∘ (h W_hnᵀ + b_hn))
/// h' = (1 − z) ∘ n + z ∘ h
/// ```
///
/// The reset gate multiplies the recurrent product *including its bias* `b_hn`, as PyTorch (and
/// cuDNN) define it — not `(r ∘ h) W_hnᵀ` as in the original paper.
/// The three gates are stacked along the rows of [`CellWeights`] in PyTorch's order **r, z, n**:
/// `weight_ih (3H, I)`, `weight_hh (3H, H)`, `bias_ih (3H)`, `bias_hh (3H)`.
/// The state is `h`, an [`Array2`] `(B, H)`.
///
/// # Examples
///
/// ```
/// use ndarray::Array3;
/// use rand::SeedableRng;
/// use recurrent::cell::Schedule;
/// use recurrent::{Cell, GruCell};
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(3);
/// let cell = GruCell::<f64>::new(2, 3, &mut rng)?;
/// let x = Array3::<f64>::ones((4, 5, 2)); // (T, B, I)
/// let (out, h) = cell.infer_sequence(x.view(), &cell.zero_state(5), Schedule::FORWARD);
/// assert_eq!(out.dim(), (4, 5, 3));
/// assert_eq!(h.dim(), (5, 3));
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct GruCell<F: Float> {
    weights: CellWeights<F>,
}

const GATES: usize = 3;

/// The GRU's fused element-wise kernel. Saves `r, z, n` in `g` and `h W_hnᵀ + b_hn` in `aux`.
struct GruKernel;

impl<F: Float> Kernel<F> for GruKernel {
    const GATES: usize = GATES;
    const HAS_C: bool = false;
    const HAS_AUX: bool = true;
    const SEPARATE_REC: bool = true;

    #[inline(always)]
    fn forward_row(
        &self,
        g: &mut [F],
        rec: &[F],
        h_prev: &[F],
        _c_prev: &[F],
        h: &mut [F],
        _c: &mut [F],
        rec_n: &mut [F],
    ) {
        let n = h.len();
        let one = F::one();
        let (gr, rest) = g.split_at_mut(n);
        let (gz, gn) = rest.split_at_mut(n);
        let (rr, rest) = rec.split_at(n);
        let (rz, rn) = rest.split_at(n);
        let (gz, gn, rr, rz, rn, h_prev, rec_n) = (
            &mut gz[..n],
            &mut gn[..n],
            &rr[..n],
            &rz[..n],
            &rn[..n],
            &h_prev[..n],
            &mut rec_n[..n],
        );
        for j in 0..n {
            let r = (gr[j] + rr[j]).activation_sigmoid();
            let z = (gz[j] + rz[j]).activation_sigmoid();
            let nv = (gn[j] + r * rn[j]).activation_tanh();
            gr[j] = r;
            gz[j] = z;
            gn[j] = nv;
            rec_n[j] = rn[j];
            h[j] = (one - z) * nv + z * h_prev[j];
        }
    }

    #[inline(always)]
    fn backward_row(
        &self,
        g: &[F],
        rec_n: &[F],
        h_prev: &[F],
        _c_prev: &[F],
        dh: &[F],
        _dc: &mut [F],
        d_xp: &mut [F],
        d_rec: &mut [F],
        dh_direct: &mut [F],
    ) {
        let n = dh.len();
        let one = F::one();
        let (gr, rest) = g.split_at(n);
        let (gz, gn) = rest.split_at(n);
        let (xr, rest) = d_xp.split_at_mut(n);
        let (xz, xn) = rest.split_at_mut(n);
        let (hr, rest) = d_rec.split_at_mut(n);
        let (hz, hn) = rest.split_at_mut(n);
        for j in 0..n {
            let (r, z, nv) = (gr[j], gz[j], gn[j]);
            let d_n = dh[j] * (one - z) * (one - nv * nv);
            let d_z = dh[j] * (h_prev[j] - nv) * z * (one - z);
            let d_r = d_n * rec_n[j] * r * (one - r);
            xr[j] = d_r;
            hr[j] = d_r;
            xz[j] = d_z;
            hz[j] = d_z;
            xn[j] = d_n;
            hn[j] = d_n * r;
            dh_direct[j] = dh[j] * z;
        }
    }
}

impl<F: Float> GruCell<F> {
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
            &GruKernel,
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
        rng: &mut R,
    ) -> Result<Self> {
        Self::with_bias(input_size, hidden_size, true, rng)
    }

    /// Like [`GruCell::new`], with or without the two bias vectors (PyTorch's `bias` argument).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if a size is zero.
    pub fn with_bias<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        rng: &mut R,
    ) -> Result<Self> {
        let weights = CellWeights::init(GATES, input_size, hidden_size, bias, rng)?;
        Ok(Self { weights })
    }

    /// A cell from given weights in PyTorch's layout (gate order r, z, n).
    ///
    /// # Errors
    ///
    /// [`Error::Shape`](crate::Error::Shape) naming the first array whose shape does not fit
    /// (`weight_hh` must be `(3H, H)`, `weight_ih` `(3H, I)`, biases `(3H)`), and
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if only one bias is given.
    pub fn from_weights(weights: CellWeights<F>) -> Result<Self> {
        Ok(Self {
            weights: weights.checked(GATES)?,
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
}

impl<F: Float> Params<F> for GruCell<F> {
    fn named_arrays(&self) -> Vec<(String, ArrayViewD<'_, F>)> {
        self.weights.named_arrays()
    }
    fn arrays_mut(&mut self) -> Vec<ArrayViewMutD<'_, F>> {
        self.weights.arrays_mut()
    }
}

impl<F: Float> Cell<F> for GruCell<F> {
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
        let (h, _, cache) = engine::step(&GruKernel, &self.weights, x, state.view(), none.view());
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
            &GruKernel,
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
            &GruKernel,
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
            &GruKernel,
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
