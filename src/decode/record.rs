//! Typed views of the objects omp (and pi) record: each names the fields the mapper reads,
//! so no omp field name is spelled outside `decode/`. A view borrows from its event's JSON;
//! a missing or mistyped field is `None` or empty, never an error (a newer omp may drop or
//! retype a field, and the trace must still be built from the rest).
//!
//! Where Langfuse shows a field under omp's own name (metadata such as `attempt` or
//! `tokenBudget`), the view hands over those fields as a map (`meta`), picked here.

use serde_json::{Map, Value};

use crate::decode::omp::{as_millis, str_field};
use crate::model::Millis;

/// The fields among `keys` that are present and not null, by omp's names.
fn pick(from: &Value, keys: &[&str]) -> Map<String, Value> {
    let mut to = Map::new();
    for k in keys {
        if let Some(v) = from.get(*k).filter(|v| !v.is_null()) {
            to.insert((*k).to_string(), v.clone());
        }
    }
    to
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool) == Some(true)
}

/// When a recorded object happened (`timestamp`).
pub fn timestamp(v: &Value) -> Option<Millis> {
    v.get("timestamp").and_then(as_millis)
}

/// A message's text: its string content, or its text blocks joined by newlines.
pub fn message_text(m: &Value) -> String {
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// Who a message is from (`role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `user`: a prompt, or the agent steering itself (see [`Message::from_agent`]).
    User,
    /// `assistant`: an LLM call.
    Assistant,
    /// `toolResult`: a tool's answer.
    ToolResult,
    /// omp's own roles (`bashExecution`, `compactionSummary`, `custom`, …), `system`, or none.
    Other,
}

/// A message of the conversation (pi-ai's `Message` and omp's own roles).
#[derive(Debug)]
pub struct Message {
    pub role: Role,
    /// `timestamp`.
    pub at: Option<Millis>,
    /// A user message the agent wrote, not the person: `steering`, `synthetic`, or
    /// `attribution: "agent"`.
    pub from_agent: bool,
}

impl Message {
    pub fn read(m: &Value) -> Message {
        Message {
            role: match m.get("role").and_then(Value::as_str) {
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                Some("toolResult") => Role::ToolResult,
                _ => Role::Other,
            },
            at: timestamp(m),
            from_agent: flag(m, "steering")
                || flag(m, "synthetic")
                || m.get("attribution").and_then(Value::as_str) == Some("agent"),
        }
    }
}

/// A tool call an assistant message asked for (a `toolCall` content block with an `id`).
#[derive(Debug)]
pub struct ToolCall<'a> {
    pub id: String,
    pub name: Option<String>,
    /// `arguments`, as the model wrote them (omp's intent key `i` included).
    pub arguments: Option<&'a Value>,
    /// Why the model called it: `intent`, else the arguments' `i`.
    pub intent: Option<String>,
}

/// The tool calls of an assistant message, in order.
pub fn tool_calls(m: &Value) -> Vec<ToolCall<'_>> {
    let blocks = m.get("content").and_then(Value::as_array).into_iter();
    blocks
        .flatten()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("toolCall"))
        .filter_map(|b| {
            Some(ToolCall {
                id: str_field(b, "id")?,
                name: str_field(b, "name"),
                arguments: b.get("arguments"),
                intent: str_field(b, "intent").or_else(|| {
                    b.pointer("/arguments/i")
                        .and_then(Value::as_str)
                        .map(String::from)
                }),
            })
        })
        .collect()
}

/// Tool arguments without omp's intent key `i` (it is metadata, not an argument).
pub fn strip_intent(args: &Value) -> Value {
    let mut c = args.clone();
    drop_intent(&mut c);
    c
}

/// [`strip_intent`] in place.
fn drop_intent(args: &mut Value) {
    if let Value::Object(o) = args {
        o.remove("i");
    }
}

