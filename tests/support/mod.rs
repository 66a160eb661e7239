//! Test support shared by the crate's own tests and the binary-level tests: a mock Langfuse
//! server and an independent strict OTLP checker.

// Each test crate uses a different part of this.
#![allow(dead_code)]

pub mod mock_langfuse;
pub mod otlp_strict;

/// A JSON-lines file's objects (blank lines skipped; a bad line fails the test, named).
pub fn read_jsonl(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}
