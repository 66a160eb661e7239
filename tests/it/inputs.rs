//! Invariants that hold for ANY input, checked on every fixture and on every genuine omp
//! output under `fixtures/real/` (when that directory exists): the `--dry-run` output
//! validates against Langfuse's official ingestion schema, has one trace per session, one
//! generation per assistant message, one tool observation per tool call (under a turn),
//! no orphans, usage and cost sums equal to the input's own, unique envelope ids, RFC 3339
//! millisecond timestamps, identical bytes across runs, and batches that obey
//! `--max-queue`. What the input holds is counted here independently of the mapper, from
//! the raw lines. Finally, adversarial bytes never make the binary panic.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::support::cmd::{
    all_inputs, body_str, code, dry_run, ev_type, events, file_name, fixtures_dir, is_observation,
    panicked, stderr,
};

/// The vendored ingestion schema (see `tests/schema/README.md`).
const SCHEMA_FILE: &str = "tests/schema/ingestion.schema.json";
/// Small enough that every fixture needs several batches.
const SMALL_QUEUE: usize = 3;
/// Relative tolerance when comparing summed USD costs.
const COST_TOLERANCE: f64 = 1e-9;
/// Lines examined to tell the input formats apart (as omp-langfuse does).
const DETECT_LINES: usize = 64;

// ---------------------------------------------------------------------------------------
// Runs, cached: every invariant test reads the same three runs per input.

struct Case {
    path: PathBuf,
    facts: Facts,
    /// Default settings.
    first: Output,
    /// The same again, for byte-identity.
    second: Output,
    /// `--max-queue SMALL_QUEUE`.
    small: Output,
}

impl Case {
    fn name(&self) -> String {
        let p = &self.path;
        p.strip_prefix(fixtures_dir())
            .map(|r| r.display().to_string())
            .unwrap_or_else(|_| file_name(p))
    }
}

fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        let queue = SMALL_QUEUE.to_string();
        all_inputs()
            .into_iter()
            .map(|path| Case {
                facts: Facts::read(&path),
                first: dry_run(&path, &[]),
                second: dry_run(&path, &[]),
                small: dry_run(&path, &["--max-queue", &queue]),
                path,
            })
            .collect()
    })
}

/// Run `check` on every case and fail once with every problem found, named by input.
fn for_each_case(check: impl Fn(&Case, &[Value], &mut Vec<String>)) {
    let mut problems = Vec::new();
    for case in cases() {
        let mut found = Vec::new();
        let evs = events(&case.first.stdout);
        check(case, &evs, &mut found);
        problems.extend(found.into_iter().map(|p| format!("{}: {p}", case.name())));
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------
// What the raw input holds, counted without the mapper.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Live,
    Extension,
    SessionLog,
}

/// Token and cost sums over assistant messages (OMP's `usage` fields).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Usage {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    cost: f64,
}

