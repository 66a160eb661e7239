//! omp-langfuse: turn Oh My Pi event streams and session logs into Langfuse traces.

mod batch;
mod encode;
mod model;
mod sender;

fn main() {}
