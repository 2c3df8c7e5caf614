//! Edge sizes (T, B, I or H equal to 1) and non-standard memory layouts (Fortran-order weights and
//! states, permuted inputs and gradients) give `Ok` and exactly the numbers of the standard layout.

use crate::common::*;
use ndarray::{Array, Array2, Array3, Dimension, ShapeBuilder};
use recurrent::{
    cell::CellWeights, Cell, GruCell, Linear, LstmCell, LstmState, Nonlinearity, Params, Recurrent,
    RnnCell, State,
};

const SIZES: [(usize, usize, usize, usize); 5] = [
    (1, 1, 1, 1),
    (1, 3, 2, 5),
    (4, 1, 3, 1),
    (5, 2, 4, 1),
    (3, 2, 1, 2),
];

/// The same values in Fortran (column-major) order.
fn fortran<D: Dimension>(a: &Array<f64, D>) -> Array<f64, D> {
    let mut f = Array::zeros(a.raw_dim().f());
    f.assign(a);
    f
}

/// The same values as a non-contiguous view-backed copy: stored `(B, T, F)`, viewed `(T, B, F)`.
fn permuted(a: &Array3<f64>) -> Array3<f64> {
    a.clone()
        .permuted_axes([1, 0, 2])
        .as_standard_layout()
        .into_owned()
        .permuted_axes([1, 0, 2])
}

fn fortran_weights(w: &CellWeights<f64>) -> CellWeights<f64> {
    CellWeights {
        weight_ih: fortran(&w.weight_ih),
        weight_hh: fortran(&w.weight_hh),
        bias_ih: w.bias_ih.clone(),
        bias_hh: w.bias_hh.clone(),
        weight_hr: w.weight_hr.clone(),
    }
}

fn same<C: Cell<f64>>(
    a: Recurrent<C>,
    b: Recurrent<C>,
    init_a: C::State,
    init_b: C::State,
    dims: (usize, usize, usize, usize),
) {
    let (t, bsz, i, h) = dims;
    let mut r = rng(7);
    let x: Array3<f64> = randn3((t, bsz, i), 1.0, &mut r);
    let d: Array3<f64> = randn3((t, bsz, h), 1.0, &mut r);
    let (oa, sa, ta) = a.forward(x.view(), Some(&init_a), None).unwrap();
    let (ob, sb, tb) = b.forward(permuted(&x).view(), Some(&init_b), None).unwrap();
    assert_eq!(oa, ob, "{dims:?}");
    let (ia, _) = a.infer(x.view(), Some(&init_a), None).unwrap();
    let (ib, _) = b.infer(permuted(&x).view(), Some(&init_b), None).unwrap();
    assert_eq!(ia, ib, "{dims:?}");
    for ((_, p), (_, q)) in sa.parts().into_iter().zip(sb.parts()) {
        assert_eq!(p, q, "{dims:?}");
    }
    let (mut ga, mut gb) = (a.zeros_like(), b.zeros_like());
    let (dxa, d0a) = a.backward(&ta, d.view(), Some(&init_a), &mut ga).unwrap();
    let (dxb, d0b) = b
        .backward(&tb, permuted(&d).view(), Some(&init_b), &mut gb)
        .unwrap();
    assert_eq!(dxa, dxb, "{dims:?}");
    for ((_, p), (_, q)) in d0a.parts().into_iter().zip(d0b.parts()) {
        assert_eq!(p, q, "{dims:?}");
    }
    assert_eq!(ga.arrays(), gb.arrays(), "{dims:?}");
}

#[test]
fn rnn_edge_sizes_and_layouts() {
    for dims in SIZES {
        let (_, b, i, h) = dims;
        let cell = RnnCell::<f64>::new(i, h, Nonlinearity::Tanh, &mut rng(1)).unwrap();
        let f = RnnCell::from_weights(fortran_weights(cell.weights()), Nonlinearity::Tanh).unwrap();
        let init: Array2<f64> = rand_state(b, h, 0.5, &mut rng(2));
        same(
            Recurrent::new(cell),
            Recurrent::new(f),
            init.clone(),
            fortran(&init),
            dims,
        );
    }
}

#[test]
fn lstm_edge_sizes_and_layouts() {
    for dims in SIZES {
        let (_, b, i, h) = dims;
        let cell = LstmCell::<f64>::new(i, h, &mut rng(3)).unwrap();
        let f = LstmCell::from_weights(fortran_weights(cell.weights())).unwrap();
        let init: LstmState<f64> = rand_state(b, h, 0.5, &mut rng(4));
        let init_f = LstmState {
            h: fortran(&init.h),
            c: fortran(&init.c),
        };
        same(Recurrent::new(cell), Recurrent::new(f), init, init_f, dims);
    }
}

#[test]
fn gru_edge_sizes_and_layouts() {
    for dims in SIZES {
        let (_, b, i, h) = dims;
        let cell = GruCell::<f64>::new(i, h, &mut rng(5)).unwrap();
        let f = GruCell::from_weights(fortran_weights(cell.weights())).unwrap();
        let init: Array2<f64> = rand_state(b, h, 0.5, &mut rng(6));
        same(
            Recurrent::new(cell),
            Recurrent::new(f),
            init.clone(),
            fortran(&init),
            dims,
        );
    }
}

#[test]
fn linear_edge_sizes_and_layouts() {
    for (n, i, o) in [(1, 1, 1), (3, 4, 1), (1, 1, 5), (2, 3, 2)] {
        let a = Linear::<f64>::new(i, o, &mut rng(8)).unwrap();
        let b = Linear::from_weights(fortran(a.weight()), a.bias().cloned()).unwrap();
        let x: Array3<f64> = randn3((n, 2, i), 1.0, &mut rng(9));
        let (ya, ta) = a.forward(x.view()).unwrap();
        let (yb, tb) = b.forward(permuted(&x).view()).unwrap();
        assert_eq!(ya, yb);
        let d: Array3<f64> = randn3(ya.dim(), 1.0, &mut rng(10));
        let (mut ga, mut gb) = (a.zeros_like(), b.zeros_like());
        let dxa = a.backward(&ta, d.view(), &mut ga).unwrap();
        let dxb = b.backward(&tb, permuted(&d).view(), &mut gb).unwrap();
        assert_eq!(dxa, dxb);
        assert_eq!(ga.arrays(), gb.arrays());
    }
}
