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

/// `Ok` if `ndarray` can describe an array of shape `dims`: the product of its non-zero lengths
/// must be at most `isize::MAX`, a limit that holds even for an array with no element (a
/// `(0, 2^61, 4)` array cannot exist, though a `(0, 2^61)` view can). Otherwise an
/// [`Error::Shape`] naming `what`, where `ndarray` would panic.
pub(crate) fn check_shape(dims: &[usize], what: &str) -> Result<()> {
    let fits = dims
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .is_some_and(|n| n <= isize::MAX as usize);
    if fits {
        Ok(())
    } else {
        Err(Error::Shape {
            what: what.to_string(),
            expected: "a shape whose non-zero lengths multiply to at most isize::MAX (ndarray's \
                       limit, which holds even for an array with no element)"
                .to_string(),
            got: dims.to_vec(),
        })
    }
}

/// An array of `shape` filled by calling `fill` in logical (row-major) order, or
/// [`Error::OutOfMemory`] naming `what` ([`Error::Shape`] for a shape with no element that no
/// array can have, see [`check_shape`]).
pub(crate) fn try_array<F, D: Dimension>(
    shape: D,
    what: &str,
    mut fill: impl FnMut() -> F,
) -> Result<Array<F, D>> {
    let dims = shape.slice().to_vec();
    if dims.contains(&0) {
        // No element, so no byte to count below: the shape itself may be impossible. (With
        // elements, an impossible shape has more bytes than `isize::MAX`: `OutOfMemory` below.)
        check_shape(&dims, what)?;
    }
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
        // No element, but no array can have this shape: an error, not ndarray's panic.
        let e = try_array::<f32, _>(ndarray::Ix3(0, 1 << 61, 4), "e", || 0.0).unwrap_err();
        assert!(matches!(e, Error::Shape { .. }), "{e:?}");
        assert!(try_array::<f32, _>(ndarray::Ix3(0, 1 << 61, 2), "ok", || 0.0).is_ok());
    }
}
