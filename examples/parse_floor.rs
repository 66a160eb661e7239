//! The benchmark's parse floor: the least any JSON-lines consumer built on serde_json does.
//! Reads a file (or stdin) line by line and parses each line into a `serde_json::Value`,
//! then drops it. Prints lines, bytes and parse errors to stderr.
//!
//! ```sh
//! cargo run --release --example parse_floor -- big.jsonl
//! ```

use std::io::{self, BufRead, BufReader, Read};

fn main() -> io::Result<()> {
    let input: Box<dyn Read> = match std::env::args_os().nth(1) {
        Some(path) => Box::new(std::fs::File::open(path)?),
        None => Box::new(io::stdin()),
    };
    let mut reader = BufReader::with_capacity(256 * 1024, input);
    let mut line = Vec::new();
    let (mut lines, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        lines += 1;
        bytes += n as u64;
        if serde_json::from_slice::<serde_json::Value>(&line).is_err() {
            errors += 1;
        }
    }
    eprintln!("parse_floor: {lines} lines, {bytes} bytes, {errors} not JSON");
    Ok(())
}
