//! Subagent sessions: finding the `task` call that spawned one, and the [`Nest`] that puts
//! it into its parent's trace under that call (or under the parent's root when no call
//! matches).
//!
//! What omp 18.2.3 records (checked with the real omp): the subagent's file is
//! `<parent stem>/<agent id>.jsonl`; its header's `parentSession` is the parent's file path;
//! its `session_init` entry holds the assignment (`task`, wrapped in a template); the
//! parent's `task` tool result names the agent in `details.results[].id` (blocking run) or
//! `details.progress[].id` / `details.async.jobId` (background run). The call's own
//! arguments may name it (`name`) and always hold the assignment (`task`, `tasks[].task`).

use serde_json::Map;

use crate::map::{Anchor, Nest, Spawn};

/// What a parent session file left for its subagents.
#[derive(Debug, Clone)]
pub struct ParentInfo {
    /// Its trace and root (the fallback place for a subagent).
    pub anchor: Anchor,
    pub spawns: Vec<Spawn>,
    /// Its own key prefix (a subagent's subagents extend it).
    pub key_prefix: String,
}

/// How a subagent was placed (recorded on its root observation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// The `task` result names the agent id.
    TaskResult,
    /// The `task` call asked for an agent of that name.
    TaskName,
    /// The `task` call's assignment is the one in the subagent's `session_init`.
    TaskText,
    /// No `task` call matched: under the parent's root.
    ParentRoot,
}

impl Link {
    pub fn as_str(self) -> &'static str {
        match self {
            Link::TaskResult => "task result",
            Link::TaskName => "task name",
            Link::TaskText => "task assignment",
            Link::ParentRoot => "parent root",
        }
    }
}

/// The `task` call that spawned `agent_id`, best evidence first. An assignment match counts
/// only when exactly one call has it.
pub fn find_spawn<'a>(
    spawns: &'a [Spawn],
    agent_id: &str,
    init_task: Option<&str>,
) -> Option<(&'a Spawn, Link)> {
    if let Some(s) = spawns
        .iter()
        .find(|s| s.agent_ids.iter().any(|a| a == agent_id))
    {
        return Some((s, Link::TaskResult));
    }
    if let Some(s) = spawns
        .iter()
        .find(|s| s.names.iter().any(|n| n == agent_id))
    {
        return Some((s, Link::TaskName));
    }
    let task = init_task?;
    let mut hits = spawns
        .iter()
        .filter(|s| s.tasks.iter().any(|t| task.contains(t.as_str())));
    match (hits.next(), hits.next()) {
        (Some(s), None) => Some((s, Link::TaskText)),
        _ => None,
    }
}

/// An advisor transcript's file stem: `__advisor` or `__advisor.<slug>` (omp 18.3 keeps the
/// advisor model's conversation beside the subagents, `advisor/` in its source).
const ADVISOR_STEM: &str = "__advisor";

/// Where subagent `agent_id` goes in its parent's trace. An advisor transcript is no `task`
/// spawn: it goes under the parent's root, named `advisor` (with its slug).
pub fn nest_for(parent: &ParentInfo, agent_id: &str, init_task: Option<&str>) -> Nest {
    let advisor = agent_id
        .strip_prefix(ADVISOR_STEM)
        .filter(|rest| rest.is_empty() || rest.starts_with('.'))
        .map(|rest| rest.trim_start_matches('.'));
    let found = match advisor {
        Some(_) => None,
        None => find_spawn(&parent.spawns, agent_id, init_task),
    };
    let (trace, parent_id, link) = match found {
        Some((s, link)) => (s.trace.clone(), s.obs_id.clone(), link),
        None => (
            parent.anchor.trace.clone(),
            parent.anchor.root_id.clone(),
            Link::ParentRoot,
        ),
    };
    let mut metadata = Map::new();
    metadata.insert("agent_id".into(), agent_id.into());
    metadata.insert("linked_by".into(), link.as_str().into());
    if let Some((s, _)) = found {
        metadata.insert("task_tool_call_id".into(), s.tool_call_id.clone().into());
    }
    Nest {
        trace,
        parent_id,
        key_prefix: format!("{}agent/{agent_id}/", parent.key_prefix),
        name: match advisor {
            Some("") => "advisor".to_string(),
            Some(slug) => format!("advisor {slug}"),
            None => format!("subagent {agent_id}"),
        },
        metadata,
    }
}