/// Keys of a content block that only carry provider plumbing (signatures, raw blocks):
/// noise in a trace.
pub const PLUMBING_KEYS: &[&str] = &[
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

/// A content block without its plumbing, a tool call's arguments without the intent. The
/// block is given up: what stays moves, nothing is copied.
pub fn clean_block(b: Value) -> Value {
    match b {
        Value::Object(mut o) => {
            o.retain(|k, _| !PLUMBING_KEYS.contains(&k.as_str()));
            if o.get("type").and_then(Value::as_str) == Some("toolCall")
                && let Some(args) = o.get_mut("arguments")
            {
                drop_intent(args);
            }
            Value::Object(o)
        }
        other => other,
    }
}

/// A tool result's content blocks when all are text: their texts.
pub fn text_only(blocks: &[Value]) -> Option<Vec<&str>> {
    blocks
        .iter()
        .map(|b| {
            (b.get("type").and_then(Value::as_str) == Some("text"))
                .then(|| b.get("text").and_then(Value::as_str))
        })
        .collect::<Option<Vec<_>>>()
        .map(|texts| texts.into_iter().flatten().collect())
}

/// A tool's recorded `details`: its exit code (`exitCode`).
pub fn exit_code(details: &Value) -> Option<i64> {
    details.get("exitCode").and_then(Value::as_i64)
}

/// One LLM call as omp and pi record it (an assistant message): the fields the mapper
/// reads, named here only. Borrowed from the message; missing fields are `None`.
#[derive(Debug)]
pub struct LlmCall<'a> {
    /// When the call started (`timestamp`).
    pub started: Option<Millis>,
    /// How long it took (`duration`; omp records it, pi does not).
    pub duration: Option<Millis>,
    /// When it ended (`completedAt`).
    pub completed: Option<Millis>,
    /// Time to the first token (`ttft`).
    pub ttft: Option<Millis>,
    /// `stopReason` (`stop`, `toolUse`, `error`, `aborted`, …), empty when absent.
    pub stop_reason: String,
    pub model: Option<String>,
    /// `usage`: tokens, cache and cost (read by `decode::usage`).
    pub usage: Option<&'a Value>,
    /// `errorMessage`, when not empty.
    pub error: Option<String>,
    /// Shown under omp's names: `provider`, `api`, `responseId`, `errorStatus`,
    /// `upstreamProvider`.
    pub meta: Map<String, Value>,
    /// The prompt size omp measured before the call (`contextSnapshot.promptTokens`).
    pub prompt_tokens: Option<&'a Value>,
}

impl<'a> LlmCall<'a> {
    pub fn read(m: &'a Value) -> LlmCall<'a> {
        LlmCall {
            started: timestamp(m),
            duration: m.get("duration").and_then(as_millis),
            completed: m.get("completedAt").and_then(as_millis),
            ttft: m.get("ttft").and_then(as_millis),
            stop_reason: str_field(m, "stopReason").unwrap_or_default(),
            model: str_field(m, "model"),
            usage: m.get("usage"),
            error: str_field(m, "errorMessage").filter(|e| !e.is_empty()),
            meta: pick(
                m,
                &[
                    "provider",
                    "api",
                    "responseId",
                    "errorStatus",
                    "upstreamProvider",
                ],
            ),
            prompt_tokens: m.get("contextSnapshot").and_then(|s| s.get("promptTokens")),
        }
    }

    /// The context size the provider reported with the usage (`usage.contextTokens`).
    pub fn context_tokens(&self) -> Option<u64> {
        self.usage?.get("contextTokens").and_then(Value::as_u64)
    }

    /// Reasoning tokens (`usage.reasoningTokens`), when a number.
    pub fn reasoning_tokens(&self) -> Option<&'a Value> {
        self.usage?.get("reasoningTokens").filter(|r| r.is_number())
    }

    /// Subscription credits spent (`usage.credits`), when recorded.
    pub fn credits(&self) -> Option<&'a Value> {
        self.usage?.get("credits").filter(|c| !c.is_null())
    }
}