impl Usage {
    fn add_omp(&mut self, u: Option<&Value>) {
        let n = |k: &str| {
            u.and_then(|u| u.get(k))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        self.input += n("input");
        self.output += n("output");
        self.cache_read += n("cacheRead");
        self.cache_write += n("cacheWrite");
        self.cost += u
            .and_then(|u| u.pointer("/cost/total"))
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
    }

    /// From a generation's `usageDetails` / `costDetails` (Langfuse bucket names).
    fn add_langfuse(&mut self, body: &Value) {
        let n = |k: &str| {
            body.pointer(&format!("/usageDetails/{k}"))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        self.input += n("input");
        self.output += n("output");
        self.cache_read += n("input_cache_read");
        self.cache_write += n("input_cache_creation");
        self.cost += body
            .pointer("/costDetails/total")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
    }

    fn tokens_eq(&self, o: &Usage) -> bool {
        (self.input, self.output, self.cache_read, self.cache_write)
            == (o.input, o.output, o.cache_read, o.cache_write)
    }

    fn cost_eq(&self, o: &Usage) -> bool {
        (self.cost - o.cost).abs() <= COST_TOLERANCE * self.cost.abs().max(1.0)
    }
}

#[derive(Debug)]
struct Facts {
    format: Format,
    sessions: usize,
    assistant_messages: usize,
    usage: Usage,
    tool_call_ids: BTreeSet<String>,
}

impl Facts {
    fn read(path: &Path) -> Facts {
        let bytes = std::fs::read(path).expect("reading input");
        let lines = parse_lines(&bytes);
        let mut facts = Facts {
            format: detect(&lines),
            sessions: 0,
            assistant_messages: 0,
            usage: Usage::default(),
            tool_call_ids: BTreeSet::new(),
        };
        match facts.format {
            Format::SessionLog => facts.read_log(&lines),
            Format::Live | Format::Extension => facts.read_stream(&lines),
        }
        facts
    }

    fn read_stream(&mut self, lines: &[Value]) {
        let mut headers = 0;
        let mut session_ids = BTreeSet::new();
        let mut session_starts = 0;
        // `--events=-`: omp's own json lines repeat what the bridge's lines (numeric `seq`
        // and `ts`) report for the same session; only the bridge's count.
        let is_bridge = |v: &Value| {
            v.get("seq").is_some_and(Value::is_number) && v.get("ts").is_some_and(Value::is_number)
        };
        let bridged: BTreeSet<&str> = lines
            .iter()
            .filter(|v| is_bridge(v))
            .filter_map(|v| v.get("sessionId").and_then(Value::as_str))
            .collect();
        let json_session = lines
            .iter()
            .find(|v| !is_bridge(v) && v.get("type").and_then(Value::as_str) == Some("session"))
            .and_then(|v| v.get("id").and_then(Value::as_str));
        let duplicated = json_session.is_some_and(|s| bridged.contains(s));
        for v in lines {
            let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
            if duplicated && !is_bridge(v) && ty != "session" {
                continue;
            }
            if let Some(sid) = v.get("sessionId").and_then(Value::as_str) {
                session_ids.insert(sid.to_string());
            }
            match ty {
                "session" => headers += 1,
                "session_start" => session_starts += 1,
                "message_end" => {
                    if let Some(m) = v.get("message") {
                        self.message(m);
                    }
                }
                "tool_execution_start" | "tool_execution_end" => self.tool_id(v.get("toolCallId")),
                _ => {}
            }
        }
        // A subagent whose `session_start` names a parent in the same stream is nested in the
        // parent's trace.
        let nested = lines
            .iter()
            .filter(|v| v.get("type").and_then(Value::as_str) == Some("session_start"))
            .filter(|v| {
                v.get("parentSession")
                    .and_then(Value::as_str)
                    .and_then(|p| p.rsplit('/').next())
                    .and_then(|name| name.strip_suffix(".jsonl"))
                    .and_then(|stem| stem.split_once('_'))
                    .is_some_and(|(_, id)| session_ids.contains(id))
            })
            .count();
        self.sessions = match self.format {
            Format::Extension if !session_ids.is_empty() => session_ids.len() - nested,
            Format::Extension => session_starts.max(1),
            _ => headers.max(1),
        };
        if lines.is_empty() {
            self.sessions = 0;
        }
    }

    /// Session files: one session per header; every entry counts, those on branches the
    /// user left with `/tree` included (omp's own totals, `omp stats`, sum them all).
    fn read_log(&mut self, lines: &[Value]) {
        let mut sessions: Vec<Vec<&Value>> = Vec::new();
        let mut after_title = false;
        for v in lines {
            let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
            let starts = ty == "title" || (ty == "session" && !after_title);
            if starts || sessions.is_empty() {
                sessions.push(Vec::new());
            }
            after_title = ty == "title";
            if v.get("id").is_some() && v.get("parentId").is_some() {
                sessions.last_mut().expect("pushed above").push(v);
            }
        }
        self.sessions = sessions.len();
        for entries in &sessions {
            for e in entries {
                match e.get("type").and_then(Value::as_str) {
                    Some("message") => {
                        if let Some(m) = e.get("message") {
                            self.message(m);
                        }
                    }
                    Some("custom")
                        if e.get("customType").and_then(Value::as_str)
                            == Some("tool_execution_start") =>
                    {
                        self.tool_id(e.pointer("/data/toolCallId"));
                    }
                    _ => {}
                }
            }
        }
    }

    fn message(&mut self, m: &Value) {
        match m.get("role").and_then(Value::as_str) {
            Some("assistant") => {
                self.assistant_messages += 1;
                self.usage.add_omp(m.get("usage"));
                for b in m
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if b.get("type").and_then(Value::as_str) == Some("toolCall") {
                        self.tool_id(b.get("id"));
                    }
                }
            }
            Some("toolResult") => self.tool_id(m.get("toolCallId")),
            _ => {}
        }
    }

    fn tool_id(&mut self, id: Option<&Value>) {
        if let Some(id) = id.and_then(Value::as_str).filter(|s| !s.is_empty()) {
            self.tool_call_ids.insert(id.to_string());
        }
    }
}

/// The JSON objects of a file, as omp-langfuse reads them: BOM and CR stripped, anything
/// that is not a JSON object (stderr noise, a cut-off last line) left out.
fn parse_lines(bytes: &[u8]) -> Vec<Value> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    bytes
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
        .filter(Value::is_object)
        .collect()
}

/// Tell the formats apart from the first lines: session files have entry trees, extension
/// streams have bridge timestamps, session ids on lines, or hook-only event types.
fn detect(lines: &[Value]) -> Format {
    const EXTENSION_ONLY: &[&str] = &[
        "session_start",
        "session_shutdown",
        "before_provider_request",
        "after_provider_response",
        "tool_call",
        "tool_result",
        "session_compact",
    ];
    for v in lines.iter().take(DETECT_LINES) {
        let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
        if ty == "title" || (v.get("parentId").is_some() && v["timestamp"].is_string()) {
            return Format::SessionLog;
        }
        if EXTENSION_ONLY.contains(&ty)
            || v.get("ts").is_some_and(Value::is_number)
            || (ty != "session" && v.get("sessionId").is_some())
        {
            return Format::Extension;
        }
    }
    Format::Live
}

// ---------------------------------------------------------------------------------------
// Reading the output.

/// Observations by body id.
fn observations(evs: &[Value]) -> BTreeMap<&str, &Value> {
    evs.iter()
        .filter(|e| is_observation(e))
        .filter_map(|e| Some((body_str(e, "id")?, e)))
        .collect()
}

fn of_type<'a>(evs: &'a [Value], ty: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    evs.iter().filter(move |e| ev_type(e) == ty)
}

// ---------------------------------------------------------------------------------------
// The invariants.

