//! LSTM with a projection, `torch.nn.LSTM(..., proj_size=P)` (`StackConfig::proj_size`): PyTorch
//! parity on every `tests/fixtures/lstmp_*.safetensors` file (output, `h_n`, `c_n` and every
//! gradient), save → load round trips with PyTorch's `state_dict()` keys and shapes, the
//! configuration rules, the shapes of everything a projected stack returns, and central-difference
//! gradient checks in f64 of every backward pass (uni/bi × 1/2 layers × full/mixed lengths, without
//! bias, with dropout).
//!
//! With a projection, `h_t = W_hr (o ⊙ tanh(c_t))`: `h` and the output are `P` wide per
//! direction, `c` stays `H` wide. Shapes (`D` directions, `L` layers): output `(T, B, D·P)`,
//! `h0`/`h_n` `(L·D, B, P)`, `c0`/`c_n` `(L·D, B, H)`; `weight_hh_l{k}` is `(4H, P)`,
//! `weight_hr_l{k}` `(P, H)`, and layer `k > 0` reads `D·P` features.

use std::path::PathBuf;

use crate::common::*;
use ndarray::{s, Array3, ArrayD, Ix3};
use recurrent::{io, Cell, Error, Float, Gru, Lstm, LstmState, Params, Rnn, StackConfig};

/// Every `lstmp_*` fixture written by `scripts/make_fixtures.py` (`proj_layer_cases()`), without
/// the dtype suffix. The files use `T=5, B=3, I=4, H=5, P=3`, lengths `[4, 5, 2]` when packed.
const FIXTURES: [&str; 9] = [
    "lstmp_uni_1l_full",
    "lstmp_uni_1l_packed",
    "lstmp_uni_2l_full",
    "lstmp_uni_2l_packed",
    "lstmp_bi_1l_full",
    "lstmp_bi_1l_packed",
    "lstmp_bi_2l_full",
    "lstmp_bi_2l_packed",
    "lstmp_bi_2l_packed_nobias",
];

/// As in `stack.rs` and `pytorch_parity.rs`: relative error and absolute floor of the denominator.
const F64_TOL: (f64, f64) = (1e-10, 1e-12);
/// f32: 1e-5 relative to max(|value|, 0.1).
const F32_TOL: (f64, f64) = (1e-5, 1e-1);

fn fixture_path(name: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{name}.safetensors"))
}

/// A fresh directory for one test.
fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("recurrent-proj-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn a3<F: Float>(a: ArrayD<F>) -> Array3<F> {
    a.into_dimensionality::<Ix3>().unwrap()
}

fn meta_usize(fx: &Fixture, key: &str) -> usize {
    fx.meta(key).parse().unwrap()
}

/// The keys of the fixture that are parameters, in PyTorch's registration order.
fn param_names(fx: &Fixture) -> Vec<String> {
    fx.meta("param_names")
        .split(',')
        .map(str::to_string)
        .collect()
}

/// Loads the fixture through the public loader (which must find the projection from
/// `weight_hr_l0`) and checks the inferred configuration, the parameter names and order, and every
/// cell's weights against the file.
fn load<F: Float>(fx: &Fixture) -> Lstm<F> {
    let name = &fx.name;
    let net = Lstm::<F>::load_safetensors(fixture_path(name), "").unwrap();
    let c = *net.config();
    let (i, h, p) = (
        meta_usize(fx, "I"),
        meta_usize(fx, "H"),
        meta_usize(fx, "proj_size"),
    );
    assert_eq!(
        (c.input_size, c.hidden_size, c.proj_size),
        (i, h, p),
        "{name}"
    );
    assert_eq!(c.num_layers, meta_usize(fx, "num_layers"), "{name}");
    assert_eq!(
        c.bidirectional.to_string(),
        fx.meta("bidirectional"),
        "{name}"
    );
    assert_eq!(c.bias.to_string(), fx.meta("bias"), "{name}");
    let d = c.num_directions();
    assert_eq!(net.output_size(), d * p, "{name}");
    // PyTorch's registration order: weight_ih, weight_hh, [bias_ih, bias_hh,] weight_hr per
    // direction, forward before _reverse, layer by layer.
    assert_eq!(net.names().join(","), fx.meta("param_names"), "{name}");
    for (key, a) in net.named_arrays() {
        assert_eq!(
            a.shape(),
            fx.tensors[&key].shape(),
            "{name} {key}: shape as in PyTorch"
        );
    }
    for l in 0..c.num_layers {
        assert_eq!(net.layer(l).len(), d, "{name}");
        for (dir, cell) in net.layer(l).iter().enumerate() {
            let sfx = format!("_l{l}{}", if dir == 1 { "_reverse" } else { "" });
            let w = cell.weights();
            let input = if l == 0 { i } else { d * p };
            assert_eq!(cell.input_size(), input, "{name} {sfx}");
            assert_eq!(w.weight_ih.dim(), (4 * h, input), "{name} weight_ih{sfx}");
            assert_eq!(w.weight_hh.dim(), (4 * h, p), "{name} weight_hh{sfx}");
            let hr = w
                .weight_hr
                .as_ref()
                .unwrap_or_else(|| panic!("{name}: cell{sfx} has no weight_hr"));
            assert_eq!(hr.dim(), (p, h), "{name} weight_hr{sfx}");
            assert_eq!(
                hr.view().into_dyn(),
                fx.get::<F>(&format!("weight_hr{sfx}")).view(),
                "{name} weight_hr{sfx} loaded exactly"
            );
        }
    }
    net
}

