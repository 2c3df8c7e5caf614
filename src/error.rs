//! The crate's error type.

use std::fmt;

/// Everything that can go wrong when a user hands data, weights or settings to the crate.
///
/// Every message says what was expected and what came, e.g.
/// `input has 17 features, the layer expects 16`.
#[derive(Debug, Clone, PartialEq)]
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
    /// Reading or writing a file failed.
    Io {
        /// The file.
        path: String,
        /// What the operating system said.
        message: String,
    },
    /// A weight file is corrupt, truncated, or does not hold the tensors the model needs; the
    /// message names the tensor and the problem.
    WeightFile(String),
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
            Error::Io { path, message } => write!(f, "{path}: {message}"),
            Error::WeightFile(msg) => write!(f, "weight file: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

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
