//! Loading and saving whole [`RecurrentStack`]s under PyTorch's `state_dict()` keys.

use std::path::Path;

use ndarray::{ArrayD, Ix1, Ix2};

use super::{param_key, parse_param_key, rank, take, TensorFile};
use crate::cell::CellWeights;
use crate::config::StackConfig;
use crate::error::{Error, Result, WeightFileProblem as Problem};
use crate::float::Float;
#[cfg(doc)]
use crate::Rnn;

/// `true` if `base` (a key without the `_l{k}[_reverse]` suffix) names a parameter of a recurrent
/// cell: PyTorch's five ([`CellWeights::NAMES`]) or a cell's own ([`crate::cell::OWN_NAMES`]).
fn is_cell_param(base: &str) -> bool {
    CellWeights::<f32>::NAMES.contains(&base)
        || crate::cell::OWN_NAMES
            .iter()
            .any(|names| names.contains(&base))
}

/// `(layer, reverse)` if `key` (prefix removed) names a recurrent cell parameter
/// (`weight_ih_l3_reverse`, …).
pub(crate) fn cell_param(key: &str) -> Option<(usize, bool)> {
    parse_param_key(key)
        .filter(|(base, _, _)| is_cell_param(base))
        .map(|(_, layer, reverse)| (layer, reverse))
}

/// Infers a stack's configuration from the keys under `prefix` and the shapes of layer 0's weights
/// in `file` (read from `path`): `num_layers` and `bidirectional` from the keys, `hidden_size` from
/// `weight_hh_l0` (`(gates·H, H)`, checked against the `kind` of cell being loaded), `input_size`
/// from `weight_ih_l0`, `bias` from the presence of `{bias_key}_l0` (`bias_ih_l0`), and for an LSTM with a
/// projection (`weight_hr_l0` present, `(P, H)`) `proj_size` and `hidden_size` from
/// `weight_hr_l0`. Other settings are defaults.
pub(crate) fn infer_config<F>(
    file: &TensorFile<F>,
    prefix: &str,
    (kind, gates, bias_key): (&str, usize, &str),
    path: &Path,
) -> Result<StackConfig> {
    // The layer indices present; the count comes from them, never from a number in a key alone
    // (a key `…_l1099511627776` must not make a stack of a trillion layers).
    let mut present = std::collections::BTreeSet::new();
    let mut bidirectional = false;
    // Tensors of other types count too, so that a wrong-typed weight is named as such.
    for key in file.tensors.keys().chain(&file.skipped) {
        if let Some((l, rev)) = key.strip_prefix(prefix).and_then(cell_param) {
            present.insert(l);
            bidirectional |= rev;
        }
    }
    // A cell parameter stored as integers or booleans is named as such (before its absence
    // among the float tensors makes another tensor look wrong, e.g. an `I64` `weight_hr_l0`
    // reported as a `weight_hh_l0` of the wrong shape). The first by name, for a stable message.
    if let Some(key) = file
        .skipped
        .iter()
        .filter(|k| k.strip_prefix(prefix).and_then(cell_param).is_some())
        .min()
    {
        return Err(Error::weight_file(path, Some(key), Problem::NotFloat));
    }
    let layers = present.len();
    if let Some(missing) = (0..layers).find(|l| !present.contains(l)) {
        // Some layer above the last complete one is named while a lower one is absent.
        let key = format!("{prefix}{}", param_key("weight_ih", missing, false));
        return Err(super::missing(file, &key, path));
    }
    if layers == 0 {
        let first = format!("{prefix}{}", param_key("weight_ih", 0, false));
        return Err(Error::weight_file(
            path,
            Some(&first),
            Problem::NoParameters,
        ));
    }
    let key = |base: &str| format!("{prefix}{}", param_key(base, 0, false));
    let hh0 = key("weight_hh");
    let hh = file
        .tensors
        .get(&hh0)
        .ok_or_else(|| super::missing(file, &hh0, path))?;
    // With a projection `weight_hh` is `(gates·H, P)` and `weight_hr` `(P, H)`.
    let hr0 = key("weight_hr");
    let proj = match file.tensors.get(&hr0).map(|a| a.shape()) {
        None => None,
        Some(&[p, hidden]) => Some((p, hidden)),
        Some(got) => {
            return Err(Error::weight_file(
                path,
                Some(&hr0),
                Problem::Rank {
                    expected: 2,
                    got: got.to_vec(),
                },
            ))
        }
    };
    let hidden = match (hh.shape(), proj) {
        // The cells check `weight_hh` against `weight_hr` and name the one that does not fit.
        (_, Some((_, hidden))) => hidden,
        (&[rows, hidden], None) if hidden > 0 && hidden.checked_mul(gates) == Some(rows) => hidden,
        (got, _) => {
            return Err(Error::weight_file(
                path,
                Some(&hh0),
                Problem::CellKind {
                    kind: kind.to_string(),
                    gates,
                    got: got.to_vec(),
                },
            ))
        }
    };
    let ih0 = key("weight_ih");
    let input = match file.tensors.get(&ih0).map(|a| a.shape()) {
        Some(&[_, input]) => input,
        Some(got) => {
            return Err(Error::weight_file(
                path,
                Some(&ih0),
                Problem::Rank {
                    expected: 2,
                    got: got.to_vec(),
                },
            ))
        }
        None => return Err(super::missing(file, &ih0, path)),
    };
    let bias = file.tensors.contains_key(&key(bias_key));
    Ok(StackConfig::new(input, hidden)
        .with_num_layers(layers)
        .with_bidirectional(bidirectional)
        .with_bias(bias)
        .with_proj_size(proj.map_or(0, |(p, _)| p)))
}

/// Removes one cell's weights (layer `layer`, direction `reverse`, biases if `bias`, `weight_hr`
/// if `proj`) from `file`, each checked to be present and of the right rank; the cell checks the
/// sizes.
pub(crate) fn take_cell_weights<F: Float>(
    file: &mut TensorFile<F>,
    prefix: &str,
    layer: usize,
    reverse: bool,
    (bias, proj): (bool, bool),
    path: &Path,
) -> Result<CellWeights<F>> {
    let mut next = |base: &str| {
        let key = format!("{prefix}{}", param_key(base, layer, reverse));
        take(file, &key, path).map(|a| (a, key))
    };
    let matrix = |(a, key): (ArrayD<F>, String)| rank::<F, Ix2>(a, &key, path);
    let vector = |(a, key): (ArrayD<F>, String)| rank::<F, Ix1>(a, &key, path);
    let weight_ih = matrix(next("weight_ih")?)?;
    let weight_hh = matrix(next("weight_hh")?)?;
    let (bias_ih, bias_hh) = if bias {
        (
            Some(vector(next("bias_ih")?)?),
            Some(vector(next("bias_hh")?)?),
        )
    } else {
        (None, None)
    };
    let weight_hr = if proj {
        Some(matrix(next("weight_hr")?)?)
    } else {
        None
    };
    Ok(CellWeights {
        weight_ih,
        weight_hh,
        bias_ih,
        bias_hh,
        weight_hr,
    })
}
