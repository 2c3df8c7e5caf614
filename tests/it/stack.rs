//! Stacked, bidirectional and variable-length networks (`Rnn`, `Lstm`, `Gru`, `Bidirectional`):
//! PyTorch parity on every fixture, gradient checks over the whole grid, per-sequence equivalence,
//! dropout, batch-first layout.

use crate::common::*;
use ndarray::{s, Array2, Array3, ArrayD, Ix3};
use recurrent::{
    cell::{CellInit, Stacked},
    Bidirectional, Cell, Float, Gru, GruCell, Lstm, LstmCell, LstmState, MergeMode, Nonlinearity,
    Params, RecurrentStack, Rnn, RnnCell, StackConfig, State,
};

// ---------------------------------------------------------------------------------------------
// PyTorch parity on tests/fixtures/{kind}_{uni|bi}_{L}l_{full|packed}[_nobias]_{f32|f64}.

/// Loads the network through the public loader, `RecurrentStack::load_safetensors`, which infers
/// the configuration from the keys; checks it against the fixture's metadata.
fn stack_from_fixture<F: Float, C: CellInit<F>>(fx: &Fixture) -> RecurrentStack<C> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{}.safetensors", fx.name));
    let net = RecurrentStack::<C>::load_safetensors(&path, "").unwrap();
    let c = net.config();
    assert_eq!(
        c.num_layers.to_string(),
        fx.meta("num_layers"),
        "{}",
        fx.name
    );
    assert_eq!(
        c.bidirectional.to_string(),
        fx.meta("bidirectional"),
        "{}",
        fx.name
    );
    assert_eq!(c.bias.to_string(), fx.meta("bias"), "{}", fx.name);
    assert_eq!(
        (c.input_size.to_string(), c.hidden_size.to_string()),
        (fx.meta("I").to_string(), fx.meta("H").to_string())
    );
    // Our names, in order, are PyTorch's registration order recorded by the script.
    assert_eq!(net.names().join(","), fx.meta("param_names"), "{}", fx.name);
    net
}

/// The file cannot say the RNN's nonlinearity: the fixture's metadata does.
fn relu_if_needed<F: Float, C: CellInit<F>>(
    net: RecurrentStack<C>,
    fx: &Fixture,
) -> RecurrentStack<C> {
    if fx.meta("kind") != "rnn_relu" {
        return net;
    }
    // Rebuild the cells with ReLU through the public `from_cells`.
    let config = net.config().with_nonlinearity(Nonlinearity::Relu);
    let cells = (0..config.num_layers)
        .flat_map(|l| {
            net.layer(l)
                .iter()
                .map(|c| {
                    C::cell_from_weights(c.cell_weights().clone(), Nonlinearity::Relu).unwrap()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    RecurrentStack::from_cells(config, cells).unwrap()
}

fn a3<F: Float>(a: ArrayD<F>) -> Array3<F> {
    a.into_dimensionality::<Ix3>().unwrap()
}

/// Loads a fixture, runs forward and backward, compares output, final states and every gradient.
fn parity<F: Float, C: CellInit<F>>(
    fx: &Fixture,
    init: Stacked<F, C>,
    d_final: Stacked<F, C>,
    (tol, floor): (f64, f64),
) where
    C::State: State<F>,
{
    let name = &fx.name;
    let net: RecurrentStack<C> = stack_from_fixture(fx);
    let net = relu_if_needed(net, fx);
    let x = a3::<F>(fx.get("input"));
    let lengths: Vec<usize> = fx
        .get::<f64>("lengths")
        .iter()
        .map(|&v| v as usize)
        .collect();
    let packed = fx.meta("packed") == "true";
    let lengths_arg = packed.then_some(lengths.as_slice());
    let (out, last, tape) = net.forward(x.view(), Some(&init), lengths_arg).unwrap();
    assert_close(
        &out.view().into_dyn(),
        &fx.get::<F>("output").view(),
        tol,
        floor,
        &format!("{name} output"),
    );
    for (part, a) in C::State::stacked_parts(&last) {
        let want = fx.get::<F>(&format!("{part}_n"));
        assert_close(
            &a.into_dyn(),
            &want.view(),
            tol,
            floor,
            &format!("{name} {part}_n"),
        );
    }
    let d_out = a3::<F>(fx.get("d_output"));
    let mut grads = net.zeros_like();
    let (dx, d_init) = net
        .backward(&tape, d_out.view(), Some(&d_final), &mut grads)
        .unwrap();
    assert_close(
        &dx.view().into_dyn(),
        &fx.get::<F>("grad.input").view(),
        tol,
        floor,
        &format!("{name} grad.input"),
    );
    for (part, a) in C::State::stacked_parts(&d_init) {
        let want = fx.get::<F>(&format!("grad.{part}0"));
        assert_close(
            &a.into_dyn(),
            &want.view(),
            tol,
            floor,
            &format!("{name} grad.{part}0"),
        );
    }
    for (key, g) in grads.named_arrays() {
        assert_close(
            &g,
            &fx.get::<F>(&format!("grad.{key}")).view(),
            tol,
            floor,
            &format!("{name} grad.{key}"),
        );
    }
}

fn stacked_files(kind: &str) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".safetensors")
                .to_string()
        })
        .filter(|n| {
            n.starts_with(&format!("{kind}_"))
                && (n.contains("_uni_") || n.contains("_bi_"))
                && n.contains("l_")
        })
        .collect();
    files.sort();
    files
}