/// The provider's answer the bridge recorded before an LLM call's message.
#[derive(Debug)]
pub struct ProviderResponse<'a> {
    /// Shown under omp's name: `requestId`.
    pub meta: Map<String, Value>,
    /// The HTTP status (`status`).
    pub status: Option<&'a Value>,
}

impl<'a> ProviderResponse<'a> {
    pub fn read(r: &'a Value) -> ProviderResponse<'a> {
        ProviderResponse {
            meta: pick(r, &["requestId"]),
            status: r.get("status"),
        }
    }
}

/// A side model call (omp's `model_usage`: titles, summaries, advisors).
#[derive(Debug)]
pub struct SideCall<'a> {
    /// The call's fields shared with an LLM call (`stopReason`, `model`, `usage`, …).
    pub call: LlmCall<'a>,
    /// What it was for (`purpose`), when not blank.
    pub purpose: Option<String>,
    /// Shown under omp's names: `provider`, `api`, `role`.
    pub meta: Map<String, Value>,
}

impl<'a> SideCall<'a> {
    pub fn read(e: &'a Value) -> SideCall<'a> {
        SideCall {
            call: LlmCall::read(e),
            purpose: str_field(e, "purpose").filter(|p| !p.trim().is_empty()),
            meta: pick(e, &["provider", "api", "role"]),
        }
    }
}

/// A tool's result as omp and pi record it (a `toolResult` message): the fields the mapper
/// reads, named here only.
#[derive(Debug)]
pub struct ToolResult<'a> {
    /// The call it answers (`toolCallId`), empty when absent.
    pub call_id: String,
    /// `toolName`.
    pub tool: Option<String>,
    /// When it arrived (`timestamp`).
    pub at: Option<Millis>,
    /// `isError`.
    pub is_error: bool,
    /// `content` (the blocks the model sees) and `details` (the tool's own record).
    pub content: Option<&'a Value>,
    pub details: Option<&'a Value>,
}

impl<'a> ToolResult<'a> {
    pub fn read(m: &'a Value) -> ToolResult<'a> {
        ToolResult {
            call_id: str_field(m, "toolCallId").unwrap_or_default(),
            tool: str_field(m, "toolName"),
            at: timestamp(m),
            is_error: flag(m, "isError"),
            content: m.get("content"),
            details: m.get("details"),
        }
    }
}

/// The context-window usage omp reports with a turn.
#[derive(Debug)]
pub struct ContextUsage<'a> {
    /// Shown under omp's names: `contextWindow`, `percent`.
    pub meta: Map<String, Value>,
    /// Tokens in the context (`tokens`), when a number.
    pub tokens: Option<&'a Value>,
}

impl<'a> ContextUsage<'a> {
    pub fn read(cu: &'a Value) -> ContextUsage<'a> {
        ContextUsage {
            meta: pick(cu, &["contextWindow", "percent"]),
            tokens: cu.get("tokens").filter(|t| t.is_number()),
        }
    }
}

/// What a subagent `task` call asked for: flat `{name?, agent, task}` or batch
/// `{context, tasks: [{name?, task}]}`.
#[derive(Debug, Default)]
pub struct TaskRequest {
    /// The agents' names, where given (not empty).
    pub names: Vec<String>,
    /// The assignments (not empty).
    pub tasks: Vec<String>,
}

impl TaskRequest {
    pub fn read(args: &Value) -> TaskRequest {
        let items = args
            .get("tasks")
            .and_then(Value::as_array)
            .map(|t| t.iter().collect::<Vec<_>>())
            .unwrap_or_else(|| vec![args]);
        let mut req = TaskRequest::default();
        for item in items {
            req.names
                .extend(str_field(item, "name").filter(|n| !n.is_empty()));
            req.tasks
                .extend(str_field(item, "task").filter(|t| !t.is_empty()));
        }
        req
    }
}

/// The agent ids a `task` call's result names (`details.results[].id`,
/// `details.progress[].id`, `details.async.jobId`), sorted, each once.
pub fn spawned_agent_ids(output: Option<&Value>) -> Vec<String> {
    let details = output.and_then(|o| o.get("details"));
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
    ids
}

/// The end of a compaction (`auto_compaction_end` and the like).
#[derive(Debug)]
pub struct CompactionEnd<'a> {
    /// `action` (`compact`, `handoff`, …).
    pub action: Option<String>,
    /// A maintenance check that decided not to compact (`skipped`).
    pub skipped: bool,
    /// `aborted`, or an `errorMessage` recorded.
    pub failed: bool,
    /// `errorMessage`.
    pub error: Option<String>,
    /// `result`, when an object (the compaction's figures, as the entry has them).
    pub result: Option<&'a Value>,
}

