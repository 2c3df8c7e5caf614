//! Recurrent layers built from cells: [`Recurrent`] (one direction), [`Bidirectional`] (two,
//! merged by a [`MergeMode`]) and [`RecurrentStack`] ([`Rnn`], [`Lstm`], [`Gru`]: layers of one
//! or two directions, as `torch.nn.RNN`/`LSTM`/`GRU`).
//!
//! All three are built from one private layer unit, which runs a layer's directions (on two
//! threads when that pays), merges their outputs and sends the gradient back; what their forward
//! passes save for backward is a [`LayerTape`] (one layer) or a [`StackTape`] (a stack).
//! [`Linear`] is the dense output head.
//!
//! One convention for all three (PyTorch's argument order):
//!
//! | method | arguments | returns |
//! |---|---|---|
//! | `forward` | `x`, `init` (`None` = zeros), `lengths` (`None` = all full) | `(output, final state, tape)` ([`RecurrentForward`], [`BidirectionalForward`], [`StackForward`]) |
//! | `infer` | as `forward` | `(output, final state)`, no tape |
//! | `backward` | tape, `d_output`, `d_final` (`None` = zeros), `grads` | `(dx, d_init)`; parameter gradients added into `grads` |
//! | `backward_params` | as `backward` | `d_init` only (the input needs no gradient) |
//!
//! States are a cell's own [`State`](crate::State) `(B, H)` for [`Recurrent`], and stacked
//! `(L·D, B, H)` ([`Stacked`](crate::cell::Stacked)) for [`Bidirectional`] (`L = 1, D = 2`) and
//! [`RecurrentStack`], as PyTorch returns them.

mod bidirectional;
mod recurrent;
mod stack;
mod stack_io;
mod stack_new;
mod stream;
mod tape;
mod unit;

pub use bidirectional::{Bidirectional, BidirectionalForward};
pub use recurrent::{Recurrent, RecurrentForward};
pub use stack::{Gru, LayerNormLstm, Lstm, RecurrentStack, Rnn, StackForward};
pub use stream::Stream;
pub use tape::{LayerTape, StackTape};
pub use unit::MergeMode;

pub use crate::linear::{Linear, LinearTape};
