//! No allocation inside the time loop: the number of heap allocations of a forward, inference or
//! backward pass does not grow with the number of time steps.
//!
//! This holds for every batch size where the per-step products use the crate's own kernels:
//! batches of up to 4 everywhere, and every batch size for `f32` on x86-64 CPUs with AVX-512.
//! Elsewhere larger batches call `matrixmultiply` once per step, which allocates its packing
//! buffers on every call (see docs/PERFORMANCE.md).
//!
//! One test in its own binary, so no other test thread allocates while it counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ndarray::Array3;
use rand::SeedableRng;
use recurrent::{Gru, Lstm, Params, RecurrentStack, Rnn, StackConfig};

struct Counting;

thread_local! {
    // Allocations made by this thread (the test harness's own threads allocate at random times).
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn bump() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn count(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

/// Allocations of (infer, forward, backward) over `steps` steps.
fn allocations<C: recurrent::cell::CellInit<f32>>(
    net: &RecurrentStack<C>,
    steps: usize,
    batch: usize,
) -> [usize; 3] {
    let x = Array3::<f32>::from_elem((steps, batch, 3), 0.5);
    let d = Array3::<f32>::from_elem((steps, batch, net.output_size()), 1.0);
    let lengths: Vec<usize> = (0..batch).map(|b| steps - b % 5).collect();
    let infer = count(|| {
        net.infer(x.view(), None, Some(&lengths)).unwrap();
    });
    let mut tape = None;
    let forward = count(|| tape = Some(net.forward(x.view(), None, Some(&lengths)).unwrap().2));
    let mut grads = net.zeros_like();
    let tape = tape.unwrap();
    let backward = count(|| {
        net.backward(&tape, d.view(), None, &mut grads).unwrap();
    });
    [infer, forward, backward]
}

/// Batch sizes to check: the crate's own kernels serve every batch size for `f32` on CPUs with
/// AVX-512; elsewhere only batches of up to 4 (`matrixmultiply` allocates its packing buffers on
/// every call).
fn batches() -> Vec<usize> {
    if recurrent::runtime::isa() == recurrent::runtime::Isa::Avx512 {
        vec![1, 4, 5, 16]
    } else {
        vec![1, 4]
    }
}

#[test]
fn allocations_do_not_grow_with_sequence_length() {
    recurrent::runtime::set_num_threads(1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let config = StackConfig::new(3, 8)
        .with_num_layers(2)
        .with_bidirectional(true);
    let lstm = Lstm::<f32>::new(config, &mut rng).unwrap();
    let gru = Gru::<f32>::new(config, &mut rng).unwrap();
    let rnn = Rnn::<f32>::new(config, &mut rng).unwrap();
    // Warm up once-only allocations (thread-locals, the packing buffers of the matrix products,
    // which grow to the largest size seen and are then reused).
    for batch in batches() {
        allocations(&lstm, 60, batch);
        allocations(&gru, 60, batch);
        allocations(&rnn, 60, batch);
    }
    for batch in batches() {
        assert_eq!(
            allocations(&lstm, 10, batch),
            allocations(&lstm, 60, batch),
            "lstm, batch {batch}"
        );
        assert_eq!(
            allocations(&gru, 10, batch),
            allocations(&gru, 60, batch),
            "gru, batch {batch}"
        );
        assert_eq!(
            allocations(&rnn, 10, batch),
            allocations(&rnn, 60, batch),
            "rnn, batch {batch}"
        );
    }
}
