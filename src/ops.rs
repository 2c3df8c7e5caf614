//! Functions on a model's outputs: [`softmax`], [`log_softmax`] and [`argmax`] over the last axis
//! (`torch.softmax(x, -1)`, `torch.log_softmax(x, -1)`, `torch.argmax(x, -1)`), and [`sample`]: one
//! draw from logits with a temperature and top-k, to generate sequences.
//!
//! # Examples
//!
//! A character model's last-step logits `(B, C)`: greedy and sampled next ids.
//!
//! ```
//! use ndarray::array;
//! use rand::SeedableRng;
//! use recurrent::ops::{argmax, log_softmax, sample, softmax};
//!
//! let logits = array![[1.0f64, 3.0, 2.0], [0.5, 0.5, -1.0]]; // (B = 2, C = 3)
//! let p = softmax(logits.view());
//! assert!((p.row(0).sum() - 1.0).abs() < 1e-15);
//! assert!((log_softmax(logits.view())[(0, 1)] - p[(0, 1)].ln()).abs() < 1e-15);
//! assert_eq!(argmax(logits.view())?, array![1, 0]); // first index on ties
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let next = sample(logits.row(0), 0.8, Some(2), &mut rng)?; // one of the 2 largest: 1 or 2
//! assert!(next == 1 || next == 2);
//! # Ok::<(), recurrent::Error>(())
//! ```

use ndarray::{Array, ArrayView, ArrayView1, ArrayViewMut1, Axis, Dimension, Zip};
use rand::distr::{Distribution, StandardUniform};
use rand::Rng;

use crate::error::{shape_err, Error, Result};
use crate::float::Float;

/// The largest value of `x`, ignoring NaN (`−∞` for an empty or all-NaN lane).
fn max_of<F: Float>(x: &ArrayView1<'_, F>) -> F {
    x.fold(F::neg_infinity(), |m, &v| if v > m { v } else { m })
}

