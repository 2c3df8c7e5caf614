//! The GRU cell (PyTorch's equations and gate order r, z, n).

use ndarray::Array2;
use rand::Rng;

use super::engine::{BackwardRow, EngineCell, ForwardRow};
use super::weights::CellWeights;
use super::{CellInit, Nonlinearity};
use crate::error::Result;
use crate::float::Float;

/// Gated recurrent unit, exactly `torch.nn.GRU`'s step:
///
/// ```text
/// r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr)
/// z = σ(x W_izᵀ + b_iz + h W_hzᵀ + b_hz)
/// n = tanh(x W_inᵀ + b_in + r ∘ q),   q = h W_hnᵀ + b_hn
/// h' = (1 − z) ∘ n + z ∘ h
/// ```
///
/// and its backward, from the gradient `dh'` reaching `h'` (`σ' = s(1 − s)`, `tanh' = 1 − t²`,
/// from the saved activations; the input side and the recurrent side get different gradients
/// because `r` multiplies only the recurrent part of `n`):
///
/// ```text
/// dn = dh' ∘ (1 − z) ∘ (1 − n²)                (gradients of the pre-activations)
/// dz = dh' ∘ (h − n) ∘ z(1 − z)
/// dr = dn ∘ q ∘ r(1 − r)
/// dq = dn ∘ r
/// dx = [dr dz dn] W_ih,   dh = dh' ∘ z + [dr dz dq] W_hh
/// dW_ih += [dr dz dn]ᵀ x,   dW_hh += [dr dz dq]ᵀ h
/// db_ih += Σ_batch [dr dz dn],   db_hh += Σ_batch [dr dz dq]
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

/// The fused element-wise kernel; saves `r, z, n` in `g` and `q = h W_hnᵀ + b_hn` in `aux`.
impl<F: Float> EngineCell for GruCell<F> {
    type Elem = F;
    type State = Array2<F>;
    const GATES: usize = 3;
    const KIND: &'static str = "GRU";
    const TYPE_NAME: &'static str = "Gru";
    const SEPARATE_REC: bool = true;

    fn aux_width(hidden: usize) -> usize {
        hidden
    }

    fn assemble(weights: CellWeights<F>, _: Nonlinearity) -> Self {
        Self { weights }
    }
    fn weights(&self) -> &CellWeights<F> {
        &self.weights
    }
    fn params_mut(&mut self) -> (&mut CellWeights<F>, &mut [F]) {
        (&mut self.weights, &mut [])
    }

    #[inline(always)]
    fn forward_row(&self, row: ForwardRow<'_, F>) {
        let ForwardRow {
            g,
            rec,
            h_prev,
            h,
            aux: rec_n,
            ..
        } = row;
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
    fn backward_row(&self, row: BackwardRow<'_, F>) {
        let BackwardRow {
            g,
            aux: rec_n,
            h_prev,
            dh,
            d_xp,
            d_rec,
            dh_direct,
            ..
        } = row;
        let n = dh.len();
        let one = F::one();
        let (gr, rest) = g.split_at(n);
        let (gz, gn) = rest.split_at(n);
        let (xr, rest) = d_xp.split_at_mut(n);
        let (xz, xn) = rest.split_at_mut(n);
        let (hr, rest) = d_rec.split_at_mut(n);
        let (hz, hn) = rest.split_at_mut(n);
        // The equations of the type's docs, row by row (`hn` is `dq`).
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
        Self::init_cell(input_size, hidden_size, 0, bias, Nonlinearity::Tanh, rng)
    }

    /// A cell from given weights in PyTorch's layout (gate order r, z, n).
    ///
    /// # Errors
    ///
    /// [`Error::Shape`](crate::Error::Shape) naming the first array whose shape does not fit
    /// (`weight_hh` must be `(3H, H)`, `weight_ih` `(3H, I)`, biases `(3H)`), and
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if only one bias is given.
    pub fn from_weights(weights: CellWeights<F>) -> Result<Self> {
        Self::cell_from_weights(weights, Nonlinearity::Tanh)
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
