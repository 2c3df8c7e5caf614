//! A character-level language model on the Book of Genesis (King James Version), trained from
//! scratch with truncated backpropagation through time.
//!
//! The text, `examples/data/genesis_kjv.txt` (see `examples/data/README.md`: the KJV, public
//! domain, as shipped by Debian's `bible-kjv-text` package), is compiled into the binary. Its
//! first 90% is the training stream, the last 10% is held out. Each character is a one-hot vector
//! over the text's vocabulary; a stacked LSTM (or GRU, `--cell gru`) reads it and a linear head
//! gives the next character's logits; the loss is the cross-entropy over every step.
//!
//! Training: the training stream is cut into `--batch` parallel streams, which are walked in
//! windows of `--bptt` steps (`recurrent::batch::time_chunks`). The final state of one window is
//! the initial state of the next (the gradient is cut at the border), so the network sees
//! unbroken context across the whole stream; the state is reset at the start of every epoch.
//! Adam with gradient-norm clipping, a linear warm-up and cosine decay of the learning rate.
//!
//! Reports bits per character (bpc) on the held-out text against two baselines: a unigram model
//! (character frequencies of the training text; its cross-entropy on the held-out text) and
//! the uniform `log2(vocabulary)`. Then samples text at `--temperature`.
//!
//! Writes `out/char_lm.svg` (training and held-out bpc with the baselines) and, every
//! `--ckpt-every` steps and at the end, the checkpoint `out/char_lm.ckpt.safetensors`
//! (`recurrent::checkpoint`: model, Adam state, step) beside `out/char_lm.state.safetensors`
//! (the carried hidden state and the loss history). `--resume` continues from them; with the
//! same flags the resumed run is bit-for-bit the uninterrupted one (the data order, the schedule
//! and the carried state all follow from the step; `--stop-at N` interrupts a run on purpose).
//! Resuming with a larger `--steps` stretches the cosine decay over the new total.
//!
//! ```text
//! cargo run --release --example char_lm -- [--steps 1000] [--cell lstm|gru] [--hidden 128]
//!     [--layers 2] [--batch 32] [--bptt 64] [--lr 0.03] [--warmup 50] [--clip 1.0] [--seed 0]
//!     [--eval-every 100] [--ckpt-every 200] [--resume] [--stop-at N] [--temperature 0.8]
//!     [--sample-len 400] [--prime "And God said"] [--text FILE] [--out out]
//! ```

#[allow(dead_code)]
#[path = "common/cli.rs"]
mod cli;
#[allow(dead_code)]
#[path = "common/plot.rs"]
mod plot;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::{s, Array2, Array3, ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use recurrent::batch::time_chunks;
use recurrent::checkpoint::{load_checkpoint, save_checkpoint};
use recurrent::optim::{
    clip_grad_norm, AdamConfig, CosineAnnealingLr, LinearWarmup, LrSchedule, SequentialLr,
};
use recurrent::{
    cell::{CellInit, Stacked},
    loss::cross_entropy_loss,
    GruCell, Linear, LstmCell, Params, RecurrentStack, StackConfig, State,
};

/// The Book of Genesis, KJV (public domain); see `examples/data/README.md`.
const GENESIS: &str = include_str!("data/genesis_kjv.txt");

const USAGE: &str = "\
usage: char_lm [--steps N] [--cell lstm|gru] [--hidden H] [--layers L] [--batch B] [--bptt K]
               [--lr LR] [--warmup N] [--clip C] [--seed S] [--eval-every N] [--ckpt-every N]
               [--resume] [--stop-at N] [--temperature T] [--sample-len N] [--prime TEXT]
               [--text FILE] [--out DIR]