const F64_TOL: (f64, f64) = (1e-10, 1e-12);
/// As in `pytorch_parity.rs`: 1e-5 relative to max(|value|, 0.1).
const F32_TOL: (f64, f64) = (1e-5, 1e-1);

fn h_parity<F: Float, C: CellInit<F, State = Array2<F>>>(fx: &Fixture, tol: (f64, f64)) {
    parity::<F, C>(fx, a3(fx.get("h0")), a3(fx.get("d_h_n")), tol);
}

fn lstm_parity<F: Float>(fx: &Fixture, tol: (f64, f64)) {
    let init = LstmState {
        h: a3::<F>(fx.get("h0")),
        c: a3(fx.get("c0")),
    };
    let d_final = LstmState {
        h: a3::<F>(fx.get("d_h_n")),
        c: a3(fx.get("d_c_n")),
    };
    parity::<F, LstmCell<F>>(fx, init, d_final, tol);
}

fn run_parity(kind: &str) -> usize {
    let files = stacked_files(kind);
    for file in &files {
        let fx = Fixture::load(file);
        let f64_file = file.ends_with("_f64");
        match (kind, f64_file) {
            ("lstm", true) => lstm_parity::<f64>(&fx, F64_TOL),
            ("lstm", false) => lstm_parity::<f32>(&fx, F32_TOL),
            ("gru", true) => h_parity::<f64, GruCell<f64>>(&fx, F64_TOL),
            ("gru", false) => h_parity::<f32, GruCell<f32>>(&fx, F32_TOL),
            (_, true) => h_parity::<f64, RnnCell<f64>>(&fx, F64_TOL),
            (_, false) => h_parity::<f32, RnnCell<f32>>(&fx, F32_TOL),
        }
    }
    files.len()
}

#[test]
fn rnn_tanh_stacks_match_pytorch() {
    assert_eq!(run_parity("rnn_tanh"), 26);
}

#[test]
fn rnn_relu_stacks_match_pytorch() {
    assert_eq!(run_parity("rnn_relu"), 26);
}

#[test]
fn lstm_stacks_match_pytorch() {
    assert_eq!(run_parity("lstm"), 26);
}

#[test]
fn gru_stacks_match_pytorch() {
    assert_eq!(run_parity("gru"), 26);
}

// ---------------------------------------------------------------------------------------------
// Gradient checks over cell × {uni, bi} × {1, 2 layers} × {full, mixed lengths}.

const T: usize = 5;
const B: usize = 3;
const I: usize = 3;
const H: usize = 3;
const MIXED: [usize; 3] = [2, 5, 4];

/// Random stacked state `(n, B, H)`.
fn rand_stacked<C: Cell<f64>>(n: usize, scale: f64, r: &mut rand::rngs::StdRng) -> Stacked<f64, C> {
    let states: Vec<C::State> = (0..n).map(|_| rand_state(B, H, scale, r)).collect();
    C::State::stack(&states)
}

fn stacked_loss<C: Cell<f64>>(
    out: &Array3<f64>,
    last: &Stacked<f64, C>,
    w_out: &Array3<f64>,
    w_final: &Stacked<f64, C>,
) -> f64 {
    let mut l: f64 = out.iter().zip(w_out).map(|(a, b)| a * b).sum();
    for ((_, a), (_, b)) in C::State::stacked_parts(last)
        .into_iter()
        .zip(C::State::stacked_parts(w_final))
    {
        l += a.iter().zip(b.iter()).map(|(a, b)| a * b).sum::<f64>();
    }
    l
}

