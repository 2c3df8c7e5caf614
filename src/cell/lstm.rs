//! The LSTM cell (PyTorch's equations and gate order i, f, g, o).

use ndarray::linalg::general_mat_mul;
use ndarray::{
    s, Array2, Array3, ArrayView2, ArrayView3, ArrayViewD, ArrayViewMut2, ArrayViewMutD, Axis, Zip,
};
use rand::Rng;

use super::weights::CellWeights;
use super::{Cell, State};
use crate::error::Result;
use crate::float::Float;
use crate::params::Params;

/// Long short-term memory cell, exactly `torch.nn.LSTM`'s step:
///
/// ```text
/// i = σ(x W_iiᵀ + b_ii + h W_hiᵀ + b_hi)
/// f = σ(x W_ifᵀ + b_if + h W_hfᵀ + b_hf)
/// g = tanh(x W_igᵀ + b_ig + h W_hgᵀ + b_hg)
/// o = σ(x W_ioᵀ + b_io + h W_hoᵀ + b_ho)
/// c' = f ∘ c + i ∘ g
/// h' = o ∘ tanh(c')
/// ```
///
/// The four gates are stacked along the rows of [`CellWeights`] in PyTorch's order **i, f, g, o**:
/// `weight_ih (4H, I)`, `weight_hh (4H, H)`, `bias_ih (4H)`, `bias_hh (4H)`.
/// The state is [`LstmState`] (`h` and `c`, each `(B, H)`).
///
/// # Examples
///
/// ```
/// use ndarray::Array2;
/// use rand::SeedableRng;
/// use recurrent::{Cell, LstmCell};
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(7);
/// let cell = LstmCell::<f64>::new(3, 4, &mut rng)?;
/// let state = cell.zero_state(2);
/// let x = Array2::<f64>::ones((2, 3));
/// let (next, _cache) = cell.step(x.view(), &state);
/// assert_eq!(next.h.dim(), (2, 4));
/// assert_eq!(next.c.dim(), (2, 4));
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LstmCell<F: Float> {
    weights: CellWeights<F>,
}

/// The state of an LSTM: hidden state `h` and cell state `c`, each `(B, H)`.
///
/// Also the type of the state's gradient (`dh`, `dc`).
#[derive(Debug, Clone, PartialEq)]
pub struct LstmState<F: Float> {
    /// Hidden state `(B, H)`: the cell's output.
    pub h: Array2<F>,
    /// Cell state `(B, H)`.
    pub c: Array2<F>,
}

impl<F: Float> State<F> for LstmState<F> {
    fn zeros(batch: usize, hidden: usize) -> Self {
        Self {
            h: Array2::zeros((batch, hidden)),
            c: Array2::zeros((batch, hidden)),
        }
    }
    fn h(&self) -> ArrayView2<'_, F> {
        self.h.view()
    }
    fn h_mut(&mut self) -> ArrayViewMut2<'_, F> {
        self.h.view_mut()
    }
    fn parts(&self) -> Vec<(&'static str, ArrayView2<'_, F>)> {
        vec![("h", self.h.view()), ("c", self.c.view())]
    }
    fn parts_mut(&mut self) -> Vec<ArrayViewMut2<'_, F>> {
        vec![self.h.view_mut(), self.c.view_mut()]
    }
}

/// What [`LstmCell::step`](Cell::step) saves for the backward step.
#[derive(Debug, Clone)]
pub struct LstmStepCache<F: Float> {
    x: Array2<F>,
    h_prev: Array2<F>,
    c_prev: Array2<F>,
    /// Activated gates `(B, 4H)`: i, f, g, o.
    gates: Array2<F>,
    tanh_c: Array2<F>,
}

/// What [`LstmCell::forward_sequence`](Cell::forward_sequence) saves for BPTT.
#[derive(Debug, Clone)]
pub struct LstmTape<F: Float> {
    /// Inputs `(T·B, I)`.
    x: Array2<F>,
    /// Hidden states `(T+1, B, H)`, `h0` first.
    hs: Array3<F>,
    /// Cell states `(T+1, B, H)`, `c0` first.
    cs: Array3<F>,
    /// `tanh(c_t)` `(T, B, H)`.
    tanh_c: Array3<F>,
    /// Activated gates `(T·B, 4H)`.
    gates: Array2<F>,
}

