//! Shared helpers for the integration tests: random data, a closeness check that reports where it
//! fails, a central-difference gradient check, and the PyTorch fixture reader.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array3, ArrayD, ArrayView3, ArrayViewD, Dimension, IxDyn};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use recurrent::{Cell, Float, Params, Recurrent, State};

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Standard-normal array of shape `shape`, scaled.
pub fn randn<F: Float>(shape: &[usize], scale: f64, rng: &mut StdRng) -> ArrayD<F> {
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        let v: f64 = StandardNormal.sample(rng);
        F::from_f64(v * scale)
    })
}

pub fn randn3<F: Float>(shape: (usize, usize, usize), scale: f64, rng: &mut StdRng) -> Array3<F> {
    randn::<F>(&[shape.0, shape.1, shape.2], scale, rng)
        .into_dimensionality()
        .unwrap()
}

/// A random state with every part drawn from N(0, scale²).
pub fn rand_state<F: Float, S: State<F>>(
    batch: usize,
    hidden: usize,
    scale: f64,
    rng: &mut StdRng,
) -> S {
    randomized(S::zeros(batch, hidden), scale, rng)
}

/// `state` with every entry drawn from `N(0, scale²)` (keeps its shapes, e.g. a projected LSTM's
/// `h` narrower than its `c`).
pub fn randomized<F: Float, S: State<F>>(mut state: S, scale: f64, rng: &mut StdRng) -> S {
    for mut part in state.parts_mut() {
        part.mapv_inplace(|_| {
            let v: f64 = StandardNormal.sample(rng);
            F::from_f64(v * scale)
        });
    }
    state
}

/// Largest error `|a − e| / max(|a|, |e|, floor)` over all elements, and where it is.
pub fn max_rel_err<F: Float>(
    actual: &ArrayViewD<F>,
    expected: &ArrayViewD<F>,
    floor: f64,
) -> (f64, Vec<usize>) {
    assert_eq!(actual.shape(), expected.shape(), "shapes differ");
    let mut worst = (0.0f64, vec![]);
    for (idx, (&a, &e)) in ndarray::indices(actual.shape())
        .into_iter()
        .zip(actual.iter().zip(expected.iter()))
    {
        let (a, e) = (a.as_f64(), e.as_f64());
        let err = (a - e).abs() / a.abs().max(e.abs()).max(floor);
        if err.is_nan() || err > worst.0 {
            worst = (err, idx.slice().to_vec());
        }
    }
    worst
}

/// Panics with the largest error, its index and both values unless every element is within
/// `tol` relative error (with absolute `floor` on the denominator).
pub fn assert_close<F: Float>(
    actual: &ArrayViewD<F>,
    expected: &ArrayViewD<F>,
    tol: f64,
    floor: f64,
    label: &str,
) {
    assert_eq!(
        actual.shape(),
        expected.shape(),
        "{label}: shape {:?} vs expected {:?}",
        actual.shape(),
        expected.shape()
    );
    let (err, idx) = max_rel_err(actual, expected, floor);
    assert!(
        err <= tol,
        "{label}: max relative error {err:.3e} > {tol:.1e} at {idx:?}: got {}, expected {}",
        actual[IxDyn(&idx)],
        expected[IxDyn(&idx)]
    );
}

/// The test loss: a random-weighted sum of every output and every part of the final state
/// ("a weighted sum is a nice hash").
pub fn weighted_loss<F: Float, S: State<F>>(
    out: &Array3<F>,
    last: &S,
    w_out: &Array3<F>,
    w_final: &S,
) -> f64 {
    let mut l: f64 = out
        .iter()
        .zip(w_out.iter())
        .map(|(&a, &b)| a.as_f64() * b.as_f64())
        .sum();
    for ((_, a), (_, b)) in last.parts().into_iter().zip(w_final.parts()) {
        l += a
            .iter()
            .zip(b.iter())
            .map(|(&a, &b)| a.as_f64() * b.as_f64())
            .sum::<f64>();
    }
    l
}

/// Central difference of `f` with respect to every element of `values`, restoring each.
fn numeric_grad<F: Float>(values: &mut [F], eps: f64, mut f: impl FnMut(&[F]) -> f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(values.len());
    for k in 0..values.len() {
        let orig = values[k];
        values[k] = F::from_f64(orig.as_f64() + eps);
        let plus = f(values);
        values[k] = F::from_f64(orig.as_f64() - eps);
        let minus = f(values);
        values[k] = orig;
        out.push((plus - minus) / (2.0 * eps));
    }
    out
}