/// Central differences of the weighted loss against `backward`, for every parameter, the input
/// and every part of the initial states. With `train_seed`, the network runs in training mode
/// with dropout masks drawn from that seed (the same masks for every evaluation).
fn gradcheck_stack<C: Cell<f64>>(
    net: &RecurrentStack<C>,
    lengths: Option<&[usize]>,
    train_seed: Option<u64>,
    seed: u64,
) {
    let mut r = rng(seed);
    let n = net.config().num_layers * net.config().num_directions();
    let x: Array3<f64> = randn3((T, B, I), 1.0, &mut r);
    let init = rand_stacked::<C>(n, 0.5, &mut r);
    let run = |m: &RecurrentStack<C>, x: &Array3<f64>, init: &Stacked<f64, C>| match train_seed {
        Some(s) => m
            .forward_train(x.view(), Some(init), lengths, &mut rng(s))
            .unwrap(),
        None => m.forward(x.view(), Some(init), lengths).unwrap(),
    };
    let (out, _, tape) = run(net, &x, &init);
    let w_out: Array3<f64> = randn3(out.dim(), 1.0, &mut r);
    let w_final = rand_stacked::<C>(n, 1.0, &mut r);
    let loss = |m: &RecurrentStack<C>, x: &Array3<f64>, init: &Stacked<f64, C>| {
        let (o, last, _) = run(m, x, init);
        stacked_loss::<C>(&o, &last, &w_out, &w_final)
    };
    let mut grads = net.zeros_like();
    let (dx, d_init) = net
        .backward(&tape, w_out.view(), Some(&w_final), &mut grads)
        .unwrap();
    // Step 1e-5: the loss sums many O(1) terms, so a smaller step lets rounding (≈1e-16·|L|/eps)
    // dominate; at 1e-5 both rounding and truncation error are ≈1e-10.
    let eps = 1e-5;
    let check = |label: &str, ana: f64, num: f64| {
        let err = (ana - num).abs() / ana.abs().max(num.abs()).max(1e-3);
        assert!(
            err <= 1e-6,
            "{label}: analytic {ana}, numeric {num}, rel err {err:.2e}"
        );
    };
    let mut probe = net.clone();
    for (k, name) in net.names().iter().enumerate() {
        let len = probe.arrays()[k].len();
        for e in 0..len {
            let orig = *probe.arrays()[k].iter().nth(e).unwrap();
            *probe.arrays_mut()[k].iter_mut().nth(e).unwrap() = orig + eps;
            let plus = loss(&probe, &x, &init);
            *probe.arrays_mut()[k].iter_mut().nth(e).unwrap() = orig - eps;
            let minus = loss(&probe, &x, &init);
            *probe.arrays_mut()[k].iter_mut().nth(e).unwrap() = orig;
            check(
                &format!("{name}[{e}]"),
                *grads.arrays()[k].iter().nth(e).unwrap(),
                (plus - minus) / (2.0 * eps),
            );
        }
    }
    for (idx, &ana) in dx.indexed_iter() {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[idx] += eps;
        xm[idx] -= eps;
        check(
            &format!("input{idx:?}"),
            ana,
            (loss(net, &xp, &init) - loss(net, &xm, &init)) / (2.0 * eps),
        );
    }
    let d_parts: Vec<Array3<f64>> = C::State::stacked_parts(&d_init)
        .into_iter()
        .map(|(_, a)| a.to_owned())
        .collect();
    let states = C::State::unstack(&init);
    for (p, d_part) in d_parts.iter().enumerate() {
        for (idx, &ana) in d_part.indexed_iter() {
            let (k, b, j) = idx;
            let shifted = |delta: f64| {
                let mut s = states.clone();
                s[k].parts_mut()[p][(b, j)] += delta;
                C::State::stack(&s)
            };
            let num = (loss(net, &x, &shifted(eps)) - loss(net, &x, &shifted(-eps))) / (2.0 * eps);
            check(&format!("init part {p} {idx:?}"), ana, num);
        }
    }
}

fn grid<C: CellInit<f64>>(nonlinearity: Nonlinearity, seed: u64) {
    for bi in [false, true] {
        for layers in [1, 2] {
            for lengths in [None, Some(&MIXED[..])] {
                let config = StackConfig::new(I, H)
                    .with_num_layers(layers)
                    .with_bidirectional(bi)
                    .with_nonlinearity(nonlinearity);
                let net = RecurrentStack::<C>::new(config, &mut rng(seed)).unwrap();
                gradcheck_stack(&net, lengths, None, seed + 1);
            }
        }
    }
}

#[test]
fn gradcheck_rnn_grid() {
    grid::<RnnCell<f64>>(Nonlinearity::Tanh, 100);
    grid::<RnnCell<f64>>(Nonlinearity::Relu, 110);
}

#[test]
fn gradcheck_lstm_grid() {
    grid::<LstmCell<f64>>(Nonlinearity::Tanh, 200);
}

#[test]
fn gradcheck_gru_grid() {
    grid::<GruCell<f64>>(Nonlinearity::Tanh, 300);
}

#[test]
fn gradcheck_without_bias() {
    let config = StackConfig::new(I, H)
        .with_num_layers(2)
        .with_bidirectional(true)
        .with_bias(false);
    gradcheck_stack(
        &Gru::<f64>::new(config, &mut rng(400)).unwrap(),
        Some(&MIXED),
        None,
        401,
    );
    gradcheck_stack(
        &Lstm::<f64>::new(config, &mut rng(402)).unwrap(),
        Some(&MIXED),
        None,
        403,
    );
}

// ---------------------------------------------------------------------------------------------
// Dropout.

fn dropout_net(p: f64) -> Lstm<f64> {
    let config = StackConfig::new(I, H)
        .with_num_layers(3)
        .with_bidirectional(true)
        .with_dropout(p);
    Lstm::new(config, &mut rng(500)).unwrap()
}

#[test]
fn dropout_zero_equals_no_dropout() {
    let x: Array3<f64> = randn3((T, B, I), 1.0, &mut rng(501));
    let with = dropout_net(0.0);
    let (a, sa, _) = with
        .forward_train(x.view(), None, Some(&MIXED), &mut rng(7))
        .unwrap();
    let (b, sb, _) = with.forward(x.view(), None, Some(&MIXED)).unwrap();
    assert_eq!(a, b);
    assert_eq!(sa, sb);
}

#[test]
fn dropout_in_training_mode_gradcheck_with_fixed_mask() {
    let net = dropout_net(0.4);
    // The masks really drop something: training output differs from evaluation output.
    let x: Array3<f64> = randn3((T, B, I), 1.0, &mut rng(502));
    let (train, _, _) = net
        .forward_train(x.view(), None, None, &mut rng(9))
        .unwrap();
    let (eval, _) = net.infer(x.view(), None, None).unwrap();
    assert!((&train - &eval).iter().any(|v| v.abs() > 1e-3));
    gradcheck_stack(&net, Some(&MIXED), Some(9), 503);
}

