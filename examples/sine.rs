//! An LSTM with a linear head learns to predict the next value of a noisy sine wave.
//!
//! Each training batch holds 32 windows of 50 steps, each with a random phase; the input at step
//! `t` is the noisy value `x_t = sin(ω t + φ) + ε` (ε ~ N(0, 0.1²)) and the target is `x_{t+1}`.
//! The model predicts at every step (sequence to sequence). At the end it reports the test MSE
//! against the noisy next value and against the clean sine, next to the "repeat the last value"
//! baseline; the noise alone sets a floor of 0.01 on the first.
//!
//! ```text
//! cargo run --release --example sine -- [--steps 600] [--hidden 32] [--seed 0] [--lr 0.01]
//! ```

use std::time::Instant;

use ndarray::{s, Array3};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};
use recurrent::optim::{clip_grad_norm, AdamConfig};
use recurrent::{mse_loss, Linear, LstmCell, Params, Recurrent};

const OMEGA: f32 = 2.0 * std::f32::consts::PI / 25.0; // a period of 25 steps
const NOISE: f32 = 0.1;

struct Args {
    steps: usize,
    hidden: usize,
    seed: u64,
    lr: f32,
    batch: usize,
    len: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        steps: 600,
        hidden: 32,
        seed: 0,
        lr: 0.01,
        batch: 32,
        len: 50,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv
            .get(i + 1)
            .unwrap_or_else(|| usage(&format!("{} needs a value", argv[i])));
        let flag = argv[i].as_str();
        match flag {
            "--steps" => a.steps = parse(flag, value),
            "--hidden" => a.hidden = parse(flag, value),
            "--seed" => a.seed = parse(flag, value),
            "--lr" => a.lr = parse(flag, value),
            "--batch" => a.batch = parse(flag, value),
            "--len" => a.len = parse(flag, value),
            other => usage(&format!("unknown flag {other}")),
        }
        i += 2;
    }
    a
}

fn parse<T: std::str::FromStr>(flag: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| usage(&format!("bad value for {flag}: {value}")))
}

fn usage(problem: &str) -> ! {
    eprintln!("{problem}\nusage: sine [--steps N] [--hidden H] [--seed S] [--lr LR] [--batch B] [--len T]");
    std::process::exit(2)
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

fn main() -> recurrent::Result<()> {
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
    let report_every = (args.steps / 12).max(1);
    let mut window_loss = 0.0f32;
    let mut window_n = 0;
    let mut first_report = None;
    let mut last_report = f32::NAN;
    for step in 1..=args.steps {
        let (x, y, _) = batch(&mut rng, args.len, args.batch);
        let (lstm, head) = &model;
        let (h, _, tape) = lstm.forward(x.view(), None)?;
        let (pred, head_tape) = head.forward(h.view())?;
        let (loss, d_pred) = mse_loss(pred.view(), y.view())?;
        grads.fill_zero();
        let dh = head.backward(&head_tape, d_pred.view(), &mut grads.1)?;
        lstm.backward(&tape, dh.view(), None, &mut grads.0)?;
        clip_grad_norm(&mut grads, 1.0)?;
        opt.step(&mut model, &grads)?;

        window_loss += loss;
        window_n += 1;
        if step == 1 || step % report_every == 0 || step == args.steps {
            let mean = window_loss / window_n as f32;
            let elapsed = start.elapsed().as_secs_f64();
            println!(
                "step {step:>5}  loss {mean:.5}  {:.1} steps/s  elapsed {elapsed:.1}s",
                step as f64 / elapsed
            );
            first_report.get_or_insert(mean);
            last_report = mean;
            window_loss = 0.0;
            window_n = 0;
        }
    }

    // Test on fresh windows, without a tape.
    let mut test_rng = StdRng::seed_from_u64(args.seed.wrapping_add(1_000_003));
    let (x, y, y_clean) = batch(&mut test_rng, args.len, 256);
    let (h, _) = model.0.infer(x.view(), None)?;
    let pred = model.1.infer(h.view())?;
    // Skip the first 10 steps, where the LSTM has not yet seen enough of the wave.
    let tail = s![10.., .., ..];
    let (mse, _) = mse_loss(pred.slice(tail), y.slice(tail))?;
    let (mse_clean, _) = mse_loss(pred.slice(tail), y_clean.slice(tail))?;
    let (baseline, _) = mse_loss(x.slice(tail), y.slice(tail))?;
    let first = first_report.unwrap_or(f32::NAN);
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
    println!("done in {:.1}s", start.elapsed().as_secs_f64());
    Ok(())
}