const GATES: usize = 4;

impl<F: Float> LstmCell<F> {
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

    /// Like [`LstmCell::new`], with or without the two bias vectors (PyTorch's `bias` argument).
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

    /// A cell from given weights in PyTorch's layout (gate order i, f, g, o).
    ///
    /// # Errors
    ///
    /// [`Error::Shape`](crate::Error::Shape) naming the first array whose shape does not fit
    /// (`weight_hh` must be `(4H, H)`, `weight_ih` `(4H, I)`, biases `(4H)`), and
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if only one bias is given.
    pub fn from_weights(weights: CellWeights<F>) -> Result<Self> {
        weights.check(GATES)?;
        Ok(Self { weights })
    }

    /// The weights, in PyTorch's layout.
    pub fn weights(&self) -> &CellWeights<F> {
        &self.weights
    }

    /// Consumes the cell and returns its weights.
    pub fn into_weights(self) -> CellWeights<F> {
        self.weights
    }

    #[track_caller]
    fn assert_state(&self, state: &LstmState<F>, batch: usize, what: &str) {
        let want = (batch, self.hidden_size());
        assert_eq!(state.h.dim(), want, "{what}.h must be (B, H)");
        assert_eq!(state.c.dim(), want, "{what}.c must be (B, H)");
    }

    /// Runs the sequence; with `keep` it records the tape, otherwise it keeps only two cell states.
    fn run(
        &self,
        x: ArrayView3<'_, F>,
        init: &LstmState<F>,
        keep: bool,
    ) -> (Array3<F>, LstmState<F>, Option<LstmTape<F>>) {
        let (steps, batch, input) = x.dim();
        assert_eq!(input, self.input_size(), "x must be (T, B, I)");
        self.assert_state(init, batch, "init");
        let hidden = self.hidden_size();
        let x2 = x
            .as_standard_layout()
            .into_shape_with_order((steps * batch, input))
            .expect("standard layout reshapes")
            .into_owned();
        let mut gates = Array2::zeros((steps * batch, GATES * hidden));
        self.weights.project_inputs(x2.view(), &mut gates);

        let mut hs = Array3::zeros((steps + 1, batch, hidden));
        hs.index_axis_mut(Axis(0), 0).assign(&init.h);
        let mut cs = Array3::zeros((if keep { steps + 1 } else { 2 }, batch, hidden));
        cs.index_axis_mut(Axis(0), 0).assign(&init.c);
        let mut tanh_c = Array3::zeros((if keep { steps } else { 1 }, batch, hidden));

        for t in 0..steps {
            let (h_prev, mut h_next) = hs.multi_slice_mut((s![t, .., ..], s![t + 1, .., ..]));
            let mut g = gates.slice_mut(s![t * batch..(t + 1) * batch, ..]);
            general_mat_mul(
                F::one(),
                &h_prev,
                &self.weights.weight_hh.t(),
                F::one(),
                &mut g,
            );
            let (cp, cn, tc) = if keep {
                (t, t + 1, t)
            } else {
                (t % 2, (t + 1) % 2, 0)
            };
            let (c_prev, mut c_next) = cs.multi_slice_mut((s![cp, .., ..], s![cn, .., ..]));
            let mut tc = tanh_c.index_axis_mut(Axis(0), tc);
            for r in 0..batch {
                gates_forward(
                    g.row_mut(r).into_slice().expect("contiguous"),
                    c_prev.row(r).to_slice().expect("contiguous"),
                    c_next.row_mut(r).into_slice().expect("contiguous"),
                    tc.row_mut(r).into_slice().expect("contiguous"),
                    h_next.row_mut(r).into_slice().expect("contiguous"),
                );
            }
        }
        let last_c = if keep { steps } else { steps % 2 };
        let final_state = LstmState {
            h: hs.index_axis(Axis(0), steps).to_owned(),
            c: cs.index_axis(Axis(0), last_c).to_owned(),
        };
        let outputs = hs.slice(s![1.., .., ..]).to_owned();
        let tape = keep.then(|| LstmTape {
            x: x2,
            hs,
            cs,
            tanh_c,
            gates,
        });
        (outputs, final_state, tape)
    }
}

