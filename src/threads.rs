//! The crate's thread count (public through [`runtime`](crate::runtime)).

use std::sync::atomic::{AtomicUsize, Ordering};

static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Work (multiply–adds) below which a second thread costs more than it saves.
const MIN_WORK_PER_THREAD: usize = 1 << 20;

/// Sets how many threads the crate may use (`0` = as many as the machine has, the default).
///
/// # Examples
///
/// ```
/// recurrent::runtime::set_num_threads(1); // everything on the calling thread
/// assert_eq!(recurrent::runtime::num_threads(), 1);
/// recurrent::runtime::set_num_threads(0);
/// assert!(recurrent::runtime::num_threads() >= 1);
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
