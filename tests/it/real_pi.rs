//! End to end with the real pi (`@mariozechner/pi-coding-agent` 0.73.1, omp's upstream).
//! `tests/e2e/real-pi/run.sh` installs pi from npm and runs it on node, offline, against the
//! fake LLM on loopback with the `--events` bridge loaded; each scenario's `--mode json`
//! stdout, the bridge's events and pi's session file then go through omp-langfuse, and the
//! traces are checked against what pi itself recorded in its session file.
//!
//! The same checks run on the captures kept in `fixtures/real-pi/` in every `cargo test`;
//! the live run is `#[ignore]`d there and `.ci/run` runs it with `PI_E2E_REQUIRE=1`:
//!
//! ```sh
//! PI_E2E_REQUIRE=1 cargo test --test it real_pi:: -- --ignored
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::mock_langfuse::{MockConfig, MockLangfuse};
use crate::support::read_jsonl;
use serde_json::Value;

const REQUIRE_ENV: &str = "PI_E2E_REQUIRE";
const SKIPPED_PREFIX: &str = "skipped:";
const RUN_LIMIT: Duration = Duration::from_secs(15 * 60);
const SCENARIOS: &[&str] = &["tools", "two-prompts", "compact", "retry"];
/// The three ways pi's output reaches omp-langfuse.
const WAYS: &[&str] = &["stdout.jsonl", "events.jsonl", "session.jsonl"];

/// What pi recorded in its session file: the truth the traces are checked against.
#[derive(Debug)]
struct Recorded {
    assistants: usize,
    tool_results: usize,
    tool_errors: usize,
    compactions: usize,
}

fn recorded(session: &Path) -> Recorded {
    let entries = read_jsonl(session);
    let role = |e: &Value| {
        e.pointer("/message/role")
            .and_then(Value::as_str)
            .map(String::from)
    };
    let messages: Vec<&Value> = entries.iter().filter(|e| e["type"] == "message").collect();
    Recorded {
        assistants: messages
            .iter()
            .filter(|e| role(e).as_deref() == Some("assistant"))
            .count(),
        tool_results: messages
            .iter()
            .filter(|e| role(e).as_deref() == Some("toolResult"))
            .count(),
        tool_errors: messages
            .iter()
            .filter(|e| e.pointer("/message/isError") == Some(&Value::Bool(true)))
            .count(),
        compactions: entries.iter().filter(|e| e["type"] == "compaction").count(),
    }
}

/// One observation of the dry run's legacy batches (the `*-create` events).
#[derive(Debug, Clone)]
struct Obs {
    kind: String,
    name: String,
    millis: i64,
    level: String,
    metadata: Value,
    asked_for_tools: bool,
}

/// Epoch milliseconds of an RFC 3339 time (0 when absent: events have no end).
fn millis(v: &Value) -> i64 {
    let Some(s) = v.as_str() else {
        return 0;
    };
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| panic!("not a time: {s}"));
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn observations(stdout: &[u8]) -> Vec<Obs> {
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(stdout).lines() {
        let batch: Value = serde_json::from_str(line).expect("a batch");
        for e in batch["batch"].as_array().into_iter().flatten() {
            let ty = e["type"].as_str().unwrap_or_default();
            let Some(kind) = ty.strip_suffix("-create").filter(|k| *k != "trace") else {
                continue;
            };
            let b = &e["body"];
            let asked = b["output"].to_string().contains("toolCall");
            out.push(Obs {
                kind: kind.to_string(),
                name: b["name"].as_str().unwrap_or_default().to_string(),
                millis: if b["endTime"].is_string() {
                    millis(&b["endTime"]) - millis(&b["startTime"])
                } else {
                    0
                },
                level: b["level"].as_str().unwrap_or("DEFAULT").to_string(),
                metadata: b["metadata"].clone(),
                asked_for_tools: asked,
            });
        }
    }
    out
}

fn omp_langfuse() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_omp-langfuse"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn dry_run(input: &Path) -> Output {
    omp_langfuse()
        .arg("--dry-run")
        .arg(input)
        .output()
        .expect("run omp-langfuse")
}

/// The checks of one scenario read one way.
fn check(dir: &Path, scenario: &str, way: &str, out: &Output) -> usize {
    let what = format!("{scenario}/{way}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{what}: {err}");
    assert!(!err.contains("warning:"), "{what}: {err}");
    assert!(!err.contains("does not know"), "{what}: {err}");
    let truth = recorded(&dir.join("session.jsonl"));
    let obs = observations(&out.stdout);
    let of = |k: &str| obs.iter().filter(|o| o.kind == k).collect::<Vec<_>>();
    let roots = of("agent");
    assert_eq!(roots.len(), 1, "{what}");
    assert_eq!(roots[0].name, "pi", "{what}: the root names the producer");
    assert_eq!(roots[0].metadata["producer"], "pi", "{what}");
    let gens = of("generation");
    assert_eq!(
        gens.len(),
        truth.assistants,
        "{what}: one generation per LLM call"
    );
    let tools = of("tool");
    assert_eq!(tools.len(), truth.tool_results, "{what}: one tool per call");
    assert_eq!(
        tools.iter().filter(|t| t.level == "ERROR").count(),
        truth.tool_errors,
        "{what}: failed tools"
    );
    if scenario == "compact" {
        let done = of("span")
            .into_iter()
            .filter(|s| s.name == "compaction" && s.level == "DEFAULT")
            .count();
        assert!(done >= truth.compactions.max(1), "{what}: compaction");
    }
    if scenario == "retry" && way == "stdout.jsonl" {
        assert!(of("event").iter().any(|e| e.name == "auto-retry"), "{what}");
    }
    // Real durations: pi records none in its live stream, so a generation there ends at
    // the next later time; one that asked for tools always has one (the tool's result).
    for g in &gens {
        let must = way != "stdout.jsonl" || g.asked_for_tools;
        if must {
            assert!(g.millis > 0, "{what}: a zero-length generation");
        }
    }
    obs.len()
}

