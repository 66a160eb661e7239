//! Test support shared by the crate's own tests and the binary-level tests: a mock Langfuse
//! server and an independent strict OTLP checker.

// Each test crate uses a different part of this.
#![allow(dead_code)]

pub mod mock_langfuse;
pub mod otlp_strict;
