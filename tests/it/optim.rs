//! Optimizers, schedules and clipping against `torch.optim` / `torch.optim.lr_scheduler` /
//! `clip_grad_norm_` / `clip_grad_value_` results recorded in `tests/fixtures/optim_*.safetensors`
//! and `clip_grad_norm.safetensors`, plus hand-computed steps, state save/restore and errors.

use crate::common::*;
use ndarray::{arr2, Array1, Array2, ArrayD, Axis, Ix1, Ix2, Ix3};
use recurrent::optim::{
    clip_grad_norm, clip_grad_value, AdagradConfig, AdamConfig, AdamWConfig, CosineAnnealingLr,
    ExponentialLr, LinearWarmup, LrSchedule, Optimizer, OptimizerState, PlateauMode,
    ReduceLrOnPlateauConfig, RmsPropConfig, SequentialLr, SgdConfig, SlotState, StepLr,
    ThresholdMode, UpdateRule,
};
use recurrent::{Error, Float, Linear, Params};

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

// ---------------------------------------------------------------------------------------------
// AdamW, RMSprop, Adagrad against torch.optim (foreach=False)
// ---------------------------------------------------------------------------------------------

fn adamw_from(file: &str) -> AdamWConfig<f64> {
    let fx = Fixture::load(file);
    assert_eq!(fx.meta("optimizer"), "adamw");
    AdamWConfig::new(fx.meta_f64("lr"))
        .with_betas(fx.meta_f64("beta1"), fx.meta_f64("beta2"))
        .with_eps(fx.meta_f64("eps"))
        .with_weight_decay(fx.meta_f64("weight_decay"))
        .with_amsgrad(fx.meta("amsgrad") == "true")
}

fn rmsprop_from(file: &str) -> RmsPropConfig<f64> {
    let fx = Fixture::load(file);
    assert_eq!(fx.meta("optimizer"), "rmsprop");
    RmsPropConfig::new(fx.meta_f64("lr"))
        .with_alpha(fx.meta_f64("alpha"))
        .with_eps(fx.meta_f64("eps"))
        .with_weight_decay(fx.meta_f64("weight_decay"))
        .with_momentum(fx.meta_f64("momentum"))
        .with_centered(fx.meta("centered") == "true")
}

fn adagrad_from(file: &str) -> AdagradConfig<f64> {
    let fx = Fixture::load(file);
    assert_eq!(fx.meta("optimizer"), "adagrad");
    AdagradConfig::new(fx.meta_f64("lr"))
        .with_lr_decay(fx.meta_f64("lr_decay"))
        .with_weight_decay(fx.meta_f64("weight_decay"))
        .with_initial_accumulator_value(fx.meta_f64("initial_accumulator_value"))
        .with_eps(fx.meta_f64("eps"))
}

#[test]
fn adamw_matches_torch_optim() {
    for file in [
        "optim_adamw_default",
        "optim_adamw_wd",
        "optim_adamw_amsgrad",
    ] {
        run_trajectory(file, adamw_from(file).build().unwrap());
    }
}

#[test]
fn rmsprop_matches_torch_optim() {
    for file in [
        "optim_rmsprop_plain",
        "optim_rmsprop_momentum",
        "optim_rmsprop_centered",
        "optim_rmsprop_centered_momentum",
        "optim_rmsprop_wd",
    ] {
        run_trajectory(file, rmsprop_from(file).build().unwrap());
    }
}

#[test]
fn adagrad_matches_torch_optim() {
    for file in ["optim_adagrad_plain", "optim_adagrad_decay"] {
        run_trajectory(file, adagrad_from(file).build().unwrap());
    }
}

/// The new configs' defaults are PyTorch's (the `*_default` / `*_plain` fixtures record every
/// hyper-parameter torch used, defaults included).
#[test]
fn new_defaults_are_pytorch_defaults() {
    let a = AdamWConfig::<f64>::default();
    assert_eq!(
        (a.lr, a.beta1, a.beta2, a.eps, a.weight_decay, a.amsgrad),
        (1e-3, 0.9, 0.999, 1e-8, 0.01, false)
    );
    let fx = Fixture::load("optim_adamw_default");
    assert_eq!(fx.meta_f64("weight_decay"), a.weight_decay);
    assert_eq!((fx.meta_f64("beta1"), fx.meta_f64("eps")), (a.beta1, a.eps));

    let r = RmsPropConfig::<f64>::default();
    assert_eq!(
        (r.lr, r.alpha, r.eps, r.weight_decay, r.momentum, r.centered),
        (1e-2, 0.99, 1e-8, 0.0, 0.0, false)
    );
    let fx = Fixture::load("optim_rmsprop_plain");
    assert_eq!(
        (
            fx.meta_f64("alpha"),
            fx.meta_f64("eps"),
            fx.meta_f64("momentum")
        ),
        (r.alpha, r.eps, r.momentum)
    );

    let g = AdagradConfig::<f64>::default();
    assert_eq!(
        (
            g.lr,
            g.lr_decay,
            g.weight_decay,
            g.initial_accumulator_value,
            g.eps
        ),
        (1e-2, 0.0, 0.0, 0.0, 1e-10)
    );
    let fx = Fixture::load("optim_adagrad_plain");
    assert_eq!(fx.meta_f64("eps"), g.eps);
    assert_eq!(fx.meta_f64("initial_accumulator_value"), 0.0);
}

