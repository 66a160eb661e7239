//! The per-session state machine that turns decoded OMP events into Langfuse records:
//! session → trace with a root `agent`, turn → span, LLM call → generation, tool call → `tool`,
//! compaction → span, retries / TTSR / goals → events.
//!
//! Pure: no I/O and no clock. Times come from the input; when a line has none, the latest
//! time seen so far in the session stands in, so identical input gives identical output.
//! Every observation is emitted once, complete; at the end of input whatever is still open
//! is closed at the last time seen with WARNING level. No orphans: a parent is always a
//! turn or root that is (or will be) emitted.

pub mod chat;
pub mod nesting;
pub mod usage;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::decode::omp::{Ev, Event, Header, as_millis, str_field};
use crate::model::{
    GenerationInfo, Level, Millis, ObsKind, Observation, Record, TraceCtx, TraceRecord,
    message_text, span_id, trace_id,
};

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

/// An `event` observation to emit (see `Session::event`).
struct EventObs<'a> {
    name: &'a str,
    level: Level,
    status: Option<String>,
    input: Option<Value>,
    output: Option<Value>,
    metadata: Map<String, Value>,
    /// Its time, when the input gives one (else the latest seen).
    at: Option<Millis>,
}

impl<'a> EventObs<'a> {
    fn new(name: &'a str, level: Level) -> Self {
        EventObs {
            name,
            level,
            status: None,
            input: None,
            output: None,
            metadata: Map::new(),
            at: None,
        }
    }
}

/// Token and cost totals.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    total_tokens: u64,
    cost: f64,
    generations: u64,
    tool_calls: u64,
    tool_errors: u64,
    turns: u64,
    compactions: u64,
    events: u64,
}

impl Totals {
    /// One more LLM call (or side call) with these buckets.
    fn add(&mut self, u: &usage::Usage) {
        self.generations += 1;
        self.input = self.input.saturating_add(u.input);
        self.output = self.output.saturating_add(u.output);
        self.cache_read = self.cache_read.saturating_add(u.cache_read);
        self.cache_write = self.cache_write.saturating_add(u.cache_write);
        self.total_tokens = self.total_tokens.saturating_add(u.total_tokens);
        self.cost += u.cost_total;
    }
}

/// One trace in progress (a session, or one prompt of it).
struct Trace {
    ctx: Arc<TraceCtx>,
    root_id: String,
    /// None until the input gives a time.
    start: Option<Millis>,
    /// Whether the opening trace record went out.
    announced: bool,
    input: Option<Value>,
    output: Option<Value>,
    totals: Totals,
    /// The objective of a goal pursued in this trace.
    goal: Option<String>,
    /// This trace's first prompt.
    prompt: Option<String>,
    /// The latest end among the observations emitted in it.
    last: Option<Millis>,
}

struct Turn {
    id: String,
    n: u64,
    start: Option<Millis>,
    end: Option<Millis>,
    /// Children emitted under this turn (a childless turn can still move to a new trace).
    children: u64,
    generations: u64,
    level: Level,
    status: Option<String>,
    context: Option<Value>,
    context_tokens: Option<u64>,
}

#[derive(Default)]
struct Tool {
    name: String,
    args: Option<Value>,
    intent: Option<String>,
    /// The turn whose LLM call asked for it; None while its start was seen before the call.
    parent: Option<String>,
    start: Option<Millis>,
    /// When the call that requested it finished: the start when no start was recorded.
    requested_at: Option<Millis>,
    /// From `tool_execution_end`, in case the result message never comes.
    result: Option<Value>,
    is_error: bool,
    end: Option<Millis>,
}

struct Compaction {
    start: Millis,
    reason: Option<String>,
    action: Option<String>,
    entry: Option<Value>,
}

/// Last known goal, to tell a real change from token accounting.
#[derive(PartialEq)]
struct GoalState {
    id: Option<String>,
    objective: Option<String>,
    status: Option<String>,
    budget: Option<u64>,
}

struct Session {
    cfg: Arc<MapConfig>,
    nest: Option<Arc<Nest>>,
    /// Set when the nest came from the stream (see `Mapper::stream_nest`).
    nest_link: Option<NestLink>,
    /// The first user message, whoever wrote it (a subagent's is its assignment).
    first_user_text: Option<String>,
    /// `task` calls, for nesting subagent sessions.
    spawns: Vec<Spawn>,
    /// The last closed trace.
    last_anchor: Option<Anchor>,
    id: Option<String>,
    anon_seed: String,
    header: Header,
    title: Option<String>,
    goal: Option<GoalState>,
    /// The objective of the goal while it is active.
    active_goal: Option<String>,
    /// Traces opened so far (a later one starts at its prompt, not at the session header).
    traces_opened: u64,
    goal_accounting: u64,
    model: Option<String>,
    trace: Option<Trace>,
    prompts: u64,
    first_prompt: Option<String>,
    turn: Option<Turn>,
    turns: u64,
    tools: BTreeMap<String, Tool>,
    context_msgs: Vec<Value>,
    last_input: Option<Value>,
    provider_request: Option<Value>,
    provider_response: Option<Value>,
    compaction: Option<Compaction>,
    clock: Option<Millis>,
    run_active: bool,
    context_usage: Option<Value>,
    /// `session_exit` kind and reason once the end marker was seen.
    end: Option<(String, Option<String>)>,
    /// Counts per key prefix, so repeated keys stay unique.
    keys: HashMap<&'static str, u64>,
    /// A generation whose end the input did not give, until a later time does.
    pending_gen: Option<Observation>,
    /// Compactions started while another was running, oldest first.
    compactions_waiting: Vec<Compaction>,
    /// The agent that wrote the input, when a line showed it.
    producer: Option<&'static str>,
    /// An LLM call without a recorded duration: pi, unless a line says omp.
    weak_pi: bool,
    /// The name the whole session's trace ends with, when known up front.
    final_name: Option<String>,
    /// The event being handled is from an abandoned `/tree` branch.
    abandoned: bool,
}

impl Session {
    fn new(
        cfg: Arc<MapConfig>,
        nest: Option<Arc<Nest>>,
        id: Option<String>,
        anon_seed: String,
        header: Header,
    ) -> Session {
        Session {
            cfg,
            nest,
            nest_link: None,
            first_user_text: None,
            spawns: Vec::new(),
            last_anchor: None,
            id,
            anon_seed,
            title: header.title.clone(),
            clock: header.timestamp,
            header,
            goal: None,
            active_goal: None,
            traces_opened: 0,
            goal_accounting: 0,
            model: None,
            trace: None,
            prompts: 0,
            first_prompt: None,
            turn: None,
            turns: 0,
            tools: BTreeMap::new(),
            context_msgs: Vec::new(),
            last_input: None,
            provider_request: None,
            provider_response: None,
            compaction: None,
            run_active: false,
            context_usage: None,
            end: None,
            keys: HashMap::new(),
            pending_gen: None,
            compactions_waiting: Vec::new(),
            producer: None,
            weak_pi: false,
            final_name: None,
            abandoned: false,
        }
    }

