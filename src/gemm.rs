//! The matrix products of the crate.
//!
//! Every product goes through [`gemm`] (`c = a·b` or `c += a·b`) or, when one right-hand side is
//! multiplied many times (the recurrent weights, once per time step), through a [`Prepared`]
//! operand that is laid out once per sequence.
//!
//! On x86-64 CPUs with AVX-512, `f32` products use the crate's own GEMM ([`avx512`]): the
//! classic Goto/BLIS blocking (panels of `b` sized for the L1 cache, blocks of `a` for L2) around
//! a 6×64 register-tile kernel of fused multiply–adds, and for products with at most
//! [`SMALL_M`] rows a row-times-matrix kernel over a row-major copy of `b` that needs no packing.
//! Big products split their columns over two threads when [`num_threads`](crate::runtime::num_threads) allows.
//! Everything else (`f64`, other CPUs) uses `ndarray`'s `general_mat_mul` (the `matrixmultiply`
//! crate), with the crate's own row-by-row loops for small row counts.
//!
//! Buffers for packing live in thread-local storage and only grow, so after the first call of a
//! given size no product allocates.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use crate::float::Float;

/// Products with at most this many rows and a [`Prepared`] right-hand side use row-by-row
/// kernels: packing costs more than it saves on so few rows.
pub(crate) const SMALL_M: usize = 4;

/// The matrix product the crate uses: `c = a·b`, or `c += a·b` if `accumulate`.
///
/// Shapes: `a (M, K)`, `b (K, N)`, `c (M, N)`, any memory layout. For `f32` on x86-64 CPUs with
/// AVX-512 this is the crate's own GEMM (two threads for big products, see
/// [`set_num_threads`](crate::runtime::set_num_threads)); otherwise `ndarray`'s `general_mat_mul`.
///
/// # Errors
///
/// [`Error::Shape`](crate::Error::Shape) if the shapes do not fit together.
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// let a = array![[1.0f32, 2.0], [3.0, 4.0]];
/// let b = array![[1.0f32, 0.0, 1.0], [0.0, 1.0, 1.0]];
/// let mut c = ndarray::Array2::zeros((2, 3));
/// recurrent::runtime::matmul(a.view(), b.view(), &mut c.view_mut(), false)?;
/// assert_eq!(c, array![[1.0, 2.0, 3.0], [3.0, 4.0, 7.0]]);
/// # Ok::<(), recurrent::Error>(())
/// ```
pub fn matmul<F: Float>(
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    c: &mut ArrayViewMut2<'_, F>,
    accumulate: bool,
) -> crate::Result<()> {
    let (m, k) = a.dim();
    if b.nrows() != k {
        return Err(crate::error::shape_err(
            "b",
            format!("({k}, N) to match a's {k} columns"),
            b.shape(),
        ));
    }
    if c.dim() != (m, b.ncols()) {
        return Err(crate::error::shape_err(
            "c",
            format!("({m}, {})", b.ncols()),
            c.shape(),
        ));
    }
    gemm(a, b, c, accumulate);
    Ok(())
}

/// `c = a·b` (or `c += a·b` if `accumulate`): `a (M, K)`, `b (K, N)`, `c (M, N)`, any strides.
pub(crate) fn gemm<F: Float>(
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    c: &mut ArrayViewMut2<'_, F>,
    accumulate: bool,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert_eq!(b.nrows(), k, "gemm: inner dimensions differ");
    assert_eq!(c.dim(), (m, n), "gemm: output has the wrong shape");
    #[cfg(target_arch = "x86_64")]
    {
        if avx512::usable::<F>() {
            // SAFETY: F is f32 (checked by `usable`), the CPU has AVX-512F, and the views describe
            // valid memory of the asserted shapes; `c` is borrowed mutably.
            unsafe {
                avx512::gemm(
                    m,
                    n,
                    k,
                    avx512::Mat::of(&a),
                    avx512::BSource::Raw(avx512::Mat::of(&b)),
                    avx512::MatMut::of(c),
                    accumulate,
                );
            }
            return;
        }
    }
    let beta = if accumulate { F::one() } else { F::zero() };
    general_mat_mul(F::one(), &a, &b, beta, c);
}

/// A right-hand side `b (K, N)` laid out once for many products `a·b` with `a` of about `m`
/// rows: the recurrent weights, multiplied once per time step.
pub(crate) struct Prepared<'a, F: Float> {
    b: ArrayView2<'a, F>,
    form: Form<F>,
}

enum Form<F> {
    /// Multiply `b` as it is.
    Plain,
    /// A row-major copy of `b`, for row-by-row products.
    Dense(Array2<F>),
    /// `b` packed into the AVX-512 kernel's panels.
    #[cfg(target_arch = "x86_64")]
    Packed(avx512::PackedB),
    /// `b` in 128-column panels for the AVX-512 few-rows kernel.
    #[cfg(target_arch = "x86_64")]
    Panels(avx512::RowPanels),
}

