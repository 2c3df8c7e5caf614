//! The interface between the blocking driver and an instruction set: its register-tile kernel
//! and tile sizes, and `isa_gemm!`, which writes an instruction set's entry points from its
//! [`Lanes`](super::lanes::Lanes) and tile sizes.

use super::mat::MatMut;

/// One instruction set's register-tile kernel and its tile sizes (matrixmultiply's
/// `GemmKernel` + `archparam`).
pub(crate) trait Kernel: Copy {
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
    /// `a` must be as above, each pointer valid for reading the values it stands for; `b` must
    /// be valid for reading `kc · NR` values; `1 <= mr <= MR`, `1 <= nr <= NR`, and `c` must
    /// have at least `mr` rows and `nr` columns. (The CPU's instructions are proved by `self`.)
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const PACKED: bool>(
        self,
        kc: usize,
        a: Self::Rows,
        b: *const f32,
        c: MatMut<'_>,
        mr: usize,
        nr: usize,
        accumulate: bool,
    );
}

/// Writes an instruction set's entry points over the shared driver and kernels, in the module of
/// its proof type `$isa` (a [`Lanes`](super::lanes::Lanes)): `$isa::gemm` (a raw `b` splits its
/// columns over the threads), the `PackedB` and `RowPanels` aliases, `impl Kernel for $isa` from
/// the module's tile sizes `MR`, `NV`, `KC`, `MC`, `NC` and the generic [`tile`](super::tile),
/// and the driver and the few-rows kernels compiled with the target features `$features` (`$cpu`
/// names them in the docs). These `#[target_feature]` functions are the GEMM's only ones.
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
                        unsafe { gemm_on_this_thread(self, a, Rhs::Raw(b), c, accumulate) }
                    }),
                    // SAFETY: as above.
                    Rhs::Packed(p) => unsafe {
                        gemm_on_this_thread(self, a, Rhs::Packed(p), c, accumulate)
                    },
                }
            }
        }

        /// A right-hand side packed once in this kernel's panels.
        pub(crate) type PackedB = pack::PackedB<$isa>;
        /// A right-hand side laid out once for the few-rows kernel.
        pub(crate) type RowPanels = row::RowPanels<$isa>;

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
                self,
                kc: usize,
                a: Self::Rows,
                b: *const f32,
                c: MatMut<'_>,
                mr: usize,
                nr: usize,
                accumulate: bool,
            ) {
                // SAFETY: `tile::tile` has the same contract as `Kernel::tile`, which our caller
                // meets (with `ROWS` = 1 only when `mr` is 1).
                unsafe {
                    if mr == 1 {
                        tile::tile::<$isa, MR, NV, PACKED, 1>(self, kc, a, b, c, mr, nr, accumulate)
                    } else {
                        tile::tile::<$isa, MR, NV, PACKED, MR>(self, kc, a, b, c, mr, nr, accumulate)
                    }
                }
            }
        }

        impl row::RowKernels for $isa {
            fn lay_out(self, b: MatRef<'_>) -> (Aligned, (usize, usize)) {
                #[target_feature(enable = $features)]
                fn lay_out_here(isa: $isa, b: MatRef<'_>) -> (Aligned, (usize, usize)) {
                    row::lay_out(isa, b)
                }
                // SAFETY: a function compiled for this instruction set needs a CPU that has it,
                // which `self` proves.
                unsafe { lay_out_here(self, b) }
            }

            fn few_rows(self, a: MatRef<'_>, b: &RowPanels, c: MatMut<'_>, accumulate: bool) {
                #[target_feature(enable = $features)]
                fn few_rows_here(
                    isa: $isa,
                    a: MatRef<'_>,
                    b: &RowPanels,
                    c: MatMut<'_>,
                    accumulate: bool,
                ) {
                    row::small_m(isa, a, b, c, accumulate)
                }
                // SAFETY: as above.
                unsafe { few_rows_here(self, a, b, c, accumulate) }
            }
        }

        #[doc = concat!("The whole product on the calling thread, the driver compiled for ", $cpu, ".")]
        ///
        /// # Panics
        ///
        /// If the shapes do not fit together.
        #[target_feature(enable = $features)]
        fn gemm_on_this_thread(
            isa: $isa,
            a: ArrayView2<'_, f32>,
            b: Rhs<'_, $isa>,
            c: ArrayViewMut2<'_, f32>,
            accumulate: bool,
        ) {
            // The closure inherits this function's target features, so `run` and the kernel
            // compile (and inline) for them.
            driver::with_buffers(|bufs| driver::run::<$isa>(isa, a, b, c, accumulate, bufs))
        }
    };
}
pub(crate) use isa_gemm;
