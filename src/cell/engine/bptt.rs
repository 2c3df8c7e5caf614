//! Backpropagation through time over one shard's tape: the one BPTT body, as a [`Job`] that the
//! crate's one CPU dispatch compiles once per instruction-set level. The single-step backward is
//! this body over a tape of one step.

use ndarray::{s, Array2, ArrayView2, ArrayView3, ArrayViewMut3, Axis, Zip};

use super::schedule::slots;
use super::tape::ShardTape;
use super::{row, BackwardRow, EngineCell, Prep};
use crate::cell::weights::{CellWeights, GradSums};
use crate::float::Float;
use crate::isa::{Job, Level};
use crate::pool;

/// What [`backward_impl`] returns: `dh0 (B, H)`, `dc0 (B, H)` (`None` without a cell state), and
/// the shard's weight-gradient sums, not yet added into the gradients (see [`GradSums::finish`]).
pub(super) type BackwardOutput<F> = (Array2<F>, Option<Array2<F>>, GradSums<F>);

/// Rows of gate gradients the backward pass collects before forming the weight gradients of
/// those steps.
pub(super) const CHUNK_ROWS: usize = 512;

/// The backward of one shard: from the gradients of its outputs `d_out` `(T, B, H)` and of its
/// final state, the weight-gradient sums (GRU: added into `grads` if given), `dx` written into
/// `dx` (`(T, B, 0)`: not wanted); `chunk_rows` gate rows per chunk.
pub(super) struct Bptt<'a, 'w, F: Float, C> {
    pub(super) cell: &'a C,
    pub(super) prep: &'a Prep<'w, F>,
    pub(super) tape: &'a ShardTape<F>,
    pub(super) d_out: ArrayView3<'a, F>,
    pub(super) dh_final: ArrayView2<'a, F>,
    pub(super) dc_final: Option<ArrayView2<'a, F>>,
    pub(super) grads: Option<&'a mut CellWeights<F>>,
    pub(super) dx: ArrayViewMut3<'a, F>,
    /// The gradients of the cell's own parameters, added into.
    pub(super) d_own: &'a mut [F],
    pub(super) chunk_rows: usize,
}

impl<F: Float, C: EngineCell<Elem = F>> Job for Bptt<'_, '_, F, C> {
    type Output = BackwardOutput<F>;

