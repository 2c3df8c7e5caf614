//! Adam, as `torch.optim.Adam`.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Zip};

use super::{check_non_negative, Optimizer, UpdateRule};
use crate::error::{Error, Result};
use crate::float::Float;

/// Settings of [`Adam`], with `torch.optim.Adam`'s defaults.
///
/// # Examples
///
/// ```
/// use recurrent::optim::AdamConfig;
/// let opt = AdamConfig::<f64>::new(3e-4).with_betas(0.9, 0.98).build()?;
/// assert_eq!(opt.learning_rate(), 3e-4);
/// assert!(AdamConfig::<f64>::new(1e-3).with_betas(0.9, 1.0).build().is_err());
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig<F> {
    /// Learning rate (default `1e-3`).
    pub lr: F,
    /// Decay of the first-moment estimate (default `0.9`).
    pub beta1: F,
    /// Decay of the second-moment estimate (default `0.999`).
    pub beta2: F,
    /// Added to the denominator for stability (default `1e-8`).
    pub eps: F,
    /// L2 penalty added to the gradient (default `0`; this is Adam's coupled decay, not AdamW's).
    pub weight_decay: F,
    /// Use the maximum of past second moments (AMSGrad; default `false`).
    pub amsgrad: bool,
}

impl<F: Float> Default for AdamConfig<F> {
    fn default() -> Self {
        Self {
            lr: F::from_f64(1e-3),
            beta1: F::from_f64(0.9),
            beta2: F::from_f64(0.999),
            eps: F::from_f64(1e-8),
            weight_decay: F::zero(),
            amsgrad: false,
        }
    }
}

impl<F: Float> AdamConfig<F> {
    /// Defaults with learning rate `lr`.
    pub fn new(lr: F) -> Self {
        Self {
            lr,
            ..Self::default()
        }
    }
    /// Sets `(beta1, beta2)`.
    pub fn with_betas(mut self, beta1: F, beta2: F) -> Self {
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }
    /// Sets `eps`.
    pub fn with_eps(mut self, eps: F) -> Self {
        self.eps = eps;
        self
    }
    /// Sets the weight decay (L2 penalty added to the gradient).
    pub fn with_weight_decay(mut self, weight_decay: F) -> Self {
        self.weight_decay = weight_decay;
        self
    }
    /// Turns AMSGrad on or off.
    pub fn with_amsgrad(mut self, amsgrad: bool) -> Self {
        self.amsgrad = amsgrad;
        self
    }

    /// Validates the settings and builds the optimizer.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `lr`, `eps` or `weight_decay` is negative or not finite, or a
    /// beta is outside `[0, 1)`.
    pub fn build(self) -> Result<Optimizer<F, Adam<F>>> {
        check_non_negative("lr", self.lr)?;
        check_non_negative("eps", self.eps)?;
        check_non_negative("weight_decay", self.weight_decay)?;
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(b >= F::zero() && b < F::one()) {
                return Err(Error::InvalidConfig(format!(
                    "{name} must be in [0, 1), got {b}"
                )));
            }
        }
        Ok(Optimizer::new(Adam { config: self }))
    }
}

/// The Adam update rule (`torch.optim.Adam`, single-tensor path), with `t` the array's step count:
///
/// ```text
/// g = grad + weight_decay · p
/// m = m + (1 − β1) · (g − m)
/// v = β2 · v + (1 − β2) · g²
/// v̂ = max(v̂, v) if amsgrad, else v
/// p = p − lr / (1 − β1ᵗ) · m / (√v̂ / √(1 − β2ᵗ) + eps)
/// ```
#[derive(Debug, Clone)]
pub struct Adam<F> {
    config: AdamConfig<F>,
}

impl<F: Float> Adam<F> {
    /// The settings.
    pub fn config(&self) -> &AdamConfig<F> {
        &self.config
    }
}

/// Adam's state for one array.
#[derive(Debug, Clone)]
pub struct AdamSlot<F> {
    /// Number of updates applied to this array.
    pub step: u64,
    /// First-moment estimate `m`.
    pub exp_avg: ArrayD<F>,
    /// Second-moment estimate `v`.
    pub exp_avg_sq: ArrayD<F>,
    /// Running maximum of `v` (AMSGrad only).
    pub max_exp_avg_sq: Option<ArrayD<F>>,
}

impl<F: Float> UpdateRule<F> for Adam<F> {
    type Slot = AdamSlot<F>;

    fn init_slot(&self, param: ArrayViewD<'_, F>) -> AdamSlot<F> {
        AdamSlot {
            step: 0,
            exp_avg: ArrayD::zeros(param.raw_dim()),
            exp_avg_sq: ArrayD::zeros(param.raw_dim()),
            max_exp_avg_sq: self.config.amsgrad.then(|| ArrayD::zeros(param.raw_dim())),
        }
    }

    fn update(
        &self,
        slot: &mut AdamSlot<F>,
        mut param: ArrayViewMutD<'_, F>,
        grad: ArrayViewD<'_, F>,
    ) {
        let c = &self.config;
        slot.step += 1;
        let t = slot.step as f64;
        // The scalars are computed in f64, as PyTorch does in Python.
        let bias_correction1 = 1.0 - Float::as_f64(c.beta1).powf(t);
        let bias_correction2_sqrt = (1.0 - Float::as_f64(c.beta2).powf(t)).sqrt();
        let step_size = F::from_f64(Float::as_f64(c.lr) / bias_correction1);
        let bc2 = F::from_f64(bias_correction2_sqrt);
        let (b1c, b2, b2c, wd, eps) = (
            F::one() - c.beta1,
            c.beta2,
            F::one() - c.beta2,
            c.weight_decay,
            c.eps,
        );
        let zero = F::zero();
        let step = |p: &mut F, g: F, m: &mut F, v: &mut F, vmax: Option<&mut F>| {
            let g = if wd != zero { g + wd * *p } else { g };
            *m = *m + b1c * (g - *m);
            *v = *v * b2 + b2c * g * g;
            let v_hat = match vmax {
                Some(vm) => {
                    if *v > *vm {
                        *vm = *v;
                    }
                    *vm
                }
                None => *v,
            };
            let denom = v_hat.sqrt() / bc2 + eps;
            *p -= step_size * (*m / denom);
        };
        match &mut slot.max_exp_avg_sq {
            Some(vmax) => Zip::from(&mut param)
                .and(&grad)
                .and(&mut slot.exp_avg)
                .and(&mut slot.exp_avg_sq)
                .and(vmax)
                .for_each(|p, &g, m, v, vm| step(p, g, m, v, Some(vm))),
            None => Zip::from(&mut param)
                .and(&grad)
                .and(&mut slot.exp_avg)
                .and(&mut slot.exp_avg_sq)
                .for_each(|p, &g, m, v| step(p, g, m, v, None)),
        }
    }

    fn learning_rate(&self) -> F {
        self.config.lr
    }

    fn set_learning_rate(&mut self, lr: F) {
        self.config.lr = lr;
    }
}
