//! Loading and saving whole [`RecurrentStack`]s under PyTorch's `state_dict()` keys.

use crate::cell::{Cell, CellInit, CellWeights, Nonlinearity};
use crate::config::RecurrentConfig;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::layer::RecurrentStack;
#[cfg(doc)]
use crate::Rnn;

/// Splits a parameter name `weight_ih_l3_reverse` into `(layer, reverse)`.
fn parse_param_name(name: &str) -> Option<(usize, bool)> {
    let rest = ["weight_ih_l", "weight_hh_l", "bias_ih_l", "bias_hh_l"]
        .iter()
        .find_map(|p| name.strip_prefix(p))?;
    let (digits, reverse) = match rest.strip_suffix("_reverse") {
        Some(d) => (d, true),
        None => (rest, false),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, reverse))
}

impl<C> RecurrentStack<C> {
    /// Loads a network from a safetensors file holding PyTorch `state_dict()` keys
    /// (`safetensors.torch.save_file(rnn.state_dict(), path)`), inferring `input_size`,
    /// `hidden_size`, `num_layers`, `bidirectional` and `bias` from the keys and shapes.
    ///
    /// Only keys starting with `prefix` are read (`"encoder.rnn."` picks one module out of a whole
    /// model's file; `""` reads top-level keys). Keys under the prefix that are not recurrent
    /// parameters (`weight_ih_l0`, …) are ignored. Stored `f16`, `bf16`, `f32` and `f64` tensors
    /// load into either float type. The file cannot say an Elman RNN's nonlinearity: it loads as
    /// tanh; call [`Rnn::with_nonlinearity`] for ReLU. `dropout` and `batch_first` are not stored
    /// either and start at their defaults (set them with the config of a new network if needed).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be read; [`Error::WeightFile`] if it is truncated or
    /// corrupt, has no recurrent parameters under `prefix`, or a parameter is missing, unexpected or
    /// misshaped (the message names it) — e.g. a GRU file loaded as an LSTM.
    pub fn load_safetensors<F: Float>(
        path: impl AsRef<std::path::Path>,
        prefix: &str,
    ) -> Result<Self>
    where
        C: CellInit<F>,
    {
        let path = path.as_ref();
        let mut file = crate::io::read::<F>(path)?;
        let mut layers = 0;
        let mut bidirectional = false;
        for key in file.tensors.keys() {
            if let Some((l, rev)) = key.strip_prefix(prefix).and_then(parse_param_name) {
                layers = layers.max(l + 1);
                bidirectional |= rev;
            }
        }
        if layers == 0 {
            return Err(Error::WeightFile(format!(
                "no recurrent parameters (`{prefix}weight_ih_l0`, …) in {}",
                path.display()
            )));
        }
        let key = |name: &str| format!("{prefix}{name}");
        let hh0 = key("weight_hh_l0");
        let (rows, hidden) = match file.tensors.get(&hh0) {
            Some(a) if a.ndim() == 2 => (a.shape()[0], a.shape()[1]),
            Some(a) => {
                return Err(Error::WeightFile(format!(
                    "tensor `{hh0}` has shape {:?}, expected ({}·H, H)",
                    a.shape(),
                    C::GATES
                )))
            }
            None => {
                return Err(Error::WeightFile(format!(
                    "missing tensor `{hh0}` in {}",
                    path.display()
                )))
            }
        };
        if hidden == 0 || rows != C::GATES * hidden {
            return Err(Error::WeightFile(format!(
                "tensor `{hh0}` has shape [{rows}, {hidden}]: an {} has {}·H rows (is this another \
                 kind of network?)",
                C::KIND,
                C::GATES
            )));
        }
        let ih0 = key("weight_ih_l0");
        let input = file
            .tensors
            .get(&ih0)
            .filter(|a| a.ndim() == 2)
            .map(|a| a.shape()[1])
            .ok_or_else(|| {
                Error::WeightFile(format!(
                    "missing or misshaped tensor `{ih0}` in {}",
                    path.display()
                ))
            })?;
        let bias = file.tensors.contains_key(&key("bias_ih_l0"));
        let config = RecurrentConfig::new(input, hidden)
            .with_num_layers(layers)
            .with_bidirectional(bidirectional)
            .with_bias(bias);
        let mut cells = Vec::with_capacity(layers * config.num_directions());
        for l in 0..layers {
            for dir in 0..config.num_directions() {
                let sfx = format!("_l{l}{}", if dir == 1 { "_reverse" } else { "" });
                let k = |n: &str| key(&format!("{n}{sfx}"));
                let (k_ih, k_hh) = (k("weight_ih"), k("weight_hh"));
                let weight_ih = crate::io::rank(crate::io::take(&mut file, &k_ih, path)?, &k_ih)?;
                let weight_hh = crate::io::rank(crate::io::take(&mut file, &k_hh, path)?, &k_hh)?;
                let (bias_ih, bias_hh) = if bias {
                    let (k_bi, k_bh) = (k("bias_ih"), k("bias_hh"));
                    (
                        Some(crate::io::rank(
                            crate::io::take(&mut file, &k_bi, path)?,
                            &k_bi,
                        )?),
                        Some(crate::io::rank(
                            crate::io::take(&mut file, &k_bh, path)?,
                            &k_bh,
                        )?),
                    )
                } else {
                    (None, None)
                };
                let weights = CellWeights {
                    weight_ih,
                    weight_hh,
                    bias_ih,
                    bias_hh,
                };
                let cell = C::cell_from_weights(weights, Nonlinearity::Tanh)
                    .map_err(|e| Error::WeightFile(format!("layer `{prefix}…{sfx}`: {e}")))?;
                cells.push(cell);
            }
        }
        if let Some(extra) = file
            .tensors
            .keys()
            .find(|k| k.strip_prefix(prefix).and_then(parse_param_name).is_some())
        {
            return Err(Error::WeightFile(format!(
                "unexpected tensor `{extra}`: the other parameters describe a network with \
                 num_layers = {layers}, bidirectional = {bidirectional}, bias = {bias}"
            )));
        }
        Self::from_cells(config, cells).map_err(|e| Error::WeightFile(e.to_string()))
    }

    /// Saves the weights under `prefix` + PyTorch's `state_dict()` keys, atomically; PyTorch's
    /// `load_state_dict(strict=True)` accepts the file (after `safetensors.torch.load_file`).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be written.
    pub fn save_safetensors<F: Float>(
        &self,
        path: impl AsRef<std::path::Path>,
        prefix: &str,
    ) -> Result<()>
    where
        C: Cell<F>,
    {
        crate::io::save(self, path, prefix)
    }
}
