//! [`LinearWarmup`]: a linear ramp, then constant.

use super::{check_advance, check_base_lr, check_count, LrSchedule};
use crate::error::{Error, Result};

/// A linear ramp of the rate's factor from `start_factor` to `end_factor` (default `1`) over
/// `total_iters` epochs, then constant (`torch.optim.lr_scheduler.LinearLR`):
/// `base_lr · (start + (end − start) · min(t, total_iters) / total_iters)`.
///
/// # Examples
///
/// ```
/// use recurrent::optim::{LinearWarmup, LrSchedule};
/// let mut s = LinearWarmup::new(1.0, 0.25, 3)?;
/// let lrs: Vec<f64> = (0..5).map(|_| { let lr = s.lr(); s.step(); lr }).collect();
/// assert_eq!(lrs, [0.25, 0.5, 0.75, 1.0, 1.0]);
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LinearWarmup {
    base_lr: f64,
    start_factor: f64,
    end_factor: f64,
    total_iters: usize,
    epoch: u64,
}

impl LinearWarmup {
    /// A warm-up from `base_lr · start_factor` to `base_lr` over `total_iters` epochs.
    ///
    /// # Errors
    ///
    /// As [`LinearWarmup::with_factors`].
    pub fn new(base_lr: f64, start_factor: f64, total_iters: usize) -> Result<Self> {
        Self::with_factors(base_lr, start_factor, 1.0, total_iters)
    }

    /// A ramp from `base_lr · start_factor` to `base_lr · end_factor` over `total_iters` epochs.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `base_lr` is negative or not finite, `start_factor` is outside
    /// `(0, 1]`, `end_factor` is outside `[0, 1]` (PyTorch's limits), or `total_iters` is 0.
    pub fn with_factors(
        base_lr: f64,
        start_factor: f64,
        end_factor: f64,
        total_iters: usize,
    ) -> Result<Self> {
        check_base_lr(base_lr)?;
        if !(start_factor > 0.0 && start_factor <= 1.0) {
            return Err(Error::InvalidConfig(format!(
                "start_factor must be in (0, 1], got {start_factor}"
            )));
        }
        if !(0.0..=1.0).contains(&end_factor) {
            return Err(Error::InvalidConfig(format!(
                "end_factor must be in [0, 1], got {end_factor}"
            )));
        }
        check_count("total_iters", total_iters)?;
        Ok(Self {
            base_lr,
            start_factor,
            end_factor,
            total_iters,
            epoch: 0,
        })
    }
}

impl LrSchedule for LinearWarmup {
    fn lr(&self) -> f64 {
        let total = self.total_iters as u64;
        if self.epoch >= total {
            // Exactly the end rate once the ramp is over.
            return self.base_lr * self.end_factor;
        }
        let (s, e) = (self.start_factor, self.end_factor);
        self.base_lr * (s + (e - s) * self.epoch as f64 / total as f64)
    }
    fn epoch(&self) -> u64 {
        self.epoch
    }
    fn step(&mut self) {
        self.epoch = self.epoch.saturating_add(1);
    }
    closed_form_advance!();
}
