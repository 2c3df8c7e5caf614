//! [`RecurrentStack::load_safetensors`] and [`RecurrentStack::save_safetensors`]: a whole stack
//! from and to a file with PyTorch's `state_dict()` keys, through [`crate::io`] (which owns the key
//! scheme, config inference and the strict checks).

use super::stack::RecurrentStack;
use crate::cell::{Cell, CellInit};
use crate::error::{Error, Result, WeightFileProblem as Problem};
use crate::float::Float;
use crate::io::pytorch::{cell_param, infer_config, take_cell_weights};
use crate::io::{invalid, param_key, read};
#[cfg(doc)]
use crate::Rnn;

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
    /// either and start at their defaults; set them with [`RecurrentStack::with_dropout`] and
    /// [`RecurrentStack::with_batch_first`].
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
        let mut file = read::<F>(path)?;
        let config = infer_config(&file, prefix, (C::KIND, C::GATES, C::BIAS_KEY), path)?;
        // Whether the cells' biases are PyTorch's `bias_ih`, `bias_hh` or their own.
        let pytorch_bias = config.bias && C::BIAS_KEY == "bias_ih";
        let mut cells = Vec::with_capacity(config.num_layers * config.num_directions());
        for layer in 0..config.num_layers {
            for reverse in [false, true].into_iter().take(config.num_directions()) {
                let weights = take_cell_weights(
                    &mut file,
                    prefix,
                    layer,
                    reverse,
                    (pytorch_bias, config.proj_size > 0),
                    path,
                )?;
                let mut cell = C::cell_from_file_weights(weights, config.bias).map_err(|e| {
                    let layer = format!("layer `{prefix}…{}`", param_key("", layer, reverse));
                    invalid(path, Some(layer), e)
                })?;
                take_own_params(&mut cell, &mut file, prefix, (layer, reverse), path)?;
                cells.push(cell);
            }
        }
        if let Some(extra) = file
            .tensors
            .keys()
            .find(|k| k.strip_prefix(prefix).and_then(cell_param).is_some())
        {
            let mut inferred = format!(
                "num_layers = {}, bidirectional = {}, bias = {}",
                config.num_layers, config.bidirectional, config.bias
            );
            if config.proj_size > 0 {
                inferred += &format!(", proj_size = {}", config.proj_size);
            }
            return Err(Error::weight_file(
                path,
                Some(extra),
                Problem::Unexpected {
                    inferred: Some(inferred),
                },
            ));
        }
        Self::from_cells(config, cells).map_err(|e| invalid(path, None, e))
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

/// Reads the parameters of `cell` beyond PyTorch's five (a layer-normalised LSTM's gains and
/// biases) from `file`, by name, each checked for its shape.
fn take_own_params<F: Float, C: Cell<F>>(
    cell: &mut C,
    file: &mut crate::io::TensorFile<F>,
    prefix: &str,
    (layer, reverse): (usize, bool),
    path: &std::path::Path,
) -> Result<()> {
    let names: Vec<String> = cell.named_arrays().into_iter().map(|(n, _)| n).collect();
    for (name, mut target) in names.iter().zip(cell.arrays_mut()) {
        if crate::cell::CellWeights::<F>::NAMES.contains(&name.as_str()) {
            continue;
        }
        let key = format!("{prefix}{}", param_key(name, layer, reverse));
        let value = crate::io::take(file, &key, path)?;
        if value.shape() != target.shape() {
            return Err(Error::weight_file(
                path,
                Some(&key),
                Problem::Shape {
                    expected: target.shape().to_vec(),
                    got: value.shape().to_vec(),
                },
            ));
        }
        target.assign(&value);
    }
    Ok(())
}
