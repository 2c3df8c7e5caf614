//! `ops`: softmax, log_softmax and argmax against PyTorch (`tests/fixtures/softmax_f64.safetensors`)
//! and in the corners (NaN, ±∞, ties, empty and 0-dimensional arrays); `sample`: its greedy limits,
//! top-k, and draw frequencies against the softmax probabilities.

use crate::common::*;
use ndarray::{arr0, array, Array1, Array2, Array3, ArrayD, Ix2, Ix3, IxDyn};
use recurrent::ops::{argmax, log_softmax, sample, softmax};
use recurrent::Error;

#[test]
fn softmax_log_softmax_argmax_match_pytorch() {
    let fx = Fixture::load("softmax_f64");
    let logits = fx
        .get::<f64>("logits")
        .into_dimensionality::<Ix3>()
        .unwrap();
    // The fixture has a row in the hundreds (exp would overflow without the max subtracted)
    // and a tie for a row's maximum.
    assert!(logits.iter().any(|v| v.abs() > 200.0));
    let p = softmax(logits.view());
    let l = log_softmax(logits.view());
    // Probabilities down to e^-500 are compared relatively (denominator floor 1e-300).
    assert_close(
        &p.view().into_dyn(),
        &fx.get::<f64>("softmax").view(),
        1e-12,
        1e-300,
        "softmax",
    );
    assert_close(
        &l.view().into_dyn(),
        &fx.get::<f64>("log_softmax").view(),
        1e-12,
        1e-300,
        "log_softmax",
    );
    let want = fx
        .get::<f64>("argmax")
        .into_dimensionality::<Ix2>()
        .unwrap()
        .mapv(|v| v as usize);
    assert_eq!(want[(2, 0)], 1, "the tie: first index");
    assert_eq!(argmax(logits.view()).unwrap(), want);

    // Any rank: the same rows as (12, 5) and as a dynamic-rank array, and in f32.
    let flat = logits.clone().into_shape_with_order((12, 5)).unwrap();
    assert_eq!(
        softmax(flat.view()),
        p.clone().into_shape_with_order((12, 5)).unwrap()
    );
    let dynamic: ArrayD<f64> = logits.clone().into_dyn();
    assert_eq!(log_softmax(dynamic.view()), l.clone().into_dyn());
    assert_eq!(
        argmax(dynamic.view()).unwrap(),
        want.clone().into_dyn(),
        "dynamic rank"
    );
    let p32 = softmax(logits.mapv(|v| v as f32).view());
    assert_close(
        &p32.mapv(f64::from).view().into_dyn(),
        &p.view().into_dyn(),
        1e-5,
        1e-6,
        "softmax f32",
    );
    // A transposed view (5, 12): lanes are the last axis of the view, the columns of `flat`.
    let pt = softmax(flat.t());
    for j in 0..5 {
        let col = softmax(flat.column(j));
        assert_close(
            &pt.row(j).into_dyn(),
            &col.view().into_dyn(),
            1e-15,
            1e-300,
            "transposed",
        );
    }
}

