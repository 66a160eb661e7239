//! `--dry-run=tree`: each record as the few fields the tree view shows (see
//! `deliver::tree`): what Langfuse will display, read before anything is sent.

use serde_json::{Value, json};

use crate::encode::{Encoder, Item, Wire};
use crate::model::Record;

/// Encodes records as compact summaries, one JSON object each.
#[derive(Debug, Default, Clone, Copy)]
pub struct TreeEncoder;

/// Items are collected, never sent: no body limit applies.
const NO_LIMIT: usize = usize::MAX / 4;

impl Encoder for TreeEncoder {
    /// Never sent anywhere: the wire only names what a summary would become.
    fn wire(&self) -> Wire {
        Wire::Otlp
    }

    fn encode(&self, rec: &Record) -> Option<Item> {
        let (session, key, v) = match rec {
            Record::Trace(t) => (
                t.ctx.session_id.clone(),
                format!("trace:{}:{}", t.ctx.id, t.seq),
                json!({
                    "k": "trace", "trace": t.ctx.id, "name": t.ctx.name,
                    "session": t.ctx.session_id,
                }),
            ),
            Record::Observation(o) => {
                let g = o.generation.as_ref();
                let total =
                    |v: &[(&str, f64)]| v.iter().find(|(k, _)| *k == "total").map(|(_, c)| *c);
                let tokens =
                    g.and_then(|g| g.usage.iter().find(|(k, _)| *k == "total").map(|(_, n)| *n));
                (
                    o.trace.session_id.clone(),
                    o.id.clone(),
                    json!({
                        "k": "obs", "trace": o.trace.id, "tname": o.trace.name,
                        "session": o.trace.session_id,
                        "id": o.id, "parent": o.parent_id, "kind": o.kind.as_str(), "name": o.name,
                        "start": o.start, "end": o.end, "level": o.level.as_str(),
                        "status": o.status_message,
                        "model": g.and_then(|g| g.model.clone()),
                        "tokens": tokens,
                        "cost": g.and_then(|g| total(&g.cost)),
                        "abandoned": o.metadata.get("branch") == Some(&Value::from("abandoned")),
                    }),
                )
            }
        };
        Some(Item {
            session_id: session.as_str().into(),
            key,
            json: v.to_string().into_bytes(),
            trace_tag: None,
        })
    }

    fn prefix(&self) -> &[u8] {
        b""
    }

    fn suffix(&self) -> &[u8] {
        b""
    }

    fn max_body_bytes(&self) -> usize {
        NO_LIMIT
    }
}
