//! [`Embedding`]: a lookup table from integer ids to vectors (`torch.nn.Embedding`).

use ndarray::{Array, Array2, ArrayView, ArrayViewD, ArrayViewMutD, Axis, Dimension, Ix2};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::alloc::try_array;
use crate::error::{shape_err, Error, Result};
use crate::float::Float;
use crate::params::{check_same_layout, Params};

/// A lookup table mapping integer ids to learned vectors, as `torch.nn.Embedding`: the input of a
/// recurrent network over tokens.
///
/// `weight` is `(num_embeddings, embedding_dim)`; id `i` maps to row `i`. Ids of any shape map to
/// that shape with `embedding_dim` appended: `(T, B)` token ids to `(T, B, E)` inputs of an
/// [`Lstm`](crate::Lstm), `(N,)` to `(N, E)`.
///
/// With a `padding_idx`, that row is created as zeros by [`Embedding::new`] and never receives a
/// gradient, so it stays what it is during training (PyTorch's `padding_idx`). PyTorch's
/// `max_norm`, `scale_grad_by_freq` and `sparse` options are not offered.
///
/// The gradient buffer is, as for every layer, an `Embedding` of the same shape
/// ([`Params::zeros_like`]); [`Embedding::backward`] adds into its `weight`. Ids are integers, so
/// there is no input gradient.
///
/// Parameter name: `weight` (PyTorch's `state_dict` key), so [`io::save`](crate::io::save) and
/// [`io::load`](crate::io::load) exchange the table with PyTorch.
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// use rand::SeedableRng;
/// use recurrent::{Embedding, Params};
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// // 10 tokens, 4 features each; token 0 is padding.
/// let emb = Embedding::<f32>::new(10, 4, Some(0), &mut rng)?;
/// let ids = array![[3, 7], [5, 0], [3, 0]]; // (T = 3, B = 2)
/// let x = emb.forward(ids.view())?; // (T, B, E), ready for an Lstm with input_size 4
/// assert_eq!(x.dim(), (3, 2, 4));
/// assert_eq!(x.slice(ndarray::s![1, 1, ..]), ndarray::Array1::<f32>::zeros(4)); // padding
///
/// let mut grads = emb.zeros_like();
/// emb.backward(ids.view(), ndarray::Array3::ones(x.dim()).view(), &mut grads)?;
/// assert_eq!(grads.weight().row(3), ndarray::Array1::from_elem(4, 2.0)); // id 3 came twice
/// assert_eq!(grads.weight().row(0), ndarray::Array1::<f32>::zeros(4)); // padding: no gradient
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding<F: Float> {
    weight: Array2<F>,
    padding_idx: Option<usize>,
}

impl<F: Float> Embedding<F> {
    /// A table of `num_embeddings` rows of `embedding_dim` values drawn from N(0, 1) (PyTorch's
    /// default initialisation, drawn in `f64` and rounded to `F`), with the `padding_idx` row, if
    /// any, set to zero.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if a size is zero or `padding_idx >= num_embeddings`;
    /// [`Error::OutOfMemory`] if the table cannot be allocated.
    pub fn new<R: Rng + ?Sized>(
        num_embeddings: usize,
        embedding_dim: usize,
        padding_idx: Option<usize>,
        rng: &mut R,
    ) -> Result<Self> {
        if num_embeddings == 0 || embedding_dim == 0 {
            return Err(Error::InvalidConfig(format!(
                "num_embeddings and embedding_dim must be at least 1, got {num_embeddings} and \
                 {embedding_dim}"
            )));
        }
        check_padding_idx(padding_idx, num_embeddings)?;
        let what = format!("an Embedding({num_embeddings}, {embedding_dim})");
        crate::alloc::probe(
            crate::alloc::bytes_of::<F>(&[num_embeddings, embedding_dim]),
            &what,
        )?;
        let mut weight = try_array(Ix2(num_embeddings, embedding_dim), &what, || {
            let v: f64 = StandardNormal.sample(rng);
            F::from_f64(v)
        })?;
        if let Some(p) = padding_idx {
            weight.row_mut(p).fill(F::zero());
        }
        Ok(Self {
            weight,
            padding_idx,
        })
    }

