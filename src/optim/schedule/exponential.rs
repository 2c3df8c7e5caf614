//! [`ExponentialLr`]: a factor every epoch.

use super::{check_advance, check_base_lr, check_positive, LrSchedule};
use crate::error::Result;

/// Multiplies the rate by `gamma` every epoch (`torch.optim.lr_scheduler.ExponentialLR`).
///
/// # Examples
///
/// ```
/// use recurrent::optim::{ExponentialLr, LrSchedule};
/// let mut s = ExponentialLr::new(1.0, 0.5)?;
/// s.step();
/// s.step();
/// assert_eq!(s.lr(), 0.25);
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialLr {
    base_lr: f64,
    gamma: f64,
    epoch: u64,
}

impl ExponentialLr {
    /// Starts at `base_lr` (epoch 0).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `base_lr` is negative or not finite, or `gamma` is not finite
    /// and `> 0`.
    ///
    /// [`Error::InvalidConfig`]: crate::Error::InvalidConfig
    pub fn new(base_lr: f64, gamma: f64) -> Result<Self> {
        check_base_lr(base_lr)?;
        check_positive("gamma", gamma)?;
        Ok(Self {
            base_lr,
            gamma,
            epoch: 0,
        })
    }
}

impl LrSchedule for ExponentialLr {
    fn lr(&self) -> f64 {
        self.base_lr * self.gamma.powf(self.epoch as f64)
    }
    fn epoch(&self) -> u64 {
        self.epoch
    }
    fn step(&mut self) {
        self.epoch = self.epoch.saturating_add(1);
    }
    closed_form_advance!();
}
