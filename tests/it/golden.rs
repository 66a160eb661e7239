//! Golden tests: every fixture under `fixtures/` through `--dry-run` gives exactly
//! `fixtures/<name>.expected.jsonl`, byte for byte, with the exit status and the
//! `file:line` warnings listed here. The expected files are the spec.
//!
//! After an intended change, regenerate them with `BLESS=1 cargo test --test it golden::`, then
//! review the diff by hand (tree shape, times, levels, usage and cost against the fixture)
//! before committing. `fixtures/README.md` says what each fixture pins.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::support::cmd::{
    EXPECTED_SUFFIX, WARNING_PREFIX, code, fixtures_dir, jsonl_inputs, run, stderr,
};

/// Set to regenerate the expected files instead of comparing.
const BLESS_VAR: &str = "BLESS";
/// Differences listed per mismatching event before the rest is summarised.
const MAX_PATHS_SHOWN: usize = 25;
/// Longest value shown in a diff line.
const MAX_VALUE_CHARS: usize = 160;

/// One golden case: a fixture, extra flags, and what the run must look like besides stdout.
struct Case {
    /// Fixture file name under `fixtures/`.
    fixture: &'static str,
    /// Extra command-line flags (before the file).
    args: &'static [&'static str],
    /// Golden output name under `fixtures/`.
    expected: &'static str,
    /// Exit status: 0 all read, 1 something skipped.
    exit: i32,
    /// Input lines the binary must warn about, as `(line, words in the reason)`.
    warnings: &'static [(u64, &'static str)],
}

/// Run one case and compare (or bless).
fn check(c: &Case) {
    let dir = fixtures_dir();
    let mut args = vec!["--dry-run"];
    args.extend_from_slice(c.args);
    // A bare file name, run from the fixtures directory: warnings then name `file:line`
    // the same way on every machine.
    args.push(c.fixture);
    let out = run(&args, Some(&dir));
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{}: panicked:\n{err}", c.fixture);

    let expected_path = dir.join(c.expected);
    if std::env::var_os(BLESS_VAR).is_some() {
        std::fs::write(&expected_path, &out.stdout).expect("writing the expected file");
        eprintln!("blessed {}", expected_path.display());
    } else {
        let expected = std::fs::read(&expected_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; create it with `{BLESS_VAR}=1 cargo test --test it golden::` and review it",
                expected_path.display()
            )
        });
        if expected != out.stdout {
            panic!(
                "{} {:?}: dry-run output differs from {}\n{}\n(if the change is intended: \
                 {BLESS_VAR}=1 cargo test --test it golden::, then review the diff)",
                c.fixture,
                c.args,
                c.expected,
                describe_diff(&expected, &out.stdout)
            );
        }
    }

    assert_eq!(
        code(&out),
        c.exit,
        "{}: exit status; stderr:\n{err}",
        c.fixture
    );
    check_warnings(c, &err);
}

/// Every listed line is reported as `file:line: reason`, and nothing else is.
fn check_warnings(c: &Case, err: &str) {
    let prefix = format!("{WARNING_PREFIX}{}:", c.fixture);
    let mut seen = BTreeSet::new();
    for line in err.lines().filter(|l| l.starts_with(WARNING_PREFIX)) {
        let rest = line
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{}: warning does not name the file: {line}", c.fixture));
        let (number, reason) = rest
            .split_once(':')
            .unwrap_or_else(|| panic!("{}: warning without a line: {line}", c.fixture));
        let number: u64 = number
            .parse()
            .unwrap_or_else(|_| panic!("{}: warning without a line number: {line}", c.fixture));
        let Some((_, words)) = c.warnings.iter().find(|(n, _)| *n == number) else {
            panic!("{}: unexpected warning: {line}", c.fixture);
        };
        assert!(
            reason.contains(words),
            "{}:{number}: reason should mention {words:?}: {line}",
            c.fixture
        );
        seen.insert(number);
    }
    let wanted: BTreeSet<u64> = c.warnings.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        seen, wanted,
        "{}: lines warned about; stderr:\n{err}",
        c.fixture
    );
}