#[test]
fn there_are_inputs_and_runs_finish_without_panicking() {
    assert!(cases().len() >= 8, "fixtures missing");
    for_each_case(|case, _, problems| {
        for out in [&case.first, &case.second, &case.small] {
            if panicked(out) || !matches!(code(out), 0 | 1) {
                problems.push(format!("exit {} stderr:\n{}", code(out), stderr(out)));
            }
        }
    });
}

#[test]
fn output_validates_against_the_official_ingestion_schema() {
    let schema = Schema::load();
    for_each_case(|case, evs, problems| {
        for (i, line) in case.first.stdout.split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let doc: Value = match serde_json::from_slice(line) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("output line {}: not JSON: {e}", i + 1));
                    continue;
                }
            };
            if let Err(e) = schema.validate(&doc) {
                problems.push(format!("output line {}: {e}", i + 1));
            }
        }
        problems.extend(schema.undeclared_fields(evs));
    });
}

#[test]
fn one_trace_per_session() {
    for_each_case(|case, evs, problems| {
        let traces: BTreeSet<&str> = of_type(evs, "trace-create")
            .filter_map(|e| body_str(e, "id"))
            .collect();
        let sessions: BTreeSet<&str> = of_type(evs, "trace-create")
            .filter_map(|e| body_str(e, "sessionId"))
            .collect();
        if traces.len() != case.facts.sessions || sessions.len() != case.facts.sessions {
            problems.push(format!(
                "{} sessions in the input, {} traces and {} session ids in the output",
                case.facts.sessions,
                traces.len(),
                sessions.len()
            ));
        }
        // The Langfuse session is the omp session: never missing.
        for e in of_type(evs, "trace-create") {
            if body_str(e, "sessionId").is_none_or(str::is_empty) {
                problems.push(format!("trace without sessionId: {e}"));
            }
        }
    });
}

#[test]
fn one_generation_per_assistant_message() {
    for_each_case(|case, evs, problems| {
        let n = of_type(evs, "generation-create").count();
        if n != case.facts.assistant_messages {
            problems.push(format!(
                "{} assistant messages in the input, {n} generations",
                case.facts.assistant_messages
            ));
        }
    });
}

#[test]
fn one_tool_observation_per_tool_call_nested_under_a_turn() {
    for_each_case(|case, evs, problems| {
        let obs = observations(evs);
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for t in of_type(evs, "tool-create") {
            let id = t
                .pointer("/body/metadata/tool_call_id")
                .and_then(Value::as_str)
                .unwrap_or("");
            *seen.entry(id).or_default() += 1;
            let parent = body_str(t, "parentObservationId").and_then(|p| obs.get(p));
            let under_turn = parent.is_some_and(|p| {
                ev_type(p) == "span-create"
                    && body_str(p, "name").is_some_and(|n| n.starts_with("turn "))
            });
            if !under_turn {
                problems.push(format!("tool {id:?} is not nested under a turn span"));
            }
        }
        for (id, n) in &seen {
            if *n != 1 {
                problems.push(format!("tool call {id:?}: {n} tool observations"));
            }
        }
        let got: BTreeSet<&str> = seen.keys().copied().collect();
        let want: BTreeSet<&str> = case
            .facts
            .tool_call_ids
            .iter()
            .map(String::as_str)
            .collect();
        if got != want {
            problems.push(format!(
                "tool calls without an observation: {:?}; observations of no tool call: {:?}",
                want.difference(&got).collect::<Vec<_>>(),
                got.difference(&want).collect::<Vec<_>>()
            ));
        }
    });
}

#[test]
fn no_orphans_and_one_root_per_trace() {
    for_each_case(|_, evs, problems| {
        let obs = observations(evs);
        let traces: BTreeSet<&str> = of_type(evs, "trace-create")
            .filter_map(|e| body_str(e, "id"))
            .collect();
        let mut roots: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut creates: BTreeMap<&str, usize> = BTreeMap::new();
        for e in evs.iter().filter(|e| is_observation(e)) {
            let id = body_str(e, "id").unwrap_or("");
            *creates.entry(id).or_default() += 1;
            let Some(trace) = body_str(e, "traceId").filter(|t| !t.is_empty()) else {
                problems.push(format!("observation {id} has no traceId"));
                continue;
            };
            if !traces.contains(trace) {
                problems.push(format!("observation {id}: trace {trace} never created"));
            }
            match body_str(e, "parentObservationId") {
                None => roots.entry(trace).or_default().push(ev_type(e)),
                Some(p) => match obs.get(p) {
                    None => problems.push(format!("observation {id}: parent {p} not emitted")),
                    Some(parent) if body_str(parent, "traceId") != Some(trace) => {
                        problems.push(format!("observation {id}: parent {p} in another trace"))
                    }
                    Some(_) => {}
                },
            }
        }
        for (id, n) in creates {
            if n != 1 {
                problems.push(format!("observation {id} emitted {n} times"));
            }
        }
        for t in &traces {
            match roots.get(t).map(Vec::as_slice) {
                Some(["agent-create"]) => {}
                other => problems.push(format!("trace {t}: roots {other:?}, want one agent")),
            }
        }
    });
}

