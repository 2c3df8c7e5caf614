//! The forward time loop of one batch shard, as a [`Job`] that the crate's one CPU dispatch
//! compiles once per instruction-set level.

use ndarray::{s, Array2, ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis};

use super::schedule::slots;
use super::tape::ShardTape;
use super::{row, EngineCell, ForwardRow, Prep, Schedule};
use crate::float::Float;
use crate::isa::{Job, Level};
use crate::pool;

/// What [`run_impl`] returns for one shard (its outputs are written in place): last `h`, last
/// `c` (`None` without a cell state) and the tape if asked for.
pub(super) type RunOutput<F> = (Array2<F>, Option<Array2<F>>, Option<ShardTape<F>>);

/// One shard of a forward pass: `cell` over `x` `(T, B, I)` from `h0` (and `c0`), outputs
/// written into `out` `(T, B, H)`; the tape kept if `keep`.
pub(super) struct Forward<'a, 'w, F: Float, C> {
    pub(super) cell: &'a C,
    pub(super) prep: &'a Prep<'w, F>,
    pub(super) x: ArrayView3<'a, F>,
    pub(super) h0: ArrayView2<'a, F>,
    pub(super) c0: Option<ArrayView2<'a, F>>,
    pub(super) sched: Schedule<'a>,
    pub(super) keep: bool,
    pub(super) out: ArrayViewMut3<'a, F>,
}

impl<F: Float, C: EngineCell<Elem = F>> Job for Forward<'_, '_, F, C> {
    type Output = RunOutput<F>;

    /// The time loop, inlined into each level's build.
    #[inline(always)]
    fn run<L: Level>(self, _level: L) -> RunOutput<F> {
        let Forward {
            cell: kernel,
            prep,
            x,
            h0,
            c0,
            sched,
            keep,
            out,
        } = self;
        let w = kernel.weights();
        let (steps, batch, input) = x.dim();
        // `hidden` is H, the width of the gates and of `c`; `hout` the width of `h` (P when
        // projected, else H).
        let (hidden, hout) = (w.hidden_size(), w.output_size());
        let gh = C::GATES * hidden;
        let hc = if c0.is_some() { hidden } else { 0 };
        let ha = C::aux_width(hidden);
        let hp = if prep.w_hr.is_some() { hidden } else { 0 };
        assert_eq!(input, w.weight_ih.ncols(), "x must be (T, B, I)");
        assert_eq!(h0.dim(), (batch, hout), "h0 must be (B, H)");
        if let Some(c0) = c0 {
            assert_eq!(c0.dim(), (batch, hidden), "c0 must be (B, H)");
        }
        if let Some(l) = sched.lengths {
            assert_eq!(l.len(), batch, "one length per sequence");
        }

        // Kept: copied once into the tape's buffer, projected from there. Not kept: a view when `x`
        // is already contiguous, a copy when it is not (a shard of the batch).
        let (x_saved, x_view) = if keep {
            let mut saved = pool::scratch((steps * batch, input));
            saved
                .view_mut()
                .into_shape_with_order((steps, batch, input))
                .expect("contiguous")
                .assign(&x);
            (Some(saved), None)
        } else {
            (None, Some(x.as_standard_layout()))
        };
        let x2 = match (&x_saved, &x_view) {
            (Some(saved), _) => saved.view(),
            (None, Some(v)) => v
                .view()
                .into_shape_with_order((steps * batch, input))
                .expect("standard layout reshapes"),
            (None, None) => unreachable!("one of the two"),
        };
        // Buffers that every step overwrites come from the engine's pool (see `crate::pool`).
        let mut g = pool::scratch((steps * batch, gh));
        w.project_inputs(prep.w_ih.as_ref(), x2, &mut g, !C::SEPARATE_REC);

        let n_slots = if keep { steps + 1 } else { 2 };
        let init = if keep && sched.reverse { steps } else { 0 };
        // Every slot is written: the initial one here, the others by their step (for every row).
        let mut hs = pool::scratch((n_slots, batch, hout));
        hs.index_axis_mut(Axis(0), init).assign(&h0);
        let mut cs = pool::scratch((n_slots, batch, hc));
        if let Some(c0) = c0 {
            cs.index_axis_mut(Axis(0), init).assign(&c0);
        }
        // Written for the rows active at each step; backward reads no other.
        let mut aux = pool::scratch((if keep { steps } else { 1 }, batch, ha));
        // The unprojected outputs of a projected LSTM, written like `aux`.
        let mut hr = pool::scratch((if keep { steps } else { 1 }, batch, hp));
        let mut rec = Array2::zeros((batch, if C::SEPARATE_REC { gh } else { 0 }));
        let mut out = out;
        assert_eq!(out.dim(), (steps, batch, hout), "out must be (T, B, H)");

        let mut last = init;
        for s in 0..steps {
            let t = sched.time(s, steps);
            let (pi, ni) = slots(keep, sched.reverse, s, t);
            last = ni;
            let (h_prev, h_next) = hs.multi_slice_mut((s![pi, .., ..], s![ni, .., ..]));
            let (c_prev, c_next) = cs.multi_slice_mut((s![pi, .., ..], s![ni, .., ..]));
            let at = if keep { t } else { 0 };
            step_rows(
                kernel,
                prep,
                StepRows {
                    g: g.slice_mut(s![t * batch..(t + 1) * batch, ..]),
                    rec: rec.view_mut(),
                    h_prev: h_prev.view(),
                    c_prev: c_prev.view(),
                    h_next,
                    c_next,
                    aux: aux.index_axis_mut(Axis(0), at),
                    hr: hr.index_axis_mut(Axis(0), at),
                },
                |r| sched.active(t, r),
                Some(out.index_axis_mut(Axis(0), t)),
            );
        }
        let h_last = hs.index_axis(Axis(0), last).to_owned();
        let c_last = c0.map(|_| cs.index_axis(Axis(0), last).to_owned());
        let Some(x) = x_saved else {
            pool::give_array(g);
            pool::give_array(aux);
            pool::give_array(hr);
            pool::give_array(hs);
            pool::give_array(cs);
            return (h_last, c_last, None);
        };
        let tape = ShardTape {
            x,
            g,
            hs,
            cs,
            aux,
            hr,
            reverse: sched.reverse,
            lengths: sched.lengths.map(<[usize]>::to_vec),
        };
        (h_last, c_last, Some(tape))
    }
}

