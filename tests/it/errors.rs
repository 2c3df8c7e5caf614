//! Every documented error: bad input returns `Err` with a message that says what was expected and
//! what came — never a panic.

use crate::common::*;
use ndarray::{arr1, arr2, Array1, Array2, Array3};
use recurrent::optim::{clip_grad_norm, AdamConfig, SgdConfig};
use recurrent::{
    cell::CellWeights, loss::mse_loss, Bidirectional, Error, Gru, GruCell, Linear, Lstm, LstmCell,
    LstmState, MergeMode, Nonlinearity, Params, Recurrent, RecurrentStack, Rnn, RnnCell,
    StackConfig,
};

fn lstm(i: usize, h: usize) -> Recurrent<LstmCell<f64>> {
    Recurrent::new(LstmCell::new(i, h, &mut rng(0)).unwrap())
}

fn msg<T: std::fmt::Debug>(r: recurrent::Result<T>) -> (Error, String) {
    let e = r.expect_err("expected an error");
    let m = e.to_string();
    (e, m)
}

#[test]
fn input_with_wrong_feature_count() {
    let layer = lstm(16, 4);
    let x = Array3::<f64>::zeros((5, 2, 17));
    let (e, m) = msg(layer.forward(x.view(), None, None));
    assert!(matches!(e, Error::Shape { .. }));
    assert!(m.contains("17 features given, the layer expects 16"), "{m}");
    assert!(m.contains("[5, 2, 17]"), "{m}");
    assert!(layer.infer(x.view(), None, None).is_err());
}

#[test]
fn empty_sequence_or_batch() {
    let layer = lstm(3, 4);
    for shape in [(0, 2, 3), (4, 0, 3)] {
        let (e, m) = msg(layer.forward(Array3::<f64>::zeros(shape).view(), None, None));
        assert!(matches!(e, Error::Shape { .. }), "{m}");
        assert!(m.contains("T ≥ 1 and B ≥ 1"), "{m}");
    }
}

#[test]
fn initial_state_with_wrong_shape() {
    let layer = lstm(3, 4);
    let x = Array3::<f64>::zeros((5, 2, 3));
    let bad_h = LstmState {
        h: Array2::zeros((3, 4)),
        c: Array2::zeros((2, 4)),
    };
    let (_, m) = msg(layer.forward(x.view(), Some(&bad_h), None));
    assert!(
        m.starts_with("init.h has shape [3, 4], expected (2, 4)"),
        "{m}"
    );
    let bad_c = LstmState {
        h: Array2::zeros((2, 4)),
        c: Array2::zeros((2, 5)),
    };
    let (_, m) = msg(layer.infer(x.view(), Some(&bad_c), None));
    assert!(m.starts_with("init.c has shape [2, 5]"), "{m}");

    let rnn = Recurrent::new(RnnCell::<f64>::new(3, 4, Nonlinearity::Tanh, &mut rng(1)).unwrap());
    let (_, m) = msg(rnn.forward(x.view(), Some(&Array2::zeros((2, 3))), None));
    assert!(m.contains("init.h"), "{m}");
}

#[test]
fn backward_with_wrong_gradient_shapes() {
    let layer = lstm(3, 4);
    let x = Array3::<f64>::zeros((5, 2, 3));
    let (_, _, tape) = layer.forward(x.view(), None, None).unwrap();
    let mut grads = layer.zeros_like();
    let (_, m) = msg(layer.backward(&tape, Array3::zeros((4, 2, 4)).view(), None, &mut grads));
    assert!(
        m.starts_with("d_output has shape [4, 2, 4], expected (5, 2, 4)"),
        "{m}"
    );
    let bad = LstmState {
        h: Array2::zeros((2, 4)),
        c: Array2::zeros((1, 4)),
    };
    let (_, m) = msg(layer.backward(
        &tape,
        Array3::zeros((5, 2, 4)).view(),
        Some(&bad),
        &mut grads,
    ));
    assert!(m.starts_with("d_final.c has shape [1, 4]"), "{m}");
    // Nothing was accumulated by the failed calls.
    assert_eq!(grads.global_norm(), 0.0);
}