    /// The agent that wrote this session: what a line showed (omp's word wins: omp also
    /// reads pi's formats), else pi when an LLM call had no duration, else omp.
    fn producer(&self) -> &'static str {
        match (self.producer, self.weak_pi) {
            (Some(p), _) => p,
            (None, true) => "pi",
            (None, false) => "omp",
        }
    }

    /// Emit a generation still waiting for its end: at `at` when that is later than its
    /// start, else as it is.
    fn settle(&mut self, at: Option<Millis>, out: &mut Vec<Record>) {
        let Some(mut g) = self.pending_gen.take() else {
            return;
        };
        match at {
            Some(at) if at <= g.start => {
                // Not later: keep waiting.
                self.pending_gen = Some(g);
                return;
            }
            Some(at) => {
                g.end = at;
                if self
                    .turn
                    .as_ref()
                    .is_some_and(|t| Some(&t.id) == g.parent_id.as_ref())
                {
                    self.turn_extend(at);
                }
            }
            None => {}
        }
        self.emit(g, out);
    }

    /// A side model call (omp's `model_usage`): a generation named after its purpose, under
    /// the open turn (else the root), with its usage and cost.
    fn side_call(&mut self, e: Value, at: Option<Millis>, out: &mut Vec<Record>) {
        let at = at.unwrap_or_else(|| self.now());
        self.touch(at);
        let u = usage::read(e.get("usage"));
        let parent = self.parent_now();
        let key = self.next_key("side");
        let name = str_field(&e, "purpose")
            .filter(|p| !p.trim().is_empty())
            .unwrap_or_else(|| "side call".into());
        let mut obs = self.observation(
            out,
            &key,
            Some(parent),
            (ObsKind::Generation, name),
            (at, at),
        );
        copy_fields(&e, &mut obs.metadata, &["provider", "api", "role"]);
        let stop = str_field(&e, "stopReason").unwrap_or_default();
        obs.metadata
            .insert("stop_reason".into(), stop.clone().into());
        obs.metadata.insert("side_call".into(), true.into());
        if let Some(err) = str_field(&e, "errorMessage").filter(|m| !m.is_empty()) {
            obs.level = Level::Error;
            obs.status_message = Some(short_line(&err, 200));
        } else if matches!(stop.as_str(), "error" | "aborted") {
            obs.level = Level::Error;
            obs.status_message = Some(format!("LLM call {stop}"));
        }
        obs.generation = Some(GenerationInfo {
            model: str_field(&e, "model"),
            model_parameters: Map::new(),
            usage: u.usage.clone(),
            cost: u.cost.clone(),
            completion_start: None,
        });
        self.emit(obs, out);
        self.trace().totals.add(&u);
    }

    /// Advance the clock with a time from the input.
    fn touch(&mut self, at: Millis) {
        self.clock = Some(self.clock.map_or(at, |c| c.max(at)));
        if let Some(t) = &mut self.trace
            && t.start.is_none_or(|s| at < s)
        {
            t.start = Some(at);
        }
    }

    /// Widen the open turn to cover a time that belongs to it (its prompt, its LLM call, its
    /// tools, its events). Other lines' times never stretch a turn: session files have no
    /// turn-end marker, and a title change or the next turn's tool start is not this turn.
    fn turn_extend(&mut self, at: Millis) {
        if let Some(t) = &mut self.turn {
            t.start = Some(t.start.map_or(at, |s| s.min(at)));
            t.end = Some(t.end.map_or(at, |e| e.max(at)));
        }
    }

    fn now(&self) -> Millis {
        self.clock.or(self.header.timestamp).unwrap_or(0)
    }

    fn session_id(&mut self) -> String {
        if self.id.is_none() {
            // Never named by the input: derive a stable id from where and when it began.
            let seed = format!(
                "{}@{}",
                self.anon_seed,
                self.header.timestamp.or(self.clock).unwrap_or(0)
            );
            self.id = Some(format!("omp-{}", &trace_id(&seed, None)[..16]));
        }
        self.id.clone().unwrap_or_default()
    }

    /// An observation id in `trace_id` for a key of this session. A subagent's keys carry its
    /// prefix, because it shares its parent's trace.
    fn obs_id(&self, trace_id: &str, key: &str) -> String {
        match &self.nest {
            Some(n) => span_id(trace_id, &format!("{}{key}", n.key_prefix)),
            None => span_id(trace_id, key),
        }
    }

    fn anchor(&self) -> Option<Anchor> {
        self.trace
            .as_ref()
            .map(|t| Anchor {
                trace: t.ctx.clone(),
                root_id: t.root_id.clone(),
            })
            .or_else(|| self.last_anchor.clone())
    }

    fn next_key(&mut self, prefix: &'static str) -> String {
        let n = self.keys.entry(prefix).or_insert(0);
        *n += 1;
        format!("{prefix}/{n}")
    }

    /// A goal active during the trace names it; otherwise the session title and the first
    /// prompt (per session), or the trace's own prompt (per prompt).
    fn trace_name(&self) -> String {
        let t = self.trace.as_ref();
        let goal = t.and_then(|t| t.goal.as_deref());
        let prompt = t.and_then(|t| t.prompt.as_deref());
        let raw = match self.cfg.trace_per {
            TracePer::Session => self
                .final_name
                .as_deref()
                .or(goal)
                .or(self.title.as_deref())
                .or(self.first_prompt.as_deref()),
            TracePer::Prompt => goal.or(prompt).or(self.title.as_deref()),
        };
        short_line(raw.unwrap_or(DEFAULT_TRACE_NAME), TRACE_NAME_MAX_CHARS)
    }

    fn build_ctx(&mut self, id: String, start: Millis) -> TraceCtx {
        if let Some(n) = &self.nest {
            return (*n.trace).clone();
        }
        let session_id = self.session_id();
        let mut metadata = Map::new();
        if let Some(cwd) = &self.header.cwd {
            metadata.insert("cwd".into(), cwd.clone().into());
        }
        if let Some(p) = &self.header.parent_session {
            metadata.insert("parent_session".into(), p.clone().into());
        }
        if let Some(t) = &self.title {
            metadata.insert("title".into(), t.clone().into());
        }
        if let Some(m) = &self.model {
            metadata.insert("model".into(), m.clone().into());
        }
        if let Some(o) = self.trace.as_ref().and_then(|t| t.goal.as_ref()) {
            metadata.insert("goal".into(), o.clone().into());
        }
        TraceCtx {
            id,
            name: self.trace_name(),
            session_id,
            user_id: self.cfg.user_id.clone(),
            tags: self.cfg.tags.clone(),
            environment: self.cfg.environment.clone(),
            release: self.cfg.release.clone(),
            timestamp: start,
            metadata,
        }
    }

    /// The current trace, opened on first need (announced with its first observation).
    fn trace(&mut self) -> &mut Trace {
        if self.trace.is_none() {
            let part = match self.cfg.trace_per {
                TracePer::Session => None,
                TracePer::Prompt => Some(self.prompts),
            };
            let sid = self.session_id();
            let id = match &self.nest {
                Some(n) => n.trace.id.clone(),
                None => trace_id(&sid, part),
            };
            // The first trace starts with the session; a later one (per prompt) at its prompt.
            let start = if self.traces_opened == 0 {
                self.header.timestamp.or(self.clock)
            } else {
                self.clock
            };
            self.traces_opened += 1;
            let ctx = Arc::new(self.build_ctx(id.clone(), start.unwrap_or(0)));
            self.trace = Some(Trace {
                root_id: self.obs_id(&id, "root"),
                ctx,
                start,
                announced: false,
                input: None,
                output: None,
                totals: Totals::default(),
                goal: self.active_goal.clone(),
                prompt: None,
                last: None,
            });
            self.refresh_ctx();
        }
        self.trace.as_mut().expect("just opened")
    }

    /// The current trace, with its opening trace record emitted if it was not yet.
    fn announced_trace(&mut self, out: &mut Vec<Record>) -> &mut Trace {
        self.trace();
        self.refresh_ctx();
        let nested = self.nest.is_some();
        let t = self.trace.as_mut().expect("opened above");
        // A subagent's trace belongs to its parent: it announces nothing of its own.
        if !t.announced && !nested {
            t.announced = true;
            out.push(Record::Trace(TraceRecord {
                ctx: t.ctx.clone(),
                input: None,
                output: None,
                at: t.ctx.timestamp,
                seq: 0,
            }));
        }
        t
    }

    /// Rebuild the trace context after its name, metadata or start changed.
    fn refresh_ctx(&mut self) {
        if let Some(t) = &self.trace {
            let start = t.start.unwrap_or_else(|| self.now());
            let id = t.ctx.id.clone();
            let ctx = self.build_ctx(id, start);
            if let Some(t) = &mut self.trace
                && *t.ctx != ctx
            {
                t.ctx = Arc::new(ctx);
            }
        }
    }

    /// Hand a finished observation downstream, noting how far its trace reaches.
    fn emit(&mut self, mut obs: Observation, out: &mut Vec<Record>) {
        // Calls and tool runs of a branch the user left with `/tree`: traced (so the totals
        // are omp's own) and easy to filter out.
        if self.abandoned
            && matches!(
                obs.kind,
                ObsKind::Generation | ObsKind::Tool | ObsKind::Event
            )
        {
            obs.metadata.insert("branch".into(), "abandoned".into());
        }
        if let Some(t) = &mut self.trace
            && t.ctx.id == obs.trace.id
        {
            t.last = Some(t.last.map_or(obs.end, |l| l.max(obs.end)));
        }
        out.push(Record::Observation(obs));
    }

    /// Parent for an observation that belongs to "now": the open turn, else the root.
    fn parent_now(&mut self) -> String {
        if let Some(t) = &mut self.turn {
            t.children += 1;
            return t.id.clone();
        }
        self.trace().root_id.clone()
    }

    fn observation(
        &mut self,
        out: &mut Vec<Record>,
        key: &str,
        parent: Option<String>,
        (kind, name): (ObsKind, String),
        (start, end): (Millis, Millis),
    ) -> Observation {
        let trace = self.announced_trace(out).ctx.clone();
        Observation {
            id: self.obs_id(&trace.id, key),
            trace,
            parent_id: parent,
            kind,
            name,
            start,
            end: end.max(start),
            input: None,
            output: None,
            metadata: Map::new(),
            level: Level::Default,
            status_message: None,
            generation: None,
        }
    }

    fn handle(&mut self, event: Event, out: &mut Vec<Record>) {
        let before = self.clock;
        self.abandoned = event.abandoned;
        match (event.producer, self.producer) {
            (Some("omp"), _) | (Some(_), None) => self.producer = event.producer,
            _ => {}
        }
        // A generation waiting for its end ends at the first later time.
        let line_time = match &event.ev {
            Ev::Message(m) => m.get("timestamp").and_then(as_millis).or(event.at),
            _ => event.at,
        };
        if line_time.is_some() {
            self.settle(line_time, out);
        }
        // A turn ends where the next turn or a compaction begins: close it before this
        // line's time stretches it (session files have no turn-end marker).
        if matches!(
            event.ev,
            Ev::TurnStart | Ev::Compaction(_) | Ev::CompactionStart { .. } | Ev::BranchSummary(_)
        ) {
            self.close_turn(out);
        }
        if let Some(at) = event.at {
            self.touch(at);
        }
        if let Some(cu) = event.context {
            if let Some(t) = &mut self.turn {
                t.context = Some(cu.clone());
            }
            self.context_usage = Some(cu);
        }
        match event.ev {
            Ev::Session(_) | Ev::Ignored | Ev::Unknown(_) => {}
            Ev::ModelUsage(e) => self.side_call(e, event.at, out),
            Ev::Title(t) => {
                self.title = Some(t);
                self.refresh_ctx();
            }
            Ev::TraceName(n) => {
                self.final_name = Some(n);
                self.refresh_ctx();
            }
            Ev::ModelChange(m) => {
                self.model = Some(m);
                self.refresh_ctx();
            }
            Ev::RunStart => self.run_active = true,
            // Even a non-terminal end closes the run: real omp can exit right after one
            // (a handoff compaction's continuation), and a continuation starts a new run.
            Ev::RunEnd { .. } => {
                self.close_turn(out);
                self.run_active = false;
            }
            Ev::TurnStart => {
                self.close_turn(out);
                self.open_turn(event.at);
            }
            Ev::TurnEnd => {
                if let Some(at) = event.at {
                    self.turn_extend(at);
                }
                self.close_turn(out);
            }
            Ev::Message(m) => self.message(m, event.at, out),
            Ev::ProviderRequest(p) => self.provider_request = Some(p),
            Ev::ProviderResponse(r) => self.provider_response = Some(r),
            ev @ (Ev::ToolStart { .. } | Ev::ToolUpdate { .. } | Ev::ToolEnd { .. }) => {
                self.tool_event(ev, event.at);
            }
            ev @ (Ev::CompactionStart { .. } | Ev::Compaction(_) | Ev::CompactionEnd(_)) => {
                self.compaction_event(ev, event.at, before, out);
            }
            ev @ (Ev::RetryStart(_)
            | Ev::RetryEnd(_)
            | Ev::RetryRecovery(_)
            | Ev::Ttsr(_)
            | Ev::BranchSummary(_)) => self.notice(ev, out),
            Ev::Goal(g) => self.goal(g, out),
            Ev::SessionEnd(data) => self.session_end(&data),
        }
    }

    /// A tool starts, streams or ends (its observation is emitted with its result).
    fn tool_event(&mut self, ev: Ev, at: Option<Millis>) {
        match ev {
            Ev::ToolStart {
                id,
                name,
                args,
                intent,
            } => {
                let at = at.unwrap_or_else(|| self.now());
                let parent = self.turn.as_ref().map(|t| t.id.clone());
                let tool = self.tools.entry(id).or_insert_with(|| Tool {
                    parent,
                    ..Tool::default()
                });
                tool.start.get_or_insert(at);
                if !name.is_empty() {
                    tool.name = name;
                }
                if args.is_some() {
                    tool.args = args;
                }
                if intent.is_some() {
                    tool.intent = intent;
                }
            }
            Ev::ToolUpdate { id, partial } => {
                if let Some(t) = self.tools.get_mut(&id)
                    && t.end.is_none()
                    && partial.is_object()
                {
                    t.result = Some(partial);
                }
            }
            Ev::ToolEnd {
                id,
                name,
                result,
                is_error,
            } => {
                let at = at.unwrap_or_else(|| self.now());
                let parent = self.turn.as_ref().map(|t| t.id.clone());
                let tool = self.tools.entry(id).or_insert_with(|| Tool {
                    name,
                    parent,
                    start: Some(at),
                    ..Tool::default()
                });
                tool.result = Some(result);
                tool.is_error |= is_error;
                tool.end = Some(at);
            }
            _ => {}
        }
    }

    /// Compaction: start, the committed entry, end.
    fn compaction_event(
        &mut self,
        ev: Ev,
        at: Option<Millis>,
        before: Option<Millis>,
        out: &mut Vec<Record>,
    ) {
        match ev {
            Ev::CompactionStart { reason, action } => {
                let next = Compaction {
                    start: at.unwrap_or_else(|| self.now()),
                    reason,
                    action,
                    entry: None,
                };
                if self.compaction.as_ref().is_some_and(|c| c.entry.is_none()) {
                    // A second start before the first ended (pi 0.73 starts two at once
                    // after a long turn): ends pair with starts in order.
                    self.compactions_waiting.push(next);
                } else {
                    self.close_compaction(None, Level::Warning, out);
                    self.compaction = Some(next);
                }
            }
            Ev::Compaction(entry) => {
                if let Some(at) = entry.get("timestamp").and_then(as_millis) {
                    self.touch(at);
                }
                if let Some(c) = &mut self.compaction {
                    c.entry = Some(entry);
                } else {
                    // A committed compaction with no start marker: it ran between the
                    // previous line's time and this one.
                    let end = entry
                        .get("timestamp")
                        .and_then(as_millis)
                        .or(at)
                        .unwrap_or_else(|| self.now());
                    self.compaction = Some(Compaction {
                        start: before.unwrap_or(end).min(end),
                        reason: None,
                        action: None,
                        entry: Some(entry),
                    });
                    self.close_compaction(Some(json!({})), Level::Default, out);
                }
            }
            Ev::CompactionEnd(v) => {
                if self.compaction.is_none() {
                    self.compaction = Some(Compaction {
                        start: at.unwrap_or_else(|| self.now()),
                        reason: None,
                        action: str_field(&v, "action"),
                        entry: None,
                    });
                }
                // A maintenance check that decided not to compact is not a compaction.
                if v.get("skipped").and_then(Value::as_bool) == Some(true) {
                    self.compaction = None;
                    return;
                }
                // The summarisation request is the compaction's, not the next LLM call's input.
                self.provider_request = None;
                self.provider_response = None;
                let failed = v.get("aborted").and_then(Value::as_bool) == Some(true)
                    || v.get("errorMessage").is_some_and(|e| !e.is_null());
                let level = if failed { Level::Error } else { Level::Default };
                self.close_compaction(Some(v), level, out);
                if !self.compactions_waiting.is_empty() {
                    self.compaction = Some(self.compactions_waiting.remove(0));
                }
            }
            _ => {}
        }
    }

    /// Retries, TTSR and branch summaries: `event` observations.
    fn notice(&mut self, ev: Ev, out: &mut Vec<Record>) {
        match ev {
            Ev::RetryStart(v) => {
                let mut meta = Map::new();
                copy_fields(
                    &v,
                    &mut meta,
                    &["attempt", "maxAttempts", "delayMs", "errorId"],
                );
                let input = v.get("errorMessage").map(|e| json!({ "error": e }));
                let status = str_field(&v, "errorMessage").map(|e| short_line(&e, 200));
                self.event(
                    out,
                    EventObs {
                        status,
                        input,
                        metadata: meta,
                        ..EventObs::new("auto-retry", Level::Warning)
                    },
                );
            }
            Ev::RetryEnd(v) => {
                let success = v.get("success").and_then(Value::as_bool).unwrap_or(false);
                let mut meta = Map::new();
                copy_fields(&v, &mut meta, &["attempt", "success"]);
                let (level, status) = if success {
                    (Level::Default, None)
                } else {
                    let err =
                        str_field(&v, "finalError").unwrap_or_else(|| "retries exhausted".into());
                    (Level::Error, Some(short_line(&err, 200)))
                };
                let output = Some(json!({ "success": success, "finalError": v.get("finalError") }));
                self.event(
                    out,
                    EventObs {
                        status,
                        output,
                        metadata: meta,
                        ..EventObs::new("auto-retry-end", level)
                    },
                );
            }
            Ev::RetryRecovery(r) => {
                let mut meta = Map::new();
                copy_fields(&r, &mut meta, &["attempt", "status", "recovery", "note"]);
                self.event(
                    out,
                    EventObs {
                        status: str_field(&r, "note"),
                        metadata: meta,
                        ..EventObs::new("auto-retry", Level::Warning)
                    },
                );
            }
            Ev::Ttsr(rules) => {
                let status = Some(format!("TTSR rule matched: {}", rules.join(", ")));
                let input = Some(json!({ "rules": rules }));
                self.event(
                    out,
                    EventObs {
                        status,
                        input,
                        ..EventObs::new("ttsr", Level::Warning)
                    },
                );
            }
            Ev::BranchSummary(e) => {
                let mut meta = Map::new();
                copy_fields(&e, &mut meta, &["fromId"]);
                let output = e.get("summary").cloned();
                self.event(
                    out,
                    EventObs {
                        output,
                        metadata: meta,
                        ..EventObs::new("branch-summary", Level::Default)
                    },
                );
            }
            _ => {}
        }
    }

    /// The session's end marker: its kind and reason, and tools it left pending.
    fn session_end(&mut self, data: &Value) {
        let kind = str_field(data, "kind").unwrap_or_else(|| "normal".into());
        if let Some(pending) = data.get("pendingToolCalls").and_then(Value::as_array) {
            for p in pending {
                if let Some(id) = str_field(p, "toolCallId")
                    && let Some(t) = self.tools.get_mut(&id)
                {
                    t.is_error = true;
                }
            }
        }
        self.end = Some((kind, str_field(data, "reason")));
    }
}