/// A readable difference between two dry-run outputs: batch counts, then the first
/// differing ingestion event with the JSON paths where it differs.
fn describe_diff(expected: &[u8], actual: &[u8]) -> String {
    let (Some(exp), Some(act)) = (parse_events(expected), parse_events(actual)) else {
        return describe_line_diff(expected, actual);
    };
    let mut s = String::new();
    let count = |b: &[u8]| b.split(|c| *c == b'\n').filter(|l| !l.is_empty()).count();
    let _ = writeln!(
        s,
        "batches: expected {}, got {}; events: expected {}, got {}",
        count(expected),
        count(actual),
        exp.len(),
        act.len()
    );
    let mut shown = 0;
    for (i, (e, a)) in exp.iter().zip(&act).enumerate() {
        if e == a {
            continue;
        }
        let _ = writeln!(s, "event #{i}: expected {}, got {}", label(e), label(a));
        let mut paths = Vec::new();
        diff_paths("", e, a, &mut paths);
        for p in paths.iter().take(MAX_PATHS_SHOWN) {
            let _ = writeln!(s, "  {p}");
        }
        if paths.len() > MAX_PATHS_SHOWN {
            let _ = writeln!(s, "  … {} more", paths.len() - MAX_PATHS_SHOWN);
        }
        shown += 1;
        if shown == 3 {
            let _ = writeln!(s, "(further differing events not shown)");
            break;
        }
    }
    for (i, e) in exp.iter().enumerate().skip(act.len()) {
        let _ = writeln!(s, "missing event #{i}: {}", label(e));
    }
    for (i, a) in act.iter().enumerate().skip(exp.len()) {
        let _ = writeln!(s, "extra event #{i}: {}", label(a));
    }
    s
}

fn parse_events(bytes: &[u8]) -> Option<Vec<Value>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut out = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).ok()?;
        out.extend(v.get("batch")?.as_array()?.iter().cloned());
    }
    Some(out)
}

fn label(ev: &Value) -> String {
    format!(
        "{} {:?} id={}",
        ev.get("type").and_then(Value::as_str).unwrap_or("?"),
        ev.pointer("/body/name")
            .and_then(Value::as_str)
            .unwrap_or(""),
        ev.pointer("/body/id")
            .and_then(Value::as_str)
            .unwrap_or("?"),
    )
}