fn captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/real-pi")
}

#[test]
fn real_pi_captures_round_trip_through_the_dry_run() {
    for scenario in SCENARIOS {
        let dir = captures_dir().join(scenario);
        for way in WAYS {
            check(&dir, scenario, way, &dry_run(&dir.join(way)));
        }
    }
}

/// A pi-only user: `backfill` with no directory finds `~/.pi/agent/sessions`.
#[test]
fn backfill_without_a_directory_finds_a_pi_users_sessions() {
    let home = tempfile::tempdir().unwrap();
    let project = home.path().join(".pi/agent/sessions/--home-dev-project--");
    std::fs::create_dir_all(&project).unwrap();
    let mut expected = 0;
    for scenario in SCENARIOS {
        let session = captures_dir().join(scenario).join("session.jsonl");
        let header = &read_jsonl(&session)[0];
        let id = header["id"].as_str().unwrap();
        let ts = header["timestamp"]
            .as_str()
            .unwrap()
            .replace([':', '.'], "-");
        std::fs::copy(&session, project.join(format!("{ts}_{id}.jsonl"))).unwrap();
        expected += observations(&dry_run(&session).stdout).len();
    }
    let out = omp_langfuse()
        .env("HOME", home.path())
        .args(["--dry-run", "backfill"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(observations(&out.stdout).len(), expected, "{err}");
    assert!(err.contains("4 session files"), "{err}");
}

/// Pipe one capture into the mock Langfuse; the number of observations it accepted.
fn deliver(mock: &MockLangfuse, input: &Path) -> (Output, usize) {
    let state = tempfile::tempdir().unwrap();
    let out = crate::support::cmd::sending(&mock.url(), state.path())
        .stdin(Stdio::null())
        .arg(input)
        .output()
        .unwrap();
    let spans = mock.spans();
    (out, spans.len())
}

#[test]
#[ignore = "installs pi from npm and runs real sessions on node (about 20 s): \
            PI_E2E_REQUIRE=1 cargo test --test it real_pi:: -- --ignored"]
fn real_pi_sessions_arrive_in_langfuse() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/real-pi/run.sh");
    let out_dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    // Where the extension scenario's own omp-langfuse child delivers.
    let live = MockLangfuse::start(MockConfig::default());
    let mut child = Command::new("bash")
        .arg(&script)
        .arg(out_dir.path())
        .env("PI_E2E_LANGFUSE_URL", live.url())
        .env("PI_E2E_BIN", env!("CARGO_BIN_EXE_omp-langfuse"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("bash");
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            panic!("run.sh took longer than {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut said).unwrap();
    let required = std::env::var(REQUIRE_ENV).is_ok_and(|v| v != "0");
    if said.starts_with(SKIPPED_PREFIX) && !required {
        eprintln!("{said}");
        return;
    }
    assert!(status.success(), "run.sh failed: {said}");
    for scenario in SCENARIOS {
        let dir = out_dir.path().join(scenario);
        for way in WAYS {
            let input = dir.join(way);
            let expected = check(&dir, scenario, way, &dry_run(&input));
            let mock = MockLangfuse::start(MockConfig::default());
            let (out, spans) = deliver(&mock, &input);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(0), "{scenario}/{way}: {err}");
            assert_eq!(
                spans, expected,
                "{scenario}/{way}: every observation arrived once"
            );
        }
    }
    check_extension(&live, out_dir.path());
}

/// pi with the extension alone (no --events, the keys exported): its omp-langfuse child
/// delivered the whole session, and pi's output is what it is without the extension.
fn check_extension(live: &MockLangfuse, out: &Path) {
    let dir = out.join("ext-json");
    let engine = std::fs::read_to_string(dir.join("engine.txt")).expect("ext-json ran");
    assert_eq!(engine.trim(), "finished", "omp-langfuse children");
    assert!(live.invalid().is_empty(), "{:?}", live.invalid());
    let session = read_jsonl(&dir.join("session.jsonl"));
    let id = session[0]["id"].as_str().expect("pi's session id");
    let spans: Vec<_> = live
        .accepted()
        .into_iter()
        .filter(|s| s.session() == id)
        .collect();
    let truth = recorded(&dir.join("session.jsonl"));
    let count = |kind: &str| spans.iter().filter(|s| s.kind() == kind).count();
    let roots: Vec<_> = spans.iter().filter(|s| s.parent_id.is_none()).collect();
    assert_eq!(roots.len(), 1, "one root: {spans:?}");
    assert_eq!((roots[0].kind(), roots[0].name.as_str()), ("agent", "pi"));
    assert_eq!(
        count("generation"),
        truth.assistants,
        "one generation per LLM call"
    );
    assert_eq!(count("tool"), truth.tool_results, "one tool per call");
    // pi's stdout: the same events as without the extension (streaming updates, ids and
    // times differ between any two runs), no bridge line; stderr and exit status the same.
    let events = |name: &str| crate::support::json_mode_events(&out.join(name));
    assert_eq!(events("ext-json"), events("ext-json-plain"));
    let file = |name: &str, f: &str| std::fs::read(out.join(name).join(f)).unwrap();
    assert_eq!(
        file("ext-json", "stderr.txt"),
        file("ext-json-plain", "stderr.txt")
    );
    let meta = |name: &str| -> Value { serde_json::from_slice(&file(name, "meta.json")).unwrap() };
    assert_eq!(meta("ext-json")["exitCode"], 0);
    assert_eq!(meta("ext-json-plain")["exitCode"], 0);
}