/// Settings of a gradient check.
#[derive(Clone, Copy)]
pub struct CheckSpec {
    pub eps: f64,
    pub tol: f64,
    pub floor: f64,
}

/// f64 central differences: step 1e-5 (rounding ≈ 1e-16·|L|/step and truncation ≈ step² are both
/// ≈ 1e-10 there), max relative error 1e-6 (denominator at least 1e-3).
pub const F64_CHECK: CheckSpec = CheckSpec {
    eps: 1e-5,
    tol: 1e-6,
    floor: 1e-3,
};

/// Every gradient a layer's backward returns, converted to f64.
#[derive(Debug, Clone)]
pub struct Grads {
    pub params: Vec<(String, ArrayD<f64>)>,
    pub input: ArrayD<f64>,
    pub init: Vec<(String, ArrayD<f64>)>,
}

impl Grads {
    /// Every array with a label.
    pub fn all(&self) -> Vec<(String, &ArrayD<f64>)> {
        let mut v: Vec<(String, &ArrayD<f64>)> =
            self.params.iter().map(|(n, a)| (n.clone(), a)).collect();
        v.push(("input".into(), &self.input));
        v.extend(self.init.iter().map(|(n, a)| (format!("init.{n}"), a)));
        v
    }
}

fn to_f64<F: Float>(a: ArrayViewD<F>) -> ArrayD<f64> {
    a.mapv(|v| v.as_f64())
}

/// Converts a state between float types part by part.
pub fn cast_state<F: Float, G: Float, S: State<F>, U: State<G>>(s: &S) -> U {
    let (b, h) = s.h().dim();
    let mut u = U::zeros(b, h);
    for (mut dst, (_, src)) in u.parts_mut().into_iter().zip(s.parts()) {
        dst.zip_mut_with(&src, |d, &v| *d = G::from_f64(v.as_f64()));
    }
    u
}

/// The loss weights of [`weighted_loss`] for a layer's outputs and final state.
pub fn loss_weights<F: Float, S: State<F>>(
    steps: usize,
    batch: usize,
    hidden: usize,
    seed: u64,
) -> (Array3<F>, S) {
    let mut r = rng(seed);
    (
        randn3((steps, batch, hidden), 1.0, &mut r),
        rand_state(batch, hidden, 1.0, &mut r),
    )
}

/// Runs forward and backward with `d_output = w_out`, `d_final = w_final`: the gradients of
/// [`weighted_loss`].
pub fn analytic<F: Float, C: Cell<F>>(
    layer: &Recurrent<C>,
    x: &Array3<F>,
    init: &C::State,
    w_out: &Array3<F>,
    w_final: &C::State,
) -> Grads {
    let (_, _, tape) = layer.forward(x.view(), Some(init), None).unwrap();
    let mut grads = layer.zeros_like();
    let (dx, d_init) = layer
        .backward(&tape, w_out.view(), Some(w_final), &mut grads)
        .unwrap();
    Grads {
        params: grads
            .named_arrays()
            .into_iter()
            .map(|(n, a)| (n, to_f64(a)))
            .collect(),
        input: to_f64(dx.view().into_dyn()),
        init: d_init
            .parts()
            .into_iter()
            .map(|(n, a)| (n.to_string(), to_f64(a.into_dyn())))
            .collect(),
    }
}