  --steps 1000       optimizer steps in all (a resumed run continues up to this step)
  --cell lstm        lstm or gru
  --hidden 128       hidden units per layer
  --layers 2         stacked layers
  --batch 32         parallel streams over the training text
  --bptt 64          steps per truncated-BPTT window
  --lr 0.03          peak Adam learning rate (linear warm-up, then cosine decay to lr/20)
  --warmup 50        warm-up steps
  --clip 1.0         gradient-norm clipping threshold
  --seed 0           random seed (initial weights, sampling)
  --eval-every 100   held-out evaluation interval (for the plot), in steps
  --ckpt-every 200   checkpoint interval, in steps
  --resume           continue from out/char_lm.ckpt.safetensors (same model flags; with the
                     same --steps too, the run continues bit for bit)
  --stop-at N        stop after step N (< --steps) with a checkpoint, as if interrupted
  --temperature 0.8  sampling temperature (> 0; lower is more conservative)
  --sample-len 400   characters to sample at the end (0: none)
  --prime TEXT       text the sample starts from (default \"And God said\")
  --text FILE        train on another UTF-8 text instead of the built-in Genesis
  --out out          folder for char_lm.svg and the checkpoint";

struct Args {
    steps: usize,
    cell: String,
    hidden: usize,
    layers: usize,
    batch: usize,
    bptt: usize,
    lr: f64,
    warmup: usize,
    clip: f64,
    seed: u64,
    eval_every: usize,
    ckpt_every: usize,
    resume: bool,
    stop_at: Option<usize>,
    temperature: f64,
    sample_len: usize,
    prime: String,
    text: Option<PathBuf>,
    out: PathBuf,
}

fn parse_args() -> Args {
    let mut cli = cli::Cli::new("char_lm", USAGE);
    let args = Args {
        steps: cli.at_least("--steps", 1000, 1),
        cell: cli.get("--cell", "lstm".to_string()),
        hidden: cli.at_least("--hidden", 128, 1),
        layers: cli.at_least("--layers", 2, 1),
        batch: cli.at_least("--batch", 32, 1),
        bptt: cli.at_least("--bptt", 64, 1),
        lr: cli.positive("--lr", 0.03),
        warmup: cli.at_least("--warmup", 50, 1),
        clip: cli.positive("--clip", 1.0),
        seed: cli.get("--seed", 0),
        eval_every: cli.at_least("--eval-every", 100, 1),
        ckpt_every: cli.at_least("--ckpt-every", 200, 1),
        resume: cli.switch("--resume"),
        stop_at: cli.opt("--stop-at"),
        temperature: cli.positive("--temperature", 0.8),
        sample_len: cli.get("--sample-len", 400),
        prime: cli.get("--prime", "And God said".to_string()),
        text: cli.opt("--text"),
        out: cli.get("--out", PathBuf::from("out")),
    };
    if args.cell != "lstm" && args.cell != "gru" {
        cli.fail(&format!("--cell must be lstm or gru, got `{}`", args.cell));
    }
    if let Some(n) = args.stop_at {
        if n == 0 || n >= args.steps {
            cli.fail(&format!(
                "--stop-at must be between 1 and --steps − 1 ({}), got {n}",
                args.steps - 1
            ));
        }
    }
    cli.finish();
    args
}

/// The text as character ids over a sorted vocabulary.
struct Corpus {
    vocab: Vec<char>,
    ids: Vec<usize>,
    /// Characters `..split` train, `split..` are held out.
    split: usize,
}

impl Corpus {
    fn new(text: &str) -> Self {
        let mut vocab: Vec<char> = text.chars().collect();
        vocab.sort_unstable();
        vocab.dedup();
        let index: HashMap<char, usize> = vocab.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        let ids: Vec<usize> = text.chars().map(|c| index[&c]).collect();
        let split = ids.len() * 9 / 10;
        Self { vocab, ids, split }
    }

    fn id(&self, c: char) -> Option<usize> {
        self.vocab.binary_search(&c).ok()
    }
}

/// `(train entropy, held-out cross-entropy)` in bits of the unigram model fitted on the training
/// text (add-one smoothing, so characters unseen in training keep a finite cost).
fn unigram_bits(c: &Corpus) -> (f64, f64) {
    let v = c.vocab.len();
    let mut counts = vec![1.0f64; v];
    for &i in &c.ids[..c.split] {
        counts[i] += 1.0;
    }
    let total: f64 = counts.iter().sum();
    let p: Vec<f64> = counts.iter().map(|n| n / total).collect();
    let entropy = -p.iter().map(|&q| q * q.log2()).sum::<f64>();
    let held = &c.ids[c.split..];
    let xent = -held.iter().map(|&i| p[i].log2()).sum::<f64>() / held.len() as f64;
    (entropy, xent)
}

fn one_hot(ids: &[usize], vocab: usize) -> Array3<f32> {
    let mut x = Array3::zeros((ids.len(), 1, vocab));
    for (t, &i) in ids.iter().enumerate() {
        x[(t, 0, i)] = 1.0;
    }
    x
}

/// The model: a recurrent stack and a linear head to the vocabulary's logits.
type Model<C> = (RecurrentStack<C>, Linear<f32>);

/// Bits per character of `model` on `ids` read as one stream (the state carried throughout).
fn held_out_bpc<C: CellInit<f32>>(model: &Model<C>, ids: &[usize], vocab: usize) -> f64 {
    let mut state: Option<Stacked<f32, C>> = None;
    let (mut nats, mut n) = (0.0f64, 0usize);
    for chunk in ids.windows(2).collect::<Vec<_>>().chunks(512) {
        let inputs: Vec<usize> = chunk.iter().map(|w| w[0]).collect();
        let targets = Array2::from_shape_fn((chunk.len(), 1), |(t, _)| chunk[t][1]);
        let x = one_hot(&inputs, vocab);
        let (h, last) = model
            .0
            .infer(x.view(), state.as_ref(), None)
            .expect("shapes");
        let logits = model.1.infer(h.view()).expect("shapes");
        let (loss, _) = cross_entropy_loss(logits.view(), targets.view(), None).expect("shapes");
        nats += f64::from(loss) * chunk.len() as f64;
        n += chunk.len();
        state = Some(last);
    }
    nats / n as f64 / std::f64::consts::LN_2
}

/// Samples `len` characters after `prime` at `temperature`.
fn sample<C: CellInit<f32>>(
    model: &Model<C>,
    corpus: &Corpus,
    prime: &str,
    len: usize,
    temperature: f64,
    rng: &mut StdRng,
) -> String {
    let v = corpus.vocab.len();
    let mut ids: Vec<usize> = prime.chars().filter_map(|c| corpus.id(c)).collect();
    if ids.is_empty() {
        ids.push(corpus.id('\n').unwrap_or(0));
    }
    let mut text: String = ids.iter().map(|&i| corpus.vocab[i]).collect();
    // Read the prime, then feed back one sampled character at a time.
    let (h, mut state) = model
        .0
        .infer(one_hot(&ids, v).view(), None, None)
        .expect("shapes");
    let mut logits = model
        .1
        .infer(h.slice(s![h.dim().0 - 1.., .., ..]))
        .expect("shapes");
    for _ in 0..len {
        let row: Vec<f64> = logits.iter().map(|&z| f64::from(z) / temperature).collect();
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = row.iter().map(|z| (z - m).exp()).collect();
        let mut u = rng.random::<f64>() * w.iter().sum::<f64>();
        let mut next = v - 1;
        for (i, wi) in w.iter().enumerate() {
            if u < *wi {
                next = i;
                break;
            }
            u -= wi;
        }
        text.push(corpus.vocab[next]);
        let (h, s) = model
            .0
            .infer(one_hot(&[next], v).view(), Some(&state), None)
            .expect("shapes");
        state = s;
        logits = model.1.infer(h.view()).expect("shapes");
    }
    text
}

/// Linear warm-up for `warmup` steps from `lr / 10`, then cosine decay to `lr / 20` at step
/// `total`: PyTorch's `SequentialLR([LinearLR, CosineAnnealingLR], milestones=[warmup])`.
fn warmup_cosine(lr: f64, warmup: usize, total: usize) -> recurrent::Result<SequentialLr> {
    SequentialLr::new(
        vec![
            Box::new(LinearWarmup::new(lr, 0.1, warmup)?),
            Box::new(CosineAnnealingLr::new(
                lr,
                total.saturating_sub(warmup).max(1),
                lr / 20.0,
            )?),
        ],
        vec![warmup as u64],
    )
}

/// What the checkpoint file cannot hold: the carried TBPTT state, the loss history and the
/// settings the run must be resumed with.
fn save_sidecar<C: CellInit<f32>>(
    path: &Path,
    step: usize,
    state: Option<&Stacked<f32, C>>,
    history: &[(f64, f64)],
    evals: &[(f64, f64)],
    settings: &str,
) -> recurrent::Result<()> {
    let mut arrays = Vec::new();
    if let Some(state) = state {
        for (name, part) in C::State::stacked_parts(state) {
            arrays.push((format!("state.{name}"), part.to_owned().into_dyn()));
        }
    }
    for (name, points) in [("history", history), ("evals", evals)] {
        let flat: Vec<f32> = points
            .iter()
            .flat_map(|&(x, y)| [x as f32, y as f32])
            .collect();
        arrays.push((
            name.to_string(),
            ArrayD::from_shape_vec(IxDyn(&[points.len(), 2]), flat).expect("n × 2"),
        ));
    }
    let metadata = HashMap::from([
        ("step".to_string(), step.to_string()),
        ("settings".to_string(), settings.to_string()),
    ]);
    recurrent::io::write(path, &arrays, Some(metadata))
}

/// The carried state and histories saved by [`save_sidecar`].
#[allow(clippy::type_complexity)]
fn load_sidecar<C: CellInit<f32>>(
    path: &Path,
    step: usize,
    settings: &str,
    (layers, batch, hidden): (usize, usize, usize),
) -> Result<(Option<Stacked<f32, C>>, Vec<(f64, f64)>, Vec<(f64, f64)>), String> {
    let file = recurrent::io::read::<f32>(path).map_err(|e| e.to_string())?;
    if file.metadata.get("step") != Some(&step.to_string()) {
        return Err(format!(
            "{} is not from the same step as the checkpoint ({step})",
            path.display()
        ));
    }
    let saved = file.metadata.get("settings").cloned().unwrap_or_default();
    if saved != settings {
        return Err(format!(
            "the checkpoint was trained with `{saved}`, this run asks for `{settings}`"
        ));
    }
    let points = |name: &str| -> Vec<(f64, f64)> {
        file.tensors
            .get(name)
            .map(|a| {
                a.as_slice()
                    .unwrap_or(&[])
                    .chunks_exact(2)
                    .map(|p| (f64::from(p[0]), f64::from(p[1])))
                    .collect()
            })
            .unwrap_or_default()
    };
    let state = if file.tensors.contains_key("state.h") {
        // Rebuild the stacked state part by part from zero states of the right shape.
        let mut cells: Vec<C::State> = (0..layers)
            .map(|_| C::State::zeros(batch, hidden))
            .collect();
        let names: Vec<&str> = cells[0].parts().iter().map(|(n, _)| *n).collect();
        for (p, name) in names.iter().enumerate() {
            let a = &file.tensors[&format!("state.{name}")];
            if a.shape() != [layers, batch, hidden] {
                return Err(format!("state.{name} has shape {:?}", a.shape()));
            }
            for (l, cell) in cells.iter_mut().enumerate() {
                cell.parts_mut()[p].assign(&a.slice(s![l, .., ..]));
            }
        }
        Some(C::State::stack(&cells))
    } else {
        None
    };
    Ok((state, points("history"), points("evals")))
}

fn run<C: CellInit<f32>>(args: &Args, corpus: &Corpus) -> recurrent::Result<()> {
    let v = corpus.vocab.len();
    let (b, k, hdim) = (args.batch, args.bptt, args.hidden);
    let mut rng = StdRng::seed_from_u64(args.seed);
    let config = StackConfig::new(v, hdim).with_num_layers(args.layers);
    let mut model: Model<C> = (
        RecurrentStack::<C>::new(config, &mut rng)?,
        Linear::new(hdim, v, &mut rng)?,
    );
    let mut opt = AdamConfig::new(args.lr as f32).build()?;

    // The training stream as `b` parallel streams: inputs (L, B, V) one-hot, targets (L, B).
    let train = &corpus.ids[..corpus.split];
    let len = (train.len() - 1) / b;
    if len < 2 {
        eprintln!("char_lm: the training text is too short for --batch {b}");
        std::process::exit(2);
    }
    let mut inputs = Array3::<f32>::zeros((len, b, v));
    let mut targets = Array2::<usize>::zeros((len, b));
    for j in 0..b {
        for t in 0..len {
            inputs[(t, j, train[j * len + t])] = 1.0;
            targets[(t, j)] = train[j * len + t + 1];
        }
    }
    let chunks_per_epoch = len.div_ceil(k);

    let settings = format!(
        "cell={} hidden={hdim} layers={} batch={b} bptt={k} vocab={}",
        args.cell,
        args.layers,
        corpus.vocab.len()
    );
    std::fs::create_dir_all(&args.out).map_err(|e| recurrent::Error::io(&args.out, e))?;
    let ckpt = args.out.join("char_lm.ckpt.safetensors");
    let sidecar = args.out.join("char_lm.state.safetensors");

    let mut step = 0usize;
    let mut state: Option<Stacked<f32, C>> = None;
    let mut history = Vec::new();
    let mut evals = Vec::new();
    if args.resume {
        if !ckpt.exists() {
            eprintln!(
                "char_lm: --resume: no checkpoint at {} (train without --resume first, or pass \
                 the --out folder of that run)",
                ckpt.display()
            );
            std::process::exit(2);
        }
        step = load_checkpoint(&ckpt, &mut model, &mut opt)? as usize;
        match load_sidecar::<C>(&sidecar, step, &settings, (args.layers, b, hdim)) {
            Ok((s, h, e)) => (state, history, evals) = (s, h, e),
            Err(e) => {
                eprintln!("char_lm: cannot resume: {e}");
                std::process::exit(2);
            }
        }
        println!("resumed from {} at step {step}", ckpt.display());
    }
    let mut sched = warmup_cosine(args.lr, args.warmup, args.steps)?;
    sched.advance_to(step as u64)?;

    println!(
        "char_lm: {}({v}→{hdim}) × {} layers + Linear({hdim}→{v}), {} parameters; {} training and \
         {} held-out characters; {b} streams of {len}, {chunks_per_epoch} windows of {k} per epoch",
        args.cell.to_uppercase(),
        args.layers,
        model.num_params(),
        corpus.split,
        corpus.ids.len() - corpus.split,
    );
    let held = &corpus.ids[corpus.split..];
    let stop = args.stop_at.unwrap_or(args.steps);
    let mut progress = cli::Progress::new("", step + 1, stop.max(step + 1), 12);
    let mut grads = model.zeros_like();
    'training: while step < stop {
        let skip = step % chunks_per_epoch;
        if skip == 0 {
            state = None; // a new epoch starts without context
        }
        for (c, x) in time_chunks(inputs.view(), k)?.enumerate().skip(skip) {
            let t0 = c * k;
            let y = targets.slice(s![t0..t0 + x.dim().0, ..]);
            opt.apply_schedule(&sched)?;
            let (net, head) = &model;
            let (h, last, tape) = net.forward(x, state.as_ref(), None)?;
            let (logits, head_tape) = head.forward(h.view())?;
            let (loss, d_logits) = cross_entropy_loss(logits.view(), y, None)?;
            grads.fill_zero();
            let dh = head.backward(&head_tape, d_logits.view(), &mut grads.1)?;
            net.backward_params(&tape, dh.view(), None, &mut grads.0)?; // cut at the window's start
            clip_grad_norm(&mut grads, args.clip as f32)?;
            opt.step(&mut model, &grads)?;
            sched.step();
            state = Some(last);
            step += 1;

            let bpc = f64::from(loss) / std::f64::consts::LN_2;
            history.push((step as f64, bpc));
            progress.record(step, bpc); // the loss column is the training bpc
            if step.is_multiple_of(args.eval_every) || step == stop {
                let e = held_out_bpc(&model, held, v);
                println!("      held-out bpc {e:.4}  (lr {:.2e})", sched.lr());
                evals.push((step as f64, e));
            }
            if step.is_multiple_of(args.ckpt_every) || step == stop {
                save_checkpoint(&ckpt, &model, &opt, step as u64)?;
                save_sidecar::<C>(&sidecar, step, state.as_ref(), &history, &evals, &settings)?;
            }
            if step >= stop {
                break 'training;
            }
        }
    }
    let train_seconds = progress.elapsed();

    let (uni_train, uni_held) = unigram_bits(corpus);
    let uniform = (v as f64).log2();
    let final_bpc = match evals.last() {
        Some(&(s, e)) if s as usize == step => e,
        _ => held_out_bpc(&model, held, v),
    };
    println!(
        "\nheld-out bits per character (last 10% of the text, {} chars):",
        held.len()
    );
    println!("  model                      {final_bpc:.4} bpc");
    println!(
        "  unigram baseline           {uni_held:.4} bpc  (training-text entropy {uni_train:.4})"
    );
    println!("  uniform baseline log2({v})  {uniform:.4} bpc");
    println!(
        "  model / unigram            {:.1}%",
        100.0 * final_bpc / uni_held
    );
    if step > 0 && !history.is_empty() {
        let chart = plot::Chart::new(format!(
            "char_lm: {} {}×{hdim} on Genesis (KJV)",
            args.cell.to_uppercase(),
            args.layers
        ))
        .x_label("step")
        .y_label("bits per character")
        .line("training (bucket means)", plot::downsample(&history, 300))
        .series(
            "held-out",
            evals.clone(),
            plot::Style::Dots,
            Some("#d62728"),
        )
        .hline(format!("unigram {uni_held:.2}"), uni_held)
        .hline(format!("uniform log2({v}) {uniform:.2}"), uniform);
        let svg = args.out.join("char_lm.svg");
        if let Err(e) = chart.save(&svg) {
            eprintln!("could not write {}: {e}", svg.display());
            std::process::exit(1);
        }
        println!("plot: {}\ncheckpoint: {}", svg.display(), ckpt.display());
    }
    println!(
        "trained {step} steps; this run {train_seconds:.1}s; weights fingerprint {:016x}",
        model.fingerprint()
    );

    if args.sample_len > 0 {
        let mut sample_rng = StdRng::seed_from_u64(args.seed.wrapping_add(7));
        let text = sample(
            &model,
            corpus,
            &args.prime,
            args.sample_len,
            args.temperature,
            &mut sample_rng,
        );
        println!("\nsample (temperature {}):\n{text}", args.temperature);
    }
    Ok(())
}

fn main() {
    if let Err(e) = run_main() {
        eprintln!("char_lm: {e}");
        std::process::exit(1);
    }
}

fn run_main() -> recurrent::Result<()> {
    let args = parse_args();
    let owned;
    let text = match &args.text {
        Some(path) => {
            owned = std::fs::read_to_string(path).unwrap_or_else(|e| {
                eprintln!("char_lm: cannot read {}: {e}", path.display());
                std::process::exit(2)
            });
            owned.as_str()
        }
        None => GENESIS,
    };
    let corpus = Corpus::new(text);
    if corpus.ids.len() < 100 {
        eprintln!("char_lm: the text has only {} characters", corpus.ids.len());
        std::process::exit(2);
    }
    match args.cell.as_str() {
        "gru" => run::<GruCell<f32>>(&args, &corpus),
        _ => run::<LstmCell<f32>>(&args, &corpus),
    }
}