    /// A table from a given `weight` `(num_embeddings, embedding_dim)`, kept as it is: like
    /// PyTorch's `Embedding.from_pretrained`, the `padding_idx` row is not zeroed (it only gets no
    /// gradient).
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] if a size of `weight` is zero; [`Error::InvalidConfig`] if
    /// `padding_idx >= num_embeddings`.
    pub fn from_weights(weight: Array2<F>, padding_idx: Option<usize>) -> Result<Self> {
        let (rows, cols) = weight.dim();
        if rows == 0 || cols == 0 {
            return Err(shape_err(
                "weight",
                "(num_embeddings, embedding_dim) with both ≥ 1",
                weight.shape(),
            ));
        }
        check_padding_idx(padding_idx, rows)?;
        Ok(Self {
            weight: weight.as_standard_layout().into_owned(),
            padding_idx,
        })
    }

    /// Loads `{prefix}weight` `(num_embeddings, embedding_dim)` from a safetensors file (PyTorch's
    /// `nn.Embedding` `state_dict()` key). The file does not record `padding_idx`: pass the one
    /// the table was trained with.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be read; [`Error::WeightFile`] if it is corrupt, the weight
    /// is missing or misshaped, or `padding_idx` is out of its range.
    pub fn load_safetensors(
        path: impl AsRef<std::path::Path>,
        prefix: &str,
        padding_idx: Option<usize>,
    ) -> Result<Self> {
        let path = path.as_ref();
        let mut file = crate::io::read::<F>(path)?;
        let key = format!("{prefix}weight");
        let weight = crate::io::rank(crate::io::take(&mut file, &key, path)?, &key, path)?;
        Self::from_weights(weight, padding_idx)
            .map_err(|e| crate::io::invalid(path, Some(format!("`{prefix}…`")), e))
    }

    /// Saves `{prefix}weight`, atomically.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be written.
    pub fn save_safetensors(&self, path: impl AsRef<std::path::Path>, prefix: &str) -> Result<()> {
        crate::io::save(self, path, prefix)
    }

    /// The table `(num_embeddings, embedding_dim)`: row `i` is the vector of id `i`.
    pub fn weight(&self) -> &Array2<F> {
        &self.weight
    }

    /// The number of ids, `0..num_embeddings` (rows of the table).
    pub fn num_embeddings(&self) -> usize {
        self.weight.nrows()
    }

    /// The length of each vector (columns of the table).
    pub fn embedding_dim(&self) -> usize {
        self.weight.ncols()
    }

    /// The id whose row gets no gradient, if any.
    pub fn padding_idx(&self) -> Option<usize> {
        self.padding_idx
    }

    /// Checks that every id is below `num_embeddings`; the error names the first one that is not
    /// and its position.
    fn check_ids<D: Dimension>(&self, ids: &ArrayView<'_, usize, D>) -> Result<()> {
        let n = self.num_embeddings();
        match ids.iter().position(|&id| id >= n) {
            None => Ok(()),
            Some(k) => {
                // Position k in logical (row-major) order, as an index.
                let mut index = vec![0; ids.ndim()];
                let mut rest = k;
                for (i, &len) in ids.shape().iter().enumerate().rev() {
                    index[i] = rest % len;
                    rest /= len;
                }
                let id = ids.iter().nth(k).copied().unwrap_or(n);
                Err(Error::InvalidConfig(format!(
                    "id {id} at {index:?} is out of range: the embedding has num_embeddings = {n} \
                     (ids 0..{n})"
                )))
            }
        }
    }

    /// Looks up every id: `ids` of any shape `(...)` gives `(..., embedding_dim)`, with
    /// `output[..., :] = weight[ids[...], :]`. Time-major token ids `(T, B)` give an RNN's input
    /// `(T, B, E)`; `(N,)` gives `(N, E)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if an id is `>= num_embeddings` (the message names its position,
    /// e.g. `[t, b]`, the id and `num_embeddings`); [`Error::OutOfMemory`] if the output cannot be
    /// allocated; [`Error::Shape`] if `(..., embedding_dim)` is a shape no array can have (ids
    /// with no element but axes so long that their lengths multiply past `isize::MAX`).
    ///
    /// # Examples
    ///
    /// ```
    /// use ndarray::{array, Array2};
    /// use recurrent::Embedding;
    ///
    /// let emb = Embedding::from_weights(array![[0.0, 0.0], [1.0, 2.0], [3.0, 4.0]], None)?;
    /// assert_eq!(emb.forward(array![2, 1].view())?, array![[3.0, 4.0], [1.0, 2.0]]); // (N,) → (N, E)
    /// let err = emb.forward(array![[0, 1], [3, 0]].view()).unwrap_err();
    /// assert!(err.to_string().contains("id 3 at [1, 0]"), "{err}");
    /// # Ok::<(), recurrent::Error>(())
    /// ```
    pub fn forward<D: Dimension>(
        &self,
        ids: ArrayView<'_, usize, D>,
    ) -> Result<Array<F, D::Larger>> {
        self.check_ids(&ids)?;
        let e = self.embedding_dim();
        let mut dim = D::Larger::zeros(ids.ndim() + 1);
        for (i, &len) in ids.shape().iter().enumerate() {
            dim[i] = len;
        }
        dim[ids.ndim()] = e;
        let what = format!("the output of an Embedding: {:?}", dim.slice());
        // Every id's row in turn, in the logical order the output is filled in.
        let mut values = ids
            .iter()
            .flat_map(|&id| self.weight.row(id).into_iter().copied());
        try_array(dim, &what, || {
            values
                .next()
                .expect("the output has as many values as the ids' rows")
        })
    }

    /// Adds the gradient of the table into `grads.weight`: `grads.weight[ids[...], :] +=
    /// d_output[..., :]` for every position, so an id that occurs several times accumulates every
    /// occurrence. The `padding_idx` row gets nothing (PyTorch).
    ///
    /// `ids` are those given to [`Embedding::forward`] and `d_output` the gradient of its output,
    /// `(..., embedding_dim)`. Everything is checked before `grads` is changed.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] if `d_output` is not shaped `(ids' shape, embedding_dim)`;
    /// [`Error::Mismatch`] if `grads` is not shaped like `self`; [`Error::InvalidConfig`] if an id
    /// is out of range, as in [`Embedding::forward`].
    pub fn backward<D: Dimension>(
        &self,
        ids: ArrayView<'_, usize, D>,
        d_output: ArrayView<'_, F, D::Larger>,
        grads: &mut Self,
    ) -> Result<()> {
        let e = self.embedding_dim();
        let mut want = ids.shape().to_vec();
        want.push(e);
        if d_output.shape() != want.as_slice() {
            return Err(shape_err(
                "d_output",
                format!("{want:?}, the ids' shape with embedding_dim = {e} appended"),
                d_output.shape(),
            ));
        }
        check_same_layout(&self.named_arrays(), &grads.named_arrays())?;
        self.check_ids(&ids)?;
        // Each lane along the last axis is one id's gradient, visited in the ids' logical order.
        let rows = d_output.lanes(Axis(ids.ndim()));
        for (&id, d) in ids.iter().zip(rows) {
            if Some(id) != self.padding_idx {
                grads.weight.row_mut(id).zip_mut_with(&d, |g, &v| *g += v);
            }
        }
        Ok(())
    }
}

/// Checks that `padding_idx`, if any, is a row of a table with `num_embeddings` rows.
fn check_padding_idx(padding_idx: Option<usize>, num_embeddings: usize) -> Result<()> {
    match padding_idx {
        Some(p) if p >= num_embeddings => Err(Error::InvalidConfig(format!(
            "padding_idx = {p} must be below num_embeddings = {num_embeddings}"
        ))),
        _ => Ok(()),
    }
}

impl<F: Float> Params<F> for Embedding<F> {
    fn named_arrays(&self) -> Vec<(String, ArrayViewD<'_, F>)> {
        vec![("weight".to_string(), self.weight.view().into_dyn())]
    }
    fn arrays_mut(&mut self) -> Vec<ArrayViewMutD<'_, F>> {
        vec![self.weight.view_mut().into_dyn()]
    }
}
