//! [`ReduceLrOnPlateau`]: a factor after epochs without improvement.

use super::{check_advance, check_base_lr, LrSchedule};
use crate::error::Result;
use crate::optim::{check_non_negative, check_unit_interval};

/// Whether a smaller or a larger metric is better ([`ReduceLrOnPlateau`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlateauMode {
    /// Smaller is better (a loss). PyTorch's default `"min"`.
    Min,
    /// Larger is better (an accuracy).
    Max,
}

/// How [`ReduceLrOnPlateau`] decides that a metric improved on the best so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdMode {
    /// By a relative margin: `metric < best · (1 − threshold)` (min mode) or
    /// `metric > best · (1 + threshold)` (max mode). PyTorch's default `"rel"`.
    Rel,
    /// By an absolute margin: `metric < best − threshold` or `metric > best + threshold`.
    Abs,
}

/// Settings of [`ReduceLrOnPlateau`], with `torch.optim.lr_scheduler.ReduceLROnPlateau`'s
/// defaults.
///
/// # Examples
///
/// ```
/// use recurrent::optim::{LrSchedule, ReduceLrOnPlateauConfig};
/// let mut s = ReduceLrOnPlateauConfig::new(0.1).with_patience(1).with_factor(0.5).build()?;
/// for loss in [1.0, 0.9, 0.95, 0.93] {
///     s.step_with_metric(loss);
/// }
/// assert_eq!(s.lr(), 0.05); // two epochs without beating 0.9
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReduceLrOnPlateauConfig {
    /// The starting learning rate.
    pub base_lr: f64,
    /// Minimise or maximise the metric (default [`PlateauMode::Min`]).
    pub mode: PlateauMode,
    /// The rate is multiplied by this on a plateau (default `0.1`).
    pub factor: f64,
    /// Epochs without improvement that are tolerated; the rate drops on the next one
    /// (default `10`).
    pub patience: usize,
    /// Margin a metric must beat the best by to count as an improvement (default `1e-4`).
    pub threshold: f64,
    /// Whether `threshold` is relative or absolute (default [`ThresholdMode::Rel`]).
    pub threshold_mode: ThresholdMode,
    /// Epochs after a drop during which bad epochs are not counted (default `0`).
    pub cooldown: usize,
    /// The rate never drops below this (default `0`).
    pub min_lr: f64,
    /// A drop smaller than this is skipped (default `1e-8`).
    pub eps: f64,
}

impl ReduceLrOnPlateauConfig {
    /// Defaults with starting rate `base_lr`.
    pub fn new(base_lr: f64) -> Self {
        Self {
            base_lr,
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }
    }
    setters! {
        /// Sets the mode.
        with_mode(mode: PlateauMode);
        /// Sets the reduction factor.
        with_factor(factor: f64);
        /// Sets the patience.
        with_patience(patience: usize);
        /// Sets the improvement threshold and how it is measured.
        with_threshold(threshold: f64, threshold_mode: ThresholdMode);
        /// Sets the cooldown.
        with_cooldown(cooldown: usize);
        /// Sets the lower bound of the rate.
        with_min_lr(min_lr: f64);
        /// Sets the smallest drop that is applied.
        with_eps(eps: f64);
    }

    /// Validates the settings and builds the schedule.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `base_lr`, `threshold`, `min_lr` or `eps` is negative or not
    /// finite, or `factor` is outside `[0, 1)`.
    ///
    /// [`Error::InvalidConfig`]: crate::Error::InvalidConfig
    pub fn build(self) -> Result<ReduceLrOnPlateau> {
        check_base_lr(self.base_lr)?;
        check_unit_interval("factor", self.factor)?;
        check_non_negative("threshold", self.threshold)?;
        check_non_negative("min_lr", self.min_lr)?;
        check_non_negative("eps", self.eps)?;
        Ok(ReduceLrOnPlateau {
            lr: self.base_lr,
            best: match self.mode {
                PlateauMode::Min => f64::INFINITY,
                PlateauMode::Max => f64::NEG_INFINITY,
            },
            num_bad_epochs: 0,
            cooldown_counter: 0,
            epoch: 0,
            config: self,
        })
    }
}

/// Cuts the rate by `factor` when a metric stops improving
/// (`torch.optim.lr_scheduler.ReduceLROnPlateau`). Step it with
/// [`LrSchedule::step_with_metric`].
///
/// Each epoch: if the metric beats the best so far by the threshold it becomes the best and the
/// count of bad epochs resets, otherwise the count grows; during a cooldown the count is held at
/// zero. When the count exceeds `patience` the rate becomes `max(lr · factor, min_lr)` (if that
/// lowers it by more than `eps`), the cooldown starts and the count resets. A NaN metric counts
/// as a bad epoch, as in PyTorch.
///
/// [`LrSchedule::step`] without a metric only advances the epoch count.
#[derive(Debug, Clone, PartialEq)]
pub struct ReduceLrOnPlateau {
    config: ReduceLrOnPlateauConfig,
    lr: f64,
    best: f64,
    num_bad_epochs: usize,
    cooldown_counter: usize,
    epoch: u64,
}

impl ReduceLrOnPlateau {
    /// The settings.
    pub fn config(&self) -> &ReduceLrOnPlateauConfig {
        &self.config
    }
    /// The best metric so far (`±inf` before the first).
    pub fn best(&self) -> f64 {
        self.best
    }
    /// Epochs since the last improvement (or since the last drop or cooldown).
    pub fn num_bad_epochs(&self) -> usize {
        self.num_bad_epochs
    }
    /// Epochs of cooldown left.
    pub fn cooldown_counter(&self) -> usize {
        self.cooldown_counter
    }

    fn is_better(&self, a: f64) -> bool {
        let (best, th) = (self.best, self.config.threshold);
        match (self.config.mode, self.config.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => a < best * (1.0 - th),
            (PlateauMode::Min, ThresholdMode::Abs) => a < best - th,
            (PlateauMode::Max, ThresholdMode::Rel) => a > best * (th + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => a > best + th,
        }
    }
}

impl LrSchedule for ReduceLrOnPlateau {
    fn lr(&self) -> f64 {
        self.lr
    }
    fn epoch(&self) -> u64 {
        self.epoch
    }
    fn step(&mut self) {
        self.epoch = self.epoch.saturating_add(1);
    }
    closed_form_advance!();
    fn step_with_metric(&mut self, metric: f64) {
        self.epoch = self.epoch.saturating_add(1);
        if self.is_better(metric) {
            self.best = metric;
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs += 1;
        }
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.num_bad_epochs = 0;
        }
        if self.num_bad_epochs > self.config.patience {
            let new_lr = (self.lr * self.config.factor).max(self.config.min_lr);
            if self.lr - new_lr > self.config.eps {
                self.lr = new_lr;
            }
            self.cooldown_counter = self.config.cooldown;
            self.num_bad_epochs = 0;
        }
    }
}
