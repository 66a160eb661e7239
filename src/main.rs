//! omp-langfuse: turn Oh My Pi event streams and session logs into Langfuse traces.

mod batch;
mod delivery;
mod encode;
mod http;
mod ledger;
mod model;
mod otlp;
mod retry;
mod sender;
mod spool;
mod status;

#[cfg(test)]
mod delivery_tests;
#[cfg(test)]
#[path = "../tests/support/mod.rs"]
mod test_support;

fn main() {}
