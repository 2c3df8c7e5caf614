//! The adding problem (Hochreiter & Schmidhuber 1997; this variant from Le, Jaitly & Hinton 2015):
//! vanishing gradients, measured. An LSTM and an Elman RNN (tanh) are trained side by side on the
//! same batches.
//!
//! Each sequence has `T` steps of two channels: a value drawn from U[0, 1], and a marker that is 1
//! at exactly two steps — one drawn uniformly from the first half, one from the second half — and
//! 0 elsewhere. The target, read from the network's output at the last step through a linear head,
//! is the sum of the two marked values. The loss is the MSE. Answering 1.0 whatever the input
//! (the mean of the target) scores Var(U₁ + U₂) = 2/12 ≈ 0.167: that is the baseline. To beat it
//! a network must carry a value across ≥ T/2 steps on average; the gradient that would teach it
//! to do so has to flow back just as far.
//!
//! Expected: the LSTM ends far below the baseline (< 0.01 at T = 100), the tanh RNN stays near
//! 0.167 and does worse as T grows. Both use Adam, gradient-norm clipping and PyTorch's default
//! initialisation (plus a forget-gate bias of 1 for the LSTM, the usual practice). The two models
//! train on two threads (`--serial` runs them one after the other).
//!
//! Writes `out/adding_problem.svg`: both training-loss curves for every T, log scale, and the
//! baseline.
//!
//! ```text
//! cargo run --release --example adding_problem -- [--t 100 | --ts 50,100,200] [--steps 2000]
//!     [--hidden 64] [--batch 32] [--lr 0.01] [--clip 1.0] [--seed 0] [--test 1000]
//!     [--out out] [--serial]
//! ```

#[allow(dead_code)]
#[path = "common/cli.rs"]
mod cli;
#[allow(dead_code)]
#[path = "common/plot.rs"]
mod plot;

use std::path::PathBuf;

use ndarray::{s, Array2, Array3};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use recurrent::optim::{clip_grad_norm, AdamConfig};
use recurrent::{
    cell::CellInit, loss::mse_loss, Linear, Lstm, Params, RecurrentStack, Rnn, StackConfig,
};

const USAGE: &str = "\
usage: adding_problem [--t T | --ts T1,T2,...] [--steps N] [--hidden H] [--batch B] [--lr LR]
                      [--clip C] [--seed S] [--test N] [--out DIR] [--serial]

  --t 100          sequence length (default 100)
  --ts 50,100,200  several sequence lengths, one after the other (instead of --t)
  --steps 2000     optimizer steps per model and length
  --hidden 64      hidden units of both networks
  --batch 32       sequences per batch
  --lr 0.01        Adam learning rate (both networks)
  --clip 1.0       gradient-norm clipping threshold
  --seed 0         random seed (weights and data)
  --test 1000      held-out sequences for the final MSE
  --out out        folder for adding_problem.svg
  --serial         train the two networks one after the other instead of on two threads";

/// Always answering 1.0 scores Var(U₁ + U₂) = 1/6 in expectation.
const BASELINE: f64 = 1.0 / 6.0;

struct Args {
    ts: Vec<usize>,
    steps: usize,
    hidden: usize,
    batch: usize,
    lr: f64,
    clip: f64,
    seed: u64,
    test: usize,
    out: PathBuf,
    serial: bool,
}

fn parse_args() -> Args {
    let mut cli = cli::Cli::new("adding_problem", USAGE);
    let t: Option<usize> = cli.opt("--t");
    let ts: Option<Vec<usize>> = cli.list("--ts");
    let ts = match (t, ts) {
        (Some(_), Some(_)) => cli.fail("give either --t or --ts, not both"),
        (Some(t), None) => vec![t],
        (None, Some(ts)) => ts,
        (None, None) => vec![100],
    };
    if ts.is_empty() || ts.iter().any(|&t| t < 2) {
        cli.fail("sequence lengths must be at least 2 (one marker in each half)");
    }
    let args = Args {
        ts,
        steps: cli.at_least("--steps", 2000, 1),
        hidden: cli.at_least("--hidden", 64, 1),
        batch: cli.at_least("--batch", 32, 1),
        lr: cli.positive("--lr", 0.01),
        clip: cli.positive("--clip", 1.0),
        seed: cli.get("--seed", 0),
        test: cli.at_least("--test", 1000, 1),
        out: cli.get("--out", PathBuf::from("out")),
        serial: cli.switch("--serial"),
    };
    cli.finish();
    args
}

