//! [`CosineAnnealingLr`]: half a cosine.

use std::f64::consts::PI;

use super::{check_advance, check_base_lr, check_count, LrSchedule};
use crate::error::Result;
use crate::optim::check_non_negative;

/// Half a cosine from `base_lr` down to `eta_min` over `t_max` epochs
/// (`torch.optim.lr_scheduler.CosineAnnealingLR`):
/// `eta_min + (base_lr − eta_min) · (1 + cos(π · t / t_max)) / 2`.
///
/// As in PyTorch, the formula is not clamped: past `t_max` the rate climbs back towards
/// `base_lr` (a period of `2 · t_max`). Stop stepping, or restart, to hold it at `eta_min`.
///
/// # Examples
///
/// ```
/// use recurrent::optim::{CosineAnnealingLr, LrSchedule};
/// let mut s = CosineAnnealingLr::new(1.0, 4, 0.2)?;
/// s.step();
/// s.step();
/// assert!((s.lr() - 0.6).abs() < 1e-15); // halfway: (1 + 0.2) / 2
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CosineAnnealingLr {
    base_lr: f64,
    t_max: usize,
    eta_min: f64,
    epoch: u64,
}

impl CosineAnnealingLr {
    /// Starts at `base_lr` (epoch 0), reaches `eta_min` at epoch `t_max`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `base_lr` or `eta_min` is negative or not finite, or `t_max`
    /// is 0.
    ///
    /// [`Error::InvalidConfig`]: crate::Error::InvalidConfig
    pub fn new(base_lr: f64, t_max: usize, eta_min: f64) -> Result<Self> {
        check_base_lr(base_lr)?;
        check_count("t_max", t_max)?;
        check_non_negative("eta_min", eta_min)?;
        Ok(Self {
            base_lr,
            t_max,
            eta_min,
            epoch: 0,
        })
    }
}

impl LrSchedule for CosineAnnealingLr {
    fn lr(&self) -> f64 {
        let t = self.epoch as f64;
        self.eta_min
            + (self.base_lr - self.eta_min) * (1.0 + (PI * t / self.t_max as f64).cos()) / 2.0
    }
    fn epoch(&self) -> u64 {
        self.epoch
    }
    fn step(&mut self) {
        self.epoch = self.epoch.saturating_add(1);
    }
    closed_form_advance!();
}
