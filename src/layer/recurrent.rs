//! [`Recurrent`]: a cell run over a whole sequence, with checked inputs.

use ndarray::{Array3, ArrayView3, ArrayViewD, ArrayViewMutD};

use super::tape::LayerTape;
use super::unit::{backward_methods, output_grad_or_zeros, MergeMode, Recorded, Unit};
use crate::cell::Cell;
use crate::check;
use crate::error::Result;
use crate::float::Float;
use crate::params::Params;

/// One recurrent layer: a [`Cell`] run over time-major sequences `(T, B, I)`.
///
/// * [`Recurrent::forward`] returns the outputs `(T, B, H)` (the hidden state after every step), the
///   final state and a [`LayerTape`] for backward.
/// * [`Recurrent::backward`] takes that tape, the gradient of the outputs and optionally of the final
///   state, adds the parameter gradients into a gradient buffer of the same type as the layer, and
///   returns the gradient of the input `(T, B, I)` and of the initial state.
/// * [`Recurrent::infer`] runs without keeping a tape.
///
/// **Truncated BPTT**: run a long sequence in chunks, passing each chunk's final state as the next
/// chunk's initial state; call backward per chunk (newest first), passing the gradient of the initial
/// state of chunk `k+1` as `d_final` of chunk `k` to backpropagate through the whole sequence, or
/// `None` to cut the gradient at the chunk border.
///
/// Parameter names are PyTorch's for layer 0: `weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`,
/// `bias_hh_l0`.
///
/// **Variable lengths**: with `lengths[b] = L`, sequence `b` stops after step `L−1`: its final
/// state is that step's, outputs at padded steps `t ≥ L` are zero and the gradient given for them
/// is ignored (PyTorch's `pack_padded_sequence` semantics).
///
/// Every input is checked: wrong shapes return [`Error::Shape`](crate::Error::Shape), never a panic.
///
/// # Examples
///
/// ```
/// use ndarray::Array3;
/// use rand::SeedableRng;
/// use recurrent::{LstmCell, Params, Recurrent};
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let lstm = Recurrent::new(LstmCell::<f64>::new(3, 8, &mut rng)?);
/// let x = Array3::<f64>::zeros((10, 2, 3)); // (T, B, I)
/// let (out, last, tape) = lstm.forward(x.view(), None, None)?;
/// assert_eq!(out.dim(), (10, 2, 8));
/// assert_eq!(last.c.dim(), (2, 8));
///
/// // Loss = sum of the outputs: its gradient with respect to them is all ones.
/// let mut grads = lstm.zeros_like();
/// let (dx, d_init) = lstm.backward(&tape, Array3::ones(out.dim()).view(), None, &mut grads)?;
/// assert_eq!(dx.dim(), (10, 2, 3));
/// assert_eq!(d_init.h.dim(), (2, 8));
/// assert!(grads.global_norm() > 0.0);
/// # Ok::<(), recurrent::Error>(())
/// ```
///
/// Truncated BPTT over a long stream in chunks of 10 steps, carrying the state and cutting the
/// gradient at chunk borders:
///
/// ```
/// use ndarray::{s, Array3};
/// use rand::SeedableRng;
/// use recurrent::{GruCell, Params, Recurrent};
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
/// let gru = Recurrent::new(GruCell::<f32>::new(2, 4, &mut rng)?);
/// let stream = Array3::<f32>::ones((50, 1, 2)); // (T, B, I)
/// let mut state = None;
/// for chunk in 0..5 {
///     let x = stream.slice(s![chunk * 10..(chunk + 1) * 10, .., ..]);
///     let (out, last, tape) = gru.forward(x, state.as_ref(), None)?;
///     let mut grads = gru.zeros_like();
///     gru.backward(&tape, Array3::ones(out.dim()).view(), None, &mut grads)?;
///     // ... optimizer step here ...
///     state = Some(last);
/// }
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Recurrent<C> {
    unit: Unit<C>,
}

/// What [`Recurrent::forward`] returns: outputs `(T, B, H)`, the final state and the tape.
pub type RecurrentForward<F, C> = (
    Array3<F>,
    <C as Cell<F>>::State,
    LayerTape<F, <C as Cell<F>>::Tape>,
);

impl<C> Recurrent<C> {
    /// Wraps a cell.
    pub fn new(cell: C) -> Self {
        Self {
            unit: Unit::new(vec![cell], MergeMode::Concat),
        }
    }

    /// The cell.
    pub fn cell(&self) -> &C {
        &self.unit.cells()[0]
    }

    /// Consumes the layer and returns the cell.
    pub fn into_cell(self) -> C {
        self.unit.into_cells().remove(0)
    }

    /// Number of input features `I`.
    pub fn input_size<F: Float>(&self) -> usize
    where
        C: Cell<F>,
    {
        self.unit.input_size()
    }

    /// Number of hidden units `H` (features per output step, unless the cell projects them).
    pub fn hidden_size<F: Float>(&self) -> usize
    where
        C: Cell<F>,
    {
        self.unit.hidden_size()
    }

    /// Features per output step: `H`, or `P` for an [`LstmCell`](crate::LstmCell) with a
    /// projection ([`LstmCell::projected`](crate::LstmCell::projected)).
    pub fn output_size<F: Float>(&self) -> usize
    where
        C: Cell<F>,
    {
        self.unit.output_size()
    }
}

impl<C> Recurrent<C> {
    /// Checks `x`, `init` and `lengths`; returns `(T, B)` and the initial state.
    fn prepare<F: Float>(
        &self,
        x: &ArrayView3<'_, F>,
        init: Option<&C::State>,
        lengths: Option<&[usize]>,
    ) -> Result<(usize, usize, C::State)>
    where
        C: Cell<F>,
    {
        let (steps, batch) = check::input(x, self.input_size(), "T, B")?;
        check::lengths(lengths, steps, batch)?;
        let init = match init {
            Some(s) => {
                check::state(s, batch, self.unit.state_widths(), "init")?;
                s.clone()
            }
            None => self.cell().zero_state(batch),
        };
        Ok((steps, batch, init))
    }

