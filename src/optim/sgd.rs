//! Stochastic gradient descent, as `torch.optim.SGD`.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Zip};

use super::{check_non_negative, Optimizer, SlotState, UpdateRule};
use crate::error::{Error, Result};
use crate::float::Float;

/// Settings of [`Sgd`], with `torch.optim.SGD`'s defaults.
///
/// # Examples
///
/// ```
/// use recurrent::optim::SgdConfig;
/// let opt = SgdConfig::<f32>::new(0.1).with_momentum(0.9).with_nesterov(true).build()?;
/// assert_eq!(opt.learning_rate(), 0.1);
/// assert!(SgdConfig::<f32>::new(-1.0).build().is_err());
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig<F> {
    /// Learning rate (default `1e-3`).
    pub lr: F,
    /// Momentum factor (default `0`).
    pub momentum: F,
    /// Dampening of the momentum (default `0`).
    pub dampening: F,
    /// L2 penalty added to the gradient (default `0`).
    pub weight_decay: F,
    /// Nesterov momentum (default `false`; needs `momentum > 0` and `dampening = 0`).
    pub nesterov: bool,
}

impl<F: Float> Default for SgdConfig<F> {
    fn default() -> Self {
        Self {
            lr: F::from_f64(1e-3),
            momentum: F::zero(),
            dampening: F::zero(),
            weight_decay: F::zero(),
            nesterov: false,
        }
    }
}

impl<F: Float> SgdConfig<F> {
    /// Defaults with learning rate `lr`.
    pub fn new(lr: F) -> Self {
        Self {
            lr,
            ..Self::default()
        }
    }
    setters! {
        /// Sets the momentum factor.
        with_momentum(momentum: F);
        /// Sets the dampening.
        with_dampening(dampening: F);
        /// Sets the weight decay (L2 penalty).
        with_weight_decay(weight_decay: F);
        /// Turns Nesterov momentum on or off.
        with_nesterov(nesterov: bool);
    }

    /// Validates the settings and builds the optimizer.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `lr`, `momentum`, `dampening` or `weight_decay` is negative or
    /// not finite, or `nesterov` is set without `momentum > 0` and `dampening = 0`.
    pub fn build(self) -> Result<Optimizer<F, Sgd<F>>> {
        check_non_negative("lr", self.lr)?;
        check_non_negative("momentum", self.momentum)?;
        check_non_negative("dampening", self.dampening)?;
        check_non_negative("weight_decay", self.weight_decay)?;
        if self.nesterov && (self.momentum <= F::zero() || self.dampening != F::zero()) {
            return Err(Error::InvalidConfig(format!(
                "Nesterov momentum requires momentum > 0 and dampening = 0, got momentum = {} and \
                 dampening = {}",
                self.momentum, self.dampening
            )));
        }
        Ok(Optimizer::new(Sgd { config: self }))
    }
}

/// The SGD update rule:
///
/// ```text
/// g = grad + weight_decay · p
/// if momentum ≠ 0:
///     buf = g                                        (first step)
///     buf = momentum · buf + (1 − dampening) · g     (later steps)
///     g = g + momentum · buf   if nesterov, else   g = buf
/// p = p − lr · g
/// ```
#[derive(Debug, Clone)]
pub struct Sgd<F> {
    config: SgdConfig<F>,
}

impl<F: Float> Sgd<F> {
    /// The settings.
    pub fn config(&self) -> &SgdConfig<F> {
        &self.config
    }
}

/// The momentum buffer of one array (`None` before the first step or without momentum).
#[derive(Debug, Clone)]
pub struct SgdSlot<F> {
    /// The momentum buffer.
    pub momentum_buffer: Option<ArrayD<F>>,
}

impl<F: Float> UpdateRule<F> for Sgd<F> {
    type Slot = SgdSlot<F>;

    fn name(&self) -> &'static str {
        "sgd"
    }

    fn init_slot(&self, _param: ArrayViewD<'_, F>) -> SgdSlot<F> {
        SgdSlot {
            momentum_buffer: None,
        }
    }

    fn update(
        &self,
        slot: &mut SgdSlot<F>,
        mut param: ArrayViewMutD<'_, F>,
        grad: ArrayViewD<'_, F>,
    ) {
        let c = &self.config;
        let wd = c.weight_decay;
        let mut d = grad.to_owned();
        if wd != F::zero() {
            Zip::from(&mut d).and(&param).for_each(|d, &p| *d += wd * p);
        }
        if c.momentum != F::zero() {
            let buf = match &mut slot.momentum_buffer {
                Some(buf) => {
                    let keep = F::one() - c.dampening;
                    Zip::from(&mut *buf)
                        .and(&d)
                        .for_each(|b, &g| *b = *b * c.momentum + keep * g);
                    buf
                }
                None => slot.momentum_buffer.insert(d.clone()),
            };
            if c.nesterov {
                Zip::from(&mut d)
                    .and(&*buf)
                    .for_each(|g, &b| *g += c.momentum * b);
            } else {
                d.assign(buf);
            }
        }
        let lr = c.lr;
        Zip::from(&mut param).and(&d).for_each(|p, &g| *p -= lr * g);
    }

    fn learning_rate(&self) -> F {
        self.config.lr
    }

    fn set_learning_rate(&mut self, lr: F) {
        self.config.lr = lr;
    }

    fn export_slot(&self, slot: &SgdSlot<F>) -> SlotState<F> {
        match &slot.momentum_buffer {
            Some(buf) => SlotState::new().with_array("momentum_buffer", buf.clone()),
            None => SlotState::new(),
        }
    }

    fn import_slot(
        &self,
        param: ArrayViewD<'_, F>,
        state: &mut SlotState<F>,
    ) -> Result<SgdSlot<F>> {
        // Without momentum no buffer is kept, so a saved one is left over and refused.
        let momentum_buffer = if self.config.momentum != F::zero() {
            state.take_optional_array("momentum_buffer", param.shape())?
        } else {
            None
        };
        Ok(SgdSlot { momentum_buffer })
    }
}