/// A batch of `b` sequences of length `t`: inputs `(T, B, 2)` and targets `(B, 1)`.
fn batch(rng: &mut StdRng, t: usize, b: usize) -> (Array3<f32>, Array2<f32>) {
    let mut x = Array3::zeros((t, b, 2));
    let mut y = Array2::zeros((b, 1));
    let half = t / 2;
    for j in 0..b {
        for k in 0..t {
            x[(k, j, 0)] = rng.random::<f32>();
        }
        let first = rng.random_range(0..half);
        let second = rng.random_range(half..t);
        x[(first, j, 1)] = 1.0;
        x[(second, j, 1)] = 1.0;
        y[(j, 0)] = x[(first, j, 0)] + x[(second, j, 0)];
    }
    (x, y)
}

/// What one model reached.
struct Run {
    test_mse: f64,
    /// The first step at which the mean training loss of the last 50 steps fell below 0.01.
    solved_at: Option<usize>,
    seconds: f64,
    history: Vec<(f64, f64)>,
}

/// Trains `net` + a linear head on the adding problem at length `t` and tests it.
fn train<C: CellInit<f32>>(
    label: &str,
    mut model: (RecurrentStack<C>, Linear<f32>),
    args: &Args,
    t: usize,
) -> recurrent::Result<Run> {
    let mut opt = AdamConfig::new(args.lr as f32).build()?;
    let mut grads = model.zeros_like();
    // Both models see the same batches: the data stream depends only on the seed and T.
    let mut data = StdRng::seed_from_u64(args.seed ^ (t as u64).wrapping_mul(0x9e37_79b9));
    let mut progress = cli::Progress::new(&format!("{label:<9} "), 1, args.steps, 10);
    let mut recent = std::collections::VecDeque::with_capacity(50);
    let mut solved_at = None;
    for step in 1..=args.steps {
        let (x, y) = batch(&mut data, t, args.batch);
        let (net, head) = &model;
        let (out, _, tape) = net.forward(x.view(), None, None)?; // (T, B, H)
        let last = out.slice(s![t - 1, .., ..]); // (B, H): the output after the last step
        let (pred, head_tape) = head.forward(last)?; // (B, 1)
        let (loss, d_pred) = mse_loss(pred.view(), y.view())?;
        grads.fill_zero();
        let d_last = head.backward(&head_tape, d_pred.view(), &mut grads.1)?;
        let mut d_out = Array3::zeros(out.dim());
        d_out.slice_mut(s![t - 1, .., ..]).assign(&d_last);
        net.backward_params(&tape, d_out.view(), None, &mut grads.0)?;
        // A NaN/∞ gradient would be refused here; skip that update rather than stop.
        if clip_grad_norm(&mut grads, args.clip as f32).is_ok() {
            opt.step(&mut model, &grads)?;
        }
        let loss = f64::from(loss);
        progress.record(step, loss);
        if recent.len() == 50 {
            recent.pop_front();
        }
        recent.push_back(loss);
        if solved_at.is_none() && recent.len() == 50 && recent.iter().sum::<f64>() / 50.0 < 0.01 {
            solved_at = Some(step);
        }
    }
    let seconds = progress.elapsed();

    // Held-out sequences, without a tape.
    let mut test_rng = StdRng::seed_from_u64(args.seed.wrapping_add(1_000_003) ^ t as u64);
    let (x, y) = batch(&mut test_rng, t, args.test);
    let (out, _) = model.0.infer(x.view(), None, None)?;
    let pred = model.1.infer(out.slice(s![t - 1, .., ..]))?;
    let (test_mse, _) = mse_loss(pred.view(), y.view())?;
    Ok(Run {
        test_mse: f64::from(test_mse),
        solved_at,
        seconds,
        history: progress.history,
    })
}

fn main() {
    if let Err(e) = run_main() {
        eprintln!("adding_problem: {e}");
        std::process::exit(1);
    }
}