    /// Runs the sequence `x` `(T, B, I)` from `init` (zeros if `None`), with optional
    /// per-sequence `lengths`, and keeps a tape.
    ///
    /// Returns `(outputs (T, B, H), final state, tape)`.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`](crate::Error::Shape) if `x` is not `(T, B, I)` with `T, B ≥ 1`, or a part
    /// of `init` is not `(B, H)`; [`Error::InvalidConfig`](crate::Error::InvalidConfig) if
    /// `lengths` does not hold `B` lengths in `1..=T`.
    pub fn forward<F: Float>(
        &self,
        x: ArrayView3<'_, F>,
        init: Option<&C::State>,
        lengths: Option<&[usize]>,
    ) -> Result<RecurrentForward<F, C>>
    where
        C: Cell<F>,
    {
        let (steps, batch, init) = self.prepare(&x, init, lengths)?;
        let (out, mut last, tape) = self.unit.forward(x, &[init], lengths, true);
        let tape = LayerTape {
            unit: tape.expect("tape kept"),
            rec: Recorded::new(self, self.unit.sizes(), steps, batch),
        };
        Ok((out, last.remove(0), tape))
    }

    /// Runs the sequence without keeping a tape (inference). Returns `(outputs (T, B, H), final
    /// state)`, the same numbers as [`Recurrent::forward`].
    ///
    /// # Errors
    ///
    /// As [`Recurrent::forward`].
    pub fn infer<F: Float>(
        &self,
        x: ArrayView3<'_, F>,
        init: Option<&C::State>,
        lengths: Option<&[usize]>,
    ) -> Result<(Array3<F>, C::State)>
    where
        C: Cell<F>,
    {
        let (_, _, init) = self.prepare(&x, init, lengths)?;
        let (out, mut last, _) = self.unit.forward(x, &[init], lengths, false);
        Ok((out, last.remove(0)))
    }

    backward_methods! {
        tape: LayerTape<F, C::Tape>,
        state: C::State,
        /// Backpropagation through time.
        ///
        /// `d_output` `(T, B, H)` is the gradient of the loss with respect to the outputs of
        /// [`Recurrent::forward`] (ignored at padded steps; `None` when only the final state feeds
        /// the loss), `d_final` with respect to its final state (`None` = zeros). Adds the parameter gradients into `grads` (a buffer shaped like `self`,
        /// e.g. from [`Params::zeros_like`]) and returns `(dx (T, B, I), d_init)`.
        ///
        /// # Errors
        ///
        /// [`Error::Shape`](crate::Error::Shape) if `d_output` or `d_final` does not match the tape;
        /// [`Error::Mismatch`](crate::Error::Mismatch) if `grads` is not shaped like `self`, the tape
        /// was recorded by a layer of other sizes, or the weights changed since the tape was recorded.
        fn backward;

        /// [`Recurrent::backward`] without the gradient of the input: adds the parameter gradients
        /// into `grads` and returns only `d_init`.
        ///
        /// For inputs that are data and need no gradient (PyTorch skips it for inputs that do not
        /// require grad); the built-in cells then skip the input-gradient product.
        ///
        /// # Errors
        ///
        /// As [`Recurrent::backward`].
        ///
        /// # Examples
        ///
        /// ```
        /// # use rand::SeedableRng;
        /// use ndarray::Array3;
        /// use recurrent::{LstmCell, Params, Recurrent};
        /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        /// let layer = Recurrent::new(LstmCell::<f64>::new(3, 4, &mut rng)?);
        /// let x = Array3::<f64>::ones((5, 2, 3)); // (T, B, I)
        /// let (out, _, tape) = layer.forward(x.view(), None, None)?;
        /// let mut grads = layer.zeros_like();
        /// let d_init = layer.backward_params(&tape, out.view(), None, &mut grads)?;
        /// assert_eq!(d_init.h.dim(), (2, 4));
        /// # Ok::<(), recurrent::Error>(())
        /// ```
        fn backward_params;
    }

    fn backward_impl<F: Float>(
        &self,
        tape: &LayerTape<F, C::Tape>,
        d_output: Option<ArrayView3<'_, F>>,
        d_final: Option<&C::State>,
        grads: &mut Self,
        want_dx: bool,
    ) -> Result<(Option<Array3<F>>, C::State)>
    where
        C: Cell<F>,
    {
        let rec = &tape.rec;
        let want = (rec.steps, rec.batch, self.unit.output_size());
        let d_output = output_grad_or_zeros(d_output, want);
        let d_output = d_output.view();
        self.unit.check_tape(&tape.unit)?;
        rec.check_backward("layer", self, &self.unit.sizes(), grads, &d_output, want)?;
        let d_final = match d_final {
            Some(s) => {
                check::state(s, rec.batch, self.unit.state_widths(), "d_final")?;
                s.clone()
            }
            None => self.cell().zero_state(rec.batch),
        };
        let (dx, mut d0) =
            self.unit
                .backward(&tape.unit, d_output, &[d_final], &mut grads.unit, want_dx);
        Ok((dx, d0.remove(0)))
    }
}

impl<F: Float, C: Cell<F>> Params<F> for Recurrent<C> {
    fn named_arrays(&self) -> Vec<(String, ArrayViewD<'_, F>)> {
        self.unit.named_arrays(0)
    }
    fn arrays_mut(&mut self) -> Vec<ArrayViewMutD<'_, F>> {
        self.unit.arrays_mut()
    }
}
