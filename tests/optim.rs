//! Optimizers and clipping against `torch.optim` / `clip_grad_norm_` trajectories recorded in
//! `tests/fixtures/optim_*.safetensors` and `clip_grad_norm.safetensors`, plus hand-computed steps.

mod common;

use common::*;
use ndarray::{arr2, Array1, Array2, Axis, Ix1, Ix2, Ix3};
use recurrent::optim::{clip_grad_norm, AdamConfig, Optimizer, SgdConfig, UpdateRule};
use recurrent::{Linear, Params};

/// A single (3, 4) parameter array, wrapped in a bias-free `Linear` so it is a `Params`.
fn param(a: Array2<f64>) -> Linear<f64> {
    Linear::from_weights(a, None).unwrap()
}

fn run_trajectory<R: UpdateRule<f64>>(file: &str, mut opt: Optimizer<f64, R>) {
    let fx = Fixture::load(file);
    let p0 = fx.get::<f64>("p0").into_dimensionality::<Ix2>().unwrap();
    let grads = fx.get::<f64>("grads").into_dimensionality::<Ix3>().unwrap();
    let expected = fx
        .get::<f64>("params")
        .into_dimensionality::<Ix3>()
        .unwrap();
    assert_eq!(fx.meta("steps"), grads.len_of(Axis(0)).to_string());
    let mut p = param(p0);
    for (k, g) in grads.axis_iter(Axis(0)).enumerate() {
        opt.step(&mut p, &param(g.to_owned())).unwrap();
        let want = expected.index_axis(Axis(0), k);
        assert_close(
            &p.weight().view().into_dyn(),
            &want.into_dyn(),
            1e-12,
            1.0,
            &format!("{file} step {}", k + 1),
        );
    }
    assert_eq!(opt.steps(), grads.len_of(Axis(0)) as u64);
}

fn sgd_from(file: &str) -> SgdConfig<f64> {
    let fx = Fixture::load(file);
    assert_eq!(fx.meta("optimizer"), "sgd");
    SgdConfig::new(fx.meta_f64("lr"))
        .with_momentum(fx.meta_f64("momentum"))
        .with_dampening(fx.meta_f64("dampening"))
        .with_weight_decay(fx.meta_f64("weight_decay"))
        .with_nesterov(fx.meta("nesterov") == "true")
}

fn adam_from(file: &str) -> AdamConfig<f64> {
    let fx = Fixture::load(file);
    assert_eq!(fx.meta("optimizer"), "adam");
    AdamConfig::new(fx.meta_f64("lr"))
        .with_betas(fx.meta_f64("beta1"), fx.meta_f64("beta2"))
        .with_eps(fx.meta_f64("eps"))
        .with_weight_decay(fx.meta_f64("weight_decay"))
        .with_amsgrad(fx.meta("amsgrad") == "true")
}

#[test]
fn sgd_matches_torch_optim() {
    for file in [
        "optim_sgd_plain",
        "optim_sgd_momentum",
        "optim_sgd_dampening",
        "optim_sgd_nesterov",
        "optim_sgd_wd",
    ] {
        run_trajectory(file, sgd_from(file).build().unwrap());
    }
}

#[test]
fn adam_matches_torch_optim() {
    for file in [
        "optim_adam_default",
        "optim_adam_lr",
        "optim_adam_wd",
        "optim_adam_amsgrad",
    ] {
        run_trajectory(file, adam_from(file).build().unwrap());
    }
}

/// The defaults are PyTorch's.
#[test]
fn defaults_are_pytorch_defaults() {
    let s = SgdConfig::<f64>::default();
    assert_eq!(
        (s.lr, s.momentum, s.dampening, s.weight_decay, s.nesterov),
        (1e-3, 0.0, 0.0, 0.0, false)
    );
    let a = AdamConfig::<f64>::default();
    assert_eq!(
        (a.lr, a.beta1, a.beta2, a.eps, a.weight_decay, a.amsgrad),
        (1e-3, 0.9, 0.999, 1e-8, 0.0, false)
    );
    let fx = Fixture::load("optim_adam_default");
    assert_eq!(fx.meta_f64("beta1"), a.beta1);
    assert_eq!(fx.meta_f64("beta2"), a.beta2);
    assert_eq!(fx.meta_f64("eps"), a.eps);
}

