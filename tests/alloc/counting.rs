//! A global allocator that measures one region of code at a time: the allocations it makes and
//! the peak of the bytes it holds, on the thread that runs it and on the crate's worker threads
//! (the `recurrent-*` pool that runs batch shards and directions) while they run work, and
//! nothing else.
//!
//! Other threads of the process (libtest's main thread printing and timing, a test harness thread,
//! threads of other pools) are not counted, whatever the machine's load does to their timing; nor
//! is a worker that is starting or exiting (outside rayon's work loop: a pool dropped when the
//! thread count changed exits in the background, and its threads' clean-up allocates, at a time
//! that depends on the machine's load). The tests of this binary take [`exclusive`] so that only
//! one of them uses the crate's pool at a time: the workers' allocations during a region are
//! then the measured code's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

pub struct Counting;

/// A region is open.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Allocations (and reallocations) in the region.
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// Bytes allocated minus bytes freed in the region, and its largest value.
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

/// What the calling thread is, as far as counting goes.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    /// Not looked at yet.
    Unknown,
    /// Being looked at (an allocation made while reading the thread's name lands here).
    Asking,
    /// A worker of the crate's pool.
    Worker,
    /// Any other thread.
    Other,
}

thread_local! {
    static ROLE: Cell<Role> = const { Cell::new(Role::Unknown) };
    /// This thread runs measured code.
    static MEASURED: Cell<bool> = const { Cell::new(false) };
}

/// `true` if an allocation on this thread, now, belongs to the measured region.
fn counted() -> bool {
    if !ACTIVE.load(Ordering::SeqCst) {
        return false;
    }
    // `try_with`: a thread being torn down has no thread-locals left, and is not measured.
    if MEASURED.try_with(Cell::get).unwrap_or(false) {
        return true;
    }
    let role = ROLE.try_with(Cell::get).unwrap_or(Role::Other);
    let role = match role {
        Role::Unknown => {
            ROLE.with(|r| r.set(Role::Asking));
            let worker = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("recurrent-"));
            let role = if worker { Role::Worker } else { Role::Other };
            ROLE.with(|r| r.set(role));
            role
        }
        r => r,
    };
    // A worker counts while it is inside rayon's work loop (running or looking for jobs), not
    // while it starts or exits: `current_thread_index` reads a constant-initialised thread-local
    // pointer (no allocation, no destructor), set only inside that loop.
    role == Role::Worker && rayon::current_thread_index().is_some()
}

fn grow(n: usize) {
    ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
    let live = LIVE.fetch_add(n as isize, Ordering::SeqCst) + n as isize;
    PEAK.fetch_max(live, Ordering::SeqCst);
}

fn shrink(n: usize) {
    LIVE.fetch_sub(n as isize, Ordering::SeqCst);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            grow(layout.size());
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if counted() {
            grow(layout.size());
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counted() {
            shrink(layout.size());
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counted() {
            shrink(layout.size());
            grow(new_size);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Held by each test of this binary for its whole run: one test at a time uses the crate's pool
/// and the global settings (thread count, instruction set) the tests here change.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a region did: allocations, and the peak of its live bytes above where it started.
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    pub allocations: usize,
    pub peak_bytes: usize,
}

/// Runs `f` as the measured region, on this thread and the crate's workers.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Measured) {
    ALLOCATIONS.store(0, Ordering::SeqCst);
    LIVE.store(0, Ordering::SeqCst);
    PEAK.store(0, Ordering::SeqCst);
    MEASURED.with(|m| m.set(true));
    ACTIVE.store(true, Ordering::SeqCst);
    let r = f();
    ACTIVE.store(false, Ordering::SeqCst);
    MEASURED.with(|m| m.set(false));
    let measured = Measured {
        allocations: ALLOCATIONS.load(Ordering::SeqCst),
        peak_bytes: PEAK.load(Ordering::SeqCst).max(0) as usize,
    };
    (r, measured)
}

/// Runs `f` as measured code on this thread too, inside a region opened on another thread (for a
/// thread the measured code spawns itself).
pub fn also_measure_this_thread<R>(f: impl FnOnce() -> R) -> R {
    MEASURED.with(|m| m.set(true));
    let r = f();
    MEASURED.with(|m| m.set(false));
    r
}

/// Allocations made by `f`, from an empty buffer pool (so that whether a buffer is recycled, which
/// depends on its size, does not change the count).
pub fn count(f: impl FnOnce()) -> usize {
    recurrent::runtime::release_memory();
    measure(f).1.allocations
}

/// The counter sees what the measured region allocates on its own thread and on a thread named
/// like the crate's workers, and nothing that another thread allocates at the same time.
#[test]
fn counts_the_measured_threads_only() {
    use std::sync::Barrier;
    let _one_at_a_time = exclusive();
    const N: usize = 100;
    let own = count(|| {
        for i in 0..N {
            std::hint::black_box(vec![i; 3]);
        }
    });
    assert!(
        own >= N,
        "{own} allocations counted on the measuring thread, {N} made"
    );

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(|i| format!("recurrent-{i}"))
        .build()
        .unwrap();
    pool.install(|| std::hint::black_box(vec![0u8; 1])); // the worker is up
    let worker = count(|| {
        pool.install(|| {
            for i in 0..N {
                std::hint::black_box(vec![i; 3]);
            }
        })
    });
    assert!(
        worker >= N,
        "{worker} allocations counted on a worker, {N} made"
    );

    // Another thread allocates N times while the region is open: none of it is counted.
    let (start, done) = (Barrier::new(2), Barrier::new(2));
    std::thread::scope(|s| {
        s.spawn(|| {
            start.wait();
            for i in 0..N {
                std::hint::black_box(vec![i; 3]);
            }
            done.wait();
        });
        let other = measure(|| {
            start.wait();
            done.wait();
        })
        .1
        .allocations;
        assert!(other < N, "{other} allocations of another thread counted");
    });
}
