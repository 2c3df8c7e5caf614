//! Central-difference gradient checks of every backward pass: each weight and bias, the input and
//! the initial state, over several steps and a batch, in f64 (max relative error ≤ 1e-6) and f32.

use crate::common::*;
use ndarray::{Array2, Array3};
use recurrent::{
    cell::CellWeights, loss::mse_loss, Cell, Float, GruCell, Linear, LstmCell, LstmState,
    Nonlinearity, Params, Recurrent, RnnCell, State,
};

const T: usize = 6;
const B: usize = 3;
const I: usize = 4;
const H: usize = 5;

/// f64: every gradient against central differences, max relative error ≤ 1e-6.
fn check<C: Cell<f64>>(cell: C, seed: u64) {
    let mut r = rng(seed);
    let layer = Recurrent::new(cell);
    let x: Array3<f64> = randn3((T, B, I), 1.0, &mut r);
    let init: C::State = rand_state(B, H, 0.5, &mut r);
    let grads = gradcheck_layer(&layer, &x, &init, F64_CHECK, seed + 1);
    // Every parameter, the input and every part of the state were checked.
    assert_eq!(
        grads.all().len(),
        layer.names().len() + 1 + init.parts().len()
    );
}

/// f32: the same check at f32 precision. Finite differences in f32 are too coarse (and cross
/// ReLU's kink), so the reference is the f64 numeric gradient of the very same model: weights,
/// inputs and loss weights are drawn in f64 and rounded to f32, the f64 copy holds the rounded
/// values, its gradients are checked against central differences, and the f32 analytic gradients
/// must match them to 1e-4 relative error.
fn check_f32<C32: Cell<f32>, C64: Cell<f64>>(c32: C32, c64: C64, seed: u64) {
    let mut r = rng(seed);
    let x64: Array3<f64> = randn3((T, B, I), 1.0, &mut r).mapv(|v: f64| f64::from(v as f32));
    let init64: C64::State =
        cast_state::<f32, f64, C32::State, C64::State>(&cast_state::<
            f64,
            f32,
            C64::State,
            C32::State,
        >(&rand_state::<f64, C64::State>(
            B, H, 0.5, &mut r,
        )));
    let (w_out64, w_final64) = loss_weights::<f64, C64::State>(T, B, H, seed + 1);
    let w_out64 = w_out64.mapv(|v| f64::from(v as f32));
    let w_final64: C64::State = cast_state::<f32, f64, C32::State, C64::State>(&cast_state::<
        f64,
        f32,
        C64::State,
        C32::State,
    >(&w_final64));

    let l64 = Recurrent::new(c64);
    let l32 = Recurrent::new(c32);
    // The f64 reference gradients, themselves checked against central differences.
    let g64 = gradcheck_layer(&l64, &x64, &init64, F64_CHECK, seed + 1);
    let g32 = analytic(
        &l32,
        &x64.mapv(|v| v as f32),
        &cast_state::<f64, f32, C64::State, C32::State>(&init64),
        &w_out64.mapv(|v| v as f32),
        &cast_state::<f64, f32, C64::State, C32::State>(&w_final64),
    );
    for ((label, a32), (_, a64)) in g32.all().into_iter().zip(g64.all()) {
        assert_close(
            &a32.view(),
            &a64.view(),
            1e-4,
            1e-3,
            &format!("f32 {label}"),
        );
    }
}

fn rnn<F: Float>(nl: Nonlinearity, bias: bool, seed: u64) -> RnnCell<F> {
    RnnCell::with_bias(I, H, nl, bias, &mut rng(seed)).unwrap()
}

fn lstm<F: Float>(bias: bool, seed: u64) -> LstmCell<F> {
    LstmCell::with_bias(I, H, bias, &mut rng(seed)).unwrap()
}

fn cast_weights<F: Float, G: Float>(w: &CellWeights<F>) -> CellWeights<G> {
    let c = |v: &F| G::from_f64(Float::as_f64(*v));
    CellWeights {
        weight_ih: w.weight_ih.map(c),
        weight_hh: w.weight_hh.map(c),
        bias_ih: w.bias_ih.as_ref().map(|b| b.map(c)),
        bias_hh: w.bias_hh.as_ref().map(|b| b.map(c)),
        weight_hr: w.weight_hr.as_ref().map(|a| a.map(c)),
    }
}

