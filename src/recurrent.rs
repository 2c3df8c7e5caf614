//! [`Recurrent`]: a cell run over a whole sequence, with checked inputs.

use ndarray::{Array3, ArrayView3, ArrayViewD, ArrayViewMutD};

use crate::cell::{Cell, Schedule, SequenceTape};
use crate::check;
use crate::error::{shape_err, Error, Result};
use crate::float::Float;
use crate::params::{check_fingerprint, check_same_layout, Params};

/// One recurrent layer: a [`Cell`] run over time-major sequences `(T, B, I)`.
///
/// * [`Recurrent::forward`] returns the outputs `(T, B, H)` (the hidden state after every step), the
///   final state and a [`Tape`] for backward.
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
/// Every input is checked: wrong shapes return [`Error::Shape`], never a panic.
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
/// let (out, last, tape) = lstm.forward(x.view(), None)?;
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
///     let (out, last, tape) = gru.forward(x, state.as_ref())?;
///     let mut grads = gru.zeros_like();
///     gru.backward(&tape, Array3::ones(out.dim()).view(), None, &mut grads)?;
///     // ... optimizer step here ...
///     state = Some(last);
/// }
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Recurrent<C> {
    cell: C,
}

/// What [`Recurrent::forward`] saves for [`Recurrent::backward`]: the cell's tape and the sizes it
/// was recorded with.
#[derive(Debug, Clone)]
pub struct Tape<T> {
    inner: T,
    steps: usize,
    batch: usize,
    input_size: usize,
    hidden_size: usize,
    weights: u64,
}

/// What [`Recurrent::forward`] returns: outputs `(T, B, H)`, the final state and the tape.
pub type Forward<F, C> = (Array3<F>, <C as Cell<F>>::State, Tape<<C as Cell<F>>::Tape>);

impl<T> Tape<T> {
    /// Number of time steps `T` recorded.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Batch size `B` recorded.
    pub fn batch(&self) -> usize {
        self.batch
    }
}

impl<F: Float> Tape<SequenceTape<F>> {
    /// Bytes of memory the tape holds (see [`SequenceTape::nbytes`]).
    pub fn nbytes(&self) -> usize {
        self.inner.nbytes()
    }
}

impl<C> Recurrent<C> {
    /// Wraps a cell.
    pub fn new(cell: C) -> Self {
        Self { cell }
    }

    /// The cell.
    pub fn cell(&self) -> &C {
        &self.cell
    }

    /// Consumes the layer and returns the cell.
    pub fn into_cell(self) -> C {
        self.cell
    }

    /// Number of input features `I`.
    pub fn input_size<F: Float>(&self) -> usize
    where
        C: Cell<F>,
    {
        self.cell.input_size()
    }

    /// Number of hidden units `H` (features per output step).
    pub fn hidden_size<F: Float>(&self) -> usize
    where
        C: Cell<F>,
    {
        self.cell.hidden_size()
    }
}

