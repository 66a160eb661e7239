//! The OMP input formats: detecting which one a source holds, and decoding the two event
//! streams (`omp --mode json` stdout and extension hook events) into one vocabulary, [`Ev`].
//!
//! Session logs are decoded into the same vocabulary by `session_log.rs`. Pure: no I/O.

use serde_json::{Map, Value};

use crate::decode::jsonline::Keep;
use crate::model::{Millis, parse_iso};

/// The three formats omp-langfuse reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `omp --mode json` stdout (also RPC mode's event frames).
    Live,
    /// One hook event per line, as written by an extension (the `--events` bridge).
    Extension,
    /// A recorded session file (`~/.omp/agent/sessions/<dir>/<ts>_<id>.jsonl`).
    SessionLog,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Live => "live stream",
            Format::Extension => "extension events",
            Format::SessionLog => "session log",
        }
    }
}

/// Lines examined before settling on a format.
pub const DETECT_LINES: usize = 64;

/// Event types only the extension API produces (never printed by `--mode json`).
const EXTENSION_ONLY: &[&str] = &[
    "session_start",
    "session_shutdown",
    "session_stop",
    "session_compact",
    "session_switch",
    "session_before_switch",
    "session_branch",
    "session_before_branch",
    "session_before_compact",
    "session_tree",
    "session_before_tree",
    "input",
    "before_agent_start",
    "before_provider_request",
    "after_provider_response",
    "tool_call",
    "tool_result",
    "context",
    "user_bash",
    "user_python",
];

/// Entry types only a session file holds.
const LOG_ONLY: &[&str] = &[
    "title",
    "message",
    "model_change",
    "thinking_level_change",
    "service_tier_change",
    "compaction",
    "branch_summary",
    "reset_boundary",
    "custom",
    "custom_message",
    "label",
    "title_change",
    "ttsr_injection",
    "credential_pin",
    "session_init",
    "mode_change",
];

/// What one parsed line says about the format, if anything.
pub fn format_hint(v: &Value) -> Option<Format> {
    let obj = v.as_object()?;
    let ty = obj.get("type").and_then(Value::as_str).unwrap_or("");
    if LOG_ONLY.contains(&ty)
        || (obj.contains_key("parentId") && obj.get("timestamp").is_some_and(Value::is_string))
    {
        return Some(Format::SessionLog);
    }
    if EXTENSION_ONLY.contains(&ty)
        || obj.get("ts").is_some_and(Value::is_number)
        || obj.contains_key("sessionId") && ty != "session"
        || (ty == "turn_start" && obj.contains_key("turnIndex"))
    {
        return Some(Format::Extension);
    }
    if ty.starts_with("agent_")
        || ty.starts_with("turn_")
        || ty.starts_with("message_")
        || ty.starts_with("tool_execution_")
        || ty == "ready"
        || ty == "response"
    {
        return Some(Format::Live);
    }
    None
}

/// Decides a source's format from its first lines, as soon as one is decisive.
///
/// The session header line is shared by the live stream and the session file, so it decides
/// nothing on its own; the lines after it do. A source with no decisive line among the first
/// [`DETECT_LINES`] is taken as a live stream (the most lenient decoder).
#[derive(Debug, Default)]
pub struct Detector {
    seen: usize,
    header: bool,
}

impl Detector {
    /// Look at one more parsed line; `Some` once the format is known.
    pub fn push(&mut self, v: &Value) -> Option<Format> {
        self.seen += 1;
        if v.get("type").and_then(Value::as_str) == Some("session") {
            self.header = true;
            return None;
        }
        match format_hint(v) {
            Some(Format::Live) if !self.header => None,
            Some(f) => Some(f),
            None => None,
        }
        .or((self.seen >= DETECT_LINES).then_some(Format::Live))
    }

    /// The decision when the input ended (or could not be parsed) before anything decided.
    pub fn finish(&self) -> Format {
        Format::Live
    }
}

/// Detect the format of a complete list of lines.
#[cfg(test)]
pub fn detect<'a>(lines: impl IntoIterator<Item = &'a Value>) -> Format {
    let mut d = Detector::default();
    for v in lines {
        if let Some(f) = d.push(v) {
            return f;
        }
    }
    d.finish()
}

