//! The layer-normalised LSTM cell (Ba, Kiros & Hinton, 2016), written against the engine's cell
//! contract only: its widths, its own parameters and its row kernels.

use rand::Rng;

use super::engine::{BackwardRow, EngineCell, ForwardRow};
use super::lstm::LstmState;
use super::weights::CellWeights;
use super::{CellInit, Nonlinearity};
use crate::error::Result;
use crate::float::Float;

/// The `eps` of every normalisation, as `torch.nn.LayerNorm` and TensorFlow Addons'
/// `LayerNormLSTMCell` (`1e-5`, added to the variance).
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// Long short-term memory cell with layer normalisation (Ba, Kiros & Hinton, 2016, as TensorFlow
/// Addons' `LayerNormLSTMCell`): the input and recurrent pre-activations of the gates and the
/// cell state are each normalised over their units, with learnable gains `γ` and biases `β`.
///
/// ```text
/// z  = LN_ih(x W_ihᵀ) + LN_hh(h W_hhᵀ)            (4H: gates i, f, g, o, PyTorch's order)
/// i, f, o = σ(z_i), σ(z_f), σ(z_o);  g = tanh(z_g)
/// c' = f ∘ c + i ∘ g
/// h' = o ∘ tanh(LN_c(c'))
/// LN(v) = γ ∘ (v − mean(v)) / √(var(v) + ε) + β   (over the vector's units; var biased; ε = 1e-5)
/// ```
///
/// There are no `bias_ih`/`bias_hh`: the normalisations' biases take their place (a bias before a
/// normalisation would cancel). Parameters, with PyTorch-style names (`_l{k}` added by the
/// layers):
///
/// | name | shape | initial value |
/// |---|---|---|
/// | `weight_ih` | `(4H, I)` | `uniform(−1/√H, 1/√H)` |
/// | `weight_hh` | `(4H, H)` | `uniform(−1/√H, 1/√H)` |
/// | `ln_ih_weight`, `ln_ih_bias` | `(4H)` | 1, 0 |
/// | `ln_hh_weight`, `ln_hh_bias` | `(4H)` | 1, 0 |
/// | `ln_c_weight`, `ln_c_bias` | `(H)` | 1, 0 |
///
/// Without biases (`bias = false`) the three `*_bias` vectors are left out (fixed at 0). The
/// state is [`LstmState`] (`h`, `c`, each `(B, H)`); there is no projection. Gradients of every
/// parameter come from the engine's one backward pass; the equations of the normalisations'
/// backward are in the kernel below.
///
/// This type is the proof of the cell contract: it is written in this one file (plus the lines
/// that list it among the cells), and gets the sequence path, batch sharding, lengths,
/// `Bidirectional`, [`RecurrentStack`](crate::RecurrentStack) (as
/// [`LayerNormLstm`](crate::LayerNormLstm)), streaming, weight files and every ISA path from the
/// engine.
///
/// # Examples
///
/// ```
/// use ndarray::Array2;
/// use rand::SeedableRng;
/// use recurrent::{Cell, LayerNormLstmCell, Params};
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(7);
/// let cell = LayerNormLstmCell::<f64>::new(3, 4, &mut rng)?;
/// let (next, _cache) = cell.step(Array2::ones((2, 3)).view(), &cell.zero_state(2));
/// assert_eq!((next.h.dim(), next.c.dim()), ((2, 4), (2, 4)));
/// let names: Vec<String> = cell.named_arrays().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names[2..], ["ln_ih_weight", "ln_ih_bias", "ln_hh_weight", "ln_hh_bias",
///                         "ln_c_weight", "ln_c_bias"]);
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNormLstmCell<F: Float> {
    /// `weight_ih`, `weight_hh`; no PyTorch biases.
    weights: CellWeights<F>,
    /// The normalisations' gains and biases, laid out as [`EngineCell::own_layout`] says.
    own: Vec<F>,
    bias: bool,
}

