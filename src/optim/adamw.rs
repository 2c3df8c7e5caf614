//! AdamW, as `torch.optim.AdamW`: Adam with decoupled weight decay.

use ndarray::{ArrayViewD, ArrayViewMutD};

use super::adam::adam_update;
use super::{AdamConfig, AdamSlot, Optimizer, SlotState, UpdateRule};
use crate::error::Result;
use crate::float::Float;

/// Settings of [`AdamW`], with `torch.optim.AdamW`'s defaults (the same as Adam's except
/// `weight_decay = 0.01`).
///
/// # Examples
///
/// ```
/// use recurrent::optim::AdamWConfig;
/// let opt = AdamWConfig::<f32>::new(1e-3).with_weight_decay(0.1).build()?;
/// assert_eq!(opt.rule().config().weight_decay, 0.1);
/// assert_eq!(AdamWConfig::<f32>::default().weight_decay, 0.01);
/// assert!(AdamWConfig::<f32>::new(1e-3).with_betas(0.9, 1.5).build().is_err());
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig<F> {
    /// Learning rate (default `1e-3`).
    pub lr: F,
    /// Decay of the first-moment estimate (default `0.9`).
    pub beta1: F,
    /// Decay of the second-moment estimate (default `0.999`).
    pub beta2: F,
    /// Added to the denominator for stability (default `1e-8`).
    pub eps: F,
    /// Decoupled weight decay: each step first multiplies the parameter by
    /// `1 − lr · weight_decay` (default `0.01`).
    pub weight_decay: F,
    /// Use the maximum of past second moments (AMSGrad; default `false`).
    pub amsgrad: bool,
}

impl<F: Float> Default for AdamWConfig<F> {
    fn default() -> Self {
        Self {
            lr: F::from_f64(1e-3),
            beta1: F::from_f64(0.9),
            beta2: F::from_f64(0.999),
            eps: F::from_f64(1e-8),
            weight_decay: F::from_f64(1e-2),
            amsgrad: false,
        }
    }
}

impl<F: Float> AdamWConfig<F> {
    /// Defaults with learning rate `lr`.
    pub fn new(lr: F) -> Self {
        Self {
            lr,
            ..Self::default()
        }
    }
    setters! {
        /// Sets `(beta1, beta2)`.
        with_betas(beta1: F, beta2: F);
        /// Sets `eps`.
        with_eps(eps: F);
        /// Sets the (decoupled) weight decay.
        with_weight_decay(weight_decay: F);
        /// Turns AMSGrad on or off.
        with_amsgrad(amsgrad: bool);
    }

    /// Validates the settings and builds the optimizer.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if `lr`, `eps` or `weight_decay` is
    /// negative or not finite, or a beta is outside `[0, 1)`.
    pub fn build(self) -> Result<Optimizer<F, AdamW<F>>> {
        // The same settings as Adam's, checked in the same order.
        self.as_adam().check()?;
        Ok(Optimizer::new(AdamW { config: self }))
    }

    fn as_adam(&self) -> AdamConfig<F> {
        AdamConfig {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            amsgrad: self.amsgrad,
        }
    }
}

/// The AdamW update rule (`torch.optim.AdamW`, single-tensor path), with `t` the array's step
/// count. The weight decay does not enter the moment estimates:
///
/// ```text
/// p = p · (1 − lr · weight_decay)
/// m = β1 · m + (1 − β1) · grad
/// v = β2 · v + (1 − β2) · grad²
/// v̂ = max(v̂, v) if amsgrad, else v
/// p = p − lr / (1 − β1ᵗ) · m / (√v̂ / √(1 − β2ᵗ) + eps)
/// ```
///
/// Its per-array state is an [`AdamSlot`].
#[derive(Debug, Clone)]
pub struct AdamW<F> {
    config: AdamWConfig<F>,
}

impl<F: Float> AdamW<F> {
    /// The settings.
    pub fn config(&self) -> &AdamWConfig<F> {
        &self.config
    }
}

impl<F: Float> UpdateRule<F> for AdamW<F> {
    type Slot = AdamSlot<F>;

    fn name(&self) -> &'static str {
        "adamw"
    }

    fn init_slot(&self, param: ArrayViewD<'_, F>) -> AdamSlot<F> {
        AdamSlot::zeros(param, self.config.amsgrad)
    }

    fn update(&self, slot: &mut AdamSlot<F>, param: ArrayViewMutD<'_, F>, grad: ArrayViewD<'_, F>) {
        adam_update(&self.config.as_adam(), true, slot, param, grad);
    }

    fn learning_rate(&self) -> F {
        self.config.lr
    }

    fn set_learning_rate(&mut self, lr: F) {
        self.config.lr = lr;
    }

    fn export_slot(&self, slot: &AdamSlot<F>) -> SlotState<F> {
        slot.export()
    }

    fn import_slot(
        &self,
        param: ArrayViewD<'_, F>,
        state: &mut SlotState<F>,
    ) -> Result<AdamSlot<F>> {
        AdamSlot::import(param, state, self.config.amsgrad)
    }
}
