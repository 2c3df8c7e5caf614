//! Joining the batch shards of a pass: their final states along the batch, their weight
//! gradients in shard order.

use ndarray::{Array2, ArrayView2, Axis};

use super::forward::RunOutput;
use super::tape::ShardTape;
use super::CellWeights;
use crate::float::Float;
use crate::pool;

/// The shards' final states joined along the batch, and their tapes (if kept).
#[allow(clippy::type_complexity)]
pub(super) fn join_shards<F: Float>(
    mut results: Vec<RunOutput<F>>,
) -> (Array2<F>, Option<Array2<F>>, Option<Vec<ShardTape<F>>>) {
    if results.len() == 1 {
        let (h, c, t) = results.pop().expect("one shard");
        return (h, c, t.map(|t| vec![t]));
    }
    let h = concat_rows(results.iter().map(|r| r.0.view()));
    let c = results[0].1.is_some().then(|| {
        concat_rows(
            results
                .iter()
                .filter_map(|r| r.1.as_ref().map(|c| c.view())),
        )
    });
    let tapes = results.into_iter().map(|r| r.2).collect();
    (h, c, tapes)
}

/// The rows of every block, one after the other.
pub(super) fn concat_rows<'a, F: Float>(
    blocks: impl Iterator<Item = ArrayView2<'a, F>>,
) -> Array2<F> {
    let blocks: Vec<_> = blocks.collect();
    ndarray::concatenate(Axis(0), &blocks).expect("blocks of one width")
}

/// Zeros shaped like `w`, the big arrays from the pool.
pub(super) fn pooled_zeros_like<F: Float>(w: &CellWeights<F>) -> CellWeights<F> {
    let zeros = |a: &Array2<F>| {
        let mut z: Array2<F> = pool::scratch(a.raw_dim());
        z.fill(F::zero());
        z
    };
    CellWeights {
        weight_ih: zeros(&w.weight_ih),
        weight_hh: zeros(&w.weight_hh),
        bias_ih: w.bias_ih.as_ref().map(|b| ndarray::Array1::zeros(b.len())),
        bias_hh: w.bias_hh.as_ref().map(|b| ndarray::Array1::zeros(b.len())),
        weight_hr: w.weight_hr.as_ref().map(zeros),
    }
}

/// `acc += g`, array by array.
pub(super) fn add_into<F: Float>(acc: &mut CellWeights<F>, g: &CellWeights<F>) {
    acc.weight_ih += &g.weight_ih;
    acc.weight_hh += &g.weight_hh;
    if let (Some(a), Some(b)) = (&mut acc.bias_ih, &g.bias_ih) {
        *a += b;
    }
    if let (Some(a), Some(b)) = (&mut acc.bias_hh, &g.bias_hh) {
        *a += b;
    }
    if let (Some(a), Some(b)) = (&mut acc.weight_hr, &g.weight_hr) {
        *a += b;
    }
}
