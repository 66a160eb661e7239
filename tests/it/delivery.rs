//! Binary-level delivery tests: the real `omp-langfuse` against the loopback mock Langfuse.
//!
//! They drive the CLI contract of issue 3 (LANGFUSE_* environment, `--transport`,
//! `--state-dir`, `--shutdown-timeout`, `--resend`, exit statuses 0/1/2).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::cmd::sending;
use crate::support::mock_langfuse::{MockConfig, MockLangfuse, Scripted, refused_url};
use crate::support::wait_bounded;
use serde_json::{Value, json};

/// A live `omp --mode json` stream: `sessions` sessions of `turns` turns, each turn one
/// LLM call and one tool call (so 1 agent + 3 observations per turn per session).
fn omp_stream(sessions: usize, turns: usize) -> String {
    let mut out = String::new();
    let mut line = |v: Value| {
        out.push_str(&v.to_string());
        out.push('\n');
    };
    for s in 0..sessions {
        let mut ts: i64 = 1_795_000_000_000 + s as i64 * 1_000_000;
        line(
            json!({"type":"session","version":3,"id":format!("cli-sess-{s}"),
            "timestamp":"2026-11-24T00:00:00.500Z","cwd":"/w"}),
        );
        line(json!({"type":"agent_start"}));
        for t in 0..turns {
            let call = format!("call-{s}-{t}");
            line(json!({"type":"turn_start"}));
            line(json!({"type":"message_end","message":{"role":"user",
                "content":[{"type":"text","text":format!("step {t}")}],"timestamp":ts}}));
            line(json!({"type":"message_end","message":{"role":"assistant",
                "content":[{"type":"text","text":"ok"},
                           {"type":"toolCall","id":call,"name":"bash","arguments":{"command":"ls"}}],
                "provider":"p","model":"m",
                "usage":{"input":10,"output":5,"cacheRead":100,"cacheWrite":1,"totalTokens":116,
                         "cost":{"input":0.1,"output":0.2,"cacheRead":0.3,"cacheWrite":0.4,"total":1.0}},
                "stopReason":"toolUse","timestamp":ts + 100,"duration":100,"ttft":20}}));
            line(
                json!({"type":"tool_execution_start","toolCallId":call,"toolName":"bash","args":{"command":"ls"}}),
            );
            line(
                json!({"type":"tool_execution_end","toolCallId":call,"toolName":"bash",
                "result":{"content":[]},"isError":false}),
            );
            line(
                json!({"type":"message_end","message":{"role":"toolResult","toolCallId":call,
                "toolName":"bash","content":[{"type":"text","text":"out"}],"isError":false,"timestamp":ts + 200}}),
            );
            line(json!({"type":"turn_end"}));
            ts += 1000;
        }
        line(json!({"type":"agent_end"}));
    }
    out
}

/// Observations in `omp_stream(sessions, turns)`.
fn observation_count(sessions: usize, turns: usize) -> usize {
    sessions * (1 + 3 * turns)
}

fn cmd(url: &str, state: &Path) -> Command {
    let mut c = sending(url, state);
    c.env("LANGFUSE_TIMEOUT", "2")
        .env("LANGFUSE_UI_INDICATOR", "0")
        .stdin(Stdio::piped());
    c
}

/// The run ended with `code`; its stderr is shown when it did not.
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_with_input(mut c: Command, input: &str) -> Output {
    let mut child = c.spawn().expect("spawn omp-langfuse");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = wait_bounded(child, Duration::from_secs(30));
    writer.join().unwrap();
    out
}

fn assert_each_once(mock: &MockLangfuse, expected: usize) {
    let spans = mock.spans();
    assert_eq!(spans.len(), expected, "distinct spans");
    assert!(spans.values().all(|&n| n == 1), "duplicates: {spans:?}");
    assert!(mock.invalid().is_empty(), "{:?}", mock.invalid());
}

