//! Weight files: save → load round trips, PyTorch key sets, f16/bf16/f32/f64 tensors, prefixes,
//! and a clear `Err` for every wrong, truncated or mismatched file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::common::*;
use ndarray::{Array2, Array3, ArrayD, IxDyn};
use recurrent::io::WeightFileProblem;
use recurrent::{
    io, Error, Gru, LayerNormLstm, Linear, Lstm, Nonlinearity, Params, Rnn, StackConfig,
};

/// A fresh directory for one test.
fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("recurrent-io-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.safetensors"))
}

fn weight_file_err<T: std::fmt::Debug>(r: recurrent::Result<T>, want: &str) {
    match r {
        Err(e @ Error::WeightFile { .. }) => {
            assert!(e.to_string().contains(want), "{e} should contain {want}")
        }
        other => panic!("expected a WeightFile error containing {want}, got {other:?}"),
    }
}

#[test]
fn round_trip_keeps_weights_and_outputs() {
    let dir = tmp("round-trip");
    let config = StackConfig::new(4, 3)
        .with_num_layers(3)
        .with_bidirectional(true);
    let x: Array3<f32> = randn3((6, 2, 4), 1.0, &mut rng(1));
    for bias in [true, false] {
        let lstm = Lstm::<f32>::new(config.with_bias(bias), &mut rng(0)).unwrap();
        let path = dir.join("lstm.safetensors");
        lstm.save_safetensors(&path, "").unwrap();
        let back = Lstm::<f32>::load_safetensors(&path, "").unwrap();
        assert_eq!(back, lstm);
        assert_eq!(
            back.infer(x.view(), None, None).unwrap(),
            lstm.infer(x.view(), None, None).unwrap()
        );
    }
    let gru = Gru::<f64>::new(config.with_num_layers(1), &mut rng(2)).unwrap();
    gru.save_safetensors(dir.join("gru.safetensors"), "")
        .unwrap();
    assert_eq!(
        Gru::<f64>::load_safetensors(dir.join("gru.safetensors"), "").unwrap(),
        gru
    );
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
}

/// The keys and shapes written are exactly PyTorch's `state_dict()` for that configuration (the
/// fixture files record PyTorch's keys and shapes).
#[test]
fn saved_keys_are_pytorch_state_dict_keys() {
    let dir = tmp("keys");
    for (kind, file) in [
        ("lstm", "lstm_bi_3l_full_f32"),
        ("gru", "gru_bi_2l_packed_nobias_f64"),
        ("rnn", "rnn_tanh_uni_2l_full_f64"),
    ] {
        let fx = Fixture::load(file);
        let path = dir.join(format!("{kind}.safetensors"));
        match kind {
            "lstm" => Lstm::<f32>::load_safetensors(fixture(file), "")
                .unwrap()
                .save_safetensors(&path, "")
                .unwrap(),
            "gru" => Gru::<f64>::load_safetensors(fixture(file), "")
                .unwrap()
                .save_safetensors(&path, "")
                .unwrap(),
            _ => Rnn::<f64>::load_safetensors(fixture(file), "")
                .unwrap()
                .save_safetensors(&path, "")
                .unwrap(),
        }
        let saved = io::read::<f64>(&path).unwrap();
        let mut saved_keys: Vec<&String> = saved.tensors.keys().collect();
        saved_keys.sort();
        let mut torch_keys: Vec<&str> = fx.meta("param_names").split(',').collect();
        torch_keys.sort();
        assert_eq!(saved_keys, torch_keys, "{file}");
        for key in torch_keys {
            assert_eq!(
                saved.tensors[key].shape(),
                fx.tensors[key].shape(),
                "{file} {key}"
            );
            assert_eq!(
                saved.tensors[key], fx.tensors[key],
                "{file} {key}: values survive the round trip"
            );
        }
    }
}

