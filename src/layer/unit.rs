//! The layer unit: one recurrent layer in one or two directions.
//!
//! [`Unit`] owns everything [`Recurrent`](super::Recurrent), [`Bidirectional`](super::Bidirectional)
//! and [`RecurrentStack`](super::RecurrentStack) share: running the directions (in parallel when
//! that pays, each with half the threads), merging their outputs, splitting the output gradient back per direction, summing
//! the directions' input gradients, parameter names, and the checks every backward pass starts
//! with ([`Recorded::check_backward`]).

use std::fmt::Debug;

use ndarray::{s, Array3, ArrayView3, ArrayViewD, ArrayViewMutD, Axis, CowArray, Ix3, Zip};

use crate::cell::{backward_sequence_with, Cell, Schedule, SequenceTape, State};
use crate::check;
use crate::error::{shape_err, Error, Result};
use crate::float::Float;
use crate::io::param_key;
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

/// One layer: `cells[0]` runs forward in time, `cells[1]` (if present) from each sequence's last
/// real step back to the first; with two directions the outputs are merged by `merge`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Unit<C> {
    cells: Vec<C>,
    merge: MergeMode,
}

/// What [`Unit::forward`] keeps for [`Unit::backward`].
#[derive(Debug, Clone)]
pub(crate) struct UnitTape<F: Float, T> {
    /// One cell tape per direction.
    tapes: Vec<T>,
    /// The two directions' outputs, kept for [`MergeMode::Mul`].
    outputs: Option<[Array3<F>; 2]>,
}

impl<F: Float> UnitTape<F, SequenceTape<F>> {
    /// Bytes held: every direction's [`SequenceTape::nbytes`] plus saved outputs.
    pub(crate) fn nbytes(&self) -> usize {
        self.tapes.iter().map(SequenceTape::nbytes).sum::<usize>()
            + self
                .outputs
                .as_ref()
                .map_or(0, |o| o.iter().map(|a| a.len()).sum::<usize>())
                * std::mem::size_of::<F>()
    }
}

/// What [`Unit::forward`] returns: the merged output `(T, B, out)`, each direction's final state
/// and, when asked for, the tape.
pub(crate) type UnitForward<F, C> = (
    Array3<F>,
    Vec<<C as Cell<F>>::State>,
    Option<UnitTape<F, <C as Cell<F>>::Tape>>,
);

impl<C> Unit<C> {
    /// A layer of one or two cells.
    ///
    /// # Panics
    ///
    /// If `cells` does not hold one or two cells (the callers build it).
    pub(crate) fn new(cells: Vec<C>, merge: MergeMode) -> Self {
        assert!(matches!(cells.len(), 1 | 2), "one or two directions");
        Self { cells, merge }
    }

    /// `[forward]` or `[forward, reverse]`.
    pub(crate) fn cells(&self) -> &[C] {
        &self.cells
    }

    /// The cells, consumed.
    pub(crate) fn into_cells(self) -> Vec<C> {
        self.cells
    }

    /// How two directions' outputs are merged.
    pub(crate) fn merge(&self) -> MergeMode {
        self.merge
    }

    /// Sets the merge mode.
    pub(crate) fn set_merge(&mut self, merge: MergeMode) {
        self.merge = merge;
    }

    /// 1 or 2.
    pub(crate) fn directions(&self) -> usize {
        self.cells.len()
    }

    /// Every cell replaced by `f(cell)`.
    pub(crate) fn map_cells(self, f: impl FnMut(C) -> C) -> Self {
        Self {
            cells: self.cells.into_iter().map(f).collect(),
            merge: self.merge,
        }
    }
}

impl<C> Unit<C> {
    /// Features `I` of the input.
    pub(crate) fn input_size<F: Float>(&self) -> usize
    where
        C: Cell<F>,
    {
        self.cells[0].input_size()
    }

    /// Hidden units `H` per direction.
    pub(crate) fn hidden_size<F: Float>(&self) -> usize
    where
        C: Cell<F>,
    {
        self.cells[0].hidden_size()
    }