/// Momentum's first step uses the gradient itself as the buffer (no dampening), and Adam's first
/// step moves every element by about `lr` (bias correction), whatever the gradient's scale.
#[test]
fn first_steps_by_hand() {
    // SGD, lr 0.1, momentum 0.9, dampening 0.5: step 1 buf = g = 2 → p = 1 − 0.2 = 0.8;
    // step 2 buf = 0.9·2 + 0.5·2 = 2.8 → p = 0.8 − 0.28 = 0.52.
    let mut opt = SgdConfig::new(0.1)
        .with_momentum(0.9)
        .with_dampening(0.5)
        .build()
        .unwrap();
    let mut p = param(arr2(&[[1.0]]));
    let g = param(arr2(&[[2.0]]));
    opt.step(&mut p, &g).unwrap();
    assert!((p.weight()[(0, 0)] - 0.8).abs() < 1e-15);
    opt.step(&mut p, &g).unwrap();
    assert!((p.weight()[(0, 0)] - 0.52).abs() < 1e-15);

    // Adam, lr 0.01: m̂ = g, v̂ = g², so the first step is lr·g/(|g| + eps) ≈ ±lr.
    let mut opt = AdamConfig::new(0.01).build().unwrap();
    let mut p = param(arr2(&[[0.0, 0.0]]));
    opt.step(&mut p, &param(arr2(&[[1e-4, -300.0]]))).unwrap();
    let w = p.weight();
    assert!(
        (w[(0, 0)] + 0.01 * 1e-4 / (1e-4 + 1e-8)).abs() < 1e-12,
        "{w}"
    );
    assert!((w[(0, 1)] - 0.01).abs() < 1e-12, "{w}");
}

/// A learning rate set between steps is used by the next step.
#[test]
fn learning_rate_can_be_changed() {
    let mut opt = SgdConfig::new(0.1).build().unwrap();
    opt.set_learning_rate(0.5).unwrap();
    assert_eq!(opt.learning_rate(), 0.5);
    let mut p = param(arr2(&[[1.0]]));
    opt.step(&mut p, &param(arr2(&[[1.0]]))).unwrap();
    assert_eq!(p.weight()[(0, 0)], 0.5);
}

#[test]
fn clip_grad_norm_matches_pytorch() {
    let fx = Fixture::load("clip_grad_norm");
    let a = fx.get::<f64>("a").into_dimensionality::<Ix2>().unwrap();
    let b = fx.get::<f64>("b").into_dimensionality::<Ix1>().unwrap();
    let max_norms: Vec<f64> = fx
        .meta("max_norms")
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(max_norms.len(), 2);
    for max_norm in max_norms {
        // (a, b) as one parameter set: a Linear with weight a and bias b needs b.len() == rows,
        // so use a pair of bias-free layers instead.
        let mut grads = (param(a.clone()), param(b.clone().insert_axis(Axis(0))));
        let total = clip_grad_norm(&mut grads, max_norm).unwrap();
        let key = format!("clip_{max_norm:?}");
        let want_total = fx.get::<f64>(&format!("{key}.total_norm"))[[0]];
        assert!(
            (total - want_total).abs() <= 1e-12 * want_total,
            "{key}: {total} vs {want_total}"
        );
        let want_a = fx.get::<f64>(&format!("{key}.a"));
        let want_b = fx.get::<f64>(&format!("{key}.b"));
        assert_close(
            &grads.0.weight().view().into_dyn(),
            &want_a.view(),
            1e-12,
            1e-12,
            &format!("{key}.a"),
        );
        let got_b: Array1<f64> = grads.1.weight().row(0).to_owned();
        assert_close(
            &got_b.view().into_dyn(),
            &want_b.view(),
            1e-12,
            1e-12,
            &format!("{key}.b"),
        );
    }
}

/// Clipping leaves gradients under the limit untouched and scales larger ones to the limit.
#[test]
fn clip_grad_norm_by_hand() {
    let mut g = param(arr2(&[[3.0, 4.0]]));
    assert_eq!(clip_grad_norm(&mut g, 10.0).unwrap(), 5.0);
    assert_eq!(g.weight(), &arr2(&[[3.0, 4.0]]));
    assert_eq!(clip_grad_norm(&mut g, 1.0).unwrap(), 5.0);
    let scale = 1.0 / (5.0 + 1e-6);
    assert!((g.weight()[(0, 0)] - 3.0 * scale).abs() < 1e-15);
    assert!((g.global_norm() - 5.0 * scale).abs() < 1e-12);
}