/// A better place for a nested session once its parent's `task` call can be matched (its
/// result came in after the subagent began): under that call, in the same trace only.
pub fn relink(nest: &Nest, spawns: &[Spawn], agent_id: &str, task: Option<&str>) -> Option<Nest> {
    let (s, link) = find_spawn(spawns, agent_id, task)?;
    if s.trace.id != nest.trace.id || s.obs_id == nest.parent_id {
        return None;
    }
    let mut n = nest.clone();
    n.parent_id = s.obs_id.clone();
    n.metadata.insert("linked_by".into(), link.as_str().into());
    n.metadata
        .insert("task_tool_call_id".into(), s.tool_call_id.clone().into());
    Some(n)
}

/// The session id a header's `parentSession` names: omp writes the parent's file path
/// (`…/<time>_<id>.jsonl`) or, in some flows, the id itself.
pub fn parent_session_id(parent_session: &str) -> String {
    let name = parent_session
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(parent_session);
    match crate::model::parse_name(name) {
        Some((_, id)) => id,
        None => name.trim_end_matches(".jsonl").to_string(),
    }
}

/// The agent id in a subagent's session file path (its stem).
pub fn agent_id_of(file: &str) -> Option<String> {
    let name = file.rsplit(['/', '\\']).next()?;
    let stem = name.strip_suffix(".jsonl")?;
    (!stem.is_empty()).then(|| stem.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TraceCtx;
    use std::sync::Arc;

    fn ctx() -> Arc<TraceCtx> {
        Arc::new(TraceCtx {
            id: "t".repeat(32),
            name: "parent".into(),
            session_id: "p".into(),
            user_id: None,
            tags: Vec::new(),
            environment: None,
            release: None,
            timestamp: 0,
            metadata: Map::new(),
        })
    }

    fn spawn(call: &str, ids: &[&str], names: &[&str], tasks: &[&str]) -> Spawn {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect();
        Spawn {
            tool_call_id: call.into(),
            obs_id: format!("obs-{call}"),
            trace: ctx(),
            agent_ids: v(ids),
            names: v(names),
            tasks: v(tasks),
        }
    }

    #[test]
    fn best_evidence_wins_and_ambiguous_text_does_not_match() {
        let spawns = vec![
            spawn("c1", &[], &[], &["Say hello."]),
            spawn("c2", &["GoldenLlama"], &[], &["Say hello."]),
            spawn("c3", &[], &["Scout"], &["Look around."]),
        ];
        let wrapped = "Complete assignment thoroughly:\n\nSay hello.";
        let got =
            |id, task| find_spawn(&spawns, id, task).map(|(s, l)| (s.tool_call_id.as_str(), l));
        assert_eq!(
            got("GoldenLlama", Some(wrapped)),
            Some(("c2", Link::TaskResult))
        );
        assert_eq!(got("Scout", None), Some(("c3", Link::TaskName)));
        assert_eq!(
            got("Other", Some("…Look around.")),
            Some(("c3", Link::TaskText))
        );
        // Two calls have this assignment: no guess.
        assert_eq!(got("Other", Some(wrapped)), None);
        let parent = ParentInfo {
            anchor: Anchor {
                trace: ctx(),
                root_id: "root".into(),
            },
            spawns,
            key_prefix: String::new(),
        };
        let n = nest_for(&parent, "Nobody", None);
        assert_eq!(n.parent_id, "root");
        assert_eq!(n.key_prefix, "agent/Nobody/");
        assert_eq!(n.metadata["linked_by"], "parent root");
        assert_eq!(nest_for(&parent, "GoldenLlama", None).parent_id, "obs-c2");
    }

    #[test]
    fn parent_ids_and_agent_ids_from_paths() {
        assert_eq!(
            parent_session_id("/h/.omp/agent/sessions/-p/2026-11-24T02-42-07-949Z_01a2-b6e.jsonl"),
            "01a2-b6e"
        );
        assert_eq!(parent_session_id("01a2-b6e"), "01a2-b6e");
        assert_eq!(
            agent_id_of("/s/-p/2026_x/GoldenLlama.jsonl").as_deref(),
            Some("GoldenLlama")
        );
        assert_eq!(agent_id_of("/s/-p/notes.md"), None);
    }

    #[test]
    fn an_advisor_transcript_goes_under_the_root_named_advisor() {
        // Even a spawn that names it does not take an advisor.
        let parent = ParentInfo {
            anchor: Anchor {
                trace: ctx(),
                root_id: "root".into(),
            },
            spawns: vec![spawn("c1", &["__advisor"], &[], &[])],
            key_prefix: String::new(),
        };
        let plain = nest_for(&parent, "__advisor", None);
        assert_eq!(
            (plain.name.as_str(), plain.parent_id.as_str()),
            ("advisor", "root")
        );
        assert_eq!(
            nest_for(&parent, "__advisor.review", None).name,
            "advisor review"
        );
        assert_eq!(
            nest_for(&parent, "__advisors", None).name,
            "subagent __advisors"
        );
    }
}