impl Session {
    fn open_turn(&mut self, at: Option<Millis>) {
        self.turns += 1;
        let n = self.turns;
        let trace_id = self.trace().ctx.id.clone();
        self.turn = Some(Turn {
            id: self.obs_id(&trace_id, &format!("turn/{n}")),
            n,
            start: at,
            end: at,
            children: 0,
            generations: 0,
            level: Level::Default,
            status: None,
            context: self.context_usage.clone(),
            context_tokens: None,
        });
    }

    fn close_turn(&mut self, out: &mut Vec<Record>) {
        self.settle(None, out);
        let Some(turn) = self.turn.take() else {
            return;
        };
        let start = turn.start.unwrap_or_else(|| self.now());
        let end = turn.end.unwrap_or(start);
        let trace = self.announced_trace(out);
        trace.totals.turns += 1;
        let root = trace.root_id.clone();
        let ctx = trace.ctx.clone();
        let mut meta = Map::new();
        meta.insert("turn".into(), turn.n.into());
        if let Some(tokens) = turn.context_tokens {
            meta.insert("context_tokens".into(), tokens.into());
        }
        if let Some(cu) = &turn.context {
            copy_fields(cu, &mut meta, &["contextWindow", "percent"]);
            if let Some(tokens) = cu.get("tokens").filter(|t| t.is_number()) {
                meta.insert("context_usage_tokens".into(), tokens.clone());
            }
        }
        self.emit(
            Observation {
                id: turn.id,
                trace: ctx,
                parent_id: Some(root),
                kind: ObsKind::Span,
                name: format!("turn {}", turn.n),
                start,
                end: end.max(start),
                input: None,
                output: None,
                metadata: meta,
                level: turn.level,
                status_message: turn.status,
                generation: None,
            },
            out,
        );
    }

