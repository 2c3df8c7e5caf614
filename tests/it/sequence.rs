//! Whole-sequence paths against the step-by-step reference, truncated BPTT, inference, and
//! hand-computed 1×1 cases.

use crate::common::*;
use ndarray::{arr1, arr2, Array2, Array3, Axis};
use recurrent::cell::{backward_steps, forward_steps, Schedule};
use recurrent::{
    cell::CellWeights, Cell, Float, GruCell, LstmCell, LstmState, Nonlinearity, Params, Recurrent,
    RnnCell, State,
};

const T: usize = 7;
const B: usize = 3;
const I: usize = 4;
const H: usize = 5;

/// (relative tolerance, absolute floor of the denominator). Summation order differs between the
/// batched and the per-step paths, so f32 values that are small differences of O(1) terms agree
/// only to about 1e-6 absolute.
const F64_TOL: (f64, f64) = (1e-12, 1e-6);
const F32_TOL: (f64, f64) = (1e-5, 1e-1);

/// The fast whole-sequence forward and backward equal chaining `step` / `backward_step`:
/// outputs, final state, every parameter gradient, the input gradient and the initial-state
/// gradient — forward and reversed, over full-length and padded batches.
fn stepwise_equals_sequence<F: Float, C: Cell<F>>(cell: C, tol: (f64, f64), seed: u64) {
    stepwise_equals_sequence_shaped(cell, tol, seed, T, &[T, 3, 5]);
}

/// [`stepwise_equals_sequence`] over `steps` steps and one sequence per entry of `lengths`.
fn stepwise_equals_sequence_shaped<F: Float, C: Cell<F>>(
    cell: C,
    (tol, floor): (f64, f64),
    seed: u64,
    steps: usize,
    lengths: &[usize],
) {
    let batch = lengths.len();
    for schedule in [
        Schedule::FORWARD,
        Schedule::REVERSE,
        Schedule {
            reverse: false,
            lengths: Some(lengths),
        },
        Schedule {
            reverse: true,
            lengths: Some(lengths),
        },
    ] {
        let label = format!("{schedule:?}");
        let mut r = rng(seed);
        let x: Array3<F> = randn3((steps, batch, I), 1.0, &mut r);
        // Shaped by the cell: a projected LSTM's `h` is narrower than `H`.
        let init: C::State = randomized(cell.zero_state(batch), 0.5, &mut r);
        let mut rw = rng(seed + 1);
        let w_out: Array3<F> = randn3((steps, batch, cell.output_size()), 1.0, &mut rw);
        let w_final: C::State = randomized(cell.zero_state(batch), 1.0, &mut rw);

        let (out_seq, last_seq, tape) = cell.forward_sequence(x.view(), &init, schedule);
        let (out_step, last_step, caches) = forward_steps(&cell, x.view(), &init, schedule);
        assert_close(
            &out_seq.view().into_dyn(),
            &out_step.view().into_dyn(),
            tol,
            floor,
            &format!("{label} outputs"),
        );
        for ((name, a), (_, b)) in last_seq.parts().into_iter().zip(last_step.parts()) {
            assert_close(
                &a.into_dyn(),
                &b.into_dyn(),
                tol,
                floor,
                &format!("{label} final {name}"),
            );
        }

        let mut g_seq = cell.zeros_like();
        let (dx_seq, d0_seq) = cell.backward_sequence(&tape, w_out.view(), &w_final, &mut g_seq);
        let mut g_step = cell.zeros_like();
        let (dx_step, d0_step) = backward_steps(
            &cell,
            &caches,
            w_out.view(),
            &w_final,
            schedule,
            &mut g_step,
        );
        assert_close(
            &dx_seq.view().into_dyn(),
            &dx_step.view().into_dyn(),
            tol,
            floor,
            &format!("{label} dx"),
        );
        for ((name, a), (_, b)) in d0_seq.parts().into_iter().zip(d0_step.parts()) {
            assert_close(
                &a.into_dyn(),
                &b.into_dyn(),
                tol,
                floor,
                &format!("{label} d_init.{name}"),
            );
        }
        for ((name, a), (_, b)) in g_seq.named_arrays().into_iter().zip(g_step.named_arrays()) {
            assert_close(&a, &b, tol, floor, &format!("{label} {name}"));
        }
        assert!(g_seq.global_norm() > 0.0);

        // Inference gives the same numbers as the training forward.
        let (out_inf, last_inf) = cell.infer_sequence(x.view(), &init, schedule);
        assert_eq!(out_inf, out_seq, "{label}");
        for ((_, a), (_, b)) in last_inf.parts().into_iter().zip(last_seq.parts()) {
            assert_eq!(a, b, "{label}");
        }
        // Padded steps output zeros and take no input gradient.
        if let Some(l) = schedule.lengths {
            for (b, &len) in l.iter().enumerate() {
                for t in len..steps {
                    assert!(out_seq
                        .slice(ndarray::s![t, b, ..])
                        .iter()
                        .all(|v| *v == F::zero()));
                    assert!(dx_seq
                        .slice(ndarray::s![t, b, ..])
                        .iter()
                        .all(|v| *v == F::zero()));
                }
            }
        }
    }
}

