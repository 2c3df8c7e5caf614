//! Criterion benchmarks of the performance issue's reference shapes, f32, time-major.
//!
//! ```text
//! cargo bench -p recurrent-benches --bench layers              # everything, a few minutes
//! cargo bench -p recurrent-benches --bench layers -- lstm/S2   # a filter (criterion's regex)
//! ```
//!
//! | shape | B | T | I | H | mode |
//! |---|---|---|---|---|---|
//! | S1 | 1 | 100 | 32 | 64 | inference (`infer`, no tape) |
//! | S2 | 32 | 100 | 128 | 256 | forward with tape + backward to all parameter gradients |
//! | S3 | 64 | 50 | 512 | 512 | forward with tape + backward to all parameter gradients |
//!
//! for `lstm`, `gru` and `rnn` (tanh), plus `bilstm2` (2-layer bidirectional LSTM) at S2. Ids are
//! `<net>/<shape>_<mode>/B<b>_T<t>_I<i>_H<h>`, e.g. `lstm/S2_fwd_bwd/B32_T100_I128_H256`. The
//! throughput is given in FLOPs ("elements"): `2·T·B·G·H·(I+H)` per layer and direction forward,
//! 3× that for forward + backward, so criterion's `Gelem/s` reads as GFLOP/s.
//!
//! Backward is `backward_params` (no gradient of the input data, as PyTorch for an input that does
//! not require grad, and as `examples/bench.rs` by default).
//!
//! Threads: `BENCH_THREADS=N` (default 1) is passed to [`recurrent::runtime::set_num_threads`];
//! single-threaded by default so that numbers are comparable from run to run.
//!
//! Inputs and output gradients are seeded random data built outside the timed closure. Sample
//! size 10 and short warm-up/measurement times keep the whole run to a few minutes; for numbers
//! comparable with PyTorch use `examples/bench.rs` and `scripts/compare_bench.py`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use ndarray::Array3;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use recurrent::{cell::CellInit, GruCell, LstmCell, Params, RecurrentStack, RnnCell, StackConfig};

/// `(name, B, T, I, H, train)`.
type Shape = (&'static str, usize, usize, usize, usize, bool);

const SHAPES: [Shape; 3] = [
    ("S1", 1, 100, 32, 64, false),
    ("S2", 32, 100, 128, 256, true),
    ("S3", 64, 50, 512, 512, true),
];

fn randn3(rng: &mut StdRng, dim: (usize, usize, usize)) -> Array3<f32> {
    Array3::from_shape_simple_fn(dim, || StandardNormal.sample(rng))
}

/// Forward FLOPs: per layer and direction `2·T·B·G·H·(I+H)`; layers after the first see `D·H`
/// inputs.
fn forward_flops(gates: usize, sh: Shape, layers: usize, dirs: usize) -> u64 {
    let (_, b, t, i, h, _) = sh;
    (0..layers)
        .map(|l| {
            let inp = if l == 0 { i } else { dirs * h };
            (dirs * 2 * t * b * gates * h * (inp + h)) as u64
        })
        .sum()
}

/// Benchmarks one network at one shape inside `c`'s group `name`.
fn bench_net<C: CellInit<f32>>(
    c: &mut Criterion,
    name: &str,
    gates: usize,
    sh: Shape,
    layers: usize,
    bidirectional: bool,
) {
    let (shape, b, t, i, h, train) = sh;
    let mut rng = StdRng::seed_from_u64(0);
    let cfg = StackConfig::new(i, h)
        .with_num_layers(layers)
        .with_bidirectional(bidirectional);
    let net = RecurrentStack::<C>::new::<f32, _>(cfg, &mut rng).expect("valid config");
    let dirs = cfg.num_directions();
    let x = randn3(&mut rng, (t, b, i));
    let fwd = forward_flops(gates, sh, layers, dirs);
    let params = format!("B{b}_T{t}_I{i}_H{h}");

    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    if train {
        // Every sample runs the same number of iterations: with criterion's default linear
        // sampling, 10 samples would need 55 calls of the slow shapes.
        group.sampling_mode(SamplingMode::Flat);
        group.throughput(Throughput::Elements(3 * fwd));
        let d_out = randn3(&mut rng, (t, b, dirs * h));
        // Backward adds into `grads`; accumulating across iterations does not change the cost.
        let mut grads = net.zeros_like();
        group.bench_function(
            BenchmarkId::new(format!("{shape}_fwd_bwd"), &params),
            |bench| {
                bench.iter(|| {
                    let (out, _, tape) = net.forward(x.view(), None, None).expect("shapes fit");
                    black_box(&out);
                    net.backward_params(&tape, d_out.view(), None, &mut grads)
                        .expect("shapes fit")
                })
            },
        );
    } else {
        group.throughput(Throughput::Elements(fwd));
        group.bench_function(
            BenchmarkId::new(format!("{shape}_infer"), &params),
            |bench| bench.iter(|| net.infer(x.view(), None, None).expect("shapes fit")),
        );
    }
    group.finish();
}

fn layers(c: &mut Criterion) {
    let threads = std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1);
    recurrent::runtime::set_num_threads(threads);
    for sh in SHAPES {
        bench_net::<LstmCell<f32>>(c, "lstm", 4, sh, 1, false);
        bench_net::<GruCell<f32>>(c, "gru", 3, sh, 1, false);
        bench_net::<RnnCell<f32>>(c, "rnn", 1, sh, 1, false);
    }
    bench_net::<LstmCell<f32>>(c, "bilstm2", 4, SHAPES[1], 2, true);
}

criterion_group!(benches, layers);
criterion_main!(benches);
