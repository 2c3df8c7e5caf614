//! [`Bidirectional`]: two cells, the second run over reversed time, with Keras' merge modes.

use ndarray::{s, Array3, ArrayView3, ArrayViewD, ArrayViewMutD, Axis, Zip};

use crate::cell::{backward_sequence_with, Cell, Schedule, SequenceTape, Stacked, State};
use crate::check;
use crate::error::{shape_err, Error, Result};
use crate::float::Float;
use crate::params::{check_fingerprint, check_same_layout, Params};
use crate::threads;

/// How a bidirectional layer combines the outputs of its two directions (Keras' `merge_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergeMode {
    /// Forward then backward on the feature axis, `(T, B, 2H)` — PyTorch's layout (default).
    #[default]
    Concat,
    /// `forward + backward`, `(T, B, H)`.
    Sum,
    /// `(forward + backward) / 2`, `(T, B, H)`.
    Mean,
    /// `forward ∘ backward`, `(T, B, H)`.
    Mul,
}

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
    forward: C,
    backward: C,
    merge: MergeMode,
}

/// What [`Bidirectional::forward`] saves for [`Bidirectional::backward`].
#[derive(Debug, Clone)]
pub struct BiTape<F: Float, T> {
    tapes: [T; 2],
    /// The two directions' outputs, kept for [`MergeMode::Mul`].
    outputs: Option<[Array3<F>; 2]>,
    steps: usize,
    batch: usize,
    input_size: usize,
    hidden_size: usize,
    weights: u64,
}

impl<F: Float> BiTape<F, SequenceTape<F>> {
    /// Bytes of memory the tape holds: both directions' [`SequenceTape::nbytes`] plus the saved
    /// outputs of [`MergeMode::Mul`].
    pub fn nbytes(&self) -> usize {
        self.tapes.iter().map(SequenceTape::nbytes).sum::<usize>()
            + self
                .outputs
                .as_ref()
                .map_or(0, |o| o.iter().map(|a| a.len()).sum::<usize>())
                * std::mem::size_of::<F>()
    }
}

/// Runs `cells[d]` in direction `d` (0 forward, 1 reversed) over `x`.
pub(crate) type DirectionsOutput<F, C> = (
    Vec<Array3<F>>,
    Vec<<C as Cell<F>>::State>,
    Vec<Option<<C as Cell<F>>::Tape>>,
);

pub(crate) fn run_directions<F: Float, C: Cell<F>>(
    cells: &[&C],
    x: ArrayView3<'_, F>,
    inits: &[C::State],
    lengths: Option<&[usize]>,
    keep: bool,
) -> DirectionsOutput<F, C> {
    let run = |d: usize| {
        let schedule = Schedule {
            reverse: d == 1,
            lengths,
        };
        if keep {
            let (o, f, t) = cells[d].forward_sequence(x, &inits[d], schedule);
            (o, f, Some(t))
        } else {
            let (o, f) = cells[d].infer_sequence(x, &inits[d], schedule);
            (o, f, None)
        }
    };
    let results = if cells.len() == 2 {
        let (a, b) = threads::join(parallel_worth_it(cells[0], x.dim()), || run(0), || run(1));
        vec![a, b]
    } else {
        (0..cells.len()).map(run).collect()
    };
    let mut outs = Vec::with_capacity(cells.len());
    let mut finals = Vec::with_capacity(cells.len());
    let mut tapes = Vec::with_capacity(cells.len());
    for (o, f, t) in results {
        outs.push(o);
        finals.push(f);
        tapes.push(t);
    }
    (outs, finals, tapes)
}

/// `true` if one direction over `(T, B, _)` is enough work to give the other its own thread.
pub(crate) fn parallel_worth_it<F: Float, C: Cell<F>>(
    cell: &C,
    (steps, batch, _): (usize, usize, usize),
) -> bool {
    let per_step = cell.num_params();
    threads::parallel_pair(steps.saturating_mul(batch).saturating_mul(per_step))
}