#[test]
fn every_observation_arrives_exactly_once_under_failures_and_rate_limits() {
    let mock = MockLangfuse::start(MockConfig {
        fail_rate: 0.3,
        rate_limit_every: Some(4),
        seed: 11,
        ..MockConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut c = cmd(&mock.url(), dir.path());
    // One request at a time; the default (eight in flight) is the next test.
    c.args([
        "--transport",
        "otlp",
        "--max-queue",
        "6",
        "--max-in-flight",
        "1",
    ]);
    let out = run_with_input(c, &omp_stream(3, 4));
    assert_exit(&out, 0);
    assert_each_once(&mock, observation_count(3, 4));
}

#[test]
fn several_in_flight_arrive_exactly_once_under_failures_and_rate_limits() {
    // The same faults with eight requests in flight (the default): the window shrinks and
    // grows, a retried request's batch is read back from its compressed body, every
    // observation still arrives once.
    let mock = MockLangfuse::start(MockConfig {
        fail_rate: 0.3,
        rate_limit_every: Some(4),
        seed: 12,
        delay: Duration::from_millis(20),
        ..MockConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut c = cmd(&mock.url(), dir.path());
    c.args(["--transport", "otlp", "--max-queue", "6"]);
    let out = run_with_input(c, &omp_stream(4, 5));
    assert_exit(&out, 0);
    assert_each_once(&mock, observation_count(4, 5));
    assert!(mock.max_in_flight() <= 8, "{}", mock.max_in_flight());
}

#[test]
fn server_down_spools_and_the_next_run_delivers_with_zero_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let url = refused_url();
    let input = omp_stream(2, 3);
    let mut c = cmd(&url, dir.path());
    c.args(["--transport", "otlp", "--shutdown-timeout", "1"]);
    let out = run_with_input(c, &input);
    assert_eq!(out.status.code(), Some(1), "spooled is a partial success");
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("spooled for the next run"), "{summary}");
    // Why, without --debug.
    assert!(summary.contains("connection refused"), "{summary}");
    let Some(mock) =
        MockLangfuse::start_on(url.trim_start_matches("http://"), MockConfig::default())
    else {
        eprintln!("the port was taken meanwhile; second half skipped");
        return;
    };
    // The same input again, plus the spool: each observation exactly once.
    let mut c = cmd(&url, dir.path());
    c.args(["--transport", "otlp"]);
    let out = run_with_input(c, &input);
    assert_exit(&out, 0);
    assert_each_once(&mock, observation_count(2, 3));
}

#[test]
fn re_running_the_same_input_sends_nothing() {
    let mock = MockLangfuse::start(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let input = omp_stream(1, 3);
    let mut last_stderr = String::new();
    for _ in 0..2 {
        let out = run_with_input(cmd(&mock.url(), dir.path()), &input);
        last_stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{last_stderr}");
    }
    // The summary says why nothing was sent.
    assert!(
        last_stderr.contains("0 events delivered")
            && last_stderr.contains("already delivered earlier"),
        "{last_stderr}"
    );
    let otlp_posts = mock
        .received()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(otlp_posts, 1, "the second run must not send");
    let mut c = cmd(&mock.url(), dir.path());
    c.arg("--resend");
    run_with_input(c, &input);
    assert!(mock.spans().values().all(|&n| n == 2));
}

#[test]
fn unauthorized_exits_2_with_everything_spooled_and_no_key_in_sight() {
    let mock = MockLangfuse::start(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let mut c = cmd(&mock.url(), dir.path());
    c.env("LANGFUSE_SECRET_KEY", "sk-lf-very-secret")
        .env("LANGFUSE_DEBUG", "1");
    let out = run_with_input(c, &omp_stream(2, 2));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    assert!(!stderr.contains("sk-lf-very-secret"), "{stderr}");
    assert_eq!(mock.posts(), 1, "sending stops at the first 401");
    // Everything is in the spool: the next run with the right key delivers it all.
    let out = run_with_input(cmd(&mock.url(), dir.path()), "");
    assert_exit(&out, 0);
    assert_each_once(&mock, observation_count(2, 2));
}

#[test]
fn a_live_stream_kept_open_is_flushed_by_the_time_cap() {
    let mock = MockLangfuse::start(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let mut c = cmd(&mock.url(), dir.path());
    c.env("LANGFUSE_FLUSH_MS", "300");
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // One finished turn of a session that goes on: its LLM and tool calls are complete.
    let stream = omp_stream(1, 2);
    let first_turn: String = stream.lines().take(10).map(|l| format!("{l}\n")).collect();
    stdin.write_all(first_turn.as_bytes()).unwrap();
    stdin.flush().unwrap();
    // Without the time cap nothing would arrive before the end of input, which never comes
    // while this waits: the bound is generous for a loaded machine.
    let visible = mock.wait_for(Duration::from_secs(10), |m| !m.spans().is_empty());
    drop(stdin);
    let _ = wait_bounded(child, Duration::from_secs(15));
    assert!(visible, "nothing arrived while the stream was open");
}

#[test]
fn shutdown_never_exceeds_its_timeout() {
    let mock = MockLangfuse::start(MockConfig::default());
    mock.script((0..50).map(|_| Scripted::Hang(Duration::from_secs(10))));
    let dir = tempfile::tempdir().unwrap();
    let mut c = cmd(&mock.url(), dir.path());
    c.env("LANGFUSE_TIMEOUT", "10")
        .args(["--shutdown-timeout", "1", "--max-queue", "5"]);
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(omp_stream(1, 4).as_bytes()).unwrap();
    drop(stdin);
    let t0 = Instant::now();
    let out = wait_bounded(child, Duration::from_secs(15));
    let took = t0.elapsed();
    // 1 s of shutdown plus process start-up and the summary, with slack for a loaded
    // machine; waiting for the hung server would take 10 s.
    assert!(took < Duration::from_secs(6), "took {took:?}");
    assert_exit(&out, 1);
}

#[test]
fn auto_transport_uses_legacy_ingestion_for_old_servers() {
    let mock = MockLangfuse::start(MockConfig {
        version: Some("3.40.0".into()),
        ..MockConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut c = cmd(&mock.url(), dir.path());
    c.env("LANGFUSE_DEBUG", "1");
    let out = run_with_input(c, &omp_stream(1, 2));
    assert_exit(&out, 0);
    let posts: Vec<_> = mock
        .received()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert!(posts.iter().all(|r| r.path == "/api/public/ingestion"));
    let accepted: usize = mock.events().values().sum();
    assert_eq!(accepted, mock.events().len(), "no event twice");
    // The debug log shows flushes, never payloads.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("flush ingestion"), "{stderr}");
    assert!(!stderr.contains("step 0"), "payload text leaked: {stderr}");
}

#[test]
fn a_flag_wins_over_the_environment_and_an_empty_variable_counts_as_unset() {
    let mock = MockLangfuse::start(MockConfig::default());
    let input = omp_stream(1, 1);
    // `--host` on the command line beats LANGFUSE_BASE_URL (which points nowhere).
    let dir = tempfile::tempdir().unwrap();
    let mut c = cmd(&refused_url(), dir.path());
    c.args(["--host", &mock.url()]);
    let out = run_with_input(c, &input);
    assert_exit(&out, 0);
    assert_each_once(&mock, observation_count(1, 1));

    // An empty LANGFUSE_BASE_URL falls through to LANGFUSE_HOST, not to Langfuse Cloud.
    let mock = MockLangfuse::start(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let mut c = cmd("", dir.path());
    c.env("LANGFUSE_HOST", mock.url());
    let out = run_with_input(c, &input);
    assert_exit(&out, 0);
    assert_each_once(&mock, observation_count(1, 1));
}

#[test]
fn a_boolean_variable_with_a_bad_value_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cmd(&refused_url(), dir.path());
    c.env("LANGFUSE_DEBUG", "maybe");
    let out = run_with_input(c, "");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("LANGFUSE_DEBUG") || err.contains("--debug"),
        "{err}"
    );
}

/// The spool holds prompts and tool output: the state directory is the user's alone.
#[cfg(unix)]
#[test]
fn state_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_input(cmd(&refused_url(), dir.path()), &omp_stream(1, 1));
    assert_eq!(out.status.code(), Some(1), "spooled");
    let mut seen = (0, 0);
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            if e.file_type().unwrap().is_dir() {
                assert_eq!(mode, 0o700, "{}", e.path().display());
                seen.0 += 1;
                stack.push(e.path());
            } else {
                assert_eq!(mode, 0o600, "{}", e.path().display());
                seen.1 += 1;
            }
        }
    }
    assert!(seen.0 >= 3 && seen.1 >= 1, "{seen:?}");
}

/// A self-hosted Langfuse behind a private CA: unknown to the platform's store (the run
/// says so plainly and spools), trusted with `LANGFUSE_CA_CERT`.
#[test]
fn a_private_ca_is_trusted_with_ca_cert() {
    let work = tempfile::tempdir().unwrap();
    let (port_file, ca_file) = (work.path().join("port"), work.path().join("ca.pem"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/tls/https_server.py");
    let Ok(mut server) = Command::new("python3")
        .arg(&script)
        .arg("--port-file")
        .arg(&port_file)
        .arg("--ca-file")
        .arg(&ca_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        eprintln!("python3 is not installed; skipped");
        return;
    };
    let t0 = Instant::now();
    while !port_file.exists() && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let port = std::fs::read_to_string(&port_file).unwrap_or_default();
    if port.is_empty() {
        let _ = server.kill();
        panic!("the HTTPS stand-in did not start (openssl missing?)");
    }
    let url = format!("https://127.0.0.1:{port}");
    let input = omp_stream(1, 1);

    let state = tempfile::tempdir().unwrap();
    let mut c = cmd(&url, state.path());
    c.args(["--transport", "otlp", "--shutdown-timeout", "2"]);
    let out = run_with_input(c, &input);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("TLS: certificate of an unknown issuer"),
        "{err}"
    );

    let state = tempfile::tempdir().unwrap();
    let mut c = cmd(&url, state.path());
    c.env("LANGFUSE_CA_CERT", &ca_file)
        .args(["--transport", "otlp"]);
    let out = run_with_input(c, &input);
    let _ = server.kill();
    let _ = server.wait();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("{} events delivered", observation_count(1, 1))),
        "{err}"
    );
}

/// A spool left under another public key of the same host (a typo in the key) is said at
/// start: the right key's runs would never replay it.
#[test]
fn a_spool_under_another_key_is_mentioned() {
    let dir = tempfile::tempdir().unwrap();
    let url = refused_url();
    let mut c = cmd(&url, dir.path());
    c.env("LANGFUSE_PUBLIC_KEY", "pk-lf-typo")
        .args(["--shutdown-timeout", "1"]);
    let out = run_with_input(c, &omp_stream(1, 1));
    assert_eq!(out.status.code(), Some(1), "spooled");
    let mut c = cmd(&url, dir.path());
    c.args(["--shutdown-timeout", "1"]);
    let out = run_with_input(c, "");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("under another public key"), "{err}");
}

/// The lines of a `--status-file`, parsed.
fn status_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each status line is JSON"))
        .collect()
}

