//! Recycled work buffers for the sequence engine.
//!
//! A training step allocates tens of megabytes (the tape) and frees them when the tape is dropped;
//! the system allocator hands such blocks back to the operating system, so the next step pays a
//! page fault for every 4 KiB it touches again (10–15% of a training step of an LSTM with
//! T = 100, B = 32, I = 128, H = 256, here). Tapes therefore return their buffers to this pool
//! when dropped, and the engine takes its tape and scratch buffers from it: in a training loop the
//! same memory is reused step after step.
//!
//! The pool is shared by all threads, keeps only buffers of at least [`MIN_BYTES`] and at most
//! [`LIMIT_BYTES`] in total per float type (the oldest are freed first), and is emptied by
//! [`release_memory`](crate::runtime::release_memory).

use std::any::{Any, TypeId};
use std::sync::Mutex;

use ndarray::{Array, Dimension, ShapeBuilder};

use crate::float::Float;

/// Buffers smaller than this are left to the allocator (which reuses small blocks anyway).
pub(crate) const MIN_BYTES: usize = 256 << 10;
/// Upper bound on the bytes kept per float type.
pub(crate) const LIMIT_BYTES: usize = 512 << 20;

struct Pool<F> {
    bufs: Vec<Vec<F>>,
    bytes: usize,
}

static POOL_F32: Mutex<Pool<f32>> = Mutex::new(Pool {
    bufs: Vec::new(),
    bytes: 0,
});
static POOL_F64: Mutex<Pool<f64>> = Mutex::new(Pool {
    bufs: Vec::new(),
    bytes: 0,
});

/// Runs `f` on the pool of `F` (`None` for a float type without a pool).
fn with_pool<F: Float, R>(f: impl FnOnce(&mut Pool<F>) -> R) -> Option<R> {
    let mut f = Some(f);
    try_pool(&POOL_F32, &mut f).or_else(|| try_pool(&POOL_F64, &mut f))
}

/// Runs `f` on the pool behind `m` if it holds `F` values.
fn try_pool<T: 'static, F: 'static, R>(
    m: &Mutex<Pool<T>>,
    f: &mut Option<impl FnOnce(&mut Pool<F>) -> R>,
) -> Option<R> {
    if TypeId::of::<T>() != TypeId::of::<F>() {
        return None;
    }
    let mut guard = m.lock().unwrap_or_else(|e| e.into_inner());
    let pool = (&mut *guard as &mut dyn Any).downcast_mut::<Pool<F>>()?;
    Some((f.take()?)(pool))
}

/// A buffer of exactly `len` values from the pool, with unspecified (but initialised) contents,
/// or `None` if none fits.
fn take<F: Float>(len: usize) -> Option<Vec<F>> {
    if len * std::mem::size_of::<F>() < MIN_BYTES {
        return None;
    }
    with_pool::<F, _>(|p| {
        // The smallest buffer that holds `len` values and is not more than twice as large
        // (by capacity: what the buffer really holds).
        let best = p
            .bufs
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len && b.capacity() <= 2 * len)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i)?;
        let mut v = p.bufs.swap_remove(best);
        p.bytes -= v.capacity() * std::mem::size_of::<F>();
        if v.len() >= len {
            v.truncate(len);
        } else {
            v.resize(len, F::zero());
        }
        Some(v)
    })
    .flatten()
}

/// Gives a buffer back to the pool (or frees it if it is small or the pool is full).
pub(crate) fn give<F: Float>(v: Vec<F>) {
    let bytes = v.capacity() * std::mem::size_of::<F>();
    if !(MIN_BYTES..=LIMIT_BYTES).contains(&bytes) {
        return;
    }
    let evicted = with_pool::<F, _>(|p| {
        let mut evicted = Vec::new();
        while p.bytes + bytes > LIMIT_BYTES && !p.bufs.is_empty() {
            let old = p.bufs.remove(0);
            p.bytes -= old.capacity() * std::mem::size_of::<F>();
            evicted.push(old);
        }
        p.bufs.push(v);
        p.bytes += bytes;
        evicted
    });
    // Freed outside the lock.
    drop(evicted);
}

/// Gives an array's buffer back to the pool.
pub(crate) fn give_array<F: Float, D: Dimension>(a: Array<F, D>) {
    let (v, _) = a.into_raw_vec_and_offset();
    give(v);
}

/// An array of `shape` whose contents the caller overwrites before reading: from the pool when a
/// buffer fits, else zeros.
pub(crate) fn scratch<F: Float, Sh, D>(shape: Sh) -> Array<F, D>
where
    Sh: ShapeBuilder<Dim = D>,
    D: Dimension,
{
    let shape = shape.into_shape_with_order();
    let len = shape.size();
    match take::<F>(len) {
        Some(v) => Array::from_shape_vec(shape, v).expect("the buffer has the shape's length"),
        None => Array::zeros(shape),
    }
}

/// Frees the work buffers the crate keeps for reuse.
///
/// Tapes hand their buffers to a pool when dropped, so that the next forward pass reuses the
/// memory instead of faulting fresh pages in (10–15% of a training step otherwise). The pool keeps
/// at most 512 MiB per float type and frees its oldest buffers first; call this when training is
/// over to give the memory back at once.
///
/// Not covered: each thread that ran a large `f32` matrix product keeps its packing buffers
/// (about 2.5 MB) for as long as it lives.
///
/// # Examples
///
/// ```
/// # use rand::SeedableRng;
/// use ndarray::Array3;
/// use recurrent::{Lstm, StackConfig};
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let net = Lstm::<f32>::new(StackConfig::new(64, 128), &mut rng)?;
/// let x = Array3::<f32>::zeros((50, 16, 64));
/// let (_, _, tape) = net.forward(x.view(), None, None)?;
/// drop(tape); // its large buffers go to the pool
/// assert!(recurrent::runtime::cached_memory() > 0);
/// recurrent::runtime::release_memory();
/// assert_eq!(recurrent::runtime::cached_memory(), 0);
/// # Ok::<(), recurrent::Error>(())
/// ```
pub fn release_memory() {
    let drained32 = {
        let mut p = POOL_F32.lock().unwrap_or_else(|e| e.into_inner());
        p.bytes = 0;
        std::mem::take(&mut p.bufs)
    };
    let drained64 = {
        let mut p = POOL_F64.lock().unwrap_or_else(|e| e.into_inner());
        p.bytes = 0;
        std::mem::take(&mut p.bufs)
    };
    drop((drained32, drained64));
}

/// Bytes of work buffers the crate keeps for reuse (see [`release_memory`]).
pub fn cached_memory() -> usize {
    let a = POOL_F32.lock().unwrap_or_else(|e| e.into_inner()).bytes;
    let b = POOL_F64.lock().unwrap_or_else(|e| e.into_inner()).bytes;
    a + b
}
