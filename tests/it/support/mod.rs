//! The integration tests' one helper tree: running the binary (`cmd`), the mock Langfuse
//! and the strict OTLP checker (`langfuse`, also used by the crate's own tests), and small
//! file and process helpers.

// Each test module uses a different part of this.
#![allow(dead_code)]

pub mod cmd;
pub mod langfuse;

pub use langfuse::mock_langfuse;

/// A JSON-lines file's objects (blank lines skipped; a bad line fails the test, named).
pub fn read_jsonl(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// The event types of an omp/pi `--mode json` capture (`dir/stdout.jsonl`), without the
/// streaming updates (their number, like ids and times, differs between any two runs):
/// what must be the same with and without the extension. Fails on a bridge line (`seq`).
pub fn json_mode_events(dir: &std::path::Path) -> Vec<String> {
    let lines = read_jsonl(&dir.join("stdout.jsonl"));
    assert!(
        lines.iter().all(|l| l.get("seq").is_none()),
        "{}: a bridge line on stdout",
        dir.display()
    );
    lines
        .iter()
        .filter_map(|l| l["type"].as_str())
        .filter(|t| !matches!(*t, "message_update" | "tool_execution_update"))
        .map(String::from)
        .collect()
}

/// Wait for `child` at most `limit`; past it, kill it and fail the test with its stderr. (No
/// timing is asserted: the limit only keeps a hung binary from hanging the suite.)
pub fn wait_bounded(
    mut child: std::process::Child,
    limit: std::time::Duration,
) -> std::process::Output {
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "omp-langfuse did not exit within {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}