fn states(lines: &[Value]) -> Vec<&str> {
    lines.iter().map(|l| l["state"].as_str().unwrap()).collect()
}

#[test]
fn the_status_file_tells_delivered_spooled_and_rejected_keys() {
    // Delivered: started, ok, done with the counts.
    let mock = MockLangfuse::start(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("status.jsonl");
    let mut c = cmd(&mock.url(), &dir.path().join("state"));
    c.arg("--status-file").arg(&file);
    let out = run_with_input(c, &omp_stream(1, 2));
    assert_eq!(out.status.code(), Some(0));
    let lines = status_lines(&file);
    let s = states(&lines);
    assert_eq!(s.first(), Some(&"started"), "{lines:?}");
    assert!(s.contains(&"ok"), "{lines:?}");
    let last = lines.last().unwrap();
    assert_eq!(last["state"], "done");
    assert_eq!(last["delivered"], observation_count(1, 2) as u64);
    assert_eq!(last["spooled"], 0);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the status file is private");
    }

    // Server down: retrying, then spooled with the cause, from the variable.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("status.jsonl");
    let mut c = cmd(&refused_url(), &dir.path().join("state"));
    c.env("OMP_LANGFUSE_STATUS_FILE", &file).args([
        "--transport",
        "otlp",
        "--shutdown-timeout",
        "1",
    ]);
    let out = run_with_input(c, &omp_stream(1, 2));
    assert_eq!(out.status.code(), Some(1));
    let lines = status_lines(&file);
    let spooled = lines.iter().find(|l| l["state"] == "spooled");
    let spooled = spooled.unwrap_or_else(|| panic!("no spooled line: {lines:?}"));
    assert_eq!(spooled["cause"], "connection refused");
    assert_eq!(
        lines.last().unwrap()["spooled"],
        observation_count(1, 2) as u64
    );

    // Keys rejected: failed, in plain words, and never the key.
    let mock = MockLangfuse::start(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("status.jsonl");
    let mut c = cmd(&mock.url(), &dir.path().join("state"));
    c.env("LANGFUSE_SECRET_KEY", "sk-lf-very-secret")
        .arg("--status-file")
        .arg(&file);
    let out = run_with_input(c, &omp_stream(1, 2));
    assert_eq!(out.status.code(), Some(2));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("sk-lf-very-secret"), "{text}");
    let lines = status_lines(&file);
    let failed = lines.iter().find(|l| l["state"] == "failed");
    let failed = failed.unwrap_or_else(|| panic!("no failed line: {lines:?}"));
    assert_eq!(failed["cause"], "keys rejected (HTTP 401)");
    assert_eq!(lines.last().unwrap()["state"], "done");
}

