//! One step of a built-in cell into buffers kept between calls: what
//! [`Stream`](crate::layer::Stream) runs once per layer and time step.
//!
//! The step runs the sequence engine's one step body (`engine::step_rows`) after the same input
//! projection, so that streaming a sequence gives the outputs of running it whole, bit for bit:
//!
//! * the input projection `x W_ihᵀ` with the same blocked product as the engine's one GEMM over
//!   all steps (it computes each entry in the same order whatever the number of rows; `W_ihᵀ` is
//!   laid out for it once, as the engine does for a sharded pass), then the same summed bias
//!   (`b_ih + b_hh`, or `b_ih` alone for a GRU);
//! * the recurrent product with the recurrent weights laid out for the same number of rows as an
//!   unsharded engine pass over the same batch (see [`crate::layer::Stream`] for the sharded
//!   case);
//! * the cell's own fused kernel on each row, then a projected LSTM's `h = h_raw W_hrᵀ`.
//!
//! Every buffer is made by [`StepScratch::new`]; a step allocates nothing where the products use
//! the crate's own kernels (tested with a counting allocator).

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Ix2};

use super::engine::{step_rows, EngineCell, EngineState, Prep, StepRows};
use super::weights::CellWeights;
use crate::alloc::try_array;
use crate::error::Result;
use crate::float::Float;
use crate::gemm::{Prepared, SMALL_M};
use crate::isa::{self, Job, Level};

/// The buffers and laid-out weights one cell needs to advance a batch by one step without
/// allocating (made by [`CellInit::step_scratch`](super::CellInit::step_scratch), used by
/// [`Stream`](crate::layer::Stream)); it borrows the cell's weights.
pub struct StepScratch<'w, F: Float> {
    /// The recurrent weights (and a projection) laid out for `batch` rows.
    prep: Prep<'w, F>,
    /// `W_ihᵀ` laid out once for the blocked product (see [`StepScratch::new`]).
    w_ih_t: Prepared<'w, F>,
    /// The bias added to the input projection: `b_ih + b_hh`, or `b_ih` when the cell needs the
    /// recurrent product apart (GRU).
    bias: Option<Array1<F>>,
    /// Gate pre-activations, then the kernel's saved values `(B, G·H)`.
    g: Array2<F>,
    /// The recurrent product of a GRU `(B, G·H)`, else `(B, 0)`.
    rec: Array2<F>,
    /// The kernel's extra vector `(B, H)` or `(B, 0)`.
    aux: Array2<F>,
    /// A projected LSTM's unprojected output `(B, H)`, else `(B, 0)`.
    hr: Array2<F>,
    /// `(B, 0)`: the cell state of a cell that has none.
    no_c: Array2<F>,
}

impl<F: Float> std::fmt::Debug for StepScratch<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepScratch")
            .field("batch", &self.g.nrows())
            .field("gate_width", &self.g.ncols())
            .finish_non_exhaustive()
    }
}

impl<'w, F: Float> StepScratch<'w, F> {
    /// Buffers for steps of `batch` rows of the cell with `weights`.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfMemory`](crate::Error::OutOfMemory) if the buffers cannot be allocated.
    pub(crate) fn new<C: EngineCell<Elem = F>>(
        weights: &'w CellWeights<F>,
        batch: usize,
    ) -> Result<Self> {
        let hidden = weights.hidden_size();
        let gh = C::GATES * hidden;
        let zeros = |cols: usize, what: &str| try_array(Ix2(batch, cols), what, F::zero);
        let bias = match (&weights.bias_ih, &weights.bias_hh) {
            (Some(b_ih), Some(b_hh)) if !C::SEPARATE_REC => Some(b_ih + b_hh),
            (Some(b_ih), Some(_)) => Some(b_ih.clone()),
            _ => None,
        };
        Ok(StepScratch {
            prep: Prep::forward(weights, batch, None),
            // Laid out for the blocked product the engine's input projection uses (more than
            // `SMALL_M` rows), whatever the batch: the same numbers, without laying out `W_ihᵀ`
            // again at every step.
            w_ih_t: Prepared::new(weights.weight_ih.t(), SMALL_M + 1),
            bias,
            g: zeros(gh, "the gates of a streamed step")?,
            rec: zeros(
                if C::SEPARATE_REC { gh } else { 0 },
                "the recurrent product of a streamed step",
            )?,
            aux: zeros(C::aux_width(hidden), "a streamed step")?,
            hr: zeros(
                if weights.weight_hr.is_some() {
                    hidden
                } else {
                    0
                },
                "the unprojected output of a streamed step",
            )?,
            no_c: Array2::zeros((batch, 0)),
        })
    }

    /// Rows per step.
    pub(crate) fn batch(&self) -> usize {
        self.g.nrows()
    }
}

/// Advances every row of `state` by the input `x` `(B, I)` into `next` (same shapes as
/// `state`), with `scratch`'s buffers. The caller checks the shapes.
pub(crate) fn step_into<F: Float, C: EngineCell<Elem = F>>(
    cell: &C,
    scratch: &mut StepScratch<'_, F>,
    x: ArrayView2<'_, F>,
    state: &C::State,
    next: &mut C::State,
) {
    let (h_prev, c_prev) = state.split();
    let (h_next, c_next) = next.split_mut();
    isa::dispatch(Streamed {
        cell,
        scratch,
        x,
        h_prev,
        c_prev,
        h_next,
        c_next,
    });
}

/// One streamed step, as a [`Job`] for the crate's one CPU dispatch.
struct Streamed<'a, 's, 'w, F: Float, C> {
    cell: &'a C,
    scratch: &'s mut StepScratch<'w, F>,
    x: ArrayView2<'a, F>,
    h_prev: ArrayView2<'a, F>,
    c_prev: Option<ArrayView2<'a, F>>,
    h_next: ArrayViewMut2<'a, F>,
    c_next: Option<ArrayViewMut2<'a, F>>,
}

impl<F: Float, C: EngineCell<Elem = F>> Job for Streamed<'_, '_, '_, F, C> {
    type Output = ();

    /// The engine's input projection and bias for one step, then its one step body
    /// ([`step_rows`]) with every row active.
    #[inline(always)]
    fn run<L: Level>(self, _level: L) {
        let Streamed {
            cell,
            scratch,
            x,
            h_prev,
            c_prev,
            h_next,
            c_next,
        } = self;
        let StepScratch {
            prep,
            w_ih_t,
            bias,
            g,
            rec,
            aux,
            hr,
            no_c,
        } = scratch;
        // The engine's `project_inputs` and its bias.
        w_ih_t.mul(x, &mut g.view_mut(), false);
        if let Some(b) = bias {
            g.rows_mut().into_iter().for_each(|mut r| r += &*b);
        }
        let batch = g.nrows();
        let mut no_c_next = ArrayViewMut2::from_shape((batch, 0), &mut []).expect("empty");
        let rows = StepRows {
            g: g.view_mut(),
            rec: rec.view_mut(),
            h_prev,
            c_prev: c_prev.unwrap_or(no_c.view()),
            h_next,
            c_next: c_next.unwrap_or(no_c_next.view_mut()),
            aux: aux.view_mut(),
            hr: hr.view_mut(),
        };
        step_rows(cell, prep, rows, |_| true, None);
    }
}
