//! RMSprop, as `torch.optim.RMSprop`.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Zip};

use super::{
    check_non_negative, check_positive_eps, check_unit_interval, lerp, Optimizer, SlotState,
    UpdateRule,
};
use crate::error::Result;
use crate::float::Float;

/// Settings of [`RmsProp`], with `torch.optim.RMSprop`'s defaults.
///
/// # Examples
///
/// ```
/// use recurrent::optim::RmsPropConfig;
/// let opt = RmsPropConfig::<f64>::default().with_momentum(0.9).with_centered(true).build()?;
/// assert_eq!(opt.learning_rate(), 1e-2);
/// assert!(RmsPropConfig::<f64>::new(1e-2).with_alpha(1.0).build().is_err());
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmsPropConfig<F> {
    /// Learning rate (default `1e-2`).
    pub lr: F,
    /// Decay of the running average of squared gradients (default `0.99`).
    pub alpha: F,
    /// Added to the denominator for stability (default `1e-8`).
    pub eps: F,
    /// L2 penalty added to the gradient (default `0`).
    pub weight_decay: F,
    /// Momentum factor (default `0`).
    pub momentum: F,
    /// Normalise by the estimated variance (`E[g²] − E[g]²`) instead of `E[g²]` (default `false`).
    pub centered: bool,
}

impl<F: Float> Default for RmsPropConfig<F> {
    fn default() -> Self {
        Self {
            lr: F::from_f64(1e-2),
            alpha: F::from_f64(0.99),
            eps: F::from_f64(1e-8),
            weight_decay: F::zero(),
            momentum: F::zero(),
            centered: false,
        }
    }
}

impl<F: Float> RmsPropConfig<F> {
    /// Defaults with learning rate `lr`.
    pub fn new(lr: F) -> Self {
        Self {
            lr,
            ..Self::default()
        }
    }
    setters! {
        /// Sets the smoothing constant `alpha`.
        with_alpha(alpha: F);
        /// Sets `eps`.
        with_eps(eps: F);
        /// Sets the weight decay (L2 penalty added to the gradient).
        with_weight_decay(weight_decay: F);
        /// Sets the momentum factor.
        with_momentum(momentum: F);
        /// Turns the centered variant on or off.
        with_centered(centered: bool);
    }

    /// Validates the settings and builds the optimizer.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if `lr`, `weight_decay` or
    /// `momentum` is negative or not finite, `eps` is not positive and finite (PyTorch accepts
    /// `eps = 0`, but then a zero gradient makes the step `0 / 0`), or `alpha` is outside `[0, 1)`. (PyTorch accepts
    /// any `alpha >= 0`, but with `alpha >= 1` the average never learns the gradients' scale.)
    pub fn build(self) -> Result<Optimizer<F, RmsProp<F>>> {
        check_non_negative("lr", self.lr)?;
        check_unit_interval("alpha", self.alpha)?;
        check_positive_eps(self.eps, "1e-8")?;
        check_non_negative("weight_decay", self.weight_decay)?;
        check_non_negative("momentum", self.momentum)?;
        Ok(Optimizer::new(RmsProp { config: self }))
    }
}

/// The RMSprop update rule (`torch.optim.RMSprop`, single-tensor path):
///
/// ```text
/// g = grad + weight_decay · p
/// v = α · v + (1 − α) · g²
/// if centered:  ḡ = α · ḡ + (1 − α) · g;   d = √(v − ḡ²) + eps
/// else:         d = √v + eps
/// if momentum > 0:  buf = momentum · buf + g / d;   p = p − lr · buf
/// else:             p = p − lr · g / d
/// ```
///
/// `v`, `ḡ` and `buf` start at zero. Note that `eps` is added **after** the square root (unlike
/// Keras and TensorFlow, which add it inside).
#[derive(Debug, Clone)]
pub struct RmsProp<F> {
    config: RmsPropConfig<F>,
}

impl<F: Float> RmsProp<F> {
    /// The settings.
    pub fn config(&self) -> &RmsPropConfig<F> {
        &self.config
    }
}

