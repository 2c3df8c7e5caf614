//! The interface between the blocking driver and an instruction set: its register-tile kernel
//! and tile sizes.

use super::mat::MatMut;

/// One instruction set's register-tile kernel and its tile sizes (matrixmultiply's
/// `GemmKernel` + `archparam`).
pub(crate) trait Kernel {
    /// Rows of the register tile.
    const MR: usize;
    /// Columns of the register tile.
    const NR: usize;
    /// Depth of a packed block.
    const KC: usize;
    /// Rows of a block of `a` kept in L2, a multiple of `MR`.
    const MC: usize;
    /// Columns of a packed block of `b`, a multiple of `NR`.
    const NC: usize;

    /// `MR` row pointers into `a`, as the kernel takes them.
    type Rows: Copy;

    /// The row pointers `f(0), …, f(MR - 1)`.
    fn rows(f: impl FnMut(usize) -> *const f32) -> Self::Rows;

    /// The register-tile kernel: `c[0..mr, 0..nr] (+)= a_panel · b_panel` over depth `kc`.
    ///
    /// `PACKED`: `a`'s first pointer is a packed panel (`kc · MR` values, `MR` per depth step);
    /// otherwise pointer `i` points at row `i` of `a`, contiguous along the depth (rows past `mr`
    /// may repeat a valid row: their results are not stored).
    ///
    /// # Safety
    ///
    /// The CPU must support the instructions the kernel is compiled for. `a` must be as above,
    /// each pointer valid for reading the values it stands for; `b` must be valid for reading
    /// `kc · NR` values; `1 <= mr <= MR`, `1 <= nr <= NR`, and `c` must have at least `mr` rows
    /// and `nr` columns.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const PACKED: bool>(
        kc: usize,
        a: Self::Rows,
        b: *const f32,
        c: MatMut<'_>,
        mr: usize,
        nr: usize,
        accumulate: bool,
    );
}