/// Offsets into the own parameters (and their gradients) for hidden size `h`: the gains and
/// biases of the input, recurrent and cell-state normalisations.
struct Layout {
    h: usize,
    bias: bool,
}

impl Layout {
    /// `(γ, β)` of the normalisation that starts at part `k` (0 input, 1 recurrent, 2 cell), as
    /// ranges into the own vector; `β` is empty without biases.
    fn ranges(&self, k: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let h4 = 4 * self.h;
        let per = if self.bias { 2 } else { 1 };
        let start = k * per * h4;
        let len = if k == 2 { self.h } else { h4 };
        let beta = if self.bias {
            start + len..start + 2 * len
        } else {
            0..0
        };
        (start..start + len, beta)
    }

    fn total(&self) -> usize {
        (if self.bias { 2 } else { 1 }) * 9 * self.h
    }

    /// The gradients of normalisation `k`'s gain and bias (empty without biases) in `d_own`.
    fn grads<'a, F>(&self, d_own: &'a mut [F], k: usize) -> (&'a mut [F], &'a mut [F]) {
        let (gamma, beta) = self.ranges(k);
        let (before, after) = d_own.split_at_mut(gamma.end);
        (&mut before[gamma], &mut after[..beta.len()])
    }
}

/// The saved vector of one row, split: `x̂_ih` (4H), `x̂_hh` (4H), `ĉ` (H), `tanh(LN_c(c'))`
/// (H), then the three reciprocal standard deviations (3).
fn aux_parts<F>(aux: &mut [F], h: usize) -> [&mut [F]; 5] {
    let (xh_ih, rest) = aux.split_at_mut(4 * h);
    let (xh_hh, rest) = rest.split_at_mut(4 * h);
    let (c_hat, rest) = rest.split_at_mut(h);
    let (tanh_c, rstd) = rest.split_at_mut(h);
    [xh_ih, xh_hh, c_hat, tanh_c, &mut rstd[..3]]
}

/// Normalises `v` into `out` (`(v − mean) · rstd`) and returns `rstd = 1/√(var + ε)`.
#[inline(always)]
fn normalise<F: Float>(v: &[F], out: &mut [F]) -> F {
    let n = F::from_f64(v.len() as f64);
    let mean = v.iter().fold(F::zero(), |a, &x| a + x) / n;
    let var = v
        .iter()
        .fold(F::zero(), |a, &x| a + (x - mean) * (x - mean))
        / n;
    let rstd = F::one() / (var + F::from_f64(LAYER_NORM_EPS)).sqrt();
    for (o, &x) in out.iter_mut().zip(v) {
        *o = (x - mean) * rstd;
    }
    rstd
}

/// The backward of one normalisation `y = γ ∘ x̂ + β`, `x̂ = (v − mean) · rstd`, in place: `d`
/// holds `dy` and becomes `dv = rstd · (dx̂ − mean(dx̂) − x̂ ∘ mean(dx̂ ∘ x̂))` with `dx̂ = dy ∘ γ`;
/// adds `dy ∘ x̂` into `dγ` and `dy` into `dβ` (if any).
#[inline(always)]
fn normalise_backward<F: Float>(
    d: &mut [F],
    x_hat: &[F],
    rstd: F,
    gamma: &[F],
    d_gamma: &mut [F],
    d_beta: &mut [F],
) {
    let n = F::from_f64(d.len() as f64);
    let (mut m1, mut m2) = (F::zero(), F::zero());
    for j in 0..d.len() {
        let dxh = d[j] * gamma[j];
        m1 += dxh;
        m2 += dxh * x_hat[j];
        d_gamma[j] += d[j] * x_hat[j];
    }
    for (b, &dy) in d_beta.iter_mut().zip(d.iter()) {
        *b += dy;
    }
    let (m1, m2) = (m1 / n, m2 / n);
    for j in 0..d.len() {
        d[j] = rstd * (d[j] * gamma[j] - m1 - x_hat[j] * m2);
    }
}

