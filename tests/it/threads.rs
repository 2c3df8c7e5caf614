//! Results do not depend on the thread count beyond the order of floating-point sums: a training
//! step (forward with tape, backward to every gradient and the input and initial-state gradients)
//! at 1, 2, 3 and 4 threads agrees to 1e-6 relative in `f32` and 1e-12 in `f64`, and two runs at
//! the same thread count are bit-identical. The shapes are large enough that single-layer networks
//! split the batch into 2 and 3 shards at 2 and 3 threads (3 at 4: the batch of 12 allows no more),
//! and that bidirectional layers run their directions in parallel, each direction (the reversed
//! one with lengths too) in 2 shards at 4 threads. (`src/cell/engine.rs` checks that the shards
//! happen.)
//!
//! Each count is set with `runtime::with_num_threads`, for the test's own thread only, so tests
//! running beside it in this binary keep theirs.

use ndarray::{Array3, ArrayD};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use recurrent::cell::CellInit;
use recurrent::{Float, Gru, Lstm, Params, RecurrentStack, Rnn, StackConfig, State};

/// Every array a training step produces, by name.
fn training_step<F: Float, C: CellInit<F>>(
    net: &RecurrentStack<C>,
    threads: usize,
) -> Vec<(String, ArrayD<F>)>
where
    StandardNormal: Distribution<F>,
{
    recurrent::runtime::with_num_threads(threads, || training_step_here(net))
}

/// [`training_step`] at the calling thread's thread count.
fn training_step_here<F: Float, C: CellInit<F>>(net: &RecurrentStack<C>) -> Vec<(String, ArrayD<F>)>
where
    StandardNormal: Distribution<F>,
{
    let (steps, batch) = (16, 12);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let x = Array3::<F>::from_shape_simple_fn((steps, batch, net.config().input_size), || {
        StandardNormal.sample(&mut rng)
    });
    let d = Array3::<F>::from_shape_simple_fn((steps, batch, net.output_size()), || {
        StandardNormal.sample(&mut rng)
    });
    let lengths: Vec<usize> = (0..batch).map(|b| steps - (b * 5) % 9).collect();
    let (out, last, tape) = net.forward(x.view(), None, Some(&lengths)).unwrap();
    let mut grads = net.zeros_like();
    let (dx, d_init) = net.backward(&tape, d.view(), None, &mut grads).unwrap();
    let mut arrays = vec![
        ("output".to_string(), out.into_dyn()),
        ("dx".to_string(), dx.into_dyn()),
    ];
    for (name, a) in C::State::stacked_parts(&last) {
        arrays.push((format!("final {name}"), a.to_owned().into_dyn()));
    }
    for (name, a) in C::State::stacked_parts(&d_init) {
        arrays.push((format!("d_init {name}"), a.to_owned().into_dyn()));
    }
    for (name, a) in grads.named_arrays() {
        arrays.push((format!("grad {name}"), a.to_owned()));
    }
    arrays
}

fn check<F: Float, C: CellInit<F>>(what: &str, net: &RecurrentStack<C>, rel: f64)
where
    StandardNormal: Distribution<F>,
{
    let one = training_step(net, 1);
    for threads in [2, 3, 4] {
        let many = training_step(net, threads);
        let again = training_step(net, threads);
        assert_eq!(many, again, "{what}: two runs at {threads} threads differ");
        assert_eq!(one.len(), many.len());
        for ((name, a), (_, b)) in one.iter().zip(&many) {
            let scale = a
                .iter()
                .fold(0.0f64, |m, v| m.max(v.to_f64().unwrap().abs()));
            let diff = a.iter().zip(b).fold(0.0f64, |m, (u, v)| {
                m.max((u.to_f64().unwrap() - v.to_f64().unwrap()).abs())
            });
            assert!(
                diff <= rel * scale.max(1e-30),
                "{what} {name}: 1 vs {threads} threads differ by {diff:e} (largest value {scale:e})"
            );
        }
    }
}

fn config() -> StackConfig {
    StackConfig::new(32, 32)
        .with_num_layers(2)
        .with_bidirectional(true)
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let single = StackConfig::new(32, 32);
    check(
        "lstm f32",
        &Lstm::<f32>::new(single, &mut rng).unwrap(),
        1e-6,
    );
    check("gru f32", &Gru::<f32>::new(single, &mut rng).unwrap(), 1e-6);
    check("rnn f32", &Rnn::<f32>::new(single, &mut rng).unwrap(), 1e-6);
    check(
        "bilstm2 f32",
        &Lstm::<f32>::new(config(), &mut rng).unwrap(),
        1e-6,
    );
    check(
        "projected bilstm2 f32",
        &Lstm::<f32>::new(config().with_proj_size(12), &mut rng).unwrap(),
        1e-6,
    );
    check(
        "projected bilstm2 f64",
        &Lstm::<f64>::new(config().with_proj_size(12), &mut rng).unwrap(),
        1e-12,
    );
    check(
        "lstm f64",
        &Lstm::<f64>::new(single, &mut rng).unwrap(),
        1e-12,
    );
    check(
        "bigru2 f64",
        &Gru::<f64>::new(config(), &mut rng).unwrap(),
        1e-12,
    );
    check(
        "rnn f64",
        &Rnn::<f64>::new(single, &mut rng).unwrap(),
        1e-12,
    );
}
