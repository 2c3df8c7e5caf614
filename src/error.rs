//! The crate's error type.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// Everything that can go wrong when a user hands data, weights or settings to the crate.
///
/// Every message says what was expected and what came, e.g.
/// `input has 17 features, the layer expects 16`. File errors carry structure a caller can act
/// on: [`Error::Io`] keeps the operating system's [`std::io::Error`] as its
/// [`source()`](std::error::Error::source) (see [`Error::io_kind`]), and [`Error::WeightFile`]
/// names the tensor and says what was wrong with it in a [`WeightFileProblem`].
///
/// # Examples
///
/// ```
/// use recurrent::io::WeightFileProblem;
/// use recurrent::{Error, Lstm};
///
/// let dir = std::env::temp_dir().join(format!("recurrent-error-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// match Lstm::<f32>::load_safetensors(dir.join("absent.safetensors"), "") {
///     Err(e @ Error::Io { .. }) => {
///         assert_eq!(e.io_kind(), Some(std::io::ErrorKind::NotFound));
///         assert!(std::error::Error::source(&e).is_some());
///     }
///     other => panic!("{other:?}"),
/// }
/// // A file holding only a GRU's `weight_hh_l0`, read as an LSTM.
/// let path = dir.join("gru.safetensors");
/// let weight = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[6, 2]));
/// recurrent::io::write(&path, &[("weight_hh_l0".to_string(), weight)], None)?;
/// match Lstm::<f32>::load_safetensors(&path, "") {
///     Err(Error::WeightFile {
///         key: Some(key),
///         problem: WeightFileProblem::CellKind { gates, got, .. },
///         ..
///     }) => {
///         assert_eq!(key, "weight_hh_l0");
///         assert_eq!((gates, got), (4, vec![6, 2]));
///     }
///     other => panic!("{other:?}"),
/// }
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// An array does not have the shape the operation needs.
    Shape {
        /// What the array is (`"input"`, `"h0"`, `"weight_ih"`, ...).
        what: String,
        /// The shape that was expected, e.g. `"(T, 3, 16)"`.
        expected: String,
        /// The shape that came.
        got: Vec<usize>,
    },
    /// A hyper-parameter or size is out of its valid range.
    InvalidConfig(String),
    /// Two parameter sets that must line up (parameters and gradients, a model and an optimizer's
    /// state) do not.
    Mismatch(String),
    /// A gradient or loss is NaN or infinite where a finite value is required.
    NonFinite(String),
    /// A buffer whose size comes from a configuration or a file cannot be allocated: its size
    /// exceeds the address space, or the system refused the memory. Returned instead of aborting
    /// the process, as Rust's collections would.
    OutOfMemory {
        /// What was to be allocated (`"weight_ih_l3"`, `"layers"`, `"Lstm parameters"`, ...).
        what: String,
        /// The bytes asked for (saturating at `u128::MAX` when even that overflows).
        bytes: u128,
    },
    /// Reading or writing a file failed. The operating system's error is the
    /// [`source()`](std::error::Error::source); [`Error::io_kind`] gives its kind.
    Io {
        /// The file.
        path: String,
        /// What the operating system said (shared, so that `Error` stays `Clone`).
        source: Arc<std::io::Error>,
    },
    /// A weight file is corrupt, truncated, or does not hold the tensors the model needs.
    WeightFile {
        /// The file.
        path: String,
        /// The tensor the problem is about, with its prefix (`"encoder.weight_ih_l1"`), or `None`
        /// for a problem of the whole file.
        key: Option<String>,
        /// What was wrong.
        problem: WeightFileProblem,
    },
}

