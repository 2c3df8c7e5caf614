//! Learning-rate schedules, as `torch.optim.lr_scheduler`.
//!
//! A schedule is a small state machine over *epochs* (or whatever unit the caller steps it by):
//! [`LrSchedule::lr`] is the rate for the current epoch, [`LrSchedule::step`] moves to the next
//! one. Schedules do not hold the optimizer; [`Optimizer::apply_schedule`] copies the rate into
//! it. The rates are those of PyTorch's schedulers (`get_last_lr()`), computed in `f64` from
//! their closed forms, so they do not drift over long runs:
//!
//! | schedule | PyTorch | rate at epoch `t` |
//! |---|---|---|
//! | [`StepLr`] | `StepLR` | `base_lr · gamma^⌊t / step_size⌋` |
//! | [`ExponentialLr`] | `ExponentialLR` | `base_lr · gamma^t` |
//! | [`CosineAnnealingLr`] | `CosineAnnealingLR` | `eta_min + (base_lr − eta_min)(1 + cos(π t / T_max)) / 2` |
//! | [`LinearWarmup`] | `LinearLR` | `base_lr · (start + (end − start) · min(t, total) / total)` |
//! | [`ReduceLrOnPlateau`] | `ReduceLROnPlateau` | × `factor` after `patience` epochs without improvement |
//! | [`SequentialLr`] | `SequentialLR` | one schedule after another at given milestones (warm-up, then cosine) |
//!
//! # Examples
//!
//! ```
//! use recurrent::optim::{CosineAnnealingLr, LrSchedule, SgdConfig};
//!
//! let mut opt = SgdConfig::<f64>::new(0.1).build()?;
//! let mut sched = CosineAnnealingLr::new(0.1, 10, 0.0)?;
//! for _epoch in 0..10 {
//!     opt.apply_schedule(&sched)?;
//!     // ... one epoch of `opt.step(..)` calls ...
//!     sched.step();
//! }
//! assert_eq!(sched.epoch(), 10);
//! assert!(sched.lr().abs() < 1e-15); // annealed down to eta_min
//! # Ok::<(), recurrent::Error>(())
//! ```
//!
//! [`Optimizer::apply_schedule`]: super::Optimizer::apply_schedule

use std::f64::consts::PI;

use super::{check_non_negative, check_unit_interval};
use crate::error::{Error, Result};

/// A learning-rate schedule.
pub trait LrSchedule {
    /// The learning rate for the current epoch.
    fn lr(&self) -> f64;

    /// The number of [`LrSchedule::step`] / [`LrSchedule::step_with_metric`] calls so far
    /// (PyTorch's `last_epoch`).
    fn epoch(&self) -> u64;

    /// Moves to the next epoch.
    fn step(&mut self);

    /// Moves to the next epoch, given the epoch's validation metric. Only [`ReduceLrOnPlateau`]
    /// uses the metric; the other schedules ignore it and [`LrSchedule::step`].
    fn step_with_metric(&mut self, metric: f64) {
        let _ = metric;
        self.step();
    }

    /// Steps until [`LrSchedule::epoch`] is `epoch`: puts a fresh schedule where a resumed run
    /// left it (PyTorch restores `last_epoch` from the scheduler's `state_dict`). For
    /// [`ReduceLrOnPlateau`], whose rate depends on the metrics seen, this only moves the epoch
    /// count: replay the metrics with [`LrSchedule::step_with_metric`] instead.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if the schedule is already past `epoch`.
    fn advance_to(&mut self, epoch: u64) -> Result<()> {
        if self.epoch() > epoch {
            return Err(Error::InvalidConfig(format!(
                "the schedule is at epoch {}, past the asked epoch {epoch}",
                self.epoch()
            )));
        }
        while self.epoch() < epoch {
            self.step();
        }
        Ok(())
    }
}

