//! Loss functions, each returning `(loss, gradient)`.
//!
//! * [`mse_loss`]: mean squared error over every element of any shape;
//!   [`masked_mse_loss`]: over the real steps of a `(T, B, F)` batch with `lengths`.
//! * [`cross_entropy_loss`]: softmax cross-entropy with class indices over every (real) step of a
//!   `(T, B, C)` batch; [`cross_entropy_loss_last`]: over one `(B, C)` step.
//!
//! All are means (PyTorch's `reduction="mean"`), and the gradient is with respect to the first
//! argument, shaped like it.

use ndarray::{
    s, Array, Array2, Array3, ArrayView, ArrayView1, ArrayView2, ArrayView3, ArrayViewMut1,
    Dimension, Zip,
};

use crate::error::{shape_err, Error, Result};
use crate::float::Float;

/// Mean squared error, `mean((prediction − target)²)` over every element
/// (`torch.nn.functional.mse_loss` with `reduction="mean"`).
///
/// Returns the loss and its gradient with respect to `prediction` (`2 (prediction − target) / N`),
/// shaped like `prediction`.
///
/// # Errors
///
/// [`Error::Shape`] if the shapes differ or the arrays are empty.
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// let (loss, grad) = recurrent::loss::mse_loss(array![1.0, 3.0].view(), array![0.0, 1.0].view())?;
/// assert_eq!(loss, 2.5); // (1 + 4) / 2
/// assert_eq!(grad, array![1.0, 2.0]); // 2 (p − t) / 2
/// # Ok::<(), recurrent::Error>(())
/// ```
pub fn mse_loss<F: Float, D: Dimension>(
    prediction: ArrayView<'_, F, D>,
    target: ArrayView<'_, F, D>,
) -> Result<(F, Array<F, D>)> {
    if prediction.shape() != target.shape() {
        return Err(shape_err(
            "target",
            format!("{:?}, the shape of the prediction", prediction.shape()),
            target.shape(),
        ));
    }
    if prediction.is_empty() {
        return Err(shape_err(
            "prediction",
            "at least one element",
            prediction.shape(),
        ));
    }
    let n = F::from_usize(prediction.len());
    let scale = F::from_f64(2.0) / n;
    let mut grad = Array::zeros(prediction.raw_dim());
    let mut sum = F::zero();
    Zip::from(&mut grad)
        .and(&prediction)
        .and(&target)
        .for_each(|g, &p, &t| {
            let d = p - t;
            sum += d * d;
            *g = scale * d;
        });
    Ok((sum / n, grad))
}

/// Checks `lengths` (one per sequence, each in `1..=steps`) and returns how many steps are real.
fn real_steps(lengths: Option<&[usize]>, steps: usize, batch: usize) -> Result<usize> {
    crate::check::lengths(lengths, steps, batch)?;
    Ok(lengths.map_or(steps * batch, |l| l.iter().sum()))
}

/// Adds one row's softmax cross-entropy term `log Σ exp(x) − x[class]` to the returned value and
/// writes `scale · (softmax(x) − onehot(class))` into `grad`, stably (the maximum is subtracted
/// before exponentiating, as PyTorch's `log_softmax` does).
fn softmax_xent_row<F: Float>(
    x: ArrayView1<'_, F>,
    class: usize,
    scale: F,
    mut grad: ArrayViewMut1<'_, F>,
) -> F {
    let m = x.fold(F::neg_infinity(), |m, &v| if v > m { v } else { m });
    let sum = x.fold(F::zero(), |s, &v| s + (v - m).exp());
    let log_sum = sum.ln();
    Zip::from(&mut grad)
        .and(&x)
        .for_each(|g, &v| *g = ((v - m) - log_sum).exp() * scale);
    grad[class] -= scale;
    log_sum - (x[class] - m)
}

fn check_class(class: usize, classes: usize, at: impl Fn() -> String) -> Result<()> {
    if class < classes {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "{} = {class} is not a class index: the logits have {classes} classes (0..{classes})",
            at()
        )))
    }
}

