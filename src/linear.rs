//! [`Linear`]: the dense output head `y = x Wᵀ + b` (`torch.nn.Linear`).

use ndarray::{
    Array, Array1, Array2, ArrayView, ArrayViewD, ArrayViewMutD, Axis, Dimension, Ix1, Ix2, IxDyn,
    Zip,
};
use rand::Rng;
use rand_distr::{Distribution, Uniform};

use crate::alloc::try_array;
use crate::error::{shape_err, Error, Result};
use crate::float::Float;
use crate::gemm::gemm;
use crate::params::{check_fingerprint, check_same_layout, Params};

/// A dense layer `y = x Wᵀ + b` over the last axis, as `torch.nn.Linear`.
///
/// `weight` is `(out_features, in_features)`, `bias` `(out_features)`. The input may have any
/// number of leading axes: `(B, in)` for the last step of a sequence, `(T, B, in)` for every step;
/// the output has the same leading axes and `out_features` last.
///
/// Parameter names: `weight`, `bias`.
///
/// # Examples
///
/// ```
/// use ndarray::Array3;
/// use rand::SeedableRng;
/// use recurrent::{Linear, Params};
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let head = Linear::<f32>::new(8, 2, &mut rng)?;
/// let h = Array3::<f32>::zeros((5, 3, 8)); // (T, B, H): every step of an RNN's output
/// let (y, tape) = head.forward(h.view())?;
/// assert_eq!(y.dim(), (5, 3, 2));
/// let mut grads = head.zeros_like();
/// let dh = head.backward(&tape, Array3::ones(y.dim()).view(), &mut grads)?;
/// assert_eq!(dh.dim(), (5, 3, 8));
/// # Ok::<(), recurrent::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Linear<F: Float> {
    weight: Array2<F>,
    bias: Option<Array1<F>>,
}

/// What [`Linear::forward`] saves for [`Linear::backward`]: the input, flattened to `(N, in)`, and
/// its original shape.
#[derive(Debug, Clone)]
pub struct LinearTape<F: Float, D> {
    x: Array2<F>,
    dim: D,
    weights: u64,
}

