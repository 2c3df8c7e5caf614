//! Times the reference shapes of the performance issue and prints one parseable line per case.
//!
//! ```text
//! cargo run --release --example bench -- [--only lstm[,gru,...]] [--shape S2[,S3]] [--reps N]
//!                                          [--threads N] [--isa NAME] [--input-grad] [--batch N]
//! ```
//!
//! `--only` picks networks (`lstm`, `gru`, `rnn`, `bilstm2`, `gemm`), `--shape` picks shapes
//! (`S1`, `S2`, `S3`); both default to everything.
//!
//! Cases (f32, time-major, single layer, unidirectional unless noted):
//!
//! | shape | batch | seq | input | hidden | mode |
//! |---|---|---|---|---|---|
//! | S1 | 1 | 100 | 32 | 64 | `infer` (no tape); `stream`: the same 100 steps one at a time through [`recurrent::Stream`] |
//! | S2 | 32 | 100 | 128 | 256 | `fwd+bwd` (forward with tape + backward to all parameter gradients) |
//! | S3 | 64 | 50 | 512 | 512 | `fwd+bwd` |
//!
//! for `lstm`, `gru` and `rnn` (tanh), plus `bilstm2` (2 layers, bidirectional LSTM) at S2, and a
//! GEMM reference `gemm 2048` (`recurrent::runtime::matmul`, the GEMM the crate uses, 2048×2048 f32), the "GEMM peak"
//! the layer throughput is compared with. Output, one line per case:
//!
//! ```text
//! lstm S2 fwd+bwd median_ms=12.345 min_ms=11.900 gflops=34.5
//! gemm 2048 median_ms=200.000 min_ms=198.000 gflops=85.9
//! ```
//!
//! Lines starting with `#` carry extra information (settings, repetitions, CPU); parsers skip them.
//! `scripts/bench_pytorch.py` prints the same lines for PyTorch and `scripts/compare_bench.py`
//! puts both side by side.
//!
//! FLOPs count only the matrix products: `2·T·B·G·H·(I+H)` per layer and direction forward (G = 4
//! LSTM, 3 GRU, 1 RNN), twice that for backward, so `fwd+bwd` counts 3× the forward. `gflops` is
//! computed from the median time.
//!
//! `fwd+bwd` calls `forward` then `backward_params`: every parameter gradient and the initial-state
//! gradients, but not the gradient of the input data — what PyTorch computes for an input that
//! does not require grad (`scripts/bench_pytorch.py`'s default). `--input-grad` calls `backward`
//! instead, which also forms `dX` (as `bench_pytorch.py --input-grad`).
//! `--batch N` runs every shape with `N` sequences (for the scaling model of docs/PERFORMANCE.md:
//! the time of one shard is the time of its batch on one thread).
//!
//! Inputs, output gradients and weights are seeded random numbers made before timing. Each case
//! runs a warm-up (at least one call and at least ~0.3 s), then the timed repetitions. `--reps N`
//! fixes the repetitions for every case; by default each case gets about 6 s (`BUDGET_S`; at
//! least 5 and at most 2000 repetitions, estimated from the warm-up), so the whole run takes one to
//! two minutes on a 2-core machine. `--warmup N` runs exactly `N` warm-up calls instead (with
//! `--reps`, every count is then fixed: what `valgrind --tool=callgrind` needs to compare two
//! builds instruction for instruction).
//!
//! `--threads N` calls [`recurrent::runtime::set_num_threads`] (batch shards, the two directions
//! of a bidirectional layer and big products spread over that many threads); `0` or no flag means
//! all cores, the crate's default. The GEMM reference runs with the same setting. `scripts/bench_pytorch.py` defaults
//! to 1 thread, so pass it the count explicitly (`scripts/compare_bench.py` does).
//!
//! `--isa NAME` (`avx512`, `avx2`, `portable`, or `native` for the best this CPU has) calls
//! [`recurrent::runtime::set_isa`]; an unknown name or one this CPU cannot run exits with code 2.
//! Without it the `RECURRENT_ISA` environment variable, else the best path, decides. The header
//! line `# isa=… threads=…` says what is in use.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ndarray::{Array2, Array3};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use recurrent::{cell::CellInit, Params, RecurrentStack, StackConfig};

