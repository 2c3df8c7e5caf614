//! PyTorch's parameter layout shared by every cell, and the matrix products of the fast path.

use ndarray::{s, Array1, Array2, ArrayView2, ArrayViewD, ArrayViewMutD, Axis, Ix1, Ix2};
use rand::Rng;
use rand_distr::{Distribution, Uniform};

use crate::alloc::{self, bytes_of, out_of_memory, try_array};
use crate::error::{shape_err, Error, Result};
use crate::float::Float;
use crate::gemm::{gemm, Prepared};

/// The weights of one cell in PyTorch's layout, `G` gates stacked along the rows.
///
/// | field | shape | PyTorch name |
/// |---|---|---|
/// | `weight_ih` | `(G·H, I)` | `weight_ih_l{k}` |
/// | `weight_hh` | `(G·H, H)` | `weight_hh_l{k}` |
/// | `bias_ih` | `(G·H)` | `bias_ih_l{k}` |
/// | `bias_hh` | `(G·H)` | `bias_hh_l{k}` |
/// | `weight_hr` | `(P, H)` | `weight_hr_l{k}` (LSTM with `proj_size = P` only) |
///
/// `G` is 1 for an Elman RNN, 4 for an LSTM (gate order i, f, g, o) and 3 for a GRU (r, z, n).
/// Both biases are present or both absent (`bias: false` in PyTorch). An LSTM with a projection
/// (PyTorch's `proj_size = P`, `0 < P < H`) has `weight_hr` and a `weight_hh` of `(4H, P)`: its
/// output `h` is `P` wide (`h = (o ∘ tanh(c)) W_hrᵀ`), its cell state `c` stays `H` wide.
///
/// # Examples
///
/// A cell from arrays in PyTorch's layout (e.g. `lstm.weight_ih_l0.detach().numpy()`):
///
/// ```
/// use ndarray::{Array1, Array2};
/// use recurrent::{Cell, LstmCell, cell::CellWeights};
///
/// let (i, h) = (3, 2);
/// let weights = CellWeights {
///     weight_ih: Array2::<f32>::zeros((4 * h, i)),
///     weight_hh: Array2::zeros((4 * h, h)),
///     bias_ih: Some(Array1::zeros(4 * h)),
///     bias_hh: Some(Array1::zeros(4 * h)),
///     weight_hr: None,
/// };
/// let cell = LstmCell::from_weights(weights)?;
/// assert_eq!((cell.input_size(), cell.hidden_size()), (3, 2));
///
/// let wrong = CellWeights {
///     weight_ih: Array2::<f32>::zeros((4 * h, i)),
///     weight_hh: Array2::zeros((3 * h, h)), // a GRU's shape
///     bias_ih: None,
///     bias_hh: None,
///     weight_hr: None,
/// };
/// assert!(LstmCell::from_weights(wrong).is_err());
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CellWeights<F: Float> {
    /// Input-to-hidden weights `(G·H, I)`.
    pub weight_ih: Array2<F>,
    /// Hidden-to-hidden weights `(G·H, H)`.
    pub weight_hh: Array2<F>,
    /// Input-side bias `(G·H)`, or `None` for a cell without biases.
    pub bias_ih: Option<Array1<F>>,
    /// Hidden-side bias `(G·H)`, or `None` for a cell without biases.
    pub bias_hh: Option<Array1<F>>,
    /// Projection of the output `(P, H)` (an LSTM with PyTorch's `proj_size = P`), or `None`.
    pub weight_hr: Option<Array2<F>>,
}

