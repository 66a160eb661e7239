//! The print sink of `--dry-run=tree`: every trace as Langfuse will show it, an observation
//! tree with type, name, duration, tokens, cost and level, and the trace's totals. Colour
//! on a terminal, plain text when piped. It holds the summaries (a few hundred bytes per
//! observation) until the input ends, then prints; nothing is sent.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use serde::Deserialize;

use crate::deliver::sender::{Report, Sink};
use crate::encode::{Encoder, Item};

/// One observation's summary (see `encode::tree`).
#[derive(Debug, Clone, Deserialize)]
struct Node {
    trace: String,
    session: String,
    id: String,
    parent: Option<String>,
    kind: String,
    name: String,
    start: i64,
    end: i64,
    level: String,
    status: Option<String>,
    model: Option<String>,
    tokens: Option<u64>,
    cost: Option<f64>,
    #[serde(default)]
    abandoned: bool,
}

/// Collects summaries and prints the trees at the end.
pub struct TreeSink<W: Write + Send> {
    out: W,
    colour: bool,
    /// Observations by id (a later summary of the same id replaces the earlier).
    nodes: HashMap<String, Node>,
    /// Traces in the order they first appeared, with their names (the last one wins).
    traces: Vec<String>,
    names: HashMap<String, String>,
}

impl<W: Write + Send> TreeSink<W> {
    pub fn new(out: W, colour: bool) -> Self {
        TreeSink {
            out,
            colour,
            nodes: HashMap::new(),
            traces: Vec::new(),
            names: HashMap::new(),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn render(&self) -> String {
        let mut s = String::new();
        for trace in &self.traces {
            let nodes: Vec<&Node> = self.nodes.values().filter(|n| &n.trace == trace).collect();
            let mut children: BTreeMap<Option<&str>, Vec<&Node>> = BTreeMap::new();
            for n in &nodes {
                // A parent outside this trace (a subagent nested elsewhere) counts as none.
                let parent = n
                    .parent
                    .as_deref()
                    .filter(|p| nodes.iter().any(|m| m.id == *p));
                children.entry(parent).or_default().push(n);
            }
            for list in children.values_mut() {
                list.sort_by(|a, b| (a.start, &a.id).cmp(&(b.start, &b.id)));
            }
            let name = self.names.get(trace).map_or("", String::as_str);
            let tokens: u64 = nodes.iter().filter_map(|n| n.tokens).sum();
            let cost: f64 = nodes.iter().filter_map(|n| n.cost).sum();
            let start = nodes.iter().map(|n| n.start).min().unwrap_or(0);
            let end = nodes.iter().map(|n| n.end).max().unwrap_or(start);
            let session = nodes.first().map_or("", |n| n.session.as_str());
            s.push_str(&format!(
                "{} {}  {}\n",
                self.paint("1", "trace"),
                self.paint("1", &format!("{name:?}")),
                self.paint(
                    "2",
                    &format!(
                        "{} · session {} · {} observations · {} · {} · {}",
                        short(trace),
                        short(session),
                        nodes.len(),
                        tokens_text(tokens),
                        cost_text(cost),
                        duration(end - start)
                    )
                ),
            ));
            self.walk(&children, None, "", &mut s);
            s.push('\n');
        }
        s
    }

    fn walk(
        &self,
        children: &BTreeMap<Option<&str>, Vec<&Node>>,
        parent: Option<&str>,
        indent: &str,
        s: &mut String,
    ) {
        let Some(list) = children.get(&parent) else {
            return;
        };
        for (i, n) in list.iter().enumerate() {
            let last = i + 1 == list.len();
            let (branch, next) = if last {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            };
            s.push_str(indent);
            s.push_str(branch);
            s.push_str(&self.line(n));
            s.push('\n');
            self.walk(children, Some(&n.id), &format!("{indent}{next}"), s);
        }
    }

    fn line(&self, n: &Node) -> String {
        let kind_colour = match n.kind.as_str() {
            "agent" => "1;35",
            "generation" => "36",
            "tool" => "33",
            "event" => "34",
            _ => "2",
        };
        let mut parts = vec![
            self.paint(kind_colour, &n.kind),
            n.name.clone(),
            self.paint("2", &duration(n.end - n.start)),
        ];
        if let Some(m) = n.model.as_ref().filter(|m| **m != n.name) {
            parts.push(self.paint("2", m));
        }
        if let Some(t) = n.tokens {
            parts.push(tokens_text(t));
        }
        if let Some(c) = n.cost {
            parts.push(cost_text(c));
        }
        if n.abandoned {
            parts.push(self.paint("2", "(abandoned branch)"));
        }
        match n.level.as_str() {
            "ERROR" => parts.push(self.paint("31", &format!("ERROR {}", status(n)))),
            "WARNING" => parts.push(self.paint("33", &format!("WARNING {}", status(n)))),
            _ => {}
        }
        parts.join("  ")
    }
}

impl<W: Write + Send> Sink for TreeSink<W> {
    fn send(&mut self, _encoder: &dyn Encoder, items: Vec<Item>, report: &mut Report) {
        for item in items {
            report.delivered += 1;
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&item.json) else {
                continue;
            };
            let trace = v["trace"].as_str().unwrap_or_default().to_string();
            if !self.names.contains_key(&trace) {
                self.traces.push(trace.clone());
            }
            let name = v["name"].as_str().filter(|_| v["k"] == "trace");
            let name = name.or_else(|| v["tname"].as_str()).unwrap_or_default();
            self.names.insert(trace, name.to_string());
            if v["k"] == "obs"
                && let Ok(n) = serde_json::from_value::<Node>(v)
            {
                self.nodes.insert(n.id.clone(), n);
            }
        }
    }

    fn finish(&mut self, report: &mut Report) {
        let text = self.render();
        let written = self
            .out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush());
        if let Err(e) = written
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            report.fatal = Some(format!("writing to stdout: {e}"));
        }
    }
}

