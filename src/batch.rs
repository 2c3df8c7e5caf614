//! Batching helpers: variable-length sequences to a padded `(T, B, F)` batch plus lengths and
//! back, shuffled minibatches of them ([`Minibatches`]), and time chunks for truncated BPTT over
//! long streams.

use ndarray::{s, Array2, Array3, ArrayView2, ArrayView3, Axis};

use crate::error::{shape_err, Error, Result};
use crate::float::Float;

/// Stacks sequences `(T_b, F)` into a zero-padded time-major batch `(max T_b, B, F)` and returns
/// it with the lengths `T_b` — the input a layer's `lengths` argument expects.
///
/// # Errors
///
/// [`Error::InvalidConfig`] for an empty list or an empty sequence; [`Error::Shape`] if the
/// sequences differ in their number of features, or the batch `(max T_b, B, F)` is a shape no
/// array can have (sequences with no feature but lengths near `2^62`);
/// [`Error::OutOfMemory`] if the batch cannot be allocated.
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// use recurrent::batch::{pad_sequences, unpad};
///
/// let a = array![[1.0], [2.0], [3.0]]; // 3 steps, 1 feature
/// let b = array![[4.0]]; // 1 step
/// let (batch, lengths) = pad_sequences(&[a.view(), b.view()])?;
/// assert_eq!(batch.dim(), (3, 2, 1));
/// assert_eq!(lengths, [3, 1]);
/// assert_eq!(batch[(2, 1, 0)], 0.0); // padding
/// let back = unpad(batch.view(), &lengths)?;
/// assert_eq!(back[1], b);
/// # Ok::<(), recurrent::Error>(())
/// ```
pub fn pad_sequences<F: Float>(sequences: &[ArrayView2<'_, F>]) -> Result<(Array3<F>, Vec<usize>)> {
    let (lengths, features) = check_sequences(sequences)?;
    let steps = lengths.iter().copied().max().unwrap_or(0);
    let what = "the padded batch of pad_sequences";
    let mut batch = crate::alloc::try_array(
        ndarray::Ix3(steps, sequences.len(), features),
        what,
        F::zero,
    )?;
    for (b, seq) in sequences.iter().enumerate() {
        batch.slice_mut(s![..seq.nrows(), b, ..]).assign(seq);
    }
    Ok((batch, lengths))
}

/// The lengths and the common number of features of `sequences`, after the checks of
/// [`pad_sequences`].
fn check_sequences<F>(sequences: &[ArrayView2<'_, F>]) -> Result<(Vec<usize>, usize)> {
    let first = sequences
        .first()
        .ok_or_else(|| Error::InvalidConfig("pad_sequences needs at least one sequence".into()))?;
    let features = first.ncols();
    let mut lengths = Vec::with_capacity(sequences.len());
    for (b, seq) in sequences.iter().enumerate() {
        if seq.nrows() == 0 {
            return Err(Error::InvalidConfig(format!("sequence {b} has no steps")));
        }
        if seq.ncols() != features {
            return Err(shape_err(
                format!("sequence {b}"),
                format!("(T, {features}) like sequence 0"),
                seq.shape(),
            ));
        }
        lengths.push(seq.nrows());
    }
    Ok((lengths, features))
}

/// Splits a padded time-major batch `(T, B, F)` back into `B` sequences `(lengths[b], F)`.
///
/// # Errors
///
/// [`Error::InvalidConfig`] unless there is one length per sequence, each in `1..=T`.
pub fn unpad<F: Float>(batch: ArrayView3<'_, F>, lengths: &[usize]) -> Result<Vec<Array2<F>>> {
    let (steps, n, _) = batch.dim();
    crate::check::lengths(Some(lengths), steps, n)?;
    Ok(lengths
        .iter()
        .enumerate()
        .map(|(b, &l)| batch.slice(s![..l, b, ..]).to_owned())
        .collect())
}

/// Consecutive windows of at most `k` steps along the time axis of `x` `(T, B, F)`: the chunks of
/// truncated BPTT. Carry each chunk's final state into the next chunk's `forward` and call
/// `backward` per chunk with `d_final = None` to cut the gradient at the borders.
///
/// # Errors
///
/// [`Error::InvalidConfig`] if `k` is 0.
///
/// # Examples
///
/// ```
/// use ndarray::Array3;
/// use rand::SeedableRng;
/// use recurrent::{batch::time_chunks, Lstm, Params, StackConfig};
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let lstm = Lstm::<f32>::new(StackConfig::new(3, 8), &mut rng)?;
/// let stream = Array3::<f32>::ones((100, 4, 3));
/// let mut state = None;
/// let mut chunks = 0;
/// for x in time_chunks(stream.view(), 35)? {
///     let (out, last, tape) = lstm.forward(x, state.as_ref(), None)?;
///     let mut grads = lstm.zeros_like();
///     lstm.backward(&tape, Array3::ones(out.dim()).view(), None, &mut grads)?;
///     state = Some(last); // carried forward; the gradient stops here
///     chunks += 1;
/// }
/// assert_eq!(chunks, 3); // 35 + 35 + 30 steps
/// # Ok::<(), recurrent::Error>(())
/// ```
pub fn time_chunks<'a, F: Float>(
    x: ArrayView3<'a, F>,
    k: usize,
) -> Result<impl Iterator<Item = ArrayView3<'a, F>>> {
    if k == 0 {
        return Err(Error::InvalidConfig(
            "chunk length k must be at least 1".into(),
        ));
    }
    let steps = x.len_of(Axis(0));
    Ok((0..steps)
        .step_by(k)
        .map(move |start| x.slice_move(s![start..(start + k).min(steps), .., ..])))
}