/// Default time spent in the timed repetitions of one case, in seconds.
const BUDGET_S: f64 = 6.0;
/// Minimum warm-up time per case, in seconds.
const WARMUP_S: f64 = 0.3;

/// One reference shape.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    batch: usize,
    seq: usize,
    input: usize,
    hidden: usize,
    /// `true`: forward + backward; `false`: inference only.
    train: bool,
}

const S1: Shape = Shape {
    name: "S1",
    batch: 1,
    seq: 100,
    input: 32,
    hidden: 64,
    train: false,
};
const S2: Shape = Shape {
    name: "S2",
    batch: 32,
    seq: 100,
    input: 128,
    hidden: 256,
    train: true,
};
const S3: Shape = Shape {
    name: "S3",
    batch: 64,
    seq: 50,
    input: 512,
    hidden: 512,
    train: true,
};

struct Args {
    only: Option<Vec<String>>,
    shapes: Option<Vec<String>>,
    reps: Option<usize>,
    threads: usize,
    /// `--isa` as given (`None`: `RECURRENT_ISA` or the best path).
    isa: Option<String>,
    input_grad: bool,
    /// `--batch N`: every shape with `N` sequences instead of its own batch size.
    batch: Option<usize>,
    /// `--warmup N`: exactly `N` warm-up calls instead of ~0.3 s of them.
    warmup: Option<u32>,
}

fn parse_args() -> Args {
    let mut args = Args {
        only: None,
        shapes: None,
        reps: None,
        threads: 0,
        isa: None,
        input_grad: false,
        batch: None,
        warmup: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--only" => {
                args.only = Some(value().split(',').map(|s| s.trim().to_string()).collect());
            }
            "--shape" => {
                args.shapes = Some(value().split(',').map(|s| s.trim().to_string()).collect());
            }
            "--reps" => {
                let v = value();
                let n = v
                    .parse()
                    .unwrap_or_else(|_| usage(&format!("--reps {v}: not a count")));
                if n == 0 {
                    usage("--reps must be at least 1");
                }
                args.reps = Some(n);
            }
            "--warmup" => {
                let v = value();
                args.warmup = Some(
                    v.parse()
                        .unwrap_or_else(|_| usage(&format!("--warmup {v}: not a count"))),
                );
            }
            "--threads" => {
                let v = value();
                args.threads = v.parse().unwrap_or_else(|_| {
                    usage(&format!("--threads {v}: not a count (0 = all cores)"))
                });
            }
            "--isa" => args.isa = Some(value()),
            "--input-grad" => args.input_grad = true,
            "--batch" => {
                let v = value();
                let n: usize = v
                    .parse()
                    .unwrap_or_else(|_| usage(&format!("--batch {v}: not a count")));
                if n == 0 {
                    usage("--batch must be at least 1");
                }
                args.batch = Some(n);
            }
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    args
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("error: {msg}");
    }
    eprintln!(
        "usage: cargo run --release --example bench -- [--only lstm,gru,rnn,bilstm2,gemm] \
         [--shape S1,S2,S3] [--reps N] [--threads N (0 = all cores)] \
         [--isa avx512|avx2|portable|native] [--input-grad] [--batch N] [--warmup N]"
    );
    std::process::exit(if msg.is_empty() { 0 } else { 2 });
}

/// `--warmup N`, set once by `main`.
static WARMUP_CALLS: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();

