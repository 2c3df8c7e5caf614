//! [`RecurrentStack`]: the multi-layer, optionally bidirectional network that `torch.nn.RNN`,
//! `torch.nn.LSTM` and `torch.nn.GRU` compute, as [`Rnn`], [`Lstm`] and [`Gru`].

use ndarray::{
    Array2, Array3, ArrayView2, ArrayView3, ArrayViewD, ArrayViewMutD, Axis, CowArray, Zip,
};
use rand::{Rng, RngExt};

use super::tape::StackTape;
use super::unit::{backward_methods, output_grad_or_zeros, unstack_or_zeros, Recorded, Unit};
use crate::cell::{Cell, GruCell, LayerNormLstmCell, LstmCell, RnnCell, Stacked, State};
use crate::check;
use crate::config::StackConfig;
use crate::error::{shape_err, Result};
use crate::float::Float;
use crate::params::Params;
#[cfg(doc)]
use crate::Error;

/// A stack of recurrent layers, each with one or two directions: what `torch.nn.RNN`,
/// `torch.nn.LSTM` and `torch.nn.GRU` compute (LSTM with `proj_size` too). Use it through the aliases
/// [`Rnn`], [`Lstm`] and [`Gru`].
///
/// Shapes (`D` = 2 if bidirectional else 1, `L` = `num_layers`):
///
/// | | time-major (default) | `batch_first` |
/// |---|---|---|
/// | input | `(T, B, input_size)` | `(B, T, input_size)` |
/// | output | `(T, B, D·H)` | `(B, T, D·H)` |
/// | `h0`, `h_n` (and `c0`, `c_n`) | `(L·D, B, H)` | `(L·D, B, H)` |
///
/// The output is the last layer's hidden state at every step, both directions concatenated
/// (forward first). States are stacked with index `layer · D + direction`: an [`Array3`] for
/// [`Rnn`] and [`Gru`], an [`LstmState<F, Ix3>`](crate::LstmState) for [`Lstm`].
///
/// An [`Lstm`] with [`StackConfig::proj_size`] `= P > 0` (PyTorch's `proj_size`) projects each
/// layer's `h` to `P` features: in the table above `H` becomes `P` for the output, `h0` and
/// `h_n`, while `c0` and `c_n` stay `(L·D, B, H)`; each layer and direction has a
/// `weight_hr_l{k}` `(P, H)` after its biases.
///
/// [`RecurrentStack::stream`] runs a unidirectional network one step at a time (real-time
/// inference) with the numbers of [`RecurrentStack::infer`].
///
/// Layer `l > 0` reads layer `l−1`'s output; in training ([`RecurrentStack::forward_train`]) that
/// output first goes through inverted dropout with probability `dropout` — a fresh mask per
/// element, scaled by `1/(1−p)`, never after the last layer, reused by backward.
/// [`RecurrentStack::forward`] and [`RecurrentStack::infer`] apply no dropout (evaluation).
///
/// **Variable lengths**: `lengths[b]` is the number of real steps of sequence `b` (PyTorch's
/// `pack_padded_sequence(enforce_sorted=False)` followed by `pad_packed_sequence`). In every layer
/// the forward direction stops after step `lengths[b] − 1`, and the final state is each
/// sequence's state at its own last step; the reverse direction starts at step `lengths[b] − 1`,
/// never on padding. Outputs at padded steps are zero and gradients given for them are ignored.
/// Lengths need not be sorted; each must be in `1..=T` (PyTorch rejects empty sequences too).
///
/// Parameters are named and ordered exactly as PyTorch registers them: `weight_ih_l0`,
/// `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`, then the `_reverse` ones, then layer 1, ….
///
/// # Examples
///
/// ```
/// use ndarray::Array3;
/// use rand::SeedableRng;
/// use recurrent::{Lstm, Params, StackConfig};
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let config = StackConfig::new(3, 4).with_num_layers(2).with_bidirectional(true);
/// let lstm = Lstm::<f64>::new(config, &mut rng)?;
/// assert_eq!(lstm.names()[4], "weight_ih_l0_reverse");
///
/// let x = Array3::<f64>::ones((5, 2, 3)); // (T, B, I)
/// let lengths = [3, 5]; // the first sequence has 3 real steps
/// let (out, state, tape) = lstm.forward(x.view(), None, Some(&lengths))?;
/// assert_eq!(out.dim(), (5, 2, 8)); // (T, B, 2H)
/// assert_eq!(state.h.dim(), (4, 2, 4)); // (L·D, B, H)
///
/// let mut grads = lstm.zeros_like();
/// let (dx, d_init) = lstm.backward(&tape, Array3::ones(out.dim()).view(), None, &mut grads)?;
/// assert_eq!(dx.dim(), (5, 2, 3));
/// assert_eq!(d_init.c.dim(), (4, 2, 4));
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RecurrentStack<C> {
    pub(super) config: StackConfig,
    /// One unit per layer, each with `num_directions` cells.
    pub(super) layers: Vec<Unit<C>>,
}

