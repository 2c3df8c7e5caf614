//! Criterion benchmarks of `recurrent`: `lstm.rs` and `layers.rs` (run with
//! `cargo bench -p recurrent-benches`). This library target is empty; it exists because a
//! package needs one.
