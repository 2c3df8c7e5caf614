//! Losses: parity with `torch.nn.functional` on `tests/fixtures/loss_*.safetensors`, f64
//! central-difference gradient checks, numerical stability, hand-computed values and errors.

use crate::common::*;
use ndarray::{s, Array2, Array3, ArrayD, Axis, Ix1, Ix2, Ix3};
use recurrent::{
    loss::{cross_entropy_loss, cross_entropy_loss_last, masked_mse_loss, mse_loss},
    Error, Result,
};

/// Central differences of `f` with respect to every element of `x` (step 1e-6).
fn numeric_grad(x: &ArrayD<f64>, f: impl Fn(&ArrayD<f64>) -> f64) -> ArrayD<f64> {
    let eps = 1e-6;
    let mut probe = x.clone();
    let mut out = ArrayD::zeros(x.raw_dim());
    for (idx, g) in out.indexed_iter_mut() {
        let orig = probe[&idx];
        probe[&idx] = orig + eps;
        let plus = f(&probe);
        probe[&idx] = orig - eps;
        let minus = f(&probe);
        probe[&idx] = orig;
        *g = (plus - minus) / (2.0 * eps);
    }
    out
}

fn gradcheck(
    label: &str,
    x: &ArrayD<f64>,
    analytic: &ArrayD<f64>,
    f: impl Fn(&ArrayD<f64>) -> f64,
) {
    let numeric = numeric_grad(x, f);
    assert_close(
        &analytic.view(),
        &numeric.view(),
        F64_CHECK.tol,
        F64_CHECK.floor,
        label,
    );
}

/// Integer targets stored as f64 in the fixture reader; `-100` (ignore_index) becomes `None`.
fn class(v: f64) -> Option<usize> {
    (v >= 0.0).then_some(v as usize)
}