impl<'a> CompactionEnd<'a> {
    pub fn read(v: &'a Value) -> CompactionEnd<'a> {
        CompactionEnd {
            action: str_field(v, "action"),
            skipped: flag(v, "skipped"),
            failed: flag(v, "aborted") || v.get("errorMessage").is_some_and(|e| !e.is_null()),
            error: str_field(v, "errorMessage"),
            result: v.get("result").filter(|r| r.is_object()),
        }
    }
}

/// A compaction's figures, from its session entry or its end event's result.
#[derive(Debug, Default)]
pub struct CompactionFigures {
    /// `tokensBefore`, `tokensAfter`, `method`, `summary` (present and not null).
    pub tokens_before: Option<Value>,
    pub tokens_after: Option<Value>,
    pub method: Option<Value>,
    pub summary: Option<Value>,
}

impl CompactionFigures {
    pub fn read(source: &Value) -> CompactionFigures {
        let field = |k: &str| source.get(k).cloned().filter(|v| !v.is_null());
        CompactionFigures {
            tokens_before: field("tokensBefore"),
            tokens_after: field("tokensAfter"),
            method: field("method"),
            summary: field("summary"),
        }
    }
}

/// An automatic retry's start (`auto_retry_start`).
#[derive(Debug)]
pub struct RetryStart<'a> {
    /// Shown under omp's names: `attempt`, `maxAttempts`, `delayMs`, `errorId`.
    pub meta: Map<String, Value>,
    /// `errorMessage`, as recorded.
    pub error: Option<&'a Value>,
}

impl<'a> RetryStart<'a> {
    pub fn read(v: &'a Value) -> RetryStart<'a> {
        RetryStart {
            meta: pick(v, &["attempt", "maxAttempts", "delayMs", "errorId"]),
            error: v.get("errorMessage"),
        }
    }
}

/// An automatic retry's end (`auto_retry_end`).
#[derive(Debug)]
pub struct RetryEnd<'a> {
    pub success: bool,
    /// `finalError`, as recorded.
    pub final_error: Option<&'a Value>,
    /// Shown under omp's names: `attempt`, `success`.
    pub meta: Map<String, Value>,
}

impl<'a> RetryEnd<'a> {
    pub fn read(v: &'a Value) -> RetryEnd<'a> {
        RetryEnd {
            success: flag(v, "success"),
            final_error: v.get("finalError"),
            meta: pick(v, &["attempt", "success"]),
        }
    }
}

/// A retry that recovered another way (omp's retry recovery notice).
#[derive(Debug)]
pub struct RetryRecovery {
    /// Shown under omp's names: `attempt`, `status`, `recovery`, `note`.
    pub meta: Map<String, Value>,
    pub note: Option<String>,
}

impl RetryRecovery {
    pub fn read(v: &Value) -> RetryRecovery {
        RetryRecovery {
            meta: pick(v, &["attempt", "status", "recovery", "note"]),
            note: str_field(v, "note"),
        }
    }
}

/// A branch summary entry (`/tree` left a branch behind).
#[derive(Debug)]
pub struct BranchSummary<'a> {
    /// Shown under omp's name: `fromId`.
    pub meta: Map<String, Value>,
    pub summary: Option<&'a Value>,
}

