//! Runtime knobs: how many threads the crate uses, the memory it keeps cached, and the raw
//! matrix product it computes with.
//!
//! ## Threads
//!
//! The two directions of a bidirectional layer run on two threads when the machine has them and
//! the sequence is long enough to pay for it (forward and backward), and big matrix products (the
//! input projections of a whole sequence, the weight gradients) split their columns over two
//! threads. Set the number with [`set_num_threads`]; `1` keeps everything on the calling thread.
//! The per-step products of the time loop always run on the calling thread (too small to share).
//!
//! That covers the crate's own `f32` GEMM (x86-64 with AVX-512, or AVX2 and FMA). Elsewhere
//! (`f64`, other CPUs, the `portable` path) products go to `matrixmultiply`, threaded when the crate's `threading` feature is on (the
//! default); its thread count is read once from the `MATMUL_NUM_THREADS` environment variable
//! (default: the physical cores; `MATMUL_NUM_THREADS=1` makes them single-threaded).
//!
//! ## Instruction set
//!
//! The crate's kernels have builds for AVX-512, AVX2 + FMA and portable code; [`isa`] says which
//! one runs, chosen once from the CPU, overridable with the `RECURRENT_ISA` environment variable
//! (`avx512`, `avx2`, `portable`) or [`set_isa`] — to test or benchmark every path on one machine.
//!
//! ## Memory
//!
//! Tapes and scratch buffers come from a bounded, process-wide pool, so a training loop does not
//! fault in fresh pages step after step; [`cached_memory`] says how much it holds and
//! [`release_memory`] gives it back.
//!
//! ## The matrix product
//!
//! [`matmul`] is the product every layer computes with (the crate's own `f32` GEMM on x86-64 CPUs
//! with AVX-512 or AVX2 and FMA, `matrixmultiply` elsewhere), public for benchmarks and for users' own heads.

pub use crate::gemm::matmul;
pub use crate::isa::{isa, set_isa, Isa};
pub use crate::pool::{cached_memory, release_memory};
pub use crate::threads::{num_threads, set_num_threads};
