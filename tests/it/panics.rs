//! Every documented panic: one `#[should_panic]` test per condition of each public item's
//! `# Panics` section, named after the item, expecting the text of the assertion that fires.
//!
//! These are the low-level `Cell` methods, the reference loops and two small accessors; the
//! layers check the same conditions and return `Err` instead (`errors.rs`).

use crate::common::*;
use ndarray::{Array2, Array3};
use recurrent::cell::{backward_steps, forward_steps, CellInit, Schedule};
use recurrent::{
    Cell, Gru, GruCell, LstmCell, LstmState, Nonlinearity, Params, RnnCell, StackConfig, State,
};

const I: usize = 3;
const H: usize = 2;

fn rnn() -> RnnCell<f64> {
    RnnCell::new(I, H, Nonlinearity::Tanh, &mut rng(1)).unwrap()
}

fn lstm() -> LstmCell<f64> {
    LstmCell::new(I, H, &mut rng(2)).unwrap()
}

fn gru() -> GruCell<f64> {
    GruCell::new(I, H, &mut rng(3)).unwrap()
}

fn lstm_state(batch: usize, h: usize, c: usize) -> LstmState<f64> {
    LstmState {
        h: Array2::zeros((batch, h)),
        c: Array2::zeros((batch, c)),
    }
}

/// A forward pass of `cell` over `(4, 2, I)` from a zero state, with its tape.
fn tape_of<C: Cell<f64>>(cell: &C) -> C::Tape {
    let x = Array3::zeros((4, 2, I));
    let (_, _, tape) = cell.forward_sequence(x.view(), &cell.zero_state(2), Schedule::FORWARD);
    tape
}

// `State::stack`: "if `states` is empty or the states differ in shape".

#[test]
#[should_panic(expected = "states of one shape")]
fn state_stack_empty() {
    <Array2<f64> as State<f64>>::stack(&[]);
}

#[test]
#[should_panic(expected = "states of one shape")]
fn state_stack_shapes_differ() {
    <Array2<f64> as State<f64>>::stack(&[Array2::zeros((2, 3)), Array2::zeros((2, 4))]);
}

#[test]
#[should_panic(expected = "states of one shape")]
fn state_stack_lstm_empty() {
    LstmState::<f64>::stack(&[]);
}

#[test]
#[should_panic(expected = "states of one shape")]
fn state_stack_lstm_shapes_differ() {
    LstmState::stack(&[lstm_state(2, 3, 3), lstm_state(2, 3, 4)]);
}

// `Cell::step`: "if `x` is not `(B, I)` or a part of `state` is not `(B, H)`".

#[test]
#[should_panic(expected = "x must be (T, B, I)")]
fn cell_step_x_not_b_by_i() {
    rnn().step(Array2::zeros((1, I + 1)).view(), &Array2::zeros((1, H)));
}

#[test]
#[should_panic(expected = "h0 must be (B, H)")]
fn cell_step_h_not_b_by_h() {
    // A batch of 2 inputs with a state of 1 row.
    gru().step(Array2::zeros((2, I)).view(), &Array2::zeros((1, H)));
}

#[test]
#[should_panic(expected = "c0 must be (B, H)")]
fn cell_step_c_not_b_by_h() {
    lstm().step(Array2::zeros((1, I)).view(), &lstm_state(1, H, H + 1));
}

// `Cell::backward_step`: "if `d_state` does not have the shapes of the step's state, or `grads`
// is not shaped like `self`".

#[test]
#[should_panic(expected = "d_state.h must be (B, H)")]
fn cell_backward_step_d_state_h_shape() {
    let cell = gru();
    let (_, cache) = cell.step(Array2::zeros((2, I)).view(), &Array2::zeros((2, H)));
    cell.backward_step(&cache, &Array2::zeros((1, H)), &mut cell.zeros_like());
}

#[test]
#[should_panic(expected = "d_state.c must be (B, H)")]
fn cell_backward_step_d_state_c_shape() {
    let cell = lstm();
    let (_, cache) = cell.step(Array2::zeros((2, I)).view(), &lstm_state(2, H, H));
    cell.backward_step(&cache, &lstm_state(2, H, H + 1), &mut cell.zeros_like());
}

#[test]
#[should_panic(expected = "grads must be shaped like the weights")]
fn cell_backward_step_grads_shape() {
    let cell = rnn();
    let (_, cache) = cell.step(Array2::zeros((2, I)).view(), &Array2::zeros((2, H)));
    let mut other = RnnCell::new(I, H + 1, Nonlinearity::Tanh, &mut rng(4)).unwrap();
    cell.backward_step(&cache, &Array2::zeros((2, H)), &mut other);
}

#[test]
#[should_panic(expected = "grads must be shaped like the weights")]
fn cell_backward_step_grads_input_size() {
    let cell = lstm();
    let (_, cache) = cell.step(Array2::zeros((2, I)).view(), &lstm_state(2, H, H));
    let mut other = LstmCell::new(I + 1, H, &mut rng(8)).unwrap();
    cell.backward_step(&cache, &lstm_state(2, H, H), &mut other);
}

