//! The order in which a pass walks time, where each sequence ends, and where each step's states
//! live.

/// The order in which a cell walks a sequence, and where each sequence ends.
///
/// `lengths[b]` is the number of real steps of sequence `b`; steps `t ≥ lengths[b]` are padding.
/// Reversed, each sequence starts at its own last real step (PyTorch's packed-sequence semantics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Schedule<'a> {
    /// Walk time backwards, from the last step to the first.
    pub reverse: bool,
    /// The real length of each sequence (`None`: every sequence has all `T` steps).
    pub lengths: Option<&'a [usize]>,
}

impl<'a> Schedule<'a> {
    /// Forward in time over full-length sequences.
    pub const FORWARD: Schedule<'static> = Schedule {
        reverse: false,
        lengths: None,
    };

    /// Reversed time over full-length sequences.
    pub const REVERSE: Schedule<'static> = Schedule {
        reverse: true,
        lengths: None,
    };

    /// `true` if sequence `b` has a real step at time `t`.
    #[inline]
    pub fn active(&self, t: usize, b: usize) -> bool {
        self.lengths.is_none_or(|l| t < l[b])
    }

    /// The time index of processing step `s` of `steps`.
    #[inline]
    pub fn time(&self, s: usize, steps: usize) -> usize {
        if self.reverse {
            steps - 1 - s
        } else {
            s
        }
    }
}

/// Slot of the state before (`prev`) and after (`next`) processing step `s` at time `t`.
#[inline]
pub(super) fn slots(keep: bool, reverse: bool, s: usize, t: usize) -> (usize, usize) {
    match (keep, reverse) {
        (true, false) => (t, t + 1),
        (true, true) => (t + 1, t),
        (false, _) => (s % 2, (s + 1) % 2),
    }
}
