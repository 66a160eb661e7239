//! The session state: its trace, turns, tools in flight, compactions and goal, and the
//! events that change them (tool, compaction and notice events, the session's end).

use super::*;

/// An `event` observation to emit (see `Session::event`).
pub(super) struct EventObs<'a> {
    pub(super) name: &'a str,
    pub(super) level: Level,
    pub(super) status: Option<String>,
    pub(super) input: Option<Value>,
    pub(super) output: Option<Value>,
    pub(super) metadata: Map<String, Value>,
    /// Its time, when the input gives one (else the latest seen).
    pub(super) at: Option<Millis>,
}

impl<'a> EventObs<'a> {
    pub(super) fn new(name: &'a str, level: Level) -> Self {
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
pub(super) struct Totals {
    pub(super) input: u64,
    pub(super) output: u64,
    pub(super) cache_read: u64,
    pub(super) cache_write: u64,
    pub(super) total_tokens: u64,
    pub(super) cost: f64,
    pub(super) generations: u64,
    pub(super) tool_calls: u64,
    pub(super) tool_errors: u64,
    pub(super) turns: u64,
    pub(super) compactions: u64,
    pub(super) events: u64,
}

impl Totals {
    /// One more LLM call (or side call) with these buckets.
    pub(super) fn add(&mut self, u: &usage::Usage) {
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
pub(super) struct Trace {
    pub(super) ctx: Arc<TraceCtx>,
    pub(super) root_id: String,
    /// None until the input gives a time.
    pub(super) start: Option<Millis>,
    /// Whether the opening trace record went out.
    pub(super) announced: bool,
    pub(super) input: Option<Value>,
    pub(super) output: Option<Value>,
    pub(super) totals: Totals,
    /// The objective of a goal pursued in this trace.
    pub(super) goal: Option<String>,
    /// This trace's first prompt.
    pub(super) prompt: Option<String>,
    /// The latest end among the observations emitted in it.
    pub(super) last: Option<Millis>,
}

pub(super) struct Turn {
    pub(super) id: String,
    pub(super) n: u64,
    pub(super) start: Option<Millis>,
    pub(super) end: Option<Millis>,
    /// Children emitted under this turn (a childless turn can still move to a new trace).
    pub(super) children: u64,
    pub(super) generations: u64,
    pub(super) level: Level,
    pub(super) status: Option<String>,
    pub(super) context: Option<Value>,
    pub(super) context_tokens: Option<u64>,
}

#[derive(Default)]
pub(super) struct Tool {
    pub(super) name: String,
    pub(super) args: Option<Value>,
    pub(super) intent: Option<String>,
    /// The turn whose LLM call asked for it; None while its start was seen before the call.
    pub(super) parent: Option<String>,
    pub(super) start: Option<Millis>,
    /// When the call that requested it finished: the start when no start was recorded.
    pub(super) requested_at: Option<Millis>,
    /// From `tool_execution_end`, in case the result message never comes.
    pub(super) result: Option<Value>,
    pub(super) is_error: bool,
    pub(super) end: Option<Millis>,
}

pub(super) struct Compaction {
    pub(super) start: Millis,
    pub(super) reason: Option<String>,
    pub(super) action: Option<String>,
    pub(super) entry: Option<Value>,
}

/// Last known goal, to tell a real change from token accounting.
#[derive(PartialEq)]
pub(super) struct GoalState {
    pub(super) id: Option<String>,
    pub(super) objective: Option<String>,
    pub(super) status: Option<String>,
    pub(super) budget: Option<u64>,
}

pub(super) struct Session {
    pub(super) cfg: Arc<MapConfig>,
    pub(super) nest: Option<Arc<Nest>>,
    /// Set when the nest came from the stream (see `Mapper::stream_nest`).
    pub(super) nest_link: Option<NestLink>,
    /// The first user message, whoever wrote it (a subagent's is its assignment).
    pub(super) first_user_text: Option<String>,
    /// `task` calls, for nesting subagent sessions.
    pub(super) spawns: Vec<Spawn>,
    /// The last closed trace.
    pub(super) last_anchor: Option<Anchor>,
    pub(super) id: Option<String>,
    pub(super) anon_seed: String,
    pub(super) header: Header,
    pub(super) title: Option<String>,
    pub(super) goal: Option<GoalState>,
    /// The objective of the goal while it is active.
    pub(super) active_goal: Option<String>,
    /// Traces opened so far (a later one starts at its prompt, not at the session header).
    pub(super) traces_opened: u64,
    pub(super) goal_accounting: u64,
    pub(super) model: Option<String>,
    pub(super) trace: Option<Trace>,
    pub(super) prompts: u64,
    pub(super) first_prompt: Option<String>,
    pub(super) turn: Option<Turn>,
    pub(super) turns: u64,
    pub(super) tools: BTreeMap<String, Tool>,
    pub(super) context_msgs: Vec<Value>,
    pub(super) last_input: Option<Value>,
    pub(super) provider_request: Option<Value>,
    pub(super) provider_response: Option<Value>,
    pub(super) compaction: Option<Compaction>,
    pub(super) clock: Option<Millis>,
    pub(super) run_active: bool,
    pub(super) context_usage: Option<Value>,
    /// `session_exit` kind and reason once the end marker was seen.
    pub(super) end: Option<(String, Option<String>)>,
    /// Counts per key prefix, so repeated keys stay unique.
    pub(super) keys: HashMap<&'static str, u64>,
    /// A generation whose end the input did not give, until a later time does.
    pub(super) pending_gen: Option<Observation>,
    /// Compactions started while another was running, oldest first.
    pub(super) compactions_waiting: Vec<Compaction>,
    /// The agent that wrote the input, when a line showed it.
    pub(super) producer: Option<&'static str>,
    /// An LLM call without a recorded duration: pi, unless a line says omp.
    pub(super) weak_pi: bool,
    /// The name the whole session's trace ends with, when known up front.
    pub(super) final_name: Option<String>,
    /// The event being handled is from an abandoned `/tree` branch.
    pub(super) abandoned: bool,
}

impl Session {
    pub(super) fn new(
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
    pub(super) fn producer(&self) -> &'static str {
        match (self.producer, self.weak_pi) {
            (Some(p), _) => p,
            (None, true) => "pi",
            (None, false) => "omp",
        }
    }

    /// Emit a generation still waiting for its end: at `at` when that is later than its
    /// start, else as it is.
    pub(super) fn settle(&mut self, at: Option<Millis>, out: &mut Vec<Record>) {
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
    pub(super) fn side_call(&mut self, e: Value, at: Option<Millis>, out: &mut Vec<Record>) {
        let at = at.unwrap_or_else(|| self.now());
        self.touch(at);
        let side = SideCall::read(&e);
        let u = usage::read(side.call.usage);
        let parent = self.parent_now();
        let key = self.next_key("side");
        let name = side.purpose.unwrap_or_else(|| "side call".into());
        let mut obs = self.observation(
            out,
            &key,
            Some(parent),
            (ObsKind::Generation, name),
            (at, at),
        );
        obs.metadata.extend(side.meta);
        let stop = side.call.stop_reason;
        obs.metadata
            .insert("stop_reason".into(), stop.clone().into());
        obs.metadata.insert("side_call".into(), true.into());
        if let Some(err) = side.call.error {
            obs.level = Level::Error;
            obs.status_message = Some(short_line(&err, 200));
        } else if matches!(stop.as_str(), "error" | "aborted") {
            obs.level = Level::Error;
            obs.status_message = Some(format!("LLM call {stop}"));
        }
        obs.generation = Some(GenerationInfo {
            model: side.call.model,
            model_parameters: Map::new(),
            usage: u.usage.clone(),
            cost: u.cost.clone(),
            completion_start: None,
        });
        self.emit(obs, out);
        self.trace().totals.add(&u);
    }

    /// Advance the clock with a time from the input.
    pub(super) fn touch(&mut self, at: Millis) {
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
    pub(super) fn turn_extend(&mut self, at: Millis) {
        if let Some(t) = &mut self.turn {
            t.start = Some(t.start.map_or(at, |s| s.min(at)));
            t.end = Some(t.end.map_or(at, |e| e.max(at)));
        }
    }

    pub(super) fn now(&self) -> Millis {
        self.clock.or(self.header.timestamp).unwrap_or(0)
    }

    pub(super) fn session_id(&mut self) -> String {
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
    pub(super) fn obs_id(&self, trace_id: &str, key: &str) -> String {
        match &self.nest {
            Some(n) => span_id(trace_id, &format!("{}{key}", n.key_prefix)),
            None => span_id(trace_id, key),
        }
    }

    pub(super) fn anchor(&self) -> Option<Anchor> {
        self.trace
            .as_ref()
            .map(|t| Anchor {
                trace: t.ctx.clone(),
                root_id: t.root_id.clone(),
            })
            .or_else(|| self.last_anchor.clone())
    }

    pub(super) fn next_key(&mut self, prefix: &'static str) -> String {
        let n = self.keys.entry(prefix).or_insert(0);
        *n += 1;
        format!("{prefix}/{n}")
    }

    /// A goal active during the trace names it; otherwise the session title and the first
    /// prompt (per session), or the trace's own prompt (per prompt).
    pub(super) fn trace_name(&self) -> String {
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

    pub(super) fn build_ctx(&mut self, id: String, start: Millis) -> TraceCtx {
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
    pub(super) fn trace(&mut self) -> &mut Trace {
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
    pub(super) fn announced_trace(&mut self, out: &mut Vec<Record>) -> &mut Trace {
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
    pub(super) fn refresh_ctx(&mut self) {
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
    pub(super) fn emit(&mut self, mut obs: Observation, out: &mut Vec<Record>) {
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
    pub(super) fn parent_now(&mut self) -> String {
        if let Some(t) = &mut self.turn {
            t.children += 1;
            return t.id.clone();
        }
        self.trace().root_id.clone()
    }

    pub(super) fn observation(
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

    pub(super) fn handle(&mut self, event: Event, out: &mut Vec<Record>) {
        let before = self.clock;
        self.abandoned = event.abandoned;
        match (event.producer, self.producer) {
            (Some("omp"), _) | (Some(_), None) => self.producer = event.producer,
            _ => {}
        }
        // A generation waiting for its end ends at the first later time.
        let line_time = match &event.ev {
            Ev::Message(m) => timestamp(m).or(event.at),
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
    pub(super) fn tool_event(&mut self, ev: Ev, at: Option<Millis>) {
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
    pub(super) fn compaction_event(
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
                if let Some(at) = timestamp(&entry) {
                    self.touch(at);
                }
                if let Some(c) = &mut self.compaction {
                    c.entry = Some(entry);
                } else {
                    // A committed compaction with no start marker: it ran between the
                    // previous line's time and this one.
                    let end = timestamp(&entry).or(at).unwrap_or_else(|| self.now());
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
                let end = CompactionEnd::read(&v);
                let (skipped, failed) = (end.skipped, end.failed);
                if self.compaction.is_none() {
                    self.compaction = Some(Compaction {
                        start: at.unwrap_or_else(|| self.now()),
                        reason: None,
                        action: end.action,
                        entry: None,
                    });
                }
                // A maintenance check that decided not to compact is not a compaction.
                if skipped {
                    self.compaction = None;
                    return;
                }
                // The summarisation request is the compaction's, not the next LLM call's input.
                self.provider_request = None;
                self.provider_response = None;
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
    pub(super) fn notice(&mut self, ev: Ev, out: &mut Vec<Record>) {
        match ev {
            Ev::RetryStart(v) => {
                let r = RetryStart::read(&v);
                let meta = r.meta;
                let input = r.error.map(|e| json!({ "error": e }));
                let status = r.error.and_then(Value::as_str).map(|e| short_line(e, 200));
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
                let r = RetryEnd::read(&v);
                let success = r.success;
                let (level, status) = if success {
                    (Level::Default, None)
                } else {
                    let err = r.final_error.and_then(Value::as_str);
                    (
                        Level::Error,
                        Some(short_line(err.unwrap_or("retries exhausted"), 200)),
                    )
                };
                let output = Some(json!({ "success": success, "finalError": r.final_error }));
                let meta = r.meta;
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
                let r = RetryRecovery::read(&r);
                self.event(
                    out,
                    EventObs {
                        status: r.note,
                        metadata: r.meta,
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
                let b = BranchSummary::read(&e);
                let meta = b.meta;
                let output = b.summary.cloned();
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
    pub(super) fn session_end(&mut self, data: &Value) {
        let end = SessionEnd::read(data);
        for id in &end.pending_tools {
            if let Some(t) = self.tools.get_mut(id) {
                t.is_error = true;
            }
        }
        self.end = Some((end.kind, end.reason));
    }
}