    fn message(&mut self, m: Value, at: Option<Millis>, out: &mut Vec<Record>) {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if let Some(ts) = m.get("timestamp").and_then(as_millis) {
            self.touch(ts);
        }
        match role.as_str() {
            "assistant" => self.llm_call(m, out),
            "toolResult" => {
                self.context_msgs.push(chat::omp_message(&m));
                self.tool_result(m, at, out);
            }
            "user" => {
                if self.first_user_text.is_none() {
                    self.first_user_text = Some(message_text(&m));
                }
                let steering = m.get("steering").and_then(Value::as_bool) == Some(true)
                    || m.get("synthetic").and_then(Value::as_bool) == Some(true)
                    || m.get("attribution").and_then(Value::as_str) == Some("agent");
                if !steering {
                    self.prompt(&m, out);
                }
                self.context_msgs.push(chat::omp_message(&m));
            }
            _ => self.context_msgs.push(chat::omp_message(&m)),
        }
    }

    /// A user prompt: the first names the trace; with `--trace-per prompt` each opens a trace.
    fn prompt(&mut self, m: &Value, out: &mut Vec<Record>) {
        // A turn that already made its LLM call is over (session files mark no turn ends);
        // one just opened by `turn_start` is this prompt's first turn.
        if self.turn.as_ref().is_some_and(|t| t.generations > 0) {
            self.close_turn(out);
        }
        self.prompts += 1;
        if let Some(ts) = m.get("timestamp").and_then(as_millis) {
            self.turn_extend(ts);
        }
        let text = message_text(m);
        if self.first_prompt.is_none() && !text.is_empty() {
            self.first_prompt = Some(text.clone());
        }
        if self.cfg.trace_per == TracePer::Prompt && self.prompts > 1 || self.trace.is_none() {
            if self.cfg.trace_per == TracePer::Prompt && self.trace.is_some() {
                // The run's first turn opened before its prompt arrived; it has no children
                // yet, so it moves to the new trace.
                let turn = self.turn.take();
                self.close_trace(TraceEnd::NextPrompt, Level::Default, None, out);
                self.turns = 0;
                if let Some(mut t) = turn {
                    self.turns = 1;
                    let trace_id = self.trace().ctx.id.clone();
                    t.n = 1;
                    t.id = self.obs_id(&trace_id, "turn/1");
                    self.turn = Some(t);
                }
            }
            self.trace();
        }
        self.refresh_ctx();
        let t = self.trace();
        if t.input.is_none() {
            t.prompt = Some(text.clone());
            t.input = Some(Value::String(text));
        }
        self.refresh_ctx();
    }