impl<'a> BranchSummary<'a> {
    pub fn read(v: &'a Value) -> BranchSummary<'a> {
        BranchSummary {
            meta: pick(v, &["fromId"]),
            summary: v.get("summary"),
        }
    }
}

/// The session's end marker.
#[derive(Debug)]
pub struct SessionEnd {
    /// `kind` (`normal`, `signal`, `fatal`, `process_exit`, …), `normal` when absent.
    pub kind: String,
    pub reason: Option<String>,
    /// The tool calls still running (`pendingToolCalls[].toolCallId`).
    pub pending_tools: Vec<String>,
}

impl SessionEnd {
    pub fn read(v: &Value) -> SessionEnd {
        let pending = v.get("pendingToolCalls").and_then(Value::as_array);
        SessionEnd {
            kind: str_field(v, "kind").unwrap_or_else(|| "normal".into()),
            reason: str_field(v, "reason"),
            pending_tools: pending
                .into_iter()
                .flatten()
                .filter_map(|p| str_field(p, "toolCallId"))
                .collect(),
        }
    }
}

/// A goal (omp's `/goal`): set, updated, completed; `null` when dropped.
#[derive(Debug)]
pub struct Goal {
    pub id: Option<String>,
    pub objective: Option<String>,
    /// `status` (`active`, `paused`, `budget-limited`, `complete`, …).
    pub status: Option<String>,
    /// `tokenBudget`.
    pub budget: Option<u64>,
    /// When it last changed (`updatedAt`).
    pub updated: Option<Millis>,
    /// Shown under omp's names: `id`, `tokenBudget`, `tokensUsed`, `timeUsedSeconds`.
    pub meta: Map<String, Value>,
}

impl Goal {
    pub fn read(g: &Value) -> Goal {
        Goal {
            id: str_field(g, "id"),
            objective: str_field(g, "objective"),
            status: str_field(g, "status"),
            budget: g.get("tokenBudget").and_then(Value::as_u64),
            updated: g.get("updatedAt").and_then(as_millis),
            meta: pick(g, &["id", "tokenBudget", "tokensUsed", "timeUsedSeconds"]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_tool_result_is_read_by_omp_s_field_names() {
        let m = json!({"role":"toolResult","toolCallId":"c1","toolName":"bash","timestamp":7,
            "isError":true,"content":[{"type":"text","text":"x"}],"details":{"exit":1}});
        let r = ToolResult::read(&m);
        assert_eq!(
            (r.call_id.as_str(), r.tool.as_deref(), r.at, r.is_error),
            ("c1", Some("bash"), Some(7), true)
        );
        assert!(r.content.is_some() && r.details.is_some());
        let bare = json!({"role":"toolResult"});
        let r = ToolResult::read(&bare);
        assert_eq!(
            (r.call_id.as_str(), r.tool, r.at, r.is_error),
            ("", None, None, false)
        );
    }

    #[test]
    fn an_llm_call_is_read_by_omp_s_field_names() {
        let omp = json!({"role":"assistant","timestamp":1000,"duration":250,"ttft":40,
            "stopReason":"error","model":"m","errorMessage":"overloaded","provider":"p",
            "api":null,"contextSnapshot":{"promptTokens":9},
            "usage":{"input":3,"contextTokens":1234,"reasoningTokens":5,"credits":null}});
        let c = LlmCall::read(&omp);
        assert_eq!(
            (c.started, c.duration, c.completed, c.ttft),
            (Some(1000), Some(250), None, Some(40))
        );
        assert_eq!(
            (c.stop_reason.as_str(), c.model.as_deref()),
            ("error", Some("m"))
        );
        assert_eq!(
            (c.error.as_deref(), c.context_tokens()),
            (Some("overloaded"), Some(1234))
        );
        // A null field is not shown.
        assert_eq!(Value::Object(c.meta.clone()), json!({"provider":"p"}));
        assert_eq!(
            (c.prompt_tokens, c.reasoning_tokens(), c.credits()),
            (Some(&json!(9)), Some(&json!(5)), None)
        );
        // pi records no duration; an empty error is no error.
        let pi =
            json!({"role":"assistant","timestamp":"2026-08-23T09:14:03.750Z","errorMessage":""});
        let c = LlmCall::read(&pi);
        assert!(c.started.is_some() && c.duration.is_none() && c.usage.is_none());
        assert_eq!(
            (
                c.error.as_deref(),
                c.context_tokens(),
                c.stop_reason.as_str()
            ),
            (None, None, "")
        );
    }

    #[test]
    fn messages_and_their_tool_calls() {
        let m = json!({"role":"assistant","timestamp":5,"content":[
            {"type":"text","text":"a"},
            {"type":"toolCall","id":"t1","name":"bash","arguments":{"cmd":"ls","i":"look"}},
            {"type":"toolCall","name":"no id"},
            {"type":"toolCall","id":"t2","name":"read","intent":"why","arguments":{}}]});
        let v = Message::read(&m);
        assert_eq!(
            (v.role, v.at, v.from_agent),
            (Role::Assistant, Some(5), false)
        );
        let calls = tool_calls(&m);
        let seen: Vec<_> = calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_deref(), c.intent.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                ("t1", Some("bash"), Some("look")),
                ("t2", Some("read"), Some("why"))
            ]
        );
        assert_eq!(
            strip_intent(calls[0].arguments.unwrap()),
            json!({"cmd":"ls"})
        );
        for agent in [
            json!({"role":"user","steering":true}),
            json!({"role":"user","synthetic":true}),
            json!({"role":"user","attribution":"agent"}),
        ] {
            assert!(Message::read(&agent).from_agent, "{agent}");
        }
        assert!(!Message::read(&json!({"role":"user","attribution":"user"})).from_agent);
        assert_eq!(message_text(&m), "a");
        assert_eq!(message_text(&json!({"content":"plain"})), "plain");
    }

    #[test]
    fn events_are_read_by_omp_s_field_names() {
        let g = Goal::read(&json!({"id":"g","objective":"o","status":"active",
            "tokenBudget":10,"tokensUsed":2,"updatedAt":1000,"extra":1}));
        assert_eq!(
            (g.id.as_deref(), g.objective.as_deref(), g.status.as_deref()),
            (Some("g"), Some("o"), Some("active"))
        );
        assert_eq!((g.budget, g.updated), (Some(10), Some(1000)));
        assert_eq!(
            Value::Object(g.meta),
            json!({"id":"g","tokenBudget":10,"tokensUsed":2})
        );
        let end = SessionEnd::read(&json!({"reason":"r","pendingToolCalls":[
            {"toolCallId":"a"},{"x":1},{"toolCallId":"b"}]}));
        assert_eq!(
            (end.kind.as_str(), end.reason.as_deref(), end.pending_tools),
            ("normal", Some("r"), vec!["a".to_string(), "b".to_string()])
        );
        let v = json!({"action":"compact","errorMessage":"x","result":{"tokensBefore":9}});
        let c = CompactionEnd::read(&v);
        assert!(c.failed && !c.skipped && c.result.is_some());
        let f = CompactionFigures::read(c.result.unwrap());
        assert_eq!((f.tokens_before, f.tokens_after), (Some(json!(9)), None));
        let v = json!({"attempt":2,"success":false,"finalError":"e"});
        let r = RetryEnd::read(&v);
        assert!(!r.success && r.final_error == Some(&json!("e")));
        let t = TaskRequest::read(&json!({"tasks":[{"name":"A","task":"x"},{"task":""}]}));
        assert_eq!(
            (t.names, t.tasks),
            (vec!["A".to_string()], vec!["x".to_string()])
        );
        let ids = spawned_agent_ids(Some(&json!({"details":{
            "results":[{"id":"b"},{"id":"a"}],"progress":[{"id":"a"}],"async":{"jobId":"c"}}})));
        assert_eq!(ids, ["a", "b", "c"]);
    }
}
