//! `backfill` and `watch` against the loopback mock Langfuse: a generated sessions directory
//! (hundreds of sessions: finished, crashed, multi-prompt, with subagents) is delivered
//! exactly once and a second backfill sends nothing; `watch` delivers appended entries
//! within the flush interval + 1 s, waits for a line's newline, survives an atomic rewrite
//! without duplicates, closes idle sessions, and stops on SIGTERM without closing what omp
//! is still writing.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::cmd::sending;
use crate::support::mock_langfuse::{MockConfig, MockLangfuse, SpanView, spans_of};
use crate::support::wait_bounded;
use serde_json::{Value, json};

/// Sessions in the generated directory (a quarter of each kind).
const SESSIONS: usize = 240;
/// Project directories they are spread over.
const PROJECTS: usize = 5;
/// `--flush-ms` of the watch tests.
const FLUSH_MS: u64 = 300;
/// How late a watched write may arrive: the design target is the flush interval + 1 s (the
/// figure is printed), the assertion is generous so a loaded CI machine cannot miss it; a
/// watcher that sent only at exit would never meet it.
const LATENCY_BOUND: Duration = Duration::from_millis(FLUSH_MS + 8000);
/// Any single wait in these tests (generous: a loaded CI machine).
const WAIT_LIMIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Session files, written the way omp 18 writes them.
// ---------------------------------------------------------------------------------------

fn iso(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// omp's file name for a session started at `ms`.
fn file_name(ms: i64, id: &str) -> String {
    format!("{}_{id}.jsonl", iso(ms).replace([':', '.'], "-"))
}

/// Builds one session file's lines: title slot, header, entries chained by `parentId`.
struct Log {
    lines: Vec<String>,
    t: i64,
    n: u32,
    last: Option<String>,
}

impl Log {
    fn new(id: &str, t: i64, parent_session: Option<&Path>) -> Log {
        let mut log = Log {
            lines: Vec::new(),
            t,
            n: 0,
            last: None,
        };
        log.raw(json!({"type":"title","v":1,"title":"","updatedAt":iso(t),"pad":"  "}));
        let mut h = json!({"type":"session","version":3,"id":id,"timestamp":iso(t),"cwd":"/home/dev/project"});
        if let Some(p) = parent_session {
            h["parentSession"] = p.to_string_lossy().into();
        }
        log.raw(h);
        log.entry(json!({"type":"model_change","model":"fakellm/fake-model"}));
        log
    }

    fn raw(&mut self, v: Value) {
        self.lines.push(v.to_string());
    }

    fn entry(&mut self, mut v: Value) {
        self.n += 1;
        self.t += 100;
        let id = format!("{:08x}", self.n);
        v["id"] = id.clone().into();
        v["parentId"] = self.last.clone().map_or(Value::Null, Value::from);
        v["timestamp"] = iso(self.t).into();
        self.last = Some(id);
        self.raw(v);
    }

    fn message(&mut self, mut m: Value) {
        m["timestamp"] = (self.t + 100).into();
        self.entry(json!({"type":"message","message":m}));
    }

    fn user(&mut self, text: &str) {
        self.message(
            json!({"role":"user","content":[{"type":"text","text":text}],"attribution":"user"}),
        );
    }

    fn assistant(&mut self, text: &str, call: Option<(&str, &str, Value)>) {
        let mut content = vec![json!({"type":"text","text":text})];
        if let Some((id, name, args)) = &call {
            content.push(json!({"type":"toolCall","id":id,"name":name,"arguments":args}));
        }
        self.message(json!({"role":"assistant","content":content,"provider":"fakellm",
            "model":"fake-model","stopReason": if call.is_some() {"toolUse"} else {"stop"},
            "usage":{"input":100,"output":10,"cacheRead":0,"cacheWrite":0,"totalTokens":110,
                     "cost":{"input":0.0003,"output":0.00015,"cacheRead":0,"cacheWrite":0,"total":0.00045}},
            "duration":80,"ttft":20}));
    }

    fn tool_start(&mut self, id: &str, name: &str) {
        let at = iso(self.t + 50);
        self.entry(json!({"type":"custom","customType":"tool_execution_start",
            "data":{"toolCallId":id,"toolName":name,"startedAt":at}}));
    }

    fn tool_result(&mut self, id: &str, name: &str, text: &str, is_error: bool, details: Value) {
        self.message(json!({"role":"toolResult","toolCallId":id,"toolName":name,
            "content":[{"type":"text","text":text}],"details":details,"isError":is_error}));
    }

    fn exit(&mut self, pending: Value) {
        let at = iso(self.t + 10);
        self.entry(json!({"type":"custom","customType":"session_exit",
            "data":{"reason":"dispose","kind":"normal","recordedAt":at,"pendingToolCalls":pending}}));
    }

    fn text(&self) -> String {
        self.lines.iter().map(|l| format!("{l}\n")).collect()
    }
}

/// The kinds of generated sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One prompt, a tool call, an answer, `session_exit`.
    Finished,
    /// Killed while its tool ran: no result, no `session_exit`.
    Crashed,
    /// Three prompts.
    MultiPrompt,
    /// A `task` call whose subagent session sits beside it.
    WithSubagent,
}

