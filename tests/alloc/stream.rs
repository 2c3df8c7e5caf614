//! No allocation in a streamed step ([`recurrent::Stream`]) where the crate's own kernels do the
//! products: every batch size on the AVX2 and AVX-512 paths. (On the portable path, and so for
//! `f64`, the input projection goes through `matrixmultiply`, which allocates its packing buffer
//! on every call.)
//!
//! Allocations are counted on the measuring thread and the crate's worker threads, and on no other
//! thread (see [`crate::counting`]).

use rand::SeedableRng;
use recurrent::runtime::{set_isa, set_num_threads, Isa};
use recurrent::{Gru, Lstm, RecurrentStack, Rnn, StackConfig};

use crate::counting::{count, exclusive};

/// Allocations of `steps` steps of a [`recurrent::Stream`] over `net` (made and warmed up before
/// counting).
fn stream_allocations<C: recurrent::cell::CellInit<f32>>(
    net: &RecurrentStack<C>,
    batch: usize,
    steps: usize,
) -> usize {
    let x = ndarray::Array2::<f32>::from_elem((batch, net.config().input_size), 0.5);
    let mut stream = net.stream(batch).unwrap();
    stream.step(x.view()).unwrap();
    count(|| {
        for _ in 0..steps {
            stream.step(x.view()).unwrap();
        }
    })
}

/// A streamed step allocates nothing where the crate's own kernels do the products: every batch
/// size on the AVX2 and AVX-512 paths (on the portable path the input projection goes through
/// `matrixmultiply`, which allocates per call; see the module docs).
#[test]
fn streamed_steps_do_not_allocate() {
    let _one_at_a_time = exclusive();
    let config = StackConfig::new(32, 64).with_num_layers(2);
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let lstm = Lstm::<f32>::new(config, &mut rng).unwrap();
    let proj = Lstm::<f32>::new(config.with_proj_size(16), &mut rng).unwrap();
    let gru = Gru::<f32>::new(config, &mut rng).unwrap();
    let rnn = Rnn::<f32>::new(config, &mut rng).unwrap();
    for isa in Isa::ALL
        .into_iter()
        .filter(|i| i.is_supported() && *i != Isa::Portable)
    {
        set_isa(isa).unwrap();
        for threads in [1, 2] {
            set_num_threads(threads);
            for batch in [1, 4, 16] {
                let what = format!("{isa} path, {threads} threads, batch {batch}");
                assert_eq!(stream_allocations(&lstm, batch, 50), 0, "lstm, {what}");
                assert_eq!(stream_allocations(&proj, batch, 50), 0, "lstm proj, {what}");
                assert_eq!(stream_allocations(&gru, batch, 50), 0, "gru, {what}");
                assert_eq!(stream_allocations(&rnn, batch, 50), 0, "rnn, {what}");
            }
        }
    }
    set_num_threads(0);
}