    fn llm_call(&mut self, m: Value, out: &mut Vec<Record>) {
        if self.turn.is_none() {
            self.open_turn(None);
        }
        let start = m
            .get("timestamp")
            .and_then(as_millis)
            .unwrap_or_else(|| self.now());
        let duration = m.get("duration").and_then(as_millis);
        let known_end = m
            .get("completedAt")
            .and_then(as_millis)
            .or(duration.map(|d| start + d));
        let end_known = known_end.is_some();
        let end = known_end.unwrap_or_else(|| self.now());
        // omp always records how long a call took; pi does not.
        self.weak_pi |= !end_known;
        self.touch(start);
        self.touch(end);
        self.turn_extend(start);
        self.turn_extend(end);
        let ttft = m.get("ttft").and_then(as_millis);
        let stop = str_field(&m, "stopReason").unwrap_or_default();
        let model = str_field(&m, "model");
        let usage = m.get("usage").cloned().unwrap_or(Value::Null);
        let u = usage::read(Some(&usage));
        let (input, cache_read, cache_write) = (u.input, u.cache_read, u.cache_write);

        // Input: the provider request when the input has it (extension stream), else the
        // messages added since the previous call; a retry re-sends the previous input.
        let (gen_input, params) = self.generation_input();
        let response = self.provider_response.take();

        let turn = self.turn.as_mut().expect("opened above");
        turn.generations += 1;
        turn.children += 1;
        let key = format!("gen/{}/{}", turn.n, turn.generations);
        let parent = turn.id.clone();
        let context_tokens = usage
            .get("contextTokens")
            .and_then(Value::as_u64)
            .unwrap_or(input.saturating_add(cache_read).saturating_add(cache_write));
        turn.context_tokens = Some(context_tokens);
        let failed = matches!(stop.as_str(), "error" | "aborted");
        let error = str_field(&m, "errorMessage").filter(|e| !e.is_empty());
        if failed {
            turn.level = Level::Error;
            turn.status = Some(short_line(
                error.as_deref().unwrap_or(&format!("LLM call {stop}")),
                200,
            ));
        }
        let turn_id = turn.id.clone();

        let name = model.clone().unwrap_or_else(|| "llm".into());
        let mut obs = self.observation(
            out,
            &key,
            Some(parent),
            (ObsKind::Generation, name),
            (start, end),
        );
        obs.input = gen_input;
        obs.output = Some(chat::omp_message(&m));
        obs.metadata = generation_metadata(&m, &usage, context_tokens, response.as_ref());
        if failed {
            obs.level = Level::Error;
            obs.status_message = Some(error.clone().unwrap_or_else(|| format!("LLM call {stop}")));
        }
        obs.generation = Some(GenerationInfo {
            model,
            model_parameters: params,
            usage: u.usage.clone(),
            cost: u.cost.clone(),
            completion_start: ttft.map(|t| start + t),
        });
        if end_known {
            self.emit(obs, out);
        } else {
            // pi's live stream gives no end (no `duration`): the next later time does.
            self.pending_gen = Some(obs);
        }

        self.requested_tools(&m, &turn_id, end);

        self.trace().totals.add(&u);
        let text = message_text(&m);
        if !text.is_empty() {
            self.trace().output = Some(Value::String(text));
        }
    }

    /// An LLM call's input, and the model parameters of the provider request it came from.
    /// The parameters are read before the request becomes chat messages.
    fn generation_input(&mut self) -> (Option<Value>, Map<String, Value>) {
        let delta = std::mem::take(&mut self.context_msgs);
        let request = self.provider_request.take().filter(|p| !p.is_null());
        let params = model_parameters(request.as_ref());
        let input = match request {
            Some(p) => Some(chat::provider_request(&p)),
            _ if !delta.is_empty() => Some(Value::Array(delta)),
            _ => self.last_input.clone(),
        };
        self.last_input = input.clone();
        (input, params)
    }

