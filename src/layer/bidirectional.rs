//! [`Bidirectional`]: two cells, the second run over reversed time, with Keras' merge modes.

use ndarray::{Array3, ArrayView3, ArrayViewD, ArrayViewMutD};

use super::tape::LayerTape;
use super::unit::{
    backward_methods, output_grad_or_zeros, unstack_or_zeros, MergeMode, Recorded, Unit,
};
use crate::cell::{Cell, Stacked, State};
use crate::check;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::params::Params;

/// A bidirectional recurrent layer: `forward` runs over time from the first step, `backward` from
/// each sequence's last real step to the first, and their outputs are merged ([`MergeMode`]).
///
/// Shapes: input `(T, B, I)`; output `(T, B, 2H)` for [`MergeMode::Concat`] (forward features
/// first, as PyTorch), `(T, B, H)` otherwise. Initial and final states are stacked as PyTorch
/// does, `(2, B, H)` (index 0 forward, 1 backward) — an [`Array3`] for RNN/GRU, an
/// [`LstmState<F, Ix3>`](crate::LstmState) for LSTM.
///
/// **Variable lengths** (PyTorch's `pack_padded_sequence` semantics): with `lengths[b] = L`, the
/// forward direction stops after step `L−1` and its final state is that step's; the backward
/// direction starts at step `L−1`, never on padding; outputs at padded steps `t ≥ L` are zero
/// and the gradient given for them is ignored.
///
/// Parameter names: `weight_ih_l0`, …, then `weight_ih_l0_reverse`, … (PyTorch's).
///
/// # Examples
///
/// ```
/// use ndarray::Array3;
/// use rand::SeedableRng;
/// use recurrent::{Bidirectional, GruCell, MergeMode, Params};
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let bi = Bidirectional::new(GruCell::<f64>::new(3, 4, &mut rng)?, GruCell::new(3, 4, &mut rng)?)?;
/// let x = Array3::<f64>::ones((6, 2, 3)); // (T, B, I)
/// // The second sequence has 4 real steps; steps 4 and 5 are padding.
/// let (out, h_n, tape) = bi.forward(x.view(), None, Some(&[6, 4]))?;
/// assert_eq!(out.dim(), (6, 2, 8));
/// assert_eq!(h_n.dim(), (2, 2, 4));
/// assert!(out.slice(ndarray::s![4.., 1, ..]).iter().all(|&v| v == 0.0));
///
/// let mut grads = bi.zeros_like();
/// let (dx, _d_h0) = bi.backward(&tape, Array3::ones(out.dim()).view(), None, &mut grads)?;
/// assert_eq!(dx.dim(), (6, 2, 3));
///
/// let sum = bi.clone().with_merge(MergeMode::Sum);
/// assert_eq!(sum.infer(x.view(), None, None)?.0.dim(), (6, 2, 4));
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Bidirectional<C> {
    unit: Unit<C>,
}

/// What [`Bidirectional::forward`] returns: merged outputs, final states `(2, B, H)` and the tape.
pub type BidirectionalForward<F, C> =
    (Array3<F>, Stacked<F, C>, LayerTape<F, <C as Cell<F>>::Tape>);

impl<C> Bidirectional<C> {
    /// Pairs a forward and a backward cell, merging by concatenation.
    ///
    /// # Errors
    ///
    /// [`Error::Mismatch`] if the two cells differ in input or hidden size.
    pub fn new<F: Float>(forward: C, backward: C) -> Result<Self>
    where
        C: Cell<F>,
    {
        let a = (
            forward.input_size(),
            forward.hidden_size(),
            forward.output_size(),
        );
        let b = (
            backward.input_size(),
            backward.hidden_size(),
            backward.output_size(),
        );
        if a != b {
            return Err(Error::Mismatch(format!(
                "the forward cell has (input_size, hidden_size, output_size) = {a:?}, the backward \
                 cell {b:?}"
            )));
        }
        Ok(Self {
            unit: Unit::new(vec![forward, backward], MergeMode::Concat),
        })
    }

    /// Sets how the two directions' outputs are merged.
    pub fn with_merge(mut self, merge: MergeMode) -> Self {
        self.unit.set_merge(merge);
        self
    }

    /// The merge mode.
    pub fn merge(&self) -> MergeMode {
        self.unit.merge()
    }

    /// The cell that runs forward in time.
    pub fn forward_cell(&self) -> &C {
        &self.unit.cells()[0]
    }

    /// The cell that runs backward in time.
    pub fn backward_cell(&self) -> &C {
        &self.unit.cells()[1]
    }

    /// Features per step of the output: `2H` for [`MergeMode::Concat`], else `H`.
    pub fn output_size<F: Float>(&self) -> usize
    where
        C: Cell<F>,
    {
        self.unit.output_size()
    }

    /// Checks `x`, `init` and `lengths`; returns `(T, B)` and the two initial states.
    fn prepare<F: Float>(
        &self,
        x: &ArrayView3<'_, F>,
        init: Option<&Stacked<F, C>>,
        lengths: Option<&[usize]>,
    ) -> Result<(usize, usize, Vec<C::State>)>
    where
        C: Cell<F>,
    {
        let (steps, batch) = check::input(x, self.unit.input_size(), "T, B")?;
        check::lengths(lengths, steps, batch)?;
        let inits =
            unstack_or_zeros::<F, C::State>(init, 2, batch, self.unit.state_widths(), "init")?;
        Ok((steps, batch, inits))
    }