impl<F: Float> Linear<F> {
    /// A layer with bias and PyTorch's default initialisation: weight and bias from
    /// `uniform(−1/√in, 1/√in)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if a size is zero; [`Error::OutOfMemory`] if the weights cannot be
    /// allocated.
    pub fn new<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        rng: &mut R,
    ) -> Result<Self> {
        Self::with_bias(in_features, out_features, true, rng)
    }

    /// Like [`Linear::new`], with or without bias.
    ///
    /// # Errors
    ///
    /// As [`Linear::new`].
    pub fn with_bias<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        bias: bool,
        rng: &mut R,
    ) -> Result<Self> {
        if in_features == 0 || out_features == 0 {
            return Err(Error::InvalidConfig(format!(
                "in_features and out_features must be at least 1, got {in_features} and \
                 {out_features}"
            )));
        }
        let what = format!("a Linear({in_features}, {out_features})");
        crate::alloc::probe(
            crate::alloc::bytes_of::<F>(&[out_features, in_features])
                .saturating_add(crate::alloc::bytes_of::<F>(&[out_features])),
            &what,
        )?;
        let k = 1.0 / (in_features as f64).sqrt();
        let dist = Uniform::new_inclusive(F::from_f64(-k), F::from_f64(k))
            .map_err(|e| Error::InvalidConfig(format!("uniform(-{k}, {k}): {e}")))?;
        let mut draw = || dist.sample(rng);
        let weight = try_array(Ix2(out_features, in_features), &what, &mut draw)?;
        let bias = match bias {
            true => Some(try_array(Ix1(out_features), &what, &mut draw)?),
            false => None,
        };
        Ok(Self { weight, bias })
    }

    /// A layer from given arrays: `weight (out, in)`, `bias (out)`.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] if a size is zero or `bias` does not have `out` elements.
    pub fn from_weights(weight: Array2<F>, bias: Option<Array1<F>>) -> Result<Self> {
        let (out, inp) = weight.dim();
        if out == 0 || inp == 0 {
            return Err(shape_err(
                "weight",
                "(out, in) with out, in ≥ 1",
                weight.shape(),
            ));
        }
        if let Some(b) = &bias {
            if b.len() != out {
                return Err(shape_err(
                    "bias",
                    format!("({out}) to match weight"),
                    b.shape(),
                ));
            }
        }
        Ok(Self {
            weight: weight.as_standard_layout().into_owned(),
            bias: bias.map(|b| b.as_standard_layout().into_owned()),
        })
    }

    /// Loads `{prefix}weight` `(out, in)` and, if present, `{prefix}bias` `(out)` from a safetensors
    /// file (PyTorch's `nn.Linear` `state_dict()` keys).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be read; [`Error::WeightFile`] if it is corrupt or the
    /// weight is missing or misshaped.
    pub fn load_safetensors(path: impl AsRef<std::path::Path>, prefix: &str) -> Result<Self> {
        let path = path.as_ref();
        let mut file = crate::io::read::<F>(path)?;
        let (kw, kb) = (format!("{prefix}weight"), format!("{prefix}bias"));
        let weight = crate::io::rank(crate::io::take(&mut file, &kw, path)?, &kw, path)?;
        let bias = match file.tensors.remove(&kb) {
            Some(b) => Some(crate::io::rank(b, &kb, path)?),
            None => None,
        };
        Self::from_weights(weight, bias)
            .map_err(|e| crate::io::invalid(path, Some(format!("`{prefix}…`")), e))
    }

    /// Saves `{prefix}weight` and `{prefix}bias`, atomically.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be written.
    pub fn save_safetensors(&self, path: impl AsRef<std::path::Path>, prefix: &str) -> Result<()> {
        crate::io::save(self, path, prefix)
    }

    /// Number of input features.
    pub fn in_features(&self) -> usize {
        self.weight.ncols()
    }

    /// Number of output features.
    pub fn out_features(&self) -> usize {
        self.weight.nrows()
    }

    /// The weight `(out, in)`.
    pub fn weight(&self) -> &Array2<F> {
        &self.weight
    }

    /// The bias `(out)`, if any.
    pub fn bias(&self) -> Option<&Array1<F>> {
        self.bias.as_ref()
    }

    fn flatten<D: Dimension>(&self, x: &ArrayView<'_, F, D>) -> Result<Array2<F>> {
        let shape = x.shape();
        let want = self.in_features();
        match shape.last() {
            Some(&n) if n == want && x.ndim() >= 1 => {}
            _ => {
                return Err(shape_err(
                    "input",
                    format!("(..., {want}): the layer expects {want} features on the last axis"),
                    shape,
                ))
            }
        }
        // The output `(..., out)` must be a shape an array can have, even with no element.
        let mut out_dims = shape.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = self.out_features();
        }
        crate::alloc::check_shape(&out_dims, "the output of a Linear")?;
        let rows = x.len() / want;
        Ok(x.as_standard_layout()
            .into_shape_with_order((rows, want))
            .expect("standard layout reshapes")
            .into_owned())
    }

    fn apply(&self, x2: &Array2<F>) -> Array2<F> {
        let mut y = Array2::zeros((x2.nrows(), self.out_features()));
        gemm(x2.view(), self.weight.t(), &mut y.view_mut(), false);
        if let Some(b) = &self.bias {
            y.rows_mut().into_iter().for_each(|mut row| row += b);
        }
        y
    }

    /// Applies the layer and keeps a tape for [`Linear::backward`].
    ///
    /// `x` is `(..., in)`; returns `(y (..., out), tape)`.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] if the last axis of `x` is not `in_features`, or the output
    /// `(..., out_features)` is a shape no array can have (an input with no element but axes so
    /// long that their lengths multiply past `isize::MAX`).
    pub fn forward<D: Dimension>(
        &self,
        x: ArrayView<'_, F, D>,
    ) -> Result<(Array<F, D>, LinearTape<F, D>)> {
        let x2 = self.flatten(&x)?;
        let y = unflatten(self.apply(&x2), x.raw_dim(), self.out_features());
        Ok((
            y,
            LinearTape {
                x: x2,
                dim: x.raw_dim(),
                weights: self.fingerprint(),
            },
        ))
    }

    /// Applies the layer without keeping a tape.
    ///
    /// # Errors
    ///
    /// As [`Linear::forward`].
    pub fn infer<D: Dimension>(&self, x: ArrayView<'_, F, D>) -> Result<Array<F, D>> {
        let x2 = self.flatten(&x)?;
        Ok(unflatten(self.apply(&x2), x.raw_dim(), self.out_features()))
    }

    /// Adds the parameter gradients into `grads` and returns the gradient of the input `(..., in)`.
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] if `d_y` is not shaped like the output; [`Error::Mismatch`] if `grads` is not
    /// shaped like `self`, the tape came from a layer with another `in_features`, or the weights
    /// changed since it was recorded.
    pub fn backward<D: Dimension>(
        &self,
        tape: &LinearTape<F, D>,
        d_y: ArrayView<'_, F, D>,
        grads: &mut Self,
    ) -> Result<Array<F, D>> {
        if tape.x.ncols() != self.in_features() {
            return Err(Error::Mismatch(format!(
                "the tape was recorded by a layer with {} in_features, this one has {}",
                tape.x.ncols(),
                self.in_features()
            )));
        }
        let mut want = tape.dim.clone();
        let last = want.ndim() - 1;
        want[last] = self.out_features();
        if d_y.raw_dim() != want {
            return Err(shape_err(
                "d_y",
                format!("{:?}, the shape of the output", want.slice()),
                d_y.shape(),
            ));
        }
        check_fingerprint(self, tape.weights)?;
        check_same_layout(&self.named_arrays(), &grads.named_arrays())?;
        let dy2 = d_y
            .as_standard_layout()
            .into_shape_with_order((tape.x.nrows(), self.out_features()))
            .expect("standard layout reshapes")
            .into_owned();
        gemm(dy2.t(), tape.x.view(), &mut grads.weight.view_mut(), true);
        if let Some(gb) = &mut grads.bias {
            Zip::from(gb)
                .and(&dy2.sum_axis(Axis(0)))
                .for_each(|g, &d| *g += d);
        }
        let mut dx2 = Array2::zeros((dy2.nrows(), self.in_features()));
        gemm(dy2.view(), self.weight.view(), &mut dx2.view_mut(), false);
        Ok(unflatten(dx2, tape.dim.clone(), self.in_features()))
    }
}

/// Reshapes `(N, last)` back to `dim` with its last axis set to `last`.
fn unflatten<F: Float, D: Dimension>(a: Array2<F>, mut dim: D, last: usize) -> Array<F, D> {
    let n = dim.ndim() - 1;
    dim[n] = last;
    a.into_shape_with_order(IxDyn(dim.slice()))
        .expect("same number of elements")
        .into_dimensionality::<D>()
        .expect("same number of axes")
}

impl<F: Float> Params<F> for Linear<F> {
    fn named_arrays(&self) -> Vec<(String, ArrayViewD<'_, F>)> {
        let mut v = vec![("weight".to_string(), self.weight.view().into_dyn())];
        if let Some(b) = &self.bias {
            v.push(("bias".to_string(), b.view().into_dyn()));
        }
        v
    }
    fn arrays_mut(&mut self) -> Vec<ArrayViewMutD<'_, F>> {
        let mut v = vec![self.weight.view_mut().into_dyn()];
        if let Some(b) = &mut self.bias {
            v.push(b.view_mut().into_dyn());
        }
        v
    }
}
