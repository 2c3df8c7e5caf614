//! Loss functions, each returning `(loss, gradient)`.

use ndarray::{Array, ArrayView, Dimension, Zip};

use crate::error::{shape_err, Result};
use crate::float::Float;

/// Mean squared error, `mean((prediction − target)²)` over every element
/// (`torch.nn.functional.mse_loss` with `reduction="mean"`).
///
/// Returns the loss and its gradient with respect to `prediction` (`2 (prediction − target) / N`),
/// shaped like `prediction`.
///
/// # Errors
///
/// [`Error::Shape`](crate::Error::Shape) if the shapes differ or the arrays are empty.
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// let (loss, grad) = recurrent::mse_loss(array![1.0, 3.0].view(), array![0.0, 1.0].view())?;
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