#[test]
fn stepwise_equals_sequence_rnn_tanh() {
    stepwise_equals_sequence(
        RnnCell::<f64>::new(I, H, Nonlinearity::Tanh, &mut rng(1)).unwrap(),
        F64_TOL,
        1,
    );
    stepwise_equals_sequence(
        RnnCell::<f32>::new(I, H, Nonlinearity::Tanh, &mut rng(1)).unwrap(),
        F32_TOL,
        1,
    );
}

#[test]
fn stepwise_equals_sequence_rnn_relu() {
    stepwise_equals_sequence(
        RnnCell::<f64>::new(I, H, Nonlinearity::Relu, &mut rng(2)).unwrap(),
        F64_TOL,
        2,
    );
    stepwise_equals_sequence(
        RnnCell::<f32>::new(I, H, Nonlinearity::Relu, &mut rng(2)).unwrap(),
        F32_TOL,
        2,
    );
}

/// ReLU propagates NaN as PyTorch does (`torch.relu(nan)` is `nan`): a NaN input makes the
/// hidden state of its sequence NaN, on the sequence path and the step path alike; the other
/// sequence of the batch stays finite.
#[test]
fn relu_propagates_nan() {
    let cell = RnnCell::<f32>::new(I, H, Nonlinearity::Relu, &mut rng(5)).unwrap();
    let mut x = Array3::<f32>::from_elem((T, 2, I), 0.5);
    x[[2, 0, 1]] = f32::NAN;
    let (out, last) = cell.infer_sequence(x.view(), &Array2::zeros((2, H)), Schedule::FORWARD);
    assert!(out
        .index_axis(Axis(1), 0)
        .iter()
        .skip(2 * H)
        .all(|v| v.is_nan()));
    assert!(last.row(0).iter().all(|v| v.is_nan()));
    assert!(out.index_axis(Axis(1), 1).iter().all(|v| v.is_finite()));
    let (h, _) = cell.step(x.index_axis(Axis(0), 2), &Array2::zeros((2, H)));
    assert!(h.row(0).iter().all(|v| v.is_nan()));
    assert!(h.row(1).iter().all(|v| v.is_finite()));
}

#[test]
fn stepwise_equals_sequence_gru() {
    stepwise_equals_sequence(
        GruCell::<f64>::new(I, H, &mut rng(21)).unwrap(),
        F64_TOL,
        21,
    );
    stepwise_equals_sequence(
        GruCell::<f32>::new(I, H, &mut rng(21)).unwrap(),
        F32_TOL,
        21,
    );
    stepwise_equals_sequence(
        GruCell::<f64>::with_bias(I, H, false, &mut rng(22)).unwrap(),
        F64_TOL,
        22,
    );
}

#[test]
fn stepwise_equals_sequence_layer_norm_lstm() {
    stepwise_equals_sequence(layer_norm_lstm::<f64>(I, H, true, 23), F64_TOL, 23);
    stepwise_equals_sequence(layer_norm_lstm::<f32>(I, H, true, 23), F32_TOL, 23);
    stepwise_equals_sequence(layer_norm_lstm::<f64>(I, H, false, 24), F64_TOL, 24);
}