/// The fused element-wise forward kernel for one batch row: activates the pre-activations `g`
/// `(4H)` in place and writes `c'`, `tanh(c')` and `h'`.
#[inline]
fn gates_forward<F: Float>(g: &mut [F], c_prev: &[F], c: &mut [F], tc: &mut [F], h: &mut [F]) {
    let n = c.len();
    let (gi, rest) = g.split_at_mut(n);
    let (gf, rest) = rest.split_at_mut(n);
    let (gg, go) = rest.split_at_mut(n);
    for j in 0..n {
        let i = gi[j].sigmoid();
        let f = gf[j].sigmoid();
        let gv = gg[j].tanh();
        let o = go[j].sigmoid();
        gi[j] = i;
        gf[j] = f;
        gg[j] = gv;
        go[j] = o;
        let cv = f * c_prev[j] + i * gv;
        let t = cv.tanh();
        c[j] = cv;
        tc[j] = t;
        h[j] = o * t;
    }
}

/// The fused element-wise backward kernel for one batch row.
///
/// `g` are the activated gates `(4H)`, `dh` the total gradient reaching `h'`, `dc` the gradient
/// reaching `c'` from later steps (replaced by the gradient of `c`); writes the gradient of the
/// pre-activations into `dg` `(4H)`.
#[inline]
fn gates_backward<F: Float>(g: &[F], c_prev: &[F], tc: &[F], dh: &[F], dc: &mut [F], dg: &mut [F]) {
    let n = dc.len();
    let one = F::one();
    let (gi, rest) = g.split_at(n);
    let (gf, rest) = rest.split_at(n);
    let (gg, go) = rest.split_at(n);
    let (di, rest) = dg.split_at_mut(n);
    let (df, rest) = rest.split_at_mut(n);
    let (dgg, d_o) = rest.split_at_mut(n);
    for j in 0..n {
        let (i, f, gv, o, t) = (gi[j], gf[j], gg[j], go[j], tc[j]);
        let dcv = dc[j] + dh[j] * o * (one - t * t);
        d_o[j] = dh[j] * t * o * (one - o);
        di[j] = dcv * gv * i * (one - i);
        df[j] = dcv * c_prev[j] * f * (one - f);
        dgg[j] = dcv * i * (one - gv * gv);
        dc[j] = dcv * f;
    }
}

impl<F: Float> Params<F> for LstmCell<F> {
    fn named_arrays(&self) -> Vec<(String, ArrayViewD<'_, F>)> {
        self.weights.named_arrays()
    }
    fn arrays_mut(&mut self) -> Vec<ArrayViewMutD<'_, F>> {
        self.weights.arrays_mut()
    }
}

impl<F: Float> Cell<F> for LstmCell<F> {
    type State = LstmState<F>;
    type StepCache = LstmStepCache<F>;
    type Tape = LstmTape<F>;

    fn input_size(&self) -> usize {
        self.weights.weight_ih.ncols()
    }

    fn hidden_size(&self) -> usize {
        self.weights.weight_hh.ncols()
    }

    #[track_caller]
    fn step(&self, x: ArrayView2<'_, F>, state: &LstmState<F>) -> (LstmState<F>, LstmStepCache<F>) {
        let (batch, input) = x.dim();
        assert_eq!(input, self.input_size(), "x must be (B, I)");
        self.assert_state(state, batch, "state");
        let hidden = self.hidden_size();
        let mut gates = Array2::zeros((batch, GATES * hidden));
        self.weights.project_inputs(x, &mut gates);
        general_mat_mul(
            F::one(),
            &state.h,
            &self.weights.weight_hh.t(),
            F::one(),
            &mut gates,
        );
        let mut next = LstmState::zeros(batch, hidden);
        let mut tanh_c = Array2::zeros((batch, hidden));
        let c_prev = state.c.as_standard_layout().into_owned();
        for r in 0..batch {
            gates_forward(
                gates.row_mut(r).into_slice().expect("contiguous"),
                c_prev.row(r).to_slice().expect("contiguous"),
                next.c.row_mut(r).into_slice().expect("contiguous"),
                tanh_c.row_mut(r).into_slice().expect("contiguous"),
                next.h.row_mut(r).into_slice().expect("contiguous"),
            );
        }
        let cache = LstmStepCache {
            x: x.to_owned(),
            h_prev: state.h.clone(),
            c_prev,
            gates,
            tanh_c,
        };
        (next, cache)
    }

