//! A cell written outside the crate (here one that runs an `RnnCell` on twice its input) gets
//! every layer once it implements `Cell` and `CellInit`: stacked, streamed, saved and loaded.

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayViewD, ArrayViewMutD};
use rand::{Rng, SeedableRng};
use recurrent::cell::{backward_steps, forward_steps, CellInit, CellWeights, Schedule, StepCache};
use recurrent::{Cell, Nonlinearity, Params, RecurrentStack, Result, RnnCell, StackConfig};

#[derive(Debug, Clone)]
struct Doubled(RnnCell<f64>);

impl Params<f64> for Doubled {
    fn named_arrays(&self) -> Vec<(String, ArrayViewD<'_, f64>)> {
        self.0.named_arrays()
    }
    fn arrays_mut(&mut self) -> Vec<ArrayViewMutD<'_, f64>> {
        self.0.arrays_mut()
    }
}

#[derive(Debug)]
struct Steps(Vec<StepCache<f64>>, bool, Option<Vec<usize>>);

impl Cell<f64> for Doubled {
    type State = Array2<f64>;
    type StepCache = StepCache<f64>;
    type Tape = Steps;
    fn input_size(&self) -> usize {
        self.0.input_size()
    }
    fn hidden_size(&self) -> usize {
        self.0.hidden_size()
    }
    fn step(&self, x: ArrayView2<'_, f64>, h: &Array2<f64>) -> (Array2<f64>, StepCache<f64>) {
        self.0.step((&x * 2.0).view(), h)
    }
    fn backward_step(
        &self,
        cache: &StepCache<f64>,
        dh: &Array2<f64>,
        grads: &mut Self,
    ) -> (Array2<f64>, Array2<f64>) {
        let (dx, dh_prev) = self.0.backward_step(cache, dh, &mut grads.0);
        (dx * 2.0, dh_prev)
    }
    fn forward_sequence(
        &self,
        x: ArrayView3<'_, f64>,
        init: &Array2<f64>,
        schedule: Schedule<'_>,
    ) -> (Array3<f64>, Array2<f64>, Steps) {
        let (out, last, caches) = forward_steps(self, x, init, schedule);
        let lengths = schedule.lengths.map(<[usize]>::to_vec);
        (out, last, Steps(caches, schedule.reverse, lengths))
    }
    fn infer_sequence(
        &self,
        x: ArrayView3<'_, f64>,
        init: &Array2<f64>,
        schedule: Schedule<'_>,
    ) -> (Array3<f64>, Array2<f64>) {
        let (out, last, _) = forward_steps(self, x, init, schedule);
        (out, last)
    }
    fn backward_sequence(
        &self,
        tape: &Steps,
        d_output: ArrayView3<'_, f64>,
        d_final: &Array2<f64>,
        grads: &mut Self,
    ) -> (Array3<f64>, Array2<f64>) {
        let schedule = Schedule {
            reverse: tape.1,
            lengths: tape.2.as_deref(),
        };
        backward_steps(self, &tape.0, d_output, d_final, schedule, grads)
    }
}

/// What a stack needs to build, load and stream the cell; the stream allocates in each step
/// (`Scratch = ()`), which a cell of your own may do.
impl CellInit<f64> for Doubled {
    const GATES: usize = 1;
    const KIND: &'static str = "RNN";
    type Scratch<'w> = ();

    fn init_cell<R: Rng + ?Sized>(
        input_size: usize,
        hidden_size: usize,
        proj_size: usize,
        bias: bool,
        nonlinearity: Nonlinearity,
        rng: &mut R,
    ) -> Result<Self> {
        RnnCell::init_cell(input_size, hidden_size, proj_size, bias, nonlinearity, rng).map(Doubled)
    }
    fn cell_from_weights(weights: CellWeights<f64>, nonlinearity: Nonlinearity) -> Result<Self> {
        RnnCell::cell_from_weights(weights, nonlinearity).map(Doubled)
    }
    fn cell_weights(&self) -> &CellWeights<f64> {
        self.0.cell_weights()
    }
    fn cell_nonlinearity(&self) -> Nonlinearity {
        self.0.cell_nonlinearity()
    }
    fn step_scratch(&self, _batch: usize) -> Result<()> {
        Ok(())
    }
    fn step_into(
        &self,
        _: &mut (),
        x: ArrayView2<'_, f64>,
        h: &Array2<f64>,
        next: &mut Array2<f64>,
    ) {
        next.assign(&self.step(x, h).0);
    }
}

#[test]
fn a_cell_of_your_own_is_stacked_streamed_saved_and_loaded() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let config = StackConfig::new(3, 4).with_num_layers(2);
    let net = RecurrentStack::<Doubled>::new(config, &mut rng).unwrap();
    let x = Array3::from_shape_fn((5, 2, 3), |(t, b, i)| ((t * 7 + b * 3 + i) as f64).sin());

    // The same numbers as the built-in RNN, layer by layer with the same weights, each layer on
    // twice its input.
    let (out, finals) = net.infer(x.view(), None, None).unwrap();
    let mut input = x.clone();
    for l in 0..2 {
        let inner = net.layer(l)[0].0.clone();
        let size = if l == 0 { 3 } else { 4 };
        let plain = RecurrentStack::from_cells(StackConfig::new(size, 4), vec![inner]).unwrap();
        let (h, last) = plain.infer((&input * 2.0).view(), None, None).unwrap();
        let d = &finals.index_axis(ndarray::Axis(0), l) - &last.index_axis(ndarray::Axis(0), 0);
        assert!(d.iter().all(|d| d.abs() < 1e-12), "layer {l}'s final state");
        input = h;
    }
    assert!((&out - &input).iter().all(|d| d.abs() < 1e-12));

    // Streamed step by step: the outputs of the whole sequence.
    let mut stream = net.stream::<f64>(2).unwrap();
    for t in 0..5 {
        let y = stream.step(x.index_axis(ndarray::Axis(0), t)).unwrap();
        let d = &y - &out.index_axis(ndarray::Axis(0), t);
        assert!(d.iter().all(|d| d.abs() < 1e-12), "step {t}");
    }

    // Saved with PyTorch's keys and loaded back (sizes inferred from the file).
    let dir = std::env::temp_dir().join(format!("recurrent-user-cell-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("doubled.safetensors");
    net.save_safetensors(&path, "rnn.").unwrap();
    let back = RecurrentStack::<Doubled>::load_safetensors(&path, "rnn.").unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(back.config().num_layers, 2);
    assert_eq!(back.infer(x.view(), None, None).unwrap().0, out);
}
