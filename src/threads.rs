//! The crate's threads (public through [`runtime`](crate::runtime)): how many it may use, the
//! persistent worker pool they live in, and how a piece of work hands its share on.
//!
//! Work is split at three places, each taking a share of the *budget* of the thread it runs on:
//! the directions of a bidirectional layer ([`join`]), the batch shards of a sequence
//! ([`map_shards`]) and the column halves of a big matrix product. The budget of a thread outside
//! the pool is [`num_threads`]; a task started by one of the three gets its part of its parent's,
//! so nested splits never ask for more threads than the user allowed, and a task with a budget of
//! one runs everything it does on its own thread.
//!
//! The pool is a `rayon` pool of exactly [`num_threads`] threads, built at the first parallel
//! call and rebuilt if the number changes.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Work (multiply–adds) below which a second thread costs more than it saves.
const MIN_WORK_PER_THREAD: usize = 1 << 20;

/// Sets how many threads the crate may use (`0` = as many as the machine has, the default).
///
/// This rules everything the crate runs in parallel, for `f32` and `f64` alike: batch shards of
/// the sequence engine, the two directions of bidirectional layers and the column halves of big
/// matrix products. `1` keeps all work on the calling thread. Results do not depend on the thread
/// count beyond the order of floating-point sums (and are bit-identical for the same count).
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
        0 => cores(),
        n => n,
    }
}

/// The cores this process may use, asked once (`available_parallelism` reads the scheduler's
/// affinity and cgroup quota files: tens of microseconds, too slow for every pass).
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Runs `f` with the crate limited to `n` threads for the work that `f` starts on the calling
/// thread (`0` = [`num_threads`]), without changing the process-wide count that other threads see.
///
/// Scoped and per thread, like `rayon::ThreadPool::install`: a server can run one request on one
/// thread and a batch job on all of them at the same time, and tests running side by side in one
/// process do not change each other's thread count. Results are bit-identical to those at
/// [`set_num_threads`]`(n)` (work is split by the count, not by the threads that happen to be
/// free). The threads come from the crate's pool of [`num_threads`] workers; with `n` above that,
/// the work is split `n` ways and the pieces share the pool. The previous limit is restored when
/// `f` returns or unwinds.
///
/// # Examples
///
/// ```
/// use recurrent::runtime::{num_threads, with_num_threads};
///
/// let inside = with_num_threads(1, || {
///     // A forward or backward pass called here runs on the calling thread only.
///     42
/// });
/// assert_eq!(inside, 42);
/// assert!(num_threads() >= 1); // the process-wide setting is untouched
/// ```
pub fn with_num_threads<R>(n: usize, f: impl FnOnce() -> R) -> R {
    let n = if n == 0 { num_threads() } else { n };
    with_budget(n, f)
}

thread_local! {
    /// The threads the work running on this thread may use (0: not set, [`num_threads`]).
    static BUDGET: Cell<usize> = const { Cell::new(0) };
}

/// The threads the work on the calling thread may use.
pub(crate) fn budget() -> usize {
    match BUDGET.with(Cell::get) {
        0 => num_threads(),
        n => n,
    }
}

/// Runs `f` with a budget of `n` threads on this thread (restored afterwards, also when `f`
/// unwinds).
pub(crate) fn with_budget<R>(n: usize, f: impl FnOnce() -> R) -> R {
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            BUDGET.with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(BUDGET.with(|b| b.replace(n.max(1))));
    f()
}

/// The pool of [`num_threads`] workers, built or rebuilt on demand.
fn pool() -> Option<Arc<rayon::ThreadPool>> {
    static POOL: Mutex<Option<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(None);
    let n = num_threads();
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    match &*guard {
        Some((size, pool)) if *size == n => Some(Arc::clone(pool)),
        _ => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(|i| format!("recurrent-{i}"))
                .build()
                .ok()?;
            let pool = Arc::new(pool);
            *guard = Some((n, Arc::clone(&pool)));
            Some(pool)
        }
    }
}