/// Softmax cross-entropy over every step of a sequence batch, with class-index targets: the mean
/// over real steps of `−log softmax(logits[t, b])[targets[t, b]]`.
///
/// `logits` is `(T, B, C)` (time-major, `C` classes, unnormalised scores), `targets` is `(T, B)`.
/// With `lengths`, only steps `t < lengths[b]` count: padded steps get a zero gradient and their
/// targets are ignored (not even range-checked), and the mean divides by `Σ lengths`. This is
/// `F.cross_entropy(logits.reshape(T·B, C), targets.reshape(T·B), ignore_index=..)` with the
/// padded steps' targets set to `ignore_index`.
///
/// Returns the loss and its gradient with respect to `logits`,
/// `(softmax(logits) − onehot(targets)) / N` at real steps. The log-sum-exp is computed after
/// subtracting each row's maximum, so large logits neither overflow nor lose precision.
///
/// # Errors
///
/// * [`Error::Shape`] if `logits` has a zero dimension or `targets` is not `(T, B)`.
/// * [`Error::InvalidConfig`] if a target of a real step is not below `C`, or `lengths` does not
///   have `B` entries each in `1..=T`.
///
/// # Examples
///
/// ```
/// use ndarray::{array, Array3};
/// use recurrent::loss::cross_entropy_loss;
///
/// // T = 2 steps, B = 2 sequences, C = 3 classes; the second sequence has one real step.
/// let logits = Array3::<f64>::zeros((2, 2, 3));
/// let targets = array![[0, 2], [1, 99]]; // targets[1, 1] is padding: ignored
/// let (loss, grad) = cross_entropy_loss(logits.view(), targets.view(), Some(&[2, 1]))?;
/// assert!((loss - 3f64.ln()).abs() < 1e-15); // uniform over 3 classes
/// assert_eq!(grad[[1, 1, 0]], 0.0); // padded step: no gradient
/// assert!((grad[[0, 0, 0]] - (1.0 / 3.0 - 1.0) / 3.0).abs() < 1e-15); // mean over 3 real steps
/// # Ok::<(), recurrent::Error>(())
/// ```
pub fn cross_entropy_loss<F: Float>(
    logits: ArrayView3<'_, F>,
    targets: ArrayView2<'_, usize>,
    lengths: Option<&[usize]>,
) -> Result<(F, Array3<F>)> {
    let (steps, batch, classes) = logits.dim();
    if steps == 0 || batch == 0 || classes == 0 {
        return Err(shape_err(
            "logits",
            "(T, B, C) with T, B, C ≥ 1",
            logits.shape(),
        ));
    }
    if targets.dim() != (steps, batch) {
        return Err(shape_err(
            "targets",
            format!("({steps}, {batch}): one class index per step of each sequence, as the logits"),
            targets.shape(),
        ));
    }
    let n = real_steps(lengths, steps, batch)?;
    let real = |t: usize, b: usize| lengths.is_none_or(|l| t < l[b]);
    for ((t, b), &class) in targets.indexed_iter() {
        if real(t, b) {
            check_class(class, classes, || format!("targets[{t}, {b}]"))?;
        }
    }
    let scale = F::one() / F::from_usize(n);
    let mut grad = Array3::zeros(logits.raw_dim());
    let mut sum = F::zero();
    for t in 0..steps {
        for b in 0..batch {
            if real(t, b) {
                sum += softmax_xent_row(
                    logits.slice(s![t, b, ..]),
                    targets[(t, b)],
                    scale,
                    grad.slice_mut(s![t, b, ..]),
                );
            }
        }
    }
    Ok((sum / F::from_usize(n), grad))
}