/// The session header (`{"type":"session",…}`), shared by the live stream and session files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Header {
    pub id: Option<String>,
    pub timestamp: Option<Millis>,
    pub cwd: Option<String>,
    pub title: Option<String>,
    pub parent_session: Option<String>,
    pub version: Option<u64>,
    /// The session's own file (the bridge's `sessionFile`): a subagent's is
    /// `<parent stem>/<agent id>.jsonl`.
    pub file: Option<String>,
}

impl Header {
    pub fn from_value(v: &Value) -> Header {
        Header {
            id: str_field(v, "id"),
            timestamp: v
                .get("timestamp")
                .and_then(Value::as_str)
                .and_then(parse_iso),
            cwd: str_field(v, "cwd"),
            title: str_field(v, "title").filter(|t| !t.is_empty()),
            parent_session: str_field(v, "parentSession"),
            version: v.get("version").and_then(Value::as_u64),
            file: str_field(v, "sessionFile"),
        }
    }
}

/// One decoded OMP event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// A time the input gives for this line (extension `ts`, entry `timestamp`), if any.
    pub at: Option<Millis>,
    /// The session this line belongs to, when the line says (extension `sessionId`).
    pub session: Option<String>,
    /// `{tokens, contextWindow, percent}` when the line carries the extension context's usage.
    pub context: Option<Value>,
    pub ev: Ev,
    /// Which agent wrote this line, when a type only one of them writes shows it
    /// (`omp` or `pi`).
    pub producer: Option<&'static str>,
    /// From an entry on a branch the user left with `/tree` (session files).
    pub abandoned: bool,
}

/// The vocabulary the mapper understands. Payloads stay JSON: the mapper picks fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Ev {
    /// A session begins.
    Session(Header),
    /// The session got a (new) title.
    Title(String),
    /// The name the session's trace ends with, known up front because the whole session
    /// was read before it is mapped (session files): every row of the trace carries it.
    TraceName(String),
    /// The model was switched (`provider/model`).
    ModelChange(String),
    /// `agent_start`: an agent-loop run begins (a prompt, or a continuation).
    RunStart,
    /// `agent_end`. `terminal: false` means a continuation is already scheduled.
    RunEnd {
        terminal: bool,
    },
    /// One LLM call plus its tool executions begins / ends.
    TurnStart,
    TurnEnd,
    /// A finished message of any role (`message_end`, or a session-file `message` entry).
    Message(Value),
    /// The provider-native request body (extension `before_provider_request`).
    ProviderRequest(Value),
    /// Status and request id of a provider response (extension `after_provider_response`).
    ProviderResponse(Value),
    /// A tool begins running.
    ToolStart {
        id: String,
        name: String,
        args: Option<Value>,
        intent: Option<String>,
    },
    /// Streaming tool output: a snapshot of the result so far (kept in case omp dies).
    ToolUpdate {
        id: String,
        partial: Value,
    },
    /// A tool finished (its `toolResult` message follows).
    ToolEnd {
        id: String,
        name: String,
        result: Value,
        is_error: bool,
    },
    /// Automatic compaction begins.
    CompactionStart {
        reason: Option<String>,
        action: Option<String>,
    },
    /// Automatic compaction ends: the whole `auto_compaction_end` object.
    CompactionEnd(Value),
    /// A committed compaction entry (session file, or extension `session_compact`).
    Compaction(Value),
    /// `auto_retry_start` / `auto_retry_end` objects.
    RetryStart(Value),
    RetryEnd(Value),
    /// A failed LLM call that a later one superseded (session file `retryRecovery`).
    RetryRecovery(Value),
    /// TTSR rules fired (names).
    Ttsr(Vec<String>),
    /// Goal state: the `Goal` object (or null when dropped).
    Goal(Value),
    /// `/tree` branch summary entry.
    BranchSummary(Value),
    /// The session ended: `session_exit` data, or `{}` for `session_shutdown`.
    SessionEnd(Value),
    /// A side model call outside the conversation (omp's `model_usage` entry: the
    /// auto-thinking classifier, a judge…): the whole entry.
    ModelUsage(Value),
    /// A known type that produces nothing (streaming deltas, UI notices, RPC frames…).
    Ignored,
    /// A type this tool does not know.
    Unknown(String),
}

/// With `--events=-` the bridge's lines share omp's stdout with omp's own `--mode json`
/// lines, which report the same events again (without times or session ids). A bridge line
/// carries numeric `seq` and `ts`. omp's own lines belong to the session of omp's header
/// line; once bridge lines report that session, omp's lines are duplicates and are dropped,
/// except the header itself (omp prints its only copy). Bridge lines of other sessions (a
/// subagent's) drop nothing. Checked with the real omp 18.2.3: the bridge's
/// `session_start` is the first line, before omp's header.
#[derive(Debug, Default)]
pub struct BridgeFilter {
    /// Sessions the bridge reported.
    bridge_sessions: std::collections::HashSet<String>,
    /// The session of omp's own header line.
    json_session: Option<String>,
}

