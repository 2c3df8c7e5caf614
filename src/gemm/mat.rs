//! Lifetime-carrying `f32` matrix handles for the raw kernels.
//!
//! A [`MatRef`] or [`MatMut`] is a pointer, a shape and element strides that borrow an `ndarray`
//! view for `'a`: it is made only from an `f32` view (or as a sub-block of another handle), so
//! every element `(i, j)` with `i < rows` and `j < cols` is valid `f32` memory for `'a` — shared
//! for [`MatRef`], exclusive for [`MatMut`]. The kernels need raw pointers for their loads and
//! stores; the handles keep the shape beside them so each `unsafe` block can argue its bounds.
//!
//! Neither handle is `Send`: a product split over threads splits its `ndarray` views first and
//! makes handles on each thread (see [`super::threading`]).

use std::marker::PhantomData;

use ndarray::{ArrayView2, ArrayViewMut2};

/// A read-only `f32` matrix borrowed for `'a`: pointer, shape and element strides.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a> {
    ptr: *const f32,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
    _borrow: PhantomData<&'a f32>,
}

impl<'a> MatRef<'a> {
    /// The handle of `v`'s elements.
    #[inline]
    pub(crate) fn new(v: ArrayView2<'a, f32>) -> MatRef<'a> {
        let (rows, cols) = v.dim();
        let s = v.strides();
        MatRef {
            ptr: v.as_ptr(),
            rows,
            cols,
            rs: s[0],
            cs: s[1],
            _borrow: PhantomData,
        }
    }

    /// Number of rows.
    #[inline(always)]
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    #[inline(always)]
    pub(crate) fn cols(&self) -> usize {
        self.cols
    }

    /// Row stride, in elements.
    #[inline(always)]
    pub(crate) fn rs(&self) -> isize {
        self.rs
    }

    /// Column stride, in elements.
    #[inline(always)]
    pub(crate) fn cs(&self) -> isize {
        self.cs
    }

    /// A pointer to element `(i, j)`, valid for reads for `'a`.
    ///
    /// # Safety
    ///
    /// `(i, j)` must lie inside the matrix: `i < self.rows()` and `j < self.cols()`.
    #[inline(always)]
    pub(crate) unsafe fn at(self, i: usize, j: usize) -> *const f32 {
        debug_assert!(
            i < self.rows && j < self.cols,
            "({i}, {j}) outside the matrix"
        );
        // SAFETY: `offset` needs the result inside the same allocation as `ptr`: (i, j) is an
        // element of the view this handle was made from (the caller's contract), so the offset
        // lands on that element.
        unsafe { self.ptr.offset(i as isize * self.rs + j as isize * self.cs) }
    }
}

/// A writable `f32` matrix borrowed exclusively for `'a`: pointer, shape and element strides.
pub(crate) struct MatMut<'a> {
    ptr: *mut f32,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
    _borrow: PhantomData<&'a mut f32>,
}

impl<'a> MatMut<'a> {
    /// The handle of `v`'s elements.
    #[inline]
    pub(crate) fn new(mut v: ArrayViewMut2<'a, f32>) -> MatMut<'a> {
        let (rows, cols) = v.dim();
        let s = v.strides();
        let (rs, cs) = (s[0], s[1]);
        MatMut {
            ptr: v.as_mut_ptr(),
            rows,
            cols,
            rs,
            cs,
            _borrow: PhantomData,
        }
    }

    /// Number of rows.
    #[inline(always)]
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    #[inline(always)]
    pub(crate) fn cols(&self) -> usize {
        self.cols
    }

    /// Column stride, in elements.
    #[inline(always)]
    pub(crate) fn cs(&self) -> isize {
        self.cs
    }

    /// A pointer to element `(i, j)`, valid for reads and writes while `self` is borrowed.
    ///
    /// # Safety
    ///
    /// `(i, j)` must lie inside the matrix: `i < self.rows()` and `j < self.cols()`.
    #[inline(always)]
    pub(crate) unsafe fn at(&mut self, i: usize, j: usize) -> *mut f32 {
        debug_assert!(
            i < self.rows && j < self.cols,
            "({i}, {j}) outside the matrix"
        );
        // SAFETY: `offset` needs the result inside the same allocation as `ptr`: (i, j) is an
        // element of the view this handle was made from (the caller's contract), so the offset
        // lands on that element.
        unsafe { self.ptr.offset(i as isize * self.rs + j as isize * self.cs) }
    }

    /// The `rows × cols` block whose corner is `(i, j)`, borrowed from `self`.
    ///
    /// # Panics
    ///
    /// If the block is empty or does not lie inside the matrix.
    #[inline(always)]
    pub(crate) fn block(&mut self, i: usize, j: usize, rows: usize, cols: usize) -> MatMut<'_> {
        assert!(
            rows > 0
                && cols > 0
                && rows <= self.rows.saturating_sub(i)
                && cols <= self.cols.saturating_sub(j),
            "block ({i}, {j}) + ({rows}, {cols}) outside a ({}, {}) matrix",
            self.rows,
            self.cols
        );
        MatMut {
            // SAFETY: the assertion puts (i, j) inside the matrix (rows, cols > 0 and within).
            ptr: unsafe { self.at(i, j) },
            rows,
            cols,
            rs: self.rs,
            cs: self.cs,
            _borrow: PhantomData,
        }
    }
}