fn run_main() -> recurrent::Result<()> {
    let args = parse_args();
    let h = args.hidden;
    println!(
        "adding problem: LSTM(2→{h}) vs RNN-tanh(2→{h}), each + Linear({h}→1); T = {:?}, {} steps \
         of batch {}, Adam lr {}, clip {}; baseline (always 1.0) = 1/6 ≈ {BASELINE:.4}",
        args.ts, args.steps, args.batch, args.lr, args.clip
    );

    let mut rows = Vec::new();
    let mut chart = plot::Chart::new("Adding problem: training loss")
        .x_label("step")
        .y_label("MSE (log scale)")
        .log_y(true);
    let start = std::time::Instant::now();
    for (i, &t) in args.ts.iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(args.seed.wrapping_mul(31).wrapping_add(t as u64));
        let cfg = StackConfig::new(2, h);
        let lstm = (
            Lstm::<f32>::new(cfg, &mut rng)?.with_forget_bias(1.0),
            Linear::<f32>::new(h, 1, &mut rng)?,
        );
        let rnn = (
            Rnn::<f32>::new(cfg, &mut rng)?,
            Linear::<f32>::new(h, 1, &mut rng)?,
        );
        println!(
            "\n== T = {t}: LSTM {} parameters, RNN {} parameters",
            lstm.num_params(),
            rnn.num_params()
        );
        let (l_lstm, l_rnn) = (format!("LSTM T={t}"), format!("RNN T={t}"));
        let (lstm_run, rnn_run) = if args.serial {
            (
                train(&l_lstm, lstm, &args, t)?,
                train(&l_rnn, rnn, &args, t)?,
            )
        } else {
            std::thread::scope(|scope| {
                let other = scope.spawn(|| train(&l_rnn, rnn, &args, t));
                let a = train(&l_lstm, lstm, &args, t);
                let b = other.join().expect("the RNN thread panicked");
                Ok::<_, recurrent::Error>((a?, b?))
            })?
        };
        // Matching colours per T: LSTM solid, RNN a lighter shade.
        let (c_lstm, c_rnn) = [
            ("#1f77b4", "#d62728"),
            ("#2ca02c", "#ff7f0e"),
            ("#9467bd", "#8c564b"),
            ("#17becf", "#e377c2"),
        ][i % 4];
        chart = chart
            .series(
                &l_lstm,
                plot::downsample(&lstm_run.history, 300),
                plot::Style::Solid,
                Some(c_lstm),
            )
            .series(
                &l_rnn,
                plot::downsample(&rnn_run.history, 300),
                plot::Style::Solid,
                Some(c_rnn),
            );
        rows.push((t, lstm_run, rnn_run));
    }
    let chart = chart.hline("always 1.0 (1/6)", BASELINE);
    let svg = args.out.join("adding_problem.svg");
    if let Err(e) = chart.save(&svg) {
        eprintln!("could not write {}: {e}", svg.display());
        std::process::exit(1);
    }

    println!(
        "\nfinal test MSE on {} held-out sequences (baseline: always answer 1.0 ≈ {BASELINE:.4})",
        args.test
    );
    println!(
        "{:>5} | {:>8} | {:>10} {:>9} {:>8} {:>8} | {:>10} {:>9} {:>8}",
        "T", "baseline", "LSTM MSE", "vs base", "<0.01 at", "time", "RNN MSE", "vs base", "time"
    );
    for (t, l, r) in &rows {
        let solved = l
            .solved_at
            .map_or_else(|| "never".to_string(), |s| format!("{s}"));
        println!(
            "{t:>5} | {BASELINE:>8.4} | {:>10.5} {:>8.1}% {solved:>8} {:>7.1}s | {:>10.5} {:>8.1}% {:>7.1}s",
            l.test_mse,
            100.0 * l.test_mse / BASELINE,
            l.seconds,
            r.test_mse,
            100.0 * r.test_mse / BASELINE,
            r.seconds
        );
    }
    println!(
        "(`<0.01 at`: first step where the LSTM's mean training loss over 50 steps fell below \
         0.01)\nplot: {}\ndone in {:.1}s",
        svg.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