/// Applies `f` to every lane along the last axis of a copy of `x`; a 0-dimensional `x` is one
/// lane of one value (as PyTorch treats `dim = -1` of a scalar).
fn map_lanes<F: Float, D: Dimension>(
    x: ArrayView<'_, F, D>,
    f: impl Fn(ArrayViewMut1<'_, F>),
) -> Array<F, D> {
    let mut out = x.to_owned();
    if out.is_empty() && out.ndim() > 0 {
        // No lane holds a value; there may be 2^62 empty ones to visit.
        return out;
    }
    match out.ndim() {
        0 => {
            let mut one = [out.iter().copied().next().unwrap_or_else(F::zero)];
            f(ArrayViewMut1::from(&mut one[..]));
            out.fill(one[0]);
        }
        n => out.lanes_mut(Axis(n - 1)).into_iter().for_each(f),
    }
    out
}

/// `softmax(x) = exp(x) / Σ exp(x)` along the last axis, as `torch.softmax(x, dim=-1)`; the output
/// has the shape of `x`.
///
/// Computed stably: each lane's maximum `m` is subtracted first, `exp(x − m) / Σ exp(x − m)`, so
/// logits in the hundreds neither overflow nor lose precision. As in PyTorch, a lane holding a NaN
/// or `+∞`, or only `−∞`, becomes all NaN; `−∞` elsewhere gives probability 0. A 0-dimensional
/// `x` is one lane of one element.
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// let p = recurrent::ops::softmax(array![[0.0, 2f64.ln()], [1000.0, 1000.0]].view());
/// assert!((p[(0, 1)] - 2.0 / 3.0).abs() < 1e-15);
/// assert_eq!(p.row(1), array![0.5, 0.5]); // exp(1000) would overflow
/// ```
pub fn softmax<F: Float, D: Dimension>(x: ArrayView<'_, F, D>) -> Array<F, D> {
    map_lanes(x, |mut lane| {
        let m = max_of(&lane.view());
        lane.mapv_inplace(|v| (v - m).exp());
        let sum = lane.sum();
        lane.mapv_inplace(|v| v / sum);
    })
}

/// `log(softmax(x))` along the last axis, as `torch.log_softmax(x, dim=-1)`:
/// `x − m − log Σ exp(x − m)` with `m` each lane's maximum, so that it is accurate where
/// `softmax` underflows to 0 (it gives `−∞` only for `x = −∞`). NaN, `+∞` and all-`−∞` lanes
/// give all NaN, as [`softmax`].
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// let l = recurrent::ops::log_softmax(array![0.0, -2000.0].view());
/// assert_eq!(l[0], 0.0);
/// assert_eq!(l[1], -2000.0); // softmax would underflow to 0
/// ```
pub fn log_softmax<F: Float, D: Dimension>(x: ArrayView<'_, F, D>) -> Array<F, D> {
    map_lanes(x, |mut lane| {
        let m = max_of(&lane.view());
        let log_sum = lane.fold(F::zero(), |s, &v| s + (v - m).exp()).ln();
        lane.mapv_inplace(|v| (v - m) - log_sum);
    })
}

/// The index of the largest value along the last axis, as `torch.argmax(x, dim=-1)`: the output
/// has the shape of `x` without its last axis (`(T, B, C)` logits give `(T, B)` ids).
///
/// On ties the first index wins. A NaN counts as larger than every number, as in PyTorch: a lane
/// holding NaN gives the index of its first NaN. A 0-dimensional `x` gives a 0-dimensional `0`.
///
/// # Errors
///
/// [`Error::Shape`] if the last axis has length 0 (there is no largest value; PyTorch errors too).
///
/// # Examples
///
/// ```
/// use ndarray::{array, Array3};
/// use recurrent::ops::argmax;
///
/// assert_eq!(argmax(array![[1.0, 5.0, 5.0], [f64::NAN, 9.0, 0.0]].view())?, array![1, 0]);
/// let logits = Array3::<f32>::zeros((4, 2, 7)); // (T, B, C)
/// assert_eq!(argmax(logits.view())?.dim(), (4, 2));
/// # Ok::<(), recurrent::Error>(())
/// ```
pub fn argmax<F: Float, D: Dimension>(x: ArrayView<'_, F, D>) -> Result<Array<usize, D::Smaller>> {
    let n = x.ndim();
    if n == 0 {
        return Ok(Array::zeros(D::Smaller::zeros(0)));
    }
    if x.shape()[n - 1] == 0 {
        return Err(shape_err(
            "x",
            "(..., C) with C ≥ 1: argmax over an empty last axis",
            x.shape(),
        ));
    }
    if x.is_empty() {
        // The last axis is not empty, so another one is: the output has no element either (and
        // its shape is valid, as `x`'s non-zero lengths include all of its own).
        let mut dim = D::Smaller::zeros(n - 1);
        for (i, &len) in x.shape()[..n - 1].iter().enumerate() {
            dim[i] = len;
        }
        return Ok(Array::zeros(dim));
    }
    Ok(Zip::from(x.lanes(Axis(n - 1))).map_collect(|lane| first_max(lane.iter().copied())))
}

/// The index of the first largest value, a NaN counting as the largest (`0` when empty).
fn first_max<F: Float>(values: impl Iterator<Item = F>) -> usize {
    let mut best: Option<(usize, F)> = None;
    for (i, v) in values.enumerate() {
        if v.is_nan() {
            return i;
        }
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map_or(0, |(i, _)| i)
}

/// Draws one index from `softmax(logits / temperature)`, restricted to the `top_k` largest logits
/// if given: how a language model picks its next token.
///
/// `temperature` below 1 sharpens the distribution (towards [`argmax`] as it goes to 0), above 1
/// flattens it. With `top_k = Some(k)`, only the `k` largest logits can be drawn, with their
/// probabilities renormalised; ties at the k-th place are broken towards the lower index (so
/// `Some(1)` always returns [`argmax`]), and `k` larger than the number of logits keeps them all.
/// Logits of `−∞` have probability 0 (a way to forbid tokens). Computed in `f64` from
/// `exp((logit − max) / temperature)`, so no temperature overflows; one `f64` is drawn from `rng`.
///
/// # Errors
///
/// [`Error::InvalidConfig`] if `temperature` is not positive and finite or `top_k` is
/// `Some(0)`; [`Error::Shape`] if `logits` is empty; [`Error::NonFinite`] if a logit is NaN or
/// `+∞`, or all are `−∞` (there is no distribution to draw from).
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// use rand::SeedableRng;
/// use recurrent::ops::sample;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(7);
/// let logits = array![2.0f32, 1.0, 0.5, f32::NEG_INFINITY];
/// assert_eq!(sample(logits.view(), 1.0, Some(1), &mut rng)?, 0); // greedy
/// assert_eq!(sample(logits.view(), 1e-6, None, &mut rng)?, 0); // nearly greedy
/// let id = sample(logits.view(), 1.5, None, &mut rng)?;
/// assert!(id < 3); // never the −∞ logit
/// # Ok::<(), recurrent::Error>(())
/// ```
pub fn sample<F: Float, R: Rng + ?Sized>(
    logits: ArrayView1<'_, F>,
    temperature: F,
    top_k: Option<usize>,
    rng: &mut R,
) -> Result<usize> {
    let t = temperature.as_f64();
    if !(t > 0.0 && t.is_finite()) {
        return Err(Error::InvalidConfig(format!(
            "temperature must be positive and finite, got {t}"
        )));
    }
    if top_k == Some(0) {
        return Err(Error::InvalidConfig(
            "top_k must be at least 1, got 0".into(),
        ));
    }
    if logits.is_empty() {
        return Err(shape_err("logits", "(C) with C ≥ 1", logits.shape()));
    }
    if let Some(i) = logits
        .iter()
        .position(|v| v.is_nan() || *v == F::infinity())
    {
        return Err(Error::NonFinite(format!(
            "logits[{i}] = {}: sampling needs logits below +inf",
            logits[i]
        )));
    }
    let m = max_of(&logits).as_f64();
    if m == f64::NEG_INFINITY {
        return Err(Error::NonFinite(
            "every logit is -inf: no index has a positive probability".into(),
        ));
    }
    // The kept indices, in index order.
    let n = logits.len();
    let mut kept: Vec<usize> = (0..n).collect();
    if let Some(k) = top_k.filter(|&k| k < n) {
        // Larger logits first, lower indices first among equals: a strict total order (no NaN).
        kept.select_nth_unstable_by(k - 1, |&i, &j| {
            logits[j]
                .partial_cmp(&logits[i])
                .expect("no NaN")
                .then(i.cmp(&j))
        });
        kept.truncate(k);
        kept.sort_unstable();
    }
    let weights: Vec<f64> = kept
        .iter()
        .map(|&i| ((logits[i].as_f64() - m) / t).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let u: f64 = StandardUniform.sample(rng);
    let mut r = u * total;
    for (&i, &w) in kept.iter().zip(&weights) {
        if r < w {
            return Ok(i);
        }
        r -= w;
    }
    // Rounding left r at or above the last weight: the last index with a positive weight.
    Ok(kept
        .iter()
        .zip(&weights)
        .rev()
        .find(|(_, &w)| w > 0.0)
        .map(|(&i, _)| i)
        .expect("the largest logit has weight 1"))
}
