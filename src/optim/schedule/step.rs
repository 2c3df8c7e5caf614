//! [`StepLr`]: a factor every `step_size` epochs.

use super::{check_advance, check_base_lr, check_count, check_positive, LrSchedule};
use crate::error::Result;

/// Multiplies the rate by `gamma` every `step_size` epochs (`torch.optim.lr_scheduler.StepLR`).
///
/// # Examples
///
/// ```
/// use recurrent::optim::{LrSchedule, StepLr};
/// let mut s = StepLr::new(1.0, 2, 0.5)?;
/// let lrs: Vec<f64> = (0..5).map(|_| { let lr = s.lr(); s.step(); lr }).collect();
/// assert_eq!(lrs, [1.0, 1.0, 0.5, 0.5, 0.25]);
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct StepLr {
    base_lr: f64,
    step_size: usize,
    gamma: f64,
    epoch: u64,
}

impl StepLr {
    /// Starts at `base_lr` (epoch 0).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `base_lr` is negative or not finite, `step_size` is 0, or
    /// `gamma` is not finite and `> 0`.
    ///
    /// [`Error::InvalidConfig`]: crate::Error::InvalidConfig
    pub fn new(base_lr: f64, step_size: usize, gamma: f64) -> Result<Self> {
        check_base_lr(base_lr)?;
        check_count("step_size", step_size)?;
        check_positive("gamma", gamma)?;
        Ok(Self {
            base_lr,
            step_size,
            gamma,
            epoch: 0,
        })
    }
}

impl LrSchedule for StepLr {
    fn lr(&self) -> f64 {
        let k = self.epoch / self.step_size as u64;
        self.base_lr * self.gamma.powf(k as f64)
    }
    fn epoch(&self) -> u64 {
        self.epoch
    }
    fn step(&mut self) {
        self.epoch = self.epoch.saturating_add(1);
    }
    closed_form_advance!();
}
