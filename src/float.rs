//! The floating-point element type of every array in the crate.

use ndarray::NdFloat;
use rand::distr::uniform::SampleUniform;

/// The float type a model computes in: implemented for [`f32`] and [`f64`].
///
/// Everything in the crate is generic over `F: Float`. Use `f64` to check gradients numerically and
/// `f32` to train and run fast.
///
/// # Examples
///
/// ```
/// use recurrent::Float;
/// assert_eq!(<f64 as Float>::from_f64(0.5), 0.5);
/// assert!((Float::sigmoid(0.0f32) - 0.5).abs() < 1e-7);
/// ```
pub trait Float: NdFloat + SampleUniform + Default + 'static {
    /// Converts an `f64` constant to this type (rounding to nearest for `f32`).
    fn from_f64(x: f64) -> Self;

    /// Converts to `f64` exactly.
    fn as_f64(self) -> f64;

    /// Converts a count (a batch size, a number of steps) to this type.
    fn from_usize(n: usize) -> Self {
        Self::from_f64(n as f64)
    }

    /// The logistic function `1 / (1 + e^(−x))`, computed without overflow for large `|x|`.
    #[inline]
    fn sigmoid(self) -> Self {
        if self >= Self::zero() {
            Self::one() / (Self::one() + (-self).exp())
        } else {
            let e = self.exp();
            e / (Self::one() + e)
        }
    }
}

impl Float for f32 {
    #[inline]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline]
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Float for f64 {
    #[inline]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline]
    fn as_f64(self) -> f64 {
        self
    }
}
