//! An LSTM with a linear head learns to predict the next value of a noisy sine wave.
//!
//! Each training batch holds 32 windows of 50 steps, each with a random phase; the input at step
//! `t` is the noisy value `x_t = sin(ω t + φ) + ε` (ε ~ N(0, 0.1²)) and the target is `x_{t+1}`.
//! The model predicts at every step (sequence to sequence). At the end it reports the test MSE
//! against the noisy next value and against the clean sine, next to the "repeat the last value"
//! baseline; the noise alone sets a floor of 0.01 on the first.
//!
//! Writes `out/sine.svg` (one held-out window: noisy input, clean sine and the prediction of the
//! next value) and `out/sine_loss.svg` (the training loss with the noise floor and the baseline).
//!
//! ```text
//! cargo run --release --example sine -- [--steps 600] [--hidden 32] [--seed 0] [--lr 0.01]
//!     [--batch 32] [--len 50] [--out out]
//! ```

#[allow(dead_code)]
#[path = "common/cli.rs"]
mod cli;
#[allow(dead_code)]
#[path = "common/plot.rs"]
mod plot;

use std::path::PathBuf;
use std::time::Instant;

use ndarray::{s, Array3};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};
use recurrent::optim::{clip_grad_norm, AdamConfig};
use recurrent::{loss::mse_loss, Linear, LstmCell, Params, Recurrent};

const OMEGA: f32 = 2.0 * std::f32::consts::PI / 25.0; // a period of 25 steps
const NOISE: f32 = 0.1;

const USAGE: &str = "\
usage: sine [--steps N] [--hidden H] [--seed S] [--lr LR] [--batch B] [--len T] [--out DIR]

  --steps 600   optimizer steps
  --hidden 32   LSTM hidden units
  --seed 0      random seed (weights and data)
  --lr 0.01     Adam learning rate
  --batch 32    windows per batch
  --len 50      steps per window (at least 11: the test skips the first 10)
  --out out     folder for sine.svg and sine_loss.svg";

struct Args {
    steps: usize,
    hidden: usize,
    seed: u64,
    lr: f32,
    batch: usize,
    len: usize,
    out: PathBuf,
}

fn parse_args() -> Args {
    let mut cli = cli::Cli::new("sine", USAGE);
    let args = Args {
        steps: cli.at_least("--steps", 600, 1),
        hidden: cli.at_least("--hidden", 32, 1),
        seed: cli.get("--seed", 0),
        lr: cli.positive("--lr", 0.01) as f32,
        batch: cli.at_least("--batch", 32, 1),
        len: cli.at_least("--len", 50, 11),
        out: cli.get("--out", PathBuf::from("out")),
    };
    cli.finish();
    args
}

/// `(inputs, noisy targets, clean targets)`, each `(T, B, 1)`.
fn batch(rng: &mut StdRng, len: usize, batch: usize) -> (Array3<f32>, Array3<f32>, Array3<f32>) {
    let noise = Normal::new(0.0f32, NOISE).expect("valid normal");
    let mut noisy = Array3::zeros((len + 1, batch, 1));
    let mut clean = Array3::zeros((len + 1, batch, 1));
    for b in 0..batch {
        let phase: f32 = rng.random_range(0.0..std::f32::consts::TAU);
        for t in 0..=len {
            let v = (OMEGA * t as f32 + phase).sin();
            clean[(t, b, 0)] = v;
            noisy[(t, b, 0)] = v + noise.sample(rng);
        }
    }
    let x = noisy.slice(s![..len, .., ..]).to_owned();
    let y = noisy.slice(s![1.., .., ..]).to_owned();
    let y_clean = clean.slice(s![1.., .., ..]).to_owned();
    (x, y, y_clean)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("sine: {e}");
        std::process::exit(1);
    }
}

