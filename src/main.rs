//! omp-langfuse: turn Oh My Pi event streams and session logs into Langfuse traces.

mod batch;
mod encode;
mod model;
mod otlp;
mod retry;
mod sender;

fn main() {}
