//! The floating-point element type of every array in the crate.

use ndarray::NdFloat;
use rand::distr::uniform::SampleUniform;

/// The float type a model computes in: implemented for [`f32`] and [`f64`].
///
/// Everything in the crate is generic over `F: Float`. Use `f64` to check gradients numerically and
/// `f32` to train and run fast. The trait is sealed: no other type can implement it.
///
/// # Examples
///
/// ```
/// use recurrent::Float;
/// assert_eq!(<f64 as Float>::from_f64(0.5), 0.5);
/// assert!((Float::sigmoid(0.0f32) - 0.5).abs() < 1e-7);
/// ```
pub trait Float: NdFloat + SampleUniform + Default + sealed::Sealed + 'static {
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

/// Keeps [`Float`] to the crate's two types, and holds what the cells need of a float type but
/// users do not: the fast activations.
pub(crate) mod sealed {
    /// Implemented for `f32` and `f64` only; a supertrait of [`Float`](super::Float), so no other
    /// crate can implement `Float`. Not nameable outside the crate.
    pub trait Sealed: Sized {
        /// The logistic function as the cells compute it: `Float::sigmoid` for `f64`; for `f32`
        /// a branch-free approximation that the compiler vectorises, within 4 ulp of the exact
        /// value (tested).
        fn activation_sigmoid(self) -> Self;

        /// `tanh` as the cells compute it: the standard library's for `f64`; for `f32` a
        /// branch-free approximation that the compiler vectorises, within 4 ulp of the exact
        /// value (tested).
        fn activation_tanh(self) -> Self;
    }
}

/// `e^x` for `f32` without branches or library calls, so loops over it vectorise: Cody–Waite
/// range reduction `x = n·ln 2 + r`, Cephes' degree-6 polynomial for `e^r`, and `2^n` built from
/// bits. Inputs are clamped to `[−87, 88]`, where the result stays a normal float.
#[inline(always)]
#[allow(clippy::excessive_precision)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const SHIFT: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer
    const LN2_HI: f32 = 0.693_359_375;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + SHIFT;
    let n = t - SHIFT;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.987_569_15e-4_f32;
    p = p * r + 1.398_199_95e-3;
    p = p * r + 8.333_451_9e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_55e-1;
    p = p * r + 5.000_000_12e-1;
    let y = p * r * r + r + 1.0;
    let two_n = f32::from_bits(((t.to_bits() as i32 - 0x4B40_0000 + 127) << 23) as u32);
    y * two_n
}

/// `tanh` for `f32` without branches: Cephes' odd polynomial below 0.625, `1 − 2/(e^{2|x|} + 1)`
/// above, sign restored.
#[inline(always)]
#[allow(clippy::excessive_precision)]
pub(crate) fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    let big = 1.0 - 2.0 / (exp_f32(2.0 * a) + 1.0);
    let z = a * a;
    let small = ((((-5.704_988_7e-3_f32 * z + 2.063_908_9e-2) * z - 5.373_971_6e-2) * z
        + 1.333_144_2e-1)
        * z
        - 3.333_328_2e-1)
        * z
        * a
        + a;
    let r = if a < 0.625 { small } else { big };
    r.copysign(x)
}

impl sealed::Sealed for f32 {
    #[inline(always)]
    fn activation_sigmoid(self) -> Self {
        1.0 / (1.0 + exp_f32(-self))
    }
    #[inline(always)]
    fn activation_tanh(self) -> Self {
        tanh_f32(self)
    }
}

impl sealed::Sealed for f64 {
    #[inline(always)]
    fn activation_sigmoid(self) -> Self {
        Float::sigmoid(self)
    }
    #[inline(always)]
    fn activation_tanh(self) -> Self {
        self.tanh()
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

#[cfg(test)]
mod tests {
    use super::sealed::Sealed;
    use super::{exp_f32, tanh_f32};

    /// Largest error in units of the exact value's ulp over a dense grid.
    fn max_ulps(f: impl Fn(f32) -> f32, exact: impl Fn(f64) -> f64, lo: f32, hi: f32) -> f64 {
        let n = 200_000;
        (0..=n)
            .map(|k| {
                let x = lo + (hi - lo) * k as f32 / n as f32;
                let e = exact(f64::from(x));
                let ulp =
                    f64::from((e as f32).abs().max(f32::MIN_POSITIVE)) * f64::from(f32::EPSILON);
                (f64::from(f(x)) - e).abs() / ulp
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn fast_f32_functions_are_accurate() {
        assert!(max_ulps(exp_f32, f64::exp, -80.0, 80.0) <= 4.0);
        assert!(
            max_ulps(
                f32::activation_sigmoid,
                |x| 1.0 / (1.0 + (-x).exp()),
                -40.0,
                40.0
            ) <= 4.0
        );
        assert!(max_ulps(tanh_f32, f64::tanh, -20.0, 20.0) <= 4.0);
        assert!(max_ulps(tanh_f32, f64::tanh, -1e-3, 1e-3) <= 4.0);
        assert_eq!(tanh_f32(0.0), 0.0);
        assert_eq!(tanh_f32(100.0), 1.0);
        assert_eq!(tanh_f32(-100.0), -1.0);
        assert_eq!(f32::activation_sigmoid(200.0), 1.0);
        assert!(f32::activation_sigmoid(-200.0) >= 0.0);
        assert!(tanh_f32(f32::NAN).is_nan());
        assert!(exp_f32(f32::NAN).is_nan());
    }
}
