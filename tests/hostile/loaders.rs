//! Every loader of the crate, fed one file's bytes: shared by the stable mutation test
//! (`tests/it/mutation.rs`) and the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`), which include this
//! file with `#[path]`.
//!
//! A loader may return any error; it must not panic, abort or hang, and a model it returns must
//! run. Each target writes the bytes to a file (the loaders read paths, as users call them) and
//! loads it in both float types.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3};
use rand::rngs::StdRng;
use rand::SeedableRng;
use recurrent::checkpoint::{
    load_checkpoint, load_checkpoint_with, save_checkpoint, save_checkpoint_with, UserState,
};
use recurrent::optim::{
    AdamConfig, CosineAnnealingLr, LinearWarmup, LrSchedule, OptimizerState, SequentialLr,
    SgdConfig,
};
use recurrent::{io, Embedding, Float, Gru, Linear, Lstm, Params, Rnn, StackConfig};

/// What a fuzz input is loaded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `Lstm::load_safetensors` (top level and under `encoder.`), then a forward pass.
    Lstm,
    /// `Gru::load_safetensors`, then a forward pass.
    Gru,
    /// `Rnn::load_safetensors`, then a forward pass.
    Rnn,
    /// `Linear::load_safetensors`, then a forward pass.
    Linear,
    /// `io::read` and `io::load` into a small `(Lstm, Linear)` model.
    Io,
    /// `load_checkpoint` into a `(Lstm, Linear)` model and Adam, then a step.
    Checkpoint,
    /// `OptimizerState::from_flat` from a file's tensors and metadata, loaded into SGD and Adam,
    /// then a step.
    OptimState,
    /// `load_checkpoint_with` into a derived [`Tagger`] (an `Embedding`, a projected LSTM, a
    /// head) and Adam, with a `UserState`; a schedule advanced to the saved step; one step; then
    /// save → load must give back the same state bit for bit.
    Resume,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 8] = [
        Target::Lstm,
        Target::Gru,
        Target::Rnn,
        Target::Linear,
        Target::Io,
        Target::Checkpoint,
        Target::OptimState,
        Target::Resume,
    ];

    /// The target's name (the cargo-fuzz target and seed directory).
    pub fn name(self) -> &'static str {
        match self {
            Target::Lstm => "lstm",
            Target::Gru => "gru",
            Target::Rnn => "rnn",
            Target::Linear => "linear",
            Target::Io => "io",
            Target::Checkpoint => "checkpoint",
            Target::OptimState => "optim_state",
            Target::Resume => "resume",
        }
    }
}