/// Checks every gradient of `layer.backward` — each parameter, the input and every part of the
/// initial state — against central differences of [`weighted_loss`] with random weights drawn
/// from `seed`. Returns the (checked) analytic gradients.
pub fn gradcheck_layer<F: Float, C: Cell<F>>(
    layer: &Recurrent<C>,
    x: &Array3<F>,
    init: &C::State,
    spec: CheckSpec,
    seed: u64,
) -> Grads {
    let (steps, batch, _) = x.dim();
    let hidden = init.h().ncols();
    let (w_out, w_final) = loss_weights::<F, C::State>(steps, batch, hidden, seed);
    let loss = |l: &Recurrent<C>, x: ArrayView3<F>, s: &C::State| {
        let (o, last) = l.infer(x, Some(s), None).unwrap();
        weighted_loss(&o, &last, &w_out, &w_final)
    };
    let grads = analytic(layer, x, init, &w_out, &w_final);
    let mut numeric: Vec<Vec<f64>> = Vec::new();

    // Parameters.
    let mut probe = layer.clone();
    for k in 0..layer.names().len() {
        let mut values: Vec<F> = probe.arrays()[k].iter().copied().collect();
        numeric.push(numeric_grad(&mut values, spec.eps, |v| {
            probe.arrays_mut()[k]
                .iter_mut()
                .zip(v)
                .for_each(|(p, &q)| *p = q);
            loss(&probe, x.view(), init)
        }));
        probe.arrays_mut()[k]
            .iter_mut()
            .zip(&values)
            .for_each(|(p, &q)| *p = q);
    }
    // Input.
    let mut xv = x.as_standard_layout().into_owned();
    numeric.push(numeric_grad(xv.as_slice_mut().unwrap(), spec.eps, |v| {
        loss(layer, ArrayView3::from_shape(x.dim(), v).unwrap(), init)
    }));
    // Initial state, part by part.
    for k in 0..init.parts().len() {
        let mut s = init.clone();
        let mut values: Vec<F> = init.parts()[k].1.iter().copied().collect();
        numeric.push(numeric_grad(&mut values, spec.eps, |v| {
            s.parts_mut()[k]
                .iter_mut()
                .zip(v)
                .for_each(|(p, &q)| *p = q);
            loss(layer, x.view(), &s)
        }));
    }

    let all = grads.all();
    assert_eq!(all.len(), numeric.len());
    for ((label, ana), num) in all.into_iter().zip(numeric) {
        let num = ArrayD::from_shape_vec(ana.raw_dim(), num).unwrap();
        let (err, idx) = max_rel_err(&ana.view(), &num.view(), spec.floor);
        assert!(
            err <= spec.tol,
            "gradient check failed for {label}: max relative error {err:.3e} > {:.1e} at {idx:?}: \
             analytic {}, numeric {}",
            spec.tol,
            ana[IxDyn(&idx)],
            num[IxDyn(&idx)]
        );
    }
    grads
}

/// A fixture file written by `scripts/make_fixtures.py`: every tensor as `f64`, plus metadata.
pub struct Fixture {
    pub name: String,
    pub tensors: HashMap<String, ArrayD<f64>>,
    pub metadata: HashMap<String, String>,
}

impl Fixture {
    pub fn load(name: &str) -> Fixture {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(format!("{name}.safetensors"));
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let metadata = meta.metadata().clone().unwrap_or_default();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors = HashMap::new();
        for (key, view) in st.tensors() {
            let data = view.data();
            let values: Vec<f64> = match view.dtype() {
                safetensors::Dtype::F64 => data
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                safetensors::Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
                    .collect(),
                safetensors::Dtype::I64 => data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
                d => panic!("{name}: tensor {key} has dtype {d:?}"),
            };
            tensors.insert(
                key,
                ArrayD::from_shape_vec(IxDyn(view.shape()), values).unwrap(),
            );
        }
        Fixture {
            name: name.to_string(),
            tensors,
            metadata,
        }
    }

    /// Tensor `key` converted to `F` (exact: f32 fixtures hold f32 values).
    pub fn get<F: Float>(&self, key: &str) -> ArrayD<F> {
        self.tensors
            .get(key)
            .unwrap_or_else(|| panic!("{}: no tensor {key}", self.name))
            .mapv(F::from_f64)
    }

    pub fn has(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    pub fn meta(&self, key: &str) -> &str {
        self.metadata
            .get(key)
            .unwrap_or_else(|| panic!("{}: no metadata {key}", self.name))
    }

    pub fn meta_f64(&self, key: &str) -> f64 {
        self.meta(key).parse().unwrap()
    }
}

/// Random values for every parameter of `model` whose name contains `ln_`: gains `1 + 0.3·N(0,1)`,
/// biases `0.3·N(0,1)` (a layer-normalised LSTM starts at gains 1 and biases 0, where a wrong
/// gain or bias would not show).
pub fn randomize_layer_norm<F: Float, P: recurrent::Params<F>>(model: &mut P, seed: u64) {
    let mut r = rng(seed);
    let names: Vec<String> = model.named_arrays().into_iter().map(|(n, _)| n).collect();
    for (name, mut a) in names.iter().zip(model.arrays_mut()) {
        if !name.contains("ln_") {
            continue;
        }
        let noise: ArrayD<F> = randn(a.shape(), 0.3, &mut r);
        let base = if name.contains("_weight") { 1.0 } else { 0.0 };
        a.zip_mut_with(&noise, |v, &n| *v = F::from_f64(base) + n);
    }
}

/// A layer-normalised LSTM cell with random gains and biases.
pub fn layer_norm_lstm<F: Float>(
    input: usize,
    hidden: usize,
    bias: bool,
    seed: u64,
) -> recurrent::LayerNormLstmCell<F> {
    let mut cell =
        recurrent::LayerNormLstmCell::with_bias(input, hidden, bias, &mut rng(seed)).unwrap();
    randomize_layer_norm(&mut cell, seed + 1);
    cell
}
