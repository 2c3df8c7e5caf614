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

/// Writes an instruction set's entry points over the shared driver, in the module of its
/// zero-sized proof type `$isa` (which has `detect`): `$isa::gemm` (a raw `b` splits its columns
/// over the threads), the `PackedB` alias, `impl Kernel for $isa` from the module's tile sizes
/// `MR`, `NR`, `KC`, `MC`, `NC` and its `kernel::kernel`, and the driver compiled with the target
/// features `$features` (`$cpu` names them in the docs).
macro_rules! isa_gemm {
    ($isa:ident, $features:literal, $cpu:literal) => {
        impl $isa {
            /// `c = a·b` (or `c += a·b` if `accumulate`): `a (m, k)`, `b (k, n)`, `c (m, n)`, any
            /// strides. A big product with an unpacked `b` splits its columns over the calling
            /// thread's budget of threads.
            ///
            /// # Panics
            ///
            /// If the shapes do not fit together.
            pub(crate) fn gemm(
                self,
                a: ArrayView2<'_, f32>,
                b: Rhs<'_, $isa>,
                c: ArrayViewMut2<'_, f32>,
                accumulate: bool,
            ) {
                match b {
                    Rhs::Raw(b) => threading::split_columns(a, b, c, NR, |a, b, c| {
                        // SAFETY: a function compiled for this instruction set needs a CPU that
                        // has it, which `self` proves.
                        unsafe { gemm_on_this_thread(a, Rhs::Raw(b), c, accumulate) }
                    }),
                    // SAFETY: as above.
                    Rhs::Packed(p) => unsafe {
                        gemm_on_this_thread(a, Rhs::Packed(p), c, accumulate)
                    },
                }
            }
        }

        /// A right-hand side packed once in this kernel's panels.
        pub(crate) type PackedB = pack::PackedB<$isa>;

        impl Kernel for $isa {
            const MR: usize = MR;
            const NR: usize = NR;
            const KC: usize = KC;
            const MC: usize = MC;
            const NC: usize = NC;

            type Rows = [*const f32; MR];

            #[inline(always)]
            fn rows(f: impl FnMut(usize) -> *const f32) -> Self::Rows {
                std::array::from_fn(f)
            }

            #[inline(always)]
            unsafe fn tile<const PACKED: bool>(
                kc: usize,
                a: Self::Rows,
                b: *const f32,
                c: MatMut<'_>,
                mr: usize,
                nr: usize,
                accumulate: bool,
            ) {
                // SAFETY: `kernel` has the same contract as `tile`, which our caller meets
                // (with `ROWS` = 1 only when `mr` is 1).
                unsafe {
                    if mr == 1 {
                        kernel::kernel::<PACKED, 1>(kc, a, b, c, mr, nr, accumulate)
                    } else {
                        kernel::kernel::<PACKED, MR>(kc, a, b, c, mr, nr, accumulate)
                    }
                }
            }
        }

        #[doc = concat!("The whole product on the calling thread, the driver compiled for ", $cpu, ".")]
        ///
        /// # Panics
        ///
        /// If the shapes do not fit together.
        #[target_feature(enable = $features)]
        fn gemm_on_this_thread(
            a: ArrayView2<'_, f32>,
            b: Rhs<'_, $isa>,
            c: ArrayViewMut2<'_, f32>,
            accumulate: bool,
        ) {
            // The closure inherits this function's target features, so `run` and the kernel
            // compile (and inline) for them.
            driver::with_buffers(|bufs| {
                // SAFETY: `run` needs a CPU with the kernel's instructions; this function is
                // compiled for them, so it only runs on such a CPU.
                unsafe { driver::run::<$isa>(a, b, c, accumulate, bufs) }
            })
        }
    };
}
pub(crate) use isa_gemm;
