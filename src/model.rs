//! The internal observation model every stage speaks: traces, observations, ids and times.
//!
//! The mapper produces these; the sanitizer rewrites their strings in place; the encoders
//! (legacy ingestion and OTLP) turn them into wire JSON. Nothing here does I/O.

use std::sync::Arc;

use serde_json::{Map, Value};

/// Milliseconds since the Unix epoch, UTC. OMP's own timestamps have millisecond precision,
/// and Langfuse stores millisecond precision, so nothing finer is ever needed.
pub type Millis = i64;

/// The Langfuse observation types this tool emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObsKind {
    /// The root of a trace: one omp session (or one prompt with `--trace-per prompt`).
    Agent,
    /// A turn, or a compaction.
    Span,
    /// One LLM call.
    Generation,
    /// One tool execution.
    Tool,
    /// A point in time: retry, TTSR, goal update.
    Event,
}

impl ObsKind {
    /// Every kind, in summary order.
    pub const ALL: [ObsKind; 5] = [
        ObsKind::Agent,
        ObsKind::Span,
        ObsKind::Generation,
        ObsKind::Tool,
        ObsKind::Event,
    ];

    /// The lowercase name Langfuse uses (`langfuse.observation.type`, and the `<kind>-create`
    /// legacy event type).
    pub fn as_str(self) -> &'static str {
        match self {
            ObsKind::Agent => "agent",
            ObsKind::Span => "span",
            ObsKind::Generation => "generation",
            ObsKind::Tool => "tool",
            ObsKind::Event => "event",
        }
    }
}

/// Langfuse observation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Level {
    #[default]
    Default,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Default => "DEFAULT",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

/// Trace-wide context. Langfuse v4 reads trace fields from every span, so each observation
/// carries a snapshot of this (shared, cheap to clone).
#[derive(Debug, Clone, PartialEq)]
pub struct TraceCtx {
    /// 32 lowercase hex chars.
    pub id: String,
    pub name: String,
    /// Langfuse session id = the OMP session id.
    pub session_id: String,
    pub user_id: Option<String>,
    pub tags: Vec<String>,
    pub environment: Option<String>,
    pub release: Option<String>,
    /// Trace start.
    pub timestamp: Millis,
    /// Trace-level metadata (cwd, omp version, title, …). Small scalar values.
    pub metadata: Map<String, Value>,
}

/// A trace record: the legacy transport upserts it as `trace-create`; OTLP has no trace
/// entity and ignores it (the context travels on every span instead).
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRecord {
    pub ctx: Arc<TraceCtx>,
    /// Overall input/output (first prompt, last answer). Also on the root observation.
    pub input: Option<Value>,
    pub output: Option<Value>,
    /// When this snapshot was taken (input time); the server keeps the latest.
    pub at: Millis,
    /// Distinguishes successive snapshots of one trace (0 at start, 1 at end).
    pub seq: u32,
}

/// One finished observation, complete: it is emitted exactly once, after it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// 16 lowercase hex chars, derived deterministically from the trace id and a stable key.
    pub id: String,
    pub trace: Arc<TraceCtx>,
    /// None only for the trace root.
    pub parent_id: Option<String>,
    pub kind: ObsKind,
    pub name: String,
    pub start: Millis,
    /// Equal to `start` for events.
    pub end: Millis,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub metadata: Map<String, Value>,
    pub level: Level,
    pub status_message: Option<String>,
    /// Generation-only fields.
    pub generation: Option<GenerationInfo>,
}

/// What only an LLM call has.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GenerationInfo {
    pub model: Option<String>,
    pub model_parameters: Map<String, Value>,
    /// Additive buckets: `input`, `output`, `input_cache_read`, `input_cache_creation`, `total`.
    pub usage: Vec<(&'static str, u64)>,
    /// USD per bucket, same names, always with `total`.
    pub cost: Vec<(&'static str, f64)>,
    pub completion_start: Option<Millis>,
}

/// What the mapper hands downstream. Records move one at a time, so the size difference
/// between the variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Trace(TraceRecord),
    Observation(Observation),
}

impl Record {
    /// The trace this record belongs to.
    pub fn trace(&self) -> &TraceCtx {
        match self {
            Record::Trace(t) => &t.ctx,
            Record::Observation(o) => &o.trace,
        }
    }
}

/// Namespace for every derived id, so our ids never collide with another tool's v5 ids.
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_bytes([
    0x6f, 0x6d, 0x70, 0x2d, 0x6c, 0x61, 0x6e, 0x67, 0x66, 0x75, 0x73, 0x65, 0x2d, 0x69, 0x64, 0x73,
]);