/// The omp extension creates the status file, hands it to omp-langfuse open (`--status-file
/// /dev/fd/3`) and removes its name at once: every line lands in that file, none in a new
/// one at the old name.
#[cfg(unix)]
#[test]
fn a_status_file_handed_over_open_is_written_after_its_name_is_gone() {
    let mock = MockLangfuse::start(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let (file, kept) = (dir.path().join("status.jsonl"), dir.path().join("kept"));
    let c = cmd(&mock.url(), &dir.path().join("state"));
    // The shell opens the file as descriptor 3, keeps a second name for the test to read,
    // removes the first and becomes omp-langfuse.
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(r#"exec 3>>"$1" && ln "$1" "$2" && rm "$1" && shift 2 && exec "$@""#)
        .arg("sh")
        .args([&file, &kept])
        .arg(c.get_program())
        .args(c.get_args())
        .args(["--status-file", "/dev/fd/3"])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    let out = run_with_input(sh, &omp_stream(1, 2));
    assert_exit(&out, 0);
    assert!(!file.exists(), "no file at the removed name");
    let lines = status_lines(&kept);
    assert_eq!(states(&lines).first(), Some(&"started"), "{lines:?}");
    let last = lines.last().unwrap();
    assert_eq!(last["state"], "done");
    assert_eq!(last["delivered"], observation_count(1, 2) as u64);
}

/// A third request the server stores but answers only after the client gave up.
fn lost_answer_mock(observations_api: bool) -> MockLangfuse {
    let mock = MockLangfuse::start(MockConfig {
        observations_api,
        ..MockConfig::default()
    });
    mock.script([
        Scripted::Pass,
        Scripted::Pass,
        Scripted::StoreThenHang(Duration::from_secs(4)),
    ]);
    mock
}

/// 1,501 observations of one trace, 500 a request: the server holds 1,500 when asked.
const LOST_ANSWER_TURNS: usize = 500;

fn in_flight_records(state: &Path) -> usize {
    std::fs::read_dir(state)
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("inflight"))
        .flat_map(|p| std::fs::read_dir(p).into_iter().flatten().flatten())
        .count()
}

#[test]
fn a_lost_answer_is_asked_about_not_blindly_resent() {
    let mock = lost_answer_mock(true);
    let dir = tempfile::tempdir().unwrap();
    let mut c = cmd(&mock.url(), dir.path());
    // The third request is the one whose answer is lost: one request at a time.
    c.env("LANGFUSE_TIMEOUT", "1")
        .args(["--max-queue", "500", "--max-in-flight", "1"]);
    let input = omp_stream(1, LOST_ANSWER_TURNS);
    let out = run_with_input(c, &input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // The server had the whole batch: nothing sent twice, and the ledger knows.
    let n = observation_count(1, LOST_ANSWER_TURNS);
    assert_each_once(&mock, n);
    assert!(
        stderr.contains("500 found on the server after a lost answer (not sent again)"),
        "{stderr}"
    );
    let asked = mock
        .received()
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/api/public/v2/observations"))
        .count();
    assert_eq!(asked, 2, "one trace, asked in two pages of 1,000");
    assert_eq!(in_flight_records(dir.path()), 0, "answered: no record left");
    let out = run_with_input(cmd(&mock.url(), dir.path()), &input);
    assert_eq!(out.status.code(), Some(0));
    assert_each_once(&mock, n);
}

#[test]
fn without_the_read_api_a_lost_answer_is_resent_and_said_to_be_possibly_duplicated() {
    let mock = lost_answer_mock(false);
    let dir = tempfile::tempdir().unwrap();
    let mut c = cmd(&mock.url(), dir.path());
    // The third request is the one whose answer is lost: one request at a time.
    c.env("LANGFUSE_TIMEOUT", "1")
        .args(["--max-queue", "500", "--max-in-flight", "1"]);
    let out = run_with_input(c, &omp_stream(1, LOST_ANSWER_TURNS));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("500 sent again after a lost answer"),
        "{stderr}"
    );
    // What the summary warns of does happen against such a server.
    let twice = mock.spans().values().filter(|&&c| c == 2).count();
    assert_eq!(twice, 500);
}

#[test]
fn a_run_killed_mid_request_leaves_nothing_to_send_twice() {
    // The first request is stored but never answered; the run is killed meanwhile.
    let mock = MockLangfuse::start(MockConfig::default());
    mock.script([Scripted::StoreThenHang(Duration::from_secs(30))]);
    let dir = tempfile::tempdir().unwrap();
    let input = omp_stream(2, 3);
    let mut child = cmd(&mock.url(), dir.path()).spawn().unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
    }
    let t0 = Instant::now();
    while mock.spans().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(60), "nothing was sent");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        in_flight_records(dir.path()),
        1,
        "the request's record stays"
    );
    let stored = mock.spans().len();
    assert!(stored > 0);

    // The next run over the same input asks first, then sends only the rest.
    let out = run_with_input(cmd(&mock.url(), dir.path()), &input);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_each_once(&mock, observation_count(2, 3));
    assert!(
        stderr.contains(&format!("{stored} already delivered earlier")),
        "{stderr}"
    );
    assert_eq!(in_flight_records(dir.path()), 0, "settled: removed");
}