const KINDS: [Kind; 4] = [
    Kind::Finished,
    Kind::Crashed,
    Kind::MultiPrompt,
    Kind::WithSubagent,
];

struct Generated {
    /// Session id → (kind, start time).
    sessions: HashMap<String, (Kind, i64)>,
}

/// Write `n` sessions under `root/-proj-K/`, in shuffled creation order.
fn generate(root: &Path, n: usize) -> Generated {
    let base = 1_780_000_000_000i64;
    let mut sessions = HashMap::new();
    // A fixed permutation, so creation order (mtimes) differs from start-time order.
    let order: Vec<usize> = (0..n).map(|i| (i * 7919) % n).collect();
    for i in order {
        let kind = KINDS[i % KINDS.len()];
        let id = format!("01900000-0000-7000-8000-{i:012}");
        let t = base + i as i64 * 60_000;
        let dir = root.join(format!("-proj-{}", i % PROJECTS));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file_name(t, &id));
        let mut log = Log::new(&id, t, None);
        match kind {
            Kind::Finished => {
                log.user(&format!("list the files ({i})"));
                log.tool_start("call-1", "bash");
                log.assistant(
                    "Listing.",
                    Some(("call-1", "bash", json!({"command":"ls"}))),
                );
                log.tool_result(
                    "call-1",
                    "bash",
                    "a\nb",
                    i % 8 == 0,
                    json!({"exitCode": i32::from(i % 8 == 0)}),
                );
                log.assistant("Two files.", None);
                log.exit(json!([]));
            }
            Kind::Crashed => {
                log.user(&format!("wait ({i})"));
                log.tool_start("call-1", "bash");
                log.assistant(
                    "Waiting.",
                    Some(("call-1", "bash", json!({"command":"sleep 30"}))),
                );
            }
            Kind::MultiPrompt => {
                for p in 0..3 {
                    log.user(&format!("prompt {p} ({i})"));
                    log.assistant(&format!("answer {p}"), None);
                }
                log.exit(json!([]));
            }
            Kind::WithSubagent => {
                let agent = format!("Agent{i}");
                let task = format!("Say hello ({i}).");
                log.user(&format!("delegate ({i})"));
                log.tool_start("call-1", "task");
                log.assistant(
                    "Delegating.",
                    Some(("call-1", "task", json!({"agent":"task","task":task}))),
                );
                let sub_dir = path.with_extension("");
                fs::create_dir_all(&sub_dir).unwrap();
                let sub_path = sub_dir.join(format!("{agent}.jsonl"));
                let mut sub = Log::new(&format!("sub-{id}"), t + 500, Some(&path));
                sub.entry(json!({"type":"session_init","systemPrompt":"…",
                    "task":format!("Complete assignment thoroughly:\n\n{task}"),"tools":["yield"],"agent":"task"}));
                sub.message(json!({"role":"user","content":[{"type":"text","text":task}],"attribution":"agent"}));
                sub.tool_start("y-1", "yield");
                sub.assistant(
                    "Hello.",
                    Some(("y-1", "yield", json!({"data":{"greeting":"hello"}}))),
                );
                sub.exit(json!([{"toolCallId":"y-1","toolName":"yield"}]));
                fs::write(&sub_path, sub.text()).unwrap();
                // The task call returns once its subagent is done.
                log.t = sub.t + 100;
                log.tool_result(
                    "call-1",
                    "task",
                    "<task-result/>",
                    false,
                    json!({"results":[{"index":0,"id":agent,"agent":"task","exitCode":0}]}),
                );
                log.assistant("It said hello.", None);
                log.exit(json!([]));
            }
        }
        fs::write(&path, log.text()).unwrap();
        sessions.insert(id, (kind, t));
    }
    Generated { sessions }
}

/// Observations per kind (the subagent's own counted with its parent).
fn expected_observations(kind: Kind) -> usize {
    match kind {
        // root, 2 turns, 2 generations, 1 tool
        Kind::Finished => 6,
        // root, 1 turn, 1 generation, 1 tool
        Kind::Crashed => 4,
        // root, 3 turns, 3 generations
        Kind::MultiPrompt => 7,
        // parent as Finished + subagent root, turn, generation, yield
        Kind::WithSubagent => 6 + 4,
    }
}

// ---------------------------------------------------------------------------------------
// Running the binary.
// ---------------------------------------------------------------------------------------