#[test]
#[should_panic(expected = "grads must be shaped like the weights")]
fn cell_backward_step_grads_without_bias() {
    let cell = gru();
    let (_, cache) = cell.step(Array2::zeros((2, I)).view(), &Array2::zeros((2, H)));
    let mut other = GruCell::with_bias(I, H, false, &mut rng(5)).unwrap();
    cell.backward_step(&cache, &Array2::zeros((2, H)), &mut other);
}

// `Cell::forward_sequence`: "if `x` is not `(T, B, I)`, a part of `init` is not `(B, H)`, or
// `schedule.lengths` does not hold `B` lengths in `1..=T`".

#[test]
#[should_panic(expected = "x must be (T, B, I)")]
fn cell_forward_sequence_x_shape() {
    let x = Array3::zeros((4, 2, I + 1));
    lstm().forward_sequence(x.view(), &lstm_state(2, H, H), Schedule::FORWARD);
}

#[test]
#[should_panic(expected = "h0 must be (B, H)")]
fn cell_forward_sequence_init_shape() {
    let x = Array3::zeros((4, 2, I));
    gru().forward_sequence(x.view(), &Array2::zeros((2, H + 1)), Schedule::FORWARD);
}

#[test]
#[should_panic(expected = "one length per sequence")]
fn cell_forward_sequence_lengths_count() {
    let x = Array3::zeros((4, 2, I));
    let schedule = Schedule {
        reverse: false,
        lengths: Some(&[4, 4, 4]),
    };
    rnn().forward_sequence(x.view(), &Array2::zeros((2, H)), schedule);
}

#[test]
#[should_panic(expected = "every length must be in 1..=T")]
fn cell_forward_sequence_length_zero() {
    let x = Array3::zeros((4, 2, I));
    let schedule = Schedule {
        reverse: false,
        lengths: Some(&[4, 0]),
    };
    rnn().forward_sequence(x.view(), &Array2::zeros((2, H)), schedule);
}

#[test]
#[should_panic(expected = "every length must be in 1..=T")]
fn cell_forward_sequence_length_past_t() {
    let x = Array3::zeros((4, 2, I));
    let schedule = Schedule {
        reverse: true,
        lengths: Some(&[5, 4]),
    };
    gru().forward_sequence(x.view(), &Array2::zeros((2, H)), schedule);
}

// `Cell::infer_sequence`: "as `Cell::forward_sequence`".

#[test]
#[should_panic(expected = "x must be (T, B, I)")]
fn cell_infer_sequence_x_shape() {
    let x = Array3::zeros((4, 2, I - 1));
    gru().infer_sequence(x.view(), &Array2::zeros((2, H)), Schedule::REVERSE);
}

#[test]
#[should_panic(expected = "c0 must be (B, H)")]
fn cell_infer_sequence_init_shape() {
    let x = Array3::zeros((4, 2, I));
    lstm().infer_sequence(x.view(), &lstm_state(2, H, 1), Schedule::FORWARD);
}

#[test]
#[should_panic(expected = "one length per sequence")]
fn cell_infer_sequence_lengths_count() {
    let x = Array3::zeros((4, 2, I));
    let schedule = Schedule {
        reverse: true,
        lengths: Some(&[4]),
    };
    lstm().infer_sequence(x.view(), &lstm_state(2, H, H), schedule);
}

// `Cell::backward_sequence`: "if the shapes do not match the tape".

#[test]
#[should_panic(expected = "d_output must be (T, B, H)")]
fn cell_backward_sequence_d_output_shape() {
    let cell = gru();
    let tape = tape_of(&cell);
    let d_out = Array3::zeros((3, 2, H));
    cell.backward_sequence(
        &tape,
        d_out.view(),
        &Array2::zeros((2, H)),
        &mut cell.zeros_like(),
    );
}

#[test]
#[should_panic(expected = "dh_final must be (B, H)")]
fn cell_backward_sequence_d_final_h_shape() {
    let cell = rnn();
    let tape = tape_of(&cell);
    let d_out = Array3::zeros((4, 2, H));
    cell.backward_sequence(
        &tape,
        d_out.view(),
        &Array2::zeros((3, H)),
        &mut cell.zeros_like(),
    );
}

#[test]
#[should_panic(expected = "dc_final must be (B, H)")]
fn cell_backward_sequence_d_final_c_shape() {
    let cell = lstm();
    let tape = tape_of(&cell);
    let d_out = Array3::zeros((4, 2, H));
    let d_final = lstm_state(2, H, H + 1);
    cell.backward_sequence(&tape, d_out.view(), &d_final, &mut cell.zeros_like());
}

// `Cell::backward_sequence_params`: "as `Cell::backward_sequence`".

#[test]
#[should_panic(expected = "d_output must be (T, B, H)")]
fn cell_backward_sequence_params_d_output_shape() {
    let cell = lstm();
    let tape = tape_of(&cell);
    let d_out = Array3::zeros((4, 2, H + 1));
    let d_final = lstm_state(2, H, H);
    cell.backward_sequence_params(&tape, d_out.view(), &d_final, &mut cell.zeros_like());
}