impl<F: Float> EngineCell for LayerNormLstmCell<F> {
    type Elem = F;
    type State = LstmState<F>;
    const GATES: usize = 4;
    const KIND: &'static str = "LayerNormLSTM";
    const TYPE_NAME: &'static str = "LayerNormLstm";
    const OWN_NAMES: &'static [&'static str] = &[
        "ln_ih_weight",
        "ln_ih_bias",
        "ln_hh_weight",
        "ln_hh_bias",
        "ln_c_weight",
        "ln_c_bias",
    ];
    const SEPARATE_REC: bool = true;
    const BIAS_KEY: &'static str = "ln_ih_bias";

    fn aux_width(hidden: usize) -> usize {
        10 * hidden + 3
    }

    /// Takes `weights`' biases as the flag for the normalisations' biases, and drops them.
    fn assemble(weights: CellWeights<F>, nonlinearity: Nonlinearity) -> Self {
        let bias = weights.has_bias();
        Self::assemble_with_bias(weights, nonlinearity, bias)
    }

    fn assemble_with_bias(mut weights: CellWeights<F>, _: Nonlinearity, bias: bool) -> Self {
        weights.bias_ih = None;
        weights.bias_hh = None;
        let layout = Layout {
            h: weights.hidden_size(),
            bias,
        };
        let mut own = vec![F::zero(); layout.total()];
        for k in 0..3 {
            own[layout.ranges(k).0].fill(F::one());
        }
        Self { weights, own, bias }
    }

    fn weights(&self) -> &CellWeights<F> {
        &self.weights
    }

    fn params_mut(&mut self) -> (&mut CellWeights<F>, &mut [F]) {
        (&mut self.weights, &mut self.own)
    }

    fn own(&self) -> &[F] {
        &self.own
    }

    fn own_layout(&self) -> Vec<(&'static str, usize)> {
        let (h4, h) = (4 * self.weights.hidden_size(), self.weights.hidden_size());
        Self::OWN_NAMES
            .iter()
            .zip([h4, h4, h4, h4, h, h])
            .filter(|(name, _)| self.bias || !name.ends_with("_bias"))
            .map(|(&name, width)| (name, width))
            .collect()
    }

    fn has_bias(&self) -> bool {
        self.bias
    }

    /// Saves the normalised `x̂_ih`, `x̂_hh`, `ĉ`, `tanh(LN_c(c'))` and the three `rstd` in `aux`,
    /// the activated gates in `g`.
    #[inline(always)]
    fn forward_row(&self, row: ForwardRow<'_, F>) {
        let ForwardRow {
            g,
            rec,
            c_prev,
            h,
            c,
            aux,
            ..
        } = row;
        let n = h.len();
        let layout = Layout {
            h: n,
            bias: self.bias,
        };
        let [xh_ih, xh_hh, c_hat, tanh_c, rstd] = aux_parts(aux, n);
        rstd[0] = normalise(g, xh_ih);
        rstd[1] = normalise(rec, xh_hh);
        let (g_ih, b_ih) = layout.ranges(0);
        let (g_hh, b_hh) = layout.ranges(1);
        let own = &self.own;
        let beta = |r: &std::ops::Range<usize>, j: usize| {
            if r.is_empty() {
                F::zero()
            } else {
                own[r.start + j]
            }
        };
        for j in 0..4 * n {
            let z = own[g_ih.start + j] * xh_ih[j]
                + beta(&b_ih, j)
                + own[g_hh.start + j] * xh_hh[j]
                + beta(&b_hh, j);
            // Gates i, f, g, o: tanh for the third block, σ for the others.
            g[j] = if (2 * n..3 * n).contains(&j) {
                z.activation_tanh()
            } else {
                z.activation_sigmoid()
            };
        }
        let (gi, rest) = g.split_at(n);
        let (gf, rest) = rest.split_at(n);
        let (gg, go) = rest.split_at(n);
        for j in 0..n {
            c[j] = gf[j] * c_prev[j] + gi[j] * gg[j];
        }
        rstd[2] = normalise(c, c_hat);
        let (g_c, b_c) = layout.ranges(2);
        for j in 0..n {
            let t = (own[g_c.start + j] * c_hat[j] + beta(&b_c, j)).activation_tanh();
            tanh_c[j] = t;
            h[j] = go[j] * t;
        }
    }

    /// From `dh'` and `dc'`: through `h' = o ∘ tanh(LN_c(c'))`, the cell-state normalisation,
    /// the gates (as [`LstmCell`](super::LstmCell)), then each pre-activation normalisation into
    /// `d_xp` and `d_rec`; the gains' and biases' gradients into `d_own`.
    #[inline(always)]
    fn backward_row(&self, row: BackwardRow<'_, F>) {
        let BackwardRow {
            g,
            aux,
            c_prev,
            dh,
            dc,
            d_xp,
            d_rec,
            dh_direct,
            d_own,
            ..
        } = row;
        let n = dh.len();
        let one = F::one();
        let layout = Layout {
            h: n,
            bias: self.bias,
        };
        let (xh_ih, rest) = aux.split_at(4 * n);
        let (xh_hh, rest) = rest.split_at(4 * n);
        let (c_hat, rest) = rest.split_at(n);
        let (tanh_c, rstd) = rest.split_at(n);
        let (gi, rest) = g.split_at(n);
        let (gf, rest) = rest.split_at(n);
        let (gg, go) = rest.split_at(n);
        // `d_xp` first holds `dz`, the gradient of the gates' pre-activations.
        let (di, rest) = d_xp.split_at_mut(n);
        let (df, rest) = rest.split_at_mut(n);
        let (dgg, d_o) = rest.split_at_mut(n);
        // `dh_direct` (H) first holds the gradient of LN_c's output, then that of `c'`.
        for j in 0..n {
            let (o, t) = (go[j], tanh_c[j]);
            d_o[j] = dh[j] * t * o * (one - o);
            dh_direct[j] = dh[j] * o * (one - t * t);
        }
        let (dg_c, db_c) = layout.grads(d_own, 2);
        let gamma_c = &self.own[layout.ranges(2).0];
        normalise_backward(dh_direct, c_hat, rstd[2], gamma_c, dg_c, db_c);
        for j in 0..n {
            let (i, f, gv) = (gi[j], gf[j], gg[j]);
            let dcv = dc[j] + dh_direct[j];
            di[j] = dcv * gv * i * (one - i);
            df[j] = dcv * c_prev[j] * f * (one - f);
            dgg[j] = dcv * i * (one - gv * gv);
            dc[j] = dcv * f;
            dh_direct[j] = F::zero();
        }
        // Both normalisations receive the same `dz`.
        d_rec.copy_from_slice(d_xp);
        for (k, d, x_hat) in [(0, &mut *d_xp, xh_ih), (1, &mut *d_rec, xh_hh)] {
            let (d_gamma, d_beta) = layout.grads(d_own, k);
            let gamma = &self.own[layout.ranges(k).0];
            normalise_backward(d, x_hat, rstd[k], gamma, d_gamma, d_beta);
        }
    }
}

impl<F: Float> LayerNormLstmCell<F> {
    /// A cell with the normalisations' biases; weights from `uniform(−1/√H, 1/√H)` (PyTorch's
    /// LSTM initialisation), gains 1 and biases 0.
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

    /// Like [`LayerNormLstmCell::new`], with or without the normalisations' biases.
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

    /// The weights `weight_ih (4H, I)` and `weight_hh (4H, H)` (no PyTorch biases).
    pub fn weights(&self) -> &CellWeights<F> {
        &self.weights
    }
}