impl<F: Float> CellWeights<F> {
    /// The names of the five arrays (PyTorch's, without the `_l{k}` suffix), in field order.
    pub const NAMES: [&'static str; 5] =
        ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"];

    /// PyTorch's default initialisation: every weight and bias drawn from
    /// `uniform(−1/√H, 1/√H)`, in the order `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if a size is zero; [`Error::OutOfMemory`] if the weights cannot
    /// be allocated.
    pub fn init<R: Rng + ?Sized>(
        gates: usize,
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        rng: &mut R,
    ) -> Result<Self> {
        Self::init_projected(gates, input_size, hidden_size, 0, bias, rng)
    }

    /// [`CellWeights::init`] with an output projection of `proj_size` rows (PyTorch's LSTM
    /// `proj_size`; 0 for none): `weight_hh` is then `(G·H, P)` and `weight_hr` `(P, H)` is drawn
    /// last, from the same `uniform(−1/√H, 1/√H)`, as PyTorch does.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if a size is zero or `proj_size ≥ hidden_size`;
    /// [`Error::OutOfMemory`] if the weights cannot be allocated.
    pub fn init_projected<R: Rng + ?Sized>(
        gates: usize,
        input_size: usize,
        hidden_size: usize,
        proj_size: usize,
        bias: bool,
        rng: &mut R,
    ) -> Result<Self> {
        if input_size == 0 || hidden_size == 0 {
            return Err(Error::InvalidConfig(format!(
                "input_size and hidden_size must be at least 1, got input_size = {input_size}, \
                 hidden_size = {hidden_size}"
            )));
        }
        if proj_size >= hidden_size {
            return Err(Error::InvalidConfig(format!(
                "proj_size must be smaller than hidden_size, got proj_size = {proj_size}, \
                 hidden_size = {hidden_size}"
            )));
        }
        let what = |name: &str| format!("{name} ({gates}·{hidden_size} rows)");
        let gh = gates
            .checked_mul(hidden_size)
            .ok_or_else(|| out_of_memory(what("weight_hh"), u128::MAX))?;
        let biases = if bias { 2 } else { 0 };
        // The width of `h`: what `weight_hh` multiplies.
        let out = if proj_size > 0 {
            proj_size
        } else {
            hidden_size
        };
        alloc::probe(
            bytes_of::<F>(&[gh, input_size])
                .saturating_add(bytes_of::<F>(&[gh, out]))
                .saturating_add(bytes_of::<F>(&[gh, biases]))
                .saturating_add(bytes_of::<F>(&[proj_size, hidden_size])),
            &format!(
                "the weights of a cell with input_size = {input_size}, hidden_size = {hidden_size}"
            ),
        )?;
        let k = 1.0 / (hidden_size as f64).sqrt();
        let dist = Uniform::new_inclusive(F::from_f64(-k), F::from_f64(k))
            .map_err(|e| Error::InvalidConfig(format!("uniform(-{k}, {k}): {e}")))?;
        let mut draw = || dist.sample(rng);
        let weight_ih = try_array(Ix2(gh, input_size), &what("weight_ih"), &mut draw)?;
        let weight_hh = try_array(Ix2(gh, out), &what("weight_hh"), &mut draw)?;
        let (bias_ih, bias_hh) = if bias {
            let b_ih = try_array(Ix1(gh), &what("bias_ih"), &mut draw)?;
            let b_hh = try_array(Ix1(gh), &what("bias_hh"), &mut draw)?;
            (Some(b_ih), Some(b_hh))
        } else {
            (None, None)
        };
        let weight_hr = if proj_size > 0 {
            let what = format!("weight_hr ({proj_size} rows)");
            Some(try_array(Ix2(proj_size, hidden_size), &what, &mut draw)?)
        } else {
            None
        };
        Ok(Self {
            weight_ih,
            weight_hh,
            bias_ih,
            bias_hh,
            weight_hr,
        })
    }

    /// Hidden units `H`: the width of the cell state and of each gate.
    pub fn hidden_size(&self) -> usize {
        self.weight_hr
            .as_ref()
            .map_or(self.weight_hh.ncols(), |w| w.ncols())
    }

    /// The width of the output `h`: `P` with a projection, else `H`.
    pub fn output_size(&self) -> usize {
        self.weight_hh.ncols()
    }

    /// `P`, the rows of `weight_hr`, or 0 without a projection (PyTorch's `proj_size`).
    pub fn proj_size(&self) -> usize {
        self.weight_hr.as_ref().map_or(0, |w| w.nrows())
    }

    /// Checks the shapes for a cell with `gates` gates and returns `(input_size, hidden_size)`.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] naming the array whose shape does not fit, [`Error::InvalidConfig`] if
    /// exactly one bias is given or a size is zero.
    pub fn check(&self, gates: usize) -> Result<(usize, usize)> {
        let (rows, out) = self.weight_hh.dim();
        let hidden = match &self.weight_hr {
            None => {
                if out == 0 || out.checked_mul(gates) != Some(rows) {
                    return Err(shape_err(
                        "weight_hh",
                        format!("({gates}·H, H) with H ≥ 1 ({gates} gates)"),
                        self.weight_hh.shape(),
                    ));
                }
                out
            }
            Some(w_hr) => {
                // With a projection `H` comes from `weight_hr (P, H)`, `P` from `weight_hh`.
                let (p, hidden) = w_hr.dim();
                if p == 0 || p >= hidden {
                    return Err(shape_err(
                        "weight_hr",
                        "(P, H) with 1 ≤ P < H (proj_size below hidden_size)",
                        w_hr.shape(),
                    ));
                }
                if out != p || hidden.checked_mul(gates) != Some(rows) {
                    return Err(shape_err(
                        "weight_hh",
                        format!("({gates}·{hidden}, {p}) = ({gates}·H, P), to match weight_hr"),
                        self.weight_hh.shape(),
                    ));
                }
                hidden
            }
        };
        let (rows_ih, input) = self.weight_ih.dim();
        if rows_ih != rows || input == 0 {
            return Err(shape_err(
                "weight_ih",
                format!("({rows}, I) with I ≥ 1, to match weight_hh"),
                self.weight_ih.shape(),
            ));
        }
        match (&self.bias_ih, &self.bias_hh) {
            (None, None) => {}
            (Some(b_ih), Some(b_hh)) => {
                for (name, b) in [("bias_ih", b_ih), ("bias_hh", b_hh)] {
                    if b.len() != rows {
                        return Err(shape_err(name, format!("({rows})"), b.shape()));
                    }
                }
            }
            _ => {
                return Err(Error::InvalidConfig(
                    "bias_ih and bias_hh must both be given or both be None".into(),
                ))
            }
        }
        Ok((input, hidden))
    }

    /// Checks the shapes (as [`CellWeights::check`]) and stores every array in standard (row-major)
    /// layout, so that the fast path never meets a transposed weight.
    pub(crate) fn checked(mut self, gates: usize) -> Result<Self> {
        self.check(gates)?;
        fn standard<F: Float, D: ndarray::Dimension>(a: &mut ndarray::Array<F, D>) {
            if !a.is_standard_layout() {
                *a = a.as_standard_layout().into_owned();
            }
        }
        standard(&mut self.weight_ih);
        standard(&mut self.weight_hh);
        if let Some(b) = &mut self.bias_ih {
            standard(b);
        }
        if let Some(b) = &mut self.bias_hh {
            standard(b);
        }
        if let Some(w) = &mut self.weight_hr {
            standard(w);
        }
        Ok(self)
    }

    /// `true` if the cell has biases.
    pub fn has_bias(&self) -> bool {
        self.bias_ih.is_some()
    }

    pub(crate) fn named_arrays(&self) -> Vec<(String, ArrayViewD<'_, F>)> {
        let mut v = vec![
            ("weight_ih".to_string(), self.weight_ih.view().into_dyn()),
            ("weight_hh".to_string(), self.weight_hh.view().into_dyn()),
        ];
        if let (Some(b_ih), Some(b_hh)) = (&self.bias_ih, &self.bias_hh) {
            v.push(("bias_ih".to_string(), b_ih.view().into_dyn()));
            v.push(("bias_hh".to_string(), b_hh.view().into_dyn()));
        }
        if let Some(w_hr) = &self.weight_hr {
            v.push(("weight_hr".to_string(), w_hr.view().into_dyn()));
        }
        v
    }

    pub(crate) fn arrays_mut(&mut self) -> Vec<ArrayViewMutD<'_, F>> {
        let mut v = vec![
            self.weight_ih.view_mut().into_dyn(),
            self.weight_hh.view_mut().into_dyn(),
        ];
        if let (Some(b_ih), Some(b_hh)) = (&mut self.bias_ih, &mut self.bias_hh) {
            v.push(b_ih.view_mut().into_dyn());
            v.push(b_hh.view_mut().into_dyn());
        }
        if let Some(w_hr) = &mut self.weight_hr {
            v.push(w_hr.view_mut().into_dyn());
        }
        v
    }