/// Paths where two JSON values differ, e.g. `/body/endTime: "…" ≠ "…"`.
fn diff_paths(path: &str, e: &Value, a: &Value, out: &mut Vec<String>) {
    match (e, a) {
        (Value::Object(eo), Value::Object(ao)) => {
            let keys: BTreeSet<&String> = eo.keys().chain(ao.keys()).collect();
            for k in keys {
                let p = format!("{path}/{k}");
                match (eo.get(k), ao.get(k)) {
                    (Some(x), Some(y)) => diff_paths(&p, x, y, out),
                    (Some(x), None) => out.push(format!("{p}: missing (expected {})", short(x))),
                    (None, Some(y)) => out.push(format!("{p}: unexpected {}", short(y))),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(ea), Value::Array(aa)) if ea.len() == aa.len() => {
            for (i, (x, y)) in ea.iter().zip(aa).enumerate() {
                diff_paths(&format!("{path}/{i}"), x, y, out);
            }
        }
        _ if e != a => out.push(format!("{path}: expected {} got {}", short(e), short(a))),
        _ => {}
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() <= MAX_VALUE_CHARS {
        s
    } else {
        let cut: String = s.chars().take(MAX_VALUE_CHARS).collect();
        format!("{cut}…")
    }
}

/// Fallback when an output is not JSON lines: the first differing line.
fn describe_line_diff(expected: &[u8], actual: &[u8]) -> String {
    let e = String::from_utf8_lossy(expected);
    let a = String::from_utf8_lossy(actual);
    for (i, (x, y)) in e.lines().zip(a.lines()).enumerate() {
        if x != y {
            return format!(
                "line {}:\n  expected {}\n  got      {}",
                i + 1,
                shorten(x),
                shorten(y)
            );
        }
    }
    format!(
        "expected {} lines, got {}",
        e.lines().count(),
        a.lines().count()
    )
}

fn shorten(s: &str) -> String {
    short(&Value::String(s.to_string()))
}

/// Declares the cases (in `CASES`) and one `#[test]` per case.
macro_rules! golden {
    ($($test:ident: $fixture:literal $args:tt => $expected:literal,
        exit $exit:literal, warnings $warnings:tt;)*) => {
        const CASES: &[Case] = &[$(Case {
            fixture: $fixture,
            args: &$args,
            expected: $expected,
            exit: $exit,
            warnings: &$warnings,
        }),*];
        $(
            #[test]
            fn $test() {
                check(CASES.iter().find(|c| c.expected == $expected).expect("declared above"));
            }
        )*
    };
}

golden! {
    // An event type this version does not know (line 40) is named in the summary only.
    ext_bridge: "ext-bridge.jsonl" [] => "ext-bridge.expected.jsonl",
        exit 0, warnings [];
    // Raw hook events: no `ts`, no `sessionId`; the session id is derived.
    ext_raw: "ext-raw.jsonl" [] => "ext-raw.expected.jsonl",
        exit 0, warnings [];
    live_auto_retry: "live-auto-retry.jsonl" [] => "live-auto-retry.expected.jsonl",
        exit 0, warnings [];
    // omp's stderr mixed in (skipped: exit 1) and a cut-off last line (tolerated).
    live_crashed: "live-crashed.jsonl" [] => "live-crashed.expected.jsonl",
        exit 1, warnings [(13, "not JSON"), (19, "cut off")];
    // BOM, CRLF and blank lines are not problems: no warning, exit 0.
    live_crlf_bom: "live-crlf-bom.jsonl" [] => "live-crlf-bom.expected.jsonl",
        exit 0, warnings [];
    live_goal_compaction: "live-goal-compaction.jsonl" [] => "live-goal-compaction.expected.jsonl",
        exit 0, warnings [];
    live_goal_compaction_per_prompt: "live-goal-compaction.jsonl" ["--trace-per", "prompt"]
        => "live-goal-compaction.per-prompt.expected.jsonl",
        exit 0, warnings [];
    live_ttsr_parallel: "live-ttsr-parallel.jsonl" [] => "live-ttsr-parallel.expected.jsonl",
        exit 0, warnings [];
    log_goal_retry_compaction: "log-goal-retry-compaction.jsonl" []
        => "log-goal-retry-compaction.expected.jsonl",
        exit 0, warnings [];
    log_tree_ttsr_crashed: "log-tree-ttsr-crashed.jsonl" []
        => "log-tree-ttsr-crashed.expected.jsonl",
        exit 0, warnings [];
}

/// Every fixture has a golden case and every expected file belongs to one, so a new
/// fixture cannot be added without its spec (and a stale expected file is noticed).
#[test]
fn every_fixture_has_a_golden_case() {
    let dir = fixtures_dir();
    for input in jsonl_inputs(&dir) {
        let name = crate::support::cmd::file_name(&input);
        assert!(
            CASES.iter().any(|c| c.fixture == name && c.args.is_empty()),
            "fixtures/{name} has no golden case in tests/it/golden.rs"
        );
    }
    let listed: BTreeSet<&str> = CASES.iter().map(|c| c.expected).collect();
    for entry in std::fs::read_dir(&dir).expect("fixtures dir") {
        let name = crate::support::cmd::file_name(&entry.expect("dir entry").path());
        if name.ends_with(EXPECTED_SUFFIX) {
            assert!(
                listed.contains(name.as_str()),
                "fixtures/{name} belongs to no golden case"
            );
        }
    }
    for c in CASES {
        assert!(
            Path::new(&dir).join(c.fixture).is_file(),
            "golden case names a missing fixture: {}",
            c.fixture
        );
    }
}
