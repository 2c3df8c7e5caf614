//! `Embedding`: parity with `torch.nn.Embedding` on `tests/fixtures/embedding_f64.safetensors`, an
//! f64 central-difference gradient check of `backward`, padding and repeated ids, errors, weight
//! files and sizes too large to allocate.

use crate::common::*;
use ndarray::{array, s, Array1, Array2, Array3, ArrayD, Ix2};
use recurrent::{io, Embedding, Error, Params};

fn msg<T: std::fmt::Debug>(r: recurrent::Result<T>) -> (Error, String) {
    let e = r.expect_err("expected an error");
    let m = e.to_string();
    (e, m)
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("recurrent-embedding-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `(T, B)` ids for a table of 7 rows: every id but 6 occurs, 1 and 4 several times (also within
/// one step), the padding id 2 twice.
fn ids() -> Array2<usize> {
    array![[1, 4, 2], [0, 1, 3], [5, 4, 1], [2, 3, 0], [4, 5, 1]]
}

/// `Σ forward(ids) · w`: the loss whose gradient `backward(ids, w)` returns.
fn weighted(emb: &Embedding<f64>, ids: &Array2<usize>, w: &Array3<f64>) -> f64 {
    let y = emb.forward(ids.view()).unwrap();
    y.iter().zip(w).map(|(a, b)| a * b).sum()
}

/// Checks `backward` against central differences of [`weighted`] for every row but `skip`
/// (step 1e-5, max relative error 1e-6 with denominator ≥ 1e-3: `F64_CHECK`), and returns the
/// analytic gradient.
fn gradcheck(emb: &Embedding<f64>, seed: u64, skip: Option<usize>) -> Array2<f64> {
    let ids = ids();
    let (t, b) = ids.dim();
    let w = randn3((t, b, emb.embedding_dim()), 1.0, &mut rng(seed));
    let mut grads = emb.zeros_like();
    emb.backward(ids.view(), w.view(), &mut grads).unwrap();
    let analytic = grads.weight().clone();

    let spec = F64_CHECK;
    let mut numeric = Array2::<f64>::zeros(emb.weight().raw_dim());
    for ((r, c), g) in numeric.indexed_iter_mut() {
        let at = |delta: f64| {
            let mut table = emb.weight().clone();
            table[(r, c)] += delta;
            let probe = Embedding::from_weights(table, emb.padding_idx()).unwrap();
            weighted(&probe, &ids, &w)
        };
        *g = (at(spec.eps) - at(-spec.eps)) / (2.0 * spec.eps);
    }
    let rows: Vec<usize> = (0..emb.num_embeddings())
        .filter(|&r| Some(r) != skip)
        .collect();
    let pick = |a: &Array2<f64>| a.select(ndarray::Axis(0), &rows).into_dyn();
    assert_close(
        &pick(&analytic).view(),
        &pick(&numeric).view(),
        spec.tol,
        spec.floor,
        "d weight",
    );
    analytic
}

#[test]
fn backward_matches_central_differences() {
    let emb = Embedding::<f64>::new(7, 3, None, &mut rng(1)).unwrap();
    let g = gradcheck(&emb, 2, None);
    // Row 6 never occurs: exactly zero; row 1 occurs four times.
    assert_eq!(g.row(6), Array1::<f64>::zeros(3));
    assert!(g.row(1).iter().all(|&v| v != 0.0));
}

/// With a padding id, every other row's gradient is still the true derivative; the padding row's
/// is zero by definition (PyTorch), although the loss does depend on it.
#[test]
fn padding_row_gets_no_gradient() {
    // `from_weights` keeps a non-zero padding row, so the loss really depends on it.
    let table = randn::<f64>(&[7, 3], 1.0, &mut rng(3))
        .into_dimensionality::<Ix2>()
        .unwrap();
    let emb = Embedding::from_weights(table, Some(2)).unwrap();
    assert!(emb.weight().row(2).iter().all(|&v| v != 0.0));
    let g = gradcheck(&emb, 4, Some(2));
    assert_eq!(g.row(2), Array1::<f64>::zeros(3));
    // Without padding_idx the same row has a gradient.
    let plain = Embedding::from_weights(emb.weight().clone(), None).unwrap();
    let g = gradcheck(&plain, 4, None);
    assert!(g.row(2).iter().all(|&v| v != 0.0));

    // `new` zeroes the padding row; the output at padding positions is zero.
    let emb = Embedding::<f32>::new(7, 3, Some(2), &mut rng(5)).unwrap();
    assert_eq!(emb.weight().row(2), Array1::<f32>::zeros(3));
    assert!(emb.weight().row(3).iter().all(|&v| v != 0.0));
    let y = emb.forward(ids().view()).unwrap();
    assert_eq!(y.slice(s![0, 2, ..]), Array1::<f32>::zeros(3));
    assert_eq!(y.slice(s![3, 0, ..]), Array1::<f32>::zeros(3));
}

/// Hand-computed: every occurrence of an id adds its `d_output` row, and gradients add into what
/// `grads` already holds.
#[test]
fn repeated_ids_accumulate() {
    let emb = Embedding::from_weights(Array2::<f64>::zeros((4, 2)), Some(0)).unwrap();
    let ids = array![[1, 3], [1, 0], [2, 1]];
    let d = array![
        [[1.0, 2.0], [10.0, 20.0]],
        [[100.0, 200.0], [5.0, 5.0]],
        [[0.5, 0.25], [1000.0, 2000.0]]
    ];
    let mut grads = emb.zeros_like();
    emb.backward(ids.view(), d.view(), &mut grads).unwrap();
    let want = array![[0.0, 0.0], [1101.0, 2202.0], [0.5, 0.25], [10.0, 20.0]];
    assert_eq!(grads.weight(), &want);
    emb.backward(ids.view(), d.view(), &mut grads).unwrap();
    assert_eq!(grads.weight(), &(want * 2.0));
}

#[test]
fn matches_pytorch() {
    let fx = Fixture::load("embedding_f64");
    let weight = fx
        .get::<f64>("weight")
        .into_dimensionality::<Ix2>()
        .unwrap();
    let padding = fx.meta("padding_idx").parse::<usize>().unwrap();
    let ids = fx
        .get::<f64>("ids")
        .into_dimensionality::<Ix2>()
        .unwrap()
        .mapv(|v| v as usize);
    // The fixture holds the padding id and repeated ids.
    assert!(ids.iter().filter(|&&i| i == padding).count() >= 2);
    let mut seen = std::collections::HashSet::new();
    assert!(!ids.iter().all(|&i| seen.insert(i)));

    let emb = Embedding::from_weights(weight.clone(), Some(padding)).unwrap();
    assert_eq!(
        (emb.num_embeddings(), emb.embedding_dim(), emb.padding_idx()),
        (10, 4, Some(2))
    );
    let y = emb.forward(ids.view()).unwrap();
    assert_close(
        &y.view().into_dyn(),
        &fx.get::<f64>("output").view(),
        1e-12,
        1e-12,
        "output",
    );
    let d = fx
        .get::<f64>("d_output")
        .into_dimensionality::<ndarray::Ix3>()
        .unwrap();
    let mut grads = emb.zeros_like();
    emb.backward(ids.view(), d.view(), &mut grads).unwrap();
    assert_close(
        &grads.weight().view().into_dyn(),
        &fx.get::<f64>("grad.weight").view(),
        1e-12,
        1e-12,
        "grad.weight",
    );

    // The weight read from the PyTorch-written file by the loader.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/embedding_f64.safetensors");
    let loaded = Embedding::<f64>::load_safetensors(&path, "", Some(padding)).unwrap();
    assert_eq!(loaded, emb);
}

/// 1-D, 2-D and dynamic-rank ids give the same rows; strided (transposed) views of the ids and
/// of `d_output` are read in their logical order.
#[test]
fn any_shape_and_layout() {
    let emb = Embedding::<f64>::new(7, 3, Some(2), &mut rng(6)).unwrap();
    let ids = ids();
    let y = emb.forward(ids.view()).unwrap();
    for ((t, b), &id) in ids.indexed_iter() {
        assert_eq!(y.slice(s![t, b, ..]), emb.weight().row(id));
    }
    let flat = Array1::from_iter(ids.iter().copied());
    let y1 = emb.forward(flat.view()).unwrap();
    assert_eq!(y1.dim(), (15, 3));
    assert_eq!(y1.into_shape_with_order((5, 3, 3)).unwrap(), y);
    let dynamic: ArrayD<usize> = ids.clone().into_dyn();
    assert_eq!(emb.forward(dynamic.view()).unwrap(), y.clone().into_dyn());
    // Zero-sized batches are fine.
    assert_eq!(
        emb.forward(Array2::<usize>::zeros((0, 3)).view())
            .unwrap()
            .dim(),
        (0, 3, 3)
    );

    // Transposed views: (B, T) ids with (B, T, E) gradients.
    let yt = emb.forward(ids.t()).unwrap();
    assert_eq!(yt, y.clone().permuted_axes([1, 0, 2]));
    let d = randn3((5, 3, 3), 1.0, &mut rng(7));
    let mut g = emb.zeros_like();
    emb.backward(ids.view(), d.view(), &mut g).unwrap();
    let mut gt = emb.zeros_like();
    let dt = d.view().permuted_axes([1, 0, 2]);
    emb.backward(ids.t(), dt, &mut gt).unwrap();
    assert_close(
        &gt.weight().view().into_dyn(),
        &g.weight().view().into_dyn(),
        1e-15,
        1e-12,
        "transposed",
    );
    let mut g1 = emb.zeros_like();
    let d1 = d.clone().into_shape_with_order((15, 3)).unwrap();
    emb.backward(flat.view(), d1.view(), &mut g1).unwrap();
    assert_eq!(g1, g);
}

#[test]
fn out_of_range_ids_are_errors() {
    let emb = Embedding::<f32>::new(10, 4, None, &mut rng(8)).unwrap();
    let mut ids = Array2::<usize>::zeros((5, 2));
    ids[(3, 1)] = 12;
    ids[(4, 0)] = 10;
    let (e, m) = msg(emb.forward(ids.view()));
    assert!(matches!(e, Error::InvalidConfig(_)), "{e:?}");
    // The first bad id, its position [t, b] and the table size.
    assert!(
        m.contains("id 12 at [3, 1]") && m.contains("num_embeddings = 10"),
        "{m}"
    );
    let (_, m) = msg(emb.forward(array![4, 10].view()));
    assert!(m.contains("id 10 at [1]"), "{m}");

    // backward refuses them too, and leaves the gradient untouched.
    let mut grads = emb.zeros_like();
    grads.arrays_mut()[0].fill(0.5);
    let before = grads.clone();
    let d = Array3::<f32>::ones((5, 2, 4));
    let (e, m) = msg(emb.backward(ids.view(), d.view(), &mut grads));
    assert!(
        matches!(e, Error::InvalidConfig(_)) && m.contains("[3, 1]"),
        "{m}"
    );
    assert_eq!(grads, before);
}

#[test]
fn shape_and_config_errors() {
    let r = &mut rng(9);
    let (e, m) = msg(Embedding::<f32>::new(0, 4, None, r));
    assert!(matches!(e, Error::InvalidConfig(_)), "{m}");
    let (e, _) = msg(Embedding::<f32>::new(4, 0, None, r));
    assert!(matches!(e, Error::InvalidConfig(_)));
    let (e, m) = msg(Embedding::<f32>::new(4, 3, Some(4), r));
    assert!(
        matches!(e, Error::InvalidConfig(_)) && m.contains("padding_idx = 4"),
        "{m}"
    );
    assert!(Embedding::<f32>::new(4, 3, Some(3), r).is_ok());
    let (e, _) = msg(Embedding::from_weights(
        Array2::<f64>::zeros((3, 2)),
        Some(3),
    ));
    assert!(matches!(e, Error::InvalidConfig(_)));
    let (e, _) = msg(Embedding::from_weights(Array2::<f64>::zeros((0, 2)), None));
    assert!(matches!(e, Error::Shape { .. }));

    let emb = Embedding::<f64>::new(6, 3, None, r).unwrap();
    let ids = array![[0, 1], [2, 3]];
    let mut grads = emb.zeros_like();
    let (e, m) = msg(emb.backward(ids.view(), Array3::zeros((2, 2, 4)).view(), &mut grads));
    assert!(
        matches!(e, Error::Shape { ref got, .. } if got == &[2, 2, 4]),
        "{m}"
    );
    let (e, _) = msg(emb.backward(ids.view(), Array3::zeros((2, 3, 3)).view(), &mut grads));
    assert!(matches!(e, Error::Shape { .. }));
    let mut other = Embedding::<f64>::new(5, 3, None, r).unwrap();
    let (e, _) = msg(emb.backward(ids.view(), Array3::zeros((2, 2, 3)).view(), &mut other));
    assert!(matches!(e, Error::Mismatch(_)), "{e:?}");
}

/// Through `io::save`/`io::load` under PyTorch's `state_dict` key `weight` (with a prefix, as in a
/// larger model), and through the layer's own helpers.
#[test]
fn save_load_round_trip() {
    let dir = temp_dir("roundtrip");
    let emb = Embedding::<f32>::new(11, 5, Some(3), &mut rng(10)).unwrap();
    assert_eq!(emb.names(), ["weight"]);
    assert_eq!(emb.num_params(), 55);
    let path = dir.join("emb.safetensors");
    io::save(&emb, &path, "encoder.embedding.").unwrap();
    let file = io::read::<f32>(&path).unwrap();
    assert_eq!(
        file.tensors.keys().collect::<Vec<_>>(),
        ["encoder.embedding.weight"]
    );

    let mut other = Embedding::<f32>::new(11, 5, Some(3), &mut rng(11)).unwrap();
    assert_ne!(other, emb);
    io::load(&mut other, &path, "encoder.embedding.").unwrap();
    assert_eq!(other, emb);
    // A table of another size is refused and left unchanged.
    let mut small = Embedding::<f32>::new(10, 5, None, &mut rng(12)).unwrap();
    let before = small.clone();
    assert!(io::load(&mut small, &path, "encoder.embedding.").is_err());
    assert_eq!(small, before);

    let again = Embedding::<f32>::load_safetensors(&path, "encoder.embedding.", Some(3)).unwrap();
    assert_eq!(again, emb);
    let (e, _) = msg(Embedding::<f32>::load_safetensors(
        &path,
        "encoder.embedding.",
        Some(11),
    ));
    assert!(matches!(e, Error::WeightFile { .. }), "{e:?}");
    emb.save_safetensors(dir.join("b.safetensors"), "").unwrap();
    let mut third = Embedding::<f32>::new(11, 5, Some(3), &mut rng(13)).unwrap();
    io::load(&mut third, dir.join("b.safetensors"), "").unwrap();
    assert_eq!(third, emb);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Sizes no machine can hold are `OutOfMemory` errors, never an abort or a panic.
#[test]
fn sizes_too_large_to_allocate() {
    let oom = |e: &Error| matches!(e, Error::OutOfMemory { .. });
    // Even the byte count (in u128) overflows.
    let (e, m) = msg(Embedding::<f32>::new(
        usize::MAX,
        usize::MAX,
        None,
        &mut rng(0),
    ));
    assert!(oom(&e) && m.contains("overflows"), "{m}");
    // Beyond the address space.
    let (e, m) = msg(Embedding::<f32>::new(1 << 40, 1 << 40, None, &mut rng(0)));
    assert!(
        matches!(e, Error::OutOfMemory { bytes, .. } if bytes == 1 << 82)
            && m.contains("Embedding(1099511627776, 1099511627776)"),
        "{m}"
    );
    // 2^64 bytes: a count that fits, bytes that do not.
    let (e, m) = msg(Embedding::<f32>::new(
        1 << 31,
        1 << 31,
        Some(0),
        &mut rng(0),
    ));
    assert!(oom(&e), "{m}");
    // 4 PiB: representable, refused by the system.
    let (e, m) = msg(Embedding::<f64>::new(1 << 40, 1 << 9, None, &mut rng(0)));
    assert!(
        matches!(e, Error::OutOfMemory { bytes, .. } if bytes == 1 << 52),
        "{m}"
    );
}

/// `Params` lists exactly the table, so optimizers and clipping see it.
#[test]
fn params_are_the_table() {
    let mut emb = Embedding::<f64>::new(3, 2, None, &mut rng(14)).unwrap();
    let arrays = emb.arrays();
    assert_eq!(arrays.len(), 1);
    assert_eq!(arrays[0], emb.weight().view().into_dyn());
    emb.arrays_mut()[0].fill(1.5);
    assert_eq!(emb.weight(), &Array2::from_elem((3, 2), 1.5));
    let z = emb.zeros_like();
    assert_eq!(z.padding_idx(), emb.padding_idx());
    assert_eq!(z.weight(), &Array2::<f64>::zeros((3, 2)));
}