#[test]
fn dropout_masks_are_inverted_and_fresh() {
    // One layer feeding an identity-like second layer is hard to observe directly; instead check
    // the mask statistics through the tape-free path: with p = 0.5 the outputs of a 2-layer RNN
    // in training mode differ between seeds and are reproducible for one seed.
    let config = StackConfig::new(I, H).with_num_layers(2).with_dropout(0.5);
    let net = Rnn::<f64>::new(config, &mut rng(504)).unwrap();
    let x: Array3<f64> = randn3((T, B, I), 1.0, &mut rng(505));
    let (a, _, _) = net
        .forward_train(x.view(), None, None, &mut rng(1))
        .unwrap();
    let (b, _, _) = net
        .forward_train(x.view(), None, None, &mut rng(1))
        .unwrap();
    let (c, _, _) = net
        .forward_train(x.view(), None, None, &mut rng(2))
        .unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn evaluation_mode_is_deterministic() {
    let net = dropout_net(0.5);
    let x: Array3<f64> = randn3((T, B, I), 1.0, &mut rng(506));
    let (a, sa) = net.infer(x.view(), None, Some(&MIXED)).unwrap();
    let (b, sb) = net.infer(x.view(), None, Some(&MIXED)).unwrap();
    let (c, sc, _) = net.forward(x.view(), None, Some(&MIXED)).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(sa, sb);
    assert_eq!(sa, sc);
}

// ---------------------------------------------------------------------------------------------
// Variable lengths equal running each sequence alone; Bidirectional wrapper; batch-first.

/// Each sequence run alone (batch of one, its true length, no lengths argument) gives the batched
/// run's outputs, final states, input and initial-state gradients; parameter gradients add up.
fn each_sequence_alone<C: CellInit<f64>>(config: StackConfig, seed: u64) {
    let net = RecurrentStack::<C>::new(config, &mut rng(seed)).unwrap();
    let n = config.num_layers * config.num_directions();
    let mut r = rng(seed + 1);
    let x: Array3<f64> = randn3((T, B, I), 1.0, &mut r);
    let init = rand_stacked::<C>(n, 0.5, &mut r);
    let d_out: Array3<f64> = randn3((T, B, net.output_size()), 1.0, &mut r);
    let d_final = rand_stacked::<C>(n, 1.0, &mut r);
    let (out, last, tape) = net.forward(x.view(), Some(&init), Some(&MIXED)).unwrap();
    let mut grads = net.zeros_like();
    let (dx, d_init) = net
        .backward(&tape, d_out.view(), Some(&d_final), &mut grads)
        .unwrap();

    let mut grads_sum = net.zeros_like();
    let select = |s: &Stacked<f64, C>, b: usize| {
        let states: Vec<C::State> = C::State::unstack(s)
            .into_iter()
            .map(|st| {
                let mut one = C::State::zeros(1, H);
                for (mut dst, (_, src)) in one.parts_mut().into_iter().zip(st.parts()) {
                    dst.assign(&src.slice(s![b..b + 1, ..]));
                }
                one
            })
            .collect();
        C::State::stack(&states)
    };
    for (b, &len) in MIXED.iter().enumerate() {
        let xb = x.slice(s![..len, b..b + 1, ..]).to_owned();
        let (ob, lb, tb) = net
            .forward(xb.view(), Some(&select(&init, b)), None)
            .unwrap();
        let close = |a: ndarray::ArrayViewD<f64>, e: ndarray::ArrayViewD<f64>, what: &str| {
            assert_close(&a, &e, 1e-12, 1e-12, &format!("sequence {b}: {what}"))
        };
        close(
            ob.view().into_dyn(),
            out.slice(s![..len, b..b + 1, ..]).into_dyn(),
            "output",
        );
        for ((_, a), (_, e)) in C::State::stacked_parts(&lb)
            .into_iter()
            .zip(C::State::stacked_parts(&last))
        {
            close(
                a.into_dyn(),
                e.slice(s![.., b..b + 1, ..]).into_dyn(),
                "final state",
            );
        }
        let d_ob = d_out.slice(s![..len, b..b + 1, ..]).to_owned();
        let (dxb, d0b) = net
            .backward(&tb, d_ob.view(), Some(&select(&d_final, b)), &mut grads_sum)
            .unwrap();
        close(
            dxb.view().into_dyn(),
            dx.slice(s![..len, b..b + 1, ..]).into_dyn(),
            "dx",
        );
        for ((_, a), (_, e)) in C::State::stacked_parts(&d0b)
            .into_iter()
            .zip(C::State::stacked_parts(&d_init))
        {
            close(
                a.into_dyn(),
                e.slice(s![.., b..b + 1, ..]).into_dyn(),
                "d_init",
            );
        }
        // Padded steps: zero output, zero input gradient.
        assert!(out.slice(s![len.., b, ..]).iter().all(|&v| v == 0.0));
        assert!(dx.slice(s![len.., b, ..]).iter().all(|&v| v == 0.0));
    }
    for ((name, a), (_, e)) in grads_sum
        .named_arrays()
        .into_iter()
        .zip(grads.named_arrays())
    {
        assert_close(&a, &e, 1e-11, 1e-12, &format!("summed {name}"));
    }
}

#[test]
fn bidirectional_lengths_equal_each_sequence_alone() {
    let config = StackConfig::new(I, H).with_bidirectional(true);
    each_sequence_alone::<LstmCell<f64>>(config, 600);
    each_sequence_alone::<GruCell<f64>>(config.with_num_layers(2), 610);
    each_sequence_alone::<RnnCell<f64>>(config.with_num_layers(3), 620);
    each_sequence_alone::<LstmCell<f64>>(config.with_bidirectional(false).with_num_layers(2), 630);
}

/// The `Bidirectional` wrapper with concatenation equals a one-layer bidirectional stack, and every
/// merge mode passes a gradient check.
#[test]
fn bidirectional_wrapper() {
    let config = StackConfig::new(I, H).with_bidirectional(true);
    let net = Lstm::<f64>::new(config, &mut rng(700)).unwrap();
    let cells = net.layer(0);
    let bi = Bidirectional::new(cells[0].clone(), cells[1].clone()).unwrap();
    assert_eq!(bi.names(), net.names());
    let mut r = rng(701);
    let x: Array3<f64> = randn3((T, B, I), 1.0, &mut r);
    let (a, sa, _) = net.forward(x.view(), None, Some(&MIXED)).unwrap();
    let (b, sb, _) = bi.forward(x.view(), None, Some(&MIXED)).unwrap();
    assert_eq!(a, b);
    assert_eq!(sa, sb);

    for merge in [
        MergeMode::Concat,
        MergeMode::Sum,
        MergeMode::Mean,
        MergeMode::Mul,
    ] {
        let bi = bi.clone().with_merge(merge);
        let init = rand_stacked::<LstmCell<f64>>(2, 0.5, &mut r);
        let (out, _, tape) = bi.forward(x.view(), Some(&init), Some(&MIXED)).unwrap();
        assert_eq!(
            out.dim().2,
            if merge == MergeMode::Concat { 2 * H } else { H }
        );
        let w_out: Array3<f64> = randn3(out.dim(), 1.0, &mut r);
        let w_final = rand_stacked::<LstmCell<f64>>(2, 1.0, &mut r);
        let loss = |m: &Bidirectional<LstmCell<f64>>, x: &Array3<f64>| {
            let (o, last) = m.infer(x.view(), Some(&init), Some(&MIXED)).unwrap();
            stacked_loss::<LstmCell<f64>>(&o, &last, &w_out, &w_final)
        };
        let mut grads = bi.zeros_like();
        let (dx, _) = bi
            .backward(&tape, w_out.view(), Some(&w_final), &mut grads)
            .unwrap();
        let eps = 1e-5;
        for (idx, &ana) in dx.indexed_iter() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[idx] += eps;
            xm[idx] -= eps;
            let num = (loss(&bi, &xp) - loss(&bi, &xm)) / (2.0 * eps);
            assert!(
                (ana - num).abs() <= 1e-6 * ana.abs().max(num.abs()).max(1e-3),
                "{merge:?} dx{idx:?}: {ana} vs {num}"
            );
        }
        let mut probe = bi.clone();
        for k in 0..probe.names().len() {
            let len = probe.arrays()[k].len();
            for e in 0..len {
                let orig = *probe.arrays()[k].iter().nth(e).unwrap();
                *probe.arrays_mut()[k].iter_mut().nth(e).unwrap() = orig + eps;
                let plus = loss(&probe, &x);
                *probe.arrays_mut()[k].iter_mut().nth(e).unwrap() = orig - eps;
                let minus = loss(&probe, &x);
                *probe.arrays_mut()[k].iter_mut().nth(e).unwrap() = orig;
                let num = (plus - minus) / (2.0 * eps);
                let ana = *grads.arrays()[k].iter().nth(e).unwrap();
                assert!(
                    (ana - num).abs() <= 1e-6 * ana.abs().max(num.abs()).max(1e-3),
                    "{merge:?} array {k}[{e}]: {ana} vs {num}"
                );
            }
        }
    }
}

