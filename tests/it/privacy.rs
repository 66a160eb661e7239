//! Secrets never reach stdout or stderr, and payload limits hold, through the real binary:
//! token formats, a secret-named environment variable's value, a `--secrets-file` value and a
//! `--redact` pattern, planted in a prompt, thinking, tool arguments and a tool output.

use std::io::Write;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::support::cmd::{command, events};

/// Fake but format-valid secrets, assembled at run time so the repository holds none.
fn planted() -> Vec<(&'static str, String)> {
    vec![
        (
            "anthropic",
            format!("sk-ant-api03-{}-{}AA", "Q".repeat(40), "w".repeat(50)),
        ),
        (
            "github",
            format!("ghp_{}", "A1b2C3d4E5".repeat(3) + "f6G7H8"),
        ),
        ("aws", format!("AKIA{}", "IOSFODNN7EXAMPL0")),
        (
            "jwt",
            format!(
                "eyJhbGciOiJIUzI1NiJ9.{}.{}",
                "eyJzdWIiOiIxMjM0NTY3ODkwIn0", "dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk"
            ),
        ),
        (
            "url",
            "postgres://admin:hunter2hunter2@db.internal:5432/app".into(),
        ),
    ]
}

const ENV_NAME: &str = "ACME_DEPLOY_TOKEN";
const ENV_VALUE: &str = "zq8-env-value-7d1c9e44b2aa";
const FILE_VALUE: &str = "filesecret-93b1c0ffee77aa";
const USER_SECRET: &str = "INTERNAL-PROJECT-NIGHTJAR";