fn status(n: &Node) -> String {
    n.status.clone().unwrap_or_default()
}

/// The first 8 characters of an id.
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1e3),
        _ => format!("{}m{:02}s", ms / 60_000, ms / 1_000 % 60),
    }
}

fn tokens_text(t: u64) -> String {
    format!("{t} tok")
}

fn cost_text(c: f64) -> String {
    format!("${c:.4}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::tree::TreeEncoder;
    use crate::model::{GenerationInfo, Level, ObsKind, Observation, Record, TraceCtx};
    use serde_json::Map;
    use std::sync::Arc;

    fn obs(
        id: &str,
        parent: Option<&str>,
        kind: ObsKind,
        name: &str,
        ctx: &Arc<TraceCtx>,
    ) -> Observation {
        Observation {
            id: id.into(),
            trace: ctx.clone(),
            parent_id: parent.map(String::from),
            kind,
            name: name.into(),
            start: 1_000,
            end: 3_500,
            input: None,
            output: None,
            metadata: Map::new(),
            level: Level::Default,
            status_message: None,
            generation: None,
        }
    }

    #[test]
    fn draws_the_tree_with_totals_and_levels() {
        let ctx = Arc::new(TraceCtx {
            id: "abcdef0123456789".into(),
            name: "Fix the tests".into(),
            session_id: "0199b02a-aaaa".into(),
            user_id: None,
            tags: Vec::new(),
            environment: None,
            release: None,
            timestamp: 1_000,
            metadata: Map::new(),
        });
        let mut g = obs("g", Some("t"), ObsKind::Generation, "claude", &ctx);
        g.generation = Some(GenerationInfo {
            model: Some("claude".into()),
            model_parameters: Map::new(),
            usage: vec![("input", 100), ("total", 120)],
            cost: vec![("total", 0.25)],
            completion_start: None,
        });
        let mut tool = obs("x", Some("t"), ObsKind::Tool, "bash", &ctx);
        tool.level = Level::Error;
        tool.status_message = Some("exit code 1".into());
        tool.start = 2_000;
        let records = [
            Record::Observation(g),
            Record::Observation(tool),
            Record::Observation(obs("t", Some("r"), ObsKind::Span, "turn 1", &ctx)),
            Record::Observation(obs("r", None, ObsKind::Agent, "omp", &ctx)),
        ];
        let items: Vec<Item> = records
            .iter()
            .filter_map(|r| TreeEncoder.encode(r))
            .collect();
        let mut sink = TreeSink::new(Vec::new(), false);
        let mut report = Report::default();
        sink.send(&TreeEncoder, items, &mut report);
        sink.finish(&mut report);
        let text = String::from_utf8(sink.out).unwrap();
        assert_eq!(
            text,
            "trace \"Fix the tests\"  abcdef01 · session 0199b02a · 4 observations · 120 tok · $0.2500 · 2.5s\n\
             └─ agent  omp  2.5s\n   \
                └─ span  turn 1  2.5s\n      \
                   ├─ generation  claude  2.5s  120 tok  $0.2500\n      \
                   └─ tool  bash  1.5s  ERROR exit code 1\n\n"
        );
        assert_eq!(report.delivered, 4);
    }
}
