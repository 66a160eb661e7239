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

fn main() {}