fn run() -> recurrent::Result<()> {
    let args = parse_args();
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut model = (
        Recurrent::new(LstmCell::<f32>::new(1, args.hidden, &mut rng)?),
        Linear::<f32>::new(args.hidden, 1, &mut rng)?,
    );
    let mut opt = AdamConfig::new(args.lr).build()?;
    let mut grads = model.zeros_like();
    println!(
        "sine: LSTM(1→{}) + Linear({}→1), {} parameters; {} steps of batch {} × {} time steps",
        args.hidden,
        args.hidden,
        model.num_params(),
        args.steps,
        args.batch,
        args.len
    );

    let start = Instant::now();
    let mut progress = cli::Progress::new("", 1, args.steps, 12);
    for step in 1..=args.steps {
        let (x, y, _) = batch(&mut rng, args.len, args.batch);
        let (lstm, head) = &model;
        let (h, _, tape) = lstm.forward(x.view(), None, None)?;
        let (pred, head_tape) = head.forward(h.view())?;
        let (loss, d_pred) = mse_loss(pred.view(), y.view())?;
        grads.fill_zero();
        let dh = head.backward(&head_tape, d_pred.view(), &mut grads.1)?;
        lstm.backward_params(&tape, dh.view(), None, &mut grads.0)?;
        clip_grad_norm(&mut grads, 1.0)?;
        opt.step(&mut model, &grads)?;

        progress.record(step, f64::from(loss));
    }

    // Test on fresh windows, without a tape.
    let mut test_rng = StdRng::seed_from_u64(args.seed.wrapping_add(1_000_003));
    let (x, y, y_clean) = batch(&mut test_rng, args.len, 256);
    let (h, _) = model.0.infer(x.view(), None, None)?;
    let pred = model.1.infer(h.view())?;
    // Skip the first 10 steps, where the LSTM has not yet seen enough of the wave.
    let tail = s![10.., .., ..];
    let (mse, _) = mse_loss(pred.slice(tail), y.slice(tail))?;
    let (mse_clean, _) = mse_loss(pred.slice(tail), y_clean.slice(tail))?;
    let (baseline, _) = mse_loss(x.slice(tail), y.slice(tail))?;
    let first = progress.first_mean.unwrap_or(f64::NAN);
    let last_report = progress.last_mean;
    println!(
        "training loss fell {:.1}× from the first report ({first:.5} → {last_report:.5})",
        first / last_report
    );
    println!(
        "test MSE vs noisy next value: {mse:.5}   (noise floor {:.5})",
        NOISE * NOISE
    );
    println!("test MSE vs clean sine:       {mse_clean:.5}");
    println!("baseline (repeat last value): {baseline:.5}");

    // One held-out window: what went in, what came out, and the truth.
    let col = |a: &Array3<f32>| -> Vec<(f64, f64)> {
        (0..args.len)
            .map(|t| ((t + 1) as f64, f64::from(a[(t, 0, 0)])))
            .collect()
    };
    let noisy_in: Vec<(f64, f64)> = (0..args.len)
        .map(|t| (t as f64, f64::from(x[(t, 0, 0)])))
        .collect();
    let sine_svg = args.out.join("sine.svg");
    let loss_svg = args.out.join("sine_loss.svg");
    let saved = plot::Chart::new("sine: next-value prediction on a held-out window")
        .x_label("time step")
        .y_label("value")
        .series(
            "noisy input x_t",
            noisy_in,
            plot::Style::Dots,
            Some("#7f7f7f"),
        )
        .series(
            "clean sine",
            col(&y_clean),
            plot::Style::Dashed,
            Some("#2ca02c"),
        )
        .series(
            "prediction of x_t+1",
            col(&pred),
            plot::Style::Solid,
            Some("#d62728"),
        )
        .save(&sine_svg)
        .and_then(|()| {
            plot::Chart::new("sine: training loss (MSE vs the noisy next value)")
                .x_label("step")
                .y_label("MSE (log scale)")
                .log_y(true)
                .line("training loss", plot::downsample(&progress.history, 300))
                .hline("noise floor 0.01", f64::from(NOISE * NOISE))
                .hline(
                    format!("repeat last value {baseline:.3}"),
                    f64::from(baseline),
                )
                .save(&loss_svg)
        });
    if let Err(e) = saved {
        eprintln!(
            "sine: could not write the plots to {}: {e}",
            args.out.display()
        );
        std::process::exit(1);
    }
    println!("plots: {}, {}", sine_svg.display(), loss_svg.display());
    println!("done in {:.1}s", start.elapsed().as_secs_f64());
    Ok(())
}
