//! A stand-in for Langfuse on loopback and an independent strict checker of OTLP bodies,
//! shared by the integration tests and the crate's own delivery tests (`src/main.rs`
//! includes this directory).

// Each test crate uses a different part of this.
#![allow(dead_code)]

pub mod mock_langfuse;
pub mod otlp_strict;
