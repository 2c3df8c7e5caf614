//! Weight files in the safetensors format, with PyTorch's `state_dict()` names, both ways.
//!
//! * [`RecurrentStack::load_safetensors`](crate::RecurrentStack::load_safetensors) builds an
//!   [`Rnn`](crate::Rnn), [`Lstm`](crate::Lstm) or [`Gru`](crate::Gru) from a file written by
//!   PyTorch (`safetensors.torch.save_file(model.state_dict(), path)`), inferring `input_size`,
//!   `hidden_size`, `num_layers`, `bidirectional` and `bias` from the keys and shapes.
//! * [`Linear::load_safetensors`](crate::Linear::load_safetensors) does the same for `nn.Linear`.
//! * [`save`] writes any [`Params`] (a layer, a tuple of layers, your own model) under its names,
//!   which for the crate's layers are exactly the keys PyTorch's `load_state_dict(strict=True)`
//!   expects; [`load`] fills any [`Params`] from a file, strictly.
//!
//! An optional key prefix (`"encoder.rnn."`) picks one module out of a whole model's file, as
//! PyTorch's `state_dict` nests names. Stored `f16`, `bf16`, `f32` and `f64` tensors load into
//! either float type. Saving writes a temporary file beside the target and renames it, so a crash
//! never leaves a half-written file.
//!
//! A file that cannot be used gives an [`Error::WeightFile`] whose `key` names the tensor and whose
//! [`WeightFileProblem`] says what was wrong (missing, unexpected, misshaped, corrupt, …); a file
//! that cannot be read or written gives an [`Error::Io`] keeping the operating system's error.
//! No file, however crafted, makes a loader panic, abort or hang: every size in it is checked
//! against the bytes it holds before anything is allocated, and only regular files are opened
//! (this is fuzzed; see `docs/RELIABILITY.md` in the repository).
//!
//! Values are loaded as stored: a file holding NaN or ±∞ weights loads, as PyTorch's
//! `load_state_dict` does, and the model then computes NaN. Check a model you did not make with
//! [`Params::global_norm`] (not finite if any weight is not).
//!
//! # Examples
//!
//! ```
//! use rand::SeedableRng;
//! use recurrent::{io, Lstm, Params, StackConfig};
//!
//! let dir = std::env::temp_dir().join(format!("recurrent-io-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("lstm.safetensors");
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let config = StackConfig::new(8, 16).with_num_layers(2).with_bidirectional(true);
//! let lstm = Lstm::<f32>::new(config, &mut rng)?;
//! lstm.save_safetensors(&path, "rnn.")?; // keys "rnn.weight_ih_l0", …
//!
//! let back = Lstm::<f64>::load_safetensors(&path, "rnn.")?; // sizes inferred from the file
//! assert_eq!(back.config().num_layers, 2);
//! assert!(back.config().bidirectional);
//! assert_eq!(back.names(), lstm.names());
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), recurrent::Error>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result, WeightFileProblem as Problem};
use crate::float::Float;
use crate::params::Params;

mod keys;
pub(crate) mod pytorch;

pub use crate::error::WeightFileProblem;
pub(crate) use keys::{param_key, parse_param_key};

/// The tensors of a safetensors file, converted to `F`, by name.
#[derive(Debug, Clone)]
pub struct TensorFile<F> {
    /// Every tensor of a float type, by key.
    pub tensors: BTreeMap<String, ArrayD<F>>,
    /// Keys of tensors of other (integer, boolean) types, which were not converted.
    pub skipped: Vec<String>,
    /// The file's string metadata.
    pub metadata: HashMap<String, String>,
}

/// An IEEE half-precision value (little-endian bytes) as `f64`, exactly (through `half`).
fn f16_value(bytes: [u8; 2]) -> f64 {
    half::f16::from_le_bytes(bytes).to_f64()
}

/// A bfloat16 value (little-endian bytes) as `f64`, exactly (through `half`).
fn bf16_value(bytes: [u8; 2]) -> f64 {
    half::bf16::from_le_bytes(bytes).to_f64()
}