/// The backward pass forms weight gradients a chunk of steps at a time (512 gate rows): sequences
/// long enough to span several chunks, with padding crossing a chunk boundary, give the same
/// numbers as the step-by-step reference.
#[test]
fn long_sequences_span_several_backward_chunks() {
    let mut r = rng(41);
    let lengths = [700, 260];
    stepwise_equals_sequence_shaped(
        LstmCell::<f64>::new(I, H, &mut r).unwrap(),
        F64_TOL,
        42,
        700,
        &lengths,
    );
    stepwise_equals_sequence_shaped(
        GruCell::<f64>::new(I, H, &mut r).unwrap(),
        F64_TOL,
        43,
        700,
        &lengths,
    );
    // f32 takes the crate's own GEMM on AVX-512 CPUs (packed weights, fused weight gradients).
    // Weight and bias gradients here are sums over 1400 rows, summed in a different order by the
    // two paths: f32 rounding alone allows ~n·ε ≈ 1400 · 6e-8 ≈ 8e-5 relative difference, so the
    // tolerance is 2e-4 (the chunking errors this test is for — stale rows, wrong offsets — are
    // of order 1).
    const F32_LONG_TOL: (f64, f64) = (2e-4, 1e-1);
    stepwise_equals_sequence_shaped(
        LstmCell::<f32>::new(I, H, &mut r).unwrap(),
        F32_LONG_TOL,
        44,
        700,
        &lengths,
    );
    stepwise_equals_sequence_shaped(
        GruCell::<f32>::new(I, H, &mut r).unwrap(),
        F32_LONG_TOL,
        45,
        700,
        &lengths,
    );
}

/// A projected LSTM (PyTorch's `proj_size`): the engine's sequence path, with its per-step
/// projection and chunked `dW_hr`, equals the single-step path, also over several backward chunks.
#[test]
fn stepwise_equals_sequence_projected_lstm() {
    stepwise_equals_sequence(
        LstmCell::<f64>::projected(I, H, 2, true, &mut rng(5)).unwrap(),
        F64_TOL,
        5,
    );
    stepwise_equals_sequence(
        LstmCell::<f32>::projected(I, H, 3, true, &mut rng(6)).unwrap(),
        F32_TOL,
        6,
    );
    stepwise_equals_sequence_shaped(
        LstmCell::<f64>::projected(I, H, 2, false, &mut rng(7)).unwrap(),
        F64_TOL,
        7,
        300,
        &[300, 110],
    );
}

#[test]
fn stepwise_equals_sequence_lstm() {
    stepwise_equals_sequence(LstmCell::<f64>::new(I, H, &mut rng(3)).unwrap(), F64_TOL, 3);
    stepwise_equals_sequence(LstmCell::<f32>::new(I, H, &mut rng(3)).unwrap(), F32_TOL, 3);
    stepwise_equals_sequence(
        LstmCell::<f64>::with_bias(I, H, false, &mut rng(4)).unwrap(),
        F64_TOL,
        4,
    );
}

