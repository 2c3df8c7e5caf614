//! The allocation tests: a global allocator ([`counting`]) counts what a measured region of code
//! allocates, on its own thread and on the crate's worker threads. A binary of their own, apart
//! from the other integration tests (`tests/it/`), because the global allocator is the process's.
//! The tests take [`counting::exclusive`] and so run one at a time.

mod counting;

mod memory;
mod sequence;
mod stream;
