//! Checkpoints (bit-for-bit resume, atomic writes), reproducibility, batching and time chunks.

use std::path::PathBuf;

use crate::common::*;
use ndarray::{array, Array3, Axis};
use recurrent::batch::{pad_sequences, time_chunks, unpad};
use recurrent::checkpoint::{load_checkpoint, save_checkpoint};
use recurrent::io::WeightFileProblem;
use recurrent::optim::{AdamConfig, Optimizer, SgdConfig, UpdateRule};
use recurrent::{loss::mse_loss, Error, Linear, Lstm, Params, StackConfig};

type Model = (Lstm<f32>, Linear<f32>);

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("recurrent-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn new_model(seed: u64) -> Model {
    let mut r = rng(seed);
    let config = StackConfig::new(2, 6)
        .with_num_layers(2)
        .with_bidirectional(true);
    (
        Lstm::new(config, &mut r).unwrap(),
        Linear::new(12, 1, &mut r).unwrap(),
    )
}

/// One training step on batch `k` (deterministic data).
fn train_step<R: UpdateRule<f32>>(model: &mut Model, opt: &mut Optimizer<f32, R>, k: usize) -> f32 {
    let x = Array3::from_shape_fn((7, 3, 2), |(t, b, f)| {
        ((t * 3 + b * 5 + f + k) as f32 * 0.37).sin()
    });
    let y = Array3::from_shape_fn((7, 3, 1), |(t, b, _)| ((t + b + k) as f32 * 0.21).cos());
    let (lstm, head) = &*model;
    let (h, _, tape) = lstm.forward(x.view(), None, Some(&[7, 4, 6])).unwrap();
    let (pred, head_tape) = head.forward(h.view()).unwrap();
    let (loss, d) = mse_loss(pred.view(), y.view()).unwrap();
    let mut grads = model.zeros_like();
    let dh = model
        .1
        .backward(&head_tape, d.view(), &mut grads.1)
        .unwrap();
    model
        .0
        .backward(&tape, dh.view(), None, &mut grads.0)
        .unwrap();
    recurrent::optim::clip_grad_norm(&mut grads, 1.0).unwrap();
    opt.step(model, &grads).unwrap();
    loss
}