/// NaN, ±∞, underflow, empty and 0-dimensional inputs, as PyTorch handles them.
#[test]
fn corners() {
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    let x = array![
        [1.0, nan, 3.0],
        [inf, 1.0, 0.0],
        [-inf, -inf, -inf],
        [-inf, 0.0, 0.0],
        [0.0, -2000.0, 0.0]
    ];
    let p = softmax(x.view());
    let l = log_softmax(x.view());
    for r in 0..3 {
        assert!(p.row(r).iter().all(|v| v.is_nan()), "softmax row {r}: {p}");
        assert!(l.row(r).iter().all(|v| v.is_nan()), "log_softmax row {r}");
    }
    assert_eq!(p.row(3), array![0.0, 0.5, 0.5]);
    assert_eq!(l.row(3), array![-inf, -(2f64.ln()), -(2f64.ln())]);
    // Where softmax underflows to 0, log_softmax stays exact.
    assert_eq!(p[(4, 1)], 0.0);
    assert_eq!(l[(4, 1)], -2000.0 - 2f64.ln());
    // Large logits: subtracting the maximum keeps exp from overflowing.
    let big = softmax(array![1000.0f32, 1000.0].view());
    assert_eq!(big, array![0.5f32, 0.5]);

    // argmax: NaN counts as the largest (its first occurrence), ties go to the first index.
    assert_eq!(
        argmax(
            array![
                [1.0, nan, 3.0, nan],
                [2.0, 5.0, 5.0, -inf],
                [-inf, -inf, -inf, -inf]
            ]
            .view()
        )
        .unwrap(),
        array![1, 1, 0]
    );
    assert_eq!(argmax(array![-inf, inf, inf].view()).unwrap(), arr0(1));

    // 0-dimensional: one element along dim = -1 (torch.softmax(tensor(3.), -1) == 1).
    assert_eq!(softmax(arr0(3.0).view()), arr0(1.0));
    assert_eq!(log_softmax(arr0(3.0).view()), arr0(0.0));
    assert!(softmax(arr0(nan).view())[()].is_nan());
    assert_eq!(argmax(arr0(3.0).view()).unwrap(), arr0(0));
    let scalar = ArrayD::<f64>::from_elem(IxDyn(&[]), 2.0);
    assert_eq!(argmax(scalar.view()).unwrap().ndim(), 0);

    // Empty arrays: softmax is empty; argmax over an empty last axis is an error, over an
    // empty leading axis an empty result.
    let empty = Array2::<f64>::zeros((3, 0));
    assert_eq!(softmax(empty.view()).dim(), (3, 0));
    assert_eq!(log_softmax(empty.view()).dim(), (3, 0));
    let e = argmax(empty.view()).unwrap_err();
    assert!(
        matches!(e, Error::Shape { ref got, .. } if got == &[3, 0]),
        "{e}"
    );
    assert_eq!(
        argmax(Array2::<f64>::zeros((0, 3)).view()).unwrap().dim(),
        0
    );
    assert_eq!(
        argmax(Array3::<f32>::zeros((2, 4, 7)).view())
            .unwrap()
            .dim(),
        (2, 4)
    );
}

/// Counts of `n` draws of `sample(logits, temperature, top_k)` from a fixed seed.
fn counts(logits: &Array1<f64>, temperature: f64, top_k: Option<usize>, n: usize) -> Vec<usize> {
    let mut r = rng(42);
    let mut c = vec![0; logits.len()];
    for _ in 0..n {
        c[sample(logits.view(), temperature, top_k, &mut r).unwrap()] += 1;
    }
    c
}

/// Checks draw counts against probabilities `p`.
///
/// Each count is Binomial(n, p_i); with n = 20,000 and every p_i ≥ 0.05 here, n·p_i ≥ 1,000 and the
/// normal approximation is excellent. A correct sampler is more than 4 standard errors
/// `√(p(1 − p)/n)` away with probability 6.3e-5 per class, and Pearson's statistic
/// `Σ (c − np)² / np` (k − 1 degrees of freedom) exceeds its 99.9 % quantile with probability
/// 0.001, so with the fixed seed a pass is no accident of tuning. A wrong distribution is caught:
/// 4 standard errors are at most 0.014 here, while ignoring the temperature or top-k, or an
/// off-by-one in the cumulative search, moves some probability by more than 0.03.
fn assert_frequencies(c: &[usize], p: &[f64], label: &str) {
    let n = c.iter().sum::<usize>() as f64;
    let mut chi2 = 0.0;
    let mut dof = 0usize;
    for (i, (&ci, &pi)) in c.iter().zip(p).enumerate() {
        if pi == 0.0 {
            assert_eq!(
                ci, 0,
                "{label}: index {i} has probability 0, drawn {ci} times"
            );
            continue;
        }
        let f = ci as f64 / n;
        let se = (pi * (1.0 - pi) / n).sqrt();
        assert!(
            (f - pi).abs() <= 4.0 * se,
            "{label}: index {i} drawn with frequency {f:.4}, probability {pi:.4} (4 SE = {:.4})",
            4.0 * se
        );
        chi2 += (ci as f64 - n * pi).powi(2) / (n * pi);
        dof += 1;
    }
    // 99.9 % quantiles of χ² with 1..=5 degrees of freedom.
    let q999 = [10.83, 13.82, 16.27, 18.47, 20.52][dof - 2];
    assert!(
        chi2 < q999,
        "{label}: chi-square {chi2:.2} ≥ {q999} ({} dof)",
        dof - 1
    );
}

