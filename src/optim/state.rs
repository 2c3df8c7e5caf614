//! An optimizer's state as plain data, to save and restore (checkpoints, resuming training).

use std::collections::{HashMap, HashSet};

use ndarray::{ArrayD, ArrayViewD, Dimension};

use crate::error::{Error, Result};
use crate::float::Float;

/// The saved state of one parameter array's slot: named arrays (moment estimates, buffers) and
/// named scalars (step counts).
///
/// [`UpdateRule::export_slot`](super::UpdateRule::export_slot) builds one with
/// [`SlotState::with_array`] / [`SlotState::with_scalar`];
/// [`UpdateRule::import_slot`](super::UpdateRule::import_slot) takes its entries back out with
/// [`SlotState::take_array`] / [`SlotState::take_scalar`], which check names and shapes. Entry
/// names follow `torch.optim`'s state keys (`exp_avg`, `square_avg`, `momentum_buffer`, `step`)
/// and never contain a `.`.
///
/// # Examples
///
/// ```
/// use ndarray::ArrayD;
/// use recurrent::optim::SlotState;
///
/// let mut s = SlotState::new()
///     .with_scalar("step", 3.0)
///     .with_array("exp_avg", ArrayD::<f64>::zeros(vec![2, 2]));
/// assert_eq!(s.take_count("step")?, 3);
/// assert!(s.take_array("exp_avg", &[2, 3]).is_err()); // wrong shape
/// assert_eq!(s.take_array("exp_avg", &[2, 2])?.shape(), &[2, 2]);
/// assert!(s.is_empty());
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SlotState<F> {
    /// Named arrays, shaped like the parameter.
    pub arrays: Vec<(String, ArrayD<F>)>,
    /// Named scalars (step counts are stored as exact integers in `f64`, as PyTorch stores `step`
    /// as a float tensor).
    pub scalars: Vec<(String, f64)>,
}

impl<F: Float> SlotState<F> {
    /// An empty slot state.
    pub fn new() -> Self {
        Self {
            arrays: Vec::new(),
            scalars: Vec::new(),
        }
    }

    /// Adds the array `name`.
    pub fn with_array(mut self, name: impl Into<String>, array: ArrayD<F>) -> Self {
        self.arrays.push((name.into(), array));
        self
    }

    /// Adds the scalar `name`.
    pub fn with_scalar(mut self, name: impl Into<String>, value: f64) -> Self {
        self.scalars.push((name.into(), value));
        self
    }

    /// `true` if no entries are left.
    pub fn is_empty(&self) -> bool {
        self.arrays.is_empty() && self.scalars.is_empty()
    }

    /// The names of all entries, arrays first.
    pub fn names(&self) -> Vec<&str> {
        self.arrays
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(self.scalars.iter().map(|(n, _)| n.as_str()))
            .collect()
    }

    /// Removes and returns the array `name`, if there is one, after checking its shape.
    ///
    /// # Errors
    ///
    /// [`Error::Mismatch`] if the array is there but not shaped `shape`; [`Error::NonFinite`] if
    /// it holds a NaN or an infinity (a step from it would write non-finite weights).
    pub fn take_optional_array(
        &mut self,
        name: &str,
        shape: &[usize],
    ) -> Result<Option<ArrayD<F>>> {
        let Some(k) = self.arrays.iter().position(|(n, _)| n == name) else {
            return Ok(None);
        };
        let a = &self.arrays[k].1;
        if a.shape() != shape {
            return Err(Error::Mismatch(format!(
                "saved `{name}` has shape {:?}, the parameter has shape {shape:?}",
                a.shape()
            )));
        }
        if let Some((index, v)) = a.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFinite(format!(
                "saved `{name}` holds {v:?} at index {:?}",
                index.slice()
            )));
        }
        Ok(Some(self.arrays.remove(k).1))
    }

    /// Like [`SlotState::take_array`], for a running sum or average of squares
    /// (`exp_avg_sq`, `square_avg`, Adagrad's `sum`), which is also checked to be non-negative:
    /// a negative one would put a NaN (the square root of a negative) into the weights.
    ///
    /// # Errors
    ///
    /// As [`SlotState::take_array`]; [`Error::Mismatch`] if a value is negative.
    pub fn take_squares_array(&mut self, name: &str, shape: &[usize]) -> Result<ArrayD<F>> {
        let a = self.take_array(name, shape)?;
        if let Some((index, v)) = a.indexed_iter().find(|(_, v)| **v < F::zero()) {
            return Err(Error::Mismatch(format!(
                "saved `{name}` holds {v:?} at index {:?}; it accumulates squares and is never \
                 negative (a corrupt or hand-made state)",
                index.slice()
            )));
        }
        Ok(a)
    }

    /// Removes and returns the array `name` after checking its shape.
    ///
    /// # Errors
    ///
    /// [`Error::Mismatch`] if there is no array `name` or it is not shaped `shape`;
    /// [`Error::NonFinite`] if it holds a NaN or an infinity.
    pub fn take_array(&mut self, name: &str, shape: &[usize]) -> Result<ArrayD<F>> {
        self.take_optional_array(name, shape)?.ok_or_else(|| {
            Error::Mismatch(format!(
                "the saved state has no `{name}` array (saved: {:?})",
                self.names()
            ))
        })
    }

    /// Removes and returns the scalar `name`.
    ///
    /// # Errors
    ///
    /// [`Error::Mismatch`] if there is no scalar `name`.
    pub fn take_scalar(&mut self, name: &str) -> Result<f64> {
        let Some(k) = self.scalars.iter().position(|(n, _)| n == name) else {
            return Err(Error::Mismatch(format!(
                "the saved state has no `{name}` scalar (saved: {:?})",
                self.names()
            )));
        };
        Ok(self.scalars.remove(k).1)
    }

    /// Removes the scalar `name` and returns it as a count.
    ///
    /// # Errors
    ///
    /// [`Error::Mismatch`] if there is no scalar `name` or it is not an integer in
    /// `0..=`[`MAX_STEPS`](super::MAX_STEPS) (2⁵³ − 1).
    pub fn take_count(&mut self, name: &str) -> Result<u64> {
        let v = self.take_scalar(name)?;
        to_count(name, v)
    }
}