/// Runs the fixture's forward and backward through the stack API and compares output, `h_n`,
/// `c_n` and every gradient (each parameter, the input, `h0` and `c0`) with PyTorch's.
fn parity<F: Float>(fx: &Fixture, (tol, floor): (f64, f64)) {
    let name = &fx.name;
    let net = load::<F>(fx);
    let c = *net.config();
    let (t, b) = (meta_usize(fx, "T"), meta_usize(fx, "B"));
    let (d, n) = (c.num_directions(), c.num_layers * c.num_directions());
    let (h, p) = (c.hidden_size, c.proj_size);

    let x = a3::<F>(fx.get("input"));
    let lengths: Vec<usize> = fx
        .get::<f64>("lengths")
        .iter()
        .map(|&v| v as usize)
        .collect();
    let packed = fx.meta("packed") == "true";
    let lengths_arg = packed.then_some(lengths.as_slice());
    let init = LstmState {
        h: a3::<F>(fx.get("h0")),
        c: a3::<F>(fx.get("c0")),
    };
    let d_final = LstmState {
        h: a3::<F>(fx.get("d_h_n")),
        c: a3::<F>(fx.get("d_c_n")),
    };
    assert_eq!(init.h.dim(), (n, b, p), "{name}: the fixture's h0");
    assert_eq!(init.c.dim(), (n, b, h), "{name}: the fixture's c0");

    // Forward.
    let (out, last, tape) = net.forward(x.view(), Some(&init), lengths_arg).unwrap();
    assert_eq!(out.dim(), (t, b, d * p), "{name} output shape");
    assert_eq!(last.h.dim(), (n, b, p), "{name} h_n shape");
    assert_eq!(last.c.dim(), (n, b, h), "{name} c_n shape");
    assert_close(
        &out.view().into_dyn(),
        &fx.get::<F>("output").view(),
        tol,
        floor,
        &format!("{name} output"),
    );
    assert_close(
        &last.h.view().into_dyn(),
        &fx.get::<F>("h_n").view(),
        tol,
        floor,
        &format!("{name} h_n"),
    );
    assert_close(
        &last.c.view().into_dyn(),
        &fx.get::<F>("c_n").view(),
        tol,
        floor,
        &format!("{name} c_n"),
    );
    if packed {
        for (bi, &len) in lengths.iter().enumerate() {
            assert!(
                out.slice(s![len.., bi, ..]).iter().all(|v| *v == F::zero()),
                "{name}: output at the padded steps of sequence {bi} is not zero"
            );
        }
    }
    // Inference computes the same numbers as the taped forward pass.
    let (out_i, last_i) = net.infer(x.view(), Some(&init), lengths_arg).unwrap();
    assert_eq!(out_i, out, "{name}: infer output");
    assert_eq!(last_i, last, "{name}: infer final state");

    // Backward.
    let d_out = a3::<F>(fx.get("d_output"));
    let mut grads = net.zeros_like();
    let (dx, d_init) = net
        .backward(&tape, d_out.view(), Some(&d_final), &mut grads)
        .unwrap();
    assert_eq!(dx.dim(), (t, b, c.input_size), "{name} grad.input shape");
    assert_eq!(d_init.h.dim(), (n, b, p), "{name} grad.h0 shape");
    assert_eq!(d_init.c.dim(), (n, b, h), "{name} grad.c0 shape");
    assert_close(
        &dx.view().into_dyn(),
        &fx.get::<F>("grad.input").view(),
        tol,
        floor,
        &format!("{name} grad.input"),
    );
    assert_close(
        &d_init.h.view().into_dyn(),
        &fx.get::<F>("grad.h0").view(),
        tol,
        floor,
        &format!("{name} grad.h0"),
    );
    assert_close(
        &d_init.c.view().into_dyn(),
        &fx.get::<F>("grad.c0").view(),
        tol,
        floor,
        &format!("{name} grad.c0"),
    );
    if packed {
        for (bi, &len) in lengths.iter().enumerate() {
            assert!(
                dx.slice(s![len.., bi, ..]).iter().all(|v| *v == F::zero()),
                "{name}: input gradient at the padded steps of sequence {bi} is not zero"
            );
        }
    }
    let mut checked = Vec::new();
    for (key, g) in grads.named_arrays() {
        assert_close(
            &g,
            &fx.get::<F>(&format!("grad.{key}")).view(),
            tol,
            floor,
            &format!("{name} grad.{key}"),
        );
        checked.push(key);
    }
    // Every parameter gradient in the file was compared, weight_hr_* included.
    assert_eq!(checked, param_names(fx), "{name}");
    assert_eq!(
        checked
            .iter()
            .filter(|k| k.starts_with("weight_hr_l"))
            .count(),
        n,
        "{name}"
    );

    // `backward_params`: the same parameter and initial-state gradients, without dx.
    let mut g_params = net.zeros_like();
    let d_init_p = net
        .backward_params(&tape, d_out.view(), Some(&d_final), &mut g_params)
        .unwrap();
    assert_eq!(g_params, grads, "{name}: backward_params gradients");
    assert_eq!(d_init_p, d_init, "{name}: backward_params d_init");
}

