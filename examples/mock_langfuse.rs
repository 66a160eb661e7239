//! A standalone loopback mock Langfuse for the benchmark (`bench/run.sh`): the test suite's
//! mock (`tests/it/support/langfuse/mock_langfuse.rs`) in lean mode, where accepted bodies are only
//! counted (not inflated, checked or kept) so that the mock takes as little of the machine as
//! possible from the tool being measured.
//!
//! ```sh
//! cargo run --release --example mock_langfuse -- [--port N] [--strict] [--delay-ms N] [--stats FILE]
//! ```
//!
//! Prints `http://127.0.0.1:<port>` on stdout once listening, then serves until killed.
//! Keys: `pk-lf-test` / `sk-lf-test`. `--strict` checks every body like the tests do.
//! `--delay-ms N` answers every POST N ms late (a WAN round trip); `--stats FILE` keeps
//! `posts=<n> max_in_flight=<n>` in FILE, rewritten every 100 ms.

#[path = "../tests/it/support/langfuse/mod.rs"]
mod support;

use std::io::Write;

use support::mock_langfuse::{MockConfig, MockLangfuse};

fn main() {
    let mut port = 0u16;
    let mut lean = true;
    let mut delay_ms = 0u64;
    let mut stats: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => port = args.next().and_then(|p| p.parse().ok()).unwrap_or(0),
            "--strict" => lean = false,
            "--delay-ms" => delay_ms = args.next().and_then(|p| p.parse().ok()).unwrap_or(0),
            "--stats" => stats = args.next(),
            _ => {
                eprintln!(
                    "usage: mock_langfuse [--port N] [--strict] [--delay-ms N] [--stats FILE]"
                );
                std::process::exit(2);
            }
        }
    }
    let cfg = MockConfig {
        lean,
        delay: std::time::Duration::from_millis(delay_ms),
        ..MockConfig::default()
    };
    let mock = MockLangfuse::start_on(&format!("127.0.0.1:{port}"), cfg).unwrap_or_else(|| {
        eprintln!("mock_langfuse: cannot listen on port {port}");
        std::process::exit(1)
    });
    println!("{}", mock.url());
    std::io::stdout().flush().ok();
    loop {
        match &stats {
            Some(path) => {
                let (posts, _) = mock.lean_totals();
                let line = format!("posts={posts} max_in_flight={}\n", mock.max_in_flight());
                let tmp = format!("{path}.tmp");
                if std::fs::write(&tmp, line).is_ok() {
                    let _ = std::fs::rename(&tmp, path);
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            None => std::thread::sleep(std::time::Duration::from_secs(3600)),
        }
    }
}
