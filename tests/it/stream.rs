//! Streaming inference ([`recurrent::Stream`]): one step at a time through a whole stack gives
//! the outputs and final states of the whole-sequence `infer`, bit for bit, for every cell kind,
//! float type, batch size and thread count tested (and on each instruction-set path `.ci/run`
//! runs the suite on); bad input is an error that leaves the stream unchanged.

use crate::common::*;
use ndarray::{s, Array3};
use recurrent::cell::{CellInit, Stacked, State};
use recurrent::runtime::with_num_threads;
use recurrent::{
    Error, Float, Gru, LayerNormLstm, Lstm, Nonlinearity, Params, RecurrentStack, Rnn, StackConfig,
};

const I: usize = 5;

/// Streams `steps` steps of random input for `batch` sequences from a non-zero initial state
/// and compares every output and the final states with `infer`, exactly.
fn streams_like_infer<F: Float, C: CellInit<F>>(
    what: &str,
    net: &RecurrentStack<C>,
    batch: usize,
    steps: usize,
    seed: u64,
) {
    let mut r = rng(seed);
    let i = net.config().input_size;
    let prefix: Array3<F> = randn3((3, batch, i), 1.0, &mut r);
    let (_, init) = net.infer(prefix.view(), None, None).unwrap();
    let x: Array3<F> = randn3((steps, batch, i), 1.0, &mut r);
    let (out, finals) = net.infer(x.view(), Some(&init), None).unwrap();

    let mut stream = net.stream(batch).unwrap();
    stream.set_state(Some(&init)).unwrap();
    for t in 0..steps {
        let y = stream.step(x.slice(s![t, .., ..])).unwrap();
        assert_eq!(y, out.slice(s![t, .., ..]), "{what}: output at step {t}");
    }
    assert_same_states::<F, C>(&stream.state(), &finals, what);

    // From zeros (`set_state(None)`), as `infer` without `init`.
    stream.set_state(None).unwrap();
    let (out0, finals0) = net.infer(x.view(), None, None).unwrap();
    for t in 0..steps {
        let y = stream.step(x.slice(s![t, .., ..])).unwrap();
        assert_eq!(y, out0.slice(s![t, .., ..]), "{what}: from zeros, step {t}");
    }
    assert_same_states::<F, C>(&stream.state(), &finals0, what);
}

fn assert_same_states<F: Float, C: CellInit<F>>(a: &Stacked<F, C>, b: &Stacked<F, C>, what: &str) {
    let (pa, pb) = (
        <C::State as State<F>>::stacked_parts(a),
        <C::State as State<F>>::stacked_parts(b),
    );
    assert_eq!(pa.len(), pb.len());
    for ((name, a), (_, b)) in pa.into_iter().zip(pb) {
        assert_eq!(a, b, "{what}: final {name}");
    }
}

fn all_kinds<F: Float>(batch: usize, steps: usize) {
    let mut r = rng(7);
    let two = StackConfig::new(I, 6).with_num_layers(2);
    let cases: [(&str, u64); 7] = [
        ("lstm", 1),
        ("lstm nobias", 2),
        ("lstm proj", 3),
        ("gru", 4),
        ("rnn tanh", 5),
        ("rnn relu", 6),
        ("layer-norm lstm", 8),
    ];
    for (what, seed) in cases {
        let label = format!("{what} {} B={batch}", std::any::type_name::<F>());
        match what {
            "lstm" => streams_like_infer::<F, _>(
                &label,
                &Lstm::<F>::new(two, &mut r).unwrap(),
                batch,
                steps,
                seed,
            ),
            "lstm nobias" => streams_like_infer::<F, _>(
                &label,
                &Lstm::<F>::new(two.with_bias(false), &mut r).unwrap(),
                batch,
                steps,
                seed,
            ),
            "lstm proj" => streams_like_infer::<F, _>(
                &label,
                &Lstm::<F>::new(two.with_proj_size(4), &mut r).unwrap(),
                batch,
                steps,
                seed,
            ),
            "gru" => streams_like_infer::<F, _>(
                &label,
                &Gru::<F>::new(two, &mut r).unwrap(),
                batch,
                steps,
                seed,
            ),
            "layer-norm lstm" => {
                let mut stack = LayerNormLstm::<F>::new(two, &mut r).unwrap();
                randomize_layer_norm(&mut stack, seed);
                streams_like_infer::<F, _>(&label, &stack, batch, steps, seed)
            }
            "rnn tanh" => streams_like_infer::<F, _>(
                &label,
                &Rnn::<F>::new(two, &mut r).unwrap(),
                batch,
                steps,
                seed,
            ),
            _ => streams_like_infer::<F, _>(
                &label,
                &Rnn::<F>::new(two.with_nonlinearity(Nonlinearity::Relu), &mut r).unwrap(),
                batch,
                steps,
                seed,
            ),
        }
    }
}