#[test]
fn usage_and_cost_sums_equal_the_inputs_own() {
    for_each_case(|case, evs, problems| {
        let mut got = Usage::default();
        for g in of_type(evs, "generation-create") {
            let body = &g["body"];
            got.add_langfuse(body);
            // `total` is the sum of the additive buckets.
            let buckets: u64 = [
                "input",
                "output",
                "input_cache_read",
                "input_cache_creation",
            ]
            .iter()
            .filter_map(|k| body.pointer(&format!("/usageDetails/{k}"))?.as_u64())
            .sum();
            if body.pointer("/usageDetails/total").and_then(Value::as_u64) != Some(buckets) {
                problems.push(format!("generation {}: usage total ≠ sum", body["id"]));
            }
        }
        let want = case.facts.usage;
        if !want.tokens_eq(&got) || !want.cost_eq(&got) {
            problems.push(format!("input usage {want:?}, generations {got:?}"));
        }
        // The roots carry the same totals.
        let mut roots = Usage::default();
        for r in of_type(evs, "agent-create") {
            let m = &r["body"]["metadata"];
            let n = |k: &str| m.pointer(&format!("/usage/{k}")).and_then(Value::as_u64);
            roots.input += n("input").unwrap_or(0);
            roots.output += n("output").unwrap_or(0);
            roots.cache_read += n("input_cache_read").unwrap_or(0);
            roots.cache_write += n("input_cache_creation").unwrap_or(0);
            roots.cost += m.get("cost_usd").and_then(Value::as_f64).unwrap_or(0.0);
        }
        // Root costs are rounded to 1e-8 USD.
        let close = (roots.cost - want.cost).abs()
            <= 1e-7 * (of_type(evs, "agent-create").count() as f64).max(1.0);
        if !want.tokens_eq(&roots) || !close {
            problems.push(format!("input usage {want:?}, root totals {roots:?}"));
        }
    });
}

#[test]
fn envelope_ids_are_unique() {
    for_each_case(|_, evs, problems| {
        let mut seen = BTreeSet::new();
        for e in evs {
            let id = e.get("id").and_then(Value::as_str).unwrap_or("");
            if id.is_empty() || !seen.insert(id) {
                problems.push(format!("envelope id {id:?} missing or repeated"));
            }
        }
    });
}