    #[track_caller]
    fn backward_step(
        &self,
        cache: &LstmStepCache<F>,
        d_state: &LstmState<F>,
        grads: &mut Self,
    ) -> (Array2<F>, LstmState<F>) {
        let batch = cache.x.nrows();
        self.assert_state(d_state, batch, "d_state");
        assert_eq!(
            grads.weights.weight_hh.dim(),
            self.weights.weight_hh.dim(),
            "grads like self"
        );
        let hidden = self.hidden_size();
        let dh = d_state.h.as_standard_layout();
        let mut dc = d_state.c.as_standard_layout().into_owned();
        let mut d_pre = Array2::zeros((batch, GATES * hidden));
        for r in 0..batch {
            gates_backward(
                cache.gates.row(r).to_slice().expect("contiguous"),
                cache.c_prev.row(r).to_slice().expect("contiguous"),
                cache.tanh_c.row(r).to_slice().expect("contiguous"),
                dh.row(r).to_slice().expect("contiguous"),
                dc.row_mut(r).into_slice().expect("contiguous"),
                d_pre.row_mut(r).into_slice().expect("contiguous"),
            );
        }
        CellWeights::accumulate_grads(
            d_pre.view(),
            cache.x.view(),
            cache.h_prev.view(),
            &mut grads.weights,
        );
        let dx = self.weights.input_grad(d_pre.view());
        let dh_prev = d_pre.dot(&self.weights.weight_hh);
        (dx, LstmState { h: dh_prev, c: dc })
    }

    #[track_caller]
    fn forward_sequence(
        &self,
        x: ArrayView3<'_, F>,
        init: &LstmState<F>,
    ) -> (Array3<F>, LstmState<F>, LstmTape<F>) {
        let (out, state, tape) = self.run(x, init, true);
        (out, state, tape.expect("tape kept"))
    }

    #[track_caller]
    fn infer_sequence(
        &self,
        x: ArrayView3<'_, F>,
        init: &LstmState<F>,
    ) -> (Array3<F>, LstmState<F>) {
        let (out, state, _) = self.run(x, init, false);
        (out, state)
    }

    #[track_caller]
    fn backward_sequence(
        &self,
        tape: &LstmTape<F>,
        d_output: ArrayView3<'_, F>,
        d_final: &LstmState<F>,
        grads: &mut Self,
    ) -> (Array3<F>, LstmState<F>) {
        let (steps1, batch, hidden) = tape.hs.dim();
        let steps = steps1 - 1;
        assert_eq!(
            d_output.dim(),
            (steps, batch, hidden),
            "d_output must be (T, B, H)"
        );
        self.assert_state(d_final, batch, "d_final");
        assert_eq!(
            grads.weights.weight_hh.dim(),
            self.weights.weight_hh.dim(),
            "grads like self"
        );
        let d_out = d_output.as_standard_layout();
        let mut d_pre = Array2::zeros((steps * batch, GATES * hidden));
        let mut dh_next = d_final.h.to_owned();
        let mut dc = d_final.c.as_standard_layout().into_owned();
        let mut dh = Array2::zeros((batch, hidden));
        for t in (0..steps).rev() {
            Zip::from(&mut dh)
                .and(&d_out.index_axis(Axis(0), t))
                .and(&dh_next)
                .for_each(|a, &u, &v| *a = u + v);
            let g = tape.gates.slice(s![t * batch..(t + 1) * batch, ..]);
            let mut dg = d_pre.slice_mut(s![t * batch..(t + 1) * batch, ..]);
            let c_prev = tape.cs.index_axis(Axis(0), t);
            let tc = tape.tanh_c.index_axis(Axis(0), t);
            for r in 0..batch {
                gates_backward(
                    g.row(r).to_slice().expect("contiguous"),
                    c_prev.row(r).to_slice().expect("contiguous"),
                    tc.row(r).to_slice().expect("contiguous"),
                    dh.row(r).to_slice().expect("contiguous"),
                    dc.row_mut(r).into_slice().expect("contiguous"),
                    dg.row_mut(r).into_slice().expect("contiguous"),
                );
            }
            general_mat_mul(
                F::one(),
                &dg,
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
        (dx, LstmState { h: dh_next, c: dc })
    }
}