/// First steps worked out by hand.
#[test]
fn new_optimizers_first_steps_by_hand() {
    // AdamW, lr 0.1, wd 0.5: p = 2 · (1 − 0.05) = 1.9, then the Adam step moves it by ≈ lr·sign(g).
    let mut opt = AdamWConfig::new(0.1)
        .with_weight_decay(0.5)
        .build()
        .unwrap();
    let mut p = param(arr2(&[[2.0]]));
    opt.step(&mut p, &param(arr2(&[[3.0]]))).unwrap();
    let want = 1.9 - 0.1 * 3.0 / (3.0 + 1e-8);
    assert!((p.weight()[(0, 0)] - want).abs() < 1e-15, "{}", p.weight());

    // RMSprop, lr 0.01, alpha 0.99: v = 0.01 g², so p moves by lr · g / (0.1 |g| + eps) ≈ 0.1.
    let mut opt = RmsPropConfig::new(0.01).build().unwrap();
    let mut p = param(arr2(&[[0.0, 0.0]]));
    opt.step(&mut p, &param(arr2(&[[2.0, -4.0]]))).unwrap();
    let w = p.weight();
    assert!((w[(0, 0)] + 0.01 * 2.0 / (0.2 + 1e-8)).abs() < 1e-15, "{w}");
    assert!((w[(0, 1)] - 0.01 * 4.0 / (0.4 + 1e-8)).abs() < 1e-15, "{w}");

    // RMSprop centered: first step v = (1−α) g², ḡ = (1−α) g, so v − ḡ² = α(1−α) g².
    let mut opt = RmsPropConfig::new(0.01)
        .with_alpha(0.5)
        .with_centered(true)
        .build()
        .unwrap();
    let mut p = param(arr2(&[[0.0]]));
    opt.step(&mut p, &param(arr2(&[[2.0]]))).unwrap();
    assert!((p.weight()[(0, 0)] + 0.01 * 2.0 / (1.0 + 1e-8)).abs() < 1e-15);

    // Adagrad, lr 1, lr_decay 1: step 1 s = 4 → p −= 1 · 2 / 2; step 2 s = 8, clr = 1/2.
    // eps = 1e-300 vanishes next to √s in f64, so this is the exact arithmetic of eps = 0 (which
    // is refused: a zero gradient would make the step 0 / 0).
    let mut opt = AdagradConfig::new(1.0)
        .with_lr_decay(1.0)
        .with_eps(1e-300)
        .build()
        .unwrap();
    let mut p = param(arr2(&[[0.0]]));
    let g = param(arr2(&[[2.0]]));
    opt.step(&mut p, &g).unwrap();
    assert_eq!(p.weight()[(0, 0)], -1.0);
    opt.step(&mut p, &g).unwrap();
    assert!((p.weight()[(0, 0)] - (-1.0 - 0.5 * 2.0 / 8f64.sqrt())).abs() < 1e-15);
    assert_eq!(opt.slots()[0].step, 2);
    assert_eq!(opt.slots()[0].sum[[0, 0]], 8.0);
}

