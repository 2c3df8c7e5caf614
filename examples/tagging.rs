//! Sequence tagging that needs the future: why bidirectional layers exist.
//!
//! **The rule.** A sequence has `len` tokens `x[0..len]`, each drawn uniformly from the digits
//! 0–9, with `len` uniform in `--min-len..=--max-len`. The label of position `t` is the parity
//! of the sum of the tokens `k` steps before and `k` steps after it:
//!
//! ```text
//! label[t] = (x[t−k] + x[t+k]) mod 2,   a position outside the sequence counting as 0
//! ```
//!
//! **Why a unidirectional model is at chance.** A forward-only network's output at `t` depends on
//! `x[0..=t]` alone. Wherever `t + k < len`, `x[t+k]` is a fresh uniform digit, independent of
//! everything the network has seen, so its parity is a fair coin and `label[t]` is a fair coin
//! given `x[0..=t]`: no forward model can beat 50% there, in expectation. (It cannot even tell
//! whether `t + k < len`, since the length is independent of the tokens; on the last `k`
//! positions, where the label is just the parity of `x[t−k]`, it can be right by always
//! answering that.) A bidirectional network sees both `x[t−k]` (forward direction) and `x[t+k]`
//! (backward direction) and can be right everywhere. Combining the two parities is an XOR, which a
//! linear head on one layer's concatenated directions cannot compute, so both networks have two
//! layers.
//!
//! The two models: a 2-layer bidirectional LSTM with `H` units per direction, and a 2-layer
//! unidirectional LSTM with `2H` units (the same output width and *more* parameters), each with a
//! linear head to 2 logits per position. Batches are padded with `recurrent::batch::pad_sequences`
//! and the networks and `cross_entropy_loss` get the lengths, so padding neither feeds the
//! backward direction nor counts in the loss or the accuracy. They train side by side on two
//! threads on the same batches (`--serial`: one after the other).
//!
//! Reports the accuracy on the real positions of held-out sequences, overall and by region:
//! two-sided (`t−k ≥ 0`, `t+k < len`), future-only (`t < k`) and past-only (`t+k ≥ len`).
//! Writes `out/tagging_loss.svg` (training loss) and `out/tagging_accuracy.svg` (held-out
//! accuracy during training).
//!
//! ```text
//! cargo run --release --example tagging -- [--steps 800] [--hidden 32] [--k 3] [--batch 32]
//!     [--min-len 8] [--max-len 40] [--lr 0.01] [--clip 1.0] [--seed 0] [--test 1000]
//!     [--out out] [--serial]
//! ```

#[allow(dead_code)]
#[path = "common/cli.rs"]
mod cli;
#[allow(dead_code)]
#[path = "common/plot.rs"]
mod plot;

use std::path::PathBuf;

use ndarray::{Array2, Array3, Axis};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use recurrent::batch::pad_sequences;
use recurrent::optim::{clip_grad_norm, AdamConfig};
use recurrent::{loss::cross_entropy_loss, Linear, Lstm, Params, StackConfig};

const USAGE: &str = "\
usage: tagging [--steps N] [--hidden H] [--k K] [--batch B] [--min-len N] [--max-len N] [--lr LR]
               [--clip C] [--seed S] [--test N] [--out DIR] [--serial]

  --steps 800    optimizer steps per model
  --hidden 32    units per direction of the bidirectional LSTM (the unidirectional one gets 2×)
  --k 3          the label of step t depends on steps t−k and t+k
  --batch 32     sequences per batch
  --min-len 8    shortest sequence (at least 2k, so every position has a neighbour)
  --max-len 40   longest sequence
  --lr 0.01      Adam learning rate
  --clip 1.0     gradient-norm clipping threshold
  --seed 0       random seed (weights and data)
  --test 1000    held-out sequences for the accuracy
  --out out      folder for tagging_loss.svg and tagging_accuracy.svg
  --serial       train the two networks one after the other instead of on two threads";

/// Digits 0–9.
const VOCAB: usize = 10;

struct Args {
    steps: usize,
    hidden: usize,
    k: usize,
    batch: usize,
    min_len: usize,
    max_len: usize,
    lr: f64,
    clip: f64,
    seed: u64,
    test: usize,
    out: PathBuf,
    serial: bool,
}

fn parse_args() -> Args {
    let mut cli = cli::Cli::new("tagging", USAGE);
    let args = Args {
        steps: cli.at_least("--steps", 800, 1),
        hidden: cli.at_least("--hidden", 32, 1),
        k: cli.at_least("--k", 3, 1),
        batch: cli.at_least("--batch", 32, 1),
        min_len: cli.get("--min-len", 8),
        max_len: cli.get("--max-len", 40),
        lr: cli.positive("--lr", 0.01),
        clip: cli.positive("--clip", 1.0),
        seed: cli.get("--seed", 0),
        test: cli.at_least("--test", 1000, 1),
        out: cli.get("--out", PathBuf::from("out")),
        serial: cli.switch("--serial"),
    };
    if args.min_len < 2 * args.k {
        cli.fail(&format!(
            "--min-len must be at least 2k = {} so that every position has a neighbour inside \
             the sequence, got {}",
            2 * args.k,
            args.min_len
        ));
    }
    if args.max_len < args.min_len {
        cli.fail(&format!(
            "--max-len ({}) must be at least --min-len ({})",
            args.max_len, args.min_len
        ));
    }
    cli.finish();
    args
}