/// RMSprop's state for one array.
#[derive(Debug, Clone)]
pub struct RmsPropSlot<F> {
    /// Number of updates applied to this array.
    pub step: u64,
    /// Running average of squared gradients `v`.
    pub square_avg: ArrayD<F>,
    /// Momentum buffer (only with `momentum > 0`).
    pub momentum_buffer: Option<ArrayD<F>>,
    /// Running average of gradients `ḡ` (centered only).
    pub grad_avg: Option<ArrayD<F>>,
}

impl<F: Float> UpdateRule<F> for RmsProp<F> {
    type Slot = RmsPropSlot<F>;

    fn name(&self) -> &'static str {
        "rmsprop"
    }

    fn init_slot(&self, param: ArrayViewD<'_, F>) -> RmsPropSlot<F> {
        let zeros = || ArrayD::zeros(param.raw_dim());
        RmsPropSlot {
            step: 0,
            square_avg: zeros(),
            momentum_buffer: (self.config.momentum > F::zero()).then(zeros),
            grad_avg: self.config.centered.then(zeros),
        }
    }

    fn update(
        &self,
        slot: &mut RmsPropSlot<F>,
        mut param: ArrayViewMutD<'_, F>,
        grad: ArrayViewD<'_, F>,
    ) {
        let c = &self.config;
        slot.step += 1;
        let (alpha, keep, eps, wd, momentum) = (
            c.alpha,
            F::one() - c.alpha,
            c.eps,
            c.weight_decay,
            c.momentum,
        );
        let neg_lr = -c.lr;
        let zero = F::zero();
        // One fused pass per element, in torch's order of operations.
        let step = |p: &mut F, g: F, v: &mut F, ga: Option<&mut F>, buf: Option<&mut F>| {
            let g = if wd != zero { g + wd * *p } else { g };
            *v = *v * alpha + keep * g * g;
            let d = match ga {
                Some(ga) => {
                    *ga = lerp(*ga, g, keep);
                    (*v - *ga * *ga).sqrt() + eps
                }
                None => v.sqrt() + eps,
            };
            match buf {
                Some(b) => {
                    *b = *b * momentum + g / d;
                    *p += neg_lr * *b;
                }
                None => *p += neg_lr * g / d,
            }
        };
        let zip = Zip::from(&mut param).and(&grad).and(&mut slot.square_avg);
        match (&mut slot.grad_avg, &mut slot.momentum_buffer) {
            (Some(ga), Some(buf)) => zip
                .and(ga)
                .and(buf)
                .for_each(|p, &g, v, ga, b| step(p, g, v, Some(ga), Some(b))),
            (Some(ga), None) => zip
                .and(ga)
                .for_each(|p, &g, v, ga| step(p, g, v, Some(ga), None)),
            (None, Some(buf)) => zip
                .and(buf)
                .for_each(|p, &g, v, b| step(p, g, v, None, Some(b))),
            (None, None) => zip.for_each(|p, &g, v| step(p, g, v, None, None)),
        }
    }

    fn learning_rate(&self) -> F {
        self.config.lr
    }

    fn set_learning_rate(&mut self, lr: F) {
        self.config.lr = lr;
    }

    fn export_slot(&self, slot: &RmsPropSlot<F>) -> SlotState<F> {
        let mut s = SlotState::new()
            .with_scalar("step", slot.step as f64)
            .with_array("square_avg", slot.square_avg.clone());
        if let Some(b) = &slot.momentum_buffer {
            s = s.with_array("momentum_buffer", b.clone());
        }
        if let Some(ga) = &slot.grad_avg {
            s = s.with_array("grad_avg", ga.clone());
        }
        s
    }

    fn import_slot(
        &self,
        param: ArrayViewD<'_, F>,
        state: &mut SlotState<F>,
    ) -> Result<RmsPropSlot<F>> {
        let shape = param.shape();
        Ok(RmsPropSlot {
            step: state.take_count("step")?,
            square_avg: state.take_squares_array("square_avg", shape)?,
            momentum_buffer: if self.config.momentum > F::zero() {
                Some(state.take_array("momentum_buffer", shape)?)
            } else {
                None
            },
            grad_avg: if self.config.centered {
                Some(state.take_array("grad_avg", shape)?)
            } else {
                None
            },
        })
    }
}
