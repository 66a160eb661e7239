//! The legacy Langfuse ingestion encoder: records → `POST /api/public/ingestion` events
//! (`{"batch":[{id, timestamp, type, body}, …]}`), the format `--dry-run` prints.
//!
//! Every observation becomes one complete `<type>-create` event carrying its end time;
//! a trace record becomes a `trace-create` (an upsert on the server). Envelope ids are
//! derived from the body ids, so identical input gives identical bytes and a re-sent batch
//! is recognised by the server.

use serde_json::{Map, Value, json};

use crate::encode::INGESTION_MAX_BODY_BYTES;
use crate::encode::{Encoder, Item, Wire, json};
use crate::model::{ObsKind, Observation, Record, TraceRecord, envelope_id, rfc3339};

/// Encodes records as legacy ingestion events.
#[derive(Debug, Default)]
pub struct IngestionEncoder;

impl IngestionEncoder {
    fn trace_event(t: &TraceRecord) -> Event<'_> {
        let ctx = &t.ctx;
        let mut body = Map::new();
        body.insert("id".into(), ctx.id.clone().into());
        body.insert("timestamp".into(), rfc3339(ctx.timestamp).into());
        body.insert("name".into(), ctx.name.clone().into());
        body.insert("sessionId".into(), ctx.session_id.clone().into());
        if let Some(u) = &ctx.user_id {
            body.insert("userId".into(), u.clone().into());
        }
        if !ctx.tags.is_empty() {
            body.insert("tags".into(), json!(ctx.tags));
        }
        if let Some(e) = &ctx.environment {
            body.insert("environment".into(), e.clone().into());
        }
        if let Some(r) = &ctx.release {
            body.insert("release".into(), r.clone().into());
        }
        let mut lent = Vec::new();
        if let Some(i) = &t.input {
            lent.push(("input", Lent::Value(i)));
        }
        if !ctx.metadata.is_empty() {
            lent.push(("metadata", Lent::Map(&ctx.metadata)));
        }
        if let Some(o) = &t.output {
            lent.push(("output", Lent::Value(o)));
        }
        Event {
            body: Body { own: body, lent },
            id: envelope_id(&["trace-create", &ctx.id, &t.seq.to_string()]),
            timestamp: rfc3339(t.at),
            ty: "trace-create".into(),
        }
    }

    fn observation_event(o: &Observation) -> Event<'_> {
        let mut body = Map::new();
        body.insert("id".into(), o.id.clone().into());
        body.insert("traceId".into(), o.trace.id.clone().into());
        if let Some(p) = &o.parent_id {
            body.insert("parentObservationId".into(), p.clone().into());
        }
        body.insert("name".into(), o.name.clone().into());
        body.insert("startTime".into(), rfc3339(o.start).into());
        // Events are instants: `event-create` has no end time.
        if o.kind != ObsKind::Event {
            body.insert("endTime".into(), rfc3339(o.end).into());
        }
        let mut lent = Vec::new();
        if let Some(i) = &o.input {
            lent.push(("input", Lent::Value(i)));
        }
        if !o.metadata.is_empty() {
            lent.push(("metadata", Lent::Map(&o.metadata)));
        }
        if let Some(out) = &o.output {
            lent.push(("output", Lent::Value(out)));
        }
        body.insert("level".into(), o.level.as_str().into());
        if let Some(s) = &o.status_message {
            body.insert("statusMessage".into(), s.clone().into());
        }
        if let Some(e) = &o.trace.environment {
            body.insert("environment".into(), e.clone().into());
        }
        if let Some(g) = &o.generation {
            if let Some(m) = &g.model {
                body.insert("model".into(), m.clone().into());
            }
            if !g.model_parameters.is_empty() {
                body.insert(
                    "modelParameters".into(),
                    Value::Object(g.model_parameters.clone()),
                );
            }
            let usage: Map<String, Value> = g
                .usage
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect();
            body.insert("usageDetails".into(), Value::Object(usage));
            let cost: Map<String, Value> = g
                .cost
                .iter()
                .map(|(k, v)| ((*k).into(), json!(v)))
                .collect();
            // No cost from omp: Langfuse prices the call itself.
            if !cost.is_empty() {
                body.insert("costDetails".into(), Value::Object(cost));
            }
            if let Some(c) = g.completion_start {
                body.insert("completionStartTime".into(), rfc3339(c).into());
            }
        }
        let ty = format!("{}-create", o.kind.as_str());
        Event {
            body: Body { own: body, lent },
            id: envelope_id(&[&ty, &o.trace.id, &o.id]),
            timestamp: rfc3339(o.end),
            ty,
        }
    }
}

impl Encoder for IngestionEncoder {
    fn wire(&self) -> Wire {
        Wire::Ingestion
    }

    fn encode(&self, rec: &Record) -> Option<Item> {
        let (key, event) = match rec {
            Record::Trace(t) => (
                format!("trace:{}:{}", t.ctx.id, t.seq),
                Self::trace_event(t),
            ),
            Record::Observation(o) => (o.id.clone(), Self::observation_event(o)),
        };
        Some(Item {
            session_id: rec.trace().session_id.as_str().into(),
            key,
            json: event.to_json(),
            trace_tag: Item::tag_of(rec.trace()),
        })
    }

    fn prefix(&self) -> &[u8] {
        b"{\"batch\":["
    }

    fn suffix(&self) -> &[u8] {
        b"]}"
    }

    fn max_body_bytes(&self) -> usize {
        INGESTION_MAX_BODY_BYTES
    }
}