/// Truncated BPTT by chaining: running chunks of 3 and 4 steps, passing the final state on, gives
/// the whole sequence's outputs; running backward newest chunk first and passing the gradient of
/// the second chunk's initial state as the first chunk's `d_final` gives the whole sequence's
/// gradients. Cutting the chain (`None`) changes the first chunk's gradients.
fn chunks_chain<F: Float, C: Cell<F>>(cell: C, (tol, floor): (f64, f64), seed: u64) {
    let mut r = rng(seed);
    let layer = Recurrent::new(cell);
    let x: Array3<F> = randn3((T, B, I), 1.0, &mut r);
    let init: C::State = rand_state(B, H, 0.5, &mut r);
    let (w_out, w_final) = loss_weights::<F, C::State>(T, B, H, seed + 1);

    let (out, last, tape) = layer.forward(x.view(), Some(&init), None).unwrap();
    let mut g_full = layer.zeros_like();
    let (dx_full, d0_full) = layer
        .backward(&tape, w_out.view(), Some(&w_final), &mut g_full)
        .unwrap();

    let split = 3;
    let (x1, x2) = x.view().split_at(Axis(0), split);
    let (o1, s1, tape1) = layer.forward(x1, Some(&init), None).unwrap();
    let (o2, s2, tape2) = layer.forward(x2, Some(&s1), None).unwrap();
    let out_chunks = ndarray::concatenate(Axis(0), &[o1.view(), o2.view()]).unwrap();
    assert_close(
        &out_chunks.view().into_dyn(),
        &out.view().into_dyn(),
        tol,
        floor,
        "chunked outputs",
    );
    for ((name, a), (_, b)) in s2.parts().into_iter().zip(last.parts()) {
        assert_close(
            &a.into_dyn(),
            &b.into_dyn(),
            tol,
            floor,
            &format!("chunked final {name}"),
        );
    }

    let (w1, w2) = w_out.view().split_at(Axis(0), split);
    let mut g = layer.zeros_like();
    let (dx2, d_s1) = layer.backward(&tape2, w2, Some(&w_final), &mut g).unwrap();
    let (dx1, d0) = layer.backward(&tape1, w1, Some(&d_s1), &mut g).unwrap();
    let dx = ndarray::concatenate(Axis(0), &[dx1.view(), dx2.view()]).unwrap();
    assert_close(
        &dx.view().into_dyn(),
        &dx_full.view().into_dyn(),
        tol,
        floor,
        "chunked dx",
    );
    for ((name, a), (_, b)) in d0.parts().into_iter().zip(d0_full.parts()) {
        assert_close(
            &a.into_dyn(),
            &b.into_dyn(),
            tol,
            floor,
            &format!("chunked d_init.{name}"),
        );
    }
    for ((name, a), (_, b)) in g.named_arrays().into_iter().zip(g_full.named_arrays()) {
        assert_close(&a, &b, tol, floor, &format!("chunked {name}"));
    }

    // Cut at the border: the first chunk no longer sees the second chunk's loss.
    let mut g_cut = layer.zeros_like();
    let (dx1_cut, _) = layer.backward(&tape1, w1, None, &mut g_cut).unwrap();
    let diff: f64 = (&dx1_cut - &dx1).iter().map(|v| v.as_f64().abs()).sum();
    assert!(
        diff > 1e-3,
        "cutting the gradient must change the first chunk's dx"
    );
}

#[test]
fn truncated_bptt_chains_rnn() {
    chunks_chain(
        RnnCell::<f64>::new(I, H, Nonlinearity::Tanh, &mut rng(5)).unwrap(),
        F64_TOL,
        5,
    );
    chunks_chain(
        RnnCell::<f32>::new(I, H, Nonlinearity::Relu, &mut rng(6)).unwrap(),
        F32_TOL,
        6,
    );
}

#[test]
fn truncated_bptt_chains_lstm() {
    chunks_chain(LstmCell::<f64>::new(I, H, &mut rng(7)).unwrap(), F64_TOL, 7);
    chunks_chain(LstmCell::<f32>::new(I, H, &mut rng(8)).unwrap(), F32_TOL, 8);
}

/// Gradients accumulate: two backward passes into one buffer give twice one pass.
#[test]
fn backward_accumulates_into_grads() {
    let layer = Recurrent::new(LstmCell::<f64>::new(I, H, &mut rng(9)).unwrap());
    let x: Array3<f64> = randn3((T, B, I), 1.0, &mut rng(10));
    let (out, _, tape) = layer.forward(x.view(), None, None).unwrap();
    let d = Array3::ones(out.dim());
    let mut once = layer.zeros_like();
    layer.backward(&tape, d.view(), None, &mut once).unwrap();
    let mut twice = layer.zeros_like();
    layer.backward(&tape, d.view(), None, &mut twice).unwrap();
    layer.backward(&tape, d.view(), None, &mut twice).unwrap();
    once.scale(2.0);
    for ((n, a), (_, b)) in twice.named_arrays().into_iter().zip(once.named_arrays()) {
        assert_close(&a, &b, 1e-14, 1e-12, &n);
    }
}

