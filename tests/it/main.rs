//! The integration tests, one module per topic, in one test binary: the crate and its
//! dependencies are linked once instead of once per file (`cargo test --test it`; a module alone:
//! `cargo test --test it stream::`). The allocation tests, which replace the global allocator,
//! are the other binary (`tests/alloc/`).
//!
//! Tests here run side by side on libtest's threads, so none of them changes process-wide
//! settings: a test that needs a thread count runs under `runtime::with_num_threads`, which is
//! scoped to its own thread.

mod common;

mod derive;
mod embedding;
mod errors;
mod gradcheck;
mod hostile;
mod init;
mod io;
mod layernorm;
mod layouts;
mod loss;
mod mutation;
mod ops;
mod optim;
mod panics;
mod proj;
mod pytorch_parity;
mod sequence;
mod shared;
mod stack;
mod stream;
mod threads;
mod training;
mod user_cell;