    /// Writes `x W_ihᵀ + b_ih` (and `+ b_hh` if `with_hh_bias`) for every row of `x` `(N, I)` into
    /// `out` `(N, G·H)`: the input projections of all steps in one matrix product.
    /// `w_ih_t`, if given, is `W_ihᵀ` laid out for the product (shared by the shards of a pass).
    pub(crate) fn project_inputs(
        &self,
        w_ih_t: Option<&Prepared<'_, F>>,
        x: ArrayView2<'_, F>,
        out: &mut Array2<F>,
        with_hh_bias: bool,
    ) {
        match w_ih_t {
            Some(w_ih_t) => w_ih_t.mul(x, &mut out.view_mut(), false),
            None => gemm(x, self.weight_ih.t(), &mut out.view_mut(), false),
        }
        if let (Some(b_ih), Some(b_hh)) = (&self.bias_ih, &self.bias_hh) {
            let bias = if with_hh_bias {
                b_ih + b_hh
            } else {
                b_ih.clone()
            };
            out.rows_mut().into_iter().for_each(|mut row| row += &bias);
        }
    }

    /// Adds the parameter gradients into `grads`, given the gradient `d_xp` `(N, G·H)` of the
    /// input projections `x W_ihᵀ + b_ih`, the gradient `d_rec` of the recurrent products
    /// `h_prev W_hhᵀ + b_hh`, the inputs `x` `(N, I)` and the previous hidden states `h_prev`
    /// `(N, H)`: one matrix product per weight.
    pub(crate) fn accumulate_grads(
        d_xp: ArrayView2<'_, F>,
        d_rec: ArrayView2<'_, F>,
        x: ArrayView2<'_, F>,
        h_prev: ArrayView2<'_, F>,
        grads: &mut Self,
    ) {
        gemm(d_xp.t(), x, &mut grads.weight_ih.view_mut(), true);
        gemm(d_rec.t(), h_prev, &mut grads.weight_hh.view_mut(), true);
        if let (Some(g_ih), Some(g_hh)) = (&mut grads.bias_ih, &mut grads.bias_hh) {
            add_row_sums(d_xp, g_ih);
            add_row_sums(d_rec, g_hh);
        }
    }
}

