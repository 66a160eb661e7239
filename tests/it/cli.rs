//! The command line as a user meets it: help, usage errors and their exit status, the
//! settings applied to every trace, `--trace-per prompt`, the exit summary and `-q`,
//! stdin, and a reader that closes stdout early.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Output, Stdio};

use serde_json::{Value, json};

use crate::support::cmd::{
    body_str, code, command, dry_run, ev_type, events, fixtures_dir, panicked, stderr,
};

/// Exit status for usage and fatal errors (see the man page).
const EXIT_USAGE: i32 = 2;

/// Every option of the command line. `--help`, the man page and the README must agree
/// with this list; a new flag is added here first.
const FLAGS: &[&str] = &[
    "--input-format",
    "--dry-run",
    "--trace-per",
    "--max-queue",
    "--flush-ms",
    "--sample-rate",
    "--tags",
    "--environment",
    "--release",
    "--user-id",
    "--base-url",
    "--host",
    "--transport",
    "--otlp-endpoint",
    "--otlp-headers",
    "--timeout",
    "--max-in-flight",
    "--shutdown-timeout",
    "--state-dir",
    "--status-file",
    "--no-replay",
    "--resend",
    "--debug",
    "--ui-indicator",
    "--redact",
    "--secrets-file",
    "--max-tool-io",
    "--max-llm-io",
    "-q",
    "--quiet",
    "-v",
    "--verbose",
    "--strict",
    "--ca-cert",
    "-h",
    "--help",
    "-V",
    "--version",
];

/// The subcommands and their own options (every option above applies to them too).
const SUBCOMMAND_FLAGS: &[(&str, &[&str])] = &[
    ("backfill", &["--since", "--session"]),
    ("watch", &["--idle-close", "--since"]),
];

/// A fixture without any input problem (exit 0, no warnings).
const CLEAN: &str = "live-crlf-bom.jsonl";
/// A fixture with two user prompts in one session.
const TWO_PROMPTS: &str = "live-goal-compaction.jsonl";
/// A fixture with warnings (stderr noise and a cut-off last line).
const NOISY: &str = "live-crashed.jsonl";
/// Copies of one input needed to overflow a pipe buffer many times over.
const MANY_COPIES: usize = 40;
/// How much of stdout the early-closing reader takes.
const HEAD_BYTES: usize = 10;

fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

fn run(args: &[&str]) -> Output {
    crate::support::cmd::run(args, None)
}

fn traces(evs: &[Value]) -> Vec<&Value> {
    evs.iter()
        .filter(|e| ev_type(e) == "trace-create")
        .collect()
}

