//! The per-session state machine that turns decoded OMP events into Langfuse records:
//! session → trace with a root `agent`, turn → span, LLM call → generation, tool call → `tool`,
//! compaction → span, retries / TTSR / goals → events.
//!
//! Pure: no I/O and no clock. Times come from the input; when a line has none, the latest
//! time seen so far in the session stands in, so identical input gives identical output.
//! Every observation is emitted once, complete; at the end of input whatever is still open
//! is closed at the last time seen with WARNING level. No orphans: a parent is always a
//! turn or root that is (or will be) emitted.

mod conversation;
mod fields;
pub mod nesting;
mod session;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::decode::omp::{Ev, Event, Header};
use crate::decode::record::{
    BranchSummary, CompactionEnd, CompactionFigures, ContextUsage, Goal, LlmCall, Message,
    ProviderResponse, RetryEnd, RetryRecovery, RetryStart, Role, SessionEnd, SideCall, TaskRequest,
    ToolResult, clean_block, exit_code, message_text, spawned_agent_ids, strip_intent, text_only,
    timestamp, tool_calls,
};
use crate::decode::{chat, usage};
use crate::model::{
    GenerationInfo, Level, Millis, ObsKind, Observation, Record, TraceCtx, TraceRecord, span_id,
    trace_id,
};
use fields::*;
use session::*;

/// Longest trace name derived from a prompt or goal (Langfuse drops propagated trace
/// attributes over 200 characters).
const TRACE_NAME_MAX_CHARS: usize = 100;
/// Name of a trace with nothing better to go by.
const DEFAULT_TRACE_NAME: &str = "omp session";
/// The tool a subagent finishes with; omp disposes the session before recording its result,
/// so it is always "pending" at `session_exit` and that is not a failure.
const YIELD_TOOL: &str = "yield";
/// The tool that spawns subagents.
const TASK_TOOL: &str = "task";

/// Status message of observations closed because the input ended.
const CLOSED_AT_EOF: &str =
    "closed at end of input: omp stopped before this finished (crashed or killed?)";

/// Where trace boundaries fall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TracePer {
    /// One trace per omp session (default).
    Session,
    /// One trace per user prompt, all in the session's Langfuse session.
    Prompt,
}

/// Trace-wide settings from the configuration.
#[derive(Debug, Clone)]
pub struct MapConfig {
    pub trace_per: TracePer,
    pub tags: Vec<String>,
    pub environment: Option<String>,
    pub release: Option<String>,
    pub user_id: Option<String>,
}

/// Counters for the exit summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MapStats {
    pub sessions: u64,
    /// Sessions that ended without their end marker, closed at end of input.
    pub unterminated: u64,
    /// Goal updates that only advanced token/time accounting (no event emitted).
    pub goal_accounting: u64,
    /// Lines that arrived after their session's end marker (omp still reports e.g. a
    /// retry's end while shutting down); the session's root was already sent.
    pub after_end: u64,
}

/// Why a trace is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TraceEnd {
    /// The next prompt opens a new trace (`--trace-per prompt`).
    NextPrompt,
    /// The session is over.
    Session,
}

/// Why a session is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// Its end marker (`session_exit`, `session_shutdown`) was seen.
    Ended,
    /// The input ended, or another session began, without an end marker.
    Eof,
}

/// Where a subagent session goes: into its parent's trace, under the parent's `task` tool
/// call (or root). Set by `backfill` / `watch`, which know the files' relations.
#[derive(Debug, Clone)]
pub struct Nest {
    /// The parent's trace, used as it is (id, name, Langfuse session, metadata): Langfuse
    /// reads trace fields from every span, so a subagent must not bring its own.
    pub trace: Arc<TraceCtx>,
    /// The observation the subagent's root hangs under.
    pub parent_id: String,
    /// Keeps the subagent's observation keys apart from its parent's in the shared trace.
    pub key_prefix: String,
    /// Name of the subagent's root observation.
    pub name: String,
    /// Extra metadata of the subagent's root (agent id, how it was linked).
    pub metadata: Map<String, Value>,
}