/// Runs `f` for the warm-up, then `reps` (or a budget-derived count of) timed repetitions.
/// Returns the sorted times in milliseconds.
fn time_it(reps: Option<usize>, mut f: impl FnMut()) -> Vec<f64> {
    let start = Instant::now();
    let mut warm = 0u32;
    match WARMUP_CALLS.get().copied().flatten() {
        Some(n) => {
            for _ in 0..n {
                f();
            }
            warm = n.max(1);
        }
        None => {
            while warm == 0 || start.elapsed() < Duration::from_secs_f64(WARMUP_S) {
                f();
                warm += 1;
            }
        }
    }
    let per_call = start.elapsed().as_secs_f64() / f64::from(warm);
    let reps = reps.unwrap_or_else(|| ((BUDGET_S / per_call).ceil() as usize).clamp(5, 2000));
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    }
}

fn report(label: &str, times: &[f64], flops: f64) {
    let med = median(times);
    println!(
        "{label} median_ms={med:.3} min_ms={:.3} gflops={:.2}",
        times[0],
        flops / (med * 1e-3) / 1e9
    );
    println!("# {label}: reps={}", times.len());
}

fn randn3(rng: &mut StdRng, dim: (usize, usize, usize)) -> Array3<f32> {
    Array3::from_shape_simple_fn(dim, || StandardNormal.sample(rng))
}

/// Forward FLOPs of a network: per layer and direction `2·T·B·G·H·(I+H)`.
fn forward_flops(gates: usize, sh: Shape, layers: usize, dirs: usize) -> f64 {
    let (t, b, h) = (sh.seq as f64, sh.batch as f64, sh.hidden as f64);
    (0..layers)
        .map(|l| {
            let i = if l == 0 { sh.input } else { dirs * sh.hidden } as f64;
            dirs as f64 * 2.0 * t * b * gates as f64 * h * (i + h)
        })
        .sum()
}

/// Builds the network and data for one case, times it and prints its line.
fn bench_case<C: CellInit<f32>>(
    name: &str,
    gates: usize,
    sh: Shape,
    layers: usize,
    bidirectional: bool,
    reps: Option<usize>,
    input_grad: bool,
) {
    let mut rng = StdRng::seed_from_u64(0);
    let cfg = StackConfig::new(sh.input, sh.hidden)
        .with_num_layers(layers)
        .with_bidirectional(bidirectional);
    let net = RecurrentStack::<C>::new::<f32, _>(cfg, &mut rng).expect("valid config");
    let dirs = cfg.num_directions();
    let x = randn3(&mut rng, (sh.seq, sh.batch, sh.input));
    let fwd = forward_flops(gates, sh, layers, dirs);
    if sh.train {
        let d_out = randn3(&mut rng, (sh.seq, sh.batch, dirs * sh.hidden));
        // Gradients accumulate across repetitions (backward adds), as PyTorch's `.grad` does.
        let mut grads = net.zeros_like();
        let times = time_it(reps, || {
            let (out, _, tape) = net.forward(x.view(), None, None).expect("shapes fit");
            black_box(&out);
            if input_grad {
                let r = net.backward(&tape, d_out.view(), None, &mut grads);
                black_box(r.expect("shapes fit"));
            } else {
                let r = net.backward_params(&tape, d_out.view(), None, &mut grads);
                black_box(r.expect("shapes fit"));
            }
        });
        report(&format!("{name} {} fwd+bwd", sh.name), &times, 3.0 * fwd);
    } else {
        let times = time_it(reps, || {
            black_box(net.infer(x.view(), None, None).expect("shapes fit"));
        });
        report(&format!("{name} {} infer", sh.name), &times, fwd);
        if bidirectional || layers != 1 {
            return;
        }
        // The same sequence one step at a time through a `Stream` (real-time use).
        let mut stream = net.stream(sh.batch).expect("unidirectional");
        let times = time_it(reps, || {
            stream.set_state(None).expect("zeros fit");
            for t in 0..sh.seq {
                let y = stream.step(x.index_axis(ndarray::Axis(0), t));
                black_box(y.expect("shapes fit"));
            }
        });
        report(&format!("{name} {} stream", sh.name), &times, fwd);
    }
}