/// Reads every float tensor of a safetensors file, converting `f16`, `bf16`, `f32` and `f64` to `F`.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be read or is not a regular file (a directory, a FIFO or a
/// device: refused before opening, so a FIFO cannot block the caller); [`Error::WeightFile`] if
/// it is truncated or corrupt.
pub fn read<F: Float>(path: impl AsRef<Path>) -> Result<TensorFile<F>> {
    let path = path.as_ref();
    let bytes = read_regular(path)?;
    let corrupt = |e: safetensors::SafeTensorError| {
        Error::weight_file(
            path,
            None,
            Problem::Corrupt {
                reason: e.to_string(),
            },
        )
    };
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(corrupt)?;
    let st = SafeTensors::deserialize(&bytes).map_err(corrupt)?;
    let mut tensors = BTreeMap::new();
    let mut skipped = Vec::new();
    for (key, view) in st.tensors() {
        let data = view.data();
        let values: Vec<F> = match view.dtype() {
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|c| F::from_f64(f64::from_le_bytes(c.try_into().expect("8 bytes"))))
                .collect(),
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|c| {
                    F::from_f64(f64::from(f32::from_le_bytes(
                        c.try_into().expect("4 bytes"),
                    )))
                })
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|c| F::from_f64(f16_value([c[0], c[1]])))
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|c| F::from_f64(bf16_value([c[0], c[1]])))
                .collect(),
            _ => {
                skipped.push(key);
                continue;
            }
        };
        let array = ArrayD::from_shape_vec(IxDyn(view.shape()), values).map_err(|e| {
            Error::weight_file(
                path,
                Some(&key),
                Problem::Corrupt {
                    reason: e.to_string(),
                },
            )
        })?;
        tensors.insert(key, array);
    }
    Ok(TensorFile {
        tensors,
        skipped,
        metadata: meta.metadata().clone().unwrap_or_default(),
    })
}

/// Writes named arrays to a safetensors file atomically (temporary file, then rename), in `F`'s own
/// dtype (`F32` or `F64`).
///
/// The file at `path` is either the old one or the new one, never a part: the bytes go to a
/// temporary file `.{name}.tmp-{pid}-{n}` beside it, which is synced and renamed over `path`.
/// A symlink is written through (its target is replaced, the link stays); a directory or device
/// at `path` is refused. If the process is killed between writing and renaming, the temporary
/// file stays; the next save to `path` deletes it, whatever its age, once its process has exited
/// (on Linux; a writer holds its temporary locked, and a locked one is never deleted). Every
/// save of the crate (layers, [`save`], checkpoints) goes through here.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be written; [`Error::WeightFile`] if two arrays share a name.
pub fn write<F: Float>(
    path: impl AsRef<Path>,
    arrays: &[(String, ArrayD<F>)],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let path = path.as_ref();
    let dtype = if std::mem::size_of::<F>() == 4 {
        Dtype::F32
    } else {
        Dtype::F64
    };
    let mut buffers: BTreeMap<&str, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (name, a) in arrays {
        let mut bytes = Vec::with_capacity(a.len() * std::mem::size_of::<F>());
        for &v in a.iter() {
            if dtype == Dtype::F32 {
                bytes.extend_from_slice(&(v.as_f64() as f32).to_le_bytes());
            } else {
                bytes.extend_from_slice(&v.as_f64().to_le_bytes());
            }
        }
        if buffers.insert(name, (a.shape().to_vec(), bytes)).is_some() {
            return Err(Error::weight_file(path, Some(name), Problem::DuplicateName));
        }
    }
    let mut views = Vec::with_capacity(buffers.len());
    for (name, (shape, bytes)) in &buffers {
        let view =
            safetensors::tensor::TensorView::new(dtype, shape.clone(), bytes).map_err(|e| {
                Error::weight_file(
                    path,
                    Some(name),
                    Problem::Serialize {
                        reason: e.to_string(),
                    },
                )
            })?;
        views.push((*name, view));
    }
    let bytes = safetensors::serialize(views, metadata).map_err(|e| {
        Error::weight_file(
            path,
            None,
            Problem::Serialize {
                reason: e.to_string(),
            },
        )
    })?;
    write_atomically(path, &bytes)
}