/// What is wrong in a weight file: the `problem` of an [`Error::WeightFile`], whose `key` names
/// the tensor.
///
/// # Examples
///
/// ```
/// use recurrent::io::WeightFileProblem;
/// use recurrent::Error;
///
/// fn explain(e: &Error) -> String {
///     match e {
///         Error::WeightFile { key: Some(key), problem: WeightFileProblem::Missing, .. } => {
///             format!("the file lacks {key}")
///         }
///         Error::WeightFile { key: Some(key), problem: WeightFileProblem::Shape { expected, got }, .. } => {
///             format!("{key} is {got:?}, not {expected:?}")
///         }
///         other => other.to_string(),
///     }
/// }
/// # let _ = explain;
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WeightFileProblem {
    /// The file is not valid safetensors (truncated, corrupt): `reason` is the parser's message.
    /// With a `key`, only that tensor's data is unusable.
    Corrupt {
        /// The parser's message.
        reason: String,
    },
    /// The tensor `key` that the model needs is not in the file.
    Missing,
    /// The tensor `key` is in the file but stored as another type than `F16`, `BF16`, `F32` or
    /// `F64`: integers, booleans, 8-bit floats.
    NotFloat,
    /// The file holds the tensor `key`, under the prefix, for which the model has no parameter.
    Unexpected {
        /// When loading a network whose shape is inferred from the file: the settings the other
        /// tensors describe (`"num_layers = 2, bidirectional = true, bias = false"`). `None` when
        /// loading into a given model.
        inferred: Option<String>,
    },
    /// The tensor `key` has another shape than the model's array.
    Shape {
        /// The model's shape.
        expected: Vec<usize>,
        /// The tensor's shape.
        got: Vec<usize>,
    },
    /// The tensor `key` has the wrong number of dimensions.
    Rank {
        /// The number of dimensions expected.
        expected: usize,
        /// The tensor's shape.
        got: Vec<usize>,
    },
    /// The tensor `key` (a `weight_hh`) does not have the `(gates·H, H)` shape of the kind of
    /// cell being loaded: the file holds another kind of network (a GRU read as an LSTM).
    CellKind {
        /// The kind being loaded (`"RNN"`, `"LSTM"`, `"GRU"`).
        kind: String,
        /// Its number of gates.
        gates: usize,
        /// The tensor's shape.
        got: Vec<usize>,
    },
    /// No recurrent parameter under the prefix; `key` is the first one looked for
    /// (`"{prefix}weight_ih_l0"`).
    NoParameters,
    /// The tensors are there with the right ranks but do not make a valid layer (their sizes do
    /// not fit together); `error` says why and is the [`source()`](std::error::Error::source).
    Invalid {
        /// Which layer (`"layer `encoder.…_l1`"`), if the problem is one layer's.
        layer: Option<String>,
        /// The layer constructor's error.
        error: Box<Error>,
    },
    /// The file is a weight file but not a checkpoint: `reason` says what is missing.
    NotCheckpoint {
        /// What is missing.
        reason: String,
    },
    /// Two arrays to be written share the name `key`.
    DuplicateName,
    /// The arrays could not be serialised: `reason` is the serialiser's message.
    Serialize {
        /// The serialiser's message.
        reason: String,
    },
}

impl Error {
    /// An [`Error::Io`] for `path`, keeping `source`.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = recurrent::Error::io("out/", std::io::Error::from(std::io::ErrorKind::PermissionDenied));
    /// assert_eq!(e.io_kind(), Some(std::io::ErrorKind::PermissionDenied));
    /// assert!(e.to_string().starts_with("out/: "));
    /// ```
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source: Arc::new(source),
        }
    }

    /// The kind of the operating system's error, for an [`Error::Io`]; `None` otherwise.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            Error::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }

    /// An [`Error::WeightFile`] about the tensor `key` of the file at `path`.
    pub(crate) fn weight_file(path: &Path, key: Option<&str>, problem: WeightFileProblem) -> Error {
        Error::WeightFile {
            path: path.display().to_string(),
            key: key.map(str::to_string),
            problem,
        }
    }
}