impl BridgeFilter {
    /// Whether a parsed line should be decoded.
    pub fn keep(&mut self, v: &Value) -> bool {
        let is_bridge =
            v.get("seq").is_some_and(Value::is_number) && v.get("ts").is_some_and(Value::is_number);
        if is_bridge {
            if let Some(s) = v.get("sessionId").and_then(Value::as_str) {
                self.bridge_sessions.insert(s.to_string());
            }
            return true;
        }
        if v.get("type").and_then(Value::as_str) == Some("session") {
            self.json_session = str_field(v, "id");
            return true;
        }
        match &self.json_session {
            Some(s) => !self.bridge_sessions.contains(s),
            // No header (yet): duplicates when the bridge is talking at all.
            None => self.bridge_sessions.is_empty(),
        }
    }
}

/// Types the stream decoders know and deliberately ignore.
const STREAM_IGNORED: &[&str] = &[
    "message_start",
    "message_update",
    "tool_call",
    "tool_result",
    "input",
    "before_agent_start",
    "context",
    "session_stop",
    "notice",
    "todo_reminder",
    "todo_auto_clear",
    "irc_message",
    "model_changed",
    "thinking_level_changed",
    "retry_fallback_applied",
    "retry_fallback_succeeded",
    "advisor_cost_changed",
    "credential_disabled",
    "mcp_notification",
    "tool_approval_requested",
    "tool_approval_resolved",
    "user_bash",
    "user_python",
    "session_before_switch",
    "session_before_branch",
    "session_before_compact",
    "session_before_tree",
    "session.compacting",
    "session_tree",
    "session_branch",
    "session_switch",
    "events_dropped",
    // RPC protocol frames (omp --mode rpc).
    "ready",
    "response",
    "extension_ui_request",
    "extension_error",
    "available_commands_update",
    "prompt_result",
    "host_tool_call",
    "host_tool_cancel",
    "host_uri_request",
    "host_uri_cancel",
    "command_output",
    "session_info_update",
    "config_update",
    "rpc_chunk",
    // omp 18.2.3–18.3.4. `tool_stream_update`: the edit tool's arguments are streaming
    // (modes/print-mode.ts `printableEvent`, only ids); `config_warnings_changed`,
    // `advisor_yielded`: UI notices (session/agent-session-events.ts); the rest are RPC
    // frames of `omp --mode rpc` (modes/rpc): subagent progress is traced from the
    // subagent's own session file.
    "tool_stream_update",
    "config_warnings_changed",
    "advisor_yielded",
    "session_settled",
    "subagent_lifecycle",
    "subagent_progress",
    "subagent_event",
    // pi 0.73 (@mariozechner/pi-coding-agent core/agent-session.js, extensions/runner.js):
    // queue and selector notices, and extension-only hooks.
    "queue_update",
    "model_select",
    "thinking_level_select",
    "session_before_fork",
    "resources_discover",
];

/// Top-level fields every stream line may be read for: its time, session and context usage
/// (`decode_stream`), what format detection looks at (`format_hint`), and what the bridge
/// filter looks at (`BridgeFilter`: `seq`, `ts`, `sessionId`, `id`). A session file's
/// `id`/`parentId`/`timestamp` are among them, so a stray stream line in a session file
/// decodes as before.
const COMMON_FIELDS: &[&str] = &[
    "seq",
    "ts",
    "timestamp",
    "sessionId",
    "contextUsage",
    "_ctx",
    "ctx",
    "parentId",
    "turnIndex",
    "id",
];

