//! Hostile input, round 2 (issue 22): checkpoints' counters, schedules, zero-size arrays with
//! astronomically long axes, files of 200,000 entries, repeated names, and the round-trip law:
//! whatever state `step` reaches, `save_checkpoint` then `load_checkpoint` gives back bit for bit.

use std::collections::HashMap;
use std::path::PathBuf;

use ndarray::{Array2, ArrayD, ArrayView2, ArrayView3, ArrayViewD, ArrayViewMutD, IxDyn};
use rand::{Rng, RngExt};
use recurrent::batch::{pad_sequences, Minibatches};
use recurrent::checkpoint::{
    load_checkpoint, load_checkpoint_with, save_checkpoint, save_checkpoint_with, UserState,
};
use recurrent::io::WeightFileProblem;
use recurrent::ops::{argmax, log_softmax, softmax};
use recurrent::optim::{
    AdagradConfig, AdamConfig, AdamWConfig, CosineAnnealingLr, ExponentialLr, LinearWarmup,
    LrSchedule, Optimizer, OptimizerState, ReduceLrOnPlateauConfig, RmsPropConfig, SequentialLr,
    SgdConfig, StepLr, UpdateRule, MAX_STEPS,
};
use recurrent::{io, Embedding, Error, Float, Linear, Lstm, Params, StackConfig};