/// Field by field; two [`Error::Io`]s are equal when their paths, the operating system's error
/// kinds and its messages are.
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        use Error as E;
        match (self, other) {
            (
                E::Shape {
                    what,
                    expected,
                    got,
                },
                E::Shape {
                    what: w,
                    expected: e,
                    got: g,
                },
            ) => what == w && expected == e && got == g,
            (E::InvalidConfig(a), E::InvalidConfig(b))
            | (E::Mismatch(a), E::Mismatch(b))
            | (E::NonFinite(a), E::NonFinite(b)) => a == b,
            (E::OutOfMemory { what, bytes }, E::OutOfMemory { what: w, bytes: b }) => {
                what == w && bytes == b
            }
            (E::Io { path, source }, E::Io { path: p, source: s }) => {
                path == p && source.kind() == s.kind() && source.to_string() == s.to_string()
            }
            (
                E::WeightFile { path, key, problem },
                E::WeightFile {
                    path: p,
                    key: k,
                    problem: q,
                },
            ) => path == p && key == k && problem == q,
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape {
                what,
                expected,
                got,
            } => write!(f, "{what} has shape {got:?}, expected {expected}"),
            Error::InvalidConfig(msg) => write!(f, "invalid configuration: {msg}"),
            Error::Mismatch(msg) => write!(f, "mismatch: {msg}"),
            Error::NonFinite(msg) => write!(f, "non-finite value: {msg}"),
            Error::OutOfMemory { what, bytes } => {
                write!(f, "cannot allocate {what}: ")?;
                if *bytes == u128::MAX {
                    f.write_str("its size in bytes overflows")
                } else {
                    write!(
                        f,
                        "{bytes} bytes ({:.3} GiB) were asked for and could not be had",
                        *bytes as f64 / (1u64 << 30) as f64
                    )
                }
            }
            Error::Io { path, source } => write!(f, "{path}: {}", **source),
            Error::WeightFile { path, key, problem } => {
                f.write_str("weight file: ")?;
                weight_file_message(f, path, key.as_deref(), problem)
            }
        }
    }
}

/// The message of an [`Error::WeightFile`], after `weight file: `.
fn weight_file_message(
    f: &mut fmt::Formatter<'_>,
    path: &str,
    key: Option<&str>,
    problem: &WeightFileProblem,
) -> fmt::Result {
    use WeightFileProblem as P;
    let k = key.unwrap_or("?");
    match problem {
        P::Corrupt { reason } => match key {
            Some(k) => write!(f, "tensor `{k}` in {path}: {reason}"),
            None => write!(f, "{path} is not a valid safetensors file: {reason}"),
        },
        P::Missing => write!(f, "missing tensor `{k}` in {path}"),
        P::NotFloat => write!(
            f,
            "tensor `{k}` in {path} is not stored as F16, BF16, F32 or F64 (integer, boolean and \
             8-bit float tensors are not read as weights)"
        ),
        P::Unexpected { inferred: None } => write!(
            f,
            "unexpected tensor `{k}` in {path}: the model has no such parameter"
        ),
        P::Unexpected {
            inferred: Some(settings),
        } => write!(
            f,
            "unexpected tensor `{k}`: the other parameters describe a network with {settings}"
        ),
        P::Shape { expected, got } => write!(
            f,
            "tensor `{k}` has shape {got:?}, the model expects {expected:?}"
        ),
        P::Rank { expected, got } => write!(
            f,
            "tensor `{k}` has shape {got:?}, expected {expected} dimensions"
        ),
        P::CellKind { kind, gates, got } if got.len() == 2 => write!(
            f,
            "tensor `{k}` has shape {got:?}: an {kind} has {gates}·H rows (is this another kind of \
             network?)"
        ),
        P::CellKind { gates, got, .. } => {
            write!(f, "tensor `{k}` has shape {got:?}, expected ({gates}·H, H)")
        }
        P::NoParameters => write!(f, "no recurrent parameters (`{k}`, …) in {path}"),
        P::Invalid {
            layer: Some(layer),
            error,
        } => write!(f, "{layer}: {error}"),
        P::Invalid { layer: None, error } => write!(f, "{error}"),
        P::NotCheckpoint { reason } => {
            write!(f, "{path} is not a recurrent checkpoint: {reason}")
        }
        P::DuplicateName => write!(f, "two arrays are named `{k}`"),
        P::Serialize { reason } => match key {
            Some(k) => write!(f, "tensor `{k}`: {reason}"),
            None => write!(f, "serialising {path}: {reason}"),
        },
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(&**source),
            Error::WeightFile {
                problem: WeightFileProblem::Invalid { error, .. },
                ..
            } => Some(&**error),
            _ => None,
        }
    }
}

/// `Result<T, recurrent::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

/// Builds an [`Error::Shape`].
pub(crate) fn shape_err(
    what: impl Into<String>,
    expected: impl Into<String>,
    got: &[usize],
) -> Error {
    Error::Shape {
        what: what.into(),
        expected: expected.into(),
        got: got.to_vec(),
    }
}