/// Elman RNN, I = H = 1, tanh, w_ih = 0.5, w_hh = −0.3, b_ih = 0.1, b_hh = 0.2, h0 = 0.4,
/// x = [1, 2], loss L = h2.
///
/// ```text
/// p1 = 0.5·1 + 0.1 − 0.3·0.4 + 0.2 = 0.68           h1 = tanh(0.68) = 0.5915193954318164
/// p2 = 0.5·2 + 0.1 − 0.3·h1 + 0.2 = 1.12254418137   h2 = tanh(p2)   = 0.8084520490142135
/// d2 = 1 − h2² = 0.34640528444       dx2 = 0.5·d2 = 0.17320264222235987
/// d1 = −0.3·d2·(1 − h1²)             dx1 = 0.5·d1 = −0.03377996097529723
/// dh0 = −0.3·d1 = 0.020267976585178336
/// dw_hh = d2·h1 + d1·h0 = 0.17788147564888923   dw_ih = 2·d2 + 1·d1 = 0.625250646938845
/// db_ih = db_hh = d2 + d1 = 0.2788453624941253
/// ```
#[test]
fn rnn_hand_computed_1x1() {
    let w = CellWeights {
        weight_ih: arr2(&[[0.5]]),
        weight_hh: arr2(&[[-0.3]]),
        bias_ih: Some(arr1(&[0.1])),
        bias_hh: Some(arr1(&[0.2])),
        weight_hr: None,
    };
    let layer = Recurrent::new(RnnCell::<f64>::from_weights(w, Nonlinearity::Tanh).unwrap());
    let x = Array3::from_shape_vec((2, 1, 1), vec![1.0, 2.0]).unwrap();
    let h0 = arr2(&[[0.4]]);
    let (out, last, tape) = layer.forward(x.view(), Some(&h0), None).unwrap();
    let close = |a: f64, b: f64| approx::assert_abs_diff_eq!(a, b, epsilon = 1e-15);
    close(out[(0, 0, 0)], 0.5915193954318164);
    close(out[(1, 0, 0)], 0.8084520490142135);
    close(last[(0, 0)], 0.8084520490142135);
    // L = h2: the gradient reaches the final state only.
    let mut g = layer.zeros_like();
    let (dx, dh0) = layer
        .backward(
            &tape,
            Array3::zeros((2, 1, 1)).view(),
            Some(&arr2(&[[1.0]])),
            &mut g,
        )
        .unwrap();
    close(dx[(1, 0, 0)], 0.17320264222235987);
    close(dx[(0, 0, 0)], -0.03377996097529723);
    close(dh0[(0, 0)], 0.020267976585178336);
    let w = g.cell().weights();
    close(w.weight_hh[(0, 0)], 0.17788147564888923);
    close(w.weight_ih[(0, 0)], 0.625250646938845);
    close(w.bias_ih.as_ref().unwrap()[0], 0.2788453624941253);
    close(w.bias_hh.as_ref().unwrap()[0], 0.2788453624941253);
}

