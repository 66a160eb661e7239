//! The encoder contract shared by both Langfuse transports: a record becomes one wire item,
//! and a request body is `prefix + item,item,… + suffix`.
//!
//! Encoding happens before batching so the batcher can count exact bytes.

pub mod ingestion;
pub mod json;
pub mod otlp;
pub mod tree;

use std::sync::Arc;

use crate::model::Record;

/// One encoded unit: a legacy ingestion event or one OTLP span, as JSON bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The OMP session this item belongs to (the delivery ledger is kept per session).
    pub session_id: Arc<str>,
    /// Unique within the session: the observation id, or `trace:<trace id>:<seq>` for a
    /// legacy trace record. Used by the ledger, the spool and 207 error matching.
    pub key: String,
    /// The serialized item (no trailing comma or newline).
    pub json: Vec<u8>,
    /// Hashes of its trace's id and of the trace name it carries, for a live stream's rule
    /// that a renamed trace's new name never shares a request with its stale one (`None`
    /// for items read back from the spool).
    pub trace_tag: Option<(u64, u64)>,
}

impl Item {
    /// The trace tag of a record's trace context.
    pub fn tag_of(ctx: &crate::model::TraceCtx) -> Option<(u64, u64)> {
        use std::hash::{Hash, Hasher};
        let hash = |s: &str| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            s.hash(&mut h);
            h.finish()
        };
        Some((hash(&ctx.id), hash(&ctx.name)))
    }
}

/// Langfuse's documented batch limit for `/api/public/ingestion` is 3.5 MB; the server
/// enforces 4.5 MB. We stay at the documented figure.
pub const INGESTION_MAX_BODY_BYTES: usize = 3_500_000;
/// Langfuse Cloud accepts 5 MB per request; 4 MB leaves room for proxies and headers.
pub const OTLP_MAX_BODY_BYTES: usize = 4_000_000;

/// Which Langfuse wire format an encoder produces.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `POST /api/public/ingestion` `{"batch":[…]}` (legacy, Langfuse v2/v3).
    Ingestion,
    /// `POST /api/public/otel/v1/traces`, OTLP/HTTP JSON (Langfuse ≥ 3.63, required by v4).
    Otlp,
}

impl Wire {
    /// The name users see (`--transport`, `--dry-run=`).
    pub fn as_str(self) -> &'static str {
        match self {
            Wire::Ingestion => "ingestion",
            Wire::Otlp => "otlp",
        }
    }
}

/// Turns records into items and frames items into request bodies.
pub trait Encoder: Send + Sync {
    /// The wire format.
    fn wire(&self) -> Wire;
    /// `None` when the record has no representation on this wire (OTLP has no trace entity).
    fn encode(&self, rec: &Record) -> Option<Item>;
    /// Bytes before the first item of a request body.
    fn prefix(&self) -> &[u8];
    /// Bytes after the last item.
    fn suffix(&self) -> &[u8];
    /// The largest request body (uncompressed) this transport should ever send.
    fn max_body_bytes(&self) -> usize;

    /// The size of the request body of `items`.
    fn body_len(&self, items: &[Item]) -> usize {
        self.prefix().len()
            + self.suffix().len()
            + items.iter().map(|i| i.json.len()).sum::<usize>()
            + items.len().saturating_sub(1)
    }

    /// Frame items into one request body.
    fn body(&self, items: &[Item]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body_len(items));
        out.extend_from_slice(self.prefix());
        for (n, item) in items.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&item.json);
        }
        out.extend_from_slice(self.suffix());
        out
    }
}