/// Softmax cross-entropy of one step per sequence, with class-index targets: the mean over the
/// batch of `−log softmax(logits[b])[targets[b]]`, as `torch.nn.functional.cross_entropy` with
/// `(B, C)` input and `reduction="mean"`.
///
/// Use it for sequence classification from the last step — e.g. a [`Linear`](crate::Linear) head
/// on the final hidden state, which with `lengths` is already each sequence's own last real step.
/// Returns the loss and its gradient with respect to `logits`, `(softmax − onehot) / B`.
///
/// # Errors
///
/// * [`Error::Shape`] if `logits` has a zero dimension or `targets` does not have `B` entries.
/// * [`Error::InvalidConfig`] if a target is not below `C`.
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// use recurrent::loss::cross_entropy_loss_last;
///
/// // Huge logits are fine: the log-sum-exp subtracts the row maximum.
/// let logits = array![[1000.0, 0.0], [0.0, 0.0]];
/// let (loss, grad) = cross_entropy_loss_last(logits.view(), &[0, 1])?;
/// assert!((loss - 2f64.ln() / 2.0).abs() < 1e-15);
/// assert_eq!(grad.row(0).to_vec(), [0.0, 0.0]); // already certain and right
/// assert_eq!(grad.row(1).to_vec(), [0.25, -0.25]);
/// # Ok::<(), recurrent::Error>(())
/// ```
pub fn cross_entropy_loss_last<F: Float>(
    logits: ArrayView2<'_, F>,
    targets: &[usize],
) -> Result<(F, Array2<F>)> {
    let (batch, classes) = logits.dim();
    if batch == 0 || classes == 0 {
        return Err(shape_err("logits", "(B, C) with B, C ≥ 1", logits.shape()));
    }
    if targets.len() != batch {
        return Err(shape_err(
            "targets",
            format!("({batch}): one class index per row of the logits"),
            &[targets.len()],
        ));
    }
    for (b, &class) in targets.iter().enumerate() {
        check_class(class, classes, || format!("targets[{b}]"))?;
    }
    let scale = F::one() / F::from_usize(batch);
    let mut grad = Array2::zeros(logits.raw_dim());
    let mut sum = F::zero();
    for (b, &class) in targets.iter().enumerate() {
        sum += softmax_xent_row(logits.row(b), class, scale, grad.row_mut(b));
    }
    Ok((sum / F::from_usize(batch), grad))
}

/// Mean squared error over the real steps of a sequence batch: [`mse_loss`] on `(T, B, F)`
/// arrays where, with `lengths`, only steps `t < lengths[b]` count.
///
/// The mean divides by `Σ lengths · F` (the number of real elements); padded steps get a zero
/// gradient and their targets are ignored. Without `lengths` it equals [`mse_loss`].
///
/// # Errors
///
/// * [`Error::Shape`] if the shapes differ or have a zero dimension.
/// * [`Error::InvalidConfig`] if `lengths` does not have `B` entries each in `1..=T`.
///
/// # Examples
///
/// ```
/// use ndarray::Array3;
/// use recurrent::loss::masked_mse_loss;
///
/// let pred = Array3::<f64>::ones((3, 2, 1));
/// let mut target = Array3::<f64>::zeros((3, 2, 1));
/// target[[2, 1, 0]] = 100.0; // padding of the second sequence: ignored
/// let (loss, grad) = masked_mse_loss(pred.view(), target.view(), Some(&[3, 2]))?;
/// assert_eq!(loss, 1.0);
/// assert_eq!(grad[[2, 1, 0]], 0.0);
/// assert_eq!(grad[[0, 0, 0]], 2.0 / 5.0);
/// # Ok::<(), recurrent::Error>(())
/// ```
pub fn masked_mse_loss<F: Float>(
    prediction: ArrayView3<'_, F>,
    target: ArrayView3<'_, F>,
    lengths: Option<&[usize]>,
) -> Result<(F, Array3<F>)> {
    let (steps, batch, features) = prediction.dim();
    if steps == 0 || batch == 0 || features == 0 {
        return Err(shape_err(
            "prediction",
            "(T, B, F) with T, B, F ≥ 1",
            prediction.shape(),
        ));
    }
    if prediction.shape() != target.shape() {
        return Err(shape_err(
            "target",
            format!("{:?}, the shape of the prediction", prediction.shape()),
            target.shape(),
        ));
    }
    let n = real_steps(lengths, steps, batch)? * features;
    let nf = F::from_usize(n);
    let scale = F::from_f64(2.0) / nf;
    let mut grad = Array3::zeros(prediction.raw_dim());
    let mut sum = F::zero();
    for t in 0..steps {
        for b in 0..batch {
            if lengths.is_some_and(|l| t >= l[b]) {
                continue;
            }
            Zip::from(grad.slice_mut(s![t, b, ..]))
                .and(prediction.slice(s![t, b, ..]))
                .and(target.slice(s![t, b, ..]))
                .for_each(|g, &p, &y| {
                    let d = p - y;
                    sum += d * d;
                    *g = scale * d;
                });
        }
    }
    Ok((sum / nf, grad))
}
