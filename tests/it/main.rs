//! The integration tests, as one test binary (`cargo test --test it`) with a module per
//! area and one helper tree (`support`): one link instead of eight, and shared helpers that
//! are compiled once.
//!
//! The end-to-end runs with the real omp and pi are `#[ignore]`d (they install from npm):
//! `OMP_E2E_REQUIRE=1 cargo test --test it real_omp:: -- --ignored`, and the same with
//! `PI_E2E_REQUIRE=1` and `real_pi::`.

mod support;

mod cli;
mod delivery;
mod follow;
mod golden;
mod inputs;
mod privacy;
mod real_omp;
mod real_pi;