/// One minibatch from [`Minibatches`]: the chosen sequences padded to `x` `(max T_b, B, F)`, their
/// `lengths`, and their `indices` in the dataset (to pick the matching targets).
#[derive(Debug, Clone, PartialEq)]
pub struct Minibatch<F> {
    /// The padded batch `(max T_b, B, F)`, time-major.
    pub x: Array3<F>,
    /// `T_b` of each sequence, for a layer's `lengths` argument.
    pub lengths: Vec<usize>,
    /// Which dataset sequences these are, in batch order.
    pub indices: Vec<usize>,
}

/// One epoch of shuffled minibatches over variable-length sequences: PyTorch's
/// `DataLoader(dataset, batch_size, shuffle=True, drop_last=…)` with a padding collate function.
/// Every sequence appears once per epoch, in an order drawn from the given rng; the last batch is
/// smaller unless `drop_last`.
///
/// # Examples
///
/// ```
/// use ndarray::Array2;
/// use rand::SeedableRng;
/// use recurrent::batch::Minibatches;
///
/// let data: Vec<Array2<f32>> = (1..=5).map(|t| Array2::ones((t, 2))).collect(); // (T_b, 2)
/// let labels = [0, 1, 0, 1, 1];
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// for epoch in 0..2 {
///     for batch in Minibatches::new(&data, 2, false, &mut rng)? {
///         let targets: Vec<usize> = batch.indices.iter().map(|&i| labels[i]).collect();
///         assert_eq!(batch.x.dim().1, batch.lengths.len()); // (max T_b, B, 2)
///         # let _ = (epoch, targets);
///     }
/// }
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug)]
pub struct Minibatches<'a, F> {
    sequences: &'a [Array2<F>],
    order: Vec<usize>,
    batch_size: usize,
    drop_last: bool,
    next: usize,
}

impl<'a, F: Float> Minibatches<'a, F> {
    /// Draws the epoch's order from `rng` over `sequences` (each `(T_b, F)`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if there are no sequences, one has no steps, or `batch_size` is 0;
    /// [`Error::Shape`] if the sequences differ in their number of features, or the largest
    /// batch `(max T_b, batch_size, F)` is a shape no array can have.
    pub fn new<R: rand::Rng + ?Sized>(
        sequences: &'a [Array2<F>],
        batch_size: usize,
        drop_last: bool,
        rng: &mut R,
    ) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::InvalidConfig("batch_size must be at least 1".into()));
        }
        // The checks of `pad_sequences`, once for the whole dataset.
        let views: Vec<ArrayView2<'_, F>> = sequences.iter().map(|s| s.view()).collect();
        let (lengths, features) = check_sequences(&views)?;
        // The largest batch any epoch can make must be a shape an array can have.
        let steps = lengths.iter().copied().max().unwrap_or(0);
        crate::alloc::check_shape(
            &[steps, batch_size.min(sequences.len()), features],
            "the largest padded minibatch",
        )?;
        let mut order: Vec<usize> = (0..sequences.len()).collect();
        rand::seq::SliceRandom::shuffle(order.as_mut_slice(), rng);
        Ok(Self {
            sequences,
            order,
            batch_size,
            drop_last,
            next: 0,
        })
    }
}

impl<F: Float> Iterator for Minibatches<'_, F> {
    type Item = Minibatch<F>;

    fn next(&mut self) -> Option<Minibatch<F>> {
        let left = self.order.len() - self.next;
        if left == 0 || (self.drop_last && left < self.batch_size) {
            return None;
        }
        let indices = self.order[self.next..self.next + left.min(self.batch_size)].to_vec();
        self.next += indices.len();
        let views: Vec<ArrayView2<'_, F>> =
            indices.iter().map(|&i| self.sequences[i].view()).collect();
        let (x, lengths) = pad_sequences(&views).expect("checked in Minibatches::new");
        Some(Minibatch {
            x,
            lengths,
            indices,
        })
    }
}
