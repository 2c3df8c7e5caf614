//! Peak memory of a training step at the performance issue's shape S2 (LSTM, f32, T = 100,
//! B = 32, I = 128, H = 256): at most 1.5× the tape plus the weights.
//!
//! Every allocation of the step is counted (live bytes and their peak), on the threads it runs on
//! (see [`crate::counting`]). The step runs on a fresh thread, so the thread-local packing buffers
//! of the matrix products are counted too.

use ndarray::Array3;
use rand::SeedableRng;
use recurrent::{Lstm, Params, StackConfig};

use crate::counting::{also_measure_this_thread, exclusive, measure};

#[test]
fn s2_training_step_peak_memory_is_within_one_and_a_half_tapes_plus_weights() {
    let _one_at_a_time = exclusive();
    // One thread, and two (the batch in two shards, each with its own weight-gradient buffer).
    for threads in [1, 2] {
        recurrent::runtime::release_memory();
        check_peak(threads);
    }
    recurrent::runtime::set_num_threads(0);
}

fn check_peak(threads: usize) {
    recurrent::runtime::set_num_threads(threads);
    let (steps, batch, input, hidden) = (100, 32, 128, 256);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let net = Lstm::<f32>::new(StackConfig::new(input, hidden), &mut rng).unwrap();
    let x = Array3::<f32>::from_shape_fn((steps, batch, input), |(t, b, i)| {
        ((t * 7 + b * 3 + i) % 11) as f32 / 11.0 - 0.5
    });
    let d_out = Array3::<f32>::from_elem((steps, batch, hidden), 0.01);
    let mut grads = net.zeros_like();
    let weight_bytes: usize = net
        .named_arrays()
        .iter()
        .map(|(_, a)| a.len())
        .sum::<usize>()
        * 4;

    let (tape_bytes, measured) = measure(|| {
        std::thread::scope(|s| {
            s.spawn(|| {
                also_measure_this_thread(|| {
                    let (out, _, tape) = net.forward(x.view(), None, None).unwrap();
                    let (dx, _) = net.backward(&tape, d_out.view(), None, &mut grads).unwrap();
                    assert_eq!(out.dim(), (steps, batch, hidden));
                    assert_eq!(dx.dim(), (steps, batch, input));
                    tape.nbytes()
                })
            })
            .join()
            .unwrap()
        })
    });
    let peak = measured.peak_bytes;
    let limit = (tape_bytes + weight_bytes) * 3 / 2;
    eprintln!(
        "S2 LSTM training step on {threads} threads: tape {:.1} MB, weights {:.1} MB, peak {:.1} MB, limit {:.1} MB",
        tape_bytes as f64 / 1e6,
        weight_bytes as f64 / 1e6,
        peak as f64 / 1e6,
        limit as f64 / 1e6
    );
    // x (T·B·I) + gates (T·B·4H) + h and c slots (2·(T+1)·B·H) + tanh(c) (T·B·H), 4 bytes each.
    let expected_tape = steps * batch * (input + 4 * hidden) + 2 * (steps + 1) * batch * hidden;
    assert_eq!(tape_bytes, (expected_tape + steps * batch * hidden) * 4);
    assert!(grads.global_norm() > 0.0);
    assert!(peak <= limit, "peak {peak} bytes above the limit {limit}");
}