/// `Recurrent` with `lengths` computes what a one-layer unidirectional stack computes (outputs,
/// final state, every gradient), and its gradients pass a central-difference check with padding.
#[test]
fn recurrent_with_lengths_equals_one_layer_stack() {
    let net = Gru::<f64>::new(StackConfig::new(I, H), &mut rng(720)).unwrap();
    let layer = recurrent::Recurrent::new(net.layer(0)[0].clone());
    assert_eq!(layer.names(), net.names());
    let mut r = rng(721);
    let x: Array3<f64> = randn3((T, B, I), 1.0, &mut r);
    let init = rand_stacked::<GruCell<f64>>(1, 0.5, &mut r);
    let init_one = init.index_axis(ndarray::Axis(0), 0).to_owned();
    let (a, sa, ta) = net.forward(x.view(), Some(&init), Some(&MIXED)).unwrap();
    let (b, sb, tb) = layer
        .forward(x.view(), Some(&init_one), Some(&MIXED))
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(sa.index_axis(ndarray::Axis(0), 0), sb);
    // Padded steps output zeros.
    for (bi, &len) in MIXED.iter().enumerate() {
        assert!(b.slice(s![len.., bi, ..]).iter().all(|&v| v == 0.0));
    }
    let w_out: Array3<f64> = randn3(a.dim(), 1.0, &mut r);
    let w_final = rand_stacked::<GruCell<f64>>(1, 1.0, &mut r);
    let w_final_one = w_final.index_axis(ndarray::Axis(0), 0).to_owned();
    let mut ga = net.zeros_like();
    let (dxa, d0a) = net
        .backward(&ta, w_out.view(), Some(&w_final), &mut ga)
        .unwrap();
    let mut gb = layer.zeros_like();
    let (dxb, d0b) = layer
        .backward(&tb, w_out.view(), Some(&w_final_one), &mut gb)
        .unwrap();
    assert_eq!(dxa, dxb);
    assert_eq!(d0a.index_axis(ndarray::Axis(0), 0), d0b);
    assert_eq!(ga.arrays(), gb.arrays());

    // Central differences through `Recurrent::infer` with the same lengths.
    let loss = |m: &recurrent::Recurrent<GruCell<f64>>, x: &Array3<f64>| {
        let (o, last) = m.infer(x.view(), Some(&init_one), Some(&MIXED)).unwrap();
        (&o * &w_out).sum() + (&last * &w_final_one).sum()
    };
    let eps = 1e-5;
    let close = |ana: f64, num: f64| (ana - num).abs() <= 1e-6 * ana.abs().max(num.abs()).max(1e-3);
    for (idx, &ana) in dxb.indexed_iter() {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[idx] += eps;
        xm[idx] -= eps;
        let num = (loss(&layer, &xp) - loss(&layer, &xm)) / (2.0 * eps);
        assert!(close(ana, num), "dx{idx:?}: {ana} vs {num}");
    }
    let mut probe = layer.clone();
    for k in 0..probe.names().len() {
        for e in 0..probe.arrays()[k].len() {
            let orig = *probe.arrays()[k].iter().nth(e).unwrap();
            *probe.arrays_mut()[k].iter_mut().nth(e).unwrap() = orig + eps;
            let plus = loss(&probe, &x);
            *probe.arrays_mut()[k].iter_mut().nth(e).unwrap() = orig - eps;
            let minus = loss(&probe, &x);
            *probe.arrays_mut()[k].iter_mut().nth(e).unwrap() = orig;
            let ana = *gb.arrays()[k].iter().nth(e).unwrap();
            let num = (plus - minus) / (2.0 * eps);
            assert!(close(ana, num), "array {k}[{e}]: {ana} vs {num}");
        }
    }
    // Bad lengths are an error, not a panic.
    let err = layer.forward(x.view(), None, Some(&[1, 2])).unwrap_err();
    assert!(matches!(err, recurrent::Error::InvalidConfig(_)), "{err}");
}

