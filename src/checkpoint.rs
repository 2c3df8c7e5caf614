//! Checkpoints: a model, its optimizer's state and the step count in one safetensors file,
//! written atomically, so training resumes exactly where it stopped.
//!
//! Layout: the model's arrays under `model.{name}` (PyTorch's keys after the prefix), the
//! optimizer's arrays under `optim.{param}.{entry}`, the program's own [`UserState`] under
//! `user.{name}`, and string metadata (`format`, `step`, `optim.*`, `user.*`). Scalars are written
//! so they parse back to the same bits: resuming from a checkpoint continues on exactly the
//! trajectory an uninterrupted run takes.
//!
//! A learning-rate schedule is not stored: it is a function of the step (or epoch), so put a
//! fresh schedule where the run stopped with [`LrSchedule::advance_to`] and the step the
//! checkpoint returns (keep an epoch count in [`UserState::metadata`] if the schedule counts
//! epochs).
//!
//! # Examples
//!
//! ```
//! use ndarray::Array3;
//! use rand::SeedableRng;
//! use recurrent::checkpoint::{load_checkpoint, save_checkpoint};
//! use recurrent::optim::AdamConfig;
//! use recurrent::{Gru, Params, StackConfig};
//!
//! let dir = std::env::temp_dir().join(format!("recurrent-ckpt-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("run.ckpt.safetensors");
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mut gru = Gru::<f32>::new(StackConfig::new(2, 4), &mut rng)?;
//! let mut opt = AdamConfig::new(1e-2).build()?;
//! let x = Array3::<f32>::ones((5, 3, 2));
//! let (out, _, tape) = gru.forward(x.view(), None, None)?;
//! let mut grads = gru.zeros_like();
//! gru.backward(&tape, Array3::ones(out.dim()).view(), None, &mut grads)?;
//! opt.step(&mut gru, &grads)?;
//! save_checkpoint(&path, &gru, &opt, 1)?;
//!
//! // Later, or in another process: rebuild the same model and optimizer, then load.
//! let mut gru2 = Gru::<f32>::new(StackConfig::new(2, 4), &mut rng)?;
//! let mut opt2 = AdamConfig::new(1e-2).build()?;
//! let step = load_checkpoint(&path, &mut gru2, &mut opt2)?;
//! assert_eq!(step, 1);
//! assert_eq!(gru2, gru);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), recurrent::Error>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ndarray::ArrayD;

use crate::error::{Error, Result, WeightFileProblem};
use crate::float::Float;
use crate::io;
#[cfg(doc)]
use crate::optim::LrSchedule;
use crate::optim::{Optimizer, OptimizerState, UpdateRule};
use crate::params::Params;

const FORMAT: &str = "recurrent-checkpoint-1";

/// What a training program keeps in a checkpoint beside the model and the optimizer: named
/// arrays (an average of the weights, a loss curve) and string metadata (the epoch, the data's
/// path, settings as text). Stored under `user.{name}`; [`save_checkpoint_with`] writes it and
/// [`load_checkpoint_with`] gives it back exactly (a plain [`load_checkpoint`] ignores it).
///
/// # Examples
///
/// ```
/// use ndarray::ArrayD;
/// use rand::SeedableRng;
/// use recurrent::checkpoint::{load_checkpoint_with, save_checkpoint_with, UserState};
/// use recurrent::optim::SgdConfig;
/// use recurrent::Linear;
///
/// let dir = std::env::temp_dir().join(format!("recurrent-user-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("run.ckpt.safetensors");
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mut head = Linear::<f32>::new(4, 2, &mut rng)?;
/// let mut opt = SgdConfig::new(0.1).build()?;
///
/// let mut user = UserState::default();
/// user.arrays.insert("loss_curve".into(), ArrayD::from_elem(vec![3], 0.5));
/// user.arrays.insert("ema".into(), ArrayD::from_elem(vec![2, 2], 0.25));
/// user.metadata.insert("epoch".into(), "7".into());
/// save_checkpoint_with(&path, &head, &opt, 120, &user)?;
///
/// let (step, back) = load_checkpoint_with(&path, &mut head, &mut opt)?;
/// assert_eq!((step, back.metadata["epoch"].as_str()), (120, "7"));
/// assert_eq!(back, user);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserState<F> {
    /// Named arrays (by name, like the metadata: a loaded state equals the saved one whatever
    /// the order they were inserted in).
    pub arrays: BTreeMap<String, ArrayD<F>>,
    /// String metadata.
    pub metadata: BTreeMap<String, String>,
}