/// One file holding a whole model: each module is picked out by its prefix.
#[test]
fn prefixes_pick_modules_out_of_a_model_file() {
    let dir = tmp("prefix");
    let path = dir.join("model.safetensors");
    let config = StackConfig::new(3, 5).with_num_layers(2);
    let enc = Lstm::<f64>::new(config, &mut rng(3)).unwrap();
    let head = Linear::<f64>::new(5, 2, &mut rng(4)).unwrap();
    let mut arrays = io::prefixed(&enc, "encoder.rnn.");
    arrays.extend(io::prefixed(&head, "head."));
    io::write(&path, &arrays, None).unwrap();
    assert_eq!(
        Lstm::<f64>::load_safetensors(&path, "encoder.rnn.").unwrap(),
        enc
    );
    assert_eq!(
        Linear::<f64>::load_safetensors(&path, "head.").unwrap(),
        head
    );
    // The generic loader is strict: another module's keys under the prefix are unexpected.
    let mut model = (enc.clone(), head.clone());
    weight_file_err(
        io::load(&mut model, &path, ""),
        "missing tensor `0.weight_ih_l0`",
    );
    let mut enc2 = Lstm::<f64>::new(config, &mut rng(5)).unwrap();
    io::load(&mut enc2, &path, "encoder.rnn.").unwrap();
    assert_eq!(enc2, enc);
    let mut head2 = Linear::<f64>::new(5, 2, &mut rng(6)).unwrap();
    weight_file_err(io::load(&mut head2, &path, ""), "missing tensor `weight`");
}

/// f16 and bf16 tensors load into f32 and f64 (values chosen to be exact in every format).
#[test]
fn half_precision_tensors_load() {
    let dir = tmp("half");
    let values: Vec<f32> = (0..8 * 2).map(|k| (k as f32 - 7.0) * 0.125).collect(); // exact in f16 and bf16
    let f16_bits = |v: f32| -> u16 {
        if v == 0.0 {
            return 0;
        }
        let b = v.to_bits();
        let sign = ((b >> 16) & 0x8000) as u16;
        let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
        sign | ((exp as u16) << 10) | ((b >> 13) & 0x3ff) as u16
    };
    for dtype in [safetensors::Dtype::F16, safetensors::Dtype::BF16] {
        let encode = |v: &[f32]| -> Vec<u8> {
            v.iter()
                .flat_map(|&x| match dtype {
                    safetensors::Dtype::F16 => f16_bits(x).to_le_bytes(),
                    _ => ((x.to_bits() >> 16) as u16).to_le_bytes(),
                })
                .collect()
        };
        // A 1-layer RNN with H = 2, I = 8: weight_ih (2, 8), weight_hh (2, 2), no biases.
        let ih = encode(&values);
        let hh = encode(&values[..4]);
        let tensors = vec![
            (
                "weight_ih_l0",
                safetensors::tensor::TensorView::new(dtype, vec![2, 8], &ih).unwrap(),
            ),
            (
                "weight_hh_l0",
                safetensors::tensor::TensorView::new(dtype, vec![2, 2], &hh).unwrap(),
            ),
        ];
        let path = dir.join("half.safetensors");
        std::fs::write(&path, safetensors::serialize(tensors, None).unwrap()).unwrap();
        let rnn = Rnn::<f64>::load_safetensors(&path, "").unwrap();
        let expect_ih =
            Array2::from_shape_vec((2, 8), values.iter().map(|&v| f64::from(v)).collect()).unwrap();
        assert_eq!(rnn.layer(0)[0].weights().weight_ih, expect_ih, "{dtype:?}");
        let rnn32 = Rnn::<f32>::load_safetensors(&path, "").unwrap();
        assert_eq!(
            rnn32.layer(0)[0].weights().weight_hh[(1, 1)],
            values[3],
            "{dtype:?}"
        );
        assert!(!rnn.config().bias);
    }
}

#[test]
fn relu_is_set_after_loading() {
    let rnn = Rnn::<f64>::load_safetensors(fixture("rnn_relu_uni_2l_full_f64"), "").unwrap();
    assert_eq!(rnn.config().nonlinearity, Nonlinearity::Tanh);
    let relu = rnn.with_nonlinearity(Nonlinearity::Relu);
    assert_eq!(relu.config().nonlinearity, Nonlinearity::Relu);
    let fx = Fixture::load("rnn_relu_uni_2l_full_f64");
    let x = fx.get::<f64>("input").into_dimensionality().unwrap();
    let h0: Array3<f64> = fx.get::<f64>("h0").into_dimensionality().unwrap();
    let (out, _) = relu.infer(x.view(), Some(&h0), None).unwrap();
    assert_close(
        &out.view().into_dyn(),
        &fx.get::<f64>("output").view(),
        1e-10,
        1e-12,
        "relu output",
    );
}

