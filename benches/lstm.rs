//! LSTM forward (inference and training) and forward + backward, f32, time-major.
//!
//! `cargo bench -p recurrent-benches --bench lstm`. Shape S2 of the performance issue: B=32,
//! T=100, I=128, H=256.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array3;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use recurrent::{LstmCell, Params, Recurrent};

fn lstm(c: &mut Criterion) {
    let (b, t, i, h) = (32usize, 100usize, 128usize, 256usize);
    let mut rng = StdRng::seed_from_u64(0);
    let layer = Recurrent::new(LstmCell::<f32>::new(i, h, &mut rng).expect("valid sizes"));
    let x = Array3::<f32>::from_shape_simple_fn((t, b, i), || StandardNormal.sample(&mut rng));
    let d_out = Array3::<f32>::from_shape_simple_fn((t, b, h), || StandardNormal.sample(&mut rng));
    let id = format!("B{b}_T{t}_I{i}_H{h}");
    // Forward FLOPs 2·T·B·4H·(I+H); backward twice that.
    let fwd_flops = (2 * t * b * 4 * h * (i + h)) as u64;

    let mut group = c.benchmark_group("lstm_f32");
    group.sample_size(20);
    group.throughput(Throughput::Elements(fwd_flops));
    group.bench_function(BenchmarkId::new("infer", &id), |bench| {
        bench.iter(|| layer.infer(x.view(), None, None).expect("shapes fit"))
    });
    group.bench_function(BenchmarkId::new("forward_with_tape", &id), |bench| {
        bench.iter(|| layer.forward(x.view(), None, None).expect("shapes fit"))
    });
    group.throughput(Throughput::Elements(3 * fwd_flops));
    let mut grads = layer.zeros_like();
    group.bench_function(BenchmarkId::new("forward_backward", &id), |bench| {
        bench.iter(|| {
            let (_, _, tape) = layer.forward(x.view(), None, None).expect("shapes fit");
            layer
                .backward(&tape, d_out.view(), None, &mut grads)
                .expect("shapes fit")
        })
    });
    group.finish();
}

criterion_group!(benches, lstm);
criterion_main!(benches);