#[test]
fn timestamps_are_rfc3339_utc_with_milliseconds() {
    const FIELDS: &[&str] = &[
        "/timestamp",
        "/body/timestamp",
        "/body/startTime",
        "/body/endTime",
        "/body/completionStartTime",
    ];
    for_each_case(|_, evs, problems| {
        for e in evs {
            for f in FIELDS {
                match e.pointer(f) {
                    None => {}
                    Some(Value::String(s)) if is_rfc3339_millis_utc(s) => {}
                    Some(v) => problems.push(format!("{} {f} = {v}", ev_type(e))),
                }
            }
            if is_observation(e) {
                let start = body_str(e, "startTime").unwrap_or("");
                if let Some(end) = body_str(e, "endTime")
                    && end < start
                {
                    problems.push(format!("{} ends before it starts", e["body"]["id"]));
                }
            }
        }
    });
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, exactly.
fn is_rfc3339_millis_utc(s: &str) -> bool {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:dd.dddZ";
    s.len() == SHAPE.len()
        && s.bytes().zip(SHAPE).all(|(c, want)| match want {
            b'd' => c.is_ascii_digit(),
            w => c == *w,
        })
}

#[test]
fn output_is_byte_identical_across_runs() {
    for_each_case(|case, _, problems| {
        if case.first.stdout != case.second.stdout {
            problems.push("two runs on the same input printed different bytes".into());
        }
    });
}

#[test]
fn batches_obey_max_queue() {
    for_each_case(|case, evs, problems| {
        let small = crate::support::cmd::batches(&case.small.stdout);
        for (i, b) in small.iter().enumerate() {
            let n = b["batch"].as_array().map_or(0, Vec::len);
            if n == 0 || n > SMALL_QUEUE {
                problems.push(format!(
                    "--max-queue {SMALL_QUEUE}: batch {i} has {n} events"
                ));
            }
        }
        if events(&case.small.stdout) != evs {
            problems.push(format!(
                "--max-queue {SMALL_QUEUE} changed the events, not just the batching"
            ));
        }
    });
}

/// Times nest: a child lies within its parent, and the turns of a trace follow each other
/// without overlapping. Pending: the mapper stretches turns over later lines (see
/// `fixtures/README.md`, "Known mapper bugs"); remove the `ignore` once that is fixed.
#[test]
fn child_times_nest_and_turns_do_not_overlap() {
    for_each_case(|_, evs, problems| {
        let obs = observations(evs);
        let span = |e: &Value| {
            let start = body_str(e, "startTime").unwrap_or("").to_string();
            let end = body_str(e, "endTime").map_or_else(|| start.clone(), str::to_string);
            (start, end)
        };
        let mut turns: BTreeMap<&str, Vec<(String, String, &str)>> = BTreeMap::new();
        for (id, e) in &obs {
            let (start, end) = span(e);
            if let Some(p) = body_str(e, "parentObservationId").and_then(|p| obs.get(p)) {
                let (ps, pe) = span(p);
                if start < ps || end > pe {
                    problems.push(format!(
                        "{} {:?} {start}…{end} lies outside its parent {:?} {ps}…{pe}",
                        ev_type(e),
                        body_str(e, "name").unwrap_or(""),
                        body_str(p, "name").unwrap_or("")
                    ));
                }
            }
            if ev_type(e) == "span-create"
                && body_str(e, "name").is_some_and(|n| n.starts_with("turn "))
            {
                // Turns of one agent: a nested subagent's turns run inside its parent's.
                let agent = body_str(e, "parentObservationId").unwrap_or("");
                turns.entry(agent).or_default().push((start, end, id));
            }
        }
        for list in turns.values_mut() {
            list.sort();
            for w in list.windows(2) {
                if w[0].1 > w[1].0 {
                    problems.push(format!(
                        "turn {} ends {} after the next turn starts {}",
                        w[0].2, w[0].1, w[1].0
                    ));
                }
            }
        }
    });
}

/// The generic invariants also hold when several sessions arrive on one stream, as when
/// session files are concatenated into stdin.
#[test]
fn concatenated_session_logs_give_one_trace_each() {
    let dir = fixtures_dir();
    let mut input = Vec::new();
    for name in [
        "log-goal-retry-compaction.jsonl",
        "log-tree-ttsr-crashed.jsonl",
    ] {
        input.extend(std::fs::read(dir.join(name)).expect("fixture"));
    }
    let out = run_stdin(&["--dry-run"], &input);
    assert!(matches!(code(&out), 0 | 1), "{}", stderr(&out));
    let evs = events(&out.stdout);
    let sessions: BTreeSet<&str> = of_type(&evs, "trace-create")
        .filter_map(|e| body_str(e, "sessionId"))
        .collect();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_eq!(of_type(&evs, "agent-create").count(), 2);
    let facts_gens = [
        "log-goal-retry-compaction.jsonl",
        "log-tree-ttsr-crashed.jsonl",
    ]
    .iter()
    .map(|n| Facts::read(&dir.join(n)).assistant_messages)
    .sum::<usize>();
    assert_eq!(of_type(&evs, "generation-create").count(), facts_gens);
}

/// Session files on stdin redirected from a file: held entries are read back from it (as
/// from a path), from its start or from wherever the shell left it.
#[test]
fn session_files_on_stdin_from_a_file_read_like_paths() {
    use std::io::{Seek, SeekFrom};
    let dir = fixtures_dir();
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = std::fs::read(dir.join("log-goal-retry-compaction.jsonl")).expect("fixture");
    let second = dir.join("log-tree-ttsr-crashed.jsonl");
    let both = tmp.path().join("both.jsonl");
    let mut bytes = first.clone();
    bytes.extend(std::fs::read(&second).expect("fixture"));
    std::fs::write(&both, bytes).expect("writing the input");
    let on_stdin = |file: std::fs::File| {
        crate::support::cmd::command()
            .arg("--dry-run")
            .stdin(file)
            .output()
            .expect("running omp-langfuse")
    };
    let by_path = dry_run(&both, &[]);
    let from_start = on_stdin(std::fs::File::open(&both).expect("input"));
    assert_eq!(code(&from_start), code(&by_path), "{}", stderr(&from_start));
    assert_eq!(from_start.stdout, by_path.stdout);
    // Part of the file already read (`{ head -n 5 >/dev/null; omp-langfuse; } < file`):
    // what is left reads like a file holding only that.
    let mut rest = std::fs::File::open(&both).expect("input");
    rest.seek(SeekFrom::Start(first.len() as u64))
        .expect("seek");
    let from_middle = on_stdin(rest);
    let second_alone = dry_run(&second, &[]);
    assert_eq!(
        code(&from_middle),
        code(&second_alone),
        "{}",
        stderr(&from_middle)
    );
    assert_eq!(from_middle.stdout, second_alone.stdout);
    assert!(!events(&from_middle.stdout).is_empty());
}

fn run_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = crate::support::cmd::command()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning omp-langfuse");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let data = input.to_vec();
    // Write from another thread so a full stdout pipe cannot deadlock the test.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("waiting for omp-langfuse");
    writer.join().expect("stdin writer");
    out
}

// ---------------------------------------------------------------------------------------
// Adversarial input: nothing panics, whatever the bytes.

/// Lines per adversarial file.
const FUZZ_LINES: usize = 400;
/// Adversarial files, each run with every `--input-format`.
const FUZZ_FILES: u64 = 6;
/// Nesting depth of the deep-nesting lines (well past serde_json's recursion limit).
const FUZZ_DEPTH: usize = 20_000;

/// 2^53 + 1: the first integer a JavaScript producer cannot represent exactly.
const JS_UNSAFE_INT: u64 = 9_007_199_254_740_993;

/// A small deterministic PRNG (xorshift64*): the same seed gives the same files.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// Values that break naive assumptions (types, signs, sizes, time ranges).
fn nasty_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(-1),
        json!(0),
        // Past JavaScript's safe integers, yet far from u64 overflow (that case has its
        // own test below).
        json!(JS_UNSAFE_INT),
        json!(i64::MIN),
        json!(1e308),
        json!(-1e308),
        json!(0.5),
        json!(""),
        json!("\u{0}\u{1b}[31m\u{202e}"),
        json!("x".repeat(5000)),
        json!("2026-13-45T99:99:99Z"),
        json!([]),
        json!({}),
        json!([null, {}, []]),
        json!({"type": "toolCall"}),
        json!({"role": "assistant"}),
    ]
}