fn bench_gemm(n: usize, reps: Option<usize>) {
    let mut rng = StdRng::seed_from_u64(0);
    let a = Array2::<f32>::from_shape_simple_fn((n, n), || StandardNormal.sample(&mut rng));
    let b = Array2::<f32>::from_shape_simple_fn((n, n), || StandardNormal.sample(&mut rng));
    let mut c = Array2::<f32>::zeros((n, n));
    let times = time_it(reps, || {
        recurrent::runtime::matmul(a.view(), b.view(), &mut c.view_mut(), false)
            .expect("shapes fit");
        black_box(&c);
    });
    report(&format!("gemm {n}"), &times, 2.0 * (n as f64).powi(3));
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// Applies `--isa` and returns where the path in use comes from; exits with code 2 for a name
/// that is no path or a path this CPU cannot run.
fn choose_isa(name: Option<&str>) -> String {
    use recurrent::runtime::{set_isa, Isa};
    let Some(name) = name else {
        let from_env = std::env::var("RECURRENT_ISA").is_ok_and(|v| !v.trim().is_empty());
        let source = if from_env {
            "RECURRENT_ISA"
        } else {
            "best for this cpu"
        };
        return source.to_string();
    };
    let isa = if name.trim().eq_ignore_ascii_case("native") {
        Isa::best()
    } else {
        Isa::from_name(name).unwrap_or_else(|| {
            eprintln!("error: --isa {name}: unknown; use avx512, avx2, portable or native");
            std::process::exit(2);
        })
    };
    if let Err(e) = set_isa(isa) {
        eprintln!("error: --isa {name}: {e}");
        std::process::exit(2);
    }
    format!("--isa {}", name.trim())
}

fn main() {
    let args = parse_args();
    WARMUP_CALLS.get_or_init(|| args.warmup);
    let isa_source = choose_isa(args.isa.as_deref());
    recurrent::runtime::set_num_threads(args.threads);
    let threads = recurrent::runtime::num_threads();
    let listed = |list: &Option<Vec<String>>, name: &str| {
        list.as_ref().is_some_and(|l| l.iter().any(|n| n == name))
    };
    let wanted = |name: &str, shape: &str| {
        (args.only.is_none() || listed(&args.only, name))
            && (args.shapes.is_none() || listed(&args.shapes, shape))
    };
    println!("# recurrent examples/bench (f32, time-major)");
    println!("# cpu: {}", cpu_model());
    println!(
        "# isa={} ({isa_source}; best={}) threads={threads} ({})",
        recurrent::runtime::isa(),
        recurrent::runtime::Isa::best(),
        if args.threads == 0 {
            "all cores"
        } else {
            "--threads"
        },
    );
    println!("# input_grad={}", args.input_grad);
    match args.reps {
        Some(n) => println!("# reps={n} per case"),
        None => println!("# reps: about {BUDGET_S} s of repetitions per case (5..=2000)"),
    }
    type L = recurrent::LstmCell<f32>;
    type G = recurrent::GruCell<f32>;
    type R = recurrent::RnnCell<f32>;
    let with_batch = |sh: Shape| Shape {
        batch: args.batch.unwrap_or(sh.batch),
        ..sh
    };
    for sh in [S1, S2, S3].map(with_batch) {
        if wanted("lstm", sh.name) {
            bench_case::<L>("lstm", 4, sh, 1, false, args.reps, args.input_grad);
        }
        if wanted("gru", sh.name) {
            bench_case::<G>("gru", 3, sh, 1, false, args.reps, args.input_grad);
        }
        if wanted("rnn", sh.name) {
            bench_case::<R>("rnn", 1, sh, 1, false, args.reps, args.input_grad);
        }
    }
    if wanted("bilstm2", S2.name) {
        bench_case::<L>(
            "bilstm2",
            4,
            with_batch(S2),
            2,
            true,
            args.reps,
            args.input_grad,
        );
    }
    // The GEMM reference has no shape: `--shape` alone skips it, `--only gemm` keeps it.
    if listed(&args.only, "gemm") || (args.only.is_none() && args.shapes.is_none()) {
        bench_gemm(2048, args.reps);
    }
}
