//! Adagrad, as `torch.optim.Adagrad`.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Zip};

use super::{check_non_negative, check_positive_eps, Optimizer, SlotState, UpdateRule};
use crate::error::Result;
use crate::float::Float;

/// Settings of [`Adagrad`], with `torch.optim.Adagrad`'s defaults.
///
/// # Examples
///
/// ```
/// use recurrent::optim::AdagradConfig;
/// let opt = AdagradConfig::<f64>::new(0.1)
///     .with_lr_decay(1e-3)
///     .with_initial_accumulator_value(0.1)
///     .build()?;
/// assert_eq!(opt.learning_rate(), 0.1);
/// assert!(AdagradConfig::<f64>::new(0.1).with_lr_decay(-1.0).build().is_err());
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdagradConfig<F> {
    /// Learning rate (default `1e-2`).
    pub lr: F,
    /// Learning-rate decay: step `t` uses `lr / (1 + (t − 1) · lr_decay)` (default `0`).
    pub lr_decay: F,
    /// L2 penalty added to the gradient (default `0`).
    pub weight_decay: F,
    /// Starting value of the sum of squared gradients (default `0`).
    pub initial_accumulator_value: F,
    /// Added to the denominator for stability (default `1e-10`).
    pub eps: F,
}

impl<F: Float> Default for AdagradConfig<F> {
    fn default() -> Self {
        Self {
            lr: F::from_f64(1e-2),
            lr_decay: F::zero(),
            weight_decay: F::zero(),
            initial_accumulator_value: F::zero(),
            eps: F::from_f64(1e-10),
        }
    }
}

impl<F: Float> AdagradConfig<F> {
    /// Defaults with learning rate `lr`.
    pub fn new(lr: F) -> Self {
        Self {
            lr,
            ..Self::default()
        }
    }
    setters! {
        /// Sets the learning-rate decay.
        with_lr_decay(lr_decay: F);
        /// Sets the weight decay (L2 penalty added to the gradient).
        with_weight_decay(weight_decay: F);
        /// Sets the starting value of the accumulator.
        with_initial_accumulator_value(initial_accumulator_value: F);
        /// Sets `eps`.
        with_eps(eps: F);
    }

    /// Validates the settings and builds the optimizer.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if `lr`, `lr_decay`,
    /// `weight_decay`, `initial_accumulator_value` or `eps` is negative or not finite, or if
    /// both `eps` and `initial_accumulator_value` are 0 (PyTorch accepts it, but a zero gradient
    /// then makes the step `0 / 0`, NaN in every weight).
    pub fn build(self) -> Result<Optimizer<F, Adagrad<F>>> {
        check_non_negative("lr", self.lr)?;
        check_non_negative("lr_decay", self.lr_decay)?;
        check_non_negative("weight_decay", self.weight_decay)?;
        check_non_negative("initial_accumulator_value", self.initial_accumulator_value)?;
        // A positive initial sum keeps the denominator above 0 even with eps = 0.
        if self.initial_accumulator_value > F::zero() {
            check_non_negative("eps", self.eps)?;
        } else {
            check_positive_eps(self.eps, "1e-10")?;
        }
        Ok(Optimizer::new(Adagrad { config: self }))
    }
}

/// The Adagrad update rule (`torch.optim.Adagrad`, single-tensor path, dense gradients), with
/// `t` the array's step count:
///
/// ```text
/// g = grad + weight_decay · p
/// clr = lr / (1 + (t − 1) · lr_decay)
/// s = s + g²                          (s starts at initial_accumulator_value)
/// p = p − clr · g / (√s + eps)
/// ```
#[derive(Debug, Clone)]
pub struct Adagrad<F> {
    config: AdagradConfig<F>,
}

impl<F: Float> Adagrad<F> {
    /// The settings.
    pub fn config(&self) -> &AdagradConfig<F> {
        &self.config
    }
}

/// Adagrad's state for one array.
#[derive(Debug, Clone)]
pub struct AdagradSlot<F> {
    /// Number of updates applied to this array.
    pub step: u64,
    /// Sum of squared gradients `s`.
    pub sum: ArrayD<F>,
}

impl<F: Float> UpdateRule<F> for Adagrad<F> {
    type Slot = AdagradSlot<F>;

    fn name(&self) -> &'static str {
        "adagrad"
    }

    fn init_slot(&self, param: ArrayViewD<'_, F>) -> AdagradSlot<F> {
        AdagradSlot {
            step: 0,
            sum: ArrayD::from_elem(param.raw_dim(), self.config.initial_accumulator_value),
        }
    }

    fn update(
        &self,
        slot: &mut AdagradSlot<F>,
        mut param: ArrayViewMutD<'_, F>,
        grad: ArrayViewD<'_, F>,
    ) {
        let c = &self.config;
        slot.step += 1;
        // The decayed rate is computed in f64, as PyTorch does in Python.
        let clr = Float::as_f64(c.lr) / (1.0 + (slot.step - 1) as f64 * Float::as_f64(c.lr_decay));
        let neg_clr = F::from_f64(-clr);
        let (wd, eps) = (c.weight_decay, c.eps);
        let zero = F::zero();
        Zip::from(&mut param)
            .and(&grad)
            .and(&mut slot.sum)
            .for_each(|p, &g, s| {
                let g = if wd != zero { g + wd * *p } else { g };
                *s += g * g;
                *p += neg_clr * g / (s.sqrt() + eps);
            });
    }

    fn learning_rate(&self) -> F {
        self.config.lr
    }

    fn set_learning_rate(&mut self, lr: F) {
        self.config.lr = lr;
    }

    fn export_slot(&self, slot: &AdagradSlot<F>) -> SlotState<F> {
        SlotState::new()
            .with_scalar("step", slot.step as f64)
            .with_array("sum", slot.sum.clone())
    }

    fn import_slot(
        &self,
        param: ArrayViewD<'_, F>,
        state: &mut SlotState<F>,
    ) -> Result<AdagradSlot<F>> {
        Ok(AdagradSlot {
            step: state.take_count("step")?,
            sum: state.take_squares_array("sum", param.shape())?,
        })
    }
}