    /// Features of each direction's output `h`: `H`, or `P` with a projection.
    pub(crate) fn cell_output_size<F: Float>(&self) -> usize
    where
        C: Cell<F>,
    {
        self.cells[0].output_size()
    }

    /// The widths of a state's parts, `(H, width of h)`.
    pub(crate) fn state_widths<F: Float>(&self) -> (usize, usize)
    where
        C: Cell<F>,
    {
        (self.hidden_size(), self.cell_output_size())
    }

    /// Features per output step: `2H` for two concatenated directions, else `H` (`P` in place of
    /// `H` with a projection).
    pub(crate) fn output_size<F: Float>(&self) -> usize
    where
        C: Cell<F>,
    {
        match (self.directions(), self.merge) {
            (2, MergeMode::Concat) => 2 * self.cell_output_size(),
            _ => self.cell_output_size(),
        }
    }

    /// `true` if one direction over `(T, B)` is enough work to give the other its own thread.
    fn parallel<F: Float>(&self, steps: usize, batch: usize) -> bool
    where
        C: Cell<F>,
    {
        let per_step = self.cells[0].num_params();
        self.directions() == 2
            && threads::parallel_pair(steps.saturating_mul(batch).saturating_mul(per_step))
    }

    /// Runs every direction over `x` `(T, B, I)` from `inits[d]` (checked by the caller), with
    /// optional `lengths`; keeps a tape if `keep`.
    pub(crate) fn forward<F: Float>(
        &self,
        x: ArrayView3<'_, F>,
        inits: &[C::State],
        lengths: Option<&[usize]>,
        keep: bool,
    ) -> UnitForward<F, C>
    where
        C: Cell<F>,
    {
        let run = |d: usize| {
            let schedule = Schedule {
                reverse: d == 1,
                lengths,
            };
            if keep {
                let (o, f, t) = self.cells[d].forward_sequence(x, &inits[d], schedule);
                (o, f, Some(t))
            } else {
                let (o, f) = self.cells[d].infer_sequence(x, &inits[d], schedule);
                (o, f, None)
            }
        };
        let (steps, batch, _) = x.dim();
        if self.directions() == 1 {
            let (out, last, tape) = run(0);
            let tape = tape.map(|t| UnitTape {
                tapes: vec![t],
                outputs: None,
            });
            return (out, vec![last], tape);
        }
        let ((o_f, s_f, t_f), (o_b, s_b, t_b)) =
            threads::join(self.parallel(steps, batch), || run(0), || run(1));
        let outputs = (keep && self.merge == MergeMode::Mul).then(|| [o_f.clone(), o_b.clone()]);
        let tape = t_f.zip(t_b).map(|(f, b)| UnitTape {
            tapes: vec![f, b],
            outputs,
        });
        (self.merge_outputs(o_f, o_b), vec![s_f, s_b], tape)
    }

    fn merge_outputs<F: Float>(&self, mut f: Array3<F>, b: Array3<F>) -> Array3<F> {
        match self.merge {
            MergeMode::Concat => {
                return ndarray::concatenate(Axis(2), &[f.view(), b.view()])
                    .expect("outputs of one shape")
            }
            MergeMode::Sum => f += &b,
            MergeMode::Mean => Zip::from(&mut f)
                .and(&b)
                .for_each(|a, &b| *a = (*a + b) * F::from_f64(0.5)),
            MergeMode::Mul => f *= &b,
        }
        f
    }

    /// Checks that `tape` fits this unit's merge mode (the sizes are checked by
    /// [`Recorded::check_backward`]).
    pub(crate) fn check_tape<F: Float, T>(&self, tape: &UnitTape<F, T>) -> Result<()> {
        if tape.tapes.len() != self.directions()
            || (self.directions() == 2 && (self.merge == MergeMode::Mul) != tape.outputs.is_some())
        {
            return Err(Error::Mismatch(
                "the tape was recorded with another merge mode or number of directions".to_string(),
            ));
        }
        Ok(())
    }