/// The buffers of one step of every row of a batch (`B` rows): what [`step_rows`] reads and
/// writes. Widths: `G·H` for the gates, `H` for `c`, `aux` and `hr`, the output width for `h`;
/// a part the cell does not have is `(B, 0)`.
pub(crate) struct StepRows<'a, F> {
    /// The input projections `x W_ihᵀ` plus biases; the kernel overwrites them with what
    /// backward needs.
    pub(crate) g: ArrayViewMut2<'a, F>,
    /// The recurrent product of a cell that keeps it apart (GRU), else `(B, 0)`.
    pub(crate) rec: ArrayViewMut2<'a, F>,
    /// The state before the step.
    pub(crate) h_prev: ArrayView2<'a, F>,
    pub(crate) c_prev: ArrayView2<'a, F>,
    /// The state after the step.
    pub(crate) h_next: ArrayViewMut2<'a, F>,
    pub(crate) c_next: ArrayViewMut2<'a, F>,
    /// The kernel's saved vector, and a projected LSTM's unprojected output.
    pub(crate) aux: ArrayViewMut2<'a, F>,
    pub(crate) hr: ArrayViewMut2<'a, F>,
}

/// One step of every row: the one step body, which the sequence loop, the single step and the
/// stream all run (so they agree by construction).
///
/// Adds the recurrent product `h_prev W_hhᵀ` (into `rows.g`, or into `rows.rec` plus `b_hh` for
/// a cell that keeps it apart), runs the cell's kernel on every row with `active(r)`, projects a
/// projected LSTM's output (`h = h_raw W_hrᵀ`), and writes the new `h` of the active rows into
/// `out` if given. An inactive row (padding) keeps its state, has zero `aux` and `hr`, and leaves
/// its `out` row as it is.
#[inline(always)]
pub(crate) fn step_rows<F: Float, C: EngineCell<Elem = F>>(
    kernel: &C,
    prep: &Prep<'_, F>,
    rows: StepRows<'_, F>,
    active: impl Fn(usize) -> bool,
    mut out: Option<ArrayViewMut2<'_, F>>,
) {
    let StepRows {
        mut g,
        mut rec,
        h_prev,
        c_prev,
        mut h_next,
        mut c_next,
        mut aux,
        mut hr,
    } = rows;
    let batch = g.nrows();
    if C::SEPARATE_REC {
        prep.w_hh.mul(h_prev, &mut rec, false);
        if let Some(b) = &kernel.weights().bias_hh {
            rec.rows_mut().into_iter().for_each(|mut r| r += b);
        }
    } else {
        prep.w_hh.mul(h_prev, &mut g, true);
    }
    for r in 0..batch {
        if active(r) {
            // A projected cell writes its unprojected output, projected below.
            let h_row = match prep.w_hr {
                Some(_) => hr.row_mut(r),
                None => h_next.row_mut(r),
            };
            kernel.forward_row(ForwardRow {
                g: g.row_mut(r).into_slice().expect("contiguous"),
                rec: row(rec.view(), r),
                h_prev: row(h_prev, r),
                c_prev: row(c_prev, r),
                h: h_row.into_slice().expect("contiguous"),
                c: c_next.row_mut(r).into_slice().expect("contiguous"),
                aux: aux.row_mut(r).into_slice().expect("contiguous"),
            });
            if let (None, Some(out)) = (&prep.w_hr, &mut out) {
                out.row_mut(r).assign(&h_next.row(r));
            }
        } else {
            // Padding: the state is carried unchanged and the output stays zero.
            h_next.row_mut(r).assign(&h_prev.row(r));
            c_next.row_mut(r).assign(&c_prev.row(r));
            aux.row_mut(r).fill(F::zero());
            hr.row_mut(r).fill(F::zero());
        }
    }
    if let Some(w_hr_t) = &prep.w_hr {
        // `h = h_raw · W_hrᵀ` for every row, then padded rows get their state back.
        w_hr_t.mul(hr.view(), &mut h_next, false);
        for r in 0..batch {
            if active(r) {
                if let Some(out) = &mut out {
                    out.row_mut(r).assign(&h_next.row(r));
                }
            } else {
                h_next.row_mut(r).assign(&h_prev.row(r));
            }
        }
    }
}