impl<C> Recurrent<C> {
    fn check_input<F: Float>(&self, x: &ArrayView3<'_, F>) -> Result<(usize, usize)>
    where
        C: Cell<F>,
    {
        check::input(x, self.cell.input_size(), "T, B")
    }

    fn check_state<F: Float>(&self, state: &C::State, batch: usize, what: &str) -> Result<()>
    where
        C: Cell<F>,
    {
        check::state(state, batch, self.cell.hidden_size(), what)
    }

    /// Runs the sequence `x` `(T, B, I)` from `init` (zeros if `None`) and keeps a tape.
    ///
    /// Returns `(outputs (T, B, H), final state, tape)`.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] if `x` is not `(T, B, I)` with `T, B ≥ 1`, or a part of `init` is not
    /// `(B, H)`.
    pub fn forward<F: Float>(
        &self,
        x: ArrayView3<'_, F>,
        init: Option<&C::State>,
    ) -> Result<Forward<F, C>>
    where
        C: Cell<F>,
    {
        let (steps, batch) = self.check_input(&x)?;
        let zero;
        let init = match init {
            Some(s) => {
                self.check_state(s, batch, "init")?;
                s
            }
            None => {
                zero = self.cell.zero_state(batch);
                &zero
            }
        };
        let (out, last, inner) = self.cell.forward_sequence(x, init, Schedule::FORWARD);
        let tape = Tape {
            inner,
            steps,
            batch,
            input_size: self.cell.input_size(),
            hidden_size: self.cell.hidden_size(),
            weights: self.cell.fingerprint(),
        };
        Ok((out, last, tape))
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
    ) -> Result<(Array3<F>, C::State)>
    where
        C: Cell<F>,
    {
        let (_, batch) = self.check_input(&x)?;
        match init {
            Some(s) => {
                self.check_state(s, batch, "init")?;
                Ok(self.cell.infer_sequence(x, s, Schedule::FORWARD))
            }
            None => {
                Ok(self
                    .cell
                    .infer_sequence(x, &self.cell.zero_state(batch), Schedule::FORWARD))
            }
        }
    }

    /// Backpropagation through time.
    ///
    /// `d_output` `(T, B, H)` is the gradient of the loss with respect to the outputs of
    /// [`Recurrent::forward`], `d_final` with respect to its final state (`None` = zeros).
    /// Adds the parameter gradients into `grads` (a buffer shaped like `self`, e.g. from
    /// [`Params::zeros_like`]) and returns `(dx (T, B, I), d_init)`.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] if `d_output` or `d_final` does not match the tape; [`Error::Mismatch`] if
    /// `grads` is not shaped like `self`, the tape was recorded by a layer of other sizes, or the
    /// weights changed since the tape was recorded.
    pub fn backward<F: Float>(
        &self,
        tape: &Tape<C::Tape>,
        d_output: ArrayView3<'_, F>,
        d_final: Option<&C::State>,
        grads: &mut Self,
    ) -> Result<(Array3<F>, C::State)>
    where
        C: Cell<F>,
    {
        self.backward_with(tape, d_output, d_final, grads, |cell, t, d, s, g| {
            cell.backward_sequence(t, d, s, g)
        })
    }

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
    /// let (out, _, tape) = layer.forward(x.view(), None)?;
    /// let mut grads = layer.zeros_like();
    /// let d_init = layer.backward_params(&tape, out.view(), None, &mut grads)?;
    /// assert_eq!(d_init.h.dim(), (2, 4));
    /// # Ok::<(), recurrent::Error>(())
    /// ```
    pub fn backward_params<F: Float>(
        &self,
        tape: &Tape<C::Tape>,
        d_output: ArrayView3<'_, F>,
        d_final: Option<&C::State>,
        grads: &mut Self,
    ) -> Result<C::State>
    where
        C: Cell<F>,
    {
        self.backward_with(tape, d_output, d_final, grads, |cell, t, d, s, g| {
            cell.backward_sequence_params(t, d, s, g)
        })
    }

    /// Checks the arguments of a backward pass, then runs `run` on the cell.
    fn backward_with<F: Float, R>(
        &self,
        tape: &Tape<C::Tape>,
        d_output: ArrayView3<'_, F>,
        d_final: Option<&C::State>,
        grads: &mut Self,
        run: impl FnOnce(&C, &C::Tape, ArrayView3<'_, F>, &C::State, &mut C) -> R,
    ) -> Result<R>
    where
        C: Cell<F>,
    {
        let (input, hidden) = (self.cell.input_size(), self.cell.hidden_size());
        if (tape.input_size, tape.hidden_size) != (input, hidden) {
            return Err(Error::Mismatch(format!(
                "the tape was recorded by a layer with input_size {} and hidden_size {}, this \
                 layer has {input} and {hidden}",
                tape.input_size, tape.hidden_size
            )));
        }
        let want = (tape.steps, tape.batch, hidden);
        if d_output.dim() != want {
            return Err(shape_err(
                "d_output",
                format!("{want:?} = (T, B, hidden_size), the shape of the outputs"),
                d_output.shape(),
            ));
        }
        check_fingerprint(&self.cell, tape.weights)?;
        check_same_layout(&self.named_arrays(), &grads.named_arrays())?;
        let zero;
        let d_final = match d_final {
            Some(s) => {
                self.check_state(s, tape.batch, "d_final")?;
                s
            }
            None => {
                zero = self.cell.zero_state(tape.batch);
                &zero
            }
        };
        Ok(run(
            &self.cell,
            &tape.inner,
            d_output,
            d_final,
            &mut grads.cell,
        ))
    }
}

impl<F: Float, C: Cell<F>> Params<F> for Recurrent<C> {
    fn named_arrays(&self) -> Vec<(String, ArrayViewD<'_, F>)> {
        self.cell
            .named_arrays()
            .into_iter()
            .map(|(n, a)| (format!("{n}_l0"), a))
            .collect()
    }
    fn arrays_mut(&mut self) -> Vec<ArrayViewMutD<'_, F>> {
        self.cell.arrays_mut()
    }
}
