//! `#[derive(Params)]`: a struct's parameters named by field path, exactly the `state_dict()` keys
//! of a PyTorch module with the same attribute names; nested structs, `Vec` fields, skipped fields,
//! generic and concrete floats, tuple structs.

use crate::common::*;
use ndarray::{Array3, Ix3};
use recurrent::optim::SgdConfig;
use recurrent::{io, Float, Linear, Lstm, Params, StackConfig};

/// Mirrors the PyTorch module of `scripts/make_fixtures.py` (`DeriveModel`).
#[derive(Clone, Debug, PartialEq, Params)]
struct Model<F: Float> {
    encoder: Lstm<F>,
    blocks: Vec<Linear<F>>,
    head: Linear<F>,
    /// Not a parameter.
    #[params(skip)]
    steps_seen: usize,
}

impl<F: Float> Model<F> {
    fn new(seed: u64) -> Self {
        let mut r = rng(seed);
        let config = StackConfig::new(3, 4)
            .with_num_layers(2)
            .with_bidirectional(true);
        Model {
            encoder: Lstm::new(config, &mut r).unwrap(),
            blocks: (0..2).map(|_| Linear::new(8, 8, &mut r).unwrap()).collect(),
            head: Linear::new(8, 2, &mut r).unwrap(),
            steps_seen: 0,
        }
    }

    fn forward(&self, x: &Array3<F>) -> Array3<F> {
        let (mut h, _) = self.encoder.infer(x.view(), None, None).unwrap();
        for block in &self.blocks {
            h = block.infer(h.view()).unwrap().mapv(F::tanh);
        }
        self.head.infer(h.view()).unwrap()
    }
}

/// The PyTorch module's `state_dict()`, saved as is, loads strictly into the derived struct (every
/// key used, none missing), and the struct computes the module's output.
#[test]
fn loads_a_pytorch_state_dict_by_field_path() {
    let mut model = Model::<f64>::new(1);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/derive_model.safetensors");
    io::load(&mut model, &path, "").unwrap();
    let file = io::read::<f64>(&path).unwrap();
    let keys: Vec<&String> = file.tensors.keys().collect();
    let mut names = model.names();
    names.sort();
    assert_eq!(keys, names.iter().collect::<Vec<_>>());
    assert!(names.contains(&"blocks.1.bias".to_string()));
    assert!(names.contains(&"encoder.weight_hh_l1_reverse".to_string()));

    let io_fixture = Fixture::load("derive_model_io");
    let x = io_fixture.tensors["input"]
        .clone()
        .into_dimensionality::<Ix3>()
        .unwrap();
    let want = io_fixture.tensors["output"].clone();
    let got = model.forward(&x).into_dyn();
    let (err, at) = max_rel_err(&got.view(), &want.view(), 1e-12);
    assert!(
        err < 1e-12,
        "output differs from PyTorch by {err:e} at {at:?}"
    );
}

/// Names in field order, `Vec` parts numbered as `nn.ModuleList`, the skipped field left out; the
/// arrays behave as a model (save/load round trip, optimizer step, the order check of loading).
#[test]
fn names_order_and_round_trip() {
    let model = Model::<f32>::new(2);
    let names = model.names();
    assert_eq!(names[0], "encoder.weight_ih_l0");
    let tail: Vec<&str> = names[names.len() - 6..]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "blocks.0.weight",
            "blocks.0.bias",
            "blocks.1.weight",
            "blocks.1.bias",
            "head.weight",
            "head.bias"
        ]
    );
    assert_eq!(
        model.num_params(),
        model.encoder.num_params() + 2 * (8 * 8 + 8) + (8 * 2 + 2)
    );

    let dir = std::env::temp_dir().join(format!("recurrent-derive-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    io::save(&model, &path, "").unwrap();
    let mut back = Model::<f32>::new(3);
    back.steps_seen = 7;
    assert_ne!(back.fingerprint(), model.fingerprint());
    io::load(&mut back, &path, "").unwrap();
    assert_eq!(back.fingerprint(), model.fingerprint());
    assert_eq!(back.steps_seen, 7, "a skipped field is not touched");
    std::fs::remove_dir_all(&dir).unwrap();

    // An optimizer step through the derived arrays moves the right arrays: the gradient of the
    // head's bias only changes the head's bias.
    let mut grads = model.zeros_like();
    grads.head.arrays_mut()[1].fill(1.0);
    let mut stepped = model.clone();
    let mut opt = SgdConfig::new(0.5).build().unwrap();
    opt.step(&mut stepped, &grads).unwrap();
    for ((name, a), (_, b)) in stepped.named_arrays().iter().zip(model.named_arrays()) {
        if name == "head.bias" {
            assert!(
                a.iter().zip(b.iter()).all(|(x, y)| *x == *y - 0.5),
                "{name}"
            );
        } else {
            assert_eq!(a, &b, "{name}");
        }
    }
}

/// A concrete struct (float type from its fields), nesting a derived struct, and a tuple struct.
#[derive(Clone, Params)]
struct Encoder {
    rnn: Lstm<f64>,
}

#[derive(Clone, Params)]
struct Classifier {
    encoder: Encoder,
    head: (Linear<f64>, Linear<f64>),
}

#[derive(Clone, Params)]
#[params(float = f32)]
struct Pair(Linear<f32>, #[params(skip)] String, Linear<f32>);

#[test]
fn concrete_nested_and_tuple_structs() {
    let mut r = rng(4);
    let c = Classifier {
        encoder: Encoder {
            rnn: Lstm::new(StackConfig::new(2, 3), &mut r).unwrap(),
        },
        head: (
            Linear::new(3, 3, &mut r).unwrap(),
            Linear::new(3, 1, &mut r).unwrap(),
        ),
    };
    let names = c.names();
    assert_eq!(names[0], "encoder.rnn.weight_ih_l0");
    assert_eq!(names[4], "head.0.weight");
    assert_eq!(names[7], "head.1.bias");
    let p = Pair(
        Linear::new(2, 2, &mut r).unwrap(),
        "not a parameter".into(),
        Linear::new(2, 1, &mut r).unwrap(),
    );
    assert_eq!(p.names(), ["0.weight", "0.bias", "2.weight", "2.bias"]);
    assert_eq!(p.1, "not a parameter");
}