/// `batch_first` takes and returns `(B, T, F)` and computes the same numbers.
#[test]
fn batch_first_equals_time_major() {
    let config = StackConfig::new(I, H)
        .with_num_layers(2)
        .with_bidirectional(true);
    let tm = Gru::<f64>::new(config, &mut rng(800)).unwrap();
    let bf = Gru::<f64>::new(config.with_batch_first(true), &mut rng(800)).unwrap();
    let x: Array3<f64> = randn3((T, B, I), 1.0, &mut rng(801));
    let x_bf = x
        .clone()
        .permuted_axes([1, 0, 2])
        .as_standard_layout()
        .into_owned();
    let (o_tm, s_tm, t_tm) = tm.forward(x.view(), None, Some(&MIXED)).unwrap();
    let (o_bf, s_bf, t_bf) = bf.forward(x_bf.view(), None, Some(&MIXED)).unwrap();
    assert_eq!(o_bf.dim(), (B, T, 2 * H));
    assert_eq!(o_bf, o_tm.clone().permuted_axes([1, 0, 2]));
    assert_eq!(s_bf, s_tm);
    let d: Array3<f64> = randn3(o_tm.dim(), 1.0, &mut rng(802));
    let d_bf = d
        .clone()
        .permuted_axes([1, 0, 2])
        .as_standard_layout()
        .into_owned();
    let (mut g_tm, mut g_bf) = (tm.zeros_like(), bf.zeros_like());
    let (dx_tm, _) = tm.backward(&t_tm, d.view(), None, &mut g_tm).unwrap();
    let (dx_bf, _) = bf.backward(&t_bf, d_bf.view(), None, &mut g_bf).unwrap();
    assert_eq!(dx_bf, dx_tm.permuted_axes([1, 0, 2]));
    assert_eq!(g_bf.arrays(), g_tm.arrays());
}

/// A stack's parameters are listed in PyTorch's registration order.
#[test]
fn parameter_order_is_pytorch_registration_order() {
    let config = StackConfig::new(I, H)
        .with_num_layers(2)
        .with_bidirectional(true);
    let net = Lstm::<f32>::new(config, &mut rng(900)).unwrap();
    let expected = "weight_ih_l0,weight_hh_l0,bias_ih_l0,bias_hh_l0,weight_ih_l0_reverse,weight_hh_l0_reverse,\
                    bias_ih_l0_reverse,bias_hh_l0_reverse,weight_ih_l1,weight_hh_l1,bias_ih_l1,bias_hh_l1,\
                    weight_ih_l1_reverse,weight_hh_l1_reverse,bias_ih_l1_reverse,bias_hh_l1_reverse";
    assert_eq!(net.names().join(","), expected);
    assert_eq!(net.layer(1)[0].input_size(), 2 * H);
}

