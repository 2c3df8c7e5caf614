//! Recurrent layers built from cells: [`Recurrent`] (one direction), [`Bidirectional`] (two,
//! merged by a [`MergeMode`]) and [`RecurrentStack`] ([`Rnn`], [`Lstm`], [`Gru`]: layers of one
//! or two directions, as `torch.nn.RNN`/`LSTM`/`GRU`).
//!
//! All three are built from one private layer unit, which runs a layer's directions (on two
//! threads when that pays), merges their outputs and sends the gradient back; what their forward
//! passes save for backward is a [`LayerTape`] (one layer) or a [`StackTape`] (a stack).

mod bidirectional;
mod recurrent;
mod stack;
mod tape;
mod unit;

pub use bidirectional::{BiForward, Bidirectional};
pub use recurrent::{Forward, Recurrent};
pub use stack::{Gru, Lstm, RecurrentStack, Rnn, StackForward};
pub use tape::{LayerTape, StackTape};
pub use unit::MergeMode;