/// Writes `model`, `optimizer`'s state and `step` to `path` atomically (a temporary file renamed
/// over the target: a crash mid-write leaves the previous checkpoint intact).
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be written.
pub fn save_checkpoint<F: Float, P: Params<F>, R: UpdateRule<F>>(
    path: impl AsRef<Path>,
    model: &P,
    optimizer: &Optimizer<F, R>,
    step: u64,
) -> Result<()> {
    save_checkpoint_with(path, model, optimizer, step, &UserState::default())
}

/// Like [`save_checkpoint`], with the program's own arrays and metadata ([`UserState`]).
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be written.
pub fn save_checkpoint_with<F: Float, P: Params<F>, R: UpdateRule<F>>(
    path: impl AsRef<Path>,
    model: &P,
    optimizer: &Optimizer<F, R>,
    step: u64,
    user: &UserState<F>,
) -> Result<()> {
    let mut arrays = io::prefixed(model, "model.");
    arrays.extend(
        user.arrays
            .iter()
            .map(|(n, a)| (format!("user.{n}"), a.clone())),
    );
    let state = optimizer.state();
    arrays.extend(
        state
            .flat_arrays()
            .into_iter()
            .map(|(n, a)| (format!("optim.{n}"), a.to_owned())),
    );
    let mut metadata: HashMap<String, String> = state
        .flat_metadata()
        .into_iter()
        .map(|(k, v)| (format!("optim.{k}"), v))
        .collect();
    metadata.extend(
        user.metadata
            .iter()
            .map(|(k, v)| (format!("user.{k}"), v.clone())),
    );
    metadata.insert("format".into(), FORMAT.into());
    metadata.insert("step".into(), step.to_string());
    io::write(path, &arrays, Some(metadata))
}

/// Loads a checkpoint written by [`save_checkpoint`] into `model` and `optimizer` (built the same
/// way as the ones that were saved) and returns the step. Nothing is changed unless everything
/// fits.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be read; [`Error::WeightFile`] if it is not a checkpoint, is
/// corrupt, or a model array is missing, misshaped or unexpected; [`Error::Mismatch`] if the
/// optimizer state does not fit `optimizer` or `model`.
pub fn load_checkpoint<F: Float, P: Params<F>, R: UpdateRule<F> + Clone>(
    path: impl AsRef<Path>,
    model: &mut P,
    optimizer: &mut Optimizer<F, R>,
) -> Result<u64> {
    load_checkpoint_with(path, model, optimizer).map(|(step, _)| step)
}

/// Like [`load_checkpoint`], also returning the [`UserState`] saved by
/// [`save_checkpoint_with`] (empty for a checkpoint without one).
///
/// # Errors
///
/// As [`load_checkpoint`].
pub fn load_checkpoint_with<F: Float, P: Params<F>, R: UpdateRule<F> + Clone>(
    path: impl AsRef<Path>,
    model: &mut P,
    optimizer: &mut Optimizer<F, R>,
) -> Result<(u64, UserState<F>)> {
    let path = path.as_ref();
    let file = io::read::<F>(path)?;
    let not_ckpt = |what: &str| {
        Error::weight_file(
            path,
            None,
            WeightFileProblem::NotCheckpoint {
                reason: what.to_string(),
            },
        )
    };
    if file.metadata.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(not_ckpt("no `format` = recurrent-checkpoint-1 metadata"));
    }
    let step: u64 = file
        .metadata
        .get("step")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| not_ckpt("no valid `step` metadata"))?;

    // The model, strictly, into a copy first.
    let mut new_model = model.clone();
    io::fill_from(&file, "model.", &mut new_model, path)?;

    // The optimizer, into a copy.
    let arrays: Vec<(String, ArrayD<F>)> = file
        .tensors
        .iter()
        .filter_map(|(k, a)| k.strip_prefix("optim.").map(|n| (n.to_string(), a.clone())))
        .collect();
    let metadata: Vec<(String, String)> = file
        .metadata
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("optim.").map(|n| (n.to_string(), v.clone())))
        .collect();
    let state = OptimizerState::from_flat(arrays, metadata)?;
    let mut new_opt = optimizer.clone();
    new_opt.load_state(&new_model, &state)?;

    let user = UserState {
        arrays: file
            .tensors
            .iter()
            .filter_map(|(k, a)| k.strip_prefix("user.").map(|n| (n.to_string(), a.clone())))
            .collect(),
        metadata: file
            .metadata
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("user.").map(|n| (n.to_string(), v.clone())))
            .collect(),
    };
    *model = new_model;
    *optimizer = new_opt;
    Ok((step, user))
}
