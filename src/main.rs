//! omp-langfuse: turn Oh My Pi event streams and session logs into Langfuse traces.

mod batch;
mod encode;
mod ledger;
mod model;
mod otlp;
mod retry;
mod sender;
mod spool;

fn main() {}