    /// Backpropagation through every direction: `d_output` is the gradient of the merged output
    /// (checked by the caller), `d_finals[d]` of direction `d`'s final state. Adds parameter
    /// gradients into `grads`; returns the input gradient (summed over directions; `None` unless
    /// `want_dx`) and each direction's initial-state gradient.
    ///
    /// # Panics
    ///
    /// If `tape` does not fit (see [`Unit::check_tape`]) or `grads` has another number of
    /// directions.
    #[allow(clippy::type_complexity)]
    pub(crate) fn backward<F: Float>(
        &self,
        tape: &UnitTape<F, C::Tape>,
        d_output: ArrayView3<'_, F>,
        d_finals: &[C::State],
        grads: &mut Self,
        want_dx: bool,
    ) -> (Option<Array3<F>>, Vec<C::State>)
    where
        C: Cell<F>,
    {
        let back = |d: usize, d_out: ArrayView3<'_, F>, g: &mut C| {
            let (cell, t) = (&self.cells[d], &tape.tapes[d]);
            backward_sequence_with(cell, t, d_out, &d_finals[d], g, want_dx)
        };
        let [g_f, g_b] = match grads.cells.as_mut_slice() {
            [g] => {
                let (dx, d0) = back(0, d_output, g);
                return (dx, vec![d0]);
            }
            [g_f, g_b] => [g_f, g_b],
            _ => unreachable!("one or two directions"),
        };
        // Views where the merge passes the gradient on unchanged; new arrays only where it scales.
        let hidden = self.cell_output_size();
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
                let [o_f, o_b] = tape.outputs.as_ref().expect("checked by check_tape");
                prod_f = &d_output * o_b;
                prod_b = &d_output * o_f;
                (prod_f.view(), prod_b.view())
            }
        };
        let (steps, batch, _) = d_output.dim();
        let ((dx, d0_f), (dx_b, d0_b)) = threads::join(
            self.parallel(steps, batch),
            || back(0, d_f, g_f),
            || back(1, d_b, g_b),
        );
        let dx = dx.map(|mut dx| {
            dx += &dx_b.expect("both directions give dx");
            dx
        });
        (dx, vec![d0_f, d0_b])
    }

    /// Every parameter with its PyTorch name for layer `layer`.
    pub(crate) fn named_arrays<F: Float>(&self, layer: usize) -> Vec<(String, ArrayViewD<'_, F>)>
    where
        C: Cell<F>,
    {
        let mut v = Vec::new();
        for (d, cell) in self.cells.iter().enumerate() {
            v.extend(
                cell.named_arrays()
                    .into_iter()
                    .map(|(n, a)| (param_key(&n, layer, d == 1), a)),
            );
        }
        v
    }

    /// Every parameter, mutable, in the order of [`Unit::named_arrays`].
    pub(crate) fn arrays_mut<F: Float>(&mut self) -> Vec<ArrayViewMutD<'_, F>>
    where
        C: Cell<F>,
    {
        self.cells.iter_mut().flat_map(|c| c.arrays_mut()).collect()
    }
}

/// The sizes of one layer, as a tape records them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct LayerSizes {
    pub(crate) input_size: usize,
    pub(crate) hidden_size: usize,
    /// The width of `h` (differs from `hidden_size` only with a projection).
    pub(crate) output_size: usize,
}

impl Debug for LayerSizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "input_size {} and hidden_size {}",
            self.input_size, self.hidden_size
        )?;
        if self.output_size != self.hidden_size {
            write!(f, " and proj_size {}", self.output_size)?;
        }
        Ok(())
    }
}

impl<C> Unit<C> {
    /// The sizes a tape records.
    pub(crate) fn sizes<F: Float>(&self) -> LayerSizes
    where
        C: Cell<F>,
    {
        LayerSizes {
            input_size: self.input_size(),
            hidden_size: self.hidden_size(),
            output_size: self.cell_output_size(),
        }
    }
}

/// What every tape records besides the cells' tapes: the sizes of the pass, the setup of the
/// model that recorded it, and the weights' fingerprint.
#[derive(Debug, Clone)]
pub(crate) struct Recorded<K> {
    pub(crate) steps: usize,
    pub(crate) batch: usize,
    /// The model's shape and settings (sizes, directions, merge mode, stack config).
    pub(crate) setup: K,
    pub(crate) weights: u64,
}

