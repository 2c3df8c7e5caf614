//! Weights both ways between PyTorch and `recurrent`.
//!
//! 1. Loads an LSTM that PyTorch exported — by default the committed fixture
//!    `tests/fixtures/lstm_bi_2l_full_f32.safetensors`, written by `scripts/make_fixtures.py` with
//!
//!    ```python
//!    lstm = torch.nn.LSTM(4, 3, num_layers=2, bidirectional=True)
//!    safetensors.torch.save_file({**lstm.state_dict(), "input": x, "h0": h0, "c0": c0,
//!                                 "output": lstm(x, (h0, c0))[0], ...}, path)
//!    ```
//!
//!    — inferring its sizes from the file, runs it on the stored input and compares with
//!    PyTorch's stored output.
//! 2. Saves it to `out/lstm_roundtrip.safetensors`, which PyTorch loads back with
//!    `strict=True` (`scripts/check_roundtrip.py` does exactly that and compares outputs):
//!
//!    ```python
//!    lstm = torch.nn.LSTM(4, 3, num_layers=2, bidirectional=True)
//!    lstm.load_state_dict(safetensors.torch.load_file("out/lstm_roundtrip.safetensors"), strict=True)
//!    ```
//!
//! ```text
//! cargo run --release --example pytorch_roundtrip -- [--input FILE] [--out FILE]
//! ```

use std::path::PathBuf;

use ndarray::{Array3, Ix3};
use recurrent::{io, Lstm, LstmState, Params};

fn main() -> recurrent::Result<()> {
    let mut input = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/lstm_bi_2l_full_f32.safetensors");
    let mut out = PathBuf::from("out/lstm_roundtrip.safetensors");
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        match (pair[0].as_str(), pair.get(1)) {
            ("--input", Some(v)) => input = v.into(),
            ("--out", Some(v)) => out = v.into(),
            _ => {
                eprintln!("usage: pytorch_roundtrip [--input FILE] [--out FILE]");
                std::process::exit(2);
            }
        }
    }

    let lstm = Lstm::<f32>::load_safetensors(&input, "")?;
    let c = lstm.config();
    println!(
        "loaded {}: LSTM input_size={} hidden_size={} num_layers={} bidirectional={} bias={} ({} parameters)",
        input.display(),
        c.input_size,
        c.hidden_size,
        c.num_layers,
        c.bidirectional,
        c.bias,
        lstm.num_params()
    );

    // The fixture also stores an input, initial states and PyTorch's output.
    let file = io::read::<f32>(&input)?;
    let get = |k: &str| {
        file.tensors
            .get(k)
            .map(|a| a.clone().into_dimensionality::<Ix3>().expect("3-D"))
    };
    if let (Some(x), Some(h0), Some(c0), Some(expected)) =
        (get("input"), get("h0"), get("c0"), get("output"))
    {
        let (y, _) = lstm.infer(x.view(), Some(&LstmState { h: h0, c: c0 }), None)?;
        let diff = max_abs_diff(&y, &expected);
        println!(
            "output {:?}: max |recurrent − PyTorch| = {diff:.2e}",
            y.dim()
        );
        if diff > 1e-5 {
            eprintln!("the outputs differ more than f32 rounding explains");
            std::process::exit(1);
        }
    }

    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| recurrent::Error::io(dir, e))?;
    }
    lstm.save_safetensors(&out, "")?;
    println!("saved {} with keys {:?}", out.display(), lstm.names());
    println!(
        "check it in PyTorch: .venv-torch/bin/python scripts/check_roundtrip.py {} {}",
        out.display(),
        input.display()
    );
    Ok(())
}

fn max_abs_diff(a: &Array3<f32>, b: &Array3<f32>) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
