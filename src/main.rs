//! omp-langfuse: turn Oh My Pi event streams and session logs into Langfuse traces.

mod model;

fn main() {}