/// An f32 RNN and an f64 RNN with the same (f32-representable) weights.
fn rnn_pair(nl: Nonlinearity, seed: u64) -> (RnnCell<f32>, RnnCell<f64>) {
    let c32 = rnn::<f32>(nl, true, seed);
    let c64 = RnnCell::from_weights(cast_weights(c32.weights()), nl).unwrap();
    (c32, c64)
}

fn lstm_pair(seed: u64) -> (LstmCell<f32>, LstmCell<f64>) {
    let c32 = lstm::<f32>(true, seed);
    let c64 = LstmCell::from_weights(cast_weights(c32.weights())).unwrap();
    (c32, c64)
}

#[test]
fn rnn_tanh_f64() {
    check(rnn::<f64>(Nonlinearity::Tanh, true, 1), 10);
}

#[test]
fn rnn_relu_f64() {
    check(rnn::<f64>(Nonlinearity::Relu, true, 2), 20);
}

#[test]
fn rnn_tanh_without_bias_f64() {
    check(rnn::<f64>(Nonlinearity::Tanh, false, 3), 30);
}

#[test]
fn lstm_f64() {
    check(lstm::<f64>(true, 4), 40);
}

#[test]
fn lstm_without_bias_f64() {
    check(lstm::<f64>(false, 5), 50);
}

#[test]
fn layer_norm_lstm_f64() {
    check(layer_norm_lstm::<f64>(I, H, true, 60), 60);
}

#[test]
fn layer_norm_lstm_without_bias_f64() {
    check(layer_norm_lstm::<f64>(I, H, false, 61), 61);
}

#[test]
fn gru_f64() {
    check(GruCell::<f64>::new(I, H, &mut rng(8)).unwrap(), 80);
}

#[test]
fn gru_without_bias_f64() {
    check(
        GruCell::<f64>::with_bias(I, H, false, &mut rng(9)).unwrap(),
        90,
    );
}

#[test]
fn gru_f32() {
    let c32 = GruCell::<f32>::new(I, H, &mut rng(8)).unwrap();
    let c64 = GruCell::from_weights(cast_weights(c32.weights())).unwrap();
    check_f32(c32, c64, 80);
}

#[test]
fn rnn_tanh_f32() {
    let (a, b) = rnn_pair(Nonlinearity::Tanh, 1);
    check_f32(a, b, 10);
}

#[test]
fn rnn_relu_f32() {
    let (a, b) = rnn_pair(Nonlinearity::Relu, 2);
    check_f32(a, b, 20);
}

#[test]
fn lstm_f32() {
    let (a, b) = lstm_pair(4);
    check_f32(a, b, 40);
}

/// Saturated gates and large inputs: the derivatives from saved outputs must stay exact.
#[test]
fn lstm_large_inputs_f64() {
    let mut r = rng(60);
    let layer = Recurrent::new(lstm::<f64>(true, 6));
    let x: Array3<f64> = randn3((T, B, I), 3.0, &mut r);
    let init: LstmState<f64> = rand_state(B, H, 2.0, &mut r);
    gradcheck_layer(&layer, &x, &init, F64_CHECK, 61);
}