/// One ingestion event, written with its keys in name order (the order of a `serde_json`
/// map, which it replaced: the bytes are the same).
struct Event<'a> {
    body: Body<'a>,
    id: String,
    timestamp: String,
    ty: String,
}

/// An event's body: its small fields owned, its large ones (input, output, metadata) lent
/// by the record instead of copied, which for megabytes of tool output was the encoder's
/// main cost. Written as one object, every key in name order as in a `serde_json` map.
struct Body<'a> {
    own: Map<String, Value>,
    /// Sorted by name.
    lent: Vec<(&'static str, Lent<'a>)>,
}

enum Lent<'a> {
    Value(&'a Value),
    Map(&'a Map<String, Value>),
}

impl Event<'_> {
    fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        json::write_key(&mut out, true, "body");
        self.body.write(&mut out);
        for (key, value) in [
            ("id", &self.id),
            ("timestamp", &self.timestamp),
            ("type", &self.ty),
        ] {
            json::write_key(&mut out, false, key);
            json::write_str(&mut out, value);
        }
        out.push(b'}');
        out
    }
}

impl Body<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        let mut first = true;
        let mut entry = |out: &mut Vec<u8>, key: &str| {
            json::write_key(out, first, key);
            first = false;
        };
        let mut lent = self.lent.iter().peekable();
        let write_lent = |out: &mut Vec<u8>, value: &Lent| match value {
            Lent::Value(v) => json::write_value(out, v),
            Lent::Map(m) => json::write_map(out, m),
        };
        for (key, value) in &self.own {
            while let Some((k, v)) = lent.next_if(|(k, _)| *k < key.as_str()) {
                entry(out, k);
                write_lent(out, v);
            }
            entry(out, key);
            json::write_value(out, value);
        }
        for (k, v) in lent {
            entry(out, k);
            write_lent(out, v);
        }
        if first {
            out.push(b'{');
        }
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GenerationInfo, Level, TraceCtx};
    use std::sync::Arc;

    fn ctx() -> Arc<TraceCtx> {
        Arc::new(TraceCtx {
            id: "0123456789abcdef0123456789abcdef".into(),
            name: "fix tests".into(),
            session_id: "sess".into(),
            user_id: None,
            tags: vec!["omp".into()],
            environment: Some("dev".into()),
            release: None,
            timestamp: 1_787_476_442_117,
            metadata: Map::new(),
        })
    }

    #[test]
    fn generation_event_is_complete() {
        let obs = Observation {
            id: "0123456789abcdef".into(),
            trace: ctx(),
            parent_id: Some("fedcba9876543210".into()),
            kind: ObsKind::Generation,
            name: "claude".into(),
            start: 1_787_476_444_759,
            end: 1_787_476_448_967,
            input: Some(json!("hi")),
            output: None,
            metadata: Map::new(),
            level: Level::Error,
            status_message: Some("529".into()),
            generation: Some(GenerationInfo {
                model: Some("claude".into()),
                model_parameters: Map::new(),
                usage: vec![("input", 3), ("total", 3)],
                cost: vec![("total", 0.5)],
                completion_start: Some(1_787_476_445_942),
            }),
        };
        let item = IngestionEncoder.encode(&Record::Observation(obs)).unwrap();
        let v: Value = serde_json::from_slice(&item.json).unwrap();
        assert_eq!(v["type"], "generation-create");
        assert_eq!(v["timestamp"], "2026-08-23T09:14:08.967Z");
        let b = &v["body"];
        assert_eq!(b["traceId"], "0123456789abcdef0123456789abcdef");
        assert_eq!(b["parentObservationId"], "fedcba9876543210");
        assert_eq!(b["endTime"], "2026-08-23T09:14:08.967Z");
        assert_eq!(b["completionStartTime"], "2026-08-23T09:14:05.942Z");
        assert_eq!(b["usageDetails"], json!({"input":3,"total":3}));
        assert_eq!(b["costDetails"], json!({"total":0.5}));
        assert_eq!(b["level"], "ERROR");
        assert_eq!(b["environment"], "dev");
        assert_eq!(item.key, "0123456789abcdef");
        assert_eq!(&*item.session_id, "sess");
    }

    #[test]
    fn events_have_no_end_time_and_traces_upsert() {
        let mut obs = Observation {
            id: "0123456789abcdef".into(),
            trace: ctx(),
            parent_id: None,
            kind: ObsKind::Event,
            name: "ttsr".into(),
            start: 0,
            end: 0,
            input: None,
            output: None,
            metadata: Map::new(),
            level: Level::Warning,
            status_message: None,
            generation: None,
        };
        let v: Value = serde_json::from_slice(
            &IngestionEncoder
                .encode(&Record::Observation(obs.clone()))
                .unwrap()
                .json,
        )
        .unwrap();
        assert_eq!(v["type"], "event-create");
        assert!(v["body"].get("endTime").is_none());
        obs.kind = ObsKind::Tool;
        let v: Value = serde_json::from_slice(
            &IngestionEncoder
                .encode(&Record::Observation(obs))
                .unwrap()
                .json,
        )
        .unwrap();
        assert_eq!(v["type"], "tool-create");

        let t = TraceRecord {
            ctx: ctx(),
            input: Some(json!("prompt")),
            output: None,
            at: 5,
            seq: 1,
        };
        let item = IngestionEncoder.encode(&Record::Trace(t)).unwrap();
        let v: Value = serde_json::from_slice(&item.json).unwrap();
        assert_eq!(v["type"], "trace-create");
        assert_eq!(v["body"]["sessionId"], "sess");
        assert_eq!(v["body"]["tags"], json!(["omp"]));
        assert_eq!(item.key, "trace:0123456789abcdef0123456789abcdef:1");
    }
}