/// A `task` tool call: what it asked for and, once its result is in, which agents it spawned.
/// Subagent sessions are matched against these.
#[derive(Debug, Clone)]
pub struct Spawn {
    pub tool_call_id: String,
    /// The `task` tool observation and its trace.
    pub obs_id: String,
    pub trace: Arc<TraceCtx>,
    /// Agent ids from the result's details (`results[].id`, `progress[].id`, `async.jobId`):
    /// the subagent's session file is `<agent id>.jsonl`.
    pub agent_ids: Vec<String>,
    /// Requested agent names (`name`, `tasks[].name`), which become agent ids.
    pub names: Vec<String>,
    /// Assignments (`task`, `tasks[].task`); a subagent's `session_init.task` contains its own.
    pub tasks: Vec<String>,
}

/// The trace a session's observations go to (or went to last) and its root observation.
#[derive(Debug, Clone)]
pub struct Anchor {
    pub trace: Arc<TraceCtx>,
    pub root_id: String,
}

/// A subagent nested by its stream: which session is its parent, and its agent id.
#[derive(Debug, Clone)]
struct NestLink {
    parent_key: String,
    agent_id: String,
}

/// The state machine for all sessions of one input source.
pub struct Mapper {
    cfg: Arc<MapConfig>,
    /// Set for a subagent session file.
    nest: Option<Arc<Nest>>,
    /// `task` calls of closed sessions (open sessions keep their own).
    spawns: Vec<Spawn>,
    /// The last closed session's anchor.
    anchor: Option<Anchor>,
    /// Open sessions by key (the OMP session id, or an anonymous key).
    sessions: BTreeMap<String, Session>,
    /// The session lines without a `sessionId` belong to.
    current: Option<String>,
    /// Sessions whose end marker was seen: later lines for them are dropped, not reopened.
    ended: std::collections::HashSet<String>,
    anon: u64,
    pub stats: MapStats,
}

impl Mapper {
    pub fn new(cfg: Arc<MapConfig>) -> Mapper {
        Mapper::with_nest(cfg, None)
    }

    /// A mapper whose sessions go into another session's trace (a subagent file).
    pub fn with_nest(cfg: Arc<MapConfig>, nest: Option<Nest>) -> Mapper {
        Mapper {
            cfg,
            nest: nest.map(Arc::new),
            spawns: Vec::new(),
            anchor: None,
            sessions: BTreeMap::new(),
            current: None,
            ended: std::collections::HashSet::new(),
            anon: 0,
            stats: MapStats::default(),
        }
    }

    /// Feed one event; finished records are appended to `out`.
    pub fn push(&mut self, event: Event, out: &mut Vec<Record>) {
        if let Ev::Session(header) = &event.ev {
            self.begin_session(event.session.clone(), header.clone(), event.at, out);
            return;
        }
        let key = match &event.session {
            Some(id) if self.ended.contains(id) => {
                self.stats.after_end += 1;
                return;
            }
            None if self
                .current
                .as_ref()
                .is_some_and(|c| self.ended.contains(c)) =>
            {
                self.stats.after_end += 1;
                return;
            }
            Some(id) => {
                if !self.sessions.contains_key(id) {
                    self.open(Some(id.clone()), Header::default());
                }
                id.clone()
            }
            None => match &self.current {
                Some(k) => k.clone(),
                None => self.open(None, Header::default()),
            },
        };
        let ends = matches!(event.ev, Ev::SessionEnd(_));
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        s.handle(event, out);
        if ends {
            self.close(&key, Close::Ended, out);
            // Lines without an id keep pointing at the ended session until a new header.
            self.ended.insert(key.clone());
            self.current = Some(key);
        }
    }

