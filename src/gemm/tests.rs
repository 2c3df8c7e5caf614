//! Unit tests of the GEMM: every path against a naive sum, over awkward shapes and layouts.
//!
//! Each test runs on every path this CPU supports, called explicitly ([`gemm_on`],
//! [`Prepared::new_on`]) rather than through the process-global [`crate::isa::set_isa`], which
//! tests running in parallel would race on.

use super::*;
use ndarray::{s, Array2, ShapeBuilder};

/// Every path this CPU can run, with its name for messages.
fn paths() -> Vec<(&'static str, Isa)> {
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut paths = vec![("portable", Isa::Portable)];
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(isa) = avx2::Avx2::detect() {
            paths.push(("avx2", Isa::Avx2(isa)));
        }
        if let Some(isa) = avx512::Avx512::detect() {
            paths.push(("avx512", Isa::Avx512(isa)));
        }
    }
    paths
}

#[test]
fn every_supported_path_is_tested() {
    let names: Vec<_> = paths().into_iter().map(|(name, _)| name).collect();
    for isa in crate::isa::Isa::ALL {
        assert_eq!(
            isa.is_supported(),
            names.contains(&isa.name()),
            "{isa}: supported but not tested, or tested but not supported"
        );
    }
}

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

/// Checks `gemm` and `Prepared` products (prepared for `m` rows, and for the other side of
/// [`SMALL_M`] too) on every path against the naive sum.
fn check(m: usize, n: usize, k: usize, at: bool, bt: bool, accumulate: bool) {
    let a = filled(m, k, 1, at);
    let b = filled(k, n, 2, bt);
    let c0 = filled(m, n, 3, false);
    let mut want = naive(&a.view(), &b.view());
    if accumulate {
        want += &c0.mapv(f64::from);
    }
    let other_m = if m <= SMALL_M { SMALL_M + 1 } else { 1 };
    for (path, isa) in paths() {
        let mut c = c0.clone();
        gemm_on(isa, a.view(), b.view(), &mut c.view_mut(), accumulate);
        let mut c2 = c0.clone();
        Prepared::new_on(isa, b.view(), m).mul(a.view(), &mut c2.view_mut(), accumulate);
        let mut c3 = c0.clone();
        Prepared::new_on(isa, b.view(), other_m).mul(a.view(), &mut c3.view_mut(), accumulate);
        for (form, got) in [("gemm", &c), ("prepared", &c2), ("prepared/other", &c3)] {
            for ((i, j), &w) in want.indexed_iter() {
                let g = got[[i, j]] as f64;
                assert!(
                    (g - w).abs() <= 1e-5 * (1.0 + w.abs()) * (k as f64).sqrt().max(1.0),
                    "{path} {form} m={m} n={n} k={k} at={at} bt={bt} acc={accumulate} \
                     ({i},{j}): {g} vs {w}"
                );
            }
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
        (5, 1, 1),
        (1, 17, 5),
        (2, 63, 65),
        (6, 16, 1),
        (12, 32, 64),
        (13, 47, 129),
        (63, 65, 17),
        (65, 63, 300),
        (253, 31, 260),
        (4, 300, 63),
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
    for (path, isa) in paths() {
        let mut big = Array2::<f32>::zeros((20, 100));
        let mut c = big.slice_mut(s![.., ..;2]);
        gemm_on(isa, av, bv, &mut c, false);
        for ((i, j), &w) in want.indexed_iter() {
            assert!((c[[i, j]] as f64 - w).abs() < 1e-4, "{path} ({i},{j})");
        }
        assert!(big.slice(s![.., 1..;2]).iter().all(|&v| v == 0.0), "{path}");
        // Row-major c, a few rows of a strided a (packed, not read in place), both Prepared forms.
        for m in [3, 20] {
            let av = av.slice(s![..m, ..]);
            let mut c = Array2::<f32>::from_elem((m, 50), 2.0);
            Prepared::new_on(isa, bv, m).mul(av, &mut c.view_mut(), true);
            for ((i, j), &w) in want.slice(s![..m, ..]).indexed_iter() {
                assert!(
                    (c[[i, j]] as f64 - (w + 2.0)).abs() < 1e-4,
                    "{path} m={m} ({i},{j})"
                );
            }
        }
    }
}

#[test]
fn prepared_products_into_strided_outputs() {
    for (path, isa) in paths() {
        for m in [1, 3, 4, 5, 9] {
            let a = filled(m, 40, 7, false);
            let b = filled(40, 150, 8, true);
            let want = naive(&a.view(), &b.view());
            let mut big = Array2::<f32>::from_elem((m, 300), 1.0);
            let mut c = big.slice_mut(s![.., ..;2]); // column stride 2
            Prepared::new_on(isa, b.view(), m).mul(a.view(), &mut c, true);
            for ((i, j), &w) in want.indexed_iter() {
                assert!(
                    (c[[i, j]] as f64 - (w + 1.0)).abs() < 1e-4,
                    "{path} m={m} ({i},{j})"
                );
            }
            assert!(
                big.slice(s![.., 1..;2]).iter().all(|&v| v == 1.0),
                "{path} m={m}"
            );
        }
    }
}

#[test]
fn prepared_products_repeat_with_fresh_rows() {
    // One Prepared operand, many products (the recurrent weights over a sequence).
    for (path, isa) in paths() {
        for m in [1, 2, 4, 7, 64] {
            let b = filled(65, 130, 9, true);
            let prepared = Prepared::new_on(isa, b.view(), m);
            for step in 0..3 {
                let a = filled(m, 65, 10 + step, step % 2 == 1);
                let want = naive(&a.view(), &b.view());
                let mut c = Array2::<f32>::zeros((m, 130));
                prepared.mul(a.view(), &mut c.view_mut(), false);
                for ((i, j), &w) in want.indexed_iter() {
                    assert!(
                        (c[[i, j]] as f64 - w).abs() < 1e-4,
                        "{path} m={m} step={step} ({i},{j})"
                    );
                }
            }
        }
    }
}

#[test]
fn f64_products_take_the_portable_route_on_every_path() {
    let a = filled(7, 9, 11, false).mapv(f64::from);
    let b = filled(9, 5, 12, true).mapv(f64::from);
    let want = a.dot(&b);
    for (path, isa) in paths() {
        let mut c = Array2::<f64>::zeros((7, 5));
        gemm_on(isa, a.view(), b.view(), &mut c.view_mut(), false);
        let mut c2 = Array2::<f64>::zeros((7, 5));
        Prepared::new_on(isa, b.view(), 2).mul(a.view(), &mut c2.view_mut(), false);
        for got in [&c, &c2] {
            assert!(
                got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-12),
                "{path}"
            );
        }
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

/// Each entry of a product with a blocked right-hand side (`gemm`, or `Prepared` for more than
/// [`SMALL_M`] rows) is computed in the same order whatever the number of rows: a row alone (a
/// one-row tile) and the same row inside a product of many rows (whole tiles, or the last row of
/// a ragged one) are bit-identical, also past the depth block (`k` > 256) and when accumulating.
/// [`crate::layer::Stream`] relies on it to equal the whole-sequence path bit for bit.
#[test]
fn blocked_products_give_each_row_the_same_bits_whatever_the_rows() {
    for (path, isa) in paths() {
        for &(m, n, k) in &[(7, 70, 33), (13, 130, 300), (25, 64, 513)] {
            let a = filled(m, k, 21, false);
            let b = filled(k, n, 22, true);
            let c0 = filled(m, n, 23, false);
            let prepared = Prepared::new_on(isa, b.view(), SMALL_M + 1);
            for accumulate in [false, true] {
                let mut whole = c0.clone();
                gemm_on(isa, a.view(), b.view(), &mut whole.view_mut(), accumulate);
                let mut whole_p = c0.clone();
                prepared.mul(a.view(), &mut whole_p.view_mut(), accumulate);
                assert_eq!(whole, whole_p, "{path} {m}x{n}x{k}: raw vs prepared");
                for i in [0, m / 2, m - 1] {
                    let row = a.slice(s![i..i + 1, ..]);
                    let mut one = c0.slice(s![i..i + 1, ..]).to_owned();
                    gemm_on(isa, row, b.view(), &mut one.view_mut(), accumulate);
                    assert_eq!(one.row(0), whole.row(i), "{path} {m}x{n}x{k} row {i} raw");
                    let mut one_p = c0.slice(s![i..i + 1, ..]).to_owned();
                    prepared.mul(row, &mut one_p.view_mut(), accumulate);
                    assert_eq!(
                        one_p.row(0),
                        whole.row(i),
                        "{path} {m}x{n}x{k} row {i} prepared"
                    );
                }
            }
        }
    }
}