/// LSTM, I = H = 1, one step. Gate rows in PyTorch order i, f, g, o:
/// w_ih = [0.1, 0.2, 0.3, 0.4], w_hh = [−0.1, 0.5, −0.2, 0.3], b_ih = [0, 1, 0, 0],
/// b_hh = [0.05, 0, −0.05, 0.1], x = 2, h0 = 0.5, c0 = −1; loss L = h1 + c1.
///
/// ```text
/// pre = w_ih·x + b_ih + w_hh·h0 + b_hh = [0.2, 1.65, 0.45, 1.05]
/// i = σ(0.2) = 0.549834   f = σ(1.65) = 0.838891   g = tanh(0.45) = 0.421899   o = σ(1.05) = 0.740775
/// c1 = f·c0 + i·g = −0.6069166339046448          h1 = o·tanh(c1) = −0.40146517710087626
/// dc1 = 1 + o·(1 − tanh²(c1));  dc0 = dc1·f = 1.2777985485641323
/// dh0 = Σ_k dpre_k·w_hh[k] = −0.2877460107869725,  dx = Σ_k dpre_k·w_ih[k] = 0.13963494185264486
/// ```
#[test]
fn lstm_hand_computed_1x1() {
    let w = CellWeights {
        weight_ih: arr2(&[[0.1], [0.2], [0.3], [0.4]]),
        weight_hh: arr2(&[[-0.1], [0.5], [-0.2], [0.3]]),
        bias_ih: Some(arr1(&[0.0, 1.0, 0.0, 0.0])),
        bias_hh: Some(arr1(&[0.05, 0.0, -0.05, 0.1])),
        weight_hr: None,
    };
    let cell = LstmCell::<f64>::from_weights(w).unwrap();
    let state = LstmState {
        h: arr2(&[[0.5]]),
        c: arr2(&[[-1.0]]),
    };
    let (next, cache) = cell.step(arr2(&[[2.0]]).view(), &state);
    let close = |a: f64, b: f64| approx::assert_abs_diff_eq!(a, b, epsilon = 1e-15);
    close(next.c[(0, 0)], -0.6069166339046448);
    close(next.h[(0, 0)], -0.40146517710087626);
    let mut g = cell.zeros_like();
    let d = LstmState {
        h: arr2(&[[1.0]]),
        c: arr2(&[[1.0]]),
    };
    let (dx, d_prev) = cell.backward_step(&cache, &d, &mut g);
    close(d_prev.c[(0, 0)], 1.2777985485641323);
    close(d_prev.h[(0, 0)], -0.2877460107869725);
    close(dx[(0, 0)], 0.13963494185264486);
}

/// Same weights in f32: the same numbers to f32 precision.
#[test]
fn lstm_hand_computed_1x1_f32() {
    let w = CellWeights {
        weight_ih: arr2(&[[0.1f32], [0.2], [0.3], [0.4]]),
        weight_hh: arr2(&[[-0.1f32], [0.5], [-0.2], [0.3]]),
        bias_ih: Some(arr1(&[0.0f32, 1.0, 0.0, 0.0])),
        bias_hh: Some(arr1(&[0.05f32, 0.0, -0.05, 0.1])),
        weight_hr: None,
    };
    let layer = Recurrent::new(LstmCell::<f32>::from_weights(w).unwrap());
    let x = Array3::from_elem((1, 1, 1), 2.0f32);
    let init = LstmState {
        h: arr2(&[[0.5f32]]),
        c: arr2(&[[-1.0f32]]),
    };
    let (_, last, _) = layer.forward(x.view(), Some(&init), None).unwrap();
    assert!((last.c[(0, 0)] - (-0.606_916_6)).abs() < 1e-6);
    assert!((last.h[(0, 0)] - (-0.401_465_2)).abs() < 1e-6);
}