    /// Every `task` call seen so far (closed sessions first).
    pub fn spawns(&self) -> impl Iterator<Item = &Spawn> {
        self.spawns
            .iter()
            .chain(self.sessions.values().flat_map(|s| s.spawns.iter()))
    }

    /// The trace of the current session (open, else the last closed one).
    pub fn anchor(&self) -> Option<Anchor> {
        self.current
            .as_ref()
            .and_then(|k| self.sessions.get(k))
            .and_then(Session::anchor)
            .or_else(|| self.anchor.clone())
    }

    /// Whether no session is open (every one ended, or none began).
    pub fn idle(&self) -> bool {
        self.sessions.is_empty()
    }

    /// End of input: close every open session.
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        let keys: Vec<String> = self.sessions.keys().cloned().collect();
        for k in keys {
            self.close(&k, Close::Eof, out);
        }
    }

    fn begin_session(
        &mut self,
        line_session: Option<String>,
        mut header: Header,
        at: Option<Millis>,
        out: &mut Vec<Record>,
    ) {
        // Lines that name their session (extension events) interleave sessions: a subagent's
        // bridge lines go to the same file as its parent's, which runs on meanwhile.
        let interleaved = line_session.is_some();
        if header.id.is_none() {
            header.id = line_session;
        }
        if header.timestamp.is_none() {
            header.timestamp = at;
        }
        // Otherwise a new header ends the session that lines without ids were going to.
        if !interleaved
            && let Some(cur) = self.current.take()
            && header.id.as_deref() != Some(cur.as_str())
            && !self.ended.contains(&cur)
        {
            self.close(&cur, Close::Eof, out);
        }
        match header.id.clone() {
            Some(id) if self.sessions.contains_key(&id) => {
                self.current = Some(id);
            }
            // A session resumed after its end (e.g. `omp --resume`): a new run of it.
            Some(id) if self.ended.remove(&id) => {
                self.open(Some(id), header);
            }
            id => {
                self.open(id, header);
            }
        }
    }

    fn open(&mut self, id: Option<String>, header: Header) -> String {
        let key = match &id {
            Some(id) => id.clone(),
            None => {
                self.anon += 1;
                format!("\u{0}anon{}", self.anon)
            }
        };
        // Not the source's name: the same file read by another path or from stdin must give
        // the same session id (the id also folds in the session's first time).
        let anon_seed = format!("anonymous#{}", self.anon);
        self.stats.sessions += 1;
        let (nest, link) = match &self.nest {
            Some(n) => (Some(n.clone()), None),
            None => self.stream_nest(&header),
        };
        let mut session = Session::new(self.cfg.clone(), nest, id, anon_seed, header);
        session.nest_link = link;
        self.sessions.insert(key.clone(), session);
        self.current = Some(key.clone());
        key
    }

    /// A subagent whose bridge lines share the stream with its parent's (the bridge names the
    /// parent on `session_start`) goes into the parent's trace, like a subagent file does.
    fn stream_nest(&self, header: &Header) -> (Option<Arc<Nest>>, Option<NestLink>) {
        let Some(parent_key) = header
            .parent_session
            .as_deref()
            .map(nesting::parent_session_id)
        else {
            return (None, None);
        };
        let Some(parent) = self.sessions.get(&parent_key) else {
            return (None, None);
        };
        let (Some(anchor), Some(agent_id)) = (
            parent.anchor(),
            header
                .file
                .as_deref()
                .and_then(nesting::agent_id_of)
                .or_else(|| header.id.clone()),
        ) else {
            return (None, None);
        };
        let info = nesting::ParentInfo {
            anchor,
            spawns: parent.spawns.clone(),
            key_prefix: parent
                .nest
                .as_ref()
                .map(|n| n.key_prefix.clone())
                .unwrap_or_default(),
        };
        let nest = nesting::nest_for(&info, &agent_id, None);
        (
            Some(Arc::new(nest)),
            Some(NestLink {
                parent_key,
                agent_id,
            }),
        )
    }

    fn close(&mut self, key: &str, how: Close, out: &mut Vec<Record>) {
        if let Some(mut s) = self.sessions.remove(key) {
            // The parent's `task` result may have come in since the subagent began.
            if let (Some(link), Some(nest)) = (&s.nest_link, &s.nest) {
                let spawns: Vec<Spawn> = self
                    .sessions
                    .get(&link.parent_key)
                    .map(|p| p.spawns.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .chain(self.spawns.iter().cloned())
                    .collect();
                if let Some(n) =
                    nesting::relink(nest, &spawns, &link.agent_id, s.first_user_text.as_deref())
                {
                    s.nest = Some(Arc::new(n));
                }
            }
            if how == Close::Eof {
                self.stats.unterminated += u64::from(s.looks_unfinished());
            }
            self.stats.goal_accounting += s.goal_accounting;
            s.close(how, out);
            self.spawns.append(&mut s.spawns);
            if let Some(a) = s.last_anchor.take() {
                self.anchor = Some(a);
            }
        }
        if self.current.as_deref() == Some(key) {
            self.current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::omp::decode_stream;

    fn cfg(trace_per: TracePer) -> Arc<MapConfig> {
        Arc::new(MapConfig {
            trace_per,
            tags: vec![],
            environment: None,
            release: None,
            user_id: None,
        })
    }

    /// Run stream lines through a mapper; return the observations and trace records.
    fn run(per: TracePer, lines: &[Value]) -> (Vec<Observation>, Vec<TraceRecord>, MapStats) {
        let mut m = Mapper::new(cfg(per));
        let mut out = Vec::new();
        for l in lines {
            m.push(decode_stream(l.clone()), &mut out);
        }
        m.finish(&mut out);
        let mut obs = Vec::new();
        let mut traces = Vec::new();
        for r in out {
            match r {
                Record::Observation(o) => obs.push(o),
                Record::Trace(t) => traces.push(t),
            }
        }
        (obs, traces, m.stats)
    }

    fn header() -> Value {
        json!({"type":"session","version":3,"id":"sess-1","timestamp":"1970-01-01T00:00:00.500Z","cwd":"/w"})
    }

    fn user(text: &str, ts: i64) -> Value {
        json!({"type":"message_end","message":{"role":"user","content":[{"type":"text","text":text}],"timestamp":ts}})
    }

    fn assistant(ts: i64, stop: &str, calls: &[&str]) -> Value {
        let mut content = vec![json!({"type":"text","text":"ok"})];
        for c in calls {
            content.push(json!({"type":"toolCall","id":c,"name":"bash","arguments":{"i":"why","command":"ls"}}));
        }
        json!({"type":"message_end","message":{"role":"assistant","content":content,"provider":"p","model":"m",
            "usage":{"input":10,"output":5,"cacheRead":100,"cacheWrite":1,"totalTokens":116,
                     "cost":{"input":0.1,"output":0.2,"cacheRead":0.3,"cacheWrite":0.4,"total":1.0}},
            "stopReason":stop,"timestamp":ts,"duration":100,"ttft":20}})
    }

    fn tool_result(id: &str, ts: i64, is_error: bool) -> Value {
        json!({"type":"message_end","message":{"role":"toolResult","toolCallId":id,"toolName":"bash",
            "content":[{"type":"text","text":"out"}],"isError":is_error,"timestamp":ts}})
    }

    fn by_name<'a>(obs: &'a [Observation], name: &str) -> Vec<&'a Observation> {
        obs.iter().filter(|o| o.name == name).collect()
    }

    #[test]
    fn parallel_tools_out_of_order_nest_under_their_turn() {
        let (obs, _, _) = run(
            TracePer::Session,
            &[
                header(),
                json!({"type":"agent_start"}),
                json!({"type":"turn_start"}),
                user("go", 1000),
                assistant(2000, "toolUse", &["a", "b"]),
                json!({"type":"tool_execution_start","toolCallId":"a","toolName":"bash","args":{"command":"ls"}}),
                json!({"type":"tool_execution_start","toolCallId":"b","toolName":"bash","args":{"command":"ls"}}),
                json!({"type":"tool_execution_end","toolCallId":"b","toolName":"bash","result":{"content":[]},"isError":false}),
                tool_result("b", 2300, false),
                json!({"type":"tool_execution_end","toolCallId":"a","toolName":"bash","result":{"content":[]},"isError":true}),
                tool_result("a", 2500, true),
                json!({"type":"turn_end"}),
                json!({"type":"agent_end"}),
            ],
        );
        let turn = &by_name(&obs, "turn 1")[0];
        let tools = by_name(&obs, "bash");
        assert_eq!(tools.len(), 2);
        assert!(
            tools
                .iter()
                .all(|t| t.parent_id.as_deref() == Some(turn.id.as_str()))
        );
        let a = tools
            .iter()
            .find(|t| t.metadata["tool_call_id"] == "a")
            .unwrap();
        assert_eq!((a.start, a.end, a.level), (2100, 2500, Level::Error));
        // The intent key is metadata, not an argument.
        assert_eq!(a.input, Some(json!({"command":"ls"})));
        assert_eq!(turn.end, 2500);
        let root = obs.iter().find(|o| o.parent_id.is_none()).unwrap();
        assert_eq!(root.level, Level::Default);
        assert_eq!(root.metadata["tool_errors"], 1);
    }

    #[test]
    fn generation_carries_usage_cost_and_completion_start() {
        let (obs, traces, _) = run(
            TracePer::Session,
            &[
                header(),
                json!({"type":"turn_start"}),
                user("go", 1000),
                assistant(2000, "stop", &[]),
            ],
        );
        let g = obs.iter().find(|o| o.kind == ObsKind::Generation).unwrap();
        let info = g.generation.as_ref().unwrap();
        assert_eq!(
            info.usage,
            vec![
                ("input", 10),
                ("output", 5),
                ("input_cache_read", 100),
                ("input_cache_creation", 1),
                ("total", 116)
            ]
        );
        assert_eq!(info.cost.last(), Some(&("total", 1.0)));
        assert_eq!(
            (g.start, g.end, info.completion_start),
            (2000, 2100, Some(2020))
        );
        // In the chat shape Langfuse reads (see `chat`).
        assert_eq!(g.input, Some(json!([{"role":"user","content":"go"}])));
        // The root and the final trace record carry the first prompt and last answer.
        let last = traces.last().unwrap();
        assert_eq!(
            (last.input.clone(), last.output.clone()),
            (Some(json!("go")), Some(json!("ok")))
        );
        assert_eq!(last.ctx.name, "go");
    }

    #[test]
    fn aborted_turn_gets_synthetic_error_results_and_ttsr_event() {
        let (obs, _, _) = run(
            TracePer::Session,
            &[
                header(),
                json!({"type":"turn_start"}),
                user("go", 1000),
                json!({"type":"ttsr_triggered","rules":[{"name":"no-any"}]}),
                assistant(2000, "aborted", &["x"]),
                tool_result("x", 2200, true),
                json!({"type":"turn_end"}),
            ],
        );
        let g = obs.iter().find(|o| o.kind == ObsKind::Generation).unwrap();
        assert_eq!(g.level, Level::Error);
        let t = &by_name(&obs, "bash")[0];
        assert_eq!((t.start, t.end, t.level), (2100, 2200, Level::Error));
        let ev = &by_name(&obs, "ttsr")[0];
        assert_eq!(ev.kind, ObsKind::Event);
        assert_eq!(ev.input, Some(json!({"rules":["no-any"]})));
    }

    #[test]
    fn crash_closes_everything_with_warning_at_last_time() {
        let (obs, _, stats) = run(
            TracePer::Session,
            &[
                header(),
                json!({"type":"agent_start"}),
                json!({"type":"turn_start"}),
                user("go", 1000),
                assistant(2000, "toolUse", &["a"]),
                json!({"type":"tool_execution_start","toolCallId":"a","toolName":"bash","args":{}}),
            ],
        );
        assert_eq!(stats.unterminated, 1);
        assert_eq!(obs.len(), 4);
        for o in &obs {
            if o.kind != ObsKind::Generation {
                assert_eq!(o.level, Level::Warning, "{}", o.name);
                assert!(o.end <= 2100 && o.end >= o.start);
            }
        }
        // Root last, nothing orphaned.
        assert!(obs.last().unwrap().parent_id.is_none());
        let ids: Vec<&str> = obs.iter().map(|o| o.id.as_str()).collect();
        assert!(
            obs.iter()
                .filter_map(|o| o.parent_id.as_deref())
                .all(|p| ids.contains(&p))
        );
    }

    #[test]
    fn goal_renames_trace_and_accounting_is_not_an_event() {
        let goal = |status: &str, used: u64| json!({"type":"goal_updated","goal":{"id":"g","objective":"Make CI green","status":status,"tokensUsed":used}});
        let (obs, traces, stats) = run(
            TracePer::Session,
            &[
                header(),
                json!({"type":"turn_start"}),
                user("go", 1000),
                goal("active", 0),
                goal("active", 50),
                goal("complete", 90),
            ],
        );
        assert_eq!(by_name(&obs, "goal").len(), 2);
        assert_eq!(stats.goal_accounting, 1);
        assert_eq!(traces.last().unwrap().ctx.name, "Make CI green");
    }

    #[test]
    fn trace_per_prompt_splits_one_session_into_traces() {
        let lines = [
            header(),
            json!({"type":"agent_start"}),
            json!({"type":"turn_start"}),
            user("first", 1000),
            assistant(2000, "stop", &[]),
            json!({"type":"turn_end"}),
            json!({"type":"agent_end"}),
            json!({"type":"agent_start"}),
            json!({"type":"turn_start"}),
            user("second", 5000),
            assistant(6000, "stop", &[]),
            json!({"type":"turn_end"}),
            json!({"type":"agent_end"}),
        ];
        let (obs, _, _) = run(TracePer::Prompt, &lines);
        let roots: Vec<&Observation> = obs.iter().filter(|o| o.parent_id.is_none()).collect();
        assert_eq!(roots.len(), 2);
        assert_ne!(roots[0].trace.id, roots[1].trace.id);
        assert!(roots.iter().all(|r| r.trace.session_id == "sess-1"));
        assert_eq!(
            (roots[1].start, roots[1].trace.name.as_str()),
            (5000, "second")
        );
        let (obs, _, _) = run(TracePer::Session, &lines);
        assert_eq!(obs.iter().filter(|o| o.parent_id.is_none()).count(), 1);
    }

    /// A line of session `sid` as the bridge writes it.
    fn bridged(sid: &str, mut line: Value, ts: i64) -> Value {
        line["sessionId"] = sid.into();
        line["ts"] = ts.into();
        line
    }

    #[test]
    fn a_subagents_bridge_lines_nest_it_under_the_task_call() {
        let parent_file = "/s/-p/2026-11-24T02-42-07-949Z_par.jsonl";
        let task_call = json!({"type":"message_end","message":{"role":"assistant","content":[
            {"type":"toolCall","id":"call-1","name":"task","arguments":{"agent":"task","task":"Say hi."}}],
            "provider":"p","model":"m","usage":{"input":1,"output":1},"stopReason":"toolUse","timestamp":1_100}});
        let task_result = json!({"type":"message_end","message":{"role":"toolResult","toolCallId":"call-1",
            "toolName":"task","content":[{"type":"text","text":"done"}],
            "details":{"results":[{"id":"Scout","task":"Complete:\n\nSay hi."}]},"isError":false,"timestamp":1_500}});
        let sub_prompt = json!({"type":"message_end","message":{"role":"user","attribution":"agent",
            "content":[{"type":"text","text":"Complete:\n\nSay hi."}],"timestamp":1_200}});
        let lines = vec![
            bridged(
                "par",
                json!({"type":"session_start","sessionFile":parent_file}),
                1_000,
            ),
            bridged("par", user("go", 1_000), 1_000),
            bridged("par", task_call, 1_100),
            bridged(
                "sub",
                json!({"type":"session_start","parentSession":parent_file,
                       "sessionFile":"/s/-p/2026-11-24T02-42-07-949Z_par/Scout.jsonl"}),
                1_200,
            ),
            bridged("sub", sub_prompt, 1_200),
            bridged("sub", assistant(1_300, "stop", &[]), 1_300),
            // The task result (naming the agent) comes before the subagent's shutdown.
            bridged("par", task_result, 1_500),
            bridged("sub", json!({"type":"session_shutdown"}), 1_600),
            bridged("par", assistant(1_700, "stop", &[]), 1_700),
            bridged("par", json!({"type":"session_shutdown"}), 1_800),
        ];
        let (obs, traces, stats) = run(TracePer::Session, &lines);
        assert_eq!(stats.sessions, 2);
        let task = obs.iter().find(|o| o.name == "task").expect("task tool");
        let sub_root = obs
            .iter()
            .find(|o| o.name == "subagent Scout")
            .expect("nested root");
        assert_eq!(sub_root.parent_id.as_deref(), Some(task.id.as_str()));
        assert_eq!(sub_root.metadata["linked_by"], "task result");
        assert!(obs.iter().all(|o| o.trace.id == task.trace.id), "one trace");
        assert!(obs.iter().all(|o| o.trace.session_id == "par"));
        assert!(obs.iter().all(|o| o.level == Level::Default));
        let ids: std::collections::HashSet<&str> = obs.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids.len(), obs.len(), "keys stay apart");
        assert!(
            traces.iter().all(|t| t.ctx.session_id == "par"),
            "no trace of its own"
        );
        // parent: root, turn, 2 generations, task; subagent: root, turn, generation.
        assert_eq!(
            obs.len(),
            8,
            "{:?}",
            obs.iter().map(|o| &o.name).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_subagents_lines_without_a_parent_in_the_stream_are_a_session_of_their_own() {
        let lines = vec![
            bridged("par", json!({"type":"session_start"}), 1_000),
            bridged("par", user("go", 1_000), 1_000),
            bridged(
                "sub",
                json!({"type":"session_start","parentSession":"/x/2026-11-24T02-42-07-949Z_other.jsonl"}),
                1_100,
            ),
            bridged("sub", assistant(1_200, "stop", &[]), 1_200),
            bridged("sub", json!({"type":"session_shutdown"}), 1_300),
            bridged("par", assistant(1_400, "stop", &[]), 1_400),
            bridged("par", json!({"type":"session_shutdown"}), 1_500),
        ];
        let (obs, _, stats) = run(TracePer::Session, &lines);
        assert_eq!(stats.sessions, 2);
        let roots: Vec<&Observation> = obs.iter().filter(|o| o.kind == ObsKind::Agent).collect();
        assert_eq!(roots.len(), 2, "one root per session, none closed early");
        assert!(
            roots
                .iter()
                .all(|r| r.parent_id.is_none() && r.level == Level::Default)
        );
    }

    #[test]
    fn same_input_same_ids() {
        let lines = [
            header(),
            json!({"type":"turn_start"}),
            user("go", 1000),
            assistant(2000, "stop", &[]),
        ];
        let (a, _, _) = run(TracePer::Session, &lines);
        let (b, _, _) = run(TracePer::Session, &lines);
        assert_eq!(a, b);
        assert_eq!(a[0].trace.id, trace_id("sess-1", None));
    }
}