/// Collects the weight gradients of a backward pass chunk by chunk.
///
/// When the recurrent product's gradient is the input projection's (`d_rec = d_xp`: RNN, LSTM),
/// `[dW_ih | dW_hh] = d_xpᵀ [X | H_prev]` is one product (its left operand packed once instead
/// of twice), summed over the chunks in a buffer that is added into the gradients at the end.
/// Otherwise (GRU) each chunk adds its two products directly.
pub(crate) struct GradSums<F: Float> {
    fused: Option<Fused<F>>,
    /// `dW_hr` summed so far (a projected LSTM), `(P, H)`, and whether a chunk was added.
    proj: Option<(Array2<F>, bool)>,
}

struct Fused<F: Float> {
    /// `[X | H_prev]` of a chunk, `(rows, I + H)`.
    xh: Array2<F>,
    /// `[dW_ih | dW_hh]` summed so far, `(G·H, I + H)`.
    dw: Array2<F>,
    /// Bias gradient summed so far (`None` without biases).
    db: Option<Array1<F>>,
    started: bool,
}

impl<F: Float> GradSums<F> {
    /// For chunks of at most `rows` rows; `shared` if `d_rec = d_xp`.
    pub(crate) fn new(w: &CellWeights<F>, shared: bool, rows: usize) -> Self {
        let (gh, n_in) = w.weight_ih.dim();
        let hidden = w.weight_hh.ncols();
        let fused = shared.then(|| Fused {
            xh: crate::pool::scratch((rows, n_in + hidden)),
            dw: crate::pool::scratch((gh, n_in + hidden)),
            db: w.has_bias().then(|| Array1::zeros(gh)),
            started: false,
        });
        let proj = w
            .weight_hr
            .as_ref()
            .map(|w_hr| (crate::pool::scratch(w_hr.raw_dim()), false));
        GradSums { fused, proj }
    }