fn to_count(name: &str, v: f64) -> Result<u64> {
    if v >= 0.0 && v.fract() == 0.0 && v <= super::MAX_STEPS as f64 {
        Ok(v as u64)
    } else {
        Err(Error::Mismatch(format!(
            "saved `{name}` must be an integer in 0..=2^53 - 1 ({}), got {v}",
            super::MAX_STEPS
        )))
    }
}

/// Everything an [`Optimizer`](super::Optimizer) needs to continue exactly where it stopped:
/// made by [`Optimizer::state`](super::Optimizer::state), restored by
/// [`Optimizer::load_state`](super::Optimizer::load_state).
///
/// The hyper-parameters other than the learning rate are not saved: rebuild the optimizer from
/// the same config, then load the state (as with `torch.optim.Optimizer.load_state_dict`).
/// [`OptimizerState::flat_arrays`] and [`OptimizerState::flat_metadata`] turn it into a flat
/// name → array map plus string metadata, the shape of a safetensors file.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState<F> {
    /// The rule that wrote it ([`UpdateRule::name`](super::UpdateRule::name): `"sgd"`, `"adam"`,
    /// `"adamw"`, `"rmsprop"`, `"adagrad"`).
    pub optimizer: String,
    /// Optimizer steps taken.
    pub steps: u64,
    /// The learning rate in effect (a schedule may have changed it since the optimizer was built).
    pub learning_rate: f64,
    /// One entry per parameter array, in [`Params`](crate::Params) order: the array's name and
    /// its slot. Empty before the first step.
    pub slots: Vec<(String, SlotState<F>)>,
}

impl<F: Float> OptimizerState<F> {
    /// The arrays of the flat form, for a safetensors file: every slot array under
    /// `"{param}.{entry}"`, e.g. `"weight_ih_l0.exp_avg"`, in [`Params`](crate::Params) order.
    ///
    /// Together with [`OptimizerState::flat_metadata`] this is everything; read both back with
    /// [`OptimizerState::from_flat`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ndarray::array;
    /// use recurrent::{optim::{AdamConfig, OptimizerState}, Linear};
    ///
    /// let mut w = Linear::from_weights(array![[1.0, 2.0]], None)?;
    /// let g = Linear::from_weights(array![[0.5, -0.5]], None)?;
    /// let mut opt = AdamConfig::new(1e-3).build()?;
    /// opt.step(&mut w, &g)?;
    /// let state = opt.state();
    /// let arrays = state.flat_arrays();
    /// let names: Vec<&str> = arrays.iter().map(|(n, _)| n.as_str()).collect();
    /// assert_eq!(names, ["weight.exp_avg", "weight.exp_avg_sq"]);
    /// let meta = state.flat_metadata();
    /// assert!(meta.contains(&("weight.step".to_string(), "1.0".to_string())));
    ///
    /// let owned = arrays.into_iter().map(|(n, a)| (n, a.to_owned())).collect();
    /// assert_eq!(OptimizerState::from_flat(owned, meta)?, state);
    /// # Ok::<(), recurrent::Error>(())
    /// ```
    pub fn flat_arrays(&self) -> Vec<(String, ArrayViewD<'_, F>)> {
        self.slots
            .iter()
            .flat_map(|(param, slot)| {
                slot.arrays
                    .iter()
                    .map(move |(entry, a)| (format!("{param}.{entry}"), a.view()))
            })
            .collect()
    }

