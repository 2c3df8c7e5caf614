//! The weights laid out once per pass for the matrix products of every shard and step.

use super::CellWeights;
use crate::float::Float;
use crate::gemm::Prepared;

/// The weights laid out once per pass for the products of every shard (see [`Prepared`]).
pub(crate) struct Prep<'w, F: Float> {
    /// `W_hhᵀ` forward (`h_prev · W_hhᵀ`), `W_hh` backward (`d_rec · W_hh`).
    pub(crate) w_hh: Prepared<'w, F>,
    /// `W_ihᵀ` forward (the input projections `x · W_ihᵀ`), `W_ih` backward (the input
    /// gradients `d_xp · W_ih`, if asked for).
    pub(super) w_ih: Option<Prepared<'w, F>>,
    /// A projected LSTM's `W_hrᵀ` forward (`h = h_raw · W_hrᵀ`), `W_hr` backward
    /// (`d_h_raw = d_h · W_hr`).
    pub(crate) w_hr: Option<Prepared<'w, F>>,
}

impl<'w, F: Float> Prep<'w, F> {
    /// For a forward pass whose shards have at most `rows` rows; `W_ihᵀ` laid out too for input
    /// projections of about `input_rows` rows if given (shared by the shards). Otherwise it is
    /// multiplied as it is: a single step (the per-step API) would pay as much to lay it out as to
    /// use it, and an unsharded pass keeps the column split of a big projection.
    pub(crate) fn forward(w: &'w CellWeights<F>, rows: usize, input_rows: Option<usize>) -> Self {
        Prep {
            w_hh: Prepared::new(w.weight_hh.t(), rows),
            w_ih: input_rows.map(|m| Prepared::new(w.weight_ih.t(), m)),
            w_hr: w
                .weight_hr
                .as_ref()
                .map(|w_hr| Prepared::new(w_hr.t(), rows)),
        }
    }

    /// For a backward pass whose shards have at most `rows` rows, and chunks of about
    /// `chunk_rows` rows if the input gradients are wanted. (The shards share [`CHUNK_ROWS`], so
    /// their buffers together stay as small as one's.)
    pub(super) fn backward(w: &'w CellWeights<F>, rows: usize, chunk_rows: Option<usize>) -> Self {
        Prep {
            w_hh: Prepared::new(w.weight_hh.view(), rows),
            w_ih: chunk_rows.map(|m| Prepared::new(w.weight_ih.view(), m)),
            w_hr: w
                .weight_hr
                .as_ref()
                .map(|w_hr| Prepared::new(w_hr.view(), rows)),
        }
    }
}
