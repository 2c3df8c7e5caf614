//! Optimizers: a per-array update rule plus one driver that walks any [`Params`].
//!
//! An [`UpdateRule`] updates one parameter array from its gradient and its own state (a *slot*:
//! momentum buffer, moment estimates). The [`Optimizer`] driver keeps one slot per array of a
//! model and applies the rule to every `(parameter, gradient)` pair that [`Params`] lists, so a rule
//! never knows what a cell or layer is.
//!
//! Rules follow `torch.optim`'s update formulas and defaults exactly: [`Sgd`] (momentum,
//! dampening, Nesterov, weight decay) and [`Adam`] (weight decay, AMSGrad).
//! [`clip_grad_norm`] is `torch.nn.utils.clip_grad_norm_`.
//!
//! # Examples
//!
//! ```
//! use ndarray::Array3;
//! use rand::SeedableRng;
//! use recurrent::optim::AdamConfig;
//! use recurrent::{LstmCell, Params, Recurrent};
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mut lstm = Recurrent::new(LstmCell::<f32>::new(2, 4, &mut rng)?);
//! let mut opt = AdamConfig::new(1e-2).build()?;
//! let x = Array3::<f32>::ones((3, 1, 2));
//! let before = lstm.clone();
//! let (out, _, tape) = lstm.forward(x.view(), None)?;
//! let mut grads = lstm.zeros_like();
//! lstm.backward(&tape, Array3::ones(out.dim()).view(), None, &mut grads)?;
//! recurrent::optim::clip_grad_norm(&mut grads, 1.0)?;
//! opt.step(&mut lstm, &grads)?;
//! assert_ne!(lstm, before);
//! # Ok::<(), recurrent::Error>(())
//! ```

mod adam;
mod clip;
mod sgd;

pub use adam::{Adam, AdamConfig, AdamSlot};
pub use clip::clip_grad_norm;
pub use sgd::{Sgd, SgdConfig, SgdSlot};

use std::fmt::Debug;

use ndarray::{ArrayViewD, ArrayViewMutD};

use crate::error::{Error, Result};
use crate::float::Float;
use crate::params::{check_same_layout, Params};

/// How one parameter array is updated from its gradient.
///
/// Implement this to add an optimizer; [`Optimizer`] does the bookkeeping.
pub trait UpdateRule<F: Float> {
    /// Per-array state (momentum buffer, moment estimates, step count).
    type Slot: Clone + Debug;

    /// A fresh slot for a parameter array, before its first update.
    fn init_slot(&self, param: ArrayViewD<'_, F>) -> Self::Slot;

    /// Updates `param` in place from `grad` (same shape) and the array's `slot`.
    fn update(&self, slot: &mut Self::Slot, param: ArrayViewMutD<'_, F>, grad: ArrayViewD<'_, F>);

    /// The current learning rate.
    fn learning_rate(&self) -> F;

    /// Replaces the learning rate (already validated by the caller).
    fn set_learning_rate(&mut self, lr: F);
}

/// Applies an [`UpdateRule`] to every array of a model, keeping one slot per array.
///
/// The first call to [`Optimizer::step`] fixes the layout (number and shapes of arrays); later
/// calls must pass a model of the same layout.
#[derive(Debug, Clone)]
pub struct Optimizer<F: Float, R: UpdateRule<F>> {
    rule: R,
    slots: Vec<R::Slot>,
    shapes: Vec<Vec<usize>>,
    steps: u64,
}

impl<F: Float, R: UpdateRule<F>> Optimizer<F, R> {
    /// An optimizer applying `rule`; slots are created on the first step.
    pub fn new(rule: R) -> Self {
        Self {
            rule,
            slots: Vec::new(),
            shapes: Vec::new(),
            steps: 0,
        }
    }

    /// The update rule.
    pub fn rule(&self) -> &R {
        &self.rule
    }

    /// The number of steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The current learning rate.
    pub fn learning_rate(&self) -> F {
        self.rule.learning_rate()
    }

    /// Sets the learning rate (for schedules).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `lr` is negative or not finite.
    pub fn set_learning_rate(&mut self, lr: F) -> Result<()> {
        check_non_negative("lr", lr)?;
        self.rule.set_learning_rate(lr);
        Ok(())
    }

    /// One optimisation step: updates every array of `params` from the matching array of `grads`.
    ///
    /// # Errors
    ///
    /// [`Error::Mismatch`] if `grads` is not shaped like `params`, or `params` does not have the
    /// layout of the model this optimizer has been stepping. Nothing is updated then.
    pub fn step<P: Params<F>>(&mut self, params: &mut P, grads: &P) -> Result<()> {
        let g = grads.named_arrays();
        {
            let p = params.named_arrays();
            check_same_layout(&p, &g)?;
            if self.slots.is_empty() {
                self.shapes = p.iter().map(|(_, a)| a.shape().to_vec()).collect();
                self.slots = p
                    .iter()
                    .map(|(_, a)| self.rule.init_slot(a.view()))
                    .collect();
            } else {
                if p.len() != self.shapes.len() {
                    return Err(Error::Mismatch(format!(
                        "the optimizer holds state for {} arrays, the model has {}",
                        self.shapes.len(),
                        p.len()
                    )));
                }
                for ((name, a), shape) in p.iter().zip(&self.shapes) {
                    if a.shape() != shape.as_slice() {
                        return Err(Error::Mismatch(format!(
                            "array `{name}` has shape {:?}, the optimizer's state for it has {shape:?}",
                            a.shape()
                        )));
                    }
                }
            }
        }
        for ((param, (_, grad)), slot) in
            params.arrays_mut().into_iter().zip(g).zip(&mut self.slots)
        {
            self.rule.update(slot, param, grad);
        }
        self.steps += 1;
        Ok(())
    }
}

/// `Err` unless `v` is finite and `>= 0`.
pub(crate) fn check_non_negative<F: Float>(name: &str, v: F) -> Result<()> {
    if v.is_finite() && v >= F::zero() {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "{name} must be finite and >= 0, got {v}"
        )))
    }
}