fn lengths_of(fx: &Fixture) -> Vec<usize> {
    fx.get::<f64>("lengths")
        .iter()
        .map(|&l| l as usize)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Parity with PyTorch
// ---------------------------------------------------------------------------------------------

#[test]
fn cross_entropy_last_matches_pytorch() {
    let fx = Fixture::load("loss_cross_entropy");
    let logits = fx
        .get::<f64>("logits")
        .into_dimensionality::<Ix2>()
        .unwrap();
    let targets: Vec<usize> = fx
        .get::<f64>("targets")
        .iter()
        .map(|&t| class(t).unwrap())
        .collect();
    let (loss, grad) = cross_entropy_loss_last(logits.view(), &targets).unwrap();
    let want = fx.get::<f64>("loss")[[0]];
    assert!(
        (loss - want).abs() <= 1e-12 * want.abs(),
        "{loss} vs {want}"
    );
    assert_close(
        &grad.view().into_dyn(),
        &fx.get::<f64>("grad").view(),
        1e-12,
        1e-12,
        "grad",
    );
    // The fixture has a row of logits in the hundreds.
    assert!(logits.iter().any(|v| v.abs() > 50.0));
}

#[test]
fn cross_entropy_sequence_matches_pytorch_ignore_index() {
    let fx = Fixture::load("loss_cross_entropy_seq");
    let logits = fx
        .get::<f64>("logits")
        .into_dimensionality::<Ix3>()
        .unwrap();
    let lengths = lengths_of(&fx);
    // Padded steps hold ignore_index in the fixture; give them out-of-range garbage here to show
    // that they are neither used nor checked.
    let targets = fx
        .get::<f64>("targets")
        .into_dimensionality::<Ix2>()
        .unwrap()
        .mapv(|t| class(t).unwrap_or(usize::MAX));
    let (loss, grad) = cross_entropy_loss(logits.view(), targets.view(), Some(&lengths)).unwrap();
    let want = fx.get::<f64>("loss")[[0]];
    assert!(
        (loss - want).abs() <= 1e-12 * want.abs(),
        "{loss} vs {want}"
    );
    assert_close(
        &grad.view().into_dyn(),
        &fx.get::<f64>("grad").view(),
        1e-12,
        1e-12,
        "grad",
    );
}

#[test]
fn masked_mse_matches_pytorch() {
    let fx = Fixture::load("loss_mse_masked");
    let pred = fx
        .get::<f64>("prediction")
        .into_dimensionality::<Ix3>()
        .unwrap();
    let target = fx
        .get::<f64>("target")
        .into_dimensionality::<Ix3>()
        .unwrap();
    let lengths = lengths_of(&fx);
    let (loss, grad) = masked_mse_loss(pred.view(), target.view(), Some(&lengths)).unwrap();
    let want = fx.get::<f64>("loss")[[0]];
    assert!(
        (loss - want).abs() <= 1e-12 * want.abs(),
        "{loss} vs {want}"
    );
    assert_close(
        &grad.view().into_dyn(),
        &fx.get::<f64>("grad").view(),
        1e-12,
        1e-12,
        "grad",
    );
}

// ---------------------------------------------------------------------------------------------
// Gradient checks (f64, central differences)
// ---------------------------------------------------------------------------------------------

#[test]
fn cross_entropy_gradcheck() {
    let mut r = rng(1);
    let (t, b, c) = (4, 3, 5);
    let logits = randn::<f64>(&[t, b, c], 2.0, &mut r);
    let targets = Array2::from_shape_fn((t, b), |(i, j)| (3 * i + 2 * j + 1) % c);
    for lengths in [None, Some(vec![4, 1, 3])] {
        let lens = lengths.as_deref();
        let f = |x: &ArrayD<f64>| {
            let x = x.view().into_dimensionality::<Ix3>().unwrap();
            cross_entropy_loss(x, targets.view(), lens).unwrap().0
        };
        let (_, grad) = cross_entropy_loss(
            logits.view().into_dimensionality::<Ix3>().unwrap(),
            targets.view(),
            lens,
        )
        .unwrap();
        gradcheck(
            &format!("cross_entropy lengths={lengths:?}"),
            &logits,
            &grad.into_dyn(),
            f,
        );
    }

    let logits = randn::<f64>(&[5, 7], 3.0, &mut r);
    let targets = [0, 6, 3, 3, 1];
    let f = |x: &ArrayD<f64>| {
        let x = x.view().into_dimensionality::<Ix2>().unwrap();
        cross_entropy_loss_last(x, &targets).unwrap().0
    };
    let (_, grad) = cross_entropy_loss_last(
        logits.view().into_dimensionality::<Ix2>().unwrap(),
        &targets,
    )
    .unwrap();
    gradcheck("cross_entropy_last", &logits, &grad.into_dyn(), f);
}

#[test]
fn masked_mse_gradcheck() {
    let mut r = rng(2);
    let pred = randn::<f64>(&[4, 3, 2], 1.0, &mut r);
    let target = randn3::<f64>((4, 3, 2), 1.0, &mut r);
    for lengths in [None, Some(vec![2, 4, 1])] {
        let lens = lengths.as_deref();
        let f = |x: &ArrayD<f64>| {
            let x = x.view().into_dimensionality::<Ix3>().unwrap();
            masked_mse_loss(x, target.view(), lens).unwrap().0
        };
        let (_, grad) = masked_mse_loss(
            pred.view().into_dimensionality::<Ix3>().unwrap(),
            target.view(),
            lens,
        )
        .unwrap();
        gradcheck(
            &format!("masked_mse lengths={lengths:?}"),
            &pred,
            &grad.into_dyn(),
            f,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Properties and hand-computed values
// ---------------------------------------------------------------------------------------------

/// Uniform logits give `ln C`; each gradient row sums to zero; masking equals dropping the padded
/// rows; one step of the sequence loss equals the last-step loss.
#[test]
fn cross_entropy_properties() {
    let (loss, grad) =
        cross_entropy_loss_last(Array2::<f64>::zeros((2, 4)).view(), &[1, 3]).unwrap();
    assert!((loss - 4f64.ln()).abs() < 1e-15);
    assert!((grad[[0, 1]] - (0.25 - 1.0) / 2.0).abs() < 1e-16);
    assert!((grad[[0, 0]] - 0.25 / 2.0).abs() < 1e-16);

    let mut r = rng(3);
    let logits: Array3<f64> = randn3((5, 3, 4), 2.0, &mut r);
    let targets = Array2::from_shape_fn((5, 3), |(t, b)| (t + 2 * b) % 4);
    let lengths = [5, 2, 3];
    let (loss, grad) = cross_entropy_loss(logits.view(), targets.view(), Some(&lengths)).unwrap();
    for row in grad.lanes(Axis(2)) {
        assert!(row.sum().abs() < 1e-16);
    }
    // The same loss from the real rows gathered into one (N, C) batch.
    let mut rows = vec![];
    let mut classes = vec![];
    for t in 0..5 {
        for (b, &len) in lengths.iter().enumerate() {
            if t < len {
                rows.push(logits.slice(s![t, b, ..]).to_owned());
                classes.push(targets[(t, b)]);
            }
        }
    }
    let views: Vec<_> = rows.iter().map(|r| r.view()).collect();
    let gathered = ndarray::stack(Axis(0), &views).unwrap();
    let (loss2, grad2) = cross_entropy_loss_last(gathered.view(), &classes).unwrap();
    assert!((loss - loss2).abs() < 1e-15, "{loss} vs {loss2}");
    let mut k = 0;
    for t in 0..5 {
        for (b, &len) in lengths.iter().enumerate() {
            if t < len {
                assert_eq!(grad.slice(s![t, b, ..]), grad2.row(k));
                k += 1;
            } else {
                assert!(grad.slice(s![t, b, ..]).iter().all(|&g| g == 0.0));
            }
        }
    }
    // T = 1: the sequence loss is the last-step loss.
    let one = logits.slice(s![0..1, .., ..]);
    let (l1, g1) = cross_entropy_loss(one, targets.slice(s![0..1, ..]), None).unwrap();
    let (l2, g2) = cross_entropy_loss_last(logits.index_axis(Axis(0), 0), &[0, 2, 0]).unwrap();
    assert_eq!(targets.row(0).to_vec(), [0, 2, 0]);
    assert_eq!(l1, l2);
    assert_eq!(g1.index_axis(Axis(0), 0), g2);
}

/// Huge or shifted logits: the loss stays finite and shift-invariant, in f64 and f32.
#[test]
fn cross_entropy_is_numerically_stable() {
    let base = Array2::<f64>::from_shape_vec((2, 3), vec![1.0, -2.0, 0.5, 3.0, 0.0, -1.0]).unwrap();
    let (l0, g0) = cross_entropy_loss_last(base.view(), &[2, 0]).unwrap();
    for shift in [1e4f64, -1e4, 1e300] {
        let (l, g) = cross_entropy_loss_last((&base + shift).view(), &[2, 0]).unwrap();
        assert!(l.is_finite() && g.iter().all(|v| v.is_finite()), "{shift}");
        if shift.abs() < 1e5 {
            assert!((l - l0).abs() < 1e-11, "{shift}: {l} vs {l0}");
            assert!((&g - &g0).iter().all(|d| d.abs() < 1e-11), "{shift}");
        }
    }
    let big = Array2::from_shape_vec((1, 3), vec![1000.0f32, 0.0, -1000.0]).unwrap();
    let (l, g) = cross_entropy_loss_last(big.view(), &[1]).unwrap();
    assert_eq!(l, 1000.0);
    assert_eq!(g.row(0).to_vec(), [1.0, -1.0, 0.0]);
    let (l, g) = cross_entropy_loss_last(big.view(), &[0]).unwrap();
    assert_eq!(l, 0.0);
    assert!(g.iter().all(|&v| v == 0.0));
}

#[test]
fn masked_mse_properties() {
    let mut r = rng(4);
    let pred: Array3<f64> = randn3((4, 3, 2), 1.0, &mut r);
    let target: Array3<f64> = randn3((4, 3, 2), 1.0, &mut r);
    // Without lengths (or with full lengths) it is mse_loss.
    let (l0, g0) = mse_loss(pred.view(), target.view()).unwrap();
    for lengths in [None, Some(&[4, 4, 4][..])] {
        let (l, g) = masked_mse_loss(pred.view(), target.view(), lengths).unwrap();
        assert!((l - l0).abs() < 1e-15);
        assert_eq!(g, g0);
    }
    // Padded steps are ignored whatever they hold.
    let lengths = [1, 4, 2];
    let (l, g) = masked_mse_loss(pred.view(), target.view(), Some(&lengths)).unwrap();
    let mut poisoned = target.clone();
    poisoned.slice_mut(s![1.., 0, ..]).fill(f64::NAN);
    poisoned.slice_mut(s![2.., 2, ..]).fill(1e300);
    let (lp, gp) = masked_mse_loss(pred.view(), poisoned.view(), Some(&lengths)).unwrap();
    assert_eq!((l, &g), (lp, &gp));
    assert!(g.slice(s![1.., 0, ..]).iter().all(|&v| v == 0.0));
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

fn msg<T: std::fmt::Debug>(r: Result<T>) -> (Error, String) {
    let e = r.expect_err("expected an error");
    let m = e.to_string();
    (e, m)
}

#[test]
fn cross_entropy_errors() {
    let logits = Array3::<f64>::zeros((3, 2, 4));
    let targets = Array2::<usize>::zeros((3, 2));

    let (e, m) = msg(cross_entropy_loss(
        logits.view(),
        Array2::zeros((2, 3)).view(),
        None,
    ));
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    assert!(
        m.starts_with("targets has shape [2, 3], expected (3, 2)"),
        "{m}"
    );

    let (e, m) = msg(cross_entropy_loss(
        Array3::<f64>::zeros((3, 2, 0)).view(),
        Array2::zeros((3, 2)).view(),
        None,
    ));
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    assert!(m.contains("(T, B, C) with T, B, C ≥ 1"), "{m}");

    let mut bad = targets.clone();
    bad[(2, 1)] = 4;
    let (e, m) = msg(cross_entropy_loss(logits.view(), bad.view(), None));
    assert!(matches!(e, Error::InvalidConfig(_)), "{e:?}");
    assert!(
        m.contains("targets[2, 1] = 4 is not a class index: the logits have 4 classes"),
        "{m}"
    );
    // ... but the same target on a padded step is ignored.
    assert!(cross_entropy_loss(logits.view(), bad.view(), Some(&[3, 2])).is_ok());

    for (lengths, want) in [
        (&[3][..], "lengths has 1 entries, the batch has 2 sequences"),
        (&[3, 0][..], "lengths[1] = 0"),
        (&[4, 1][..], "lengths[0] = 4 exceeds the 3 time steps"),
    ] {
        let (e, m) = msg(cross_entropy_loss(
            logits.view(),
            targets.view(),
            Some(lengths),
        ));
        assert!(matches!(e, Error::InvalidConfig(_)), "{e:?}");
        assert!(m.contains(want), "{m}");
    }

    let last = Array2::<f64>::zeros((2, 3));
    let (e, m) = msg(cross_entropy_loss_last(last.view(), &[0]));
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    assert!(m.starts_with("targets has shape [1], expected (2)"), "{m}");
    let (e, m) = msg(cross_entropy_loss_last(last.view(), &[0, 3]));
    assert!(matches!(e, Error::InvalidConfig(_)), "{e:?}");
    assert!(m.contains("targets[1] = 3 is not a class index"), "{m}");
    let (e, _) = msg(cross_entropy_loss_last(
        Array2::<f64>::zeros((0, 3)).view(),
        &[],
    ));
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
}

#[test]
fn masked_mse_errors() {
    let p = Array3::<f64>::zeros((3, 2, 1));
    let (e, m) = msg(masked_mse_loss(
        p.view(),
        Array3::zeros((3, 1, 2)).view(),
        None,
    ));
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    assert!(
        m.starts_with("target has shape [3, 1, 2], expected [3, 2, 1]"),
        "{m}"
    );
    let (e, _) = msg(masked_mse_loss(
        Array3::<f64>::zeros((0, 2, 1)).view(),
        Array3::zeros((0, 2, 1)).view(),
        None,
    ));
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
    let (e, m) = msg(masked_mse_loss(p.view(), p.view(), Some(&[1, 2, 3])));
    assert!(matches!(e, Error::InvalidConfig(_)), "{e:?}");
    assert!(
        m.contains("lengths has 3 entries, the batch has 2 sequences"),
        "{m}"
    );
    let (_, m) = msg(masked_mse_loss(p.view(), p.view(), Some(&[0, 2])));
    assert!(m.contains("lengths[0] = 0"), "{m}");
}

/// One-element sanity check that the fixture files really hold what the contract says.
#[test]
fn loss_fixtures_have_expected_shapes() {
    let fx = Fixture::load("loss_cross_entropy_seq");
    assert_eq!(fx.get::<f64>("logits").shape(), &[5, 3, 5]);
    assert_eq!(fx.meta("ignore_index"), "-100");
    let t = fx
        .get::<f64>("targets")
        .into_dimensionality::<Ix2>()
        .unwrap();
    assert_eq!(t[(4, 2)], -100.0); // padding of the third sequence (length 2)
    let l = fx
        .get::<f64>("lengths")
        .into_dimensionality::<Ix1>()
        .unwrap();
    assert_eq!(l.to_vec(), [4.0, 5.0, 2.0]);
}