fn run_parity<F: Float>(dtype: &str, tol: (f64, f64)) {
    for stem in FIXTURES {
        parity::<F>(&Fixture::load(&format!("{stem}_{dtype}")), tol);
    }
}

#[test]
fn projected_lstm_matches_pytorch_f64() {
    run_parity::<f64>("f64", F64_TOL);
}

#[test]
fn projected_lstm_matches_pytorch_f32() {
    run_parity::<f32>("f32", F32_TOL);
}

/// The list above is every `lstmp_*` file there is (16 grid files and 2 without bias).
#[test]
fn every_projection_fixture_is_checked() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("lstmp_"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FIXTURES
        .iter()
        .flat_map(|s| ["f32", "f64"].map(|d| format!("{s}_{d}.safetensors")))
        .collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    assert_eq!(listed.len(), 18);
}

// ---------------------------------------------------------------------------------------------
// Save → load round trips.

/// Load each fixture, save it with the crate's writer, reload: the network is unchanged, and the
/// saved file holds exactly PyTorch's `state_dict()` keys (the fixture's `param_names`), with
/// PyTorch's shapes and the fixture's values.
fn round_trip<F: Float>(dtype: &str) {
    let dir = tmp(&format!("round-trip-{dtype}"));
    for stem in FIXTURES {
        let file = format!("{stem}_{dtype}");
        let fx = Fixture::load(&file);
        let net = Lstm::<F>::load_safetensors(fixture_path(&file), "").unwrap();
        assert_eq!(
            net.config().proj_size,
            meta_usize(&fx, "proj_size"),
            "{file}"
        );
        let path = dir.join(format!("{file}.safetensors"));
        net.save_safetensors(&path, "").unwrap();

        let back = Lstm::<F>::load_safetensors(&path, "").unwrap();
        assert_eq!(back, net, "{file}: reloaded network");
        assert_eq!(back.config(), net.config(), "{file}: reloaded config");

        let saved = io::read::<f64>(&path).unwrap();
        let saved_keys: Vec<&String> = saved.tensors.keys().collect(); // sorted (BTreeMap)
        let mut torch_keys = param_names(&fx);
        torch_keys.sort();
        assert_eq!(
            saved_keys,
            torch_keys.iter().collect::<Vec<_>>(),
            "{file}: saved keys are PyTorch's"
        );
        assert!(saved.skipped.is_empty(), "{file}: {:?}", saved.skipped);
        for key in &torch_keys {
            assert_eq!(
                saved.tensors[key].shape(),
                fx.tensors[key].shape(),
                "{file} {key}: PyTorch's shape"
            );
            assert_eq!(
                saved.tensors[key], fx.tensors[key],
                "{file} {key}: values survive the round trip"
            );
        }

        // Under a prefix, as one module of a model file.
        let prefixed = dir.join(format!("{file}_prefixed.safetensors"));
        net.save_safetensors(&prefixed, "encoder.rnn.").unwrap();
        assert_eq!(
            Lstm::<F>::load_safetensors(&prefixed, "encoder.rnn.").unwrap(),
            net,
            "{file}: prefixed round trip"
        );
        let keys: Vec<String> = io::read::<f64>(&prefixed)
            .unwrap()
            .tensors
            .into_keys()
            .collect();
        let want: Vec<String> = torch_keys
            .iter()
            .map(|k| format!("encoder.rnn.{k}"))
            .collect();
        assert_eq!(keys, want, "{file}: prefixed keys");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn round_trip_keeps_pytorch_keys_f64() {
    round_trip::<f64>("f64");
}

#[test]
fn round_trip_keeps_pytorch_keys_f32() {
    round_trip::<f32>("f32");
}

/// A file holding only the `state_dict()` (what a user saves from PyTorch) loads to the same
/// network as the fixture; a network made by `new` with the same settings has exactly PyTorch's
/// keys and shapes, and `io::load` fills it from the file.
#[test]
fn state_dict_only_file_and_new_network_match_pytorch_layout() {
    let dir = tmp("state-dict");
    for stem in FIXTURES {
        let file = format!("{stem}_f64");
        let fx = Fixture::load(&file);
        let arrays: Vec<(String, ArrayD<f64>)> = param_names(&fx)
            .into_iter()
            .map(|k| {
                let a = fx.tensors[&k].clone();
                (k, a)
            })
            .collect();
        let path = dir.join("state_dict.safetensors");
        io::write(&path, &arrays, None).unwrap();
        let from_fixture = Lstm::<f64>::load_safetensors(fixture_path(&file), "").unwrap();
        let from_state_dict = Lstm::<f64>::load_safetensors(&path, "").unwrap();
        assert_eq!(from_state_dict, from_fixture, "{file}");

        let config = *from_fixture.config();
        let mut fresh = Lstm::<f64>::new(config, &mut rng(1)).unwrap();
        assert_eq!(fresh.names(), param_names(&fx), "{file}: names of `new`");
        for (key, a) in fresh.named_arrays() {
            assert_eq!(a.shape(), fx.tensors[&key].shape(), "{file} {key}");
        }
        io::load(&mut fresh, &path, "").unwrap();
        assert_eq!(fresh, from_fixture, "{file}: io::load into `new`");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Files whose projection weights are missing, misshaped or inconsistent are refused with a
/// `WeightFile` error (the loader is strict, like `load_state_dict(strict=True)`), and a projected
/// LSTM file is not a GRU or an RNN.
#[test]
fn loader_refuses_inconsistent_projection_files() {
    let dir = tmp("refuse");
    let path = dir.join("bad.safetensors");
    let write_without = |fx: &Fixture, drop: &[&str], extra: Vec<(String, ArrayD<f64>)>| {
        let mut arrays: Vec<(String, ArrayD<f64>)> = param_names(fx)
            .into_iter()
            .filter(|k| !drop.contains(&k.as_str()))
            .map(|k| {
                let a = fx.tensors[&k].clone();
                (k, a)
            })
            .collect();
        arrays.extend(extra);
        io::write(&path, &arrays, None).unwrap();
    };
    let weight_file_err = |what: &str| match Lstm::<f64>::load_safetensors(&path, "") {
        Err(Error::WeightFile { .. }) => {}
        other => panic!("{what}: expected a WeightFile error, got {other:?}"),
    };

    let fx = Fixture::load("lstmp_bi_2l_packed_f64");
    // A later layer's projection missing.
    write_without(&fx, &["weight_hr_l1"], vec![]);
    weight_file_err("weight_hr_l1 missing");
    // One direction's projection missing.
    write_without(&fx, &["weight_hr_l0_reverse"], vec![]);
    weight_file_err("weight_hr_l0_reverse missing");
    // Layer 0's projection missing (the others present, weight_hh (4H, P)).
    write_without(&fx, &["weight_hr_l0"], vec![]);
    weight_file_err("weight_hr_l0 missing");
    // A misshaped projection: (P, H + 1) and (P + 1, H).
    for shape in [(3, 6), (4, 5)] {
        write_without(
            &fx,
            &["weight_hr_l1_reverse"],
            vec![(
                "weight_hr_l1_reverse".into(),
                ArrayD::zeros(ndarray::IxDyn(&[shape.0, shape.1])),
            )],
        );
        weight_file_err(&format!("weight_hr_l1_reverse of shape {shape:?}"));
    }
    // A plain LSTM file with a stray projection on layer 1 only.
    let plain = Fixture::load("lstm_uni_2l_full_f64");
    write_without(
        &plain,
        &[],
        vec![(
            "weight_hr_l1".into(),
            ArrayD::zeros(ndarray::IxDyn(&[2, 3])),
        )],
    );
    weight_file_err("stray weight_hr_l1 in a file without weight_hr_l0");

    // A projected LSTM file is neither a GRU nor an RNN.
    let file = fixture_path("lstmp_uni_1l_full_f64");
    assert!(Gru::<f64>::load_safetensors(&file, "").is_err());
    assert!(Rnn::<f64>::load_safetensors(&file, "").is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Configuration and shapes.

/// `proj_size` is 0 (none) by default; PyTorch's rule `proj_size < hidden_size`; LSTM only.
#[test]
fn proj_size_rules() {
    let base = StackConfig::new(4, 5);
    assert_eq!(base.proj_size, 0);
    assert_eq!(base.with_proj_size(3).proj_size, 3);
    assert_eq!(base.with_proj_size(3).with_proj_size(0), base);

    let invalid = |r: recurrent::Result<()>, what: &str| match r {
        Err(Error::InvalidConfig(_)) => {}
        other => panic!("{what}: expected InvalidConfig, got {other:?}"),
    };
    for layers in [1, 2] {
        for bi in [false, true] {
            let config = base.with_num_layers(layers).with_bidirectional(bi);
            // proj_size >= hidden_size.
            for p in [5, 6, 100] {
                invalid(
                    Lstm::<f64>::new(config.with_proj_size(p), &mut rng(1)).map(drop),
                    &format!("LSTM proj_size {p} with hidden_size 5"),
                );
                invalid(
                    Lstm::<f32>::new(config.with_proj_size(p), &mut rng(1)).map(drop),
                    &format!("LSTM<f32> proj_size {p} with hidden_size 5"),
                );
            }
            // GRU and RNN have no projection.
            for p in [1, 3] {
                invalid(
                    Gru::<f64>::new(config.with_proj_size(p), &mut rng(1)).map(drop),
                    &format!("GRU proj_size {p}"),
                );
                invalid(
                    Rnn::<f64>::new(config.with_proj_size(p), &mut rng(1)).map(drop),
                    &format!("RNN proj_size {p}"),
                );
            }
            // The largest and the smallest valid projection.
            for p in [1, 4] {
                let net = Lstm::<f64>::new(config.with_proj_size(p), &mut rng(1)).unwrap();
                assert_eq!(net.config().proj_size, p);
                assert_eq!(net.output_size(), config.num_directions() * p);
            }
            // proj_size 0 is the plain LSTM: no weight_hr, the same draws.
            let plain = Lstm::<f64>::new(config, &mut rng(2)).unwrap();
            let zero = Lstm::<f64>::new(config.with_proj_size(0), &mut rng(2)).unwrap();
            assert_eq!(zero, plain);
            assert!(plain.names().iter().all(|n| !n.contains("weight_hr")));
            assert!(plain
                .layer(0)
                .iter()
                .all(|cell| cell.weights().weight_hr.is_none()));
            // GRU and RNN with proj_size 0 still build.
            Gru::<f64>::new(config.with_proj_size(0), &mut rng(3)).unwrap();
            Rnn::<f64>::new(config.with_proj_size(0), &mut rng(3)).unwrap();
        }
    }
}

/// A new projected network has PyTorch's parameter list and shapes, with every value drawn from
/// PyTorch's default U(−1/√H, 1/√H) (weight_hr included).
#[test]
fn new_projected_network_has_pytorch_layout() {
    let (i, h, p) = (4, 5, 3);
    let config = StackConfig::new(i, h)
        .with_num_layers(2)
        .with_bidirectional(true)
        .with_proj_size(p);
    let net = Lstm::<f64>::new(config, &mut rng(10)).unwrap();
    let mut want = Vec::new();
    for l in 0..2 {
        for sfx in ["", "_reverse"] {
            let input = if l == 0 { i } else { 2 * p };
            want.push((format!("weight_ih_l{l}{sfx}"), vec![4 * h, input]));
            want.push((format!("weight_hh_l{l}{sfx}"), vec![4 * h, p]));
            want.push((format!("bias_ih_l{l}{sfx}"), vec![4 * h]));
            want.push((format!("bias_hh_l{l}{sfx}"), vec![4 * h]));
            want.push((format!("weight_hr_l{l}{sfx}"), vec![p, h]));
        }
    }
    let got: Vec<(String, Vec<usize>)> = net
        .named_arrays()
        .into_iter()
        .map(|(n, a)| (n, a.shape().to_vec()))
        .collect();
    assert_eq!(got, want);
    // The same list as torch.nn.LSTM(4, 5, num_layers=2, bidirectional=True, proj_size=3).
    assert_eq!(
        net.names().join(","),
        Fixture::load("lstmp_bi_2l_full_f64").meta("param_names")
    );
    let k = 1.0 / (h as f64).sqrt();
    for (name, a) in net.named_arrays() {
        assert!(
            a.iter().all(|v| v.abs() <= k),
            "{name} outside U(-1/√H, 1/√H)"
        );
        assert!(a.iter().any(|v| *v != 0.0), "{name} all zero");
    }
    let no_bias = Lstm::<f64>::new(config.with_bias(false), &mut rng(11)).unwrap();
    assert_eq!(
        no_bias.names().join(","),
        Fixture::load("lstmp_bi_2l_packed_nobias_f64").meta("param_names")
    );
}

/// Output `(T, B, D·P)`, `h_n` `(L·D, B, P)`, `c_n` `(L·D, B, H)`, and the gradients shaped like
/// the input and the initial states; a missing initial state is zeros of those shapes; an
/// initial `h` of `(L·D, B, H)` is a shape error; batch-first gives `(B, T, D·P)`.
#[test]
fn projected_shapes() {
    let (t, b, i, h, p) = (5, 3, 4, 5, 3);
    for layers in [1, 2] {
        for bi in [false, true] {
            let config = StackConfig::new(i, h)
                .with_num_layers(layers)
                .with_bidirectional(bi)
                .with_proj_size(p);
            let (d, n) = (config.num_directions(), layers * config.num_directions());
            let what = format!("{layers} layers, bidirectional {bi}");
            let net = Lstm::<f64>::new(config, &mut rng(20)).unwrap();
            assert_eq!(net.output_size(), d * p, "{what}");
            let x: Array3<f64> = randn3((t, b, i), 1.0, &mut rng(21));

            let (out, last, tape) = net.forward(x.view(), None, Some(&[4, 5, 2])).unwrap();
            assert_eq!(out.dim(), (t, b, d * p), "{what}: output");
            assert_eq!(last.h.dim(), (n, b, p), "{what}: h_n");
            assert_eq!(last.c.dim(), (n, b, h), "{what}: c_n");
            let mut grads = net.zeros_like();
            let (dx, d_init) = net
                .backward(&tape, Array3::ones(out.dim()).view(), None, &mut grads)
                .unwrap();
            assert_eq!(dx.dim(), (t, b, i), "{what}: dx");
            assert_eq!(d_init.h.dim(), (n, b, p), "{what}: d h0");
            assert_eq!(d_init.c.dim(), (n, b, h), "{what}: d c0");
            assert!(grads.global_norm() > 0.0, "{what}");

            // None = zeros of the right shapes.
            let zeros = LstmState {
                h: Array3::<f64>::zeros((n, b, p)),
                c: Array3::<f64>::zeros((n, b, h)),
            };
            let (out0, last0) = net.infer(x.view(), Some(&zeros), None).unwrap();
            let (out_none, last_none) = net.infer(x.view(), None, None).unwrap();
            assert_eq!(out_none, out0, "{what}: default initial state");
            assert_eq!(last_none, last0, "{what}: default initial state");

            // An unprojected-shaped h0 (or a projected-shaped c0) is refused.
            for (hw, cw) in [(h, h), (p, p)] {
                let wrong = LstmState {
                    h: Array3::<f64>::zeros((n, b, hw)),
                    c: Array3::<f64>::zeros((n, b, cw)),
                };
                match net.forward(x.view(), Some(&wrong), None) {
                    Err(Error::Shape { .. }) => {}
                    other => panic!(
                        "{what}: h0 width {hw}, c0 width {cw}: expected a Shape error, got {:?}",
                        other.map(|(o, _, _)| o.dim())
                    ),
                }
            }
            // A d_final with h of width H is refused too.
            let wrong_d = LstmState {
                h: Array3::<f64>::zeros((n, b, h)),
                c: Array3::<f64>::zeros((n, b, h)),
            };
            let mut g = net.zeros_like();
            assert!(net.backward(&tape, None, Some(&wrong_d), &mut g).is_err());

            // Batch-first: (B, T, D·P), the same numbers.
            let bf = net.clone().with_batch_first(true);
            let x_bf = x
                .clone()
                .permuted_axes([1, 0, 2])
                .as_standard_layout()
                .into_owned();
            let (o_bf, s_bf) = bf.infer(x_bf.view(), None, Some(&[4, 5, 2])).unwrap();
            assert_eq!(o_bf.dim(), (b, t, d * p), "{what}: batch-first output");
            assert_eq!(o_bf, out.clone().permuted_axes([1, 0, 2]), "{what}");
            assert_eq!(s_bf, last, "{what}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Central-difference gradient checks (f64), as `gradcheck_stack` in `stack.rs`: step 1e-5, max
// relative error 1e-6 with the denominator at least 1e-3.

const T: usize = 5;
const B: usize = 3;
/// I, P, D·P (2 or 4) and H all differ, so a mix-up of two of them cannot go unnoticed.
const I: usize = 3;
const H: usize = 5;
const P: usize = 2;
const MIXED: [usize; 3] = [2, 5, 4];

fn rand_lstm_state(n: usize, scale: f64, r: &mut rand::rngs::StdRng) -> LstmState<f64, Ix3> {
    LstmState {
        h: randn3((n, B, P), scale, r),
        c: randn3((n, B, H), scale, r),
    }
}

/// Every gradient of `backward` — each element of every parameter (`weight_hr_*` included), of the
/// input and of both parts of the initial state — against central differences of a random-weighted
/// loss of the output and both final states. With `train_seed`, runs in training mode with the
/// dropout masks of that seed (the same for every evaluation).
fn gradcheck_proj(net: &Lstm<f64>, lengths: Option<&[usize]>, train_seed: Option<u64>, seed: u64) {
    let c = *net.config();
    assert_eq!((c.input_size, c.hidden_size, c.proj_size), (I, H, P));
    let n = c.num_layers * c.num_directions();
    let mut r = rng(seed);
    let x: Array3<f64> = randn3((T, B, I), 1.0, &mut r);
    let init = rand_lstm_state(n, 0.5, &mut r);
    let run = |m: &Lstm<f64>, x: &Array3<f64>, s: &LstmState<f64, Ix3>| match train_seed {
        Some(t) => m
            .forward_train(x.view(), Some(s), lengths, &mut rng(t))
            .unwrap(),
        None => m.forward(x.view(), Some(s), lengths).unwrap(),
    };
    let (out, _, tape) = run(net, &x, &init);
    assert_eq!(out.dim(), (T, B, c.num_directions() * P));
    let w_out: Array3<f64> = randn3(out.dim(), 1.0, &mut r);
    let w_final = rand_lstm_state(n, 1.0, &mut r);
    let loss = |m: &Lstm<f64>, x: &Array3<f64>, s: &LstmState<f64, Ix3>| {
        let (o, last) = match train_seed {
            Some(_) => {
                let (o, last, _) = run(m, x, s);
                (o, last)
            }
            None => m.infer(x.view(), Some(s), lengths).unwrap(),
        };
        (&o * &w_out).sum() + (&last.h * &w_final.h).sum() + (&last.c * &w_final.c).sum()
    };
    let mut grads = net.zeros_like();
    let (dx, d_init) = net
        .backward(&tape, w_out.view(), Some(&w_final), &mut grads)
        .unwrap();
    let eps = 1e-5;
    let check = |label: &str, ana: f64, num: f64| {
        let err = (ana - num).abs() / ana.abs().max(num.abs()).max(1e-3);
        assert!(
            err <= 1e-6,
            "{label}: analytic {ana}, numeric {num}, rel err {err:.2e}"
        );
    };
    let names = net.names();
    assert_eq!(
        names
            .iter()
            .filter(|k| k.starts_with("weight_hr_l"))
            .count(),
        n,
        "every cell has a weight_hr"
    );
    let mut probe = net.clone();
    for (k, name) in names.iter().enumerate() {
        let len = probe.arrays()[k].len();
        for e in 0..len {
            let orig = *probe.arrays()[k].iter().nth(e).unwrap();
            *probe.arrays_mut()[k].iter_mut().nth(e).unwrap() = orig + eps;
            let plus = loss(&probe, &x, &init);
            *probe.arrays_mut()[k].iter_mut().nth(e).unwrap() = orig - eps;
            let minus = loss(&probe, &x, &init);
            *probe.arrays_mut()[k].iter_mut().nth(e).unwrap() = orig;
            check(
                &format!("{name}[{e}]"),
                *grads.arrays()[k].iter().nth(e).unwrap(),
                (plus - minus) / (2.0 * eps),
            );
        }
    }
    for (idx, &ana) in dx.indexed_iter() {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[idx] += eps;
        xm[idx] -= eps;
        check(
            &format!("input{idx:?}"),
            ana,
            (loss(net, &xp, &init) - loss(net, &xm, &init)) / (2.0 * eps),
        );
    }
    if let Some(lengths) = lengths {
        for (bi, &len) in lengths.iter().enumerate() {
            assert!(dx.slice(s![len.., bi, ..]).iter().all(|&v| v == 0.0));
        }
    }
    assert_eq!(d_init.h.dim(), init.h.dim());
    assert_eq!(d_init.c.dim(), init.c.dim());
    for (idx, &ana) in d_init.h.indexed_iter() {
        let (mut sp, mut sm) = (init.clone(), init.clone());
        sp.h[idx] += eps;
        sm.h[idx] -= eps;
        check(
            &format!("init h{idx:?}"),
            ana,
            (loss(net, &x, &sp) - loss(net, &x, &sm)) / (2.0 * eps),
        );
    }
    for (idx, &ana) in d_init.c.indexed_iter() {
        let (mut sp, mut sm) = (init.clone(), init.clone());
        sp.c[idx] += eps;
        sm.c[idx] -= eps;
        check(
            &format!("init c{idx:?}"),
            ana,
            (loss(net, &x, &sp) - loss(net, &x, &sm)) / (2.0 * eps),
        );
    }
}

fn proj_config(layers: usize, bi: bool) -> StackConfig {
    StackConfig::new(I, H)
        .with_num_layers(layers)
        .with_bidirectional(bi)
        .with_proj_size(P)
}

#[test]
fn gradcheck_projected_uni() {
    for layers in [1, 2] {
        for lengths in [None, Some(&MIXED[..])] {
            let net = Lstm::<f64>::new(proj_config(layers, false), &mut rng(1000)).unwrap();
            gradcheck_proj(&net, lengths, None, 1001);
        }
    }
}

#[test]
fn gradcheck_projected_bi() {
    for layers in [1, 2] {
        for lengths in [None, Some(&MIXED[..])] {
            let net = Lstm::<f64>::new(proj_config(layers, true), &mut rng(1100)).unwrap();
            gradcheck_proj(&net, lengths, None, 1101);
        }
    }
}

#[test]
fn gradcheck_projected_without_bias() {
    let net = Lstm::<f64>::new(proj_config(2, true).with_bias(false), &mut rng(1200)).unwrap();
    gradcheck_proj(&net, Some(&MIXED), None, 1201);
}

/// Dropout between projected layers (masks `(T, B, D·P)`), training mode with a fixed mask.
#[test]
fn gradcheck_projected_with_dropout() {
    let net = Lstm::<f64>::new(proj_config(2, true).with_dropout(0.4), &mut rng(1300)).unwrap();
    let x: Array3<f64> = randn3((T, B, I), 1.0, &mut rng(1301));
    let (train, _, _) = net
        .forward_train(x.view(), None, Some(&MIXED), &mut rng(9))
        .unwrap();
    let (eval, _) = net.infer(x.view(), None, Some(&MIXED)).unwrap();
    assert!((&train - &eval).iter().any(|v| v.abs() > 1e-3));
    gradcheck_proj(&net, Some(&MIXED), Some(9), 1302);
}
