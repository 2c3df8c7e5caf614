//! [`SequentialLr`]: one schedule after another.

use super::{check_advance, LrSchedule};
use crate::error::{Error, Result};

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
    /// this lets a [`ReduceLrOnPlateau`](super::ReduceLrOnPlateau) be part of the sequence).
    fn step_with_metric(&mut self, metric: f64) {
        self.advance(Some(metric));
    }
    /// Jumps to `epoch`: each schedule that runs until then is advanced to its own epoch with its
    /// own [`LrSchedule::advance_to`] (constant time for this module's schedules), so the call
    /// takes time linear in the number of schedules, whatever `epoch` is.
    ///
    /// # Errors
    ///
    /// As [`LrSchedule::advance_to`]: [`Error::InvalidConfig`] if the sequence is past `epoch`
    /// (nothing changes then), or the error of a schedule that refuses to go where it must (one
    /// of your own whose provided `advance_to` is bounded by
    /// [`MAX_STEPPED_EPOCHS`](super::MAX_STEPPED_EPOCHS)). The sequence then stops at the last
    /// epoch of the schedule before the one that refused (or stays where it was, if that one
    /// was already running): a state [`LrSchedule::step`] continues from as from any other.
    fn advance_to(&mut self, epoch: u64) -> Result<()> {
        check_advance(self.epoch, epoch)?;
        // The schedule running at `epoch`: one more than the milestones reached by then.
        let target = self.milestones.partition_point(|&m| m <= epoch);
        for k in self.current..=target {
            let start = if k == 0 { 0 } else { self.milestones[k - 1] };
            // A schedule that has handed over stopped one epoch before its successor's start.
            let own = if k < target {
                self.milestones[k] - 1 - start
            } else {
                epoch - start
            };
            if let Err(e) = self.schedules[k].advance_to(own) {
                if k > self.current {
                    // Schedules before `k` are at their last epochs; `k` has not started.
                    self.current = k - 1;
                    self.epoch = start - 1;
                }
                return Err(e);
            }
        }
        self.current = target;
        self.epoch = epoch;
        Ok(())
    }
}

impl SequentialLr {
    fn advance(&mut self, metric: Option<f64>) {
        if self.epoch == u64::MAX {
            // The last epoch a u64 counts: stepping stays there.
            return;
        }
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