/// GRU, I = H = 1, one step. Gate rows in PyTorch order r, z, n:
/// w_ih = [0.3, −0.2, 0.5], w_hh = [0.4, 0.1, −0.6], b_ih = [0.1, 0, −0.1], b_hh = [0, 0.2, 0.1],
/// x = 1.5, h0 = 0.5; loss L = h1. `b_hn` sits inside `r∘(…)`, as in PyTorch, so its gradient
/// differs from `b_in`'s.
///
/// ```text
/// a_r = 0.3·1.5 + 0.1 + 0.4·0.5 + 0          = 0.75    r = σ(0.75)  = 0.679178699175393
/// a_z = −0.2·1.5 + 0 + 0.1·0.5 + 0.2         = −0.05   z = σ(−0.05) = 0.4875026035157896
/// gh_n = −0.6·0.5 + 0.1 = −0.2   n = tanh(0.5·1.5 − 0.1 + r·gh_n)    = 0.4731834326709886
/// h1 = (1 − z)·n + z·h0                                             = 0.4862565790612381
/// da_n = (1 − z)(1 − n²)         = 0.3977479169289844
/// da_r = da_n·gh_n·r(1 − r)      = −0.017333455975603113
/// da_z = (h0 − n)·z(1 − z)       = 0.006699953488859829
/// dx  = 0.3·da_r − 0.2·da_z + 0.5·da_n                  = 0.1923339309740393
/// dh0 = z + 0.4·da_r + 0.1·da_z − 0.6·r·da_n             = 0.3191540687827044
/// dw_ih = x·[da_r, da_z, da_n]  = [−0.02600018396340467, 0.010049930233289744, 0.5966218753934767]
/// dw_hh = h0·[da_r, da_z, r·da_n]
///       = [−0.008666727987801557, 0.0033499767444299146, 0.13507095640977496]
/// db_ih = [da_r, da_z, da_n]    = [−0.017333455975603113, 0.006699953488859829, 0.3977479169289844]
/// db_hh = [da_r, da_z, r·da_n]  = [−0.017333455975603113, 0.006699953488859829, 0.2701419128195499]
/// ```
///
/// (Central differences of the same equations agree with every number to 1e-10.) Checked on the
/// cell's single step and on the layer's sequence path.
#[test]
fn gru_hand_computed_1x1() {
    let w = CellWeights {
        weight_ih: arr2(&[[0.3], [-0.2], [0.5]]),
        weight_hh: arr2(&[[0.4], [0.1], [-0.6]]),
        bias_ih: Some(arr1(&[0.1, 0.0, -0.1])),
        bias_hh: Some(arr1(&[0.0, 0.2, 0.1])),
        weight_hr: None,
    };
    let cell = GruCell::<f64>::from_weights(w).unwrap();
    let close = |a: f64, b: f64| approx::assert_abs_diff_eq!(a, b, epsilon = 1e-15);
    let h1 = 0.4862565790612381;
    let (dx, dh0) = (0.1923339309740393, 0.3191540687827044);
    let d_w_ih = [
        -0.02600018396340467,
        0.010049930233289744,
        0.5966218753934767,
    ];
    let d_w_hh = [
        -0.008666727987801557,
        0.0033499767444299146,
        0.13507095640977496,
    ];
    let d_b_ih = [
        -0.017333455975603113,
        0.006699953488859829,
        0.3977479169289844,
    ];
    let d_b_hh = [
        -0.017333455975603113,
        0.006699953488859829,
        0.2701419128195499,
    ];
    let check_grads = |g: &CellWeights<f64>| {
        for k in 0..3 {
            close(g.weight_ih[(k, 0)], d_w_ih[k]);
            close(g.weight_hh[(k, 0)], d_w_hh[k]);
            close(g.bias_ih.as_ref().unwrap()[k], d_b_ih[k]);
            close(g.bias_hh.as_ref().unwrap()[k], d_b_hh[k]);
        }
    };

    // The single step.
    let (next, cache) = cell.step(arr2(&[[1.5]]).view(), &arr2(&[[0.5]]));
    close(next[(0, 0)], h1);
    let mut g = cell.zeros_like();
    let (d_x, d_h0) = cell.backward_step(&cache, &arr2(&[[1.0]]), &mut g);
    close(d_x[(0, 0)], dx);
    close(d_h0[(0, 0)], dh0);
    check_grads(g.weights());

    // The sequence path, one step; L = h1 reaches it through the output.
    let layer = Recurrent::new(cell);
    let x = Array3::from_elem((1, 1, 1), 1.5);
    let (out, last, tape) = layer
        .forward(x.view(), Some(&arr2(&[[0.5]])), None)
        .unwrap();
    close(out[(0, 0, 0)], h1);
    close(last[(0, 0)], h1);
    let mut g = layer.zeros_like();
    let (d_x, d_h0) = layer
        .backward(
            &tape,
            Array3::from_elem((1, 1, 1), 1.0).view(),
            None,
            &mut g,
        )
        .unwrap();
    close(d_x[(0, 0, 0)], dx);
    close(d_h0[(0, 0)], dh0);
    check_grads(g.cell().weights());
}

/// A zero initial state is what `None` means.
#[test]
fn none_init_is_zero_state() {
    let layer = Recurrent::new(LstmCell::<f64>::new(I, H, &mut rng(11)).unwrap());
    let x: Array3<f64> = randn3((T, B, I), 1.0, &mut rng(12));
    let (a, _) = layer.infer(x.view(), None, None).unwrap();
    let (b, _) = layer
        .infer(x.view(), Some(&LstmState::zeros(B, H)), None)
        .unwrap();
    assert_eq!(a, b);
    let rnn = Recurrent::new(RnnCell::<f64>::new(I, H, Nonlinearity::Tanh, &mut rng(13)).unwrap());
    let (a, _) = rnn.infer(x.view(), None, None).unwrap();
    let (b, _) = rnn
        .infer(x.view(), Some(&Array2::zeros((B, H))), None)
        .unwrap();
    assert_eq!(a, b);
}

