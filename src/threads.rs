//! How many threads the crate may use.
//!
//! The two directions of a bidirectional layer run on two threads when the machine has them and
//! the sequence is long enough to pay for it (forward and backward), and big matrix products (the
//! input projections of a whole sequence, the weight gradients) split their columns over two
//! threads. Set the number with [`set_num_threads`]; `1` keeps everything on the calling thread.
//! The per-step products of the time loop always run on the calling thread (too small to share).
//!
//! That covers the crate's own `f32` GEMM (x86-64 with AVX-512). Elsewhere (`f64`, other CPUs)
//! products go to `matrixmultiply`, threaded when the crate's `threading` feature is on (the
//! default); its thread count is read once from the `MATMUL_NUM_THREADS` environment variable
//! (default: the physical cores; `MATMUL_NUM_THREADS=1` makes them single-threaded).

use std::sync::atomic::{AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Work (multiply–adds) below which a second thread costs more than it saves.
const MIN_WORK_PER_THREAD: usize = 1 << 20;

/// Sets how many threads the crate may use (`0` = as many as the machine has, the default).
///
/// # Examples
///
/// ```
/// recurrent::set_num_threads(1); // everything on the calling thread
/// assert_eq!(recurrent::num_threads(), 1);
/// recurrent::set_num_threads(0);
/// assert!(recurrent::num_threads() >= 1);
/// ```
pub fn set_num_threads(n: usize) {
    THREADS.store(n, Ordering::Relaxed);
}

/// The number of threads the crate may use.
pub fn num_threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// `true` if two pieces of work of `work` multiply–adds each should run on two threads.
pub(crate) fn parallel_pair(work: usize) -> bool {
    work >= MIN_WORK_PER_THREAD && num_threads() >= 2
}

/// Runs `a` and `b`, on two threads if `parallel`.
pub(crate) fn join<A, B, RA, RB>(parallel: bool, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    if parallel {
        std::thread::scope(|s| {
            let hb = s.spawn(b);
            let ra = a();
            (
                ra,
                hb.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
            )
        })
    } else {
        (a(), b())
    }
}
