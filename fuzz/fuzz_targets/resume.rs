//! Fuzz target `resume`: see `Target::Resume` in `tests/hostile/loaders.rs`.
#![no_main]

#[path = "../../tests/hostile/loaders.rs"]
mod loaders;

use std::sync::OnceLock;

static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = PATH.get_or_init(|| loaders::scratch_path(loaders::Target::Resume));
    loaders::run(loaders::Target::Resume, path, data);
});