/// Non-standard memory layouts (a transposed view of the input) give the same result.
#[test]
fn non_contiguous_input() {
    let layer = Recurrent::new(LstmCell::<f64>::new(I, H, &mut rng(14)).unwrap());
    let x: Array3<f64> = randn3((T, B, I), 1.0, &mut rng(15));
    let bt = x
        .clone()
        .permuted_axes([1, 0, 2])
        .as_standard_layout()
        .into_owned(); // (B, T, I)
    let view = bt.view().permuted_axes([1, 0, 2]); // (T, B, I), not contiguous
    let (a, _) = layer.infer(x.view(), None, None).unwrap();
    let (b, _) = layer.infer(view, None, None).unwrap();
    assert_eq!(a, b);
}

/// Batches above and below the small-batch threshold take different matrix-product paths; both
/// give the same numbers: a batch of 8 equals its two halves run separately.
#[test]
fn large_and_small_batch_paths_agree() {
    fn check<C: Cell<f64>>(cell: C) {
        let layer = Recurrent::new(cell);
        let mut r = rng(31);
        let x: Array3<f64> = randn3((5, 8, I), 1.0, &mut r);
        let init: C::State = rand_state(8, H, 0.5, &mut r);
        let (w_out, w_final) = loss_weights::<f64, C::State>(5, 8, H, 32);
        let (out, last, tape) = layer.forward(x.view(), Some(&init), None).unwrap();
        let mut g = layer.zeros_like();
        let (dx, d0) = layer
            .backward(&tape, w_out.view(), Some(&w_final), &mut g)
            .unwrap();
        let mut g_halves = layer.zeros_like();
        let half = |s: &C::State, lo: usize| {
            let mut h = C::State::zeros(4, H);
            for (mut dst, (_, src)) in h.parts_mut().into_iter().zip(s.parts()) {
                dst.assign(&src.slice(ndarray::s![lo..lo + 4, ..]));
            }
            h
        };
        for lo in [0, 4] {
            let xs = x.slice(ndarray::s![.., lo..lo + 4, ..]);
            let (o, l, t) = layer.forward(xs, Some(&half(&init, lo)), None).unwrap();
            assert_close(
                &o.view().into_dyn(),
                &out.slice(ndarray::s![.., lo..lo + 4, ..]).into_dyn(),
                1e-12,
                1e-12,
                "out",
            );
            for ((_, a), (_, b)) in l.parts().into_iter().zip(half(&last, lo).parts()) {
                assert_close(&a.into_dyn(), &b.into_dyn(), 1e-12, 1e-12, "final");
            }
            let wo = w_out.slice(ndarray::s![.., lo..lo + 4, ..]);
            let (dxh, d0h) = layer
                .backward(&t, wo, Some(&half(&w_final, lo)), &mut g_halves)
                .unwrap();
            assert_close(
                &dxh.view().into_dyn(),
                &dx.slice(ndarray::s![.., lo..lo + 4, ..]).into_dyn(),
                1e-12,
                1e-12,
                "dx",
            );
            for ((_, a), (_, b)) in d0h.parts().into_iter().zip(half(&d0, lo).parts()) {
                assert_close(&a.into_dyn(), &b.into_dyn(), 1e-12, 1e-12, "d_init");
            }
        }
        for ((n, a), (_, b)) in g_halves.named_arrays().into_iter().zip(g.named_arrays()) {
            assert_close(&a, &b, 1e-11, 1e-12, &n);
        }
    }
    check(LstmCell::<f64>::new(I, H, &mut rng(33)).unwrap());
    check(GruCell::<f64>::new(I, H, &mut rng(34)).unwrap());
    check(layer_norm_lstm::<f64>(I, H, true, 36));
    check(RnnCell::<f64>::new(I, H, Nonlinearity::Tanh, &mut rng(35)).unwrap());
}
