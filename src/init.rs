//! Weight initialisers beyond PyTorch's default: Xavier/Glorot, orthogonal (pure Rust), constants,
//! and the LSTM forget-gate bias.
//!
//! [`initialize`] walks any [`Params`] by name and re-draws each array with the scheme its name
//! asks for: `weight_ih*` (and a [`Linear`](crate::Linear)'s `weight`) get [`InitConfig::input`],
//! `weight_hh*` get [`InitConfig::recurrent`], `bias*` get [`InitConfig::bias`]. Keras' recurrent
//! layers use Xavier-uniform inputs, orthogonal recurrent weights and zero biases
//! ([`InitConfig::keras`]); char-rnn style LSTMs add a forget-gate bias of 1
//! ([`RecurrentStack::with_forget_bias`](crate::RecurrentStack::with_forget_bias)).
//!
//! Fans follow `torch.nn.init`: a weight `(out, in)` has `fan_in = in`, `fan_out = out` (for a
//! stacked gate matrix `(G·H, I)`, `fan_out = G·H`, as PyTorch computes it).
//!
//! # Examples
//!
//! ```
//! use rand::SeedableRng;
//! use recurrent::init::{initialize, InitConfig};
//! use recurrent::{Lstm, Params, StackConfig};
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mut lstm = Lstm::<f64>::new(StackConfig::new(8, 16), &mut rng)?.with_forget_bias(1.0);
//! initialize(&mut lstm, &InitConfig::keras(), &mut rng)?;
//! // Orthogonal recurrent weights: Wᵀ W = I for W = weight_hh_l0 (64 × 16).
//! let w = lstm.layer(0)[0].weights().weight_hh.clone();
//! let wtw = w.t().dot(&w);
//! assert!((wtw[(3, 3)] - 1.0).abs() < 1e-12 && wtw[(3, 4)].abs() < 1e-12);
//! # Ok::<(), recurrent::Error>(())
//! ```

use ndarray::{Array2, ArrayViewMutD, Ix2};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::params::Params;

/// How to draw one array.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WeightInit {
    /// Leave the array as it is (e.g. PyTorch's default from construction).
    Keep,
    /// Every value `c`.
    Constant(f64),
    /// `uniform(−a, a)` with `a = gain · √(6 / (fan_in + fan_out))` (`torch.nn.init.xavier_uniform_`).
    XavierUniform {
        /// Scale factor (1 for linear/sigmoid layers; PyTorch's `calculate_gain('tanh')` is 5/3).
        gain: f64,
    },
    /// `normal(0, σ²)` with `σ = gain · √(2 / (fan_in + fan_out))` (`torch.nn.init.xavier_normal_`).
    XavierNormal {
        /// Scale factor.
        gain: f64,
    },
    /// A (semi-)orthogonal matrix times `gain` (`torch.nn.init.orthogonal_`): orthonormal columns
    /// when rows ≥ columns (`WᵀW = gain²·I`), orthonormal rows otherwise. Drawn by QR of a Gaussian
    /// matrix (modified Gram–Schmidt, twice, in f64), signs fixed so the factorisation is unique.
    Orthogonal {
        /// Scale factor.
        gain: f64,
    },
}

/// Which [`WeightInit`] each kind of array gets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InitConfig {
    /// For `weight_ih*` and `weight` (input projections, dense heads).
    pub input: WeightInit,
    /// For `weight_hh*` (recurrent weights).
    pub recurrent: WeightInit,
    /// For `bias*`.
    pub bias: WeightInit,
}

impl InitConfig {
    /// Keras' recurrent-layer defaults: Xavier-uniform inputs, orthogonal recurrent weights, zero
    /// biases.
    pub fn keras() -> Self {
        Self {
            input: WeightInit::XavierUniform { gain: 1.0 },
            recurrent: WeightInit::Orthogonal { gain: 1.0 },
            bias: WeightInit::Constant(0.0),
        }
    }
}