fn write_raw(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f64>)]) {
    let arrays: Vec<(String, ArrayD<f64>)> = tensors
        .iter()
        .map(|(n, s, v)| {
            (
                n.to_string(),
                ArrayD::from_shape_vec(IxDyn(s), v.clone()).unwrap(),
            )
        })
        .collect();
    io::write(path, &arrays, Some(HashMap::new())).unwrap();
}

#[test]
fn wrong_files_give_clear_errors() {
    let dir = tmp("errors");
    let good = dir.join("good.safetensors");
    let config = StackConfig::new(3, 2)
        .with_num_layers(2)
        .with_bidirectional(true);
    Lstm::<f64>::new(config, &mut rng(7))
        .unwrap()
        .save_safetensors(&good, "")
        .unwrap();
    let bytes = std::fs::read(&good).unwrap();

    // Missing file.
    match Lstm::<f64>::load_safetensors(dir.join("nope.safetensors"), "") {
        Err(Error::Io { path, .. }) => assert!(path.ends_with("nope.safetensors")),
        other => panic!("{other:?}"),
    }
    // Truncated and corrupt files.
    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    weight_file_err(
        Lstm::<f64>::load_safetensors(&truncated, ""),
        "not a valid safetensors file",
    );
    std::fs::write(&truncated, &bytes[..5]).unwrap();
    weight_file_err(
        Lstm::<f64>::load_safetensors(&truncated, ""),
        "not a valid safetensors file",
    );
    let mut corrupt = bytes.clone();
    corrupt[10] = b'{';
    corrupt[12] = 0xff;
    std::fs::write(&truncated, &corrupt).unwrap();
    weight_file_err(
        Lstm::<f64>::load_safetensors(&truncated, ""),
        "not a valid safetensors file",
    );

    // A GRU file read as an LSTM.
    weight_file_err(
        Lstm::<f64>::load_safetensors(fixture("gru_uni_1l_full_f64"), ""),
        "an LSTM has 4·H rows",
    );
    // Nothing under the prefix.
    weight_file_err(
        Lstm::<f64>::load_safetensors(&good, "encoder."),
        "no recurrent parameters (`encoder.weight_ih_l0`",
    );

    // Missing, misshaped and unexpected parameters.
    let lstm_w = |rows: usize, cols: usize| vec![0.5; rows * cols];
    let p = dir.join("bad.safetensors");
    write_raw(
        &p,
        &[
            ("weight_ih_l0", vec![8, 3], lstm_w(8, 3)),
            ("weight_hh_l0", vec![8, 2], lstm_w(8, 2)),
            ("weight_hh_l1", vec![8, 2], lstm_w(8, 2)),
        ],
    );
    weight_file_err(
        Lstm::<f64>::load_safetensors(&p, ""),
        "missing tensor `weight_ih_l1`",
    );
    write_raw(
        &p,
        &[
            ("weight_ih_l0", vec![8, 3], lstm_w(8, 3)),
            ("weight_hh_l0", vec![8, 3], lstm_w(8, 3)),
        ],
    );
    weight_file_err(
        Lstm::<f64>::load_safetensors(&p, ""),
        "tensor `weight_hh_l0` has shape [8, 3]",
    );
    write_raw(
        &p,
        &[
            ("weight_ih_l0", vec![8, 3], lstm_w(8, 3)),
            ("weight_hh_l0", vec![8, 2], lstm_w(8, 2)),
            ("bias_ih_l0", vec![7], vec![0.0; 7]),
            ("bias_hh_l0", vec![8], vec![0.0; 8]),
        ],
    );
    weight_file_err(
        Lstm::<f64>::load_safetensors(&p, ""),
        "bias_ih has shape [7], expected (8)",
    );
    write_raw(
        &p,
        &[
            ("weight_ih_l0", vec![8, 3], lstm_w(8, 3)),
            ("weight_hh_l0", vec![8, 2], lstm_w(8, 2)),
            ("bias_hh_l0", vec![8], vec![0.0; 8]),
        ],
    );
    weight_file_err(
        Lstm::<f64>::load_safetensors(&p, ""),
        "unexpected tensor `bias_hh_l0`",
    );
    write_raw(
        &p,
        &[
            ("weight_ih_l0", vec![24], lstm_w(8, 3)),
            ("weight_hh_l0", vec![8, 2], lstm_w(8, 2)),
        ],
    );
    weight_file_err(
        Lstm::<f64>::load_safetensors(&p, ""),
        "tensor `weight_ih_l0`",
    );
    // Layer 1 must read 2H = 4 features of a bidirectional layer 0.
    write_raw(
        &p,
        &[
            ("weight_ih_l0", vec![8, 3], lstm_w(8, 3)),
            ("weight_hh_l0", vec![8, 2], lstm_w(8, 2)),
            ("weight_ih_l1", vec![8, 3], lstm_w(8, 3)),
            ("weight_hh_l1", vec![8, 2], lstm_w(8, 2)),
        ],
    );
    weight_file_err(
        Lstm::<f64>::load_safetensors(&p, ""),
        "cell l1 has (input_size, hidden_size) = (3, 2), expected (2, 2)",
    );

    // Linear.
    weight_file_err(
        Linear::<f64>::load_safetensors(&good, ""),
        "missing tensor `weight`",
    );
    write_raw(
        &p,
        &[
            ("weight", vec![2, 3], vec![1.0; 6]),
            ("bias", vec![3], vec![0.0; 3]),
        ],
    );
    weight_file_err(
        Linear::<f64>::load_safetensors(&p, ""),
        "bias has shape [3], expected (2)",
    );

    // Generic strict loader: misshaped and unexpected.
    let mut small = Lstm::<f64>::new(config.with_num_layers(1), &mut rng(8)).unwrap();
    weight_file_err(
        io::load(&mut small, &good, ""),
        "unexpected tensor `bias_hh_l1`",
    );
    let mut wide = Lstm::<f64>::new(
        StackConfig::new(4, 2)
            .with_num_layers(2)
            .with_bidirectional(true),
        &mut rng(9),
    )
    .unwrap();
    let before = wide.clone();
    weight_file_err(
        io::load(&mut wide, &good, ""),
        "tensor `weight_ih_l0` has shape [8, 3], the model expects [8, 4]",
    );
    assert_eq!(wide, before, "a failed load changes nothing");
}

