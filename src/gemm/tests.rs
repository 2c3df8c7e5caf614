//! Unit tests of the GEMM: every path against a naive sum, over awkward shapes and layouts.

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
    crate::threads::set_num_threads(2);
    check(128, 512, 640, false, true, true);
    check(64, 200, 300, true, false, false);
    crate::threads::set_num_threads(0);
}