/// A padded batch: one-hot inputs `(T, B, 10)`, labels `(T, B)` (0 at padding) and lengths.
struct Batch {
    x: Array3<f32>,
    y: Array2<usize>,
    lengths: Vec<usize>,
}

fn label(tokens: &[usize], t: usize, k: usize) -> usize {
    let before = t.checked_sub(k).map_or(0, |i| tokens[i]);
    let after = tokens.get(t + k).copied().unwrap_or(0);
    (before + after) % 2
}

fn make_batch(rng: &mut StdRng, args: &Args, n: usize) -> Batch {
    let seqs: Vec<Vec<usize>> = (0..n)
        .map(|_| {
            let len = rng.random_range(args.min_len..=args.max_len);
            (0..len).map(|_| rng.random_range(0..VOCAB)).collect()
        })
        .collect();
    let one_hot: Vec<Array2<f32>> = seqs
        .iter()
        .map(|s| Array2::from_shape_fn((s.len(), VOCAB), |(t, v)| f32::from(u8::from(s[t] == v))))
        .collect();
    let views: Vec<_> = one_hot.iter().map(|a| a.view()).collect();
    let (x, lengths) = pad_sequences(&views).expect("non-empty sequences of 10 features");
    let mut y = Array2::zeros((x.dim().0, n));
    for (b, s) in seqs.iter().enumerate() {
        for t in 0..s.len() {
            y[(t, b)] = label(s, t, args.k);
        }
    }
    Batch { x, y, lengths }
}

type Model = (Lstm<f32>, Linear<f32>);

/// Accuracy over real positions: `[all, two-sided, future-only, past-only]` as `(correct, total)`.
fn accuracy(model: &Model, batch: &Batch, k: usize) -> [(usize, usize); 4] {
    let (h, _) = model
        .0
        .infer(batch.x.view(), None, Some(&batch.lengths))
        .expect("shapes");
    let logits = model.1.infer(h.view()).expect("shapes");
    let mut acc = [(0, 0); 4];
    for (b, &len) in batch.lengths.iter().enumerate() {
        for t in 0..len {
            let z = logits.index_axis(Axis(0), t);
            let pred = usize::from(z[(b, 1)] > z[(b, 0)]);
            let right = usize::from(pred == batch.y[(t, b)]);
            let region = if t < k {
                2
            } else if t + k >= len {
                3
            } else {
                1
            };
            for r in [0, region] {
                acc[r].0 += right;
                acc[r].1 += 1;
            }
        }
    }
    acc
}

fn pct((right, total): (usize, usize)) -> f64 {
    100.0 * right as f64 / total.max(1) as f64
}

struct Run {
    acc: [(usize, usize); 4],
    loss: Vec<(f64, f64)>,
    acc_curve: Vec<(f64, f64)>,
    seconds: f64,
}

fn train(label: &str, mut model: Model, args: &Args, test: &Batch) -> recurrent::Result<Run> {
    let mut opt = AdamConfig::new(args.lr as f32).build()?;
    let mut grads = model.zeros_like();
    let mut data = StdRng::seed_from_u64(args.seed.wrapping_add(17)); // same batches for both
    let mut progress = cli::Progress::new(&format!("{label:<5} "), 1, args.steps, 10);
    let eval_every = (args.steps / 20).max(1);
    let mut acc_curve = vec![(0.0, pct(accuracy(&model, test, args.k)[0]))];
    for step in 1..=args.steps {
        let batch = make_batch(&mut data, args, args.batch);
        let lengths = Some(batch.lengths.as_slice());
        let (net, head) = &model;
        let (h, _, tape) = net.forward(batch.x.view(), None, lengths)?;
        let (logits, head_tape) = head.forward(h.view())?;
        let (loss, d_logits) = cross_entropy_loss(logits.view(), batch.y.view(), lengths)?;
        grads.fill_zero();
        let dh = head.backward(&head_tape, d_logits.view(), &mut grads.1)?;
        net.backward_params(&tape, dh.view(), None, &mut grads.0)?;
        if clip_grad_norm(&mut grads, args.clip as f32).is_ok() {
            opt.step(&mut model, &grads)?;
        }
        progress.record(step, f64::from(loss));
        if step % eval_every == 0 || step == args.steps {
            acc_curve.push((step as f64, pct(accuracy(&model, test, args.k)[0])));
        }
    }
    Ok(Run {
        acc: accuracy(&model, test, args.k),
        loss: progress.history.clone(),
        acc_curve,
        seconds: progress.elapsed(),
    })
}