/// The key of a weight-file error and its problem, or a panic naming what came instead.
fn weight_file_problem<T: std::fmt::Debug>(
    r: recurrent::Result<T>,
) -> (Option<String>, WeightFileProblem) {
    match r {
        Err(Error::WeightFile { key, problem, .. }) => (key, problem),
        other => panic!("expected a WeightFile error, got {other:?}"),
    }
}

/// Errors carry structure: an I/O error keeps the operating system's error as its `source()` and
/// its kind; weight-file errors name the key and say what was wrong in fields.
#[test]
fn errors_have_structure() {
    let dir = tmp("structure");
    let missing = dir.join("nope.safetensors");
    let e = Lstm::<f32>::load_safetensors(&missing, "").unwrap_err();
    assert_eq!(e.io_kind(), Some(std::io::ErrorKind::NotFound));
    let source = std::error::Error::source(&e).expect("an Io error has a source");
    let io_err = source
        .downcast_ref::<std::io::Error>()
        .expect("the source is the std::io::Error");
    assert_eq!(io_err.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(e.to_string(), format!("{}: {io_err}", missing.display()));
    assert_eq!(e, e.clone());
    assert_eq!(
        Error::io("x", std::io::Error::from(std::io::ErrorKind::NotFound)).io_kind(),
        Some(std::io::ErrorKind::NotFound)
    );

    let lstm_w = |rows: usize, cols: usize| vec![0.5; rows * cols];
    let p = dir.join("w.safetensors");
    // A missing tensor.
    write_raw(
        &p,
        &[
            ("enc.weight_ih_l0", vec![8, 3], lstm_w(8, 3)),
            ("enc.weight_hh_l0", vec![8, 2], lstm_w(8, 2)),
            ("enc.weight_hh_l1", vec![8, 2], lstm_w(8, 2)),
        ],
    );
    assert_eq!(
        weight_file_problem(Lstm::<f64>::load_safetensors(&p, "enc.")),
        (Some("enc.weight_ih_l1".into()), WeightFileProblem::Missing)
    );
    // An unexpected tensor, for an inferred network and for a given model.
    write_raw(
        &p,
        &[
            ("weight_ih_l0", vec![8, 3], lstm_w(8, 3)),
            ("weight_hh_l0", vec![8, 2], lstm_w(8, 2)),
            ("bias_hh_l0", vec![8], vec![0.0; 8]),
        ],
    );
    let (key, problem) = weight_file_problem(Lstm::<f64>::load_safetensors(&p, ""));
    assert_eq!(key.as_deref(), Some("bias_hh_l0"));
    assert!(
        matches!(&problem, WeightFileProblem::Unexpected { inferred: Some(s) } if s.contains("bias = false")),
        "{problem:?}"
    );
    let mut model = Lstm::<f64>::new(StackConfig::new(3, 2).with_bias(false), &mut rng(1)).unwrap();
    assert_eq!(
        weight_file_problem(io::load(&mut model, &p, "")),
        (
            Some("bias_hh_l0".into()),
            WeightFileProblem::Unexpected { inferred: None }
        )
    );
    // A misshaped tensor.
    let mut wide = Lstm::<f64>::new(StackConfig::new(4, 2).with_bias(false), &mut rng(2)).unwrap();
    assert_eq!(
        weight_file_problem(io::load(&mut wide, &p, "")),
        (
            Some("weight_ih_l0".into()),
            WeightFileProblem::Shape {
                expected: vec![8, 4],
                got: vec![8, 3]
            }
        )
    );
    // A tensor of the wrong rank, another kind of network, nothing under the prefix.
    write_raw(
        &p,
        &[
            ("weight_ih_l0", vec![24], lstm_w(8, 3)),
            ("weight_hh_l0", vec![8, 2], lstm_w(8, 2)),
        ],
    );
    assert_eq!(
        weight_file_problem(Lstm::<f64>::load_safetensors(&p, "")),
        (
            Some("weight_ih_l0".into()),
            WeightFileProblem::Rank {
                expected: 2,
                got: vec![24]
            }
        )
    );
    assert_eq!(
        weight_file_problem(Gru::<f64>::load_safetensors(&p, "")),
        (
            Some("weight_hh_l0".into()),
            WeightFileProblem::CellKind {
                kind: "GRU".into(),
                gates: 3,
                got: vec![8, 2]
            }
        )
    );
    assert_eq!(
        weight_file_problem(Lstm::<f64>::load_safetensors(&p, "dec.")),
        (
            Some("dec.weight_ih_l0".into()),
            WeightFileProblem::NoParameters
        )
    );
    // Weights whose sizes do not fit together: the layer's own error is the source.
    write_raw(
        &p,
        &[
            ("weight_ih_l0", vec![8, 3], lstm_w(8, 3)),
            ("weight_hh_l0", vec![8, 2], lstm_w(8, 2)),
            ("bias_ih_l0", vec![7], vec![0.0; 7]),
            ("bias_hh_l0", vec![8], vec![0.0; 8]),
        ],
    );
    let e = Lstm::<f64>::load_safetensors(&p, "").unwrap_err();
    match &e {
        Error::WeightFile {
            problem: WeightFileProblem::Invalid { layer, error },
            ..
        } => {
            assert_eq!(layer.as_deref(), Some("layer `…_l0`"));
            assert!(matches!(**error, Error::Shape { .. }), "{error:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(std::error::Error::source(&e).is_some());
    // A corrupt file.
    std::fs::write(&p, b"not safetensors").unwrap();
    let (key, problem) = weight_file_problem(Lstm::<f64>::load_safetensors(&p, ""));
    assert_eq!(key, None);
    assert!(
        matches!(problem, WeightFileProblem::Corrupt { .. }),
        "{problem:?}"
    );
}

/// A weight stored as integers, booleans or 8-bit floats is named as such, not reported as absent.
#[test]
fn non_float_weights_are_named() {
    let dir = tmp("non-float");
    let path = dir.join("int.safetensors");
    let ih = vec![0u8; 2 * 8 * 8];
    let hh = vec![0u8; 2 * 2 * 4];
    let mask = vec![1u8; 4];
    for (ih_dtype, hh_dtype, want) in [
        (
            safetensors::Dtype::I64,
            safetensors::Dtype::F32,
            "weight_ih_l0",
        ),
        (
            safetensors::Dtype::F64,
            safetensors::Dtype::BOOL,
            "weight_hh_l0",
        ),
        (
            safetensors::Dtype::F8_E4M3,
            safetensors::Dtype::F32,
            "weight_ih_l0",
        ),
    ] {
        let hh_bytes: &[u8] = if hh_dtype == safetensors::Dtype::BOOL {
            &mask
        } else {
            &hh
        };
        let ih_shape = if ih_dtype == safetensors::Dtype::F8_E4M3 {
            vec![2, 64]
        } else {
            vec![2, 8]
        };
        let tensors = vec![
            (
                "weight_ih_l0",
                safetensors::tensor::TensorView::new(ih_dtype, ih_shape, &ih).unwrap(),
            ),
            (
                "weight_hh_l0",
                safetensors::tensor::TensorView::new(hh_dtype, vec![2, 2], hh_bytes).unwrap(),
            ),
        ];
        std::fs::write(&path, safetensors::serialize(tensors, None).unwrap()).unwrap();
        let r = Rnn::<f32>::load_safetensors(&path, "");
        assert_eq!(
            weight_file_problem(r),
            (Some(want.into()), WeightFileProblem::NotFloat),
            "{ih_dtype:?} / {hh_dtype:?}"
        );
    }
    let e = Rnn::<f32>::load_safetensors(&path, "").unwrap_err();
    assert!(
        e.to_string()
            .contains("is not stored as F16, BF16, F32 or F64 (integer, boolean and 8-bit float"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A layer index in a key name is never trusted as a count: an extra key `…_l1099511627776` (or
/// `usize::MAX`) next to a valid one-layer file is an error naming the missing layer 1, not an
/// attempt to build a trillion layers (which aborted the process before).
#[test]
fn huge_layer_indices_in_key_names_are_errors() {
    let dir = tmp("huge-layer-index");
    let p = dir.join("lstm.safetensors");
    let lstm_w = |r: usize, c: usize| vec![0.1; r * c];
    for index in [
        "1099511627776",
        "4611686018427387904",
        &usize::MAX.to_string(),
    ] {
        let extra = format!("bias_ih_l{index}");
        write_raw(
            &p,
            &[
                ("weight_ih_l0", vec![8, 3], lstm_w(8, 3)),
                ("weight_hh_l0", vec![8, 2], lstm_w(8, 2)),
                ("bias_ih_l0", vec![8], vec![0.0; 8]),
                ("bias_hh_l0", vec![8], vec![0.0; 8]),
                (&extra, vec![8], vec![0.0; 8]),
            ],
        );
        assert_eq!(
            weight_file_problem(Lstm::<f64>::load_safetensors(&p, "")),
            (Some("weight_ih_l1".into()), WeightFileProblem::Missing),
            "{extra}"
        );
    }
    // A second layer with a tensor missing is an error too (not a smaller model).
    write_raw(
        &p,
        &[
            ("weight_ih_l0", vec![8, 3], lstm_w(8, 3)),
            ("weight_hh_l0", vec![8, 2], lstm_w(8, 2)),
            ("weight_hh_l1", vec![8, 2], lstm_w(8, 2)),
        ],
    );
    assert_eq!(
        weight_file_problem(Lstm::<f64>::load_safetensors(&p, "")),
        (Some("weight_ih_l1".into()), WeightFileProblem::Missing)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Only regular files are read: a directory or a FIFO is refused at once (a FIFO used to block
/// the reader forever). Saving writes through a symlink (the link stays), refuses a directory, and
/// threads saving to one path at once all succeed (their temporary names differ).
#[cfg(unix)]
#[test]
fn special_files_and_concurrent_saves() {
    let dir = tmp("special-files");
    let e = io::read::<f32>(&dir).unwrap_err();
    assert!(
        e.to_string().contains("not a regular file (a directory)"),
        "{e}"
    );
    let fifo = dir.join("fifo.safetensors");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let (tx, rx) = std::sync::mpsc::channel();
        let f = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(io::read::<f32>(&f).map(|_| ()).map_err(|e| e.to_string()));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("reading a FIFO must not block");
        let e = got.unwrap_err();
        assert!(e.contains("FIFO"), "{e}");
    }
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
    let a = Lstm::<f32>::new(StackConfig::new(3, 4), &mut rng).unwrap();
    let b = Lstm::<f32>::new(StackConfig::new(3, 4), &mut rng).unwrap();
    let target = dir.join("target.safetensors");
    let link = dir.join("link.safetensors");
    a.save_safetensors(&target, "").unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    b.save_safetensors(&link, "").unwrap();
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(Lstm::<f32>::load_safetensors(&target, "").unwrap(), b);
    let e = a.save_safetensors(&dir, "").unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    let shared = dir.join("shared.safetensors");
    std::thread::scope(|s| {
        for net in [&a, &b, &a, &b] {
            let shared = &shared;
            s.spawn(move || {
                for _ in 0..20 {
                    net.save_safetensors(shared, "").unwrap();
                }
            });
        }
    });
    let loaded = Lstm::<f32>::load_safetensors(&shared, "").unwrap();
    assert!(loaded == a || loaded == b);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Saving into a folder that does not exist fails cleanly and leaves nothing behind; saving over an
/// existing file replaces it whole.
#[test]
fn saving_is_atomic() {
    let dir = tmp("atomic");
    let lstm = Lstm::<f32>::new(StackConfig::new(3, 2), &mut rng(10)).unwrap();
    match lstm.save_safetensors(dir.join("missing/dir/lstm.safetensors"), "") {
        Err(Error::Io { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(!dir.join("missing").exists());
    let path = dir.join("lstm.safetensors");
    std::fs::write(&path, b"old contents").unwrap();
    lstm.save_safetensors(&path, "").unwrap();
    assert_eq!(Lstm::<f32>::load_safetensors(&path, "").unwrap(), lstm);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

/// Two arrays of the same shape, with a hand-written `Params` whose `arrays_mut` order may differ
/// from `named_arrays` (the contract the trait states and a hand-written impl can break).
#[derive(Clone, Debug, PartialEq)]
struct TwoArrays {
    a: ArrayD<f64>,
    b: ArrayD<f64>,
    swapped: bool,
}

impl recurrent::Params<f64> for TwoArrays {
    fn named_arrays(&self) -> Vec<(String, ndarray::ArrayViewD<'_, f64>)> {
        vec![("a".into(), self.a.view()), ("b".into(), self.b.view())]
    }
    fn arrays_mut(&mut self) -> Vec<ndarray::ArrayViewMutD<'_, f64>> {
        if self.swapped {
            vec![self.b.view_mut(), self.a.view_mut()]
        } else {
            vec![self.a.view_mut(), self.b.view_mut()]
        }
    }
}

/// A `Params` implementation whose `arrays_mut` order differs from `named_arrays` cannot swap
/// weights silently: loading refuses it (model unchanged), and so does an optimizer's first step;
/// the consistent implementation loads and steps.
#[test]
fn params_order_is_checked_on_load_and_step() {
    let dir = tmp("params_order");
    let path = dir.join("two.safetensors");
    let file = TwoArrays {
        a: ArrayD::from_elem(IxDyn(&[2, 2]), 1.0),
        b: ArrayD::from_elem(IxDyn(&[2, 2]), 2.0),
        swapped: false,
    };
    io::save(&file, &path, "").unwrap();
    for swapped in [false, true] {
        let mut m = TwoArrays {
            a: ArrayD::zeros(IxDyn(&[2, 2])),
            b: ArrayD::zeros(IxDyn(&[2, 2])),
            swapped,
        };
        let before = m.clone();
        let loaded = io::load(&mut m, &path, "");
        let mut opt = recurrent::optim::SgdConfig::new(0.1).build().unwrap();
        let grads = m.clone();
        let stepped = opt.step(&mut m, &grads);
        if swapped {
            let e = loaded.unwrap_err();
            assert!(
                matches!(&e, Error::Mismatch(msg) if msg.contains("TwoArrays")
                    && msg.contains("position 0 is `a` [2, 2]")
                    && msg.contains("`arrays_mut`")),
                "{e}"
            );
            assert_eq!(m, before);
            assert!(matches!(stepped, Err(Error::Mismatch(_))), "{stepped:?}");
            assert_eq!(m, before);
        } else {
            loaded.unwrap();
            stepped.unwrap();
            assert_eq!(m.a, file.a.mapv(|v| v - 0.1 * v));
            assert_eq!(m.b, file.b.mapv(|v| v - 0.1 * v));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A temporary file left by a save whose process was killed before renaming is deleted by the next
/// save to the same path once its process has exited, whatever its age (issue 22: a crash loop
/// shorter than a minute filled the disk); one of a process still running, or one locked (a
/// writer in another PID namespace), is left alone. Linux only (`/proc`).
#[test]
fn stale_temporary_files_are_cleaned_up() {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let dir = tmp("stale-temporaries");
    let path = dir.join("lstm.safetensors");
    let dead = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    // Alive for the whole test however slow a loaded machine makes it (killed at the end).
    let mut alive = std::process::Command::new("sleep")
        .arg("3600")
        .spawn()
        .unwrap();
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let temp = |pid: u32, n: u32, old: bool| {
        let p = dir.join(format!(".lstm.safetensors.tmp-{pid}-{n}"));
        let f = std::fs::File::create(&p).unwrap();
        if old {
            f.set_modified(hour_ago).unwrap();
        }
        p
    };
    let stale = temp(dead, 0, true);
    // Issue 22: a crash loop leaves temporaries younger than a minute; they go too.
    let fresh = temp(dead, 1, false);
    let running = temp(alive.id(), 2, true);
    // A dead PID as seen from here, but locked: a writer in another PID namespace. Kept.
    let locked = temp(dead, 3, false);
    let lock = std::fs::File::open(&locked).unwrap();
    lock.lock().unwrap();
    let other_file = dir.join(format!(".other.safetensors.tmp-{dead}-0"));
    std::fs::File::create(&other_file)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    let lstm = Lstm::<f32>::new(StackConfig::new(2, 2), &mut rng(1)).unwrap();
    lstm.save_safetensors(&path, "").unwrap();
    assert!(!stale.exists(), "the stale temporary file is deleted");
    assert!(!fresh.exists(), "whatever its age");
    assert!(running.exists() && locked.exists() && other_file.exists());
    drop(lock);
    // Unlocked now: the next save deletes it.
    lstm.save_safetensors(&path, "").unwrap();
    assert!(!locked.exists());
    alive.kill().unwrap();
    alive.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A loaded network gets back the settings a weight file cannot hold: `with_batch_first` reads
/// `(B, T, I)` and gives the time-major results transposed, `with_dropout` validates its value.
#[test]
fn loaded_networks_take_dropout_and_batch_first() {
    let dir = tmp("loaded-settings");
    let path = dir.join("gru.safetensors");
    let config = StackConfig::new(3, 4).with_num_layers(2);
    let net = Gru::<f64>::new(config, &mut rng(5)).unwrap();
    net.save_safetensors(&path, "").unwrap();
    let loaded = Gru::<f64>::load_safetensors(&path, "").unwrap();
    assert_eq!(loaded.config().dropout, 0.0);
    let x: Array3<f64> = randn3((6, 2, 3), 1.0, &mut rng(6));
    let (want, _) = loaded.infer(x.view(), None, None).unwrap();
    let loaded = loaded.with_dropout(0.25).unwrap().with_batch_first(true);
    assert_eq!(loaded.config().dropout, 0.25);
    let xb = x.view().permuted_axes([1, 0, 2]);
    let (got, _) = loaded.infer(xb, None, None).unwrap();
    assert_eq!(got, want.view().permuted_axes([1, 0, 2]));
    let e = loaded.with_dropout(-0.1).unwrap_err();
    assert!(e.to_string().contains("dropout"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A layer-normalised LSTM stack (two layers, bidirectional) saves its gains and biases under
/// `ln_*_l{k}[_reverse]` beside `weight_ih`/`weight_hh`, loads back equal (config inferred, with
/// and without biases), and its file is refused, naming a key, when loaded as an LSTM.
#[test]
fn layer_norm_lstm_round_trip() {
    let dir = tmp("lnlstm");
    for bias in [true, false] {
        let config = StackConfig::new(3, 4)
            .with_num_layers(2)
            .with_bidirectional(true)
            .with_bias(bias);
        let mut net = LayerNormLstm::<f64>::new(config, &mut rng(70)).unwrap();
        randomize_layer_norm(&mut net, 71);
        let path = dir.join(format!("ln-{bias}.safetensors"));
        net.save_safetensors(&path, "").unwrap();
        let keys: Vec<String> = net.named_arrays().into_iter().map(|(n, _)| n).collect();
        assert!(
            keys.contains(&"ln_c_weight_l1_reverse".to_string()),
            "{keys:?}"
        );
        assert_eq!(
            keys.contains(&"ln_ih_bias_l0".to_string()),
            bias,
            "{keys:?}"
        );
        assert!(!keys.iter().any(|k| k.starts_with("bias_")), "{keys:?}");
        let back = LayerNormLstm::<f64>::load_safetensors(&path, "").unwrap();
        assert_eq!(back.config().bias, bias);
        for ((n, a), (_, b)) in net.named_arrays().into_iter().zip(back.named_arrays()) {
            assert_eq!(a, b, "{n}");
        }
        weight_file_err(Lstm::<f64>::load_safetensors(&path, ""), "ln_");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