#[test]
fn backward_with_mismatched_grads_or_tape() {
    let layer = lstm(3, 4);
    let other = lstm(3, 5);
    let x = Array3::<f64>::zeros((5, 2, 3));
    let (_, _, tape) = layer.forward(x.view(), None, None).unwrap();
    let mut wrong = other.zeros_like();
    let (e, m) = msg(layer.backward(&tape, Array3::zeros((5, 2, 4)).view(), None, &mut wrong));
    assert!(matches!(e, Error::Mismatch(_)), "{m}");
    assert!(m.contains("weight_ih_l0"), "{m}");
    let (_, _, other_tape) = other.forward(x.view(), None, None).unwrap();
    let mut grads = layer.zeros_like();
    let (e, m) = msg(layer.backward(
        &other_tape,
        Array3::zeros((5, 2, 4)).view(),
        None,
        &mut grads,
    ));
    assert!(matches!(e, Error::Mismatch(_)), "{m}");
    assert!(m.contains("hidden_size 5"), "{m}");
}

#[test]
fn weights_that_do_not_fit() {
    let ok = || CellWeights::<f64> {
        weight_ih: Array2::zeros((8, 3)),
        weight_hh: Array2::zeros((8, 2)),
        bias_ih: Some(Array1::zeros(8)),
        bias_hh: Some(Array1::zeros(8)),
        weight_hr: None,
    };
    assert!(LstmCell::from_weights(ok()).is_ok());
    // weight_hh must be (4H, H).
    let (_, m) = msg(RnnCell::from_weights(ok(), Nonlinearity::Tanh));
    assert!(
        m.starts_with("weight_hh has shape [8, 2], expected (1·H, H)"),
        "{m}"
    );
    let mut w = ok();
    w.weight_ih = Array2::zeros((7, 3));
    let (_, m) = msg(LstmCell::from_weights(w));
    assert!(
        m.starts_with("weight_ih has shape [7, 3], expected (8, I)"),
        "{m}"
    );
    let mut w = ok();
    w.bias_hh = Some(Array1::zeros(6));
    let (_, m) = msg(LstmCell::from_weights(w));
    assert!(m.starts_with("bias_hh has shape [6], expected (8)"), "{m}");
    let mut w = ok();
    w.bias_ih = None;
    let (e, _) = msg(LstmCell::from_weights(w));
    assert!(matches!(e, Error::InvalidConfig(_)));
}

