//! The conversation: turns, prompts, LLM calls and their generations, tool calls and
//! their results, subagent spawns, events and goals, and closing what is open.

use super::*;

impl Session {
    pub(super) fn open_turn(&mut self, at: Option<Millis>) {
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

    pub(super) fn close_turn(&mut self, out: &mut Vec<Record>) {
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
        if let Some(cu) = turn.context.as_ref().map(ContextUsage::read) {
            meta.extend(cu.meta);
            if let Some(tokens) = cu.tokens {
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

    pub(super) fn message(&mut self, m: Value, at: Option<Millis>, out: &mut Vec<Record>) {
        let Message {
            role,
            at: ts,
            from_agent,
        } = Message::read(&m);
        if let Some(ts) = ts {
            self.touch(ts);
        }
        match role {
            Role::Assistant => self.llm_call(m, out),
            Role::ToolResult => {
                self.context_msgs.push(chat::omp_message(&m));
                self.tool_result(m, at, out);
            }
            Role::User => {
                if self.first_user_text.is_none() {
                    self.first_user_text = Some(message_text(&m));
                }
                if !from_agent {
                    self.prompt(&m, out);
                }
                self.context_msgs.push(chat::omp_message(&m));
            }
            Role::Other => self.context_msgs.push(chat::omp_message(&m)),
        }
    }

    /// A user prompt: the first names the trace; with `--trace-per prompt` each opens a trace.
    pub(super) fn prompt(&mut self, m: &Value, out: &mut Vec<Record>) {
        // A turn that already made its LLM call is over (session files mark no turn ends);
        // one just opened by `turn_start` is this prompt's first turn.
        if self.turn.as_ref().is_some_and(|t| t.generations > 0) {
            self.close_turn(out);
        }
        self.prompts += 1;
        if let Some(ts) = timestamp(m) {
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

    pub(super) fn llm_call(&mut self, m: Value, out: &mut Vec<Record>) {
        if self.turn.is_none() {
            self.open_turn(None);
        }
        let call = LlmCall::read(&m);
        let start = call.started.unwrap_or_else(|| self.now());
        let known_end = call.completed.or(call.duration.map(|d| start + d));
        let end_known = known_end.is_some();
        let end = known_end.unwrap_or_else(|| self.now());
        // omp always records how long a call took; pi does not.
        self.weak_pi |= !end_known;
        self.touch(start);
        self.touch(end);
        self.turn_extend(start);
        self.turn_extend(end);
        let stop = call.stop_reason.as_str();
        let model = call.model.clone();
        let usage = call.usage.cloned().unwrap_or(Value::Null);
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
        let context_tokens = call
            .context_tokens()
            .unwrap_or(input.saturating_add(cache_read).saturating_add(cache_write));
        turn.context_tokens = Some(context_tokens);
        let failed = matches!(stop, "error" | "aborted");
        let error = call.error.clone();
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
        obs.metadata = generation_metadata(&call, context_tokens, response.as_ref());
        if failed {
            obs.level = Level::Error;
            obs.status_message = Some(error.clone().unwrap_or_else(|| format!("LLM call {stop}")));
        }
        obs.generation = Some(GenerationInfo {
            model,
            model_parameters: params,
            usage: u.usage.clone(),
            cost: u.cost.clone(),
            completion_start: call.ttft.map(|t| start + t),
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
    pub(super) fn generation_input(&mut self) -> (Option<Value>, Map<String, Value>) {
        let delta = std::mem::take(&mut self.context_msgs);
        let request = self.provider_request.take().filter(|p| !p.is_null());
        let params = chat::model_parameters(request.as_ref());
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
    pub(super) fn requested_tools(&mut self, m: &Value, turn_id: &str, end: Millis) {
        let mut spawn_requests = Vec::new();
        for call in tool_calls(m) {
            let tool = self.tools.entry(call.id.clone()).or_default();
            tool.parent = Some(turn_id.to_string());
            tool.requested_at = Some(end);
            if call.name.as_deref() == Some(TASK_TOOL) {
                spawn_requests.push((call.id, call.arguments.cloned()));
            }
            if tool.name.is_empty() {
                tool.name = call.name.unwrap_or_default();
            }
            if tool.args.is_none() {
                tool.args = call.arguments.map(strip_intent);
            }
            if tool.intent.is_none() {
                tool.intent = call.intent;
            }
        }
        for (id, args) in spawn_requests {
            self.spawn_requested(&id, args.as_ref());
        }
    }

    pub(super) fn tool_result(&mut self, mut m: Value, at: Option<Millis>, out: &mut Vec<Record>) {
        let result = ToolResult::read(&m);
        let id = result.call_id;
        let end = result.at.or(at).unwrap_or_else(|| self.now());
        // A result with no call seen (input began mid-session) is still one observation.
        let mut tool = self.tools.remove(&id).unwrap_or_default();
        if tool.name.is_empty() {
            tool.name = result.tool.unwrap_or_else(|| "tool".into());
        }
        tool.is_error |= result.is_error;
        tool.end = Some(end);
        // The message is read: its content and details move into the output.
        let mut take = |k: &str| m.get_mut(k).map(Value::take);
        let output = tool_output(take("content"), take("details"));
        self.emit_tool(&id, tool, output, None, out);
    }

    pub(super) fn emit_tool(
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
    pub(super) fn spawn_requested(&mut self, tool_call_id: &str, args: Option<&Value>) {
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
        if let Some(req) = args.map(TaskRequest::read) {
            spawn.names = req.names;
            spawn.tasks = req.tasks;
        }
        self.spawns.retain(|s| s.tool_call_id != tool_call_id);
        self.spawns.push(spawn);
    }

    /// A `task` call's observation is complete: its result's details name the agents.
    pub(super) fn spawn_finished(&mut self, tool_call_id: &str, obs: &Observation) {
        let ids = spawned_agent_ids(obs.output.as_ref());
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

    pub(super) fn close_compaction(
        &mut self,
        end_event: Option<Value>,
        level: Level,
        out: &mut Vec<Record>,
    ) {
        let Some(c) = self.compaction.take() else {
            return;
        };
        self.trace().totals.compactions += 1;
        let end = c
            .entry
            .as_ref()
            .and_then(timestamp)
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
        let end_event = end_event.as_ref().map(CompactionEnd::read);
        let figures = c
            .entry
            .as_ref()
            .or(end_event.as_ref().and_then(|e| e.result))
            .map(CompactionFigures::read)
            .unwrap_or_default();
        let mut meta = Map::new();
        if let Some(r) = &c.reason {
            meta.insert("reason".into(), r.clone().into());
        }
        if let Some(a) = c
            .action
            .or_else(|| end_event.as_ref().and_then(|e| e.action.clone()))
        {
            meta.insert("action".into(), a.into());
        }
        for (v, name) in [
            (&figures.tokens_before, "tokens_before"),
            (&figures.tokens_after, "tokens_after"),
            (&figures.method, "method"),
        ] {
            if let Some(v) = v {
                meta.insert(name.into(), v.clone());
            }
        }
        obs.input = figures
            .tokens_before
            .clone()
            .map(|t| json!({ "tokensBefore": t }));
        obs.output = figures.summary.map(|s| {
            let mut o = Map::new();
            o.insert("summary".into(), s);
            if let Some(t) = figures.tokens_after {
                o.insert("tokensAfter".into(), t);
            }
            Value::Object(o)
        });
        obs.metadata = meta;
        obs.level = level;
        if let Some(e) = end_event.and_then(|e| e.error) {
            obs.status_message = Some(short_line(&e, 200));
        } else if level == Level::Warning {
            obs.status_message = Some(CLOSED_AT_EOF.into());
        }
        self.emit(obs, out);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn event(&mut self, out: &mut Vec<Record>, e: EventObs<'_>) {
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
    pub(super) fn goal(&mut self, g: Value, out: &mut Vec<Record>) {
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
        let goal = Goal::read(&g);
        let state = GoalState {
            id: goal.id,
            objective: goal.objective,
            status: goal.status,
            budget: goal.budget,
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
        let meta = goal.meta;
        let input = Some(json!({ "objective": state.objective, "status": status }));
        self.goal = Some(state);
        // The goal says when it changed; that is the event's time.
        let at = goal.updated;
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
    pub(super) fn looks_unfinished(&self) -> bool {
        self.end.is_none()
            && (self.run_active || !self.tools.is_empty() || self.compaction.is_some())
    }

    /// Close everything still open, the root last.
    pub(super) fn close(&mut self, how: Close, out: &mut Vec<Record>) {
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
                .map(ToolResult::read)
                .and_then(|r| tool_output(r.content.cloned(), r.details.cloned()));
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
    pub(super) fn close_trace(
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