/// The whole pipeline of the quick start: LSTM → Linear on every step → MSE.
/// Checks the gradients of the head's weight and bias and of every LSTM array.
#[test]
fn lstm_linear_mse_f64() {
    let mut r = rng(70);
    let model = (
        Recurrent::new(lstm::<f64>(true, 7)),
        Linear::<f64>::new(H, 2, &mut r).unwrap(),
    );
    let x: Array3<f64> = randn3((T, B, I), 1.0, &mut r);
    let target: Array3<f64> = randn3((T, B, 2), 1.0, &mut r);
    let loss = |m: &(Recurrent<LstmCell<f64>>, Linear<f64>)| {
        let (h, _) = m.0.infer(x.view(), None, None).unwrap();
        let y = m.1.infer(h.view()).unwrap();
        mse_loss(y.view(), target.view()).unwrap().0
    };
    let (h, _, tape) = model.0.forward(x.view(), None, None).unwrap();
    let (y, head_tape) = model.1.forward(h.view()).unwrap();
    let (l, dy) = mse_loss(y.view(), target.view()).unwrap();
    assert!((l - loss(&model)).abs() < 1e-14);
    let mut grads = model.zeros_like();
    let dh = model
        .1
        .backward(&head_tape, dy.view(), &mut grads.1)
        .unwrap();
    model
        .0
        .backward(&tape, dh.view(), None, &mut grads.0)
        .unwrap();

    let mut probe = model.clone();
    let names = model.names();
    assert_eq!(
        names,
        [
            "0.weight_ih_l0",
            "0.weight_hh_l0",
            "0.bias_ih_l0",
            "0.bias_hh_l0",
            "1.weight",
            "1.bias"
        ]
    );
    let eps = 1e-6;
    for (k, name) in names.iter().enumerate() {
        let n = probe.arrays()[k].len();
        for e in 0..n {
            let orig = probe.arrays()[k].iter().nth(e).copied().unwrap();
            *probe.arrays_mut()[k].iter_mut().nth(e).unwrap() = orig + eps;
            let plus = loss(&probe);
            *probe.arrays_mut()[k].iter_mut().nth(e).unwrap() = orig - eps;
            let minus = loss(&probe);
            *probe.arrays_mut()[k].iter_mut().nth(e).unwrap() = orig;
            let num = (plus - minus) / (2.0 * eps);
            let ana = *grads.arrays()[k].iter().nth(e).unwrap();
            let err = (num - ana).abs() / num.abs().max(ana.abs()).max(1e-3);
            assert!(
                err <= 1e-6,
                "{name}[{e}]: analytic {ana}, numeric {num}, rel err {err:.2e}"
            );
        }
    }
}

/// Linear on a 2-D input (the last step only) with its input gradient, and MSE's gradient.
#[test]
fn linear_last_step_f64() {
    let mut r = rng(80);
    let head = Linear::<f64>::new(H, 3, &mut r).unwrap();
    let x: Array2<f64> = randn::<f64>(&[B, H], 1.0, &mut r)
        .into_dimensionality()
        .unwrap();
    let target: Array2<f64> = randn::<f64>(&[B, 3], 1.0, &mut r)
        .into_dimensionality()
        .unwrap();
    let loss = |m: &Linear<f64>, x: &Array2<f64>| {
        mse_loss(m.infer(x.view()).unwrap().view(), target.view())
            .unwrap()
            .0
    };
    let (y, tape) = head.forward(x.view()).unwrap();
    let (_, dy) = mse_loss(y.view(), target.view()).unwrap();
    let mut grads = head.zeros_like();
    let dx = head.backward(&tape, dy.view(), &mut grads).unwrap();
    let eps = 1e-6;
    for ((i, j), &ana) in dx.indexed_iter() {
        let mut xp = x.clone();
        xp[(i, j)] += eps;
        let mut xm = x.clone();
        xm[(i, j)] -= eps;
        let num = (loss(&head, &xp) - loss(&head, &xm)) / (2.0 * eps);
        assert!(
            (num - ana).abs() <= 1e-6 * num.abs().max(ana.abs()).max(1e-3),
            "dx[{i},{j}]: {ana} vs {num}"
        );
    }
    let mut probe = head.clone();
    for k in 0..2 {
        let n = probe.arrays()[k].len();
        for e in 0..n {
            let orig = *probe.arrays()[k].iter().nth(e).unwrap();
            *probe.arrays_mut()[k].iter_mut().nth(e).unwrap() = orig + eps;
            let plus = loss(&probe, &x);
            *probe.arrays_mut()[k].iter_mut().nth(e).unwrap() = orig - eps;
            let minus = loss(&probe, &x);
            *probe.arrays_mut()[k].iter_mut().nth(e).unwrap() = orig;
            let num = (plus - minus) / (2.0 * eps);
            let ana = *grads.arrays()[k].iter().nth(e).unwrap();
            assert!(
                (num - ana).abs() <= 1e-6 * num.abs().max(ana.abs()).max(1e-3),
                "array {k}[{e}]: {ana} vs {num}"
            );
        }
    }
}

/// The relative-error floor used by the checks does not hide real errors: a gradient that is off
/// by 1e-4 relative on an O(1) value must fail the f64 check.
#[test]
fn gradcheck_metric_bites() {
    let a = ndarray::arr1(&[1.0f64, 0.5, -0.2]).into_dyn();
    let b = ndarray::arr1(&[1.0001f64, 0.5, -0.2]).into_dyn();
    let (err, idx) = max_rel_err(&a.view(), &b.view(), F64_CHECK.floor);
    assert!(err > F64_CHECK.tol);
    assert_eq!(idx, vec![0]);
}
