//! Parity with PyTorch on committed fixtures (`tests/fixtures/*.safetensors`, written by
//! `scripts/make_fixtures.py`; see `scripts/README.md` for the key convention).
//!
//! For each of `nn.RNN` (tanh, relu) and `nn.LSTM` (with and without bias), in f64 and f32: the
//! weights, input, `h0`/`c0` and upstream gradients are loaded, and this crate's outputs, final
//! states and every gradient (parameters, input, `h0`, `c0`) must equal PyTorch's — f64 to 1e-10
//! relative error, f32 to 1e-5 (both with an absolute floor on the denominator).

use crate::common::*;
use ndarray::{Array1, Array2, Array3, ArrayD, Axis, Ix1, Ix2, Ix3};
use recurrent::{
    cell::CellWeights, Cell, Float, LstmCell, LstmState, Nonlinearity, Params, Recurrent, RnnCell,
    State,
};

fn arr2<F: Float>(a: ArrayD<F>) -> Array2<F> {
    a.into_dimensionality::<Ix2>().unwrap()
}
fn arr3<F: Float>(a: ArrayD<F>) -> Array3<F> {
    a.into_dimensionality::<Ix3>().unwrap()
}
fn arr1<F: Float>(a: ArrayD<F>) -> Array1<F> {
    a.into_dimensionality::<Ix1>().unwrap()
}
/// `(1, B, H)` → `(B, H)`.
fn squeeze<F: Float>(a: ArrayD<F>) -> Array2<F> {
    arr3(a).index_axis_move(Axis(0), 0)
}

fn weights<F: Float>(fx: &Fixture) -> CellWeights<F> {
    let bias = fx.meta("bias") == "true";
    CellWeights {
        weight_ih: arr2(fx.get("weight_ih_l0")),
        weight_hh: arr2(fx.get("weight_hh_l0")),
        bias_ih: bias.then(|| arr1(fx.get("bias_ih_l0"))),
        bias_hh: bias.then(|| arr1(fx.get("bias_hh_l0"))),
        weight_hr: None,
    }
}

/// Runs the fixture's forward and backward through the public layer API and compares everything.
fn parity<F: Float, C: Cell<F>>(
    fx: &Fixture,
    layer: Recurrent<C>,
    init: C::State,
    d_final: C::State,
    tol: f64,
    floor: f64,
) {
    let name = &fx.name;
    let x: Array3<F> = arr3(fx.get("input"));
    let (out, last, tape) = layer.forward(x.view(), Some(&init), None).unwrap();
    assert_close(
        &out.view().into_dyn(),
        &fx.get::<F>("output").view(),
        tol,
        floor,
        &format!("{name} output"),
    );
    for (part, a) in last.parts() {
        let want = squeeze::<F>(fx.get(&format!("{part}_n")));
        assert_close(
            &a.into_dyn(),
            &want.view().into_dyn(),
            tol,
            floor,
            &format!("{name} {part}_n"),
        );
    }
    let d_out: Array3<F> = arr3(fx.get("d_output"));
    let mut grads = layer.zeros_like();
    let (dx, d_init) = layer
        .backward(&tape, d_out.view(), Some(&d_final), &mut grads)
        .unwrap();
    assert_close(
        &dx.view().into_dyn(),
        &fx.get::<F>("grad.input").view(),
        tol,
        floor,
        &format!("{name} grad.input"),
    );
    for (part, a) in d_init.parts() {
        let want = squeeze::<F>(fx.get(&format!("grad.{part}0")));
        assert_close(
            &a.into_dyn(),
            &want.view().into_dyn(),
            tol,
            floor,
            &format!("{name} grad.{part}0"),
        );
    }
    let mut checked = 0;
    for (key, g) in grads.named_arrays() {
        assert_close(
            &g,
            &fx.get::<F>(&format!("grad.{key}")).view(),
            tol,
            floor,
            &format!("{name} grad.{key}"),
        );
        checked += 1;
    }
    // Every parameter gradient in the file was compared.
    assert_eq!(
        checked,
        fx.tensors
            .keys()
            .filter(|k| k.starts_with("grad.") && k.contains("_l0"))
            .count()
    );
}

fn rnn_parity<F: Float>(file: &str, nl: Nonlinearity, tol: f64, floor: f64) {
    let fx = Fixture::load(file);
    let layer = Recurrent::new(RnnCell::<F>::from_weights(weights(&fx), nl).unwrap());
    let init = squeeze::<F>(fx.get("h0"));
    let d_final = squeeze::<F>(fx.get("d_h_n"));
    parity(&fx, layer, init, d_final, tol, floor);
}

fn lstm_parity<F: Float>(file: &str, tol: f64, floor: f64) {
    let fx = Fixture::load(file);
    let layer = Recurrent::new(LstmCell::<F>::from_weights(weights(&fx)).unwrap());
    let init = LstmState {
        h: squeeze::<F>(fx.get("h0")),
        c: squeeze::<F>(fx.get("c0")),
    };
    let d_final = LstmState {
        h: squeeze::<F>(fx.get("d_h_n")),
        c: squeeze::<F>(fx.get("d_c_n")),
    };
    parity(&fx, layer, init, d_final, tol, floor);
}

const F64: (f64, f64) = (1e-10, 1e-12);
/// f32: 1e-5 relative to max(|value|, 0.1), i.e. 1e-6 absolute near zero, where gradients are
/// small differences of O(1) terms summed in another order (stricter than
/// `torch.testing.assert_close`'s f32 default, rtol 1.3e-6 plus atol 1e-5).
const F32: (f64, f64) = (1e-5, 1e-1);

#[test]
fn rnn_tanh_matches_pytorch() {
    rnn_parity::<f64>("rnn_tanh_f64", Nonlinearity::Tanh, F64.0, F64.1);
    rnn_parity::<f32>("rnn_tanh_f32", Nonlinearity::Tanh, F32.0, F32.1);
}

#[test]
fn rnn_relu_matches_pytorch() {
    rnn_parity::<f64>("rnn_relu_f64", Nonlinearity::Relu, F64.0, F64.1);
    rnn_parity::<f32>("rnn_relu_f32", Nonlinearity::Relu, F32.0, F32.1);
}

#[test]
fn lstm_matches_pytorch() {
    lstm_parity::<f64>("lstm_f64", F64.0, F64.1);
    lstm_parity::<f32>("lstm_f32", F32.0, F32.1);
}

#[test]
fn lstm_without_bias_matches_pytorch() {
    lstm_parity::<f64>("lstm_nobias_f64", F64.0, F64.1);
    lstm_parity::<f32>("lstm_nobias_f32", F32.0, F32.1);
}

/// The parameter names this crate gives are exactly the keys PyTorch's `state_dict()` wrote.
#[test]
fn parameter_names_are_pytorch_keys() {
    for file in ["rnn_tanh_f64", "lstm_f64", "lstm_nobias_f64"] {
        let fx = Fixture::load(file);
        let names: Vec<String> = if fx.meta("kind") == "lstm" {
            Recurrent::new(LstmCell::<f64>::from_weights(weights(&fx)).unwrap()).names()
        } else {
            Recurrent::new(RnnCell::<f64>::from_weights(weights(&fx), Nonlinearity::Tanh).unwrap())
                .names()
        };
        let mut file_keys: Vec<&String> = fx
            .tensors
            .keys()
            .filter(|k| k.ends_with("_l0") && !k.starts_with("grad."))
            .collect();
        file_keys.sort();
        let mut ours: Vec<&String> = names.iter().collect();
        ours.sort();
        assert_eq!(ours, file_keys, "{file}");
    }
}