    /// The tool calls an LLM call asked for, keyed by id (their starts may have been seen
    /// already), and the subagents its `task` calls will spawn.
    fn requested_tools(&mut self, m: &Value, turn_id: &str, end: Millis) {
        let mut spawn_requests = Vec::new();
        let blocks = m
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for b in blocks.filter(|b| b.get("type").and_then(Value::as_str) == Some("toolCall")) {
            let Some(id) = str_field(b, "id") else {
                continue;
            };
            let id_for_spawn = id.clone();
            let tool = self.tools.entry(id).or_default();
            tool.parent = Some(turn_id.to_string());
            tool.requested_at = Some(end);
            if str_field(b, "name").as_deref() == Some(TASK_TOOL) {
                spawn_requests.push((id_for_spawn, b.get("arguments").cloned()));
            }
            if tool.name.is_empty() {
                tool.name = str_field(b, "name").unwrap_or_default();
            }
            if tool.args.is_none() {
                tool.args = b.get("arguments").map(strip_intent);
            }
            if tool.intent.is_none() {
                tool.intent = str_field(b, "intent").or_else(|| {
                    b.pointer("/arguments/i")
                        .and_then(Value::as_str)
                        .map(String::from)
                });
            }
        }
        for (id, args) in spawn_requests {
            self.spawn_requested(&id, args.as_ref());
        }
    }

    fn tool_result(&mut self, m: Value, at: Option<Millis>, out: &mut Vec<Record>) {
        let id = str_field(&m, "toolCallId").unwrap_or_default();
        let end = m
            .get("timestamp")
            .and_then(as_millis)
            .or(at)
            .unwrap_or_else(|| self.now());
        // A result with no call seen (input began mid-session) is still one observation.
        let mut tool = self.tools.remove(&id).unwrap_or_default();
        if tool.name.is_empty() {
            tool.name = str_field(&m, "toolName").unwrap_or_else(|| "tool".into());
        }
        tool.is_error |= m.get("isError").and_then(Value::as_bool) == Some(true);
        tool.end = Some(end);
        let output = tool_output(m.get("content"), m.get("details"));
        self.emit_tool(&id, tool, output, None, out);
    }

    fn emit_tool(
        &mut self,
        id: &str,
        tool: Tool,
        output: Option<Value>,
        unfinished: Option<&str>,
        out: &mut Vec<Record>,
    ) {
        let end = tool.end.unwrap_or_else(|| self.now());
        // Synthetic results after an aborted turn never started: they span from the call.
        let start = tool.start.or(tool.requested_at).unwrap_or(end);
        if tool.parent.is_some()
            && tool.parent.as_deref() == self.turn.as_ref().map(|t| t.id.as_str())
        {
            self.turn_extend(start);
            self.turn_extend(end);
        }
        let parent = match tool.parent {
            Some(p) => p,
            None => self.parent_now(),
        };
        let key = format!("tool/{id}");
        let mut obs = self.observation(
            out,
            &key,
            Some(parent),
            (ObsKind::Tool, tool.name.clone()),
            (start, end),
        );
        obs.input = tool.args;
        obs.output = output;
        let mut meta = Map::new();
        meta.insert("tool_call_id".into(), id.into());
        if let Some(i) = tool.intent {
            meta.insert("intent".into(), i.into());
        }
        obs.metadata = meta;
        if tool.name == TASK_TOOL {
            self.spawn_finished(id, &obs);
        }
        if let Some(msg) = unfinished {
            obs.level = Level::Warning;
            obs.status_message = Some(msg.to_string());
        } else if tool.is_error {
            obs.level = Level::Error;
            obs.status_message = Some(tool_error_message(obs.output.as_ref()));
        }
        self.emit(obs, out);
        let t = self.trace();
        t.totals.tool_calls += 1;
        t.totals.tool_errors += u64::from(tool.is_error);
    }

    /// A `task` call was made: note what it asked for (its result names the agents later).
    fn spawn_requested(&mut self, tool_call_id: &str, args: Option<&Value>) {
        let trace = self.trace().ctx.clone();
        let obs_id = self.obs_id(&trace.id, &format!("tool/{tool_call_id}"));
        let mut spawn = Spawn {
            tool_call_id: tool_call_id.to_string(),
            obs_id,
            trace,
            agent_ids: Vec::new(),
            names: Vec::new(),
            tasks: Vec::new(),
        };
        if let Some(a) = args {
            // Flat form `{name?, agent, task}` or batch form `{context, tasks: [{name?, task}]}`.
            let items = a
                .get("tasks")
                .and_then(Value::as_array)
                .map(|t| t.iter().collect::<Vec<_>>())
                .unwrap_or_else(|| vec![a]);
            for item in items {
                spawn
                    .names
                    .extend(str_field(item, "name").filter(|n| !n.is_empty()));
                spawn
                    .tasks
                    .extend(str_field(item, "task").filter(|t| !t.is_empty()));
            }
        }
        self.spawns.retain(|s| s.tool_call_id != tool_call_id);
        self.spawns.push(spawn);
    }