impl<'a, F: Float> Prepared<'a, F> {
    /// Prepares `b` for products with `m` rows.
    pub(crate) fn new(b: ArrayView2<'a, F>, m: usize) -> Self {
        let form = if m <= SMALL_M {
            #[cfg(target_arch = "x86_64")]
            {
                if avx512::usable::<F>() {
                    // SAFETY: F is f32 and the CPU has AVX-512F (checked by `usable`).
                    Form::Panels(unsafe { avx512::RowPanels::new(avx512::Mat::of(&b), b.dim()) })
                } else {
                    Form::Dense(b.as_standard_layout().into_owned())
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            Form::Dense(b.as_standard_layout().into_owned())
        } else {
            #[cfg(target_arch = "x86_64")]
            {
                if avx512::usable::<F>() {
                    // SAFETY: F is f32 and the CPU has AVX-512F (checked by `usable`).
                    Form::Packed(unsafe { avx512::PackedB::new(avx512::Mat::of(&b), b.dim()) })
                } else {
                    Form::Plain
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            Form::Plain
        };
        Prepared { b, form }
    }

    /// `c = a·b` (or `c += a·b` if `accumulate`).
    pub(crate) fn mul(&self, a: ArrayView2<'_, F>, c: &mut ArrayViewMut2<'_, F>, accumulate: bool) {
        let (m, k) = a.dim();
        let n = self.b.ncols();
        assert_eq!(self.b.nrows(), k, "gemm: inner dimensions differ");
        assert_eq!(c.dim(), (m, n), "gemm: output has the wrong shape");
        match &self.form {
            Form::Plain => gemm(a, self.b, c, accumulate),
            Form::Dense(dense) => small_m_generic(a, dense, c, accumulate),
            #[cfg(target_arch = "x86_64")]
            Form::Panels(panels) => {
                // SAFETY: a Panels form is only made for f32 on a CPU with AVX-512F, from this
                // `b`; the views describe valid memory of the asserted shapes.
                unsafe {
                    avx512::small_m(
                        m,
                        avx512::Mat::of(&a),
                        panels,
                        avx512::MatMut::of(c),
                        accumulate,
                    );
                }
            }
            #[cfg(target_arch = "x86_64")]
            Form::Packed(packed) => {
                // SAFETY: a Packed form is only made for f32 on a CPU with AVX-512F, from this
                // `b`; the views describe valid memory of the asserted shapes.
                unsafe {
                    avx512::gemm(
                        m,
                        n,
                        k,
                        avx512::Mat::of(&a),
                        avx512::BSource::Packed(packed),
                        avx512::MatMut::of(c),
                        accumulate,
                    );
                }
            }
        }
    }
}

/// Row-by-row `c (+)= a·b` for a standard-layout `b`: each output row is a sum of rows of `b`
/// scaled by the entries of a row of `a` (contiguous, so it vectorises without reductions).
fn small_m_generic<F: Float>(
    a: ArrayView2<'_, F>,
    b: &Array2<F>,
    c: &mut ArrayViewMut2<'_, F>,
    accumulate: bool,
) {
    let bs = b.as_slice().expect("a dense operand is standard layout");
    let n = b.ncols();
    for (ar, mut cr) in a.rows().into_iter().zip(c.rows_mut()) {
        if !accumulate {
            cr.fill(F::zero());
        }
        if let Some(cs) = cr.as_slice_mut() {
            for (&ak, br) in ar.iter().zip(bs.chunks_exact(n.max(1))) {
                for (o, &x) in cs.iter_mut().zip(br) {
                    *o += ak * x;
                }
            }
        } else {
            for (&ak, br) in ar.iter().zip(bs.chunks_exact(n.max(1))) {
                cr.iter_mut().zip(br).for_each(|(o, &x)| *o += ak * x);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    //! The `f32` GEMM for CPUs with AVX-512F.

    use std::any::TypeId;
    use std::arch::x86_64::*;
    use std::cell::RefCell;

    use ndarray::{ArrayView2, ArrayViewMut2};

    /// Rows of the register tile.
    pub(crate) const MR: usize = 6;
    /// Columns of the register tile (`NV` 16-lane vectors). 6×64 (24 accumulators, 4 vector loads
    /// and 6 broadcasts per 24 multiply–adds) measured faster here than 8×32, 12×32 and 8×48.
    pub(crate) const NR: usize = 16 * NV;
    /// 16-lane vectors per row of the register tile.
    const NV: usize = 4;
    /// Depth of a packed block (a `KC × NR` panel of `b` is 64 KiB; 128 and 192 measured no
    /// better).
    const KC: usize = 256;
    /// Rows of a block of `a` (`MC × KC`, about 256 KiB) kept in L2, a multiple of `MR`.
    const MC: usize = 42 * MR;
    /// Columns of a packed block of `b`.
    const NC: usize = 2048;
    /// Multiply–adds above which a product splits its columns over two threads.
    /// (Lower in the crate's unit tests, so that their small products take the threaded path.)
    const PARALLEL_WORK: usize = if cfg!(test) { 1 << 20 } else { 1 << 28 };

    /// A zeroed `f32` buffer whose first element sits on a 64-byte boundary, so that 16-lane
    /// loads from panels never straddle two cache lines.
    pub(crate) struct Aligned {
        buf: Vec<f32>,
        off: usize,
        len: usize,
    }

    impl Aligned {
        pub(crate) fn zeros(len: usize) -> Aligned {
            let buf = vec![0.0f32; len + 15];
            let off = buf.as_ptr().align_offset(64).min(15);
            Aligned { buf, off, len }
        }

        fn len(&self) -> usize {
            self.len
        }

        fn as_slice(&self) -> &[f32] {
            &self.buf[self.off..self.off + self.len]
        }

        fn as_mut_slice(&mut self) -> &mut [f32] {
            &mut self.buf[self.off..self.off + self.len]
        }
    }

    /// `true` if `F` is `f32` and the CPU has AVX-512F.
    #[inline]
    pub(crate) fn usable<F: 'static>() -> bool {
        TypeId::of::<F>() == TypeId::of::<f32>() && std::is_x86_feature_detected!("avx512f")
    }

    /// A read-only matrix: pointer and element strides.
    #[derive(Clone, Copy)]
    pub(crate) struct Mat {
        ptr: *const f32,
        rs: isize,
        cs: isize,
    }

    impl Mat {
        /// The view's memory as `f32` (the caller has checked that `F` is `f32`).
        pub(crate) fn of<F>(v: &ArrayView2<'_, F>) -> Mat {
            let s = v.strides();
            Mat {
                ptr: v.as_ptr().cast(),
                rs: s[0],
                cs: s[1],
            }
        }

        #[inline(always)]
        unsafe fn at(self, i: usize, j: usize) -> *const f32 {
            unsafe { self.ptr.offset(i as isize * self.rs + j as isize * self.cs) }
        }
    }

    /// A writable matrix: pointer and element strides.
    #[derive(Clone, Copy)]
    pub(crate) struct MatMut {
        ptr: *mut f32,
        rs: isize,
        cs: isize,
    }

    // SAFETY: the two threads of a split product write disjoint column ranges.
    unsafe impl Send for MatMut {}
    // SAFETY: read-only.
    unsafe impl Send for Mat {}

    impl MatMut {
        /// The view's memory as `f32` (the caller has checked that `F` is `f32`).
        pub(crate) fn of<F>(v: &mut ArrayViewMut2<'_, F>) -> MatMut {
            let s = v.strides();
            let (rs, cs) = (s[0], s[1]);
            MatMut {
                ptr: v.as_mut_ptr().cast(),
                rs,
                cs,
            }
        }

        #[inline(always)]
        unsafe fn at(self, i: usize, j: usize) -> *mut f32 {
            unsafe { self.ptr.offset(i as isize * self.rs + j as isize * self.cs) }
        }
    }

    /// Where the right-hand side comes from.
    pub(crate) enum BSource<'p> {
        /// Packed per call.
        Raw(Mat),
        /// Packed once ahead.
        Packed(&'p PackedB),
    }

    /// A whole right-hand side `(K, N)` in the kernel's panel layout, block by block.
    pub(crate) struct PackedB {
        data: Aligned,
        k: usize,
        n: usize,
    }

    impl PackedB {
        /// Packs `b` of shape `dim`.
        ///
        /// # Safety
        /// `b` must describe valid memory of shape `dim`.
        pub(crate) unsafe fn new(b: Mat, dim: (usize, usize)) -> PackedB {
            let (k, n) = dim;
            let mut data = Aligned::zeros(packed_b_len(k, n));
            let mut off = 0;
            for jc in (0..n).step_by(NC) {
                let nc = NC.min(n - jc);
                for pc in (0..k).step_by(KC) {
                    let kc = KC.min(k - pc);
                    let len = kc * nc.div_ceil(NR) * NR;
                    // SAFETY: the block lies inside `b`; the slice has room for it.
                    unsafe { pack_b(kc, nc, b, pc, jc, &mut data.as_mut_slice()[off..off + len]) };
                    off += len;
                }
            }
            PackedB { data, k, n }
        }

        /// The packed block at column `jc` and depth `pc` (both block starts).
        fn block(&self, jc: usize, pc: usize) -> *const f32 {
            // Column blocks before `jc` are NC wide (a multiple of NR) and span all of K; within
            // a column block, KC-deep blocks follow each other.
            let nc = NC.min(self.n - jc);
            let off = jc * self.k + pc * nc.div_ceil(NR) * NR;
            self.data.as_slice()[off..].as_ptr()
        }
    }

    fn packed_b_len(k: usize, n: usize) -> usize {
        k * n.div_ceil(NR) * NR
    }

    thread_local! {
        static BUFFERS: RefCell<(Aligned, Aligned)> = RefCell::new((Aligned::zeros(0), Aligned::zeros(0)));
    }

    /// Packs `kc × nc` of `b` from `(pc, jc)` into `NR`-wide panels, zero-padded.
    ///
    /// # Safety
    /// The block must lie inside `b`; `out` must hold `kc · ⌈nc/NR⌉ · NR` values.
    unsafe fn pack_b(kc: usize, nc: usize, b: Mat, pc: usize, jc: usize, out: &mut [f32]) {
        for (panel, jr) in (0..nc).step_by(NR).enumerate() {
            let nr = NR.min(nc - jr);
            let dst = &mut out[panel * kc * NR..(panel + 1) * kc * NR];
            if b.cs == 1 {
                for p in 0..kc {
                    // SAFETY: row pc+p, columns jc+jr..jc+jr+nr lie inside b.
                    let src = unsafe { std::slice::from_raw_parts(b.at(pc + p, jc + jr), nr) };
                    dst[p * NR..p * NR + nr].copy_from_slice(src);
                    dst[p * NR + nr..(p + 1) * NR].fill(0.0);
                }
            } else {
                for j in 0..NR {
                    if j < nr {
                        for p in 0..kc {
                            // SAFETY: inside b.
                            dst[p * NR + j] = unsafe { *b.at(pc + p, jc + jr + j) };
                        }
                    } else {
                        for p in 0..kc {
                            dst[p * NR + j] = 0.0;
                        }
                    }
                }
            }
        }
    }

    /// Packs `mc × kc` of `a` from `(ic, pc)` into `MR`-tall panels, zero-padded.
    ///
    /// # Safety
    /// The block must lie inside `a`; `out` must hold `⌈mc/MR⌉ · MR · kc` values.
    unsafe fn pack_a(mc: usize, kc: usize, a: Mat, ic: usize, pc: usize, out: &mut [f32]) {
        for (panel, ir) in (0..mc).step_by(MR).enumerate() {
            let mr = MR.min(mc - ir);
            let dst = &mut out[panel * kc * MR..(panel + 1) * kc * MR];
            if a.rs == 1 && mr == MR {
                for p in 0..kc {
                    // SAFETY: column pc+p, rows ic+ir..ic+ir+MR lie inside a.
                    let src = unsafe { std::slice::from_raw_parts(a.at(ic + ir, pc + p), MR) };
                    dst[p * MR..(p + 1) * MR].copy_from_slice(src);
                }
            } else {
                for i in 0..MR {
                    if i < mr {
                        for p in 0..kc {
                            // SAFETY: inside a.
                            dst[p * MR + i] = unsafe { *a.at(ic + ir + i, pc + p) };
                        }
                    } else {
                        for p in 0..kc {
                            dst[p * MR + i] = 0.0;
                        }
                    }
                }
            }
        }
    }

    /// The register-tile kernel: `c[0..mr, 0..nr] (+)= a_panel · b_panel` over depth `kc`.
    ///
    /// `PACKED`: `a[0]` is a packed panel (`kc · MR` values, `MR` per depth step); otherwise
    /// `a[i]` points at row `i` of `a`, contiguous along the depth (rows past `mr` may repeat a
    /// valid row: their results are not stored).
    ///
    /// # Safety
    /// `a` as above, `b` holds `kc · NR` values; `c` is valid for `mr × nr` with its strides.
    #[target_feature(enable = "avx512f")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn kernel<const PACKED: bool>(
        kc: usize,
        a: [*const f32; MR],
        b: *const f32,
        c: MatMut,
        mr: usize,
        nr: usize,
        accumulate: bool,
    ) {
        if mr == MR && nr == NR && c.cs == 1 {
            // The tile is read (or written) after the loop: start fetching it now.
            for i in 0..MR {
                // SAFETY: prefetching is a hint; the addresses lie inside c.
                unsafe {
                    let p = c.at(i, 0) as *const i8;
                    for v in 0..NV {
                        _mm_prefetch::<_MM_HINT_T0>(p.add(64 * v));
                    }
                }
            }
        }
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        let mut b = b;
        for p in 0..kc {
            // SAFETY: within the panels (caller's contract).
            unsafe {
                let mut bv = [_mm512_setzero_ps(); NV];
                for (v, bv) in bv.iter_mut().enumerate() {
                    *bv = _mm512_loadu_ps(b.add(16 * v));
                }
                for (i, acc) in acc.iter_mut().enumerate() {
                    let ai = if PACKED {
                        _mm512_set1_ps(*a[0].add(p * MR + i))
                    } else {
                        _mm512_set1_ps(*a[i].add(p))
                    };
                    for (acc, &bv) in acc.iter_mut().zip(&bv) {
                        *acc = _mm512_fmadd_ps(ai, bv, *acc);
                    }
                }
                b = b.add(NR);
            }
        }
        if mr == MR && nr == NR && c.cs == 1 {
            for (i, acc) in acc.iter().enumerate() {
                // SAFETY: the full tile is inside c, rows contiguous.
                unsafe {
                    let p = c.at(i, 0);
                    for (v, &x) in acc.iter().enumerate() {
                        let x = if accumulate {
                            _mm512_add_ps(x, _mm512_loadu_ps(p.add(16 * v)))
                        } else {
                            x
                        };
                        _mm512_storeu_ps(p.add(16 * v), x);
                    }
                }
            }
        } else {
            let mut buf = [0.0f32; MR * NR];
            for (i, acc) in acc.iter().enumerate() {
                for (v, &x) in acc.iter().enumerate() {
                    // SAFETY: buf has MR·NR values.
                    unsafe { _mm512_storeu_ps(buf.as_mut_ptr().add(i * NR + 16 * v), x) };
                }
            }
            for i in 0..mr {
                for j in 0..nr {
                    // SAFETY: (i, j) inside the valid part of the tile.
                    unsafe {
                        let p = c.at(i, j);
                        *p = if accumulate {
                            *p + buf[i * NR + j]
                        } else {
                            buf[i * NR + j]
                        };
                    }
                }
            }
        }
    }

    /// `c (+)= a·b`, `a (m, k)`, `b (k, n)`, `c (m, n)`.
    ///
    /// # Safety
    /// The CPU must have AVX-512F; the matrices must describe valid memory of those shapes (a
    /// packed `b` made from a `(k, n)` matrix); `c` must not alias `a` or `b`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn gemm(
        m: usize,
        n: usize,
        k: usize,
        a: Mat,
        b: BSource<'_>,
        c: MatMut,
        accumulate: bool,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            if !accumulate {
                for i in 0..m {
                    for j in 0..n {
                        // SAFETY: inside c.
                        unsafe { *c.at(i, j) = 0.0 };
                    }
                }
            }
            return;
        }
        if let BSource::Raw(braw) = b {
            let work = m.saturating_mul(n).saturating_mul(k);
            if work >= PARALLEL_WORK && n >= 2 * NR && crate::threads::num_threads() >= 2 {
                let half = (n / 2).div_ceil(NR) * NR;
                let (c_left, c_right) = (
                    c,
                    MatMut {
                        // SAFETY: column `half` lies inside c.
                        ptr: unsafe { c.at(0, half) },
                        ..c
                    },
                );
                let b_right = Mat {
                    // SAFETY: column `half` lies inside b.
                    ptr: unsafe { braw.at(0, half) },
                    ..braw
                };
                crate::threads::join(
                    true,
                    // SAFETY: the halves write disjoint columns of c; the caller's contract
                    // covers the rest.
                    move || unsafe {
                        driver(m, half, k, a, BSource::Raw(braw), c_left, accumulate)
                    },
                    move || unsafe {
                        driver(
                            m,
                            n - half,
                            k,
                            a,
                            BSource::Raw(b_right),
                            c_right,
                            accumulate,
                        )
                    },
                );
                return;
            }
        }
        // SAFETY: the caller's contract.
        unsafe { driver(m, n, k, a, b, c, accumulate) }
    }

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn driver(
        m: usize,
        n: usize,
        k: usize,
        a: Mat,
        b: BSource<'_>,
        c: MatMut,
        accumulate: bool,
    ) {
        // Rows of `a` contiguous along the depth are read in place; other layouts are packed.
        let direct = a.cs == 1;
        BUFFERS.with_borrow_mut(|(abuf, bbuf)| {
            let a_len = MC.min(m).div_ceil(MR) * MR * KC.min(k);
            if abuf.len() < a_len {
                *abuf = Aligned::zeros(a_len);
            }
            if let BSource::Raw(_) = b {
                let b_len = KC.min(k) * NC.min(n).div_ceil(NR) * NR;
                if bbuf.len() < b_len {
                    *bbuf = Aligned::zeros(b_len);
                }
            }
            for jc in (0..n).step_by(NC) {
                let nc = NC.min(n - jc);
                for pc in (0..k).step_by(KC) {
                    let kc = KC.min(k - pc);
                    let bp: *const f32 = match &b {
                        BSource::Raw(braw) => {
                            // SAFETY: the block lies inside b; bbuf is large enough.
                            unsafe { pack_b(kc, nc, *braw, pc, jc, bbuf.as_mut_slice()) };
                            bbuf.as_slice().as_ptr()
                        }
                        BSource::Packed(p) => p.block(jc, pc),
                    };
                    let acc = accumulate || pc > 0;
                    for ic in (0..m).step_by(MC) {
                        let mc = MC.min(m - ic);
                        if !direct {
                            // SAFETY: the block lies inside a; abuf is large enough.
                            unsafe { pack_a(mc, kc, a, ic, pc, abuf.as_mut_slice()) };
                        }
                        for jr in (0..nc).step_by(NR) {
                            let nr = NR.min(nc - jr);
                            for ir in (0..mc).step_by(MR) {
                                let mr = MR.min(mc - ir);
                                let tile = MatMut {
                                    // SAFETY: the tile's corner lies inside c.
                                    ptr: unsafe { c.at(ic + ir, jc + jr) },
                                    ..c
                                };
                                let bpanel = bp.wrapping_add(jr * kc);
                                if direct {
                                    // SAFETY: rows clamped to valid rows of a.
                                    let rows = std::array::from_fn(|i| unsafe {
                                        a.at(ic + ir + i.min(mr - 1), pc)
                                    });
                                    // SAFETY: rows of a contiguous along k; panel of b inside
                                    // the packed buffer; tile inside c.
                                    unsafe { kernel::<false>(kc, rows, bpanel, tile, mr, nr, acc) };
                                } else {
                                    let rows = [abuf.as_slice().as_ptr().wrapping_add(ir * kc); MR];
                                    // SAFETY: panels inside the packed buffers, tile inside c.
                                    unsafe { kernel::<true>(kc, rows, bpanel, tile, mr, nr, acc) };
                                }
                            }
                        }
                    }
                }
            }
        });
    }

    /// Width of the panels of [`RowPanels`]: eight 16-lane accumulators.
    const W: usize = 8 * 16;

    /// A right-hand side `(K, N)` in `W`-column panels, each `K × W` contiguous and
    /// zero-padded: the few-rows kernel then streams it front to back.
    pub(crate) struct RowPanels {
        data: Aligned,
        k: usize,
        n: usize,
    }

    impl RowPanels {
        /// Lays out `b` of shape `dim`.
        ///
        /// # Safety
        /// `b` must describe valid memory of shape `dim`.
        #[target_feature(enable = "avx512f")]
        pub(crate) unsafe fn new(b: Mat, dim: (usize, usize)) -> RowPanels {
            let (k, n) = dim;
            let mut data = Aligned::zeros(k * n.div_ceil(W) * W);
            for (jb, panel) in data
                .as_mut_slice()
                .chunks_exact_mut((k * W).max(1))
                .enumerate()
            {
                let j0 = jb * W;
                let w = W.min(n.saturating_sub(j0));
                if b.cs == 1 {
                    for p in 0..k {
                        // SAFETY: row p, columns j0..j0+w lie inside b.
                        let src = unsafe { std::slice::from_raw_parts(b.at(p, j0), w) };
                        panel[p * W..p * W + w].copy_from_slice(src);
                    }
                } else {
                    // Transposing, 16×16 tiles at a time: in registers when the tile is whole and
                    // the source contiguous along p, element by element otherwise.
                    for q0 in (0..w).step_by(16) {
                        for p0 in (0..k).step_by(16) {
                            if b.rs == 1 && q0 + 16 <= w && p0 + 16 <= k {
                                // SAFETY: the tile lies inside b (checked) and inside the panel.
                                unsafe {
                                    let rows = std::array::from_fn(|i| {
                                        _mm512_loadu_ps(b.at(p0, j0 + q0 + i))
                                    });
                                    let cols = transpose16(rows);
                                    for (c, col) in cols.iter().enumerate() {
                                        let dst = panel.as_mut_ptr().add((p0 + c) * W + q0);
                                        _mm512_storeu_ps(dst, *col);
                                    }
                                }
                                continue;
                            }
                            for q in q0..(q0 + 16).min(w) {
                                for p in p0..(p0 + 16).min(k) {
                                    // SAFETY: inside b.
                                    panel[p * W + q] = unsafe { *b.at(p, j0 + q) };
                                }
                            }
                        }
                    }
                }
            }
            RowPanels { data, k, n }
        }
    }

    /// The transpose of a 16×16 block given as 16 rows: returns its 16 columns.
    #[target_feature(enable = "avx512f")]
    fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
        let ps = _mm512_castpd_ps;
        let pd = _mm512_castps_pd;
        // Interleave 32-bit elements of row pairs, then 64-bit pairs: u[4g + j] holds, in each
        // 128-bit lane l, column 4l + j of rows 4g..4g+4.
        let t: [__m512; 16] = std::array::from_fn(|i| {
            let (a, b) = (r[i & !1], r[i | 1]);
            if i % 2 == 0 {
                _mm512_unpacklo_ps(a, b)
            } else {
                _mm512_unpackhi_ps(a, b)
            }
        });
        let u: [__m512; 16] = std::array::from_fn(|i| {
            let g = i / 4;
            let (x, y) = match i % 4 {
                0 | 1 => (t[4 * g], t[4 * g + 2]),
                _ => (t[4 * g + 1], t[4 * g + 3]),
            };
            if i % 2 == 0 {
                ps(_mm512_unpacklo_pd(pd(x), pd(y)))
            } else {
                ps(_mm512_unpackhi_pd(pd(x), pd(y)))
            }
        });
        // Gather the 128-bit lanes: column j + 4l comes from lane l of u[j], u[4 + j], u[8 + j],
        // u[12 + j].
        let mut out = [_mm512_setzero_ps(); 16];
        for j in 0..4 {
            let v0 = _mm512_shuffle_f32x4::<0x88>(u[j], u[4 + j]);
            let v1 = _mm512_shuffle_f32x4::<0xDD>(u[j], u[4 + j]);
            let v2 = _mm512_shuffle_f32x4::<0x88>(u[8 + j], u[12 + j]);
            let v3 = _mm512_shuffle_f32x4::<0xDD>(u[8 + j], u[12 + j]);
            out[j] = _mm512_shuffle_f32x4::<0x88>(v0, v2);
            out[j + 8] = _mm512_shuffle_f32x4::<0xDD>(v0, v2);
            out[j + 4] = _mm512_shuffle_f32x4::<0x88>(v1, v3);
            out[j + 12] = _mm512_shuffle_f32x4::<0xDD>(v1, v3);
        }
        out
    }

    /// `c (+)= a·b` for few rows of `a` (`m`, depth `b.k`), `b` in panels, `c` of unit column
    /// stride: each row of `c`, `W` columns at a time in eight accumulators.
    ///
    /// # Safety
    /// The CPU must have AVX-512F; `a` and `c` must describe valid memory of shapes `(m, b.k)` and
    /// `(m, b.n)`; `c.cs == 1`.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn small_m(m: usize, a: Mat, b: &RowPanels, c: MatMut, accumulate: bool) {
        let (n, k) = (b.n, b.k);
        if c.cs != 1 || k == 0 {
            for i in 0..m {
                for j in 0..n {
                    let mut sum = 0.0;
                    for p in 0..k {
                        // SAFETY: inside a and the panels.
                        sum += unsafe { *a.at(i, p) }
                            * b.data.as_slice()[(j / W) * k * W + p * W + j % W];
                    }
                    // SAFETY: inside c.
                    unsafe {
                        let o = c.at(i, j);
                        *o = if accumulate { *o + sum } else { sum };
                    }
                }
            }
            return;
        }
        for i in 0..m {
            // SAFETY: row i of c is valid for n values with unit stride.
            let cr = unsafe { c.at(i, 0) };
            for (jb, panel) in b.data.as_slice().chunks_exact((k * W).max(1)).enumerate() {
                let j0 = jb * W;
                let width = W.min(n - j0);
                let mut masks = [0u16; 8];
                for (q, mask) in masks.iter_mut().enumerate() {
                    let lanes = width.saturating_sub(q * 16).min(16);
                    *mask = ((1u32 << lanes) - 1) as u16;
                }
                let mut acc = [_mm512_setzero_ps(); 8];
                if accumulate {
                    for q in (0..8).filter(|&q| masks[q] != 0) {
                        // SAFETY: masked to the valid columns, which start inside the row.
                        acc[q] = unsafe { _mm512_maskz_loadu_ps(masks[q], cr.add(j0 + 16 * q)) };
                    }
                }
                let mut bp = panel.as_ptr();
                for p in 0..k {
                    // SAFETY: inside a and the panel.
                    unsafe {
                        let s = _mm512_set1_ps(*a.at(i, p));
                        for (q, acc) in acc.iter_mut().enumerate() {
                            let v = _mm512_loadu_ps(bp.add(16 * q));
                            *acc = _mm512_fmadd_ps(s, v, *acc);
                        }
                        bp = bp.add(W);
                    }
                }
                for q in (0..8).filter(|&q| masks[q] != 0) {
                    // SAFETY: masked to the valid columns, which start inside the row.
                    unsafe { _mm512_mask_storeu_ps(cr.add(j0 + 16 * q), masks[q], acc[q]) };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array2, ShapeBuilder};

    fn filled(m: usize, n: usize, seed: u32, fortran: bool) -> Array2<f32> {
        let f = |(i, j): (usize, usize)| {
            let h = (i as u32).wrapping_mul(2654435761) ^ (j as u32).wrapping_mul(40503) ^ seed;
            (h % 1000) as f32 / 500.0 - 1.0
        };
        if fortran {
            Array2::from_shape_fn((m, n).f(), f)
        } else {
            Array2::from_shape_fn((m, n), f)
        }
    }

    fn naive(a: &ArrayView2<'_, f32>, b: &ArrayView2<'_, f32>) -> Array2<f64> {
        let (m, k) = a.dim();
        let n = b.ncols();
        Array2::from_shape_fn((m, n), |(i, j)| {
            (0..k).map(|p| a[[i, p]] as f64 * b[[p, j]] as f64).sum()
        })
    }

    fn check(m: usize, n: usize, k: usize, at: bool, bt: bool, accumulate: bool) {
        let a = filled(m, k, 1, at);
        let b = filled(k, n, 2, bt);
        let c0 = filled(m, n, 3, false);
        let mut want = naive(&a.view(), &b.view());
        if accumulate {
            want += &c0.mapv(f64::from);
        }
        let mut c = c0.clone();
        gemm(a.view(), b.view(), &mut c.view_mut(), accumulate);
        let mut c2 = c0.clone();
        Prepared::new(b.view(), m).mul(a.view(), &mut c2.view_mut(), accumulate);
        for got in [&c, &c2] {
            for ((i, j), &w) in want.indexed_iter() {
                let g = got[[i, j]] as f64;
                assert!(
                    (g - w).abs() <= 1e-4 * (1.0 + w.abs()) * (k as f64).sqrt().max(1.0),
                    "m={m} n={n} k={k} at={at} bt={bt} acc={accumulate} ({i},{j}): {g} vs {w}"
                );
            }
        }
    }

    #[test]
    fn products_match_a_naive_sum_over_awkward_shapes_and_layouts() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (1, 256, 64),
            (3, 5, 7),
            (4, 129, 33),
            (5, 200, 17),
            (8, 32, 256),
            (9, 33, 257),
            (17, 65, 300),
            (32, 1024, 256),
            (300, 70, 513),
            (7, 2100, 300),
            (2, 3, 0),
            (0, 4, 3),
        ] {
            for at in [false, true] {
                for bt in [false, true] {
                    for acc in [false, true] {
                        check(m, n, k, at, bt, acc);
                    }
                }
            }
        }
    }

    #[test]
    fn products_with_strided_views() {
        let a = filled(40, 60, 5, false);
        let b = filled(90, 50, 6, false);
        let av = a.slice(s![..;2, 1..;2]); // (20, 30), strides (120, 2)
        let bv = b.slice(s![..;3, ..;-1]); // (30, 50), negative column stride
        let want = naive(&av, &bv);
        let mut big = Array2::<f32>::zeros((20, 100));
        let mut c = big.slice_mut(s![.., ..;2]);
        gemm(av, bv, &mut c, false);
        for ((i, j), &w) in want.indexed_iter() {
            assert!((c[[i, j]] as f64 - w).abs() < 1e-4, "({i},{j})");
        }
        assert!(big.slice(s![.., 1..;2]).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn prepared_products_into_strided_outputs() {
        for m in [1, 3, 9] {
            let a = filled(m, 40, 7, false);
            let b = filled(40, 150, 8, true);
            let want = naive(&a.view(), &b.view());
            let mut big = Array2::<f32>::from_elem((m, 300), 1.0);
            let mut c = big.slice_mut(s![.., ..;2]); // column stride 2
            Prepared::new(b.view(), m).mul(a.view(), &mut c, true);
            for ((i, j), &w) in want.indexed_iter() {
                assert!(
                    (c[[i, j]] as f64 - (w + 1.0)).abs() < 1e-4,
                    "m={m} ({i},{j})"
                );
            }
            assert!(big.slice(s![.., 1..;2]).iter().all(|&v| v == 1.0));
        }
    }

    #[test]
    fn big_products_split_over_threads_match() {
        // Above the (test build's) parallel threshold; split when two threads are allowed.
        crate::runtime::set_num_threads(2);
        check(128, 512, 640, false, true, true);
        check(64, 200, 300, true, false, false);
        crate::runtime::set_num_threads(0);
    }
}