/// Every bad setting of the new optimizers is refused at build time, naming the setting.
#[test]
fn invalid_new_optimizer_settings() {
    let cases: Vec<(recurrent::Result<()>, &str)> = vec![
        (
            AdamWConfig::<f64>::new(-1e-3).build().map(|_| ()),
            "lr must be finite and >= 0, got -0.001",
        ),
        (
            AdamWConfig::<f64>::new(1e-3)
                .with_weight_decay(-0.1)
                .build()
                .map(|_| ()),
            "weight_decay must be finite and >= 0, got -0.1",
        ),
        (
            AdamWConfig::<f64>::new(1e-3)
                .with_betas(0.9, 1.0)
                .build()
                .map(|_| ()),
            "beta2 must be in [0, 1), got 1",
        ),
        (
            AdamWConfig::<f64>::new(1e-3)
                .with_eps(f64::NAN)
                .build()
                .map(|_| ()),
            "eps must be finite and >= 0, got NaN",
        ),
        (
            RmsPropConfig::<f64>::new(f64::INFINITY).build().map(|_| ()),
            "lr must be finite and >= 0, got inf",
        ),
        (
            RmsPropConfig::<f64>::new(0.01)
                .with_alpha(1.0)
                .build()
                .map(|_| ()),
            "alpha must be in [0, 1), got 1",
        ),
        (
            RmsPropConfig::<f64>::new(0.01)
                .with_alpha(-0.1)
                .build()
                .map(|_| ()),
            "alpha must be in [0, 1), got -0.1",
        ),
        (
            RmsPropConfig::<f64>::new(0.01)
                .with_momentum(-0.9)
                .build()
                .map(|_| ()),
            "momentum must be finite and >= 0, got -0.9",
        ),
        (
            RmsPropConfig::<f64>::new(0.01)
                .with_eps(-1.0)
                .build()
                .map(|_| ()),
            "eps must be finite and >= 0, got -1",
        ),
        (
            RmsPropConfig::<f64>::new(0.01)
                .with_weight_decay(-1.0)
                .build()
                .map(|_| ()),
            "weight_decay must be finite and >= 0, got -1",
        ),
        (
            AdagradConfig::<f64>::new(-0.1).build().map(|_| ()),
            "lr must be finite and >= 0, got -0.1",
        ),
        (
            AdagradConfig::<f64>::new(0.1)
                .with_lr_decay(-0.5)
                .build()
                .map(|_| ()),
            "lr_decay must be finite and >= 0, got -0.5",
        ),
        (
            AdagradConfig::<f64>::new(0.1)
                .with_initial_accumulator_value(-1.0)
                .build()
                .map(|_| ()),
            "initial_accumulator_value must be finite and >= 0, got -1",
        ),
        (
            AdagradConfig::<f64>::new(0.1)
                .with_weight_decay(f64::NAN)
                .build()
                .map(|_| ()),
            "weight_decay must be finite and >= 0, got NaN",
        ),
        (
            AdagradConfig::<f64>::new(0.1)
                .with_eps(-1e-10)
                .build()
                .map(|_| ()),
            "eps must be finite and >= 0, got -0.0000000001",
        ),
    ];
    for (r, want) in cases {
        let e = r.expect_err(want);
        assert!(matches!(e, Error::InvalidConfig(_)), "{e:?}");
        let m = e.to_string();
        assert!(m.contains(want), "{m:?} does not contain {want:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Gradient-value clipping
// ---------------------------------------------------------------------------------------------

#[test]
fn clip_grad_value_matches_pytorch() {
    let fx = Fixture::load("optim_clip_grad_value");
    let a = fx.get::<f64>("a").into_dimensionality::<Ix2>().unwrap();
    let b = fx.get::<f64>("b").into_dimensionality::<Ix1>().unwrap();
    let clip_values: Vec<f64> = fx
        .meta("clip_values")
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(clip_values.len(), 2);
    for clip in clip_values {
        let mut grads = (param(a.clone()), param(b.clone().insert_axis(Axis(0))));
        clip_grad_value(&mut grads, clip).unwrap();
        let key = format!("clip_{clip:?}");
        // Clamping is exact: compare bit for bit.
        assert_eq!(
            grads.0.weight().view().into_dyn(),
            fx.get::<f64>(&format!("{key}.a")).view(),
            "{key}.a"
        );
        assert_eq!(
            grads.1.weight().row(0).into_dyn(),
            fx.get::<f64>(&format!("{key}.b")).view(),
            "{key}.b"
        );
        assert!(grads.0.weight().iter().any(|&v| v.abs() == clip), "{key}");
    }
}

#[test]
fn clip_grad_value_edge_cases() {
    // Infinities are clamped; +inf as the limit changes nothing.
    let mut g = param(arr2(&[[f64::INFINITY, -3.0, 0.25]]));
    clip_grad_value(&mut g, f64::INFINITY).unwrap();
    assert_eq!(g.weight(), &arr2(&[[f64::INFINITY, -3.0, 0.25]]));
    clip_grad_value(&mut g, 1.0).unwrap();
    assert_eq!(g.weight(), &arr2(&[[1.0, -1.0, 0.25]]));
    clip_grad_value(&mut g, 0.0).unwrap();
    assert_eq!(g.weight(), &arr2(&[[0.0, 0.0, 0.0]]));

    // Bad limits.
    for bad in [-0.5, f64::NAN] {
        let e = clip_grad_value(&mut g, bad).unwrap_err();
        assert!(matches!(e, Error::InvalidConfig(_)), "{e:?}");
        assert!(e.to_string().contains("clip_value must be >= 0"), "{e}");
    }

    // A NaN gradient: error, and nothing is clipped.
    let mut g = (param(arr2(&[[5.0]])), param(arr2(&[[1.0, f64::NAN]])));
    let e = clip_grad_value(&mut g, 1.0).unwrap_err();
    assert!(matches!(e, Error::NonFinite(_)), "{e:?}");
    assert!(e.to_string().contains("`1.weight`"), "{e}");
    assert_eq!(g.0.weight()[(0, 0)], 5.0);
}

// ---------------------------------------------------------------------------------------------
// Learning-rate schedules against torch.optim.lr_scheduler
// ---------------------------------------------------------------------------------------------

fn schedule_from(fx: &Fixture) -> Box<dyn LrSchedule> {
    let base = fx.meta_f64("base_lr");
    let us = |k: &str| fx.meta(k).parse::<usize>().unwrap();
    match fx.meta("scheduler") {
        "step" => Box::new(StepLr::new(base, us("step_size"), fx.meta_f64("gamma")).unwrap()),
        "exponential" => Box::new(ExponentialLr::new(base, fx.meta_f64("gamma")).unwrap()),
        "cosine" => {
            Box::new(CosineAnnealingLr::new(base, us("T_max"), fx.meta_f64("eta_min")).unwrap())
        }
        "linear" => Box::new(
            LinearWarmup::with_factors(
                base,
                fx.meta_f64("start_factor"),
                fx.meta_f64("end_factor"),
                us("total_iters"),
            )
            .unwrap(),
        ),
        "sequential" => Box::new(
            SequentialLr::new(
                vec![
                    Box::new(
                        LinearWarmup::with_factors(
                            base,
                            fx.meta_f64("start_factor"),
                            fx.meta_f64("end_factor"),
                            us("total_iters"),
                        )
                        .unwrap(),
                    ),
                    Box::new(
                        CosineAnnealingLr::new(base, us("T_max"), fx.meta_f64("eta_min")).unwrap(),
                    ),
                ],
                vec![fx.meta("milestones").parse().unwrap()],
            )
            .unwrap(),
        ),
        "plateau" => {
            let mode = match fx.meta("mode") {
                "min" => PlateauMode::Min,
                "max" => PlateauMode::Max,
                m => panic!("mode {m}"),
            };
            let tmode = match fx.meta("threshold_mode") {
                "rel" => ThresholdMode::Rel,
                "abs" => ThresholdMode::Abs,
                m => panic!("threshold_mode {m}"),
            };
            Box::new(
                ReduceLrOnPlateauConfig::new(base)
                    .with_mode(mode)
                    .with_factor(fx.meta_f64("factor"))
                    .with_patience(us("patience"))
                    .with_threshold(fx.meta_f64("threshold"), tmode)
                    .with_cooldown(us("cooldown"))
                    .with_min_lr(fx.meta_f64("min_lr"))
                    .with_eps(fx.meta_f64("eps"))
                    .build()
                    .unwrap(),
            )
        }
        s => panic!("scheduler {s}"),
    }
}

#[test]
fn schedules_match_torch_lr_scheduler() {
    for file in [
        "optim_sched_step",
        "optim_sched_exponential",
        "optim_sched_cosine",
        "optim_sched_cosine_eta_min",
        "optim_sched_linear",
        "optim_sched_linear_end",
        "optim_sched_sequential",
        "optim_sched_plateau",
        "optim_sched_plateau_max",
    ] {
        let fx = Fixture::load(file);
        let steps: usize = fx.meta("steps").parse().unwrap();
        let mut sched = schedule_from(&fx);
        let metrics = fx.has("metrics").then(|| fx.get::<f64>("metrics"));
        let mut got = vec![sched.lr()];
        for k in 0..steps {
            match &metrics {
                Some(m) => sched.step_with_metric(m[[k]]),
                None => sched.step(),
            }
            assert_eq!(sched.epoch(), k as u64 + 1);
            got.push(sched.lr());
        }
        let got = Array1::from(got).into_dyn();
        // torch's get_last_lr() (its recursive form) and, where torch has one, its closed form.
        assert_close(&got.view(), &fx.get::<f64>("lrs").view(), 1e-12, 1e-3, file);
        if fx.has("closed_form_lrs") {
            let want = fx.get::<f64>("closed_form_lrs");
            assert_close(&got.view(), &want.view(), 1e-14, 1e-3, file);
        }
    }
}

#[test]
fn schedules_by_hand() {
    // StepLr / ExponentialLr: exact powers of 1/2.
    let mut s = StepLr::new(0.8, 3, 0.5).unwrap();
    let lrs: Vec<f64> = (0..7)
        .map(|_| {
            let lr = s.lr();
            s.step();
            lr
        })
        .collect();
    assert_eq!(lrs, [0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2]);
    let mut s = ExponentialLr::new(1.0, 0.5).unwrap();
    s.step_with_metric(123.0); // the metric is ignored
    assert_eq!((s.lr(), s.epoch()), (0.5, 1));

    // Cosine: eta_min at T_max, back to base_lr at 2·T_max (as PyTorch, no clamping).
    let mut s = CosineAnnealingLr::new(1.0, 2, 0.5).unwrap();
    assert_eq!(s.lr(), 1.0);
    s.step();
    assert!((s.lr() - 0.75).abs() < 1e-15);
    s.step();
    assert_eq!(s.lr(), 0.5);
    s.step();
    s.step();
    assert_eq!(s.lr(), 1.0);

    // LinearWarmup ends exactly at base_lr · end_factor.
    let mut s = LinearWarmup::new(0.3, 1.0 / 3.0, 7).unwrap();
    for _ in 0..7 {
        s.step();
    }
    assert_eq!(s.lr(), 0.3);

    // Plateau (min mode, defaults but patience 1): drops after 2 bad epochs, cooldown holds.
    let mut s = ReduceLrOnPlateauConfig::new(1.0)
        .with_patience(1)
        .with_cooldown(1)
        .with_min_lr(0.05)
        .build()
        .unwrap();
    assert_eq!((s.lr(), s.best()), (1.0, f64::INFINITY));
    let mut lrs = vec![];
    for m in [5.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0] {
        s.step_with_metric(m);
        lrs.push(s.lr());
    }
    // bad epochs: -, -, 1, 2→drop(0.1) + cooldown 1, (cooldown) 0, 1, 2→drop(0.05 = min_lr), ...
    assert_eq!(lrs, [1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05]);
    assert_eq!(s.best(), 4.0);
    // step() without a metric only counts the epoch.
    let (lr, bad) = (s.lr(), s.num_bad_epochs());
    s.step();
    assert_eq!((s.lr(), s.num_bad_epochs(), s.epoch()), (lr, bad, 11));
    // The last plateau hit min_lr (no drop), but the cooldown restarts anyway, as in PyTorch.
    assert_eq!(s.cooldown_counter(), 1);
}

#[test]
fn invalid_schedule_settings() {
    let cases: Vec<(recurrent::Result<()>, &str)> = vec![
        (
            StepLr::new(-0.1, 1, 0.5).map(|_| ()),
            "base_lr must be finite and >= 0, got -0.1",
        ),
        (
            StepLr::new(0.1, 0, 0.5).map(|_| ()),
            "step_size must be >= 1, got 0",
        ),
        (
            StepLr::new(0.1, 2, 0.0).map(|_| ()),
            "gamma must be finite and > 0, got 0",
        ),
        (
            ExponentialLr::new(f64::NAN, 0.9).map(|_| ()),
            "base_lr must be finite and >= 0, got NaN",
        ),
        (
            ExponentialLr::new(0.1, f64::INFINITY).map(|_| ()),
            "gamma must be finite and > 0, got inf",
        ),
        (
            CosineAnnealingLr::new(0.1, 0, 0.0).map(|_| ()),
            "t_max must be >= 1, got 0",
        ),
        (
            CosineAnnealingLr::new(0.1, 10, -1e-3).map(|_| ()),
            "eta_min must be finite and >= 0, got -0.001",
        ),
        (
            LinearWarmup::new(0.1, 0.0, 5).map(|_| ()),
            "start_factor must be in (0, 1], got 0",
        ),
        (
            LinearWarmup::new(0.1, 1.5, 5).map(|_| ()),
            "start_factor must be in (0, 1], got 1.5",
        ),
        (
            LinearWarmup::with_factors(0.1, 0.5, 1.1, 5).map(|_| ()),
            "end_factor must be in [0, 1], got 1.1",
        ),
        (
            LinearWarmup::new(0.1, 0.5, 0).map(|_| ()),
            "total_iters must be >= 1, got 0",
        ),
        (
            ReduceLrOnPlateauConfig::new(0.1)
                .with_factor(1.0)
                .build()
                .map(|_| ()),
            "factor must be in [0, 1), got 1",
        ),
        (
            ReduceLrOnPlateauConfig::new(0.1)
                .with_threshold(-1e-4, ThresholdMode::Rel)
                .build()
                .map(|_| ()),
            "threshold must be finite and >= 0, got -0.0001",
        ),
        (
            ReduceLrOnPlateauConfig::new(0.1)
                .with_min_lr(-1.0)
                .build()
                .map(|_| ()),
            "min_lr must be finite and >= 0, got -1",
        ),
        (
            ReduceLrOnPlateauConfig::new(0.1)
                .with_eps(f64::NAN)
                .build()
                .map(|_| ()),
            "eps must be finite and >= 0, got NaN",
        ),
        (
            ReduceLrOnPlateauConfig::new(-0.1).build().map(|_| ()),
            "base_lr must be finite and >= 0, got -0.1",
        ),
    ];
    for (r, want) in cases {
        let e = r.expect_err(want);
        assert!(matches!(e, Error::InvalidConfig(_)), "{e:?}");
        let m = e.to_string();
        assert!(m.contains(want), "{m:?} does not contain {want:?}");
    }
}

/// `apply_schedule` copies the schedule's rate into the optimizer, which the next step uses.
#[test]
fn schedule_drives_optimizer() {
    let mut opt = SgdConfig::new(1.0).build().unwrap();
    let mut sched = LinearWarmup::new(1.0, 0.5, 2).unwrap();
    let mut p = param(arr2(&[[0.0]]));
    let g = param(arr2(&[[1.0]]));
    for _ in 0..3 {
        opt.apply_schedule(&sched).unwrap();
        opt.step(&mut p, &g).unwrap();
        sched.step();
    }
    // lr 0.5, 0.75, 1.0
    assert_eq!(p.weight()[(0, 0)], -2.25);
    let dynamic: &dyn LrSchedule = &sched;
    opt.apply_schedule(dynamic).unwrap();
    assert_eq!(opt.learning_rate(), 1.0);
}

// ---------------------------------------------------------------------------------------------
// Saving and restoring optimizer state
// ---------------------------------------------------------------------------------------------

/// A two-layer model (four named arrays: `0.weight`, `0.bias`, `1.weight`, `1.bias`).
fn model<F: Float>(seed: u64) -> (Linear<F>, Linear<F>) {
    let mut r = rng(seed);
    (
        Linear::new(3, 4, &mut r).unwrap(),
        Linear::new(4, 2, &mut r).unwrap(),
    )
}

/// Random gradients shaped like `model`.
fn random_grads<F: Float>(n: usize, seed: u64) -> Vec<(Linear<F>, Linear<F>)> {
    let mut r = rng(seed);
    (0..n)
        .map(|_| {
            let mut g = model::<F>(0).zeros_like();
            for mut a in g.arrays_mut() {
                let noise = randn::<F>(a.shape(), 1.0, &mut r);
                a.assign(&noise);
            }
            g
        })
        .collect()
}

/// Runs 6 steps uninterrupted, and 3 steps + save (through the flat form) + restore into a fresh
/// optimizer + 3 steps; the models and the final states must agree bit for bit. The learning
/// rate is changed after step 2 (as a schedule would), so it must be restored too.
fn round_trip<F: Float, R: UpdateRule<F>>(make: impl Fn() -> Optimizer<F, R>) {
    let grads = random_grads::<F>(6, 11);
    let lr2 = F::from_f64(0.5) * make().learning_rate();
    let run = |opt: &mut Optimizer<F, R>,
               m: &mut (Linear<F>, Linear<F>),
               range: std::ops::Range<usize>| {
        for k in range {
            if k == 2 {
                opt.set_learning_rate(lr2).unwrap();
            }
            opt.step(m, &grads[k]).unwrap();
        }
    };
    let mut a = model::<F>(5);
    let mut opt_a = make();
    run(&mut opt_a, &mut a, 0..6);

    let mut b = model::<F>(5);
    let mut opt_b = make();
    run(&mut opt_b, &mut b, 0..3);
    let saved = opt_b.state();
    assert_eq!(saved.steps, 3);
    assert_eq!(saved.learning_rate, lr2.as_f64());
    let names: Vec<&str> = saved.slots.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["0.weight", "0.bias", "1.weight", "1.bias"]);
    let (arrays, meta) = (saved.flat_arrays(), saved.flat_metadata());
    let arrays: Vec<(String, ArrayD<F>)> =
        arrays.into_iter().map(|(n, a)| (n, a.to_owned())).collect();
    let restored = OptimizerState::from_flat(arrays, meta).unwrap();
    drop(opt_b);

    let mut opt_c = make();
    opt_c.load_state(&b, &restored).unwrap();
    assert_eq!(opt_c.steps(), 3);
    assert_eq!(opt_c.learning_rate(), lr2);
    run(&mut opt_c, &mut b, 3..6);
    assert_eq!(a, b, "{}", opt_a.rule().name());
    assert_eq!(opt_a.state(), opt_c.state(), "{}", opt_a.rule().name());
}

#[test]
fn state_round_trip_continues_bit_for_bit() {
    round_trip(|| SgdConfig::<f64>::new(0.1).build().unwrap());
    round_trip(|| {
        SgdConfig::<f64>::new(0.1)
            .with_momentum(0.9)
            .with_nesterov(true)
            .build()
            .unwrap()
    });
    round_trip(|| AdamConfig::<f64>::new(1e-2).build().unwrap());
    round_trip(|| {
        AdamConfig::<f64>::new(1e-2)
            .with_amsgrad(true)
            .with_weight_decay(0.1)
            .build()
            .unwrap()
    });
    round_trip(|| AdamWConfig::<f64>::new(1e-2).build().unwrap());
    round_trip(|| {
        AdamWConfig::<f64>::new(1e-2)
            .with_amsgrad(true)
            .build()
            .unwrap()
    });
    round_trip(|| RmsPropConfig::<f64>::new(1e-2).build().unwrap());
    round_trip(|| {
        RmsPropConfig::<f64>::new(1e-2)
            .with_momentum(0.9)
            .with_centered(true)
            .with_weight_decay(0.01)
            .build()
            .unwrap()
    });
    round_trip(|| {
        AdagradConfig::<f64>::new(0.1)
            .with_lr_decay(0.01)
            .with_initial_accumulator_value(0.1)
            .build()
            .unwrap()
    });
    // f32 too (the learning rate travels as f64 and comes back exactly).
    round_trip(|| AdamWConfig::<f32>::new(1e-2).build().unwrap());
    round_trip(|| {
        RmsPropConfig::<f32>::new(1e-2)
            .with_momentum(0.5)
            .build()
            .unwrap()
    });
}

/// Slot names and entries follow torch.optim's state keys.
#[test]
fn state_entries_are_torch_state_keys() {
    let m = model::<f64>(1);
    let g = random_grads::<f64>(1, 2);
    let entries = |st: &OptimizerState<f64>| -> Vec<String> {
        let (arrays, meta) = (st.flat_arrays(), st.flat_metadata());
        arrays
            .into_iter()
            .map(|(n, _)| n)
            .chain(
                meta.into_iter()
                    .map(|(k, _)| k)
                    .filter(|k| k.starts_with("0.weight.")),
            )
            .filter(|n| n.starts_with("0.weight."))
            .collect()
    };
    let mut p = m.clone();
    let mut opt = RmsPropConfig::new(0.01)
        .with_momentum(0.9)
        .with_centered(true)
        .build()
        .unwrap();
    opt.step(&mut p, &g[0]).unwrap();
    assert_eq!(
        entries(&opt.state()),
        [
            "0.weight.square_avg",
            "0.weight.momentum_buffer",
            "0.weight.grad_avg",
            "0.weight.step"
        ]
    );
    let mut p = m.clone();
    let mut opt = AdagradConfig::new(0.01).build().unwrap();
    opt.step(&mut p, &g[0]).unwrap();
    assert_eq!(entries(&opt.state()), ["0.weight.sum", "0.weight.step"]);
    let mut p = m.clone();
    let mut opt = SgdConfig::new(0.01).with_momentum(0.5).build().unwrap();
    opt.step(&mut p, &g[0]).unwrap();
    assert_eq!(entries(&opt.state()), ["0.weight.momentum_buffer"]);
    let meta = opt.state().flat_metadata();
    for key in [
        "optimizer",
        "steps",
        "learning_rate",
        "num_params",
        "param.3",
    ] {
        assert!(meta.iter().any(|(k, _)| k == key), "{key}");
    }
    assert!(meta.contains(&("optimizer".to_string(), "sgd".to_string())));
    assert!(meta.contains(&("param.3".to_string(), "1.bias".to_string())));
}

/// A NaN or infinite gradient is refused with `NonFinite`, nothing updated (PyTorch would write NaN
/// into the weights); `set_check_finite(false)` steps anyway. Adam-family `eps = 0` (a zero
/// gradient then gives 0 / 0) is refused at build.
#[test]
fn non_finite_gradients_and_zero_eps_are_refused() {
    for bad in [f64::NAN, f64::INFINITY] {
        let mut m = model::<f64>(3);
        let mut g = random_grads::<f64>(1, 4).remove(0);
        g.arrays_mut().last_mut().unwrap().as_slice_mut().unwrap()[0] = bad;
        let mut opt = AdamConfig::new(0.01).build().unwrap();
        let before = m.clone();
        let e = opt.step(&mut m, &g).unwrap_err();
        assert!(matches!(e, Error::NonFinite(_)), "{e:?}");
        assert_eq!(m, before);
        assert_eq!(opt.steps(), 0);
        opt.set_check_finite(false);
        opt.step(&mut m, &g).unwrap();
        assert!(m
            .named_arrays()
            .iter()
            .any(|(_, a)| a.iter().any(|v| !v.is_finite())));
    }
    for e in [
        AdamConfig::<f64>::new(0.01)
            .with_eps(0.0)
            .build()
            .map(|_| ()),
        AdamWConfig::<f64>::new(0.01)
            .with_eps(0.0)
            .build()
            .map(|_| ()),
        RmsPropConfig::<f64>::new(0.01)
            .with_eps(0.0)
            .build()
            .map(|_| ()),
        AdagradConfig::<f64>::new(0.01)
            .with_eps(0.0)
            .build()
            .map(|_| ()),
    ] {
        let e = e.unwrap_err();
        assert!(e.to_string().contains("eps must be > 0"), "{e}");
    }
    // Adagrad's sum cannot be 0 when it starts above 0: eps = 0 is safe then.
    AdagradConfig::<f64>::new(0.01)
        .with_eps(0.0)
        .with_initial_accumulator_value(0.1)
        .build()
        .unwrap();
}

/// A loaded optimizer state is checked before it is used: a NaN or infinite moment is
/// `NonFinite`, a negative sum or average of squares (whose square root the step takes) is a
/// `Mismatch` naming the array, entry and index; the optimizer is unchanged after either.
#[test]
fn corrupt_loaded_optimizer_state_is_refused() {
    check_corrupt_state("adam", "exp_avg_sq", "exp_avg", || {
        AdamConfig::new(0.01).build().unwrap()
    });
    check_corrupt_state("amsgrad", "max_exp_avg_sq", "exp_avg", || {
        AdamConfig::new(0.01).with_amsgrad(true).build().unwrap()
    });
    check_corrupt_state("adamw", "exp_avg_sq", "exp_avg", || {
        AdamWConfig::new(0.01).build().unwrap()
    });
    check_corrupt_state("rmsprop", "square_avg", "momentum_buffer", || {
        RmsPropConfig::new(0.01).with_momentum(0.9).build().unwrap()
    });
    check_corrupt_state("adagrad", "sum", "", || {
        AdagradConfig::new(0.01).build().unwrap()
    });
    check_corrupt_state("sgd", "", "momentum_buffer", || {
        SgdConfig::new(0.01).with_momentum(0.9).build().unwrap()
    });
}

/// Steps an optimizer from `build` once, then loads its state into a fresh one with `squares`
/// (an entry that must be ≥ 0, or "") made negative and with `squares` and `other` made NaN / −∞.
fn check_corrupt_state<R: UpdateRule<f64>>(
    which: &str,
    squares: &str,
    other: &str,
    build: impl Fn() -> Optimizer<f64, R>,
) {
    let g = random_grads::<f64>(1, 4);
    let mut m = model::<f64>(3);
    let mut opt = build();
    opt.step(&mut m, &g[0]).unwrap();
    let good = opt.state();
    let name = good.slots[1].0.clone();
    let corrupt = |entry: &str, value: f64| {
        let mut s = good.clone();
        let slot = &mut s.slots[1].1;
        let a = &mut slot.arrays.iter_mut().find(|(n, _)| n == entry).unwrap().1;
        a.as_slice_mut().unwrap()[1] = value;
        s
    };
    let mut fresh = build();
    fresh.load_state(&m, &good).unwrap();
    if !squares.is_empty() {
        let e = fresh.load_state(&m, &corrupt(squares, -1e-3)).unwrap_err();
        assert!(
            matches!(&e, Error::Mismatch(msg)
                if msg.contains(&format!("array `{name}`: saved `{squares}` holds -0.001 at index"))
                    && msg.contains("never negative")),
            "{which}: {e}"
        );
    }
    for entry in [squares, other].into_iter().filter(|e| !e.is_empty()) {
        for bad in [f64::NAN, f64::NEG_INFINITY] {
            let e = fresh.load_state(&m, &corrupt(entry, bad)).unwrap_err();
            assert!(
                matches!(&e, Error::NonFinite(msg)
                    if msg.contains(&format!("array `{name}`: saved `{entry}` holds"))),
                "{which} {entry}: {e}"
            );
        }
    }
    // The refused loads changed nothing: it still holds `good`.
    assert_eq!(fresh.state(), good, "{which}");
}

/// A parameter count in the metadata is never trusted for an allocation: `num_params` of 10¹² or
/// `u64::MAX` (which aborted or panicked the process before) is a clear error.
#[test]
fn absurd_parameter_counts_are_errors() {
    let mut m = model::<f64>(3);
    let g = random_grads::<f64>(1, 4);
    let mut opt = SgdConfig::new(0.01).with_momentum(0.5).build().unwrap();
    opt.step(&mut m, &g[0]).unwrap();
    let state = opt.state();
    for count in ["1000000000000", &u64::MAX.to_string()] {
        let meta: Vec<(String, String)> = state
            .flat_metadata()
            .into_iter()
            .map(|(k, v)| {
                if k == "num_params" {
                    (k, count.to_string())
                } else {
                    (k, v)
                }
            })
            .collect();
        let arrays: Vec<_> = state
            .flat_arrays()
            .into_iter()
            .map(|(k, a)| (k, a.to_owned()))
            .collect();
        let e = recurrent::optim::OptimizerState::<f64>::from_flat(arrays, meta).unwrap_err();
        assert!(
            e.to_string().contains(&format!("`num_params` = {count}")),
            "{e}"
        );
    }
}

/// A state saved before the first step resets a used optimizer to a fresh one.
#[test]
fn fresh_state_resets() {
    let fresh = AdamConfig::<f64>::new(0.02).build().unwrap().state();
    assert!(fresh.slots.is_empty());
    let mut m = model::<f64>(3);
    let g = random_grads::<f64>(2, 4);
    let mut opt = AdamConfig::new(0.01).build().unwrap();
    opt.step(&mut m, &g[0]).unwrap();
    opt.load_state(&m, &fresh).unwrap();
    assert_eq!((opt.steps(), opt.learning_rate()), (0, 0.02));
    assert!(opt.slots().is_empty());
    // It steps like a new optimizer again.
    let mut m2 = m.clone();
    let mut new = AdamConfig::new(0.02).build().unwrap();
    opt.step(&mut m, &g[1]).unwrap();
    new.step(&mut m2, &g[1]).unwrap();
    assert_eq!(m, m2);
}

#[test]
fn load_state_errors() {
    let m = model::<f64>(1);
    let g = random_grads::<f64>(1, 2);
    let mut p = m.clone();
    let mut adam = AdamConfig::new(0.01).build().unwrap();
    adam.step(&mut p, &g[0]).unwrap();
    let state = adam.state();

    let check = |r: recurrent::Result<()>, want: &str| {
        let e = r.expect_err(want);
        assert!(
            matches!(e, Error::Mismatch(_) | Error::InvalidConfig(_)),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(msg.contains(want), "{msg:?} does not contain {want:?}");
    };

    // Another rule.
    let mut sgd = SgdConfig::new(0.1).build().unwrap();
    check(
        sgd.load_state(&m, &state),
        "the saved state is for optimizer `adam`, this one is `sgd`",
    );
    // AMSGrad needs max_exp_avg_sq.
    let mut ams = AdamConfig::new(0.01).with_amsgrad(true).build().unwrap();
    check(
        ams.load_state(&m, &state),
        "array `0.weight`: the saved state has no `max_exp_avg_sq` array",
    );
    // ... and plain Adam refuses one it does not use.
    let mut ams_run = AdamConfig::new(0.01).with_amsgrad(true).build().unwrap();
    ams_run.step(&mut m.clone(), &g[0]).unwrap();
    let mut plain = AdamConfig::new(0.01).build().unwrap();
    check(
        plain.load_state(&m, &ams_run.state()),
        "has entries [\"max_exp_avg_sq\"] that `adam` with these settings does not use",
    );
    // A model with other names, another number of arrays, or other shapes.
    let mut fresh = AdamConfig::new(0.01).build().unwrap();
    check(
        fresh.load_state(&(m.0.clone(), m.0.clone()), &state),
        "array `1.weight`: saved `exp_avg` has shape [2, 4], the parameter has shape [4, 3]",
    );
    check(
        fresh.load_state(&m.0, &state),
        "the saved state holds 4 arrays, the model has 2",
    );
    let mut renamed = state.clone();
    renamed.slots[1].0 = "0.b".to_string();
    check(
        fresh.load_state(&m, &renamed),
        "the saved state is for array `0.b`, the model's array in that place is `0.bias`",
    );
    // A missing step count, or a broken one.
    let mut broken = state.clone();
    broken.slots[2].1.scalars.clear();
    check(
        fresh.load_state(&m, &broken),
        "array `1.weight`: the saved state has no `step` scalar",
    );
    let mut broken = state.clone();
    broken.slots[0].1.scalars[0].1 = 1.5;
    check(
        fresh.load_state(&m, &broken),
        "saved `step` must be an integer in 0..=2^53 - 1 (9007199254740991), got 1.5",
    );
    // A bad learning rate; steps without slots.
    let mut broken = state.clone();
    broken.learning_rate = -1.0;
    check(
        fresh.load_state(&m, &broken),
        "saved learning_rate must be finite and >= 0, got -1",
    );
    let mut broken = state.clone();
    broken.slots.clear();
    check(
        fresh.load_state(&m, &broken),
        "the saved state counts 1 steps but holds no per-array state",
    );
    // Nothing changed in the optimizer that refused all of these.
    assert_eq!(fresh.steps(), 0);
    assert!(fresh.slots().is_empty());
    assert_eq!(fresh.learning_rate(), 0.01);
    // And a failed load leaves a used optimizer as it was.
    let before = adam.state();
    check(adam.load_state(&m, &broken), "holds no per-array state");
    assert_eq!(adam.state(), before);
}

#[test]
fn flat_state_errors() {
    let m = model::<f64>(1);
    let g = random_grads::<f64>(1, 2);
    let mut p = m.clone();
    let mut opt = SgdConfig::new(0.01).with_momentum(0.5).build().unwrap();
    opt.step(&mut p, &g[0]).unwrap();
    let state = opt.state();
    let (arrays, meta) = (state.flat_arrays(), state.flat_metadata());
    let arrays: Vec<(String, ArrayD<f64>)> =
        arrays.into_iter().map(|(n, a)| (n, a.to_owned())).collect();
    let check = |r: recurrent::Result<OptimizerState<f64>>, want: &str| {
        let e = r.expect_err(want);
        assert!(matches!(e, Error::Mismatch(_)), "{e:?}");
        assert!(e.to_string().contains(want), "{e} vs {want}");
    };
    // Any order of the metadata works (a safetensors header is a map).
    let mut shuffled = meta.clone();
    shuffled.reverse();
    let mut arrays_rev = arrays.clone();
    arrays_rev.reverse();
    let back = OptimizerState::from_flat(arrays_rev, shuffled).unwrap();
    assert_eq!(back.slots.len(), 4);
    let mut resumed = SgdConfig::new(0.01).with_momentum(0.5).build().unwrap();
    resumed.load_state(&p, &back).unwrap();

    let without = |key: &str| -> Vec<(String, String)> {
        meta.iter().filter(|(k, _)| k != key).cloned().collect()
    };
    check(
        OptimizerState::from_flat(arrays.clone(), without("steps")),
        "no `steps` entry",
    );
    check(
        OptimizerState::from_flat(arrays.clone(), without("param.2")),
        "no `param.2` entry",
    );
    // An array of a parameter that is not listed.
    let mut extra = arrays.clone();
    extra.push(("2.weight.momentum_buffer".into(), ArrayD::zeros(vec![1])));
    check(
        OptimizerState::from_flat(extra, meta.clone()),
        "`2.weight.momentum_buffer` does not belong to a listed parameter",
    );
    let mut dup = arrays.clone();
    dup.push(arrays[0].clone());
    check(
        OptimizerState::from_flat(dup, meta.clone()),
        "array `0.weight.momentum_buffer` appears twice",
    );
    let mut bad = meta.clone();
    bad.retain(|(k, _)| k != "learning_rate");
    bad.push(("learning_rate".into(), "fast".into()));
    check(
        OptimizerState::from_flat(arrays.clone(), bad),
        "`learning_rate` = \"fast\" is not a number",
    );
}

/// `SlotState` helpers check names and shapes.
#[test]
fn slot_state_helpers() {
    let mut s = SlotState::<f64>::new()
        .with_array("a", ArrayD::zeros(vec![2]))
        .with_scalar("n", 2.0);
    assert_eq!(s.names(), ["a", "n"]);
    assert!(s.take_optional_array("b", &[2]).unwrap().is_none());
    let e = s.take_array("a", &[3]).unwrap_err();
    assert!(
        e.to_string()
            .contains("saved `a` has shape [2], the parameter has shape [3]"),
        "{e}"
    );
    assert_eq!(s.take_array("a", &[2]).unwrap().len(), 2);
    assert!(s.take_count("m").is_err());
    assert_eq!(s.take_count("n").unwrap(), 2);
    assert!(s.is_empty());
    let mut neg = SlotState::<f64>::new().with_scalar("step", -1.0);
    assert!(neg.take_count("step").is_err());
}

/// A schedule put back at a resumed run's epoch with `advance_to` gives the rates of the run that
/// never stopped; `SequentialLr` refuses inconsistent milestones and schedules that already ran.
#[test]
fn schedules_resume_and_sequential_checks() {
    let warmup_then_cosine = || {
        SequentialLr::new(
            vec![
                Box::new(LinearWarmup::new(0.1, 0.1, 4).unwrap()),
                Box::new(CosineAnnealingLr::new(0.1, 8, 0.001).unwrap()),
            ],
            vec![4],
        )
        .unwrap()
    };
    let mut run = warmup_then_cosine();
    let mut rates = vec![run.lr()];
    for _ in 0..12 {
        run.step();
        rates.push(run.lr());
    }
    for epoch in [0u64, 3, 4, 5, 12] {
        let mut resumed = warmup_then_cosine();
        resumed.advance_to(epoch).unwrap();
        assert_eq!(resumed.epoch(), epoch);
        assert_eq!(
            resumed.lr().to_bits(),
            rates[epoch as usize].to_bits(),
            "{epoch}"
        );
    }
    let mut cosine = CosineAnnealingLr::new(0.1, 8, 0.0).unwrap();
    cosine.advance_to(3).unwrap();
    assert!(cosine.advance_to(2).is_err());

    let fresh =
        || -> Box<dyn LrSchedule + Send + Sync> { Box::new(StepLr::new(0.1, 2, 0.5).unwrap()) };
    assert!(SequentialLr::new(vec![fresh(), fresh()], vec![]).is_err());
    assert!(SequentialLr::new(vec![fresh(), fresh(), fresh()], vec![3, 3]).is_err());
    assert!(SequentialLr::new(vec![fresh(), fresh()], vec![0]).is_err());
    assert!(SequentialLr::new(vec![], vec![]).is_err());
    let mut stepped = StepLr::new(0.1, 2, 0.5).unwrap();
    stepped.step();
    let e = SequentialLr::new(vec![fresh(), Box::new(stepped)], vec![2]).unwrap_err();
    assert!(e.to_string().contains("fresh"), "{e}");
}
