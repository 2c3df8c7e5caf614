//! Fallible allocation for sizes that come from outside the program: a configuration's sizes, a
//! file's shapes.
//!
//! Rust's collections abort the process when memory cannot be had and panic when a size overflows;
//! a constructor handed `hidden_size = 2^20` must instead return [`Error::OutOfMemory`]. Every
//! buffer whose size a user or a file chooses is therefore counted in `u128` (which cannot
//! overflow for the products taken here) and reserved with [`Vec::try_reserve_exact`] before it is
//! filled.

use ndarray::{Array, Dimension};

use crate::error::{Error, Result};

/// The bytes of `dims.iter().product()` values of `T`, saturating at `u128::MAX`.
pub(crate) fn bytes_of<T>(dims: &[usize]) -> u128 {
    dims.iter()
        .try_fold(std::mem::size_of::<T>().max(1) as u128, |acc, &d| {
            acc.checked_mul(d as u128)
        })
        .unwrap_or(u128::MAX)
}

/// An [`Error::OutOfMemory`] for `bytes` of `what`.
pub(crate) fn out_of_memory(what: impl Into<String>, bytes: u128) -> Error {
    Error::OutOfMemory {
        what: what.into(),
        bytes,
    }
}

/// An empty vector with room for `n` values of `T`, or [`Error::OutOfMemory`] naming `what`.
pub(crate) fn try_with_capacity<T>(n: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| out_of_memory(what, bytes_of::<T>(&[n])))?;
    Ok(v)
}

/// Checks that `bytes` can be had at once by reserving and releasing them (the pages are never
/// touched, so this costs one `mmap`/`munmap`): a model too large for this machine is refused up
/// front instead of being built piece by piece until the system runs out of memory.
pub(crate) fn probe(bytes: u128, what: &str) -> Result<()> {
    let n = usize::try_from(bytes)
        .ok()
        .filter(|&n| n <= isize::MAX as usize)
        .ok_or_else(|| out_of_memory(what, bytes))?;
    try_with_capacity::<u8>(n, what).map(drop)
}

/// An array of `shape` filled by calling `fill` in logical (row-major) order, or
/// [`Error::OutOfMemory`] naming `what`.
pub(crate) fn try_array<F, D: Dimension>(
    shape: D,
    what: &str,
    mut fill: impl FnMut() -> F,
) -> Result<Array<F, D>> {
    let dims = shape.slice().to_vec();
    let bytes = bytes_of::<F>(&dims);
    let n = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|_| bytes <= isize::MAX as u128)
        .ok_or_else(|| out_of_memory(what, bytes))?;
    let mut v = try_with_capacity(n, what)?;
    v.extend(std::iter::repeat_with(&mut fill).take(n));
    Ok(Array::from_shape_vec(shape, v).expect("the vector holds exactly the shape's elements"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Ix1, Ix2};

    #[test]
    fn sizes_beyond_memory_are_errors() {
        assert_eq!(bytes_of::<f32>(&[3, 5]), 60);
        assert_eq!(bytes_of::<f64>(&[usize::MAX, usize::MAX, 2]), u128::MAX);
        let e = try_array::<f32, _>(Ix2(1 << 62, 4), "w", || 0.0).unwrap_err();
        assert_eq!(
            e,
            Error::OutOfMemory {
                what: "w".into(),
                bytes: 1 << 66
            }
        );
        // Addressable, but more than any machine has (2^60 bytes).
        let e = try_array::<f32, _>(Ix1(1 << 58), "big", || 0.0).unwrap_err();
        assert!(matches!(e, Error::OutOfMemory { bytes, .. } if bytes == 1 << 60));
        assert!(probe(1 << 60, "probe").is_err());
        assert!(probe(1 << 20, "probe").is_ok());
        let mut k = 0;
        let a = try_array(Ix2(2, 3), "a", || {
            k += 1;
            k
        })
        .unwrap();
        assert_eq!(a, ndarray::arr2(&[[1, 2, 3], [4, 5, 6]]));
    }
}
