//! A bounded, deterministic fuzz test on stable Rust: thousands of mutated weight files,
//! checkpoints and optimizer states go through every loader (`tests/hostile/loaders.rs`, shared
//! with the cargo-fuzz targets in `fuzz/`). Each must end in `Ok` or a clean `Err`: a panic fails
//! the test, an abort kills it. The files that crashed a loader once are replayed from
//! `tests/hostile/regressions/<target>/`.
//!
//! The mutations know the safetensors layout (an 8-byte header length, a JSON header, the data):
//! besides flipped bits, overwritten bytes and truncations they put huge or negative numbers into
//! shapes, offsets, layer indices and metadata, swap dtypes, cut pieces out of the header and write
//! NaN, infinities and negative values into the data, then fix the header length.
//!
//! `RECURRENT_FUZZ_SEEDS=dir` also writes the crate-made seed files to `dir/<target>/` (for the
//! cargo-fuzz corpus; see `fuzz/README.md`).

#[path = "../hostile/loaders.rs"]
mod loaders;

use std::path::{Path, PathBuf};

use loaders::Target;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Mutated files per target and base file.
const MUTANTS_PER_BASE: usize = 300;

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

/// The base files of `target`: crate-made and PyTorch-made.
fn bases(target: Target, dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut bases = loaders::crate_seeds(target, dir);
    for name in loaders::pytorch_seeds(target) {
        let bytes = std::fs::read(tests_dir().join(name)).expect("a PyTorch-made seed");
        let name = Path::new(name).file_name().unwrap().to_string_lossy();
        bases.push((name.into_owned(), bytes));
    }
    bases
}

/// Sizes, indices and counters: near 0, 2^53 (the most steps a checkpoint holds exactly), 2^63
/// and `u64::MAX`.
const NUMBERS: [&str; 17] = [
    "0",
    "1",
    "-1",
    "3",
    "9007199254740991",
    "9007199254740992",
    "9007199254740993",
    "9223372036854775807",
    "18446744073709551614",
    "4294967297",
    "1099511627776",
    "4611686018427387904",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "1e12",
    "99999999999999999999999999",
];
const DTYPES: [&str; 11] = [
    "F32", "F64", "F16", "BF16", "I64", "I32", "U8", "BOOL", "F8_E4M3", "C64", "X",
];
const BYTES: [u8; 13] = [
    0, 0xff, 0x7f, 0x80, b'"', b'[', b']', b'{', b'}', b',', b':', b'-', b'9',
];

/// The header and the data of a safetensors file, if its length prefix is sane.
fn split(file: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = u64::from_le_bytes(file.get(..8)?.try_into().ok()?);
    let end = 8usize.checked_add(usize::try_from(n).ok()?)?;
    Some((file.get(8..end)?, &file[end..]))
}