/// `backward_params` adds exactly the parameter gradients of `backward` and returns the same
/// initial-state gradients: only the input gradient is left out.
fn params_only_equals_full_backward<C: CellInit<f64>>(config: StackConfig, seed: u64) {
    let net = RecurrentStack::<C>::new::<f64, _>(config, &mut rng(seed)).unwrap();
    let mut r = rng(seed + 1);
    let n = config.num_layers * config.num_directions();
    let x: Array3<f64> = randn3((T, B, I), 1.0, &mut r);
    let d_out: Array3<f64> = randn3((T, B, net.output_size()), 1.0, &mut r);
    let d_final = rand_stacked::<C>(n, 1.0, &mut r);
    let (_, _, tape) = net
        .forward_train(x.view(), None, Some(&MIXED), &mut rng(seed + 2))
        .unwrap();
    let mut g_full = net.zeros_like();
    let (dx, d0_full) = net
        .backward(&tape, d_out.view(), Some(&d_final), &mut g_full)
        .unwrap();
    assert!(dx.iter().any(|v| *v != 0.0));
    let mut g_params = net.zeros_like();
    let d0_params = net
        .backward_params(&tape, d_out.view(), Some(&d_final), &mut g_params)
        .unwrap();
    assert!(g_full.global_norm() > 0.0);
    for ((name, a), (_, b)) in g_full
        .named_arrays()
        .into_iter()
        .zip(g_params.named_arrays())
    {
        assert_eq!(a, b, "{name}");
    }
    for ((name, a), (_, b)) in C::State::stacked_parts(&d0_full)
        .into_iter()
        .zip(C::State::stacked_parts(&d0_params))
    {
        assert_eq!(a, b, "d_init {name}");
    }
}

#[test]
fn backward_params_equals_backward_without_dx() {
    for (layers, bi) in [(1, false), (2, true), (3, false)] {
        let config = StackConfig::new(I, H)
            .with_num_layers(layers)
            .with_bidirectional(bi)
            .with_dropout(0.3);
        params_only_equals_full_backward::<LstmCell<f64>>(config, 700);
        params_only_equals_full_backward::<GruCell<f64>>(config, 710);
        params_only_equals_full_backward::<RnnCell<f64>>(config, 720);
    }
}

/// The single-layer types' `backward_params` agree with their `backward` too.
#[test]
fn layer_backward_params_equal_backward_without_dx() {
    fn check<C: Cell<f64> + Clone>(make: impl Fn(u64) -> C) {
        let mut r = rng(730);
        let x: Array3<f64> = randn3((T, B, I), 1.0, &mut r);
        let d_out: Array3<f64> = randn3((T, B, H), 1.0, &mut r);
        let layer = recurrent::Recurrent::new(make(1));
        let (_, _, tape) = layer.forward(x.view(), None, None).unwrap();
        let (mut g_full, mut g_params) = (layer.zeros_like(), layer.zeros_like());
        let (_, d0) = layer
            .backward(&tape, d_out.view(), None, &mut g_full)
            .unwrap();
        let d0p = layer
            .backward_params(&tape, d_out.view(), None, &mut g_params)
            .unwrap();
        assert_eq!(g_full.named_arrays(), g_params.named_arrays());
        for ((_, a), (_, b)) in d0.parts().into_iter().zip(d0p.parts()) {
            assert_eq!(a, b);
        }
        assert!(g_full.global_norm() > 0.0);
        for merge in [
            MergeMode::Concat,
            MergeMode::Sum,
            MergeMode::Mean,
            MergeMode::Mul,
        ] {
            let bi = Bidirectional::new(make(2), make(3))
                .unwrap()
                .with_merge(merge);
            let (out, _, tape) = bi.forward(x.view(), None, Some(&MIXED)).unwrap();
            let d: Array3<f64> = randn3(out.dim(), 1.0, &mut r);
            let (mut g_full, mut g_params) = (bi.zeros_like(), bi.zeros_like());
            let (_, d0) = bi.backward(&tape, d.view(), None, &mut g_full).unwrap();
            let d0p = bi
                .backward_params(&tape, d.view(), None, &mut g_params)
                .unwrap();
            assert_eq!(g_full.named_arrays(), g_params.named_arrays(), "{merge:?}");
            for ((_, a), (_, b)) in C::State::stacked_parts(&d0)
                .into_iter()
                .zip(C::State::stacked_parts(&d0p))
            {
                assert_eq!(a, b, "{merge:?}");
            }
        }
    }
    check(|s| LstmCell::<f64>::new(I, H, &mut rng(740 + s)).unwrap());
    check(|s| GruCell::<f64>::new(I, H, &mut rng(750 + s)).unwrap());
    check(|s| RnnCell::<f64>::new(I, H, Nonlinearity::Tanh, &mut rng(760 + s)).unwrap());
}

/// `last_hidden` is PyTorch's `cat([h_n[-2], h_n[-1]], 1)`, and `last_hidden_grad` routes a
/// gradient back: `backward` with it as `d_final` gives the gradient of `Σ W ⊙ last_hidden` with
/// respect to the input and every weight, checked against central differences in `f64` (a
/// 2-layer bidirectional LSTM with lengths, and a 1-layer GRU).
#[test]
fn last_hidden_and_its_gradient() {
    let mut r = rng(21);
    let config = StackConfig::new(3, 4)
        .with_num_layers(2)
        .with_bidirectional(true);
    let lstm = Lstm::<f64>::new(config, &mut r).unwrap();
    let x: Array3<f64> = randn3((5, 3, 3), 1.0, &mut r);
    let lengths = [5, 2, 4];
    let w: Array2<f64> = randn(&[3, 8], 1.0, &mut r).into_dimensionality().unwrap();
    let (_, finals, _) = lstm.forward(x.view(), None, Some(&lengths)).unwrap();
    let h = lstm.last_hidden(&finals).unwrap();
    let states = LstmState::unstack(&finals);
    assert_eq!(h.slice(s![.., ..4]), states[2].h());
    assert_eq!(h.slice(s![.., 4..]), states[3].h());
    check_last_hidden_gradient(&lstm, &x, Some(&lengths), &w);

    let gru = Gru::<f64>::new(StackConfig::new(3, 5), &mut r).unwrap();
    let w: Array2<f64> = randn(&[3, 5], 1.0, &mut r).into_dimensionality().unwrap();
    check_last_hidden_gradient(&gru, &x, None, &w);

    // Wrong shapes are errors: a gradient of (B, H) for a bidirectional network, and the
    // finals of a one-layer network with H = 4 given to one with H = 5.
    assert!(lstm
        .last_hidden_grad(Array2::<f64>::zeros((3, 4)).view())
        .is_err());
    let small = LstmState::stack(&[LstmState::<f64>::zeros(3, 4)]);
    let other = Lstm::<f64>::new(StackConfig::new(3, 5), &mut r).unwrap();
    assert!(matches!(
        other.last_hidden(&small),
        Err(recurrent::Error::Shape { .. })
    ));
}