/// Concatenates direction outputs on the feature axis.
pub(crate) fn concat<F: Float>(outs: Vec<Array3<F>>) -> Array3<F> {
    if outs.len() == 1 {
        return outs.into_iter().next().expect("one output");
    }
    let views: Vec<_> = outs.iter().map(|o| o.view()).collect();
    ndarray::concatenate(Axis(2), &views).expect("outputs of one shape")
}

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
        let a = (forward.input_size(), forward.hidden_size());
        let b = (backward.input_size(), backward.hidden_size());
        if a != b {
            return Err(Error::Mismatch(format!(
                "the forward cell has (input_size, hidden_size) = {a:?}, the backward cell {b:?}"
            )));
        }
        Ok(Self {
            forward,
            backward,
            merge: MergeMode::Concat,
        })
    }

    /// Sets how the two directions' outputs are merged.
    pub fn with_merge(mut self, merge: MergeMode) -> Self {
        self.merge = merge;
        self
    }

    /// The merge mode.
    pub fn merge(&self) -> MergeMode {
        self.merge
    }

    /// The cell that runs forward in time.
    pub fn forward_cell(&self) -> &C {
        &self.forward
    }

    /// The cell that runs backward in time.
    pub fn backward_cell(&self) -> &C {
        &self.backward
    }

    /// Features per step of the output: `2H` for [`MergeMode::Concat`], else `H`.
    pub fn output_size<F: Float>(&self) -> usize
    where
        C: Cell<F>,
    {
        match self.merge {
            MergeMode::Concat => 2 * self.forward.hidden_size(),
            _ => self.forward.hidden_size(),
        }
    }

    fn prepare<F: Float>(
        &self,
        x: &ArrayView3<'_, F>,
        init: Option<&Stacked<F, C>>,
        lengths: Option<&[usize]>,
    ) -> Result<(usize, usize, Vec<C::State>)>
    where
        C: Cell<F>,
    {
        let hidden = self.forward.hidden_size();
        let (steps, batch) = check::input(x, self.forward.input_size(), "T, B")?;
        check::lengths(lengths, steps, batch)?;
        let inits = match init {
            Some(s) => {
                check::stacked::<F, C::State>(s, 2, batch, hidden, "init")?;
                C::State::unstack(s)
            }
            None => vec![C::State::zeros(batch, hidden); 2],
        };
        Ok((steps, batch, inits))
    }

    fn merge_outputs<F: Float>(&self, mut outs: Vec<Array3<F>>) -> Array3<F> {
        let b = outs.pop().expect("two outputs");
        let mut f = outs.pop().expect("two outputs");
        match self.merge {
            MergeMode::Concat => return concat(vec![f, b]),
            MergeMode::Sum => f += &b,
            MergeMode::Mean => Zip::from(&mut f)
                .and(&b)
                .for_each(|a, &b| *a = (*a + b) * F::from_f64(0.5)),
            MergeMode::Mul => f *= &b,
        }
        f
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
    #[allow(clippy::type_complexity)]
    pub fn forward<F: Float>(
        &self,
        x: ArrayView3<'_, F>,
        init: Option<&Stacked<F, C>>,
        lengths: Option<&[usize]>,
    ) -> Result<(Array3<F>, Stacked<F, C>, BiTape<F, C::Tape>)>
    where
        C: Cell<F>,
    {
        let (steps, batch, inits) = self.prepare(&x, init, lengths)?;
        let (outs, finals, tapes) =
            run_directions(&[&self.forward, &self.backward], x, &inits, lengths, true);
        let outputs = (self.merge == MergeMode::Mul).then(|| [outs[0].clone(), outs[1].clone()]);
        let mut tapes = tapes.into_iter().map(|t| t.expect("tape kept"));
        let tape = BiTape {
            tapes: [
                tapes.next().expect("two tapes"),
                tapes.next().expect("two tapes"),
            ],
            outputs,
            steps,
            batch,
            input_size: self.forward.input_size(),
            hidden_size: self.forward.hidden_size(),
            weights: self.fingerprint(),
        };
        Ok((self.merge_outputs(outs), C::State::stack(&finals), tape))
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
        let (outs, finals, _) =
            run_directions(&[&self.forward, &self.backward], x, &inits, lengths, false);
        Ok((self.merge_outputs(outs), C::State::stack(&finals)))
    }

    /// Backpropagation through both directions.
    ///
    /// `d_output` is the gradient of the merged outputs (ignored at padded steps), `d_final` of
    /// the final states `(2, B, H)` (`None` = zeros). Adds parameter gradients into `grads` and
    /// returns `(dx (T, B, I), d_init (2, B, H))`.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] if `d_output` or `d_final` does not match the forward pass;
    /// [`Error::Mismatch`] if `grads` is not shaped like `self`, the tape came from a layer of
    /// other sizes or another merge mode, or the weights changed since it was recorded.
    pub fn backward<F: Float>(
        &self,
        tape: &BiTape<F, C::Tape>,
        d_output: ArrayView3<'_, F>,
        d_final: Option<&Stacked<F, C>>,
        grads: &mut Self,
    ) -> Result<(Array3<F>, Stacked<F, C>)>
    where
        C: Cell<F>,
    {
        let (dx, d_init) = self.backward_impl(tape, d_output, d_final, grads, true)?;
        Ok((dx.expect("input gradient asked for"), d_init))
    }

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
    pub fn backward_params<F: Float>(
        &self,
        tape: &BiTape<F, C::Tape>,
        d_output: ArrayView3<'_, F>,
        d_final: Option<&Stacked<F, C>>,
        grads: &mut Self,
    ) -> Result<Stacked<F, C>>
    where
        C: Cell<F>,
    {
        Ok(self.backward_impl(tape, d_output, d_final, grads, false)?.1)
    }

    #[allow(clippy::type_complexity)]
    fn backward_impl<F: Float>(
        &self,
        tape: &BiTape<F, C::Tape>,
        d_output: ArrayView3<'_, F>,
        d_final: Option<&Stacked<F, C>>,
        grads: &mut Self,
        want_dx: bool,
    ) -> Result<(Option<Array3<F>>, Stacked<F, C>)>
    where
        C: Cell<F>,
    {
        let hidden = self.forward.hidden_size();
        if (tape.input_size, tape.hidden_size) != (self.forward.input_size(), hidden) {
            return Err(Error::Mismatch(format!(
                "the tape was recorded by a layer with input_size {} and hidden_size {}, this \
                 layer has {} and {hidden}",
                tape.input_size,
                tape.hidden_size,
                self.forward.input_size()
            )));
        }
        if (self.merge == MergeMode::Mul) != tape.outputs.is_some() {
            return Err(Error::Mismatch(
                "the tape was recorded with another merge mode".to_string(),
            ));
        }
        let want = (tape.steps, tape.batch, self.output_size());
        if d_output.dim() != want {
            return Err(shape_err(
                "d_output",
                format!("{want:?}, the shape of the outputs"),
                d_output.shape(),
            ));
        }
        check_fingerprint(self, tape.weights)?;
        check_same_layout(&self.named_arrays(), &grads.named_arrays())?;
        let d_finals = match d_final {
            Some(s) => {
                check::stacked::<F, C::State>(s, 2, tape.batch, hidden, "d_final")?;
                C::State::unstack(s)
            }
            None => vec![C::State::zeros(tape.batch, hidden); 2],
        };
        // Views where the merge passes the gradient on unchanged; new arrays only where it scales.
        let (half, prod_f, prod_b);
        let (d_f, d_b) = match self.merge {
            MergeMode::Concat => (
                d_output.slice_move(s![.., .., ..hidden]),
                d_output.slice_move(s![.., .., hidden..]),
            ),
            MergeMode::Sum => (d_output, d_output),
            MergeMode::Mean => {
                half = d_output.mapv(|v| v * F::from_f64(0.5));
                (half.view(), half.view())
            }
            MergeMode::Mul => {
                let [o_f, o_b] = tape.outputs.as_ref().expect("checked above");
                prod_f = &d_output * o_b;
                prod_b = &d_output * o_f;
                (prod_f.view(), prod_b.view())
            }
        };
        let parallel = parallel_worth_it(&self.forward, (tape.steps, tape.batch, 0));
        let (g_f, g_b) = (&mut grads.forward, &mut grads.backward);
        let back = |cell: &C, k: usize, d: ArrayView3<'_, F>, g: &mut C| {
            backward_sequence_with(cell, &tape.tapes[k], d, &d_finals[k], g, want_dx)
        };
        let ((dx, d0_f), (dx_b, d0_b)) = threads::join(
            parallel,
            || back(&self.forward, 0, d_f, g_f),
            || back(&self.backward, 1, d_b, g_b),
        );
        let dx = match (dx, dx_b) {
            (Some(mut dx), Some(dx_b)) => {
                dx += &dx_b;
                Some(dx)
            }
            _ => None,
        };
        Ok((dx, C::State::stack(&[d0_f, d0_b])))
    }
}

impl<F: Float, C: Cell<F>> Params<F> for Bidirectional<C> {
    fn named_arrays(&self) -> Vec<(String, ArrayViewD<'_, F>)> {
        let f = self
            .forward
            .named_arrays()
            .into_iter()
            .map(|(n, a)| (format!("{n}_l0"), a));
        let b = self
            .backward
            .named_arrays()
            .into_iter()
            .map(|(n, a)| (format!("{n}_l0_reverse"), a));
        f.chain(b).collect()
    }
    fn arrays_mut(&mut self) -> Vec<ArrayViewMutD<'_, F>> {
        let mut v = self.forward.arrays_mut();
        v.extend(self.backward.arrays_mut());
        v
    }
}
