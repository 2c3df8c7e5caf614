//! Runtime knobs: how many threads the crate uses, the memory it keeps cached, and the raw
//! matrix product it computes with.
//!
//! ## Threads
//!
//! [`set_num_threads`] rules every thread the crate uses (default: all cores; `1` keeps
//! everything on the calling thread), for `f32` and `f64` alike; [`with_num_threads`] sets a
//! limit for one call on one thread only. The threads are a persistent
//! `rayon` pool of exactly that size, separate from rayon's global pool, built at the first
//! parallel call and rebuilt when the count changes. (Called from a worker of a `rayon` pool of
//! your own, the crate runs its parallel work in that pool instead.) Work is split at three places:
//!
//! * **batch shards**: a sequence pass splits its batch into up to that many shards (each at
//!   least 4 sequences and enough work to pay for a thread) that run the whole time loop on their
//!   own threads, forward and backward, with no synchronisation per step; the shards' weight
//!   gradients are added in shard order. Costs one weight-gradient buffer per extra shard;
//! * **directions**: the two directions of a bidirectional layer run in parallel, each with half
//!   the threads (and sharding within its half);
//! * **big products** (about 16 million multiply–adds and up) split their columns.
//!
//! Results do not depend on the thread count beyond the order of floating-point sums (tested: 1, 2
//! and 3 threads agree to 1e-6 relative in `f32` and 1e-12 in `f64`), and are bit-identical for the
//! same count. Batches of fewer than 8 sequences run on one thread: their steps are too small to
//! split within a step (docs/PERFORMANCE.md has the measurement).
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
pub use crate::threads::{num_threads, set_num_threads, with_num_threads};