/// A 128-bit digest of `parts` (UUID v5 / SHA-1 based): stable across runs and machines.
fn digest(parts: &[&str]) -> [u8; 16] {
    let mut joined = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for p in parts {
        joined.push_str(p);
        // A separator that cannot appear in ids keeps ("ab","c") and ("a","bc") apart.
        joined.push('\u{1f}');
    }
    *uuid::Uuid::new_v5(&ID_NAMESPACE, joined.as_bytes()).as_bytes()
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

/// Trace id (32 lowercase hex) for a session, or for one prompt of it (`--trace-per prompt`).
pub fn trace_id(session_id: &str, part: Option<u64>) -> String {
    match part {
        None => hex(&digest(&["trace", session_id])),
        Some(n) => hex(&digest(&["trace", session_id, "prompt", &n.to_string()])),
    }
}

/// Observation / span id (16 lowercase hex) from the trace id and a key stable for the input.
/// Never all zeros (OTLP treats that as invalid).
pub fn span_id(trace_id: &str, key: &str) -> String {
    let d = digest(&["span", trace_id, key]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    if b == [0; 8] {
        b[7] = 1;
    }
    hex(&b)
}

/// A deterministic UUID-formatted id (for legacy envelope ids).
pub fn envelope_id(parts: &[&str]) -> String {
    uuid::Uuid::from_bytes(digest(parts))
        .hyphenated()
        .to_string()
}

/// A number in [0, 1) from the session id, for stable whole-session sampling.
pub fn sample_point(session_id: &str) -> f64 {
    let d = digest(&["sample", session_id]);
    let n = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    (n >> 11) as f64 / (1u64 << 53) as f64
}

/// RFC 3339 UTC with milliseconds: `2026-08-23T09:14:02.117Z`.
pub fn rfc3339(ms: Millis) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        // Out of range for any real input: clamp to the epoch rather than fail.
        Err(_) => "1970-01-01T00:00:00.000Z".to_string(),
    }
}

/// Parse an ISO 8601 / RFC 3339 timestamp (OMP writes `…T09:14:02.117Z`) to epoch millis.
pub fn parse_iso(s: &str) -> Option<Millis> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// `<2026-08-23T09-14-02-117Z>_<session id>.jsonl` → (start time, session id).
pub fn parse_name(file_name: &str) -> Option<(Millis, String)> {
    let stem = file_name.strip_suffix(".jsonl")?;
    let (ts, id) = stem.split_once('_')?;
    if id.is_empty() {
        return None;
    }
    // The ISO time with `:` and `.` replaced by `-`: put them back.
    let (date, clock) = ts.split_once('T')?;
    let parts: Vec<&str> = clock.split('-').collect();
    let iso = match parts.as_slice() {
        [h, m, s, ms] => format!("{date}T{h}:{m}:{s}.{ms}"),
        [h, m, s] => format!("{date}T{h}:{m}:{s}"),
        _ => return None,
    };
    Some((parse_iso(&iso)?, id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_hex_of_the_right_length() {
        let t = trace_id("01a02de5-fc05-7c3a-9b2e-5d4c3b2a1f00", None);
        assert_eq!(t.len(), 32);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(t, trace_id("01a02de5-fc05-7c3a-9b2e-5d4c3b2a1f00", None));
        assert_ne!(t, trace_id("01a02de5-fc05-7c3a-9b2e-5d4c3b2a1f00", Some(1)));
        let s = span_id(&t, "tool/toolu_1");
        assert_eq!(s.len(), 16);
        assert_ne!(s, span_id(&t, "tool/toolu_2"));
        assert_ne!(span_id("a", "bc"), span_id("ab", "c"));
    }

    #[test]
    fn times_round_trip_with_millis() {
        let ms = parse_iso("2026-08-23T09:14:02.117Z").unwrap();
        assert_eq!(ms, 1_787_476_442_117);
        assert_eq!(rfc3339(ms), "2026-08-23T09:14:02.117Z");
        assert_eq!(
            parse_iso("2026-08-23T11:14:02+02:00"),
            Some(1_787_476_442_000)
        );
        assert_eq!(parse_iso("yesterday"), None);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn sample_points_spread_over_unit_interval() {
        let pts: Vec<f64> = (0..1000).map(|i| sample_point(&format!("s{i}"))).collect();
        assert!(pts.iter().all(|p| (0.0..1.0).contains(p)));
        let below = pts.iter().filter(|p| **p < 0.5).count();
        assert!((400..600).contains(&below), "{below}");
    }
}
