//! Models, tapes, optimizers and errors can cross threads, and one model shared by several
//! threads gives each of them exactly the result a single thread gets.

use crate::common::*;
use ndarray::Array3;
use recurrent::layer::{LayerTape, StackForward, StackTape};
use recurrent::optim::{Adam, Optimizer, OptimizerState, Sgd};
use recurrent::{io, Cell, Error, Gru, GruCell, Linear, Lstm, LstmCell, Rnn, RnnCell, StackConfig};

fn send_sync<T: Send + Sync>() {}

/// Compile-time: every public model type, tape, optimizer and error is `Send + Sync`.
#[test]
fn public_types_are_send_and_sync() {
    send_sync::<Lstm<f32>>();
    send_sync::<Gru<f64>>();
    send_sync::<Rnn<f32>>();
    send_sync::<Linear<f32>>();
    send_sync::<LstmCell<f32>>();
    send_sync::<GruCell<f64>>();
    send_sync::<RnnCell<f32>>();
    send_sync::<StackForward<f32, LstmCell<f32>>>();
    send_sync::<StackTape<f32, <GruCell<f32> as Cell<f32>>::Tape>>();
    send_sync::<LayerTape<f64, <LstmCell<f64> as Cell<f64>>::Tape>>();
    send_sync::<Optimizer<f32, Adam<f32>>>();
    send_sync::<Optimizer<f64, Sgd<f64>>>();
    send_sync::<OptimizerState<f32>>();
    send_sync::<io::TensorFile<f32>>();
    send_sync::<Error>();
}

/// Eight threads run one shared bidirectional LSTM (and a head) on the same input at once; every
/// output is bit-identical to the single-threaded one.
#[test]
fn a_shared_model_gives_every_thread_the_same_bits() {
    let mut r = rng(3);
    let config = StackConfig::new(5, 8)
        .with_num_layers(2)
        .with_bidirectional(true);
    let net = Lstm::<f32>::new(config, &mut r).unwrap();
    let head = Linear::<f32>::new(16, 3, &mut r).unwrap();
    let x: Array3<f32> = randn3((7, 4, 5), 1.0, &mut r);
    let lengths = [7, 3, 5, 1];
    let run = || {
        let (h, _) = net.infer(x.view(), None, Some(&lengths)).unwrap();
        head.infer(h.view()).unwrap()
    };
    let want = run();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(run)).collect();
        for h in handles {
            let got = h.join().unwrap();
            assert!(got
                .iter()
                .zip(want.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    });
}
