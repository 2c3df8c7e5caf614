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

/// `advance_to` for a schedule whose state is its epoch count alone. Defined before the modules
/// that use it: a `macro_rules!` is visible after its definition only.
macro_rules! closed_form_advance {
    () => {
        /// Sets the epoch, in constant time (the rate is a closed form of it).
        fn advance_to(&mut self, epoch: u64) -> Result<()> {
            check_advance(self.epoch, epoch)?;
            self.epoch = epoch;
            Ok(())
        }
    };
}

mod cosine;
mod exponential;
mod plateau;
mod sequential;
mod step;
mod warmup;

pub use cosine::CosineAnnealingLr;
pub use exponential::ExponentialLr;
pub use plateau::{PlateauMode, ReduceLrOnPlateau, ReduceLrOnPlateauConfig, ThresholdMode};
pub use sequential::SequentialLr;
pub use step::StepLr;
pub use warmup::LinearWarmup;

use super::check_non_negative;
use crate::error::{Error, Result};

/// A learning-rate schedule.
pub trait LrSchedule {
    /// The learning rate for the current epoch.
    fn lr(&self) -> f64;

    /// The number of [`LrSchedule::step`] / [`LrSchedule::step_with_metric`] calls so far
    /// (PyTorch's `last_epoch`).
    fn epoch(&self) -> u64;

    /// Moves to the next epoch. (The schedules of this module count epochs in a `u64` and stay
    /// at `u64::MAX` once there.)
    fn step(&mut self);

    /// Moves to the next epoch, given the epoch's validation metric. Only [`ReduceLrOnPlateau`]
    /// uses the metric; the other schedules ignore it and [`LrSchedule::step`].
    fn step_with_metric(&mut self, metric: f64) {
        let _ = metric;
        self.step();
    }

    /// Moves to epoch `epoch`, as that many [`LrSchedule::step`] calls would: puts a fresh
    /// schedule where a resumed run left it (PyTorch restores `last_epoch` from the scheduler's
    /// `state_dict`). For [`ReduceLrOnPlateau`], whose rate depends on the metrics seen, this only
    /// moves the epoch count: replay the metrics with [`LrSchedule::step_with_metric`] instead.
    ///
    /// Every schedule of this module jumps there in constant time (a closed form; for
    /// [`SequentialLr`], time linear in its number of schedules), whatever `epoch` is, even
    /// `u64::MAX`. This provided method, for a schedule of your own, calls
    /// [`LrSchedule::step`] once per epoch, at most [`MAX_STEPPED_EPOCHS`] times per call; override
    /// it with a closed form to go further at once.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if the schedule is already past `epoch`, or (this provided
    /// method) if `epoch` is more than [`MAX_STEPPED_EPOCHS`] epochs ahead. The schedule is
    /// unchanged then.
    fn advance_to(&mut self, epoch: u64) -> Result<()> {
        check_advance(self.epoch(), epoch)?;
        let ahead = epoch - self.epoch();
        if ahead > MAX_STEPPED_EPOCHS {
            return Err(Error::InvalidConfig(format!(
                "advance_to({epoch}) from epoch {} would call step() {ahead} times, more than \
                 MAX_STEPPED_EPOCHS = {MAX_STEPPED_EPOCHS}; give this schedule an advance_to in \
                 closed form",
                self.epoch()
            )));
        }
        while self.epoch() < epoch {
            self.step();
        }
        Ok(())
    }
}

/// The most [`LrSchedule::step`] calls the provided [`LrSchedule::advance_to`] makes in one call
/// (2²⁶, well under a second), so that resuming from a checkpoint with a huge step count cannot
/// hang. The schedules of this module do not step to advance and have no such limit.
pub const MAX_STEPPED_EPOCHS: u64 = 1 << 26;

/// `Err` if a schedule at epoch `now` is asked to go back to `epoch`.
fn check_advance(now: u64, epoch: u64) -> Result<()> {
    if now > epoch {
        Err(Error::InvalidConfig(format!(
            "the schedule is at epoch {now}, past the asked epoch {epoch}"
        )))
    } else {
        Ok(())
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
