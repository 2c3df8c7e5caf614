//! [`Stream`]: step-by-step inference over a whole stack, for real-time use.

use ndarray::ArrayView2;

use super::stack::RecurrentStack;
use super::unit::unstack_or_zeros;
use crate::cell::{CellInit, Stacked, State};
use crate::error::{shape_err, Error, Result};
use crate::float::Float;

/// Inference one time step at a time through every layer of a unidirectional
/// [`RecurrentStack`], for real-time use: feed each step's input `(B, I)` as it arrives and get
/// the last layer's output `(B, H)` (`(B, P)` for an LSTM with `proj_size = P`).
///
/// Made by [`RecurrentStack::stream`]. The stream keeps the state of every layer and every
/// buffer a step needs (the recurrent weights laid out once, gate buffers, a second state to
/// write into): a step checks the input's shape and allocates nothing where the products use
/// the crate's own kernels (`f32` on CPUs with AVX2 or AVX-512; on the portable path and for
/// `f64` the input projection goes through `matrixmultiply`, which allocates a packing buffer
/// per call).
///
/// **Equal to the sequence path bit for bit**: streaming `T` steps gives exactly the outputs
/// and final states of [`RecurrentStack::infer`] over those `T` steps from the same initial
/// state (each step does the same operations in the same order). The one exception: when a
/// whole-sequence pass splits a batch of 5 to 8 rows into per-thread shards of at most 4 rows
/// (at 2 threads or more, long sequences), its recurrent products take the few-rows kernel and
/// the two paths agree to rounding only. Batches of up to 4, any batch at one thread
/// ([`runtime::set_num_threads`](crate::runtime::set_num_threads)), and unsharded passes agree
/// exactly.
///
/// A bidirectional network cannot stream: its reverse direction starts from the end of the
/// sequence. Dropout does not apply (inference).
///
/// # Examples
///
/// ```
/// use ndarray::{s, Array3};
/// use rand::SeedableRng;
/// use recurrent::{Lstm, StackConfig};
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let lstm = Lstm::<f32>::new(StackConfig::new(3, 8).with_num_layers(2), &mut rng)?;
/// let x = Array3::<f32>::from_shape_fn((6, 1, 3), |(t, _, i)| (t + i) as f32 * 0.1); // (T, B, I)
///
/// let mut stream = lstm.stream(1)?; // batch of 1
/// let mut outputs = Vec::new();
/// for t in 0..6 {
///     let y = stream.step(x.slice(s![t, .., ..]))?; // (B, H), valid until the next step
///     outputs.push(y.to_owned());
/// }
///
/// // The same numbers as running the whole sequence at once, bit for bit.
/// let (out, finals) = lstm.infer(x.view(), None, None)?;
/// for (t, y) in outputs.iter().enumerate() {
///     assert_eq!(y, &out.slice(s![t, .., ..]));
/// }
/// assert_eq!(stream.state(), finals);
/// # Ok::<(), recurrent::Error>(())
/// ```
pub struct Stream<'a, F: Float, C: CellInit<F>> {
    /// Each layer's cell and its buffers.
    layers: Vec<(&'a C, C::Scratch<'a>)>,
    /// Each layer's state after the last step.
    states: Vec<C::State>,
    /// Each layer's next state, written by a step and then swapped with `states`.
    spare: Vec<C::State>,
    /// `(hidden_size, output width)` of every layer's state.
    widths: (usize, usize),
    /// Sequences per step.
    batch: usize,
}

impl<F: Float, C: CellInit<F>> std::fmt::Debug for Stream<'_, F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("layers", &self.layers.len())
            .field("batch", &self.batch())
            .field("states", &self.states)
            .finish_non_exhaustive()
    }
}

impl<C> RecurrentStack<C> {
    /// A [`Stream`] over this network for `batch` sequences, starting from zero states.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if the network is bidirectional or `batch` is 0;
    /// [`Error::OutOfMemory`] if the buffers cannot be allocated.
    pub fn stream<F: Float>(&self, batch: usize) -> Result<Stream<'_, F, C>>
    where
        C: CellInit<F>,
    {
        let config = self.config();
        if config.bidirectional {
            return Err(Error::InvalidConfig(
                "a bidirectional network cannot stream: its reverse direction starts from the \
                 end of the sequence (run the whole sequence with `infer`)"
                    .into(),
            ));
        }
        if batch == 0 {
            return Err(Error::InvalidConfig(
                "a stream needs a batch of at least 1 sequence, got 0".into(),
            ));
        }
        let widths = (config.hidden_size, config.output_width());
        let mut layers = Vec::with_capacity(config.num_layers);
        for l in 0..config.num_layers {
            let cell = &self.layer(l)[0];
            layers.push((cell, cell.step_scratch(batch)?));
        }
        let zeros = unstack_or_zeros::<F, C::State>(None, layers.len(), batch, widths, "")?;
        Ok(Stream {
            layers,
            spare: zeros.clone(),
            states: zeros,
            widths,
            batch,
        })
    }
}

impl<'a, F: Float, C: CellInit<F>> Stream<'a, F, C> {
    /// Sequences per step `B`.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Advances every layer by one step of input `x` `(B, I)`; returns the last layer's new
    /// output `(B, H)` (`(B, P)` with a projection), a view valid until the next call.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] if `x` is not `(B, I)`; the stream is then unchanged.
    pub fn step(&mut self, x: ArrayView2<'_, F>) -> Result<ArrayView2<'_, F>> {
        let want = (self.batch(), self.layers[0].0.input_size());
        if x.dim() != want {
            return Err(shape_err(
                "x",
                format!("{want:?} = (batch, input_size)"),
                x.shape(),
            ));
        }
        for (l, (cell, scratch)) in self.layers.iter_mut().enumerate() {
            let (below, rest) = self.states.split_at_mut(l);
            let input = match below.last() {
                Some(s) => s.h(),
                None => x.view(),
            };
            cell.step_into(scratch, input, &rest[0], &mut self.spare[l]);
            std::mem::swap(&mut rest[0], &mut self.spare[l]);
        }
        Ok(self.states.last().expect("at least one layer").h())
    }

    /// The states of every layer after the last step, stacked as PyTorch returns them:
    /// `(L, B, H)` per part (`h` `(L, B, P)` with a projection), the second output of
    /// [`RecurrentStack::infer`].
    pub fn state(&self) -> Stacked<F, C> {
        C::State::stack(&self.states)
    }

    /// Sets every layer's state (`None`: zeros), as `init` of [`RecurrentStack::infer`].
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] if a part of `state` is not `(L, B, H)` (`h` `(L, B, P)` with a
    /// projection); the stream is then unchanged.
    pub fn set_state(&mut self, state: Option<&Stacked<F, C>>) -> Result<()> {
        let (n, batch) = (self.layers.len(), self.batch());
        let given = unstack_or_zeros::<F, C::State>(state, n, batch, self.widths, "state")?;
        // Copied into the stream's own arrays, whose rows the kernels read as slices.
        for (dst, src) in self.states.iter_mut().zip(&given) {
            for (mut d, (_, s)) in dst.parts_mut().into_iter().zip(src.parts()) {
                d.assign(&s);
            }
        }
        Ok(())
    }
}