/// A file for this process and target to write inputs to: in `/dev/shm` when there is one (no
/// disk traffic), else in the temporary directory.
pub fn scratch_path(target: Target) -> PathBuf {
    let dir = Path::new("/dev/shm");
    let dir = if dir.is_dir() {
        dir.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    dir.join(format!(
        "recurrent-fuzz-{}-{}.safetensors",
        std::process::id(),
        target.name()
    ))
}

/// Writes `bytes` to `path` and runs `target`'s loaders on it.
pub fn run(target: Target, path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("writing the scratch file");
    run_file(target, path);
}

/// Runs `target`'s loaders on the file at `path`, in `f32` and `f64`.
pub fn run_file(target: Target, path: &Path) {
    run_typed::<f32>(target, path);
    run_typed::<f64>(target, path);
}

/// The model of the `Io`, `Checkpoint` and `OptimState` targets: an LSTM (3 → 4) and a head
/// (4 → 2), keys `0.weight_ih_l0`, …, `1.weight`, `1.bias`.
pub fn model<F: Float>() -> (Lstm<F>, Linear<F>) {
    let mut rng = StdRng::seed_from_u64(7);
    (
        Lstm::new(StackConfig::new(3, 4), &mut rng).expect("a small LSTM"),
        Linear::new(4, 2, &mut rng).expect("a small head"),
    )
}

/// The model of the `Resume` target, as a user derives it: keys `embed.weight`,
/// `encoder.weight_ih_l0`, …, `encoder.weight_hr_l0`, `head.weight`, `head.bias`.
#[derive(Clone, Debug, PartialEq, Params)]
pub struct Tagger<F: Float> {
    /// Ids 0..5 → 3 features, padding id 0.
    pub embed: Embedding<F>,
    /// An LSTM 3 → 4, projected to 2.
    pub encoder: Lstm<F>,
    /// 2 → 2.
    pub head: Linear<F>,
}

/// A fresh [`Tagger`].
pub fn tagger<F: Float>() -> Tagger<F> {
    let mut rng = StdRng::seed_from_u64(9);
    Tagger {
        embed: Embedding::new(5, 3, Some(0), &mut rng).expect("a small embedding"),
        encoder: Lstm::new(StackConfig::new(3, 4).with_proj_size(2), &mut rng)
            .expect("a small projected LSTM"),
        head: Linear::new(2, 2, &mut rng).expect("a small head"),
    }
}

/// The schedule a resumed run puts at its saved step: a warm-up, then cosine annealing.
pub fn schedule() -> SequentialLr {
    SequentialLr::new(
        vec![
            Box::new(LinearWarmup::new(0.01, 0.1, 3).expect("a warm-up")),
            Box::new(CosineAnnealingLr::new(0.01, 10, 0.001).expect("a cosine")),
        ],
        vec![3],
    )
    .expect("a sequence")
}

/// Every weight's bits (NaN compares equal to itself here, unlike `PartialEq`).
fn weight_bits<F: Float, P: Params<F>>(p: &P) -> Vec<u64> {
    p.arrays()
        .iter()
        .flat_map(|a| a.iter().map(|v| v.as_f64().to_bits()).collect::<Vec<_>>())
        .collect()
}

/// The resume path on a loaded checkpoint: run the model, advance a schedule to the saved step
/// (must return), apply it, take a step (may be refused), save, load back: the same weights,
/// optimizer state, step and user state.
fn resume<F: Float>(path: &Path) {
    let mut m = tagger::<F>();
    let mut opt = AdamConfig::new(F::from_f64(0.01)).build().expect("Adam");
    let Ok((step, user)) = load_checkpoint_with(path, &mut m, &mut opt) else {
        return;
    };
    let ids = Array2::<usize>::from_shape_fn((2, 2), |(t, b)| (t + 2 * b) % 5);
    let x = m
        .embed
        .forward(ids.view())
        .expect("the loaded embedding runs");
    let (h, _) = m
        .encoder
        .infer(x.view(), None, None)
        .expect("the loaded LSTM runs");
    m.head.infer(h.view()).expect("the loaded head runs");
    let mut sched = schedule();
    sched
        .advance_to(step)
        .expect("the crate's schedules reach any epoch");
    let _ = opt.apply_schedule(&sched);
    let mut g = m.zeros_like();
    g.arrays_mut()
        .iter_mut()
        .for_each(|a| a.fill(F::from_f64(0.5)));
    let _ = opt.step(&mut m, &g);
    let again = path.with_extension("resaved");
    save_checkpoint_with(&again, &m, &opt, step, &user).expect("a reached state saves");
    let mut back = tagger::<F>();
    let mut opt2 = AdamConfig::new(F::from_f64(0.01)).build().expect("Adam");
    let (step2, user2) =
        load_checkpoint_with(&again, &mut back, &mut opt2).expect("the crate reads what it wrote");
    assert_eq!(step2, step);
    assert_eq!(weight_bits(&back), weight_bits(&m));
    assert_eq!(format!("{:?}", opt2.state()), format!("{:?}", opt.state()));
    assert_eq!(format!("{user2:?}"), format!("{user:?}"));
    let _ = std::fs::remove_file(&again);
}

fn run_typed<F: Float>(target: Target, path: &Path) {
    match target {
        Target::Lstm => {
            for prefix in ["", "encoder."] {
                if let Ok(net) = Lstm::<F>::load_safetensors(path, prefix) {
                    run_stack(
                        |x| net.infer(x, None, None).map(drop),
                        net.config().input_size,
                    );
                }
            }
        }
        Target::Gru => {
            if let Ok(net) = Gru::<F>::load_safetensors(path, "") {
                run_stack(
                    |x| net.infer(x, None, None).map(drop),
                    net.config().input_size,
                );
            }
        }
        Target::Rnn => {
            if let Ok(net) = Rnn::<F>::load_safetensors(path, "") {
                run_stack(
                    |x| net.infer(x, None, None).map(drop),
                    net.config().input_size,
                );
            }
        }
        Target::Linear => {
            if let Ok(head) = Linear::<F>::load_safetensors(path, "") {
                let x = Array2::<F>::from_elem((2, head.in_features()), F::from_f64(0.5));
                head.infer(x.view()).expect("a loaded Linear runs");
            }
        }
        Target::Io => {
            let _ = io::read::<F>(path);
            let mut m = model::<F>();
            if io::load(&mut m, path, "").is_ok() {
                run_model(&m);
            }
        }
        Target::Checkpoint => {
            let mut m = model::<F>();
            let mut opt = AdamConfig::new(F::from_f64(0.01)).build().expect("Adam");
            if load_checkpoint(path, &mut m, &mut opt).is_ok() {
                run_model(&m);
                let g = m.zeros_like();
                // A loaded state may make the step non-finite only through finite-but-huge
                // values; that is an error, never a panic.
                let _ = opt.step(&mut m, &g);
            }
        }
        Target::Resume => resume::<F>(path),
        Target::OptimState => {
            let Ok(file) = io::read::<F>(path) else {
                return;
            };
            let arrays = file.tensors.into_iter().collect();
            let Ok(state) = OptimizerState::<F>::from_flat(arrays, file.metadata) else {
                return;
            };
            let mut m = model::<F>();
            let g = m.zeros_like();
            let mut sgd = SgdConfig::new(F::from_f64(0.01))
                .with_momentum(F::from_f64(0.9))
                .build()
                .expect("SGD");
            if sgd.load_state(&m, &state).is_ok() {
                let _ = sgd.step(&mut m, &g);
            }
            let mut adam = AdamConfig::new(F::from_f64(0.01)).build().expect("Adam");
            if adam.load_state(&m, &state).is_ok() {
                let _ = adam.step(&mut m, &g);
            }
        }
    }
}

/// Runs a loaded stack on a small input `(T = 2, B = 2, input_size)`.
fn run_stack<F: Float>(
    infer: impl Fn(ndarray::ArrayView3<'_, F>) -> recurrent::Result<()>,
    i: usize,
) {
    let x = Array3::<F>::from_elem((2, 2, i), F::from_f64(0.25));
    infer(x.view()).expect("a loaded network runs");
}

fn run_model<F: Float>(m: &(Lstm<F>, Linear<F>)) {
    let x = Array3::<F>::from_elem((2, 2, 3), F::from_f64(0.25));
    let (h, _) =
        m.0.infer(x.view(), None, None)
            .expect("the loaded LSTM runs");
    m.1.infer(h.view()).expect("the loaded head runs");
}

/// Crate-made seed files for `target`, as `(name, bytes)`: models saved by the crate, a
/// checkpoint and an optimizer state, written under `dir` first.
pub fn crate_seeds(target: Target, dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::create_dir_all(dir).expect("seed directory");
    let mut rng = StdRng::seed_from_u64(11);
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let mut path = |name: &str| {
        let name = format!("{}-{name}.safetensors", target.name());
        let p = dir.join(&name);
        files.push((name, p.clone()));
        p
    };
    let stack = |n: usize, bi: bool| {
        StackConfig::new(3, 2)
            .with_num_layers(n)
            .with_bidirectional(bi)
    };
    match target {
        Target::Lstm => {
            let net = Lstm::<f32>::new(stack(2, true), &mut rng).unwrap();
            net.save_safetensors(path("bi2"), "").unwrap();
            net.save_safetensors(path("encoder"), "encoder.").unwrap();
            let net = Lstm::<f64>::new(stack(1, false).with_bias(false), &mut rng).unwrap();
            net.save_safetensors(path("nobias"), "").unwrap();
            // With a projection (`weight_hr_l{k}`, proj_size 1 of hidden 2).
            let net = Lstm::<f32>::new(stack(2, true).with_proj_size(1), &mut rng).unwrap();
            net.save_safetensors(path("proj"), "").unwrap();
        }
        Target::Gru => {
            let net = Gru::<f32>::new(stack(2, true), &mut rng).unwrap();
            net.save_safetensors(path("bi2"), "").unwrap();
            let net = Gru::<f64>::new(stack(1, false), &mut rng).unwrap();
            net.save_safetensors(path("uni1"), "").unwrap();
        }
        Target::Rnn => {
            let net = Rnn::<f32>::new(stack(2, true), &mut rng).unwrap();
            net.save_safetensors(path("bi2"), "").unwrap();
            let net = Rnn::<f64>::new(stack(3, false), &mut rng).unwrap();
            net.save_safetensors(path("uni3"), "").unwrap();
        }
        Target::Linear => {
            Linear::<f32>::new(3, 2, &mut rng)
                .unwrap()
                .save_safetensors(path("linear"), "")
                .unwrap();
            Linear::<f64>::with_bias(2, 3, false, &mut rng)
                .unwrap()
                .save_safetensors(path("nobias"), "")
                .unwrap();
        }
        Target::Io => {
            io::save(&model::<f32>(), path("model"), "").unwrap();
        }
        Target::Resume => {
            let mut m = tagger::<f32>();
            let mut g = m.zeros_like();
            g.arrays_mut().iter_mut().for_each(|a| a.fill(0.1));
            let mut adam = AdamConfig::new(0.01).build().unwrap();
            adam.step(&mut m, &g).unwrap();
            adam.step(&mut m, &g).unwrap();
            let mut user = UserState::default();
            user.arrays
                .insert("ema".into(), ndarray::ArrayD::from_elem(vec![2, 1], 0.25));
            user.arrays
                .insert("scalar".into(), ndarray::ArrayD::from_elem(vec![], -1.5));
            user.metadata.insert("epoch".into(), "7".into());
            save_checkpoint_with(path("tagger"), &m, &adam, 7, &user).unwrap();
            // The counters at the bound a checkpoint holds exactly.
            save_checkpoint_with(path("tagger-late"), &m, &adam, (1 << 53) - 1, &user).unwrap();
        }
        Target::Checkpoint | Target::OptimState => {
            let mut m = model::<f32>();
            let mut g = m.zeros_like();
            g.arrays_mut().iter_mut().for_each(|a| a.fill(0.1));
            let mut adam = AdamConfig::new(0.01).build().unwrap();
            adam.step(&mut m, &g).unwrap();
            if target == Target::Checkpoint {
                save_checkpoint(path("adam"), &m, &adam, 1).unwrap();
            } else {
                let mut sgd = SgdConfig::new(0.01).with_momentum(0.9).build().unwrap();
                sgd.step(&mut m, &g).unwrap();
                for (name, state) in [("adam", adam.state()), ("sgd", sgd.state())] {
                    let arrays: Vec<_> = state
                        .flat_arrays()
                        .into_iter()
                        .map(|(n, a)| (n, a.to_owned()))
                        .collect();
                    let meta = state.flat_metadata().into_iter().collect();
                    io::write(path(name), &arrays, Some(meta)).unwrap();
                }
            }
        }
    }
    files
        .into_iter()
        .map(|(name, p)| (name, std::fs::read(p).expect("reading a seed back")))
        .collect()
}

/// The PyTorch-made files that seed `target`, as paths under `tests/`: parity fixtures
/// (`scripts/make_fixtures.py`) and the seeds of `scripts/make_hostile_seeds.py` (a `Linear` in
/// f16, an `LSTM` + `Linear` model in bf16 with an int64 tensor, an LSTM under `encoder.`).
/// PyTorch has no format for this crate's checkpoints and optimizer states: those targets are
/// seeded by crate-made files only, plus one PyTorch file each for the parser.
pub fn pytorch_seeds(target: Target) -> &'static [&'static str] {
    match target {
        Target::Lstm => &[
            "fixtures/lstm_bi_2l_packed_f32.safetensors",
            "fixtures/lstm_uni_1l_full_f64.safetensors",
            "hostile/seeds/encoder_lstm_f32.safetensors",
            "fixtures/lstmp_bi_2l_packed_f32.safetensors",
        ],
        Target::Gru => &[
            "fixtures/gru_bi_2l_packed_nobias_f32.safetensors",
            "fixtures/gru_uni_3l_full_f64.safetensors",
        ],
        Target::Rnn => &[
            "fixtures/rnn_tanh_bi_2l_packed_f32.safetensors",
            "fixtures/rnn_relu_uni_1l_full_f64.safetensors",
        ],
        Target::Linear => &["hostile/seeds/linear_f16.safetensors"],
        Target::Io => &[
            "hostile/seeds/model_bf16.safetensors",
            "fixtures/clip_grad_norm.safetensors",
        ],
        Target::Checkpoint | Target::OptimState | Target::Resume => {
            &["fixtures/optim_adam_amsgrad.safetensors"]
        }
    }
}