    /// Runs both directions over `x` `(T, B, I)` from `init` (`(2, B, H)` stacked; zeros if
    /// `None`), with optional per-sequence `lengths`, and keeps a tape.
    ///
    /// Returns `(merged outputs, final states (2, B, H), tape)`.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] if `x` is not `(T, B, I)` with `T, B ≥ 1` or `init` is not `(2, B, H)`;
    /// [`Error::InvalidConfig`] if `lengths` does not hold `B` lengths in `1..=T`.
    pub fn forward<F: Float>(
        &self,
        x: ArrayView3<'_, F>,
        init: Option<&Stacked<F, C>>,
        lengths: Option<&[usize]>,
    ) -> Result<BidirectionalForward<F, C>>
    where
        C: Cell<F>,
    {
        let (steps, batch, inits) = self.prepare(&x, init, lengths)?;
        let (out, finals, tape) = self.unit.forward(x, &inits, lengths, true);
        let tape = LayerTape {
            unit: tape.expect("tape kept"),
            rec: Recorded::new(self, self.unit.sizes(), steps, batch),
        };
        Ok((out, C::State::stack(&finals), tape))
    }

    /// Like [`Bidirectional::forward`] but keeps no tape.
    ///
    /// # Errors
    ///
    /// As [`Bidirectional::forward`].
    pub fn infer<F: Float>(
        &self,
        x: ArrayView3<'_, F>,
        init: Option<&Stacked<F, C>>,
        lengths: Option<&[usize]>,
    ) -> Result<(Array3<F>, Stacked<F, C>)>
    where
        C: Cell<F>,
    {
        let (_, _, inits) = self.prepare(&x, init, lengths)?;
        let (out, finals, _) = self.unit.forward(x, &inits, lengths, false);
        Ok((out, C::State::stack(&finals)))
    }

    backward_methods! {
        tape: LayerTape<F, C::Tape>,
        state: Stacked<F, C>,
        /// Backpropagation through both directions.
        ///
        /// `d_output` is the gradient of the merged outputs (ignored at padded steps; pass `None`
        /// when only the final states feed the loss), `d_final` of the final states `(2, B, H)`
        /// (`None` = zeros). Adds parameter gradients into `grads` and
        /// returns `(dx (T, B, I), d_init (2, B, H))`.
        ///
        /// # Errors
        ///
        /// [`Error::Shape`] if `d_output` or `d_final` does not match the forward pass;
        /// [`Error::Mismatch`] if `grads` is not shaped like `self`, the tape came from a layer of
        /// other sizes or another merge mode, or the weights changed since it was recorded.
        fn backward;

        /// [`Bidirectional::backward`] without the gradient of the input: adds the parameter
        /// gradients into `grads` and returns only `d_init` `(2, B, H)`.
        ///
        /// For inputs that are data and need no gradient (PyTorch skips it for inputs that do not
        /// require grad); the built-in cells then skip the input-gradient product.
        ///
        /// # Errors
        ///
        /// As [`Bidirectional::backward`].
        ///
        /// # Examples
        ///
        /// ```
        /// # use rand::SeedableRng;
        /// use ndarray::Array3;
        /// use recurrent::{Bidirectional, GruCell, MergeMode, Params};
        /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        /// let layer = Bidirectional::new(
        ///     GruCell::<f64>::new(3, 4, &mut rng)?,
        ///     GruCell::<f64>::new(3, 4, &mut rng)?,
        /// )?
        /// .with_merge(MergeMode::Sum);
        /// let x = Array3::<f64>::ones((5, 2, 3)); // (T, B, I)
        /// let (out, _, tape) = layer.forward(x.view(), None, None)?; // out: (T, B, H)
        /// let mut grads = layer.zeros_like();
        /// let d_init = layer.backward_params(&tape, out.view(), None, &mut grads)?;
        /// assert_eq!(d_init.dim(), (2, 2, 4));
        /// # Ok::<(), recurrent::Error>(())
        /// ```
        fn backward_params;
    }

    #[allow(clippy::type_complexity)]
    fn backward_impl<F: Float>(
        &self,
        tape: &LayerTape<F, C::Tape>,
        d_output: Option<ArrayView3<'_, F>>,
        d_final: Option<&Stacked<F, C>>,
        grads: &mut Self,
        want_dx: bool,
    ) -> Result<(Option<Array3<F>>, Stacked<F, C>)>
    where
        C: Cell<F>,
    {
        let rec = &tape.rec;
        let want = (rec.steps, rec.batch, self.output_size());
        let d_output = output_grad_or_zeros(d_output, want);
        let d_output = d_output.view();
        self.unit.check_tape(&tape.unit)?;
        rec.check_backward("layer", self, &self.unit.sizes(), grads, &d_output, want)?;
        let widths = self.unit.state_widths();
        let d_finals = unstack_or_zeros::<F, C::State>(d_final, 2, rec.batch, widths, "d_final")?;
        let (dx, d0) =
            self.unit
                .backward(&tape.unit, d_output, &d_finals, &mut grads.unit, want_dx);
        Ok((dx, C::State::stack(&d0)))
    }
}

impl<F: Float, C: Cell<F>> Params<F> for Bidirectional<C> {
    fn named_arrays(&self) -> Vec<(String, ArrayViewD<'_, F>)> {
        self.unit.named_arrays(0)
    }
    fn arrays_mut(&mut self) -> Vec<ArrayViewMutD<'_, F>> {
        self.unit.arrays_mut()
    }
}