/// Streaming equals `infer` at one thread and at all cores (the thread counts are scoped to this
/// test's thread with `with_num_threads`).
#[test]
fn streaming_equals_the_sequence_path_bit_for_bit() {
    for threads in [1, 0] {
        with_num_threads(threads, || {
            for batch in [1, 3, 8] {
                all_kinds::<f32>(batch, 25);
                all_kinds::<f64>(batch, 25);
            }
        });
    }
    // A bigger f32 network, whose products take the packed kernels on the SIMD paths, and a
    // long stream (the laid-out weights and buffers are reused for every step).
    with_num_threads(1, || {
        let mut r = rng(11);
        let big = Lstm::<f32>::new(StackConfig::new(I, 64).with_num_layers(3), &mut r).unwrap();
        streams_like_infer::<f32, _>("lstm H=64 B=6", &big, 6, 200, 12);
        // Inputs wider than the GEMM's depth block (256): the projection sums in two blocks.
        let wide = Gru::<f32>::new(StackConfig::new(300, 8).with_num_layers(2), &mut r).unwrap();
        streams_like_infer::<f32, _>("gru I=300 B=2", &wide, 2, 20, 13);
        let wide = Lstm::<f64>::new(StackConfig::new(300, 8), &mut r).unwrap();
        streams_like_infer::<f64, _>("lstm f64 I=300 B=1", &wide, 1, 20, 14);
    });
}

#[test]
fn bad_input_is_an_error_and_leaves_the_stream_unchanged() {
    let mut r = rng(3);
    let net = Lstm::<f64>::new(StackConfig::new(I, 4).with_num_layers(2), &mut r).unwrap();
    let bi = Lstm::<f64>::new(StackConfig::new(I, 4).with_bidirectional(true), &mut r).unwrap();
    let e = bi.stream(1).unwrap_err();
    assert!(matches!(e, Error::InvalidConfig(_)), "{e}");
    assert!(e.to_string().contains("bidirectional"), "{e}");
    let e = net.stream(0).unwrap_err();
    assert!(matches!(e, Error::InvalidConfig(_)), "{e}");

    let x: Array3<f64> = randn3((4, 2, I), 1.0, &mut r);
    let (out, _) = net.infer(x.view(), None, None).unwrap();
    let mut stream = net.stream(2).unwrap();
    stream.step(x.slice(s![0, .., ..])).unwrap();
    // Wrong input shapes: (B, I+1) and (B+1, I).
    let wide = ndarray::Array2::<f64>::zeros((2, I + 1));
    let e = stream.step(wide.view()).unwrap_err();
    assert!(
        matches!(&e, Error::Shape { what, .. } if what == "x"),
        "{e}"
    );
    assert!(e.to_string().contains("(2, 5)"), "{e}");
    let tall = ndarray::Array2::<f64>::zeros((3, I));
    assert!(stream.step(tall.view()).is_err());
    // Wrong state shapes: c of another hidden size, h of another batch.
    let good = stream.state();
    let mut bad = good.clone();
    bad.c = ndarray::Array3::zeros((2, 2, 5));
    let e = stream.set_state(Some(&bad)).unwrap_err();
    assert!(
        matches!(&e, Error::Shape { what, .. } if what == "state.c"),
        "{e}"
    );
    let mut bad = good.clone();
    bad.h = ndarray::Array3::zeros((2, 3, 4));
    assert!(stream.set_state(Some(&bad)).is_err());
    // The errors changed nothing: the rest of the sequence streams as if they had not happened.
    assert_eq!(stream.state(), good);
    for t in 1..4 {
        let y = stream.step(x.slice(s![t, .., ..])).unwrap();
        assert_eq!(y, out.slice(s![t, .., ..]));
    }
    assert_eq!(
        format!("{stream:?}").split(',').next(),
        Some("Stream { layers: 2")
    );
    let _ = net.num_params();
}
