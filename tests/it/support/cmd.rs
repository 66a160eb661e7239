//! Running the built binary: commands with a clean environment, the fixtures, and its
//! `--dry-run` output read back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// The binary under test, built by cargo for the integration tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_omp-langfuse");

/// Suffix of the golden output next to each fixture.
pub const EXPECTED_SUFFIX: &str = ".expected.jsonl";

/// Prefix of every warning the binary prints about the input.
pub const WARNING_PREFIX: &str = "omp-langfuse: warning: ";

/// The binary set up to deliver to a (mock) Langfuse at `url` with the mock's keys, its
/// state in `state`: nothing from the developer's environment but `PATH`, stdout and
/// stderr piped. Callers add their timeouts, flags and stdin.
pub fn sending(url: &str, state: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LANGFUSE_BASE_URL", url)
        .env("LANGFUSE_PUBLIC_KEY", "pk-lf-test")
        .env("LANGFUSE_SECRET_KEY", "sk-lf-test")
        .arg("--state-dir")
        .arg(state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// The project's own fixtures.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Genuine omp outputs added by hand, when that directory exists.
pub fn real_dir() -> PathBuf {
    fixtures_dir().join("real")
}

/// A command for the binary with a clean environment for its own settings: a developer's
/// `LANGFUSE_*` variables must never change what a test sees.
pub fn command() -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LANGFUSE_") {
            cmd.env_remove(&key);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Run the binary to completion with `args`, in `dir` when given.
pub fn run(args: &[&str], dir: Option<&Path>) -> Output {
    let mut cmd = command();
    cmd.args(args);
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    cmd.output().expect("running omp-langfuse")
}

/// `--dry-run` on one file (an absolute path, so no working directory matters).
pub fn dry_run(path: &Path, extra: &[&str]) -> Output {
    let p = path.to_str().expect("UTF-8 fixture path");
    let mut args = vec!["--dry-run"];
    args.extend_from_slice(extra);
    args.push(p);
    run(&args, None)
}

/// The input files of a directory: `*.jsonl`, not the golden outputs, sorted.
pub fn jsonl_inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            let name = file_name(p);
            name.ends_with(".jsonl") && !name.ends_with(EXPECTED_SUFFIX)
        })
        .collect();
    out.sort();
    out
}

/// Every input the invariant tests run on: the fixtures, then `fixtures/real/` (and its
/// subdirectories, one level deep) when present.
pub fn all_inputs() -> Vec<PathBuf> {
    let mut out = jsonl_inputs(&fixtures_dir());
    out.extend(jsonl_inputs(&real_dir()));
    for dir in [real_dir(), fixtures_dir().join("real-pi")] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut subdirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        subdirs.sort();
        for d in subdirs {
            // A capture directory also holds the fake LLM's request log: not omp output.
            out.extend(
                jsonl_inputs(&d)
                    .into_iter()
                    .filter(|p| !file_name(p).starts_with("llm-requests")),
            );
        }
    }
    out
}

pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The request bodies printed by `--dry-run`, one parsed JSON document per line.
pub fn batches(stdout: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(stdout).expect("dry-run output is UTF-8");
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("dry-run line {} is not JSON: {e}", i + 1))
        })
        .collect()
}

/// All ingestion events of a run, in output order.
pub fn events(stdout: &[u8]) -> Vec<Value> {
    batches(stdout)
        .into_iter()
        .flat_map(|b| match b.get("batch") {
            Some(Value::Array(a)) => a.clone(),
            _ => panic!("a dry-run line without a `batch` array"),
        })
        .collect()
}

/// Exit status as a number (a signal counts as -1).
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What a Rust panic leaves on stderr.
pub fn panicked(out: &Output) -> bool {
    stderr(out).contains("panicked")
}

/// `body.<key>` of an event as a string.
pub fn body_str<'a>(ev: &'a Value, key: &str) -> Option<&'a str> {
    ev.get("body")
        .and_then(|b| b.get(key))
        .and_then(Value::as_str)
}

pub fn ev_type(ev: &Value) -> &str {
    ev.get("type").and_then(Value::as_str).unwrap_or("")
}

/// Observation events are every `*-create` except the trace upsert.
pub fn is_observation(ev: &Value) -> bool {
    let t = ev_type(ev);
    t.ends_with("-create") && t != "trace-create"
}