/// Replace one random node of `v` with a nasty value.
fn mutate(v: &mut Value, rng: &mut Rng, nasty: &[Value]) {
    let descend = rng.below(3) != 0;
    match v {
        Value::Object(o) if descend && !o.is_empty() => {
            let k = o
                .keys()
                .nth(rng.below(o.len()))
                .cloned()
                .expect("non-empty");
            if let Some(child) = o.get_mut(&k) {
                mutate(child, rng, nasty);
            }
        }
        Value::Array(a) if descend && !a.is_empty() => {
            let i = rng.below(a.len());
            mutate(&mut a[i], rng, nasty);
        }
        _ => *v = rng.pick(nasty).clone(),
    }
}

/// One adversarial line.
fn fuzz_line(rng: &mut Rng, corpus: &[Vec<u8>], nasty: &[Value]) -> Vec<u8> {
    match rng.below(9) {
        // Random bytes, invalid UTF-8 included (never a newline: one line is one line).
        0 => (0..rng.below(300))
            .map(|_| (rng.next() & 0xff) as u8)
            .map(|b| if b == b'\n' { b'?' } else { b })
            .collect(),
        // JSON that is not an object, or an empty one.
        1 => rng
            .pick(&[
                "{}", "[]", "null", "42", "\"x\"", "true", "-0", "1e999", "{\"type\":null}",
                "{\"type\":42}", "{\"type\":\"\"}", "{\"type\":\"session\",\"id\":\"\"}",
            ])
            .as_bytes()
            .to_vec(),
        // Deep nesting.
        2 => {
            let (open, close) = if rng.below(2) == 0 { ("[", "]") } else { ("{\"a\":", "}") };
            let mut s = open.repeat(FUZZ_DEPTH);
            s.push('1');
            s.push_str(&close.repeat(FUZZ_DEPTH));
            s.into_bytes()
        }
        // Huge and odd numbers where times, tokens and costs go.
        3 => json!({
            "type": "message_end",
            "message": {"role": "assistant", "content": [{"type": "toolCall", "id": "t", "name": 5}],
                "usage": {"input": JS_UNSAFE_INT, "output": -3, "cacheRead": 1.5e300,
                    "cost": {"total": 1e308}},
                "timestamp": 9.9e300, "duration": -5, "ttft": 1e20, "completedAt": "soon"},
            "ts": -1e300, "sessionId": ""
        })
        .to_string()
        .into_bytes(),
        // A real line cut at a random byte.
        4 => {
            let l = rng.pick(corpus);
            l[..rng.below(l.len())].to_vec()
        }
        // A real line with one byte flipped.
        5 => {
            let mut l = rng.pick(corpus).clone();
            if !l.is_empty() {
                let i = rng.below(l.len());
                l[i] ^= 1 << rng.below(8);
                if l[i] == b'\n' {
                    l[i] = b' ';
                }
            }
            l
        }
        // Entries whose tree is broken: self-parents and unknown parents.
        6 => json!({"type": "message", "id": "cafe0001", "parentId": rng.pick(&["cafe0001", "nope", ""]),
                    "timestamp": "2026-09-17T09:00:00.000Z",
                    "message": {"role": rng.pick(&["assistant", "toolResult", "user"])}})
        .to_string()
        .into_bytes(),
        // A real line with one value replaced by a nasty one (most lines stay meaningful).
        _ => {
            let l = rng.pick(corpus);
            match serde_json::from_slice::<Value>(l) {
                Ok(mut v) => {
                    mutate(&mut v, rng, nasty);
                    v.to_string().into_bytes()
                }
                Err(_) => l.clone(),
            }
        }
    }
}