/// The error for a path that names no regular file.
fn not_regular(path: &Path, what: &str) -> Error {
    Error::io(
        path,
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("not a regular file ({what}): weight files and checkpoints are regular files"),
        ),
    )
}

fn kind_of(meta: &fs::Metadata) -> &'static str {
    if meta.is_dir() {
        "a directory"
    } else {
        "a FIFO, socket or device"
    }
}

/// The bytes of the regular file at `path` (following symlinks); anything else is refused before
/// it is opened.
pub(crate) fn read_regular(path: &Path) -> Result<Vec<u8>> {
    let meta = fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(not_regular(path, kind_of(&meta)));
    }
    let mut f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // Checked again on the open handle, in case the path was swapped in between.
    let meta = f.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(not_regular(path, kind_of(&meta)));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut bytes).map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames it over `path`.
///
/// The temporary name is unique per write (`.{name}.tmp-{pid}-{n}`), so threads and processes
/// saving to the same path do not disturb each other (the last rename wins). A symlink is written
/// through: its target is replaced and the link stays. A path that exists and is not a regular
/// file (a directory, a device) is refused. A crash between writing and renaming can leave a
/// `.{name}.tmp-…` file beside `path`; it is never read, and the next save to `path` deletes it
/// (see [`remove_stale_temporaries`]).
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    // A symlink (possibly dangling) is followed to the file it names.
    let resolved;
    let path = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            resolved = match fs::canonicalize(path) {
                Ok(target) => target,
                // Dangling: the file the link names, made by the rename.
                Err(_) => {
                    let target = fs::read_link(path).map_err(|e| Error::io(path, e))?;
                    match path.parent() {
                        Some(dir) if target.is_relative() => dir.join(target),
                        _ => target,
                    }
                }
            };
            resolved.as_path()
        }
        _ => path,
    };
    if let Ok(meta) = fs::metadata(path) {
        if !meta.is_file() {
            return Err(not_regular(path, kind_of(&meta)));
        }
    }
    let file_name = path
        .file_name()
        .ok_or_else(|| {
            Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
            )
        })?
        .to_string_lossy();
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}-{n}", std::process::id()));
    // Before writing, so that a crash loop (no save ever finishing) frees the space too.
    remove_stale_temporaries(path, &file_name);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        // Held until the file is closed (or the process dies): tells other savers that this
        // temporary is being written, even from another PID namespace. Best effort: where the
        // file system has no locks, the cleaner cannot lock it either and leaves it alone.
        let _ = f.lock();
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Deletes the temporary files that earlier saves to `path` left when their process was killed
/// between writing and renaming (`.{name}.tmp-{pid}-{n}`), whatever their age: every one whose
/// process no longer exists (Linux: no `/proc/{pid}`) and which no process holds locked (a
/// writer locks its temporary until it is renamed, so a save in progress is never touched, even
/// one from another PID namespace). Run by every save before it writes, so however saves
/// crash, at most the temporaries of the saves running at that moment remain. Elsewhere than
/// Linux, or on any error, nothing is deleted.
fn remove_stale_temporaries(path: &Path, file_name: &str) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Some(dir) = path.parent() else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{file_name}.tmp-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, n)| n.parse::<u64>().ok().and(pid.parse::<u32>().ok()))
        else {
            continue;
        };
        if pid == std::process::id() || proc.join(pid.to_string()).exists() {
            continue;
        }
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        // Opened for reading only (never created, never truncated); locked by nobody.
        let unlocked = is_file && fs::File::open(entry.path()).is_ok_and(|f| f.try_lock().is_ok());
        if unlocked {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Saves every array of `params` under `prefix + name` (PyTorch's `state_dict` keys for the
/// crate's layers), atomically.
///
/// # Errors
///
/// As [`write()`].
pub fn save<F: Float, P: Params<F>>(
    params: &P,
    path: impl AsRef<Path>,
    prefix: &str,
) -> Result<()> {
    let arrays = prefixed(params, prefix);
    let mut metadata = HashMap::new();
    metadata.insert("format".to_string(), "pt".to_string());
    metadata.insert(
        "written_by".to_string(),
        format!("recurrent {}", env!("CARGO_PKG_VERSION")),
    );
    write(path, &arrays, Some(metadata))
}

/// Every array of `params`, copied, under `prefix + name`: to combine several modules in one file
/// with [`write()`].
///
/// # Examples
///
/// ```
/// use rand::SeedableRng;
/// use recurrent::{io, Linear, Lstm, StackConfig};
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let rnn = Lstm::<f32>::new(StackConfig::new(3, 8), &mut rng)?;
/// let head = Linear::<f32>::new(8, 1, &mut rng)?;
/// let mut arrays = io::prefixed(&rnn, "rnn.");
/// arrays.extend(io::prefixed(&head, "head."));
/// assert_eq!(arrays[0].0, "rnn.weight_ih_l0");
/// assert_eq!(arrays.last().unwrap().0, "head.bias");
/// # Ok::<(), recurrent::Error>(())
/// ```
pub fn prefixed<F: Float, P: Params<F>>(params: &P, prefix: &str) -> Vec<(String, ArrayD<F>)> {
    params
        .named_arrays()
        .into_iter()
        .map(|(n, a)| (format!("{prefix}{n}"), a.to_owned()))
        .collect()
}

/// Fills every array of `params` from the tensor `prefix + name` of a file, strictly, like PyTorch's
/// `load_state_dict(strict=True)`: every name must be present with the array's shape, and the file
/// must hold no other float tensor under `prefix`. Nothing is changed unless everything fits.
///
/// Only arrays are read: settings that PyTorch keeps outside the `state_dict` (an
/// [`Embedding`](crate::Embedding)'s `padding_idx`, dropout, `batch_first`) stay as the model was
/// built, so build it with PyTorch's settings. To read a file that also holds other tensors (say
/// reference outputs), give the model's `prefix`, or use [`read`] and pick the tensors.
///
/// # Errors
///
/// [`Error::Io`] / [`Error::WeightFile`] as [`read`]; [`Error::WeightFile`] naming the first
/// missing, misshaped or unexpected tensor.
pub fn load<F: Float, P: Params<F>>(
    params: &mut P,
    path: impl AsRef<Path>,
    prefix: &str,
) -> Result<()> {
    let path = path.as_ref();
    let file = read::<F>(path)?;
    fill_from(&file, prefix, params, path)
}

/// Fills every array of `model` from the tensor `prefix + name` of `file` (read from `path`, which
/// errors name), strictly: every name must be present with the array's shape, and `file` must hold
/// no other float tensor under `prefix`. Everything is checked before anything is written, so
/// `model` is unchanged on error. [`load`] and checkpoints both load models through this.
pub(crate) fn fill_from<F: Float, P: Params<F>>(
    file: &TensorFile<F>,
    prefix: &str,
    model: &mut P,
    path: &Path,
) -> Result<()> {
    // A set, so that checking the file's other tensors is linear in their number.
    let mut wanted_keys = std::collections::HashSet::new();
    for name in model.names() {
        let key = format!("{prefix}{name}");
        if wanted_keys.contains(&key) {
            // Saving refuses such a model; loading would fill both arrays from one tensor.
            return Err(Error::weight_file(path, Some(&key), Problem::DuplicateName));
        }
        wanted_keys.insert(key);
    }
    crate::params::check_order(model)?;
    let mut wanted = Vec::new();
    for (name, a) in model.named_arrays() {
        let key = format!("{prefix}{name}");
        let t = file
            .tensors
            .get(&key)
            .ok_or_else(|| missing(file, &key, path))?;
        if t.shape() != a.shape() {
            return Err(Error::weight_file(
                path,
                Some(&key),
                Problem::Shape {
                    expected: a.shape().to_vec(),
                    got: t.shape().to_vec(),
                },
            ));
        }
        wanted.push(key);
    }
    if let Some(extra) = file
        .tensors
        .keys()
        .find(|k| k.starts_with(prefix) && !wanted_keys.contains(*k))
    {
        return Err(Error::weight_file(
            path,
            Some(extra),
            Problem::Unexpected { inferred: None },
        ));
    }
    for (mut a, key) in model.arrays_mut().into_iter().zip(&wanted) {
        a.assign(&file.tensors[key]);
    }
    Ok(())
}

/// A [`Problem::Invalid`]: the weights of `layer` (or of the whole network) do not fit together.
pub(crate) fn invalid(path: &Path, layer: Option<String>, error: Error) -> Error {
    Error::weight_file(
        path,
        None,
        Problem::Invalid {
            layer,
            error: Box::new(error),
        },
    )
}

/// Removes the tensor `prefix + name` from `file`, or names it as missing.
pub(crate) fn take<F>(file: &mut TensorFile<F>, key: &str, path: &Path) -> Result<ArrayD<F>> {
    match file.tensors.remove(key) {
        Some(t) => Ok(t),
        None => Err(missing(file, key, path)),
    }
}

/// The error for a tensor `key` that `file` does not hold as floats: [`Problem::NotFloat`] if it
/// holds it with another type, else [`Problem::Missing`].
pub(crate) fn missing<F>(file: &TensorFile<F>, key: &str, path: &Path) -> Error {
    let problem = if file.skipped.iter().any(|k| k == key) {
        Problem::NotFloat
    } else {
        Problem::Missing
    };
    Error::weight_file(path, Some(key), problem)
}

/// Converts to the dimensionality `D` or names the tensor whose rank is wrong.
pub(crate) fn rank<F, D: ndarray::Dimension>(
    a: ArrayD<F>,
    key: &str,
    path: &Path,
) -> Result<ndarray::Array<F, D>> {
    let got = a.shape().to_vec();
    a.into_dimensionality::<D>().map_err(|_| {
        Error::weight_file(
            path,
            Some(key),
            Problem::Rank {
                expected: D::NDIM.unwrap_or(0),
                got,
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::{bf16_value, f16_value};

    #[test]
    fn key_scheme_is_reachable_as_crate_io() {
        assert_eq!(crate::io::param_key("bias_ih", 1, false), "bias_ih_l1");
        assert_eq!(
            crate::io::parse_param_key("weight_hh_l0_reverse"),
            Some(("weight_hh", 0, true))
        );
    }

    #[test]
    fn half_precision_conversion() {
        let f16 = |bits: u16| f16_value(bits.to_le_bytes());
        assert_eq!(f16(0x3c00), 1.0);
        assert_eq!(f16(0xc000), -2.0);
        assert_eq!(f16(0x3555), 0.333_251_953_125);
        assert_eq!(f16(0x0001), 2f64.powi(-24)); // smallest subnormal
        assert_eq!(f16(0x03ff), 1023.0 * 2f64.powi(-24)); // largest subnormal
        assert_eq!(f16(0x7bff), 65504.0);
        assert!(f16(0x7c00).is_infinite());
        assert!(f16(0x7e00).is_nan());
        assert_eq!(f16(0x8000).to_bits(), (-0.0f64).to_bits());
        let bf16 = |bits: u16| bf16_value(bits.to_le_bytes());
        assert_eq!(bf16(0x3f80), 1.0);
        assert_eq!(bf16(0xc0a0), -5.0);
        assert_eq!(bf16(0x0001), 2f64.powi(-133)); // smallest subnormal
        assert!(bf16(0x7f80).is_infinite());
        assert!(bf16(0x7fc0).is_nan());
    }
}
