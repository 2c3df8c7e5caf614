//! The LSTM cell (PyTorch's equations and gate order i, f, g, o).

use ndarray::{Array, Array2, ArrayView2, ArrayView3, ArrayViewMut2, Axis, Dimension, Ix2, Ix3};
use rand::Rng;

use super::engine::{BackwardRow, EngineCell, EngineState, ForwardRow};
use super::weights::CellWeights;
use super::{Cell, CellInit, Nonlinearity, State};
use crate::error::Result;
use crate::float::Float;

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
/// and its backward, from the gradients `dh'` and `dc'` reaching `h'` and `c'` (`σ' = s(1 − s)`,
/// `tanh' = 1 − t²`, from the saved activations):
///
/// ```text
/// dc'' = dc' + dh' ∘ o ∘ (1 − tanh²(c'))       (all the gradient reaching c')
/// do  = dh' ∘ tanh(c') ∘ o(1 − o)              (gradients of the pre-activations)
/// di  = dc'' ∘ g ∘ i(1 − i)
/// df  = dc'' ∘ c ∘ f(1 − f)
/// dg  = dc'' ∘ i ∘ (1 − g²)
/// dc  = dc'' ∘ f
/// dx = [di df dg do] W_ih,   dh = [di df dg do] W_hh
/// dW_ih += [di df dg do]ᵀ x,   dW_hh += [di df dg do]ᵀ h,   db_ih, db_hh += Σ_batch [di df dg do]
/// ```
///
/// The four gates are stacked along the rows of [`CellWeights`] in PyTorch's order **i, f, g, o**:
/// `weight_ih (4H, I)`, `weight_hh (4H, H)`, `bias_ih (4H)`, `bias_hh (4H)`.
/// The state is [`LstmState`] (`h` and `c`, each `(B, H)`).
///
/// With PyTorch's `proj_size = P` ([`LstmCell::projected`]) the output is projected,
/// `h' = (o ∘ tanh(c')) W_hrᵀ` `(B, P)` with `weight_hr (P, H)`; `weight_hh` is then `(4H, P)`
/// and `c` stays `(B, H)`. Backward: `dW_hr += dh'ᵀ (o ∘ tanh(c'))`, and the equations above run
/// from `dh' W_hr`.
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
/// Also the type of the state's gradient (`dh`, `dc`). With `D = Ix3` it holds the states of a
/// whole stack, PyTorch's `(h_n, c_n)`, each `(num_layers · num_directions, B, H)`.
#[derive(Debug, Clone, PartialEq)]
pub struct LstmState<F: Float, D: Dimension = Ix2> {
    /// Hidden state `(B, H)`: the cell's output.
    pub h: Array<F, D>,
    /// Cell state `(B, H)`.
    pub c: Array<F, D>,
}

impl<F: Float> State<F> for LstmState<F> {
    type Stacked = LstmState<F, Ix3>;

    fn stack(states: &[Self]) -> LstmState<F, Ix3> {
        let hs: Vec<_> = states.iter().map(|s| s.h.view()).collect();
        let cs: Vec<_> = states.iter().map(|s| s.c.view()).collect();
        LstmState {
            h: ndarray::stack(Axis(0), &hs).expect("states of one shape"),
            c: ndarray::stack(Axis(0), &cs).expect("states of one shape"),
        }
    }

    fn unstack(stacked: &LstmState<F, Ix3>) -> Vec<Self> {
        stacked
            .h
            .outer_iter()
            .zip(stacked.c.outer_iter())
            .map(|(h, c)| LstmState {
                h: h.to_owned(),
                c: c.to_owned(),
            })
            .collect()
    }

    fn stacked_parts(stacked: &LstmState<F, Ix3>) -> Vec<(&'static str, ArrayView3<'_, F>)> {
        vec![("h", stacked.h.view()), ("c", stacked.c.view())]
    }

