//! omp-langfuse: turn Oh My Pi event streams and session logs into Langfuse traces.

mod model;
mod redact;
mod sanitize;
#[cfg(test)]
mod secret_corpus;
mod truncate;

fn main() {}
