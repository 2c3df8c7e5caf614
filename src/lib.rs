//! # recurrent
//!
//! Recurrent neural networks — Elman RNN, LSTM and GRU — in pure Rust on [`ndarray`], with
//! hand-written backpropagation through time (BPTT), optimizers, and weights laid out exactly as
//! PyTorch lays them out, so numbers and weights move both ways.
//!
//! ## Shapes
//!
//! Sequences are **time-major** `(T, B, F)`: `T` steps, `B` sequences in the batch, `F` features (as
//! PyTorch's default `batch_first=False`; [`StackConfig::batch_first`] switches to `(B, T, F)`).
//! A layer with `I` inputs and `H` hidden units maps `(T, B, I)` to outputs `(T, B, H)` (`2H` when
//! bidirectional); states are `(B, H)` per cell and `(num_layers · num_directions, B, H)` for a
//! network.
//!
//! ## Pieces
//!
//! * [`Rnn`], [`Lstm`], [`Gru`]: what `torch.nn.RNN`/`LSTM`/`GRU` compute — stacked layers,
//!   bidirectional, dropout, variable-length batches, LSTM `proj_size` ([`RecurrentStack`],
//!   [`StackConfig`]); [`Stream`]: the same networks one step at a time, for real-time use.
//! * [`Cell`]: one time step — [`RnnCell`] (tanh or ReLU), [`LstmCell`] (gate order i, f, g, o),
//!   [`GruCell`] (r, z, n).
//! * [`Recurrent`]: one cell run over a sequence; [`Bidirectional`]: two cells with a
//!   [`MergeMode`].
//! * [`Linear`]: the dense head; [`loss`]: MSE and cross-entropy, each returning `(loss, d_output)`.
//! * [`Embedding`]: token ids `(T, B)` to vectors `(T, B, E)`; [`ops`]: softmax, log-softmax,
//!   argmax and sampling with temperature and top-k over a model's logits.
//! * [`layer`]: the tapes ([`layer::LayerTape`], [`layer::StackTape`]) and the convention all
//!   layers share; [`cell`]: the [`Cell`] trait's helpers, [`cell::CellWeights`], [`cell::Stacked`].
//! * [`Params`]: every model lists its arrays with PyTorch's names; **the gradient of a model is a
//!   model of the same type** ([`Params::zeros_like`]), into which `backward` adds.
//! * [`optim`]: [`optim::Sgd`], [`optim::Adam`], [`optim::AdamW`], [`optim::RmsProp`],
//!   [`optim::Adagrad`], [`optim::clip_grad_norm`], learning-rate schedules chained with
//!   [`optim::SequentialLr`].
//! * [`io`]: safetensors weight files with PyTorch `state_dict` keys, both ways; [`checkpoint`]:
//!   model + optimizer + step (and the program's own state) in one file; [`init`]: initialisers;
//!   [`batch`]: padding helpers and shuffled minibatches of variable-length sequences.
//! * [`runtime`]: threads, cached memory, the raw matrix product.
//!
//! Nothing is stored inside a layer during `forward`: what backward needs is the tape that
//! forward returns, so backward without forward does not compile, and one layer can serve many
//! threads.
//!
//! ## A complete training loop
//!
//! Model, loss, gradient clipping, optimizer, learning-rate schedule and checkpoint:
//!
//! ```
//! # use ndarray::Array3;
//! # use rand::SeedableRng;
//! use recurrent::optim::{clip_grad_norm, AdamConfig, CosineAnnealingLr, LrSchedule};
//! use recurrent::{checkpoint, Linear, Lstm, Params, StackConfig, loss::mse_loss};
//! # let dir = std::env::temp_dir().join(format!("recurrent-loop-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let mut rng = rand::rngs::StdRng::seed_from_u64(42);
//! # let x = Array3::<f32>::from_shape_fn((20, 4, 1), |(t, b, _)| ((t + b) as f32 * 0.3).sin());
//! # let y = Array3::<f32>::from_shape_fn((20, 4, 1), |(t, b, _)| ((t + b + 1) as f32 * 0.3).sin());
//!
//! let config = StackConfig::new(1, 16).with_num_layers(2);
//! let mut model = (Lstm::<f32>::new(config, &mut rng)?, Linear::<f32>::new(16, 1, &mut rng)?);
//! let mut opt = AdamConfig::new(1e-2).build()?;
//! let mut schedule = CosineAnnealingLr::new(1e-2, 60, 1e-4)?;
//! let mut losses = Vec::new();
//! for step in 1..=60 {
//!     let (lstm, head) = &model;
//!     let (h, _, tape) = lstm.forward(x.view(), None, None)?; // x: (T, B, 1), h: (T, B, 16)
//!     let (pred, head_tape) = head.forward(h.view())?;
//!     let (loss, d_pred) = mse_loss(pred.view(), y.view())?;
//!     let mut grads = model.zeros_like();
//!     let dh = head.backward(&head_tape, d_pred.view(), &mut grads.1)?;
//!     lstm.backward_params(&tape, dh.view(), None, &mut grads.0)?; // x needs no gradient
//!     clip_grad_norm(&mut grads, 1.0)?;
//!     opt.apply_schedule(&schedule)?;
//!     opt.step(&mut model, &grads)?;
//!     schedule.step();
//!     if step % 20 == 0 {
//!         checkpoint::save_checkpoint(dir.join("run.ckpt.safetensors"), &model, &opt, step)?;
//!     }
//!     losses.push(loss);
//! }
//! assert!(losses[59] < losses[0] / 2.0);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), recurrent::Error>(())
//! ```
//!
//! ## Errors
//!
//! Everything handed to a layer, loss or optimizer is checked; bad input returns an [`Error`] whose
//! message says what was expected and what came. The low-level [`Cell`] methods assert instead
//! (documented under `# Panics`).
#![deny(
    missing_docs,
    unsafe_op_in_unsafe_fn,
    clippy::undocumented_unsafe_blocks
)]

mod alloc;
pub mod batch;
pub mod cell;
mod check;
pub mod checkpoint;
mod config;
mod embedding;
mod error;
mod float;
mod gemm;
pub mod init;
pub mod io;
mod isa;
pub mod layer;
mod linear;
pub mod loss;
pub mod ops;
pub mod optim;
mod params;
mod pool;
pub mod runtime;
mod threads;

pub use cell::{
    Cell, GruCell, LayerNormLstmCell, LstmCell, LstmState, Nonlinearity, RnnCell, State,
};
pub use config::StackConfig;
pub use embedding::Embedding;
pub use error::{Error, Result};
pub use float::Float;
pub use layer::{
    Bidirectional, Gru, LayerNormLstm, Linear, Lstm, MergeMode, Recurrent, RecurrentStack, Rnn,
    Stream,
};
pub use params::Params;
/// `#[derive(Params)]`: see [`Params`](trait@Params) (feature `derive`, on by default).
#[cfg(feature = "derive")]
pub use recurrent_derive::Params;

/// Paths the code of `#[derive(Params)]` names; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use ndarray::{ArrayViewD, ArrayViewMutD};

    #[cfg(debug_assertions)]
    pub use crate::monomorph::entry_points;
}
#[cfg(debug_assertions)]
mod monomorph;

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
