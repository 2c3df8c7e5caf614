//! Fuzz target `optim_state`: see `Target::OptimState` in `tests/hostile/loaders.rs`.
#![no_main]

#[path = "../../tests/hostile/loaders.rs"]
mod loaders;

use std::sync::OnceLock;

static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = PATH.get_or_init(|| loaders::scratch_path(loaders::Target::OptimState));
    loaders::run(loaders::Target::OptimState, path, data);
});