#[test]
#[should_panic(expected = "dh_final must be (B, H)")]
fn cell_backward_sequence_params_d_final_shape() {
    let cell = gru();
    let tape = tape_of(&cell);
    let d_out = Array3::zeros((4, 2, H));
    let d_final = Array2::zeros((2, H + 1));
    cell.backward_sequence_params(&tape, d_out.view(), &d_final, &mut cell.zeros_like());
}

// `forward_steps`: "as `Cell::step`".

#[test]
#[should_panic(expected = "x must be (T, B, I)")]
fn forward_steps_x_shape() {
    let x = Array3::zeros((4, 2, I + 2));
    forward_steps(&rnn(), x.view(), &Array2::zeros((2, H)), Schedule::FORWARD);
}

#[test]
#[should_panic(expected = "c0 must be (B, H)")]
fn forward_steps_init_shape() {
    let x = Array3::zeros((4, 2, I));
    forward_steps(&lstm(), x.view(), &lstm_state(2, H, 3), Schedule::FORWARD);
}

// `backward_steps`: "if `caches.len()` is not `T`, or as `Cell::backward_step`".

#[test]
#[should_panic(expected = "one cache per time step")]
fn backward_steps_cache_count() {
    let cell = gru();
    let x = Array3::zeros((4, 2, I));
    let (_, _, caches) = forward_steps(&cell, x.view(), &Array2::zeros((2, H)), Schedule::FORWARD);
    let d_out = Array3::zeros((3, 2, H));
    let d_final = Array2::zeros((2, H));
    let mut grads = cell.zeros_like();
    backward_steps(
        &cell,
        &caches,
        d_out.view(),
        &d_final,
        Schedule::FORWARD,
        &mut grads,
    );
}

#[test]
#[should_panic(expected = "grads must be shaped like the weights")]
fn backward_steps_grads_shape() {
    let cell = rnn();
    let x = Array3::zeros((4, 2, I));
    let (_, _, caches) = forward_steps(&cell, x.view(), &Array2::zeros((2, H)), Schedule::FORWARD);
    let d_out = Array3::zeros((4, 2, H));
    let d_final = Array2::zeros((2, H));
    let mut grads = RnnCell::with_bias(I, H, Nonlinearity::Tanh, false, &mut rng(6)).unwrap();
    backward_steps(
        &cell,
        &caches,
        d_out.view(),
        &d_final,
        Schedule::FORWARD,
        &mut grads,
    );
}

// `CellInit::step_into`: "if `scratch` was made for another batch size, or `x`, `state` or
// `next` do not have the shapes above".

#[test]
#[should_panic(expected = "x must be (B, I) for the scratch's batch")]
fn cell_init_step_into_scratch_batch() {
    let cell = gru();
    let mut scratch = cell.step_scratch(2).unwrap();
    let (state, mut next) = (Array2::zeros((3, H)), Array2::zeros((3, H)));
    cell.step_into(
        &mut scratch,
        Array2::zeros((3, I)).view(),
        &state,
        &mut next,
    );
}

#[test]
#[should_panic(expected = "x must be (B, I) for the scratch's batch")]
fn cell_init_step_into_x_shape() {
    let cell = rnn();
    let mut scratch = cell.step_scratch(2).unwrap();
    let (state, mut next) = (Array2::zeros((2, H)), Array2::zeros((2, H)));
    cell.step_into(
        &mut scratch,
        Array2::zeros((2, I + 1)).view(),
        &state,
        &mut next,
    );
}

#[test]
#[should_panic(expected = "state.h must be (B, 2)")]
fn cell_init_step_into_state_shape() {
    let cell = gru();
    let mut scratch = cell.step_scratch(2).unwrap();
    let (state, mut next) = (Array2::zeros((2, H + 1)), Array2::zeros((2, H)));
    cell.step_into(
        &mut scratch,
        Array2::zeros((2, I)).view(),
        &state,
        &mut next,
    );
}

#[test]
#[should_panic(expected = "state.c must be (B, 2)")]
fn cell_init_step_into_state_c_shape() {
    let cell = lstm();
    let mut scratch = cell.step_scratch(2).unwrap();
    let (state, mut next) = (lstm_state(2, H, H + 1), lstm_state(2, H, H));
    cell.step_into(
        &mut scratch,
        Array2::zeros((2, I)).view(),
        &state,
        &mut next,
    );
}

#[test]
#[should_panic(expected = "state.h must be (B, 2)")]
fn cell_init_step_into_next_shape() {
    let cell = lstm();
    let mut scratch = cell.step_scratch(2).unwrap();
    let (state, mut next) = (lstm_state(2, H, H), lstm_state(1, H, H));
    cell.step_into(
        &mut scratch,
        Array2::zeros((2, I)).view(),
        &state,
        &mut next,
    );
}

// `RecurrentStack::layer`: "if `l >= num_layers`".

#[test]
#[should_panic(expected = "index out of bounds")]
fn recurrent_stack_layer_out_of_range() {
    let net = Gru::<f64>::new(StackConfig::new(I, H).with_num_layers(2), &mut rng(7)).unwrap();
    assert_eq!(net.layer(1).len(), 1);
    net.layer(2);
}