fn run() -> recurrent::Result<()> {
    let args = parse_args();
    let (h, k) = (args.hidden, args.k);
    let mut rng = StdRng::seed_from_u64(args.seed);
    let bi = (
        Lstm::<f32>::new(
            StackConfig::new(VOCAB, h)
                .with_num_layers(2)
                .with_bidirectional(true),
            &mut rng,
        )?,
        Linear::<f32>::new(2 * h, 2, &mut rng)?,
    );
    let uni = (
        Lstm::<f32>::new(StackConfig::new(VOCAB, 2 * h).with_num_layers(2), &mut rng)?,
        Linear::<f32>::new(2 * h, 2, &mut rng)?,
    );
    println!(
        "tagging: label[t] = (x[t−{k}] + x[t+{k}]) mod 2 over digits, lengths {}..={}\n  \
         bidirectional: LSTM(10→{h}, 2 layers, both directions) + Linear({}→2), {} parameters\n  \
         unidirectional: LSTM(10→{}, 2 layers) + Linear({}→2), {} parameters\n  \
         {} steps of batch {}, Adam lr {}, clip {}",
        args.min_len,
        args.max_len,
        2 * h,
        bi.num_params(),
        2 * h,
        2 * h,
        uni.num_params(),
        args.steps,
        args.batch,
        args.lr,
        args.clip
    );
    let test = make_batch(
        &mut StdRng::seed_from_u64(args.seed.wrapping_add(1_000_003)),
        &args,
        args.test,
    );
    let start = std::time::Instant::now();
    let (bi_run, uni_run) = if args.serial {
        (
            train("bi", bi, &args, &test)?,
            train("uni", uni, &args, &test)?,
        )
    } else {
        std::thread::scope(|scope| {
            let other = scope.spawn(|| train("uni", uni, &args, &test));
            let a = train("bi", bi, &args, &test);
            let b = other.join().expect("the unidirectional thread panicked");
            Ok::<_, recurrent::Error>((a?, b?))
        })?
    };

    println!(
        "\nheld-out accuracy on the real (non-padded) positions of {} sequences:",
        args.test
    );
    println!(
        "{:<34} {:>9} {:>8} {:>8} {:>8}",
        "positions", "share", "uni", "bi", "chance"
    );
    let regions = [
        ("all", "50%"),
        (&*format!("two-sided (t−{k} ≥ 0, t+{k} < len)"), "50%"),
        (&*format!("future-only (t < {k})"), "50%"),
        (&*format!("past-only (t+{k} ≥ len)"), "50%"),
    ];
    let total = bi_run.acc[0].1 as f64;
    for (r, (name, chance)) in regions.iter().enumerate() {
        println!(
            "{name:<34} {:>8.1}% {:>7.1}% {:>7.1}% {chance:>8}",
            100.0 * bi_run.acc[r].1 as f64 / total,
            pct(uni_run.acc[r]),
            pct(bi_run.acc[r]),
        );
    }
    let uni_best = 100.0
        * (0.5 * (uni_run.acc[1].1 + uni_run.acc[2].1) as f64 + uni_run.acc[3].1 as f64)
        / total;
    println!(
        "(the best a forward-only model can do: 50% wherever t+{k} < len, 100% on the past-only \
         positions, i.e. {uni_best:.1}% overall on this test set)"
    );
    println!(
        "training time: bi {:.1}s, uni {:.1}s",
        bi_run.seconds, uni_run.seconds
    );

    let loss_svg = args.out.join("tagging_loss.svg");
    let acc_svg = args.out.join("tagging_accuracy.svg");
    let saved = plot::Chart::new("Tagging: training loss (cross-entropy per real position)")
        .x_label("step")
        .y_label("cross-entropy (nats)")
        .line("bidirectional LSTM", plot::downsample(&bi_run.loss, 300))
        .line("unidirectional LSTM", plot::downsample(&uni_run.loss, 300))
        .hline("chance: ln 2", std::f64::consts::LN_2)
        .save(&loss_svg)
        .and_then(|()| {
            plot::Chart::new("Tagging: held-out accuracy on real positions")
                .x_label("step")
                .y_label("accuracy (%)")
                .line("bidirectional LSTM", bi_run.acc_curve.clone())
                .line("unidirectional LSTM", uni_run.acc_curve.clone())
                .hline("chance 50%", 50.0)
                .hline(format!("forward-only optimum {uni_best:.1}%"), uni_best)
                .save(&acc_svg)
        });
    if let Err(e) = saved {
        eprintln!(
            "tagging: could not write the plots to {}: {e}",
            args.out.display()
        );
        std::process::exit(1);
    }
    println!(
        "plots: {}, {}\ndone in {:.1}s",
        loss_svg.display(),
        acc_svg.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("tagging: {e}");
        std::process::exit(1);
    }
}