    fn zeros(batch: usize, hidden: usize) -> Self {
        Self {
            h: Array2::zeros((batch, hidden)),
            c: Array2::zeros((batch, hidden)),
        }
    }
    fn zeros_with(batch: usize, hidden: usize, output: usize) -> Self {
        Self {
            h: Array2::zeros((batch, output)),
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

impl<F: Float> EngineState<F> for LstmState<F> {
    fn split(&self) -> (ArrayView2<'_, F>, Option<ArrayView2<'_, F>>) {
        (self.h.view(), Some(self.c.view()))
    }

    fn split_mut(&mut self) -> (ArrayViewMut2<'_, F>, Option<ArrayViewMut2<'_, F>>) {
        (self.h.view_mut(), Some(self.c.view_mut()))
    }

    fn join(h: Array2<F>, c: Option<Array2<F>>) -> Self {
        let c = c.expect("an LSTM state has a cell state");
        Self { h, c }
    }
}

/// The fused element-wise kernel; saves the activated `i, f, g, o` in `g` and `tanh(c')` in
/// `aux`.
impl<F: Float> EngineCell for LstmCell<F> {
    type Elem = F;
    type State = LstmState<F>;
    const GATES: usize = 4;
    const KIND: &'static str = "LSTM";
    const TYPE_NAME: &'static str = "Lstm";
    const SEPARATE_REC: bool = false;
    const PROJECTION: bool = true;

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
            c_prev,
            h,
            c,
            aux: tanh_c,
            ..
        } = row;
        let n = c.len();
        let (gi, rest) = g.split_at_mut(n);
        let (gf, rest) = rest.split_at_mut(n);
        let (gg, go) = rest.split_at_mut(n);
        // Equal lengths up front let the compiler drop bounds checks and vectorise.
        let (gf, gg, go, c_prev, h, tanh_c) = (
            &mut gf[..n],
            &mut gg[..n],
            &mut go[..n],
            &c_prev[..n],
            &mut h[..n],
            &mut tanh_c[..n],
        );
        for j in 0..n {
            let i = gi[j].activation_sigmoid();
            let f = gf[j].activation_sigmoid();
            let gv = gg[j].activation_tanh();
            let o = go[j].activation_sigmoid();
            gi[j] = i;
            gf[j] = f;
            gg[j] = gv;
            go[j] = o;
            let cv = f * c_prev[j] + i * gv;
            let t = cv.activation_tanh();
            c[j] = cv;
            tanh_c[j] = t;
            h[j] = o * t;
        }
    }

    #[inline(always)]
    fn backward_row(&self, row: BackwardRow<'_, F>) {
        let BackwardRow {
            g,
            aux: tanh_c,
            c_prev,
            dh,
            dc,
            d_xp: d_pre,
            dh_direct,
            ..
        } = row;
        let n = dc.len();
        let one = F::one();
        let (gi, rest) = g.split_at(n);
        let (gf, rest) = rest.split_at(n);
        let (gg, go) = rest.split_at(n);
        let (di, rest) = d_pre.split_at_mut(n);
        let (df, rest) = rest.split_at_mut(n);
        let (dgg, d_o) = rest.split_at_mut(n);
        let (gi, gf, gg, go, tanh_c, c_prev, dh, dh_direct) = (
            &gi[..n],
            &gf[..n],
            &gg[..n],
            &go[..n],
            &tanh_c[..n],
            &c_prev[..n],
            &dh[..n],
            &mut dh_direct[..n],
        );
        let (di, df, dgg, d_o) = (&mut di[..n], &mut df[..n], &mut dgg[..n], &mut d_o[..n]);
        // The equations of the type's docs, row by row.
        for j in 0..n {
            let (i, f, gv, o, t) = (gi[j], gf[j], gg[j], go[j], tanh_c[j]);
            let dcv = dc[j] + dh[j] * o * (one - t * t);
            d_o[j] = dh[j] * t * o * (one - o);
            di[j] = dcv * gv * i * (one - i);
            df[j] = dcv * c_prev[j] * f * (one - f);
            dgg[j] = dcv * i * (one - gv * gv);
            dc[j] = dcv * f;
            dh_direct[j] = F::zero();
        }
    }
}

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
        Self::init_cell(input_size, hidden_size, 0, bias, Nonlinearity::Tanh, rng)
    }

    /// A cell whose output is projected to `proj_size` features (PyTorch's
    /// `LSTM(…, proj_size=P)`): `h = (o ∘ tanh(c)) W_hrᵀ` is `(B, P)`, `c` stays `(B, H)`, and
    /// `weight_hh` is `(4H, P)`. PyTorch's initialisation, `weight_hr` drawn last.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if a size is zero or
    /// `proj_size ≥ hidden_size`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ndarray::Array2;
    /// use rand::SeedableRng;
    /// use recurrent::{Cell, LstmCell};
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    /// let cell = LstmCell::<f64>::projected(3, 8, 2, true, &mut rng)?;
    /// let (next, _) = cell.step(Array2::ones((5, 3)).view(), &cell.zero_state(5));
    /// assert_eq!((next.h.dim(), next.c.dim()), ((5, 2), (5, 8)));
    /// assert!(LstmCell::<f64>::projected(3, 8, 8, true, &mut rng).is_err());
    /// # Ok::<(), recurrent::Error>(())
    /// ```
    pub fn projected<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        proj_size: usize,
        bias: bool,
        rng: &mut R,
    ) -> Result<Self> {
        if proj_size == 0 {
            return Err(crate::Error::InvalidConfig(
                "proj_size must be at least 1 for a projected cell (use LstmCell::new for none)"
                    .into(),
            ));
        }
        Self::init_cell(
            input_size,
            hidden_size,
            proj_size,
            bias,
            Nonlinearity::Tanh,
            rng,
        )
    }

    /// A cell from given weights in PyTorch's layout (gate order i, f, g, o).
    ///
    /// # Errors
    ///
    /// [`Error::Shape`](crate::Error::Shape) naming the first array whose shape does not fit
    /// (`weight_hh` must be `(4H, H)`, `weight_ih` `(4H, I)`, biases `(4H)`), and
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if only one bias is given.
    pub fn from_weights(weights: CellWeights<F>) -> Result<Self> {
        Self::cell_from_weights(weights, Nonlinearity::Tanh)
    }

    /// Sets the forget-gate bias so that `b_if + b_hf = value` (`bias_ih[H..2H] = value`,
    /// `bias_hh[H..2H] = 0`), as Keras' `unit_forget_bias` and char-rnn (value 1) do. A cell without
    /// biases is returned unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use rand::SeedableRng;
    /// use recurrent::LstmCell;
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let cell = LstmCell::<f32>::new(3, 2, &mut rng)?.with_forget_bias(1.0);
    /// let w = cell.weights();
    /// let f = w.bias_ih.as_ref().unwrap()[2] + w.bias_hh.as_ref().unwrap()[2]; // gate f, unit 0
    /// assert_eq!(f, 1.0);
    /// # Ok::<(), recurrent::Error>(())
    /// ```
    pub fn with_forget_bias(mut self, value: F) -> Self {
        let h = self.hidden_size();
        if let (Some(b_ih), Some(b_hh)) = (&mut self.weights.bias_ih, &mut self.weights.bias_hh) {
            b_ih.slice_mut(ndarray::s![h..2 * h]).fill(value);
            b_hh.slice_mut(ndarray::s![h..2 * h]).fill(F::zero());
        }
        self
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