/// Elman RNN stack, `torch.nn.RNN`.
pub type Rnn<F> = RecurrentStack<RnnCell<F>>;
/// LSTM stack, `torch.nn.LSTM` (with `proj_size` through [`StackConfig::proj_size`]).
pub type Lstm<F> = RecurrentStack<LstmCell<F>>;
/// GRU stack, `torch.nn.GRU`.
pub type Gru<F> = RecurrentStack<GruCell<F>>;
/// Layer-normalised LSTM stack ([`LayerNormLstmCell`]); PyTorch has no such module.
pub type LayerNormLstm<F> = RecurrentStack<LayerNormLstmCell<F>>;

/// What the backward pass returns inside: the input gradient (if asked for) and `d_init`.
type StackBackward<F, C> = (Option<Array3<F>>, Stacked<F, C>);

/// What [`RecurrentStack::forward`] returns: output, final states and tape.
pub type StackForward<F, C> = (Array3<F>, Stacked<F, C>, StackTape<F, <C as Cell<F>>::Tape>);

impl<C> RecurrentStack<C> {
    /// The settings.
    pub fn config(&self) -> &StackConfig {
        &self.config
    }

    /// The cells of layer `l`: `[forward]` or `[forward, reverse]`.
    ///
    /// # Panics
    ///
    /// If `l >= num_layers`.
    pub fn layer(&self, l: usize) -> &[C] {
        self.layers[l].cells()
    }

    /// Features per output step: `D · hidden_size`, or `D · proj_size` for an LSTM with a
    /// projection.
    pub fn output_size(&self) -> usize {
        self.config.num_directions() * self.config.output_width()
    }
}

