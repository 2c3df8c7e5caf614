//! Adam, as `torch.optim.Adam`.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Zip};

use super::{
    check_non_negative, check_positive_eps, check_unit_interval, lerp, Optimizer, SlotState,
    UpdateRule,
};
use crate::error::Result;
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
    setters! {
        /// Sets `(beta1, beta2)`.
        with_betas(beta1: F, beta2: F);
        /// Sets `eps`.
        with_eps(eps: F);
        /// Sets the weight decay (L2 penalty added to the gradient).
        with_weight_decay(weight_decay: F);
        /// Turns AMSGrad on or off.
        with_amsgrad(amsgrad: bool);
    }

    /// Validates the settings and builds the optimizer.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if `lr` or `weight_decay` is
    /// negative or not finite, `eps` is not positive and finite (PyTorch accepts `eps = 0`, but
    /// then a zero gradient makes the step `0 / 0`, NaN in every weight), or a beta is outside
    /// `[0, 1)`.
    pub fn build(self) -> Result<Optimizer<F, Adam<F>>> {
        self.check()?;
        Ok(Optimizer::new(Adam { config: self }))
    }

    /// The checks of [`AdamConfig::build`], shared with [`AdamWConfig::build`](super::AdamWConfig::build).
    pub(super) fn check(&self) -> Result<()> {
        check_non_negative("lr", self.lr)?;
        check_positive_eps(self.eps, "1e-8")?;
        check_non_negative("weight_decay", self.weight_decay)?;
        check_unit_interval("beta1", self.beta1)?;
        check_unit_interval("beta2", self.beta2)
    }
}

/// The Adam update rule (`torch.optim.Adam`, single-tensor path), with `t` the array's step count:
///
/// ```text
/// g = grad + weight_decay · p
/// m = β1 · m + (1 − β1) · g                  (as torch: m.lerp_(g, 1 − β1))
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

    fn name(&self) -> &'static str {
        "adam"
    }

    fn init_slot(&self, param: ArrayViewD<'_, F>) -> AdamSlot<F> {
        AdamSlot::zeros(param, self.config.amsgrad)
    }

    fn update(&self, slot: &mut AdamSlot<F>, param: ArrayViewMutD<'_, F>, grad: ArrayViewD<'_, F>) {
        adam_update(&self.config, false, slot, param, grad);
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

impl<F: Float> AdamSlot<F> {
    /// Zero moments for `param` (and a zero running maximum with AMSGrad).
    pub(super) fn zeros(param: ArrayViewD<'_, F>, amsgrad: bool) -> Self {
        AdamSlot {
            step: 0,
            exp_avg: ArrayD::zeros(param.raw_dim()),
            exp_avg_sq: ArrayD::zeros(param.raw_dim()),
            max_exp_avg_sq: amsgrad.then(|| ArrayD::zeros(param.raw_dim())),
        }
    }

    /// `step`, `exp_avg`, `exp_avg_sq` and (AMSGrad) `max_exp_avg_sq`, as `torch.optim.Adam`.
    pub(super) fn export(&self) -> SlotState<F> {
        let s = SlotState::new()
            .with_scalar("step", self.step as f64)
            .with_array("exp_avg", self.exp_avg.clone())
            .with_array("exp_avg_sq", self.exp_avg_sq.clone());
        match &self.max_exp_avg_sq {
            Some(m) => s.with_array("max_exp_avg_sq", m.clone()),
            None => s,
        }
    }

    pub(super) fn import(
        param: ArrayViewD<'_, F>,
        state: &mut SlotState<F>,
        amsgrad: bool,
    ) -> Result<Self> {
        let shape = param.shape();
        Ok(AdamSlot {
            step: state.take_count("step")?,
            exp_avg: state.take_array("exp_avg", shape)?,
            exp_avg_sq: state.take_squares_array("exp_avg_sq", shape)?,
            max_exp_avg_sq: if amsgrad {
                Some(state.take_squares_array("max_exp_avg_sq", shape)?)
            } else {
                None
            },
        })
    }
}

/// One Adam step (`torch.optim.adam._single_tensor_adam`). With `decoupled` (AdamW) the weight
/// decay shrinks the parameter, `p ← p · (1 − lr · weight_decay)`, instead of being added to the
/// gradient.
pub(super) fn adam_update<F: Float>(
    c: &AdamConfig<F>,
    decoupled: bool,
    slot: &mut AdamSlot<F>,
    mut param: ArrayViewMutD<'_, F>,
    grad: ArrayViewD<'_, F>,
) {
    slot.step += 1;
    let t = slot.step as f64;
    // The scalars are computed in f64, as PyTorch does in Python.
    let lr = Float::as_f64(c.lr);
    let bias_correction1 = 1.0 - Float::as_f64(c.beta1).powf(t);
    let bias_correction2_sqrt = (1.0 - Float::as_f64(c.beta2).powf(t)).sqrt();
    let step_size = F::from_f64(lr / bias_correction1);
    let bc2 = F::from_f64(bias_correction2_sqrt);
    let zero = F::zero();
    let (wd, decay) = if decoupled {
        (zero, F::from_f64(1.0 - lr * Float::as_f64(c.weight_decay)))
    } else {
        (c.weight_decay, F::one())
    };
    let decay_param = decoupled && c.weight_decay != zero;
    let (b1c, b2, b2c, eps) = (F::one() - c.beta1, c.beta2, F::one() - c.beta2, c.eps);
    let step = |p: &mut F, g: F, m: &mut F, v: &mut F, vmax: Option<&mut F>| {
        if decay_param {
            *p *= decay;
        }
        let g = if wd != zero { g + wd * *p } else { g };
        *m = lerp(*m, g, b1c);
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
