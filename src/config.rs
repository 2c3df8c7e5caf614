//! [`StackConfig`]: the settings of a recurrent network.

use crate::cell::Nonlinearity;
use crate::error::{Error, Result};

/// The settings of a recurrent network, with `torch.nn.RNN`/`LSTM`/`GRU`'s defaults.
///
/// # Examples
///
/// ```
/// use rand::SeedableRng;
/// use recurrent::{Lstm, StackConfig};
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let config = StackConfig::new(16, 32).with_num_layers(2).with_bidirectional(true);
/// let lstm = Lstm::<f32>::new(config, &mut rng)?;
/// assert_eq!(lstm.output_size(), 64);
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StackConfig {
    /// Features per input step.
    pub input_size: usize,
    /// Hidden units per layer and direction.
    pub hidden_size: usize,
    /// Stacked layers (default 1).
    pub num_layers: usize,
    /// Run a second, reversed direction in every layer (default `false`).
    pub bidirectional: bool,
    /// Use `bias_ih` and `bias_hh` (default `true`).
    pub bias: bool,
    /// Probability of zeroing each output of every layer but the last while training (inverted
    /// dropout; default 0).
    pub dropout: f64,
    /// Input and output are `(B, T, F)` instead of `(T, B, F)` (default `false`); states stay
    /// `(L·D, B, H)`, as in PyTorch.
    pub batch_first: bool,
    /// Activation of an Elman RNN (default tanh); LSTM and GRU accept only the default.
    pub nonlinearity: Nonlinearity,
    /// LSTM only: project each layer's output `h` to this many features (PyTorch's
    /// `proj_size`; default 0, no projection). Must be below `hidden_size`. The outputs and
    /// `h_n` are then `P = proj_size` wide per direction, `c_n` stays `hidden_size` wide.
    pub proj_size: usize,
}

impl StackConfig {
    /// Defaults with the two required sizes.
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        Self {
            input_size,
            hidden_size,
            num_layers: 1,
            bidirectional: false,
            bias: true,
            dropout: 0.0,
            batch_first: false,
            nonlinearity: Nonlinearity::Tanh,
            proj_size: 0,
        }
    }
    /// Sets the number of stacked layers.
    pub fn with_num_layers(mut self, num_layers: usize) -> Self {
        self.num_layers = num_layers;
        self
    }
    /// Turns the reversed second direction on or off.
    pub fn with_bidirectional(mut self, bidirectional: bool) -> Self {
        self.bidirectional = bidirectional;
        self
    }
    /// Turns the biases on or off.
    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
    /// Sets the dropout probability between layers.
    pub fn with_dropout(mut self, dropout: f64) -> Self {
        self.dropout = dropout;
        self
    }
    /// Sets batch-first layout for input and output.
    pub fn with_batch_first(mut self, batch_first: bool) -> Self {
        self.batch_first = batch_first;
        self
    }
    /// Sets the activation of an Elman RNN.
    pub fn with_nonlinearity(mut self, nonlinearity: Nonlinearity) -> Self {
        self.nonlinearity = nonlinearity;
        self
    }

    /// Sets the LSTM output projection (PyTorch's `proj_size`; 0 for none).
    ///
    /// # Examples
    ///
    /// ```
    /// use rand::SeedableRng;
    /// use recurrent::{Lstm, StackConfig};
    ///
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let config = StackConfig::new(16, 32).with_proj_size(8).with_bidirectional(true);
    /// let lstm = Lstm::<f32>::new(config, &mut rng)?;
    /// assert_eq!(lstm.output_size(), 16); // 2 directions × proj_size
    /// assert_eq!(lstm.layer(0)[0].weights().weight_hh.dim(), (4 * 32, 8));
    /// # Ok::<(), recurrent::Error>(())
    /// ```
    pub fn with_proj_size(mut self, proj_size: usize) -> Self {
        self.proj_size = proj_size;
        self
    }

    /// The width of each direction's output `h`: `proj_size` if set, else `hidden_size`.
    pub fn output_width(&self) -> usize {
        if self.proj_size > 0 {
            self.proj_size
        } else {
            self.hidden_size
        }
    }

    /// Number of directions, 1 or 2.
    pub fn num_directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.input_size == 0 || self.hidden_size == 0 || self.num_layers == 0 {
            return Err(Error::InvalidConfig(format!(
                "input_size, hidden_size and num_layers must be at least 1, got {}, {} and {}",
                self.input_size, self.hidden_size, self.num_layers
            )));
        }
        if self.proj_size >= self.hidden_size {
            return Err(Error::InvalidConfig(format!(
                "proj_size must be smaller than hidden_size, got proj_size = {} and \
                 hidden_size = {}",
                self.proj_size, self.hidden_size
            )));
        }
        if !(0.0..=1.0).contains(&self.dropout) {
            return Err(Error::InvalidConfig(format!(
                "dropout must be a probability in [0, 1], got {}",
                self.dropout
            )));
        }
        Ok(())
    }
}