/// What of a stream line to parse (see `jsonline`): for the types whose payload the stream
/// decoder ignores, only the common fields and the few it reads. Must follow
/// [`decode_stream`]: a field it reads for a type must be kept for that type.
pub fn stream_fields(ty: &str) -> Keep {
    const AGENT_END: &[&str] = &[
        "seq",
        "ts",
        "timestamp",
        "sessionId",
        "contextUsage",
        "_ctx",
        "ctx",
        "parentId",
        "turnIndex",
        "id",
        "isTerminal",
        "willContinue",
    ];
    const TOOL_UPDATE: &[&str] = &[
        "seq",
        "ts",
        "timestamp",
        "sessionId",
        "contextUsage",
        "_ctx",
        "ctx",
        "parentId",
        "turnIndex",
        "id",
        "toolCallId",
        "partialResult",
    ];
    const MESSAGE_END: &[&str] = &[
        "seq",
        "ts",
        "timestamp",
        "sessionId",
        "contextUsage",
        "_ctx",
        "ctx",
        "parentId",
        "turnIndex",
        "id",
        "message",
    ];
    match ty {
        "turn_end" => Keep::Only(COMMON_FIELDS),
        "agent_end" => Keep::Only(AGENT_END),
        "tool_execution_update" => Keep::Only(TOOL_UPDATE),
        "message_end" => Keep::Only(MESSAGE_END),
        t if STREAM_IGNORED.contains(&t) => Keep::Only(COMMON_FIELDS),
        _ => Keep::All,
    }
}

/// Decode one line of `omp --mode json` output or of an extension event stream.
pub fn decode_stream(mut v: Value) -> Event {
    // Extension lines carry `ts` from the bridge; `turn_start` has its own `timestamp`.
    let at = v
        .get("ts")
        .or_else(|| v.get("timestamp").filter(|t| t.is_number()))
        .and_then(as_millis);
    let session = str_field(&v, "sessionId");
    let ty = v
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let ev = match ty.as_str() {
        "session" => Ev::Session(Header::from_value(&v)),
        // The bridge adds where the session lives and, for a subagent, its parent.
        "session_start" => Ev::Session(Header {
            parent_session: str_field(&v, "parentSession"),
            file: str_field(&v, "sessionFile"),
            ..Header::default()
        }),
        "agent_start" => Ev::RunStart,
        "agent_end" => {
            // json mode says `isTerminal:false`, extensions say `willContinue:true`; omp
            // 18.3 adds `awaitingAsyncWork:true` (only a background job's result can resume
            // it): none of these is the end of the work. A missing flag means terminal.
            let cont = v.get("isTerminal").and_then(Value::as_bool) == Some(false)
                || v.get("willContinue").and_then(Value::as_bool) == Some(true)
                || v.get("awaitingAsyncWork").and_then(Value::as_bool) == Some(true);
            Ev::RunEnd { terminal: !cont }
        }
        "turn_start" => Ev::TurnStart,
        "turn_end" => Ev::TurnEnd,
        "message_end" => match take(&mut v, "message") {
            Value::Object(m) => Ev::Message(Value::Object(m)),
            _ => Ev::Ignored,
        },
        "before_provider_request" => Ev::ProviderRequest(take(&mut v, "payload")),
        "after_provider_response" => Ev::ProviderResponse(v.clone()),
        "tool_execution_start" => Ev::ToolStart {
            id: str_field(&v, "toolCallId").unwrap_or_default(),
            name: str_field(&v, "toolName").unwrap_or_default(),
            args: Some(take(&mut v, "args")).filter(|a| !a.is_null()),
            intent: str_field(&v, "intent"),
        },
        "tool_execution_update" => Ev::ToolUpdate {
            id: str_field(&v, "toolCallId").unwrap_or_default(),
            partial: take(&mut v, "partialResult"),
        },
        "tool_execution_end" => Ev::ToolEnd {
            id: str_field(&v, "toolCallId").unwrap_or_default(),
            name: str_field(&v, "toolName").unwrap_or_default(),
            is_error: v.get("isError").and_then(Value::as_bool).unwrap_or(false)
                || v.pointer("/result/isError").and_then(Value::as_bool) == Some(true),
            result: take(&mut v, "result"),
        },
        "auto_compaction_start" => Ev::CompactionStart {
            reason: str_field(&v, "reason"),
            action: str_field(&v, "action"),
        },
        "auto_compaction_end" => Ev::CompactionEnd(v.clone()),
        // pi's names for the same (core/agent-session.js): `reason` is manual, threshold
        // or overflow; the end carries `result`, `aborted`, `willRetry`, `errorMessage`.
        "compaction_start" => Ev::CompactionStart {
            reason: str_field(&v, "reason"),
            action: None,
        },
        "compaction_end" => Ev::CompactionEnd(v.clone()),
        // pi: `/name` renamed the session.
        "session_info_changed" => match str_field(&v, "name").filter(|n| !n.trim().is_empty()) {
            Some(n) => Ev::Title(n),
            None => Ev::Ignored,
        },
        "session_compact" => Ev::Compaction(take(&mut v, "compactionEntry")),
        "auto_retry_start" => Ev::RetryStart(v.clone()),
        "auto_retry_end" => Ev::RetryEnd(v.clone()),
        "ttsr_triggered" => Ev::Ttsr(rule_names(v.get("rules"))),
        "goal_updated" => Ev::Goal(take(&mut v, "goal")),
        "session_shutdown" => Ev::SessionEnd(Value::Object(Map::new())),
        t if STREAM_IGNORED.contains(&t) => Ev::Ignored,
        t => Ev::Unknown(t.to_string()),
    };
    // The bridge adds context usage to lifecycle lines (turn_start, turn_end, …).
    let context = context_usage(&v);
    Event {
        at,
        session,
        context,
        ev,
        producer: stream_producer(&ty),
        abandoned: false,
    }
}