fn check_last_hidden_gradient<C: CellInit<f64>>(
    net: &RecurrentStack<C>,
    x: &Array3<f64>,
    lengths: Option<&[usize]>,
    w: &Array2<f64>,
) {
    let loss = |net: &RecurrentStack<C>, x: &Array3<f64>| {
        let (_, finals, _) = net.forward(x.view(), None, lengths).unwrap();
        (net.last_hidden(&finals).unwrap() * w).sum()
    };
    let (output, _, tape) = net.forward(x.view(), None, lengths).unwrap();
    let d_final = net.last_hidden_grad(w.view()).unwrap();
    let mut grads = net.zeros_like();
    let (dx, _) = net
        .backward(
            &tape,
            Array3::zeros(output.raw_dim()).view(),
            Some(&d_final),
            &mut grads,
        )
        .unwrap();
    let eps = 1e-6;
    for idx in [(0, 0, 0), (1, 2, 1), (4, 0, 2), (3, 1, 0)] {
        let (mut plus, mut minus) = (x.clone(), x.clone());
        plus[idx] += eps;
        minus[idx] -= eps;
        let numeric = (loss(net, &plus) - loss(net, &minus)) / (2.0 * eps);
        assert!(
            (numeric - dx[idx]).abs() <= 1e-7 * numeric.abs().max(1.0),
            "dx{idx:?}: numeric {numeric}, analytic {}",
            dx[idx]
        );
    }
    for (k, (name, analytic)) in grads.named_arrays().into_iter().enumerate() {
        for flat in [0, 5] {
            let mut plus = net.clone();
            let mut minus = net.clone();
            plus.arrays_mut()[k].as_slice_mut().unwrap()[flat] += eps;
            minus.arrays_mut()[k].as_slice_mut().unwrap()[flat] -= eps;
            let numeric = (loss(&plus, x) - loss(&minus, x)) / (2.0 * eps);
            let analytic = analytic.as_slice().unwrap()[flat];
            assert!(
                (numeric - analytic).abs() <= 1e-7 * numeric.abs().max(1.0),
                "{name}[{flat}]: numeric {numeric}, analytic {analytic}"
            );
        }
    }
}

/// `backward` and `backward_params` take `None` for `d_output` (only the final states carry a
/// gradient): the same results as a zero `d_output`, for a stack, a single layer and a
/// bidirectional layer.
#[test]
fn backward_without_output_gradient() {
    let mut r = rng(31);
    let config = StackConfig::new(3, 4)
        .with_num_layers(2)
        .with_bidirectional(true);
    let net = Gru::<f64>::new(config, &mut r).unwrap();
    let x: Array3<f64> = randn3((4, 2, 3), 1.0, &mut r);
    let (out, finals, tape) = net.forward(x.view(), None, Some(&[4, 3])).unwrap();
    let d_final = net
        .last_hidden_grad(net.last_hidden(&finals).unwrap().view())
        .unwrap();
    let (mut g_none, mut g_zero) = (net.zeros_like(), net.zeros_like());
    let (dx_none, di_none) = net
        .backward(&tape, None, Some(&d_final), &mut g_none)
        .unwrap();
    let zeros = Array3::zeros(out.raw_dim());
    let (dx_zero, di_zero) = net
        .backward(&tape, zeros.view(), Some(&d_final), &mut g_zero)
        .unwrap();
    assert_eq!((dx_none, di_none), (dx_zero, di_zero));
    assert_eq!(g_none, g_zero);
    let mut g = net.zeros_like();
    net.backward_params(&tape, None, Some(&d_final), &mut g)
        .unwrap();
    assert_eq!(g, g_zero);

    let layer = recurrent::Recurrent::new(LstmCell::<f64>::new(3, 4, &mut r).unwrap());
    let (_, last, tape) = layer.forward(x.view(), None, None).unwrap();
    let mut g1 = layer.zeros_like();
    let (dx, _) = layer.backward(&tape, None, Some(&last), &mut g1).unwrap();
    assert!(dx.iter().any(|v| *v != 0.0));

    let bi = Bidirectional::new(
        GruCell::<f64>::new(3, 2, &mut r).unwrap(),
        GruCell::<f64>::new(3, 2, &mut r).unwrap(),
    )
    .unwrap();
    let (_, finals, tape) = bi.forward(x.view(), None, None).unwrap();
    let mut g2 = bi.zeros_like();
    bi.backward_params(&tape, None, Some(&finals), &mut g2)
        .unwrap();
    assert!(g2.global_norm() > 0.0);
}
