//! The few vector operations the GEMM's kernels are written in (matrixmultiply's
//! `kernel_x86_avx::<MA>`, pulp's `Simd`): an instruction set supplies them for its vector type,
//! and the register-tile kernel ([`super::tile`]) and the few-rows kernel ([`super::row`]) are
//! written once over them.
//!
//! The implementations live beside each instruction set's tile sizes (`avx2/mod.rs`,
//! `avx512/mod.rs`). Every method is `#[inline(always)]`: the kernels that call them are inlined
//! into that instruction set's `#[target_feature]` functions (written by `isa_gemm!`), where
//! the intrinsics compile to single instructions.

use crate::isa::Level;

/// An instruction set's `f32` vector operations. A value of the type is the proof (a
/// [`Level`]) that the CPU has the instructions, so the methods that touch no memory are safe.
pub(crate) trait Lanes: Level {
    /// A vector of [`Lanes::N`] `f32` lanes.
    type V: Copy;
    /// The first lanes of a vector, for partial loads and stores.
    type Mask: Copy;
    /// Lanes per vector.
    const N: usize;

    /// All lanes 0.
    fn zero(self) -> Self::V;
    /// `a · b + c` in each lane, fused.
    fn fmadd(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a + b` in each lane.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// The mask of the first `lanes` lanes (`1 <= lanes <= N`).
    fn first(self, lanes: usize) -> Self::Mask;

    /// `*p` in every lane.
    ///
    /// # Safety
    ///
    /// `p` valid for reading one value.
    unsafe fn splat(self, p: *const f32) -> Self::V;
    /// `N` values from `p` (any alignment).
    ///
    /// # Safety
    ///
    /// `p` valid for reading `N` values.
    unsafe fn load(self, p: *const f32) -> Self::V;
    /// Writes `v` to the `N` values at `p` (any alignment).
    ///
    /// # Safety
    ///
    /// `p` valid for writing `N` values.
    unsafe fn store(self, p: *mut f32, v: Self::V);
    /// The lanes of `mask` from `p`, the others 0.
    ///
    /// # Safety
    ///
    /// `p` valid for reading the values of the mask's lanes.
    unsafe fn load_first(self, p: *const f32, mask: Self::Mask) -> Self::V;
    /// Writes the lanes of `mask` of `v` to `p`.
    ///
    /// # Safety
    ///
    /// `p` valid for writing the values of the mask's lanes.
    unsafe fn store_first(self, p: *mut f32, mask: Self::Mask, v: Self::V);
    /// Asks for the cache line holding `p` (a hint: no requirement on `p`).
    fn prefetch(self, p: *const u8);

    /// Side of the square blocks that [`Lanes::transpose`] turns in registers; 0 if this
    /// instruction set has no such transpose (blocks are then copied element by element).
    const T: usize = 0;

    /// `dst[r · ld + q] = src[q · cs + r]` for `r, q < T`: a `T × T` block whose columns are
    /// contiguous in `src` (each `cs` apart) written row by row into `dst`.
    ///
    /// # Safety
    ///
    /// `src + q · cs` valid for reading `T` values for each `q < T`; `dst + r · ld` valid for
    /// writing `T` values for each `r < T`.
    #[inline(always)]
    unsafe fn transpose(self, src: *const f32, cs: isize, dst: *mut f32, ld: usize) {
        for q in 0..Self::T {
            for r in 0..Self::T {
                // SAFETY: the caller's contract, r, q < T.
                unsafe { *dst.add(r * ld + q) = *src.offset(q as isize * cs).add(r) };
            }
        }
    }
}