    /// The backward loop, inlined into each level's build.
    #[inline(always)]
    fn run<L: Level>(self, _level: L) -> BackwardOutput<F> {
        let Bptt {
            cell: kernel,
            prep,
            tape,
            d_out,
            dh_final,
            dc_final,
            grads,
            dx,
            d_own,
            chunk_rows,
        } = self;
        let w = kernel.weights();
        let (steps, batch) = (tape.steps(), tape.batch());
        // H (gates, `c`) and the width of `h` (P when projected), as in `run_impl`.
        let (hidden, hout) = (w.hidden_size(), w.output_size());
        let gh = C::GATES * hidden;
        assert_eq!(
            d_out.dim(),
            (steps, batch, hout),
            "d_output must be (T, B, H)"
        );
        assert_eq!(dh_final.dim(), (batch, hout), "dh_final must be (B, H)");
        if let Some(dc_final) = dc_final {
            assert_eq!(dc_final.dim(), (batch, hidden), "dc_final must be (B, H)");
        }
        let mut grads = grads;
        let mut dx = dx;
        let sched = tape.schedule();
        let input = dx.len_of(Axis(2));
        assert_eq!(
            dx.dim(),
            (steps, batch, input),
            "dx must be (T, B, I) or (T, B, 0)"
        );
        let want_dx = input > 0;

        // The gate gradients of a chunk of steps at a time: the weight-gradient and input-gradient
        // products run per chunk, so the work buffer stays small (cache-resident, no page faults)
        // whatever the sequence length.
        let chunk = (chunk_rows / batch.max(1)).clamp(1, steps.max(1));
        // Every row of a chunk is written before it is read (padding rows with zeros).
        let mut d_xp = pool::scratch((chunk * batch, gh));
        let mut d_rec_sep = pool::scratch((if C::SEPARATE_REC { chunk * batch } else { 0 }, gh));
        // A projected LSTM: the gradients of the projected outputs of the chunk's steps
        // `(rows, P)`, for `dW_hr`, and the direct part of `dh_prev` the kernel writes `(B, H)`.
        let w_hr = prep.w_hr.as_ref();
        let mut d_hp = pool::scratch((if w_hr.is_some() { chunk * batch } else { 0 }, hout));
        let mut direct_raw = Array2::zeros((batch, if w_hr.is_some() { hidden } else { 0 }));
        // A shard's `dx` is a strided part of the whole: its chunks are formed here and copied.
        let mut dx_scratch =
            (want_dx && !dx.is_standard_layout()).then(|| Array2::zeros((chunk * batch, input)));
        let mut dh_next = dh_final.as_standard_layout().into_owned();
        // Without a cell state, `(B, 0)`: the kernel gets empty rows.
        let mut dc = match dc_final {
            Some(dc) => dc.as_standard_layout().into_owned(),
            None => Array2::zeros((batch, 0)),
        };
        // The gradient reaching the kernel's `h` (`h_raw`, H wide, when projected).
        let mut dh = Array2::zeros((batch, hidden));
        let mut direct = Array2::zeros((batch, hout));
        // The recurrent weights laid out once for the per-step products `d_rec · W_hh`.
        let w_hh = &prep.w_hh;
        let first = if sched.reverse { 1 } else { 0 };

        let mut sums = GradSums::new(w, !C::SEPARATE_REC, chunk * batch);
        // The input weights laid out once for the per-chunk input gradients `d_xp · W_ih`.
        let w_ih = prep.w_ih.as_ref().filter(|_| want_dx);
        let mut s_hi = steps;
        while s_hi > 0 {
            let s_lo = s_hi.saturating_sub(chunk);
            let n = s_hi - s_lo;
            // The chunk's times form one range, whichever way time runs.
            let t_lo = if sched.reverse { steps - s_hi } else { s_lo };
            for s in (s_lo..s_hi).rev() {
                let t = sched.time(s, steps);
                let (pi, _) = slots(true, sched.reverse, s, t);
                let rows = (t - t_lo) * batch..(t - t_lo + 1) * batch;
                let gt = tape.g.slice(s![t * batch..(t + 1) * batch, ..]);
                let h_prev = tape.hs.index_axis(Axis(0), pi);
                let c_prev = tape.cs.index_axis(Axis(0), pi);
                let aux_t = tape.aux.index_axis(Axis(0), t);
                let d_out_t = d_out.index_axis(Axis(0), t);
                let mut dxp_t = d_xp.slice_mut(s![rows.clone(), ..]);
                let mut drec_t = if C::SEPARATE_REC {
                    d_rec_sep.slice_mut(s![rows.clone(), ..])
                } else {
                    d_rec_sep.slice_mut(s![.., ..])
                };
                if let Some(w_hr) = w_hr {
                    // Projected: the gradient of `h` (zero on padded rows), kept for `dW_hr`, and
                    // through `W_hr` the gradient of the unprojected output, for every row at once.
                    let mut dhp_t = d_hp.slice_mut(s![rows, ..]);
                    for r in 0..batch {
                        if sched.active(t, r) {
                            Zip::from(dhp_t.row_mut(r))
                                .and(d_out_t.row(r))
                                .and(dh_next.row(r))
                                .for_each(|a, &u, &v| *a = u + v);
                        } else {
                            dhp_t.row_mut(r).fill(F::zero());
                        }
                    }
                    w_hr.mul(dhp_t.view(), &mut dh.view_mut(), false);
                }
                for r in 0..batch {
                    if sched.active(t, r) {
                        if w_hr.is_none() {
                            Zip::from(dh.row_mut(r))
                                .and(d_out_t.row(r))
                                .and(dh_next.row(r))
                                .for_each(|a, &u, &v| *a = u + v);
                        }
                        let d_rec_row = if C::SEPARATE_REC {
                            drec_t.row_mut(r).into_slice().expect("contiguous")
                        } else {
                            &mut []
                        };
                        // Projected, the direct part is that of `h_raw`'s inputs: an LSTM has none.
                        let direct_row = match w_hr {
                            Some(_) => {
                                direct.row_mut(r).fill(F::zero());
                                direct_raw.row_mut(r)
                            }
                            None => direct.row_mut(r),
                        };
                        kernel.backward_row(BackwardRow {
                            g: row(gt, r),
                            aux: row(aux_t, r),
                            h_prev: row(h_prev, r),
                            c_prev: row(c_prev, r),
                            dh: row(dh.view(), r),
                            dc: dc.row_mut(r).into_slice().expect("contiguous"),
                            d_xp: dxp_t.row_mut(r).into_slice().expect("contiguous"),
                            d_rec: d_rec_row,
                            dh_direct: direct_row.into_slice().expect("contiguous"),
                            d_own: &mut *d_own,
                        });
                    } else {
                        // Padding: gradients pass through; the gradient reaching the zero output is
                        // ignored, and dc is carried unchanged. The step's gate gradients are zero.
                        direct.row_mut(r).assign(&dh_next.row(r));
                        dxp_t.row_mut(r).fill(F::zero());
                        if C::SEPARATE_REC {
                            drec_t.row_mut(r).fill(F::zero());
                        }
                    }
                }
                // Every row of `direct` was just written: it becomes `dh_next` without a copy.
                std::mem::swap(&mut dh_next, &mut direct);
                let d_rec_t = if C::SEPARATE_REC {
                    drec_t.view()
                } else {
                    dxp_t.view()
                };
                w_hh.mul(d_rec_t, &mut dh_next.view_mut(), true);
            }

            // Weight and input gradients of the chunk's steps, one product each.
            let rows = n * batch;
            let d_xp_c = d_xp.slice(s![..rows, ..]);
            let d_rec_c = if C::SEPARATE_REC {
                d_rec_sep.slice(s![..rows, ..])
            } else {
                d_xp_c
            };
            let x_c = tape.x.slice(s![t_lo * batch..t_lo * batch + rows, ..]);
            let h_prev_c = tape
                .hs
                .slice(s![first + t_lo..first + t_lo + n, .., ..])
                .into_shape_with_order((rows, hout))
                .expect("contiguous");
            sums.add_chunk(d_xp_c, d_rec_c, x_c, h_prev_c, grads.as_deref_mut());
            if w_hr.is_some() {
                let h_raw_c = tape
                    .hr
                    .slice(s![t_lo..t_lo + n, .., ..])
                    .into_shape_with_order((rows, hidden))
                    .expect("contiguous");
                sums.add_projection(d_hp.slice(s![..rows, ..]), h_raw_c);
            }
            if let Some(w_ih) = w_ih {
                let mut dx_c = dx.slice_mut(s![t_lo..t_lo + n, .., ..]);
                match (
                    &mut dx_scratch,
                    dx_c.view_mut().into_shape_with_order((rows, input)),
                ) {
                    (None, Ok(mut dx_c)) => w_ih.mul(d_xp_c, &mut dx_c, false),
                    (scratch, _) => {
                        let scratch = scratch.as_mut().expect("made for a strided dx");
                        let mut part = scratch.slice_mut(s![..rows, ..]);
                        w_ih.mul(d_xp_c, &mut part, false);
                        dx_c.assign(
                            &part
                                .view()
                                .into_shape_with_order((n, batch, input))
                                .expect("contiguous"),
                        );
                    }
                }
            }
            s_hi = s_lo;
        }

        pool::give_array(d_xp);
        pool::give_array(d_rec_sep);
        pool::give_array(d_hp);
        (dh_next, dc_final.map(|_| dc), sums)
    }
}