/// The agent a stream line's type is unique to: pi renamed omp's compaction events and
/// has a few of its own; omp prints `advisor_cost_changed` after its header and has TTSR.
fn stream_producer(ty: &str) -> Option<&'static str> {
    match ty {
        "compaction_start"
        | "compaction_end"
        | "session_info_changed"
        | "queue_update"
        | "model_select"
        | "thinking_level_select"
        | "resources_discover" => Some("pi"),
        "auto_compaction_start"
        | "auto_compaction_end"
        | "advisor_cost_changed"
        | "ttsr_triggered"
        | "tool_stream_update"
        | "goal_updated" => Some("omp"),
        _ => None,
    }
}

/// Context usage carried by a bridge line (`contextUsage`, or inside `_ctx`/`ctx`).
pub fn context_usage(v: &Value) -> Option<Value> {
    let cu = v
        .get("contextUsage")
        .or_else(|| v.pointer("/_ctx/contextUsage"))
        .or_else(|| v.pointer("/ctx/contextUsage"))?;
    cu.is_object().then(|| cu.clone())
}

/// Rule names from a `rules` array of Rule objects or plain strings.
pub fn rule_names(rules: Option<&Value>) -> Vec<String> {
    rules
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| match r {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(o) => o.get("name").and_then(Value::as_str).map(String::from),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Epoch milliseconds from a JSON number (integer or float) or an ISO string.
pub fn as_millis(v: &Value) -> Option<Millis> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        Value::String(s) => parse_iso(s),
        _ => None,
    }
    .filter(|ms| (0..=MAX_PLAUSIBLE_MILLIS).contains(ms))
}

/// Year 9999: anything later is garbage, not a time.
const MAX_PLAUSIBLE_MILLIS: Millis = 253_402_300_799_999;

/// A string field, owned.
pub fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(String::from)
}