    /// A `task` call's observation is complete: its result's details name the agents.
    fn spawn_finished(&mut self, tool_call_id: &str, obs: &Observation) {
        let details = obs.output.as_ref().and_then(|o| o.get("details"));
        let mut ids = Vec::new();
        for list in ["results", "progress"] {
            for r in details
                .and_then(|d| d.get(list))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                ids.extend(str_field(r, "id"));
            }
        }
        ids.extend(
            details
                .and_then(|d| d.pointer("/async/jobId"))
                .and_then(Value::as_str)
                .map(String::from),
        );
        ids.sort();
        ids.dedup();
        match self
            .spawns
            .iter_mut()
            .find(|s| s.tool_call_id == tool_call_id)
        {
            Some(s) => {
                s.agent_ids = ids;
                s.obs_id = obs.id.clone();
                s.trace = obs.trace.clone();
            }
            None => self.spawns.push(Spawn {
                tool_call_id: tool_call_id.to_string(),
                obs_id: obs.id.clone(),
                trace: obs.trace.clone(),
                agent_ids: ids,
                names: Vec::new(),
                tasks: Vec::new(),
            }),
        }
    }

    fn close_compaction(&mut self, end_event: Option<Value>, level: Level, out: &mut Vec<Record>) {
        let Some(c) = self.compaction.take() else {
            return;
        };
        self.trace().totals.compactions += 1;
        let end = c
            .entry
            .as_ref()
            .and_then(|e| e.get("timestamp"))
            .and_then(as_millis)
            .unwrap_or_else(|| self.now())
            .max(c.start);
        let key = self.next_key("compaction");
        let parent = self.trace().root_id.clone();
        let mut obs = self.observation(
            out,
            &key,
            Some(parent),
            (ObsKind::Span, "compaction".into()),
            (c.start, end),
        );
        let result = end_event
            .as_ref()
            .and_then(|e| e.get("result"))
            .filter(|r| r.is_object());
        let source = c.entry.as_ref().or(result);
        let field = |k: &str| {
            source
                .and_then(|s| s.get(k))
                .cloned()
                .filter(|v| !v.is_null())
        };
        let mut meta = Map::new();
        if let Some(r) = &c.reason {
            meta.insert("reason".into(), r.clone().into());
        }
        if let Some(a) = c
            .action
            .or_else(|| end_event.as_ref().and_then(|e| str_field(e, "action")))
        {
            meta.insert("action".into(), a.into());
        }
        for (k, name) in [
            ("tokensBefore", "tokens_before"),
            ("tokensAfter", "tokens_after"),
            ("method", "method"),
        ] {
            if let Some(v) = field(k) {
                meta.insert(name.into(), v);
            }
        }
        obs.input = field("tokensBefore").map(|t| json!({ "tokensBefore": t }));
        obs.output = field("summary").map(|s| {
            let mut o = Map::new();
            o.insert("summary".into(), s);
            if let Some(t) = field("tokensAfter") {
                o.insert("tokensAfter".into(), t);
            }
            Value::Object(o)
        });
        obs.metadata = meta;
        obs.level = level;
        if let Some(e) = end_event
            .as_ref()
            .and_then(|e| str_field(e, "errorMessage"))
        {
            obs.status_message = Some(short_line(&e, 200));
        } else if level == Level::Warning {
            obs.status_message = Some(CLOSED_AT_EOF.into());
        }
        self.emit(obs, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn event(&mut self, out: &mut Vec<Record>, e: EventObs<'_>) {
        let EventObs {
            name,
            level,
            status,
            input,
            output,
            metadata,
            at,
        } = e;
        self.trace().totals.events += 1;
        let key = self.next_key("event");
        let parent = self.parent_now();
        let now = at.unwrap_or_else(|| self.now());
        self.turn_extend(now);
        let mut obs = self.observation(
            out,
            &key,
            Some(parent),
            (ObsKind::Event, name.into()),
            (now, now),
        );
        obs.level = level;
        obs.status_message = status;
        obs.input = input;
        obs.output = output;
        obs.metadata = metadata;
        self.emit(obs, out);
    }

    /// Goal updates: an event when the goal itself changes (create, status, objective,
    /// budget); token/time accounting updates only refresh the numbers.
    fn goal(&mut self, g: Value, out: &mut Vec<Record>) {
        if g.is_null() {
            if let Some(prev) = self.goal.take() {
                let input = Some(json!({ "objective": prev.objective, "status": "dropped" }));
                self.event(
                    out,
                    EventObs {
                        status: Some("goal dropped".into()),
                        input,
                        ..EventObs::new("goal", Level::Default)
                    },
                );
            }
            return;
        }
        let state = GoalState {
            id: str_field(&g, "id"),
            objective: str_field(&g, "objective"),
            status: str_field(&g, "status"),
            budget: g.get("tokenBudget").and_then(Value::as_u64),
        };
        if self.goal.as_ref() == Some(&state) {
            self.goal_accounting += 1;
            return;
        }
        let objective = state.objective.clone().filter(|o| !o.trim().is_empty());
        let active = matches!(
            state.status.as_deref(),
            Some("active" | "paused" | "budget-limited") | None
        );
        self.active_goal = objective.clone().filter(|_| active);
        // The trace this goal was pursued in keeps its name after the goal completes.
        if let Some(o) = objective {
            self.trace().goal = Some(o);
            self.refresh_ctx();
        }
        let status = state.status.clone().unwrap_or_default();
        let level = match status.as_str() {
            "budget-limited" => Level::Warning,
            _ => Level::Default,
        };
        let mut meta = Map::new();
        copy_fields(
            &g,
            &mut meta,
            &["id", "tokenBudget", "tokensUsed", "timeUsedSeconds"],
        );
        let input = Some(json!({ "objective": state.objective, "status": status }));
        self.goal = Some(state);
        // The goal says when it changed; that is the event's time.
        let at = g.get("updatedAt").and_then(as_millis);
        if let Some(at) = at {
            self.touch(at);
        }
        self.event(
            out,
            EventObs {
                status: Some(format!("goal {status}")),
                input,
                metadata: meta,
                at,
                ..EventObs::new("goal", level)
            },
        );
    }

    /// An input that stopped mid-run: a run without its terminal end, or tools in flight.
    fn looks_unfinished(&self) -> bool {
        self.end.is_none()
            && (self.run_active || !self.tools.is_empty() || self.compaction.is_some())
    }

    /// Close everything still open, the root last.
    fn close(&mut self, how: Close, out: &mut Vec<Record>) {
        let unfinished = how == Close::Eof && self.looks_unfinished();
        let exit_kind = self.end.as_ref().map(|(k, _)| k.clone());
        let abnormal_exit = matches!(
            exit_kind.as_deref(),
            Some("signal" | "fatal" | "process_exit")
        );
        if self.compaction.is_some() {
            self.close_compaction(None, Level::Warning, out);
        }
        for c in std::mem::take(&mut self.compactions_waiting) {
            self.compaction = Some(c);
            self.close_compaction(None, Level::Warning, out);
        }
        let tools = std::mem::take(&mut self.tools);
        for (id, mut tool) in tools {
            if how == Close::Ended && tool.name == YIELD_TOOL {
                // A subagent's `yield` is how it finishes, never recorded as done: it takes
                // no time of its own.
                tool.is_error = false;
                let at = tool
                    .start
                    .or(tool.requested_at)
                    .unwrap_or_else(|| self.now());
                tool.end.get_or_insert(at);
                let output = tool.args.clone();
                self.emit_tool(&id, tool, output, None, out);
                continue;
            }
            let why = if how == Close::Ended {
                "still running when omp exited"
            } else {
                CLOSED_AT_EOF
            };
            let output = tool
                .result
                .as_ref()
                .and_then(|r| tool_output(r.get("content"), r.get("details")));
            self.emit_tool(&id, tool, output, Some(why), out);
        }
        if unfinished && let Some(t) = &mut self.turn {
            t.level = t.level.max(Level::Warning);
            t.status.get_or_insert_with(|| CLOSED_AT_EOF.into());
        }
        self.close_turn(out);
        let (level, status) = if unfinished {
            (Level::Warning, Some(CLOSED_AT_EOF.to_string()))
        } else if abnormal_exit {
            (
                Level::Warning,
                Some(format!(
                    "omp exited abnormally ({})",
                    exit_kind.unwrap_or_default()
                )),
            )
        } else {
            (Level::Default, None)
        };
        self.close_trace(TraceEnd::Session, level, status, out);
    }

    /// Emit the current trace's root and its final trace record.
    fn close_trace(
        &mut self,
        how: TraceEnd,
        level: Level,
        status: Option<String>,
        out: &mut Vec<Record>,
    ) {
        if self.trace.is_none() {
            // A session with nothing in it still becomes a (tiny) trace: it happened.
            if self.header.id.is_none() && self.id.is_none() && self.clock.is_none() {
                return;
            }
            self.trace();
        }
        self.refresh_ctx();
        // A trace closed because the next prompt began ends with its own last observation;
        // a session's last trace ends with the session.
        let end = match how {
            TraceEnd::NextPrompt => self
                .trace
                .as_ref()
                .and_then(|t| t.last)
                .unwrap_or_else(|| self.now()),
            TraceEnd::Session => self.now(),
        };
        let Some(t) = self.trace.take() else { return };
        let tot = t.totals;
        let mut start = t.ctx.timestamp;
        let mut end = end;
        if self.nest.is_some() {
            // The shared context carries the parent's start; a subagent spans its own work
            // (omp disposes it a little after its last step, which is no part of it).
            start = t.start.unwrap_or(start);
            end = t.last.unwrap_or(end);
        }
        let mut meta = Map::new();
        meta.insert("turns".into(), tot.turns.into());
        meta.insert("generations".into(), tot.generations.into());
        meta.insert("tool_calls".into(), tot.tool_calls.into());
        meta.insert("tool_errors".into(), tot.tool_errors.into());
        meta.insert("compactions".into(), tot.compactions.into());
        meta.insert("events".into(), tot.events.into());
        meta.insert(
            "usage".into(),
            json!({
                "input": tot.input,
                "output": tot.output,
                "input_cache_read": tot.cache_read,
                "input_cache_creation": tot.cache_write,
                "total": tot.total_tokens,
            }),
        );
        meta.insert("cost_usd".into(), json!(round_usd(tot.cost)));
        let (parent_id, name) = match &self.nest {
            Some(n) => {
                for (k, v) in &n.metadata {
                    meta.insert(k.clone(), v.clone());
                }
                if let Some(id) = &self.header.id {
                    meta.insert("omp_session_id".into(), id.clone().into());
                }
                (Some(n.parent_id.clone()), n.name.clone())
            }
            None => (None, self.producer().to_string()),
        };
        meta.insert("producer".into(), self.producer().into());
        self.last_anchor = Some(Anchor {
            trace: t.ctx.clone(),
            root_id: t.root_id.clone(),
        });
        out.push(Record::Observation(Observation {
            id: t.root_id.clone(),
            trace: t.ctx.clone(),
            parent_id,
            kind: ObsKind::Agent,
            name,
            start,
            end: end.max(start),
            input: t.input.clone(),
            output: t.output.clone(),
            metadata: meta,
            level,
            status_message: status,
            generation: None,
        }));
        if self.nest.is_some() {
            return;
        }
        out.push(Record::Trace(TraceRecord {
            ctx: t.ctx,
            input: t.input,
            output: t.output,
            at: end.max(start),
            seq: 1,
        }));
    }
}

/// A generation's metadata: what omp records beside usage and cost (provider, response id,
/// stop reason, timings, context size, the provider's request id and HTTP status).
fn generation_metadata(
    m: &Value,
    usage: &Value,
    context_tokens: u64,
    response: Option<&Value>,
) -> Map<String, Value> {
    let mut meta = Map::new();
    copy_fields(
        m,
        &mut meta,
        &[
            "provider",
            "api",
            "responseId",
            "errorStatus",
            "upstreamProvider",
        ],
    );
    let stop = str_field(m, "stopReason").unwrap_or_default();
    meta.insert("stop_reason".into(), stop.into());
    if let Some(d) = m.get("duration").and_then(as_millis) {
        meta.insert("duration_ms".into(), d.into());
    }
    if let Some(t) = m.get("ttft").and_then(as_millis) {
        meta.insert("ttft_ms".into(), t.into());
    }
    if let Some(r) = usage.get("reasoningTokens").filter(|r| r.is_number()) {
        meta.insert("reasoning_tokens".into(), r.clone());
    }
    meta.insert("context_tokens".into(), context_tokens.into());
    if let Some(snap) = m.get("contextSnapshot").and_then(|s| s.get("promptTokens")) {
        meta.insert("prompt_tokens".into(), snap.clone());
    }
    if let Some(r) = response {
        copy_fields(r, &mut meta, &["requestId"]);
        if let Some(s) = r.get("status") {
            meta.insert("http_status".into(), s.clone());
        }
    }
    if let Some(credits) = usage.get("credits").filter(|c| !c.is_null()) {
        meta.insert("credits".into(), credits.clone());
    }
    meta
}

/// Cost sums of floats pick up noise in the 17th digit; a millionth of a cent is plenty.
fn round_usd(v: f64) -> f64 {
    (v * 1e8).round() / 1e8
}

/// First line of `s`, at most `max` chars, with an ellipsis when cut.
fn short_line(s: &str, max: usize) -> String {
    let line = s.trim().lines().next().unwrap_or("").trim();
    if line.chars().count() <= max {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn copy_fields(from: &Value, to: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        if let Some(v) = from.get(*k).filter(|v| !v.is_null()) {
            to.insert((*k).to_string(), v.clone());
        }
    }
}

/// Keys that only carry provider plumbing (signatures, raw blocks): noise in a trace.
const PLUMBING_KEYS: &[&str] = &[
    "textSignature",
    "thinkingSignature",
    "thoughtSignature",
    "partialArgs",
    "streamIndex",
    "rawBlock",
    "providerMetadata",
    "providerPayload",
    "customWireName",
];

fn clean_block(b: &Value) -> Value {
    match b {
        Value::Object(o) => {
            let mut c: Map<String, Value> = o
                .iter()
                .filter(|(k, _)| !PLUMBING_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if c.get("type").and_then(Value::as_str) == Some("toolCall")
                && let Some(args) = c.get("arguments")
            {
                let stripped = strip_intent(args);
                c.insert("arguments".into(), stripped);
            }
            Value::Object(c)
        }
        other => other.clone(),
    }
}

/// Tool arguments without omp's intent key `i` (it is metadata, not an argument).
fn strip_intent(args: &Value) -> Value {
    match args {
        Value::Object(o) if o.contains_key("i") => {
            let mut c = o.clone();
            c.remove("i");
            Value::Object(c)
        }
        other => other.clone(),
    }
}

/// A tool's output: its text (joined) when the result is text only, else the blocks; plus
/// `details` (exit code, wall time, diff, …) when present.
fn tool_output(content: Option<&Value>, details: Option<&Value>) -> Option<Value> {
    let content = content?;
    let body = match content {
        Value::Array(blocks)
            if blocks
                .iter()
                .all(|b| b.get("type").and_then(Value::as_str) == Some("text")) =>
        {
            Value::String(
                blocks
                    .iter()
                    .filter_map(|b| b.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        }
        Value::Array(blocks) => Value::Array(blocks.iter().map(clean_block).collect()),
        other => other.clone(),
    };
    match details.filter(|d| d.as_object().is_some_and(|o| !o.is_empty())) {
        Some(d) => Some(json!({ "content": body, "details": d })),
        None => Some(body),
    }
}

/// Status message of a failed tool: its exit code when it has one, else its first line.
fn tool_error_message(output: Option<&Value>) -> String {
    let details = output.and_then(|o| o.get("details"));
    if let Some(code) = details
        .and_then(|d| d.get("exitCode"))
        .and_then(Value::as_i64)
    {
        return format!("exit code {code}");
    }
    let text = match output {
        Some(Value::String(s)) => s.as_str(),
        Some(o) => o.get("content").and_then(Value::as_str).unwrap_or(""),
        None => "",
    };
    let line = short_line(text, 200);
    if line.is_empty() {
        "tool returned an error".into()
    } else {
        line
    }
}

/// Request parameters worth filtering on, from a provider request body.
fn model_parameters(request: Option<&Value>) -> Map<String, Value> {
    const KEYS: &[&str] = &[
        "max_tokens",
        "max_completion_tokens",
        "max_output_tokens",
        "temperature",
        "top_p",
        "top_k",
        "reasoning_effort",
        "tool_choice",
        "service_tier",
        "stream",
    ];
    let mut params = Map::new();
    let Some(Value::Object(req)) = request else {
        return params;
    };
    for k in KEYS {
        match req.get(*k) {
            Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => {
                params.insert((*k).into(), v.clone());
            }
            Some(v @ Value::Object(_)) => {
                params.insert((*k).into(), v.to_string().into());
            }
            _ => {}
        }
    }
    for k in ["thinking", "reasoning"] {
        if let Some(v) = req.get(k).filter(|v| !v.is_null()) {
            params.insert(k.into(), v.to_string().into());
        }
    }
    params
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