/// Schedules one after another (`torch.optim.lr_scheduler.SequentialLR`): schedule `k` runs from
/// epoch `milestones[k - 1]` (the first from epoch 0), starting at its own epoch 0 — e.g. a
/// linear warm-up, then cosine annealing.
///
/// # Examples
///
/// ```
/// use recurrent::optim::{CosineAnnealingLr, LinearWarmup, LrSchedule, SequentialLr};
///
/// // 5 warm-up epochs from 0.1 × 1e-3 to 1e-3, then 20 epochs of cosine annealing.
/// let mut sched = SequentialLr::new(
///     vec![
///         Box::new(LinearWarmup::new(1e-3, 0.1, 5)?),
///         Box::new(CosineAnnealingLr::new(1e-3, 20, 0.0)?),
///     ],
///     vec![5],
/// )?;
/// assert!((sched.lr() - 1e-4).abs() < 1e-15);
/// sched.advance_to(5)?; // resuming at epoch 5: the cosine's first epoch
/// assert_eq!(sched.lr(), 1e-3);
/// # Ok::<(), recurrent::Error>(())
/// ```
pub struct SequentialLr {
    schedules: Vec<Box<dyn LrSchedule + Send + Sync>>,
    milestones: Vec<u64>,
    current: usize,
    epoch: u64,
}

impl SequentialLr {
    /// `schedules` in order, fresh (at epoch 0), and the `len − 1` epochs at which each after
    /// the first takes over, strictly increasing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if there are no schedules, the milestones are not one fewer,
    /// not increasing or 0, or a schedule has already stepped.
    pub fn new(
        schedules: Vec<Box<dyn LrSchedule + Send + Sync>>,
        milestones: Vec<u64>,
    ) -> Result<Self> {
        if schedules.is_empty() || milestones.len() + 1 != schedules.len() {
            return Err(Error::InvalidConfig(format!(
                "{} schedules need {} milestones, got {}",
                schedules.len(),
                schedules.len().saturating_sub(1),
                milestones.len()
            )));
        }
        if milestones.first() == Some(&0) || milestones.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::InvalidConfig(format!(
                "milestones must be increasing and above 0, got {milestones:?}"
            )));
        }
        if let Some(k) = schedules.iter().position(|s| s.epoch() != 0) {
            return Err(Error::InvalidConfig(format!(
                "schedule {k} is at epoch {}; SequentialLr needs fresh schedules",
                schedules[k].epoch()
            )));
        }
        Ok(Self {
            schedules,
            milestones,
            current: 0,
            epoch: 0,
        })
    }
}

impl std::fmt::Debug for SequentialLr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SequentialLr")
            .field("milestones", &self.milestones)
            .field("current", &self.current)
            .field("epoch", &self.epoch)
            .field("lr", &self.lr())
            .finish()
    }
}

impl LrSchedule for SequentialLr {
    fn lr(&self) -> f64 {
        self.schedules[self.current].lr()
    }
    fn epoch(&self) -> u64 {
        self.epoch
    }
    fn step(&mut self) {
        self.advance(None);
    }
    /// Passes the metric to the current schedule (PyTorch's `SequentialLR` does not take one;
    /// this lets a [`ReduceLrOnPlateau`] be part of the sequence).
    fn step_with_metric(&mut self, metric: f64) {
        self.advance(Some(metric));
    }
}

impl SequentialLr {
    fn advance(&mut self, metric: Option<f64>) {
        self.epoch += 1;
        if self.milestones.get(self.current) == Some(&self.epoch) {
            // The next schedule starts at its own epoch 0.
            self.current += 1;
        } else {
            let s = &mut self.schedules[self.current];
            match metric {
                Some(m) => s.step_with_metric(m),
                None => s.step(),
            }
        }
    }
}

fn check_base_lr(base_lr: f64) -> Result<()> {
    check_non_negative("base_lr", base_lr)
}

fn check_positive(name: &str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "{name} must be finite and > 0, got {v}"
        )))
    }
}

fn check_count(name: &str, v: usize) -> Result<()> {
    if v >= 1 {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!("{name} must be >= 1, got 0")))
    }
}

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
        self.epoch += 1;
    }
}

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
        self.epoch += 1;
    }
}

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
        self.epoch += 1;
    }
}

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
        self.epoch += 1;
    }
}

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
        self.epoch += 1;
    }
    fn step_with_metric(&mut self, metric: f64) {
        self.epoch += 1;
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