/// Re-draws every array of `params` by its name, as [`InitConfig`] says.
///
/// # Errors
///
/// [`Error::InvalidConfig`] if a gain or constant is not finite (nothing is changed then).
pub fn initialize<F: Float, P: Params<F>, R: Rng + ?Sized>(
    params: &mut P,
    config: &InitConfig,
    rng: &mut R,
) -> Result<()> {
    for scheme in [config.input, config.recurrent, config.bias] {
        let v = match scheme {
            WeightInit::Keep => 0.0,
            WeightInit::Constant(c) => c,
            WeightInit::XavierUniform { gain }
            | WeightInit::XavierNormal { gain }
            | WeightInit::Orthogonal { gain } => gain,
        };
        if !v.is_finite() {
            return Err(Error::InvalidConfig(format!("{scheme:?} must be finite")));
        }
    }
    let names = params.names();
    for (name, array) in names.iter().zip(params.arrays_mut()) {
        let base = name.rsplit('.').next().unwrap_or(name);
        let scheme = if base.starts_with("weight_hh") {
            config.recurrent
        } else if base.starts_with("bias") {
            config.bias
        } else {
            config.input
        };
        fill(array, scheme, rng);
    }
    Ok(())
}

/// Draws `array` in place with `scheme`. Vectors (biases) have `fan_in = fan_out = len`.
pub fn fill<F: Float, R: Rng + ?Sized>(
    mut array: ArrayViewMutD<'_, F>,
    scheme: WeightInit,
    rng: &mut R,
) {
    let (fan_out, fan_in) = match array.shape() {
        [rows, cols] => (*rows, *cols),
        [n] => (*n, *n),
        s => (s.first().copied().unwrap_or(1), s.iter().skip(1).product()),
    };
    let fans = (fan_in + fan_out).max(1) as f64;
    match scheme {
        WeightInit::Keep => {}
        WeightInit::Constant(c) => array.fill(F::from_f64(c)),
        WeightInit::XavierUniform { gain } => {
            let a = gain * (6.0 / fans).sqrt();
            match Uniform::new_inclusive(-a, a) {
                Ok(dist) => array.mapv_inplace(|_| F::from_f64(dist.sample(rng))),
                Err(_) => array.fill(F::zero()),
            }
        }
        WeightInit::XavierNormal { gain } => {
            let std = gain * (2.0 / fans).sqrt();
            array.mapv_inplace(|_| {
                let z: f64 = StandardNormal.sample(rng);
                F::from_f64(std * z)
            });
        }
        WeightInit::Orthogonal { gain } => {
            let (rows, cols) = (fan_out.max(1), array.len() / fan_out.max(1));
            let q = orthogonal(rows, cols, rng);
            let flat: Vec<F> = q.iter().map(|&v| F::from_f64(gain * v)).collect();
            if let Ok(mut a2) = array.view_mut().into_dimensionality::<Ix2>() {
                a2.iter_mut().zip(flat).for_each(|(a, v)| *a = v);
            } else {
                array.iter_mut().zip(flat).for_each(|(a, v)| *a = v);
            }
        }
    }
}

/// A `rows × cols` matrix with orthonormal columns (rows ≥ cols) or rows (rows < cols), as
/// `torch.nn.init.orthogonal_` draws it.
fn orthogonal<R: Rng + ?Sized>(rows: usize, cols: usize, rng: &mut R) -> Array2<f64> {
    let (m, n) = if rows >= cols {
        (rows, cols)
    } else {
        (cols, rows)
    };
    // Gaussian m × n, then orthonormalise its n columns.
    let mut a = Array2::from_shape_simple_fn((m, n), || {
        let z: f64 = StandardNormal.sample(rng);
        z
    });
    for j in 0..n {
        // Modified Gram–Schmidt, repeated once for full accuracy.
        for _pass in 0..2 {
            for k in 0..j {
                let dot: f64 = (0..m).map(|i| a[(i, k)] * a[(i, j)]).sum();
                for i in 0..m {
                    a[(i, j)] -= dot * a[(i, k)];
                }
            }
        }
        let norm = (0..m).map(|i| a[(i, j)] * a[(i, j)]).sum::<f64>().sqrt();
        let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        for i in 0..m {
            a[(i, j)] *= inv;
        }
    }
    // Gram–Schmidt gives R a positive diagonal, which is torch's sign convention.
    if rows >= cols {
        a
    } else {
        a.reversed_axes().as_standard_layout().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn orthogonal_is_orthogonal() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        for (r, c) in [(64, 16), (16, 16), (8, 20), (1, 5), (5, 1)] {
            let q = orthogonal(r, c, &mut rng);
            let g = if r >= c { q.t().dot(&q) } else { q.dot(&q.t()) };
            let n = g.nrows();
            for i in 0..n {
                for j in 0..n {
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!(
                        (g[(i, j)] - want).abs() < 1e-12,
                        "({r}, {c}) [{i}, {j}] = {}",
                        g[(i, j)]
                    );
                }
            }
        }
    }
}