    /// Adds one chunk of the projection's gradient: `dW_hr += d_hᵀ h_raw`, from the gradients
    /// `d_h` `(rows, P)` of the projected outputs and the unprojected ones `h_raw` `(rows, H)`.
    pub(crate) fn add_projection(&mut self, d_h: ArrayView2<'_, F>, h_raw: ArrayView2<'_, F>) {
        let (dw, started) = self.proj.as_mut().expect("a projected cell");
        gemm(d_h.t(), h_raw, &mut dw.view_mut(), *started);
        *started = true;
    }

    /// Adds one chunk: `d_xp`, `d_rec` `(rows, G·H)`, `x` `(rows, I)`, `h_prev` `(rows, H)`
    /// (unfused sums add into `grads`, which they need; fused ones ignore it).
    pub(crate) fn add_chunk(
        &mut self,
        d_xp: ArrayView2<'_, F>,
        d_rec: ArrayView2<'_, F>,
        x: ArrayView2<'_, F>,
        h_prev: ArrayView2<'_, F>,
        grads: Option<&mut CellWeights<F>>,
    ) {
        let Some(f) = &mut self.fused else {
            let grads = grads.expect("unfused sums add into the gradients");
            CellWeights::accumulate_grads(d_xp, d_rec, x, h_prev, grads);
            return;
        };
        let (rows, n_in) = x.dim();
        f.xh.slice_mut(s![..rows, ..n_in]).assign(&x);
        f.xh.slice_mut(s![..rows, n_in..]).assign(&h_prev);
        gemm(
            d_xp.t(),
            f.xh.slice(s![..rows, ..]),
            &mut f.dw.view_mut(),
            f.started,
        );
        f.started = true;
        if let Some(db) = &mut f.db {
            add_row_sums(d_xp, db);
        }
    }

    /// Adds what was summed into `grads` and returns the buffers to the pool.
    pub(crate) fn finish(self, grads: &mut CellWeights<F>) {
        if let Some((dw, started)) = self.proj {
            if started {
                *grads
                    .weight_hr
                    .as_mut()
                    .expect("grads shaped like the weights") += &dw;
            }
            crate::pool::give_array(dw);
        }
        let Some(f) = self.fused else { return };
        if f.started {
            let n_in = grads.weight_ih.ncols();
            grads.weight_ih += &f.dw.slice(s![.., ..n_in]);
            grads.weight_hh += &f.dw.slice(s![.., n_in..]);
            if let (Some(db), Some(g_ih), Some(g_hh)) =
                (&f.db, &mut grads.bias_ih, &mut grads.bias_hh)
            {
                *g_ih += db;
                *g_hh += db;
            }
        }
        crate::pool::give_array(f.xh);
        crate::pool::give_array(f.dw);
    }
}

/// `out += Σ_rows d`: row by row, so that each addition is one contiguous vector operation.
fn add_row_sums<F: Float>(d: ArrayView2<'_, F>, out: &mut Array1<F>) {
    match out.as_slice_mut() {
        Some(o) => {
            for r in d.rows() {
                match r.as_slice() {
                    Some(r) => o.iter_mut().zip(r).for_each(|(a, &v)| *a += v),
                    None => o.iter_mut().zip(r.iter()).for_each(|(a, &v)| *a += v),
                }
            }
        }
        None => *out += &d.sum_axis(Axis(0)),
    }
}