/// Move a field out of an object (Null if absent).
pub fn take(v: &mut Value, key: &str) -> Value {
    v.as_object_mut()
        .and_then(|o| o.remove(key))
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn detects_each_format() {
        let live = [
            json!({"type":"session","version":3,"id":"x","timestamp":"2026-08-23T09:14:02.117Z","cwd":"/"}),
            json!({"type":"advisor_cost_changed"}),
            json!({"type":"agent_start"}),
        ];
        assert_eq!(detect(&live), Format::Live);
        let log = [
            json!({"type":"session","version":3,"id":"x","timestamp":"2026-08-23T09:14:02.117Z","cwd":"/"}),
            json!({"type":"model_change","id":"1f6b2c9e","parentId":null,"timestamp":"2026-08-23T09:14:02.158Z","model":"a/b"}),
        ];
        assert_eq!(detect(&log), Format::SessionLog);
        let ext = [
            json!({"type":"session_start"}),
            json!({"type":"agent_start"}),
        ];
        assert_eq!(detect(&ext), Format::Extension);
        let ext_ts = [json!({"type":"agent_start","ts":1787588411980i64,"sessionId":"s"})];
        assert_eq!(detect(&ext_ts), Format::Extension);
        assert_eq!(detect(&[json!({"type":"whatever"})]), Format::Live);
    }

    #[test]
    fn json_lines_beside_bridge_lines_are_dropped() {
        let mut f = BridgeFilter::default();
        // A source without bridge lines keeps everything.
        assert!(f.keep(&json!({"type":"agent_start"})));
        assert!(f.keep(&json!({"type":"session_start","ts":1,"seq":0,"sessionId":"s"})));
        assert!(f.keep(&json!({"type":"session","id":"s"})));
        assert!(!f.keep(&json!({"type":"agent_start"})));
        assert!(f.keep(&json!({"type":"agent_start","ts":2,"seq":1,"sessionId":"s"})));
        // A subagent's bridge lines in the parent's json stream drop none of the parent's.
        let mut parent = BridgeFilter::default();
        assert!(parent.keep(&json!({"type":"session","id":"p"})));
        assert!(parent.keep(&json!({"type":"agent_start","ts":2,"seq":0,"sessionId":"sub"})));
        assert!(parent.keep(&json!({"type":"turn_end"})));
        // A raw extension stream (no seq) is not a bridge stream.
        let mut raw = BridgeFilter::default();
        assert!(raw.keep(&json!({"type":"session_start","ts":1})));
        assert!(raw.keep(&json!({"type":"agent_start"})));
    }

    #[test]
    fn agent_end_terminal_flags() {
        let t = |v| match decode_stream(v).ev {
            Ev::RunEnd { terminal } => terminal,
            other => panic!("{other:?}"),
        };
        assert!(t(json!({"type":"agent_end","messages":[]})));
        assert!(!t(json!({"type":"agent_end","isTerminal":false})));
        assert!(!t(json!({"type":"agent_end","willContinue":true})));
    }

    #[test]
    fn unknown_and_ignored_types() {
        assert_eq!(
            decode_stream(json!({"type":"brand_new"})).ev,
            Ev::Unknown("brand_new".into())
        );
        assert_eq!(
            decode_stream(json!({"type":"message_update"})).ev,
            Ev::Ignored
        );
        assert_eq!(decode_stream(json!(42)).ev, Ev::Unknown(String::new()));
    }

    #[test]
    fn stream_field_lists_keep_what_the_decoder_reads() {
        // Every list holds the common fields, and each type's own fields.
        for ty in [
            "turn_end",
            "agent_end",
            "tool_execution_update",
            "message_end",
            "context",
        ] {
            let Keep::Only(fields) = stream_fields(ty) else {
                panic!("{ty} is pruned")
            };
            for f in COMMON_FIELDS {
                assert!(fields.contains(f), "{ty} keeps {f}");
            }
        }
        for ty in [
            "session",
            "tool_execution_end",
            "before_provider_request",
            "brand_new",
        ] {
            assert_eq!(stream_fields(ty), Keep::All, "{ty}");
        }
        // Decoding a pruned line gives the same event as decoding the whole line.
        let lines = [
            json!({"type":"agent_end","messages":[{"role":"user"}],"willContinue":true,"ts":5,"sessionId":"s","contextUsage":{"tokens":1}}),
            json!({"type":"turn_end","turnIndex":1,"message":{"role":"assistant"},"toolResults":[],"ts":7,"_ctx":{"contextUsage":{"tokens":2}}}),
            json!({"type":"tool_execution_update","toolCallId":"t","toolName":"bash","args":{"a":1},"partialResult":{"content":[]}}),
            json!({"type":"message_end","message":{"role":"user","content":"hi"},"timestamp":9}),
            json!({"type":"message_start","message":{"role":"user"},"ctx":{"contextUsage":{"tokens":3}}}),
            json!({"type":"context","messages":[],"ts":8,"seq":4,"sessionId":"s"}),
            json!({"type":"turn_end","message":{"role":"assistant"},"toolResults":[]}),
        ];
        let (mut full_filter, mut pruned_filter) =
            (BridgeFilter::default(), BridgeFilter::default());
        for line in lines {
            let text = line.to_string();
            let pruned = crate::decode::jsonline::parse(text.as_bytes(), stream_fields).unwrap();
            assert_eq!(
                pruned_filter.keep(&pruned),
                full_filter.keep(&line),
                "{text}"
            );
            assert_eq!(format_hint(&pruned), format_hint(&line), "{text}");
            assert_eq!(decode_stream(pruned), decode_stream(line), "{text}");
        }
    }

    #[test]
    fn times_from_numbers_and_strings() {
        assert_eq!(as_millis(&json!(1787588411980i64)), Some(1787588411980));
        assert_eq!(as_millis(&json!(1787588411980.5)), Some(1787588411980));
        assert_eq!(
            as_millis(&json!("2026-08-23T09:14:02.117Z")),
            Some(1787476442117)
        );
        assert_eq!(as_millis(&json!(-5)), None);
        assert_eq!(as_millis(&json!(1e300)), None);
    }
}