fn stream(secrets: &[(&str, String)], big_output: usize) -> String {
    let all: Vec<String> = secrets.iter().map(|(_, s)| s.clone()).collect();
    let joined = all.join(" ");
    let lines = [
        json!({"type":"session","version":3,"id":"priv-1","timestamp":"2026-08-23T09:14:02.117Z","cwd":"/w"}),
        json!({"type":"agent_start"}),
        json!({"type":"turn_start"}),
        json!({"type":"message_end","message":{"role":"user","content":[{"type":"text","text":format!("use {joined} and {USER_SECRET}")}],"timestamp":1787476443000i64}}),
        json!({"type":"message_end","message":{"role":"assistant","content":[
            {"type":"thinking","thinking":format!("the key is {}", all[0])},
            {"type":"toolCall","id":"t1","name":"bash","arguments":{"command":format!("curl -H 'Authorization: Bearer {}' x", all[1]),"api_key":"plain-looking-value-123"}}],
            "provider":"p","model":"m","usage":{"input":1,"output":1,"cacheRead":0,"cacheWrite":0,"totalTokens":2,"cost":{"input":0,"output":0,"cacheRead":0,"cacheWrite":0,"total":0}},
            "stopReason":"toolUse","timestamp":1787476444000i64,"duration":10}}),
        json!({"type":"tool_execution_start","toolCallId":"t1","toolName":"bash","args":{"command":"env"}}),
        json!({"type":"message_end","message":{"role":"toolResult","toolCallId":"t1","toolName":"bash",
            "content":[{"type":"text","text":format!("{ENV_NAME}={ENV_VALUE}\nOTHER={FILE_VALUE}\n{joined}\n{}", "x".repeat(big_output))}],
            "isError":false,"timestamp":1787476445000i64}}),
        json!({"type":"turn_end"}),
        json!({"type":"agent_end"}),
    ];
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn no_planted_secret_survives_in_stdout_or_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let secrets_file = dir.path().join("prod.env");
    std::fs::write(&secrets_file, format!("DB_PASSWORD={FILE_VALUE}\n")).unwrap();
    let secrets = planted();
    let out = dry_run_stdin(
        command()
            .args(["--dry-run", "--redact", "NIGHTJAR", "--secrets-file"])
            .arg(&secrets_file)
            .env(ENV_NAME, ENV_VALUE),
        &stream(&secrets, 0),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    for (kind, s) in &secrets {
        assert!(
            !stdout.contains(s.as_str()),
            "{kind} secret leaked to stdout"
        );
        assert!(
            !stderr.contains(s.as_str()),
            "{kind} secret leaked to stderr"
        );
    }
    for s in [
        ENV_VALUE,
        FILE_VALUE,
        "NIGHTJAR",
        "plain-looking-value-123",
        "hunter2hunter2",
    ] {
        assert!(!stdout.contains(s), "{s} leaked to stdout");
        assert!(!stderr.contains(s), "{s} leaked to stderr");
    }
    assert!(stdout.contains("[REDACTED:"));
    // The summary counts redactions (by kind, never values).
    assert!(stderr.contains("redacted"), "{stderr}");
    // Everything else is intact: the trace is still there with its tool.
    let evs = events(&out.stdout);
    assert!(evs.iter().any(|e| e["type"] == "tool-create"));
    assert!(evs.iter().any(|e| e["type"] == "agent-create"));
}

#[test]
fn a_huge_tool_output_stays_under_the_event_cap_and_is_kept() {
    const FIVE_MB: usize = 5 * 1024 * 1024;
    const EVENT_CAP: usize = 1_000_000;
    let mut child = command()
        .args(["--dry-run", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = stream(&planted(), FIVE_MB);
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let evs = events(&out.stdout);
    for e in &evs {
        let size = serde_json::to_vec(e).unwrap().len();
        assert!(size <= EVENT_CAP, "an event of {size} bytes");
    }
    let tool = evs
        .iter()
        .find(|e| e["type"] == "tool-create")
        .expect("tool kept");
    let output = match &tool["body"]["output"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    assert!(output.len() < 100_000, "tool output cut to its budget");
    assert!(
        output.contains("truncated"),
        "a marker says how much was cut"
    );
}

/// Secrets known only by their context, through the real binary: a prefix-less key assigned in
/// a `grep` line of the prompt and quoted back by the assistant, a Kubernetes `Secret` in a
/// tool output, a token in base64, a token glued to a word, and a value exported in one tool
/// call and printed by the next (another observation, later in the stream).
#[test]
fn secrets_known_by_their_context_are_redacted_wherever_they_recur() {
    let stripe = "9fK2mQ7xL4pR8tW1zB6nC3vD5hJ0sY2e".to_string();
    let exported = "Zt4Lq9Wm2Xc7Vb1Nr8Ks5Hd3Fg6Jp0Ae".to_string();
    let k8s_value = "c2VydmljZS1wYXNzd29yZC0xMjM0NTY3ODk=".to_string();
    let github = ["gh", "p_", &"Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7c"[..36]].concat();
    let github_b64 = base64(github.as_bytes());
    let glued = [
        "pp",
        "lx-",
        &"a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0u1V2w3X4"[..48],
    ]
    .concat();
    let lines = [
        json!({"type":"session","version":3,"id":"priv-ctx","timestamp":"2026-08-23T09:14:02.117Z","cwd":"/w"}),
        json!({"type":"agent_start"}),
        json!({"type":"turn_start"}),
        json!({"type":"message_end","message":{"role":"user","content":[{"type":"text","text":format!("grep found src/settings.py:3:STRIPE_KEY = \"{stripe}\" is that bad?")}],"timestamp":1787476443000i64}}),
        json!({"type":"message_end","message":{"role":"assistant","content":[
            {"type":"text","text":format!("Yes: {stripe} is a live key. The logs also say it took 3 seconds{glued}.")},
            {"type":"toolCall","id":"t1","name":"bash","arguments":{"command":format!("export SERVICE_TOKEN={exported} && kubectl get secret app -o yaml")}}],
            "provider":"p","model":"m","usage":{"input":1,"output":1,"cacheRead":0,"cacheWrite":0,"totalTokens":2,"cost":{"input":0,"output":0,"cacheRead":0,"cacheWrite":0,"total":0}},
            "stopReason":"toolUse","timestamp":1787476444000i64,"duration":10}}),
        json!({"type":"tool_execution_start","toolCallId":"t1","toolName":"bash","args":{"command":"kubectl"}}),
        json!({"type":"message_end","message":{"role":"toolResult","toolCallId":"t1","toolName":"bash",
            "content":[{"type":"text","text":format!("apiVersion: v1\ndata:\n  db-password: {k8s_value}\nkind: Secret\nmetadata:\n  name: app\n")}],
            "isError":false,"timestamp":1787476445000i64}}),
        json!({"type":"turn_end"}),
        json!({"type":"turn_start"}),
        json!({"type":"message_end","message":{"role":"assistant","content":[
            {"type":"toolCall","id":"t2","name":"bash","arguments":{"command":"printenv SERVICE_TOKEN; cat token.b64"}}],
            "provider":"p","model":"m","usage":{"input":1,"output":1,"cacheRead":0,"cacheWrite":0,"totalTokens":2,"cost":{"input":0,"output":0,"cacheRead":0,"cacheWrite":0,"total":0}},
            "stopReason":"toolUse","timestamp":1787476446000i64,"duration":10}}),
        json!({"type":"tool_execution_start","toolCallId":"t2","toolName":"bash","args":{"command":"printenv"}}),
        json!({"type":"message_end","message":{"role":"toolResult","toolCallId":"t2","toolName":"bash",
            "content":[{"type":"text","text":format!("{exported}\n{github_b64}\n")}],
            "isError":false,"timestamp":1787476447000i64}}),
        json!({"type":"turn_end"}),
        json!({"type":"agent_end"}),
    ];
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let out = dry_run_stdin(command().arg("--dry-run"), &input);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    for (what, s) in [
        ("prefix-less key", &stripe),
        ("exported value", &exported),
        ("kubernetes secret value", &k8s_value),
        ("base64 token", &github_b64),
        ("glued token", &glued),
    ] {
        assert!(!stdout.contains(s.as_str()), "{what} leaked to stdout");
        assert!(!stderr.contains(s.as_str()), "{what} leaked to stderr");
    }
    // The text around them is intact.
    assert!(stdout.contains("is a live key"));
    assert!(stdout.contains("took 3 seconds"));
    assert!(stdout.contains("kubectl get secret app -o yaml"));
}

/// Run `cmd` with `input` on its stdin; its output.
fn dry_run_stdin(cmd: &mut std::process::Command, input: &str) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