impl<K: PartialEq + Debug> Recorded<K> {
    /// Records a pass of `(steps, batch)` by `model` with `setup`.
    pub(crate) fn new<F: Float, P: Params<F>>(
        model: &P,
        setup: K,
        steps: usize,
        batch: usize,
    ) -> Self {
        Self {
            steps,
            batch,
            setup,
            weights: model.fingerprint(),
        }
    }

    /// The checks every backward pass starts with: the tape comes from a model of this `setup`,
    /// `d_output` has the shape `want` of the output (`what_want` says which axes), the weights
    /// did not change since forward, and `grads` is shaped like `model`.
    pub(crate) fn check_backward<F: Float, P: Params<F>>(
        &self,
        what: &str,
        model: &P,
        setup: &K,
        grads: &P,
        d_output: &ArrayView3<'_, F>,
        want: (usize, usize, usize),
    ) -> Result<()> {
        if self.setup != *setup {
            return Err(Error::Mismatch(format!(
                "the tape was recorded by a {what} with {:?}, this {what} has {:?}",
                self.setup, setup
            )));
        }
        if d_output.dim() != want {
            return Err(shape_err(
                "d_output",
                format!("{want:?}, the shape of the output"),
                d_output.shape(),
            ));
        }
        check_fingerprint(model, self.weights)?;
        check_same_layout(&model.named_arrays(), &grads.named_arrays())
    }
}

/// `n` states `(B, H)` from stacked states `(n, B, H)` (checked; `what` names them in errors), or
/// zeros if `None`; `h` is `output` wide, the other parts `hidden` wide.
pub(crate) fn unstack_or_zeros<F: Float, S: State<F>>(
    stacked: Option<&S::Stacked>,
    n: usize,
    batch: usize,
    (hidden, output): (usize, usize),
    what: &str,
) -> Result<Vec<S>> {
    match stacked {
        Some(s) => {
            check::stacked::<F, S>(s, n, batch, (hidden, output), what)?;
            Ok(S::unstack(s))
        }
        None => Ok(vec![S::zeros_with(batch, hidden, output); n]),
    }
}

/// `d_output`, or zeros of shape `want` when there is none (the loss uses only the final states).
pub(crate) fn output_grad_or_zeros<F: Float>(
    d_output: Option<ArrayView3<'_, F>>,
    want: (usize, usize, usize),
) -> CowArray<'_, F, Ix3> {
    d_output.map_or_else(|| CowArray::from(Array3::zeros(want)), CowArray::from)
}

/// Writes a layer's public `backward` and `backward_params` (docs given as attributes) over its
/// private `backward_impl(tape, d_output, d_final, grads, want_dx)`, so the three layers share one
/// shape of backward pass: `backward → (dx, d_init)`, `backward_params → d_init`.
macro_rules! backward_methods {
    (
        tape: $tape:ty,
        state: $state:ty,
        $(#[$backward_doc:meta])*
        fn backward;
        $(#[$params_doc:meta])*
        fn backward_params;
    ) => {
        $(#[$backward_doc])*
        pub fn backward<'a, F: Float>(
            &self,
            tape: &$tape,
            d_output: impl Into<Option<ArrayView3<'a, F>>>,
            d_final: Option<&$state>,
            grads: &mut Self,
        ) -> Result<(Array3<F>, $state)>
        where
            C: Cell<F>,
        {
            let (dx, d_init) = self.backward_impl(tape, d_output.into(), d_final, grads, true)?;
            Ok((dx.expect("input gradient asked for"), d_init))
        }

        $(#[$params_doc])*
        pub fn backward_params<'a, F: Float>(
            &self,
            tape: &$tape,
            d_output: impl Into<Option<ArrayView3<'a, F>>>,
            d_final: Option<&$state>,
            grads: &mut Self,
        ) -> Result<$state>
        where
            C: Cell<F>,
        {
            Ok(self.backward_impl(tape, d_output.into(), d_final, grads, false)?.1)
        }
    };
}
pub(crate) use backward_methods;
