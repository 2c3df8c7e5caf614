//! No allocation inside the time loop: the number of heap allocations of a forward, inference or
//! backward pass does not grow with the number of time steps — on every instruction-set path this
//! CPU supports, on one thread and with the batch split into shards on two.
//!
//! This holds for every batch size where the per-step products use the crate's own kernels:
//! batches of up to 4 everywhere, and every batch size for `f32` on the AVX2 and AVX-512 paths.
//! On the portable path larger batches call `matrixmultiply` once per step, which allocates its
//! packing buffers on every call (see docs/PERFORMANCE.md).
//!
//! Allocations are counted on the measuring thread and the crate's worker threads (the shards run
//! there), and on no other thread (see [`crate::counting`]).

use ndarray::Array3;
use rand::SeedableRng;
use recurrent::runtime::{set_isa, set_num_threads, Isa};
use recurrent::{Gru, Lstm, Params, RecurrentStack, Rnn, StackConfig};

use crate::counting::{count, exclusive};

/// Allocations of (infer, forward, backward) over `steps` steps.
fn allocations<C: recurrent::cell::CellInit<f32>>(
    net: &RecurrentStack<C>,
    steps: usize,
    batch: usize,
) -> [usize; 3] {
    let x = Array3::<f32>::from_elem((steps, batch, net.config().input_size), 0.5);
    let d = Array3::<f32>::from_elem((steps, batch, net.output_size()), 1.0);
    let lengths: Vec<usize> = (0..batch).map(|b| steps - b % 5).collect();
    let infer = count(|| {
        net.infer(x.view(), None, Some(&lengths)).unwrap();
    });
    let mut tape = None;
    let forward = count(|| tape = Some(net.forward(x.view(), None, Some(&lengths)).unwrap().2));
    let mut grads = net.zeros_like();
    let tape = tape.unwrap();
    let backward = count(|| {
        net.backward(&tape, d.view(), None, &mut grads).unwrap();
    });
    [infer, forward, backward]
}

/// Batch sizes to check on `isa`: every size where the crate's own kernels do the per-step
/// products (see the module docs).
fn batches(isa: Isa) -> Vec<usize> {
    if isa == Isa::Portable {
        vec![1, 4]
    } else {
        vec![1, 4, 5, 16]
    }
}

/// Checks the three networks of `config` at every batch size of `isa` on `threads` threads.
fn check(config: StackConfig, isa: Isa, threads: usize) {
    set_num_threads(threads);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let lstm = Lstm::<f32>::new(config, &mut rng).unwrap();
    let gru = Gru::<f32>::new(config, &mut rng).unwrap();
    let rnn = Rnn::<f32>::new(config, &mut rng).unwrap();
    // Warm up once-only allocations (thread-locals, the worker pool, the packing buffers of the
    // matrix products, which grow to the largest size seen and are then reused).
    for batch in batches(isa) {
        allocations(&lstm, 110, batch);
        allocations(&gru, 110, batch);
        allocations(&rnn, 110, batch);
    }
    for batch in batches(isa) {
        let what = format!("{isa} path, {threads} threads, batch {batch}");
        for (name, short, long) in [
            (
                "lstm",
                allocations(&lstm, 10, batch),
                allocations(&lstm, 110, batch),
            ),
            (
                "gru",
                allocations(&gru, 10, batch),
                allocations(&gru, 110, batch),
            ),
            (
                "rnn",
                allocations(&rnn, 10, batch),
                allocations(&rnn, 110, batch),
            ),
        ] {
            if threads == 1 {
                assert_eq!(short, long, "{name}, {what}: 10 steps vs 110");
            } else {
                // The worker pool's job queues allocate a block now and then (rayon's
                // crossbeam deques); an allocation per step would add 100.
                for (s, l) in short.iter().zip(&long) {
                    assert!(
                        s.abs_diff(*l) <= SLACK,
                        "{name}, {what}: 10 steps {short:?} vs 110 {long:?}"
                    );
                }
            }
        }
    }
}

/// Allocations the worker pool may make besides the crate's own in one pass.
const SLACK: usize = 8;

#[test]
fn allocations_do_not_grow_with_sequence_length() {
    let _one_at_a_time = exclusive();
    // Small: one thread per direction at most, no shards.
    let small = StackConfig::new(3, 8)
        .with_num_layers(2)
        .with_bidirectional(true);
    // Large enough that a batch of 16 splits into two shards on two threads, at 10 steps and at
    // 110 (the smaller batches stay whole).
    let sharded = StackConfig::new(32, 64).with_num_layers(2);
    for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
        set_isa(isa).unwrap();
        check(small, isa, 1);
        check(sharded, isa, 2);
    }
    set_num_threads(0);
}
