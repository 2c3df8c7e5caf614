//! The [`Params`] trait: a model's arrays in a fixed order, with names.

use ndarray::{ArrayViewD, ArrayViewMutD, Zip};

use crate::error::{Error, Result};
use crate::float::Float;

/// A set of named parameter arrays in a fixed order.
///
/// Every layer implements it, and so do tuples of `Params` (names prefixed `0.`, `1.`, ... like
/// PyTorch's `nn.Sequential`). **A gradient has the same type as what it is the gradient of**: the
/// gradient buffer of a layer is a layer of the same type, made by [`Params::zeros_like`], and
/// `backward` adds into it. Optimizers, gradient clipping and weight files only ever see the arrays
/// listed here, so they work for any model.
///
/// Names follow PyTorch's `state_dict()` keys (`weight_ih_l0`, `bias_hh_l0`, `weight`, `bias`).
///
/// # Your own model: `#[derive(Params)]`
///
/// With the feature `derive` (on by default), `#[derive(Clone, Params)]` on a struct lists its
/// fields' arrays in field order, each named by its field path — `encoder.weight_ih_l0`,
/// `blocks.1.bias`, `head.weight` — which are exactly the `state_dict()` keys of a PyTorch
/// `nn.Module` whose attributes have the same names, so [`io::load`](crate::io::load) reads
/// that module's file strictly. Fields may be layers, tuples, `Vec`s (numbered as
/// `nn.ModuleList`) and other derived structs; `#[params(skip)]` leaves a field out. The float
/// type is the struct's `F: Float` parameter or the `f32`/`f64` its fields name
/// (`#[params(float = f32)]` says it explicitly).
///
/// ```
/// use rand::SeedableRng;
/// use recurrent::{Float, Linear, Lstm, Params, StackConfig};
///
/// // class Model(nn.Module): encoder = nn.LSTM(3, 8); head = nn.Linear(8, 2)
/// #[derive(Clone, Params)]
/// struct Model<F: Float> {
///     encoder: Lstm<F>,
///     head: Linear<F>,
///     #[params(skip)]
///     epochs: usize,
/// }
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let model = Model::<f32> {
///     encoder: Lstm::new(StackConfig::new(3, 8), &mut rng)?,
///     head: Linear::new(8, 2, &mut rng)?,
///     epochs: 0,
/// };
/// assert_eq!(
///     model.names(),
///     ["encoder.weight_ih_l0", "encoder.weight_hh_l0", "encoder.bias_ih_l0",
///      "encoder.bias_hh_l0", "head.weight", "head.bias"]
/// );
/// let grads = model.zeros_like(); // a gradient buffer is a model of the same type
/// # let _ = grads;
/// # Ok::<(), recurrent::Error>(())
/// ```
///
/// A hand-written implementation must list the same arrays in the same order in
/// [`named_arrays`](Params::named_arrays) and [`arrays_mut`](Params::arrays_mut); loading and
/// optimizers check it.
///
/// # Examples
///
/// ```
/// use rand::SeedableRng;
/// use recurrent::{LstmCell, Params, Recurrent};
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let lstm = Recurrent::new(LstmCell::<f32>::new(3, 5, &mut rng).unwrap());
/// let names: Vec<String> = lstm.named_arrays().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]);
/// // 4 gates × 5 hidden × (3 inputs + 5 hidden + 2 biases)
/// assert_eq!(lstm.num_params(), 4 * 5 * (3 + 5 + 2));
/// let grads = lstm.zeros_like();
/// assert_eq!(grads.num_params(), lstm.num_params());
/// ```
pub trait Params<F: Float>: Clone {
    /// Every array with its name, in a fixed order.
    fn named_arrays(&self) -> Vec<(String, ArrayViewD<'_, F>)>;

    /// Every array, mutable, in the same order as [`Params::named_arrays`]. (Loading a weight
    /// file or an optimizer's state checks this by the arrays' addresses and refuses an
    /// implementation that breaks it with [`Error::Mismatch`], rather than swap weights.)
    fn arrays_mut(&mut self) -> Vec<ArrayViewMutD<'_, F>>;

    /// Every array, in order, without names.
    fn arrays(&self) -> Vec<ArrayViewD<'_, F>> {
        self.named_arrays().into_iter().map(|(_, a)| a).collect()
    }

    /// The names, in order.
    fn names(&self) -> Vec<String> {
        self.named_arrays().into_iter().map(|(n, _)| n).collect()
    }

    /// The total number of scalar parameters.
    fn num_params(&self) -> usize {
        self.arrays().iter().map(|a| a.len()).sum()
    }

    /// A copy of `self` with every array set to zero: a gradient buffer.
    fn zeros_like(&self) -> Self {
        let mut z = self.clone();
        z.fill_zero();
        z
    }

    /// Sets every array to zero (reuse a gradient buffer for the next batch).
    fn fill_zero(&mut self) {
        for mut a in self.arrays_mut() {
            a.fill(F::zero());
        }
    }

    /// Multiplies every array by `factor`.
    fn scale(&mut self, factor: F) {
        for mut a in self.arrays_mut() {
            a.mapv_inplace(|v| v * factor);
        }
    }

    /// `self += alpha * other`, array by array.
    ///
    /// # Errors
    ///
    /// [`Error::Mismatch`] if `other` does not list the same number of arrays with the same shapes.
    fn add_scaled(&mut self, alpha: F, other: &Self) -> Result<()> {
        let others = other.named_arrays();
        check_same_layout(&self.named_arrays(), &others)?;
        for (mut a, (_, b)) in self.arrays_mut().into_iter().zip(others) {
            Zip::from(&mut a).and(&b).for_each(|a, &b| *a += alpha * b);
        }
        Ok(())
    }

    /// A 64-bit hash of every value and every array length, in order.
    ///
    /// Layers record it in their tapes so that `backward` can refuse a tape recorded before the
    /// weights changed (e.g. by an optimizer step), instead of returning wrong gradients.
    fn fingerprint(&self) -> u64 {
        // splitmix64's finaliser spreads every bit of a word over the whole word.
        fn mix(mut z: u64) -> u64 {
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        const PRIME: u64 = 0x0100_0000_01b3;
        // Eight independent FNV-1a lanes over positions i mod 8 (so the multiplications do not
        // wait on each other), folded together at the end of each array.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for a in self.arrays() {
            let mut lanes = [0u64; 8];
            for (l, lane) in lanes.iter_mut().enumerate() {
                *lane = mix(h ^ l as u64);
            }
            // `x ↦ (s ^ x)·K` is a bijection for every state `s` (K odd), so a change of one value
            // always changes the lane; `mix` spreads the lanes' bits at the end.
            #[inline(always)]
            fn feed<F: Float>(lanes: &mut [u64; 8], i: usize, v: F) {
                const K: u64 = 0x9e37_79b9_7f4a_7c15;
                let lane = &mut lanes[i % 8];
                *lane = (*lane ^ Float::as_f64(v).to_bits()).wrapping_mul(K);
            }
            match a.as_slice_memory_order().filter(|_| a.is_standard_layout()) {
                Some(values) => {
                    let mut chunks = values.chunks_exact(8);
                    for c in &mut chunks {
                        for (l, &v) in c.iter().enumerate() {
                            feed(&mut lanes, l, v);
                        }
                    }
                    let done = values.len() - chunks.remainder().len();
                    for (i, &v) in chunks.remainder().iter().enumerate() {
                        feed(&mut lanes, done + i, v);
                    }
                }
                None => a
                    .iter()
                    .enumerate()
                    .for_each(|(i, &v)| feed(&mut lanes, i, v)),
            }
            for lane in lanes {
                h = (h ^ mix(lane)).wrapping_mul(PRIME);
            }
            h = (h ^ a.len() as u64).wrapping_mul(PRIME);
        }
        mix(h)
    }

    /// The Euclidean norm of all arrays taken together, computed in `f64`.
    fn global_norm(&self) -> f64 {
        self.arrays()
            .iter()
            .flat_map(|a| a.iter())
            .map(|v| {
                let v = Float::as_f64(*v);
                v * v
            })
            .sum::<f64>()
            .sqrt()
    }
}

/// Checks that two array lists have the same length and shapes.
/// `Err` unless `recorded` is the current fingerprint of `params`.
pub(crate) fn check_fingerprint<F: Float, P: Params<F>>(params: &P, recorded: u64) -> Result<()> {
    if params.fingerprint() == recorded {
        Ok(())
    } else {
        Err(Error::Mismatch(
            "the weights changed after this tape was recorded (e.g. by an optimizer step); run \
             forward again with the current weights"
                .to_string(),
        ))
    }
}

/// Checks the contract of a (possibly hand-written) [`Params`] implementation: that
/// [`Params::named_arrays`], [`Params::arrays`] and [`Params::arrays_mut`] list the same arrays in
/// the same order, compared by address and shape. Loading a file or an optimizer's state by name
/// and then writing through `arrays_mut` would otherwise put weights into the wrong arrays.
///
/// # Errors
///
/// [`Error::Mismatch`] naming the type and the first position where the lists differ, or the
/// first name listed twice.
pub(crate) fn check_order<F: Float, P: Params<F>>(params: &mut P) -> Result<()> {
    let named: Vec<(String, usize, Vec<usize>)> = params
        .named_arrays()
        .into_iter()
        .map(|(n, a)| (n, a.as_ptr() as usize, a.shape().to_vec()))
        .collect();
    let plain: Vec<(usize, Vec<usize>)> = params
        .arrays()
        .iter()
        .map(|a| (a.as_ptr() as usize, a.shape().to_vec()))
        .collect();
    let muts: Vec<(usize, Vec<usize>)> = params
        .arrays_mut()
        .iter()
        .map(|a| (a.as_ptr() as usize, a.shape().to_vec()))
        .collect();
    let ty = std::any::type_name::<P>();
    let mut seen = std::collections::HashSet::new();
    if let Some((name, _, _)) = named.iter().find(|(n, _, _)| !seen.insert(n.as_str())) {
        return Err(Error::Mismatch(format!(
            "the Params implementation of {ty} lists the name `{name}` twice in `named_arrays`; \
             names must be unique (a file holds one tensor per name)"
        )));
    }
    for (method, list) in [("arrays_mut", &muts), ("arrays", &plain)] {
        if list.len() != named.len() {
            return Err(Error::Mismatch(format!(
                "the Params implementation of {ty} lists {} arrays in `named_arrays` but {} in \
                 `{method}`",
                named.len(),
                list.len()
            )));
        }
        for (i, ((name, addr, shape), (a, s))) in named.iter().zip(list.iter()).enumerate() {
            if (addr, shape) != (a, s) {
                return Err(Error::Mismatch(format!(
                    "the Params implementation of {ty} lists arrays in different orders: position \
                     {i} is `{name}` {shape:?} in `named_arrays` but another array {s:?} in \
                     `{method}`, which must follow `named_arrays`' order"
                )));
            }
        }
    }
    Ok(())
}

pub(crate) fn check_same_layout<F>(
    a: &[(String, ArrayViewD<'_, F>)],
    b: &[(String, ArrayViewD<'_, F>)],
) -> Result<()> {
    if a.len() != b.len() {
        return Err(Error::Mismatch(format!(
            "the parameter set has {} arrays, the other has {}",
            a.len(),
            b.len()
        )));
    }
    for ((na, xa), (_, xb)) in a.iter().zip(b) {
        if xa.shape() != xb.shape() {
            return Err(Error::Mismatch(format!(
                "array `{na}` has shape {:?}, the other has {:?}",
                xa.shape(),
                xb.shape()
            )));
        }
    }
    Ok(())
}

macro_rules! impl_params_tuple {
    ($($idx:tt $t:ident),+) => {
        impl<F: Float, $($t: Params<F>),+> Params<F> for ($($t,)+) {
            fn named_arrays(&self) -> Vec<(String, ArrayViewD<'_, F>)> {
                let mut out = Vec::new();
                $(
                    out.extend(
                        self.$idx
                            .named_arrays()
                            .into_iter()
                            .map(|(n, a)| (format!("{}.{}", $idx, n), a)),
                    );
                )+
                out
            }
            fn arrays_mut(&mut self) -> Vec<ArrayViewMutD<'_, F>> {
                let mut out = Vec::new();
                $( out.extend(self.$idx.arrays_mut()); )+
                out
            }
        }
    };
}

impl_params_tuple!(0 A, 1 B);
impl_params_tuple!(0 A, 1 B, 2 C);
impl_params_tuple!(0 A, 1 B, 2 C, 3 D);

/// A list of parts (PyTorch's `nn.ModuleList`): part `i`'s arrays are named `{i}.{name}`, so a
/// field `blocks: Vec<Linear<F>>` of a `#[derive(Params)]` struct gives `blocks.0.weight`, ...
impl<F: Float, T: Params<F>> Params<F> for Vec<T> {
    fn named_arrays(&self) -> Vec<(String, ArrayViewD<'_, F>)> {
        let mut out = Vec::new();
        for (i, part) in self.iter().enumerate() {
            out.extend(
                part.named_arrays()
                    .into_iter()
                    .map(|(n, a)| (format!("{i}.{n}"), a)),
            );
        }
        out
    }
    fn arrays_mut(&mut self) -> Vec<ArrayViewMutD<'_, F>> {
        self.iter_mut().flat_map(|part| part.arrays_mut()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Linear;
    use ndarray::Array2;

    /// Every single-value change, down to one ulp, and every swap of two values changes the
    /// fingerprint (arrays long enough to fill the hash's eight lanes and leave a remainder).
    fn sensitive<F: Float>() {
        let w = Array2::from_shape_fn((3, 13), |(i, j)| {
            F::from_f64((i * 13 + j) as f64 * 0.37 - 5.0)
        });
        let base = Linear::from_weights(w.clone(), None).unwrap();
        let f0 = base.fingerprint();
        assert_eq!(
            f0,
            Linear::from_weights(w.clone(), None).unwrap().fingerprint()
        );
        for idx in 0..w.len() {
            let (i, j) = (idx / 13, idx % 13);
            let mut changed = w.clone();
            let v = changed[[i, j]];
            changed[[i, j]] = v + v.abs().max(F::one()) * F::epsilon();
            let f = Linear::from_weights(changed, None).unwrap().fingerprint();
            assert_ne!(f, f0, "change at ({i}, {j})");
            let other = (idx + 8) % w.len();
            let mut swapped = w.clone();
            swapped.as_slice_mut().unwrap().swap(idx, other);
            let f = Linear::from_weights(swapped, None).unwrap().fingerprint();
            assert_ne!(f, f0, "swap of {idx} and {other}");
        }
    }

    #[test]
    fn fingerprint_sees_every_change_f32() {
        sensitive::<f32>();
    }

    #[test]
    fn fingerprint_sees_every_change_f64() {
        sensitive::<f64>();
    }
}