fn bits(m: &Model) -> Vec<u32> {
    m.arrays()
        .iter()
        .flat_map(|a| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        .collect()
}

#[test]
fn resume_from_checkpoint_is_bit_for_bit() {
    let dir = tmp("resume");
    let path = dir.join("ckpt.safetensors");
    // Uninterrupted: 6 steps.
    let mut a = new_model(1);
    let mut opt_a = AdamConfig::new(1e-2).build().unwrap();
    for k in 0..6 {
        train_step(&mut a, &mut opt_a, k);
    }
    // Interrupted after 3 steps, resumed into freshly built (differently initialised) objects.
    let mut b = new_model(1);
    let mut opt_b = AdamConfig::new(1e-2).build().unwrap();
    for k in 0..3 {
        train_step(&mut b, &mut opt_b, k);
    }
    save_checkpoint(&path, &b, &opt_b, 3).unwrap();
    let mut c = new_model(99);
    let mut opt_c = AdamConfig::new(1e-2).build().unwrap();
    let step = load_checkpoint(&path, &mut c, &mut opt_c).unwrap();
    assert_eq!(step, 3);
    for k in 3..6 {
        train_step(&mut c, &mut opt_c, k);
    }
    assert_eq!(bits(&c), bits(&a));
    assert_eq!(opt_c.steps(), 6);
}

#[test]
fn interrupted_write_leaves_previous_checkpoint_loadable() {
    let dir = tmp("interrupted");
    let written = dir.join("ckpt.safetensors");
    let mut m = new_model(2);
    let mut opt = SgdConfig::new(0.1).with_momentum(0.9).build().unwrap();
    train_step(&mut m, &mut opt, 0);
    save_checkpoint(&written, &m, &opt, 1).unwrap();
    // A name that fits the file system's 255-byte limit, while the writer's temporary name beside
    // it (`.{name}.tmp-{pid}-{n}`) does not: the next save fails before renaming, as a crash or
    // a full disk would make it.
    let path = dir.join(format!("{}.safetensors", "c".repeat(240)));
    std::fs::copy(&written, &path).unwrap();
    let saved = m.clone();
    train_step(&mut m, &mut opt, 1);
    let e = save_checkpoint(&path, &m, &opt, 2).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert!(std::error::Error::source(&e).is_some());
    let mut back = new_model(3);
    let mut opt_back = SgdConfig::new(0.1).with_momentum(0.9).build().unwrap();
    assert_eq!(load_checkpoint(&path, &mut back, &mut opt_back).unwrap(), 1);
    assert_eq!(back, saved);
}

#[test]
fn checkpoint_errors_change_nothing() {
    let dir = tmp("errors");
    let path = dir.join("ckpt.safetensors");
    let mut m = new_model(4);
    let mut adam = AdamConfig::new(1e-3).build().unwrap();
    train_step(&mut m, &mut adam, 0);
    save_checkpoint(&path, &m, &adam, 1).unwrap();

    // Another optimizer.
    let mut other = new_model(5);
    let before = other.clone();
    let mut sgd = SgdConfig::new(0.1).build().unwrap();
    assert!(matches!(
        load_checkpoint(&path, &mut other, &mut sgd),
        Err(Error::Mismatch(_))
    ));
    assert_eq!(other, before);
    // Another model shape.
    let mut small = (
        Lstm::<f32>::new(StackConfig::new(2, 6), &mut rng(6)).unwrap(),
        Linear::<f32>::new(6, 1, &mut rng(7)).unwrap(),
    );
    let mut adam2 = AdamConfig::new(1e-3).build().unwrap();
    match load_checkpoint(&path, &mut small, &mut adam2) {
        Err(Error::WeightFile {
            key: Some(key),
            problem: WeightFileProblem::Shape { expected, got },
            ..
        }) => {
            assert_eq!(key, "model.1.weight");
            assert_eq!((expected, got), (vec![1, 6], vec![1, 12]));
        }
        other => panic!("expected a misshaped `model.1.weight`, got {other:?}"),
    }
    // A weight file that is not a checkpoint.
    let plain = dir.join("weights.safetensors");
    m.0.save_safetensors(&plain, "").unwrap();
    let e = load_checkpoint(&plain, &mut other, &mut adam2).unwrap_err();
    assert!(e.to_string().contains("not a recurrent checkpoint"), "{e}");
}

#[test]
fn same_seed_gives_bit_identical_training() {
    let run = || {
        let mut m = new_model(8);
        let mut opt = AdamConfig::new(1e-2).build().unwrap();
        for k in 0..4 {
            train_step(&mut m, &mut opt, k);
        }
        bits(&m)
    };
    assert_eq!(run(), run());
    // A different seed really differs.
    assert_ne!(bits(&new_model(8)), bits(&new_model(9)));
}

#[test]
fn padding_and_unpadding() {
    let a = array![[1.0f64, 2.0], [3.0, 4.0], [5.0, 6.0]];
    let b = array![[7.0f64, 8.0]];
    let (batch, lengths) = pad_sequences(&[a.view(), b.view()]).unwrap();
    assert_eq!(batch.dim(), (3, 2, 2));
    assert_eq!(lengths, [3, 1]);
    assert!(batch
        .slice(ndarray::s![1.., 1, ..])
        .iter()
        .all(|&v| v == 0.0));
    let back = unpad(batch.view(), &lengths).unwrap();
    assert_eq!(back, vec![a.clone(), b.clone()]);
    assert!(matches!(
        pad_sequences::<f64>(&[]),
        Err(Error::InvalidConfig(_))
    ));
    let c = array![[1.0f64, 2.0, 3.0]];
    assert!(matches!(
        pad_sequences(&[a.view(), c.view()]),
        Err(Error::Shape { .. })
    ));
    let empty = ndarray::Array2::<f64>::zeros((0, 2));
    assert!(matches!(
        pad_sequences(&[empty.view()]),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        unpad(batch.view(), &[3, 4]),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        unpad(batch.view(), &[3]),
        Err(Error::InvalidConfig(_))
    ));
}

/// Chunks with the state carried forward give the whole sequence's outputs (truncated BPTT changes
/// only the gradients).
#[test]
fn time_chunks_carry_state() {
    let lstm = Lstm::<f64>::new(StackConfig::new(3, 4).with_num_layers(2), &mut rng(10)).unwrap();
    let x: Array3<f64> = randn3((23, 2, 3), 1.0, &mut rng(11));
    let (full, last, _) = lstm.forward(x.view(), None, None).unwrap();
    let mut state = None;
    let mut outs = Vec::new();
    for chunk in time_chunks(x.view(), 5).unwrap() {
        let (o, s, _) = lstm.forward(chunk, state.as_ref(), None).unwrap();
        outs.push(o);
        state = Some(s);
    }
    assert_eq!(outs.len(), 5);
    let views: Vec<_> = outs.iter().map(|o| o.view()).collect();
    let joined = ndarray::concatenate(Axis(0), &views).unwrap();
    assert_close(
        &joined.view().into_dyn(),
        &full.view().into_dyn(),
        1e-12,
        1e-12,
        "chunked outputs",
    );
    assert_close(
        &state.unwrap().h.view().into_dyn(),
        &last.h.view().into_dyn(),
        1e-12,
        1e-12,
        "final h",
    );
    assert!(time_chunks(x.view(), 0).is_err());
}

/// A checkpoint carries the program's own arrays and metadata; a plain `load_checkpoint` reads the
/// same file (ignoring them), and `load_checkpoint_with` of a plain checkpoint gives an empty
/// `UserState`.
#[test]
fn checkpoints_carry_user_state() {
    use recurrent::checkpoint::{load_checkpoint_with, save_checkpoint_with, UserState};
    let dir = tmp("user-state");
    let path = dir.join("run.ckpt.safetensors");
    let mut m = new_model(3);
    let mut opt = AdamConfig::new(1e-2).build().unwrap();
    train_step(&mut m, &mut opt, 0);
    let mut user = UserState::default();
    // Inserted out of name order: the loaded state still equals it.
    user.arrays.insert(
        "ema.weight".into(),
        ndarray::ArrayD::from_shape_fn(vec![2, 3], |i| (i[0] * 3 + i[1]) as f32 * 0.25),
    );
    user.arrays
        .insert("curve".into(), ndarray::ArrayD::from_elem(vec![4], -1.5));
    user.metadata.insert("epoch".into(), "12".into());
    user.metadata
        .insert("data".into(), "train.txt, 3 files".into());
    save_checkpoint_with(&path, &m, &opt, 41, &user).unwrap();

    let (mut m2, mut opt2) = (new_model(4), AdamConfig::new(1e-2).build().unwrap());
    let (step, back) = load_checkpoint_with(&path, &mut m2, &mut opt2).unwrap();
    assert_eq!(step, 41);
    assert_eq!(bits(&m2), bits(&m));
    assert_eq!(back, user);

    let (mut m3, mut opt3) = (new_model(5), AdamConfig::new(1e-2).build().unwrap());
    assert_eq!(load_checkpoint(&path, &mut m3, &mut opt3).unwrap(), 41);
    save_checkpoint(&path, &m3, &opt3, 42).unwrap();
    let (step, back) = load_checkpoint_with(&path, &mut m3, &mut opt3).unwrap();
    assert_eq!((step, back), (42, UserState::default()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `Minibatches`: each sequence exactly once per epoch, batches of `batch_size` (the last smaller
/// unless `drop_last`), each padded exactly as `pad_sequences` pads it; the order comes from the
/// rng (same seed, same order; a new epoch, a new order); bad datasets are errors up front.
#[test]
fn shuffled_minibatches() {
    use recurrent::batch::Minibatches;
    let data: Vec<ndarray::Array2<f64>> = (0..11)
        .map(|i| {
            ndarray::Array2::from_shape_fn((1 + i % 4, 2), |(t, f)| {
                (i * 10 + t) as f64 + 0.5 * f as f64
            })
        })
        .collect();
    let epoch = |seed: u64, drop_last: bool| {
        let mut r = rng(seed);
        Minibatches::new(&data, 4, drop_last, &mut r)
            .unwrap()
            .collect::<Vec<_>>()
    };
    let batches = epoch(1, false);
    assert_eq!(
        batches.iter().map(|b| b.indices.len()).collect::<Vec<_>>(),
        [4, 4, 3]
    );
    let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    let order = seen.clone();
    seen.sort();
    assert_eq!(seen, (0..11).collect::<Vec<_>>());
    assert_ne!(order, (0..11).collect::<Vec<_>>(), "shuffled");
    for b in &batches {
        let views: Vec<_> = b.indices.iter().map(|&i| data[i].view()).collect();
        let (x, lengths) = pad_sequences(&views).unwrap();
        assert_eq!((&b.x, &b.lengths), (&x, &lengths));
    }
    assert_eq!(epoch(1, false), batches);
    assert_ne!(epoch(2, false), batches);
    assert_eq!(epoch(1, true).len(), 2);

    let mut r = rng(0);
    assert!(Minibatches::<f64>::new(&[], 4, false, &mut r).is_err());
    assert!(Minibatches::new(&data, 0, false, &mut r).is_err());
    let mut bad = data.clone();
    bad[5] = ndarray::Array2::zeros((3, 5));
    assert!(matches!(
        Minibatches::new(&bad, 4, false, &mut r),
        Err(Error::Shape { .. })
    ));
}