#[test]
fn help_lists_every_flag() {
    let out = run(&["--help"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in FLAGS {
        assert!(
            help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .any(|w| w == *flag),
            "--help does not mention {flag}"
        );
    }
    // And nothing the list does not know. An option line starts with its flags
    // (`-q, --quiet`, `--tags <TAGS>`); value lists below them start with `- `.
    let listed: BTreeSet<&str> = FLAGS.iter().copied().collect();
    for line in help.lines().map(str::trim_start) {
        let is_option = line.starts_with("--")
            || (line.starts_with('-') && line[1..].starts_with(|c: char| c.is_ascii_alphabetic()));
        if !is_option {
            continue;
        }
        for word in line
            .split([' ', ','])
            .filter(|w| !w.is_empty())
            .take_while(|w| w.starts_with('-') || w.starts_with('<'))
            .filter(|w| w.starts_with('-'))
            // `--dry-run[=<WIRE>]`: an optional value is not part of the flag's name.
            .map(|w| w.split('[').next().unwrap_or(w))
        {
            assert!(
                listed.contains(word),
                "--help has an unlisted option {word}"
            );
        }
    }
    let short = run(&["-h"]);
    assert_eq!(code(&short), 0);
    assert!(String::from_utf8_lossy(&short.stdout).contains("--dry-run"));
}

#[test]
fn subcommand_help_lists_their_flags_and_the_global_ones() {
    for (sub, flags) in SUBCOMMAND_FLAGS {
        let out = run(&[sub, "--help"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let help = String::from_utf8_lossy(&out.stdout);
        for flag in flags
            .iter()
            .chain(&["--dry-run", "--state-dir", "--flush-ms"])
        {
            assert!(
                help.contains(flag),
                "`{sub} --help` does not mention {flag}"
            );
        }
    }
    let top = String::from_utf8_lossy(&run(&["--help"]).stdout).into_owned();
    for (sub, _) in SUBCOMMAND_FLAGS {
        assert!(top.contains(sub), "--help does not list {sub}");
    }
}

/// The README and the man page document every option and subcommand.
#[test]
fn readme_and_man_page_name_every_flag() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let man = std::fs::read_to_string(root.join("man/omp-langfuse.1"))
        .unwrap()
        .replace("\\-", "-");
    let generic = ["-h", "--help", "-V", "--version"];
    let all = FLAGS
        .iter()
        .filter(|f| !generic.contains(f))
        .chain(SUBCOMMAND_FLAGS.iter().flat_map(|(_, f)| f.iter()))
        .chain(SUBCOMMAND_FLAGS.iter().map(|(s, _)| s));
    for flag in all {
        assert!(readme.contains(flag), "README.md does not mention {flag}");
        assert!(man.contains(flag), "the man page does not mention {flag}");
    }
}

#[test]
fn version_prints_the_crate_version() {
    let out = run(&["--version"]);
    assert_eq!(code(&out), 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let out = run(&["--dry-run", "--no-such-flag"]);
    assert_eq!(code(&out), EXIT_USAGE);
    assert!(stderr(&out).contains("--no-such-flag"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn sample_rate_out_of_range_is_a_usage_error() {
    let file = fixture(CLEAN);
    let file = file.to_str().expect("UTF-8 path");
    for out in [
        run(&["--dry-run", "--sample-rate", "2", file]),
        // The same from the environment.
        crate::support::cmd::command()
            .args(["--dry-run", file])
            .env("LANGFUSE_SAMPLE_RATE", "2")
            .output()
            .expect("running omp-langfuse"),
    ] {
        assert_eq!(code(&out), EXIT_USAGE);
        let err = stderr(&out);
        assert!(
            err.contains("sample-rate") && err.contains("between 0 and 1"),
            "unclear message: {err}"
        );
        assert!(out.stdout.is_empty());
        assert!(!panicked(&out));
    }
}

#[test]
fn sample_rate_zero_sends_nothing() {
    let out = dry_run(&fixture(TWO_PROMPTS), &["--sample-rate", "0"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        out.stdout.is_empty(),
        "sampled-out sessions must print nothing"
    );
    assert!(stderr(&out).contains("sampled out"), "{}", stderr(&out));
}

#[test]
fn missing_file_is_fatal_and_named() {
    let out = run(&["--dry-run", "no-such-omp-session.jsonl"]);
    assert_eq!(code(&out), EXIT_USAGE);
    assert!(
        stderr(&out).contains("no-such-omp-session.jsonl"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tags_environment_and_release_are_on_every_trace() {
    let want = |evs: &[Value]| {
        assert!(!traces(evs).is_empty());
        for t in traces(evs) {
            assert_eq!(t["body"]["tags"], json!(["omp", "ci run"]), "{t}");
            assert_eq!(body_str(t, "environment"), Some("ci"), "{t}");
            assert_eq!(body_str(t, "release"), Some("4f2a9c1"), "{t}");
        }
        // Observations carry the environment too (Langfuse filters them by it).
        for o in evs
            .iter()
            .filter(|e| crate::support::cmd::is_observation(e))
        {
            assert_eq!(body_str(o, "environment"), Some("ci"), "{o}");
        }
    };
    for name in [
        TWO_PROMPTS,
        "log-tree-ttsr-crashed.jsonl",
        "ext-bridge.jsonl",
    ] {
        let path = fixture(name);
        let flags = dry_run(
            &path,
            &[
                "--tags",
                "omp, ci run",
                "--environment",
                "ci",
                "--release",
                "4f2a9c1",
            ],
        );
        want(&events(&flags.stdout));
        let vars = crate::support::cmd::command()
            .args(["--dry-run", path.to_str().expect("UTF-8 path")])
            .env("LANGFUSE_TAGS", "omp,ci run")
            .env("LANGFUSE_TRACING_ENVIRONMENT", "ci")
            .env("LANGFUSE_RELEASE", "4f2a9c1")
            .output()
            .expect("running omp-langfuse");
        assert_eq!(
            flags.stdout, vars.stdout,
            "{name}: flags and variables differ"
        );
    }
}

#[test]
fn trace_per_prompt_gives_one_trace_per_prompt_in_one_session() {
    for name in [TWO_PROMPTS, "log-goal-retry-compaction.jsonl"] {
        let out = dry_run(&fixture(name), &["--trace-per", "prompt"]);
        assert!(matches!(code(&out), 0 | 1), "{}", stderr(&out));
        let evs = events(&out.stdout);
        let ids: BTreeSet<&str> = traces(&evs)
            .iter()
            .filter_map(|t| body_str(t, "id"))
            .collect();
        let sessions: BTreeSet<&str> = traces(&evs)
            .iter()
            .filter_map(|t| body_str(t, "sessionId"))
            .collect();
        assert_eq!(ids.len(), 2, "{name}: traces {ids:?}");
        assert_eq!(sessions.len(), 1, "{name}: sessions {sessions:?}");
        let roots = evs.iter().filter(|e| ev_type(e) == "agent-create").count();
        assert_eq!(roots, 2, "{name}: one root per trace");
    }
}

#[test]
fn summary_counts_lines_sessions_and_observations() {
    let path = fixture(TWO_PROMPTS);
    let out = dry_run(&path, &[]);
    assert_eq!(code(&out), 0);
    let err = stderr(&out);
    let summary = err
        .lines()
        .last()
        .expect("a summary line")
        .strip_prefix("omp-langfuse: ")
        .expect("prefixed");
    let lines = std::fs::read(&path)
        .expect("fixture")
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    let evs = events(&out.stdout);
    let observations = evs
        .iter()
        .filter(|e| crate::support::cmd::is_observation(e))
        .count();
    let batches = crate::support::cmd::batches(&out.stdout).len();
    for part in [
        "1 source".to_string(),
        format!("{lines} lines"),
        "1 session".to_string(),
        format!("{observations} observations"),
        "0 skipped".to_string(),
        if batches == 1 {
            "1 batch".to_string()
        } else {
            format!("{batches} batches")
        },
    ] {
        assert!(summary.contains(&part), "summary lacks {part:?}: {summary}");
    }
}

#[test]
fn quiet_silences_the_summary_but_not_warnings() {
    let clean = dry_run(&fixture(CLEAN), &["-q"]);
    assert_eq!(code(&clean), 0);
    assert_eq!(stderr(&clean), "", "-q on clean input prints nothing");
    let noisy = dry_run(&fixture(NOISY), &["--quiet"]);
    let err = stderr(&noisy);
    assert_eq!(err.lines().count(), 2, "two warnings, no summary: {err}");
    assert!(
        err.lines()
            .all(|l| l.starts_with(crate::support::cmd::WARNING_PREFIX))
    );
    let loud = dry_run(&fixture(CLEAN), &[]);
    assert_eq!(loud.stdout, clean.stdout, "-q changes stderr only");
}

#[test]
fn stdin_reads_like_a_file() {
    let path = fixture(TWO_PROMPTS);
    let from_file = dry_run(&path, &[]);
    for args in [&["--dry-run"][..], &["--dry-run", "-"]] {
        let out = command()
            .args(args)
            .stdin(std::fs::File::open(&path).expect("fixture"))
            .output()
            .expect("running omp-langfuse");
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(out.stdout, from_file.stdout, "{args:?}");
        assert!(stderr(&out).contains("1 source"), "{}", stderr(&out));
    }
}

/// `omp-langfuse --dry-run … | head -c 10`: the reader goes away; that is a clean stop.
#[test]
fn closed_stdout_is_not_an_error() {
    let path = fixture(TWO_PROMPTS);
    let path = path.to_str().expect("UTF-8 path");
    let mut args = vec!["--dry-run", "--max-queue", "5"];
    // Far more output than a pipe buffer holds, so the writer is still busy when the
    // reader leaves.
    args.extend(std::iter::repeat_n(path, MANY_COPIES));
    let mut child = command()
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning omp-langfuse");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut head = [0u8; HEAD_BYTES];
    stdout.read_exact(&mut head).expect("the first bytes");
    assert_eq!(&head[..HEAD_BYTES], &b"{\"batch\":["[..HEAD_BYTES]);
    drop(stdout);
    let out = child.wait_with_output().expect("waiting for omp-langfuse");
    assert!(!panicked(&out), "{}", stderr(&out));
    assert_ne!(code(&out), EXIT_USAGE, "{}", stderr(&out));
    assert!(out.status.code().is_some(), "killed by a signal");
}

/// SIGTERM while omp's pipe stays open: the open observations are closed (WARNING) and
/// flushed, and the process exits promptly instead of waiting for an end of input.
#[cfg(unix)]
#[test]
fn sigterm_on_an_open_live_stream_flushes_and_exits() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let mut child = command()
        .args(["--dry-run", "-q", "--flush-ms", "60000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let lines = [
        json!({"type":"session","version":3,"id":"sig-1","timestamp":"2026-08-23T09:14:02.117Z","cwd":"/w"}),
        json!({"type":"agent_start"}),
        json!({"type":"turn_start"}),
        json!({"type":"message_end","message":{"role":"user","content":"go","timestamp":1787476443000i64}}),
        json!({"type":"tool_execution_start","toolCallId":"t1","toolName":"bash","args":{"command":"sleep 99"}}),
    ];
    for l in &lines {
        writeln!(stdin, "{l}").unwrap();
    }
    stdin.flush().unwrap();
    // Give the reader time to take the lines, then interrupt; stdin stays open.
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    assert!(matches!(status.code(), Some(0 | 1)), "{status:?}");
    let evs = events(&out);
    let root = evs
        .iter()
        .find(|e| ev_type(e) == "agent-create")
        .expect("the root was flushed");
    assert_eq!(root["body"]["level"], "WARNING");
    let tool = evs
        .iter()
        .find(|e| ev_type(e) == "tool-create")
        .expect("the open tool was closed");
    assert_eq!(tool["body"]["level"], "WARNING");
}

#[test]
fn a_file_that_is_not_omp_output_costs_one_line_of_stderr() {
    let lock = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock");
    let out = dry_run(&lock, &[]);
    assert_eq!(code(&out), 1, "its lines are skipped");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 2, "one warning and the summary: {err}");
    assert!(
        err.contains("does not look like omp output (10 of the first 10 lines are not JSON"),
        "{err}"
    );
    assert!(err.contains("(not omp output)"), "{err}");
    assert!(out.stdout.is_empty());

    // Nor does its last line when it has no newline (a binary rarely ends in one).
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("a.out");
    let mut bytes: Vec<u8> = (0..40)
        .flat_map(|n| format!("\x7fELF {n}\n").into_bytes())
        .collect();
    bytes.extend_from_slice(b"\x00\x01 no newline");
    std::fs::write(&bin, bytes).unwrap();
    let out = dry_run(&bin, &[]);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 2, "one warning and the summary: {err}");
    assert!(!err.contains("cut off"), "{err}");
    assert!(err.contains("41 skipped"), "{err}");
}

#[test]
fn unknown_event_types_are_named_once_and_fail_only_with_strict() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer-omp.jsonl");
    let mut text = std::fs::read_to_string(fixtures_dir().join("live-auto-retry.jsonl")).unwrap();
    for ty in ["frobnicate", "frobnicate", "session_teleported"] {
        text.push_str(&format!("{{\"type\":\"{ty}\"}}\n"));
    }
    std::fs::write(&path, text).unwrap();
    let out = dry_run(&path, &[]);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert_eq!(err.lines().count(), 1, "only the summary: {err}");
    assert!(
        err.contains(
            "3 lines of types this version does not know: frobnicate (2), session_teleported (1)"
        ),
        "{err}"
    );
    let strict = dry_run(&path, &["--strict"]);
    assert_eq!(code(&strict), 1);
    assert_eq!(strict.stdout, out.stdout);
}

/// omp 18.3's `model_usage` entry (a side call, recorded beside the branch, here the last
/// line of the file) is a generation named after its purpose with its cost, and does not
/// hide the real branch; pi's `session_info` names the trace.
#[test]
fn side_calls_are_traced_and_never_taken_for_the_leaf() {
    let usage = |input: u64, cost: f64| {
        json!({"input": input, "output": 10, "cacheRead": 0, "cacheWrite": 0,
               "totalTokens": input + 10,
               "cost": {"input": cost, "output": 0.0, "cacheRead": 0.0, "cacheWrite": 0.0, "total": cost}})
    };
    let msg = |id: &str, parent: Option<&str>, ts: &str, m: Value| json!({"type": "message", "id": id, "parentId": parent, "timestamp": ts, "message": m});
    let lines = [
        json!({"type": "session", "version": 3, "id": "0190aaaa-0000-7000-8000-000000000001",
               "timestamp": "2026-12-01T10:00:00.000Z", "cwd": "/p"}),
        msg(
            "a",
            None,
            "2026-12-01T10:00:01.000Z",
            json!({"role": "user", "content": "hi", "timestamp": 1_796_119_201_000u64}),
        ),
        msg(
            "b",
            Some("a"),
            "2026-12-01T10:00:03.000Z",
            json!({"role": "assistant", "content": [{"type": "text", "text": "hello"}],
                   "model": "m", "stopReason": "stop", "usage": usage(100, 0.5),
                   "timestamp": 1_796_119_202_000u64, "duration": 1000}),
        ),
        json!({"type": "session_info", "id": "n", "parentId": "b",
               "timestamp": "2026-12-01T10:00:04.000Z", "name": "Greeting"}),
        msg(
            "d",
            Some("n"),
            "2026-12-01T10:00:05.000Z",
            json!({"role": "user", "content": "again", "timestamp": 1_796_119_205_000u64}),
        ),
        msg(
            "e",
            Some("d"),
            "2026-12-01T10:00:07.000Z",
            json!({"role": "assistant", "content": [{"type": "text", "text": "hello again"}],
                   "model": "m", "stopReason": "stop", "usage": usage(200, 0.25),
                   "timestamp": 1_796_119_206_000u64, "duration": 1000}),
        ),
        json!({"type": "model_usage", "id": "c", "parentId": "a",
               "timestamp": "2026-12-01T10:00:08.000Z", "purpose": "auto-thinking",
               "role": "tiny", "api": "x", "provider": "p", "model": "small",
               "usage": usage(50, 0.01), "stopReason": "stop"}),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, text).unwrap();
    let out = dry_run(&path, &[]);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(!err.contains("abandoned"), "{err}");
    let evs = events(&out.stdout);
    let gens: Vec<&Value> = evs
        .iter()
        .filter(|e| ev_type(e) == "generation-create")
        .collect();
    assert_eq!(gens.len(), 3, "two LLM calls and the side call: {err}");
    let side = gens
        .iter()
        .find(|g| body_str(g, "name") == Some("auto-thinking"))
        .expect("the side call, named after its purpose");
    assert_eq!(side["body"]["costDetails"]["total"], json!(0.01));
    assert_eq!(side["body"]["model"], json!("small"));
    let root = evs
        .iter()
        .find(|e| ev_type(e) == "agent-create")
        .expect("root");
    // Totals equal the sum of every call, side calls included.
    assert_eq!(root["body"]["metadata"]["cost_usd"], json!(0.76));
    assert_eq!(root["body"]["metadata"]["generations"], json!(3));
    let named = evs
        .iter()
        .filter(|e| ev_type(e) == "trace-create")
        .any(|t| body_str(t, "name") == Some("Greeting"));
    assert!(named, "pi's session name titles the trace");
}

/// Every type omp 18.2.3–18.3.4 and pi 0.73 write that maps to nothing is known by name:
/// with `--strict`, a stream holding one line of each still exits 0.
#[test]
fn every_type_omp_and_pi_write_is_known() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = std::fs::read_to_string(fixtures_dir().join("live-auto-retry.jsonl")).unwrap();
    for ty in [
        "tool_stream_update",
        "config_warnings_changed",
        "advisor_yielded",
        "session_settled",
        "subagent_lifecycle",
        "subagent_progress",
        "subagent_event",
        "queue_update",
        "model_select",
        "thinking_level_select",
        "session_before_fork",
        "resources_discover",
        "retry_fallback_applied",
    ] {
        text.push_str(&format!("{{\"type\":\"{ty}\"}}\n"));
    }
    text.push_str("{\"type\":\"agent_end\",\"isTerminal\":false,\"awaitingAsyncWork\":true,\"yielded\":true}\n");
    text.push_str("{\"type\":\"session_info_changed\",\"name\":\"Renamed\"}\n");
    text.push_str("{\"type\":\"compaction_start\",\"reason\":\"threshold\"}\n");
    text.push_str("{\"type\":\"compaction_end\",\"reason\":\"threshold\",\"result\":{\"summary\":\"s\"},\"aborted\":false,\"willRetry\":false}\n");
    let path = dir.path().join("all-types.jsonl");
    std::fs::write(&path, text).unwrap();
    let out = dry_run(&path, &["--strict"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(!err.contains("does not know"), "{err}");
    let evs = events(&out.stdout);
    assert!(
        evs.iter()
            .any(|e| ev_type(e) == "span-create" && body_str(e, "name") == Some("compaction")),
        "pi's compaction is traced"
    );
}

#[test]
fn max_in_flight_takes_one_to_sixty_four() {
    for bad in ["0", "65", "many"] {
        let out = run(&["--dry-run", "--max-in-flight", bad, "/dev/null"]);
        assert_eq!(code(&out), 2, "--max-in-flight {bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("--max-in-flight"), "{}", stderr(&out));
    }
    let out = run(&["--dry-run", "-q", "--max-in-flight", "8", "/dev/null"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}
