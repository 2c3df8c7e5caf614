//! What the layers' forward passes save for their backward passes.

use ndarray::Array3;

use super::unit::{LayerSizes, Recorded, UnitTape};
use crate::cell::SequenceTape;
use crate::config::StackConfig;
use crate::float::Float;

/// What [`Recurrent::forward`](super::Recurrent::forward) and
/// [`Bidirectional::forward`](super::Bidirectional::forward) save for their `backward`: every
/// direction's cell tape `T`, the sizes of the pass and a fingerprint of the weights (a tape is
/// refused once the weights have changed).
#[derive(Debug, Clone)]
pub struct LayerTape<F: Float, T> {
    pub(crate) unit: UnitTape<F, T>,
    pub(crate) rec: Recorded<LayerSizes>,
}

/// What [`RecurrentStack::forward`](super::RecurrentStack::forward) saves for
/// [`RecurrentStack::backward`](super::RecurrentStack::backward): every layer's tape and the
/// dropout masks.
#[derive(Debug, Clone)]
pub struct StackTape<F: Float, T> {
    /// One per layer.
    pub(crate) units: Vec<UnitTape<F, T>>,
    /// Dropout masks applied to the outputs of layers `0..L−1` (empty without dropout).
    pub(crate) masks: Vec<Array3<F>>,
    pub(crate) rec: Recorded<StackConfig>,
}

macro_rules! tape_sizes {
    ($t:ident) => {
        impl<F: Float, T> $t<F, T> {
            /// Number of time steps `T` recorded.
            pub fn steps(&self) -> usize {
                self.rec.steps
            }

            /// Batch size `B` recorded.
            pub fn batch(&self) -> usize {
                self.rec.batch
            }
        }
    };
}
tape_sizes!(LayerTape);
tape_sizes!(StackTape);

impl<F: Float> LayerTape<F, SequenceTape<F>> {
    /// Bytes of memory the tape holds: every direction's [`SequenceTape::nbytes`] plus the
    /// outputs saved for [`MergeMode::Mul`](super::MergeMode::Mul).
    pub fn nbytes(&self) -> usize {
        self.unit.nbytes()
    }
}

impl<F: Float> StackTape<F, SequenceTape<F>> {
    /// Bytes of memory the tape holds: every layer's and direction's [`SequenceTape::nbytes`]
    /// plus the dropout masks.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rand::SeedableRng;
    /// use ndarray::Array3;
    /// use recurrent::{Lstm, StackConfig};
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let net = Lstm::<f32>::new(StackConfig::new(3, 8), &mut rng)?;
    /// let (_, _, tape) = net.forward(Array3::<f32>::ones((5, 2, 3)).view(), None, None)?;
    /// // x (10·3) + gates (10·32) + h and c slots (2·6·2·8) + tanh(c) (5·2·8), 4 bytes each
    /// assert_eq!(tape.nbytes(), (30 + 320 + 192 + 80) * 4);
    /// # Ok::<(), recurrent::Error>(())
    /// ```
    pub fn nbytes(&self) -> usize {
        self.units.iter().map(UnitTape::nbytes).sum::<usize>()
            + self.masks.iter().map(|m| m.len()).sum::<usize>() * std::mem::size_of::<F>()
    }
}
