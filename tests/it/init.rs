//! Initialisers: statistical checks and the orthogonality of recurrent weights.

use crate::common::rng;
use ndarray::Array2;
use recurrent::init::{fill, initialize, InitConfig, WeightInit};
use recurrent::{Error, Gru, Linear, Lstm, Params, StackConfig};

fn stats(a: &Array2<f64>) -> (f64, f64, f64) {
    let n = a.len() as f64;
    let mean = a.sum() / n;
    let var = a.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let max = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    (mean, var, max)
}

#[test]
fn xavier_uniform_and_normal_have_the_right_spread() {
    let (out, inp) = (400, 300);
    let mut a = Array2::<f64>::zeros((out, inp));
    fill(
        a.view_mut().into_dyn(),
        WeightInit::XavierUniform { gain: 2.0 },
        &mut rng(1),
    );
    let bound = 2.0 * (6.0f64 / (out + inp) as f64).sqrt();
    let (mean, var, max) = stats(&a);
    assert!(max <= bound && max > 0.99 * bound, "{max} vs {bound}");
    assert!(mean.abs() < 0.01 * bound);
    // Variance of uniform(−a, a) is a²/3 = gain²·2/(fan_in + fan_out).
    let want = bound * bound / 3.0;
    assert!((var / want - 1.0).abs() < 0.02, "{var} vs {want}");

    fill(
        a.view_mut().into_dyn(),
        WeightInit::XavierNormal { gain: 1.0 },
        &mut rng(2),
    );
    let (mean, var, _) = stats(&a);
    let want = 2.0 / (out + inp) as f64;
    assert!(mean.abs() < 0.01 * want.sqrt());
    assert!((var / want - 1.0).abs() < 0.02, "{var} vs {want}");
}

#[test]
fn orthogonal_recurrent_weights() {
    let config = StackConfig::new(5, 8)
        .with_num_layers(2)
        .with_bidirectional(true);
    let mut lstm = Lstm::<f64>::new(config, &mut rng(3)).unwrap();
    initialize(&mut lstm, &InitConfig::keras(), &mut rng(4)).unwrap();
    let mut checked = 0;
    for (name, a) in lstm.named_arrays() {
        let a = a.into_dimensionality::<ndarray::Ix2>().ok();
        match (name.starts_with("weight_hh"), a) {
            (true, Some(w)) => {
                // (4H, H) = (32, 8): orthonormal columns.
                let g = w.t().dot(&w);
                for ((i, j), v) in g.indexed_iter() {
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((v - want).abs() < 1e-6, "{name} WᵀW[{i},{j}] = {v}");
                }
                checked += 1;
            }
            (false, _) if name.starts_with("bias") => {}
            _ => {}
        }
    }
    assert_eq!(checked, 4);
    for (name, a) in lstm.named_arrays() {
        if name.starts_with("bias") {
            assert!(a.iter().all(|&v| v == 0.0), "{name}");
        }
    }
    // Wide matrices get orthonormal rows.
    let mut wide = Array2::<f64>::zeros((3, 10));
    fill(
        wide.view_mut().into_dyn(),
        WeightInit::Orthogonal { gain: 0.5 },
        &mut rng(5),
    );
    let g = wide.dot(&wide.t());
    for ((i, j), v) in g.indexed_iter() {
        let want = if i == j { 0.25 } else { 0.0 };
        assert!((v - want).abs() < 1e-6);
    }
}

#[test]
fn forget_gate_bias_and_names() {
    let lstm = Lstm::<f32>::new(StackConfig::new(3, 4).with_bidirectional(true), &mut rng(6))
        .unwrap()
        .with_forget_bias(1.0);
    for cell in lstm.layer(0) {
        let w = cell.weights();
        let (b_ih, b_hh) = (w.bias_ih.as_ref().unwrap(), w.bias_hh.as_ref().unwrap());
        for j in 4..8 {
            assert_eq!(b_ih[j] + b_hh[j], 1.0);
        }
    }
    // A model tuple: the head's `1.weight` counts as an input weight, `1.bias` as a bias.
    let mut model = (
        Gru::<f64>::new(StackConfig::new(3, 4), &mut rng(7)).unwrap(),
        Linear::<f64>::new(4, 2, &mut rng(8)).unwrap(),
    );
    let config = InitConfig {
        input: WeightInit::Constant(0.5),
        recurrent: WeightInit::Keep,
        bias: WeightInit::Constant(-1.0),
    };
    let before = model.0.layer(0)[0].weights().weight_hh.clone();
    initialize(&mut model, &config, &mut rng(9)).unwrap();
    assert!(model.1.weight().iter().all(|&v| v == 0.5));
    assert!(model.1.bias().unwrap().iter().all(|&v| v == -1.0));
    assert_eq!(model.0.layer(0)[0].weights().weight_hh, before);
    let bad = InitConfig {
        input: WeightInit::XavierUniform { gain: f64::NAN },
        ..config
    };
    assert!(matches!(
        initialize(&mut model, &bad, &mut rng(10)),
        Err(Error::InvalidConfig(_))
    ));
}
