//! Placeholder, replaced by the full benchmark set of the performance issue.
use criterion::{criterion_group, criterion_main, Criterion};

fn layers(_c: &mut Criterion) {}

criterion_group!(benches, layers);
criterion_main!(benches);