const N: usize = 20_000;

#[test]
fn sample_frequencies_follow_softmax() {
    let logits = array![1.0, 0.0, 2.0, -0.5, 1.5];
    for temperature in [1.0, 0.7, 2.5] {
        let p = softmax((&logits / temperature).view());
        let c = counts(&logits, temperature, None, N);
        assert_frequencies(&c, p.as_slice().unwrap(), &format!("T = {temperature}"));
    }
    // top-k = 3 keeps indices 2, 4, 0 (logits 2.0, 1.5, 1.0), renormalised.
    let t = 0.8;
    let mut masked = logits.mapv(|v| v / t);
    masked[1] = f64::NEG_INFINITY;
    masked[3] = f64::NEG_INFINITY;
    let p = softmax(masked.view());
    let c = counts(&logits, t, Some(3), N);
    assert_frequencies(&c, p.as_slice().unwrap(), "top_k = 3");
    // −∞ logits are never drawn; top_k beyond the length keeps everything.
    let with_inf = array![0.5, f64::NEG_INFINITY, -0.5, 0.0];
    let p = softmax(with_inf.view());
    assert_frequencies(
        &counts(&with_inf, 1.0, None, N),
        p.as_slice().unwrap(),
        "-inf",
    );
    assert_frequencies(
        &counts(&with_inf, 1.0, Some(10), N),
        p.as_slice().unwrap(),
        "top_k > len",
    );
    // Ties at the k-th place go to the lower index: {0, 1}, never 2 or 3.
    let tied = array![2.0, 1.0, 1.0, 1.0];
    let p = softmax(array![2.0, 1.0, f64::NEG_INFINITY, f64::NEG_INFINITY].view());
    assert_frequencies(
        &counts(&tied, 1.0, Some(2), N),
        p.as_slice().unwrap(),
        "tie",
    );
}

#[test]
fn sample_greedy_limits() {
    // The runner-up (2.0) is close to the maximum (2.1, index 1).
    let logits = array![0.3f32, 2.1, -1.0, 2.0, 0.5];
    let mut r = rng(7);
    for _ in 0..2000 {
        assert_eq!(sample(logits.view(), 1e-6, None, &mut r).unwrap(), 1);
        assert_eq!(sample(logits.view(), 100.0, Some(1), &mut r).unwrap(), 1);
    }
    // top_k = 1 is argmax exactly, ties included (the first index).
    let tied = array![0.0, 3.0, 3.0, -1.0];
    for _ in 0..200 {
        assert_eq!(sample(tied.view(), 5.0, Some(1), &mut r).unwrap(), 1);
    }
    assert_eq!(argmax(tied.view()).unwrap()[()], 1);
    // Extreme logits and temperatures neither overflow nor produce NaN.
    let extreme = array![-1e308, 1e308, 0.0];
    assert_eq!(sample(extreme.view(), 1e-300, None, &mut r).unwrap(), 1);
    assert_eq!(sample(extreme.view(), 1e300, Some(1), &mut r).unwrap(), 1);
    // A single logit.
    assert_eq!(sample(array![-3.0].view(), 1.0, None, &mut r).unwrap(), 0);
}

#[test]
fn sample_errors() {
    let mut r = rng(8);
    let logits = array![1.0, 2.0];
    for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = sample(logits.view(), t, None, &mut r).unwrap_err();
        assert!(
            matches!(e, Error::InvalidConfig(ref m) if m.contains("temperature")),
            "{t}: {e}"
        );
    }
    let e = sample(logits.view(), 1.0, Some(0), &mut r).unwrap_err();
    assert!(
        matches!(e, Error::InvalidConfig(ref m) if m.contains("top_k")),
        "{e}"
    );
    let e = sample(Array1::<f64>::zeros(0).view(), 1.0, None, &mut r).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    for bad in [
        array![1.0, f64::NAN],
        array![f64::INFINITY, 0.0],
        array![f64::NEG_INFINITY, f64::NEG_INFINITY],
    ] {
        let e = sample(bad.view(), 1.0, None, &mut r).unwrap_err();
        assert!(matches!(e, Error::NonFinite(_)), "{bad}: {e}");
    }
}
