//! Checkpoints: a model, its optimizer's state and the step count in one safetensors file,
//! written atomically, so training resumes exactly where it stopped.
//!
//! Layout: the model's arrays under `model.{name}` (PyTorch's keys after the prefix), the
//! optimizer's arrays under `optim.{param}.{entry}`, and string metadata (`format`, `step`,
//! `optim.*`). Scalars are written so they parse back to the same bits: resuming from a checkpoint
//! continues on exactly the trajectory an uninterrupted run takes.
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

use std::collections::HashMap;
use std::path::Path;

use ndarray::ArrayD;

use crate::error::{Error, Result, WeightFileProblem};
use crate::float::Float;
use crate::io;
use crate::optim::{Optimizer, OptimizerState, UpdateRule};
use crate::params::Params;

const FORMAT: &str = "recurrent-checkpoint-1";

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
    let mut arrays = io::prefixed(model, "model.");
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

    *model = new_model;
    *optimizer = new_opt;
    Ok(step)
}
