//! Unit tests of the engine.

use super::*;
use crate::cell::{Cell, LstmCell, LstmState, State};
use ndarray::Array3;
use rand::SeedableRng;

/// A pass at a budget of 3 threads really splits the batch (so `tests/it/threads.rs` compares
/// sharded with unsharded runs), forward and reversed with lengths, and equals the unsharded
/// pass up to summation order.
#[test]
fn shards_split_the_batch_and_agree_with_one_shard() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let cell = LstmCell::<f64>::new(32, 32, &mut rng).unwrap();
    let (steps, batch) = (16, 12);
    let x = Array3::from_shape_fn((steps, batch, 32), |(t, b, i)| {
        ((t * 31 + b * 17 + i * 7) % 23) as f64 / 23.0 - 0.5
    });
    let d = Array3::from_shape_fn((steps, batch, 32), |(t, b, i)| {
        ((t * 5 + b * 3 + i) % 13) as f64 / 13.0 - 0.5
    });
    let lengths: Vec<usize> = (0..batch).map(|b| steps - (b * 5) % 9).collect();
    let init = LstmState::zeros(batch, 32);
    for reverse in [false, true] {
        let sched = Schedule {
            reverse,
            lengths: Some(&lengths),
        };
        let pass = |threads: usize| {
            threads::with_budget(threads, || {
                let (out, last, tape) = cell.forward_sequence(x.view(), &init, sched);
                let mut grads = cell.clone();
                grads.weights_mut().weight_ih.fill(0.0);
                grads.weights_mut().weight_hh.fill(0.0);
                let (dx, d_init) = cell.backward_sequence(&tape, d.view(), &init, &mut grads);
                (tape.shards.len(), out, last, dx, d_init, grads)
            })
        };
        let one = pass(1);
        let three = pass(3);
        assert_eq!((one.0, three.0), (1, 3), "shards at 1 and 3 threads");
        let close = |a: &ndarray::ArrayViewD<'_, f64>, b: &ndarray::ArrayViewD<'_, f64>| {
            a.iter()
                .zip(b)
                .all(|(u, v)| (u - v).abs() <= 1e-12 * (1.0 + u.abs()))
        };
        assert!(
            close(&one.1.view().into_dyn(), &three.1.view().into_dyn()),
            "outputs"
        );
        assert!(
            close(&one.2.h.view().into_dyn(), &three.2.h.view().into_dyn()),
            "h"
        );
        assert!(
            close(&one.2.c.view().into_dyn(), &three.2.c.view().into_dyn()),
            "c"
        );
        assert!(
            close(&one.3.view().into_dyn(), &three.3.view().into_dyn()),
            "dx"
        );
        assert!(
            close(&one.4.c.view().into_dyn(), &three.4.c.view().into_dyn()),
            "dc0"
        );
        let w1 = one.5.weights();
        let w3 = three.5.weights();
        assert!(close(
            &w1.weight_ih.view().into_dyn(),
            &w3.weight_ih.view().into_dyn()
        ));
        assert!(close(
            &w1.weight_hh.view().into_dyn(),
            &w3.weight_hh.view().into_dyn()
        ));
    }
}