/// Runs `f` in the pool. Already on a rayon worker (of this pool or a user's), `f` runs there and
/// its parallel calls use that pool; if the pool cannot be built, rayon's global pool serves.
fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        // Already on a worker (of this pool or a user's): rayon's calls below use its pool.
        return f();
    }
    match pool() {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

/// `true` if two pieces of work of `work` multiply–adds each should run on two threads.
pub(crate) fn parallel_pair(work: usize) -> bool {
    work >= MIN_WORK_PER_THREAD && budget() >= 2
}

/// Runs `a` and `b`, in parallel if `parallel` (each with half the budget), else one after the
/// other on the calling thread.
pub(crate) fn join<A, B, RA, RB>(parallel: bool, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let n = budget();
    if !parallel || n < 2 {
        return (a(), b());
    }
    let (na, nb) = (n.div_ceil(2), n / 2);
    in_pool(|| rayon::join(|| with_budget(na, a), || with_budget(nb, b)))
}

/// Rows per batch shard, at least.
const MIN_SHARD_ROWS: usize = 4;
/// Work (multiply–adds) per shard, at least.
const MIN_SHARD_WORK: usize = 1 << 17;

/// How many shards a batch of `batch` rows, of `work` multiply–adds in all, splits into: at most
/// the budget, at least [`MIN_SHARD_ROWS`] rows and [`MIN_SHARD_WORK`] each; 1 if it does not pay.
pub(crate) fn shard_count(batch: usize, work: usize) -> usize {
    budget()
        .min(batch / MIN_SHARD_ROWS)
        .min(work / MIN_SHARD_WORK)
        .max(1)
}

/// The rows `lo..hi` of shard `i` of `n` over `batch` rows (as even as can be, in order).
pub(crate) fn shard_bounds(batch: usize, n: usize, i: usize) -> std::ops::Range<usize> {
    batch * i / n..batch * (i + 1) / n
}

/// `f` applied to every job, the jobs run in parallel (each with an equal share of the budget);
/// the results in the jobs' order.
pub(crate) fn map_shards<J, R, F>(jobs: Vec<J>, f: F) -> Vec<R>
where
    J: Send,
    R: Send,
    F: Fn(J) -> R + Sync,
{
    use rayon::prelude::*;
    let n = jobs.len();
    if n <= 1 || budget() < 2 {
        // One job, or one thread allowed (a tape recorded at more threads): in order, here.
        return jobs.into_iter().map(f).collect();
    }
    let share = (budget() / n).max(1);
    in_pool(|| {
        jobs.into_par_iter()
            .with_max_len(1)
            .map(|j| with_budget(share, || f(j)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_in_order() {
        for batch in [1, 4, 7, 32, 33] {
            for n in 1..=4 {
                let mut next = 0;
                for i in 0..n {
                    let r = shard_bounds(batch, n, i);
                    assert_eq!(r.start, next);
                    next = r.end;
                }
                assert_eq!(next, batch);
            }
        }
    }

    #[test]
    fn nested_work_shares_the_budget() {
        let budgets = with_budget(3, || {
            map_shards(vec![0, 1, 2], |_| {
                let inner = budget();
                let (a, b) = join(true, budget, budget);
                (inner, a, b)
            })
        });
        assert_eq!(budgets, vec![(1, 1, 1); 3]);
        let halves = with_budget(5, || join(true, budget, budget));
        assert_eq!(halves, (3, 2));
        assert_eq!(with_budget(1, || shard_count(64, usize::MAX)), 1);
        assert_eq!(with_budget(8, || shard_count(64, usize::MAX)), 8);
        assert_eq!(with_budget(8, || shard_count(9, usize::MAX)), 2);
        assert_eq!(with_budget(8, || shard_count(64, MIN_SHARD_WORK * 3)), 3);
    }
}