use crate::common::*;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("recurrent-hostile-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The model of the round-trip law: an embedding, a projected LSTM and any number of heads
/// (zero included), as a user derives it.
#[derive(Clone, Debug, PartialEq, Params)]
struct Tagger<F: Float> {
    embed: Embedding<F>,
    encoder: Lstm<F>,
    heads: Vec<Linear<F>>,
}

/// A model without a single array.
#[derive(Clone, Debug, PartialEq, Params)]
struct Empty<F: Float> {
    heads: Vec<Linear<F>>,
}

fn tagger<F: Float>(seed: u64, proj: usize, heads: usize) -> Tagger<F> {
    let mut r = rng(seed);
    let out = if proj > 0 { proj } else { 4 };
    Tagger {
        embed: Embedding::new(5, 3, Some(0), &mut r).unwrap(),
        encoder: Lstm::new(StackConfig::new(3, 4).with_proj_size(proj), &mut r).unwrap(),
        heads: (0..heads)
            .map(|_| Linear::new(out, out, &mut r).unwrap())
            .collect(),
    }
}

/// Gradients of any model: random, finite, the model's own type.
fn random_grads<F: Float, P: Params<F>>(model: &P, r: &mut impl Rng) -> P {
    let mut g = model.zeros_like();
    for mut a in g.arrays_mut() {
        a.mapv_inplace(|_| F::from_f64(r.random_range(-1.0..1.0)));
    }
    g
}

/// Every value's bits, in order: equality of this is "bit for bit".
fn bits<F: Float, P: Params<F>>(p: &P) -> Vec<u64> {
    p.arrays()
        .iter()
        .flat_map(|a| a.iter().map(|v| v.as_f64().to_bits()).collect::<Vec<_>>())
        .collect()
}

fn state_bits<F: Float>(s: &OptimizerState<F>) -> String {
    // Debug prints floats exactly (shortest round-trip form), signs of zero included.
    format!("{s:?}")
}

/// Rewrites a checkpoint's metadata and tensors.
fn edit_file(
    path: &std::path::Path,
    edit: impl FnOnce(&mut HashMap<String, String>, &mut Vec<(String, ArrayD<f32>)>),
) {
    let file = io::read::<f32>(path).unwrap();
    let mut meta = file.metadata;
    let mut tensors: Vec<(String, ArrayD<f32>)> = file.tensors.into_iter().collect();
    edit(&mut meta, &mut tensors);
    io::write(path, &tensors, Some(meta)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// 1. Time bounds: files of 200,000 entries load or are refused in linear time.
// ---------------------------------------------------------------------------------------------

/// A checkpoint whose optimizer state lists one parameter but carries 200,000 empty tensors for
/// it (issue 22, defect 1: the per-array duplicate scan made this quadratic, 40,000 entries took
/// 5 s and 160,000 never finished). Refused; also 200,000 scalars, and 200,000 stray tensors
/// beside a model for the strict model loaders. Linear by construction (sets, not scans); the
/// test runs the large case to completion rather than timing it.
#[test]
fn files_with_200k_entries_load_or_are_refused_in_linear_time() {
    const N: usize = 200_000;
    let dir = tmp("200k");
    let path = dir.join("ckpt.safetensors");
    let mut model = Linear::<f32>::from_weights(Array2::from_elem((1, 1), 0.5), None).unwrap();
    let mut opt = AdamConfig::new(1e-3).build().unwrap();
    let g = model.zeros_like();
    opt.step(&mut model, &g).unwrap();
    save_checkpoint(&path, &model, &opt, 1).unwrap();
    let empty = ArrayD::<f32>::zeros(IxDyn(&[0]));

    // 200,000 empty arrays under the one parameter.
    edit_file(&path, |_, tensors| {
        tensors.extend((0..N).map(|i| (format!("optim.weight.e{i}"), empty.clone())));
    });
    let mut fresh = AdamConfig::new(1e-3).build().unwrap();
    let e = load_checkpoint(&path, &mut model.clone(), &mut fresh).unwrap_err();
    assert!(
        e.to_string().contains("does not use") && e.to_string().contains("more"),
        "{e}"
    );
    // And through `from_flat` directly, with a duplicate at the very end.
    let file = io::read::<f32>(&path).unwrap();
    let mut arrays: Vec<(String, ArrayD<f32>)> = file
        .tensors
        .iter()
        .filter_map(|(k, a)| k.strip_prefix("optim.").map(|n| (n.to_string(), a.clone())))
        .collect();
    let meta: Vec<(String, String)> = file
        .metadata
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("optim.").map(|n| (n.to_string(), v.clone())))
        .collect();
    let state = OptimizerState::from_flat(arrays.clone(), meta.clone()).unwrap();
    assert_eq!(state.slots[0].1.arrays.len(), N + 2);
    arrays.push(("weight.e7".to_string(), empty.clone()));
    let e = OptimizerState::from_flat(arrays, meta).unwrap_err();
    assert!(e.to_string().contains("`weight.e7` appears twice"), "{e}");

    // 200,000 scalars.
    save_checkpoint(&path, &model, &opt, 1).unwrap();
    edit_file(&path, |meta, _| {
        meta.extend((0..N).map(|i| (format!("optim.weight.s{i}"), "1.0".to_string())));
    });
    let e = load_checkpoint(&path, &mut model.clone(), &mut fresh).unwrap_err();
    assert!(e.to_string().contains("does not use"), "{e}");

    // 200,000 stray tensors beside a model: every strict loader refuses, the PyTorch layer
    // loader ignores them.
    let lstm = Lstm::<f32>::new(StackConfig::new(2, 3), &mut rng(1)).unwrap();
    let mut arrays = io::prefixed(&lstm, "");
    arrays.extend((0..N).map(|i| (format!("stray.{i}"), empty.clone())));
    io::write(&path, &arrays, None).unwrap();
    assert_eq!(Lstm::<f32>::load_safetensors(&path, "").unwrap(), lstm);
    let e = io::load(&mut lstm.clone(), &path, "").unwrap_err();
    assert!(
        matches!(
            &e,
            Error::WeightFile {
                problem: WeightFileProblem::Unexpected { .. },
                ..
            }
        ),
        "{e:?}"
    );
    assert!(load_checkpoint(&path, &mut model.clone(), &mut fresh).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// 2. Schedules reach any epoch at once.
// ---------------------------------------------------------------------------------------------

fn schedules() -> Vec<(&'static str, Box<dyn LrSchedule + Send + Sync>)> {
    let seq = || -> Box<dyn LrSchedule + Send + Sync> {
        Box::new(
            SequentialLr::new(
                vec![
                    Box::new(LinearWarmup::new(0.1, 0.25, 4).unwrap()),
                    Box::new(CosineAnnealingLr::new(0.1, 7, 0.01).unwrap()),
                    Box::new(StepLr::new(0.05, 3, 0.5).unwrap()),
                ],
                vec![5, 12],
            )
            .unwrap(),
        )
    };
    vec![
        ("step", Box::new(StepLr::new(0.1, 3, 0.5).unwrap())),
        (
            "exponential",
            Box::new(ExponentialLr::new(0.1, 0.9).unwrap()),
        ),
        (
            "cosine",
            Box::new(CosineAnnealingLr::new(0.1, 10, 0.0).unwrap()),
        ),
        ("warmup", Box::new(LinearWarmup::new(0.1, 0.1, 5).unwrap())),
        (
            "plateau",
            Box::new(ReduceLrOnPlateauConfig::new(0.1).build().unwrap()),
        ),
        ("sequential", seq()),
    ]
}

/// `advance_to(u64::MAX)` returns at once for every schedule (issue 22, defect 2: `SequentialLr`
/// stepped one epoch at a time, for ever), and `advance_to(e)` is `e` calls of `step` for
/// small `e`, bit for bit, from a fresh schedule and from one part-way.
#[test]
fn every_schedule_reaches_any_epoch_at_once() {
    for (name, mut s) in schedules() {
        s.advance_to(u64::MAX).unwrap();
        assert_eq!(s.epoch(), u64::MAX, "{name}");
        let _ = s.lr();
        s.step(); // stays at the last epoch, no overflow
        assert_eq!(s.epoch(), u64::MAX, "{name}");
        assert!(s.advance_to(3).is_err(), "{name}: cannot go back");
    }
    for start in [0u64, 3, 6] {
        for e in start..30 {
            let (mut stepped, mut jumped) = (schedules(), schedules());
            for ((name, a), (_, b)) in stepped.iter_mut().zip(jumped.iter_mut()) {
                for _ in 0..start {
                    a.step();
                    b.step();
                }
                for _ in start..e {
                    a.step();
                }
                b.advance_to(e).unwrap();
                assert_eq!(b.epoch(), e, "{name}");
                assert_eq!(
                    a.lr().to_bits(),
                    b.lr().to_bits(),
                    "{name} at {e} from {start}"
                );
                // And both continue alike.
                a.step();
                b.step();
                assert_eq!(a.lr().to_bits(), b.lr().to_bits(), "{name} at {e} + 1");
            }
        }
    }
}

/// A schedule of one's own, with the provided `advance_to`: bounded per call, an error past it.
#[test]
fn provided_advance_to_is_bounded() {
    #[derive(Default)]
    struct Halving {
        epoch: u64,
    }
    impl LrSchedule for Halving {
        fn lr(&self) -> f64 {
            0.5f64.powf(self.epoch as f64)
        }
        fn epoch(&self) -> u64 {
            self.epoch
        }
        fn step(&mut self) {
            self.epoch += 1;
        }
    }
    let mut s = Halving::default();
    s.advance_to(1000).unwrap();
    assert_eq!(s.epoch(), 1000);
    let e = s.advance_to(u64::MAX).unwrap_err();
    assert!(e.to_string().contains("MAX_STEPPED_EPOCHS"), "{e}");
    assert_eq!(s.epoch(), 1000, "unchanged on error");
    // Inside a SequentialLr too: refused, not a hang, and the sequence is left at a state that
    // steps on as any other.
    let seq = || {
        SequentialLr::new(
            vec![Box::new(Halving::default()), Box::new(Halving::default())],
            vec![10],
        )
        .unwrap()
    };
    let mut s = seq();
    s.advance_to(1000).unwrap();
    assert_eq!((s.epoch(), s.lr()), (1000, 0.5f64.powf(990.0)));
    // The second schedule would step 2^64 - 11 times: refused.
    let mut s = seq();
    s.advance_to(3).unwrap();
    let e = s.advance_to(u64::MAX).unwrap_err();
    assert!(e.to_string().contains("MAX_STEPPED_EPOCHS"), "{e}");
    // Stopped at the first schedule's last epoch (9), the second not started.
    let mut stepped = seq();
    for _ in 0..9 {
        stepped.step();
    }
    assert_eq!((s.epoch(), s.lr()), (stepped.epoch(), stepped.lr()));
    s.step();
    stepped.step();
    assert_eq!((s.epoch(), s.lr()), (10, 1.0));
    assert_eq!(stepped.lr(), 1.0);
    // Refused by the running schedule itself: nothing moves.
    let e = s.advance_to(u64::MAX).unwrap_err();
    assert!(e.to_string().contains("MAX_STEPPED_EPOCHS"), "{e}");
    assert_eq!((s.epoch(), s.lr()), (10, 1.0));
    let mut seq = SequentialLr::new(
        vec![Box::new(Halving::default()), Box::new(Halving::default())],
        vec![u64::MAX - 1],
    )
    .unwrap();
    assert!(seq.advance_to(u64::MAX).is_err());
    assert_eq!(seq.epoch(), 0);
}

/// The documented resume path at the largest step a checkpoint may hold: load, then
/// `advance_to(step)`.
#[test]
fn resuming_a_schedule_at_a_huge_step_returns() {
    let dir = tmp("huge-step");
    let path = dir.join("ckpt.safetensors");
    let mut model = Linear::<f32>::new(2, 2, &mut rng(2)).unwrap();
    let opt = SgdConfig::new(0.1).build().unwrap();
    save_checkpoint(&path, &model, &opt, u64::MAX).unwrap();
    let mut opt = SgdConfig::new(0.1).build().unwrap();
    let step = load_checkpoint(&path, &mut model, &mut opt).unwrap();
    assert_eq!(step, u64::MAX);
    for (name, mut s) in schedules() {
        s.advance_to(step).unwrap();
        assert_eq!(s.epoch(), step, "{name}");
        // A rate that is not a valid one is refused by the optimizer, not written.
        let _ = opt.apply_schedule(s.as_ref());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// 3, 5. Counters at their bounds.
// ---------------------------------------------------------------------------------------------

/// Sets the optimizer's step count and every array's `step` to `steps` (a hand-made state).
fn with_counts<F: Float>(
    mut s: OptimizerState<F>,
    steps: u64,
    per_array: u64,
) -> OptimizerState<F> {
    s.steps = steps;
    for (_, slot) in &mut s.slots {
        for (n, v) in &mut slot.scalars {
            if n == "step" {
                *v = per_array as f64;
            }
        }
    }
    s
}

/// `optim.steps = u64::MAX` is refused on load (defect 3: it wrapped to 0 on the next step, or
/// panicked with overflow checks); at `MAX_STEPS` the optimizer refuses to step, changing nothing;
/// a per-array `step` of `MAX_STEPS` loads, and the step that would make it 2^53 (which a load
/// refuses) is refused (defect 5), so the crate never writes a checkpoint it refuses.
#[test]
fn counters_stop_at_max_steps() {
    let dir = tmp("counters");
    let path = dir.join("ckpt.safetensors");
    let mut model = tagger::<f32>(3, 2, 1);
    let g = random_grads(&model, &mut rng(4));
    let mut opt = AdamConfig::new(1e-3).build().unwrap();
    opt.step(&mut model, &g).unwrap();
    let state = opt.state();

    for bad in [u64::MAX, 1 << 63, MAX_STEPS + 1] {
        let mut o = AdamConfig::new(1e-3).build().unwrap();
        let e = o
            .load_state(&model, &with_counts(state.clone(), bad, 1))
            .unwrap_err();
        assert!(e.to_string().contains("MAX_STEPS"), "{e}");
        // And from a file, edited in one field (the stock fuzz target's crash).
        save_checkpoint(&path, &model, &opt, 1).unwrap();
        edit_file(&path, |meta, _| {
            meta.insert("optim.steps".into(), bad.to_string());
        });
        let mut m = model.clone();
        assert!(load_checkpoint(&path, &mut m, &mut o).is_err());
    }
    let e = AdamConfig::new(1e-3)
        .build()
        .unwrap()
        .load_state(&model, &with_counts(state.clone(), 1, MAX_STEPS + 1))
        .unwrap_err();
    assert!(e.to_string().contains("2^53"), "{e}");

    // The optimizer's own count at the bound: no step.
    let mut o = AdamConfig::new(1e-3).build().unwrap();
    o.load_state(&model, &with_counts(state.clone(), MAX_STEPS, 1))
        .unwrap();
    let (before, before_state) = (model.clone(), o.state());
    let e = o.step(&mut model, &g).unwrap_err();
    assert!(matches!(e, Error::InvalidConfig(_)), "{e:?}");
    assert_eq!(model, before);
    assert_eq!(state_bits(&o.state()), state_bits(&before_state));

    // An array's count at the bound: no step, nothing written, and what is saved loads back.
    for rule in ["adam", "adagrad", "rmsprop"] {
        let (mut m, mut m2) = (model.clone(), model.clone());
        macro_rules! check {
            ($build:expr) => {{
                let mut o = $build;
                o.step(&mut m2, &g).unwrap();
                let st = with_counts(o.state(), 5, MAX_STEPS - 1);
                o.load_state(&m, &st).unwrap();
                o.step(&mut m, &g).unwrap(); // to MAX_STEPS: fine
                let (before, before_state) = (m.clone(), o.state());
                let e = o.step(&mut m, &g).unwrap_err();
                assert!(
                    matches!(&e, Error::Mismatch(s) if s.contains("2^53")),
                    "{rule}: {e:?}"
                );
                assert_eq!(m, before, "{rule}");
                assert_eq!(state_bits(&o.state()), state_bits(&before_state), "{rule}");
                save_checkpoint(&path, &m, &o, 9).unwrap();
                let mut o2 = $build;
                let mut m3 = m.clone();
                load_checkpoint(&path, &mut m3, &mut o2).unwrap();
                assert_eq!(state_bits(&o2.state()), state_bits(&o.state()), "{rule}");
            }};
        }
        match rule {
            "adam" => check!(AdamConfig::new(1e-3).build().unwrap()),
            "adagrad" => check!(AdagradConfig::new(1e-3).build().unwrap()),
            _ => check!(RmsPropConfig::new(1e-3).build().unwrap()),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// 4. No non-finite weight or state from finite state.
// ---------------------------------------------------------------------------------------------

/// Adam state with every `exp_avg = 3e38` and `exp_avg_sq = 0` is finite and loads; one step
/// with a zero gradient would make the weights −∞ (defect 4). Refused, nothing written. Also a
/// huge gradient whose square overflows `exp_avg_sq` (finite weights, a state no load accepts),
/// and a huge learning rate.
#[test]
fn updates_that_would_write_non_finite_values_are_refused() {
    let mut model = tagger::<f32>(5, 0, 1);
    let zero = model.zeros_like();
    let mut opt = AdamConfig::new(1e-3).build().unwrap();
    opt.step(&mut model, &zero).unwrap();
    let mut state = opt.state();
    for (_, slot) in &mut state.slots {
        for (n, a) in &mut slot.arrays {
            a.fill(if n == "exp_avg" { 3e38 } else { 0.0 });
        }
    }
    let mut opt = AdamConfig::new(1e-3).build().unwrap();
    opt.load_state(&model, &state).unwrap();
    let (before, before_state) = (model.clone(), opt.state());
    let e = opt.step(&mut model, &zero).unwrap_err();
    assert!(
        matches!(&e, Error::NonFinite(m) if m.contains("would make weight")),
        "{e:?}"
    );
    assert_eq!(model, before);
    assert_eq!(state_bits(&opt.state()), state_bits(&before_state));
    assert_eq!(opt.steps(), before_state.steps);

    // A gradient of 1e30 in f32: g² overflows the second moment.
    let mut big = model.zeros_like();
    big.fill_zero();
    big.heads[0].arrays_mut()[0].fill(1e30);
    let mut opt = AdamConfig::new(1e-3).build().unwrap();
    let before = model.clone();
    let e = opt.step(&mut model, &big).unwrap_err();
    assert!(
        matches!(&e, Error::NonFinite(m) if m.contains("unloadable")),
        "{e:?}"
    );
    assert_eq!(model, before);
    assert!(
        opt.slots().is_empty() && opt.steps() == 0,
        "a fresh optimizer stays fresh"
    );

    // SGD with a learning rate that overflows the weights.
    let mut opt = SgdConfig::new(3e38).build().unwrap();
    let mut ones = model.zeros_like();
    for mut a in ones.arrays_mut() {
        a.fill(1e3);
    }
    assert!(matches!(
        opt.step(&mut model, &ones),
        Err(Error::NonFinite(_))
    ));
    assert_eq!(model, before);
    // With the check off it steps anyway, as documented.
    opt.set_check_finite(false);
    opt.step(&mut model, &ones).unwrap();
    assert!(!model.global_norm().is_finite());
}

// ---------------------------------------------------------------------------------------------
// 6. A model without arrays.
// ---------------------------------------------------------------------------------------------

/// A derived model with an empty `Vec<Linear>` steps, saves and loads back (defect 6: "counts 1
/// steps but holds no per-array state").
#[test]
fn a_model_without_arrays_round_trips() {
    let dir = tmp("empty");
    let path = dir.join("ckpt.safetensors");
    let mut model = Empty::<f64> { heads: vec![] };
    let mut opt = AdamConfig::new(1e-3).build().unwrap();
    for _ in 0..3 {
        opt.step(&mut model, &Empty { heads: vec![] }).unwrap();
    }
    save_checkpoint(&path, &model, &opt, 3).unwrap();
    let mut back = AdamConfig::new(1e-3).build().unwrap();
    assert_eq!(load_checkpoint(&path, &mut model, &mut back).unwrap(), 3);
    assert_eq!(back.state(), opt.state());
    assert_eq!(back.steps(), 3);
    // A state counting steps but holding no slots still does not fit a model with arrays.
    let lin = Linear::<f64>::new(2, 2, &mut rng(1)).unwrap();
    let e = back.load_state(&lin, &opt.state()).unwrap_err();
    assert!(e.to_string().contains("no per-array state"), "{e}");
    assert_eq!(back.steps(), 3, "unchanged");
    // And the checkpoint of the empty model is refused by a model with arrays.
    let mut lin = lin;
    assert!(load_checkpoint(&path, &mut lin, &mut back).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// 7. Zero-element arrays with astronomically long axes.
// ---------------------------------------------------------------------------------------------

/// Views with no element but axes of 2^61 or 2^62 (cheap to make with `from_shape`): every
/// function returning `Result` returns an error (or an empty result), none panics or hangs
/// (defect 7).
#[test]
fn zero_element_arrays_with_huge_axes() {
    let none: [usize; 0] = [];
    let ids = ndarray::ArrayView2::from_shape((0, 1 << 61), &none[..]).unwrap();
    let emb = Embedding::<f32>::new(10, 4, None, &mut rng(1)).unwrap();
    assert!(matches!(emb.forward(ids), Err(Error::Shape { .. })));
    // (0, 2^61, 2) fits ndarray's limit: an empty output.
    let emb2 = Embedding::<f32>::new(10, 2, None, &mut rng(1)).unwrap();
    assert_eq!(emb2.forward(ids).unwrap().shape(), &[0, 1 << 61, 2]);

    let nothing: [f32; 0] = [];
    let x = ArrayView3::from_shape((0, 1 << 61, 2), &nothing[..]).unwrap();
    let lin = Linear::<f32>::new(2, 4, &mut rng(2)).unwrap();
    assert!(matches!(lin.infer(x), Err(Error::Shape { .. })));
    assert!(matches!(lin.forward(x), Err(Error::Shape { .. })));
    let narrow = Linear::<f32>::new(2, 1, &mut rng(2)).unwrap();
    assert_eq!(narrow.infer(x).unwrap().shape(), &[0, 1 << 61, 1]);

    let long = ArrayView2::from_shape((1 << 62, 0), &nothing[..]).unwrap();
    assert!(matches!(
        pad_sequences(&[long, long]),
        Err(Error::Shape { .. })
    ));
    assert_eq!(pad_sequences(&[long]).unwrap().0.shape(), &[1 << 62, 1, 0]);
    let data = vec![long.to_owned(), long.to_owned()];
    assert!(matches!(
        Minibatches::new(&data, 2, false, &mut rng(3)),
        Err(Error::Shape { .. })
    ));
    let batches: Vec<_> = Minibatches::new(&data, 1, false, &mut rng(3))
        .unwrap()
        .collect();
    assert_eq!(batches.len(), 2);

    assert_eq!(softmax(long).shape(), &[1 << 62, 0]);
    assert_eq!(log_softmax(long).shape(), &[1 << 62, 0]);
    assert!(argmax(long).is_err()); // an empty last axis has no largest value
    let wide = ArrayView2::from_shape((0, 1 << 62), &nothing[..]).unwrap();
    assert_eq!(softmax(wide).shape(), &[0, 1 << 62]);
    assert_eq!(argmax(wide).unwrap().shape(), &[0]);
    let deep = ArrayView3::from_shape((1 << 61, 0, 3), &nothing[..]).unwrap();
    assert_eq!(argmax(deep).unwrap().shape(), &[1 << 61, 0]);
}

// ---------------------------------------------------------------------------------------------
// 9. A hand-written `Params` that repeats a name.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
struct Twice {
    a: ArrayD<f32>,
    b: ArrayD<f32>,
}

impl Params<f32> for Twice {
    fn named_arrays(&self) -> Vec<(String, ArrayViewD<'_, f32>)> {
        vec![("w".into(), self.a.view()), ("w".into(), self.b.view())]
    }
    fn arrays_mut(&mut self) -> Vec<ArrayViewMutD<'_, f32>> {
        vec![self.a.view_mut(), self.b.view_mut()]
    }
}

/// Save refuses a model listing a name twice; load refuses it the same way instead of filling
/// both arrays from one tensor (defect 9), and so do checkpoints and optimizers.
#[test]
fn a_repeated_name_is_refused_by_load_as_by_save() {
    let dir = tmp("twice");
    let path = dir.join("w.safetensors");
    let mut m = Twice {
        a: ArrayD::from_elem(IxDyn(&[2]), 1.0),
        b: ArrayD::from_elem(IxDyn(&[2]), 2.0),
    };
    let e = io::save(&m, &path, "").unwrap_err();
    assert!(
        matches!(
            &e,
            Error::WeightFile {
                problem: WeightFileProblem::DuplicateName,
                ..
            }
        ),
        "{e:?}"
    );
    io::write(
        &path,
        &[("w".to_string(), ArrayD::from_elem(IxDyn(&[2]), 7.0))],
        None,
    )
    .unwrap();
    let before = m.clone();
    let e = io::load(&mut m, &path, "").unwrap_err();
    assert!(
        matches!(
            &e,
            Error::WeightFile { key: Some(k), problem: WeightFileProblem::DuplicateName, .. }
                if k == "w"
        ),
        "{e:?}"
    );
    assert_eq!(m, before);
    let g = m.zeros_like();
    let mut opt = SgdConfig::new(0.1).build().unwrap();
    assert!(matches!(opt.step(&mut m, &g), Err(Error::Mismatch(s)) if s.contains("twice")));
    assert_eq!(m, before);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// 10. Integer `weight_hr`.
// ---------------------------------------------------------------------------------------------

/// An `I64` tensor under `weight_hr_l0` (or a later layer's `weight_hr`) is `NotFloat` naming it,
/// not a `weight_hh` shape error (defect 10).
#[test]
fn integer_weight_hr_is_named_not_float() {
    let dir = tmp("int-hr");
    let path = dir.join("lstm.safetensors");
    let config = StackConfig::new(3, 4).with_proj_size(2).with_num_layers(2);
    let lstm = Lstm::<f32>::new(config, &mut rng(6)).unwrap();
    for bad in ["weight_hr_l0", "weight_hr_l1"] {
        let arrays = io::prefixed(&lstm, "enc.");
        let mut bytes: Vec<(String, Vec<usize>, Vec<u8>, safetensors::Dtype)> = arrays
            .iter()
            .map(|(k, a)| {
                let raw: Vec<u8> = a.iter().flat_map(|v| v.to_le_bytes()).collect();
                (k.clone(), a.shape().to_vec(), raw, safetensors::Dtype::F32)
            })
            .collect();
        for (k, shape, raw, dtype) in &mut bytes {
            if k == &format!("enc.{bad}") {
                *raw = vec![0u8; shape.iter().product::<usize>() * 8];
                *dtype = safetensors::Dtype::I64;
            }
        }
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
            .iter()
            .map(|(k, shape, raw, dtype)| {
                (
                    k.clone(),
                    safetensors::tensor::TensorView::new(*dtype, shape.clone(), raw).unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, None, &path).unwrap();
        let e = Lstm::<f32>::load_safetensors(&path, "enc.").unwrap_err();
        let want = format!("enc.{bad}");
        assert!(
            matches!(
                &e,
                Error::WeightFile { key: Some(k), problem: WeightFileProblem::NotFloat, .. }
                    if *k == want
            ),
            "{bad}: {e:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// The round-trip law.
// ---------------------------------------------------------------------------------------------

/// Steps `opt` on `model` `steps` times from counters set `margin` below [`MAX_STEPS`] (when
/// `near_bound`), saves a checkpoint with `user`, loads it into a fresh model and optimizer, and
/// checks everything came back bit for bit and that both continue alike.
#[allow(clippy::too_many_arguments)]
fn round_trip<F: Float, P: Params<F> + PartialEq + std::fmt::Debug, R: UpdateRule<F> + Clone>(
    label: &str,
    path: &std::path::Path,
    mut model: P,
    fresh_model: P,
    make: impl Fn() -> Optimizer<F, R>,
    steps: usize,
    near_bound: Option<u64>,
    user: &UserState<F>,
    r: &mut impl Rng,
) {
    let mut opt = make();
    let g = random_grads(&model, r);
    opt.step(&mut model, &g).unwrap();
    if let Some(margin) = near_bound {
        let st = with_counts(opt.state(), MAX_STEPS - margin, MAX_STEPS - margin);
        opt.load_state(&model, &st).unwrap();
    }
    for _ in 0..steps {
        let g = random_grads(&model, r);
        if let Err(e) = opt.step(&mut model, &g) {
            // Only the counters' bound may stop it.
            assert!(near_bound.is_some(), "{label}: {e}");
            assert!(
                opt.steps() == MAX_STEPS || e.to_string().contains("2^53"),
                "{label}: {e}"
            );
        }
    }
    let step = r.random::<u64>();
    save_checkpoint_with(path, &model, &opt, step, user).unwrap();
    let mut back = fresh_model;
    let mut opt2 = make();
    let (s, u) = load_checkpoint_with(path, &mut back, &mut opt2).unwrap();
    assert_eq!(s, step, "{label}");
    assert_eq!(bits(&back), bits(&model), "{label}");
    assert_eq!(back, model, "{label}");
    assert_eq!(
        state_bits(&opt2.state()),
        state_bits(&opt.state()),
        "{label}"
    );
    assert_eq!(opt2.steps(), opt.steps(), "{label}");
    assert_eq!(u, *user, "{label}");
    // The resumed run continues on the same trajectory (or stops at the same bound).
    let g = random_grads(&model, r);
    let (a, b) = (opt.step(&mut model, &g), opt2.step(&mut back, &g));
    assert_eq!(a.is_ok(), b.is_ok(), "{label}");
    assert_eq!(bits(&back), bits(&model), "{label}");
}

fn random_user<F: Float>(r: &mut impl Rng) -> UserState<F> {
    let mut u = UserState::default();
    for i in 0..r.random_range(0..3) {
        let shape: Vec<usize> = (0..r.random_range(0..3))
            .map(|_| r.random_range(0..3))
            .collect();
        let n = shape.iter().product();
        let values = (0..n)
            .map(|_| F::from_f64(r.random_range(-1e3..1e3)))
            .collect();
        u.arrays.insert(
            format!("a{i}"),
            ArrayD::from_shape_vec(IxDyn(&shape), values).unwrap(),
        );
    }
    if r.random::<bool>() {
        u.metadata
            .insert("epoch".into(), r.random::<u32>().to_string());
        u.metadata
            .insert("note".into(), "ünïcode \"quoted\" {}".into());
    }
    u
}

fn round_trip_case<F: Float>(seed: u64, path: &std::path::Path) {
    let mut r = rng(seed);
    let proj = [0, 2][r.random_range(0..2)];
    let heads = r.random_range(0..3);
    let empty = r.random_range(0..8) == 0;
    let steps = r.random_range(0..4);
    let near_bound = match r.random_range(0..3) {
        0 => None,
        1 => Some(r.random_range(0..3)),
        _ => Some(r.random_range(0..3) + 100),
    };
    let user = random_user::<F>(&mut r);
    let rule = r.random_range(0..6);
    let label = format!(
        "seed {seed}: {} proj {proj} heads {heads} empty {empty} steps {steps} near {near_bound:?} \
         rule {rule}",
        std::any::type_name::<F>()
    );
    macro_rules! go {
        ($make:expr) => {
            if empty {
                round_trip(
                    &label,
                    path,
                    Empty::<F> { heads: vec![] },
                    Empty::<F> { heads: vec![] },
                    $make,
                    steps,
                    near_bound,
                    &user,
                    &mut r,
                )
            } else {
                round_trip(
                    &label,
                    path,
                    tagger::<F>(seed, proj, heads),
                    tagger::<F>(seed + 1, proj, heads),
                    $make,
                    steps,
                    near_bound,
                    &user,
                    &mut r,
                )
            }
        };
    }
    let lr = F::from_f64(1e-2);
    match rule {
        0 => go!(|| SgdConfig::new(lr)
            .with_momentum(F::from_f64(0.9))
            .build()
            .unwrap()),
        1 => go!(|| AdamConfig::new(lr).build().unwrap()),
        2 => go!(|| AdamConfig::new(lr).with_amsgrad(true).build().unwrap()),
        3 => go!(|| AdamWConfig::new(lr).build().unwrap()),
        4 => go!(|| RmsPropConfig::new(lr)
            .with_momentum(F::from_f64(0.5))
            .with_centered(true)
            .build()
            .unwrap()),
        _ => go!(|| AdagradConfig::new(lr).build().unwrap()),
    }
}

/// The round-trip law, as a property over random models (an embedding, a projected or plain
/// LSTM, zero to two heads, or no array at all), rules, step counts (counters at and near
/// [`MAX_STEPS`] included) and user states, in both float types.
#[test]
fn every_reachable_state_round_trips_bit_for_bit() {
    let dir = tmp("round-trip");
    let path = dir.join("ckpt.safetensors");
    for seed in 0..60 {
        round_trip_case::<f32>(seed, &path);
        round_trip_case::<f64>(1000 + seed, &path);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