fn cmd(url: &str, state: &Path) -> Command {
    let mut c = sending(url, state);
    c.env("LANGFUSE_TIMEOUT", "5")
        .args(["--transport", "otlp"])
        .stdin(Stdio::null());
    c
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// SIGTERM to a child this test started.
fn terminate(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM failed");
}

fn assert_once(mock: &MockLangfuse) -> HashMap<String, usize> {
    let spans = mock.spans();
    assert!(
        spans.values().all(|&n| n == 1),
        "duplicates: {:?}",
        spans.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    assert!(mock.invalid().is_empty(), "{:?}", mock.invalid());
    spans
}

// ---------------------------------------------------------------------------------------
// backfill
// ---------------------------------------------------------------------------------------

#[test]
fn backfill_delivers_a_generated_directory_exactly_once_then_nothing() {
    let home = tempfile::tempdir().unwrap();
    let sessions_dir = home.path().join("sessions");
    let generated = generate(&sessions_dir, SESSIONS);
    let state = tempfile::tempdir().unwrap();
    let mock = MockLangfuse::start(MockConfig::default());

    // What a dry run prints is what must arrive, each span once.
    let dry = Command::new(env!("CARGO_BIN_EXE_omp-langfuse"))
        .args(["--dry-run=otlp", "-q", "backfill"])
        .arg(&sessions_dir)
        .output()
        .unwrap();
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    let bodies: Vec<Value> = String::from_utf8_lossy(&dry.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let planned = spans_of(&bodies);

    let t0 = Instant::now();
    let mut c = cmd(&mock.url(), state.path());
    // The default sessions directory, found the way omp finds it.
    c.env("PI_CODING_AGENT_DIR", home.path()).arg("backfill");
    let child = c.spawn().unwrap();
    let fds = FdWatch::start(child.id());
    let out = wait_bounded(child, Duration::from_secs(120));
    let took = t0.elapsed();
    let most_fds = fds.stop();
    // One session at a time: the open files do not grow with the sessions read.
    assert!(
        most_fds <= MAX_OPEN_FILES,
        "{most_fds} files open at once while reading {SESSIONS} sessions"
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let files = SESSIONS + SESSIONS / KINDS.len();
    assert!(
        err.contains(&format!("backfill: {files} session files to read")),
        "{err}"
    );
    // Not a terminal: plain progress lines, the last one complete.
    assert!(
        err.contains(&format!("backfill: {files}/{files} sessions")),
        "{err}"
    );

    let spans = assert_once(&mock);
    let accepted = mock.accepted();
    let expected: usize = generated
        .sessions
        .values()
        .map(|(k, _)| expected_observations(*k))
        .sum();
    assert_eq!(
        planned.len(),
        expected,
        "the dry run plans every observation"
    );
    assert_eq!(spans.len(), expected, "every observation arrives");
    let planned_ids: HashSet<&str> = planned.iter().map(|s| s.span_id.as_str()).collect();
    assert!(
        accepted
            .iter()
            .all(|s| planned_ids.contains(s.span_id.as_str()))
    );
    check_structure(&accepted, &generated);
    eprintln!(
        "backfill: {files} files, {expected} observations in {:.2} s ({:.0} sessions/s, {:.0} observations/s), at most {most_fds} files open",
        took.as_secs_f64(),
        files as f64 / took.as_secs_f64(),
        expected as f64 / took.as_secs_f64()
    );

    // Again: nothing is sent, and no session file needs opening.
    let posts = mock.posts();
    let mut c = cmd(&mock.url(), state.path());
    c.arg("backfill").arg(&sessions_dir);
    let out = wait_bounded(c.spawn().unwrap(), Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(mock.posts(), posts, "a second backfill sends nothing");
    assert!(
        stderr(&out).contains(&format!(
            "0 session files to read (0 B), {files} files already delivered"
        )),
        "{}",
        stderr(&out)
    );

    // A session that grows again (omp --resume appends) is read again: only its new part
    // is sent.
    let (id, _) = generated
        .sessions
        .iter()
        .find(|(_, (k, _))| *k == Kind::Crashed)
        .unwrap();
    let path = find_file(&sessions_dir, id);
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    writeln!(f, "{}", json!({"type":"label","id":"ffffffff","parentId":null,"timestamp":"2026-06-01T00:00:00.000Z","targetId":"00000001","label":"x"})).unwrap();
    drop(f);
    let mut c = cmd(&mock.url(), state.path());
    c.arg("backfill").arg(&sessions_dir);
    let out = wait_bounded(c.spawn().unwrap(), Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 session file to read"),
        "{}",
        stderr(&out)
    );
    assert_eq!(mock.posts(), posts, "nothing new in it to send");
    assert_once(&mock);
}

/// Open files allowed at once during a backfill of `SESSIONS` sessions (stdio, the sockets,
/// the spool and ledger, one session file, a few of the runtime's): far below one per session.
const MAX_OPEN_FILES: usize = 24;

/// Samples how many files a process has open (Linux `/proc`; elsewhere it reports 0).
struct FdWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl FdWatch {
    fn start(pid: u32) -> FdWatch {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let dir = format!("/proc/{pid}/fd");
            let mut most = 0;
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(entries) = fs::read_dir(&dir) {
                    most = most.max(entries.count());
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            most
        });
        FdWatch { stop, thread }
    }

    fn stop(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

fn find_file(root: &Path, id: &str) -> PathBuf {
    for dir in fs::read_dir(root).unwrap().flatten() {
        for f in fs::read_dir(dir.path()).unwrap().flatten() {
            if f.file_name()
                .to_string_lossy()
                .ends_with(&format!("_{id}.jsonl"))
            {
                return f.path();
            }
        }
    }
    panic!("no file for {id}");
}

/// Traces, nesting, levels and order of a delivered generated directory.
fn check_structure(spans: &[SpanView], generated: &Generated) {
    let by_id: HashMap<&str, &SpanView> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    // One trace per top-level session, all its spans in the omp session's Langfuse session.
    let mut traces: HashMap<&str, HashSet<&str>> = HashMap::new();
    for s in spans {
        traces
            .entry(s.session())
            .or_default()
            .insert(s.trace_id.as_str());
    }
    assert_eq!(traces.len(), generated.sessions.len());
    assert!(
        traces.values().all(|t| t.len() == 1),
        "one trace per session"
    );
    // No orphans: every parent was delivered, in the same trace, and spans it in time.
    for s in spans {
        if let Some(p) = &s.parent_id {
            let parent = by_id
                .get(p.as_str())
                .unwrap_or_else(|| panic!("orphan {}", s.name));
            assert_eq!(parent.trace_id, s.trace_id);
            assert!(
                s.within(parent),
                "{} lies outside its parent {}",
                s.name,
                parent.name
            );
        }
    }
    for (id, (kind, _)) in &generated.sessions {
        let mine: Vec<&SpanView> = spans.iter().filter(|s| s.session() == id).collect();
        let roots: Vec<&&SpanView> = mine.iter().filter(|s| s.kind() == "agent").collect();
        let top = roots
            .iter()
            .find(|s| s.parent_id.is_none())
            .expect("a root");
        match kind {
            Kind::Crashed => {
                assert_eq!(
                    top.level(),
                    "WARNING",
                    "a crashed session is closed with WARNING"
                );
                let tool = mine.iter().find(|s| s.kind() == "tool").unwrap();
                assert_eq!(tool.level(), "WARNING");
            }
            Kind::WithSubagent => {
                // The subagent's root hangs under the task tool call, in the same trace.
                let sub = roots
                    .iter()
                    .find(|s| s.parent_id.is_some())
                    .expect("a nested subagent root");
                let task = by_id[sub.parent_id.as_deref().unwrap()];
                assert_eq!((task.kind(), task.name.as_str()), ("tool", "task"));
                assert_eq!(
                    sub.attr("langfuse.observation.metadata.linked_by"),
                    Some("task result")
                );
                assert_eq!(top.level(), "DEFAULT");
                let yield_tool = mine.iter().find(|s| s.name == "yield").unwrap();
                assert_eq!(
                    yield_tool.level(),
                    "DEFAULT",
                    "yield is how a subagent ends"
                );
            }
            Kind::Finished | Kind::MultiPrompt => assert_eq!(top.level(), "DEFAULT"),
        }
    }
    // Oldest session first: traces first appear in the order their sessions started.
    let mut first_seen: Vec<&str> = Vec::new();
    for s in spans {
        if !first_seen.contains(&s.session()) {
            first_seen.push(s.session());
        }
    }
    let started: Vec<i64> = first_seen
        .iter()
        .map(|id| generated.sessions[*id].1)
        .collect();
    assert!(started.is_sorted(), "sessions were not read oldest first");
}

#[test]
fn backfill_narrows_by_date_and_session() {
    let home = tempfile::tempdir().unwrap();
    let generated = generate(home.path(), 8);
    let traces = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_omp-langfuse"))
            .args(["--dry-run=otlp", "-q", "backfill"])
            .args(extra)
            .arg(home.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let bodies: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        spans_of(&bodies)
            .iter()
            .map(|s| s.session().to_string())
            .collect::<HashSet<String>>()
    };
    assert_eq!(traces(&[]).len(), 8);
    let mut starts: Vec<i64> = generated.sessions.values().map(|(_, t)| *t).collect();
    starts.sort();
    let since = iso(starts[5]);
    assert_eq!(traces(&["--since", &since]).len(), 3);
    let one = "01900000-0000-7000-8000-000000000003";
    // A subagent session comes along with its session.
    assert_eq!(
        traces(&["--session", one]),
        HashSet::from([one.to_string()])
    );
    assert_eq!(
        traces(&["--session", "01900000-0000-7000-8000-00000000000"]).len(),
        8
    );
}

// ---------------------------------------------------------------------------------------
// watch
// ---------------------------------------------------------------------------------------

/// A running `watch`. A test that fails before stopping it kills it: no watcher outlives
/// its test.
struct Watching(Option<Child>);

impl Watching {
    /// SIGTERM, then wait (bounded) for it to flush and exit.
    fn stop(mut self) -> Output {
        let child = self.0.take().expect("running");
        terminate(&child);
        wait_bounded(child, Duration::from_secs(15))
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_watch(mock: &MockLangfuse, state: &Path, dir: &Path, idle_close: &str) -> Watching {
    let mut c = cmd(&mock.url(), state);
    c.args(["watch", "--idle-close", idle_close, "--flush-ms"])
        .arg(FLUSH_MS.to_string())
        .arg(dir);
    Watching(Some(c.spawn().unwrap()))
}

fn append(path: &Path, text: &str) {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.flush().unwrap();
}

/// Wait until `f` holds of the accepted spans; the time it took.
fn arrives(mock: &MockLangfuse, what: &str, f: impl Fn(&[SpanView]) -> bool) -> Duration {
    let t0 = Instant::now();
    assert!(
        mock.wait_for(WAIT_LIMIT, |m| f(&m.accepted())),
        "{what}: did not arrive within {WAIT_LIMIT:?}"
    );
    t0.elapsed()
}

fn count(spans: &[SpanView], kind: &str) -> usize {
    spans.iter().filter(|s| s.kind() == kind).count()
}

#[test]
fn watch_follows_appends_partial_lines_and_atomic_rewrites() {
    let mock = MockLangfuse::start(MockConfig::default());
    let state = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("-project");
    fs::create_dir(&project).unwrap();
    let watch = start_watch(&mock, state.path(), root.path(), "60");
    std::thread::sleep(Duration::from_millis(300));

    let id = "01900000-0000-7000-8000-0000000000aa";
    let t = 1_790_000_000_000;
    let path = project.join(file_name(t, id));
    let mut log = Log::new(id, t, None);
    log.user("first prompt");
    log.assistant("first answer", None);
    // omp writes a new session's first lines at once.
    fs::write(&path, log.text()).unwrap();
    let new_file = arrives(&mock, "the first generation", |s| {
        count(s, "generation") == 1
    });

    // A line still being written is not read until its newline is there.
    log.user("second prompt");
    log.assistant("second answer", None);
    let before = log.lines.len() - 2;
    let user_line = format!("{}\n", log.lines[before]);
    let answer = &log.lines[before + 1];
    let (head, tail) = answer.split_at(answer.len() / 2);
    append(&path, &user_line);
    append(&path, head);
    std::thread::sleep(Duration::from_millis(FLUSH_MS + 700));
    assert_eq!(
        count(&mock.accepted(), "generation"),
        1,
        "half a line was read"
    );
    append(&path, &format!("{tail}\n"));
    let appended = arrives(&mock, "the second generation", |s| {
        count(s, "generation") == 2
    });

    // An atomic rewrite (stage + rename: a new inode) with the same entries and one more:
    // read again, nothing sent twice.
    log.entry(json!({"type":"thinking_level_change","thinkingLevel":"high"}));
    let staged = project.join(".rewrite.tmp");
    fs::write(&staged, log.text()).unwrap();
    fs::rename(&staged, &path).unwrap();
    std::thread::sleep(Duration::from_millis(FLUSH_MS + 700));
    assert_once(&mock);

    // The session ends: everything, the root last, each once.
    log.user("third prompt");
    log.assistant("third answer", None);
    log.exit(json!([]));
    let tail_lines: String = log.lines[log.lines.len() - 3..]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    append(&path, &tail_lines);
    arrives(&mock, "the root", |s| count(s, "agent") == 1);
    let spans = assert_once(&mock);
    // root, 3 turns, 3 generations
    assert_eq!(spans.len(), 7, "{spans:?}");
    let root = mock
        .accepted()
        .into_iter()
        .find(|s| s.kind() == "agent")
        .unwrap();
    assert_eq!(root.level(), "DEFAULT");

    let out = watch.stop();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(new_file <= LATENCY_BOUND, "a new file took {new_file:?}");
    assert!(
        appended <= LATENCY_BOUND,
        "an appended entry took {appended:?}"
    );
    eprintln!(
        "watch latency: new file {new_file:?}, appended entry {appended:?} (flush {FLUSH_MS} ms)"
    );
}

#[test]
fn watch_closes_idle_sessions_and_a_restart_goes_on_without_duplicates() {
    let mock = MockLangfuse::start(MockConfig::default());
    let state = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("-project");
    fs::create_dir(&project).unwrap();

    // A session still being written when watch is stopped is not closed by the stop.
    let id = "01900000-0000-7000-8000-0000000000bb";
    let t = 1_790_000_100_000;
    let path = project.join(file_name(t, id));
    let mut log = Log::new(id, t, None);
    log.user("first prompt");
    log.assistant("first answer", None);
    fs::write(&path, log.text()).unwrap();
    let watch = start_watch(&mock, state.path(), root.path(), "60");
    arrives(&mock, "the first generation", |s| {
        count(s, "generation") == 1
    });
    let out = watch.stop();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("picked up by the next watch"),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&mock.accepted(), "agent"), 0, "closed by the stop");

    // The next watch reads it again and sends only what is new, and closes the session for
    // idleness (no session_exit). Nothing was in flight, so it is not marked as crashed.
    let watch = start_watch(&mock, state.path(), root.path(), "1");
    log.user("second prompt");
    log.assistant("second answer", None);
    let tail_lines: String = log.lines[log.lines.len() - 2..]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    append(&path, &tail_lines);
    arrives(&mock, "the idle-closed root", |s| count(s, "agent") == 1);
    let spans = assert_once(&mock);
    assert_eq!(spans.len(), 5, "root, 2 turns, 2 generations");
    let root_span = mock
        .accepted()
        .into_iter()
        .find(|s| s.kind() == "agent")
        .unwrap();
    assert_eq!(root_span.level(), "DEFAULT");
    let out = watch.stop();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn watch_nests_a_subagent_under_the_task_call_that_spawned_it() {
    let mock = MockLangfuse::start(MockConfig::default());
    let state = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("-project");
    fs::create_dir(&project).unwrap();
    let watch = start_watch(&mock, state.path(), root.path(), "60");

    // The parent asks for a subagent; omp creates its artifacts directory at once.
    let id = "01900000-0000-7000-8000-0000000000cc";
    let t = 1_790_000_200_000;
    let path = project.join(file_name(t, id));
    fs::create_dir(path.with_extension("")).unwrap();
    let mut log = Log::new(id, t, None);
    log.user("delegate");
    log.tool_start("call-1", "task");
    let task = "Say hello.";
    log.assistant(
        "Delegating.",
        Some(("call-1", "task", json!({"agent":"task","task":task}))),
    );
    fs::write(&path, log.text()).unwrap();
    arrives(&mock, "the parent's first generation", |s| {
        count(s, "generation") == 1
    });

    // The subagent runs to its end while the task call is still open (its result, naming
    // the agent, comes after): it is matched by its assignment.
    let mut sub = Log::new("sub-cc", t + 500, Some(&path));
    sub.entry(json!({"type":"session_init","systemPrompt":"…",
        "task":format!("Complete assignment thoroughly:\n\n{task}"),"tools":["yield"],"agent":"task"}));
    sub.message(
        json!({"role":"user","content":[{"type":"text","text":task}],"attribution":"agent"}),
    );
    sub.tool_start("y-1", "yield");
    sub.assistant("Hello.", Some(("y-1", "yield", json!({"data":"hello"}))));
    sub.exit(json!([{"toolCallId":"y-1","toolName":"yield"}]));
    fs::write(path.with_extension("").join("Scout.jsonl"), sub.text()).unwrap();
    arrives(&mock, "the subagent's root", |s| count(s, "agent") == 1);

    let before = log.lines.len();
    log.tool_result(
        "call-1",
        "task",
        "<task-result/>",
        false,
        json!({"results":[{"id":"Scout"}]}),
    );
    log.assistant("It said hello.", None);
    log.exit(json!([]));
    let rest: String = log.lines[before..]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    append(&path, &rest);
    arrives(&mock, "the parent's root", |s| count(s, "agent") == 2);
    assert_once(&mock);
    let spans = mock.accepted();
    let by_id: HashMap<&str, &SpanView> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let sub_root = spans
        .iter()
        .find(|s| s.name == "subagent Scout")
        .expect("the subagent's root");
    let task_call = by_id[sub_root.parent_id.as_deref().expect("nested")];
    assert_eq!(
        (task_call.kind(), task_call.name.as_str()),
        ("tool", "task")
    );
    assert_eq!(
        sub_root.attr("langfuse.observation.metadata.linked_by"),
        Some("task assignment")
    );
    let traces: HashSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(traces.len(), 1, "one trace for the parent and its subagent");
    assert!(spans.iter().all(|s| s.session() == id));
    let out = watch.stop();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn watch_keeps_a_session_open_while_its_subagent_works() {
    let mock = MockLangfuse::start(MockConfig::default());
    let state = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("-project");
    fs::create_dir(&project).unwrap();
    // Idle after 1 s: the parent writes nothing for longer while its subagent runs.
    let watch = start_watch(&mock, state.path(), root.path(), "1");

    let id = "01900000-0000-7000-8000-0000000000dd";
    let t = 1_790_000_300_000;
    let path = project.join(file_name(t, id));
    fs::create_dir(path.with_extension("")).unwrap();
    let mut log = Log::new(id, t, None);
    log.user("delegate");
    log.tool_start("call-1", "task");
    log.assistant(
        "Delegating.",
        Some(("call-1", "task", json!({"agent":"task","task":"Work."}))),
    );
    fs::write(&path, log.text()).unwrap();
    let sub_path = path.with_extension("").join("Worker.jsonl");
    let mut sub = Log::new("sub-dd", t + 500, Some(&path));
    sub.message(
        json!({"role":"user","content":[{"type":"text","text":"Work."}],"attribution":"agent"}),
    );
    fs::write(&sub_path, sub.text()).unwrap();
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(250));
        append(
            &sub_path,
            &format!(
                "{}\n",
                json!({"type":"label","id":"x","parentId":null,"timestamp":"2026-06-01T00:00:00.000Z","targetId":"y"})
            ),
        );
    }
    let roots = |m: &MockLangfuse| {
        m.accepted()
            .into_iter()
            .filter(|s| s.kind() == "agent")
            .count()
    };
    assert_eq!(
        roots(&mock),
        0,
        "closed for idleness while its subagent was writing"
    );
    // The subagent stops writing: both are closed for idleness in time.
    assert!(
        mock.wait_for(WAIT_LIMIT, |m| roots(m) == 2),
        "both roots after the subagent went quiet"
    );
    assert_once(&mock);
    let out = watch.stop();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_sampled_out_session_is_sent_by_a_later_backfill_at_a_higher_rate() {
    let home = tempfile::tempdir().unwrap();
    let generated = generate(home.path(), 24);
    let state = tempfile::tempdir().unwrap();
    let mock = MockLangfuse::start(MockConfig::default());
    for rate in ["0.5", "1"] {
        let mut c = cmd(&mock.url(), state.path());
        c.env("LANGFUSE_SAMPLE_RATE", rate)
            .arg("backfill")
            .arg(home.path());
        let out = wait_bounded(c.spawn().unwrap(), Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        if rate == "0.5" {
            let sent: HashSet<String> = mock
                .accepted()
                .iter()
                .map(|s| s.session().to_string())
                .collect();
            assert!(
                !sent.is_empty() && sent.len() < generated.sessions.len(),
                "half of them: {}",
                sent.len()
            );
        }
    }
    let sessions: HashSet<String> = mock
        .accepted()
        .iter()
        .map(|s| s.session().to_string())
        .collect();
    assert_eq!(
        sessions.len(),
        generated.sessions.len(),
        "the rest came later"
    );
    assert_once(&mock);
}

/// Every span of OTLP dry-run output, as JSON text, sorted (batching may differ).
fn raw_spans(stdout: &str) -> Vec<String> {
    let mut out = Vec::new();
    for body in stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        for rs in body["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for sp in ss["spans"].as_array().into_iter().flatten() {
                    out.push(sp.to_string());
                }
            }
        }
    }
    out.sort();
    out
}

fn warnings(stderr: &str) -> Vec<String> {
    let mut w: Vec<String> = stderr
        .lines()
        .filter(|l| l.starts_with("omp-langfuse: warning:"))
        .map(str::to_string)
        .collect();
    w.sort();
    w
}

/// One front half: a session file with a bad line and an unknown entry, watched, gives the
/// same warnings and the same observations as the same file read with `--dry-run FILE`.
#[test]
fn watch_and_pipe_read_a_file_the_same_way() {
    let fixture = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/log-goal-retry-compaction.jsonl"),
    )
    .unwrap();
    let mut lines: Vec<&str> = fixture.lines().collect();
    lines.insert(4, "this line is not JSON");
    lines.insert(6, r#"{"type":"frobnicate"}"#);
    let text = lines.join("\n") + "\n";
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("-home-mara-src-tidepool");
    fs::create_dir(&project).unwrap();
    let path = project.join(file_name(
        1_789_568_400_096,
        "0199b02a-4c5d-7e6f-8091-a2b3c4d5e606",
    ));
    fs::write(&path, &text).unwrap();

    let piped = Command::new(env!("CARGO_BIN_EXE_omp-langfuse"))
        .env_clear()
        .args(["--dry-run=otlp"])
        .arg(&path)
        .output()
        .unwrap();
    let piped_err = String::from_utf8_lossy(&piped.stderr).to_string();
    let expected = raw_spans(&String::from_utf8_lossy(&piped.stdout));
    assert!(expected.len() > 5, "{piped_err}");
    // The bad line is warned about; the unknown type only named in the summary.
    assert_eq!(warnings(&piped_err).len(), 1, "{piped_err}");
    assert!(
        piped_err.contains("does not know: frobnicate (1)"),
        "{piped_err}"
    );

    let state = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_omp-langfuse"))
        .env_clear()
        .args(["--dry-run=otlp", "--state-dir"])
        .arg(state.path())
        .args(["watch", "--flush-ms", "100ms"])
        .arg(root.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Collect stdout as it comes; stop the watcher once every span is there.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut got = String::new();
    let until = Instant::now() + WAIT_LIMIT;
    while raw_spans(&got).len() < expected.len() && Instant::now() < until {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            got.push_str(&line);
            got.push('\n');
        }
    }
    terminate(&child);
    let out = wait_bounded(child, Duration::from_secs(15));
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        got.push_str(&line);
        got.push('\n');
    }
    let watch_err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(raw_spans(&got), expected, "{watch_err}");
    assert_eq!(warnings(&watch_err), warnings(&piped_err), "{watch_err}");
    assert!(
        watch_err.contains("does not know: frobnicate (1)"),
        "{watch_err}"
    );
}

#[test]
fn watch_shows_its_catch_up_and_an_unmatched_session_id_exits_1() {
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("-p");
    fs::create_dir(&project).unwrap();
    let id = "01900000-0000-7000-8000-0000000000bb";
    let mut log = Log::new(id, 1_790_000_000_000, None);
    log.user("hi");
    log.assistant("hello", None);
    log.exit(json!([]));
    fs::write(project.join(file_name(1_790_000_000_000, id)), log.text()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_omp-langfuse"))
        .env_clear()
        .args(["--dry-run", "backfill", "--session", "deadbeef"])
        .arg(root.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no session file under the given paths matches \"deadbeef\""),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    // The backlog read when watch starts is shown like a backfill's progress.
    let state = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_omp-langfuse"))
        .env_clear()
        .args(["--dry-run", "--state-dir"])
        .arg(state.path())
        .args(["watch", "--flush-ms", "100ms"])
        .arg(root.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The ended session is printed once read: the catch-up is over by then.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.contains("batch"), "{first}");
    terminate(&child);
    let out = wait_bounded(child, Duration::from_secs(15));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("catch-up: 1/1 sessions"), "{err}");
}

/// Two backfills of one directory on one state directory, at the same time: every session
/// is delivered by one of them, each observation once (the other says it left it).
#[test]
fn two_backfills_at_once_send_nothing_twice() {
    let home = tempfile::tempdir().unwrap();
    let sessions_dir = home.path().join("sessions");
    let generated = generate(&sessions_dir, 60);
    let state = tempfile::tempdir().unwrap();
    let mock = MockLangfuse::start(MockConfig::default());
    let start = || {
        let mut c = cmd(&mock.url(), state.path());
        c.arg("backfill").arg(&sessions_dir);
        c.spawn().unwrap()
    };
    let (a, b) = (start(), start());
    let (a, b) = (
        wait_bounded(a, Duration::from_secs(120)),
        wait_bounded(b, Duration::from_secs(120)),
    );
    for out in [&a, &b] {
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(out));
    }
    let spans = mock.spans();
    assert!(spans.values().all(|n| *n == 1), "a span arrived twice");
    // Whatever one left to the other, a third backfill completes and sends nothing twice.
    let out = wait_bounded(start(), Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let spans = mock.spans();
    assert!(spans.values().all(|n| *n == 1), "a span arrived twice");
    let expected: usize = generated
        .sessions
        .values()
        .map(|(k, _)| expected_observations(*k))
        .sum();
    assert_eq!(spans.len(), expected, "every observation arrived");
}

/// Five backfills killed with SIGKILL while their requests are on their way (the server
/// stores each batch and answers late), then one to the end: every observation arrives
/// once. The in-flight records and the server's read API settle what each kill left open.
#[test]
fn backfills_killed_mid_request_five_times_send_nothing_twice() {
    let home = tempfile::tempdir().unwrap();
    let sessions_dir = home.path().join("sessions");
    let generated = generate(&sessions_dir, 40);
    let state = tempfile::tempdir().unwrap();
    // Each request is held 300 ms before it is stored and answered: kills land mid-request.
    let mock = MockLangfuse::start(MockConfig {
        delay: Duration::from_millis(300),
        ..MockConfig::default()
    });
    let start = || {
        let mut c = cmd(&mock.url(), state.path());
        c.args(["--max-queue", "40", "backfill"]).arg(&sessions_dir);
        c.spawn().unwrap()
    };
    let posts = |m: &MockLangfuse| m.received().iter().filter(|r| r.method == "POST").count();
    let mut killed_mid_request = 0;
    for _ in 0..5 {
        let before = posts(&mock);
        let mut child = start();
        // Killed once a request after its first has reached the server, unanswered: the
        // first answered, the server idle, then busy with the next one.
        let t0 = Instant::now();
        let wait_for = |done: &dyn Fn() -> bool, child: &mut std::process::Child| {
            while !done() && child.try_wait().unwrap().is_none() {
                assert!(t0.elapsed() < Duration::from_secs(120), "no request came");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        wait_for(&|| posts(&mock) > before, &mut child);
        wait_for(&|| mock.in_flight() == 0, &mut child);
        wait_for(&|| mock.in_flight() > 0, &mut child);
        let _ = child.kill();
        let _ = child.wait();
        // The server stores what it received all the same (its answer goes nowhere).
        killed_mid_request += usize::from(mock.in_flight() > 0);
        while mock.in_flight() > 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert!(
        killed_mid_request >= 3,
        "only {killed_mid_request} kills mid-request"
    );
    let out = wait_bounded(start(), Duration::from_secs(300));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let spans = mock.spans();
    let twice: Vec<_> = spans.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{} spans arrived twice", twice.len());
    let expected: usize = generated
        .sessions
        .values()
        .map(|(k, _)| expected_observations(*k))
        .sum();
    assert_eq!(spans.len(), expected, "every observation arrived");
}