#[test]
fn zero_sizes() {
    assert!(matches!(
        LstmCell::<f32>::new(0, 4, &mut rng(0)),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        RnnCell::<f32>::new(3, 0, Nonlinearity::Relu, &mut rng(0)),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        Linear::<f32>::new(0, 1, &mut rng(0)),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
fn linear_errors() {
    let head = Linear::<f64>::new(4, 2, &mut rng(0)).unwrap();
    let (_, m) = msg(head.forward(Array2::<f64>::zeros((3, 5)).view()));
    assert!(
        m.contains("the layer expects 4 features on the last axis"),
        "{m}"
    );
    let (_, tape) = head.forward(Array2::<f64>::zeros((3, 4)).view()).unwrap();
    let mut grads = head.zeros_like();
    let (_, m) = msg(head.backward(&tape, Array2::zeros((3, 3)).view(), &mut grads));
    assert!(
        m.starts_with("d_y has shape [3, 3], expected [3, 2]"),
        "{m}"
    );
    let (_, m) = msg(Linear::from_weights(
        arr2(&[[1.0, 2.0]]),
        Some(arr1(&[0.0, 0.0])),
    ));
    assert!(m.starts_with("bias has shape [2], expected (1)"), "{m}");
    let mut wrong = Linear::<f64>::new(4, 3, &mut rng(0)).unwrap();
    let (e, _) = msg(head.backward(&tape, Array2::zeros((3, 2)).view(), &mut wrong));
    assert!(matches!(e, Error::Mismatch(_)));
}

#[test]
fn mse_errors() {
    let (_, m) = msg(mse_loss(
        Array2::<f64>::zeros((2, 3)).view(),
        Array2::zeros((3, 2)).view(),
    ));
    assert!(
        m.starts_with("target has shape [3, 2], expected [2, 3]"),
        "{m}"
    );
    let (e, m) = msg(mse_loss(
        Array2::<f64>::zeros((0, 3)).view(),
        Array2::zeros((0, 3)).view(),
    ));
    assert!(matches!(e, Error::Shape { .. }), "{m}");
    assert!(m.contains("at least one element"), "{m}");
}

#[test]
fn invalid_optimizer_settings() {
    let cases: Vec<(recurrent::Result<()>, &str)> = vec![
        (
            SgdConfig::<f64>::new(-0.1).build().map(|_| ()),
            "lr must be finite and >= 0, got -0.1",
        ),
        (
            SgdConfig::<f64>::new(f64::NAN).build().map(|_| ()),
            "lr must be finite",
        ),
        (
            SgdConfig::<f64>::new(0.1)
                .with_momentum(-0.5)
                .build()
                .map(|_| ()),
            "momentum",
        ),
        (
            SgdConfig::<f64>::new(0.1)
                .with_weight_decay(-1.0)
                .build()
                .map(|_| ()),
            "weight_decay",
        ),
        (
            SgdConfig::<f64>::new(0.1)
                .with_nesterov(true)
                .build()
                .map(|_| ()),
            "Nesterov momentum requires momentum > 0",
        ),
        (
            SgdConfig::<f64>::new(0.1)
                .with_momentum(0.9)
                .with_dampening(0.1)
                .with_nesterov(true)
                .build()
                .map(|_| ()),
            "dampening = 0",
        ),
        (
            AdamConfig::<f64>::new(-1.0).build().map(|_| ()),
            "lr must be",
        ),
        (
            AdamConfig::<f64>::new(1e-3)
                .with_betas(1.0, 0.999)
                .build()
                .map(|_| ()),
            "beta1 must be in [0, 1), got 1",
        ),
        (
            AdamConfig::<f64>::new(1e-3)
                .with_betas(0.9, -0.1)
                .build()
                .map(|_| ()),
            "beta2 must be in [0, 1)",
        ),
        (
            AdamConfig::<f64>::new(1e-3)
                .with_eps(-1e-8)
                .build()
                .map(|_| ()),
            "eps must be",
        ),
        (
            AdamConfig::<f64>::new(1e-3)
                .with_weight_decay(f64::INFINITY)
                .build()
                .map(|_| ()),
            "weight_decay",
        ),
    ];
    for (r, want) in cases {
        let (e, m) = msg(r);
        assert!(matches!(e, Error::InvalidConfig(_)), "{m}");
        assert!(m.contains(want), "{m} should contain {want}");
    }
    let mut opt = SgdConfig::new(0.1).build().unwrap();
    assert!(opt.set_learning_rate(-1.0).is_err());
    assert_eq!(opt.learning_rate(), 0.1);
}

#[test]
fn optimizer_with_mismatched_model() {
    let mut opt = AdamConfig::new(1e-3).build().unwrap();
    let mut a = lstm(3, 4);
    let g_other = lstm(3, 5).zeros_like();
    let (e, _) = msg(opt.step(&mut a, &g_other));
    assert!(matches!(e, Error::Mismatch(_)));
    let g = a.zeros_like();
    opt.step(&mut a, &g).unwrap();
    // After the first step the optimizer's state is tied to that layout.
    let mut b = lstm(3, 5);
    let gb = b.zeros_like();
    let (e, m) = msg(opt.step(&mut b, &gb));
    assert!(matches!(e, Error::Mismatch(_)), "{m}");
    assert!(m.contains("optimizer's state"), "{m}");
}

#[test]
fn clipping_errors() {
    let mut g = lstm(2, 3).zeros_like();
    assert!(matches!(
        clip_grad_norm(&mut g, -1.0),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        clip_grad_norm(&mut g, f64::NAN),
        Err(Error::InvalidConfig(_))
    ));
    g.arrays_mut()[0][[0, 0]] = f64::NAN;
    g.arrays_mut()[1][[0, 0]] = 1.0;
    let (e, m) = msg(clip_grad_norm(&mut g, 1.0));
    assert!(matches!(e, Error::NonFinite(_)), "{m}");
    // Left untouched.
    assert_eq!(g.arrays()[1][[0, 0]], 1.0);
}

#[test]
fn more_documented_errors() {
    // Linear: a tape from a layer with another in_features; zero-size weights.
    let a = Linear::<f64>::new(4, 2, &mut rng(0)).unwrap();
    let b = Linear::<f64>::new(3, 2, &mut rng(0)).unwrap();
    let (_, tape_b) = b.forward(Array2::<f64>::zeros((1, 3)).view()).unwrap();
    let mut g = a.zeros_like();
    let (e, m) = msg(a.backward(&tape_b, Array2::zeros((1, 2)).view(), &mut g));
    assert!(
        matches!(e, Error::Mismatch(_)) && m.contains("3 in_features"),
        "{m}"
    );
    assert!(matches!(
        Linear::<f64>::from_weights(Array2::zeros((0, 3)), None),
        Err(Error::Shape { .. })
    ));
    // Params::add_scaled with another layout.
    let mut x = lstm(3, 4);
    let (e, _) = msg(x.add_scaled(1.0, &lstm(3, 5)));
    assert!(matches!(e, Error::Mismatch(_)));
    // CellWeights with zero sizes.
    let zero_h = CellWeights::<f64> {
        weight_ih: Array2::zeros((0, 3)),
        weight_hh: Array2::zeros((0, 0)),
        bias_ih: None,
        bias_hh: None,
        weight_hr: None,
    };
    let (_, m) = msg(LstmCell::from_weights(zero_h));
    assert!(m.contains("H ≥ 1"), "{m}");
    let zero_i = CellWeights::<f64> {
        weight_ih: Array2::zeros((8, 0)),
        weight_hh: Array2::zeros((8, 2)),
        bias_ih: None,
        bias_hh: None,
        weight_hr: None,
    };
    let (_, m) = msg(LstmCell::from_weights(zero_i));
    assert!(m.contains("I ≥ 1"), "{m}");
    // Optimizer settings.
    assert!(SgdConfig::<f64>::new(0.1)
        .with_dampening(-0.1)
        .build()
        .is_err());
    assert!(AdamConfig::<f64>::new(0.1)
        .with_eps(f64::NAN)
        .build()
        .is_err());
    assert!(AdamConfig::<f64>::new(0.1)
        .with_betas(f64::NAN, 0.9)
        .build()
        .is_err());
    let mut opt = SgdConfig::new(0.1).build().unwrap();
    assert!(opt.set_learning_rate(f64::NAN).is_err());
}

/// Sizes no machine can hold are `OutOfMemory` errors naming what and how much, never an abort
/// or a `capacity overflow` panic: counts that overflow, memory the system refuses, and a whole
/// network checked before any layer is drawn.
#[test]
fn sizes_too_large_to_allocate() {
    let oom = |e: &Error| matches!(e, Error::OutOfMemory { .. });
    let (e, m) = msg(LstmCell::<f32>::new(1, 1 << 62, &mut rng(0)));
    assert!(
        oom(&e) && m.contains("weight_hh") && m.contains("overflows"),
        "{m}"
    );
    let (e, m) = msg(Linear::<f32>::new(1 << 40, 1 << 40, &mut rng(0)));
    assert!(
        oom(&e) && m.contains("Linear(1099511627776, 1099511627776)"),
        "{m}"
    );
    // 2^62 weights of 4 bytes: a count that fits, bytes that do not.
    let (e, m) = msg(Linear::<f32>::new(1 << 31, 1 << 31, &mut rng(0)));
    assert!(oom(&e), "{m}");
    // 16 TiB of weights: representable, refused by the system.
    let (e, m) = msg(Lstm::<f32>::new(
        StackConfig::new(1 << 20, 1 << 20),
        &mut rng(0),
    ));
    assert!(
        matches!(e, Error::OutOfMemory { bytes, .. } if bytes > 1 << 44)
            && m.contains("1-layer network with input_size = 1048576, hidden_size = 1048576"),
        "{m}"
    );
    // 10^9 tiny layers: each fits, the network does not.
    let config = StackConfig::new(1, 1).with_num_layers(1_000_000_000);
    let (e, m) = msg(Gru::<f32>::new(config, &mut rng(0)));
    assert!(oom(&e) && m.contains("1000000000-layer"), "{m}");
    let config = StackConfig::new(1, 1)
        .with_num_layers(usize::MAX)
        .with_bidirectional(true);
    let (e, m) = msg(Rnn::<f64>::new(config, &mut rng(0)));
    assert!(oom(&e), "{m}");
    // A cell made from a single huge size.
    let (e, m) = msg(GruCell::<f64>::new(usize::MAX, 3, &mut rng(0)));
    assert!(oom(&e), "{m}");
    // Sizes that fit still build.
    Lstm::<f32>::new(StackConfig::new(3, 4).with_num_layers(3), &mut rng(0)).unwrap();
}

#[test]
fn clip_accepts_infinite_max_norm() {
    let mut g = Linear::<f64>::from_weights(arr2(&[[3.0, 4.0]]), None).unwrap();
    assert_eq!(clip_grad_norm(&mut g, f64::INFINITY).unwrap(), 5.0);
    assert_eq!(g.weight(), &arr2(&[[3.0, 4.0]]));
}

/// Forward, then an optimizer step, then backward with the old tape: an error, not wrong gradients.
#[test]
fn stale_tape_after_weights_changed() {
    let mut opt = SgdConfig::new(0.1).build().unwrap();
    let x = Array3::<f64>::ones((3, 2, 3));

    let mut layer = lstm(3, 4);
    let (out, _, tape) = layer.forward(x.view(), None, None).unwrap();
    let mut g = layer.zeros_like();
    layer
        .backward(&tape, Array3::ones(out.dim()).view(), None, &mut g)
        .unwrap();
    opt.step(&mut layer, &g).unwrap();
    let (e, m) = msg(layer.backward(&tape, Array3::ones(out.dim()).view(), None, &mut g));
    assert!(
        matches!(e, Error::Mismatch(_)) && m.contains("weights changed"),
        "{m}"
    );

    let mut head = Linear::<f64>::new(3, 1, &mut rng(1)).unwrap();
    let (y, tape) = head.forward(x.view()).unwrap();
    let mut gh = head.zeros_like();
    head.backward(&tape, Array3::ones(y.dim()).view(), &mut gh)
        .unwrap();
    let mut opt2 = SgdConfig::new(0.1).build().unwrap();
    opt2.step(&mut head, &gh).unwrap();
    assert!(matches!(
        head.backward(&tape, Array3::ones(y.dim()).view(), &mut gh),
        Err(Error::Mismatch(_))
    ));

    let mut net = Gru::<f64>::new(StackConfig::new(3, 2).with_num_layers(2), &mut rng(2)).unwrap();
    let (o, _, tape) = net.forward(x.view(), None, None).unwrap();
    let mut gn = net.zeros_like();
    net.backward(&tape, Array3::ones(o.dim()).view(), None, &mut gn)
        .unwrap();
    let mut opt3 = SgdConfig::new(0.1).build().unwrap();
    opt3.step(&mut net, &gn).unwrap();
    assert!(matches!(
        net.backward(&tape, Array3::ones(o.dim()).view(), None, &mut gn),
        Err(Error::Mismatch(_))
    ));
}

#[test]
fn invalid_lengths() {
    let net =
        Lstm::<f64>::new(StackConfig::new(3, 2).with_bidirectional(true), &mut rng(0)).unwrap();
    let x = Array3::<f64>::zeros((4, 3, 3));
    let cases: [(&[usize], &str); 4] = [
        (
            &[4, 0, 2],
            "lengths[1] = 0: every sequence needs at least one step",
        ),
        (
            &[4, 5, 2],
            "lengths[1] = 5 exceeds the 4 time steps of the input",
        ),
        (&[4, 2], "lengths has 2 entries, the batch has 3 sequences"),
        (&[4, 2, 1, 1], "lengths has 4 entries"),
    ];
    for (lengths, want) in cases {
        let (e, m) = msg(net.forward(x.view(), None, Some(lengths)));
        assert!(matches!(e, Error::InvalidConfig(_)), "{m}");
        assert!(m.contains(want), "{m} should contain {want}");
        assert!(net.infer(x.view(), None, Some(lengths)).is_err());
    }
    let cells = net.layer(0);
    let bi = Bidirectional::new(cells[0].clone(), cells[1].clone()).unwrap();
    assert!(matches!(
        bi.forward(x.view(), None, Some(&[4, 0, 2])),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        bi.infer(x.view(), None, Some(&[9, 1, 2])),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
fn invalid_network_config() {
    let cases = [
        (
            StackConfig::new(0, 2),
            "input_size, hidden_size and num_layers must be at least 1",
        ),
        (StackConfig::new(3, 2).with_num_layers(0), "num_layers"),
        (
            StackConfig::new(3, 2).with_dropout(1.5),
            "dropout must be a probability in [0, 1], got 1.5",
        ),
        (StackConfig::new(3, 2).with_dropout(f64::NAN), "dropout"),
    ];
    for (config, want) in cases {
        let (e, m) = msg(Lstm::<f32>::new(config, &mut rng(0)));
        assert!(matches!(e, Error::InvalidConfig(_)), "{m}");
        assert!(m.contains(want), "{m} should contain {want}");
    }
    let relu = StackConfig::new(3, 2).with_nonlinearity(Nonlinearity::Relu);
    let (_, m) = msg(Lstm::<f32>::new(relu, &mut rng(0)));
    assert!(m.contains("applies to Rnn only"), "{m}");
    assert!(Gru::<f32>::new(relu, &mut rng(0)).is_err());
    assert!(Rnn::<f32>::new(relu, &mut rng(0)).is_ok());
}

#[test]
fn network_shape_errors() {
    let config = StackConfig::new(3, 2)
        .with_num_layers(2)
        .with_bidirectional(true);
    let net = Lstm::<f64>::new(config, &mut rng(0)).unwrap();
    let x = Array3::<f64>::zeros((4, 3, 3));
    // init must be (L·D, B, H) = (4, 3, 2).
    let bad = LstmState {
        h: Array3::zeros((2, 3, 2)),
        c: Array3::zeros((4, 3, 2)),
    };
    let (_, m) = msg(net.forward(x.view(), Some(&bad), None));
    assert!(
        m.starts_with("init.h has shape [2, 3, 2], expected (4, 3, 2)"),
        "{m}"
    );
    let (out, _, tape) = net.forward(x.view(), None, None).unwrap();
    let mut g = net.zeros_like();
    let (_, m) = msg(net.backward(&tape, Array3::zeros((4, 3, 2)).view(), None, &mut g));
    assert!(
        m.starts_with("d_output has shape [4, 3, 2], expected (4, 3, 4)"),
        "{m}"
    );
    let bad_final = LstmState {
        h: Array3::zeros((4, 3, 2)),
        c: Array3::zeros((4, 2, 2)),
    };
    let (_, m) = msg(net.backward(
        &tape,
        Array3::zeros(out.dim()).view(),
        Some(&bad_final),
        &mut g,
    ));
    assert!(m.starts_with("d_final.c has shape [4, 2, 2]"), "{m}");
    // grads of another network; a tape of another network.
    let other = Lstm::<f64>::new(config.with_num_layers(1), &mut rng(1)).unwrap();
    let mut g_other = other.zeros_like();
    assert!(matches!(
        net.backward(&tape, Array3::zeros(out.dim()).view(), None, &mut g_other),
        Err(Error::Mismatch(_))
    ));
    let (_, _, other_tape) = other.forward(x.view(), None, None).unwrap();
    let (e, m) = msg(net.backward(&other_tape, Array3::zeros(out.dim()).view(), None, &mut g));
    assert!(
        matches!(e, Error::Mismatch(_)) && m.contains("tape was recorded by a network"),
        "{m}"
    );
    // Batch-first input is (B, T, I).
    let bf = Gru::<f64>::new(StackConfig::new(3, 2).with_batch_first(true), &mut rng(2)).unwrap();
    let (_, m) = msg(bf.forward(Array3::<f64>::zeros((3, 4, 5)).view(), None, None));
    assert!(m.contains("(B, T, 3)"), "{m}");
}

#[test]
fn from_cells_errors() {
    let config = StackConfig::new(3, 2).with_bidirectional(true);
    let cell = |i, h| LstmCell::<f64>::new(i, h, &mut rng(0)).unwrap();
    let (_, m) = msg(RecurrentStack::from_cells(config, vec![cell(3, 2)]));
    assert!(m.contains("need 2 cells, got 1"), "{m}");
    let (e, m) = msg(RecurrentStack::from_cells(
        config,
        vec![cell(3, 2), cell(4, 2)],
    ));
    assert!(
        matches!(e, Error::Mismatch(_)) && m.contains("cell l0_reverse"),
        "{m}"
    );
    let nobias = LstmCell::<f64>::with_bias(3, 2, false, &mut rng(0)).unwrap();
    let (_, m) = msg(RecurrentStack::from_cells(config, vec![cell(3, 2), nobias]));
    assert!(m.contains("bias = false"), "{m}");
    let relu = RnnCell::<f64>::new(3, 2, Nonlinearity::Relu, &mut rng(0)).unwrap();
    let (_, m) = msg(RecurrentStack::from_cells(
        config.with_bidirectional(false),
        vec![relu],
    ));
    assert!(m.contains("nonlinearity Relu"), "{m}");
}

#[test]
fn bidirectional_errors() {
    let (e, _) = msg(Bidirectional::new(
        GruCell::<f64>::new(3, 2, &mut rng(0)).unwrap(),
        GruCell::<f64>::new(3, 4, &mut rng(0)).unwrap(),
    ));
    assert!(matches!(e, Error::Mismatch(_)));
    let bi = Bidirectional::new(
        GruCell::<f64>::new(3, 2, &mut rng(0)).unwrap(),
        GruCell::<f64>::new(3, 2, &mut rng(1)).unwrap(),
    )
    .unwrap();
    let x = Array3::<f64>::zeros((4, 2, 3));
    let (out, _, tape) = bi.forward(x.view(), None, None).unwrap();
    let mul = bi.clone().with_merge(MergeMode::Mul);
    let mut g = mul.zeros_like();
    let (e, m) = msg(mul.backward(&tape, Array3::zeros((4, 2, 2)).view(), None, &mut g));
    assert!(
        matches!(e, Error::Mismatch(_)) && m.contains("merge mode"),
        "{m}"
    );
    let mut g = bi.zeros_like();
    let (_, m) = msg(bi.backward(&tape, Array3::zeros((4, 2, 2)).view(), None, &mut g));
    assert!(
        m.starts_with("d_output has shape [4, 2, 2], expected (4, 2, 4)"),
        "{m}"
    );
    let _ = out;
    let (_, m) = msg(bi.forward(x.view(), Some(&Array3::zeros((1, 2, 2))), None));
    assert!(
        m.starts_with("init.h has shape [1, 2, 2], expected (2, 2, 2)"),
        "{m}"
    );
}

#[test]
fn matmul_with_shapes_that_do_not_fit() {
    let a = Array2::<f32>::zeros((2, 3));
    let mut c = Array2::<f32>::zeros((2, 4));
    let (e, m) = msg(recurrent::runtime::matmul(
        a.view(),
        Array2::zeros((5, 4)).view(),
        &mut c.view_mut(),
        false,
    ));
    assert!(matches!(e, Error::Shape { .. }), "{m}");
    assert!(m.contains("(3, N)") && m.contains("[5, 4]"), "{m}");
    let mut wrong = Array2::<f32>::zeros((3, 4));
    let (e, m) = msg(recurrent::runtime::matmul(
        a.view(),
        Array2::zeros((3, 4)).view(),
        &mut wrong.view_mut(),
        true,
    ));
    assert!(matches!(e, Error::Shape { .. }), "{m}");
    assert!(m.contains("(2, 4)") && m.contains("[3, 4]"), "{m}");
}