fn join(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// `(start, end)` of every run of ASCII digits in `s`.
fn digit_runs(s: &[u8]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if s[i].is_ascii_digit() {
            let start = i;
            while i < s.len() && s[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((start, i));
        } else {
            i += 1;
        }
    }
    runs
}

/// Replaces `s[start..end]` with `with`.
fn splice(s: &[u8], start: usize, end: usize, with: &[u8]) -> Vec<u8> {
    [&s[..start], with, &s[end..]].concat()
}

/// One random mutation of `file`.
fn mutate_once(file: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut out = file.to_vec();
    let pick = |rng: &mut StdRng, n: usize| rng.random_range(0..n.max(1));
    match rng.random_range(0..9) {
        0 => {
            for _ in 0..rng.random_range(1..5) {
                if !out.is_empty() {
                    let i = pick(rng, out.len());
                    out[i] ^= 1 << rng.random_range(0..8);
                }
            }
        }
        1 => {
            if !out.is_empty() {
                let i = pick(rng, out.len());
                out[i] = BYTES[pick(rng, BYTES.len())];
            }
        }
        2 => out.truncate(pick(rng, out.len())),
        6 => {
            let n = file.len() as u64;
            let len = [
                0,
                1,
                2,
                n.saturating_sub(9),
                n.saturating_sub(7),
                n,
                u64::MAX,
                1 << 32,
                1 << 62,
            ][pick(rng, 9)];
            if out.len() >= 8 {
                out[..8].copy_from_slice(&len.to_le_bytes());
            }
        }
        8 => {
            // A NaN, an infinity, a negative or a huge value in the data, as f32 or f64.
            if let Some((header, data)) = split(file) {
                let mut data = data.to_vec();
                let v = [
                    f64::NAN,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    -1.0,
                    1e300,
                    -0.0,
                ][pick(rng, 6)];
                let (bytes, width) = if rng.random_bool(0.5) {
                    ((v as f32).to_le_bytes().to_vec(), 4)
                } else {
                    (v.to_le_bytes().to_vec(), 8)
                };
                if data.len() >= width {
                    let at = pick(rng, data.len() / width) * width;
                    data[at..at + width].copy_from_slice(&bytes);
                }
                out = join(header, &data);
            }
        }
        kind => {
            // Header edits, then the length prefix fixed.
            let Some((header, data)) = split(file) else {
                return out;
            };
            let header = match kind {
                3 => {
                    let runs = digit_runs(header);
                    if runs.is_empty() {
                        return out;
                    }
                    let (s, e) = runs[pick(rng, runs.len())];
                    splice(header, s, e, NUMBERS[pick(rng, NUMBERS.len())].as_bytes())
                }
                4 => {
                    let text = String::from_utf8_lossy(header);
                    let spots: Vec<usize> = text
                        .match_indices("\"dtype\":\"")
                        .map(|(i, m)| i + m.len())
                        .collect();
                    if spots.is_empty() {
                        return out;
                    }
                    let s = spots[pick(rng, spots.len())];
                    let e = s + header[s..].iter().position(|&b| b == b'"').unwrap_or(0);
                    splice(header, s, e, DTYPES[pick(rng, DTYPES.len())].as_bytes())
                }
                5 => {
                    // A layer index (`_l0` → `_l1099511627776`) or a parameter index
                    // (`param.1` → `param.18446744073709551615`).
                    let text = String::from_utf8_lossy(header).into_owned();
                    let spots: Vec<usize> = text
                        .match_indices("_l")
                        .chain(text.match_indices("param."))
                        .map(|(i, m)| i + m.len())
                        .filter(|&i| header.get(i).is_some_and(u8::is_ascii_digit))
                        .collect();
                    if spots.is_empty() {
                        return out;
                    }
                    let s = spots[pick(rng, spots.len())];
                    let e = s + header[s..]
                        .iter()
                        .take_while(|b| b.is_ascii_digit())
                        .count();
                    splice(header, s, e, NUMBERS[pick(rng, NUMBERS.len())].as_bytes())
                }
                _ => {
                    // Cut out or repeat a piece of the header.
                    let s = pick(rng, header.len());
                    let e = (s + rng.random_range(1..40)).min(header.len());
                    if rng.random_bool(0.5) {
                        splice(header, s, e, b"")
                    } else {
                        let piece = header[s..e].to_vec();
                        splice(header, s, s, &piece)
                    }
                }
            };
            out = join(&header, data);
        }
    }
    out
}

/// One to three mutations of `file`.
fn mutate(file: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut out = mutate_once(file, rng);
    for _ in 0..rng.random_range(0..3) {
        out = mutate_once(&out, rng);
    }
    out
}

/// Loads a file of `target` and says whether it loaded, catching nothing: a panic fails the test.
fn loads(target: Target, path: &Path, bytes: &[u8]) -> bool {
    std::fs::write(path, bytes).unwrap();
    loaders::run_file(target, path);
    accepted(target, path)
}

/// Whether `target`'s main loader accepts the file at `path` (in `f32`).
fn accepted(target: Target, path: &Path) -> bool {
    use recurrent::checkpoint::load_checkpoint;
    use recurrent::optim::{AdamConfig, OptimizerState};
    match target {
        Target::Lstm => {
            recurrent::Lstm::<f32>::load_safetensors(path, "").is_ok()
                || recurrent::Lstm::<f32>::load_safetensors(path, "encoder.").is_ok()
        }
        Target::Gru => recurrent::Gru::<f32>::load_safetensors(path, "").is_ok(),
        Target::Rnn => recurrent::Rnn::<f32>::load_safetensors(path, "").is_ok(),
        Target::Linear => recurrent::Linear::<f32>::load_safetensors(path, "").is_ok(),
        Target::Io => recurrent::io::load(&mut loaders::model::<f32>(), path, "").is_ok(),
        Target::Checkpoint => {
            let mut m = loaders::model::<f32>();
            let mut opt = AdamConfig::new(0.01).build().unwrap();
            load_checkpoint(path, &mut m, &mut opt).is_ok()
        }
        Target::Resume => {
            let mut m = loaders::tagger::<f32>();
            let mut opt = AdamConfig::new(0.01).build().unwrap();
            load_checkpoint(path, &mut m, &mut opt).is_ok()
        }
        Target::OptimState => recurrent::io::read::<f32>(path).is_ok_and(|f| {
            OptimizerState::<f32>::from_flat(f.tensors.into_iter().collect(), f.metadata).is_ok()
        }),
    }
}

#[test]
fn mutated_files_never_crash_a_loader() {
    let dir = std::env::temp_dir().join(format!("recurrent-mutation-{}", std::process::id()));
    let seeds_out = std::env::var_os("RECURRENT_FUZZ_SEEDS").map(PathBuf::from);
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut total = 0;
    for target in Target::ALL {
        let path = dir.join(format!("{}.safetensors", target.name()));
        let bases = bases(target, &dir.join("seeds"));
        let (mut ok, mut err) = (0, 0);
        for (name, base) in &bases {
            let must_load = !name.starts_with("clip_") && !name.starts_with("optim_adam");
            assert_eq!(
                loads(target, &path, base),
                must_load,
                "{target:?}: the base file {name}"
            );
            if let Some(out) = &seeds_out {
                let d = out.join(target.name());
                std::fs::create_dir_all(&d).unwrap();
                std::fs::write(d.join(name), base).unwrap();
            }
            for _ in 0..MUTANTS_PER_BASE {
                let mutant = mutate(base, &mut rng);
                if loads(target, &path, &mutant) {
                    ok += 1;
                } else {
                    err += 1;
                }
            }
        }
        eprintln!(
            "{:>12}: {} bases, {ok} mutants loaded, {err} refused",
            target.name(),
            bases.len()
        );
        // Both outcomes happen, so the mutants reach past the parser and into the models.
        assert!(
            ok > 0 && err > 0,
            "{target:?}: {ok} mutants loaded, {err} refused"
        );
        total += ok + err;
    }
    assert!(total >= 5000, "{total} mutants");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every file that once crashed or misled a loader (found by fuzzing or by hand, see
/// `scripts/make_hostile_seeds.py`) is replayed through its target's loaders and must be refused
/// with an error; the `ok-*` files beside them are unharmed controls that must load.
#[test]
fn regression_files_give_clean_errors() {
    let root = tests_dir().join("hostile/regressions");
    let dir = std::env::temp_dir().join(format!("recurrent-regressions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut refused, mut controls) = (0, 0);
    for target in Target::ALL {
        let Ok(entries) = std::fs::read_dir(root.join(target.name())) else {
            continue;
        };
        for entry in entries {
            let file = entry.unwrap().path();
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&file).unwrap();
            let control = name.starts_with("ok-");
            let loaded = loads(target, &dir.join("replay.safetensors"), &bytes);
            assert_eq!(loaded, control, "{}/{name}", target.name());
            if control {
                controls += 1;
            } else {
                refused += 1;
            }
        }
    }
    assert!(
        refused >= 12 && controls >= 3,
        "{refused} regression files, {controls} controls"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
