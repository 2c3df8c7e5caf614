//! What a forward pass saves for its backward: one tape per batch shard.

use ndarray::{Array2, Array3, Axis};

use super::Schedule;
use crate::float::Float;
use crate::pool;

/// What the engine's forward saves for its backward: one tape per batch shard (the shards run on
/// their own threads, see [`runtime`](crate::runtime)), in batch order.
#[derive(Debug, Clone)]
pub struct SequenceTape<F: Float> {
    pub(super) shards: Vec<ShardTape<F>>,
}

impl<F: Float> SequenceTape<F> {
    /// Number of time steps.
    pub fn steps(&self) -> usize {
        self.shards[0].steps()
    }

    /// Bytes of memory the tape holds: the inputs `(T·B, I)`, the saved gates `(T·B, G·H)`, the
    /// states `(T+1, B, H)` (twice for an LSTM), per-step extras `(T, B, H)` (LSTM, GRU) and the
    /// lengths.
    pub fn nbytes(&self) -> usize {
        self.shards.iter().map(ShardTape::nbytes).sum()
    }

    /// Batch size.
    pub fn batch(&self) -> usize {
        self.shards.iter().map(ShardTape::batch).sum()
    }
}

/// The tape of one batch shard (rows `b0..b1` of the batch, `B` of them below).
#[derive(Debug, Clone)]
pub(super) struct ShardTape<F: Float> {
    /// Inputs `(T·B, I)`.
    pub(super) x: Array2<F>,
    /// Saved gate values `(T·B, G·H)`, time-ordered.
    pub(super) g: Array2<F>,
    /// Hidden-state slots `(T+1, B, H)`.
    pub(super) hs: Array3<F>,
    /// Cell-state slots `(T+1, B, H)`, or `(T+1, B, 0)`.
    pub(super) cs: Array3<F>,
    /// Extra per-step vectors `(T, B, H)`, or `(T, B, 0)`.
    pub(super) aux: Array3<F>,
    /// The unprojected outputs `o ∘ tanh(c')` `(T, B, H)` of a projected LSTM, or `(T, B, 0)`.
    pub(super) hr: Array3<F>,
    pub(super) reverse: bool,
    pub(super) lengths: Option<Vec<usize>>,
}

impl<F: Float> ShardTape<F> {
    pub(super) fn steps(&self) -> usize {
        self.hs.len_of(Axis(0)) - 1
    }

    pub(super) fn nbytes(&self) -> usize {
        let values = self.x.len()
            + self.g.len()
            + self.hs.len()
            + self.cs.len()
            + self.aux.len()
            + self.hr.len();
        values * std::mem::size_of::<F>()
            + self.lengths.as_ref().map_or(0, |l| l.len()) * std::mem::size_of::<usize>()
    }

    pub(super) fn batch(&self) -> usize {
        self.hs.len_of(Axis(1))
    }

    pub(super) fn schedule(&self) -> Schedule<'_> {
        Schedule {
            reverse: self.reverse,
            lengths: self.lengths.as_deref(),
        }
    }
}

impl<F: Float> Drop for ShardTape<F> {
    /// Returns the tape's buffers to the engine's pool, for the next forward pass to reuse.
    fn drop(&mut self) {
        pool::give_array(std::mem::take(&mut self.g));
        pool::give_array(std::mem::take(&mut self.x));
        pool::give_array(std::mem::take(&mut self.hs));
        pool::give_array(std::mem::take(&mut self.cs));
        pool::give_array(std::mem::take(&mut self.aux));
        pool::give_array(std::mem::take(&mut self.hr));
    }
}