#[test]
fn adversarial_bytes_never_panic() {
    let corpus: Vec<Vec<u8>> = crate::support::cmd::jsonl_inputs(&fixtures_dir())
        .iter()
        .flat_map(|p| {
            std::fs::read(p)
                .expect("fixture")
                .split(|b| *b == b'\n')
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.is_empty())
        .collect();
    let nasty = nasty_values();
    let dir = std::env::temp_dir().join(format!("omp-langfuse-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let schema = Schema::load();
    let mut problems = Vec::new();
    for seed in 1..=FUZZ_FILES {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x1000_0000_01b3));
        let mut file = Vec::new();
        for _ in 0..FUZZ_LINES {
            file.extend(fuzz_line(&mut rng, &corpus, &nasty));
            file.extend(if rng.below(10) == 0 {
                &b"\r\n"[..]
            } else {
                b"\n"
            });
        }
        let path = dir.join(format!("fuzz-{seed}.jsonl"));
        std::fs::write(&path, &file).expect("writing fuzz input");
        for format in ["auto", "live", "extension", "session-log"] {
            let out = dry_run(&path, &["--input-format", format]);
            let what = format!("seed {seed}, --input-format {format}");
            if panicked(&out) || !matches!(code(&out), 0 | 1) {
                problems.push(format!(
                    "{what}: exit {}, stderr:\n{}",
                    code(&out),
                    stderr(&out)
                ));
                continue;
            }
            // Whatever came in, what goes out is still valid ingestion JSON.
            for line in out.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                match serde_json::from_slice::<Value>(line) {
                    Ok(doc) => {
                        if let Err(e) = schema.validate(&doc) {
                            problems.push(format!("{what}: {e}"));
                        }
                    }
                    Err(e) => problems.push(format!("{what}: output not JSON: {e}")),
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// Token counts whose sum does not fit in 64 bits must not panic (debug builds check
/// overflow) nor wrap (release builds): they should saturate.
#[test]
fn token_counts_near_u64_max_do_not_overflow() {
    let dir = std::env::temp_dir().join(format!("omp-langfuse-overflow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("overflow.jsonl");
    let usage = json!({"input": u64::MAX, "output": 1, "cacheRead": u64::MAX, "cacheWrite": 0,
                       "cost": {"total": 0.0}});
    let lines = [
        json!({"type": "session", "version": 3, "id": "overflow", "timestamp": "2026-09-14T08:30:00.000Z"}),
        json!({"type": "message_end", "message": {"role": "assistant", "content": [], "usage": usage,
               "stopReason": "stop", "timestamp": 1_789_374_601_000u64}}),
        json!({"type": "message_end", "message": {"role": "assistant", "content": [], "usage": usage,
               "stopReason": "stop", "timestamp": 1_789_374_602_000u64}}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, text).expect("writing input");
    let out = dry_run(&path, &[]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!panicked(&out) && code(&out) == 0, "{}", stderr(&out));
    for g in of_type(&events(&out.stdout), "generation-create") {
        assert_eq!(
            g["body"]["usageDetails"]["total"],
            json!(u64::MAX),
            "saturated total"
        );
    }
}

/// The checker itself: the vendored schema accepts a minimal good request and rejects
/// what the server would reject, so a passing schema test means something.
#[test]
fn schema_check_rejects_bad_requests() {
    let schema = Schema::load();
    let event = |ty: &str, body: Value| json!({"batch": [{"id": "e1", "timestamp": "2026-09-14T08:30:00.000Z", "type": ty, "body": body}]});
    let good = [
        event(
            "trace-create",
            json!({"id": "t", "name": "n", "tags": ["a"]}),
        ),
        event(
            "tool-create",
            json!({"id": "o", "traceId": "t", "startTime": "2026-09-14T08:30:00.000Z",
                                    "level": "ERROR", "usageDetails": {"input": 1}}),
        ),
        event(
            "generation-create",
            json!({"id": "g", "modelParameters": {"max_tokens": 32000, "stream": true},
                                          "costDetails": {"total": 0.5}}),
        ),
    ];
    for doc in &good {
        assert!(
            schema.validate(doc).is_ok(),
            "rejected a good request: {doc}"
        );
    }
    let bad = [
        json!({"batches": []}),
        event("trace-update", json!({"id": "t"})),
        event("span-create", json!({"id": "s", "level": "FATAL"})),
        event(
            "span-create",
            json!({"id": "s", "startTime": "2026-09-14 08:30:00"}),
        ),
        event(
            "generation-create",
            json!({"id": "g", "usageDetails": {"input": 1.5}}),
        ),
        event(
            "generation-create",
            json!({"id": "g", "costDetails": {"total": "0.5"}}),
        ),
        event("trace-create", json!({"id": "t", "tags": "a,b"})),
        json!({"batch": [{"id": "e1", "type": "trace-create", "body": {}}]}),
    ];
    for doc in &bad {
        assert!(
            schema.validate(doc).is_err(),
            "accepted a bad request: {doc}"
        );
    }
    let undeclared = schema.undeclared_fields(&[json!({"type": "span-create",
        "body": {"id": "s", "parentObservationID": "x"}})]);
    assert_eq!(undeclared.len(), 1, "{undeclared:?}");
}

// ---------------------------------------------------------------------------------------
// The schema.

/// The vendored ingestion request schema, compiled once per test.
struct Schema {
    schemas: boon::Schemas,
    root: boon::SchemaIndex,
    defs: Value,
}

impl Schema {
    fn load() -> Schema {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SCHEMA_FILE);
        let text = std::fs::read_to_string(&path).expect("reading the vendored schema");
        let doc: Value = serde_json::from_str(&text).expect("schema is JSON");
        let url = doc["$id"].as_str().expect("schema $id").to_string();
        let mut compiler = boon::Compiler::new();
        // `format: date-time` is part of the contract: assert it.
        compiler.enable_format_assertions();
        compiler
            .add_resource(&url, doc.clone())
            .expect("adding the schema");
        let mut schemas = boon::Schemas::new();
        let root = compiler
            .compile(&url, &mut schemas)
            .expect("compiling the schema");
        Schema {
            schemas,
            root,
            defs: doc["$defs"].clone(),
        }
    }

    fn validate(&self, doc: &Value) -> Result<(), String> {
        self.schemas.validate(doc, self.root).map_err(|e| {
            // The alternate form lists every failing keyword with its instance path.
            let detail = format!("{e:#}");
            detail.chars().take(2000).collect()
        })
    }

    /// Body fields the schema does not declare. The official schema allows extra fields
    /// (the server drops them silently), so a misspelled field would validate yet be lost.
    fn undeclared_fields(&self, evs: &[Value]) -> Vec<String> {
        let mut out = Vec::new();
        for e in evs {
            let body_schema = match ev_type(e) {
                "trace-create" => "TraceBody",
                "span-create" => "CreateSpanBody",
                "event-create" => "CreateEventBody",
                _ => "CreateGenerationBody",
            };
            let declared = self.properties(body_schema);
            if let Some(body) = e.get("body").and_then(Value::as_object) {
                for k in body.keys().filter(|k| !declared.contains(k.as_str())) {
                    out.push(format!(
                        "{} body field {k:?} is not in {body_schema}",
                        ev_type(e)
                    ));
                }
            }
        }
        out
    }

    /// Property names of a definition, following `allOf` and `$ref`.
    fn properties(&self, def: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo = vec![self.defs[def].clone()];
        while let Some(node) = todo.pop() {
            if let Some(props) = node.get("properties").and_then(Value::as_object) {
                out.extend(props.keys().cloned());
            }
            if let Some(r) = node.get("$ref").and_then(Value::as_str) {
                let name = r.rsplit('/').next().unwrap_or("");
                todo.push(self.defs[name].clone());
            }
            for sub in node
                .get("allOf")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                todo.push(sub.clone());
            }
        }
        out
    }
}

/// One chat message as Langfuse's `BaseChatMlMessageSchema` reads it (langfuse/langfuse,
/// packages/shared/src/utils/IORepresentation/chatML/types.ts) after its OpenAI adapter:
/// only the keys it knows (nothing lands in the passthrough JSON), string content, tool
/// calls with an id, a name and JSON text arguments, tool results with their call id,
/// thinking as `{type: "thinking", content}`.
fn chat_message_problems(m: &Value, at: &str, problems: &mut Vec<String>) {
    const KNOWN: &[&str] = &[
        "role",
        "name",
        "content",
        "tool_calls",
        "tool_call_id",
        "thinking",
        "redacted_thinking",
    ];
    let Some(o) = m.as_object() else {
        problems.push(format!("{at}: not a message object"));
        return;
    };
    for k in o.keys() {
        if !KNOWN.contains(&k.as_str()) {
            problems.push(format!(
                "{at}: key {k:?} would land in the passthrough JSON"
            ));
        }
    }
    let role = o.get("role").and_then(Value::as_str).unwrap_or("");
    if !["system", "user", "assistant", "tool"].contains(&role) {
        problems.push(format!("{at}: role {role:?}"));
    }
    if !o.get("content").is_some_and(Value::is_string) {
        problems.push(format!("{at}: content is not text"));
    }
    if role == "tool"
        && o.get("tool_call_id")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        problems.push(format!("{at}: a tool result without its call id"));
    }
    for call in o
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ok = call["id"].as_str().is_some_and(|i| !i.is_empty())
            && call["type"] == "function"
            && call["function"]["name"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
            && call["function"]["arguments"]
                .as_str()
                .is_some_and(|a| serde_json::from_str::<Value>(a).is_ok());
        if !ok {
            problems.push(format!("{at}: tool call {call}"));
        }
    }
    for t in o
        .get("thinking")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if t["type"] != "thinking" || !t["content"].is_string() {
            problems.push(format!("{at}: thinking part {t}"));
        }
    }
}

/// Every generation reads as a conversation in Langfuse, and every tool call the traces
/// hold (a `tool` observation) is among the `tool_calls` Langfuse extracts from the
/// generations (extractToolsBackend.ts), so its "Tool Calls" column is complete.
#[test]
fn generations_are_chat_messages_with_every_tool_call() {
    for_each_case(|_, evs, problems| {
        let mut requested = BTreeSet::new();
        for (i, g) in evs
            .iter()
            .filter(|e| ev_type(e) == "generation-create")
            .enumerate()
        {
            let b = &g["body"];
            let output = &b["output"];
            chat_message_problems(output, &format!("generation {i} output"), problems);
            if output["role"] != "assistant" {
                problems.push(format!("generation {i}: output role {}", output["role"]));
            }
            for c in output["tool_calls"].as_array().into_iter().flatten() {
                requested.insert(c["id"].as_str().unwrap_or_default().to_string());
            }
            let messages = match &b["input"] {
                Value::Array(a) => a.clone(),
                Value::Object(o) => {
                    for t in o
                        .get("tools")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if t["type"] != "function"
                            || !t["function"]["name"].is_string()
                            || t["function"].get("input_schema").is_some()
                        {
                            problems.push(format!("generation {i}: tool definition {t}"));
                        }
                    }
                    o.get("messages")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                }
                Value::Null => Vec::new(),
                other => {
                    problems.push(format!("generation {i}: input {other}"));
                    Vec::new()
                }
            };
            for (j, m) in messages.iter().enumerate() {
                chat_message_problems(m, &format!("generation {i} input {j}"), problems);
            }
        }
        for t in evs.iter().filter(|e| ev_type(e) == "tool-create") {
            let id = t["body"]["metadata"]["tool_call_id"]
                .as_str()
                .unwrap_or_default();
            if !requested.contains(id) {
                problems.push(format!("tool call {id:?} is in no generation's tool_calls"));
            }
        }
    });
}

/// A session file is read whole before it is mapped, so every row of a trace carries the
/// name the trace ends with (a goal set after the first LLM call included): no trace is
/// split across names in Langfuse's trace-name filters.
#[test]
fn a_session_files_trace_has_one_name() {
    for_each_case(|case, evs, problems| {
        if !String::from_utf8_lossy(&case.first.stderr).contains("(session log)") {
            return;
        }
        let mut names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for t in evs.iter().filter(|e| ev_type(e) == "trace-create") {
            let id = t["body"]["id"].as_str().unwrap_or_default().to_string();
            let name = t["body"]["name"].as_str().unwrap_or_default().to_string();
            names.entry(id).or_default().insert(name);
        }
        for (id, n) in names.iter().filter(|(_, n)| n.len() > 1) {
            problems.push(format!("trace {id} has names {n:?}"));
        }
    });
}