impl<C> RecurrentStack<C> {
    /// The last layer's final hidden state as one `(B, D·H)` array, the forward direction's `h`
    /// then the reverse's: what a sequence classifier reads. PyTorch:
    /// `torch.cat([h_n[-2], h_n[-1]], dim=1)` (bidirectional) or `h_n[-1]`. With `lengths`,
    /// each sequence's state is the one at its own last step (the reverse direction's at step 0).
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] if `finals` is not `(L·D, B, H)` for this network.
    ///
    /// # Examples
    ///
    /// ```
    /// use ndarray::Array3;
    /// use rand::SeedableRng;
    /// use recurrent::loss::cross_entropy_loss_last;
    /// use recurrent::{Gru, Linear, Params, StackConfig};
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let config = StackConfig::new(3, 8).with_num_layers(2).with_bidirectional(true);
    /// let gru = Gru::<f32>::new(config, &mut rng)?;
    /// let head = Linear::<f32>::new(16, 4, &mut rng)?; // 2 directions × 8 → 4 classes
    /// let x = Array3::<f32>::from_elem((5, 2, 3), 0.1); // (T, B, I)
    /// let lengths = [5, 3];
    ///
    /// let (_output, finals, tape) = gru.forward(x.view(), None, Some(&lengths))?;
    /// let features = gru.last_hidden(&finals)?; // (B, 16)
    /// let (logits, head_tape) = head.forward(features.view())?; // (B, 4)
    /// let (_loss, d_logits) = cross_entropy_loss_last(logits.view(), &[1, 3])?;
    ///
    /// let (mut g_gru, mut g_head) = (gru.zeros_like(), head.zeros_like());
    /// let d_features = head.backward(&head_tape, d_logits.view(), &mut g_head)?;
    /// let d_final = gru.last_hidden_grad(d_features.view())?; // zeros but the last layer's h
    /// // The per-step outputs are not used: no gradient for them.
    /// gru.backward_params(&tape, None, Some(&d_final), &mut g_gru)?;
    /// # Ok::<(), recurrent::Error>(())
    /// ```
    pub fn last_hidden<F: Float>(&self, finals: &Stacked<F, C>) -> Result<Array2<F>>
    where
        C: Cell<F>,
    {
        let d = self.config.num_directions();
        let states = <C::State as State<F>>::unstack(finals);
        let want = self.layers.len() * d;
        let batch = states.first().map_or(0, |s| s.h().nrows());
        let hidden = self.config.output_width();
        if states.len() != want || states.iter().any(|s| s.h().dim() != (batch, hidden)) {
            let got = <C::State as State<F>>::stacked_parts(finals)
                .first()
                .map(|(_, a)| a.shape().to_vec())
                .unwrap_or_default();
            return Err(shape_err(
                "finals",
                format!("({want}, B, {hidden}): L·D final states of this network"),
                &got,
            ));
        }
        let last: Vec<ArrayView2<'_, F>> = states[want - d..].iter().map(|s| s.h()).collect();
        Ok(ndarray::concatenate(Axis(1), &last).expect("same batch"))
    }

    /// The gradient with respect to the final states `(L·D, B, H)` given `d` `(B, D·H)`, the
    /// gradient with respect to [`RecurrentStack::last_hidden`]: zero everywhere but the last
    /// layer's `h`. Pass it as `d_final` to [`RecurrentStack::backward`].
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] if `d` is not `(B, D·H)`.
    pub fn last_hidden_grad<F: Float>(&self, d: ArrayView2<'_, F>) -> Result<Stacked<F, C>>
    where
        C: Cell<F>,
    {
        let (dirs, hidden) = (self.config.num_directions(), self.config.output_width());
        if d.ncols() != dirs * hidden {
            return Err(shape_err(
                "d (the gradient of last_hidden)",
                format!("(B, {})", dirs * hidden),
                d.shape(),
            ));
        }
        let batch = d.nrows();
        let n = self.layers.len() * dirs;
        let zero = <C::State as State<F>>::zeros_with(batch, self.config.hidden_size, hidden);
        let mut states = vec![zero; n];
        for (k, state) in states[n - dirs..].iter_mut().enumerate() {
            state
                .h_mut()
                .assign(&d.slice(ndarray::s![.., k * hidden..(k + 1) * hidden]));
        }
        Ok(<C::State as State<F>>::stack(&states))
    }

    /// The same network with another `dropout` between layers (used by
    /// [`RecurrentStack::forward_train`]); a weight file does not record it, so a loaded network
    /// starts at 0.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `dropout` is not in `[0, 1]`.
    ///
    /// # Examples
    ///
    /// ```
    /// use rand::SeedableRng;
    /// use recurrent::{Gru, StackConfig};
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let net = Gru::<f32>::new(StackConfig::new(3, 4).with_num_layers(2), &mut rng)?;
    /// let net = net.with_dropout(0.3)?.with_batch_first(true);
    /// assert_eq!(net.config().dropout, 0.3);
    /// assert!(net.config().batch_first);
    /// assert!(net.clone().with_dropout(1.5).is_err());
    /// # Ok::<(), recurrent::Error>(())
    /// ```
    pub fn with_dropout(mut self, dropout: f64) -> Result<Self> {
        let config = self.config.with_dropout(dropout);
        config.validate()?;
        self.config = config;
        Ok(self)
    }

    /// The same network reading and writing batch-first `(B, T, ·)` arrays, or time-major
    /// `(T, B, ·)` ones (a weight file does not record it, so a loaded network starts
    /// time-major).
    pub fn with_batch_first(mut self, batch_first: bool) -> Self {
        self.config = self.config.with_batch_first(batch_first);
        self
    }

    /// Time-major view of `x` and its `(T, B)`, after checking it.
    fn time_major<'a, F: Float>(
        &self,
        x: ArrayView3<'a, F>,
    ) -> Result<(ArrayView3<'a, F>, usize, usize)> {
        if self.config.batch_first {
            let (batch, steps) = check::input(&x, self.config.input_size, "B, T")?;
            Ok((x.permuted_axes([1, 0, 2]), steps, batch))
        } else {
            let (steps, batch) = check::input(&x, self.config.input_size, "T, B")?;
            Ok((x, steps, batch))
        }
    }

    fn to_user_layout<F: Float>(&self, a: Array3<F>) -> Array3<F> {
        if self.config.batch_first {
            a.permuted_axes([1, 0, 2]).as_standard_layout().into_owned()
        } else {
            a
        }
    }

    fn inits<F: Float>(
        &self,
        init: Option<&Stacked<F, C>>,
        batch: usize,
        what: &str,
    ) -> Result<Vec<C::State>>
    where
        C: Cell<F>,
    {
        let n = self.layers.len() * self.config.num_directions();
        let widths = (self.config.hidden_size, self.config.output_width());
        unstack_or_zeros::<F, C::State>(init, n, batch, widths, what)
    }

    #[allow(clippy::type_complexity)]
    pub(crate) fn run<F: Float>(
        &self,
        x: ArrayView3<'_, F>,
        init: Option<&Stacked<F, C>>,
        lengths: Option<&[usize]>,
        keep: bool,
        masks: Vec<Array3<F>>,
    ) -> Result<(Array3<F>, Stacked<F, C>, Option<StackTape<F, C::Tape>>)>
    where
        C: Cell<F>,
    {
        let (x, steps, batch) = self.time_major(x)?;
        check::lengths(lengths, steps, batch)?;
        let inits = self.inits(init, batch, "init")?;
        let d = self.config.num_directions();
        let mut finals = Vec::with_capacity(inits.len());
        let mut units = Vec::with_capacity(self.layers.len());
        let mut layer_out: Option<Array3<F>> = None;
        for (l, unit) in self.layers.iter().enumerate() {
            let input = layer_out.as_ref().map_or(x, |o| o.view());
            let (mut out, f, t) = unit.forward(input, &inits[l * d..(l + 1) * d], lengths, keep);
            finals.extend(f);
            units.extend(t);
            if let Some(mask) = masks.get(l) {
                out *= mask;
            }
            layer_out = Some(out);
        }
        let out = self.to_user_layout(layer_out.expect("at least one layer"));
        let tape = keep.then(|| StackTape {
            units,
            masks,
            rec: Recorded::new(self, self.config, steps, batch),
        });
        Ok((out, C::State::stack(&finals), tape))
    }

    /// Runs the network over `x` from `init` (zeros if `None`), with optional per-sequence
    /// `lengths`, **without dropout**, and keeps a tape.
    ///
    /// Returns `(output, final states, tape)`; see the type's docs for the shapes.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] if `x` does not have `input_size` features or a part of `init` is not
    /// `(L·D, B, H)`; [`Error::InvalidConfig`] if `lengths` does not hold `B` lengths in `1..=T`.
    pub fn forward<F: Float>(
        &self,
        x: ArrayView3<'_, F>,
        init: Option<&Stacked<F, C>>,
        lengths: Option<&[usize]>,
    ) -> Result<StackForward<F, C>>
    where
        C: Cell<F>,
    {
        let (out, state, tape) = self.run(x, init, lengths, true, Vec::new())?;
        Ok((out, state, tape.expect("tape kept")))
    }

    /// Like [`RecurrentStack::forward`], applying dropout between layers (training mode) with
    /// masks drawn from `rng`. Without dropout (`dropout = 0` or one layer) it equals `forward`.
    ///
    /// # Errors
    ///
    /// As [`RecurrentStack::forward`].
    pub fn forward_train<F: Float, R: Rng + ?Sized>(
        &self,
        x: ArrayView3<'_, F>,
        init: Option<&Stacked<F, C>>,
        lengths: Option<&[usize]>,
        rng: &mut R,
    ) -> Result<StackForward<F, C>>
    where
        C: Cell<F>,
    {
        let (_, steps, batch) = self.time_major(x)?;
        let p = self.config.dropout;
        let mut masks = Vec::new();
        if p > 0.0 {
            let keep = F::from_f64(if p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 });
            for _ in 1..self.layers.len() {
                masks.push(Array3::from_shape_simple_fn(
                    (steps, batch, self.output_size()),
                    || {
                        if rng.random::<f64>() < p {
                            F::zero()
                        } else {
                            keep
                        }
                    },
                ));
            }
        }
        let (out, state, tape) = self.run(x, init, lengths, true, masks)?;
        Ok((out, state, tape.expect("tape kept")))
    }

    /// Runs the network without dropout and without keeping a tape (inference).
    ///
    /// # Errors
    ///
    /// As [`RecurrentStack::forward`].
    pub fn infer<F: Float>(
        &self,
        x: ArrayView3<'_, F>,
        init: Option<&Stacked<F, C>>,
        lengths: Option<&[usize]>,
    ) -> Result<(Array3<F>, Stacked<F, C>)>
    where
        C: Cell<F>,
    {
        let (out, state, _) = self.run(x, init, lengths, false, Vec::new())?;
        Ok((out, state))
    }

    backward_methods! {
        tape: StackTape<F, C::Tape>,
        state: Stacked<F, C>,
        /// Backpropagation through time through every layer and direction.
        ///
        /// `d_output` is the gradient of the output (same shape; ignored at padded steps; pass
        /// `None` when only the final states feed the loss, as with
        /// [`RecurrentStack::last_hidden`]), `d_final` of the final states `(L·D, B, H)` (`None` =
        /// zeros). Adds the parameter gradients into
        /// `grads` (shaped like `self`) and returns `(dx, d_init)`, `dx` in the input's layout.
        ///
        /// # Errors
        ///
        /// [`Error::Shape`] if `d_output` or `d_final` does not match the forward pass;
        /// [`Error::Mismatch`] if `grads` is not shaped like `self`, the tape came from a network
        /// with other settings, or the weights changed since it was recorded.
        fn backward;

        /// [`RecurrentStack::backward`] without the gradient of the input: adds the parameter
        /// gradients into `grads` and returns only `d_init` `(L·D, B, H)`.
        ///
        /// Use it when the input is data that needs no gradient (PyTorch skips it too when the input
        /// does not require grad): the first layer's input-gradient product is not formed, about a
        /// ninth of the backward work of a one-layer LSTM with `I = H/2`.
        ///
        /// # Errors
        ///
        /// As [`RecurrentStack::backward`].
        ///
        /// # Examples
        ///
        /// ```
        /// # use rand::SeedableRng;
        /// use ndarray::Array3;
        /// use recurrent::{Lstm, Params, StackConfig};
        /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        /// let net = Lstm::<f32>::new(StackConfig::new(3, 8), &mut rng)?;
        /// let x = Array3::<f32>::ones((5, 2, 3)); // (T, B, I)
        /// let (out, _, tape) = net.forward(x.view(), None, None)?;
        /// let mut grads = net.zeros_like();
        /// let d_init = net.backward_params(&tape, out.view(), None, &mut grads)?;
        /// assert_eq!(d_init.h.dim(), (1, 2, 8));
        /// assert!(grads.global_norm() > 0.0);
        /// # Ok::<(), recurrent::Error>(())
        /// ```
        fn backward_params;
    }

    pub(crate) fn backward_impl<F: Float>(
        &self,
        tape: &StackTape<F, C::Tape>,
        d_output: Option<ArrayView3<'_, F>>,
        d_final: Option<&Stacked<F, C>>,
        grads: &mut Self,
        want_dx: bool,
    ) -> Result<StackBackward<F, C>>
    where
        C: Cell<F>,
    {
        let cfg = &self.config;
        let (steps, batch) = (tape.rec.steps, tape.rec.batch);
        let want = if cfg.batch_first {
            (batch, steps, self.output_size())
        } else {
            (steps, batch, self.output_size())
        };
        let d_output = output_grad_or_zeros(d_output, want);
        let d_output = d_output.view();
        tape.rec
            .check_backward("network", self, cfg, grads, &d_output, want)?;
        let d_finals = self.inits(d_final, batch, "d_final")?;
        let d_out = if cfg.batch_first {
            d_output.permuted_axes([1, 0, 2])
        } else {
            d_output
        };

        let d = cfg.num_directions();
        let mut d_inits = d_finals.clone();
        // The output gradient is read through a view; each layer's input gradient replaces it.
        let mut d_cur = CowArray::from(d_out);
        for l in (0..self.layers.len()).rev() {
            let input_grad = want_dx || l > 0;
            let (dx, d0) = self.layers[l].backward(
                &tape.units[l],
                d_cur.view(),
                &d_finals[l * d..(l + 1) * d],
                &mut grads.layers[l],
                input_grad,
            );
            for (k, d0) in d0.into_iter().enumerate() {
                d_inits[l * d + k] = d0;
            }
            if let Some(mut dx) = dx {
                if l > 0 {
                    if let Some(mask) = tape.masks.get(l - 1) {
                        Zip::from(&mut dx).and(mask).for_each(|a, &m| *a *= m);
                    }
                }
                d_cur = CowArray::from(dx);
            }
        }
        let dx = want_dx.then(|| self.to_user_layout(d_cur.into_owned()));
        Ok((dx, C::State::stack(&d_inits)))
    }
}

impl<F: Float, C: Cell<F>> Params<F> for RecurrentStack<C> {
    fn named_arrays(&self) -> Vec<(String, ArrayViewD<'_, F>)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(l, unit)| unit.named_arrays(l))
            .collect()
    }
    fn arrays_mut(&mut self) -> Vec<ArrayViewMutD<'_, F>> {
        self.layers
            .iter_mut()
            .flat_map(|u| u.arrays_mut())
            .collect()
    }
}