    /// The metadata of the flat form (all strings, as safetensors metadata): `optimizer`,
    /// `steps`, `learning_rate`, `num_params`, `param.{i}` (the name of the `i`-th parameter
    /// array, since safetensors does not keep an order) and `"{param}.{entry}"` for every slot
    /// scalar (e.g. `"weight_ih_l0.step"`). Floats are written so that they parse back to the
    /// same bits.
    pub fn flat_metadata(&self) -> Vec<(String, String)> {
        let mut meta = vec![
            ("optimizer".to_string(), self.optimizer.clone()),
            ("steps".to_string(), self.steps.to_string()),
            ("learning_rate".to_string(), fmt_f64(self.learning_rate)),
            ("num_params".to_string(), self.slots.len().to_string()),
        ];
        for (i, (param, slot)) in self.slots.iter().enumerate() {
            meta.push((format!("param.{i}"), param.clone()));
            for (entry, v) in &slot.scalars {
                meta.push((format!("{param}.{entry}"), fmt_f64(*v)));
            }
        }
        meta
    }

    /// Rebuilds the state from [`OptimizerState::flat_arrays`] (owned) and
    /// [`OptimizerState::flat_metadata`], each in any order.
    ///
    /// # Errors
    ///
    /// [`Error::Mismatch`] if a required metadata key is missing or unparsable, a key is listed
    /// twice, or an array or metadata entry does not belong to a listed parameter.
    pub fn from_flat(
        arrays: Vec<(String, ArrayD<F>)>,
        metadata: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let bad = |msg: String| Error::Mismatch(format!("saved optimizer state: {msg}"));
        let mut meta: HashMap<String, String> = HashMap::new();
        for (k, v) in metadata {
            if meta.insert(k.clone(), v).is_some() {
                return Err(bad(format!("metadata key `{k}` appears twice")));
            }
        }
        let entries = meta.len();
        let mut take = |k: &str| meta.remove(k).ok_or_else(|| bad(format!("no `{k}` entry")));
        let optimizer = take("optimizer")?;
        let parse_u64 = |k: &str, v: String| {
            v.parse::<u64>()
                .map_err(|_| bad(format!("`{k}` = {v:?} is not a count")))
        };
        let steps = parse_u64("steps", take("steps")?)?;
        let num_params = parse_u64("num_params", take("num_params")?)?;
        // Each parameter is listed as `param.{i}`: a count above the number of entries is a corrupt
        // or hostile file, refused before anything is allocated from it.
        let num_params = usize::try_from(num_params)
            .ok()
            .filter(|&n| n <= entries)
            .ok_or_else(|| {
                bad(format!(
                    "`num_params` = {num_params}, but the metadata has only {entries} entries to list them"
                ))
            })?;
        let lr = take("learning_rate")?;
        let learning_rate = lr
            .parse::<f64>()
            .map_err(|_| bad(format!("`learning_rate` = {lr:?} is not a number")))?;
        let mut slots = Vec::with_capacity(num_params);
        let mut index = HashMap::new();
        for i in 0..num_params {
            let name = take(&format!("param.{i}"))?;
            if index.insert(name.clone(), i).is_some() {
                return Err(bad(format!("parameter `{name}` is listed twice")));
            }
            slots.push((name, SlotState::new()));
        }
        let split = |key: &str| -> Result<(usize, String)> {
            key.rsplit_once('.')
                .and_then(|(p, e)| index.get(p).map(|&i| (i, e.to_string())))
                .ok_or_else(|| bad(format!("`{key}` does not belong to a listed parameter")))
        };
        // Duplicates are found through a set: a scan of the slot's arrays per array would make a
        // file of n entries for one parameter cost n² (issue 22: 160,000 entries took hours).
        let mut seen = HashSet::new();
        for (key, a) in arrays {
            let (i, entry) = split(&key)?;
            if !seen.insert(key.clone()) {
                return Err(bad(format!("array `{key}` appears twice")));
            }
            slots[i].1.arrays.push((entry, a));
        }
        // Scalars in a fixed order (the metadata map has none).
        let mut rest: Vec<(String, String)> = meta.into_iter().collect();
        rest.sort();
        for (key, v) in rest {
            let (i, entry) = split(&key)?;
            let x = v
                .parse::<f64>()
                .map_err(|_| bad(format!("`{key}` = {v:?} is not a number")))?;
            slots[i].1.scalars.push((entry, x));
        }
        Ok(Self {
            optimizer,
            steps,
            learning_rate,
            slots,
        })
    }
}

/// Shortest text that parses back to the same `f64` (`Debug` keeps a `.0` or an exponent).
fn fmt_f64(v: f64) -> String {
    format!("{v:?}")
}
