//! Gradient clipping.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::params::Params;

/// Scales all gradients together so that their global Euclidean norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_` (norm type 2). Returns the total norm **before** clipping.
///
/// The gradients are multiplied by `min(1, max_norm / (total_norm + 1e-6))`.
///
/// # Errors
///
/// * [`Error::InvalidConfig`] if `max_norm` is negative or NaN. `+inf` is accepted and only
///   measures the norm, as in PyTorch.
/// * [`Error::NonFinite`] if the total norm is NaN or infinite (a gradient holds NaN or ∞); the
///   gradients are left untouched, so the caller can skip the step. (PyTorch's default would scale
///   every gradient by NaN.)
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// use recurrent::{optim::clip_grad_norm, Params};
///
/// let mut g = recurrent::Linear::from_weights(array![[3.0, 4.0]], None)?; // norm 5
/// let norm = clip_grad_norm(&mut g, 1.0)?;
/// assert_eq!(norm, 5.0);
/// assert!((g.global_norm() - 1.0).abs() < 1e-6);
///
/// // A NaN gradient: skip this update instead of corrupting the weights.
/// g.arrays_mut()[0][[0, 0]] = f64::NAN;
/// assert!(clip_grad_norm(&mut g, 1.0).is_err());
/// # Ok::<(), recurrent::Error>(())
/// ```
pub fn clip_grad_norm<F: Float, P: Params<F>>(grads: &mut P, max_norm: F) -> Result<F> {
    if max_norm.is_nan() || max_norm < F::zero() {
        return Err(Error::InvalidConfig(format!(
            "max_norm must be >= 0 (or +inf to only measure the norm), got {max_norm}"
        )));
    }
    // Norm of the per-array norms, as PyTorch computes it.
    let total = grads
        .arrays()
        .iter()
        .map(|a| {
            let n = a.iter().fold(F::zero(), |s, &v| s + v * v).sqrt();
            n * n
        })
        .fold(F::zero(), |s, v| s + v)
        .sqrt();
    if !total.is_finite() {
        return Err(Error::NonFinite(format!(
            "the total gradient norm is {total}; gradients left unclipped"
        )));
    }
    let coef = max_norm / (total + F::from_f64(1e-6));
    if coef < F::one() {
        grads.scale(coef);
    }
    Ok(total)
}

/// Clamps every gradient element to `[−clip_value, clip_value]`, as
/// `torch.nn.utils.clip_grad_value_`.
///
/// Infinite elements are clamped like any other (`+∞ → clip_value`).
///
/// # Errors
///
/// * [`Error::InvalidConfig`] if `clip_value` is negative or NaN (PyTorch would silently set
///   every element to `clip_value`). `+inf` is accepted and changes nothing.
/// * [`Error::NonFinite`] if a gradient element is NaN (PyTorch keeps the NaN); the gradients are
///   left untouched, so the caller can skip the step, as with [`clip_grad_norm`].
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// use recurrent::{optim::clip_grad_value, Linear};
///
/// let mut g = Linear::from_weights(array![[3.0, -0.2, f64::NEG_INFINITY]], None)?;
/// clip_grad_value(&mut g, 0.5)?;
/// assert_eq!(g.weight(), &array![[0.5, -0.2, -0.5]]);
/// # Ok::<(), recurrent::Error>(())
/// ```
pub fn clip_grad_value<F: Float, P: Params<F>>(grads: &mut P, clip_value: F) -> Result<()> {
    if clip_value.is_nan() || clip_value < F::zero() {
        return Err(Error::InvalidConfig(format!(
            "clip_value must be >= 0 (or +inf to clip nothing), got {clip_value}"
        )));
    }
    for (name, a) in grads.named_arrays() {
        if let Some(k) = a.iter().position(|v| v.is_nan()) {
            return Err(Error::NonFinite(format!(
                "gradient `{name}` holds NaN at flat index {k}; gradients left unclipped"
            )));
        }
    }
    for mut a in grads.arrays_mut() {
        a.mapv_inplace(|v| v.max(-clip_value).min(clip_value));
    }
    Ok(())
}
